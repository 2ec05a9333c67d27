//! Writing a recording: asciicast v2 events, buffered and written in hashed chunks.

use crate::{SEAL_NAMESPACE, hex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use uuid::Uuid;

/// A chunk is written once this many bytes of events are buffered (or when the session ends):
/// no write per keystroke, and a crash loses at most one chunk.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot write the recording {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot sign the recording: {0}")]
    Sign(String),
}

/// The asciicast v2 header line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CastHeader {
    pub version: u8,
    pub width: u32,
    pub height: u32,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub title: String,
    pub env: serde_json::Map<String, serde_json::Value>,
}

impl CastHeader {
    pub fn new(
        width: u32,
        height: u32,
        term: Option<&str>,
        command: Option<String>,
        title: String,
    ) -> Self {
        let mut env = serde_json::Map::new();
        if let Some(term) = term {
            env.insert("TERM".into(), term.into());
        }
        Self {
            version: 2,
            // A client without a terminal size reports 0x0: players need a size.
            width: if width == 0 { 80 } else { width.min(10_000) },
            height: if height == 0 { 24 } else { height.min(10_000) },
            timestamp: time::OffsetDateTime::now_utc().unix_timestamp(),
            command,
            title,
            env,
        }
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManifestLine {
    Start {
        session: String,
        format: String,
    },
    Chunk {
        index: u64,
        offset: u64,
        length: u64,
        sha256: String,
        chain: String,
    },
    Seal {
        session: String,
        chunks: u64,
        length: u64,
        chain: String,
        complete: bool,
        signature: String,
    },
}

pub(crate) const FORMAT: &str = "rampart-recording-v1";

pub(crate) fn chain_start(session: &str) -> String {
    hex(&Sha256::new()
        .chain_update(FORMAT)
        .chain_update("\n")
        .chain_update(session)
        .finalize())
}

pub(crate) fn chain_next(
    previous: &str,
    index: u64,
    offset: u64,
    length: u64,
    sha256: &str,
) -> String {
    let text = format!("{previous}\n{index}\n{offset}\n{length}\n{sha256}");
    hex(&Sha256::digest(text.as_bytes()))
}

/// The message a seal's signature covers.
pub(crate) fn seal_message(
    session: &str,
    chunks: u64,
    length: u64,
    chain: &str,
    complete: bool,
) -> String {
    format!("rampart-recording-seal-v1\n{session}\n{chunks}\n{length}\n{chain}\n{complete}")
}

pub fn cast_path(dir: &Path, session: Uuid) -> PathBuf {
    dir.join(format!("{session}.cast"))
}

pub fn manifest_path(dir: &Path, session: Uuid) -> PathBuf {
    dir.join(format!("{session}.manifest"))
}

/// Records one session. Events are buffered; every [`CHUNK_BYTES`] they are appended to the
/// cast file and the chunk's hash to the manifest.
#[derive(Debug)]
pub struct Recorder {
    session: Uuid,
    cast_path: PathBuf,
    cast: File,
    manifest: File,
    buffer: Vec<u8>,
    offset: u64,
    chunks: u64,
    chain: String,
    started: Instant,
    /// Bytes of an incomplete UTF-8 character at the end of the last output or input, kept
    /// for the next event so characters split across packets stay whole.
    pending_output: Vec<u8>,
    pending_input: Vec<u8>,
}

impl Recorder {
    /// Creates the recording files (they must not exist) and writes the header.
    pub fn create(dir: &Path, session: Uuid, header: &CastHeader) -> Result<Self, RecordingError> {
        let cast_path = cast_path(dir, session);
        let manifest_path = manifest_path(dir, session);
        let open = |path: &Path| {
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| RecordingError::Io {
                    path: path.display().to_string(),
                    source,
                })
        };
        let cast = open(&cast_path)?;
        let manifest = match open(&manifest_path) {
            Ok(manifest) => manifest,
            Err(err) => {
                let _ = std::fs::remove_file(&cast_path);
                return Err(err);
            }
        };
        let id = session.to_string();
        let mut recorder = Self {
            session,
            cast_path,
            cast,
            manifest,
            // Grows with use: an idle session holds little (memory per session is a goal).
            buffer: Vec::new(),
            offset: 0,
            chunks: 0,
            chain: chain_start(&id),
            started: Instant::now(),
            pending_output: Vec::new(),
            pending_input: Vec::new(),
        };
        let start = ManifestLine::Start {
            session: id,
            format: FORMAT.into(),
        };
        let header = serde_json::to_string(header)
            .map_err(|err| recorder.io_error(std::io::Error::other(err)));
        let written = header.and_then(|header| {
            recorder.write_manifest(&start)?;
            recorder.buffer.extend_from_slice(header.as_bytes());
            recorder.buffer.push(b'\n');
            // The header reaches the disk at once: a recording exists from the first moment.
            recorder.flush_chunk()
        });
        match written {
            Ok(()) => Ok(recorder),
            Err(err) => {
                // A recording that could not even start leaves nothing behind.
                recorder.discard();
                Err(err)
            }
        }
    }

    /// Removes the files of a recording whose session never started.
    pub fn discard(self) {
        let manifest = self.cast_path.with_extension("manifest");
        let _ = std::fs::remove_file(&self.cast_path);
        let _ = std::fs::remove_file(manifest);
    }

    pub fn session(&self) -> Uuid {
        self.session
    }

    /// Output from the target (`o`).
    pub fn output(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        let text = take_utf8(&mut self.pending_output, data);
        self.event("o", &text)
    }

    /// Input from the user (`i`).
    pub fn input(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        let text = take_utf8(&mut self.pending_input, data);
        self.event("i", &text)
    }

    /// A terminal resize (`r`).
    pub fn resize(&mut self, cols: u32, rows: u32) -> Result<(), RecordingError> {
        self.event("r", &format!("{cols}x{rows}"))
    }

    /// A marker (`m`), for example a command or an exit status.
    pub fn marker(&mut self, label: &str) -> Result<(), RecordingError> {
        self.event("m", label)
    }

    fn event(&mut self, code: &str, text: &str) -> Result<(), RecordingError> {
        if text.is_empty() {
            return Ok(());
        }
        let at = self.started.elapsed().as_secs_f64();
        let line = serde_json::to_string(&(Seconds(at), code, text))
            .map_err(|err| self.io_error(std::io::Error::other(err)))?;
        self.buffer.extend_from_slice(line.as_bytes());
        self.buffer.push(b'\n');
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Appends the buffered events as one chunk, and its hash to the manifest.
    pub fn flush_chunk(&mut self) -> Result<(), RecordingError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buffer);
        self.cast
            .write_all(&chunk)
            .map_err(|err| self.io_error(err))?;
        let length = chunk.len() as u64;
        let sha256 = hex(&Sha256::digest(&chunk));
        let chain = chain_next(&self.chain, self.chunks, self.offset, length, &sha256);
        let line = ManifestLine::Chunk {
            index: self.chunks,
            offset: self.offset,
            length,
            sha256,
            chain: chain.clone(),
        };
        self.write_manifest(&line)?;
        self.chain = chain;
        self.chunks += 1;
        self.offset += length;
        // Keep the allocation for the next chunk only while the session is busy.
        if chunk.capacity() <= 2 * CHUNK_BYTES {
            self.buffer = chunk;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes what is left and seals the manifest with the node's audit key. Returns what the
    /// chain's `session_ended` event anchors.
    pub fn seal(mut self, key: &PrivateKey) -> Result<SealedRecording, RecordingError> {
        let rest_output = std::mem::take(&mut self.pending_output);
        let rest_input = std::mem::take(&mut self.pending_input);
        self.event("o", &String::from_utf8_lossy(&rest_output))?;
        self.event("i", &String::from_utf8_lossy(&rest_input))?;
        self.flush_chunk()?;
        self.cast.sync_all().map_err(|err| self.io_error(err))?;
        let seal = sign_seal(
            &self.session.to_string(),
            self.chunks,
            self.offset,
            &self.chain,
            true,
            key,
        )?;
        self.write_manifest(&seal)?;
        self.manifest.sync_all().map_err(|err| self.io_error(err))?;
        let manifest = self.cast_path.with_extension("manifest");
        SealedRecording::read(&manifest, self.session, true)
    }

    fn write_manifest(&mut self, line: &ManifestLine) -> Result<(), RecordingError> {
        let mut text =
            serde_json::to_string(line).map_err(|err| self.io_error(std::io::Error::other(err)))?;
        text.push('\n');
        self.manifest
            .write_all(text.as_bytes())
            .map_err(|err| self.io_error(err))
    }

    fn io_error(&self, source: std::io::Error) -> RecordingError {
        RecordingError::Io {
            path: self.cast_path.display().to_string(),
            source,
        }
    }
}

/// A sealed recording, as the audit chain anchors it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecording {
    pub session: Uuid,
    /// SHA-256 (hex) of the sealed manifest file: it covers every chunk's hash, the running
    /// chain and the seal, so one hash pins the whole recording.
    pub manifest_sha256: String,
    pub complete: bool,
}

impl SealedRecording {
    fn read(manifest: &Path, session: Uuid, complete: bool) -> Result<Self, RecordingError> {
        let manifest_sha256 = manifest_sha256(manifest).map_err(|source| RecordingError::Io {
            path: manifest.display().to_string(),
            source,
        })?;
        Ok(Self {
            session,
            manifest_sha256,
            complete,
        })
    }

