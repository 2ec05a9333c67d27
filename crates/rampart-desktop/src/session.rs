//! One desktop session, VNC or RDP: authorize (`vnc:connect`, `rdp:connect`), start through
//! the session core, dial, log in with the vaulted password, then relay until either side ends
//! or live enforcement stops it.
//!
//! The relay is the protocols' common part: the target's side is a task of its protocol's
//! (`rfb`'s reader, `rdp`'s active stage) sending [`ServerEvent`]s, and a [`Wire`] taking the
//! browser's input; the framebuffer, key frames, recording, clipboard audit, watch and kill
//! are the same for both. A new protocol front brings only its wire protocol.
//!
//! The fronts call [`open`] and carry [`Desktop`]'s events and input in their own protocol:
//! the web front over its WebSocket, the native VNC front (`native_vnc`) as RFB to a VNC
//! viewer; everything decided is decided here or in the core.
//!
//! INVARIANTS:
//! - Recorded before forwarded: each message of the desktop stream goes through the tap
//!   (the recorder) before the browser gets it; a failed write ends the session.
//! - Key frames go to the recording every [`KEY_FRAME_EVERY`] while the screen changes, so
//!   a replay can seek.
//! - Input is recorded as metadata (pointer position and buttons, "a key", clipboard sizes);
//!   which key was typed is not recorded (passwords typed into the desktop stay out of it).
//! - The clipboard passes only when the grant allows the protocol's clipboard action
//!   (`vnc:clipboard`, `rdp:clipboard`: [`clipboard_action`]), decided here for both (RDP's
//!   channel, `rdp_clipboard`, only carries text); every transfer (or refusal) is an audit
//!   event with its size, never its text.
//! - Nothing the target sends can panic the node or grow memory without bound (`rfb`'s
//!   checks); a malformed message ends the session with its reason.

use crate::resize::ResizeRequests;
use crate::rfb::{self, RfbError};
use crate::screen::{self, Framebuffer, ServerEvent, TargetScreen};
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
/// How long the target has for the connection and the handshake (RFB, or RDP's up to the
/// active stage).
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
    /// Which front the user came through (`web`, `vnc`), for the session's source.
    pub front: &'static str,
    /// The asset and, when named, the account (`USER@ASSET` takes the user's one account there).
    pub target: DbLogin,
    /// `Protocol::Vnc` or `Protocol::Rdp`.
    pub protocol: Protocol,
}

/// What the browser sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A key: its X keysym (VNC, and RDP for keys without a scancode) and its
    /// `KeyboardEvent.code` (RDP sends the key's scancode, so the target's layout applies).
    Key {
        down: bool,
        keysym: u32,
        code: Option<String>,
    },
    Pointer {
        x: u16,
        y: u16,
        buttons: u8,
    },
    Clipboard(String),
    /// The user's view has this size: the target is asked to resize its desktop to it when its
    /// protocol allows (VNC's ExtendedDesktopSize), else the view scales. Bounded by
    /// `resize::requested_size` ([`Input::resize`]) and rate-limited by the relay.
    Resize {
        width: u16,
        height: u16,
    },
    /// The front ends the session, with why (a viewer that broke its protocol).
    Leave(String),
}

impl Input {
    /// The resize for a view of `width`×`height` (as the front received it: untrusted),
    /// bounded to what may be asked of a target.
    pub fn resize(width: u32, height: u32) -> Self {
        let (width, height) = crate::resize::requested_size(width, height);
        Input::Resize { width, height }
    }
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
    /// The screen's size when it opened (the first event is its `I` message).
    pub size: (u16, u16),
    pub events: mpsc::Receiver<DesktopEvent>,
    pub input: mpsc::Sender<Input>,
}

/// Why the target's side ended: the line for the user, and whether it was an ordinary close
/// (not worth a warning in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEnded {
    pub reason: String,
    pub closed: bool,
}

impl TargetEnded {
    pub fn closed(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            closed: true,
        }
    }

    pub fn malformed(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            closed: false,
        }
    }
}

impl From<RfbError> for TargetEnded {
    fn from(err: RfbError) -> Self {
        Self {
            closed: matches!(err, RfbError::Closed),
            reason: err.to_string(),
        }
    }
}

