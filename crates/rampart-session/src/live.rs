//! Live enforcement: a session stays allowed for its whole life, not only at login.
//!
//! Every live session is registered here with what it was allowed for. A watcher task wakes
//! every [`RECHECK`] and asks the policy again with the store's facts (the user, the grants, the
//! asset, kill requests written by `rampart session kill` from any process) when an answer can
//! have changed: the facts changed (the audit log grew: they are re-read), the clock reached an
//! instant the facts name (a grant starts or ends, a schedule's minute), or a session,
//! connection or long request arrived since the last check (only those are asked, and only with
//! facts read after they arrived: they may have been decided on newer facts than the last). It ends
//! sessions that are no longer allowed, with the reason shown to the user. So idle sessions cost
//! one query a second, not a policy decision each. Idle and duration limits are checked on every
//! tick, with a warning line shortly before.
//! The login rules (global and the user's: source address and login hours) are asked again too,
//! for the address the user logged in from, so a rule change ends exactly the sessions and
//! connections it refuses (G6), and login hours end sessions when they close.

use crate::authorize::{Decision, Snapshot};
use bytes::Bytes;
use rampart_core::login_rules::{LoginRules, check_login};
use rampart_core::policy::{KubeScope, Limit};
use rampart_core::time_arg::format_duration;
use rampart_core::{Action, Name, User};
use rampart_store::Store;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

/// How often live sessions are checked against the store.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Time limits that apply where a grant sets none.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionDefaults {
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
}

/// What a session was allowed as, so it can be asked again.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub user: Name,
    pub auth_epoch: i64,
    pub mfa: bool,
    pub asset: Name,
    pub account: Name,
    pub actions: Vec<Action>,
    /// A Kubernetes stream's namespace (exec, attach, port-forward): only grants whose
    /// namespaces include it count, now as when it started.
    pub kube_namespace: Option<String>,
    /// Interactive shells count only the user's input as activity; other sessions count traffic
    /// both ways (a long download is not idle).
    pub interactive: bool,
    /// The limits of the allowing grants; the node's defaults complete them at registration.
    pub idle_timeout: Limit,
    pub max_duration: Limit,
    /// The address the user logged in from (a browser terminal's: the browser's): the login
    /// rules are asked again for it.
    pub source: IpAddr,
}

/// One live session as the watcher and the relay share it.
#[derive(Debug)]
pub struct LiveSession {
    id: Uuid,
    grant: SessionGrant,
    /// The limits in force: the grants' with the node's defaults.
    idle_timeout: Option<Duration>,
    max_duration: Option<Duration>,
    started: Instant,
    /// Milliseconds after `started` of the last activity.
    last_activity: AtomicU64,
    warned_idle: AtomicBool,
    warned_max: AtomicBool,
    stop: watch::Sender<Option<String>>,
    notices: mpsc::Sender<String>,
    /// What the user sees, for read-only watchers: created by the first watcher (a channel
    /// holds its whole backlog from the start, too much to give every session).
    output: std::sync::OnceLock<broadcast::Sender<Bytes>>,
    /// The screen the user sees now, for watchers who join (terminal sessions only: set when
    /// the front learns the terminal's size). Its lock also orders output against new watchers.
    screen: Mutex<Option<crate::screen::LiveScreen>>,
    /// Long requests running in the session (a Kubernetes watch on a connection's session):
    /// the action and namespace (`None`: the whole cluster) each needs, asked again while
    /// they run.
    streams: Mutex<Vec<(Action, Option<String>)>>,
    /// The arrival number of its registration or of its latest long request (see
    /// [`Arrivals`]): live enforcement asks about it once the facts it checks against are at
    /// least as new as those it was decided on, even when nothing else changed.
    arrived: AtomicU64,
    /// The registry's arrival counter, to number long requests.
    arrivals: Arc<AtomicU64>,
}

