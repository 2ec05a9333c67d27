//! Rampart's evidence: session recordings that nobody can alter unnoticed, and the verifier.
//!
//! A recording is an asciicast v2 file (`<session>.cast`, plays in any asciinema player) written
//! in chunks, with a manifest beside it (`<session>.manifest`, JSON lines) that holds each
//! chunk's SHA-256 and a running hash chain over them. When the session ends the manifest is
//! sealed with a signature by the node's audit key (an SSH signature, so `ssh-keygen -Y verify`
//! can check it too). A recording cut short by a crash is sealed at the next start as
//! incomplete, and verifies up to its last complete chunk.
//!
//! A command's recording keeps its input and output in full as raw frames in a third file
//! (`<session>.raw`), hashed into the same manifest; the cast then holds the header and markers,
//! and [`read_cast`] / [`write_cast`] merge the two into one asciicast for players.
//!
//! This crate does file I/O on the recordings directory only; the audit log lives in the store.
#![forbid(unsafe_code)]

pub mod commands;
#[doc(hidden)]
pub mod fuzzing;
pub mod live;
pub mod recording;
pub mod replica;
pub mod scp;
pub mod sftp;
pub mod sinks;
pub mod terminal;
pub mod verify;

pub use live::LiveRecorder;
pub use recording::{
    CastHeader, Recorder, RecordingError, RecordingOptions, SealedRecording, Stream,
};
pub use ssh_key::{PrivateKey, PublicKey};
pub use verify::{
    RecordingProblem, RecordingReport, check_anchor, verify_anchored_recording, verify_recording,
};

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
        recording::raw_path(dir, session),
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

/// Reads a recording's header and events (for replay): the cast's events, with a command's
/// raw input and output merged in by time.
pub fn read_cast(
    dir: &std::path::Path,
    session: uuid::Uuid,
) -> Result<(CastHeader, Vec<CastEvent>), String> {
    let mut events = Vec::new();
    let header = each_event(dir, session, &mut |event| {
        events.push(event);
        Ok(())
    })?;
    Ok((header, events))
}

