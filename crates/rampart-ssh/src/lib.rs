//! Rampart's SSH gateway.
//!
//! Users connect with stock OpenSSH clients ([`server`]); Rampart authenticates them with their
//! own keys, asks the policy ([`rampart_core::policy`]) whether they may use the account they
//! name, connects to the target with the vaulted credential ([`target`]) and relays every channel
//! through one place ([`relay`]), where the recorder attaches. ProxyJump (`ssh -J`) is not TCP
//! forwarding: the inner SSH connection is terminated here too and served like any other.
//!
//! `russh` is the SSH implementation on both sides: a maintained, pure-Rust library that exposes
//! channels with flow control, which a relay needs, and supports strict key exchange.
#![forbid(unsafe_code)]

pub mod admission;
mod disconnect;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod host_cert;
pub use rampart_session::live;
mod login;
mod menu;
mod relay;
mod requests;
pub mod rotate;
mod server;
mod target;
mod terminal;
pub mod web_approval;

pub use login::{LoginName, TargetSpec};
pub use rampart_session::dial::Dialer;
pub use target::{ScannedHostKey, TargetError, TargetHostKeys, scan_host_key};
pub use terminal::{Terminal, TerminalError, TerminalEvent, TerminalRequest};

/// Ciphers on both legs, fastest first where AES instructions exist: AES-GCM costs a fraction of
/// ChaCha20-Poly1305 per byte there. (russh leaves aes128-gcm out of its defaults.) On the user
/// leg the client's order decides; on the target leg this order does.
pub(crate) const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_CTR,
];

use rampart_core::login_rules::AuthSettings;
use rampart_store::Store;
use russh::keys::PrivateKey;
use std::future::Future;
use std::path::Path;

fn load_key(path: &Path) -> Result<PrivateKey, GatewayError> {
    let error = |reason: String| GatewayError::Key {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?;
    PrivateKey::from_openssh(pem.as_bytes()).map_err(|err| error(err.to_string()))
}
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The end reason of sessions the node ends when it stops.
const NODE_SHUTTING_DOWN: &str = "the node is shutting down";
/// How long a stopping node waits for its sessions to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the gateway needs to run.
#[derive(Clone)]
pub struct Gateway {
    store: Arc<Store>,
    evidence: relay::Evidence,
    server_config: Arc<russh::server::Config>,
    /// Certifies the host key per ProxyJump hop (the node's host CA).
    host_certifier: Arc<host_cert::HostCertifier>,
    /// Logins waiting for a web approval, and the portal's address, when that is on.
    web_approvals: Option<(Arc<web_approval::WebApprovals>, Arc<str>)>,
    live: Arc<live::LiveSessions>,
    auth: rampart_auth::Authenticator,
    admission: Arc<admission::Admission>,
    target_host_keys: TargetHostKeys,
    target_answer_timeout: TargetAnswerTimeout,
    /// The node's one dialer, shared by every connection (it holds the network domains'
    /// gateway connections).
    dialer: rampart_session::dial::Dialer,
}

/// How the gateway treats sessions and logins (from the node's configuration).
#[derive(Debug, Clone, Default)]
pub struct GatewaySettings {
    pub sessions: live::SessionDefaults,
    pub auth: AuthSettings,
    /// What to do with targets whose host key is not pinned yet.
    pub target_host_keys: TargetHostKeys,
    /// Login grace time and caps on unauthenticated connections.
    pub pre_auth: admission::PreAuthLimits,
    pub recording: RecordingSettings,
    /// How long a target has to answer a new session (connect, open the channel, answer the
    /// start request), while the user's messages wait.
    pub target_answer_timeout: TargetAnswerTimeout,
    /// Web approval at SSH login (`auth.ssh_web_approval`), if on.
    pub web_approval: Option<WebApprovalSettings>,
    /// Checks directory users' passwords (`[ldap]`), if configured.
    pub directory: Option<Arc<dyn rampart_auth::PasswordDirectory>>,
    /// Where recordings are copied as they are written (`recording.store = "s3"`), if anywhere.
    pub replica: Option<Arc<dyn rampart_audit::replica::Replica>>,
}

/// Web approval at SSH login: how long a login waits, and the portal's address for the link.
#[derive(Debug, Clone)]
pub struct WebApprovalSettings {
    pub timeout: Duration,
    /// `https://HOST:PORT`, as users reach the portal.
    pub portal_url: String,
}

/// How long a target has to answer a new session; 30 s unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetAnswerTimeout(pub Duration);

impl Default for TargetAnswerTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(30))
    }
}