/// A long request of a session in a namespace (see [`LiveSession::hold_namespace`]); dropping
/// it ends the question.
#[derive(Debug)]
pub struct NamespaceHold {
    session: Arc<LiveSession>,
    stream: (Action, Option<String>),
}

impl Drop for NamespaceHold {
    fn drop(&mut self) {
        let mut streams = locked(&self.session.streams);
        if let Some(at) = streams.iter().position(|s| *s == self.stream) {
            streams.swap_remove(at);
        }
    }
}

/// Output chunks a watcher may fall behind by before it skips ahead (it is told it lagged).
const WATCH_BACKLOG: usize = 256;

impl LiveSession {
    /// A long request (a Kubernetes watch) needs `action` in `namespace` (`None`: across the
    /// whole cluster) while the hold lives: live enforcement ends the session when no grant
    /// allows that any more, as it does for a stream session's own namespace.
    pub fn hold_namespace(
        self: &Arc<Self>,
        action: Action,
        namespace: Option<&str>,
    ) -> NamespaceHold {
        let stream = (action, namespace.map(str::to_owned));
        locked(&self.streams).push(stream.clone());
        let arrived = self.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        self.arrived.fetch_max(arrived, Ordering::SeqCst);
        NamespaceHold {
            session: self.clone(),
            stream,
        }
    }

    /// Passes what the user is shown to whoever watches the session.
    pub fn shown(&self, data: &[u8]) {
        // Held while the output goes out: a watcher subscribes under it (see `watch_screen`).
        let mut screen = self.screen.lock().ok();
        if let Some(screen) = screen.as_mut().and_then(|s| s.as_mut()) {
            screen.process(data);
        }
        if let Some(output) = self.output.get()
            && output.receiver_count() > 0
        {
            let _ = output.send(Bytes::copy_from_slice(data));
        }
    }

    /// The session has a terminal of this size (at its start, and at every resize): from now on
    /// its screen is kept for watchers.
    pub fn terminal(&self, cols: u32, rows: u32) {
        if let Ok(mut screen) = self.screen.lock() {
            match screen.as_mut() {
                Some(screen) => screen.resize(cols, rows),
                None => *screen = Some(crate::screen::LiveScreen::new(cols, rows)),
            }
        }
    }

    /// Notes activity (user input; for non-interactive sessions, any traffic).
    pub fn touch(&self) {
        self.touch_at(Instant::now());
    }

    fn touch_at(&self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        let elapsed = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(elapsed, Ordering::Relaxed);
        self.warned_idle.store(false, Ordering::Relaxed);
    }

    pub fn interactive(&self) -> bool {
        self.grant.interactive
    }

    fn idle_for(&self, now: Instant) -> Duration {
        let last = Duration::from_millis(self.last_activity.load(Ordering::Relaxed));
        now.saturating_duration_since(self.started)
            .saturating_sub(last)
    }

    pub(crate) fn end(&self, reason: String) {
        self.stop.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(reason);
            true
        });
    }

    fn notice(&self, line: String) {
        // Never wait for a slow user: a notice that does not fit is dropped.
        let _ = self.notices.try_send(line);
    }
}

/// What the relay listens to: the reason when the session must end, and lines to show the user.
#[derive(Debug)]
pub struct SessionControl {
    pub stop: watch::Receiver<Option<String>>,
    pub notices: mpsc::Receiver<String>,
}

impl SessionControl {
    /// Resolves with the reason once live enforcement ends the session.
    pub async fn stopped(&mut self) -> String {
        stopped_watch(&mut self.stop).await
    }
}

/// Resolves with the reason once `stop` carries one.
pub async fn stopped_watch(stop: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(reason) = stop.borrow_and_update().clone() {
            return reason;
        }
        if stop.changed().await.is_err() {
            // The registry is gone: nobody can end the session any more, so never resolve.
            std::future::pending::<()>().await;
        }
    }
}

/// Removes the session from the registry when the relay is done with it.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<LiveSessions>,
    pub session: Arc<LiveSession>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut sessions = locked(&self.registry.sessions);
            sessions.remove(&self.session.id);
        }
    }
}