/// Writes a recording as one asciicast v2 file (what players accept) to `out`: a terminal
/// session's cast as it is, a command's with its raw input and output merged in. Returns the
/// bytes written.
pub fn write_cast(
    dir: &std::path::Path,
    session: uuid::Uuid,
    out: &mut dyn std::io::Write,
) -> Result<u64, String> {
    let path = recording::cast_path(dir, session);
    let failed = |err: std::io::Error| format!("cannot write the recording: {err}");
    if !recording::raw_path(dir, session).exists() {
        let mut file = std::fs::File::open(&path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        return std::io::copy(&mut file, out).map_err(failed);
    }
    let mut written = 0u64;
    let mut line = |text: String| -> Result<(), String> {
        out.write_all(text.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(failed)?;
        written += text.len() as u64 + 1;
        Ok(())
    };
    // The header goes first: read it before the events.
    let mut reader = open_cast(&path)?;
    let header = next_whole_line(&mut reader, &path)?
        .ok_or_else(|| format!("{} is empty", path.display()))?;
    line(header.trim_end_matches('\n').to_owned())?;
    each_event(dir, session, &mut |event| {
        line(serde_json::to_string(&event).map_err(|err| err.to_string())?)
    })?;
    Ok(written)
}

/// The longest cast line (or raw frame) a reader accepts: the writer's are at most a chunk
/// (64 KiB, escaped), so anything larger is not a record of ours.
const MAX_CAST_LINE_BYTES: u64 = 16 * 1024 * 1024;

fn open_cast(path: &std::path::Path) -> Result<std::io::BufReader<std::fs::File>, String> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// The next line ending in a newline (without it); `None` at the end, or at a torn last line
/// (a recording that could not be sealed, on a full disk, may end in one: not a record).
fn next_whole_line(
    reader: &mut std::io::BufReader<std::fs::File>,
    path: &std::path::Path,
) -> Result<Option<String>, String> {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    let read = reader
        .by_ref()
        .take(MAX_CAST_LINE_BYTES + 1)
        .read_line(&mut line)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if read as u64 > MAX_CAST_LINE_BYTES {
        return Err(format!("{} holds an oversized line", path.display()));
    }
    if !line.ends_with('\n') {
        return Ok(None);
    }
    line.pop();
    Ok(Some(line))
}

/// Calls `each` with every event of a recording in time order; returns the header.
fn each_event(
    dir: &std::path::Path,
    session: uuid::Uuid,
    each: &mut dyn FnMut(CastEvent) -> Result<(), String>,
) -> Result<CastHeader, String> {
    let path = recording::cast_path(dir, session);
    // Read line by line, never whole: memory stays one event whatever the file's size.
    let mut reader = open_cast(&path)?;
    let header = next_whole_line(&mut reader, &path)?
        .ok_or_else(|| format!("{} is empty", path.display()))?;
    let header: CastHeader = serde_json::from_str(&header)
        .map_err(|err| format!("{} has no asciicast header: {err}", path.display()))?;
    let mut line_number = 1usize;
    let mut cast_events = std::iter::from_fn(|| {
        line_number += 1;
        match next_whole_line(&mut reader, &path) {
            Ok(Some(line)) => Some(
                serde_json::from_str::<CastEvent>(&line)
                    .map_err(|err| format!("{} line {line_number}: {err}", path.display())),
            ),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        }
    });
    let mut frames = RawFrames::open(dir, session)?;
    // Characters split across frames stay whole, per direction.
    let (mut pending_input, mut pending_output) = (Vec::new(), Vec::new());
    let mut next_frame = || -> Result<Option<CastEvent>, String> {
        let Some(frames) = frames.as_mut() else {
            return Ok(None);
        };
        while let Some((stream, micros, data)) = frames.next_frame()? {
            let data = &data[..];
            let (pending, code) = match stream {
                Stream::Input => (&mut pending_input, "i"),
                Stream::Output | Stream::ErrorOutput => (&mut pending_output, "o"),
            };
            let text = recording::take_utf8(pending, data);
            if !text.is_empty() {
                return Ok(Some((micros as f64 / 1_000_000.0, code.to_owned(), text)));
            }
        }
        Ok(None)
    };
    let mut cast_next = cast_events.next().transpose()?;
    let mut frame_next = next_frame()?;
    loop {
        let take_cast = match (&cast_next, &frame_next) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(cast), Some(frame)) => cast.0 <= frame.0,
        };
        if take_cast {
            if let Some(event) = cast_next.take() {
                each(event)?;
            }
            cast_next = cast_events.next().transpose()?;
        } else {
            if let Some(event) = frame_next.take() {
                each(event)?;
            }
            frame_next = next_frame()?;
        }
    }
    Ok(header)
}

/// A recording's raw frames (`<session>.raw`: a command's streams, a desktop's screen
/// updates), read one at a time in the order they were written; memory stays one frame.
#[derive(Debug)]
pub struct RawFrames {
    reader: std::io::BufReader<std::fs::File>,
    path: std::path::PathBuf,
}

impl RawFrames {
    /// The frames of `session`'s recording in `dir`; `None` when it has no raw stream.
    pub fn open(dir: &std::path::Path, session: uuid::Uuid) -> Result<Option<Self>, String> {
        let path = recording::raw_path(dir, session);
        match std::fs::File::open(&path) {
            Ok(file) => Ok(Some(Self {
                reader: std::io::BufReader::new(file),
                path,
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("cannot read {}: {err}", path.display())),
        }
    }

    /// The next frame: its direction, microseconds since the session started, and its bytes.
    /// `None` at the end, or at a torn last frame (a write the disk refused: not a record).
    pub fn next_frame(&mut self) -> Result<Option<(Stream, u64, Vec<u8>)>, String> {
        use std::io::Read;
        let mut head = [0u8; recording::FRAME_HEADER];
        match self.reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(format!("cannot read {}: {err}", self.path.display())),
        }
        let [_, _, _, _, _, _, _, _, _, l0, l1, l2, l3] = head;
        let length = u32::from_be_bytes([l0, l1, l2, l3]);
        if u64::from(length) > MAX_CAST_LINE_BYTES {
            return Err(format!("{} holds an oversized frame", self.path.display()));
        }
        let mut data = vec![0u8; usize::try_from(length).unwrap_or(0)];
        match self.reader.read_exact(&mut data) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(format!("cannot read {}: {err}", self.path.display())),
        }
        let [tag, m0, m1, m2, m3, m4, m5, m6, m7, ..] = head;
        let Some(stream) = Stream::from_tag(tag) else {
            return Err(format!("{} holds an unreadable frame", self.path.display()));
        };
        let micros = u64::from_be_bytes([m0, m1, m2, m3, m4, m5, m6, m7]);
        Ok(Some((stream, micros, data)))
    }
}

