//! SSH-hop gateways: one russh client connection per gateway, shared by every session routed
//! through it (each session a `direct-tcpip` channel turned into a stream), re-established when
//! it drops.
//!
//! INVARIANT: no credential is sent to a gateway before its host key is trusted: pinned and
//! equal, or (pin on first use) pinned by this very connection in the store, first writer wins.

use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{ExposeSecret, Name, SecretKind};
use rampart_store::{Gateway, Store};
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do with a gateway whose host key is not pinned yet: the node's
/// `ssh.target_host_keys`, as for targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    #[default]
    PinOnFirstUse,
    RequirePinned,
}

/// How long a gateway that just failed is skipped (its last reason stands) before new sessions
/// try it again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The step of reaching a gateway (and through it an asset) that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Tcp,
    HostKey,
    Authentication,
    Asset,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Tcp => "tcp reach",
            Step::HostKey => "host key",
            Step::Authentication => "authentication",
            Step::Asset => "reach the asset",
        }
    }

    pub const ALL: [Step; 4] = [Step::Tcp, Step::HostKey, Step::Authentication, Step::Asset];
}

/// Why a gateway could not be used, in words that name the failing step (the caller prefixes
/// `gateway NAME: `).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HopError {
    #[error("{address} is unreachable ({why})")]
    Unreachable { address: String, why: String },
    #[error(
        "host key changed (pinned {expected}, presented {presented}); nothing was sent. If the \
         gateway was reinstalled, remove and add it again"
    )]
    HostKeyChanged { expected: String, presented: String },
    #[error(
        "host key not pinned, and this node connects only to pinned hosts \
         (ssh.target_host_keys = \"require-pinned\"); nothing was sent"
    )]
    HostKeyNotPinned,
    #[error("host key could not be checked")]
    HostKeyUnverified,
    #[error("authentication refused for user {login}")]
    AuthRefused { login: String },
    #[error("its credential cannot be used; the administrators can see why in the log")]
    Credential,
    #[error("SSH failed ({0})")]
    Protocol(String),
    #[error("cannot reach {target} through it ({why})")]
    Channel { target: String, why: String },
}

impl HopError {
    /// The step this error failed.
    pub fn step(&self) -> Step {
        match self {
            HopError::Unreachable { .. } => Step::Tcp,
            HopError::HostKeyChanged { .. }
            | HopError::HostKeyNotPinned
            | HopError::HostKeyUnverified
            | HopError::Protocol(_) => Step::HostKey,
            HopError::AuthRefused { .. } | HopError::Credential => Step::Authentication,
            HopError::Channel { .. } => Step::Asset,
        }
    }
}

/// An authenticated connection to a gateway.
pub struct Hop {
    handle: client::Handle<HopHandler>,
    /// What the connection was made for: a gateway removed and added again with another host,
    /// port or login is reconnected.
    made_for: String,
}

impl Hop {
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// A stream to `host:port` in the gateway's network.
    pub async fn open(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let channel = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.handle
                .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0),
        )
        .await
        .unwrap_or(Err(russh::Error::ConnectionTimeout))?;
        Ok(channel.into_stream())
    }
}

impl fmt::Debug for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hop")
            .field("made_for", &self.made_for)
            .finish_non_exhaustive()
    }
}

fn made_for(gateway: &Gateway) -> String {
    format!("{}|{}|{}", gateway.host, gateway.port, gateway.login)
}

/// How long the TCP connect and the SSH handshake with a gateway may each take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// One slot per gateway: its shared connection and its last failure.
#[derive(Default)]
struct Slot {
    hop: Option<Arc<Hop>>,
    failed: Option<(Instant, HopError)>,
    /// The last background health check failed: sessions skip the gateway (with its reason)
    /// until a check passes, however long ago that was.
    checked_down: bool,
}

