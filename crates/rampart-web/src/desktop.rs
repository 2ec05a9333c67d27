//! `GET /api/v1/desktop?account=LOGIN@ASSET[&protocol=vnc|rdp]`: a desktop in the browser
//! (WebSocket), VNC unless `protocol=rdp`.
//!
//! The session is `rampart_desktop::open`'s (policy, vault, recording, live enforcement through
//! the session core); this file only moves messages. Frames:
//! - to the browser, binary: the desktop stream (`rampart_desktop::screen`); text: JSON
//!   `{"type":"ready","session":ID,"name":N}`, `{"type":"clipboard","text":T}`,
//!   `{"type":"notice","text":T}` and, last, `{"type":"end","reason":R}`;
//! - from the browser, text only: `{"type":"key","down":B,"keysym":K,"code":C}` (`code` is
//!   `KeyboardEvent.code`, optional; RDP sends its scancode),
//!   `{"type":"pointer","x":X,"y":Y,"buttons":M}`, `{"type":"clipboard","text":T}`,
//!   `{"type":"resize","width":W,"height":H}` (the view's size in CSS pixels, at the start and
//!   when the window changes: bounded and rate-limited by `rampart_desktop`, asked of the
//!   target when its protocol allows); anything else is ignored (logged at debug). Messages
//!   are bounded by `ws::MAX_MESSAGE_BYTES`.

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Query};
use crate::ws;
use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use rampart_core::AccountRef;
use rampart_desktop::{DesktopEvent, DesktopRequest, Input};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopQuery {
    account: String,
    protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromBrowser {
    Key {
        down: bool,
        keysym: u32,
        #[serde(default)]
        code: Option<String>,
    },
    Pointer {
        x: u16,
        y: u16,
        buttons: u8,
    },
    Clipboard {
        text: String,
    },
    Resize {
        width: u32,
        height: u32,
    },
}

/// A text frame from the browser as input; `None` for anything else.
fn input(text: &str) -> Option<Input> {
    let message = serde_json::from_str::<FromBrowser>(text)
        .inspect_err(
            |err| tracing::debug!(error = %err, "a desktop message from the browser was ignored"),
        )
        .ok()?;
    Some(match message {
        FromBrowser::Key { down, keysym, code } => Input::Key {
            down,
            keysym,
            // Key codes are short names (`KeyA`, `ArrowLeft`); anything longer is not one.
            code: code.filter(|c| c.len() <= 32),
        },
        FromBrowser::Pointer { x, y, buttons } => Input::Pointer { x, y, buttons },
        FromBrowser::Clipboard { text } => Input::Clipboard(text),
        FromBrowser::Resize { width, height } => Input::resize(width, height),
    })
}

pub async fn desktop(
    State(state): State<WebState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<DesktopQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    ws::browser_only(&state, &caller, &headers)?;
    let account = AccountRef::parse(&query.account)?;
    let protocol = match query.protocol.as_deref() {
        None | Some("vnc") => rampart_core::Protocol::Vnc,
        Some("rdp") => rampart_core::Protocol::Rdp,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown desktop protocol {other:?} (vnc or rdp)"
            )));
        }
    };
    let upgrade = upgrade.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let Some(gateway) = state.gateway.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this listener has no session core for desktops",
        ));
    };
    let slot = ws::websocket_slot(&state)?;
    let ended = ws::session_ended(&state, &headers, peer);
    let request = DesktopRequest {
        mfa: caller.session.as_ref().is_some_and(|s| s.mfa),
        user: caller.user.clone(),
        source: SocketAddr::new(caller.source, peer.port()),
        front: "web",
        target: rampart_desktop::DbLogin {
            user: caller.user.name.clone(),
            account: Some(account.login),
            asset: account.asset,
        },
        protocol,
    };
    Ok(
        ws::bounded(upgrade).on_upgrade(move |mut socket| async move {
            let _slot = slot;
            match rampart_desktop::open(gateway.session_core(), gateway.dialer(), request).await {
                Ok(desktop) => pump(socket, desktop, ended).await,
                Err(reason) => {
                    tracing::info!(reason = %reason, "a desktop was not opened");
                    let _ = send_json(
                        &mut socket,
                        serde_json::json!({"type": "end", "reason": reason}),
                    )
                    .await;
                    ws::close(socket, "the desktop could not be opened").await;
                }
            }
        }),
    )
}

