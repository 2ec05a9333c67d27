//! `kubectl exec` and `kubectl attach` over WebSocket (`v5.channel.k8s.io`, also `v4`),
//! relayed frame by frame and recorded as a terminal session.
//!
//! The request was authorized for `kubernetes:exec` by the proxy. Here: the exec's `command`
//! query parameters are checked, as argv, against the session's command rules
//! (`rampart_core::rules`); a session of kind `kubernetes_exec` starts (a terminal recording in
//! asciicast, raw streams too without a terminal; with a terminal the command log and the
//! shell's command rules, as for an SSH shell); the API server is dialled and the WebSocket
//! handshake made there (with Rampart's identity headers) before the client gets its `101`.
//! Then each message is relayed in order: the client's stdin (channel 0) through the tap
//! (recorded, maybe refused by the rules) before it is forwarded, resizes (channel 4) to the
//! recording, the container's stdout and stderr (1, 2) recorded before they are forwarded, the
//! status (3) read for the exit code. Live enforcement ends the stream with a status saying why.

use crate::api::{ApiRequest, query_values};
use crate::proxy::{Body, Conn, copy_headers, full, identity_headers, status};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rampart_audit::Stream;
use rampart_audit::recording::CastHeader;
use rampart_core::SessionKind;
use rampart_core::rules::RuleSet;
use rampart_session::command_control::{self, RuleFinding};
use rampart_session::database as db;
use rampart_session::observe::Observer;
use rampart_session::observers::CommandObserver;
use rampart_session::{Authorized, RecordingPlan, SessionGuard, SessionTap, StartRequest};
use std::sync::Arc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// The subprotocols relayed: their framing is one channel byte, then the payload.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Largest message either way.
const MAX_MESSAGE: usize = 1024 * 1024;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client closes one of its streams.
const CLOSE: u8 = 255;

pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Opens an exec or attach stream (the request was authorized for `kubernetes:exec`).
pub(crate) async fn open(
    conn: &Arc<Conn>,
    mut request: Request<Incoming>,
    authorized: Authorized,
    api: ApiRequest,
    query: Option<String>,
) -> Response<Body> {
    if api.subresource.as_deref() == Some("portforward") {
        return crate::portforward::open(conn, request, authorized, api, query).await;
    }
    let headers = request.headers().clone();
    let Some(key) = websocket_key(&headers) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "exec and attach go through Rampart over WebSockets only (v5.channel.k8s.io): use kubectl 1.31 or newer",
        );
    };
    let offered = offered_protocols(&headers, &PROTOCOLS);
    if offered.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Rampart relays exec streams with the v5.channel.k8s.io or v4.channel.k8s.io subprotocol only",
        );
    }
    let query_text = query.as_deref();
    let tty = query_values(query_text, "tty")
        .iter()
        .any(|v| v == "true" || v == "1");
    let command = query_values(query_text, "command");
    let core = &conn.front.base.core;
    let store = &core.store;
    let (rules, findings) = match check_command(conn, &authorized, query_text).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let (cols, rows) = (80, 24);
    let title = format!(
        "{}@{}@{} {} (kubernetes)",
        authorized.user.name,
        authorized.account,
        authorized.asset.name,
        api.summary()
    );
    let command_line = (!command.is_empty()).then(|| command.join(" "));
    let mut inspectors: Vec<Box<dyn Observer>> = Vec::new();
    if tty {
        inspectors.push(Box::new(CommandObserver::with_rules(cols, rows, rules)));
    }
    let started = core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind: SessionKind::KubernetesExec,
            interactive: tty,
            command: Some(command_line.clone().unwrap_or_else(|| api.summary())),
            recording: Some(RecordingPlan {
                header: CastHeader::new(
                    cols,
                    rows,
                    tty.then_some("xterm-256color"),
                    command_line,
                    title,
                ),
                raw_streams: !tty,
            }),
            inspectors,
        })
        .await;
    let guard = match started {
        Ok(guard) => guard,
        Err(refused) => {
            return status(StatusCode::FORBIDDEN, "Forbidden", &refused.to_string());
        }
    };
    if let Err(why) = command_control::record(store, &authorized, Some(guard.id()), &findings).await
    {
        guard.end(why.clone(), None).await;
        return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &why);
    }
    if tty {
        guard.tap().live().terminal(cols, rows);
    }
    let target = match connect(
        conn,
        &authorized,
        &api,
        query_text,
        &headers,
        &offered,
        &guard,
    )
    .await
    {
        Ok(target) => target,
        Err(why) => {
            guard.end(why.clone(), None).await;
            return status(StatusCode::BAD_GATEWAY, "ServiceUnavailable", &why);
        }
    };
    let (target, chosen) = target;
    let v5 = chosen == PROTOCOLS[0];
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
        relay(client, target, guard, v5).await;
    });
    switching_protocols(&key, &chosen)
}

/// The WebSocket key of an upgrade request, if it is one.
pub(crate) fn websocket_key(headers: &hyper::HeaderMap) -> Option<String> {
    let is_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|_| is_websocket)
}