/// The node's gateway connections.
pub struct Hops {
    store: Arc<Store>,
    policy: HostKeyPolicy,
    slots: Mutex<HashMap<Name, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl fmt::Debug for Hops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hops")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Hops {
    pub fn new(store: Arc<Store>, policy: HostKeyPolicy) -> Self {
        Self {
            store,
            policy,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn slot(&self, gateway: &Name) -> Arc<tokio::sync::Mutex<Slot>> {
        match self.slots.lock() {
            Ok(mut slots) => slots.entry(gateway.clone()).or_default().clone(),
            // A poisoned map: a fresh slot still works (one more connection).
            Err(_) => Arc::default(),
        }
    }

    /// The gateway's shared connection: the live one, or a new one. A gateway that failed
    /// less than [`RETRY_AFTER`] ago is skipped with its last reason.
    pub async fn hop(&self, gateway: &Gateway) -> Result<Arc<Hop>, HopError> {
        let slot = self.slot(&gateway.name);
        let mut slot = slot.lock().await;
        if let Some(hop) = &slot.hop
            && !hop.is_closed()
            && hop.made_for == made_for(gateway)
        {
            return Ok(hop.clone());
        }
        slot.hop = None;
        if let Some((at, why)) = &slot.failed
            && (at.elapsed() < RETRY_AFTER || slot.checked_down)
        {
            return Err(why.clone());
        }
        match connect(&self.store, self.policy, gateway, Shared::Yes).await {
            Ok(hop) => {
                let hop = Arc::new(hop);
                slot.hop = Some(hop.clone());
                slot.failed = None;
                Ok(hop)
            }
            Err(err) => {
                let repeated = slot
                    .failed
                    .as_ref()
                    .is_some_and(|(_, last)| last.to_string() == err.to_string());
                slot.failed = Some((Instant::now(), err.clone()));
                if !repeated {
                    self.audit_failure(&gateway.name, &err).await;
                }
                Err(err)
            }
        }
    }

    /// One background health check of `gateway`: a live shared connection is healthy; otherwise
    /// a new one is made (and kept for sessions). A failure makes sessions skip the gateway
    /// until a check passes.
    pub async fn check(&self, gateway: &Gateway) -> Result<(), HopError> {
        let slot = self.slot(&gateway.name);
        let mut slot = slot.lock().await;
        if let Some(hop) = &slot.hop
            && !hop.is_closed()
            && hop.made_for == made_for(gateway)
        {
            slot.checked_down = false;
            return Ok(());
        }
        slot.hop = None;
        match connect(&self.store, self.policy, gateway, Shared::Yes).await {
            Ok(hop) => {
                slot.hop = Some(Arc::new(hop));
                slot.failed = None;
                slot.checked_down = false;
                Ok(())
            }
            Err(err) => {
                slot.failed = Some((Instant::now(), err.clone()));
                slot.checked_down = true;
                Err(err)
            }
        }
    }

    /// Checks every gateway every `every` (all at once, each bounded by the handshake
    /// timeouts) until `shutdown`, recording each verdict in the store (a change is an audit
    /// event) for `gateway list/show` and the API.
    pub async fn run_health_checks(
        self: Arc<Self>,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let gateways = match self.store.list_gateways(None).await {
                Ok(gateways) => gateways,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot list gateways for their health checks");
                    Vec::new()
                }
            };
            let mut checks = tokio::task::JoinSet::new();
            for gateway in gateways {
                let hops = self.clone();
                checks.spawn(async move {
                    let result = hops.check(&gateway).await.map_err(|err| err.to_string());
                    let verdict = result.as_ref().map(|_| ()).map_err(String::as_str);
                    if let Err(err) = hops.store.record_gateway_health(&gateway.name, verdict).await
                    {
                        tracing::warn!(gateway = %gateway.name, error = %err, "cannot record a gateway's health");
                    }
                });
            }
            let all_done = async { while checks.join_next().await.is_some() {} };
            tokio::select! {
                () = &mut shutdown => return,
                () = async { all_done.await; tokio::time::sleep(every).await } => {}
            }
        }
    }

    /// Forgets a connection that failed to carry a channel, so the next use reconnects.
    pub async fn drop_hop(&self, gateway: &Name) {
        let slot = self.slot(gateway);
        slot.lock().await.hop = None;
    }

    /// Records a gateway failure in the audit log.
    pub async fn audit_failure(&self, gateway: &Name, err: &HopError) {
        let event = AuditEvent::GatewayFailed {
            gateway: gateway.to_string(),
            reason: err.to_string(),
        };
        if let Err(err) = self.store.record_event(&Actor::System, &event).await {
            tracing::error!(error = %err, "cannot record a gateway failure");
        }
    }
}

/// The gateway's host key check (see the module's invariant).
struct HopHandler {
    store: Arc<Store>,
    gateway: Name,
    pinned: Option<PublicKey>,
    policy: HostKeyPolicy,
    verdict: Arc<Mutex<Option<HopError>>>,
    /// Set once a shared connection is logged in: losing it then is a gateway failure
    /// (audited), which ends the sessions it carried.
    established: Arc<std::sync::atomic::AtomicBool>,
}

