//! Writing a recording: asciicast v2 events, and for commands the raw byte streams beside them,
//! written to the files as they happen and hashed in chunks into the manifest.
//!
//! Durability: every event is written (`write(2)`) before the call returns, so the relay passes
//! nothing on that is not in the file; at each checkpoint (the live recorder makes one at least
//! every second) the open chunks are closed into the manifest and the files are fsynced. A crash
//! therefore loses nothing the page cache kept (`kill -9`), and at most the last checkpoint
//! interval if the machine itself stops.

use crate::{SEAL_NAMESPACE, hex};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// A chunk of the cast file is closed into the manifest once it holds this many bytes (or at a
/// checkpoint).
const CHUNK_BYTES: u64 = 64 * 1024;
/// A chunk of the raw stream file: bigger, since bulk output goes there.
const RAW_CHUNK_BYTES: u64 = 1024 * 1024;
/// A raw frame's header: stream tag (1 byte), microseconds since the start (8), length (4).
pub(crate) const FRAME_HEADER: usize = 13;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot write the recording {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot sign the recording: {0}")]
    Sign(String),
    /// A write failed before; the recording takes nothing more (the session must end).
    #[error("the recording failed earlier: {0}")]
    Failed(String),
    /// The recording's writer is gone (sealed, or stopped by a failure).
    #[error("the recording writer stopped")]
    Stopped,
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

/// Which file a chunk belongs to.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordedFile {
    /// `<session>.cast`: the asciicast (header, terminal events, markers).
    #[default]
    Cast,
    /// `<session>.raw`: a command's input and output as raw frames.
    Raw,
}

impl RecordedFile {
    fn is_cast(&self) -> bool {
        *self == RecordedFile::Cast
    }

    fn name(self) -> &'static str {
        match self {
            RecordedFile::Cast => "cast",
            RecordedFile::Raw => "raw",
        }
    }
}

/// The whole of each direction of a capped recording: what was sent, not only what was kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamTotals {
    pub input_bytes: u64,
    pub input_sha256: String,
    pub output_bytes: u64,
    pub output_sha256: String,
}

impl StreamTotals {
    fn message(&self) -> String {
        format!(
            "{} {} {} {}",
            self.input_bytes, self.input_sha256, self.output_bytes, self.output_sha256
        )
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One line of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManifestLine {
    Start {
        session: String,
        format: String,
        /// Bytes of each direction a command's recording keeps (none: everything).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cap: Option<u64>,
    },
    Chunk {
        index: u64,
        #[serde(default, skip_serializing_if = "RecordedFile::is_cast")]
        file: RecordedFile,
        offset: u64,
        length: u64,
        sha256: String,
        chain: String,
        /// Written before a crash and hashed only when the recording was sealed at restart.
        #[serde(default, skip_serializing_if = "is_false")]
        recovered: bool,
    },
    Seal {
        session: String,
        chunks: u64,
        /// Bytes of the cast file.
        length: u64,
        /// Bytes of the raw stream file.
        #[serde(default, skip_serializing_if = "is_zero")]
        raw_length: u64,
        chain: String,
        complete: bool,
        /// A capped recording's full streams (a crash loses them: then absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streams: Option<StreamTotals>,
        signature: String,
    },
}

/// The first format: one cast file, chunks chained without naming their file.
pub(crate) const FORMAT_V1: &str = "rampart-recording-v1";
/// The current format: chunks of the cast and of the raw stream file in one chain, the cap in
/// the chain's start, stream totals in the seal.
pub(crate) const FORMAT: &str = "rampart-recording-v2";

pub(crate) fn chain_start(format: &str, session: &str, cap: Option<u64>) -> String {
    let mut hash = Sha256::new().chain_update(format).chain_update("\n");
    hash.update(session);
    if format != FORMAT_V1 {
        hash.update(format!(
            "\n{}",
            cap.map_or("-".to_owned(), |c| c.to_string())
        ));
    }
    hex(&hash.finalize())
}

/// A chunk as the chain covers it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkRef<'a> {
    pub file: RecordedFile,
    pub index: u64,
    pub offset: u64,
    pub length: u64,
    pub sha256: &'a str,
    pub recovered: bool,
}

pub(crate) fn chain_next(format: &str, previous: &str, chunk: ChunkRef<'_>) -> String {
    let ChunkRef {
        file,
        index,
        offset,
        length,
        sha256,
        recovered,
    } = chunk;
    let text = if format == FORMAT_V1 {
        format!("{previous}\n{index}\n{offset}\n{length}\n{sha256}")
    } else {
        format!(
            "{previous}\n{}\n{index}\n{offset}\n{length}\n{sha256}\n{recovered}",
            file.name()
        )
    };
    hex(&Sha256::digest(text.as_bytes()))
}

/// What a seal covers.
#[derive(Debug, Clone)]
pub(crate) struct SealFacts<'a> {
    pub format: &'a str,
    pub session: &'a str,
    pub chunks: u64,
    pub length: u64,
    pub raw_length: u64,
    pub chain: &'a str,
    pub complete: bool,
    pub streams: Option<&'a StreamTotals>,
}