pub use rampart_session::RecordingSettings;

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Gateway")
            .field("recordings", &self.evidence.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot load the key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot seal interrupted recordings: {0}")]
    Recordings(String),
}

impl Gateway {
    /// Prepares the gateway with the node's host key and audit key, and seals the recordings a
    /// crash left open (returning their sessions, so the caller can close their records). Only
    /// the holder of the data directory's serve lock may do that: another server's live
    /// recordings look the same.
    pub fn new(
        store: Arc<Store>,
        settings: GatewaySettings,
        _held: &rampart_store::ServeLock,
    ) -> Result<(Self, Vec<rampart_audit::SealedRecording>), GatewayError> {
        let dir = store.data_dir().clone();
        let host_key = load_key(&dir.host_key_path())?;
        let host_certifier = Arc::new(host_cert::HostCertifier::load(&dir, host_key.clone())?);
        let audit_key = Arc::new(load_key(&dir.audit_key_path())?);
        let recordings = dir.recordings_dir();
        let sealed = rampart_audit::recording::seal_interrupted(&recordings, &audit_key)
            .map_err(|err| GatewayError::Recordings(err.to_string()))?;
        let gateway = Self {
            store: store.clone(),
            evidence: relay::Evidence {
                dir: recordings,
                key: audit_key,
                recording: settings.recording,
                statements: Default::default(),
                replica: settings.replica,
            },
            server_config: Arc::new(server::config(host_key, Vec::new())),
            host_certifier,
            web_approvals: settings.web_approval.map(|web| {
                (
                    Arc::new(web_approval::WebApprovals::new(web.timeout)),
                    Arc::from(web.portal_url),
                )
            }),
            live: Arc::new(live::LiveSessions::new(
                settings.sessions,
                settings.auth.global.clone(),
            )),
            auth: rampart_auth::Authenticator::new(store.clone(), settings.auth)
                .with_directory(settings.directory),
            admission: admission::Admission::new(settings.pre_auth),
            target_host_keys: settings.target_host_keys,
            target_answer_timeout: settings.target_answer_timeout,
            dialer: rampart_session::dial::Dialer::with_gateways(
                store.clone(),
                settings.target_host_keys.into(),
            ),
        };
        Ok((gateway, sealed))
    }

    /// Follows a live session's output read-only (what its user sees, from now on), for an
    /// auditor watching it; `None` if no live session has that id on this node. The caller
    /// decides who may watch (B10).
    pub fn watch(
        &self,
        session: uuid::Uuid,
    ) -> Option<tokio::sync::broadcast::Receiver<bytes::Bytes>> {
        self.live.watch(session)
    }

    /// Like [`Self::watch`], starting from the screen the session shows now (terminal
    /// sessions): the screen first, then the output from that moment.
    pub fn watch_screen(
        &self,
        session: uuid::Uuid,
    ) -> Option<(
        Option<rampart_session::screen::ScreenState>,
        tokio::sync::broadcast::Receiver<bytes::Bytes>,
    )> {
        self.live.watch_screen(session)
    }

    /// The logins waiting for a web approval (the portal answers them), when that is on.
    pub fn web_approvals(&self) -> Option<Arc<web_approval::WebApprovals>> {
        self.web_approvals
            .as_ref()
            .map(|(approvals, _)| approvals.clone())
    }

    /// The node's session core (the same live registry, so live enforcement and shutdown end
    /// other fronts' sessions too) and authenticator, for the other protocol fronts.
    pub fn session_core(&self) -> rampart_session::SessionCore {
        rampart_session::SessionCore::new(
            self.store.clone(),
            self.evidence.clone(),
            self.live.clone(),
        )
    }

