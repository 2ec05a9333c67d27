//! The native VNC front: a stock VNC viewer (TigerVNC's `vncviewer`) connects to Rampart's
//! VNC listener (`vnc.listen`), logs in, and gets a target's desktop with the same control as
//! the browser's desktop sessions, because it is the same session: [`crate::open`] decides
//! (`vnc:connect`, through `rampart_session::authorize`), logs in to the target with the
//! vaulted credential, records, audits the clipboard and obeys kill and limits. This front
//! only speaks RFB to the viewer (`rfb_server`).
//!
//! One connection:
//! 1. Within `vnc.login_grace_time` (at most `max_unauthenticated` connections at once):
//!    RFB 3.8, VeNCrypt with X509Plain only, TLS with the node's certificate, then Plain's user
//!    name `USER@ASSET` or `USER@ACCOUNT@ASSET` and password, a database token from
//!    `rampart db token` or `PASSWORD:TOTP`, checked by the one authenticator
//!    (`database_login`: lockout, login rules, failures audited) exactly as the database
//!    fronts do. Every failed login reads the same; the viewer shows the SecurityResult's
//!    reason.
//! 2. The desktop session is opened before the SecurityResult, so a refusal (no grant, the
//!    target down) is the reason the viewer shows, and the viewer gets the target's size in
//!    ServerInit.
//! 3. The relay: the session's desktop stream (`screen` messages) applied to a framebuffer of
//!    this front, whose changed parts ([`crate::rfb_server::Damage`]) go to the viewer as Raw rectangles in its
//!    pixel format when it asks (FramebufferUpdateRequest); a resize as ExtendedDesktopSize or
//!    DesktopSize, whichever the viewer listed (neither: the session ends with the reason).
//!    Keys, the pointer and the viewer's clipboard become the session's [`Input`]; the
//!    target's clipboard (when the grant allows it) a ServerCutText.
//! 4. A viewer that lists ExtendedDesktopSize is told at once that it may ask for a size; its
//!    SetDesktopSize becomes the session's resize request ([`Input::resize`]: bounded and
//!    rate-limited as the browser's), and the target's next change of size is the answer
//!    (reason "the client asked"). A target that cannot resize never answers: the viewer keeps
//!    the size it has.
//!
//! INVARIANTS:
//! - Nothing is offered but VeNCrypt X509Plain: no credential crosses without TLS.
//! - The token (password) lives in a `SecretString` until the authenticator has it, and is
//!   never logged or echoed.
//! - Memory per viewer is bounded: one screen, at most [`crate::rfb_server::MAX_DAMAGE`]
//!   rectangles waiting, and one client message (at most `8 + MAX_CUT_TEXT` bytes) buffered.

use crate::rfb_server::{
    self, ClientMessage, Converter, Mirror, PixelFormat, SizeNotice, ViewerError,
};
use crate::session::{Desktop, DesktopEvent, DesktopRequest, Input};
use bytes::BytesMut;
use rampart_auth::{Attempt, Front, Refusal};
use rampart_core::target::Protocol;
use rampart_session::SessionCore;
use rampart_session::database::{self as db, DbLogin};
use rampart_session::dial::Dialer;
use rampart_session::framed::FrontBase;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

/// What every failed login reads (unknown user, wrong, expired or revoked token, locked).
pub const LOGIN_FAILED: &str = "Rampart: authentication failed (user name USER@ASSET or \
     USER@ACCOUNT@ASSET, password a token from `rampart db token` or PASSWORD:TOTP)";
/// Bytes read from the viewer at a time.
const READ_CHUNK: usize = 64 * 1024;

/// How a native listener (VNC, RDP) treats connections (from the node's configuration).
#[derive(Debug, Clone)]
pub struct NativeSettings {
    /// Time from accept to a checked login (`vnc.login_grace_time`, `rdp.login_grace_time`).
    pub login_grace_time: Duration,
    /// Connections not logged in yet, at most.
    pub max_unauthenticated: usize,
}