/// The message a seal's signature covers.
pub(crate) fn seal_message(facts: &SealFacts<'_>) -> String {
    let SealFacts {
        format,
        session,
        chunks,
        length,
        raw_length,
        chain,
        complete,
        streams,
    } = facts;
    if *format == FORMAT_V1 {
        return format!(
            "rampart-recording-seal-v1\n{session}\n{chunks}\n{length}\n{chain}\n{complete}"
        );
    }
    let streams = streams.map_or("-".to_owned(), StreamTotals::message);
    format!(
        "rampart-recording-seal-v2\n{session}\n{chunks}\n{length}\n{raw_length}\n{chain}\n{complete}\n{streams}"
    )
}

pub fn cast_path(dir: &Path, session: Uuid) -> PathBuf {
    dir.join(format!("{session}.cast"))
}

pub fn manifest_path(dir: &Path, session: Uuid) -> PathBuf {
    dir.join(format!("{session}.manifest"))
}

/// A command's input and output, as raw frames (see [`FRAME_HEADER`]).
pub fn raw_path(dir: &Path, session: Uuid) -> PathBuf {
    dir.join(format!("{session}.raw"))
}

/// A direction of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// From the user.
    Input,
    /// From the target (stdout).
    Output,
    /// From the target, extended data (stderr).
    ErrorOutput,
}

impl Stream {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Stream::Input => b'i',
            Stream::Output => b'o',
            Stream::ErrorOutput => b'e',
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            b'i' => Some(Stream::Input),
            b'o' => Some(Stream::Output),
            b'e' => Some(Stream::ErrorOutput),
            _ => None,
        }
    }

    fn direction(self) -> usize {
        match self {
            Stream::Input => 0,
            Stream::Output | Stream::ErrorOutput => 1,
        }
    }
}

/// How a session is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordingOptions {
    /// Input and output go to the raw stream file, in full, instead of asciicast events
    /// (commands: cheap to write, byte for byte).
    pub raw_streams: bool,
    /// With raw streams: keep at most this many bytes of each direction; the rest is counted and
    /// hashed (SHA-256 of everything, in the seal), and the cap is stated in the manifest.
    pub cap: Option<u64>,
}

/// The chunk being written to one file.
#[derive(Debug)]
struct OpenChunk {
    /// Where the chunk starts in its file.
    offset: u64,
    length: u64,
    hash: Sha256,
}

impl OpenChunk {
    fn new(offset: u64) -> Self {
        Self {
            offset,
            length: 0,
            hash: Sha256::new(),
        }
    }
}

/// Per direction: everything seen, for a capped recording.
#[derive(Debug, Default)]
struct Totals {
    bytes: u64,
    hash: Sha256,
    capped_marked: bool,
}

/// Records one session: writes each event at once, closes chunks into the manifest, seals.
/// This is the synchronous writer; [`crate::live::LiveRecorder`] runs one on its own thread.
#[derive(Debug)]
pub struct Recorder {
    session: Uuid,
    cast_path: PathBuf,
    /// Shared with the fsync off the writer's thread ([`Recorder::sync_handles`]): one
    /// descriptor per file, not a duplicate for the syncer.
    cast: Arc<File>,
    raw: Option<Arc<File>>,
    manifest: Arc<File>,
    cast_chunk: OpenChunk,
    raw_chunk: OpenChunk,
    chunks: u64,
    chain: String,
    started: Instant,
    cap: Option<u64>,
    /// Input and output totals (only for a capped recording: hashing twice costs throughput).
    totals: Option<[Totals; 2]>,
    /// Bytes seen per direction (raw streams), for the cap.
    seen: [u64; 2],
    /// Whether anything was written since the last checkpoint.
    dirty: bool,
    /// Set by the first failed write: the files no longer match the hashes.
    failed: Option<String>,
    /// Bytes of an incomplete UTF-8 character at the end of the last output or input, kept
    /// for the next event so characters split across packets stay whole.
    pending_output: Vec<u8>,
    pending_input: Vec<u8>,
    /// Whether writes wait in `unhashed` to be hashed into their chunks (see
    /// [`Recorder::defer_hashing`]).
    defer: bool,
    /// Written, in order, but not yet hashed into their chunks.
    unhashed: Vec<(RecordedFile, Written)>,
    /// Told each time the manifest grows (see [`Recorder::replicate_to`]).
    replica: Option<Arc<dyn crate::replica::Replica>>,
}

