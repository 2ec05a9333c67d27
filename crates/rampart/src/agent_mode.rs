//! Agent mode (`rampart agent --server HOST:PORT --token-file FILE`): runs in a remote network,
//! connects out to the node's agent listener (nothing listens here) and carries the streams
//! Rampart opens toward it (`direct-tcpip` channels, each with its own SSH window) to this
//! network's assets. See `rampart_session::agents` for the server side and the enrolment.
//!
//! INVARIANT: the local `--allow` list is checked here, on the agent, before any connection is
//! made: a compromised bastion cannot reach anything else through it. A network rule is checked
//! against the resolved address that is then dialled (no second lookup).
//!
//! INVARIANT: Rampart's host key is checked before anything is sent: against the fingerprint the
//! enrolment token carries, then against the key pinned in the state directory.

use crate::cli::AgentRunArgs;
use anyhow::{Context, bail};
use rampart_core::login_rules::{IpNet, parse_cidr};
use rampart_core::time_arg::parse_duration;
use rampart_session::agents::{AGENT_LOGIN, ENROL_LOGIN};
use rampart_store::Store;
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// How long the TCP connect and the SSH handshake may each take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connecting to an asset may take.
const ASSET_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest token file read.
const MAX_TOKEN_BYTES: u64 = 4096;

/// The node's SSH host key, which the agent listener presents.
pub fn node_host_key(store: &Store) -> anyhow::Result<PrivateKey> {
    let path = store.data_dir().host_key_path();
    let pem = Zeroizing::new(
        std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the host key {}", path.display()))?,
    );
    PrivateKey::from_openssh(pem.as_bytes())
        .with_context(|| format!("cannot parse the host key {}", path.display()))
}

/// The SHA-256 fingerprint of the node's host key (`SHA256:...`), which tokens carry.
pub fn node_host_key_fingerprint(store: &Store) -> anyhow::Result<String> {
    Ok(node_host_key(store)?
        .public_key()
        .fingerprint(HashAlg::Sha256)
        .to_string())
}

/// Where the agent keeps its identity.
struct State {
    key: PathBuf,
    server_key: PathBuf,
}

impl State {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        Ok(Self {
            key: dir.join("agent.key"),
            server_key: dir.join("server.pub"),
        })
    }

    fn enrolled(&self) -> bool {
        self.key.exists() && self.server_key.exists()
    }
}

/// One rule of the `--allow` list.
#[derive(Debug, Clone)]
enum Rule {
    Network(IpNet),
    HostPort(String, u16),
}

/// The `--allow` list; empty: any destination.
#[derive(Debug, Clone, Default)]
struct Allow(Vec<Rule>);

impl Allow {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut rules = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Ok(net) = parse_cidr(item) {
                rules.push(Rule::Network(net));
                continue;
            }
            let Some((host, port)) = item.rsplit_once(':') else {
                bail!("--allow: {item:?} is neither a network (10.0.0.0/8) nor HOST:PORT");
            };
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("--allow: {item:?} has no valid port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            rules.push(Rule::HostPort(host.to_ascii_lowercase(), port));
        }
        if rules.is_empty() {
            bail!("--allow is empty: leave it out to allow any destination");
        }
        Ok(Self(rules))
    }

    /// Connects to `host:port` if the list permits it. `Err(None)`: not permitted.
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, Option<std::io::Error>> {
        let by_name = self.0.is_empty()
            || self.0.iter().any(|rule| {
                matches!(rule, Rule::HostPort(h, p) if *p == port && h.eq_ignore_ascii_case(host))
            });
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(Some)?
            .filter(|addr| {
                by_name
                    || self
                        .0
                        .iter()
                        .any(|rule| matches!(rule, Rule::Network(net) if net.contains(&addr.ip())))
            })
            .collect();
        if addresses.is_empty() {
            return Err(None);
        }
        let mut last = None;
        for address in addresses {
            match tokio::time::timeout(ASSET_CONNECT_TIMEOUT, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Ok(Err(err)) => last = Some(err),
                Err(_) => last = Some(std::io::ErrorKind::TimedOut.into()),
            }
        }
        Err(last)
    }
}

