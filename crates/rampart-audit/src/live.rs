//! A recording being made: the [`Recorder`] runs on a thread of its own, off the async
//! runtime, and the relay talks to it through a bounded channel.
//!
//! Each call hands the writer one piece of the session and resolves once it is written to the
//! file (`write(2)`), so the relay forwards only what is already recorded. The writer hashes
//! the piece into its chunk after answering, while the relay forwards it. Whenever
//! `sync_interval` has passed with something written, the writer closes the open chunks into
//! the manifest and starts an fsync of the files on the runtime's blocking pool, and goes on
//! writing meanwhile (a bulk stream is not held to the disk's speed); the next fsync starts
//! when that one is done. So a crash of the machine loses at most the last interval, as long as
//! the disk keeps up with the session. There is no lock to poison: the writer owns the files,
//! and a failure of any kind (a write, an fsync, the thread itself) makes every later call fail,
//! which ends the session.

use crate::recording::{Recorder, RecordingError, SealedRecording, Stream};
use bytes::Bytes;
use ssh_key::PrivateKey;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Recordings whose writer thread is running in this process.
static OPEN_WRITERS: AtomicU64 = AtomicU64::new(0);
/// Hand-offs to writers, and the time the relay waited for them in all (microseconds): how far
/// the recorder holds the relay back.
static HANDOFFS: AtomicU64 = AtomicU64::new(0);
static HANDOFF_WAIT_MICROS: AtomicU64 = AtomicU64::new(0);

/// This process's recorders, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    pub open: u64,
    pub handoffs: u64,
    pub handoff_wait_micros: u64,
}

pub fn recorder_stats() -> RecorderStats {
    RecorderStats {
        open: OPEN_WRITERS.load(Ordering::Relaxed),
        handoffs: HANDOFFS.load(Ordering::Relaxed),
        handoff_wait_micros: HANDOFF_WAIT_MICROS.load(Ordering::Relaxed),
    }
}

