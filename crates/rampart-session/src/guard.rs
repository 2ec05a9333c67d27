//! The session guard: a started session ends exactly once, whatever ends it.
//!
//! Ending seals the recording (the exit status as its last marker), writes what the observers
//! still hold to the audit trail, closes the session record (bytes, exit status, reason), and
//! then removes the live registration. The paths that end a session: the front calls
//! [`SessionGuard::end`] (normal end, target error, and the reason live enforcement gave for a
//! kill, a revocation, a limit or the node shutting down), or the guard is dropped without it
//! (a panic in the front, or its task cancelled).
//!
//! Design: `Drop` cannot await, and sealing and the store are asynchronous. So [`start`] spawns
//! one *finisher* task per session, which owns what the end needs and waits on a one-shot
//! channel for the end request. `end` sends the request and waits for the finisher; `Drop`
//! sends an "abandoned" request (without waiting). Whichever comes first is the only one: the
//! sender is taken out of the guard, and the finisher runs once. What the guard cannot cover is
//! the process itself dying (a crash, `kill -9`, the runtime dropped before the finisher ran):
//! then the recording stays durable but unsealed, and the next start seals it as interrupted and
//! closes the record (`seal_interrupted`, `Store::end_live_sessions`).
//!
//! [`start`]: crate::SessionCore::start

use crate::live::{LiveSession, Registration, SessionControl};
use crate::observe::{ClientVerdict, Control, ObserverSet, Written};
use crate::trail::Trail;
use bytes::Bytes;
use rampart_audit::Stream;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::{SessionEnd, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

/// The end reason of a session whose front stopped without ending it: a panic.
pub const PANICKED: &str = "the session's handler failed (panic)";
/// The end reason of a session whose front stopped without ending it: its task was cancelled.
pub const CANCELLED: &str = "the session's handler stopped (cancelled)";

/// What the guard and the front's tasks share.
pub(crate) struct Shared {
    observers: ObserverSet,
    trail: Trail,
    live: Arc<LiveSession>,
    from_client: AtomicU64,
    to_client: AtomicU64,
    /// The bulk-transfer detector's size for this session (none: off), and whether it fired.
    bulk_limit: Option<u64>,
    bulk_alerted: AtomicBool,
    /// The approval a held shell line waits for (`crate::approval`): the finisher cancels it
    /// if the session ends first.
    approval: std::sync::Mutex<Option<(Uuid, u64)>>,
}

impl Shared {
    pub(crate) fn new(
        observers: ObserverSet,
        trail: Trail,
        live: Arc<LiveSession>,
        bulk_limit: Option<u64>,
    ) -> Self {
        Self {
            observers,
            trail,
            live,
            from_client: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            bulk_limit,
            bulk_alerted: AtomicBool::new(false),
            approval: std::sync::Mutex::new(None),
        }
    }

    /// The bulk-transfer detector: once the session has moved more than its size (both
    /// directions), one alert, at that moment.
    async fn check_bulk(&self) -> Result<(), String> {
        let Some(limit) = self.bulk_limit else {
            return Ok(());
        };
        let bytes = self
            .from_client
            .load(Ordering::Relaxed)
            .saturating_add(self.to_client.load(Ordering::Relaxed));
        if bytes <= limit || self.bulk_alerted.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        // Once per session at most: boxed, so the relay's every batch does not carry it.
        Box::pin(self.trail.bulk_transfer(limit, bytes)).await
    }
}

/// The part of a started session the front's tasks hold to pass bytes through its observers.
/// Cheap to clone; calls after the session ended fail (the recording is sealed).
#[derive(Clone)]
pub struct SessionTap(Arc<Shared>);

impl std::fmt::Debug for SessionTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SessionTap").field(&self.id()).finish()
    }
}

impl SessionTap {
    pub fn id(&self) -> Uuid {
        self.0.trail.id
    }

