//! One desktop session: authorize (`vnc:connect`), start through the session core, dial,
//! log in with the vaulted password, then relay until either side ends or live enforcement
//! stops it.
//!
//! The web front calls [`open`] and moves [`Desktop`]'s events and input over its WebSocket;
//! everything decided is decided here or in the core.
//!
//! INVARIANTS:
//! - Recorded before forwarded: each message of the desktop stream goes through the tap
//!   (the recorder) before the browser gets it; a failed write ends the session.
//! - Key frames go to the recording every [`KEY_FRAME_EVERY`] while the screen changes, so
//!   a replay can seek.
//! - Input is recorded as metadata (pointer position and buttons, "a key", clipboard sizes);
//!   which key was typed is not recorded (passwords typed into the desktop stay out of it).
//! - The clipboard passes only when the grant allows `vnc:clipboard`; every transfer (or
//!   refusal) is an audit event with its size, never its text.
//! - Nothing the target sends can panic the node or grow memory without bound (`rfb`'s
//!   checks); a malformed message ends the session with its reason.

use crate::rfb::{self, RfbError, ServerEvent};
use crate::screen::{self, Framebuffer};
use bytes::Bytes;
use rampart_audit::{CastHeader, Stream};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::target::Protocol;
use rampart_core::{AccountRef, Action, SessionKind, User};
use rampart_session::authorize::Snapshot;
use rampart_session::database::{self as db, DbLogin};
use rampart_session::dial::Dialer;
use rampart_session::live::{SessionControl, stopped_watch};
use rampart_session::{RecordingPlan, SessionCore, SessionTap, Source, StartRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// How often the recording gets a whole screen while the screen changes.
pub const KEY_FRAME_EVERY: Duration = Duration::from_secs(5);
/// How long the target has for the connection and the RFB handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest clipboard text passed either way (bytes).
pub const MAX_CLIPBOARD: usize = 256 * 1024;
/// Rectangles larger than this are compressed on the blocking pool.
const INLINE_COMPRESS: usize = 16 * 1024;

/// Who wants which desktop.
#[derive(Debug, Clone)]
pub struct DesktopRequest {
    pub user: User,
    pub mfa: bool,
    pub source: SocketAddr,
    pub account: AccountRef,
}

/// What the browser sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Key { down: bool, keysym: u32 },
    Pointer { x: u16, y: u16, buttons: u8 },
    Clipboard(String),
}

/// What the browser gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesktopEvent {
    /// A message of the desktop stream (see `screen`).
    Frame(Bytes),
    /// The target's clipboard (the grant allows it).
    Clipboard(String),
    /// A line for the user (a refused clipboard, a warning before a limit).
    Notice(String),
    /// The session ended, with its reason.
    End(String),
}

/// An open desktop: events to show, input to send. Dropping the input sender ends it.
#[derive(Debug)]
pub struct Desktop {
    pub id: uuid::Uuid,
    pub name: String,
    pub events: mpsc::Receiver<DesktopEvent>,
    pub input: mpsc::Sender<Input>,
}

fn actor(user: &User) -> Actor {
    Actor::User {
        name: user.name.to_string(),
    }
}

