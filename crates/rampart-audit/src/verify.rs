//! Checking a recording against its manifest and seal, naming exactly what is wrong.

use crate::recording::{
    FORMAT, ManifestLine, cast_path, chain_next, chain_start, manifest_path, seal_message,
};
use crate::{SEAL_NAMESPACE, hex};
use sha2::{Digest, Sha256};
use ssh_key::{PublicKey, SshSig};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use uuid::Uuid;

/// A recording that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingReport {
    pub session: Uuid,
    pub chunks: u64,
    pub length: u64,
    /// False when the session was cut short (a crash) and sealed at the next start.
    pub complete: bool,
}

/// What is wrong with a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingProblem {
    #[error("recording {0} is missing")]
    Missing(String),
    #[error("manifest line {0} is unreadable")]
    ManifestCorrupt(usize),
    #[error("the manifest belongs to session {found}, not {expected} (swapped file)")]
    WrongSession { expected: String, found: String },
    #[error(
        "chunk {index} is missing or out of order (expected chunk {expected} at byte {offset})"
    )]
    ChunkOutOfOrder {
        index: u64,
        expected: u64,
        offset: u64,
    },
    #[error("chunk {index} (bytes {offset}..{end}) was altered: its SHA-256 does not match")]
    ChunkAltered { index: u64, offset: u64, end: u64 },
    #[error("the hash chain breaks at chunk {0}")]
    ChainBroken(u64),
    #[error("the recording is truncated: {actual} bytes where the manifest records {expected}")]
    Truncated { expected: u64, actual: u64 },
    #[error("the recording has {extra} bytes after its last recorded chunk")]
    TrailingData { extra: u64 },
    #[error("the recording is not sealed")]
    NotSealed,
    #[error("the seal does not match the chunks (chunks {chunks}, length {length})")]
    SealMismatch { chunks: u64, length: u64 },
    #[error("the seal's signature is not valid for this node's audit key")]
    BadSignature,
}

/// Verifies the recording of `session` in `dir` with the node's audit public key.
pub fn verify_recording(
    dir: &Path,
    session: Uuid,
    audit_key: &PublicKey,
) -> Result<RecordingReport, RecordingProblem> {
    let manifest_file = manifest_path(dir, session);
    let cast_file = cast_path(dir, session);
    // Both files are read as they are checked, never whole: memory stays a line and a buffer
    // whatever size the files (or the lengths a tampered manifest claims) have.
    let missing = |path: &Path| RecordingProblem::Missing(path.display().to_string());
    let mut manifest =
        BufReader::new(File::open(&manifest_file).map_err(|_| missing(&manifest_file))?);
    let mut cast = File::open(&cast_file).map_err(|_| missing(&cast_file))?;
    let cast_len = cast.metadata().map_err(|_| missing(&cast_file))?.len();
    let id = session.to_string();

    let mut chain = chain_start(&id);
    let mut next_index = 0u64;
    let mut next_offset = 0u64;
    let mut seal = None;
    let mut line = String::new();
    let mut number = 0usize;
    while next_manifest_line(&mut manifest, &mut line)
        .map_err(|_| RecordingProblem::ManifestCorrupt(number + 1))?
    {
        let parsed: ManifestLine = serde_json::from_str(&line)
            .map_err(|_| RecordingProblem::ManifestCorrupt(number + 1))?;
        if seal.is_some() {
            return Err(RecordingProblem::ManifestCorrupt(number + 1));
        }
        match parsed {
            ManifestLine::Start {
                session: found,
                format,
            } => {
                if number != 0 || format != FORMAT {
                    return Err(RecordingProblem::ManifestCorrupt(number + 1));
                }
                if found != id {
                    return Err(RecordingProblem::WrongSession {
                        expected: id,
                        found,
                    });
                }
            }
            ManifestLine::Chunk {
                index,
                offset,
                length,
                sha256,
                chain: claimed,
            } => {
                if index != next_index || offset != next_offset {
                    return Err(RecordingProblem::ChunkOutOfOrder {
                        index,
                        expected: next_index,
                        offset: next_offset,
                    });
                }
                let end = offset.saturating_add(length);
                let truncated = RecordingProblem::Truncated {
                    expected: end,
                    actual: cast_len,
                };
                if end > cast_len {
                    return Err(truncated);
                }
                // Chunks are contiguous from byte 0, so the file is read in order.
                let digest = hash_next(&mut cast, length).map_err(|_| truncated)?;
                if hex(&digest) != sha256 {
                    return Err(RecordingProblem::ChunkAltered { index, offset, end });
                }
                let expected_chain = chain_next(&chain, index, offset, length, &sha256);
                if expected_chain != claimed {
                    return Err(RecordingProblem::ChainBroken(index));
                }
                chain = expected_chain;
                next_index += 1;
                next_offset = end;
            }
            ManifestLine::Seal {
                session: found,
                chunks,
                length,
                chain: sealed_chain,
                complete,
                signature,
            } => {
                if found != id {
                    return Err(RecordingProblem::WrongSession {
                        expected: id,
                        found,
                    });
                }
                if chunks != next_index || length != next_offset || sealed_chain != chain {
                    return Err(RecordingProblem::SealMismatch { chunks, length });
                }
                let message = seal_message(&id, chunks, length, &chain, complete);
                let signature = SshSig::from_pem(signature.as_bytes())
                    .map_err(|_| RecordingProblem::BadSignature)?;
                audit_key
                    .verify(SEAL_NAMESPACE, message.as_bytes(), &signature)
                    .map_err(|_| RecordingProblem::BadSignature)?;
                seal = Some(complete);
            }
        }
        number += 1;
    }
    let complete = seal.ok_or(RecordingProblem::NotSealed)?;
    let actual = cast_len;
    if actual > next_offset {
        return Err(RecordingProblem::TrailingData {
            extra: actual - next_offset,
        });
    }
    Ok(RecordingReport {
        session,
        chunks: next_index,
        length: next_offset,
        complete,
    })
}

