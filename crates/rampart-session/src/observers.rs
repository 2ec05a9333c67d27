//! The observers Rampart has today: the terminal recorder, the command log, and the file
//! transfer observers. Each implements [`crate::observe::Observer`].

pub mod commands;
pub mod files;
pub mod recording;

pub use commands::CommandObserver;
pub use files::FileObserver;
pub use recording::TerminalRecorder;