/// The SSH signature namespace of recording seals.
pub const SEAL_NAMESPACE: &str = "rampart-recording";
/// The SSH signature namespace of audit chain head signatures.
pub const CHAIN_NAMESPACE: &str = "rampart-audit-chain";

fn head_message_v1(seq: i64, hash: &str) -> String {
    format!("rampart-audit-head-v1\n{seq}\n{hash}")
}

fn head_message(head: &ChainHead<'_>) -> String {
    format!(
        "rampart-audit-head-v2\n{}\n{}\n{}\n{}",
        head.seq, head.hash, head.signed_at, head.state
    )
}

/// What a chain head signature covers: the event `seq` and its `hash`, when it was signed
/// (RFC 3339), and the signer's `state` (`running`: a server that signs again within its seal
/// interval; `final`: the last signature of a process that stopped cleanly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead<'a> {
    pub seq: i64,
    pub hash: &'a str,
    pub signed_at: &'a str,
    pub state: &'a str,
}

/// The namespace of node-to-node request signatures (a cluster's nodes share the audit key).
const NODE_NAMESPACE: &str = "rampart-node@rampart";

/// Signs a node-to-node request (`message` names the request, the node and the time) with the
/// cluster's audit key: only a node holding that key can ask another node for a live
/// session's output. PEM text.
pub fn sign_node_request(key: &ssh_key::PrivateKey, message: &str) -> Result<String, String> {
    key.sign(NODE_NAMESPACE, ssh_key::HashAlg::Sha512, message.as_bytes())
        .and_then(|sig| sig.to_pem(ssh_key::LineEnding::LF))
        .map_err(|err| err.to_string())
}

/// Whether `signature` (PEM) is the audit key's over `message`, as a node-to-node request.
pub fn check_node_request(key: &PublicKey, message: &str, signature: &str) -> bool {
    ssh_key::SshSig::from_pem(signature.as_bytes())
        .is_ok_and(|sig| key.verify(NODE_NAMESPACE, message.as_bytes(), &sig).is_ok())
}

/// Signs the audit chain head with the node's audit key.
pub fn sign_chain_head(key: &ssh_key::PrivateKey, head: &ChainHead<'_>) -> Result<String, String> {
    key.sign(
        CHAIN_NAMESPACE,
        ssh_key::HashAlg::Sha512,
        head_message(head).as_bytes(),
    )
    .and_then(|sig| sig.to_pem(ssh_key::LineEnding::LF))
    .map_err(|err| err.to_string())
}

/// How a chain head signature checks out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadSignature {
    /// The audit key's signature over the head, its time and state.
    Valid,
    /// The audit key's signature over the event and hash only (signed before heads carried a
    /// time and a state): its time and state are not evidence.
    Legacy,
    Invalid,
}

/// Checks `signature` over `head` with the audit key.
pub fn check_chain_head(key: &PublicKey, head: &ChainHead<'_>, signature: &str) -> HeadSignature {
    let Ok(sig) = ssh_key::SshSig::from_pem(signature.as_bytes()) else {
        return HeadSignature::Invalid;
    };
    if key
        .verify(CHAIN_NAMESPACE, head_message(head).as_bytes(), &sig)
        .is_ok()
    {
        HeadSignature::Valid
    } else if key
        .verify(
            CHAIN_NAMESPACE,
            head_message_v1(head.seq, head.hash).as_bytes(),
            &sig,
        )
        .is_ok()
    {
        HeadSignature::Legacy
    } else {
        HeadSignature::Invalid
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
