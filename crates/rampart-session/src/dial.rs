//! The dialer: the one place every connection to a target gets its byte stream from.
//!
//! SSH target logins (russh runs its client over the stream), port forwards, the browser
//! terminal (through the SSH target login) and every later protocol front ask the dialer for a
//! stream to an asset's endpoint. The dialer chooses the [`Route`]: today every asset is dialled
//! directly over TCP with a connect timeout; network domains (issue 15) add routes through SSH-hop
//! gateways and dial-out agents here, and nowhere else.
//!
//! The dialer only carries bytes: checking the target's identity (SSH host key, TLS certificate)
//! is the protocol's job, on the stream it gets.

use rampart_core::target::socket_address;
use rampart_core::{Asset, Protocol};
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a direct TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A byte stream to a target, whatever route it takes.
pub trait TargetIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> TargetIo for T {}

/// The stream the dialer hands out: boxed, so a TCP socket and (later) a gateway's channel are
/// the same type to the protocols.
pub type TargetStream = Box<dyn TargetIo>;

/// How a connection reaches its target; sessions record it (`direct`, later `gateway sg-gw-01`,
/// `agent factory-7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A TCP connection from this node to the target's address.
    Direct,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct => f.write_str("direct"),
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
}

/// Opens streams to targets. Cheap to clone; one per node.
#[derive(Debug, Clone)]
pub struct Dialer {
    connect_timeout: Duration,
}

impl Default for Dialer {
    fn default() -> Self {
        Self::new(CONNECT_TIMEOUT)
    }
}

impl Dialer {
    pub fn new(connect_timeout: Duration) -> Self {
        Self { connect_timeout }
    }

    /// The route to `asset`. Every asset is dialled directly until network domains have
    /// gateways (issue 15); a domain alone changes nothing yet.
    pub fn route(&self, _asset: &Asset) -> Route {
        Route::Direct
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
        let route = self.route(asset);
        let target = socket_address(&asset.host, port);
        match route {
            Route::Direct => {
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
                    route,
                    target,
                })
            }
        }
    }
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