/// How a front closes one of its authenticated connections (an SSH connection: a disconnect
/// message with the reason). Called on the runtime, from a task of its own.
pub trait CloseConnection: Send + Sync {
    fn close(&self, reason: String);
}

/// An authenticated user connection, so a revoked user's idle connections are closed too.
struct LiveConnection {
    user: Name,
    auth_epoch: i64,
    source: IpAddr,
    closer: Arc<dyn CloseConnection>,
    /// Its arrival number (see [`Arrivals`]).
    arrived: u64,
}

/// Which arrivals (sessions, connections and long requests, numbered from 1 in the order they
/// are registered) a check asks about: those after `after`, up to `upto`, the last number
/// given out before the check read the store. What arrived later may have been decided on
/// facts newer than those the check read; it is asked at the next tick.
#[derive(Debug, Clone, Copy)]
struct Arrivals {
    after: u64,
    upto: u64,
}

impl Arrivals {
    fn covers(self, arrived: u64) -> bool {
        arrived > self.after && arrived <= self.upto
    }
}

/// The node's live sessions and connections.
#[derive(Default)]
pub struct LiveSessions {
    sessions: Mutex<HashMap<Uuid, Arc<LiveSession>>>,
    connections: Mutex<HashMap<u64, LiveConnection>>,
    next_connection: AtomicU64,
    /// The last arrival number given out (see [`Arrivals`]).
    arrivals: Arc<AtomicU64>,
    defaults: SessionDefaults,
    /// The node's login rules (`[auth]`), which every session must keep passing.
    global_rules: LoginRules,
    /// The bulk-transfer detector's size (`alerts.bulk_transfer`; 0: off), read by every
    /// session as it starts.
    bulk_transfer_alert: AtomicU64,
    /// How long a shell line held by an `approve` rule waits for an approver, in milliseconds
    /// (`rules.approval_timeout`; 0: the default).
    approval_timeout_ms: AtomicU64,
}

