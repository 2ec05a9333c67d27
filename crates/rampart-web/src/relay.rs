//! Watching a live session that another node of the cluster carries (issue 19).
//!
//! The watcher's node (where the auditor's browser is) asks the carrying node for the
//! session's output over that node's HTTPS listener: `GET /api/v1/cluster/sessions/ID/stream`,
//! signed with the cluster's audit key (every node holds it, checked at start; nobody else
//! does), the carrying node's certificate trusted as the registry recorded it. The answer is a
//! stream of frames (a kind byte, a 4-byte length, the payload): first the screen's size (JSON,
//! `{}` for a session without a terminal) and the screen, then the output as it comes. The
//! watcher's node audits the watching (`session_watched`) as it does for its own sessions.

use crate::WebState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use hyper_util::rt::TokioIo;
use rampart_session::screen::ScreenState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

const NODE_HEADER: &str = "x-rampart-node";
const TIME_HEADER: &str = "x-rampart-node-time";
const SIGNATURE_HEADER: &str = "x-rampart-node-signature";
/// A signed request older or newer than this is refused (clocks must roughly agree).
const MAX_SKEW_SECS: i64 = 30;
/// The largest frame either side accepts.
const MAX_FRAME: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KIND_SIZE: u8 = 1;
const KIND_SCREEN: u8 = 2;
const KIND_OUTPUT: u8 = 3;

/// This node's part in relays: its name and the cluster's audit key (signs requests to other
/// nodes, checks theirs).
#[derive(Clone)]
pub struct ClusterLink {
    pub node: String,
    pub key: Arc<rampart_audit::PrivateKey>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The path a node serves a session's output to other nodes on.
pub fn stream_path(session: Uuid) -> String {
    format!("/api/v1/cluster/sessions/{session}/stream")
}

/// What a relay request's signature covers.
fn signed_message(path: &str, node: &str, time: i64) -> String {
    format!("rampart-node-relay-v1\nGET\n{path}\n{node}\n{time}")
}

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut bytes = Vec::with_capacity(payload.len() + 5);
    bytes.push(kind);
    bytes.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    bytes.extend_from_slice(payload);
    Bytes::from(bytes)
}