/// What the agent expects Rampart's host key to be.
#[derive(Debug, Clone)]
enum Expected {
    /// From the token (first connection).
    Fingerprint(String),
    /// Pinned at enrolment.
    Key(Box<PublicKey>),
}

struct AgentClient {
    expected: Expected,
    presented: Arc<Mutex<Option<PublicKey>>>,
    allow: Arc<Allow>,
}

impl client::Handler for AgentClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let trusted = match &self.expected {
            Expected::Fingerprint(fp) => {
                key.fingerprint(HashAlg::Sha256).to_string() == format!("SHA256:{fp}")
            }
            Expected::Key(pinned) => pinned.key_data() == key.key_data(),
        };
        if let Ok(mut presented) = self.presented.lock() {
            *presented = Some(key.clone());
        }
        // INVARIANT: false ends the handshake before anything is sent.
        Ok(trusted)
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let allow = self.allow.clone();
        let host = host_to_connect.to_owned();
        let Ok(port) = u16::try_from(port_to_connect) else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        // Connecting may take a while: the connection's other channels go on meanwhile.
        tokio::spawn(async move {
            match allow.connect(&host, port).await {
                Ok(mut tcp) => {
                    reply.accept().await;
                    let mut stream = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp).await;
                }
                Err(None) => {
                    eprintln!("agent: refused a stream to {host}:{port}: not in --allow");
                    reply
                        .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                        .await;
                }
                Err(Some(err)) => {
                    eprintln!("agent: cannot connect to {host}:{port}: {}", err.kind());
                    reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                }
            }
        });
        Ok(())
    }
}

fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32768,
        ..client::Config::default()
    })
}

/// How an attempt ended.
enum Ended {
    /// Authenticated, served, then the connection closed: reconnect soon.
    Served,
    /// Could not connect (network, Rampart down): back off and retry.
    Retry(String),
    /// Refused for good (revoked, token used or expired): stop.
    Refused(String),
}

fn read_token(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::new());
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_TOKEN_BYTES)
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot open the token file {}", path.display()))?
            .take(MAX_TOKEN_BYTES)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
    }
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Agent mode: connect, serve, reconnect with backoff, until refused for good.
pub async fn run(args: AgentRunArgs) -> anyhow::Result<()> {
    let Some(server) = args.server.clone() else {
        bail!("agent mode needs --server HOST:PORT (Rampart's agent.listen)");
    };
    let max_backoff = parse_duration("--max-backoff", &args.max_backoff)?;
    let allow = Arc::new(match &args.allow {
        Some(text) => Allow::parse(text)?,
        None => Allow::default(),
    });
    let state = State::new(&args.state_dir)?;
    // The token is read once, before the first connection; enrolled agents need none.
    let mut token = if state.enrolled() {
        None
    } else {
        let Some(path) = &args.token_file else {
            bail!(
                "this agent is not enrolled yet ({} has no identity): pass --token-file FILE with a token from `rampart agent token create`",
                args.state_dir.display()
            );
        };
        Some(read_token(path)?)
    };
    let first = Duration::from_secs(1);
    let mut backoff = first;
    loop {
        match attempt(&server, &state, token.as_ref(), allow.clone()).await {
            Ended::Served => {
                token = None;
                backoff = first;
                eprintln!("agent: disconnected from {server}; reconnecting");
            }
            Ended::Retry(why) => {
                eprintln!(
                    "agent: cannot connect to {server} ({why}); retrying in {}s",
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(max_backoff.max(first));
            }
            Ended::Refused(why) => bail!("{server} refused this agent: {why}"),
        }
    }
}

async fn attempt(
    server: &str,
    state: &State,
    token: Option<&Zeroizing<String>>,
    allow: Arc<Allow>,
) -> Ended {
    let enrolling = token.is_some() && !state.enrolled();
    let expected = if enrolling {
        let Some((_, fingerprint)) = token.and_then(|t| t.rsplit_once('.')) else {
            return Ended::Refused(
                "the token is malformed (expected the whole line `rampart agent token create` printed)"
                    .into(),
            );
        };
        Expected::Fingerprint(fingerprint.to_owned())
    } else {
        let pinned = std::fs::read_to_string(&state.server_key)
            .ok()
            .and_then(|text| PublicKey::from_openssh(text.trim()).ok());
        match pinned {
            Some(key) => Expected::Key(Box::new(key)),
            None => return Ended::Refused("the pinned server key cannot be read".into()),
        }
    };
    let tcp = match tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(server)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => return Ended::Retry(err.kind().to_string()),
        Err(_) => return Ended::Retry("timed out".into()),
    };
    let _ = tcp.set_nodelay(true);
    let presented = Arc::new(Mutex::new(None));
    let handler = AgentClient {
        expected,
        presented: presented.clone(),
        allow,
    };
    let mut handle = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        client::connect_stream(client_config(), tcp, handler),
    )
    .await
    {
        Ok(Ok(handle)) => handle,
        Ok(Err(russh::Error::UnknownKey)) => {
            return Ended::Refused(
                "its host key is not the one this agent trusts; nothing was sent".into(),
            );
        }
        Ok(Err(err)) => return Ended::Retry(err.to_string()),
        Err(_) => return Ended::Retry("the handshake timed out".into()),
    };
    let authenticated = if enrolling {
        enrol(&mut handle, state, token, &presented).await
    } else {
        login(&mut handle, state).await
    };
    if let Err(ended) = authenticated {
        return ended;
    }
    eprintln!("agent: connected to {server}");
    while !handle.is_closed() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ended::Served
}

