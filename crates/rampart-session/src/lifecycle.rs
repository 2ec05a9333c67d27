//! Starting a session: the recording, the session record and the live registration, together.
//!
//! A front brings an already authorized request ([`Authorized`]: what
//! `rampart_session::authorize` decides, today the SSH front's `target::resolve`) and what it
//! wants observed; [`SessionCore::start`] creates, in this order:
//!
//! 1. the recording (when the grant records and the front can record this kind of session),
//! 2. the session record in the store,
//! 3. the recording's place on a writer thread (`rampart_audit::live`),
//! 4. the live registration (kill, revocation, idle and duration limits, watching),
//!
//! and hands back the [`SessionGuard`] that ends the session exactly once. Any failure refuses
//! the session and undoes what was made (fail closed): a session that cannot be recorded never
//! starts, and no session exists without its record. Only then does the front connect to the
//! target; a failure there ends the session through the guard like any other end.

use crate::guard::{SessionGuard, Shared};
use crate::live::{LiveSessions, SessionGrant};
use crate::observe::{Observer, ObserverSet};
use crate::observers::TerminalRecorder;
use crate::statement_log::StatementWriter;
use crate::trail::Trail;
use rampart_audit::{CastHeader, LiveRecorder, PrivateKey, Recorder, RecordingOptions};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::policy::SessionRules;
use rampart_core::{AccountRef, Action, Asset, Name, User};
use rampart_store::{NewSession, SessionEnd, Store};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How recordings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSettings {
    /// A live recording is fsynced (and its chunks hashed into the manifest) at least this
    /// often while anything is written: what a crash of the machine can lose.
    pub sync_interval: Duration,
    /// Bytes of each direction a command's recording keeps; the rest is counted and hashed.
    /// `None` (the default): everything.
    pub exec_cap: Option<u64>,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        Self {
            sync_interval: Duration::from_secs(1),
            exec_cap: None,
        }
    }
}

/// Where recordings go, the key that seals them, and how they are written.
#[derive(Clone)]
pub struct Evidence {
    pub dir: PathBuf,
    pub key: Arc<PrivateKey>,
    pub recording: RecordingSettings,
    /// The node's writer of database statements' rows (one per node: build the node's
    /// `Evidence` once and clone it), started on first use.
    pub statements: StatementWriter,
    /// Where each recording is copied as its chunks close (`recording.store = "s3"`).
    pub replica: Option<Arc<dyn rampart_audit::replica::Replica>>,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Evidence")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Where the user came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// As the session record shows it (`ADDR`, `ADDR (web)`, `ADDR (proxyjump)`).
    pub text: String,
    /// The address the login rules are asked again for while the session lives.
    pub ip: IpAddr,
}

/// A request the policy allowed: one user, one account, the grant and the strictest rules of
/// all allowing grants, and the actions this account is allowed for (at least one).
///
/// This is the seam between authorization (`rampart_session::authorize`, the single caller of
/// `policy::decide`) and the lifecycle: whatever authorizes produces this value, and nothing
/// starts without one.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub user: User,
    /// Whether the login used a second factor (grants may require it; asked again live).
    pub mfa: bool,
    pub source: Source,
    pub asset: Asset,
    pub account: Name,
    pub grant: Uuid,
    pub rules: SessionRules,
    pub actions: Vec<Action>,
    /// A Kubernetes request's namespace, when the request reaches one: live enforcement asks
    /// again among the grants whose namespaces include it (as the request was decided).
    pub kube_namespace: Option<String>,
}

impl Authorized {
    pub fn account_ref(&self) -> AccountRef {
        AccountRef {
            login: self.account.clone(),
            asset: self.asset.name.clone(),
        }
    }
}

/// How a front can record its session, if it can (a terminal: asciicast; a command: also its
/// raw streams).
#[derive(Debug, Clone)]
pub struct RecordingPlan {
    pub header: CastHeader,
    /// A command's input and output are kept byte for byte too, in full unless the deployment
    /// set a cap.
    pub raw_streams: bool,
}

/// What a front asks to start.
pub struct StartRequest {
    pub authorized: Authorized,
    /// The session kind the record shows (`shell`, `exec`, `sftp`, `scp`, `port_forward:PORT`).
    pub kind: rampart_core::SessionKind,
    /// Interactive sessions count only the user's input as activity.
    pub interactive: bool,
    /// An exec session's command as the user sent it; the record keeps a bounded, printable
    /// form for the session lists.
    pub command: Option<String>,
    /// `None`: this kind of session is logged as a session, not recorded.
    pub recording: Option<RecordingPlan>,
    /// Protocol inspectors, after the recorder, in order.
    pub inspectors: Vec<Box<dyn Observer>>,
}

impl std::fmt::Debug for StartRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartRequest")
            .field("kind", &self.kind)
            .field("account", &self.authorized.account_ref())
            .finish_non_exhaustive()
    }
}

/// Why a session was refused at its start; the user sees this line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the session cannot be recorded, so it is refused")]
pub struct Refused;

/// The session core of a node: the store, the evidence settings and the live registry.
#[derive(Clone)]
pub struct SessionCore {
    pub store: Arc<Store>,
    pub evidence: Evidence,
    pub live: Arc<LiveSessions>,
}

impl std::fmt::Debug for SessionCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCore")
            .field("evidence", &self.evidence)
            .finish_non_exhaustive()
    }
}

impl SessionCore {
    pub fn new(store: Arc<Store>, evidence: Evidence, live: Arc<LiveSessions>) -> Self {
        Self {
            store,
            evidence,
            live,
        }
    }