/// Bytes written to a data file, kept until they are hashed into their chunk.
#[derive(Debug)]
enum Written {
    /// A raw frame: its header and its data (shared with the caller, not copied).
    Frame([u8; FRAME_HEADER], Bytes),
    /// A line of the asciicast file.
    Line(Vec<u8>),
}

impl Written {
    fn parts(&self) -> [&[u8]; 2] {
        match self {
            Written::Frame(header, data) => [header, data],
            Written::Line(line) => [line, &[]],
        }
    }
}

impl Recorder {
    /// Creates the recording files (they must not exist) and writes the header; terminal
    /// events only.
    pub fn create(dir: &Path, session: Uuid, header: &CastHeader) -> Result<Self, RecordingError> {
        Self::create_with(dir, session, header, RecordingOptions::default())
    }

    /// Creates the recording files (they must not exist) and writes the header.
    pub fn create_with(
        dir: &Path,
        session: Uuid,
        header: &CastHeader,
        options: RecordingOptions,
    ) -> Result<Self, RecordingError> {
        let cast_path = cast_path(dir, session);
        let manifest_path = manifest_path(dir, session);
        let raw_path = raw_path(dir, session);
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
        let remove_all = || {
            for path in [&cast_path, &manifest_path, &raw_path] {
                let _ = std::fs::remove_file(path);
            }
        };
        let files = open(&cast_path).and_then(|cast| {
            let manifest = open(&manifest_path)?;
            let raw = options.raw_streams.then(|| open(&raw_path)).transpose()?;
            Ok((cast, manifest, raw))
        });
        let (cast, manifest, raw) = match files {
            Ok(files) => files,
            Err(err) => {
                // Only what this call created: an existing recording is never touched.
                if !matches!(&err, RecordingError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
                {
                    remove_all();
                }
                return Err(err);
            }
        };
        let id = session.to_string();
        let cap = options.cap.filter(|_| options.raw_streams);
        let mut recorder = Self {
            session,
            cast_path,
            cast: Arc::new(cast),
            raw: raw.map(Arc::new),
            manifest: Arc::new(manifest),
            cast_chunk: OpenChunk::new(0),
            raw_chunk: OpenChunk::new(0),
            chunks: 0,
            chain: chain_start(FORMAT, &id, cap),
            started: Instant::now(),
            cap,
            totals: cap.map(|_| Default::default()),
            seen: [0, 0],
            dirty: false,
            failed: None,
            pending_output: Vec::new(),
            pending_input: Vec::new(),
            defer: false,
            unhashed: Vec::new(),
            replica: None,
        };
        let start = ManifestLine::Start {
            session: id,
            format: FORMAT.into(),
            cap,
        };
        let header = serde_json::to_string(header)
            .map_err(|err| recorder.io_error(std::io::Error::other(err)));
        let written = header.and_then(|header| {
            recorder.write_manifest(&start)?;
            recorder.write_cast(format!("{header}\n").into_bytes())?;
            // The header reaches the disk at once: a recording exists from the first moment.
            recorder.checkpoint()
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
        let dir = self.cast_path.parent().unwrap_or(Path::new("."));
        if let Err(err) = crate::remove_recording(dir, self.session) {
            // Left behind, it would be sealed as an interrupted recording of no session.
            tracing::error!(session = %self.session, error = %err, "cannot remove the recording of a refused session");
        }
    }

    pub fn session(&self) -> Uuid {
        self.session
    }

    /// From now on `replica` is told each time a chunk is closed into the manifest and when
    /// the recording is sealed; it is told at once about the chunks closed so far (the
    /// header). Called once the session exists, so a refused session's recording (discarded)
    /// is never copied.
    pub fn replicate_to(&mut self, replica: Arc<dyn crate::replica::Replica>) {
        replica.manifest_grew(self.dir(), self.session);
        self.replica = Some(replica);
    }

    fn dir(&self) -> &Path {
        self.cast_path.parent().unwrap_or(Path::new("."))
    }

    fn tell_replica(&self) {
        if let Some(replica) = &self.replica {
            replica.manifest_grew(self.dir(), self.session);
        }
    }

    /// Output from the target (`o`).
    pub fn output(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        self.stream(Stream::Output, &Bytes::copy_from_slice(data))
    }

    /// Input from the user (`i`).
    pub fn input(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        self.stream(Stream::Input, &Bytes::copy_from_slice(data))
    }

    /// Bytes of one direction: a raw frame for a command, an asciicast event for a terminal.
    pub fn stream(&mut self, stream: Stream, data: &Bytes) -> Result<(), RecordingError> {
        self.usable()?;
        if self.raw.is_none() {
            let (pending, code) = match stream {
                Stream::Input => (&mut self.pending_input, "i"),
                Stream::Output | Stream::ErrorOutput => (&mut self.pending_output, "o"),
            };
            let text = take_utf8(pending, data);
            return self.event(code, &text);
        }
        let direction = stream.direction();
        let seen = self.seen.get(direction).copied().unwrap_or(0);
        if let Some(totals) = self
            .totals
            .as_mut()
            .and_then(|totals| totals.get_mut(direction))
        {
            totals.bytes += data.len() as u64;
            totals.hash.update(data);
        }
        if let Some(slot) = self.seen.get_mut(direction) {
            *slot = seen.saturating_add(data.len() as u64);
        }
        let keep = match self.cap {
            None => data.len(),
            Some(cap) => usize::try_from(cap.saturating_sub(seen))
                .unwrap_or(usize::MAX)
                .min(data.len()),
        };
        let (kept, dropped) = (data.slice(..keep), data.get(keep..).unwrap_or_default());
        if !kept.is_empty() {
            self.write_frame(stream, kept)?;
        }
        if !dropped.is_empty()
            && let (Some(cap), Some(totals)) = (
                self.cap,
                self.totals
                    .as_mut()
                    .and_then(|totals| totals.get_mut(direction)),
            )
            && !totals.capped_marked
        {
            totals.capped_marked = true;
            let what = if direction == 0 { "input" } else { "output" };
            self.marker(&format!(
                "recording capped at {cap} bytes of {what}; the rest is counted and hashed, not recorded"
            ))?;
        }
        Ok(())
    }

    /// A terminal resize (`r`).
    pub fn resize(&mut self, cols: u32, rows: u32) -> Result<(), RecordingError> {
        self.event("r", &format!("{cols}x{rows}"))
    }

    /// A marker (`m`), for example a command or an exit status.
    pub fn marker(&mut self, label: &str) -> Result<(), RecordingError> {
        self.event("m", label)
    }

    fn elapsed_micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn event(&mut self, code: &str, text: &str) -> Result<(), RecordingError> {
        self.usable()?;
        if text.is_empty() {
            return Ok(());
        }
        let at = self.elapsed_micros() as f64 / 1_000_000.0;
        let mut line = serde_json::to_vec(&(Seconds(at), code, text))
            .map_err(|err| self.io_error(std::io::Error::other(err)))?;
        line.push(b'\n');
        self.write_cast(line)
    }

    fn write_frame(&mut self, stream: Stream, data: Bytes) -> Result<(), RecordingError> {
        let length = u32::try_from(data.len())
            .map_err(|_| self.io_error(std::io::Error::other("a frame larger than 4 GiB")))?;
        let mut header = [0u8; FRAME_HEADER];
        let (tag, rest) = header.split_at_mut(1);
        let (micros, size) = rest.split_at_mut(8);
        tag.copy_from_slice(&[stream.tag()]);
        micros.copy_from_slice(&self.elapsed_micros().to_be_bytes());
        size.copy_from_slice(&length.to_be_bytes());
        let raw = self.raw.as_deref().ok_or(RecordingError::Stopped)?;
        let written = write_both(raw, &header, &data);
        self.wrote(RecordedFile::Raw, written, Written::Frame(header, data))
    }

    fn write_cast(&mut self, line: Vec<u8>) -> Result<(), RecordingError> {
        let written = (&*self.cast).write_all(&line);
        self.wrote(RecordedFile::Cast, written, Written::Line(line))
    }

    /// Accounts for a write: hashes what was written (now, or after the caller has been
    /// answered, see [`Recorder::defer_hashing`]), or fails the recording for good.
    fn wrote(
        &mut self,
        file: RecordedFile,
        written: std::io::Result<()>,
        what: Written,
    ) -> Result<(), RecordingError> {
        if let Err(err) = written {
            let err = self.io_error(err);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        self.dirty = true;
        if self.defer {
            self.unhashed.push((file, what));
            return Ok(());
        }
        self.hash_into_chunk(file, &what)
    }

    fn hash_into_chunk(
        &mut self,
        file: RecordedFile,
        what: &Written,
    ) -> Result<(), RecordingError> {
        let (chunk, limit) = match file {
            RecordedFile::Cast => (&mut self.cast_chunk, CHUNK_BYTES),
            RecordedFile::Raw => (&mut self.raw_chunk, RAW_CHUNK_BYTES),
        };
        for part in what.parts() {
            chunk.hash.update(part);
            chunk.length += part.len() as u64;
        }
        if chunk.length >= limit {
            self.close_chunk(file)?;
        }
        Ok(())
    }

    /// From now until [`Recorder::hash_written`], writes go to the files at once but are
    /// hashed into their chunks only then. The live writer answers the relay in between: what
    /// the relay forwards is in the file (written before forwarded), and hashing it overlaps
    /// with forwarding instead of delaying it. The chunks, their boundaries and the manifest
    /// come out exactly as without deferring.
    pub fn defer_hashing(&mut self) {
        self.defer = true;
    }

    /// Hashes what was written since [`Recorder::defer_hashing`], in order, and hashes at once
    /// again. A failure (the manifest cannot be written) fails the recording.
    pub fn hash_written(&mut self) -> Result<(), RecordingError> {
        self.defer = false;
        let unhashed = std::mem::take(&mut self.unhashed);
        if self.failed.is_some() {
            return self.usable();
        }
        for (file, what) in &unhashed {
            if let Err(err) = self.hash_into_chunk(*file, what) {
                self.fail(err.to_string());
                return Err(err);
            }
        }
        Ok(())
    }

    fn usable(&self) -> Result<(), RecordingError> {
        match &self.failed {
            Some(why) => Err(RecordingError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Closes the open chunk of `file` (if it holds anything) into the manifest.
    fn close_chunk(&mut self, file: RecordedFile) -> Result<(), RecordingError> {
        let slot = match file {
            RecordedFile::Cast => &mut self.cast_chunk,
            RecordedFile::Raw => &mut self.raw_chunk,
        };
        if slot.length == 0 {
            return Ok(());
        }
        let next = OpenChunk::new(slot.offset + slot.length);
        let chunk = std::mem::replace(slot, next);
        let sha256 = hex(&chunk.hash.finalize());
        let chain = chain_next(
            FORMAT,
            &self.chain,
            ChunkRef {
                file,
                index: self.chunks,
                offset: chunk.offset,
                length: chunk.length,
                sha256: &sha256,
                recovered: false,
            },
        );
        let line = ManifestLine::Chunk {
            index: self.chunks,
            file,
            offset: chunk.offset,
            length: chunk.length,
            sha256,
            chain: chain.clone(),
            recovered: false,
        };
        self.write_manifest(&line)?;
        self.chain = chain;
        self.chunks += 1;
        self.tell_replica();
        Ok(())
    }

    /// Closes the open chunks into the manifest (the bytes are already in the files).
    pub fn flush_chunk(&mut self) -> Result<(), RecordingError> {
        self.hash_written()?;
        self.close_chunk(RecordedFile::Cast)?;
        self.close_chunk(RecordedFile::Raw)
    }

    /// Makes what was written durable: the data files are fsynced, their open chunks closed
    /// into the manifest, and the manifest fsynced (in that order, so a manifest line never
    /// names bytes a power cut could lose). Does nothing if nothing was written since the last.
    /// Whether anything was written since the last checkpoint (a checkpoint would do work).
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    pub fn checkpoint(&mut self) -> Result<(), RecordingError> {
        self.usable()?;
        if !self.dirty {
            return Ok(());
        }
        let synced = self.cast.sync_data().and_then(|()| match &self.raw {
            Some(raw) => raw.sync_data(),
            None => Ok(()),
        });
        if let Err(err) = synced {
            let err = self.io_error(err);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        self.flush_chunk()?;
        if let Err(err) = self.manifest.sync_data() {
            let err = self.io_error(err);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        self.dirty = false;
        Ok(())
    }

    /// Closes the open chunks into the manifest if anything was written since the last call,
    /// and says whether it did: the caller then fsyncs the [`Recorder::sync_handles`], off this
    /// thread, so writing goes on while the disk catches up.
    pub fn close_for_sync(&mut self) -> Result<bool, RecordingError> {
        self.usable()?;
        if !self.dirty {
            return Ok(false);
        }
        self.flush_chunk()?;
        self.dirty = false;
        Ok(true)
    }

    /// Handles on the recording's files (data files first, the manifest last), for fsyncing
    /// them from another thread.
    pub fn sync_handles(&self) -> Vec<Arc<File>> {
        let mut handles = vec![self.cast.clone()];
        handles.extend(self.raw.clone());
        handles.push(self.manifest.clone());
        handles
    }

    /// Marks the recording failed (a background fsync failed): every later call fails.
    pub fn fail(&mut self, why: String) {
        self.failed.get_or_insert(why);
    }

    /// Writes what is left and seals the manifest with the node's audit key. Returns what the
    /// chain's `session_ended` event anchors.
    pub fn seal(mut self, key: &PrivateKey) -> Result<SealedRecording, RecordingError> {
        self.usable()?;
        let rest_output = std::mem::take(&mut self.pending_output);
        let rest_input = std::mem::take(&mut self.pending_input);
        self.event("o", &String::from_utf8_lossy(&rest_output))?;
        self.event("i", &String::from_utf8_lossy(&rest_input))?;
        self.dirty = true;
        self.checkpoint()?;
        let streams = self.totals.take().map(|[input, output]| StreamTotals {
            input_bytes: input.bytes,
            input_sha256: hex(&input.hash.finalize()),
            output_bytes: output.bytes,
            output_sha256: hex(&output.hash.finalize()),
        });
        let id = self.session.to_string();
        let seal = sign_seal(
            &SealFacts {
                format: FORMAT,
                session: &id,
                chunks: self.chunks,
                length: self.cast_chunk.offset,
                raw_length: self.raw_chunk.offset,
                chain: &self.chain,
                complete: true,
                streams: streams.as_ref(),
            },
            key,
        )?;
        self.write_manifest(&seal)?;
        self.manifest.sync_all().map_err(|err| self.io_error(err))?;
        self.tell_replica();
        let manifest = self.cast_path.with_extension("manifest");
        SealedRecording::read(&manifest, self.session, true)
    }

    fn write_manifest(&mut self, line: &ManifestLine) -> Result<(), RecordingError> {
        let mut text =
            serde_json::to_string(line).map_err(|err| self.io_error(std::io::Error::other(err)))?;
        text.push('\n');
        if let Err(err) = (&*self.manifest).write_all(text.as_bytes()) {
            let err = self.io_error(err);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        Ok(())
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
/// Writes a frame's header and data with as few system calls as the kernel allows (one
/// `writev` for both, normally).
fn write_both(mut file: &File, header: &[u8], data: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    let total = header.len() + data.len();
    while written < total {
        let result = if written < header.len() {
            let rest = header.get(written..).unwrap_or_default();
            file.write_vectored(&[std::io::IoSlice::new(rest), std::io::IoSlice::new(data)])
        } else {
            file.write(data.get(written - header.len()..).unwrap_or_default())
        };
        match result {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

pub(crate) fn take_utf8(pending: &mut Vec<u8>, data: &[u8]) -> String {
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
    facts: &SealFacts<'_>,
    key: &PrivateKey,
) -> Result<ManifestLine, RecordingError> {
    let message = seal_message(facts);
    let signature = key
        .sign(SEAL_NAMESPACE, HashAlg::Sha512, message.as_bytes())
        .and_then(|sig| sig.to_pem(LineEnding::LF))
        .map_err(|err| RecordingError::Sign(err.to_string()))?;
    Ok(ManifestLine::Seal {
        session: facts.session.to_owned(),
        chunks: facts.chunks,
        length: facts.length,
        raw_length: facts.raw_length,
        chain: facts.chain.to_owned(),
        complete: facts.complete,
        streams: facts.streams.cloned(),
        signature,
    })
}

/// SHA-256 of `length` bytes of `file` from its current position; `None` if it has fewer.
pub(crate) fn hash_next(file: &mut impl Read, length: u64) -> std::io::Result<Option<String>> {
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let Some(part) = buffer.get_mut(..want) else {
            return Ok(None);
        };
        let read = file.read(part)?;
        if read == 0 {
            return Ok(None);
        }
        hash.update(part.get(..read).unwrap_or_default());
        left -= read as u64;
    }
    Ok(Some(hex(&hash.finalize())))
}

/// How many bytes from the start of `bytes` are whole records of `file`: lines that parse as
/// JSON (cast), or frames with a known tag and all their bytes (raw).
fn whole_records(file: RecordedFile, bytes: &[u8]) -> usize {
    let mut end = 0usize;
    match file {
        RecordedFile::Cast => {
            while let Some(newline) = bytes
                .get(end..)
                .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            {
                let line = bytes.get(end..end + newline).unwrap_or_default();
                if serde_json::from_slice::<serde_json::Value>(line).is_err() {
                    break;
                }
                end += newline + 1;
            }
        }
        RecordedFile::Raw => {
            while let Some((_, _, data)) = bytes.get(end..).and_then(parse_frame) {
                end += FRAME_HEADER + data.len();
            }
        }
    }
    end
}

/// The frame at the start of `bytes`: (stream, microseconds, data).
pub(crate) fn parse_frame(bytes: &[u8]) -> Option<(Stream, u64, &[u8])> {
    let header = bytes.get(..FRAME_HEADER)?;
    let stream = Stream::from_tag(*header.first()?)?;
    let micros = u64::from_be_bytes(header.get(1..9)?.try_into().ok()?);
    let length = u32::from_be_bytes(header.get(9..13)?.try_into().ok()?);
    let data = bytes.get(FRAME_HEADER..FRAME_HEADER + usize::try_from(length).ok()?)?;
    Some((stream, micros, data))
}

/// Seals recordings left unsealed by a crash, as incomplete. Every chunk the manifest names is
/// kept if its bytes are there and match; what was written after the last such chunk (the
/// events the writer had written but not yet hashed, up to the last whole record) is kept as a
/// final chunk of each file marked `recovered`; anything else is cut off. Returns the recordings
/// it sealed.
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
        if let Some(recording) = seal_one_interrupted(dir, session, key)? {
            sealed.push(recording);
        }
    }
    Ok(sealed)
}

fn seal_one_interrupted(
    dir: &Path,
    session: Uuid,
    key: &PrivateKey,
) -> Result<Option<SealedRecording>, RecordingError> {
    let io = |path: &Path, source: std::io::Error| RecordingError::Io {
        path: path.display().to_string(),
        source,
    };
    let manifest = manifest_path(dir, session);
    let text = std::fs::read_to_string(&manifest).map_err(|err| io(&manifest, err))?;
    let mut lines: Vec<ManifestLine> = Vec::new();
    for line in text.lines() {
        // A torn last line (crash mid-write) is simply not part of the record.
        match serde_json::from_str(line) {
            Ok(parsed) => lines.push(parsed),
            Err(_) => break,
        }
    }
    if lines.iter().any(|l| matches!(l, ManifestLine::Seal { .. })) {
        return Ok(None);
    }
    let id = session.to_string();
    let (format, cap) = match lines.first() {
        Some(ManifestLine::Start { format, cap, .. }) => (format.clone(), *cap),
        _ => (FORMAT_V1.to_owned(), None),
    };
    let paths = [
        (RecordedFile::Cast, cast_path(dir, session)),
        (RecordedFile::Raw, raw_path(dir, session)),
    ];
    let mut files: Vec<(RecordedFile, PathBuf, Option<File>, u64)> = Vec::new();
    for (kind, path) in paths {
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Some(file),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(io(&path, err)),
        };
        files.push((kind, path, file, 0));
    }
    // Keep the chunks whose bytes are there and match, in order, until the first that is not.
    let mut kept: Vec<ManifestLine> = lines
        .iter()
        .filter(|l| matches!(l, ManifestLine::Start { .. }))
        .cloned()
        .collect();
    let (mut chunks, mut chain) = (0u64, chain_start(&format, &id, cap));
    for line in &lines {
        let ManifestLine::Chunk {
            index,
            file: kind,
            offset,
            length,
            sha256,
            chain: claimed,
            recovered,
        } = line
        else {
            continue;
        };
        let Some((_, path, Some(file), end)) = files.iter_mut().find(|f| f.0 == *kind) else {
            break;
        };
        if *index != chunks || *offset != *end {
            break;
        }
        file.seek(SeekFrom::Start(*offset))
            .map_err(|err| io(path, err))?;
        let actual = hash_next(file, *length).map_err(|err| io(path, err))?;
        let next = chain_next(
            &format,
            &chain,
            ChunkRef {
                file: *kind,
                index: *index,
                offset: *offset,
                length: *length,
                sha256,
                recovered: *recovered,
            },
        );
        if actual.as_deref() != Some(sha256.as_str()) || next != *claimed {
            break;
        }
        *end += length;
        chain = next;
        chunks += 1;
        kept.push(line.clone());
    }
    // The unhashed tail of each file: written before the crash, so shown to the user; kept.
    // (Only the current format writes events before hashing them.)
    for (kind, path, file, end) in files.iter_mut() {
        let Some(file) = file.as_mut() else { continue };
        if format != FORMAT_V1 {
            file.seek(SeekFrom::Start(*end))
                .map_err(|err| io(path, err))?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).map_err(|err| io(path, err))?;
            let whole = whole_records(*kind, &tail);
            if let Some(bytes) = tail.get(..whole).filter(|b| !b.is_empty()) {
                let sha256 = hex(&Sha256::digest(bytes));
                let length = bytes.len() as u64;
                chain = chain_next(
                    &format,
                    &chain,
                    ChunkRef {
                        file: *kind,
                        index: chunks,
                        offset: *end,
                        length,
                        sha256: &sha256,
                        recovered: true,
                    },
                );
                kept.push(ManifestLine::Chunk {
                    index: chunks,
                    file: *kind,
                    offset: *end,
                    length,
                    sha256,
                    chain: chain.clone(),
                    recovered: true,
                });
                chunks += 1;
                *end += length;
            }
        }
        file.set_len(*end).map_err(|err| io(path, err))?;
        file.sync_all().map_err(|err| io(path, err))?;
    }
    let length_of = |kind: RecordedFile| {
        files
            .iter()
            .find(|f| f.0 == kind)
            .map_or(0, |(_, _, _, end)| *end)
    };
    // Rewrite the manifest without a torn line, then seal it.
    let mut rewritten = String::new();
    for line in &kept {
        rewritten.push_str(
            &serde_json::to_string(line)
                .map_err(|err| io(&manifest, std::io::Error::other(err)))?,
        );
        rewritten.push('\n');
    }
    let seal = sign_seal(
        &SealFacts {
            format: &format,
            session: &id,
            chunks,
            length: length_of(RecordedFile::Cast),
            raw_length: length_of(RecordedFile::Raw),
            chain: &chain,
            complete: false,
            streams: None,
        },
        key,
    )?;
    rewritten.push_str(
        &serde_json::to_string(&seal).map_err(|err| io(&manifest, std::io::Error::other(err)))?,
    );
    rewritten.push('\n');
    // Written beside and renamed over: a crash now leaves the old or the new manifest.
    let temporary = manifest.with_extension("manifest.sealing");
    let mut out = File::create(&temporary).map_err(|err| io(&temporary, err))?;
    out.write_all(rewritten.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|err| io(&temporary, err))?;
    std::fs::rename(&temporary, &manifest).map_err(|err| io(&manifest, err))?;
    Ok(Some(SealedRecording {
        session,
        manifest_sha256: hex(&Sha256::digest(rewritten.as_bytes())),
        complete: false,
    }))
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

    #[test]
    fn whole_records_stop_before_a_torn_one() {
        let cast = b"{\"a\":1}\n[1.0,\"o\",\"x\"]\n[2.0,\"o\",\"y";
        assert_eq!(whole_records(RecordedFile::Cast, cast), 22);
        let mut raw = Vec::new();
        raw.push(b'o');
        raw.extend_from_slice(&5u64.to_be_bytes());
        raw.extend_from_slice(&3u32.to_be_bytes());
        raw.extend_from_slice(b"abc");
        let whole = raw.len();
        raw.push(b'i');
        raw.extend_from_slice(&6u64.to_be_bytes());
        raw.extend_from_slice(&9u32.to_be_bytes());
        raw.extend_from_slice(b"torn");
        assert_eq!(whole_records(RecordedFile::Raw, &raw), whole);
    }
}
