//! Recordings in S3-compatible object storage (`recording.store = "s3"`, issue 19).
//!
//! Layout in the bucket, under the configured prefix: `SESSION/chunk-INDEX.cast` (or `.raw`)
//! holds the bytes of one chunk the manifest names, `SESSION/manifest` the sealed manifest,
//! byte for byte as on the node. [`uploader`] copies them as chunks close; [`fetch`] puts a
//! recording back together in a directory, where `rampart_audit`'s verifier and readers work
//! on it as on the node's own files.

pub mod client;
pub mod uploader;

pub use client::{BucketFacts, Client, S3Error, S3Settings};
pub use uploader::Uploader;

use rampart_audit::recording::{ManifestLine, RecordedFile, cast_path, manifest_path, raw_path};
use std::io::Write;
use std::path::Path;
use uuid::Uuid;

/// The object name (before the prefix) of a chunk.
pub fn chunk_name(session: Uuid, index: u64, file: RecordedFile) -> String {
    let ext = match file {
        RecordedFile::Cast => "cast",
        RecordedFile::Raw => "raw",
    };
    format!("{session}/chunk-{index:06}.{ext}")
}

/// The object name (before the prefix) of a sealed manifest.
pub fn manifest_name(session: Uuid) -> String {
    format!("{session}/manifest")
}

/// The object name (before the prefix) of the manifest line at byte `at` of a manifest still
/// being written (put after the chunk it names).
pub fn manifest_line_name(session: Uuid, at: u64) -> String {
    format!("{session}/manifest-at-{at:012}")
}

/// What [`recover`] found in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The sealed manifest was there: the recording is whole in `dir`.
    Sealed,
    /// The lines and chunks that reached the bucket, unsealed, in `dir`: seal them as
    /// interrupted (`rampart_audit::recording::seal_interrupted`).
    Unsealed { lines: u64 },
}

/// The largest manifest line read back (a line names one chunk: a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// Rebuilds in `dir` what reached the bucket of a recording whose node was lost: the sealed
/// recording if it is there, else its manifest's lines (`manifest-at-OFFSET`, in order until
/// the first missing one) with the chunks they name. [`FetchError::Missing`]: nothing of it
/// reached the bucket.
pub fn recover(client: &Client, session: Uuid, dir: &Path) -> Result<Recovered, FetchError> {
    match fetch(client, session, dir) {
        Ok(()) => return Ok(Recovered::Sealed),
        Err(FetchError::Missing(_)) => {}
        Err(err) => return Err(err),
    }
    let malformed = |reason: String| FetchError::Malformed { session, reason };
    let mut manifest = std::fs::File::create(manifest_path(dir, session))?;
    let mut files = Rebuilt::new(dir, session)?;
    let (mut at, mut lines) = (0u64, 0u64);
    while let Some(line) = client.get(&client.key(&manifest_line_name(session, at)))? {
        if line.len() > MAX_LINE || line.last() != Some(&b'\n') {
            return Err(malformed(format!(
                "the manifest line at byte {at} is not one line"
            )));
        }
        files.place(client, &line)?;
        manifest.write_all(&line)?;
        at += line.len() as u64;
        lines += 1;
    }
    if lines == 0 {
        return Err(FetchError::Missing(session));
    }
    Ok(Recovered::Unsealed { lines })
}

/// A recording's files rebuilt from the bucket, one manifest line at a time.
struct Rebuilt {
    session: Uuid,
    dir: std::path::PathBuf,
    cast: std::fs::File,
    raw: Option<std::fs::File>,
    /// Bytes written so far to the cast and the raw file.
    lengths: [u64; 2],
}

impl Rebuilt {
    fn new(dir: &Path, session: Uuid) -> Result<Self, FetchError> {
        Ok(Self {
            session,
            dir: dir.to_path_buf(),
            cast: std::fs::File::create(cast_path(dir, session))?,
            raw: None,
            lengths: [0; 2],
        })
    }

    /// Puts the chunk a manifest `line` names (from the bucket) where the line places it; a
    /// line that names no chunk is passed over. A chunk out of place is malformed (the verifier
    /// would say so too).
    fn place(&mut self, client: &Client, line: &[u8]) -> Result<(), FetchError> {
        let session = self.session;
        let malformed = |reason: String| FetchError::Malformed { session, reason };
        let parsed: ManifestLine =
            serde_json::from_slice(line).map_err(|err| malformed(err.to_string()))?;
        let ManifestLine::Chunk {
            index,
            file,
            offset,
            length,
            ..
        } = parsed
        else {
            return Ok(());
        };
        let data = client
            .get(&client.key(&chunk_name(session, index, file)))?
            .ok_or(FetchError::ChunkMissing { session, index })?;
        let slot = usize::from(file == RecordedFile::Raw);
        let written = self
            .lengths
            .get_mut(slot)
            .ok_or_else(|| malformed("file".into()))?;
        if *written != offset || data.len() as u64 != length {
            return Err(malformed(format!(
                "chunk {index} is {} bytes at {written}, the manifest says {length} at {offset}",
                data.len()
            )));
        }
        *written += length;
        match file {
            RecordedFile::Cast => self.cast.write_all(&data)?,
            RecordedFile::Raw => match self.raw.as_mut() {
                Some(raw) => raw.write_all(&data)?,
                None => self
                    .raw
                    .insert(std::fs::File::create(raw_path(&self.dir, session))?)
                    .write_all(&data)?,
            },
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The bucket has no sealed manifest for the session.
    #[error("the recording of session {0} is missing from the bucket")]
    Missing(Uuid),
    #[error("chunk {index} of the recording of session {session} is missing from the bucket")]
    ChunkMissing { session: Uuid, index: u64 },
    #[error("the recording of session {session} in the bucket is malformed: {reason}")]
    Malformed { session: Uuid, reason: String },
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("cannot write the recording fetched from the bucket: {0}")]
    Local(#[from] std::io::Error),
}

/// Reads `session`'s recording from the bucket into `dir` (manifest, cast, raw), as the node
/// wrote it, for the verifier and the readers. Chunks are written where the manifest places
/// them; one out of place is malformed (the verifier would say so too).
pub fn fetch(client: &Client, session: Uuid, dir: &Path) -> Result<(), FetchError> {
    let manifest = client
        .get(&client.key(&manifest_name(session)))?
        .ok_or(FetchError::Missing(session))?;
    let mut files = Rebuilt::new(dir, session)?;
    for line in manifest.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        files.place(client, line)?;
    }
    std::fs::write(manifest_path(dir, session), &manifest)?;
    Ok(())
}
