//! The dialer: the one place every connection to a target gets its byte stream from.
//!
//! SSH target logins (russh runs its client over the stream), port forwards, the browser
//! terminal (through the SSH target login) and every later protocol front ask the dialer for a
//! stream to an asset's endpoint. The dialer chooses the [`Route`]: an asset without a network
//! domain is dialled directly over TCP with a connect timeout; an asset in a domain is reached
//! through the domain's SSH-hop gateways in priority order (a `direct-tcpip` channel on the
//! gateway's shared connection, see [`crate::gateway`]), a failed gateway skipped for the next,
//! then through the domain's connected dial-out agents (a channel Rampart opens toward the
//! agent, see [`crate::agents`]).
//! Routes are chosen here and nowhere else. One dialer per node (it holds the gateway
//! connections), shared by the fronts.
//!
//! The dialer only carries bytes: checking the target's identity (SSH host key, TLS certificate)
//! is the protocol's job, on the stream it gets.

use crate::agents::Agents;
use crate::gateway::{HopError, Hops, HostKeyPolicy, channel_why};
use rampart_core::target::socket_address;
use rampart_core::{Asset, Name, Protocol};
use rampart_store::Store;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a direct TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A byte stream to a target, whatever route it takes.
pub trait TargetIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> TargetIo for T {}

/// The stream the dialer hands out: boxed, so a TCP socket and a gateway's channel are the same
/// type to the protocols.
pub type TargetStream = Box<dyn TargetIo>;

/// How a connection reaches its target; sessions record it (`direct`, `gateway sg-gw-01`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A TCP connection from this node to the target's address.
    Direct,
    /// A channel through this SSH-hop gateway of the asset's network domain.
    Gateway(Name),
    /// A stream through this dial-out agent of the asset's network domain.
    Agent(Name),
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct => f.write_str("direct"),
            Route::Gateway(name) => write!(f, "gateway {name}"),
            Route::Agent(name) => write!(f, "agent {name}"),
        }
    }
}

/// A stream to a target, and how it got there.
pub struct Dialed {
    pub stream: TargetStream,
    pub route: Route,
    /// `host:port` of the target, for messages.
    pub target: String,
}

impl fmt::Debug for Dialed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialed")
            .field("route", &self.route)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Why no stream: one line for the user, with the target and the reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialError {
    #[error("{asset} has no {protocol} endpoint")]
    NoEndpoint { asset: String, protocol: Protocol },
    #[error("target {target} is unreachable ({why})")]
    Unreachable { target: String, why: String },
    #[error(
        "{asset} is in network domain {domain}, which has no gateway or agent: add one with \
         `rampart gateway add NAME --domain {domain} ...` or `rampart agent token create \
         --domain {domain}`"
    )]
    NoGateway { asset: String, domain: String },
    /// Every gateway and agent of the domain failed: each one's reason, gateways in priority
    /// order, then agents.
    #[error("cannot reach {target} through network domain {domain}: {}", .failures.join("; "))]
    Gateways {
        target: String,
        domain: String,
        /// `gateway NAME: reason`, `agent NAME: reason`.
        failures: Vec<String>,
    },
    #[error("cannot route to {asset}: {why}")]
    Route { asset: String, why: String },
}

/// Opens streams to targets. Cheap to clone; one per node, shared by the fronts.
#[derive(Debug, Clone)]
pub struct Dialer {
    connect_timeout: Duration,
    /// The gateway connections; none: domain assets cannot be reached (a CLI scan, tests).
    hops: Option<Arc<Hops>>,
    /// The connected dial-out agents (fed by the agent listener, when the node runs one).
    agents: Option<Arc<Agents>>,
}

impl Default for Dialer {
    fn default() -> Self {
        Self::new(CONNECT_TIMEOUT)
    }
}