    /// The live session: activity (`touch`) and what watchers see (`shown`).
    pub fn live(&self) -> &Arc<LiveSession> {
        &self.0.live
    }

    /// Bytes the client sent: counted, observed (recorded before anything else happens to
    /// them) and their findings written to the audit trail. Returns what passes to the target
    /// and what Rampart answers itself. An error ends the session.
    pub async fn client_sent(&self, data: &Bytes) -> Result<ClientVerdict, String> {
        self.0
            .from_client
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut verdict = self.0.observers.client(data).await?;
        self.0
            .trail
            .log(std::mem::take(&mut verdict.findings))
            .await?;
        self.0.check_bulk().await?;
        Ok(verdict)
    }

    /// Several chunks the client sent (in order; one hand-off to the recorder), observed and
    /// their findings written before the front forwards any of them: one verdict per chunk.
    /// An error ends the session.
    pub async fn clients_sent(&self, batch: &[Bytes]) -> Result<Vec<ClientVerdict>, String> {
        let (verdicts, written) = self.clients_handed(batch).await?;
        written.await?;
        Ok(verdicts)
    }

    /// [`Self::clients_sent`] in two steps, for a front that hands over its next batch before
    /// it forwards this one: resolves once the observers have the batch (judged, the
    /// recorder's write queued) with one verdict per chunk, and a [`Written`] that resolves
    /// once the batch is recorded and its findings are in the audit trail. The front acts on
    /// the verdicts (forwards, answers, holds) only after that; batches handed over one after
    /// the other are judged and recorded in that order. An error from either ends the session.
    pub async fn clients_handed(
        &self,
        batch: &[Bytes],
    ) -> Result<(Vec<ClientVerdict>, Written), String> {
        let bytes: usize = batch.iter().map(|data| data.len()).sum();
        self.0
            .from_client
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let (mut verdicts, written) = self.0.observers.submit_clients(batch).await?;
        let findings = verdicts
            .iter_mut()
            .flat_map(|verdict| std::mem::take(&mut verdict.findings))
            .collect();
        let shared = self.0.clone();
        let written: Written = Box::pin(async move {
            written.await?;
            shared.trail.log(findings).await?;
            shared.check_bulk().await
        });
        Ok((verdicts, written))
    }

    /// Bytes the target sent (in order; one hand-off to the recorder), observed and their
    /// findings written before the front forwards them. An error ends the session.
    pub async fn target_sent(&self, batch: &[(Stream, Bytes)]) -> Result<(), String> {
        self.target_handed(batch).await?.await
    }

    /// [`Self::target_sent`] in two steps, for a front that hands over its next batch before
    /// it forwards this one: resolves once the observers have the batch (the recorder's write
    /// queued), to a [`Written`] that resolves once the batch is recorded and its findings are
    /// in the audit trail. The front forwards the batch only after that; batches handed over
    /// one after the other are recorded in that order. An error from either ends the session.
    pub async fn target_handed(&self, batch: &[(Stream, Bytes)]) -> Result<Written, String> {
        let bytes: usize = batch.iter().map(|(_, data)| data.len()).sum();
        self.0.to_client.fetch_add(bytes as u64, Ordering::Relaxed);
        let (findings, written) = self.0.observers.submit_target(batch).await?;
        let shared = self.0.clone();
        Ok(Box::pin(async move {
            written.await?;
            // Their commands are marked in the recording now: a statement log may write them
            // later.
            shared.trail.log_marked(findings).await?;
            shared.check_bulk().await
        }))
    }

    pub async fn resized(&self, cols: u32, rows: u32) -> Result<(), String> {
        self.0.live.terminal(cols, rows);
        self.0
            .observers
            .control(Control::Resize { cols, rows })
            .await
    }

    /// Marks a line Rampart showed the user (a warning, why the session ended).
    pub async fn notice(&self, line: &str) {
        if let Err(err) = self.0.observers.control(Control::Marker(line)).await {
            tracing::warn!(error = %err, "cannot mark a notice in a recording");
        }
    }