/// The target's screen as events (`Err` once, last, with why it ended).
pub type TargetEvents = mpsc::Receiver<Result<ServerEvent, TargetEnded>>;

/// Where the browser's input goes: the protocol's half that writes to the target.
enum Wire {
    /// RFB messages written by the relay itself; the reader task is aborted with it.
    Vnc {
        writer: tokio::io::WriteHalf<rampart_session::dial::TargetStream>,
        /// The server's screen once it said it takes SetDesktopSize (ExtendedDesktopSize).
        resizable: Option<TargetScreen>,
        /// The latest size asked for before the server said so (the browser's first size may
        /// arrive before the server's first update): sent once it does.
        unsent_size: Option<(u16, u16)>,
        _reader: AbortOnDrop,
    },
    /// Input handed to the active stage's task, which owns the connection.
    Rdp {
        input: mpsc::Sender<Input>,
        /// Whether the server opened Display Control and sent its capabilities (the task said
        /// so with [`ServerEvent::Resizable`]).
        resizable: bool,
        /// As VNC's: the latest size asked for before the server took resize requests.
        unsent_size: Option<(u16, u16)>,
        _task: AbortOnDrop,
    },
}

/// A protocol's connection, logged in.
enum Connected {
    Vnc(rampart_session::dial::TargetStream, rfb::ServerInit),
    Rdp(Box<crate::rdp::Connected>),
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
        text: format!("{} ({})", request.source.ip().to_canonical(), request.front),
        ip: request.source.ip().to_canonical(),
    };
    let login = DbLogin {
        user: request.user.name.clone(),
        ..request.target.clone()
    };
    let store = core.store.clone();
    let protocol = request.protocol;
    let (action, kind) = match protocol {
        Protocol::Vnc => (Action::VncConnect, SessionKind::Vnc),
        Protocol::Rdp => (Action::RdpConnect, SessionKind::Rdp),
        other => return Err(format!("{other} is not a desktop protocol")),
    };
    let authorized = db::authorize_any(
        &store,
        &request.user,
        request.mfa,
        &login,
        &source,
        &[action],
    )
    .await?;
    let clipboard = clipboard_allowed(&store, &request, &authorized.account_ref()).await;
    let title = format!(
        "{}@{}@{} ({protocol})",
        request.user.name, authorized.account, authorized.asset.name
    );
    let plan = RecordingPlan {
        header: CastHeader::new(80, 24, None, Some(protocol.to_string()), title),
        raw_streams: true,
    };
    let mut guard = core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind,
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
            .dial(&authorized.asset, protocol)
            .await
            .map_err(|err| err.to_string())?;
        if let Err(err) = store
            .set_session_route(guard.id(), &dialed.route.to_string())
            .await
        {
            tracing::warn!(error = %err, "cannot record the route of a desktop session");
        }
        let target = dialed.target.clone();
        let stream = dialed.stream;
        let password = db::vaulted_password(&store, &authorized).await?;
        if protocol == Protocol::Rdp {
            let login = crate::rdp::Login {
                asset: authorized.asset.clone(),
                username: authorized.account.to_string(),
                password,
                store: store.clone(),
                actor: actor(&request.user),
                client_addr: request.source,
            };
            let connected = crate::rdp::connect(stream, login).await?;
            return Ok(Connected::Rdp(Box::new(connected)));
        }
        let (stream, init) = crate::vnc::connect(
            stream,
            &target,
            &authorized.asset,
            &authorized.account.to_string(),
            &password,
            &store,
            &actor(&request.user),
        )
        .await?;
        drop(password);
        Ok::<_, String>(Connected::Vnc(stream, init))
    })
    .await
    .unwrap_or_else(|_| Err(format!("the {protocol} server did not answer in time")));
    let connected = match connected {
        Ok(done) => done,
        Err(why) => {
            guard.end(why.clone(), None).await;
            return Err(why);
        }
    };
    let (events_tx, events) = mpsc::channel(16);
    let (input, input_rx) = mpsc::channel(64);
    let id = guard.id();
    let (name, target, wire, size) = match connected {
        Connected::Vnc(stream, init) => {
            let name = init.name.clone();
            match start_vnc(stream, &init).await {
                Ok((target, wire)) => (name, target, wire, (init.width, init.height)),
                Err(why) => {
                    guard.end(why.clone(), None).await;
                    return Err(why);
                }
            }
        }
        Connected::Rdp(connected) => {
            let size = connected.size();
            let (target, input, task) = crate::rdp::start(*connected);
            let wire = Wire::Rdp {
                input,
                resizable: false,
                unsent_size: None,
                _task: AbortOnDrop(task),
            };
            (String::new(), target, wire, size)
        }
    };
    let relay = Relay {
        tap,
        store,
        user: request.user.clone(),
        account: authorized.account_ref(),
        session: id,
        clipboard,
        protocol,
        events: events_tx,
    };
    tokio::spawn(async move {
        let reason = relay.run(target, wire, size, input_rx, control).await;
        guard.end(reason.clone(), None).await;
        let _ = relay.events.send(DesktopEvent::End(reason)).await;
    });
    Ok(Desktop {
        id,
        name,
        size,
        events,
        input,
    })
}

