//! `kubectl port-forward` over WebSocket, relayed and recorded connection by connection.
//!
//! The request was authorized for `kubernetes:port_forward` by the proxy (its own action: a
//! pod's ports are not commands in it). Two framings are relayed, whichever the API server
//! chooses of those the client offered:
//!
//! - `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+, KEP-4006): SPDY frames as a byte stream in
//!   binary messages ([`crate::spdy`]). Each forwarded connection is an error stream and a data
//!   stream whose headers name the port; Rampart reads the client's header blocks for it.
//! - `v4.channel.k8s.io` (the `kubernetes` Python client): the ports are the request's `ports`
//!   parameter; channel 2i carries port i's data, 2i+1 its errors, and the first message on
//!   each channel from the API server is the port number.
//!
//! One session of kind `kubernetes_port_forward` per stream: each forwarded connection is a
//! record in the session's command log when it opens and when it closes (its port and the bytes
//! each way), and a marker in the recording; the bytes themselves are kept in the raw-stream
//! recording (`recording.exec_cap` caps them), recorded before they are forwarded. Live
//! enforcement writes its reason on every open connection's error stream, then closes both
//! sides.

use crate::api::{ApiRequest, query_values};
use crate::exec::{Target, channel, connect, offered_protocols, switching_protocols};
use crate::exec::{websocket_key, ws_config};
use crate::proxy::{Body, Conn, status};
use crate::spdy::{self, Frame, FrameReader, HeaderInflater};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rampart_audit::Stream;
use rampart_audit::recording::CastHeader;
use rampart_core::SessionKind;
use rampart_session::database::QueryRecord;
use rampart_session::{Authorized, RecordingPlan, SessionGuard, SessionTap, StartRequest};
use rampart_store::Store;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, frame::coding::CloseCode};

/// kubectl's tunnel.
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The channel framing of WebSocket clients.
const CHANNELS: &str = "v4.channel.k8s.io";
/// Connections open at once on one stream, at most.
const MAX_CONNECTIONS: usize = 256;

type Client = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Opens a port-forward stream (the request was authorized for `kubernetes:port_forward`).
pub(crate) async fn open(
    conn: &Arc<Conn>,
    mut request: Request<Incoming>,
    authorized: Authorized,
    api: ApiRequest,
    query: Option<String>,
) -> Response<Body> {
    let headers = request.headers().clone();
    let Some(key) = websocket_key(&headers) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "port-forward goes through Rampart over WebSockets only: use kubectl 1.31 or newer",
        );
    };
    let offered = offered_protocols(&headers, &[TUNNEL, CHANNELS]);
    if offered.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Rampart relays port-forward with the SPDY/3.1+portforward.k8s.io (kubectl) or v4.channel.k8s.io subprotocol only",
        );
    }
    let mut ports = Vec::new();
    for value in query_values(query.as_deref(), "ports") {
        for port in value.split(',') {
            match port.trim().parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("invalid port {port:?} in the ports parameter"),
                    );
                }
            }
        }
    }
    if ports.len() > MAX_CONNECTIONS / 2 {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "too many ports in one port-forward",
        );
    }
    let core = &conn.front.base.core;
    let title = format!(
        "{}@{}@{} {} (kubernetes)",
        authorized.user.name,
        authorized.account,
        authorized.asset.name,
        api.summary()
    );
    let command = format!(
        "port-forward pods/{} -n {}",
        api.name.as_deref().unwrap_or("-"),
        api.namespace.as_deref().unwrap_or("-")
    );
    let started = core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind: SessionKind::KubernetesPortForward,
            interactive: false,
            command: Some(command),
            recording: Some(RecordingPlan {
                header: CastHeader::new(80, 24, None, None, title),
                raw_streams: true,
            }),
            inspectors: Vec::new(),
        })
        .await;
    let guard = match started {
        Ok(guard) => guard,
        Err(refused) => {
            return status(StatusCode::FORBIDDEN, "Forbidden", &refused.to_string());
        }
    };
    let target = connect(
        conn,
        &authorized,
        &api,
        query.as_deref(),
        &headers,
        &offered,
        &guard,
    )
    .await;
    let (target, chosen) = match target {
        Ok(target) => target,
        Err(why) => {
            guard.end(why.clone(), None).await;
            return status(StatusCode::BAD_GATEWAY, "ServiceUnavailable", &why);
        }
    };
    let framing = if chosen == TUNNEL {
        match Tunnel::new() {
            Ok(tunnel) => Framing::Tunnel(Box::new(tunnel)),
            Err(why) => {
                guard.end(why.clone(), None).await;
                return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &why);
            }
        }
    } else if ports.is_empty() {
        guard
            .end("a port-forward without a ports parameter", None)
            .await;
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "a v4.channel.k8s.io port-forward names its ports (ports=8080)",
        );
    } else {
        Framing::Channels(Channels::new(ports))
    };
    let log = ForwardLog {
        store: core.store.clone(),
        session: guard.id(),
        user: authorized.user.name.to_string(),
        asset: authorized.asset.name.to_string(),
        account: authorized.account.to_string(),
        namespace: api.namespace.clone(),
        pod: api.name.clone(),
        seq: 0,
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let client = match on_upgrade.await {
            Ok(upgraded) => {
                WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config()),
                )
                .await
            }
            Err(_) => {
                guard.end("client disconnected", None).await;
                return;
            }
        };
        relay(client, target, guard, framing, log).await;
    });
    switching_protocols(&key, &chosen)
}