/// How long a held shell line waits for an approver unless configured.
pub const DEFAULT_APPROVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl LiveSessions {
    pub fn new(defaults: SessionDefaults, global_rules: LoginRules) -> Self {
        Self {
            defaults,
            global_rules,
            ..Self::default()
        }
    }

    /// Turns the bulk-transfer detector on (`Some(bytes)`) or off for sessions started from now.
    pub fn set_bulk_transfer_alert(&self, bytes: Option<u64>) {
        self.bulk_transfer_alert
            .store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    /// How long shell lines held from now on wait for an approver.
    pub fn set_approval_timeout(&self, timeout: std::time::Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.approval_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// How long a held shell line waits for an approver.
    pub fn approval_timeout(&self) -> std::time::Duration {
        match self.approval_timeout_ms.load(Ordering::Relaxed) {
            0 => DEFAULT_APPROVAL_TIMEOUT,
            ms => std::time::Duration::from_millis(ms),
        }
    }

    /// The bulk-transfer detector's size, if it is on.
    pub(crate) fn bulk_transfer_alert(&self) -> Option<u64> {
        Some(self.bulk_transfer_alert.load(Ordering::Relaxed)).filter(|bytes| *bytes > 0)
    }

    /// Registers a session that is about to be relayed.
    pub fn register(
        self: &Arc<Self>,
        id: Uuid,
        grant: SessionGrant,
    ) -> (Registration, SessionControl) {
        let idle_timeout = grant.idle_timeout.with_default(self.defaults.idle_timeout);
        let max_duration = grant.max_duration.with_default(self.defaults.max_duration);
        let (stop, stop_rx) = watch::channel(None);
        let (notices, notices_rx) = mpsc::channel(4);
        let session = Arc::new(LiveSession {
            id,
            grant,
            idle_timeout,
            max_duration,
            started: Instant::now(),
            last_activity: AtomicU64::new(0),
            warned_idle: AtomicBool::new(false),
            warned_max: AtomicBool::new(false),
            stop,
            notices,
            output: std::sync::OnceLock::new(),
            screen: Mutex::new(None),
            streams: Mutex::new(Vec::new()),
            arrived: AtomicU64::new(self.arrivals.fetch_add(1, Ordering::SeqCst) + 1),
            arrivals: self.arrivals.clone(),
        });
        {
            let mut sessions = locked(&self.sessions);
            sessions.insert(id, session.clone());
        }
        let registration = Registration {
            registry: self.clone(),
            session,
        };
        let control = SessionControl {
            stop: stop_rx,
            notices: notices_rx,
        };
        (registration, control)
    }

    /// Ends every live session with `reason` (the node is shutting down): each front sees the
    /// stop as it sees a kill, and ends its session through the guard.
    pub fn end_all(&self, reason: &str) {
        for session in self.sessions() {
            session.end(reason.to_owned());
        }
    }

    /// Waits until no session is registered (each guard removes its registration once the
    /// session's record is closed), at most `within`. Returns whether they all ended.
    pub async fn drained(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.sessions().is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A receiver of the live session's output from now on, if it is live here.
    pub fn watch(&self, id: Uuid) -> Option<broadcast::Receiver<Bytes>> {
        let sessions = locked(&self.sessions);
        let session = sessions.get(&id)?;
        Some(
            session
                .output
                .get_or_init(|| broadcast::channel(WATCH_BACKLOG).0)
                .subscribe(),
        )
    }

    /// The live session's screen as it is now (for a terminal session), then a receiver of its
    /// output from that moment: nothing between the two is missed or repeated.
    pub fn watch_screen(
        &self,
        id: Uuid,
    ) -> Option<(
        Option<crate::screen::ScreenState>,
        broadcast::Receiver<Bytes>,
    )> {
        let session = locked(&self.sessions).get(&id)?.clone();
        let screen = session.screen.lock().ok()?;
        let output = session
            .output
            .get_or_init(|| broadcast::channel(WATCH_BACKLOG).0)
            .subscribe();
        Some((screen.as_ref().map(|s| s.state()), output))
    }

    /// Registers an authenticated connection; returns its key for [`Self::forget_connection`].
    pub fn add_connection(
        &self,
        user: &User,
        source: IpAddr,
        closer: Arc<dyn CloseConnection>,
    ) -> u64 {
        let key = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let arrived = self.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut connections = locked(&self.connections);
            connections.insert(
                key,
                LiveConnection {
                    user: user.name.clone(),
                    auth_epoch: user.auth_epoch,
                    source,
                    closer,
                    arrived,
                },
            );
        }
        key
    }

    pub fn forget_connection(&self, key: u64) {
        {
            let mut connections = locked(&self.connections);
            connections.remove(&key);
        }
    }

    fn sessions(&self) -> Vec<Arc<LiveSession>> {
        locked(&self.sessions).values().cloned().collect()
    }

    /// Checks the live sessions and connections every [`RECHECK`] where an answer can have
    /// changed (see the module's documentation), until `shutdown`.
    pub async fn enforce(self: Arc<Self>, store: Arc<Store>, shutdown: watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        let mut facts: Option<Facts> = None;
        // The instant the clock may change a decision by the facts checked last (`None`: never).
        let mut due: Option<OffsetDateTime> = None;
        // Arrivals up to this number have been asked about.
        let mut asked_upto = 0;
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.check_limits(Instant::now());
            let idle = self.sessions().is_empty() && locked(&self.connections).is_empty();
            if idle {
                continue;
            }
            // Taken before the store is read: what arrived up to here was decided on facts no
            // newer than those read below.
            let upto = self.arrivals.load(Ordering::SeqCst);
            // Every change to users, grants, assets and kill requests is written with an audit
            // event, so the facts are re-read only when the audit log has grown.
            let head = match store.facts_version().await {
                Ok(head) => head,
                Err(err) => {
                    tracing::error!(error = %err, "cannot re-check live sessions");
                    continue;
                }
            };
            let mut changed = false;
            if facts.as_ref().is_none_or(|f| f.policy.version() != head) {
                match Facts::load(&store).await {
                    Ok(fresh) => {
                        facts = Some(fresh);
                        changed = true;
                    }
                    // Fail closed would end every session on a transient read error; the
                    // sessions keep their last decision and the error is loud.
                    Err(err) => tracing::error!(error = %err, "cannot re-check live sessions"),
                }
            }
            let Some(facts) = &facts else { continue };
            let now = OffsetDateTime::now_utc();
            let everyone = changed || due.is_some_and(|due| now >= due);
            let after = if everyone { 0 } else { asked_upto };
            self.check_policy(facts, now, Arrivals { after, upto });
            asked_upto = upto;
            if everyone {
                due = [
                    facts.policy.unchanged_before(now),
                    self.global_rules.unchanged_before(now),
                ]
                .into_iter()
                .flatten()
                .min();
            }
        }
    }

    /// Idle and duration limits: warn shortly before, end at the limit.
    fn check_limits(&self, now: Instant) {
        for session in self.sessions() {
            let limits = [
                (
                    session.idle_timeout,
                    session.idle_for(now),
                    &session.warned_idle,
                    "idle timeout",
                    "type something to stay connected",
                ),
                (
                    session.max_duration,
                    now.saturating_duration_since(session.started),
                    &session.warned_max,
                    "maximum session duration",
                    "save your work",
                ),
            ];
            for (limit, elapsed, warned, what, advice) in limits {
                let Some(limit) = limit else { continue };
                if elapsed >= limit {
                    session.end(format!("{what} of {} reached", format_duration(limit)));
                    continue;
                }
                let left = limit - elapsed;
                if left <= warning_before(limit) && !warned.swap(true, Ordering::Relaxed) {
                    session.notice(format!(
                        "rampart: this session ends in {} ({what}); {advice}",
                        format_duration(Duration::from_secs(left.as_secs().max(1)))
                    ));
                }
            }
        }
    }

    /// Asks the policy again about the sessions and connections whose arrival `asked` covers
    /// (every one when `asked.after` is 0), ending those it refuses and closing the connections
    /// of revoked users.
    fn check_policy(&self, facts: &Facts, now: OffsetDateTime, asked: Arrivals) {
        for session in self.sessions() {
            if !asked.covers(session.arrived.load(Ordering::SeqCst)) {
                continue;
            }
            if let Some(kill) = facts.kills.get(&session.id) {
                session.end(kill.clone());
                continue;
            }
            let streams = locked(&session.streams).clone();
            let allowed = facts
                .still_allowed(&session.grant, &self.global_rules, now)
                .and_then(|()| {
                    streams.iter().try_for_each(|(action, namespace)| {
                        let namespace = namespace.as_deref();
                        facts.allowed_in_namespace(&session.grant, &[*action], namespace, now)
                    })
                });
            if let Err(reason) = allowed {
                session.end(reason);
            }
        }
        let revoked: Vec<(Arc<dyn CloseConnection>, String)> = locked(&self.connections)
            .values()
            .filter(|c| asked.covers(c.arrived))
            .filter_map(|c| {
                let reason = facts
                    .user_revoked(&c.user, c.auth_epoch)
                    .or_else(|| facts.login_refused(&c.user, c.source, &self.global_rules, now))?;
                Some((c.closer.clone(), reason))
            })
            .collect();
        for (closer, reason) in revoked {
            // A moment later than the sessions, so their message reaches the user first.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                closer.close(reason);
            });
        }
    }
}

