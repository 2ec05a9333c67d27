//! The one interface every recorder and protocol inspector attaches through ([`Observer`]), and
//! the ordered set of them a session runs ([`ObserverSet`]).
//!
//! An observer sees bytes in each direction and the session's control events, and nothing of
//! the wire protocol that carries them: the terminal recorder, the command log, the SFTP and
//! scp observers today; a query log or a frame recorder later. Each call resolves once the
//! observer is done with the bytes (the recorder: once they are written to the file), and the
//! front forwards them only after that: recorded before forwarded. Any error ends the session
//! (fail closed).
//!
//! INVARIANT: the set calls its observers in the order they were attached, each with the bytes
//! as the peer sent them; at most one observer rewrites what the client sent (the SFTP
//! direction filter), and a second one that tries is an error.

use bytes::Bytes;
use rampart_audit::Stream;
use rampart_audit::sftp::SftpEvent;
use rampart_core::audit::RecordingAnchor;
use std::future::Future;
use std::pin::Pin;

/// What an observer call resolves to; an error ends the session.
pub type ObserverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A write handed over and under way: resolves once what was handed over is in the recording
/// (see [`Observer::submit_target_then_mark`]). Holds nothing of the bytes' owner.
pub type Written = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// A [`Written`] that is done already.
fn written_now() -> Written {
    Box::pin(std::future::ready(Ok(())))
}

/// One [`Written`] for several: resolves once each has, in order (the first error ends it).
fn all_written(mut writes: Vec<Written>) -> Written {
    match writes.len() {
        0 => written_now(),
        1 => writes.swap_remove(0),
        _ => Box::pin(async move {
            for write in writes {
                write.await?;
            }
            Ok(())
        }),
    }
}

/// Something an observer found in the bytes, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A command the user ran in a shell (read from the screen).
    Command(String),
    /// A file moved, changed or refused (SFTP, legacy scp).
    File(SftpEvent),
    /// A command rule matched a command of a line (`crate::command_control`).
    Rule(crate::command_control::RuleFinding),
}

/// A session event that is not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control<'a> {
    /// The user's terminal changed size.
    Resize { cols: u32, rows: u32 },
    /// A line Rampart showed the user (a warning, why the session ended), or a command the
    /// command log read: a recorder marks it.
    Marker(&'a str),
}

/// What an observer makes of bytes the client sent.
#[derive(Debug, Default)]
pub struct ClientVerdict {
    /// What passes to the target instead of the bytes (`None`: all of them, unchanged).
    pub forward: Option<Vec<u8>>,
    /// What Rampart answers the client itself (refused SFTP requests), put into the stream to
    /// the client between two of the target's packets.
    pub replies: Vec<u8>,
    pub findings: Vec<Finding>,
    /// A shell line held for an approver: its Enter is kept back by the observer until
    /// [`Observer::release`] (`crate::command_control`).
    pub hold: Option<crate::command_control::HeldLine>,
}

/// What an observer leaves when the session ends.
#[derive(Debug, Default)]
pub struct Finished {
    /// What was still open (files an SFTP session never closed).
    pub findings: Vec<Finding>,
    /// The sealed recording as the chain anchors it (recorders only).
    pub recording: Option<RecordingAnchor>,
}

/// A recorder or protocol inspector of one session.
pub trait Observer: Send + Sync {
    /// Bytes the client sent, before they go to the target.
    fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict>;

    /// Several chunks the client sent (in order, as one hand-off: the front reads ahead what
    /// the client has already sent), before any of them goes to the target: one verdict per
    /// chunk, in order. By default each chunk goes through [`Self::client`] in turn; a recorder
    /// overrides it to write the batch in one hand-off to its writer.
    fn clients<'a>(&'a self, batch: &'a [Bytes]) -> ObserverFuture<'a, Vec<ClientVerdict>> {
        Box::pin(async move {
            let mut verdicts = Vec::with_capacity(batch.len());
            for data in batch {
                verdicts.push(self.client(data).await?);
            }
            Ok(verdicts)
        })
    }

