//! Telnet for Rampart: the wire protocol as a small state machine of our own (`protocol`), the
//! scripted login with the vaulted password (`login`), both sans I/O, and the connection the
//! SSH front relays a shell over (`client`). The SSH front decides when a shell goes to a
//! Telnet device (`rampart-ssh`'s `relay/telnet.rs`); this crate knows nothing of SSH.
//!
//! Why no crate for the protocol: the sans-I/O parsers on crates.io (`libtelnet-rs`, `nectar`)
//! are written for MUD servers, index their buffers directly (a malformed sequence can panic)
//! and keep subnegotiations without a bound. What a client needs here is a few hundred lines:
//! four options, IAC escaping, bounded subnegotiations, answers only on a state change.

pub mod client;
pub mod fuzzing;
pub mod login;
pub mod protocol;

pub use client::{Connection, Input, Login, LoginError, Terminal, connect};
pub use login::{LoginPatterns, PatternError};
