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

pub mod commands;
#[doc(hidden)]
pub mod fuzzing;
pub mod recording;
pub mod scp;
pub mod sftp;
pub mod sinks;
pub mod verify;

pub use recording::{CastHeader, Recorder, RecordingError};
pub use ssh_key::{PrivateKey, PublicKey};
pub use verify::{RecordingProblem, RecordingReport, verify_recording};

/// Reads a node key (OpenSSH private key format) from the data directory.
pub fn read_private_key(path: &std::path::Path) -> Result<ssh_key::PrivateKey, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    ssh_key::PrivateKey::from_openssh(pem.as_bytes())
        .map_err(|err| format!("{} is not a valid key: {err}", path.display()))
}

/// Parses the audit key's public half (`keys/audit_ed25519_key.pub`).
pub fn public_key_from_openssh(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(text.trim()).map_err(|err| err.to_string())
}

/// Deletes a session's recording (retention is the only caller).
pub fn remove_recording(dir: &std::path::Path, session: uuid::Uuid) -> std::io::Result<()> {
    for path in [
        recording::cast_path(dir, session),
        recording::manifest_path(dir, session),
    ] {
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a recording exists for `session` in `dir`.
pub fn has_recording(dir: &std::path::Path, session: uuid::Uuid) -> bool {
    recording::manifest_path(dir, session).exists() || recording::cast_path(dir, session).exists()
}

/// One asciicast event: seconds since the start, code (`o`, `i`, `r`, `m`) and data.
pub type CastEvent = (f64, String, String);

/// Reads a recording's header and events (for replay).
pub fn read_cast(
    dir: &std::path::Path,
    session: uuid::Uuid,
) -> Result<(CastHeader, Vec<CastEvent>), String> {
    let path = recording::cast_path(dir, session);
    let text = std::fs::read_to_string(&path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or_else(|| format!("{} is empty", path.display()))?;
    let header: CastHeader = serde_json::from_str(header)
        .map_err(|err| format!("{} has no asciicast header: {err}", path.display()))?;
    let events = lines
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|err| format!("{} line {}: {err}", path.display(), n + 2))
        })
        .collect::<Result<Vec<CastEvent>, String>>()?;
    Ok((header, events))
}

/// The SSH signature namespace of recording seals.
pub const SEAL_NAMESPACE: &str = "rampart-recording";
/// The SSH signature namespace of audit chain head signatures.
pub const CHAIN_NAMESPACE: &str = "rampart-audit-chain";

fn head_message(seq: i64, hash: &str) -> String {
    format!("rampart-audit-head-v1\n{seq}\n{hash}")
}

/// Signs the audit chain head (`seq`, `hash`) with the node's audit key.
pub fn sign_chain_head(key: &ssh_key::PrivateKey, seq: i64, hash: &str) -> Result<String, String> {
    key.sign(
        CHAIN_NAMESPACE,
        ssh_key::HashAlg::Sha512,
        head_message(seq, hash).as_bytes(),
    )
    .and_then(|sig| sig.to_pem(ssh_key::LineEnding::LF))
    .map_err(|err| err.to_string())
}

/// Whether `signature` is the audit key's signature over the chain head (`seq`, `hash`).
pub fn chain_head_signed(key: &PublicKey, seq: i64, hash: &str, signature: &str) -> bool {
    ssh_key::SshSig::from_pem(signature.as_bytes())
        .and_then(|sig| key.verify(CHAIN_NAMESPACE, head_message(seq, hash).as_bytes(), &sig))
        .is_ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
