//! The portal's WebSocket routes: the browser terminal (`/api/v1/terminal`) and the read-only
//! view of a live session (`/api/v1/sessions/{id}/watch`).
//!
//! INVARIANTS:
//! - A WebSocket is opened only by a browser session (cookie), never by an API token, and only
//!   when the `Origin` header is this server's own origin (B8): a cross-site page holding the
//!   user's cookie cannot open one. The guard has already authenticated the cookie.
//! - The terminal is [`rampart_ssh::Gateway::open_terminal`]: policy, vault, relay, recording
//!   and live enforcement are the SSH path's; nothing is decided here.
//! - Watching is for auditors and administrators (B10); anyone else, and any session that is
//!   not live on this node, gets the same 404.
//! - Messages are bounded ([`MAX_MESSAGE_BYTES`]), and so is the number of open sockets
//!   ([`MAX_WEBSOCKETS`]); when either side ends, the other is ended.
//! - Starting to watch a session is an audit event (`session_watched`), written before the
//!   first byte is shown.
//! - A WebSocket lives no longer than the browser session that opened it: the session is
//!   checked again every [`RECHECK_SESSION`] (logout, lifetime, a disabled user or changed
//!   credentials end it, A11); an open socket counts as activity for the idle timeout.
//!
//! Frames: binary frames carry terminal bytes both ways (output to the browser, keystrokes and
//! pastes from it); text frames carry JSON control messages: `{"type":"resize","cols":C,"rows":R}`
//! from the browser, `{"type":"exit","status":N}` from the server before it closes.

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Path, Query};
use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::{IntoResponse, Response};
use rampart_core::AccountRef;
use rampart_ssh::{TerminalEvent, TerminalRequest};
use serde::Deserialize;
use std::net::SocketAddr;
use tokio::sync::broadcast::error::RecvError;

/// The largest WebSocket message accepted from a browser (a paste is split by the page).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// WebSockets (terminals and live views) open at once on one listener; more are refused (503).
pub const MAX_WEBSOCKETS: usize = 512;
/// How often an open WebSocket checks that its browser session still stands.
pub const RECHECK_SESSION: std::time::Duration = std::time::Duration::from_secs(10);
/// Terminal sizes outside this range are refused.
pub(crate) const MAX_COLUMNS_OR_ROWS: u32 = 1000;

fn origin_refused(message: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "origin_refused",
        message.to_owned(),
    )
}

/// Whether `Origin` is this server's own origin: `https://` + the request's `Host` (or
/// `http://` when the listener itself serves plain HTTP on loopback: `plain_http`).
pub fn same_origin(plain_http: bool, headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    origin.eq_ignore_ascii_case(&format!("https://{host}"))
        || (plain_http && origin.eq_ignore_ascii_case(&format!("http://{host}")))
}

/// The checks every WebSocket route makes after the guard: a browser session, our origin.
pub(crate) fn browser_only(
    state: &WebState,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if caller.session.is_none() {
        return Err(ApiError::forbidden(
            "WebSocket routes need a browser session, not an API token",
        ));
    }
    if !same_origin(!state.settings.secure_cookies, headers) {
        return Err(origin_refused(
            "the WebSocket's Origin is not this server's origin",
        ));
    }
    Ok(())
}

/// Checks the browser session behind an open socket every [`RECHECK_SESSION`], in a task of
/// its own (so a busy socket cannot starve the check); the receiver resolves when the session
/// no longer stands. The task ends with the socket (when the receiver is dropped).
pub(crate) fn session_ended(
    state: &WebState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> tokio::sync::oneshot::Receiver<()> {
    let (mut ended, receiver) = tokio::sync::oneshot::channel();
    let state = state.clone();
    let headers = headers.clone();
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + RECHECK_SESSION;
        let mut every = tokio::time::interval_at(start, RECHECK_SESSION);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = ended.closed() => return,
            }
            if crate::auth::authenticate(&state, &headers, peer, false)
                .await
                .is_err()
            {
                let _ = ended.send(());
                return;
            }
        }
    });
    receiver
}

/// A place among the [`MAX_WEBSOCKETS`], held as long as the socket is open.
pub(crate) fn websocket_slot(state: &WebState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    state.websockets.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!("too many open WebSockets: refusing another");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many open terminals and live views on this node: try again later",
        )
    })
}

pub(crate) fn bounded(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalQuery {
    account: String,
    cols: Option<u32>,
    rows: Option<u32>,
}

fn dimension(what: &str, value: Option<u32>, default: u32) -> ApiResult<u32> {
    let value = value.unwrap_or(default);
    if (1..=MAX_COLUMNS_OR_ROWS).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_request(format!(
            "{what} must be between 1 and {MAX_COLUMNS_OR_ROWS}"
        )))
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Resize { cols: u32, rows: u32 },
}

/// A text frame from the browser: a resize to (columns, rows), each clamped to
/// 1..=[`MAX_COLUMNS_OR_ROWS`]; `None` for anything else (ignored).
pub fn text_message(text: &str) -> Option<(u32, u32)> {
    match serde_json::from_str::<Control>(text).ok()? {
        Control::Resize { cols, rows } => Some((
            cols.clamp(1, MAX_COLUMNS_OR_ROWS),
            rows.clamp(1, MAX_COLUMNS_OR_ROWS),
        )),
    }
}

