//! Dial-out agents: the listener they connect out to, and the registry of connected ones the
//! dialer opens streams through.
//!
//! Transport: SSH (russh), with the roles of the connection reversed for the streams. The agent
//! is the SSH *client* (it dials out; nothing listens at its site) and authenticates with its
//! own key; Rampart is the server and opens `direct-tcpip` channels *toward* the agent, which
//! connects to the asset and relays. Each stream is an SSH channel with its own window (flow
//! control per stream), on a connection with strict key exchange and keepalives; russh is
//! already the node's SSH stack, so no second multiplexer or TLS stack is added.
//!
//! Enrolment: an agent without an identity authenticates as `enrol` with a fresh key (proving
//! it holds it: russh calls `auth_publickey` only after the signature verified), is answered
//! *partial success*, and then sends the one-time token as a password. The store checks and
//! uses up the token in one transaction and pins the key under the token's agent name. Later
//! connections authenticate with that key alone.
//!
//! INVARIANT: a revoked agent is refused at authentication, and a connected agent that is
//! revoked is disconnected within one check interval (its streams end with the connection).

use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, SecretString};
use rampart_store::{Agent, Enrolment, Store};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{self, Auth, Msg, Session, VerifiedPublicKey};
use russh::{MethodKind, MethodSet, SshId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The login an agent without an identity enrols with.
pub const ENROL_LOGIN: &str = "enrol";
/// The login an enrolled agent connects with (its key says which agent it is).
pub const AGENT_LOGIN: &str = "agent";

/// How long a connection may stay unauthenticated.
const AUTH_DEADLINE: Duration = Duration::from_secs(20);
/// At most this many agent connections at once (authenticated or not).
const MAX_CONNECTIONS: usize = 256;
/// How long opening a stream through an agent may take (the agent connects to the asset).
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A connected agent.
#[derive(Clone)]
struct Link {
    id: u64,
    domain: Name,
    handle: server::Handle,
}

/// The node's connected agents.
pub struct Agents {
    store: Arc<Store>,
    links: Mutex<HashMap<Name, Link>>,
    next: AtomicU64,
    /// How often a connected agent's revocation is checked.
    check_every: Duration,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").finish_non_exhaustive()
    }
}

/// Why no stream through an agent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("not connected")]
    NotConnected,
    #[error("cannot reach {target} through it ({why})")]
    Channel { target: String, why: String },
}

impl Agents {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            links: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            check_every: Duration::from_secs(1),
        }
    }

    /// The names of the domain's connected agents, by name.
    pub fn connected_in(&self, domain: &Name) -> Vec<Name> {
        let Ok(links) = self.links.lock() else {
            return Vec::new();
        };
        let mut names: Vec<Name> = links
            .iter()
            .filter(|(_, link)| &link.domain == domain)
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn link(&self, agent: &Name) -> Option<Link> {
        self.links.lock().ok()?.get(agent).cloned()
    }

    /// A stream to `host:port` in the agent's network: a `direct-tcpip` channel the agent
    /// accepts once it connected (and its `--allow` list permits it).
    pub async fn open(
        &self,
        agent: &Name,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<Msg>, AgentError> {
        let link = self.link(agent).ok_or(AgentError::NotConnected)?;
        let target = rampart_core::target::socket_address(host, port);
        let open = link
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0);
        match tokio::time::timeout(OPEN_TIMEOUT, open).await {
            Ok(Ok(channel)) => Ok(channel.into_stream()),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => Err(AgentError::Channel {
                target,
                why: match reason {
                    russh::ChannelOpenFailure::AdministrativelyProhibited => {
                        "the agent's --allow list does not permit it".into()
                    }
                    russh::ChannelOpenFailure::ConnectFailed => {
                        "the agent cannot connect to it".into()
                    }
                    other => format!("{other:?}"),
                },
            }),
            Ok(Err(err)) => Err(AgentError::Channel {
                target,
                why: err.to_string(),
            }),
            Err(_) => Err(AgentError::Channel {
                target,
                why: "timed out".into(),
            }),
        }
    }

    fn register(&self, agent: &Agent, handle: server::Handle) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let link = Link {
            id,
            domain: agent.domain.clone(),
            handle,
        };
        let replaced = self
            .links
            .lock()
            .ok()
            .and_then(|mut links| links.insert(agent.name.clone(), link));
        // The agent reconnected before its old connection was noticed dead: the new one wins.
        if let Some(old) = replaced {
            tokio::spawn(async move {
                let _ = old
                    .handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "replaced by a new connection".into(),
                        String::new(),
                    )
                    .await;
            });
        }
        id
    }

    fn unregister(&self, agent: &Name, id: u64) {
        if let Ok(mut links) = self.links.lock()
            && links.get(agent).is_some_and(|link| link.id == id)
        {
            links.remove(agent);
        }
    }

    async fn audit(&self, event: AuditEvent) {
        if let Err(err) = self.store.record_event(&Actor::System, &event).await {
            tracing::error!(error = %err, "cannot record an agent event");
        }
    }
}

fn config(host_key: PrivateKey) -> Arc<server::Config> {
    Arc::new(server::Config {
        server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-Rampart-agents")),
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 4,
        inactivity_timeout: None,
        // A dead agent is noticed within a minute even when idle.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32768,
        preferred: russh::Preferred {
            kex: Cow::Borrowed(&[
                russh::kex::MLKEM768X25519_SHA256,
                russh::kex::CURVE25519,
                russh::kex::EXTENSION_SUPPORT_AS_SERVER,
                russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
            ]),
            ..russh::Preferred::default()
        },
        ..server::Config::default()
    })
}

