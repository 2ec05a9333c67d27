//! Checking a recording against its manifest and seal, naming exactly what is wrong.
//!
//! The files are read chunk by chunk (never whole), so a recording of a bulk transfer is
//! checked in bounded memory.

use crate::SEAL_NAMESPACE;
use crate::recording::{
    ChunkRef, FORMAT, FORMAT_V1, ManifestLine, RecordedFile, SealFacts, StreamTotals, cast_path,
    chain_next, chain_start, hash_next, manifest_path, raw_path, seal_message,
};
use ssh_key::{PublicKey, SshSig};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use uuid::Uuid;

/// A recording that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingReport {
    pub session: Uuid,
    pub chunks: u64,
    /// Bytes of the cast and the raw stream file together.
    pub length: u64,
    /// False when the session was cut short (a crash) and sealed at the next start.
    pub complete: bool,
    /// Bytes written before a crash and hashed only when sealed at the next start.
    pub recovered: u64,
    /// The deployment's cap on each direction of a command's recording (none: all of it).
    pub cap: Option<u64>,
    /// A capped recording's full streams, as sealed (absent after a crash).
    pub streams: Option<StreamTotals>,
    /// SHA-256 (hex) of the manifest file: what the chain's `session_ended` event anchors.
    pub manifest_sha256: String,
}

impl RecordingReport {
    /// Whether some of a direction was counted and hashed but not kept (or, after a crash,
    /// may have been).
    pub fn capped(&self) -> bool {
        match (self.cap, &self.streams) {
            (None, _) => false,
            (Some(cap), Some(streams)) => streams.input_bytes > cap || streams.output_bytes > cap,
            (Some(_), None) => true,
        }
    }

    /// One line for `audit verify`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} chunks, {} bytes, ", self.chunks, self.length);
        if self.complete {
            text.push_str("sealed");
        } else {
            text.push_str("sealed as incomplete (the node stopped during the session)");
            if self.recovered > 0 {
                text.push_str(&format!(
                    "; its last {} bytes were written before the stop and hashed at restart",
                    self.recovered
                ));
            }
        }
        if let Some(cap) = self.cap.filter(|_| self.capped()) {
            text.push_str(&format!("; capped at {cap} bytes each way"));
            if let Some(streams) = &self.streams {
                text.push_str(&format!(
                    " (input {} bytes, SHA-256 {}; output {} bytes, SHA-256 {})",
                    streams.input_bytes,
                    streams.input_sha256,
                    streams.output_bytes,
                    streams.output_sha256
                ));
            }
        }
        text
    }
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
    #[error(
        "is not the recording the chain holds (event {event}): the manifest's SHA-256 is \
         {found}, the chain's {expected}: replaced or edited"
    )]
    NotAnchored {
        event: i64,
        found: String,
        expected: String,
    },
    #[error("the chain holds no recording for this session (its end, event {0}, names none)")]
    NoAnchor(i64),
}

/// One of the recording's data files, read in order.
struct DataFile {
    path: String,
    reader: Option<BufReader<File>>,
    size: u64,
    /// Where the next chunk must start.
    next: u64,
}