/// `GET /api/v1/terminal?account=LOGIN@ASSET&cols=&rows=`: a browser terminal.
pub async fn terminal(
    State(state): State<WebState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<TerminalQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    browser_only(&state, &caller, &headers)?;
    let account = AccountRef::parse(&query.account)?;
    let cols = dimension("cols", query.cols, 80)?;
    let rows = dimension("rows", query.rows, 24)?;
    let upgrade = upgrade.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let Some(gateway) = state.gateway.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this listener has no SSH gateway for browser terminals",
        ));
    };
    let slot = websocket_slot(&state)?;
    let ended = session_ended(&state, &headers, peer);
    let request = TerminalRequest {
        mfa: caller.session.as_ref().is_some_and(|s| s.mfa),
        user: caller.user.clone(),
        source: SocketAddr::new(caller.source, peer.port()),
        account,
        term: "xterm-256color".into(),
        cols,
        rows,
    };
    Ok(bounded(upgrade).on_upgrade(move |socket| async move {
        let _slot = slot;
        match gateway.open_terminal(request).await {
            Ok(terminal) => pump_terminal(socket, terminal, ended).await,
            Err(err) => {
                tracing::warn!(error = %err, "cannot open a browser terminal");
                close(socket, "the terminal could not be opened").await;
            }
        }
    }))
}

pub(crate) async fn close(mut socket: WebSocket, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: reason.into(),
        })))
        .await;
}

/// Carries bytes both ways until either side ends.
async fn pump_terminal(
    mut socket: WebSocket,
    mut terminal: rampart_ssh::Terminal,
    mut ended: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut ended => {
                close(socket, "the browser session ended").await;
                return;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if terminal.input(&data).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => match text_message(text.as_str()) {
                    Some((cols, rows)) => {
                        if terminal.resize(cols, rows).await.is_err() {
                            break;
                        }
                    }
                    None => tracing::debug!("ignoring an unknown terminal control message"),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // Closed, failed, or too large: the terminal ends with the socket.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            event = terminal.next() => match event {
                Some(TerminalEvent::Output(bytes)) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        return;
                    }
                }
                Some(TerminalEvent::Exit(status)) => {
                    let exit = serde_json::json!({ "type": "exit", "status": status }).to_string();
                    if socket.send(Message::Text(exit.into())).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
        }
    }
    close(socket, "the session ended").await;
}

/// `GET /api/v1/sessions/{id}/watch`: a live session's output, read-only.
pub async fn watch(
    State(state): State<WebState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    browser_only(&state, &caller, &headers)?;
    let not_found = || ApiError::not_found("no live session with that id");
    // B10: users cannot watch, not even their own sessions; they learn nothing about others'.
    if !caller.rights.sees_everyone() {
        return Err(not_found());
    }
    let id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    let upgrade = upgrade.map_err(|err| ApiError::bad_request(err.body_text()))?;
    // A session this node carries, or one another node of the cluster carries (relayed).
    let local = state
        .gateway
        .as_ref()
        .and_then(|gateway| gateway.watch_screen(id));
    let (screen, mut output, relay) = match local {
        Some((screen, output)) => (screen, output, None),
        None => match crate::relay::watch_remote(&state, id).await {
            Ok(remote) => {
                tracing::info!(session = %id, node = %remote.node, "watching a session another node carries");
                (remote.screen, remote.output, Some(remote.relay))
            }
            Err(crate::relay::RemoteError::NotFound) => return Err(not_found()),
            Err(crate::relay::RemoteError::Unreachable { node, why }) => {
                tracing::warn!(session = %id, %node, %why, "cannot relay a live session");
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    "node_unreachable",
                    format!("the session is carried by node {node}, which cannot be reached now"),
                ));
            }
        },
    };
    let slot = websocket_slot(&state)?;
    // Watching is evidence too, recorded before anything is shown.
    let event = rampart_core::audit::AuditEvent::SessionWatched {
        session: id.to_string(),
        source: caller.source.to_string(),
    };
    state.store.record_event(&caller.actor(), &event).await?;
    tracing::info!(session = %id, watcher = %caller.user.name, "watching a live session");
    let mut ended = session_ended(&state, &headers, peer);
    Ok(bounded(upgrade)
        .on_upgrade(move |mut socket| async move {
            let _slot = slot;
            // A relay from another node ends with the socket.
            let _relay = relay;
            // The screen as it is now first (its size, then the bytes that draw it), then the
            // output from that moment on.
            if let Some(screen) = screen {
                let size =
                    serde_json::json!({"type": "screen", "cols": screen.cols, "rows": screen.rows});
                if socket
                    .send(Message::Text(size.to_string().into()))
                    .await
                    .is_err()
                    || socket
                        .send(Message::Binary(screen.bytes.into()))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            loop {
                tokio::select! {
                    _ = &mut ended => {
                        close(socket, "the browser session ended").await;
                        return;
                    }
                    chunk = output.recv() => match chunk {
                        Ok(bytes) => {
                            if socket.send(Message::Binary(bytes)).await.is_err() {
                                return;
                            }
                        }
                        // A slow watcher skips what it missed rather than slowing the session.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                    // Read-only: whatever the watcher sends is ignored, until it closes.
                    incoming = socket.recv() => match incoming {
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
            close(socket, "the session ended").await;
        })
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_our_own_origin_opens_a_websocket() {
        let host = "bastion.example:8443";
        for (origin, allowed) in [
            (Some("https://bastion.example:8443"), true),
            (Some("https://bastion.example:8443/"), true),
            (Some("HTTPS://Bastion.Example:8443"), true),
            (Some("http://bastion.example:8443"), false),
            (Some("https://bastion.example"), false),
            (Some("https://bastion.example:8443.evil.example"), false),
            (Some("https://evil.example"), false),
            (Some("null"), false),
            (None, false),
        ] {
            assert_eq!(
                same_origin(false, &headers(origin, host)),
                allowed,
                "{origin:?}"
            );
        }
        // A listener serving plain HTTP (loopback, behind a proxy): its http:// origin too.
        let plain = headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert!(same_origin(true, &plain) && !same_origin(false, &plain));
    }
}
