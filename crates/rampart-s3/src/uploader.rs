//! Copies recordings to the bucket as their chunks close: one thread, off the async runtime.
//!
//! The recorder tells the uploader each time a session's manifest grows
//! ([`rampart_audit::replica::Replica`]); the uploader reads the manifest's new whole lines
//! and puts each chunk named there (its bytes read from the local file) as one object, then,
//! once the seal line is there, the manifest itself. The queue holds at most one entry per
//! session (a session already waiting is not queued twice) and the backlog stays in the local
//! files, so memory is bounded whatever the bucket does; a failed put is retried with backoff
//! (1 s doubling to 30 s), in order, so a manifest never reaches the bucket before its chunks.
//! When the manifest is in the bucket the uploader leaves `<session>.s3` beside the local
//! files; at start, `resume` queues every sealed local recording without that mark (a
//! restart, a crash, a bucket that was down).

use crate::client::{Client, S3Error};
use crate::{chunk_name, manifest_name};
use rampart_audit::recording::{ManifestLine, RecordedFile, cast_path, manifest_path, raw_path};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use uuid::Uuid;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The mark left beside a recording once its sealed manifest is in the bucket.
pub fn uploaded_mark(dir: &Path, session: Uuid) -> PathBuf {
    dir.join(format!("{session}.s3"))
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<(PathBuf, Uuid)>,
    queued: HashSet<Uuid>,
    /// Bytes of each session's manifest already copied.
    progress: HashMap<Uuid, u64>,
    stopping: bool,
    /// Whether a session is being copied now (for [`Uploader::wait_idle`]).
    busy: bool,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The upload queue and its thread. Dropping the last handle stops the thread after the
/// session it is copying.
#[derive(Debug, Clone)]
pub struct Uploader {
    shared: Arc<Shared>,
}

impl Uploader {
    pub fn start(client: Client) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            client,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("rampart-s3-upload".into())
            .spawn(move || run(&worker))?;
        Ok(Self { shared })
    }

    /// Queues every sealed recording in `dir` whose manifest is not marked as uploaded.
    pub fn resume(&self, dir: &Path) -> std::io::Result<usize> {
        let mut count = 0;
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(session) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".manifest"))
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            if !uploaded_mark(dir, session).exists() {
                self.queue(dir, session);
                count += 1;
            }
        }
        Ok(count)
    }

    fn queue(&self, dir: &Path, session: Uuid) {
        let mut state = self.shared.lock();
        if state.queued.insert(session) {
            state.queue.push_back((dir.to_owned(), session));
            self.shared.wake.notify_all();
        }
    }

    /// Waits until nothing is queued or being copied, or `timeout` passes; says which.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !state.queue.is_empty() || state.busy {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .wake
                .wait_timeout(state, left.min(Duration::from_millis(100)))
                .map(|(state, _)| state)
                .unwrap_or_else(|err| err.into_inner().0);
        }
        true
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }
}

impl rampart_audit::replica::Replica for Uploader {
    fn manifest_grew(&self, dir: &Path, session: Uuid) {
        self.queue(dir, session);
    }
}

fn run(shared: &std::sync::Weak<Shared>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let next = {
            let mut state = shared.lock();
            loop {
                if state.stopping {
                    return;
                }
                if let Some(next) = state.queue.pop_front() {
                    // Lines written from now on queue the session again.
                    state.queued.remove(&next.1);
                    state.busy = true;
                    break Some(next);
                }
                state.busy = false;
                shared.wake.notify_all();
                let (guard, timeout) = shared
                    .wake
                    .wait_timeout(state, Duration::from_secs(1))
                    .unwrap_or_else(|err| err.into_inner());
                state = guard;
                if timeout.timed_out() {
                    break None;
                }
            }
        };
        // Woken only to notice a drop: let go of the handle and look again.
        let Some((dir, session)) = next else {
            continue;
        };
        let done = shared.lock().progress.get(&session).copied().unwrap_or(0);
        let result = copy_session(&shared.client, &dir, session, done);
        let mut state = shared.lock();
        match result {
            Ok(Copied::Sealed) => {
                state.progress.remove(&session);
                backoff = FIRST_BACKOFF;
            }
            Ok(Copied::UpTo(read)) => {
                state.progress.insert(session, read);
                backoff = FIRST_BACKOFF;
            }
            Err((read, err)) => {
                state.progress.insert(session, read);
                tracing::warn!(%session, error = %err, retry_in = ?backoff, "cannot copy a recording to the bucket; retrying");
                if state.queued.insert(session) {
                    state.queue.push_back((dir, session));
                }
                drop(state);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        state.busy = false;
        shared.wake.notify_all();
    }
}

enum Copied {
    /// The manifest is copied up to this byte (the recording is still being written).
    UpTo(u64),
    /// The sealed manifest is in the bucket.
    Sealed,
}

#[derive(Debug, thiserror::Error)]
enum CopyError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{0}")]
    Local(String),
}

