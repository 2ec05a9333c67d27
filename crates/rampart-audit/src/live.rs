//! A recording being made: the [`Recorder`] is driven by one of a few writer threads that
//! every recording of the process shares, off the async runtime, and the relay talks to it
//! through that thread's queue.
//!
//! Each call hands the writer one piece of the session and resolves once it is written to the
//! file (`write(2)`), so the relay forwards only what is already recorded. A relay may also
//! queue a piece first and wait for it afterwards ([`LiveRecorder::submit_streams_then_markers`]),
//! to hand over the next piece before it waits: the writer applies a recording's jobs in the
//! order they were queued, so the file reads as if each had been waited for. The writer hashes
//! the piece into its chunk after answering, while the relay forwards it. Whenever
//! `sync_interval` has passed with something written, the writer closes the open chunks into
//! the manifest and starts an fsync of the files on the runtime's blocking pool, and goes on
//! writing meanwhile (a bulk stream is not held to the disk's speed); the next fsync starts
//! when that one is done. So a crash of the machine loses at most the last interval, as long as
//! the disk keeps up with the session. Sealing (its fsync) also runs on the blocking pool, so
//! one recording's disk never holds up the others on its thread.
//!
//! Why shared threads and not one per recording: a thread per session cost its stack and a
//! wake-up per hand-off even while other recordings kept a writer busy; a few threads, one per
//! core at most, serve thousands of sessions, and under load a busy writer takes the next
//! session's piece without sleeping in between. A recording stays on the thread it started on,
//! so its pieces are written in order. The price: a `write(2)` that stalls (a recordings disk
//! that stops taking data) holds up the other recordings on its thread too, as the disk would
//! hold them all up anyway; their sessions wait, and nothing is forwarded unrecorded.
//!
//! There is no lock to poison: the writer owns the files, and a failure of any kind (a write,
//! an fsync, a panic while writing) makes every later call of that recording fail, which ends
//! its session; the other recordings on the thread go on.

use crate::recording::{Recorder, RecordingError, SealedRecording, Stream};
use bytes::Bytes;
use ssh_key::PrivateKey;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Recordings being written in this process.
static OPEN_WRITERS: AtomicU64 = AtomicU64::new(0);
/// Hand-offs to writers, and the time the relay waited for them in all (microseconds): how far
/// the recorder holds the relay back.
static HANDOFFS: AtomicU64 = AtomicU64::new(0);
static HANDOFF_WAIT_MICROS: AtomicU64 = AtomicU64::new(0);
/// Where the writers' time goes (microseconds, all writers): jobs waiting in a writer's queue
/// before it takes them, writing them (`write(2)`), hashing them after the answer, and the
/// answers' way back to the relay (from the writer's send to the relay's wake-up).
static QUEUED_MICROS: AtomicU64 = AtomicU64::new(0);
static WRITE_MICROS: AtomicU64 = AtomicU64::new(0);
static HASH_MICROS: AtomicU64 = AtomicU64::new(0);
static ANSWER_MICROS: AtomicU64 = AtomicU64::new(0);
static WRITE_JOBS: AtomicU64 = AtomicU64::new(0);

/// This process's recorders, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    pub open: u64,
    pub handoffs: u64,
    pub handoff_wait_micros: u64,
    /// Write jobs the writers took, and their time in the writers' queues, writing, hashing,
    /// and on the answer's way back (microseconds, summed).
    pub write_jobs: u64,
    pub queued_micros: u64,
    pub write_micros: u64,
    pub hash_micros: u64,
    pub answer_micros: u64,
}

pub fn recorder_stats() -> RecorderStats {
    RecorderStats {
        open: OPEN_WRITERS.load(Ordering::Relaxed),
        handoffs: HANDOFFS.load(Ordering::Relaxed),
        handoff_wait_micros: HANDOFF_WAIT_MICROS.load(Ordering::Relaxed),
        write_jobs: WRITE_JOBS.load(Ordering::Relaxed),
        queued_micros: QUEUED_MICROS.load(Ordering::Relaxed),
        write_micros: WRITE_MICROS.load(Ordering::Relaxed),
        hash_micros: HASH_MICROS.load(Ordering::Relaxed),
        answer_micros: ANSWER_MICROS.load(Ordering::Relaxed),
    }
}