    /// The node's dialer (its gateway connections and connected agents), for the other fronts
    /// and the agent listener.
    pub fn dialer(&self) -> rampart_session::dial::Dialer {
        self.dialer.clone()
    }

    pub fn authenticator(&self) -> rampart_auth::Authenticator {
        self.auth.clone()
    }

    /// Accepts SSH connections on `listener` until `shutdown` completes. Connections already
    /// open are ended with the process.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (stop_enforcing, enforcing) = tokio::sync::watch::channel(false);
        tokio::spawn(self.live.clone().enforce(self.store.clone(), enforcing));
        let _stop_enforcing = stop_enforcing;
        let mut refusals = RefusalLog::default();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match self.admission.admit(peer.ip()) {
                        Ok(slot) => {
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(self.clone().serve_connection(stream, peer, slot));
                        }
                        // Closed at once (OpenSSH's MaxStartups does the same).
                        Err(refused) => refusals.refused(refused, &self.admission),
                    },
                    Err(err) => {
                        // Out of file descriptors and the like: wait instead of spinning (the
                        // connection stays in the backlog until a descriptor is free).
                        tracing::warn!(error = %err, "cannot accept an SSH connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        // Sessions end now, each through its guard: recording sealed, record closed, before
        // the node signs its final chain head. What does not end in time is ended by the next
        // start as interrupted.
        self.live.end_all(NODE_SHUTTING_DOWN);
        if !self.live.drained(SHUTDOWN_GRACE).await {
            tracing::warn!("sessions still open at shutdown; the next start closes them");
        }
    }

    async fn serve_connection(
        self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        slot: admission::PreAuthSlot,
    ) {
        // The login grace time covers every phase before authentication, banner included.
        let stream = slot.guard(stream);
        let handler = server::Connection::new(
            self.store.clone(),
            self.evidence.clone(),
            self.server_config.clone(),
            peer,
            self.live.clone(),
            self.auth.clone(),
            crate::target::Reach {
                dialer: self.dialer.clone(),
                host_keys: self.target_host_keys,
            },
        )
        .unauthenticated(slot)
        .host_certifier(self.host_certifier.clone())
        .web_approvals(self.web_approvals.clone())
        .target_answer_timeout(self.target_answer_timeout);
        let started = std::time::Instant::now();
        let user = handler.access_user();
        // The handshake's future is boxed: this task lives as long as the connection, and
        // would otherwise keep the handshake's state (the handler among it) allocated.
        let handshake = Box::pin(russh::server::run_stream(
            self.server_config.clone(),
            stream,
            handler,
        ))
        .await;
        let result = match handshake {
            Ok(session) => match session.await {
                Ok(()) => "closed".to_owned(),
                Err(err) => {
                    tracing::debug!(%peer, error = %err, "ssh connection ended with an error");
                    format!("error: {err}")
                }
            },
            Err(err) => {
                tracing::debug!(%peer, error = %err, "ssh handshake failed");
                format!("handshake failed: {err}")
            }
        };
        // One access record per connection; its sessions have their own audit events.
        tracing::info!(
            target: ACCESS_TARGET,
            protocol = "ssh",
            user = user.get().map_or("-", String::as_str),
            source = %peer.ip().to_canonical(),
            authenticated = user.get().is_some(),
            result = %result,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "ssh connection"
        );
    }
}

/// The tracing target of access records (one per connection and HTTP request), which the
/// binary routes as `log.access` says.
pub const ACCESS_TARGET: &str = "rampart::access";

/// Says that connections are being refused, at most every ten seconds (a flood must not flood
/// the log too).
#[derive(Default)]
struct RefusalLog {
    since_last: u64,
    last: Option<tokio::time::Instant>,
}

impl RefusalLog {
    fn refused(&mut self, refused: admission::Refused, admission: &admission::Admission) {
        self.since_last += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(10))
        {
            return;
        }
        let limits = admission.limits();
        tracing::warn!(
            refused = self.since_last,
            reason = ?refused,
            unauthenticated = admission.current(),
            max_startups = limits.max_startups.full,
            per_source = limits.per_source_max_startups,
            "refusing SSH connections: too many unauthenticated connections"
        );
        self.since_last = 0;
        self.last = Some(now);
    }
}