impl Default for NativeSettings {
    fn default() -> Self {
        Self {
            login_grace_time: Duration::from_secs(30),
            max_unauthenticated: 256,
        }
    }
}

/// Everything a connection of a native front (VNC here, RDP in `native_rdp`) needs; cheap to
/// clone.
#[derive(Clone)]
pub struct NativeFront {
    pub(crate) base: FrontBase,
    pub(crate) settings: NativeSettings,
}

/// The native VNC front.
pub type NativeVncFront = NativeFront;

impl std::fmt::Debug for NativeFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeFront")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl NativeFront {
    /// `tls`: the node's certificate (the web listener's), the one VeNCrypt's X509Plain and
    /// RDP's TLS security use.
    pub fn new(
        core: SessionCore,
        auth: rampart_auth::Authenticator,
        dialer: Dialer,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        settings: NativeSettings,
    ) -> Self {
        let base = FrontBase::new(
            core,
            auth,
            dialer,
            Some(tls),
            Vec::new(),
            settings.max_unauthenticated,
        );
        Self { base, settings }
    }
}

/// Accepts viewers on `listener` until `shutdown` completes. Live sessions are ended by the
/// node's live registry at shutdown, each through its guard.
pub async fn run(front: NativeVncFront, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let unauthenticated = front.base.unauthenticated.clone();
    rampart_session::framed::accept_loop("vnc", listener, unauthenticated, shutdown, front, serve)
        .await;
}

type Viewer = tokio_rustls::server::TlsStream<TcpStream>;

/// A viewer that logged in: its TLS stream and the desktop it asked for.
struct LoggedIn {
    viewer: Viewer,
    request: DesktopRequest,
}

async fn serve(
    front: NativeVncFront,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let grace = front.settings.login_grace_time;
    let logged_in = match tokio::time::timeout(grace, login(&front, tcp, peer)).await {
        Ok(Some(logged_in)) => logged_in,
        Ok(None) => return,
        Err(_) => {
            tracing::info!(%peer, "vnc: login grace time passed; closing");
            return;
        }
    };
    drop(permit);
    session(&front, logged_in, peer).await;
}

/// The handshake and the login; `None` once the viewer was answered and the connection ends.
async fn login(front: &NativeVncFront, mut tcp: TcpStream, peer: SocketAddr) -> Option<LoggedIn> {
    if let Err(err) = rfb_server::negotiate(&mut tcp).await {
        tracing::info!(%peer, error = %err, "vnc: handshake failed");
        return None;
    }
    let acceptor = front.base.tls.clone()?;
    let mut viewer = match acceptor.accept(tcp).await {
        Ok(viewer) => viewer,
        Err(err) => {
            tracing::info!(%peer, error = %err, "vnc: TLS handshake failed");
            return None;
        }
    };
    let (name, secret) = match rfb_server::read_plain(&mut viewer).await {
        Ok(credentials) => credentials,
        Err(err) => {
            tracing::info!(%peer, error = %err, "vnc: no credentials");
            return None;
        }
    };
    match login_request(&front.base, &name, secret, peer, "vnc", |_| Protocol::Vnc).await {
        Ok(request) => Some(LoggedIn { viewer, request }),
        Err(why) => {
            refuse(&mut viewer, &why).await;
            None
        }
    }
}