/// One forwarded connection: its port and the bytes each way.
#[derive(Debug, Default)]
struct Connection {
    port: Option<u16>,
    /// kubectl's `requestid`, or the port's index in the `ports` parameter.
    id: String,
    to_pod: u64,
    from_pod: u64,
    client_done: bool,
    pod_done: bool,
    /// What the pod side wrote on the connection's error stream (bounded).
    error: String,
}

/// The record of a connection in the session's command log (`rampart audit queries`).
#[derive(Debug, Serialize)]
struct ForwardRecord {
    #[serde(flatten)]
    query: QueryRecord,
    resource: &'static str,
    subresource: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    port: Option<u16>,
    connection: String,
    bytes_to_pod: u64,
    bytes_from_pod: u64,
}

/// Writes a session's connection records.
struct ForwardLog {
    store: Arc<Store>,
    session: uuid::Uuid,
    user: String,
    asset: String,
    account: String,
    namespace: Option<String>,
    pod: Option<String>,
    seq: u64,
}

impl ForwardLog {
    /// A record (`opened` or `closed`) and its marker in the recording; an error ends the
    /// session (fail closed).
    async fn write(
        &mut self,
        tap: &SessionTap,
        connection: &Connection,
        what: &str,
    ) -> Result<(), String> {
        self.seq += 1;
        let port = connection
            .port
            .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        let statement = format!("port {port} connection {}", connection.id);
        let mut query = QueryRecord::new(self.seq, "portforward", &statement, Vec::new());
        query.status = vec![what.to_owned()];
        if !connection.error.is_empty() {
            query.error = Some(connection.error.clone());
        }
        let record = ForwardRecord {
            query,
            resource: "pods",
            subresource: "portforward",
            namespace: self.namespace.clone(),
            name: self.pod.clone(),
            port: connection.port,
            connection: connection.id.clone(),
            bytes_to_pod: connection.to_pod,
            bytes_from_pod: connection.from_pod,
        };
        let json = serde_json::to_string(&record).map_err(|err| err.to_string())?;
        self.store
            .record_command(self.session, &self.user, &self.asset, &self.account, &json)
            .await
            .map_err(|err| format!("cannot write the audit trail ({err})"))?;
        let marker = if what == "opened" {
            format!(
                "port-forward: port {port} connection {} opened",
                connection.id
            )
        } else {
            format!(
                "port-forward: port {port} connection {} {what}: {} bytes to the pod, {} bytes from it",
                connection.id, connection.to_pod, connection.from_pod
            )
        };
        tap.notice(&marker).await;
        Ok(())
    }
}

enum Framing {
    Tunnel(Box<Tunnel>),
    Channels(Channels),
}

/// kubectl's SPDY tunnel: the frames both ways and the connections they carry.
struct Tunnel {
    up: FrameReader,
    down: FrameReader,
    inflater: HeaderInflater,
    /// Data streams by id.
    data: HashMap<u32, Connection>,
    /// Error streams by id: the connection they belong to.
    errors: HashMap<u32, String>,
}

impl Tunnel {
    fn new() -> Result<Self, String> {
        Ok(Self {
            up: FrameReader::default(),
            down: FrameReader::default(),
            inflater: HeaderInflater::new()?,
            data: HashMap::new(),
            errors: HashMap::new(),
        })
    }
}

/// The v4 channel framing: a connection per port of the request.
struct Channels {
    connections: Vec<Connection>,
    /// Whether the API server's first message (the port) on each channel has passed.
    started: Vec<bool>,
}