/// Microseconds from `from` to `to` (zero if `to` is earlier).
fn micros_between(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

/// What the writer is asked to do.
enum Op {
    Streams(Vec<(Stream, Bytes)>),
    Resize(u32, u32),
    Marker(String),
    /// Bytes, then markers after them: one hand-off for an answer and its statements.
    StreamsThenMarkers(Vec<(Stream, Bytes)>, Vec<String>),
}

/// A job's answer, with when the writer sent it (for the answer's way back in `/metrics`).
type Answer<T> = (Result<T, RecordingError>, Instant);

/// Where a job's answer goes.
struct Reply<T>(tokio::sync::oneshot::Sender<Answer<T>>);

impl<T> Reply<T> {
    /// The caller may have gone (its session ended): then nothing waits for the answer.
    fn send(self, result: Result<T, RecordingError>) {
        let _ = self.0.send((result, Instant::now()));
    }
}

enum Job {
    Write(Op, Reply<()>),
    Seal(Arc<PrivateKey>, Reply<SealedRecording>),
}

/// What a writer thread's queue carries. The queue is unbounded, but what waits in it is
/// bounded by its callers: each call waits for its answer, and a session's relay makes a few
/// at a time.
enum Message {
    /// A new recording for this thread, under its number.
    Open(u64, Box<Open>),
    /// A job of a recording, with when it was queued.
    Job(u64, Job, Instant),
    /// Every handle on the recording is gone without a seal (its session's task ended): the
    /// thread makes what was written durable and lets it go, unsealed, for the next start to
    /// seal as interrupted.
    Abandon(u64),
}

/// The writer threads (one per core, at most four), started with the first recording.
struct Writers {
    queues: Vec<flume::Sender<Message>>,
    next: AtomicUsize,
    numbers: AtomicU64,
}

/// The process's writers; an error if they cannot be started (every recording then fails, and
/// so does its session).
fn writers() -> Result<&'static Writers, RecordingError> {
    static WRITERS: OnceLock<Result<Writers, String>> = OnceLock::new();
    let started = WRITERS.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 4);
        let queues = (0..threads)
            .map(|n| {
                let (queue, messages) = flume::unbounded();
                std::thread::Builder::new()
                    .name(format!("rampart-rec-{n}"))
                    .spawn(move || write_forever(&messages))
                    .map(|_| queue)
                    .map_err(|err| format!("cannot start a recording writer thread: {err}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Writers {
            queues,
            next: AtomicUsize::new(0),
            numbers: AtomicU64::new(1),
        })
    });
    started
        .as_ref()
        .map_err(|why| RecordingError::Failed(why.clone()))
}

/// The relay's handle on a recording being written.
#[derive(Debug, Clone)]
pub struct LiveRecorder {
    session: Uuid,
    handle: Arc<Handle>,
}