/// Opens a desktop: every refusal is returned as the line the user sees.
pub async fn open(
    core: SessionCore,
    dialer: Dialer,
    request: DesktopRequest,
) -> Result<Desktop, String> {
    let source = Source {
        text: format!("{} (web)", request.source.ip().to_canonical()),
        ip: request.source.ip().to_canonical(),
    };
    let login = DbLogin {
        user: request.user.name.clone(),
        account: Some(request.account.login.clone()),
        asset: request.account.asset.clone(),
    };
    let store = core.store.clone();
    let authorized = db::authorize_any(
        &store,
        &request.user,
        request.mfa,
        &login,
        &source,
        &[Action::VncConnect],
    )
    .await?;
    let clipboard = clipboard_allowed(&store, &request, &authorized.asset.name).await;
    let title = format!(
        "{}@{}@{} (vnc)",
        request.user.name, authorized.account, authorized.asset.name
    );
    let plan = RecordingPlan {
        header: CastHeader::new(80, 24, None, Some("vnc".to_owned()), title),
        raw_streams: true,
    };
    let mut guard = core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind: SessionKind::Vnc,
            interactive: true,
            command: None,
            recording: Some(plan),
            inspectors: Vec::new(),
        })
        .await
        .map_err(|refused| refused.to_string())?;
    let Some(control) = guard.take_control() else {
        return Err("the session could not be started".to_owned());
    };
    let tap = guard.tap();
    let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let dialed = dialer
            .dial(&authorized.asset, Protocol::Vnc)
            .await
            .map_err(|err| err.to_string())?;
        if let Err(err) = store
            .set_session_route(guard.id(), &dialed.route.to_string())
            .await
        {
            tracing::warn!(error = %err, "cannot record the route of a vnc session");
        }
        let target = dialed.target.clone();
        let mut stream = dialed.stream;
        let password = db::vaulted_password(&store, &authorized).await?;
        let init = rfb::handshake(&mut stream, Some(&password))
            .await
            .map_err(|err| format!("{target}: {err}"))?;
        drop(password);
        Ok::<_, String>((stream, init))
    })
    .await
    .unwrap_or_else(|_| Err("the VNC server did not answer in time".to_owned()));
    let (stream, init) = match connected {
        Ok(done) => done,
        Err(why) => {
            guard.end(why.clone(), None).await;
            return Err(why);
        }
    };
    let (events_tx, events) = mpsc::channel(16);
    let (input, input_rx) = mpsc::channel(64);
    let id = guard.id();
    let name = init.name.clone();
    let relay = Relay {
        tap,
        store,
        user: request.user.clone(),
        account: authorized.account_ref(),
        session: id,
        clipboard,
        events: events_tx,
    };
    tokio::spawn(async move {
        let reason = relay.run(stream, init, input_rx, control).await;
        guard.end(reason.clone(), None).await;
        let _ = relay.events.send(DesktopEvent::End(reason)).await;
    });
    Ok(Desktop {
        id,
        name,
        events,
        input,
    })
}

/// Whether the user's grants allow `vnc:clipboard` on this account now.
async fn clipboard_allowed(
    store: &rampart_store::Store,
    request: &DesktopRequest,
    asset: &rampart_core::Name,
) -> bool {
    let Ok(snapshot) = Snapshot::for_user(store, &request.user.name).await else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc();
    let Some(access) = snapshot.as_user(&request.user.name, request.mfa, now) else {
        return false;
    };
    let Some(asset) = snapshot.asset(asset) else {
        return false;
    };
    access
        .decide_any(asset, &request.account.login, &[Action::VncClipboard])
        .is_ok()
}

/// The relay's half of a session: the tap, and where the browser's events go.
struct Relay {
    tap: SessionTap,
    store: std::sync::Arc<rampart_store::Store>,
    user: User,
    account: AccountRef,
    session: uuid::Uuid,
    clipboard: bool,
    events: mpsc::Sender<DesktopEvent>,
}

const USER_LEFT: &str = "the user closed the desktop";

/// What the relay does next.
enum Step {
    Server(ServerEvent),
    Input(Input),
}

/// When the recording last got a key frame, and whether the screen changed since.
#[derive(Debug, Default)]
struct KeyFrames {
    last: Option<tokio::time::Instant>,
    changed: bool,
}