/// The subprotocols the client offered that Rampart relays (of `relayed`), in its order.
pub(crate) fn offered_protocols(
    headers: &hyper::HeaderMap,
    relayed: &[&'static str],
) -> Vec<&'static str> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|p| relayed.iter().find(|r| **r == p).copied())
        .collect()
}

/// The client's `101`, once the API server accepted the stream.
pub(crate) fn switching_protocols(key: &str, chosen: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        out.insert("sec-websocket-accept", accept);
    }
    if let Ok(chosen) = HeaderValue::from_str(chosen) {
        out.insert("sec-websocket-protocol", chosen);
    }
    response
}

/// The exec's command (its `command` parameters, as argv) against the session's command
/// rules: the rules and what matched, or the refusal for the client (on record). Asked for
/// every stream request, SPDY ones too, so a refusal reads the same whatever the client.
pub(crate) async fn check_command(
    conn: &Conn,
    authorized: &Authorized,
    query: Option<&str>,
) -> Result<(RuleSet, Vec<RuleFinding>), Response<Body>> {
    let store = &conn.front.base.core.store;
    let rules = command_control::rules_for(store, authorized)
        .await
        .map_err(|why| status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", &why))?;
    let command = query_values(query, "command");
    if command.is_empty() || rules.is_empty() {
        return Ok((rules, Vec::new()));
    }
    let decision = rules.check_argv(&command);
    let findings = command_control::findings(&command.join(" "), &decision);
    if let Some(refusal) = decision.refusal() {
        if let Err(why) = command_control::record(store, authorized, None, &findings).await {
            return Err(status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &why,
            ));
        }
        return Err(status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            refusal.trim_start_matches("rampart: "),
        ));
    }
    Ok((rules, findings))
}

pub(crate) type Target =
    WebSocketStream<tokio_rustls::client::TlsStream<rampart_session::dial::TargetStream>>;

/// Dials the API server and makes the WebSocket handshake there; the subprotocol it chose.
pub(crate) async fn connect(
    conn: &Conn,
    authorized: &Authorized,
    api: &ApiRequest,
    query: Option<&str>,
    headers: &hyper::HeaderMap,
    offered: &[&str],
    guard: &SessionGuard,
) -> Result<(Target, String), String> {
    let store = &conn.front.base.core.store;
    let token = db::vaulted_password(store, authorized).await?;
    let upstream = crate::upstream::connect(&conn.front.base.dialer, &authorized.asset).await?;
    if let Err(err) = store
        .set_session_route(guard.id(), &upstream.route.to_string())
        .await
    {
        tracing::warn!(error = %err, "cannot record the route of a kubernetes stream session");
    }
    let uri = match query {
        Some(query) => format!("wss://{}{}?{query}", upstream.target, api.path),
        None => format!("wss://{}{}", upstream.target, api.path),
    };
    let mut request = hyper::Request::builder()
        .uri(uri)
        .body(())
        .map_err(|err| format!("cannot forward the stream request: {err}"))?;
    let out = request.headers_mut();
    copy_headers(headers, out);
    identity_headers(out, authorized, &token)?;
    drop(token);
    let mut set = |name: &'static str, value: &str| -> Result<(), String> {
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid {name} header for the API server"))?;
        out.insert(name, value);
        Ok(())
    };
    set("host", &upstream.target)?;
    set("connection", "Upgrade")?;
    set("upgrade", "websocket")?;
    set("sec-websocket-version", "13")?;
    set("sec-websocket-key", &generate_key())?;
    set("sec-websocket-protocol", &offered.join(", "))?;
    let target = upstream.target.clone();
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, upstream.stream, Some(ws_config()))
            .await
            .map_err(|err| {
                format!(
                    "the API server {target} refused the stream: {}",
                    ws_error(&err)
                )
            })?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .filter(|p| offered.contains(p))
        .map(str::to_owned)
        .ok_or_else(|| format!("the API server {target} chose no subprotocol Rampart relays"))?;
    Ok((ws, chosen))
}

/// The API server's refusal, by status only (its body may say more than the user should see,
/// and never holds anything Rampart sent it).
fn ws_error(err: &tokio_tungstenite::tungstenite::Error) -> String {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            format!("HTTP {}", response.status())
        }
        other => other.to_string(),
    }
}

/// Why the relay stopped.
enum Ended {
    Closed(String),
    Stopped(String),
}