/// Warn a minute before a limit, or a quarter of it before for short limits.
fn warning_before(limit: Duration) -> Duration {
    (limit / 4).min(Duration::from_secs(60))
}

/// What the store says now.
struct Facts {
    /// Its version is the store's when read.
    policy: Snapshot,
    kills: HashMap<Uuid, String>,
}

impl Facts {
    async fn load(store: &Store) -> Result<Self, rampart_store::StoreError> {
        let policy = Snapshot::for_everyone(store).await?;
        let kills = store.pending_session_kills().await?;
        Ok(Self {
            policy,
            kills: kills
                .into_iter()
                .map(|(id, by, reason)| (id, kill_notice(&by.to_string(), &reason)))
                .collect(),
        })
    }

    /// Why `user` may no longer be connected, if so.
    fn user_revoked(&self, user: &Name, auth_epoch: i64) -> Option<String> {
        match self.policy.user(user) {
            None => Some("the user was removed".into()),
            Some(u) if u.disabled => Some("the user was disabled".into()),
            Some(u) if u.auth_epoch != auth_epoch => {
                Some("the user's credentials changed; log in again".into())
            }
            Some(_) => None,
        }
    }

    /// Why the login rules would refuse `user` logging in from `source` now, if they would.
    fn login_refused(
        &self,
        user: &Name,
        source: IpAddr,
        global: &LoginRules,
        now: OffsetDateTime,
    ) -> Option<String> {
        let user = self.policy.user(user)?;
        check_login(global, &user.login_rules, source, now)
            .err()
            .map(|denied| format!("refused by the login rules: {denied}"))
    }

