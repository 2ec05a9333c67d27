//! VNC desktops for Rampart: a strict RFB 3.8 client towards the target (`rfb`), the desktop
//! stream the browser draws and the recording keeps (`screen`), and the desktop session
//! through the session core (`session`), which the web front's WebSocket carries.
//!
//! Why no crate for the protocol: `vnc-rs` (the maintained RFB client on crates.io) brings its
//! own event loop with `futures`, `async_io_stream`, `tokio-stream` and `wasm-bindgen-futures`,
//! and decodes into buffers sized by what the server declares; `vnc` 0.4 is unmaintained
//! (flate2 0.2). What Rampart needs is small: two security types, Raw, CopyRect and
//! DesktopSize, and four client messages, each length checked before it is read.

pub mod rfb;
pub mod screen;
pub mod session;
pub mod video;

pub use session::{Desktop, DesktopEvent, DesktopRequest, Input, open};