impl DataFile {
    fn open(path: &Path) -> Result<Self, RecordingProblem> {
        let shown = path.display().to_string();
        let (reader, size) = match File::open(path) {
            Ok(file) => {
                let size = file
                    .metadata()
                    .map_err(|_| RecordingProblem::Missing(shown.clone()))?
                    .len();
                (Some(BufReader::new(file)), size)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(_) => return Err(RecordingProblem::Missing(shown)),
        };
        Ok(Self {
            path: shown,
            reader,
            size,
            next: 0,
        })
    }
}

/// Verifies the recording of `session` and that it is the one the hash chain anchors: what
/// replay, export, the API and `audit verify` all use before trusting a recording. A recording
/// can be validly sealed by the node's key and still not be the session's (another session's
/// files re-sealed under its id by root on the node); only the chain's hash tells.
pub fn verify_anchored_recording(
    dir: &Path,
    session: Uuid,
    audit_key: &PublicKey,
    chain: &rampart_core::audit::ChainRecording,
) -> Result<RecordingReport, RecordingProblem> {
    let report = verify_recording(dir, session, audit_key)?;
    check_anchor(&report, chain)?;
    Ok(report)
}

/// Whether a verified recording is the one the chain anchors. An unfinished session has no
/// anchor yet; an ended one must name exactly this recording.
pub fn check_anchor(
    report: &RecordingReport,
    chain: &rampart_core::audit::ChainRecording,
) -> Result<(), RecordingProblem> {
    use rampart_core::audit::ChainRecording;
    match chain {
        ChainRecording::Unfinished => Ok(()),
        ChainRecording::Ended {
            event,
            recording: None,
        } => Err(RecordingProblem::NoAnchor(*event)),
        ChainRecording::Ended {
            event,
            recording: Some(anchor),
        } => {
            if anchor.manifest_sha256 == report.manifest_sha256
                && anchor.id == report.session.to_string()
            {
                Ok(())
            } else {
                Err(RecordingProblem::NotAnchored {
                    event: *event,
                    found: report.manifest_sha256.clone(),
                    expected: anchor.manifest_sha256.clone(),
                })
            }
        }
    }
}

/// Verifies the recording of `session` in `dir` with the node's audit public key (its own
/// manifest and seal only: see [`verify_anchored_recording`]).
pub fn verify_recording(
    dir: &Path,
    session: Uuid,
    audit_key: &PublicKey,
) -> Result<RecordingReport, RecordingProblem> {
    let manifest_file = manifest_path(dir, session);
    let manifest = std::fs::read_to_string(&manifest_file)
        .map_err(|_| RecordingProblem::Missing(manifest_file.display().to_string()))?;
    let mut cast = DataFile::open(&cast_path(dir, session))?;
    if cast.reader.is_none() {
        return Err(RecordingProblem::Missing(cast.path));
    }
    let mut raw = DataFile::open(&raw_path(dir, session))?;
    let id = session.to_string();

    let mut format = FORMAT_V1.to_owned();
    let mut cap = None;
    let mut chain = chain_start(&format, &id, cap);
    let mut next_index = 0u64;
    let mut recovered = 0u64;
    let mut seal = None;
    for (number, line) in manifest.lines().enumerate() {
        let parsed: ManifestLine = serde_json::from_str(line)
            .map_err(|_| RecordingProblem::ManifestCorrupt(number + 1))?;
        if seal.is_some() {
            return Err(RecordingProblem::ManifestCorrupt(number + 1));
        }
        match parsed {
            ManifestLine::Start {
                session: found,
                format: found_format,
                cap: found_cap,
            } => {
                if number != 0 || (found_format != FORMAT && found_format != FORMAT_V1) {
                    return Err(RecordingProblem::ManifestCorrupt(number + 1));
                }
                if found != id {
                    return Err(RecordingProblem::WrongSession {
                        expected: id,
                        found,
                    });
                }
                format = found_format;
                cap = found_cap;
                chain = chain_start(&format, &id, cap);
            }
            ManifestLine::Chunk {
                index,
                file,
                offset,
                length,
                sha256,
                chain: claimed,
                recovered: was_recovered,
            } => {
                if format == FORMAT_V1 && (file != RecordedFile::Cast || was_recovered) {
                    return Err(RecordingProblem::ManifestCorrupt(number + 1));
                }
                let data = match file {
                    RecordedFile::Cast => &mut cast,
                    RecordedFile::Raw => &mut raw,
                };
                if index != next_index || offset != data.next {
                    return Err(RecordingProblem::ChunkOutOfOrder {
                        index,
                        expected: next_index,
                        offset: data.next,
                    });
                }
                let end = offset.saturating_add(length);
                let truncated = RecordingProblem::Truncated {
                    expected: end,
                    actual: data.size,
                };
                let Some(reader) = data.reader.as_mut() else {
                    return Err(RecordingProblem::Missing(data.path.clone()));
                };
                let actual = hash_next(reader, length)
                    .map_err(|_| truncated.clone())?
                    .ok_or(truncated)?;
                if actual != sha256 {
                    return Err(RecordingProblem::ChunkAltered { index, offset, end });
                }
                let expected_chain = chain_next(
                    &format,
                    &chain,
                    ChunkRef {
                        file,
                        index,
                        offset,
                        length,
                        sha256: &sha256,
                        recovered: was_recovered,
                    },
                );
                if expected_chain != claimed {
                    return Err(RecordingProblem::ChainBroken(index));
                }
                if was_recovered {
                    recovered += length;
                }
                chain = expected_chain;
                next_index += 1;
                data.next = end;
            }
            ManifestLine::Seal {
                session: found,
                chunks,
                length,
                raw_length,
                chain: sealed_chain,
                complete,
                streams,
                signature,
            } => {
                if found != id {
                    return Err(RecordingProblem::WrongSession {
                        expected: id,
                        found,
                    });
                }
                if chunks != next_index
                    || length != cast.next
                    || raw_length != raw.next
                    || sealed_chain != chain
                    || (format == FORMAT_V1 && streams.is_some())
                {
                    return Err(RecordingProblem::SealMismatch { chunks, length });
                }
                let message = seal_message(&SealFacts {
                    format: &format,
                    session: &id,
                    chunks,
                    length,
                    raw_length,
                    chain: &chain,
                    complete,
                    streams: streams.as_ref(),
                });
                let signature = SshSig::from_pem(signature.as_bytes())
                    .map_err(|_| RecordingProblem::BadSignature)?;
                audit_key
                    .verify(SEAL_NAMESPACE, message.as_bytes(), &signature)
                    .map_err(|_| RecordingProblem::BadSignature)?;
                seal = Some((complete, streams));
            }
        }
    }
    let (complete, streams) = seal.ok_or(RecordingProblem::NotSealed)?;
    for data in [&cast, &raw] {
        if data.size > data.next {
            return Err(RecordingProblem::TrailingData {
                extra: data.size - data.next,
            });
        }
    }
    Ok(RecordingReport {
        session,
        chunks: next_index,
        length: cast.next + raw.next,
        complete,
        recovered,
        cap,
        streams,
        manifest_sha256: crate::hex(&<sha2::Sha256 as sha2::Digest>::digest(manifest.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{CastHeader, Recorder, RecordingOptions, raw_path, seal_interrupted};
    use sha2::{Digest, Sha256};
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

        let sealed = seal_interrupted(dir, &key).unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].session, session);
        let report = check(dir, session, &key).unwrap();
        assert!(!report.complete);
        assert!(report.chunks >= 2);
        assert!(
            seal_interrupted(dir, &key).unwrap().is_empty(),
            "sealing is done once"
        );
    }

    /// A sealed command recording: raw streams, optionally capped; returns it and its output.
    fn recorded_command(dir: &Path, key: &PrivateKey, cap: Option<u64>) -> (Uuid, Vec<u8>) {
        let session = Uuid::now_v7();
        let header = CastHeader::new(80, 24, None, Some("bash -s".into()), "t".into());
        let options = RecordingOptions {
            raw_streams: true,
            cap,
        };
        let mut recorder = Recorder::create_with(dir, session, &header, options).unwrap();
        let mut output = Vec::new();
        for i in 0..40_000 {
            let line = format!("output line {i}\n");
            recorder.output(line.as_bytes()).unwrap();
            output.extend_from_slice(line.as_bytes());
        }
        recorder.input(b"echo HIDDEN\n").unwrap();
        recorder.seal(key).unwrap();
        (session, output)
    }

    #[test]
    fn a_command_recording_keeps_its_raw_streams_whole_and_names_tampering() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let key = node_key(5);
        let (session, output) = recorded_command(dir, &key, None);
        let report = check(dir, session, &key).unwrap();
        assert!(report.complete && !report.capped() && report.cap.is_none());
        assert!(report.length > output.len() as u64);
        let (_, events) = crate::read_cast(dir, session).unwrap();
        let shown: String = events
            .iter()
            .filter(|e| e.1 == "o")
            .map(|e| e.2.as_str())
            .collect();
        assert_eq!(shown.as_bytes(), &output[..]);
        assert!(events.iter().any(|e| e.1 == "i" && e.2 == "echo HIDDEN\n"));

        let raw = raw_path(dir, session);
        let original = std::fs::read(&raw).unwrap();
        let mut flipped = original.clone();
        flipped[300_000] ^= 1;
        std::fs::write(&raw, &flipped).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::ChunkAltered { .. })
        ));
        std::fs::write(&raw, &original[..original.len() - 5]).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::Truncated { .. })
        ));
        let mut longer = original.clone();
        longer.extend_from_slice(b"o-injected");
        std::fs::write(&raw, &longer).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::TrailingData { extra: 10 })
        ));
        std::fs::remove_file(&raw).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::Missing(_))
        ));
        std::fs::write(&raw, &original).unwrap();
        assert!(check(dir, session, &key).is_ok());
    }

    #[test]
    fn a_capped_recording_states_its_cap_and_hashes_the_whole_streams() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let key = node_key(6);
        let (session, output) = recorded_command(dir, &key, Some(1000));
        let report = check(dir, session, &key).unwrap();
        assert!(report.capped(), "{report:?}");
        assert_eq!(report.cap, Some(1000));
        let streams = report.streams.clone().unwrap();
        assert_eq!(streams.output_bytes, output.len() as u64);
        assert_eq!(streams.output_sha256, crate::hex(&Sha256::digest(&output)));
        assert_eq!(streams.input_bytes, 12);
        assert!(report.describe().contains("capped at 1000 bytes each way"));
        let (_, events) = crate::read_cast(dir, session).unwrap();
        let shown: usize = events
            .iter()
            .filter(|e| e.1 == "o")
            .map(|e| e.2.len())
            .sum();
        assert_eq!(shown, 1000);

        // The cap and the totals cannot be edited away.
        let manifest = manifest_path(dir, session);
        let original = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, original.replacen(",\"cap\":1000", "", 1)).unwrap();
        assert!(matches!(
            check(dir, session, &key),
            Err(RecordingProblem::ChainBroken(0))
        ));
        let total = format!("\"output_bytes\":{}", output.len());
        std::fs::write(
            &manifest,
            original.replacen(&total, "\"output_bytes\":1000", 1),
        )
        .unwrap();
        assert_eq!(
            check(dir, session, &key),
            Err(RecordingProblem::BadSignature)
        );
    }

    #[test]
    fn an_interrupted_recording_keeps_what_was_written_after_its_last_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let key = node_key(7);
        let session = Uuid::now_v7();
        let header = CastHeader::new(80, 24, None, None, "t".into());
        let options = RecordingOptions {
            raw_streams: true,
            cap: None,
        };
        let mut recorder = Recorder::create_with(dir, session, &header, options).unwrap();
        recorder.output(b"shown before the crash").unwrap();
        recorder.marker("a marker").unwrap();
        // The process dies before any checkpoint: the bytes are in the files, not in the
        // manifest.
        drop(recorder);
        let sealed = seal_interrupted(dir, &key).unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].session, session);
        let report = check(dir, session, &key).unwrap();
        assert!(!report.complete && report.recovered > 0, "{report:?}");
        assert!(report.describe().contains("hashed at restart"));
        let (_, events) = crate::read_cast(dir, session).unwrap();
        assert!(events.iter().any(|e| e.2 == "shown before the crash"));
        assert!(events.iter().any(|e| e.2 == "a marker"));
    }
}