/// Whether a connection is the gateway's shared one (its loss is audited) or a test's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    Yes,
    No,
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl HopHandler {
    async fn check(&self, key: &PublicKey) -> Result<(), HopError> {
        let changed = |expected: &PublicKey| HopError::HostKeyChanged {
            expected: fingerprint(expected),
            presented: fingerprint(key),
        };
        match (&self.pinned, self.policy) {
            (Some(pinned), _) if pinned.key_data() == key.key_data() => return Ok(()),
            (Some(pinned), _) => return Err(changed(pinned)),
            (None, HostKeyPolicy::RequirePinned) => return Err(HopError::HostKeyNotPinned),
            (None, HostKeyPolicy::PinOnFirstUse) => {}
        }
        let text = key.to_openssh().map_err(|_| HopError::HostKeyUnverified)?;
        match self
            .store
            .pin_gateway_host_key(
                &Actor::System,
                &self.gateway,
                &text,
                "first connection",
                false,
            )
            .await
        {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(gateway = %self.gateway, error = %err, "cannot pin the host key");
                return Err(HopError::HostKeyUnverified);
            }
        }
        // Another connection pinned a key first: compare with the committed one.
        let committed = self
            .store
            .gateway(&self.gateway)
            .await
            .ok()
            .and_then(|g| g.host_key)
            .and_then(|text| PublicKey::from_openssh(&text).ok())
            .ok_or(HopError::HostKeyUnverified)?;
        if committed.key_data() == key.key_data() {
            Ok(())
        } else {
            Err(changed(&committed))
        }
    }
}

impl client::Handler for HopHandler {
    type Error = russh::Error;

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        if self
            .established
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let why = match &reason {
                client::DisconnectReason::ReceivedDisconnect(info) => {
                    format!("the gateway disconnected ({})", info.message)
                }
                client::DisconnectReason::Error(err) => err.to_string(),
            };
            let event = AuditEvent::GatewayFailed {
                gateway: self.gateway.to_string(),
                reason: format!("connection lost: {why}"),
            };
            if let Err(err) = self.store.record_event(&Actor::System, &event).await {
                tracing::error!(error = %err, "cannot record a lost gateway connection");
            }
        }
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(err) => Err(err),
        }
    }

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let checked = self.check(key).await;
        let trusted = checked.is_ok();
        if let (Err(err), Ok(mut verdict)) = (checked, self.verdict.lock()) {
            *verdict = Some(err);
        }
        // INVARIANT: false ends the handshake before any credential is sent.
        Ok(trusted)
    }
}

fn client_config() -> Arc<client::Config> {
    static CONFIG: std::sync::OnceLock<Arc<client::Config>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(client::Config {
                nodelay: true,
                inactivity_timeout: None,
                // A dead gateway is noticed within a minute even when idle.
                keepalive_interval: Some(Duration::from_secs(15)),
                keepalive_max: 3,
                window_size: 2 * 1024 * 1024,
                maximum_packet_size: 32768,
                // AES-GCM first, as the node's SSH listener prefers: with AES instructions it
                // costs the least per byte (russh's default puts ChaCha20 first).
                preferred: russh::Preferred {
                    cipher: std::borrow::Cow::Borrowed(&[
                        russh::cipher::AES_128_GCM,
                        russh::cipher::AES_256_GCM,
                        russh::cipher::CHACHA20_POLY1305,
                        russh::cipher::AES_256_CTR,
                        russh::cipher::AES_128_CTR,
                    ]),
                    ..russh::Preferred::default()
                },
                ..client::Config::default()
            })
        })
        .clone()
}