/// The VNC side's start: the reader on its own task (reading RFB is not cancel-safe), then the
/// opening requests (pixel format, encodings, the first update).
async fn start_vnc(
    stream: rampart_session::dial::TargetStream,
    init: &rfb::ServerInit,
) -> Result<(TargetEvents, Wire), String> {
    let (read_half, mut writer) = tokio::io::split(stream);
    let (server_tx, server) = mpsc::channel(4);
    let mut reader = rfb::Reader::new(init);
    let reader = AbortOnDrop(tokio::spawn(async move {
        let mut read_half = read_half;
        loop {
            let event = reader.next(&mut read_half).await.map_err(TargetEnded::from);
            let failed = event.is_err();
            if server_tx.send(event).await.is_err() || failed {
                return;
            }
        }
    }));
    let mut opening = rfb::set_pixel_format();
    opening.extend(rfb::set_encodings());
    opening.extend(rfb::update_request(false, init.width, init.height));
    if writer.write_all(&opening).await.is_err() {
        return Err(RfbError::Closed.to_string());
    }
    Ok((
        server,
        Wire::Vnc {
            writer,
            resizable: None,
            unsent_size: None,
            _reader: reader,
        },
    ))
}

/// The action that allows a desktop protocol's clipboard: `vnc:clipboard`, `rdp:clipboard`.
pub fn clipboard_action(protocol: Protocol) -> Option<Action> {
    match protocol {
        Protocol::Vnc => Some(Action::VncClipboard),
        Protocol::Rdp => Some(Action::RdpClipboard),
        _ => None,
    }
}

/// Whether the user's grants allow the protocol's clipboard action on this account now.
async fn clipboard_allowed(
    store: &rampart_store::Store,
    request: &DesktopRequest,
    account: &AccountRef,
) -> bool {
    let Ok(snapshot) = Snapshot::for_user(store, &request.user.name).await else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc();
    let Some(access) = snapshot.as_user(&request.user.name, request.mfa, now) else {
        return false;
    };
    let (Some(asset), Some(action)) = (
        snapshot.asset(&account.asset),
        clipboard_action(request.protocol),
    ) else {
        return false;
    };
    access.decide_any(asset, &account.login, &[action]).is_ok()
}

/// The relay's half of a session: the tap, and where the browser's events go.
struct Relay {
    tap: SessionTap,
    store: std::sync::Arc<rampart_store::Store>,
    user: User,
    account: AccountRef,
    session: uuid::Uuid,
    clipboard: bool,
    /// The desktop's protocol (its clipboard action is named in a refusal).
    protocol: Protocol,
    events: mpsc::Sender<DesktopEvent>,
}

const USER_LEFT: &str = "the user closed the desktop";