/// The recording's number on its writer thread; the last handle to go tells the thread.
#[derive(Debug)]
struct Handle {
    number: u64,
    queue: flume::Sender<Message>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.queue.send(Message::Abandon(self.number));
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl LiveRecorder {
    /// Hands `recorder` to a writer thread, with a checkpoint at least every `sync_interval`
    /// while anything is written.
    pub fn start(recorder: Recorder, sync_interval: Duration) -> Result<Self, RecordingError> {
        let session = recorder.session();
        let writers = writers()?;
        let turn = writers.next.fetch_add(1, Ordering::Relaxed);
        let queue = writers
            .queues
            .get(turn % writers.queues.len().max(1))
            .ok_or(RecordingError::Stopped)?
            .clone();
        let number = writers.numbers.fetch_add(1, Ordering::Relaxed);
        let open = Open {
            syncer: Syncer {
                files: Arc::new(recorder.sync_handles()),
                running: None,
            },
            recorder,
            interval: sync_interval,
            runtime: tokio::runtime::Handle::try_current().ok(),
            timer: None,
        };
        queue
            .send(Message::Open(number, Box::new(open)))
            .map_err(|_| RecordingError::Stopped)?;
        Ok(Self {
            session,
            handle: Arc::new(Handle { number, queue }),
        })
    }

    pub fn session(&self) -> Uuid {
        self.session
    }

    async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<T, RecordingError> {
        self.submit(job)?.await
    }

    /// Queues `job` on the writer now; the answer is awaited separately. The time the caller
    /// then waits for it (from its first poll) is what `/metrics` reports as the recorder's lag.
    fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<impl Future<Output = Result<T, RecordingError>> + Send + 'static, RecordingError>
    {
        let (done, written) = tokio::sync::oneshot::channel();
        self.handle
            .queue
            .send(Message::Job(
                self.handle.number,
                job(Reply(done)),
                Instant::now(),
            ))
            .map_err(|_| RecordingError::Stopped)?;
        Ok(async move {
            let started = Instant::now();
            // No answer at all: the writer dropped the job (it panicked on this recording).
            let (result, sent) = written.await.map_err(|_| RecordingError::Stopped)?;
            let now = Instant::now();
            HANDOFFS.fetch_add(1, Ordering::Relaxed);
            HANDOFF_WAIT_MICROS.fetch_add(micros_between(started, now), Ordering::Relaxed);
            ANSWER_MICROS.fetch_add(micros_between(sent, now), Ordering::Relaxed);
            result
        })
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

    /// [`Self::streams_then_markers`] split in two: the pieces are queued on the writer now
    /// (in order after everything queued before), and the returned future resolves once they
    /// are in the file. A relay hands over the next batch before it waits for this one, so the
    /// writer's work overlaps its own; it still forwards a batch only once its future resolved.
    pub fn submit_streams_then_markers(
        &self,
        parts: Vec<(Stream, Bytes)>,
        labels: Vec<String>,
    ) -> Result<impl Future<Output = Result<(), RecordingError>> + Send + 'static, RecordingError>
    {
        self.submit(|done| Job::Write(Op::StreamsThenMarkers(parts, labels), done))
    }

    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), RecordingError> {
        self.call(|done| Job::Write(Op::Resize(cols, rows), done))
            .await
    }

    pub async fn marker(&self, label: &str) -> Result<(), RecordingError> {
        self.call(|done| Job::Write(Op::Marker(label.to_owned()), done))
            .await
    }

    /// Writes what is left and seals the recording; every later call fails. Returns the
    /// recording as the chain's `session_ended` event anchors it.
    pub async fn seal(&self, key: Arc<PrivateKey>) -> Result<SealedRecording, RecordingError> {
        self.call(|done| Job::Seal(key, done)).await
    }
}

/// A recording on a writer thread.
struct Open {
    recorder: Recorder,
    syncer: Syncer,
    interval: Duration,
    /// The blocking pool for fsyncs and the seal (without a runtime: the writer thread).
    runtime: Option<tokio::runtime::Handle>,
    /// When the thread next looks at this recording on its own (a checkpoint, or whether the
    /// fsync under way is done); none while there is nothing to do.
    timer: Option<Instant>,
}

/// Runs `work` on the blocking pool (without a runtime: here, on the writer thread).
fn off_thread(runtime: Option<&tokio::runtime::Handle>, work: impl FnOnce() + Send + 'static) {
    match runtime {
        Some(runtime) => drop(runtime.spawn_blocking(work)),
        None => work(),
    }
}

impl Open {
    fn write(&mut self, op: Op, done: Reply<()>, queued: Instant) {
        let started = Instant::now();
        let recorder = &mut self.recorder;
        // A failed fsync fails the recording before the next job is answered.
        self.syncer.busy(recorder);
        // Written now, hashed once the relay has its answer: it forwards what is in the file
        // while this thread hashes it.
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
        let written = Instant::now();
        done.send(result);
        // A failure fails the recording: the next call reports it and the session ends.
        let _ = recorder.hash_written();
        WRITE_JOBS.fetch_add(1, Ordering::Relaxed);
        QUEUED_MICROS.fetch_add(micros_between(queued, started), Ordering::Relaxed);
        WRITE_MICROS.fetch_add(micros_between(started, written), Ordering::Relaxed);
        HASH_MICROS.fetch_add(micros_between(written, Instant::now()), Ordering::Relaxed);
    }