    /// What the `session_ended` event holds.
    pub fn anchor(&self) -> rampart_core::audit::RecordingAnchor {
        rampart_core::audit::RecordingAnchor {
            id: self.session.to_string(),
            manifest_sha256: self.manifest_sha256.clone(),
            complete: self.complete,
        }
    }
}

/// The SHA-256 (hex) of a manifest file as it is on disk.
pub fn manifest_sha256(path: &Path) -> std::io::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(path)?)))
}

/// Seconds since the start, written with microsecond precision.
struct Seconds(f64);

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64((self.0 * 1_000_000.0).round() / 1_000_000.0)
    }
}

/// Turns `pending` + `data` into text, keeping an incomplete trailing character for later.
/// Invalid bytes become U+FFFD (a terminal would show them as garbage anyway).
fn take_utf8(pending: &mut Vec<u8>, data: &[u8]) -> String {
    pending.extend_from_slice(data);
    let keep = incomplete_tail(pending);
    let split = pending.len().saturating_sub(keep);
    let tail = pending.split_off(split);
    let text = String::from_utf8_lossy(pending).into_owned();
    *pending = tail;
    text
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is not complete yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=3usize.min(bytes.len()) {
        let Some(&byte) = bytes.get(bytes.len() - back) else {
            break;
        };
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let needed = match byte {
            0b1100_0000..=0b1101_1111 => 2,
            0b1110_0000..=0b1110_1111 => 3,
            0b1111_0000..=0b1111_0111 => 4,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

pub(crate) fn sign_seal(
    session: &str,
    chunks: u64,
    length: u64,
    chain: &str,
    complete: bool,
    key: &PrivateKey,
) -> Result<ManifestLine, RecordingError> {
    let message = seal_message(session, chunks, length, chain, complete);
    let signature = key
        .sign(SEAL_NAMESPACE, HashAlg::Sha512, message.as_bytes())
        .and_then(|sig| sig.to_pem(LineEnding::LF))
        .map_err(|err| RecordingError::Sign(err.to_string()))?;
    Ok(ManifestLine::Seal {
        session: session.to_owned(),
        chunks,
        length,
        chain: chain.to_owned(),
        complete,
        signature,
    })
}

/// Seals recordings left unsealed by a crash: the cast file is cut back to its last complete
/// chunk and the manifest sealed as incomplete. Returns the recordings it sealed.
pub fn seal_interrupted(
    dir: &Path,
    key: &PrivateKey,
) -> Result<Vec<SealedRecording>, RecordingError> {
    let io = |path: &Path, source: std::io::Error| RecordingError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut sealed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(sealed),
        Err(err) => return Err(io(dir, err)),
    };
    for entry in entries {
        let path = entry.map_err(|err| io(dir, err))?.path();
        let Some(session) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".manifest"))
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(|err| io(&path, err))?;
        let mut lines: Vec<ManifestLine> = Vec::new();
        for line in text.lines() {
            // A torn last line (crash mid-write) is simply not part of the record.
            match serde_json::from_str(line) {
                Ok(parsed) => lines.push(parsed),
                Err(_) => break,
            }
        }
        if lines.iter().any(|l| matches!(l, ManifestLine::Seal { .. })) {
            continue;
        }
        let id = session.to_string();
        let (mut chunks, mut length, mut chain) = (0, 0, chain_start(&id));
        for line in &lines {
            if let ManifestLine::Chunk {
                index,
                offset,
                length: l,
                chain: c,
                ..
            } = line
            {
                (chunks, length, chain) = (index + 1, offset + l, c.clone());
            }
        }
        let cast = cast_path(dir, session);
        let file = OpenOptions::new()
            .write(true)
            .open(&cast)
            .map_err(|err| io(&cast, err))?;
        file.set_len(length).map_err(|err| io(&cast, err))?;
        file.sync_all().map_err(|err| io(&cast, err))?;
        // Rewrite the manifest without a torn line, then seal it.
        let mut rewritten = String::new();
        for line in &lines {
            rewritten.push_str(
                &serde_json::to_string(line)
                    .map_err(|err| io(&path, std::io::Error::other(err)))?,
            );
            rewritten.push('\n');
        }
        let seal = sign_seal(&id, chunks, length, &chain, false, key)?;
        rewritten.push_str(
            &serde_json::to_string(&seal).map_err(|err| io(&path, std::io::Error::other(err)))?,
        );
        rewritten.push('\n');
        std::fs::write(&path, &rewritten).map_err(|err| io(&path, err))?;
        sealed.push(SealedRecording {
            session,
            manifest_sha256: hex(&Sha256::digest(rewritten.as_bytes())),
            complete: false,
        });
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_events_stays_whole() {
        let mut pending = Vec::new();
        let snowman = "☃".as_bytes();
        assert_eq!(take_utf8(&mut pending, &snowman[..1]), "");
        assert_eq!(take_utf8(&mut pending, &snowman[1..]), "☃");
        assert_eq!(take_utf8(&mut pending, b"a\xffb"), "a\u{fffd}b");
        assert!(pending.is_empty());
        assert_eq!(take_utf8(&mut pending, "é".as_bytes()), "é");
    }
}
