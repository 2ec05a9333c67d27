//! Rampart's evidence: session recordings that nobody can alter unnoticed, and the verifier.
//!
//! A recording is an asciicast v2 file (`<session>.cast`, plays in any asciinema player) written
//! in chunks, with a manifest beside it (`<session>.manifest`, JSON lines) that holds each
//! chunk's SHA-256 and a running hash chain over them. When the session ends the manifest is
//! sealed with a signature by the node's audit key (an SSH signature, so `ssh-keygen -Y verify`
//! can check it too). A recording cut short by a crash is sealed at the next start as
//! incomplete, and verifies up to its last complete chunk.
//!
//! This crate does file I/O on the recordings directory only; the audit log lives in the store.
#![forbid(unsafe_code)]

pub mod recording;
pub mod verify;

pub use recording::{CastHeader, Recorder, RecordingError};
pub use verify::{RecordingProblem, RecordingReport, verify_recording};

/// The SSH signature namespace of recording seals.
pub const SEAL_NAMESPACE: &str = "rampart-recording";

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
