//! Rampart's domain: the vocabulary every other crate speaks.
//!
//! This crate is pure. It does no I/O, reads no clock and starts no task, so everything in it
//! can be unit-tested and fuzzed directly. Inputs from people (names, labels, action lists,
//! times) are parsed here into types that cannot hold an invalid value.
#![forbid(unsafe_code)]

pub mod access;
pub mod action;
pub mod audit;
pub mod detectors;
pub mod login_rules;
pub mod mfa;
pub mod model;
pub mod name;
pub mod password_policy;
pub mod policy;
pub mod requests;
pub mod rules;
pub mod schedule;
pub mod target;
pub mod time_arg;

pub use action::{Action, ActionSet};
pub use model::*;
pub use name::{InvalidInput, Label, Name, parse_host};
pub use target::{Endpoint, Protocol, SessionKind};

/// A secret (vaulted password or private key) in memory: `Debug` prints `[REDACTED]`, the bytes
/// are zeroized on drop, and the only way to the value is an explicit `expose_secret()` at the
/// point of use.
pub use secrecy::{ExposeSecret, SecretString};
