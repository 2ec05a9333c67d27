//! What the fronts of message-framed protocols (the database fronts) share: the accept loop
//! with its cap on connections not logged in, and the relay of whole frames through the
//! session's tap. The protocol says how frames are cut and checked ([`Framing`]); the relay
//! records and observes each batch before it is forwarded, and ends on either side's close,
//! a protocol error or live enforcement's stop.

use crate::SessionTap;
use crate::live::SessionControl;
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes read at a time each way.
const READ_CHUNK: usize = 64 * 1024;

/// What every database front's connections share: the session core, the node's one
/// authenticator and dialer, the TLS acceptor with the node's certificate, and the cap on
/// connections not logged in yet. Cheap to clone.
#[derive(Clone)]
pub struct FrontBase {
    pub core: crate::SessionCore,
    pub auth: rampart_auth::Authenticator,
    pub dialer: crate::dial::Dialer,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub unauthenticated: Arc<Semaphore>,
}

impl std::fmt::Debug for FrontBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontBase")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl FrontBase {
    /// `tls`: the node's certificate (the web listener's), offered with the protocol's `alpn`
    /// names (none: clients that send none); at most `max_unauthenticated` connections (at
    /// least one) may be logging in at once.
    pub fn new(
        core: crate::SessionCore,
        auth: rampart_auth::Authenticator,
        dialer: crate::dial::Dialer,
        tls: Option<Arc<rustls::ServerConfig>>,
        alpn: Vec<Vec<u8>>,
        max_unauthenticated: usize,
    ) -> Self {
        let tls = tls.map(|config| {
            let mut config = (*config).clone();
            config.alpn_protocols = alpn;
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        Self {
            core,
            auth,
            dialer,
            tls,
            unauthenticated: Arc::new(Semaphore::new(max_unauthenticated.max(1))),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes; each gets a task running
/// `serve` with a clone of `front` and its place among the at most `unauthenticated`
/// connections not logged in yet (over the cap a connection is closed at once). `protocol`
/// names the listener in logs.
pub async fn accept_loop<F, S, Fut>(
    protocol: &'static str,
    listener: TcpListener,
    unauthenticated: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
    front: F,
    serve: S,
) where
    F: Clone,
    S: Fn(F, TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Logged at debug level only: a flood must not flood the log too.
                    let Ok(permit) = unauthenticated.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, protocol, "too many connections not logged in; closing one");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(front.clone(), stream, peer, permit));
                }
                Err(err) => {
                    tracing::warn!(error = %err, protocol, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// How a protocol's byte streams are cut into frames and checked. The client's frames, after
/// the tap, are what the observers let through (`ClientVerdict::forward`).
pub trait Framing: Sync {
    /// Takes every whole frame off the front of `buf` (`None`: none yet); an error ends the
    /// session (a frame over the protocol's bound, a malformed header).
    fn split(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, String>;
    /// Checks the client's frames before they reach the tap (an error ends the session).
    fn check_client(&self, _frames: &Bytes) -> Result<(), String> {
        Ok(())
    }
    /// Checks the target's frames before they reach the tap.
    fn check_target(&self, _frames: &Bytes) -> Result<(), String> {
        Ok(())
    }
    /// Whether the client said goodbye in these (forwarded) frames.
    fn client_quits(&self, frames: &Bytes) -> bool;
    /// Frames forwarded either way (for protocols that follow sequence numbers).
    fn forwarded(&self, _frames: &Bytes) {}
}

/// How long Rampart's last words to a client (a stop's or an error's message) may take: a
/// client that stopped reading must not keep a session that has ended alive.
pub const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `send`, a front's last message to its client after the relay, for at most
/// [`FAREWELL_TIMEOUT`] (the client's socket buffer may be full: the message is then dropped
/// with the connection).
pub async fn farewell(send: impl Future<Output = ()>) {
    if tokio::time::timeout(FAREWELL_TIMEOUT, send).await.is_err() {
        tracing::info!("the client did not take Rampart's last message; closing");
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client or the target closed, or a write failed: the line for the record.
    Closed(String),
    /// Rampart ends the session and tells the client why (a protocol error).
    Error(String),
    /// Live enforcement stopped the session (kill, revocation, limits): its reason.
    Stopped(String),
}

async fn client_to_target(
    client: &mut (impl AsyncRead + Unpin),
    target: &mut (impl AsyncWrite + Unpin),
    tap: &SessionTap,
    framing: &impl Framing,
) -> RelayEnd {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        match client.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return RelayEnd::Closed("client disconnected".into()),
            Ok(_) => {}
        }
        let frames = match framing.split(&mut buf) {
            Ok(Some(frames)) => frames,
            Ok(None) => {
                buf.reserve(READ_CHUNK);
                continue;
            }
            Err(why) => return RelayEnd::Error(format!("protocol violation: {why}")),
        };
        if let Err(why) = framing.check_client(&frames) {
            return RelayEnd::Error(why);
        }
        tap.live().touch();
        // An observer may put other frames in place of a refused statement (the front's
        // statement control): those go to the target instead.
        let frames = match tap.client_sent(&frames).await {
            Err(err) => return RelayEnd::Error(err),
            Ok(verdict) => match verdict.forward {
                Some(rewritten) => Bytes::from(rewritten),
                None => frames,
            },
        };
        framing.forwarded(&frames);
        if target.write_all(&frames).await.is_err() {
            return RelayEnd::Closed("target closed the connection".into());
        }
        if framing.client_quits(&frames) {
            return RelayEnd::Closed("client disconnected".into());
        }
    }
}

async fn target_to_client(
    target: &mut (impl AsyncRead + Unpin),
    client: &mut (impl AsyncWrite + Unpin),
    tap: &SessionTap,
    framing: &impl Framing,
) -> RelayEnd {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        match target.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return RelayEnd::Closed("target closed the connection".into()),
            Ok(_) => {}
        }
        let frames = match framing.split(&mut buf) {
            Ok(Some(frames)) => frames,
            Ok(None) => {
                buf.reserve(READ_CHUNK);
                continue;
            }
            Err(why) => return RelayEnd::Error(format!("target protocol violation: {why}")),
        };
        if let Err(why) = framing.check_target(&frames) {
            return RelayEnd::Error(why);
        }
        // Recorded (and each answered statement logged) before it is passed back.
        if let Err(err) = tap
            .target_sent(&[(rampart_audit::Stream::Output, frames.clone())])
            .await
        {
            return RelayEnd::Error(err);
        }
        framing.forwarded(&frames);
        if client.write_all(&frames).await.is_err() {
            return RelayEnd::Closed("client disconnected".into());
        }
    }
}

/// Relays whole frames both ways until either side ends, a protocol error, or live
/// enforcement's stop. An error or a stop is also shown as a notice in the recording; the
/// caller tells the client (through `client_write`) in its protocol's words.
pub async fn relay(
    client_read: &mut (impl AsyncRead + Unpin),
    target: &mut (impl AsyncRead + AsyncWrite + Unpin),
    client_write: &mut (impl AsyncWrite + Unpin),
    tap: &SessionTap,
    control: &mut SessionControl,
    framing: &impl Framing,
) -> RelayEnd {
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let end = {
        let up = client_to_target(client_read, &mut target_write, tap, framing);
        let down = target_to_client(&mut target_read, client_write, tap, framing);
        tokio::select! {
            ended = up => ended,
            ended = down => ended,
            why = control.stopped() => RelayEnd::Stopped(why),
        }
    };
    if let RelayEnd::Error(why) | RelayEnd::Stopped(why) = &end {
        tap.notice(why).await;
    }
    end
}