/// Relays messages both ways until either side closes or live enforcement stops the session;
/// then ends the session with the exit status the container reported.
async fn relay(
    mut client: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    mut target: Target,
    mut guard: SessionGuard,
    v5: bool,
) {
    let tap = guard.tap();
    let Some(mut control) = guard.take_control() else {
        guard.end("the session could not be watched", None).await;
        return;
    };
    let mut exit_status = None;
    let ended = loop {
        tokio::select! {
            why = control.stopped() => break Ended::Stopped(why),
            message = client.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if let Err(why) = from_client(&tap, &mut client, &mut target, data, v5).await {
                        break Ended::Closed(why);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = target.send(Message::Close(frame)).await;
                    break Ended::Closed("client disconnected".to_owned());
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => break Ended::Closed("client disconnected".to_owned()),
            },
            message = target.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    match from_target(&tap, &mut client, data, &mut exit_status).await {
                        Ok(()) => {}
                        Err(why) => break Ended::Closed(why),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = client.send(Message::Close(frame)).await;
                    break Ended::Closed("the container's stream ended".to_owned());
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    let _ = client.close(None).await;
                    break Ended::Closed("the API server closed the stream".to_owned());
                }
            },
        }
    };
    let reason = match ended {
        Ended::Closed(why) => why,
        Ended::Stopped(why) => {
            tap.notice(&why).await;
            let status = serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Rampart ended the session: {why}"),
                "reason": "Forbidden",
                "code": 403,
            });
            let _ = client
                .send(Message::Binary(channel(
                    ERROR,
                    status.to_string().as_bytes(),
                )))
                .await;
            let _ = client
                .send(Message::Close(Some(CloseFrame {
                    code:
                        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                    reason: "".into(),
                })))
                .await;
            let _ = target.close(None).await;
            why
        }
    };
    guard.end(reason, exit_status).await;
}

/// A message from the client: stdin through the tap (maybe refused or rewritten by the command
/// rules, with their reply to the client), resizes to the recording, a v5 close passed on.
async fn from_client(
    tap: &SessionTap,
    client: &mut WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    target: &mut Target,
    data: Bytes,
    v5: bool,
) -> Result<(), String> {
    let closed = || "the API server closed the stream".to_owned();
    let Some((&stream, payload)) = data.split_first() else {
        return Ok(());
    };
    match stream {
        STDIN => {
            tap.live().touch();
            let payload = Bytes::copy_from_slice(payload);
            let verdict = tap.client_sent(&payload).await?;
            if !verdict.replies.is_empty() {
                client
                    .send(Message::Binary(channel(STDOUT, &verdict.replies)))
                    .await
                    .map_err(|_| "client disconnected".to_owned())?;
            }
            let forward = verdict.forward.map(Bytes::from).unwrap_or(payload);
            if !forward.is_empty() {
                target
                    .send(Message::Binary(channel(STDIN, &forward)))
                    .await
                    .map_err(|_| closed())?;
            }
        }
        RESIZE => {
            if let Ok(size) = serde_json::from_slice::<serde_json::Value>(payload) {
                let dimension = |key: &str| {
                    size.get(key)
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|v| u32::try_from(v).ok())
                        // 0: a client that does not know its terminal's size; not a size.
                        .filter(|v| *v > 0)
                        .map(|v| v.min(4096))
                };
                if let (Some(cols), Some(rows)) = (dimension("Width"), dimension("Height")) {
                    tap.resized(cols, rows).await?;
                }
            }
            target
                .send(Message::Binary(data))
                .await
                .map_err(|_| closed())?;
        }
        CLOSE if v5 => {
            target
                .send(Message::Binary(data))
                .await
                .map_err(|_| closed())?;
        }
        // Nothing else is the client's to send.
        _ => {}
    }
    Ok(())
}

/// A message from the API server: stdout and stderr recorded before they are forwarded; the
/// status channel read for the exit code.
async fn from_target(
    tap: &SessionTap,
    client: &mut WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    data: Bytes,
    exit_status: &mut Option<i64>,
) -> Result<(), String> {
    if let Some((&stream, payload)) = data.split_first() {
        match stream {
            STDOUT | STDERR => {
                let kind = if stream == STDOUT {
                    Stream::Output
                } else {
                    Stream::ErrorOutput
                };
                tap.target_sent(&[(kind, Bytes::copy_from_slice(payload))])
                    .await?;
            }
            ERROR => *exit_status = exit_code(payload),
            _ => {}
        }
    }
    client
        .send(Message::Binary(data))
        .await
        .map_err(|_| "client disconnected".to_owned())
}

/// The exit code in an exec's final status (`Success`: 0; `NonZeroExitCode`: its cause).
fn exit_code(status: &[u8]) -> Option<i64> {
    let status: serde_json::Value = serde_json::from_slice(status).ok()?;
    if status.get("status").and_then(|s| s.as_str()) == Some("Success") {
        return Some(0);
    }
    status
        .get("details")?
        .get("causes")?
        .as_array()?
        .iter()
        .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))?
        .get("message")?
        .as_str()?
        .parse()
        .ok()
}

/// A message on `stream`: its byte, then the payload.
pub(crate) fn channel(stream: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 1);
    out.put_u8(stream);
    out.put_slice(payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_come_from_the_status_channel() {
        assert_eq!(exit_code(br#"{"metadata":{},"status":"Success"}"#), Some(0));
        assert_eq!(
            exit_code(
                br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
            ),
            Some(3)
        );
        assert_eq!(exit_code(b"not json"), None);
    }
}