/// Copies what `session`'s manifest names past byte `from`; on failure, how far it got.
fn copy_session(
    client: &Client,
    dir: &Path,
    session: Uuid,
    from: u64,
) -> Result<Copied, (u64, CopyError)> {
    let local = |what: String| CopyError::Local(what);
    // Already in the bucket (queued again while its last lines were being copied).
    if uploaded_mark(dir, session).exists() {
        return Ok(Copied::Sealed);
    }
    let path = manifest_path(dir, session);
    let mut manifest = match File::open(&path) {
        Ok(file) => file,
        // A refused session's recording was discarded: nothing to copy.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Copied::Sealed),
        Err(err) => return Err((from, local(format!("{}: {err}", path.display())))),
    };
    let mut text = Vec::new();
    manifest
        .seek(SeekFrom::Start(from))
        .and_then(|_| manifest.read_to_end(&mut text))
        .map_err(|err| (from, local(format!("{}: {err}", path.display()))))?;
    let mut read = from;
    let mut rest = text.as_slice();
    while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
        let (line, after) = rest.split_at(newline + 1);
        let parsed: ManifestLine = serde_json::from_slice(line)
            .map_err(|err| (read, local(format!("{}: {err}", path.display()))))?;
        match parsed {
            ManifestLine::Start { .. } => put_line(client, session, read, line)?,
            ManifestLine::Chunk {
                index,
                file,
                offset,
                length,
                ..
            } => {
                let data =
                    read_range(dir, session, file, offset, length).map_err(|err| (read, err))?;
                client
                    .put(&client.key(&chunk_name(session, index, file)), &data)
                    .map_err(|err| (read, CopyError::from(err)))?;
                // After its chunk: a line in the bucket names a chunk that is there.
                put_line(client, session, read, line)?;
            }
            ManifestLine::Seal { .. } => {
                let whole = std::fs::read(&path)
                    .map_err(|err| (read, local(format!("{}: {err}", path.display()))))?;
                client
                    .put(&client.key(&manifest_name(session)), &whole)
                    .map_err(|err| (read, CopyError::from(err)))?;
                let mark = uploaded_mark(dir, session);
                if let Err(err) = std::fs::write(&mark, b"") {
                    tracing::warn!(%session, error = %err, "cannot mark a recording as uploaded (it will be copied again at the next start)");
                }
                return Ok(Copied::Sealed);
            }
        }
        read += line.len() as u64;
        rest = after;
    }
    Ok(Copied::UpTo(read))
}

/// Puts one line of a manifest still being written (`SESSION/manifest-at-OFFSET`), so that
/// if the node is lost, another node rebuilds the manifest from the bucket and seals it.
fn put_line(client: &Client, session: Uuid, at: u64, line: &[u8]) -> Result<(), (u64, CopyError)> {
    client
        .put(&client.key(&crate::manifest_line_name(session, at)), line)
        .map(|_| ())
        .map_err(|err| (at, CopyError::from(err)))
}

fn read_range(
    dir: &Path,
    session: Uuid,
    file: RecordedFile,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, CopyError> {
    let path = match file {
        RecordedFile::Cast => cast_path(dir, session),
        RecordedFile::Raw => raw_path(dir, session),
    };
    let length = usize::try_from(length)
        .map_err(|_| CopyError::Local(format!("{}: a chunk too large", path.display())))?;
    let mut data = vec![0u8; length];
    File::open(&path)
        .and_then(|file| file.read_exact_at(&mut data, offset))
        .map_err(|err| CopyError::Local(format!("{}: {err}", path.display())))?;
    Ok(data)
}