/// The login of a native front's client: `name` (`USER@ASSET` or `USER@ACCOUNT@ASSET`) and
/// its token (or `PASSWORD:TOTP`) checked by the one authenticator (`database_login`:
/// lockout, login rules, failures audited) as the database fronts do, the login recorded;
/// the desktop it asks for, with the protocol `protocol` picks for the asset. `Err`: the line
/// the client is refused with (every failed login reads [`LOGIN_FAILED`]).
pub(crate) async fn login_request(
    base: &FrontBase,
    name: &str,
    secret: rampart_core::SecretString,
    peer: SocketAddr,
    front: &'static str,
    protocol: impl FnOnce(Option<&rampart_core::Asset>) -> Protocol,
) -> Result<DesktopRequest, String> {
    let target = DbLogin::parse(name)?;
    let attempt = Attempt {
        front: Front::Database,
        login: name,
        user: Some(&target.user),
        source: peer.ip(),
    };
    let login = match base.auth.database_login(&attempt, &secret).await {
        Ok(login) => login,
        Err(Refusal::Unavailable) => return Err("Rampart cannot check logins now".to_owned()),
        // The same answer for every failure (the authenticator audited which).
        Err(_) => return Err(LOGIN_FAILED.to_owned()),
    };
    drop(secret);
    db::record_login(&base.core.store, &login.user.name, &login.method, peer.ip()).await?;
    // Only after the login: which endpoints the asset has says nothing to a stranger.
    let asset = base.core.store.asset(&target.asset).await.ok();
    Ok(DesktopRequest {
        user: login.user,
        mfa: login.mfa,
        source: peer,
        front,
        protocol: protocol(asset.as_ref()),
        target,
    })
}

/// A failed SecurityResult with `reason`, then the connection's end.
async fn refuse<S: AsyncWrite + Unpin>(viewer: &mut S, reason: &str) {
    let _ = rfb_server::security_result(viewer, Err(reason)).await;
    let _ = viewer.shutdown().await;
}

/// The desktop session: opened through the session core, then relayed until either side ends.
async fn session(front: &NativeVncFront, logged_in: LoggedIn, peer: SocketAddr) {
    let LoggedIn {
        mut viewer,
        request,
    } = logged_in;
    let core = front.base.core.clone();
    let desktop = match crate::open(core, front.base.dialer.clone(), request).await {
        Ok(desktop) => desktop,
        Err(reason) => {
            tracing::info!(%peer, %reason, "vnc: a desktop was not opened");
            refuse(&mut viewer, &reason).await;
            return;
        }
    };
    let id = desktop.id;
    let (width, height) = desktop.size;
    let opening = async {
        rfb_server::security_result(&mut viewer, Ok(())).await?;
        rfb_server::read_client_init(&mut viewer).await?;
        viewer
            .write_all(&rfb_server::server_init(width, height, &desktop.name))
            .await
            .map_err(|_| ViewerError::Closed)
    };
    let why = match opening.await {
        Ok(()) => relay(&mut viewer, desktop).await,
        // Dropping the desktop's input ends the session ("the user closed the desktop").
        Err(err) => err.to_string(),
    };
    tracing::info!(session = %id, %peer, reason = %why, "vnc: viewer disconnected");
    let _ = tokio::time::timeout(Duration::from_secs(5), viewer.shutdown()).await;
}

/// What the viewer has and wants.
struct View {
    mirror: Mirror,
    /// An update the viewer asked for and has not had yet.
    requested: bool,
    converter: Converter,
    /// The viewer listed DesktopSize, ExtendedDesktopSize.
    desktop_size: bool,
    extended_size: bool,
    /// An ExtendedDesktopSize is owed: the viewer listed it and learns so that it may ask.
    announce: bool,
    /// The viewer asked for a size (SetDesktopSize) and has had no answer yet.
    asked: bool,
}

impl View {
    fn new(size: (u16, u16)) -> Self {
        Self {
            mirror: Mirror::new(size),
            requested: false,
            converter: PixelFormat::DEFAULT.converter(),
            desktop_size: false,
            extended_size: false,
            announce: false,
            asked: false,
        }
    }

    fn apply(&mut self, message: &[u8]) -> Result<(), String> {
        self.mirror.apply(message)
    }

    /// The update due now, if the viewer asked for one and something changed.
    fn due(&mut self) -> Result<Option<bytes::Bytes>, String> {
        let Mirror {
            fb,
            damage,
            resized,
        } = &mut self.mirror;
        if !self.requested || (damage.is_empty() && !*resized && !self.announce) {
            return Ok(None);
        }
        let size = if self.extended_size && (*resized || self.announce) {
            let reason = if *resized && self.asked {
                self.asked = false;
                rfb_server::REASON_CLIENT
            } else {
                rfb_server::REASON_SERVER
            };
            Some(SizeNotice::Extended { reason })
        } else if !*resized {
            None
        } else if self.desktop_size {
            Some(SizeNotice::DesktopSize)
        } else {
            let (w, h) = fb.size();
            return Err(format!(
                "the desktop changed its size to {w}x{h} and the viewer does not support \
                 DesktopSize"
            ));
        };
        let rects = damage.take();
        let update =
            rfb_server::framebuffer_update(fb.pixels(), fb.size(), &rects, size, &self.converter);
        *resized = false;
        self.announce = false;
        self.requested = false;
        Ok(Some(update))
    }