async fn send_json(socket: &mut WebSocket, value: serde_json::Value) -> Result<(), ()> {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .map_err(|_| ())
}

/// Moves messages both ways until either side ends; the session's end reason is shown.
async fn pump(
    mut socket: WebSocket,
    mut desktop: rampart_desktop::Desktop,
    mut ended: tokio::sync::oneshot::Receiver<()>,
) {
    let ready = serde_json::json!({"type": "ready", "session": desktop.id, "name": desktop.name});
    if send_json(&mut socket, ready).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = &mut ended => {
                let _ = send_json(&mut socket, serde_json::json!({"type": "end", "reason": "the browser session ended"})).await;
                ws::close(socket, "the browser session ended").await;
                return;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(input) = input(text.as_str()) {
                        // A closed session's reason is on the way in `events`.
                        let _ = desktop.input.send(input).await;
                    }
                }
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                // Closed, failed, or too large: the session ends with the socket.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            event = desktop.events.recv() => match event {
                Some(DesktopEvent::Frame(bytes)) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(DesktopEvent::Clipboard(text)) => {
                    if send_json(&mut socket, serde_json::json!({"type": "clipboard", "text": text})).await.is_err() {
                        return;
                    }
                }
                Some(DesktopEvent::Notice(text)) => {
                    if send_json(&mut socket, serde_json::json!({"type": "notice", "text": text})).await.is_err() {
                        return;
                    }
                }
                Some(DesktopEvent::End(reason)) => {
                    let _ = send_json(&mut socket, serde_json::json!({"type": "end", "reason": reason})).await;
                    break;
                }
                None => break,
            },
        }
    }
    ws::close(socket, "the session ended").await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_messages_become_input_and_the_rest_is_ignored() {
        assert_eq!(
            input(r#"{"type":"key","down":true,"keysym":65}"#),
            Some(Input::Key {
                down: true,
                keysym: 65,
                code: None
            })
        );
        assert_eq!(
            input(r#"{"type":"key","down":false,"keysym":97,"code":"KeyA"}"#),
            Some(Input::Key {
                down: false,
                keysym: 97,
                code: Some("KeyA".to_owned())
            })
        );
        assert_eq!(
            input(r#"{"type":"pointer","x":3,"y":4,"buttons":1}"#),
            Some(Input::Pointer {
                x: 3,
                y: 4,
                buttons: 1
            })
        );
        assert_eq!(
            input(r#"{"type":"pointer","x":-1,"y":4,"buttons":1}"#),
            None
        );
        // A terminal's resize is not a desktop's.
        assert_eq!(input(r#"{"type":"resize","cols":1,"rows":1}"#), None);
        assert_eq!(input("not json"), None);
    }

    #[test]
    fn a_view_size_becomes_a_bounded_resize_and_garbage_is_ignored() {
        assert_eq!(
            input(r#"{"type":"resize","width":1100,"height":760}"#),
            Some(Input::Resize {
                width: 1100,
                height: 760
            })
        );
        // Clamped to what a target may be asked for.
        assert_eq!(
            input(r#"{"type":"resize","width":1,"height":4000000000}"#),
            Some(Input::Resize {
                width: 200,
                height: 8192
            })
        );
        for garbage in [
            r#"{"type":"resize","width":-5,"height":600}"#,
            r#"{"type":"resize","width":800.5,"height":600}"#,
            r#"{"type":"resize","width":"800","height":600}"#,
            r#"{"type":"resize","width":99999999999,"height":600}"#,
            r#"{"type":"resize","width":800}"#,
        ] {
            assert_eq!(input(garbage), None, "{garbage}");
        }
        assert_eq!(input("not json"), None);
    }
}
