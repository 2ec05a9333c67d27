//! The searchable rows of a recorded database session's statements (the command log and its
//! `command_run` events, what `rampart audit queries` reads), written in batches by a task of
//! the session's own, off the relay's path.
//!
//! Why: a statement's evidence is its marker in the session's sealed, hash-chained recording,
//! written before its answer is passed back (`ObserverSet::target` marks every command the
//! observers find). Committing each statement's row to SQLite before the answer as well (a
//! write transaction with an fsync) held every query to the disk's speed: pgbench ran at a few
//! percent of direct. So the rows are queued (bounded: the relay waits while the queue is
//! full) and a writer commits whatever has gathered in one transaction, in order.
//!
//! Fail closed: a batch that cannot be written ends the session (live enforcement's stop, with
//! the reason), and every later statement of the session is refused the same way. The session's
//! end waits for its queue to be written ([`StatementLog::flush`]) before the record is closed,
//! so the chain has every statement before `session_ended`.
//!
//! INVARIANT: only statements already marked in the session's recording are queued; anything
//! else the trail writes (rule matches, statements refused by Rampart) is written at once, after
//! the queue is flushed, so the chain keeps the session's order.

use crate::live::LiveSession;
use rampart_store::{NewCommand, Store};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Statements (and flush requests) waiting for the writer, per session. Beyond it the relay
/// waits: memory stays bounded whatever the client pipelines.
const QUEUE: usize = 4096;
/// The most statements written in one transaction.
const BATCH: usize = 1024;

enum Job {
    Statement(Box<NewCommand>),
    /// Answered once everything queued before it is written (or failed).
    Flush(oneshot::Sender<()>),
}

/// One session's queue of statement rows and its writer.
#[derive(Debug)]
pub(crate) struct StatementLog {
    jobs: mpsc::Sender<Job>,
    /// Why the writer failed, once it has: the session must end.
    failure: Arc<OnceLock<String>>,
}

impl StatementLog {
    /// Starts the session's writer (on the current runtime). A failed write ends `live`.
    pub(crate) fn start(store: Arc<Store>, live: Arc<LiveSession>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let failure = Arc::new(OnceLock::new());
        tokio::spawn(write(store, queue, failure.clone(), live));
        Self { jobs, failure }
    }

    /// An error once a batch could not be written.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.failure.get() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Queues a statement's row (waits while the queue is full).
    pub(crate) async fn push(&self, command: NewCommand) -> Result<(), String> {
        self.check()?;
        self.jobs
            .send(Job::Statement(Box::new(command)))
            .await
            .map_err(|_| stopped())
    }

    /// Waits until every statement queued so far is written.
    pub(crate) async fn flush(&self) -> Result<(), String> {
        self.check()?;
        let (done, written) = oneshot::channel();
        self.jobs
            .send(Job::Flush(done))
            .await
            .map_err(|_| stopped())?;
        written.await.map_err(|_| stopped())?;
        self.check()
    }
}

fn stopped() -> String {
    "the query log's writer stopped".to_owned()
}

/// The writer: takes what has gathered (at most [`BATCH`] statements), writes it in one
/// transaction, answers the flushes among it; until the session's queue is dropped.
async fn write(
    store: Arc<Store>,
    mut queue: mpsc::Receiver<Job>,
    failure: Arc<OnceLock<String>>,
    live: Arc<LiveSession>,
) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(job) = queue.recv().await {
        let mut next = Some(job);
        while let Some(job) = next.take() {
            match job {
                Job::Statement(command) => batch.push(*command),
                Job::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty()
            && failure.get().is_none()
            && let Err(err) = store.record_commands(&batch).await
        {
            let why = format!("the query log cannot be written ({err})");
            tracing::error!(error = %err, "cannot write a session's statements; ending it");
            let _ = failure.set(why.clone());
            live.end(why);
        }
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