impl Channels {
    fn new(ports: Vec<u16>) -> Self {
        let started = vec![false; ports.len() * 2];
        let connections = ports
            .into_iter()
            .enumerate()
            .map(|(index, port)| Connection {
                port: Some(port),
                id: index.to_string(),
                ..Connection::default()
            })
            .collect();
        Self {
            connections,
            started,
        }
    }
}

/// How long a stopped session waits for kubectl to end its half of each connection (so that it
/// has printed why) before the WebSocket is closed.
const CLIENT_ACKNOWLEDGES_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the relay stopped.
enum Ended {
    Closed(String),
    Stopped(String),
}

/// Relays both ways until either side closes or live enforcement stops the session.
async fn relay(
    mut client: Client,
    mut target: Target,
    mut guard: SessionGuard,
    mut framing: Framing,
    mut log: ForwardLog,
) {
    let tap = guard.tap();
    let Some(mut control) = guard.take_control() else {
        guard.end("the session could not be watched", None).await;
        return;
    };
    if let Framing::Channels(channels) = &framing {
        for connection in &channels.connections {
            if let Err(why) = log.write(&tap, connection, "opened").await {
                guard.end(why, None).await;
                return;
            }
        }
    }
    let ended = loop {
        let step = tokio::select! {
            why = control.stopped() => break Ended::Stopped(why),
            message = client.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    tap.live().touch();
                    match &mut framing {
                        Framing::Tunnel(tunnel) => {
                            from_client_tunnel(tunnel, &tap, &mut log, &mut target, &data).await
                        }
                        Framing::Channels(channels) => {
                            from_client_channels(channels, &tap, &mut target, data).await
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = target.send(Message::Close(frame)).await;
                    break Ended::Closed("client disconnected".to_owned());
                }
                Some(Ok(_)) => Ok(()),
                None | Some(Err(_)) => break Ended::Closed("client disconnected".to_owned()),
            },
            message = target.next() => match message {
                Some(Ok(Message::Binary(data))) => match &mut framing {
                    Framing::Tunnel(tunnel) => {
                        from_pod_tunnel(tunnel, &tap, &mut log, &mut client, &data).await
                    }
                    Framing::Channels(channels) => {
                        from_pod_channels(channels, &tap, &mut client, data).await
                    }
                },
                Some(Ok(Message::Close(frame))) => {
                    let _ = client.send(Message::Close(frame)).await;
                    break Ended::Closed("the pod's stream ended".to_owned());
                }
                Some(Ok(_)) => Ok(()),
                None | Some(Err(_)) => {
                    let _ = client.close(None).await;
                    break Ended::Closed("the API server closed the stream".to_owned());
                }
            },
        };
        if let Err(why) = step {
            let _ = client.close(None).await;
            let _ = target.close(None).await;
            break Ended::Closed(why);
        }
    };
    let (reason, what) = match ended {
        Ended::Closed(why) => (why, "closed".to_owned()),
        Ended::Stopped(why) => {
            tap.notice(&why).await;
            let text = format!("Rampart ended the session: {why}");
            tell_client(&framing, &mut client, &text).await;
            // kubectl prints a connection's error once its data stream ended; it exits when
            // the WebSocket closes, and then prints only that it lost the connection. Give it
            // the time to answer the ends: it answers at once, but a loaded machine can hold
            // it up for seconds; nothing is relayed meanwhile, and the wait is bounded.
            if let Framing::Tunnel(tunnel) = &mut framing {
                let _ = tokio::time::timeout(
                    CLIENT_ACKNOWLEDGES_WITHIN,
                    client_acknowledges(tunnel, &mut client),
                )
                .await;
            }
            let _ = client
                .send(Message::Close(Some(
                    tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    },
                )))
                .await;
            let _ = target.close(None).await;
            let what = format!("ended ({why})");
            (why, what)
        }
    };
    let open: Vec<Connection> = match framing {
        Framing::Tunnel(tunnel) => tunnel.data.into_values().collect(),
        Framing::Channels(channels) => channels.connections,
    };
    for connection in &open {
        if let Err(why) = log.write(&tap, connection, &what).await {
            tracing::warn!(error = %why, "cannot record the end of a forwarded connection");
        }
    }
    guard.end(reason, None).await;
}