async fn login(handle: &mut client::Handle<AgentClient>, state: &State) -> Result<(), Ended> {
    let pem =
        Zeroizing::new(std::fs::read_to_string(&state.key).map_err(|err| {
            Ended::Refused(format!("cannot read the agent's key: {}", err.kind()))
        })?);
    let key = PrivateKey::from_openssh(pem.as_bytes())
        .map_err(|_| Ended::Refused("the agent's key does not parse".into()))?;
    let result = handle
        .authenticate_publickey(AGENT_LOGIN, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .map_err(|err| Ended::Retry(err.to_string()))?;
    if result.success() {
        Ok(())
    } else {
        Err(Ended::Refused(
            "this agent's identity is not accepted (revoked, or unknown to this node)".into(),
        ))
    }
}

async fn enrol(
    handle: &mut client::Handle<AgentClient>,
    state: &State,
    token: Option<&Zeroizing<String>>,
    presented: &Mutex<Option<PublicKey>>,
) -> Result<(), Ended> {
    let Some((secret, _)) = token.and_then(|t| t.rsplit_once('.')) else {
        return Err(Ended::Refused("the token is malformed".into()));
    };
    // A fresh identity; kept only if the enrolment succeeds.
    let pending = state.key.with_extension("pending");
    let _ = std::fs::remove_file(&pending);
    rampart_store::node_keys::generate_ed25519_key_file(&pending, "rampart-agent")
        .map_err(|err| Ended::Refused(format!("cannot make the agent's key: {err}")))?;
    let pem =
        Zeroizing::new(std::fs::read_to_string(&pending).map_err(|err| {
            Ended::Refused(format!("cannot read the agent's key: {}", err.kind()))
        })?);
    let key = PrivateKey::from_openssh(pem.as_bytes())
        .map_err(|_| Ended::Refused("the agent's new key does not parse".into()))?;
    let proved = handle
        .authenticate_publickey(ENROL_LOGIN, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .map_err(|err| Ended::Retry(err.to_string()))?;
    let refused =
        || Ended::Refused("the enrolment token was refused (unknown, used or expired)".into());
    match proved {
        russh::client::AuthResult::Failure {
            partial_success: true,
            ..
        } => {}
        _ => return Err(refused()),
    }
    let result = handle
        .authenticate_password(ENROL_LOGIN, secret)
        .await
        .map_err(|err| Ended::Retry(err.to_string()))?;
    if !result.success() {
        return Err(refused());
    }
    let server_key = presented
        .lock()
        .ok()
        .and_then(|key| key.clone())
        .and_then(|key| key.to_openssh().ok())
        .ok_or_else(|| Ended::Refused("the server's key was not seen".into()))?;
    std::fs::write(&state.server_key, format!("{server_key}\n"))
        .and_then(|()| std::fs::rename(&pending, &state.key))
        .map_err(|err| {
            Ended::Refused(format!(
                "enrolled, but cannot save the identity in the state directory: {}",
                err.kind()
            ))
        })?;
    eprintln!("agent: enrolled");
    Ok(())
}