impl Dialer {
    /// A dialer that reaches assets without a domain only.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            hops: None,
            agents: None,
        }
    }

    /// The node's dialer: direct routes, and domain assets through their gateways (gateway
    /// host keys follow `policy`, as targets' do).
    pub fn with_gateways(store: Arc<Store>, policy: HostKeyPolicy) -> Self {
        Self {
            connect_timeout: CONNECT_TIMEOUT,
            hops: Some(Arc::new(Hops::new(store.clone(), policy))),
            agents: Some(Arc::new(Agents::new(store))),
        }
    }

    /// The gateway connections, for their background health checks.
    pub fn hops(&self) -> Option<Arc<Hops>> {
        self.hops.clone()
    }

    /// The registry of connected agents this dialer routes through, for the agent listener.
    pub fn agents(&self) -> Option<Arc<Agents>> {
        self.agents.clone()
    }

    /// A stream to the asset's `protocol` endpoint.
    pub async fn dial(&self, asset: &Asset, protocol: Protocol) -> Result<Dialed, DialError> {
        let endpoint = asset
            .endpoint(protocol)
            .ok_or_else(|| DialError::NoEndpoint {
                asset: asset.name.to_string(),
                protocol,
            })?;
        self.dial_port(asset, endpoint.port).await
    }

    /// A stream to any port of the asset (a port forward may reach a port that is not a
    /// declared endpoint; the grant's `port_forward` decides).
    pub async fn dial_port(&self, asset: &Asset, port: u16) -> Result<Dialed, DialError> {
        match &asset.domain {
            None => self.direct(asset, port).await,
            Some(domain) => self.through_domain(asset, domain, port).await,
        }
    }

    async fn direct(&self, asset: &Asset, port: u16) -> Result<Dialed, DialError> {
        let target = socket_address(&asset.host, port);
        let connect = tokio::net::TcpStream::connect((asset.host.as_str(), port));
        let tcp = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => {
                return Err(DialError::Unreachable {
                    target,
                    why: err.kind().to_string(),
                });
            }
            Err(_) => {
                return Err(DialError::Unreachable {
                    target,
                    why: "timed out".into(),
                });
            }
        };
        // Interactive traffic: keystrokes go out at once.
        let _ = tcp.set_nodelay(true);
        Ok(Dialed {
            stream: Box::new(tcp),
            route: Route::Direct,
            target,
        })
    }

    /// Through the domain's gateways in priority order: the first that carries a channel to
    /// the target wins; when none does, the error names each one's reason.
    async fn through_domain(
        &self,
        asset: &Asset,
        domain: &Name,
        port: u16,
    ) -> Result<Dialed, DialError> {
        let target = socket_address(&asset.host, port);
        let Some(hops) = &self.hops else {
            return Err(DialError::Route {
                asset: asset.name.to_string(),
                why: format!(
                    "it is in network domain {domain}, and this process has no gateway connections"
                ),
            });
        };
        let gateways = hops
            .store()
            .list_gateways(Some(domain))
            .await
            .map_err(|err| DialError::Route {
                asset: asset.name.to_string(),
                why: format!("cannot read the gateways of network domain {domain} ({err})"),
            })?;
        let agents = hops
            .store()
            .list_agents(Some(domain))
            .await
            .map_err(|err| DialError::Route {
                asset: asset.name.to_string(),
                why: format!("cannot read the agents of network domain {domain} ({err})"),
            })?;
        let agents: Vec<Name> = agents
            .into_iter()
            .filter(|agent| agent.revoked_at.is_none())
            .map(|agent| agent.name)
            .collect();
        if gateways.is_empty() && agents.is_empty() {
            return Err(DialError::NoGateway {
                asset: asset.name.to_string(),
                domain: domain.to_string(),
            });
        }
        let mut failures = Vec::with_capacity(gateways.len() + agents.len());
        for gateway in &gateways {
            match open_through(hops, gateway, &asset.host, port).await {
                Ok(stream) => {
                    return Ok(Dialed {
                        stream: Box::new(stream),
                        route: Route::Gateway(gateway.name.clone()),
                        target,
                    });
                }
                Err(err) => failures.push(format!("gateway {}: {err}", gateway.name)),
            }
        }
        for agent in &agents {
            let opened = match &self.agents {
                Some(connected) => connected.open(agent, &asset.host, port).await,
                None => Err(crate::agents::AgentError::NotConnected),
            };
            match opened {
                Ok(stream) => {
                    return Ok(Dialed {
                        stream: Box::new(stream),
                        route: Route::Agent(agent.clone()),
                        target,
                    });
                }
                Err(err) => failures.push(format!("agent {agent}: {err}")),
            }
        }
        Err(DialError::Gateways {
            target,
            domain: domain.to_string(),
            failures,
        })
    }
}

/// A channel to `host:port` through `gateway`'s shared connection; a connection that turns out
/// dead is dropped and made again once.
async fn open_through(
    hops: &Hops,
    gateway: &rampart_store::Gateway,
    host: &str,
    port: u16,
) -> Result<russh::ChannelStream<russh::client::Msg>, HopError> {
    for attempt in 0..2 {
        let hop = hops.hop(gateway).await?;
        match hop.open(host, port).await {
            Ok(stream) => return Ok(stream),
            // The gateway answered: it could not reach the target. Not the connection's fault.
            Err(err @ russh::Error::ChannelOpenFailure(_)) => {
                let failed = HopError::Channel {
                    target: socket_address(host, port),
                    why: channel_why(&err),
                };
                hops.audit_failure(&gateway.name, &failed).await;
                return Err(failed);
            }
            Err(err) => {
                hops.drop_hop(&gateway.name).await;
                if attempt == 1 {
                    let failed = HopError::Protocol(err.to_string());
                    hops.audit_failure(&gateway.name, &failed).await;
                    return Err(failed);
                }
            }
        }
    }
    Err(HopError::Protocol("the connection dropped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::{Endpoint, Name};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn asset(port: u16) -> Asset {
        Asset {
            id: uuid_nil(),
            name: Name::parse("asset", "web-01").unwrap(),
            host: "127.0.0.1".into(),
            domain: None,
            endpoints: vec![Endpoint::new(Protocol::Ssh, port)],
            labels: vec![],
            host_key: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn uuid_nil() -> uuid::Uuid {
        uuid::Uuid::nil()
    }

    #[tokio::test]
    async fn dials_the_endpoint_of_the_protocol_directly() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            peer.write_all(b"SSH-2.0-test\r\n").await.unwrap();
        });
        let mut dialed = Dialer::default()
            .dial(&asset(port), Protocol::Ssh)
            .await
            .unwrap();
        assert_eq!(dialed.route.to_string(), "direct");
        assert_eq!(dialed.target, format!("127.0.0.1:{port}"));
        let mut banner = String::new();
        dialed.stream.read_to_string(&mut banner).await.unwrap();
        assert_eq!(banner, "SSH-2.0-test\r\n");
        accept.await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_endpoint_or_a_closed_port_is_one_line_naming_it() {
        let err = Dialer::default()
            .dial(&asset(22), Protocol::Postgres)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "web-01 has no postgres endpoint");
        // A port nothing listens on: bind one, learn it, close it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = Dialer::default()
            .dial(&asset(closed), Protocol::Ssh)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("target 127.0.0.1:{closed} is unreachable (connection refused)")
        );
    }
}
