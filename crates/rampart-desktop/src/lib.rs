//! Desktops for Rampart, VNC and RDP: a strict RFB 3.8 client towards VNC targets (`rfb`, with
//! VeNCrypt's TLS to a pinned certificate in `vnc`), an
//! RDP client towards RDP targets with IronRDP's crates (`rdp`), the desktop stream the browser
//! draws and the recording keeps (`screen`, the same for both), and the desktop session
//! through the session core (`session`, the same for both), which the web front's WebSocket
//! carries, and so does the native VNC front (`native_vnc`, a VNC listener for stock viewers,
//! with the RFB server side in `rfb_server`).
//!
//! Why no crate for RFB: `vnc-rs` (the maintained RFB client on crates.io) brings its
//! own event loop with `futures`, `async_io_stream`, `tokio-stream` and `wasm-bindgen-futures`,
//! and decodes into buffers sized by what the server declares; `vnc` 0.4 is unmaintained
//! (flate2 0.2). What Rampart needs is small: three security types, Raw, CopyRect and
//! DesktopSize, and four client messages, each length checked before it is read.
//!
//! RDP is another matter (X.224, MCS, CredSSP/NTLM, capability exchange, bitmap codecs), so
//! it is IronRDP's connector and session crates, sans-I/O, driven over our own TLS stream.

pub mod native_rdp;
pub mod native_vnc;
pub mod rdp;
pub mod rdp_clipboard;
pub mod resize;
pub mod rfb;
pub mod rfb_server;
pub mod screen;
pub mod session;
pub mod video;
pub mod vnc;

pub use native_rdp::NativeRdpFront;
pub use native_vnc::{NativeFront, NativeSettings, NativeVncFront};
pub use rampart_session::database::DbLogin;
pub use session::{Desktop, DesktopEvent, DesktopRequest, Input, open};