    /// [`Self::clients`] in two steps: resolves once the observer has the batch, with its
    /// verdicts and a [`Written`] that resolves once the batch is recorded. By default it does
    /// all of it before resolving; a recorder overrides it to queue the write and return at
    /// once, so the front can hand over its next batch while this one is written.
    fn submit_clients<'a>(
        &'a self,
        batch: &'a [Bytes],
    ) -> ObserverFuture<'a, (Vec<ClientVerdict>, Written)> {
        Box::pin(async move { Ok((self.clients(batch).await?, written_now())) })
    }

    /// Bytes the target sent (several chunks, in order, as one hand-off), before they go to
    /// the client.
    fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>>;

    /// Whether this observer only records the target's bytes (a recorder: it finds nothing in
    /// them). The set then asks the other observers first and hands it the bytes with the
    /// commands found in them through [`Self::target_then_mark`].
    fn only_records_target(&self) -> bool {
        false
    }

    /// The target's bytes, then a marker for each of `commands` (found in them by the other
    /// observers). By default [`Self::target`] then a [`Control::Marker`] each; a recorder
    /// overrides it to write both in one hand-off to its writer.
    fn target_then_mark<'a>(
        &'a self,
        batch: &'a [(Stream, Bytes)],
        commands: &'a [String],
    ) -> ObserverFuture<'a, ()> {
        Box::pin(async move {
            self.target(batch).await?;
            for command in commands {
                self.control(Control::Marker(command)).await?;
            }
            Ok(())
        })
    }

    /// [`Self::target_then_mark`] in two steps: resolves once the bytes and markers are handed
    /// over, to a [`Written`] that resolves once they are recorded. By default it does all of it
    /// before resolving; a recorder overrides it to queue the write and return at once, so the
    /// front can hand over its next batch while this one is written.
    fn submit_target_then_mark<'a>(
        &'a self,
        batch: &'a [(Stream, Bytes)],
        commands: &'a [String],
    ) -> ObserverFuture<'a, Written> {
        Box::pin(async move {
            self.target_then_mark(batch, commands).await?;
            Ok(written_now())
        })
    }

    /// A control event.
    fn control<'a>(&'a self, event: Control<'a>) -> ObserverFuture<'a, ()>;

    /// Whether Rampart may put a reply of its own into the stream to the client now without
    /// breaking a packet of the protocol.
    fn may_interject(&self) -> bool {
        true
    }

    /// The line this observer held (a verdict's `hold`) was decided: what goes to the target
    /// now (`None`: it holds nothing).
    fn release(&self, _approved: bool) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }

    /// The session is over: finish (a recorder marks the exit status and seals). Called once.
    fn finish(&self, exit_status: Option<i64>) -> ObserverFuture<'_, Finished>;
}

/// A future that is ready at once.
pub fn ready<'a, T: Send + 'a>(value: Result<T, String>) -> ObserverFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// The observers of one session, in order.
#[derive(Default)]
pub struct ObserverSet {
    observers: Vec<Box<dyn Observer>>,
}

