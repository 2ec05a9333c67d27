//! The searchable rows of recorded database sessions' statements (the command log and its
//! `command_run` events, what `rampart audit queries` reads), written in batches by one writer
//! task per node, off the relays' path.
//!
//! Why: a statement's evidence is its marker in the session's sealed, hash-chained recording,
//! written before its answer is passed back (`ObserverSet::target` marks every command the
//! observers find). Committing each statement's row to SQLite before the answer as well (a
//! write transaction with an fsync) held every query to the disk's speed: pgbench ran at a few
//! percent of direct. So the rows are queued (bounded: a relay waits while the queue is full)
//! and the writer commits whatever has gathered, from every session, in one transaction, in
//! order. One writer per node, not one per session: concurrent sessions' writers each took
//! the database's write lock in turn, waited for each other in SQLite's busy handler (sleeps of
//! milliseconds) and paid an fsync each; one writer pays one commit for all of them (group
//! commit).
//!
//! A session without a recording has no marker: its rows are its evidence. They go through
//! the same writer, and the trail waits for the commit before the answer is forwarded (a flush:
//! committed at once, with whatever the other sessions queued), where each such statement used
//! to be a transaction of its own.
//!
//! Fail closed: a batch that cannot be written ends every session that had statements in it
//! (live enforcement's stop, with the reason), and every later statement of those sessions is
//! refused the same way. A session's end waits for the queue to be written up to its last
//! statement ([`StatementLog::flush`]) before its record is closed, so the chain has every
//! statement before `session_ended`.
//!
//! INVARIANT: only statements already marked in the session's recording are queued; anything
//! else the trail writes (rule matches, statements refused by Rampart) is written at once, after
//! the queue is flushed, so the chain keeps the session's order.

use crate::live::LiveSession;
use rampart_store::{NewCommand, Store};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Statements (and flush requests) waiting for the writer, for the whole node. Beyond it the
/// relays wait: memory stays bounded whatever the clients pipeline.
const QUEUE: usize = 8192;
/// The most statements written in one transaction.
const BATCH: usize = 1024;
/// How long the writer gathers statements after the first of a batch before it commits,
/// unless a flush waits (a session's end, an unrecorded statement's answer: committed at
/// once) or the batch is full. Each commit costs SQLite's write transaction, its WAL frames
/// and an fsync: under a steady stream of statements a commit every few milliseconds with
/// a few rows each cost more than the rows themselves. The rows are not the evidence of
/// recorded statements (their markers are), so a few milliseconds more before they are
/// searchable lose nothing.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

enum Job {
    Statement(Box<NewCommand>, Arc<Failure>),
    /// Answered once everything queued before it is written (or failed).
    Flush(oneshot::Sender<()>),
}

/// One session's failure cell: why the writer could not write its statements, once it could
/// not, and the session to end then.
#[derive(Debug)]
struct Failure {
    why: OnceLock<String>,
    live: Arc<LiveSession>,
}

impl Failure {
    fn fail(&self, why: &str) {
        if self.why.set(why.to_owned()).is_ok() {
            self.live.end(why.to_owned());
        }
    }
}

/// The node's statement writer: a queue and the task that drains it. Started on first use
/// (on the runtime of the first database session), cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatementWriter {
    jobs: Arc<OnceLock<mpsc::Sender<Job>>>,
}

impl StatementWriter {
    /// A session's handle on the node's writer; a failed write ends `live`.
    /// `unrecorded`: the session has no recording, so each of its statements' rows is
    /// committed before its answer is passed back ([`StatementLog::committed_before_answer`]).
    pub(crate) fn session(
        &self,
        store: &Arc<Store>,
        live: Arc<LiveSession>,
        unrecorded: bool,
    ) -> StatementLog {
        let jobs = self
            .jobs
            .get_or_init(|| {
                let (jobs, queue) = mpsc::channel(QUEUE);
                tokio::spawn(write(store.clone(), queue));
                jobs
            })
            .clone();
        StatementLog {
            jobs,
            failure: Arc::new(Failure {
                why: OnceLock::new(),
                live,
            }),
            unrecorded,
        }
    }
}

/// One session's statement rows, queued for the node's writer.
#[derive(Debug)]
pub(crate) struct StatementLog {
    jobs: mpsc::Sender<Job>,
    failure: Arc<Failure>,
    unrecorded: bool,
}

impl StatementLog {
    /// Whether the session's rows must be committed before their answers (it has no
    /// recording to mark them in): the trail flushes after queuing them.
    pub(crate) fn committed_before_answer(&self) -> bool {
        self.unrecorded
    }

    /// An error once a batch with this session's statements could not be written.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.failure.why.get() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Queues a statement's row (waits while the queue is full).
    pub(crate) async fn push(&self, command: NewCommand) -> Result<(), String> {
        self.check()?;
        self.jobs
            .send(Job::Statement(Box::new(command), self.failure.clone()))
            .await
            .map_err(|_| stopped())
    }

    /// Waits until every statement this session queued so far is written.
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

/// The writer: takes what has gathered (at most [`BATCH`] statements, from any session),
/// writes it in one transaction, answers the flushes among it; for the node's life.
async fn write(store: Arc<Store>, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::new();
    let mut owners: Vec<Arc<Failure>> = Vec::new();
    let mut flushes = Vec::new();
    while let Some(job) = queue.recv().await {
        let gather_until = tokio::time::Instant::now() + GATHER;
        let mut next = Some(job);
        loop {
            while let Some(job) = next.take() {
                match job {
                    // A session that has failed writes nothing more (its relay is ending).
                    Job::Statement(command, owner) => {
                        if owner.why.get().is_none() {
                            batch.push(*command);
                            if !owners.iter().any(|known| Arc::ptr_eq(known, &owner)) {
                                owners.push(owner);
                            }
                        }
                    }
                    Job::Flush(done) => flushes.push(done),
                }
                if batch.len() < BATCH {
                    next = queue.try_recv().ok();
                }
            }
            // Gather more for this batch, unless someone waits for it or it is full.
            if batch.is_empty() || batch.len() >= BATCH || !flushes.is_empty() {
                break;
            }
            match tokio::time::timeout_at(gather_until, queue.recv()).await {
                Ok(Some(job)) => next = Some(job),
                // Every handle gone (the loop above then ends) or the time is up: write.
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty()
            && let Err(err) = store.record_commands(&batch).await
        {
            let why = format!("the query log cannot be written ({err})");
            tracing::error!(
                error = %err,
                sessions = owners.len(),
                "cannot write database sessions' statements; ending them"
            );
            for owner in &owners {
                owner.fail(&why);
            }
        }
        batch.clear();
        owners.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