/// Live enforcement's reason on every open connection's error stream (kubectl prints it).
async fn tell_client(framing: &Framing, client: &mut Client, text: &str) {
    let mut out = BytesMut::new();
    match framing {
        Framing::Tunnel(tunnel) => {
            let open: Vec<&String> = tunnel.data.values().map(|c| &c.id).collect();
            for (stream, id) in &tunnel.errors {
                if open.contains(&id) {
                    put_data_frame(&mut out, *stream, spdy::FLAG_FIN, text.as_bytes());
                }
            }
            // Then the end of each data stream, which makes kubectl read the error.
            for stream in tunnel.data.keys() {
                put_data_frame(&mut out, *stream, spdy::FLAG_FIN, &[]);
            }
        }
        Framing::Channels(channels) => {
            for index in 0..channels.connections.len() {
                let error = u8::try_from(index * 2 + 1).unwrap_or(u8::MAX);
                let _ = client
                    .send(Message::Binary(channel(error, text.as_bytes())))
                    .await;
            }
        }
    }
    if !out.is_empty() {
        let _ = client.send(Message::Binary(out.freeze())).await;
    }
}

/// Reads the client until it has ended its half of every open connection (or left).
async fn client_acknowledges(tunnel: &mut Tunnel, client: &mut Client) {
    let mut open: Vec<u32> = tunnel.data.keys().copied().collect();
    while !open.is_empty() {
        let Some(Ok(Message::Binary(data))) = client.next().await else {
            return;
        };
        if tunnel.up.push(&data).is_err() {
            return;
        }
        while let Ok(Some((frame, _))) = tunnel.up.next_frame() {
            let ended = match frame {
                Frame::Data {
                    stream, fin: true, ..
                } => Some(stream),
                Frame::Control {
                    kind: spdy::RST_STREAM,
                    body,
                    ..
                } => Frame::control_stream(&body),
                _ => None,
            };
            open.retain(|stream| Some(*stream) != ended);
        }
    }
}