    /// One message of the viewer: what it changes here, and the input for the session.
    fn client(&mut self, message: ClientMessage) -> Option<Input> {
        match message {
            ClientMessage::SetPixelFormat(format) => {
                self.converter = format.converter();
                // What the viewer has is in the old format: all of it again.
                let whole = self.mirror.whole();
                self.mirror.damage.clear();
                self.mirror.damage.add(whole);
                None
            }
            ClientMessage::SetEncodings(encodings) => {
                self.desktop_size = encodings.contains(&rfb_server::ENCODING_DESKTOP_SIZE);
                self.extended_size =
                    encodings.contains(&rfb_server::ENCODING_EXTENDED_DESKTOP_SIZE);
                self.announce = self.extended_size;
                None
            }
            // Only a viewer that was told it may ask.
            ClientMessage::SetDesktopSize { .. } if !self.extended_size => None,
            ClientMessage::SetDesktopSize { width, height } => {
                self.asked = true;
                Some(Input::resize(width.into(), height.into()))
            }
            ClientMessage::UpdateRequest { incremental, area } => {
                if !incremental {
                    let (w, h) = self.mirror.fb.size();
                    if let Some(area) = area.clip(w, h) {
                        self.mirror.damage.add(area);
                    }
                }
                self.requested = true;
                None
            }
            ClientMessage::Key { down, keysym } => Some(Input::Key {
                down,
                keysym,
                code: None,
            }),
            ClientMessage::Pointer { buttons, x, y } => Some(Input::Pointer { x, y, buttons }),
            // An empty clipboard carries nothing (viewers send one when theirs empties).
            ClientMessage::CutText(text) if text.is_empty() => None,
            ClientMessage::CutText(text) => Some(Input::Clipboard(rfb_server::latin1_text(&text))),
        }
    }
}

/// Ends the session with `why` (the viewer broke its protocol), which the session's record
/// then says; returns it. The session's events are taken until its end (at most 5 s): a relay
/// whose events had nowhere to go would end it as "the user closed the desktop" first.
pub(crate) async fn leave(desktop: &mut Desktop, why: String) -> String {
    let _ = desktop.input.send(Input::Leave(why.clone())).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = desktop.events.recv().await {
            if matches!(event, DesktopEvent::End(_)) {
                break;
            }
        }
    })
    .await;
    why
}