/// What the writer is asked to do.
enum Op {
    Streams(Vec<(Stream, Bytes)>),
    Resize(u32, u32),
    Marker(String),
    /// Bytes, then markers after them: one hand-off for an answer and its statements.
    StreamsThenMarkers(Vec<(Stream, Bytes)>, Vec<String>),
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, RecordingError>>;

enum Job {
    Write(Op, Reply<()>),
    Seal(Arc<PrivateKey>, Reply<SealedRecording>),
}

/// Jobs waiting for the writer: the relay's two directions and the notices each wait for
/// their own, so this is rarely more than three.
const QUEUE: usize = 8;

/// The relay's handle on a recording being written.
#[derive(Debug, Clone)]
pub struct LiveRecorder {
    session: Uuid,
    jobs: flume::Sender<Job>,
    /// Disconnected once the writer thread has ended: a job still queued then is never
    /// answered (the channel keeps it while a handle lives), so a call stops waiting on this.
    gone: flume::Receiver<()>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl LiveRecorder {
    /// Starts the writer thread for `recorder`, with a checkpoint at least every
    /// `sync_interval` while anything is written.
    pub fn start(recorder: Recorder, sync_interval: Duration) -> Result<Self, RecordingError> {
        let session = recorder.session();
        let (jobs, queue) = flume::bounded(QUEUE);
        let (alive, gone) = flume::bounded::<()>(0);
        let syncer = Syncer {
            files: Arc::new(recorder.sync_handles()),
            runtime: tokio::runtime::Handle::try_current().ok(),
            running: None,
        };
        std::thread::Builder::new()
            .name("rampart-recorder".into())
            // The writer's frames are small; the default 2 MiB is address space per session.
            .stack_size(256 * 1024)
            .spawn(move || {
                OPEN_WRITERS.fetch_add(1, Ordering::Relaxed);
                write_until_sealed(recorder, syncer, &queue, sync_interval);
                OPEN_WRITERS.fetch_sub(1, Ordering::Relaxed);
                // Every answer is sent by now: waiting calls see the end after their answer.
                drop(alive);
            })
            .map_err(|err| RecordingError::Io {
                path: format!("the writer thread of recording {session}"),
                source: err,
            })?;
        Ok(Self {
            session,
            jobs,
            gone,
        })
    }

    pub fn session(&self) -> Uuid {
        self.session
    }

    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, RecordingError> {
        let (done, written) = tokio::sync::oneshot::channel();
        let started = Instant::now();
        self.jobs
            .send_async(job(done))
            .await
            .map_err(|_| RecordingError::Stopped)?;
        let result = tokio::select! {
            biased;
            answer = written => answer.map_err(|_| RecordingError::Stopped)?,
            // The writer ended (sealed) after this job was queued but before it was read.
            _ = self.gone.recv_async() => return Err(RecordingError::Stopped),
        };
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        HANDOFFS.fetch_add(1, Ordering::Relaxed);
        HANDOFF_WAIT_MICROS.fetch_add(waited, Ordering::Relaxed);
        result
    }

    /// Bytes of one direction; resolves once they are in the file.
    pub async fn stream(&self, stream: Stream, data: Bytes) -> Result<(), RecordingError> {
        self.streams(vec![(stream, data)]).await
    }

    /// Several pieces, in order, in one hand-off to the writer; resolves once all are in the
    /// file.
    pub async fn streams(&self, parts: Vec<(Stream, Bytes)>) -> Result<(), RecordingError> {
        if parts.iter().all(|(_, data)| data.is_empty()) {
            return Ok(());
        }
        self.call(|done| Job::Write(Op::Streams(parts), done)).await
    }

    /// `parts`, then a marker for each of `labels`, in one hand-off to the writer (a database
    /// answer and the statements it completes: one wait instead of one per item).
    pub async fn streams_then_markers(
        &self,
        parts: Vec<(Stream, Bytes)>,
        labels: Vec<String>,
    ) -> Result<(), RecordingError> {
        if labels.is_empty() {
            return self.streams(parts).await;
        }
        self.call(|done| Job::Write(Op::StreamsThenMarkers(parts, labels), done))
            .await
    }

    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), RecordingError> {
        self.call(|done| Job::Write(Op::Resize(cols, rows), done))
            .await
    }

    pub async fn marker(&self, label: &str) -> Result<(), RecordingError> {
        self.call(|done| Job::Write(Op::Marker(label.to_owned()), done))
            .await
    }

    /// Writes what is left and seals the recording; the writer then stops, and every later
    /// call fails. Returns the recording as the chain's `session_ended` event anchors it.
    pub async fn seal(&self, key: Arc<PrivateKey>) -> Result<SealedRecording, RecordingError> {
        self.call(|done| Job::Seal(key, done)).await
    }
}

/// Fsyncs a recording's files away from its writer.
struct Syncer {
    files: Arc<Vec<Arc<std::fs::File>>>,
    /// The blocking pool to fsync on (without a runtime: on the writer thread).
    runtime: Option<tokio::runtime::Handle>,
    /// The fsync under way: its answer.
    running: Option<flume::Receiver<Result<(), String>>>,
}

impl Syncer {
    /// Whether an fsync is under way; the outcome of a finished one goes to `recorder`.
    fn busy(&mut self, recorder: &mut Recorder) -> bool {
        let Some(running) = &self.running else {
            return false;
        };
        let outcome = match running.try_recv() {
            Err(flume::TryRecvError::Empty) => return true,
            Ok(outcome) => outcome,
            Err(flume::TryRecvError::Disconnected) => Err("the fsync task stopped".to_owned()),
        };
        self.running = None;
        if let Err(why) = outcome {
            recorder.fail(why);
        }
        false
    }