    /// A shell line is held (a verdict's `hold`): writes its pending approval (with its
    /// `command_approval_requested` event) and marks the recording. Returns the line the user
    /// sees. An error ends the session (fail closed: the line stays held).
    pub async fn hold(&self, held: &crate::command_control::HeldLine) -> Result<String, String> {
        let trail = &self.0.trail;
        let new = crate::approval::new_approval(held, trail.id, &trail.user, &trail.account)
            .map_err(|err| format!("cannot ask for an approval: {err}"))?;
        let approval = trail
            .store
            .request_command_approval(&new)
            .await
            .map_err(|err| format!("cannot ask for an approval: {err}"))?;
        if let Ok(mut slot) = self.0.approval.lock() {
            *slot = Some((approval.id, held.timeout.as_secs()));
        }
        let line = crate::approval::waiting_line(&approval, held);
        self.notice(&line).await;
        Ok(line)
    }

    /// Whether the held line was decided (or timed out): `None` while it waits; once decided,
    /// what goes to the target now (the kept Enter, or what clears the line) and the line the
    /// user sees, marked in the recording. An error ends the session.
    pub async fn approval_outcome(&self) -> Result<Option<(Vec<u8>, String)>, String> {
        let waiting = self.0.approval.lock().ok().and_then(|slot| *slot);
        let Some((id, timeout_secs)) = waiting else {
            return Ok(None);
        };
        let approval = self
            .0
            .trail
            .store
            .poll_command_approval(id)
            .await
            .map_err(|err| format!("cannot read the approval: {err}"))?;
        let Some(outcome) = approval.outcome() else {
            return Ok(None);
        };
        if let Ok(mut slot) = self.0.approval.lock() {
            *slot = None;
        }
        let (approved, line) = crate::approval::outcome_line(&outcome, timeout_secs);
        let bytes = self.0.observers.release(approved)?;
        self.notice(&line).await;
        Ok(Some((bytes, line)))
    }

    /// Whether a reply of Rampart's may go to the client now without breaking a packet.
    pub fn may_interject(&self) -> bool {
        self.0.observers.may_interject()
    }
}

/// How the front ends the session.
#[derive(Debug)]
struct Ending {
    reason: String,
    exit_status: Option<i64>,
}

/// A started session. Ends it exactly once: by [`Self::end`], or when dropped.
pub struct SessionGuard {
    tap: SessionTap,
    control: Option<SessionControl>,
    end: Option<oneshot::Sender<Ending>>,
    done: watch::Receiver<Option<SessionEnd>>,
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGuard")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl SessionGuard {
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        store: Arc<Store>,
        registration: Registration,
        control: SessionControl,
    ) -> Self {
        let (end, request) = oneshot::channel();
        let (done_tx, done) = watch::channel(None);
        tokio::spawn(finish(
            shared.clone(),
            store,
            registration,
            request,
            done_tx,
        ));
        Self {
            tap: SessionTap(shared),
            control: Some(control),
            end: Some(end),
            done,
        }
    }

    pub fn id(&self) -> Uuid {
        self.tap.id()
    }

    pub fn tap(&self) -> SessionTap {
        self.tap.clone()
    }

    /// What live enforcement says to the front: the reason once the session must end, and
    /// lines to show the user. Taken once.
    pub fn take_control(&mut self) -> Option<SessionControl> {
        self.control.take()
    }

    /// Something to wait on for the end, usable after the guard is gone.
    pub fn ended(&self) -> EndWatch {
        EndWatch(self.done.clone())
    }

    /// Ends the session with `reason` and the exit status the target gave (if any), and waits
    /// until the recording is sealed and the record closed. Returns what the record holds.
    pub async fn end(mut self, reason: impl Into<String>, exit_status: Option<i64>) -> SessionEnd {
        if let Some(end) = self.end.take() {
            let _ = end.send(Ending {
                reason: reason.into(),
                exit_status,
            });
        }
        self.ended().wait().await
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let reason = if std::thread::panicking() {
                PANICKED
            } else {
                CANCELLED
            };
            let _ = end.send(Ending {
                reason: reason.to_owned(),
                exit_status: None,
            });
        }
    }
}