fn put_data_frame(out: &mut BytesMut, stream: u32, flags: u8, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap_or(0) & 0x00FF_FFFF;
    out.put_u32(stream & 0x7FFF_FFFF);
    out.put_u32((u32::from(flags) << 24) | length);
    out.put_slice(payload);
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The client's bytes of the tunnel: whole frames read (new connections recorded, their data
/// recorded), then forwarded; a partial frame waits for its rest.
async fn from_client_tunnel(
    tunnel: &mut Tunnel,
    tap: &SessionTap,
    log: &mut ForwardLog,
    target: &mut Target,
    data: &[u8],
) -> Result<(), String> {
    tunnel.up.push(data)?;
    let mut out = BytesMut::new();
    let mut batch = Vec::new();
    let mut closed = Vec::new();
    while let Some((frame, raw)) = tunnel.up.next_frame()? {
        match frame {
            Frame::Control { kind, body, .. } => match kind {
                spdy::SYN_STREAM => {
                    let stream = Frame::control_stream(&body).ok_or("a bad SYN_STREAM frame")?;
                    let block = body.get(10..).ok_or("a bad SYN_STREAM frame")?;
                    let headers = tunnel.inflater.headers(block)?;
                    let id = header(&headers, "requestid").unwrap_or("").to_owned();
                    let port = header(&headers, "port").and_then(|p| p.trim().parse().ok());
                    if tunnel.data.len() + tunnel.errors.len() >= MAX_CONNECTIONS {
                        return Err("too many forwarded connections at once".to_owned());
                    }
                    match header(&headers, "streamtype") {
                        Some("data") => {
                            let connection = Connection {
                                port,
                                id,
                                ..Connection::default()
                            };
                            log.write(tap, &connection, "opened").await?;
                            tunnel.data.insert(stream, connection);
                        }
                        Some("error") => {
                            tunnel.errors.insert(stream, id);
                        }
                        _ => {}
                    }
                }
                spdy::SYN_REPLY | spdy::HEADERS => {
                    // The client's header blocks share one compression context: read them all.
                    let block = body.get(4..).ok_or("a bad header frame")?;
                    tunnel.inflater.headers(block)?;
                }
                spdy::RST_STREAM => {
                    if let Some(stream) = Frame::control_stream(&body) {
                        closed.push(stream);
                    }
                }
                _ => {}
            },
            Frame::Data {
                stream,
                fin,
                payload,
            } => {
                if let Some(connection) = tunnel.data.get_mut(&stream) {
                    connection.to_pod += payload.len() as u64;
                    connection.client_done |= fin;
                    if !payload.is_empty() {
                        batch.push(payload);
                    }
                    if connection.client_done && connection.pod_done {
                        closed.push(stream);
                    }
                }
            }
        }
        out.extend_from_slice(&raw);
    }
    if !batch.is_empty() {
        tap.clients_sent(&batch).await?;
    }
    close(tunnel, tap, log, &closed).await?;
    if !out.is_empty() {
        target
            .send(Message::Binary(out.freeze()))
            .await
            .map_err(|_| "the API server closed the stream".to_owned())?;
    }
    Ok(())
}

/// The pod side's bytes of the tunnel: data recorded before it is forwarded, error streams'
/// text kept for the record.
async fn from_pod_tunnel(
    tunnel: &mut Tunnel,
    tap: &SessionTap,
    log: &mut ForwardLog,
    client: &mut Client,
    data: &[u8],
) -> Result<(), String> {
    tunnel.down.push(data)?;
    let mut out = BytesMut::new();
    let mut batch = Vec::new();
    let mut closed = Vec::new();
    while let Some((frame, raw)) = tunnel.down.next_frame()? {
        match frame {
            Frame::Data {
                stream,
                fin,
                payload,
            } => {
                if let Some(connection) = tunnel.data.get_mut(&stream) {
                    connection.from_pod += payload.len() as u64;
                    connection.pod_done |= fin;
                    if !payload.is_empty() {
                        batch.push((Stream::Output, payload));
                    }
                    if connection.client_done && connection.pod_done {
                        closed.push(stream);
                    }
                } else if let Some(id) = tunnel.errors.get(&stream)
                    && !payload.is_empty()
                {
                    if let Some(connection) = tunnel.data.values_mut().find(|c| &c.id == id)
                        && connection.error.len() < 1024
                    {
                        connection
                            .error
                            .push_str(&String::from_utf8_lossy(&payload));
                    }
                    batch.push((Stream::ErrorOutput, payload));
                }
            }
            Frame::Control {
                kind: spdy::RST_STREAM,
                body,
                ..
            } => {
                if let Some(stream) = Frame::control_stream(&body) {
                    closed.push(stream);
                }
            }
            Frame::Control { .. } => {}
        }
        out.extend_from_slice(&raw);
    }
    if !batch.is_empty() {
        tap.target_sent(&batch).await?;
    }
    close(tunnel, tap, log, &closed).await?;
    if !out.is_empty() {
        client
            .send(Message::Binary(out.freeze()))
            .await
            .map_err(|_| "client disconnected".to_owned())?;
    }
    Ok(())
}

/// Connections whose data stream ended both ways (or was reset): their closing record.
async fn close(
    tunnel: &mut Tunnel,
    tap: &SessionTap,
    log: &mut ForwardLog,
    streams: &[u32],
) -> Result<(), String> {
    for stream in streams {
        if let Some(connection) = tunnel.data.remove(stream) {
            tunnel.errors.retain(|_, id| *id != connection.id);
            log.write(tap, &connection, "closed").await?;
        } else {
            tunnel.errors.remove(stream);
        }
    }
    Ok(())
}

/// A v4 message from the client: a port's data recorded before it is forwarded.
async fn from_client_channels(
    channels: &mut Channels,
    tap: &SessionTap,
    target: &mut Target,
    data: Bytes,
) -> Result<(), String> {
    let Some(&number) = data.first() else {
        return Ok(());
    };
    let index = usize::from(number);
    if index % 2 != 0 {
        // Error channels are the API server's.
        return Ok(());
    }
    let Some(connection) = channels.connections.get_mut(index / 2) else {
        return Ok(());
    };
    let payload = data.slice(1..);
    connection.to_pod += payload.len() as u64;
    if !payload.is_empty() {
        tap.client_sent(&payload).await?;
    }
    target
        .send(Message::Binary(data))
        .await
        .map_err(|_| "the API server closed the stream".to_owned())
}

/// A v4 message from the API server: the first on each channel is its port; then data is
/// recorded before it is forwarded, and errors are kept for the record.
async fn from_pod_channels(
    channels: &mut Channels,
    tap: &SessionTap,
    client: &mut Client,
    data: Bytes,
) -> Result<(), String> {
    if let Some(&number) = data.first() {
        let index = usize::from(number);
        let first = channels
            .started
            .get_mut(index)
            .map(|started| !std::mem::replace(started, true))
            .unwrap_or(false);
        let payload = data.slice(1..);
        if let Some(connection) = channels.connections.get_mut(index / 2)
            && !first
            && !payload.is_empty()
        {
            if index % 2 == 0 {
                connection.from_pod += payload.len() as u64;
                tap.target_sent(&[(Stream::Output, payload)]).await?;
            } else {
                if connection.error.len() < 1024 {
                    connection
                        .error
                        .push_str(&String::from_utf8_lossy(&payload));
                }
                tap.target_sent(&[(Stream::ErrorOutput, payload)]).await?;
            }
        }
    }
    client
        .send(Message::Binary(data))
        .await
        .map_err(|_| "client disconnected".to_owned())
}