impl std::fmt::Debug for ObserverSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverSet")
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl ObserverSet {
    pub fn new(observers: Vec<Box<dyn Observer>>) -> Self {
        Self { observers }
    }

    pub(crate) async fn client(&self, data: &Bytes) -> Result<ClientVerdict, String> {
        let mut verdicts = self.clients(std::slice::from_ref(data)).await?;
        verdicts
            .pop()
            .ok_or_else(|| "an observer gave no verdict on the input".to_owned())
    }

    /// Every observer sees the whole batch in one call (in the order they were attached); the
    /// verdicts are merged per chunk. Resolves once every observer has written it.
    pub(crate) async fn clients(&self, batch: &[Bytes]) -> Result<Vec<ClientVerdict>, String> {
        let (verdicts, written) = self.submit_clients(batch).await?;
        written.await?;
        Ok(verdicts)
    }

    /// [`Self::clients`] in two steps: resolves once every observer has the batch (the
    /// inspectors have judged it, the recorders' writes are queued), with the verdicts and a
    /// [`Written`] that resolves once the recorders have written it: the front acts on the
    /// verdicts only after that. Batches handed over one after the other are judged and
    /// recorded in that order.
    pub(crate) async fn submit_clients(
        &self,
        batch: &[Bytes],
    ) -> Result<(Vec<ClientVerdict>, Written), String> {
        let mut verdicts: Vec<ClientVerdict> =
            batch.iter().map(|_| ClientVerdict::default()).collect();
        let mut writes = Vec::new();
        for observer in &self.observers {
            let (ones, written) = observer.submit_clients(batch).await?;
            writes.push(written);
            if ones.len() != batch.len() {
                return Err("an observer gave a verdict on a different number of chunks".into());
            }
            for (verdict, one) in verdicts.iter_mut().zip(ones) {
                if one.forward.is_some() {
                    if verdict.forward.is_some() {
                        return Err("two observers rewrote the same input".into());
                    }
                    verdict.forward = one.forward;
                }
                verdict.replies.extend(one.replies);
                verdict.findings.extend(one.findings);
                if one.hold.is_some() {
                    verdict.hold = one.hold;
                }
            }
        }
        Ok((verdicts, all_written(writes)))
    }

    /// Every observer sees the batch; commands found are then marked by every observer. The
    /// observers that find things see it first; a recorder then gets the bytes and their
    /// markers in one hand-off (bytes first, so the recording reads as before). Resolves once
    /// every observer has the batch (the inspectors are done with it, the recorders' writes
    /// are queued), with what was found and a [`Written`] that resolves once the recorders have
    /// written it: the front forwards the batch only after that. Batches handed over one after
    /// the other are recorded in that order. If an inspector fails, the recorders still record
    /// the bytes that made it fail.
    pub(crate) async fn submit_target(
        &self,
        batch: &[(Stream, Bytes)],
    ) -> Result<(Vec<Finding>, Written), String> {
        let (recorders, finders): (Vec<&dyn Observer>, Vec<&dyn Observer>) = self
            .observers
            .iter()
            .map(|observer| observer.as_ref())
            .partition(|observer| observer.only_records_target());
        let mut findings = Vec::new();
        for observer in &finders {
            match observer.target(batch).await {
                Ok(found) => findings.extend(found),
                Err(err) => {
                    for recorder in &recorders {
                        recorder.target(batch).await?;
                    }
                    return Err(err);
                }
            }
        }
        let commands: Vec<String> = findings
            .iter()
            .filter_map(|finding| match finding {
                Finding::Command(command) => Some(command.clone()),
                _ => None,
            })
            .collect();
        let mut writes = Vec::with_capacity(recorders.len());
        for recorder in &recorders {
            writes.push(recorder.submit_target_then_mark(batch, &commands).await?);
        }
        for observer in &finders {
            for command in &commands {
                observer.control(Control::Marker(command)).await?;
            }
        }
        Ok((findings, all_written(writes)))
    }

    pub(crate) async fn control(&self, event: Control<'_>) -> Result<(), String> {
        for observer in &self.observers {
            observer.control(event).await?;
        }
        Ok(())
    }

    /// The held line was decided: what the observer that held it sends to the target.
    pub(crate) fn release(&self, approved: bool) -> Result<Vec<u8>, String> {
        for observer in &self.observers {
            if let Some(bytes) = observer.release(approved)? {
                return Ok(bytes);
            }
        }
        Err("no observer holds a line".to_owned())
    }

    pub(crate) fn may_interject(&self) -> bool {
        self.observers
            .iter()
            .all(|observer| observer.may_interject())
    }

    /// Finishes every observer, even after one failed; the first failure is returned with
    /// whatever the others left.
    pub(crate) async fn finish(&self, exit_status: Option<i64>) -> (Finished, Option<String>) {
        let mut all = Finished::default();
        let mut failure = None;
        for observer in &self.observers {
            match observer.finish(exit_status).await {
                Ok(finished) => {
                    all.findings.extend(finished.findings);
                    if finished.recording.is_some() {
                        all.recording = finished.recording;
                    }
                }
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        (all, failure)
    }
}

/// Runs `use_value` on what `slot` holds. A poisoned lock (a panic while an observer held it)
/// is an error: the session ends rather than pass data unobserved.
pub(crate) fn with_lock<T, R>(
    slot: &std::sync::Mutex<T>,
    use_value: impl FnOnce(&mut T) -> R,
) -> Result<R, String> {
    let mut guard = slot
        .lock()
        .map_err(|_| "an observer of the session failed (poisoned lock)".to_owned())?;
    Ok(use_value(&mut guard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An observer that notes what it saw, rewrites the input if told to, and can fail.
    #[derive(Default)]
    struct Probe {
        rewrite: Option<Vec<u8>>,
        finds_command: bool,
        fail_finish: bool,
        /// Acts as a recorder: only records the target's bytes, marks in the same call.
        records_only: bool,
        /// Fails on the target's bytes (a protocol error an inspector finds).
        fail_target: bool,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Observer for Probe {
        fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("client {}", String::from_utf8_lossy(data)));
            ready(Ok(ClientVerdict {
                forward: self.rewrite.clone(),
                ..ClientVerdict::default()
            }))
        }

        fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("target {}", batch.len()));
            if self.fail_target {
                return ready(Err("bad answer".into()));
            }
            let found = if self.finds_command {
                vec![Finding::Command("ls -l".into())]
            } else {
                vec![]
            };
            ready(Ok(found))
        }

        fn only_records_target(&self) -> bool {
            self.records_only
        }

        fn target_then_mark<'a>(
            &'a self,
            batch: &'a [(Stream, Bytes)],
            commands: &'a [String],
        ) -> ObserverFuture<'a, ()> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("target {} then marks {commands:?}", batch.len()));
            ready(Ok(()))
        }

        fn control<'a>(&'a self, event: Control<'a>) -> ObserverFuture<'a, ()> {
            self.seen.lock().unwrap().push(format!("{event:?}"));
            ready(Ok(()))
        }

        fn finish(&self, exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("finish {exit_status:?}"));
            if self.fail_finish {
                return ready(Err("cannot seal".into()));
            }
            ready(Ok(Finished::default()))
        }
    }

    impl ObserverSet {
        /// The batch handed over and written.
        async fn target(&self, batch: &[(Stream, Bytes)]) -> Result<Vec<Finding>, String> {
            let (findings, written) = self.submit_target(batch).await?;
            written.await?;
            Ok(findings)
        }
    }

    #[tokio::test]
    async fn every_observer_sees_the_bytes_as_sent_and_one_may_rewrite_them() {
        let (first, second) = (Probe::default(), Probe::default());
        let (seen_first, seen_second) = (first.seen.clone(), second.seen.clone());
        let filter = Probe {
            rewrite: Some(b"safe".to_vec()),
            ..Probe::default()
        };
        let set = ObserverSet::new(vec![Box::new(first), Box::new(filter), Box::new(second)]);
        let verdict = set.client(&Bytes::from_static(b"raw")).await.unwrap();
        assert_eq!(verdict.forward, Some(b"safe".to_vec()));
        assert_eq!(*seen_first.lock().unwrap(), ["client raw"]);
        assert_eq!(*seen_second.lock().unwrap(), ["client raw"]);

        let twice = ObserverSet::new(vec![
            Box::new(Probe {
                rewrite: Some(vec![]),
                ..Probe::default()
            }),
            Box::new(Probe {
                rewrite: Some(vec![]),
                ..Probe::default()
            }),
        ]);
        assert!(twice.client(&Bytes::from_static(b"x")).await.is_err());
    }

    #[tokio::test]
    async fn a_batch_is_seen_whole_by_every_observer_and_judged_chunk_by_chunk() {
        let first = Probe::default();
        let seen = first.seen.clone();
        let filter = Probe {
            rewrite: Some(b"safe".to_vec()),
            ..Probe::default()
        };
        let set = ObserverSet::new(vec![Box::new(first), Box::new(filter)]);
        let batch = [Bytes::from_static(b"one"), Bytes::from_static(b"two")];
        let verdicts = set.clients(&batch).await.unwrap();
        // One verdict per chunk, in order; the default form calls `client` once per chunk.
        assert_eq!(verdicts.len(), 2);
        assert!(
            verdicts
                .iter()
                .all(|verdict| verdict.forward == Some(b"safe".to_vec()))
        );
        assert_eq!(*seen.lock().unwrap(), ["client one", "client two"]);
    }

    #[tokio::test]
    async fn a_command_one_observer_finds_is_marked_in_every_observer() {
        let recorder = Probe::default();
        let seen = recorder.seen.clone();
        let commands = Probe {
            finds_command: true,
            ..Probe::default()
        };
        let set = ObserverSet::new(vec![Box::new(recorder), Box::new(commands)]);
        let batch = [(Stream::Output, Bytes::from_static(b"ls -l\r\n"))];
        let findings = set.target(&batch).await.unwrap();
        assert_eq!(findings, [Finding::Command("ls -l".into())]);
        assert_eq!(*seen.lock().unwrap(), ["target 1", "Marker(\"ls -l\")"]);
    }

    #[tokio::test]
    async fn a_recorder_gets_the_answer_and_its_statements_markers_in_one_call() {
        let recorder = Probe {
            records_only: true,
            ..Probe::default()
        };
        let seen = recorder.seen.clone();
        let log = Probe {
            finds_command: true,
            ..Probe::default()
        };
        let seen_log = log.seen.clone();
        let set = ObserverSet::new(vec![Box::new(recorder), Box::new(log)]);
        let batch = [(Stream::Output, Bytes::from_static(b"answer"))];
        let findings = set.target(&batch).await.unwrap();
        assert_eq!(findings, [Finding::Command("ls -l".into())]);
        assert_eq!(*seen.lock().unwrap(), ["target 1 then marks [\"ls -l\"]"]);
        assert_eq!(*seen_log.lock().unwrap(), ["target 1", "Marker(\"ls -l\")"]);

        // An inspector that fails on the answer: the recorder still records the bytes.
        let recorder = Probe {
            records_only: true,
            ..Probe::default()
        };
        let seen = recorder.seen.clone();
        let failing = Probe {
            fail_target: true,
            ..Probe::default()
        };
        let set = ObserverSet::new(vec![Box::new(recorder), Box::new(failing)]);
        assert!(set.target(&batch).await.is_err());
        assert_eq!(*seen.lock().unwrap(), ["target 1"]);
    }

    /// A recorder whose write of the input is done only when the test says so.
    struct SlowRecorder(Mutex<Option<tokio::sync::oneshot::Receiver<Result<(), String>>>>);

    impl Observer for SlowRecorder {
        fn client<'a>(&'a self, _data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
            ready(Err("the recorder is handed batches only".into()))
        }

        fn submit_clients<'a>(
            &'a self,
            batch: &'a [Bytes],
        ) -> ObserverFuture<'a, (Vec<ClientVerdict>, Written)> {
            let write = self.0.lock().unwrap().take().unwrap();
            let verdicts = batch.iter().map(|_| ClientVerdict::default()).collect();
            let written: Written =
                Box::pin(async move { write.await.map_err(|_| "writer gone".to_owned())? });
            ready(Ok((verdicts, written)))
        }

        fn target<'a>(&'a self, _batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
            ready(Ok(vec![]))
        }

        fn control<'a>(&'a self, _event: Control<'a>) -> ObserverFuture<'a, ()> {
            ready(Ok(()))
        }

        fn finish(&self, _exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
            ready(Ok(Finished::default()))
        }
    }

    #[tokio::test]
    async fn input_handed_over_is_judged_at_once_and_its_write_is_waited_for_apart() {
        let (done, write) = tokio::sync::oneshot::channel();
        let filter = Probe {
            rewrite: Some(b"safe".to_vec()),
            ..Probe::default()
        };
        let set = ObserverSet::new(vec![
            Box::new(SlowRecorder(Mutex::new(Some(write)))),
            Box::new(filter),
        ]);
        let batch = [Bytes::from_static(b"one"), Bytes::from_static(b"two")];
        // The verdicts are there while the recorder's write is still under way.
        let (verdicts, written) = set.submit_clients(&batch).await.unwrap();
        assert_eq!(verdicts.len(), 2);
        assert!(
            verdicts
                .iter()
                .all(|verdict| verdict.forward == Some(b"safe".to_vec()))
        );
        let mut written = written;
        assert!(futures_poll_once(&mut written).await.is_none());
        // A failed write is the batch's failure (the front forwards none of it).
        done.send(Err("disk full".into())).unwrap();
        assert_eq!(written.await, Err("disk full".to_owned()));
    }

    /// What `future` gives if it is ready at its first poll.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|context| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(context) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn finishing_goes_on_after_a_failure_and_reports_it() {
        let failing = Probe {
            fail_finish: true,
            ..Probe::default()
        };
        let after = Probe::default();
        let seen = after.seen.clone();
        let set = ObserverSet::new(vec![Box::new(failing), Box::new(after)]);
        let (_, failure) = set.finish(Some(3)).await;
        assert_eq!(failure.as_deref(), Some("cannot seal"));
        assert_eq!(*seen.lock().unwrap(), ["finish Some(3)"]);
    }

    #[test]
    fn a_poisoned_observer_lock_is_an_error_not_an_empty_slot() {
        let slot = Arc::new(Mutex::new(0u32));
        assert_eq!(with_lock(&slot, |n| *n + 1), Ok(1));
        let poisoner = slot.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("an observer panicked");
        })
        .join();
        assert!(slot.is_poisoned());
        assert!(with_lock(&slot, |n| *n + 1).is_err());
    }
}