    /// Starts a session: recording, record, live registration (see the module's order). Every
    /// failure is logged, audited where it concerns evidence, and refuses the session.
    pub async fn start(&self, request: StartRequest) -> Result<SessionGuard, Refused> {
        let StartRequest {
            authorized,
            kind,
            interactive,
            command,
            recording,
            inspectors,
        } = request;
        let user = authorized.user.name.to_string();
        let actor = Actor::User { name: user.clone() };
        let id = rampart_store::new_session_id();
        let cap = match &recording {
            Some(plan) if plan.raw_streams => self.evidence.recording.exec_cap,
            _ => None,
        };
        let recorder = match recording.filter(|_| authorized.rules.record) {
            Some(plan) => {
                let options = RecordingOptions {
                    raw_streams: plan.raw_streams,
                    cap,
                };
                match Recorder::create_with(&self.evidence.dir, id, &plan.header, options) {
                    Ok(recorder) => Some(recorder),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot create a recording; refusing the session");
                        let event = AuditEvent::RecordingFailed {
                            session: id.to_string(),
                            reason: err.to_string(),
                        };
                        if let Err(record) = self.store.record_event(&actor, &event).await {
                            tracing::error!(error = %record, "cannot record a recording failure");
                        }
                        return Err(Refused);
                    }
                }
            }
            None => None,
        };
        let session = NewSession {
            id,
            user: user.clone(),
            asset: authorized.asset.name.to_string(),
            account: authorized.account.to_string(),
            kind,
            source_addr: authorized.source.text.clone(),
            grant: authorized.grant,
            recorded: recorder.is_some(),
            recording_cap: if recorder.is_some() { cap } else { None },
            command: command.as_deref().map(listed_command),
        };
        if let Err(err) = self.store.start_session(&session).await {
            tracing::error!(error = %err, "cannot record a session start; refusing it");
            if let Some(recorder) = recorder {
                recorder.discard();
            }
            return Err(Refused);
        }
        // The recording goes to its writer once the session exists; so does the copy to the replica.
        let recorder = match recorder
            .map(|mut recorder| {
                if let Some(replica) = &self.evidence.replica {
                    recorder.replicate_to(replica.clone());
                }
                recorder
            })
            .map(|recorder| LiveRecorder::start(recorder, self.evidence.recording.sync_interval))
        {
            Some(Err(err)) => {
                tracing::error!(error = %err, "cannot start a recording's writer; refusing the session");
                let end = SessionEnd {
                    reason: Refused.to_string(),
                    ..SessionEnd::default()
                };
                if let Err(err) = self.store.end_session(id, &end).await {
                    tracing::error!(error = %err, "cannot record a failed session");
                }
                return Err(Refused);
            }
            Some(Ok(live)) => Some(live),
            None => None,
        };
        let recorded = recorder.is_some();
        let mut observers: Vec<Box<dyn Observer>> = Vec::new();
        if let Some(recorder) = recorder {
            observers.push(Box::new(TerminalRecorder::new(
                recorder,
                self.evidence.key.clone(),
            )));
        }
        observers.extend(inspectors);
        let grant = SessionGrant {
            user: authorized.user.name.clone(),
            auth_epoch: authorized.user.auth_epoch,
            mfa: authorized.mfa,
            asset: authorized.asset.name.clone(),
            account: authorized.account.clone(),
            actions: authorized.actions.clone(),
            kube_namespace: authorized.kube_namespace.clone(),
            interactive,
            idle_timeout: authorized.rules.idle_timeout,
            max_duration: authorized.rules.max_duration,
            source: authorized.source.ip,
        };
        let (registration, control) = self.live.register(id, grant);
        // A recorded database session's statements are marked in its recording before their
        // answers; their searchable rows are then written in batches (`statement_log`). An
        // unrecorded one's rows are its only evidence: each is committed before its answer,
        // through the same writer (a group commit with the other sessions' rows).
        let statements = kind.is_database().then(|| {
            self.evidence
                .statements
                .session(&self.store, registration.session.clone(), !recorded)
        });
        let shared = Arc::new(Shared::new(
            ObserverSet::new(observers),
            Trail {
                store: self.store.clone(),
                id,
                user,
                account: authorized.account_ref(),
                source: authorized.source.text.clone(),
                statements,
            },
            registration.session.clone(),
            self.live.bulk_transfer_alert(),
        ));
        Ok(SessionGuard::spawn(
            shared,
            self.store.clone(),
            registration,
            control,
        ))
    }
}

/// The most of a command the session record keeps (in characters).
const LISTED_COMMAND_CHARS: usize = 500;

/// A command as the session lists show it: control characters escaped (a terminal printing
/// the list interprets none of them), at most [`LISTED_COMMAND_CHARS`] characters, then `…`.
/// The recording keeps the command whole.
fn listed_command(command: &str) -> String {
    let mut listed = String::new();
    for (count, c) in command.chars().enumerate() {
        if count == LISTED_COMMAND_CHARS {
            listed.push('…');
            break;
        }
        if c.is_control() {
            listed.extend(c.escape_default());
        } else {
            listed.push(c);
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::listed_command;

    #[test]
    fn a_listed_command_escapes_control_characters_and_is_bounded() {
        assert_eq!(listed_command("ls -l /tmp"), "ls -l /tmp");
        assert_eq!(listed_command("echo a\nb\x1b[2J"), "echo a\\nb\\u{1b}[2J");
        let long = "x".repeat(2_000);
        let listed = listed_command(&long);
        assert_eq!(listed.chars().count(), 501);
        assert!(listed.ends_with('…'));
    }
}