/// Waits for a session's end.
#[derive(Debug, Clone)]
pub struct EndWatch(watch::Receiver<Option<SessionEnd>>);

impl EndWatch {
    /// What the session record was closed with, once it is.
    pub async fn wait(mut self) -> SessionEnd {
        match self.0.wait_for(Option::is_some).await {
            Ok(end) => end.clone().unwrap_or_default(),
            // The finisher was dropped with the runtime: the next start ends the record.
            Err(_) => SessionEnd {
                reason: "the node stopped during the session".into(),
                ..SessionEnd::default()
            },
        }
    }
}

/// The finisher: waits for the one end request, then ends the session.
async fn finish(
    shared: Arc<Shared>,
    store: Arc<Store>,
    registration: Registration,
    request: oneshot::Receiver<Ending>,
    done: watch::Sender<Option<SessionEnd>>,
) {
    let ending = request.await.unwrap_or_else(|_| Ending {
        reason: CANCELLED.to_owned(),
        exit_status: None,
    });
    // Boxed: this task waits as long as the session, and would otherwise keep the end's
    // state (store writes, the observers' finish) allocated all along.
    Box::pin(end_session(shared, store, registration, ending, done)).await;
}

/// The end itself, once asked for: observers finished (the recording sealed), what they found
/// logged, the record closed; `done` then tells the session's end to whoever waits for it.
async fn end_session(
    shared: Arc<Shared>,
    store: Arc<Store>,
    registration: Registration,
    ending: Ending,
    done: watch::Sender<Option<SessionEnd>>,
) {
    let id = shared.trail.id;
    let waiting = shared.approval.lock().ok().and_then(|mut slot| slot.take());
    if let Some((approval, _)) = waiting
        && let Err(err) = store.cancel_command_approval(approval).await
    {
        tracing::error!(error = %err, "cannot cancel the approval a session waited for");
    }
    let mut reason = ending.reason;
    let (finished, failure) = shared.observers.finish(ending.exit_status).await;
    if let Err(err) = shared.trail.log(finished.findings).await {
        tracing::error!(error = %err, "cannot record what was still open at the end of a session");
    }
    // Every statement row before the record is closed (`session_ended` after them).
    if let Err(err) = shared.trail.flush().await {
        tracing::error!(session = %id, error = %err, "cannot write a session's statements");
        reason = format!("{reason}; query log incomplete: {err}");
    }
    if let Some(err) = failure {
        tracing::error!(session = %id, error = %err, "cannot seal a recording");
        reason = format!("{reason}; recording not sealed: {err}");
    }
    if reason.starts_with("recording failed") || reason.contains("recording not sealed") {
        let actor = Actor::User {
            name: shared.trail.user.clone(),
        };
        let event = AuditEvent::RecordingFailed {
            session: id.to_string(),
            reason: reason.clone(),
        };
        if let Err(err) = store.record_event(&actor, &event).await {
            tracing::error!(error = %err, "cannot record a recording failure");
        }
    }
    let end = SessionEnd {
        reason,
        bytes_from_client: shared.from_client.load(Ordering::Relaxed),
        bytes_to_client: shared.to_client.load(Ordering::Relaxed),
        exit_status: ending.exit_status,
        recording: finished.recording,
    };
    if let Err(err) = store.end_session(id, &end).await {
        tracing::error!(session = %id, error = %err, "cannot record the end of a session");
    }
    // Live until the record is closed: a node shutting down waits for its registry to empty.
    drop(registration);
    let _ = done.send(Some(end));
}