    /// The same questions the session was allowed by (the login rules for its source, then the
    /// policy), asked again now.
    fn still_allowed(
        &self,
        grant: &SessionGrant,
        global: &LoginRules,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        if let Some(reason) = self.user_revoked(&grant.user, grant.auth_epoch) {
            return Err(reason);
        }
        if let Some(reason) = self.login_refused(&grant.user, grant.source, global, now) {
            return Err(reason);
        }
        let access = self
            .policy
            .as_user(&grant.user, grant.mfa, now)
            .ok_or("the user was removed")?;
        let asset = self
            .policy
            .asset(&grant.asset)
            .ok_or("the asset was removed")?;
        for action in &grant.actions {
            if let Decision::Deny(reason) = access.decide(asset, &grant.account, *action) {
                return Err(format!("access revoked: {reason}"));
            }
        }
        if let Some(namespace) = &grant.kube_namespace {
            self.allowed_in_namespace(grant, &grant.actions, Some(namespace), now)?;
        }
        Ok(())
    }

    /// Whether `actions` are still allowed in a Kubernetes `namespace` (`None`: across the whole
    /// cluster) for the session: the asset's namespace view, then only the grants whose
    /// namespaces include it (as the Kubernetes listener decides a request).
    fn allowed_in_namespace(
        &self,
        grant: &SessionGrant,
        actions: &[Action],
        namespace: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        let access = self
            .policy
            .as_user(&grant.user, grant.mfa, now)
            .ok_or("the user was removed")?;
        let asset = self
            .policy
            .asset(&grant.asset)
            .ok_or("the asset was removed")?;
        asset
            .kube_request_allowed(Some("pods"), namespace, None)
            .map_err(|why| format!("access revoked: {why}"))?;
        let scope = match namespace {
            Some(namespace) => KubeScope::Namespace(namespace),
            None => KubeScope::Cluster,
        };
        let keep = |g: &rampart_core::Grant| scope.allowed_by(g);
        for action in actions {
            if access
                .decide_any_among(asset, &grant.account, &[*action], &keep)
                .is_err()
            {
                let place = match namespace {
                    Some(namespace) => format!("in the namespace {namespace}"),
                    None => "across the whole cluster".to_owned(),
                };
                return Err(format!(
                    "access revoked: no grant allows {}:{action} {place} any more",
                    action.protocol()
                ));
            }
        }
        Ok(())
    }
}

/// What a killed session's user is told: who ended it and why, saying "ended by" once (the
/// portal's default reason already names the killer: "ended by audrey").
fn kill_notice(by: &str, reason: &str) -> String {
    if reason.starts_with("ended by ") {
        reason.to_owned()
    } else {
        format!("ended by {by}: {reason}")
    }
}