/// Aborts the reader task when the relay ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Relay {
    /// Relays until either side ends or the session is stopped; returns the reason.
    async fn run(
        &self,
        stream: rampart_session::dial::TargetStream,
        init: rfb::ServerInit,
        mut input: mpsc::Receiver<Input>,
        control: SessionControl,
    ) -> String {
        let (read_half, mut target) = tokio::io::split(stream);
        // Reading RFB is not cancel-safe, so one task owns the reader.
        let (server_tx, mut server) = mpsc::channel::<Result<ServerEvent, RfbError>>(4);
        let mut reader = rfb::Reader::new(&init);
        let _reader = AbortOnDrop(tokio::spawn(async move {
            let mut read_half = read_half;
            loop {
                let event = reader.next(&mut read_half).await;
                let failed = event.is_err();
                if server_tx.send(event).await.is_err() || failed {
                    return;
                }
            }
        }));
        let (width, height) = (init.width, init.height);
        let mut opening = rfb::set_pixel_format();
        opening.extend(rfb::set_encodings());
        opening.extend(rfb::update_request(false, width, height));
        if target.write_all(&opening).await.is_err() {
            return RfbError::Closed.to_string();
        }
        let mut fb = Framebuffer::new(width, height);
        if let Err(why) = self.frame(screen::size_message(width, height)).await {
            return why;
        }
        let mut keys = KeyFrames::default();
        let SessionControl {
            mut stop,
            mut notices,
        } = control;
        loop {
            // Each step also races the stop: a browser that stops reading (a full channel)
            // cannot keep a killed session alive.
            let step = tokio::select! {
                why = stopped_watch(&mut stop) => return why,
                Some(line) = notices.recv() => {
                    let _ = self.events.send(DesktopEvent::Notice(line)).await;
                    continue;
                }
                event = server.recv() => match event {
                    None => return RfbError::Closed.to_string(),
                    Some(Err(err)) => {
                        if !matches!(err, RfbError::Closed) {
                            tracing::warn!(session = %self.session, error = %err, "vnc: ending the session");
                        }
                        return err.to_string();
                    }
                    Some(Ok(event)) => Step::Server(event),
                },
                input = input.recv() => match input {
                    None => return USER_LEFT.to_owned(),
                    Some(input) => Step::Input(input),
                },
            };
            let done = async {
                match step {
                    Step::Server(event) => {
                        self.server_event(event, &mut fb, &mut target, &mut keys)
                            .await
                    }
                    Step::Input(input) => {
                        let (width, height) = fb.size();
                        self.input(&mut target, input, width, height).await
                    }
                }
            };
            tokio::select! {
                why = stopped_watch(&mut stop) => return why,
                result = done => {
                    if let Err(why) = result {
                        return why;
                    }
                }
            }
        }
    }

    /// One event of the target: the screen updated (recorded, then sent to the browser), an
    /// update's end (a key frame when due, then the next request), the clipboard.
    async fn server_event(
        &self,
        event: ServerEvent,
        fb: &mut Framebuffer,
        target: &mut (impl tokio::io::AsyncWrite + Unpin),
        keys: &mut KeyFrames,
    ) -> Result<(), String> {
        match event {
            ServerEvent::UpdateEnd => {
                if keys.changed && keys.last.is_none_or(|at| at.elapsed() >= KEY_FRAME_EVERY) {
                    let taken = std::mem::replace(fb, Framebuffer::new(1, 1));
                    *fb = self.key_frame(taken).await?;
                    keys.last = Some(tokio::time::Instant::now());
                    keys.changed = false;
                }
                let (w, h) = fb.size();
                target
                    .write_all(&rfb::update_request(true, w, h))
                    .await
                    .map_err(|_| RfbError::Closed.to_string())
            }
            ServerEvent::Bell => Ok(()),
            ServerEvent::CutText { text, len } => self.target_clipboard(text, len).await,
            other => {
                fb.apply(&other);
                keys.changed = true;
                if matches!(other, ServerEvent::Resize { .. }) {
                    keys.last = None;
                }
                match message(other).await {
                    Some(message) => self.frame(message).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Records one message of the desktop stream, then sends it to the browser.
    async fn frame(&self, message: Bytes) -> Result<(), String> {
        self.tap
            .target_sent(&[(Stream::Output, message.clone())])
            .await?;
        self.events
            .send(DesktopEvent::Frame(message))
            .await
            .map_err(|_| USER_LEFT.to_owned())
    }

    /// A key frame into the recording (not to the browser: it has the screen already).
    async fn key_frame(&self, fb: Framebuffer) -> Result<Framebuffer, String> {
        let (fb, k, z) = tokio::task::spawn_blocking(move || {
            let (k, z) = fb.key_frame();
            (fb, k, z)
        })
        .await
        .map_err(|_| "cannot make a key frame".to_owned())?;
        self.tap
            .target_sent(&[(Stream::Output, k), (Stream::Output, z)])
            .await?;
        Ok(fb)
    }

    async fn input(
        &self,
        target: &mut (impl tokio::io::AsyncWrite + Unpin),
        input: Input,
        width: u16,
        height: u16,
    ) -> Result<(), String> {
        let (note, bytes) = match input {
            // Which key is not recorded: what is typed may be a password.
            Input::Key { down, keysym } => (
                format!(r#"{{"t":"key","down":{down}}}"#),
                rfb::key_event(down, keysym),
            ),
            Input::Pointer { x, y, buttons } => {
                let x = x.min(width.saturating_sub(1));
                let y = y.min(height.saturating_sub(1));
                (
                    format!(r#"{{"t":"pointer","x":{x},"y":{y},"b":{buttons}}}"#),
                    rfb::pointer_event(buttons, x, y),
                )
            }
            Input::Clipboard(text) => {
                let allowed = self.clipboard && text.len() <= MAX_CLIPBOARD;
                self.audit_clipboard("to_target", text.len(), allowed)
                    .await?;
                if !allowed {
                    let why = if self.clipboard {
                        format!("the clipboard text is larger than {MAX_CLIPBOARD} bytes: not sent")
                    } else {
                        "your grant does not allow the clipboard here (vnc:clipboard)".to_owned()
                    };
                    let _ = self.events.send(DesktopEvent::Notice(why)).await;
                    return Ok(());
                }
                (
                    format!(
                        r#"{{"t":"clipboard","to":"target","bytes":{}}}"#,
                        text.len()
                    ),
                    rfb::client_cut_text(&text),
                )
            }
        };
        let _recorded = self.tap.client_sent(&Bytes::from(note)).await?;
        target
            .write_all(&bytes)
            .await
            .map_err(|_| RfbError::Closed.to_string())
    }

    async fn target_clipboard(&self, text: Option<String>, len: u32) -> Result<(), String> {
        let size = usize::try_from(len).unwrap_or(usize::MAX);
        let allowed = self.clipboard && size <= MAX_CLIPBOARD;
        self.audit_clipboard("to_user", size, allowed).await?;
        let note = format!(r#"{{"t":"clipboard","to":"user","bytes":{len},"allowed":{allowed}}}"#);
        self.tap.notice(&note).await;
        match text {
            Some(text) if allowed => self
                .events
                .send(DesktopEvent::Clipboard(text))
                .await
                .map_err(|_| USER_LEFT.to_owned()),
            _ => Ok(()),
        }
    }

    /// Every clipboard transfer (or refusal) is on record with its size; fail closed.
    async fn audit_clipboard(
        &self,
        direction: &str,
        bytes: usize,
        allowed: bool,
    ) -> Result<(), String> {
        let event = AuditEvent::ClipboardTransfer {
            session: self.session.to_string(),
            account: self.account.to_string(),
            direction: direction.to_owned(),
            bytes: bytes as u64,
            allowed,
        };
        self.store
            .record_event(&actor(&self.user), &event)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "cannot record a clipboard transfer; ending the session");
                "Rampart cannot record the clipboard transfer".to_owned()
            })
    }
}

/// The desktop stream's message for a screen change; large rectangles are compressed on the
/// blocking pool.
async fn message(event: ServerEvent) -> Option<Bytes> {
    match event {
        ServerEvent::Raw { x, y, w, h, rgba } if rgba.len() > INLINE_COMPRESS => {
            tokio::task::spawn_blocking(move || screen::pixels_message(x, y, w, h, &rgba))
                .await
                .ok()
        }
        ServerEvent::Raw { x, y, w, h, rgba } => Some(screen::pixels_message(x, y, w, h, &rgba)),
        ServerEvent::Copy { x, y, w, h, sx, sy } => Some(screen::copy_message(x, y, w, h, sx, sy)),
        ServerEvent::Resize { width, height } => Some(screen::size_message(width, height)),
        _ => None,
    }
}