    /// The thread's own look at the recording, when its timer is due: a checkpoint unless the
    /// last fsync is still under way. Returns when to look again.
    fn on_time(&mut self, now: Instant) -> Option<Instant> {
        self.syncer
            .checkpoint(&mut self.recorder, self.runtime.as_ref());
        if self.syncer.running.is_some() {
            // The next starts when this one is done: look again soon.
            Some(now + self.interval.min(Duration::from_millis(50)))
        } else if self.recorder.dirty() {
            Some(now + self.interval)
        } else {
            None
        }
    }

    /// Whether the recording needs the thread's look on time (written and not checkpointed,
    /// or an fsync under way).
    fn wants_timer(&self) -> bool {
        self.recorder.dirty() || self.syncer.running.is_some()
    }
}

/// Fsyncs a recording's files away from its writer.
struct Syncer {
    files: Arc<Vec<Arc<std::fs::File>>>,
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

    fn start(&mut self, runtime: Option<&tokio::runtime::Handle>) {
        let files = self.files.clone();
        let (done, running) = flume::bounded(1);
        off_thread(runtime, move || {
            let synced = files
                .iter()
                .try_for_each(|file| file.sync_data())
                .map_err(|err| format!("cannot fsync the recording: {err}"));
            let _ = done.send(synced);
        });
        self.running = Some(running);
    }