/// What the relay does next.
enum Step {
    Server(ServerEvent),
    Input(Input),
    /// A resize request whose turn came (see `resize`).
    Resize((u16, u16)),
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
        mut server: TargetEvents,
        mut wire: Wire,
        (width, height): (u16, u16),
        mut input: mpsc::Receiver<Input>,
        control: SessionControl,
    ) -> String {
        let mut fb = Framebuffer::new(width, height);
        if let Err(why) = self.frame(screen::size_message(width, height)).await {
            return why;
        }
        let mut keys = KeyFrames::default();
        let mut resizes = ResizeRequests::default();
        let SessionControl {
            mut stop,
            mut notices,
        } = control;
        loop {
            let resize_due = resizes.deadline();
            // Each step also races the stop: a browser that stops reading (a full channel)
            // cannot keep a killed session alive.
            let step = tokio::select! {
                why = stopped_watch(&mut stop) => return why,
                Some(line) = notices.recv() => {
                    let _ = self.events.send(DesktopEvent::Notice(line)).await;
                    continue;
                }
                event = server.recv() => match event {
                    None => return "the desktop's server closed the connection".to_owned(),
                    Some(Err(ended)) => {
                        if !ended.closed {
                            tracing::warn!(session = %self.session, error = %ended.reason, "desktop: ending the session");
                        }
                        return ended.reason;
                    }
                    Some(Ok(event)) => Step::Server(event),
                },
                input = input.recv() => match input {
                    None => return USER_LEFT.to_owned(),
                    Some(Input::Resize { width, height }) => {
                        match resizes.offer((width, height), tokio::time::Instant::now()) {
                            Some(size) => Step::Resize(size),
                            None => continue,
                        }
                    }
                    Some(input) => Step::Input(input),
                },
                () = tokio::time::sleep_until(resize_due.unwrap_or_else(tokio::time::Instant::now)),
                    if resize_due.is_some() => match resizes.due(tokio::time::Instant::now()) {
                    Some(size) => Step::Resize(size),
                    None => continue,
                },
            };
            let done = async {
                match step {
                    Step::Server(event) => {
                        self.server_event(event, &mut fb, &mut wire, &mut keys)
                            .await
                    }
                    Step::Input(input) => {
                        let (width, height) = fb.size();
                        self.input(&mut wire, input, width, height).await
                    }
                    Step::Resize(size) => self.resize(&mut wire, size, fb.size()).await,
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
        wire: &mut Wire,
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
                match wire {
                    Wire::Vnc { writer, .. } => {
                        let (w, h) = fb.size();
                        writer
                            .write_all(&rfb::update_request(true, w, h))
                            .await
                            .map_err(|_| RfbError::Closed.to_string())
                    }
                    // RDP servers push their updates unasked.
                    Wire::Rdp { .. } => Ok(()),
                }
            }
            ServerEvent::Bell => Ok(()),
            ServerEvent::Resizable(screen) => {
                let unsent = match wire {
                    Wire::Vnc {
                        resizable,
                        unsent_size,
                        ..
                    } => {
                        *resizable = Some(screen);
                        unsent_size.take()
                    }
                    Wire::Rdp {
                        resizable,
                        unsent_size,
                        ..
                    } => {
                        *resizable = true;
                        unsent_size.take()
                    }
                };
                match unsent {
                    Some(size) => self.resize(wire, size, fb.size()).await,
                    None => Ok(()),
                }
            }
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
        wire: &mut Wire,
        input: Input,
        width: u16,
        height: u16,
    ) -> Result<(), String> {
        let (note, input) = match input {
            Input::Leave(why) => return Err(why),
            // Which key is not recorded: what is typed may be a password.
            Input::Key { down, .. } => (format!(r#"{{"t":"key","down":{down}}}"#), input),
            Input::Pointer { x, y, buttons } => {
                let x = x.min(width.saturating_sub(1));
                let y = y.min(height.saturating_sub(1));
                (
                    format!(r#"{{"t":"pointer","x":{x},"y":{y},"b":{buttons}}}"#),
                    Input::Pointer { x, y, buttons },
                )
            }
            Input::Clipboard(text) => return self.paste(wire, text).await,
            // Rate-limited by the relay, then sent by `resize`.
            Input::Resize { .. } => return Ok(()),
        };
        let _recorded = self.tap.client_sent(&Bytes::from(note)).await?;
        match wire {
            Wire::Vnc { writer, .. } => {
                let bytes = match input {
                    Input::Key { down, keysym, .. } => rfb::key_event(down, keysym),
                    Input::Pointer { x, y, buttons } => rfb::pointer_event(buttons, x, y),
                    // Decided and encoded in `paste`.
                    Input::Clipboard(_) => return Ok(()),
                    Input::Resize { .. } | Input::Leave(_) => Vec::new(),
                };
                writer
                    .write_all(&bytes)
                    .await
                    .map_err(|_| RfbError::Closed.to_string())
            }
            // A closed channel: the task's reason is on its way in the events.
            Wire::Rdp { input: to_task, .. } => {
                let _ = to_task.send(input).await;
                Ok(())
            }
        }
    }

    /// Asks the target for a desktop of `size` (already bounded and rate-limited), when its
    /// protocol and server allow it (a server that has not said so yet gets it once it does:
    /// VNC's ExtendedDesktopSize, RDP's Display Control capabilities) and the size differs
    /// from the screen's `current` one; the request is recorded as input metadata. The
    /// screen's new size comes back as the target's resize (RDP: after its
    /// Deactivation-Reactivation), which the recording and the browser get as any other.
    async fn resize(
        &self,
        wire: &mut Wire,
        size: (u16, u16),
        current: (u16, u16),
    ) -> Result<(), String> {
        match wire {
            Wire::Vnc {
                writer,
                resizable,
                unsent_size,
                ..
            } => {
                let Some(screen) = resizable else {
                    // Not yet said (or never: x11vnc, whose view scrolls): kept for when it does.
                    *unsent_size = Some(size);
                    return Ok(());
                };
                let (width, height) = size;
                if size == current {
                    return Ok(());
                }
                self.resize_note(width, height).await?;
                writer
                    .write_all(&rfb::set_desktop_size(width, height, *screen))
                    .await
                    .map_err(|_| RfbError::Closed.to_string())
            }
            Wire::Rdp {
                input,
                resizable,
                unsent_size,
                ..
            } => {
                if !*resizable {
                    // Not yet (or never: a server without Display Control, whose view scrolls).
                    *unsent_size = Some(size);
                    return Ok(());
                }
                // Display Control takes even widths only: what is asked is what the note says.
                let (width, height) = crate::rdp::monitor_size(size);
                if (width, height) == current {
                    return Ok(());
                }
                self.resize_note(width, height).await?;
                // A closed channel: the task's reason is on its way in the events.
                let _ = input.send(Input::Resize { width, height }).await;
                Ok(())
            }
        }
    }

    /// A resize request, recorded as input metadata.
    async fn resize_note(&self, width: u16, height: u16) -> Result<(), String> {
        let note = format!(r#"{{"t":"resize","w":{width},"h":{height}}}"#);
        let _recorded = self.tap.client_sent(&Bytes::from(note)).await?;
        Ok(())
    }

    /// The browser's paste: audited with the size the target gets (or, refused, the size the
    /// browser sent), then sent, or refused with a notice saying why.
    async fn paste(&self, wire: &mut Wire, text: String) -> Result<(), String> {
        let paste = Paste::decide(self.protocol, self.clipboard, text);
        let (bytes, allowed) = paste.audited();
        self.audit_clipboard("to_target", bytes, allowed).await?;
        let note = format!(r#"{{"t":"clipboard","to":"target","bytes":{bytes}}}"#);
        match (paste, wire) {
            (Paste::Refused { why, .. }, _) => {
                let _ = self.events.send(DesktopEvent::Notice(why)).await;
                Ok(())
            }
            (Paste::Vnc(message), Wire::Vnc { writer, .. }) => {
                let _recorded = self.tap.client_sent(&Bytes::from(note)).await?;
                writer
                    .write_all(&message)
                    .await
                    .map_err(|_| RfbError::Closed.to_string())
            }
            (Paste::Rdp(text), Wire::Rdp { input, .. }) => {
                let _recorded = self.tap.client_sent(&Bytes::from(note)).await?;
                // A closed channel: the task's reason is on its way in the events.
                let _ = input.send(Input::Clipboard(text)).await;
                Ok(())
            }
            // INVARIANT: the decision follows the session's protocol, which is its wire's.
            (Paste::Vnc(_) | Paste::Rdp(_), _) => Ok(()),
        }
    }

    async fn target_clipboard(&self, text: Option<String>, len: u32) -> Result<(), String> {
        let (bytes, allowed, shown) =
            match DesktopCopy::decide(self.protocol, self.clipboard, text, len) {
                DesktopCopy::Ignored => return Ok(()),
                DesktopCopy::Pass { bytes, text } => (bytes, true, DesktopEvent::Clipboard(text)),
                DesktopCopy::Refused { bytes, why } => (bytes, false, DesktopEvent::Notice(why)),
            };
        self.audit_clipboard("to_user", bytes, allowed).await?;
        let note =
            format!(r#"{{"t":"clipboard","to":"user","bytes":{bytes},"allowed":{allowed}}}"#);
        self.tap.notice(&note).await;
        self.events
            .send(shown)
            .await
            .map_err(|_| USER_LEFT.to_owned())
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

/// What becomes of the browser's paste, decided before anything is sent.
#[derive(Debug, PartialEq, Eq)]
enum Paste {
    /// VNC: the ClientCutText message, written as it is; its text's size (Latin-1 bytes) is
    /// what the target gets and what is audited.
    Vnc(Vec<u8>),
    /// RDP: the text for the clipboard channel; audited by its size in UTF-8, as the server's
    /// texts are (the channel carries it as UTF-16).
    Rdp(String),
    /// Not sent: audited with the size the browser sent; `why` is the notice for the user.
    Refused { bytes: usize, why: String },
}

impl Paste {
    /// The grant first, then the text as the target would get it: VNC's Latin-1 (a character
    /// outside it refuses the paste, so nothing arrives altered), at most [`MAX_CLIPBOARD`].
    fn decide(protocol: Protocol, granted: bool, text: String) -> Self {
        let browser_bytes = text.len();
        let refused = |why: String| Paste::Refused {
            bytes: browser_bytes,
            why,
        };
        if !granted {
            return refused(format!(
                "your grant does not allow the clipboard here ({protocol}:clipboard)"
            ));
        }
        let paste = match protocol {
            Protocol::Rdp => Paste::Rdp(text),
            _ => match rfb::client_cut_text(&text) {
                Ok(message) => Paste::Vnc(message),
                Err(not_latin1) => return refused(not_latin1.to_string()),
            },
        };
        if paste.audited().0 > MAX_CLIPBOARD {
            return refused(format!(
                "the clipboard text is larger than {MAX_CLIPBOARD} bytes: not sent"
            ));
        }
        paste
    }

    /// The audit's size and whether the paste was allowed.
    fn audited(&self) -> (usize, bool) {
        match self {
            Paste::Vnc(message) => (rfb::client_cut_text_len(message), true),
            Paste::Rdp(text) => (text.len(), true),
            Paste::Refused { bytes, .. } => (*bytes, false),
        }
    }
}

/// What becomes of a text copied on the desktop (the target's clipboard).
#[derive(Debug, PartialEq, Eq)]
enum DesktopCopy {
    /// An empty clipboard carries nothing: x11vnc sends one when a click in an xterm empties
    /// the cut buffer, and passing it on would empty the user's own clipboard (and audit a
    /// transfer of 0 bytes). Neither passed nor audited.
    Ignored,
    /// To the browser; audited with its size as the target sent it.
    Pass { bytes: usize, text: String },
    /// Not passed: audited with its size; `why` is the notice for the user (never the text).
    Refused { bytes: usize, why: String },
}

impl DesktopCopy {
    /// `len`: the size the target sent; `text`: `None` when it was too large to keep.
    fn decide(protocol: Protocol, granted: bool, text: Option<String>, len: u32) -> Self {
        if len == 0 {
            return DesktopCopy::Ignored;
        }
        let bytes = usize::try_from(len).unwrap_or(usize::MAX);
        let not_passed = format!(
            "a text copied on the desktop ({bytes} bytes) was not passed to your clipboard"
        );
        if !granted {
            return DesktopCopy::Refused {
                bytes,
                why: format!(
                    "{not_passed}: your grant does not allow the clipboard here ({protocol}:clipboard)"
                ),
            };
        }
        match text {
            Some(text) if bytes <= MAX_CLIPBOARD => DesktopCopy::Pass { bytes, text },
            _ => DesktopCopy::Refused {
                bytes,
                why: format!("{not_passed}: it is larger than {MAX_CLIPBOARD} bytes"),
            },
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vnc_paste_is_audited_with_the_latin1_size_sent_and_one_latin1_cannot_carry_is_refused() {
        // "é": two bytes in UTF-8, one in Latin-1, which is what the target gets.
        let paste = Paste::decide(Protocol::Vnc, true, "caf\u{e9}".to_owned());
        assert_eq!(
            paste,
            Paste::Vnc(vec![6, 0, 0, 0, 0, 0, 0, 4, b'c', b'a', b'f', 0xe9])
        );
        assert_eq!(paste.audited(), (4, true));
        // A character outside Latin-1: refused (never sent as "?"), audited with the size the
        // browser sent, and the notice says why.
        let text = "price: 5 \u{20ac}";
        let refused = Paste::decide(Protocol::Vnc, true, text.to_owned());
        assert_eq!(refused.audited(), (text.len(), false));
        let Paste::Refused { why, .. } = refused else {
            panic!("sent: {refused:?}");
        };
        assert!(why.contains("Latin-1") && why.contains('\u{20ac}'), "{why}");
        // RDP's channel carries the text itself: audited by its UTF-8 size, as the server's.
        let rdp = Paste::decide(Protocol::Rdp, true, "5 \u{20ac}".to_owned());
        assert_eq!(rdp, Paste::Rdp("5 \u{20ac}".to_owned()));
        assert_eq!(rdp.audited(), (5, true));
    }

    #[test]
    fn a_paste_without_the_grant_or_too_large_is_refused_naming_why() {
        for protocol in [Protocol::Vnc, Protocol::Rdp] {
            let Paste::Refused { bytes, why } = Paste::decide(protocol, false, "abc".to_owned())
            else {
                panic!("sent without the grant");
            };
            assert_eq!(bytes, 3);
            assert!(why.contains(&format!("({protocol}:clipboard)")), "{why}");
            let large = "a".repeat(MAX_CLIPBOARD + 1);
            let Paste::Refused { bytes, why } = Paste::decide(protocol, true, large) else {
                panic!("sent a text larger than MAX_CLIPBOARD");
            };
            assert_eq!(bytes, MAX_CLIPBOARD + 1);
            assert!(why.contains("larger than"), "{why}");
        }
    }

    #[test]
    fn an_empty_desktop_clipboard_is_neither_passed_nor_audited() {
        for granted in [true, false] {
            assert_eq!(
                DesktopCopy::decide(Protocol::Vnc, granted, Some(String::new()), 0),
                DesktopCopy::Ignored
            );
        }
    }

    #[test]
    fn a_desktop_copy_passes_with_the_grant_and_is_refused_with_a_notice_without_it() {
        let copied = "copied-secret";
        let len = copied.len() as u32;
        assert_eq!(
            DesktopCopy::decide(Protocol::Vnc, true, Some(copied.to_owned()), len),
            DesktopCopy::Pass {
                bytes: copied.len(),
                text: copied.to_owned()
            }
        );
        let DesktopCopy::Refused { bytes, why } =
            DesktopCopy::decide(Protocol::Rdp, false, Some(copied.to_owned()), len)
        else {
            panic!("passed without the grant");
        };
        assert_eq!(bytes, copied.len());
        assert!(
            why.contains("(rdp:clipboard)") && why.contains("13 bytes"),
            "{why}"
        );
        assert!(
            !why.contains(copied),
            "the refused text is in the notice: {why}"
        );
        // Too large to keep (no text): refused even with the grant.
        let huge = u32::try_from(MAX_CLIPBOARD).unwrap() + 1;
        assert!(matches!(
            DesktopCopy::decide(Protocol::Vnc, true, None, huge),
            DesktopCopy::Refused { .. }
        ));
    }
}