/// Accepts agent connections on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    agents: Arc<Agents>,
    host_key: PrivateKey,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let config = config(host_key);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "too many agent connections; refused");
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let (agents, config) = (agents.clone(), config.clone());
                    tokio::spawn(async move {
                        serve(agents, config, tcp, peer).await;
                        drop(slot);
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept an agent connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// What a connection's handler learnt, shared with its task.
#[derive(Default)]
struct Shared {
    agent: Mutex<Option<(Agent, u64)>>,
    revoked: AtomicBool,
}

impl Shared {
    fn agent(&self) -> Option<(Agent, u64)> {
        self.agent.lock().ok()?.clone()
    }
}

async fn serve(
    agents: Arc<Agents>,
    config: Arc<server::Config>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let shared = Arc::new(Shared::default());
    let handler = Connection {
        agents: agents.clone(),
        peer,
        offered: None,
        shared: shared.clone(),
    };
    let started = Instant::now();
    let running =
        match tokio::time::timeout(AUTH_DEADLINE, server::run_stream(config, tcp, handler)).await {
            Ok(Ok(running)) => running,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "agent handshake failed");
                return;
            }
            Err(_) => return,
        };
    let handle = running.handle();
    let watcher = tokio::spawn(watch(agents.clone(), shared.clone(), handle, started));
    let result = running.await;
    watcher.abort();
    if let Some((agent, id)) = shared.agent() {
        agents.unregister(&agent.name, id);
        let reason = if shared.revoked.load(Ordering::SeqCst) {
            "the agent was revoked".to_owned()
        } else {
            match result {
                Ok(()) => "the connection closed".to_owned(),
                Err(err) => err.to_string(),
            }
        };
        agents
            .audit(AuditEvent::AgentDisconnected {
                agent: agent.name.to_string(),
                reason,
            })
            .await;
    }
}

/// Ends a connection that does not authenticate in time, and an agent's connection once the
/// agent is revoked (from any process: the check reads the store).
async fn watch(agents: Arc<Agents>, shared: Arc<Shared>, handle: server::Handle, since: Instant) {
    let mut tick = tokio::time::interval(agents.check_every);
    loop {
        tick.tick().await;
        let Some((agent, id)) = shared.agent() else {
            if since.elapsed() > AUTH_DEADLINE {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "authentication timed out".into(),
                        String::new(),
                    )
                    .await;
                return;
            }
            continue;
        };
        let revoked = match agents.store.agent(&agent.name).await {
            Ok(now) => now.revoked_at.is_some(),
            // Removed or unreadable: fail closed.
            Err(err) => {
                tracing::warn!(agent = %agent.name, error = %err, "cannot check the agent; ending it");
                true
            }
        };
        if revoked {
            shared.revoked.store(true, Ordering::SeqCst);
            // Out of the registry first: no new stream goes through it.
            agents.unregister(&agent.name, id);
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    "this agent was revoked".into(),
                    String::new(),
                )
                .await;
            return;
        }
    }
}

/// One agent connection's SSH handler: authentication only; the agent may open nothing.
struct Connection {
    agents: Arc<Agents>,
    peer: SocketAddr,
    /// The key an enrolling agent proved it holds (`enrol` login), until its token arrives.
    offered: Option<(String, String)>,
    shared: Arc<Shared>,
}

impl Connection {
    fn accept(&self, agent: Agent) -> Auth {
        if let Ok(mut slot) = self.shared.agent.lock() {
            *slot = Some((agent, 0));
        }
        Auth::Accept
    }
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _login: &str,
        _key: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        login: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // Called only after the signature verified: the peer holds this key.
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.agents.store.agent_by_fingerprint(&fingerprint).await {
            Ok(Some(agent)) if agent.revoked_at.is_none() && login == AGENT_LOGIN => {
                Ok(self.accept(agent))
            }
            Ok(Some(agent)) => {
                tracing::warn!(agent = %agent.name, peer = %self.peer, "a revoked agent was refused");
                Ok(Auth::reject())
            }
            Ok(None) if login == ENROL_LOGIN => {
                let Ok(text) = key.public_key.to_openssh() else {
                    return Ok(Auth::reject());
                };
                self.offered = Some((text, fingerprint));
                // The key is proven; the token must follow.
                Ok(Auth::Reject {
                    proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
                    partial_success: true,
                })
            }
            Ok(None) => Ok(Auth::reject()),
            Err(err) => {
                tracing::error!(error = %err, "cannot look up an agent key");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_password(&mut self, login: &str, password: &str) -> Result<Auth, Self::Error> {
        let (Some((public_key, fingerprint)), ENROL_LOGIN) = (self.offered.take(), login) else {
            return Ok(Auth::reject());
        };
        let token = SecretString::from(password.to_owned());
        let source = self.peer.ip().to_canonical().to_string();
        let enrolment = Enrolment {
            token: &token,
            public_key: &public_key,
            fingerprint: &fingerprint,
            source: &source,
        };
        match self.agents.store.enrol_agent(&enrolment).await {
            Ok(Some(agent)) => {
                tracing::info!(agent = %agent.name, "agent enrolled");
                Ok(self.accept(agent))
            }
            Ok(None) => {
                tracing::warn!(peer = %self.peer, "an agent enrolment token was refused (unknown, used or expired)");
                Ok(Auth::reject())
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot enrol an agent");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let Some((agent, _)) = self.shared.agent() else {
            return Err(russh::Error::NotAuthenticated);
        };
        let id = self.agents.register(&agent, session.handle());
        if let Ok(mut slot) = self.shared.agent.lock() {
            *slot = Some((agent.clone(), id));
        }
        self.agents
            .audit(AuditEvent::AgentConnected {
                agent: agent.name.to_string(),
                source: self.peer.ip().to_canonical().to_string(),
            })
            .await;
        Ok(())
    }
}