    /// A checkpoint: unless the last fsync is still under way, the open chunks are closed into
    /// the manifest and an fsync of everything written so far starts.
    fn checkpoint(&mut self, recorder: &mut Recorder, runtime: Option<&tokio::runtime::Handle>) {
        if self.busy(recorder) {
            return;
        }
        match recorder.close_for_sync() {
            Ok(true) => self.start(runtime),
            Ok(false) => {}
            Err(err) => recorder.fail(err.to_string()),
        }
    }
}

/// A writer thread: applies each recording's jobs in order, answers each, and checkpoints
/// every recording on time. Runs as long as the process.
fn write_forever(messages: &flume::Receiver<Message>) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    // When to look at which recording; an entry whose recording has another time (or is gone)
    // is stale and skipped.
    let mut timers: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    loop {
        let message = match timers.peek() {
            Some(Reverse((at, _))) => messages.recv_deadline(*at),
            // Nothing due: sleep until the next job (idle sessions cost no wake-ups).
            None => messages
                .recv()
                .map_err(|flume::RecvError::Disconnected| flume::RecvTimeoutError::Disconnected),
        };
        match message {
            Ok(message) => {
                let number = match &message {
                    Message::Open(number, _)
                    | Message::Job(number, _, _)
                    | Message::Abandon(number) => *number,
                };
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle(&mut open, message)
                }));
                match handled {
                    Ok(()) => {
                        if let Some(recording) = open.get_mut(&number)
                            && recording.timer.is_none()
                            && recording.wants_timer()
                        {
                            let at = Instant::now() + recording.interval;
                            recording.timer = Some(at);
                            timers.push(Reverse((at, number)));
                        }
                    }
                    Err(_) => {
                        // Its replies are dropped with it: its calls fail and its session ends.
                        tracing::error!(
                            recording = number,
                            "a recording's writer panicked; the recording fails"
                        );
                        if open.remove(&number).is_some() {
                            OPEN_WRITERS.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            // The queue is the process's: it never disconnects.
            Err(flume::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while let Some(&Reverse((at, number))) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            let Some(recording) = open.get_mut(&number) else {
                continue;
            };
            if recording.timer != Some(at) {
                continue;
            }
            recording.timer = recording.on_time(now);
            if let Some(next) = recording.timer {
                timers.push(Reverse((next, number)));
            }
        }
    }
}

fn handle(open: &mut HashMap<u64, Open>, message: Message) {
    match message {
        Message::Open(number, recording) => {
            OPEN_WRITERS.fetch_add(1, Ordering::Relaxed);
            open.insert(number, *recording);
        }
        Message::Job(number, job, queued) => {
            let Some(recording) = open.get_mut(&number) else {
                // Sealed (or failed) already: every later call fails.
                match job {
                    Job::Write(_, done) => done.send(Err(RecordingError::Stopped)),
                    Job::Seal(_, done) => done.send(Err(RecordingError::Stopped)),
                }
                return;
            };
            match job {
                Job::Write(op, done) => recording.write(op, done, queued),
                Job::Seal(key, done) => {
                    let Some(recording) = open.remove(&number) else {
                        return;
                    };
                    OPEN_WRITERS.fetch_sub(1, Ordering::Relaxed);
                    // The seal's fsync on the blocking pool: the thread's other recordings go on.
                    let Open {
                        recorder, runtime, ..
                    } = recording;
                    off_thread(runtime.as_ref(), move || {
                        done.send(recorder.seal(&key));
                    });
                }
            }
        }
        Message::Abandon(number) => {
            let Some(recording) = open.remove(&number) else {
                return;
            };
            OPEN_WRITERS.fetch_sub(1, Ordering::Relaxed);
            let Open {
                mut recorder,
                runtime,
                ..
            } = recording;
            // Nobody is left to tell: the log says it (crash recovery seals the file).
            off_thread(runtime.as_ref(), move || {
                if let Err(err) = recorder.checkpoint() {
                    tracing::error!(error = %err, "cannot write the last part of an abandoned recording");
                }
            });
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

    /// The threads named `rampart-rec-N` in this process (the writers).
    fn writer_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("rampart-rec-"))
            .count()
    }

    /// Sixty recordings at once are written by a few shared threads (at most four), each in
    /// its own order, and every one seals and verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_recordings_share_a_few_writer_threads_and_each_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let recordings: Vec<_> = (0..60)
            .map(|_| started(tmp.path(), Duration::from_millis(20)))
            .collect();
        let mut writing = tokio::task::JoinSet::new();
        for (n, (_, live)) in recordings.iter().enumerate() {
            let live = live.clone();
            writing.spawn(async move {
                for round in 0..20 {
                    let text = format!("recording {n} round {round}\n");
                    live.stream(Stream::Output, Bytes::from(text))
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(done) = writing.join_next().await {
            done.unwrap();
        }
        let threads = writer_threads();
        assert!((1..=4).contains(&threads), "{threads} writer threads");
        let key = Arc::new(PrivateKey::from(Ed25519Keypair::from_seed(&[10; 32])));
        for (n, (session, live)) in recordings.iter().enumerate() {
            live.seal(key.clone()).await.unwrap();
            let report = crate::verify_recording(tmp.path(), *session, key.public_key()).unwrap();
            assert!(report.complete);
            let raw = std::fs::read(crate::recording::raw_path(tmp.path(), *session)).unwrap();
            let raw = String::from_utf8_lossy(&raw);
            let rounds: Vec<usize> = (0..20)
                .map(|round| raw.find(&format!("recording {n} round {round}\n")).unwrap())
                .collect();
            assert!(rounds.is_sorted(), "recording {n} out of order");
        }
        assert_eq!(writer_threads(), threads);
    }

    /// A recording whose every handle is dropped without a seal (its session's task ended) is
    /// left durable: what was written is checkpointed into its manifest for the next start to
    /// seal as interrupted.
    #[tokio::test]
    async fn an_abandoned_recording_is_checkpointed_for_crash_recovery() {
        let tmp = tempfile::tempdir().unwrap();
        let (session, live) = started(tmp.path(), Duration::from_secs(3600));
        live.stream(Stream::Output, Bytes::from_static(b"LAST WORDS"))
            .await
            .unwrap();
        let manifest = crate::recording::manifest_path(tmp.path(), session);
        assert!(
            !std::fs::read_to_string(&manifest)
                .unwrap()
                .contains("\"raw\"")
        );
        drop(live);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&manifest)
            .unwrap()
            .contains("\"raw\"")
        {
            assert!(
                Instant::now() < deadline,
                "the abandoned recording was not checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