/// Connects and logs in to `gateway`: TCP, host key, authentication, each failing with its own
/// error.
pub async fn connect(
    store: &Arc<Store>,
    policy: HostKeyPolicy,
    gateway: &Gateway,
    shared: Shared,
) -> Result<Hop, HopError> {
    let address = rampart_core::target::socket_address(&gateway.host, gateway.port);
    let connect = tokio::net::TcpStream::connect((gateway.host.as_str(), gateway.port));
    let tcp = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => {
            return Err(HopError::Unreachable {
                address,
                why: err.kind().to_string(),
            });
        }
        Err(_) => {
            return Err(HopError::Unreachable {
                address,
                why: "timed out".into(),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let pinned = gateway
        .host_key
        .as_deref()
        .map(PublicKey::from_openssh)
        .transpose()
        .map_err(|_| HopError::HostKeyUnverified)?;
    let verdict = Arc::new(Mutex::new(None));
    let established = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = HopHandler {
        store: store.clone(),
        gateway: gateway.name.clone(),
        pinned,
        policy,
        verdict: verdict.clone(),
        established: established.clone(),
    };
    let handshake = client::connect_stream(client_config(), tcp, handler);
    let mut handle = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Err(_) => return Err(HopError::Protocol("the handshake timed out".into())),
        Ok(Err(err)) => {
            if let Some(refused) = verdict.lock().ok().and_then(|mut v| v.take()) {
                return Err(refused);
            }
            return Err(HopError::Protocol(err.to_string()));
        }
        Ok(Ok(handle)) => handle,
    };
    // Fail closed: a secret is only used when its use is on record.
    let used = AuditEvent::SecretUsed {
        account: format!("gateway {}", gateway.name),
        for_user: "system".into(),
    };
    if let Err(err) = store.record_event(&Actor::System, &used).await {
        tracing::error!(error = %err, "cannot record the use of a secret; not using it");
        return Err(HopError::Credential);
    }
    let (kind, secret) = store
        .reveal_gateway_secret(&gateway.name)
        .await
        .map_err(|err| {
            tracing::error!(gateway = %gateway.name, error = %err, "cannot reveal the gateway's secret");
            HopError::Credential
        })?;
    let login = gateway.login.as_str();
    let protocol = |err: russh::Error| HopError::Protocol(err.to_string());
    let result = match kind {
        SecretKind::Password => handle
            .authenticate_password(login, secret.expose_secret())
            .await
            .map_err(protocol)?,
        SecretKind::PrivateKey => {
            let key = PrivateKey::from_openssh(secret.expose_secret().as_bytes()).map_err(|_| {
                tracing::error!(gateway = %gateway.name, "the vaulted private key does not parse");
                HopError::Credential
            })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(protocol)?
                .flatten();
            handle
                .authenticate_publickey(login, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(protocol)?
        }
    };
    drop(secret);
    if !result.success() {
        return Err(HopError::AuthRefused {
            login: login.to_owned(),
        });
    }
    if shared == Shared::Yes {
        established.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(Hop {
        handle,
        made_for: made_for(gateway),
    })
}

/// `rampart gateway test`: a fresh connection to the gateway (not the shared one), then, with a
/// target, a channel through it to `host:port`. The error names the step that failed; the steps
/// before it passed.
pub async fn test(
    store: &Arc<Store>,
    policy: HostKeyPolicy,
    gateway: &Gateway,
    target: Option<(&str, u16)>,
) -> Result<(), HopError> {
    let hop = connect(store, policy, gateway, Shared::No).await?;
    let result = match target {
        Some((host, port)) => {
            hop.open(host, port)
                .await
                .map(drop)
                .map_err(|err| HopError::Channel {
                    target: rampart_core::target::socket_address(host, port),
                    why: channel_why(&err),
                })
        }
        None => Ok(()),
    };
    let _ = hop
        .handle
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await;
    result
}

/// Each step of a `gateway test` and how it went (`ok`, `failed`, `not tried`, or skipped when
/// no asset was given), in order: what the CLI prints and the API answers.
pub fn step_report(
    outcome: &Result<(), HopError>,
    with_asset: bool,
) -> Vec<(&'static str, String)> {
    let failed_step = outcome.as_ref().err().map(HopError::step);
    let mut steps = Vec::new();
    let mut reached_failure = false;
    for step in Step::ALL {
        let state = if step == Step::Asset && !with_asset {
            "skipped (no --asset)".to_owned()
        } else if reached_failure {
            "not tried".to_owned()
        } else if Some(step) == failed_step {
            reached_failure = true;
            "failed".to_owned()
        } else {
            "ok".to_owned()
        };
        steps.push((step.as_str(), state));
    }
    steps
}

impl Hops {
    /// `gateway test` with this node's host-key policy (the portal's Test button).
    pub async fn test(
        &self,
        gateway: &Gateway,
        target: Option<(&str, u16)>,
    ) -> Result<(), HopError> {
        test(&self.store, self.policy, gateway, target).await
    }
}

/// Why a channel did not open, in words.
pub fn channel_why(err: &russh::Error) -> String {
    match err {
        russh::Error::ChannelOpenFailure(reason) => match reason {
            russh::ChannelOpenFailure::ConnectFailed => "the gateway cannot connect to it".into(),
            russh::ChannelOpenFailure::AdministrativelyProhibited => {
                "the gateway does not allow forwarding".into()
            }
            other => format!("{other:?}"),
        },
        russh::Error::ConnectionTimeout => "timed out".into(),
        other => other.to_string(),
    }
}