    fn start(&mut self, recorder: &mut Recorder) {
        let files = self.files.clone();
        let sync = move || {
            files
                .iter()
                .try_for_each(|file| file.sync_data())
                .map_err(|err| format!("cannot fsync the recording: {err}"))
        };
        match &self.runtime {
            Some(runtime) => {
                let (done, running) = flume::bounded(1);
                runtime.spawn_blocking(move || {
                    let _ = done.send(sync());
                });
                self.running = Some(running);
            }
            None => {
                if let Err(why) = sync() {
                    recorder.fail(why);
                }
            }
        }
    }

    /// A checkpoint: unless the last fsync is still under way, the open chunks are closed into
    /// the manifest and an fsync of everything written so far starts.
    fn checkpoint(&mut self, recorder: &mut Recorder) {
        if self.busy(recorder) {
            return;
        }
        match recorder.close_for_sync() {
            Ok(true) => self.start(recorder),
            Ok(false) => {}
            Err(err) => recorder.fail(err.to_string()),
        }
    }
}

/// The writer thread: applies jobs in order, answers each, checkpoints on time. Ends when the
/// recording is sealed or every handle is gone (then it leaves the recording unsealed but
/// durable, for the next start to seal as interrupted).
fn write_until_sealed(
    mut recorder: Recorder,
    mut syncer: Syncer,
    queue: &flume::Receiver<Job>,
    interval: Duration,
) {
    let mut next_checkpoint = Instant::now() + interval;
    loop {
        // A failed fsync fails the recording before the next job is answered.
        let syncing = syncer.busy(&mut recorder);
        // With nothing written since the last checkpoint and no fsync under way there is
        // nothing to do on time: sleep until the next job (an idle session costs no wake-ups),
        // and count the interval from it.
        let job = if syncing || recorder.dirty() {
            queue.recv_deadline(next_checkpoint)
        } else {
            let job = queue
                .recv()
                .map_err(|flume::RecvError::Disconnected| flume::RecvTimeoutError::Disconnected);
            next_checkpoint = next_checkpoint.max(Instant::now() + interval);
            job
        };
        match job {
            Ok(Job::Write(op, done)) => {
                // Written now, hashed once the relay has its answer: it forwards what is in
                // the file while this thread hashes it.
                recorder.defer_hashing();
                let result = match op {
                    Op::Streams(parts) => parts
                        .iter()
                        .try_for_each(|(stream, data)| recorder.stream(*stream, data)),
                    Op::Resize(cols, rows) => recorder.resize(cols, rows),
                    Op::Marker(label) => recorder.marker(&label),
                    Op::StreamsThenMarkers(parts, labels) => parts
                        .iter()
                        .try_for_each(|(stream, data)| recorder.stream(*stream, data))
                        .and_then(|()| labels.iter().try_for_each(|label| recorder.marker(label))),
                };
                // The caller may have gone (its session ended); nothing waits for the answer.
                let _ = done.send(result);
                // A failure fails the recording: the next call reports it and the session ends.
                let _ = recorder.hash_written();
            }
            Ok(Job::Seal(key, done)) => {
                let _ = done.send(recorder.seal(&key));
                return;
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => {
                // Nobody is left to tell: the log says it (crash recovery seals the file).
                if let Err(err) = recorder.checkpoint() {
                    tracing::error!(error = %err, "cannot write the last part of an abandoned recording");
                }
                return;
            }
        }
        let now = Instant::now();
        if now >= next_checkpoint {
            // A failed checkpoint fails the recording: the next call reports it.
            syncer.checkpoint(&mut recorder);
            // While an fsync is under way, look again soon: the next starts when it is done.
            next_checkpoint = now
                + if syncer.running.is_some() {
                    interval.min(Duration::from_millis(50))
                } else {
                    interval
                };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{CastHeader, RecordingOptions};
    use ssh_key::private::Ed25519Keypair;

    /// A recording of a new session in `dir` (raw streams kept) with its writer started.
    fn started(dir: &std::path::Path, sync_interval: Duration) -> (Uuid, LiveRecorder) {
        let session = Uuid::now_v7();
        let header = CastHeader::new(80, 24, None, Some("cat".into()), "t".into());
        let options = RecordingOptions {
            raw_streams: true,
            cap: None,
        };
        let recorder = Recorder::create_with(dir, session, &header, options).unwrap();
        (
            session,
            LiveRecorder::start(recorder, sync_interval).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_write_is_in_the_file_when_the_call_returns_and_a_checkpoint_hashes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (session, live) = started(tmp.path(), Duration::from_millis(50));
        live.stream(Stream::Output, Bytes::from_static(b"HIDDEN"))
            .await
            .unwrap();
        let raw = std::fs::read(crate::recording::raw_path(tmp.path(), session)).unwrap();
        assert!(raw.ends_with(b"HIDDEN"), "{raw:?}");
        let manifest = crate::recording::manifest_path(tmp.path(), session);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&manifest)
            .unwrap()
            .contains("\"raw\"")
        {
            assert!(Instant::now() < deadline, "no checkpoint");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let key = Arc::new(PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32])));
        live.seal(key.clone()).await.unwrap();
        assert!(matches!(
            live.marker("late").await,
            Err(RecordingError::Stopped)
        ));
        let report = crate::verify_recording(tmp.path(), session, key.public_key()).unwrap();
        assert!(report.complete);
    }

    /// An idle writer sleeps until the next job instead of waking every interval; a write that
    /// follows a long idle stretch (many intervals) is still checkpointed on time.
    #[tokio::test]
    async fn a_write_after_an_idle_stretch_is_still_checkpointed() {
        let tmp = tempfile::tempdir().unwrap();
        let (session, live) = started(tmp.path(), Duration::from_millis(20));
        let manifest = crate::recording::manifest_path(tmp.path(), session);
        let read = || std::fs::read_to_string(&manifest).unwrap();
        live.stream(Stream::Output, Bytes::from_static(b"FIRST"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !read().contains("\"raw\"") {
            assert!(
                Instant::now() < deadline,
                "no checkpoint after the first write"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = read();
        // Ten intervals with nothing written: nothing to checkpoint, nothing changes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(read(), before);
        live.stream(Stream::Output, Bytes::from_static(b"SECOND"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while read() == before {
            assert!(
                Instant::now() < deadline,
                "the write after the idle stretch was never checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let key = Arc::new(PrivateKey::from(Ed25519Keypair::from_seed(&[8; 32])));
        live.seal(key.clone()).await.unwrap();
        let report = crate::verify_recording(tmp.path(), session, key.public_key()).unwrap();
        assert!(report.complete);
    }

    /// Hashing after the answer must leave the same chunks as hashing at once: many batches
    /// across several 1 MiB raw chunks, with markers between them, seal and verify, and the
    /// verifier still catches a flipped byte in the middle.
    #[tokio::test]
    async fn hashing_after_the_answer_keeps_every_chunk_verifiable() {
        let tmp = tempfile::tempdir().unwrap();
        let (session, live) = started(tmp.path(), Duration::from_millis(20));
        for round in 0..40u8 {
            let batch = (0..4)
                .map(|piece| {
                    let stream = if piece % 2 == 0 {
                        Stream::Output
                    } else {
                        Stream::Input
                    };
                    (stream, Bytes::from(vec![round ^ piece; 30_000]))
                })
                .collect();
            live.streams(batch).await.unwrap();
            if round % 7 == 0 {
                live.marker(&format!("round {round}")).await.unwrap();
            }
        }
        let key = Arc::new(PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32])));
        live.seal(key.clone()).await.unwrap();
        let raw = crate::recording::raw_path(tmp.path(), session);
        assert!(std::fs::metadata(&raw).unwrap().len() > 4 * 1024 * 1024);
        let report = crate::verify_recording(tmp.path(), session, key.public_key()).unwrap();
        assert!(report.complete);
        let mut bytes = std::fs::read(&raw).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&raw, bytes).unwrap();
        assert!(crate::verify_recording(tmp.path(), session, key.public_key()).is_err());
    }
}