/// Relays between the viewer and the session; returns why it ended.
async fn relay(viewer: &mut Viewer, mut desktop: Desktop) -> String {
    let mut view = View::new(desktop.size);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match view.due() {
            Ok(Some(update)) => {
                if viewer.write_all(&update).await.is_err() {
                    return ViewerError::Closed.to_string();
                }
            }
            Ok(None) => {}
            Err(why) => return leave(&mut desktop, why).await,
        }
        tokio::select! {
            read = async {
                buf.reserve(READ_CHUNK);
                viewer.read_buf(&mut buf).await
            } => {
                if !matches!(read, Ok(n) if n > 0) {
                    return ViewerError::Closed.to_string();
                }
                loop {
                    match rfb_server::parse_client_message(&buf) {
                        Ok(None) => break,
                        Ok(Some((message, len))) => {
                            let _ = buf.split_to(len);
                            if let Some(input) = view.client(message)
                                && desktop.input.send(input).await.is_err()
                            {
                                return "the session ended".to_owned();
                            }
                        }
                        Err(err) => return leave(&mut desktop, err.to_string()).await,
                    }
                }
            }
            event = desktop.events.recv() => match event {
                None => return "the session ended".to_owned(),
                Some(DesktopEvent::Frame(message)) => {
                    if let Err(why) = view.apply(&message) {
                        return leave(&mut desktop, why).await;
                    }
                }
                Some(DesktopEvent::Clipboard(text)) => {
                    if viewer.write_all(&rfb_server::server_cut_text(&text)).await.is_err() {
                        return ViewerError::Closed.to_string();
                    }
                }
                // RFB has no place for a line of text: the log has it.
                Some(DesktopEvent::Notice(line)) => {
                    tracing::info!(session = %desktop.id, notice = %line, "vnc: a notice for the viewer");
                }
                Some(DesktopEvent::End(reason)) => return reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfb_server::Rect;
    use crate::screen;

    fn request(view: &mut View, incremental: bool) {
        let area = Rect {
            x: 0,
            y: 0,
            w: 4,
            h: 4,
        };
        assert_eq!(
            view.client(ClientMessage::UpdateRequest { incremental, area }),
            None
        );
    }

    #[test]
    fn updates_go_only_when_asked_and_carry_what_changed() {
        let mut view = View::new((4, 4));
        // Nothing asked: nothing sent, however the screen changes.
        view.apply(&screen::pixels_message(1, 1, 1, 1, &[9, 9, 9, 255]))
            .unwrap();
        assert_eq!(view.due(), Ok(None));
        // Asked (incrementally): the changed pixel only, once.
        request(&mut view, true);
        let update = view.due().unwrap().unwrap();
        assert_eq!(&update[..4], &[0, 0, 0, 1]);
        assert_eq!(&update[4..16], &[0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&update[16..], &[9, 9, 9, 0]);
        request(&mut view, true);
        assert_eq!(view.due(), Ok(None), "nothing changed since");
        // A full request: the whole screen, in the viewer's 16-bit format.
        let rgb565 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: false,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        };
        assert_eq!(view.client(ClientMessage::SetPixelFormat(rgb565)), None);
        request(&mut view, false);
        let update = view.due().unwrap().unwrap();
        assert_eq!(update.len(), 4 + 12 + 4 * 4 * 2);
    }

    #[test]
    fn a_resize_goes_as_desktop_size_or_ends_the_session_with_the_reason() {
        let mut view = View::new((4, 4));
        view.apply(&screen::size_message(4, 4)).unwrap();
        request(&mut view, true);
        assert_eq!(view.due(), Ok(None), "the same size is no resize");
        view.apply(&screen::size_message(2, 2)).unwrap();
        let refused = view.due().unwrap_err();
        assert!(
            refused.contains("does not support DesktopSize"),
            "{refused}"
        );

        let mut view = View::new((4, 4));
        view.client(ClientMessage::SetEncodings(vec![
            rfb_server::ENCODING_RAW,
            rfb_server::ENCODING_DESKTOP_SIZE,
        ]));
        view.apply(&screen::size_message(2, 2)).unwrap();
        request(&mut view, true);
        let update = view.due().unwrap().unwrap();
        assert_eq!(&update[..4], &[0, 0, 0, 2]);
        assert_eq!(&update[12..16], &(-223i32).to_be_bytes());
    }

    #[test]
    fn the_viewer_s_input_becomes_the_session_s() {
        let mut view = View::new((4, 4));
        assert_eq!(
            view.client(ClientMessage::Key {
                down: true,
                keysym: 0x61
            }),
            Some(Input::Key {
                down: true,
                keysym: 0x61,
                code: None
            })
        );
        assert_eq!(
            view.client(ClientMessage::Pointer {
                buttons: 4,
                x: 3,
                y: 2
            }),
            Some(Input::Pointer {
                x: 3,
                y: 2,
                buttons: 4
            })
        );
        assert_eq!(
            view.client(ClientMessage::CutText(bytes::Bytes::from_static(
                b"caf\xe9"
            ))),
            Some(Input::Clipboard("caf\u{e9}".to_owned()))
        );
        assert_eq!(
            view.client(ClientMessage::CutText(bytes::Bytes::new())),
            None
        );
    }
}