fn refused(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

/// The carrying node's side: a live session's output, for another node of the cluster.
pub async fn session_stream(
    State(state): State<WebState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(link) = &state.cluster else {
        return refused(StatusCode::NOT_FOUND, "this server is not a cluster node\n");
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return refused(StatusCode::NOT_FOUND, "no such session\n");
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(node), Some(time), Some(signature)) = (
        header(NODE_HEADER),
        header(TIME_HEADER).and_then(|t| t.parse::<i64>().ok()),
        header(SIGNATURE_HEADER)
            .and_then(|s| BASE64.decode(s).ok())
            .and_then(|s| String::from_utf8(s).ok()),
    ) else {
        return refused(StatusCode::FORBIDDEN, "only the cluster's nodes may ask\n");
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - time).abs() > MAX_SKEW_SECS
        || !rampart_audit::check_node_request(
            link.key.public_key(),
            &signed_message(&stream_path(id), node, time),
            &signature,
        )
    {
        tracing::warn!(session = %id, node, "refused a relay request without a valid node signature");
        return refused(StatusCode::FORBIDDEN, "only the cluster's nodes may ask\n");
    }
    let Some((screen, mut output)) = state
        .gateway
        .as_ref()
        .and_then(|gateway| gateway.watch_screen(id))
    else {
        return refused(StatusCode::NOT_FOUND, "no live session with that id here\n");
    };
    tracing::info!(session = %id, watcher_node = node, "relaying a live session to another node");
    let (mut sender, body) = Channel::<Bytes, std::io::Error>::new(8);
    tokio::spawn(async move {
        let size = match &screen {
            Some(screen) => serde_json::json!({"cols": screen.cols, "rows": screen.rows}),
            None => serde_json::json!({}),
        };
        if sender
            .send_data(frame(KIND_SIZE, size.to_string().as_bytes()))
            .await
            .is_err()
        {
            return;
        }
        if let Some(screen) = screen
            && sender
                .send_data(frame(KIND_SCREEN, &screen.bytes))
                .await
                .is_err()
        {
            return;
        }
        loop {
            match output.recv().await {
                Ok(bytes) => {
                    // The watcher's node went away: the relay ends with it.
                    if sender.send_data(frame(KIND_OUTPUT, &bytes)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut response = Body::new(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// A relay the watcher's node holds open; dropping it ends it.
#[derive(Debug)]
pub struct Remote {
    pub node: String,
    pub screen: Option<ScreenState>,
    pub output: broadcast::Receiver<Bytes>,
    pub relay: AbortOnDrop,
}

/// Aborts its task when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a session cannot be watched from here.
#[derive(Debug)]
pub enum RemoteError {
    /// Not live, or carried by no other node that is up.
    NotFound,
    /// Carried by `node`, which cannot be reached now.
    Unreachable { node: String, why: String },
}

/// The watcher's node's side: opens a relay to the node that carries `session`, if another
/// node of the cluster carries it live.
pub async fn watch_remote(state: &WebState, session: Uuid) -> Result<Remote, RemoteError> {
    let link = state.cluster.as_ref().ok_or(RemoteError::NotFound)?;
    let record = state
        .store
        .session(session)
        .await
        .map_err(|_| RemoteError::NotFound)?;
    let name = record
        .node
        .filter(|node| record.ended_at.is_none() && *node != link.node)
        .ok_or(RemoteError::NotFound)?;
    let node = state
        .store
        .node_named(&name)
        .await
        .ok()
        .flatten()
        .filter(|node| node.state == rampart_store::nodes::NodeState::Up)
        .ok_or(RemoteError::NotFound)?;
    let unreachable = |why: String| RemoteError::Unreachable {
        node: name.clone(),
        why,
    };
    let address = node
        .address
        .clone()
        .ok_or_else(|| unreachable("it registered no address (node.advertise)".into()))?;
    let mut frames = open(link, &address, node.certificate.as_deref(), session)
        .await
        .map_err(unreachable)?;
    let (kind, size) = frames
        .next()
        .await
        .map_err(unreachable)?
        .ok_or_else(|| unreachable("the relay ended at once".into()))?;
    if kind != KIND_SIZE {
        return Err(unreachable(
            "the relay did not start with the screen size".into(),
        ));
    }
    let size: serde_json::Value =
        serde_json::from_slice(&size).map_err(|err| unreachable(err.to_string()))?;
    let dimension = |key: &str| {
        size.get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    let screen = match (dimension("cols"), dimension("rows")) {
        (Some(cols), Some(rows)) => match frames.next().await.map_err(unreachable)? {
            Some((KIND_SCREEN, bytes)) => Some(ScreenState {
                cols,
                rows,
                bytes: bytes.to_vec(),
            }),
            _ => return Err(unreachable("the relay sent no screen".into())),
        },
        _ => None,
    };
    let (sender, output) = broadcast::channel(256);
    let task = tokio::spawn(async move {
        while let Ok(Some((kind, bytes))) = frames.next().await {
            if kind == KIND_OUTPUT && sender.send(bytes).is_err() {
                return;
            }
        }
    });
    Ok(Remote {
        node: name,
        screen,
        output,
        relay: AbortOnDrop(task),
    })
}

/// The frames of a relay's answer.
struct Frames {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
}

impl Frames {
    async fn next(&mut self) -> Result<Option<(u8, Bytes)>, String> {
        loop {
            if let Some((head, rest)) = self.buffer.split_first_chunk::<5>() {
                let [kind, length @ ..] = *head;
                let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
                if length > MAX_FRAME {
                    return Err(format!("a relay frame of {length} bytes"));
                }
                if let Some(payload) = rest.get(..length) {
                    let payload = Bytes::copy_from_slice(payload);
                    self.buffer.drain(..length + 5);
                    return Ok(Some((kind, payload)));
                }
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(err)) => return Err(err.to_string()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Connects to `address` (the node's base URL), trusting only `certificate` for HTTPS, and
/// asks for the session's stream with this node's signature.
async fn open(
    link: &ClusterLink,
    address: &str,
    certificate: Option<&str>,
    session: Uuid,
) -> Result<Frames, String> {
    let uri: axum::http::Uri = address
        .parse()
        .map_err(|_| format!("its address {address:?} is not a URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("its address {address:?} is not http(s)")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("its address {address:?} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("{address} did not answer within 5 s"))?
    .map_err(|err| format!("{address}: {err}"))?;
    let _ = tcp.set_nodelay(true);
    let path = stream_path(session);
    let time = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature =
        rampart_audit::sign_node_request(&link.key, &signed_message(&path, &link.node, time))?;
    let request = axum::http::Request::builder()
        .method("GET")
        .uri(&path)
        .header(header::HOST, format!("{host}:{port}"))
        .header(NODE_HEADER, &link.node)
        .header(TIME_HEADER, time.to_string())
        .header(SIGNATURE_HEADER, BASE64.encode(signature))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|err| err.to_string())?;
    let response = if https {
        let certificate = certificate.ok_or("it registered no HTTPS certificate to trust")?;
        let tls = tls_client(certificate)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|err| format!("{host}: {err}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|err| format!("TLS with {address}: {err}"))?;
        send(TokioIo::new(stream), request).await?
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    if response.status() != StatusCode::OK {
        return Err(format!("it answered {}", response.status()));
    }
    Ok(Frames {
        body: response.into_body(),
        buffer: Vec::new(),
    })
}

async fn send<T>(
    io: T,
    request: axum::http::Request<http_body_util::Empty<Bytes>>,
) -> Result<axum::http::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| err.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|err| err.to_string())
}

/// A TLS client that trusts only the certificates in `pem` (the node's registered one).
fn tls_client(pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let certificate = certificate.map_err(|err| format!("its certificate: {err}"))?;
        roots
            .add(certificate)
            .map_err(|err| format!("its certificate: {err}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| err.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