/// The registry's maps, even after a panic elsewhere poisoned their lock: a map of live sessions
/// cannot be left half-changed by an insert or a remove, and enforcement must never go blind
/// (a poisoned lock read as "no sessions" would enforce nothing: fail open).
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_notice_says_who_and_why_once() {
        assert_eq!(
            kill_notice("user:audrey", "ended by audrey"),
            "ended by audrey"
        );
        assert_eq!(
            kill_notice("cli:root (uid 0)", "maintenance"),
            "ended by cli:root (uid 0): maintenance"
        );
    }

    #[test]
    fn warnings_come_a_minute_or_a_quarter_before() {
        assert_eq!(
            warning_before(Duration::from_secs(900)),
            Duration::from_secs(60)
        );
        assert_eq!(
            warning_before(Duration::from_secs(8)),
            Duration::from_secs(2)
        );
    }

    /// The user the sessions of [`grant`] belong to, with `login_rules`.
    fn alice(login_rules: LoginRules) -> User {
        User {
            id: Uuid::nil(),
            name: Name::parse("user", "alice").unwrap(),
            role: rampart_core::Role::User,
            disabled: false,
            has_password: false,
            auth_epoch: 0,
            mfa_enrolled: false,
            passkeys: false,
            keys: vec![],
            groups: vec![],
            login_rules,
            source: rampart_core::UserSource::Local,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn grant() -> SessionGrant {
        SessionGrant {
            user: Name::parse("user", "alice").unwrap(),
            auth_epoch: 0,
            mfa: false,
            asset: Name::parse("asset", "web").unwrap(),
            account: Name::parse("account", "root").unwrap(),
            actions: vec![Action::Shell],
            kube_namespace: None,
            interactive: true,
            idle_timeout: Limit::of_grant(None),
            max_duration: Limit::of_grant(Some(Duration::from_secs(3600))),
            source: IpAddr::from([192, 0, 2, 1]),
        }
    }

    /// G6: a rule change ends the sessions (and connections) it refuses for their source, and
    /// only those; the global rules count as well as the user's.
    #[test]
    fn login_rules_are_asked_again_for_each_sessions_source() {
        let deny = |text: &str| LoginRules {
            deny_from: rampart_core::login_rules::parse_cidr_list("deny_from", text).unwrap(),
            ..LoginRules::default()
        };
        let alice = alice(deny("192.0.2.0/24"));
        let facts = Facts {
            policy: Snapshot::from_facts(rampart_store::PolicyFacts {
                users: vec![alice.clone()],
                ..Default::default()
            }),
            kills: HashMap::new(),
        };
        let now = OffsetDateTime::now_utc();
        let none = LoginRules::default();
        let refused = grant();
        let reason = facts.still_allowed(&refused, &none, now).unwrap_err();
        assert_eq!(
            reason,
            "refused by the login rules: source 192.0.2.1 is in the user's deny_from list \
             (192.0.2.0/24)"
        );
        let elsewhere = SessionGrant {
            source: IpAddr::from([198, 51, 100, 1]),
            ..grant()
        };
        // Not refused by the rules: the next question (here: the asset is gone) decides.
        assert_eq!(
            facts.still_allowed(&elsewhere, &none, now).unwrap_err(),
            "the asset was removed"
        );
        assert!(
            facts
                .login_refused(&alice.name, elsewhere.source, &deny("198.51.100.0/24"), now)
                .unwrap()
                .contains("global deny_from")
        );
        assert_eq!(
            facts.login_refused(&alice.name, elsewhere.source, &none, now),
            None
        );
    }

    /// Between changes of the facts and the clock's instants, only what arrived is asked: a
    /// session already asked is left alone; a new session, a new long request and a new
    /// connection are asked once the check's facts were read after they arrived (not before:
    /// they may have been decided on newer facts); a check of everyone asks them all.
    #[tokio::test]
    async fn without_a_change_only_new_sessions_requests_and_connections_are_asked() {
        struct Closer(std::sync::atomic::AtomicUsize);
        impl CloseConnection for Closer {
            fn close(&self, _reason: String) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Facts without the user: anyone asked is refused ("the user was removed").
        let nobody = Facts {
            policy: Snapshot::from_facts(rampart_store::PolicyFacts::default()),
            kills: HashMap::new(),
        };
        let live = Arc::new(LiveSessions::new(
            SessionDefaults::default(),
            LoginRules::default(),
        ));
        let now = OffsetDateTime::now_utc();
        let stopped = |control: &SessionControl| control.stop.borrow().clone();
        let removed = Some("the user was removed".to_owned());
        let check = |after, upto| live.check_policy(&nobody, now, Arrivals { after, upto });

        let (old, old_control) = live.register(Uuid::from_u128(1), grant()); // arrival 1
        let (_new, new_control) = live.register(Uuid::from_u128(2), grant()); // 2
        let closer = Arc::new(Closer(std::sync::atomic::AtomicUsize::new(0)));
        live.add_connection(
            &alice(LoginRules::default()),
            IpAddr::from([192, 0, 2, 1]),
            closer.clone(),
        ); // 3

        // Asked up to 1 before; the store read after arrival 2: the new session is asked, the
        // old one and the connection (arrived after the read) are not.
        check(1, 2);
        assert_eq!(stopped(&old_control), None);
        assert_eq!(stopped(&new_control), removed);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(closer.0.load(Ordering::Relaxed), 0);
        // The next tick asks the connection (closed half a second later).
        check(2, 3);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(closer.0.load(Ordering::Relaxed), 1);

        // A long request in the old session (arrival 4) makes it asked again, once the store
        // was read after it.
        let hold = old
            .session
            .hold_namespace(Action::KubernetesRead, Some("prod"));
        check(3, 3);
        assert_eq!(stopped(&old_control), None);
        check(3, 4);
        assert_eq!(stopped(&old_control), removed);
        drop(hold);

        // A check of everyone asks a session that was asked before.
        let (_third, third_control) = live.register(Uuid::from_u128(3), grant()); // 5
        check(5, 5);
        assert_eq!(stopped(&third_control), None);
        check(0, 5);
        assert_eq!(stopped(&third_control), removed);
    }

    #[test]
    fn limits_warn_then_end_and_activity_resets_idleness() {
        let live = Arc::new(LiveSessions::new(
            SessionDefaults {
                idle_timeout: Some(Duration::from_secs(400)),
                max_duration: None,
            },
            LoginRules::default(),
        ));
        let (registration, mut control) = live.register(Uuid::nil(), grant());
        let session = registration.session.clone();
        // The grant's own limit wins over the default; the default fills the gap.
        assert_eq!(session.max_duration, Some(Duration::from_secs(3600)));
        let at = |secs: u64| session.started + Duration::from_secs(secs);
        live.check_limits(at(200));
        assert!(control.notices.try_recv().is_err());
        live.check_limits(at(350));
        let warning = control.notices.try_recv().unwrap();
        assert!(warning.contains("ends in 50s (idle timeout)"), "{warning}");
        live.check_limits(at(360));
        assert!(control.notices.try_recv().is_err(), "one warning only");
        assert!(control.stop.borrow().is_none());
        session.touch_at(at(370));
        live.check_limits(at(720));
        assert!(control.stop.borrow().is_none());
        // Activity re-arms the warning.
        assert!(control.notices.try_recv().unwrap().contains("idle timeout"));
        live.check_limits(at(770));
        assert_eq!(
            control.stop.borrow().clone().unwrap(),
            "idle timeout of 6m40s reached"
        );
        // The maximum duration warns and ends the same way.
        live.check_limits(at(3550));
        assert!(
            control
                .notices
                .try_recv()
                .unwrap()
                .contains("maximum session duration")
        );
        drop(registration);
        assert!(live.sessions().is_empty());
    }
}