/// The longest manifest line read (a seal with its signature is well under 1 KiB).
const MAX_MANIFEST_LINE_BYTES: u64 = 16 * 1024;

/// Reads the next manifest line into `line` without its line ending; `false` at the end.
fn next_manifest_line(reader: &mut impl BufRead, line: &mut String) -> std::io::Result<bool> {
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_MANIFEST_LINE_BYTES + 1)
        .read_line(line)?;
    if read == 0 {
        return Ok(false);
    }
    if line.len() as u64 > MAX_MANIFEST_LINE_BYTES {
        return Err(std::io::Error::other("manifest line too long"));
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(true)
}

/// The SHA-256 of the next `length` bytes of `file`, read through a small buffer.
fn hash_next(file: &mut impl Read, length: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left).map_or(buffer.len(), |left| left.min(buffer.len()));
        let piece = buffer.get_mut(..want).unwrap_or_default();
        file.read_exact(piece)?;
        hasher.update(&*piece);
        left -= want as u64;
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{CastHeader, Recorder, seal_interrupted};
    use ssh_key::PrivateKey;
    use ssh_key::private::Ed25519Keypair;

    fn node_key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    /// A sealed recording of several chunks.
    fn recorded(dir: &Path, key: &PrivateKey) -> Uuid {
        let session = Uuid::now_v7();
        let header = CastHeader::new(80, 24, Some("xterm"), None, "test".into());
        let mut recorder = Recorder::create(dir, session, &header).unwrap();
        for i in 0..3000 {
            recorder
                .output(
                    format!("line {i} of output with some padding to fill chunks\r\n").as_bytes(),
                )
                .unwrap();
            recorder.input(b"x").unwrap();
        }
        recorder.resize(100, 30).unwrap();
        recorder.seal(key).unwrap();
        session
    }

    fn check(
        dir: &Path,
        session: Uuid,
        key: &PrivateKey,
    ) -> Result<RecordingReport, RecordingProblem> {
        verify_recording(dir, session, key.public_key())
    }

    #[test]
    fn an_untouched_recording_verifies_and_parses_as_asciicast() {
        let tmp = tempfile::tempdir().unwrap();
        let key = node_key(1);
        let session = recorded(tmp.path(), &key);
        let report = check(tmp.path(), session, &key).unwrap();
        assert!(report.complete && report.chunks > 3, "{report:?}");
        let cast = std::fs::read_to_string(cast_path(tmp.path(), session)).unwrap();
        let mut lines = cast.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        for line in lines {
            let event: (f64, String, String) = serde_json::from_str(line).unwrap();
            assert!(["o", "i", "r", "m"].contains(&event.1.as_str()));
        }
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let key = node_key(2);
        let cast_of = |s| cast_path(dir, s);
        let manifest_of = |s| manifest_path(dir, s);

        // A flipped byte.
        let session = recorded(dir, &key);
        let mut bytes = std::fs::read(cast_of(session)).unwrap();
        bytes[70_000] ^= 1;
        std::fs::write(cast_of(session), &bytes).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::ChunkAltered { index: 2, .. })
        ));

        // A truncated tail.
        let session = recorded(dir, &key);
        let bytes = std::fs::read(cast_of(session)).unwrap();
        std::fs::write(cast_of(session), &bytes[..bytes.len() - 10]).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::Truncated { .. })
        ));

        // Bytes appended after the seal.
        let session = recorded(dir, &key);
        let mut bytes = std::fs::read(cast_of(session)).unwrap();
        bytes.extend_from_slice(b"[1.0, \"o\", \"injected\"]\n");
        std::fs::write(cast_of(session), &bytes).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::TrailingData { .. })
        ));

        // A dropped chunk (its manifest line removed) and two chunks reordered.
        let session = recorded(dir, &key);
        let manifest = std::fs::read_to_string(manifest_of(session)).unwrap();
        let lines: Vec<&str> = manifest.lines().collect();
        let dropped: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, l)| *l)
            .collect();
        std::fs::write(manifest_of(session), dropped.join("\n") + "\n").unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::ChunkOutOfOrder { .. })
        ));
        let mut reordered = lines.clone();
        reordered.swap(2, 3);
        std::fs::write(manifest_of(session), reordered.join("\n") + "\n").unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::ChunkOutOfOrder { .. })
        ));

        // A recording swapped in from another session.
        let first = recorded(dir, &key);
        let second = recorded(dir, &key);
        std::fs::copy(cast_of(first), cast_of(second)).unwrap();
        std::fs::copy(manifest_of(first), manifest_of(second)).unwrap();
        assert!(matches!(
            check(dir, second, &key),
            Err(RecordingProblem::WrongSession { .. })
        ));

        // A seal forged with another key.
        let session = recorded(dir, &node_key(3));
        assert_eq!(
            check(dir, session, &key),
            Err(RecordingProblem::BadSignature)
        );

        // A missing seal, and missing files.
        let session = Uuid::now_v7();
        let header = CastHeader::new(80, 24, None, None, "t".into());
        let mut recorder = Recorder::create(dir, session, &header).unwrap();
        recorder.output(b"unsealed").unwrap();
        recorder.flush_chunk().unwrap();
        drop(recorder);
        assert_eq!(check(dir, session, &key), Err(RecordingProblem::NotSealed));
        assert!(matches!(
            check(dir, Uuid::now_v7(), &key),
            Err(RecordingProblem::Missing(_))
        ));
    }

    #[test]
    fn an_interrupted_recording_is_sealed_incomplete_and_verifies_to_its_last_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let key = node_key(4);
        let session = Uuid::now_v7();
        let header = CastHeader::new(80, 24, None, None, "t".into());
        let mut recorder = Recorder::create(dir, session, &header).unwrap();
        for i in 0..5000 {
            recorder
                .output(format!("output {i}\r\n").as_bytes())
                .unwrap();
        }
        // The process dies: buffered events are lost, and half a chunk was written.
        drop(recorder);
        let mut cast = std::fs::OpenOptions::new()
            .append(true)
            .open(cast_path(dir, session))
            .unwrap();
        std::io::Write::write_all(&mut cast, b"[9.9, \"o\", \"half a chu").unwrap();
        let mut manifest = std::fs::OpenOptions::new()
            .append(true)
            .open(manifest_path(dir, session))
            .unwrap();
        std::io::Write::write_all(&mut manifest, b"{\"type\":\"chunk\",\"ind").unwrap();
        assert!(check(dir, session, &key).is_err());

        assert_eq!(seal_interrupted(dir, &key).unwrap(), vec![session]);
        let report = check(dir, session, &key).unwrap();
        assert!(!report.complete);
        assert!(report.chunks >= 2);
        assert!(
            seal_interrupted(dir, &key).unwrap().is_empty(),
            "sealing is done once"
        );
    }
}
