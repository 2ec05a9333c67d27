//! The native RDP front: a stock RDP client (FreeRDP's `xfreerdp`, mstsc) connects to
//! Rampart's RDP listener (`rdp.listen`), logs in, and gets a target's desktop with the same
//! control as the browser's and the native VNC viewers' desktop sessions, because it is the
//! same session: [`crate::open`] decides (`rdp:connect` or `vnc:connect`, by the asset's
//! endpoint), logs in to the target with the vaulted credential, records and obeys kill and
//! limits. This front speaks the server side of RDP with IronRDP's acceptor (the connection
//! sequence) and ironrdp-pdu (the active stage).
//!
//! One connection:
//! 1. Within `rdp.login_grace_time` (at most `max_unauthenticated` connections at once): the
//!    X.224 negotiation offers TLS security only (no standard RDP security, no NLA/CredSSP
//!    in this cut), TLS with the node's certificate, then the Client Info PDU's user name
//!    `USER#ASSET` or `USER#ACCOUNT@ASSET` (`USER@ASSET` as the native VNC front reads it
//!    works too) and password, a database token from `rampart db token` or `PASSWORD:TOTP`,
//!    checked by the one authenticator exactly as the native VNC front does
//!    (`native_vnc::login_request`). A refusal is a Set Error Info PDU (access denied) and
//!    the connection's end; the reason is in the log and the audit.
//! 2. The desktop session is opened right after the login, before the capability exchange
//!    (the acceptor's `ConnectionSetupHandler`), so a refusal (no grant, the target down)
//!    ends the connection before the client shows anything.
//! 3. The acceptor announced [`FIRST_SIZE`]; when the target's screen has another size (or
//!    changes it later), a Deactivation-Reactivation Sequence gives the client the new one.
//! 4. The relay: the session's desktop stream (`screen` messages) applied to a framebuffer
//!    of this front, whose changed parts go to the client as fast-path bitmap updates in
//!    tiles of at most [`TILE`] pixels at the client's colour depth (32, 24 or 16 bits): at
//!    32 bits compressed with RDP 6.0's planar codec where that is smaller, else
//!    uncompressed. The client's fast-path and slow-path input (scancodes, Unicode keys,
//!    pointer, wheel) becomes the session's [`Input`]: keys carry their `KeyboardEvent.code`
//!    (an RDP target gets the scancode back) and their US-layout keysym (a VNC target).
//!
//! 5. The clipboard, text only, when the client joins the CLIPRDR channel (`rdp_clipboard`'s
//!    backend on the server's side of the channel): the client's copied text becomes the
//!    session's [`Input::Clipboard`] (the session applies the grant's rule and audits it), and
//!    the target's text (which the session passes only when the grant allows it) is announced
//!    to the client, which fetches it when something on its side pastes.
//!
//! 6. A client that resizes the remote desktop to its window (FreeRDP's
//!    `/dynamic-resolution`) does so on the DRDYNVC channel's Display Control dynamic channel
//!    (MS-RDPEDISP): its primary monitor's size becomes the session's resize request
//!    ([`Input::resize`]: bounded and rate-limited as the browser's), and the target's new size
//!    reaches it by reactivation (3.).
//!
//! Not in this cut: audio, drives, files on the clipboard, pointer shapes (the client draws
//! its own), compressed bitmaps, NLA.
//!
//! INVARIANTS:
//! - Nothing is offered but TLS security: no credential crosses without TLS.
//! - The password lives in a `SecretString` once it is out of the acceptor's PDU, and is
//!   never logged.
//! - Memory per client is bounded: one screen, at most [`crate::rfb_server::MAX_DAMAGE`]
//!   rectangles waiting, and one PDU (its header's length: at most 64 KiB) buffered.
//! - A client that sends what cannot be decoded ends its session with the reason; nothing
//!   it sends can panic the node.

use crate::native_vnc::login_request;
use crate::rdp_clipboard::{self, ChannelGuard, Chunk, Step};
use crate::rfb_server::{Mirror, Rect};
use crate::screen::ServerEvent;
use crate::session::{Desktop, DesktopEvent, Input};
use ironrdp_acceptor::{
    Acceptor, AcceptorResult, ConnectionSetupHandler, DesktopSize, ReceivedCredentials,
};
use ironrdp_cliprdr::CliprdrServer;
use ironrdp_connector::{ConnectorResult, general_err};
use ironrdp_displaycontrol::pdu::DisplayControlMonitorLayout;
use ironrdp_displaycontrol::server::{DisplayControlHandler, DisplayControlServer};
use ironrdp_dvc::DrdynvcServer;
use ironrdp_graphics::rdp6::{BitmapStreamEncoder, RgbAChannels};
use ironrdp_pdu::bitmap::{BitmapData, BitmapUpdateData, CompressedDataHeader, Compression};
use ironrdp_pdu::fast_path::{
    EncryptionFlags, FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode,
};
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::input::fast_path::{FastPathInput, FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::input::{InputEvent, InputEventPdu};
use ironrdp_pdu::ironrdp_core::{self, WriteBuf, decode, encode_vec};
use ironrdp_pdu::mcs::{DisconnectProviderUltimatum, DisconnectReason, McsMessage};
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::capability_sets::{self as caps, CapabilitySet};
use ironrdp_pdu::rdp::headers::{
    ServerDeactivateAll, ShareControlHeader, ShareControlPdu, ShareDataPdu,
};
use ironrdp_pdu::x224::X224;
use ironrdp_tokio::{FramedWrite, TokioFramed};
use rampart_core::SecretString;
use rampart_core::target::Protocol;
use rampart_session::framed::FrontBase;
use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

/// The desktop size the connection sequence starts with (the target's follows by
/// reactivation when it differs).
pub const FIRST_SIZE: (u16, u16) = (1024, 768);
/// Tiles of a bitmap update: 64 pixels wide, 32 high (8 KiB at 32 bits a pixel), so each
/// fits one fast-path update unfragmented.
pub const TILE: (u16, u16) = (64, 32);
/// The largest request a client may send us in one multifragment update, as announced.
const MAX_REQUEST_SIZE: u32 = 8 * 1024 * 1024;

/// The native RDP front: the same settings and parts as the VNC front's.
pub type NativeRdpFront = crate::native_vnc::NativeFront;

/// Accepts clients on `listener` until `shutdown` completes. Live sessions are ended by the
/// node's live registry at shutdown, each through its guard.
pub async fn run(front: NativeRdpFront, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let unauthenticated = front.base.unauthenticated.clone();
    rampart_session::framed::accept_loop("rdp", listener, unauthenticated, shutdown, front, serve)
        .await;
}

type Client = tokio_rustls::server::TlsStream<TcpStream>;
type Framed = TokioFramed<Client>;

/// A client past the connection sequence, with its desktop open.
struct Accepted {
    framed: Framed,
    acceptor: Acceptor,
    result: AcceptorResult,
    desktop: Desktop,
    layouts: RequestedLayout,
}

/// The size the client last asked for on the Display Control channel, not yet taken.
#[derive(Clone, Default)]
struct RequestedLayout(Arc<Mutex<Option<(u32, u32)>>>);

impl RequestedLayout {
    fn take(&self) -> Option<(u32, u32)> {
        self.0
            .lock()
            .map(|mut size| size.take())
            .unwrap_or_default()
    }
}

impl DisplayControlHandler for RequestedLayout {
    /// The primary monitor's size (the whole layout's with none marked primary); the relay
    /// bounds it.
    fn monitor_layout(&self, layout: DisplayControlMonitorLayout) {
        let size = layout
            .monitors()
            .iter()
            .find(|monitor| monitor.is_primary())
            .map_or_else(|| layout.desktop_size(), |monitor| monitor.dimensions());
        if let Ok(mut requested) = self.0.lock() {
            *requested = Some(size);
        }
    }
}

async fn serve(
    front: NativeRdpFront,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    // IronRDP's acceptor and its setup hook are not `Send`: the connection sequence runs on a
    // thread of its own (as the RDP connector towards targets does), the relay after it on
    // the runtime.
    let handle = tokio::runtime::Handle::current();
    let sequence = tokio::task::spawn_blocking(move || {
        handle.block_on(async move { accept(&front, tcp, peer, permit).await.map(|a| (front, a)) })
    })
    .await;
    let Ok(Some((_front, accepted))) = sequence else {
        return;
    };
    let id = accepted.desktop.id;
    let (framed, why) = relay(accepted).await;
    tracing::info!(session = %id, %peer, reason = %why, "rdp: client disconnected");
    let (mut client, _) = framed.into_inner();
    let ultimatum = encode_vec(&X224(McsMessage::DisconnectProviderUltimatum(
        DisconnectProviderUltimatum::from_reason(DisconnectReason::ProviderInitiated),
    )));
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncWriteExt;
        if let Ok(ultimatum) = ultimatum {
            let _ = client.write_all(&ultimatum).await;
        }
        let _ = client.shutdown().await;
    })
    .await;
}

/// The connection sequence up to the active stage, with the login and the desktop opened in
/// between; `None` once the client was refused (or gave up) and the connection ends.
async fn accept(
    front: &NativeRdpFront,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) -> Option<Accepted> {
    let logged_in = Rc::new(Cell::new(false));
    let grace = front.settings.login_grace_time;
    let deadline = {
        let logged_in = logged_in.clone();
        async move {
            tokio::time::sleep(grace).await;
            if logged_in.get() {
                // Logged in: the desktop's opening has its own bound; the rest of the
                // sequence gets as long again.
                tokio::time::sleep(crate::session::HANDSHAKE_TIMEOUT + grace).await;
            }
        }
    };
    tokio::select! {
        accepted = sequence(front, tcp, peer, permit, logged_in) => match accepted {
            Ok(accepted) => Some(accepted),
            Err(why) => {
                tracing::info!(%peer, reason = %why, "rdp: connection refused");
                None
            }
        },
        () = deadline => {
            tracing::info!(%peer, "rdp: login grace time passed; closing");
            None
        }
    }
}

async fn sequence(
    front: &NativeRdpFront,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    logged_in: Rc<Cell<bool>>,
) -> Result<Accepted, String> {
    let (width, height) = FIRST_SIZE;
    let size = DesktopSize { width, height };
    let mut acceptor = Acceptor::new(SecurityProtocol::SSL, size, capabilities(size), None);
    acceptor.attach_static_channel(rdp_clipboard::server_channel());
    let layouts = RequestedLayout::default();
    acceptor.attach_static_channel(
        DrdynvcServer::new()
            .with_dynamic_channel(DisplayControlServer::new(Box::new(layouts.clone()))),
    );
    let mut framed = TokioFramed::new(tcp);
    negotiate(&mut framed, &mut acceptor).await?;
    let tcp = framed.into_inner_no_leftover();
    let tls = front
        .base
        .tls
        .clone()
        .ok_or_else(|| "the listener has no certificate".to_owned())?;
    let client = tls
        .accept(tcp)
        .await
        .map_err(|err| format!("the TLS handshake failed: {err}"))?;
    acceptor.mark_security_upgrade_as_done();
    let mut setup = Setup {
        base: &front.base,
        peer,
        permit: Some(permit),
        logged_in,
        desktop: None,
        refused: None,
    };
    let finished =
        ironrdp_acceptor::accept_finalize_with(TokioFramed::new(client), &mut acceptor, &mut setup)
            .await;
    let (framed, result) = match finished {
        Ok(done) => done,
        Err(err) => {
            // The refusal's reason, not the acceptor's "access denied".
            return Err(setup
                .refused
                .take()
                .unwrap_or_else(|| format!("the connection sequence failed: {err}")));
        }
    };
    let desktop = setup
        .desktop
        .take()
        // An auto-reconnect packet instead of credentials: never a session without a login.
        .ok_or_else(|| "the client sent no credentials".to_owned())?;
    Ok(Accepted {
        framed,
        acceptor,
        result,
        desktop,
        layouts,
    })
}

/// The X.224 negotiation up to the TLS upgrade (what `ironrdp_acceptor::accept_begin` does),
/// writing what the acceptor encoded even when the step fails: its `RDP_NEG_FAILURE` to a
/// client that offers neither TLS nor anything Rampart accepts ("SSL required by server"),
/// which `accept_begin` drops, so such a client only saw the connection close.
async fn negotiate(
    framed: &mut TokioFramed<TcpStream>,
    acceptor: &mut Acceptor,
) -> Result<(), String> {
    let mut buf = WriteBuf::new();
    while acceptor.reached_security_upgrade().is_none() {
        let step = ironrdp_tokio::single_sequence_step_read(framed, acceptor, &mut buf).await;
        let answer = match &step {
            Ok(written) => written.size().and_then(|n| buf.filled().get(..n)),
            Err(_) => Some(buf.filled()),
        };
        if let Some(answer) = answer.filter(|a| !a.is_empty()) {
            framed
                .write_all(answer)
                .await
                .map_err(|_| "the client closed the connection".to_owned())?;
        }
        step.map_err(|err| format!("the X.224 negotiation failed: {err}"))?;
    }
    if acceptor
        .reached_security_upgrade()
        .is_some_and(|s| s.is_empty())
    {
        return Err("the client asked for no security".to_owned());
    }
    Ok(())
}

/// The login and the desktop's opening, at the point of the sequence IronRDP calls back.
struct Setup<'a> {
    base: &'a FrontBase,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    logged_in: Rc<Cell<bool>>,
    desktop: Option<Desktop>,
    /// Why the client was refused (for the log; the client gets "access denied").
    refused: Option<String>,
}

impl Setup<'_> {
    async fn open(&mut self, credentials: Option<ReceivedCredentials>) -> Result<(), String> {
        let credentials = credentials.ok_or_else(|| "the client sent no credentials".to_owned())?;
        let name = rdp_login_name(&credentials.credentials.username);
        let secret = SecretString::from(credentials.credentials.password);
        let request =
            login_request(self.base, &name, secret, self.peer, "rdp", pick_protocol).await?;
        self.logged_in.set(true);
        drop(self.permit.take());
        let desktop =
            crate::open(self.base.core.clone(), self.base.dialer.clone(), request).await?;
        self.desktop = Some(desktop);
        Ok(())
    }
}

impl ConnectionSetupHandler for Setup<'_> {
    fn handle_credentials<'s, 'f>(
        &'s mut self,
        credentials: Option<ReceivedCredentials>,
    ) -> Pin<Box<dyn Future<Output = ConnectorResult<()>> + 'f>>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            self.open(credentials).await.map_err(|why| {
                self.refused = Some(why);
                general_err!("refused")
            })
        })
    }
}

/// The Client Info user name as the login the authenticator reads: `USER#ASSET` and
/// `USER#ACCOUNT@ASSET` become `USER@ASSET` and `USER@ACCOUNT@ASSET` (RDP clients split a
/// name at `\`, some at `@`, never at `#`); a name without `#` is read as it is.
pub fn rdp_login_name(username: &str) -> String {
    match username.split_once('#') {
        Some((user, target)) => format!("{user}@{target}"),
        None => username.to_owned(),
    }
}

/// The asset's desktop protocol: RDP when it has an RDP endpoint, else VNC.
fn pick_protocol(asset: Option<&rampart_core::Asset>) -> Protocol {
    match asset {
        Some(asset)
            if asset.endpoint(Protocol::Rdp).is_none()
                && asset.endpoint(Protocol::Vnc).is_some() =>
        {
            Protocol::Vnc
        }
        _ => Protocol::Rdp,
    }
}

/// What the server announces: fast-path output, plain bitmaps at 32 bits, scancode and
/// Unicode input (fast-path too), no orders, no codecs, no surface commands.
fn capabilities(size: DesktopSize) -> Vec<CapabilitySet> {
    vec![
        CapabilitySet::General(caps::General {
            extra_flags: caps::GeneralExtraFlags::FASTPATH_OUTPUT_SUPPORTED,
            ..Default::default()
        }),
        CapabilitySet::Bitmap(caps::Bitmap {
            pref_bits_per_pix: 32,
            desktop_width: size.width,
            desktop_height: size.height,
            desktop_resize_flag: true,
            drawing_flags: caps::BitmapDrawingFlags::empty(),
        }),
        CapabilitySet::Order(caps::Order::new(
            caps::OrderFlags::empty(),
            caps::OrderSupportExFlags::empty(),
            0,
            0,
        )),
        CapabilitySet::Pointer(caps::Pointer {
            color_pointer_cache_size: 0,
            pointer_cache_size: 0,
        }),
        CapabilitySet::Input(caps::Input {
            input_flags: caps::InputFlags::SCANCODES
                | caps::InputFlags::MOUSEX
                | caps::InputFlags::FASTPATH_INPUT
                | caps::InputFlags::UNICODE
                | caps::InputFlags::FASTPATH_INPUT_2,
            keyboard_layout: 0,
            keyboard_type: None,
            keyboard_subtype: 0,
            keyboard_function_key: 12,
            keyboard_ime_filename: String::new(),
        }),
        CapabilitySet::VirtualChannel(caps::VirtualChannel {
            flags: caps::VirtualChannelFlags::NO_COMPRESSION,
            chunk_size: None,
        }),
        CapabilitySet::MultiFragmentUpdate(caps::MultifragmentUpdate {
            max_request_size: MAX_REQUEST_SIZE,
        }),
    ]
}

/// The client's colour depth (its Bitmap capability), one Rampart can send: 32, 24 or 16.
fn colour_depth(capabilities: &[CapabilitySet]) -> Result<u16, String> {
    let bpp = capabilities
        .iter()
        .find_map(|c| match c {
            CapabilitySet::Bitmap(b) => Some(b.pref_bits_per_pix),
            _ => None,
        })
        .unwrap_or(32);
    match bpp {
        32 | 24 | 16 => Ok(bpp),
        other => Err(format!(
            "the client asked for {other} bits a pixel; Rampart sends 32, 24 or 16"
        )),
    }
}

/// What the client sent, for the relay.
#[derive(Debug, PartialEq, Eq)]
enum ClientSaid {
    Input(Vec<Input>),
    /// A chunk of the clipboard channel (its channel PDU header, then data).
    Clipboard(Vec<u8>),
    /// A chunk of the DRDYNVC channel.
    Dynamic(Vec<u8>),
    /// Send the whole screen again (Refresh Rect).
    Refresh,
    /// The client ends the session.
    Leave,
    Nothing,
}

/// The client's keyboard and pointer state, turning its events into the session's input.
#[derive(Debug, Default)]
struct Keys {
    shift: bool,
    buttons: u8,
    x: u16,
    y: u16,
}

impl Keys {
    fn scancode(&mut self, down: bool, extended: bool, code: u8) -> Option<Input> {
        if code == 0x2a || code == 0x36 {
            self.shift = down;
        }
        let (name, keysym) = crate::rdp::key_by_scancode(extended, code, self.shift)?;
        Some(Input::Key {
            down,
            keysym,
            code: Some(name.to_owned()),
        })
    }

    fn unicode(down: bool, unit: u16) -> Option<Input> {
        let c = char::from_u32(u32::from(unit))?;
        let keysym = match u32::from(c) {
            v @ (0x20..=0x7e | 0xa0..=0xff) => v,
            v => 0x0100_0000 + v,
        };
        Some(Input::Key {
            down,
            keysym,
            code: None,
        })
    }

    /// A pointer event: a move, a button's press or release, or a wheel turn (a press and
    /// a release of RFB's wheel buttons, 8 up and 16 down).
    fn pointer(
        &mut self,
        flags: PointerFlags,
        x: u16,
        y: u16,
        (width, height): (u16, u16),
    ) -> Vec<Input> {
        self.x = x.min(width.saturating_sub(1));
        self.y = y.min(height.saturating_sub(1));
        let at = |buttons| Input::Pointer {
            x: self.x,
            y: self.y,
            buttons,
        };
        if flags.contains(PointerFlags::VERTICAL_WHEEL) {
            let bit = if flags.contains(PointerFlags::WHEEL_NEGATIVE) {
                16
            } else {
                8
            };
            return vec![at(self.buttons | bit), at(self.buttons)];
        }
        if flags.contains(PointerFlags::HORIZONTAL_WHEEL) {
            return Vec::new();
        }
        for (flag, bit) in [
            (PointerFlags::LEFT_BUTTON, 1u8),
            (PointerFlags::MIDDLE_BUTTON_OR_WHEEL, 2),
            (PointerFlags::RIGHT_BUTTON, 4),
        ] {
            if flags.contains(flag) {
                if flags.contains(PointerFlags::DOWN) {
                    self.buttons |= bit;
                } else {
                    self.buttons &= !bit;
                }
            }
        }
        vec![at(self.buttons)]
    }

    fn fast_path(&mut self, events: &[FastPathInputEvent], size: (u16, u16)) -> Vec<Input> {
        let mut inputs = Vec::new();
        for event in events {
            match *event {
                FastPathInputEvent::KeyboardEvent(flags, code) => inputs.extend(self.scancode(
                    !flags.contains(KeyboardFlags::RELEASE),
                    flags.contains(KeyboardFlags::EXTENDED),
                    code,
                )),
                FastPathInputEvent::UnicodeKeyboardEvent(flags, unit) => {
                    inputs.extend(Self::unicode(!flags.contains(KeyboardFlags::RELEASE), unit));
                }
                FastPathInputEvent::MouseEvent(m) => {
                    inputs.extend(self.pointer(m.flags, m.x_position, m.y_position, size));
                }
                FastPathInputEvent::MouseEventEx(_)
                | FastPathInputEvent::MouseEventRel(_)
                | FastPathInputEvent::QoeEvent(_)
                | FastPathInputEvent::SyncEvent(_) => {}
            }
        }
        inputs
    }

    fn slow_path(&mut self, events: InputEventPdu, size: (u16, u16)) -> Vec<Input> {
        use ironrdp_pdu::input::scan_code::KeyboardFlags as Flags;
        use ironrdp_pdu::input::unicode::KeyboardFlags as UnicodeFlags;
        let mut inputs = Vec::new();
        for event in events.0 {
            match event {
                InputEvent::ScanCode(key) => {
                    if let Ok(code) = u8::try_from(key.key_code) {
                        inputs.extend(self.scancode(
                            !key.flags.contains(Flags::RELEASE),
                            key.flags.contains(Flags::EXTENDED),
                            code,
                        ));
                    }
                }
                InputEvent::Unicode(key) => inputs.extend(Self::unicode(
                    !key.flags.contains(UnicodeFlags::RELEASE),
                    key.unicode_code,
                )),
                InputEvent::Mouse(m) => {
                    inputs.extend(self.pointer(m.flags, m.x_position, m.y_position, size));
                }
                InputEvent::Sync(_)
                | InputEvent::Unused(_)
                | InputEvent::MouseX(_)
                | InputEvent::MouseRel(_) => {}
            }
        }
        inputs
    }

    /// One PDU of the client in the active stage.
    fn pdu(
        &mut self,
        action: ironrdp_pdu::Action,
        frame: &[u8],
        channels: Channels,
        size: (u16, u16),
    ) -> Result<ClientSaid, String> {
        let malformed =
            |err: &dyn std::fmt::Display| format!("the client sent a malformed message: {err}");
        match action {
            ironrdp_pdu::Action::FastPath => {
                let input: FastPathInput = decode(frame).map_err(|e| malformed(&e))?;
                Ok(ClientSaid::Input(
                    self.fast_path(input.input_events(), size),
                ))
            }
            ironrdp_pdu::Action::X224 => {
                let message: X224<McsMessage<'_>> = decode(frame).map_err(|e| malformed(&e))?;
                match message.0 {
                    McsMessage::SendDataRequest(data) if data.channel_id == channels.io => {
                        let control: ShareControlHeader =
                            decode(data.user_data.as_ref()).map_err(|e| malformed(&e))?;
                        let ShareControlPdu::Data(header) = control.share_control_pdu else {
                            return Ok(ClientSaid::Nothing);
                        };
                        Ok(match header.share_data_pdu {
                            ShareDataPdu::Input(events) => {
                                ClientSaid::Input(self.slow_path(events, size))
                            }
                            ShareDataPdu::ShutdownRequest => ClientSaid::Leave,
                            ShareDataPdu::RefreshRectangle(_) => ClientSaid::Refresh,
                            _ => ClientSaid::Nothing,
                        })
                    }
                    McsMessage::SendDataRequest(data)
                        if Some(data.channel_id) == channels.clipboard =>
                    {
                        Ok(ClientSaid::Clipboard(data.user_data.to_vec()))
                    }
                    McsMessage::SendDataRequest(data)
                        if Some(data.channel_id) == channels.dynamic =>
                    {
                        Ok(ClientSaid::Dynamic(data.user_data.to_vec()))
                    }
                    McsMessage::DisconnectProviderUltimatum(_) => Ok(ClientSaid::Leave),
                    // Other channels (none other is offered) and other MCS messages: nothing
                    // to do.
                    _ => Ok(ClientSaid::Nothing),
                }
            }
        }
    }
}

/// The pixels of `rect` of the screen (`rgba`, `width` pixels a row) as an RDP bitmap:
/// bottom-up rows of `bpp` bits a pixel (BGR(X), or RGB565), each row padded to 4 bytes.
fn bitmap_rows(rgba: &[u8], width: u16, rect: Rect, bpp: u16) -> Vec<u8> {
    let bytes = usize::from(bpp / 8);
    let row = (usize::from(rect.w) * bytes).div_ceil(4) * 4;
    let mut out = Vec::with_capacity(row * usize::from(rect.h));
    for y in (rect.y..rect.y + rect.h).rev() {
        let start = out.len();
        for x in rect.x..rect.x + rect.w {
            let at = (usize::from(y) * usize::from(width) + usize::from(x)) * 4;
            let [r, g, b] = match rgba.get(at..at + 3) {
                Some(&[r, g, b]) => [r, g, b],
                _ => [0, 0, 0],
            };
            match bpp {
                32 => out.extend_from_slice(&[b, g, r, 0xff]),
                24 => out.extend_from_slice(&[b, g, r]),
                _ => {
                    let v =
                        (u16::from(r >> 3) << 11) | (u16::from(g >> 2) << 5) | u16::from(b >> 3);
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        out.resize(start + row, 0);
    }
    out
}

/// `rect` cut into tiles of at most [`TILE`].
fn tiles(rect: Rect) -> impl Iterator<Item = Rect> {
    let (tw, th) = TILE;
    let ys = (rect.y..rect.y.saturating_add(rect.h)).step_by(usize::from(th));
    ys.flat_map(move |y| {
        (rect.x..rect.x.saturating_add(rect.w))
            .step_by(usize::from(tw))
            .map(move |x| Rect {
                x,
                y,
                w: tw.min(rect.x.saturating_add(rect.w) - x),
                h: th.min(rect.y.saturating_add(rect.h) - y),
            })
    })
}

/// The pixels of `rect` of the screen (`rgba`, `width` pixels a row) compressed with RDP 6.0
/// bitmap compression (planar, each colour plane run-length encoded: IronRDP's
/// `BitmapStreamEncoder`), bottom-up as every RDP bitmap; `None` where it does not apply (a
/// tile whose width is not a multiple of 4, as IronRDP's own server does not either) or does
/// not pay.
fn planar(rgba: &[u8], width: u16, rect: Rect) -> Option<Vec<u8>> {
    if !rect.w.is_multiple_of(4) {
        return None;
    }
    let pixel = |x: u16, y: u16| {
        let at = (usize::from(y) * usize::from(width) + usize::from(x)) * 4;
        rgba.get(at..at + 4).unwrap_or(&[0, 0, 0, 0xff])
    };
    let pixels = (rect.y..rect.y + rect.h)
        .rev()
        .flat_map(move |y| (rect.x..rect.x + rect.w).map(move |x| pixel(x, y)));
    let raw = usize::from(rect.w) * usize::from(rect.h) * 4;
    // The header, three planes each at most their raw size plus a few run bytes a row.
    let mut out = vec![0; raw + 4 * usize::from(rect.h) + 16];
    let mut encoder = BitmapStreamEncoder::new(usize::from(rect.w), usize::from(rect.h));
    let len = encoder
        .encode_pixels_stream::<_, RgbAChannels>(pixels, &mut out, true)
        .ok()?;
    out.truncate(len);
    (len < raw).then_some(out)
}

/// The changed rectangles of the screen as fast-path bitmap updates, one tile each: at 32 bits
/// a pixel compressed (RDP 6.0 planar) where that is smaller, else uncompressed.
fn bitmap_updates(mirror: &Mirror, rects: &[Rect], bpp: u16) -> Result<Vec<u8>, String> {
    let (width, height) = mirror.fb.size();
    let mut out = Vec::new();
    for rect in rects.iter().filter_map(|r| r.clip(width, height)) {
        for tile in tiles(rect) {
            let compressed = if bpp == 32 {
                planar(mirror.fb.pixels(), width, tile)
            } else {
                None
            };
            let (rows, compression_flags, compressed_data_header) = match compressed {
                Some(data) => {
                    let header = CompressedDataHeader {
                        main_body_size: u16::try_from(data.len()).map_err(|e| e.to_string())?,
                        scan_width: tile.w,
                        uncompressed_size: u16::try_from(
                            usize::from(tile.w) * usize::from(tile.h) * 4,
                        )
                        .map_err(|e| e.to_string())?,
                    };
                    (data, Compression::BITMAP_COMPRESSION, Some(header))
                }
                None => (
                    bitmap_rows(mirror.fb.pixels(), width, tile, bpp),
                    Compression::empty(),
                    None,
                ),
            };
            let data = BitmapUpdateData {
                rectangles: vec![BitmapData {
                    rectangle: InclusiveRectangle {
                        left: tile.x,
                        top: tile.y,
                        right: tile.x + tile.w - 1,
                        bottom: tile.y + tile.h - 1,
                    },
                    width: tile.w,
                    height: tile.h,
                    bits_per_pixel: bpp,
                    compression_flags,
                    compressed_data_header,
                    bitmap_data: &rows,
                }],
            };
            let data = encode_vec(&data).map_err(|e| e.to_string())?;
            let update = FastPathUpdatePdu {
                fragmentation: Fragmentation::Single,
                update_code: UpdateCode::Bitmap,
                compression_flags: None,
                compression_type: None,
                data: &data,
            };
            let header = FastPathHeader::new(EncryptionFlags::empty(), ironrdp_core::size(&update));
            out.extend(encode_vec(&header).map_err(|e| e.to_string())?);
            out.extend(encode_vec(&update).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

/// A Deactivate All PDU on the I/O channel (the start of a Deactivation-Reactivation).
fn deactivate_all(io_channel: u16, user_channel: u16) -> Result<Vec<u8>, String> {
    let pdu = ShareControlHeader {
        share_id: 0,
        pdu_source: io_channel,
        share_control_pdu: ShareControlPdu::ServerDeactivateAll(ServerDeactivateAll),
    };
    let user_data = encode_vec(&pdu).map_err(|e| e.to_string())?;
    encode_vec(&X224(ironrdp_pdu::mcs::SendDataIndication {
        initiator_id: user_channel,
        channel_id: io_channel,
        user_data: user_data.into(),
    }))
    .map_err(|e| e.to_string())
}

/// Gives the client the screen's new size: Deactivate All, then the capability exchange and
/// finalization again.
async fn reactivate(
    framed: &mut Framed,
    acceptor: Acceptor,
    result: AcceptorResult,
    (width, height): (u16, u16),
) -> Result<(Acceptor, AcceptorResult), String> {
    framed
        .write_all(&deactivate_all(
            result.io_channel_id,
            result.user_channel_id,
        )?)
        .await
        .map_err(|_| "the client closed the connection".to_owned())?;
    let mut acceptor = Acceptor::new_deactivation_reactivation(
        acceptor,
        result.static_channels,
        DesktopSize { width, height },
    )
    .map_err(|e| e.to_string())?;
    let mut buf = WriteBuf::new();
    loop {
        if let Some(result) = acceptor.get_result() {
            return Ok((acceptor, result));
        }
        ironrdp_tokio::single_sequence_step(framed, &mut acceptor, &mut buf)
            .await
            .map_err(|e| format!("the reactivation failed: {e}"))?;
    }
}

/// Ends the session with `why` (the client broke its protocol), as the native VNC front does.
async fn leave(desktop: &mut Desktop, why: String) -> String {
    crate::native_vnc::leave(desktop, why).await
}

/// The active stage: relays between the client and the session until either ends; returns
/// the connection and why it ended.
async fn relay(accepted: Accepted) -> (Framed, String) {
    let Accepted {
        mut framed,
        mut acceptor,
        mut result,
        mut desktop,
        layouts,
    } = accepted;
    let mut mirror = Mirror::new(desktop.size);
    let mut keys = Keys::default();
    let mut clipboard_guard = ChannelGuard::default();
    let mut dynamic_guard = ChannelGuard::default();
    if let Err(why) = start_channels(&mut framed, &mut result).await {
        return (framed, why);
    }
    // The client has FIRST_SIZE: when the screen has another, it hears of it first.
    mirror.resized = desktop.size != FIRST_SIZE;
    let why = loop {
        let bpp = match colour_depth(&result.capabilities) {
            Ok(bpp) => bpp,
            Err(why) => break leave(&mut desktop, why).await,
        };
        if mirror.resized {
            mirror.resized = false;
            match reactivate(&mut framed, acceptor, result, mirror.fb.size()).await {
                Ok((next, next_result)) => {
                    acceptor = next;
                    result = next_result;
                }
                Err(why) => return (framed, leave(&mut desktop, why).await),
            }
            let whole = mirror.whole();
            mirror.damage.clear();
            mirror.damage.add(whole);
            continue;
        }
        // Input the client sent during the finalization.
        for frame in std::mem::take(&mut result.input_events) {
            let Ok(Some(info)) = ironrdp_pdu::find_size(&frame) else {
                continue;
            };
            if let Ok(ClientSaid::Input(inputs)) =
                keys.pdu(info.action, &frame, channels(&result), mirror.fb.size())
            {
                for input in inputs {
                    let _ = desktop.input.send(input).await;
                }
            }
        }
        if !mirror.damage.is_empty() {
            let rects = mirror.damage.take();
            let sent = match bitmap_updates(&mirror, &rects, bpp) {
                Ok(updates) => framed.write_all(&updates).await.is_ok(),
                Err(why) => break leave(&mut desktop, why).await,
            };
            if !sent {
                break "the client closed the connection".to_owned();
            }
        }
        tokio::select! {
            read = framed.read_pdu() => {
                let Ok((action, frame)) = read else {
                    break "the client closed the connection".to_owned();
                };
                match keys.pdu(action, &frame, channels(&result), mirror.fb.size()) {
                    Ok(ClientSaid::Input(inputs)) => {
                        for input in inputs {
                            if desktop.input.send(input).await.is_err() {
                                return (framed, "the session ended".to_owned());
                            }
                        }
                    }
                    Ok(ClientSaid::Clipboard(chunk)) => {
                        if let Err(why) =
                            client_clipboard(&mut framed, &mut result, &mut clipboard_guard, &chunk, &mut desktop).await
                        {
                            break why;
                        }
                    }
                    Ok(ClientSaid::Dynamic(chunk)) => {
                        if let Err(why) = client_dynamic(&mut framed, &mut result, &mut dynamic_guard, &chunk, &mut desktop).await {
                            break why;
                        }
                        if let Some((width, height)) = layouts.take()
                            && desktop.input.send(Input::resize(width, height)).await.is_err()
                        {
                            return (framed, "the session ended".to_owned());
                        }
                    }
                    Ok(ClientSaid::Refresh) => {
                        let whole = mirror.whole();
                        mirror.damage.add(whole);
                    }
                    Ok(ClientSaid::Leave) => break "the client closed the connection".to_owned(),
                    Ok(ClientSaid::Nothing) => {}
                    Err(why) => break leave(&mut desktop, why).await,
                }
            }
            event = desktop.events.recv() => match event {
                None => break "the session ended".to_owned(),
                Some(DesktopEvent::Frame(message)) => {
                    if let Err(why) = mirror.apply(&message) {
                        break leave(&mut desktop, why).await;
                    }
                }
                // The session passes the target's text only when the grant allows it.
                Some(DesktopEvent::Clipboard(text)) => {
                    if let Some(cliprdr) = cliprdr(&mut result) {
                        rdp_clipboard::offer(cliprdr, text);
                    }
                    if let Err(why) = clipboard_todos(&mut framed, &mut result, &mut desktop).await {
                        break why;
                    }
                }
                Some(DesktopEvent::Notice(line)) => {
                    tracing::info!(session = %desktop.id, notice = %line, "rdp: a notice for the client");
                }
                Some(DesktopEvent::End(reason)) => break reason,
            },
        }
    };
    (framed, why)
}

/// The channels a client's PDUs come on: the I/O channel, and the clipboard and DRDYNVC
/// channels when the client joined them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Channels {
    io: u16,
    clipboard: Option<u16>,
    dynamic: Option<u16>,
}

fn channels(result: &AcceptorResult) -> Channels {
    Channels {
        io: result.io_channel_id,
        clipboard: result
            .static_channels
            .get_channel_id_by_type::<CliprdrServer>(),
        dynamic: result
            .static_channels
            .get_channel_id_by_type::<DrdynvcServer>(),
    }
}

/// The clipboard channel's processor, when the client joined it.
fn cliprdr(result: &mut AcceptorResult) -> Option<&mut CliprdrServer> {
    result
        .static_channels
        .get_by_type_mut::<CliprdrServer>()
        .and_then(|channel| channel.channel_processor_downcast_mut::<CliprdrServer>())
}

/// Sends `messages` on the static channel `channel` (nothing when the client did not join it).
async fn send_on(
    framed: &mut Framed,
    result: &mut AcceptorResult,
    channel: Option<u16>,
    messages: Vec<ironrdp_svc::SvcMessage>,
) -> Result<(), String> {
    let bytes = channel_bytes(result, channel, messages)?;
    if bytes.is_empty() {
        return Ok(());
    }
    framed
        .write_all(&bytes)
        .await
        .map_err(|_| "the client closed the connection".to_owned())
}

/// `messages` encoded for the static channel `channel` (nothing without it).
fn channel_bytes(
    result: &AcceptorResult,
    channel: Option<u16>,
    messages: Vec<ironrdp_svc::SvcMessage>,
) -> Result<Vec<u8>, String> {
    match channel {
        Some(channel) if !messages.is_empty() => {
            ironrdp_svc::server_encode_svc_messages(messages, channel, result.user_channel_id)
                .map_err(|e| format!("cannot encode a virtual channel message: {e}"))
        }
        _ => Ok(Vec::new()),
    }
}

/// Starts the server's side of each static channel the client joined (the clipboard's
/// capabilities and Monitor Ready, DRDYNVC's capabilities).
async fn start_channels(framed: &mut Framed, result: &mut AcceptorResult) -> Result<(), String> {
    let mut started = Vec::new();
    for (_, channel, id) in result.static_channels.iter_mut() {
        let Some(id) = id else {
            continue;
        };
        let messages = channel
            .start()
            .map_err(|e| format!("cannot start a virtual channel: {e}"))?;
        started.push((id, messages));
    }
    for (id, messages) in started {
        send_on(framed, result, Some(id), messages).await?;
    }
    Ok(())
}

/// One chunk of the client's DRDYNVC channel, bounded by the guard before IronRDP's
/// reassembly; what the client asked for on Display Control is left in the relay's
/// `RequestedLayout`.
async fn client_dynamic(
    framed: &mut Framed,
    result: &mut AcceptorResult,
    guard: &mut ChannelGuard,
    chunk: &[u8],
    desktop: &mut Desktop,
) -> Result<(), String> {
    match guard.check_dynamic(chunk) {
        Chunk::Pass => {}
        Chunk::Skip | Chunk::SkipData { .. } => return Ok(()),
        Chunk::Malformed => {
            let why = "the client sent a malformed dynamic channel message".to_owned();
            return Err(leave(desktop, why).await);
        }
    }
    process_on::<DrdynvcServer>(framed, result, chunk, desktop, "dynamic channel").await
}

/// One (bounded) chunk of the client's static channel `T`, handed to IronRDP's processor, and
/// its answer sent back on the channel; a chunk it cannot decode ends the session (`what` names
/// the channel in the reason).
async fn process_on<T: ironrdp_svc::SvcProcessor + 'static>(
    framed: &mut Framed,
    result: &mut AcceptorResult,
    chunk: &[u8],
    desktop: &mut Desktop,
    what: &str,
) -> Result<(), String> {
    let Some(channel) = result.static_channels.get_by_type_mut::<T>() else {
        return Ok(());
    };
    let answer = match channel.process(chunk) {
        Ok(answer) => answer,
        Err(err) => {
            let why = format!("the client sent a malformed {what} message: {err}");
            return Err(leave(desktop, why).await);
        }
    };
    let id = result.static_channels.get_channel_id_by_type::<T>();
    send_on(framed, result, id, answer).await
}

/// One chunk of the client's clipboard channel: bounded by the guard, then IronRDP's, then
/// whatever the backend asks for next.
async fn client_clipboard(
    framed: &mut Framed,
    result: &mut AcceptorResult,
    guard: &mut ChannelGuard,
    chunk: &[u8],
    desktop: &mut Desktop,
) -> Result<(), String> {
    match guard.check(chunk) {
        Chunk::Pass => {}
        Chunk::Skip => return Ok(()),
        Chunk::SkipData { bytes } => {
            tracing::info!(
                session = %desktop.id, bytes,
                "rdp: the client's clipboard text is too large; not passed on"
            );
            if let Some(cliprdr) = cliprdr(result) {
                rdp_clipboard::skipped_answer(cliprdr);
            }
            return clipboard_todos(framed, result, desktop).await;
        }
        Chunk::Malformed => {
            return Err(leave(
                desktop,
                "the client sent a malformed clipboard message".into(),
            )
            .await);
        }
    }
    process_on::<CliprdrServer>(framed, result, chunk, desktop, "clipboard").await?;
    clipboard_todos(framed, result, desktop).await
}

/// Carries out what the clipboard backend asked for: its messages to the client, the
/// client's text to the session.
async fn clipboard_todos(
    framed: &mut Framed,
    result: &mut AcceptorResult,
    desktop: &mut Desktop,
) -> Result<(), String> {
    // Each message leaves at most a few; whatever is left waits for the next turn.
    for _ in 0..16 {
        let Some(step) = cliprdr(result).and_then(rdp_clipboard::next_step) else {
            return Ok(());
        };
        match step {
            Step::Send(messages) => {
                let clipboard = channels(result).clipboard;
                send_on(framed, result, clipboard, messages).await?;
            }
            Step::Deliver(ServerEvent::CutText {
                text: Some(text), ..
            }) => {
                if desktop.input.send(Input::Clipboard(text)).await.is_err() {
                    return Err("the session ended".to_owned());
                }
            }
            Step::Deliver(_) => {
                tracing::info!(
                    session = %desktop.id,
                    "rdp: the client's clipboard text is too large; not passed on"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_pdu::input::mouse::MousePdu;

    #[test]
    fn the_login_name_takes_hash_for_the_first_at() {
        assert_eq!(rdp_login_name("alice#desk"), "alice@desk");
        assert_eq!(rdp_login_name("alice#root@desk"), "alice@root@desk");
        assert_eq!(rdp_login_name("alice@desk"), "alice@desk");
        // A second `#` stays, and the login's parser refuses it.
        assert_eq!(rdp_login_name("alice#a#desk"), "alice@a#desk");
        assert!(
            rampart_session::database::DbLogin::parse(&rdp_login_name("alice#a#desk")).is_err()
        );
        assert!(rampart_session::database::DbLogin::parse(&rdp_login_name("alice")).is_err());
    }

    #[test]
    fn tiles_at_32_bits_compress_planar_and_decode_to_the_screen_s_pixels_bottom_up() {
        use ironrdp_graphics::rdp6::BitmapStreamDecoder;
        // A 12x4 screen: a flat colour (which compresses) with a few pixels of their own.
        let (w, h) = (12u16, 4u16);
        let mut rgba = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let odd = x == 5 && y % 2 == 1;
                rgba.extend(if odd {
                    [x as u8, 200, y as u8, 255]
                } else {
                    [18, 171, 52, 255]
                });
            }
        }
        let tile = Rect {
            x: 4,
            y: 0,
            w: 8,
            h: 4,
        };
        let data = planar(&rgba, w, tile).expect("a flat tile compresses");
        assert!(data.len() < 8 * 4 * 4, "{} bytes", data.len());
        let mut decoded = Vec::new();
        BitmapStreamDecoder::default()
            .decode_bitmap_stream_to_rgb24(&data, &mut decoded, 8, 4)
            .unwrap();
        let want: Vec<u8> = (0..h)
            .rev()
            .flat_map(|y| (4..12).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let at = (usize::from(y) * usize::from(w) + x) * 4;
                rgba[at..at + 3].to_vec()
            })
            .collect();
        assert_eq!(decoded, want);
        // A width that is not a multiple of 4 goes uncompressed.
        assert_eq!(
            planar(
                &rgba,
                w,
                Rect {
                    x: 0,
                    y: 0,
                    w: 6,
                    h: 4
                }
            ),
            None
        );
    }

    #[test]
    fn bitmaps_are_bottom_up_bgr_and_rows_are_padded() {
        // A 2x2 screen: red, green / blue, white.
        let rgba = [
            255, 0, 0, 255, 0, 255, 0, 255, //
            0, 0, 255, 255, 255, 255, 255, 255,
        ];
        let whole = Rect {
            x: 0,
            y: 0,
            w: 2,
            h: 2,
        };
        assert_eq!(
            bitmap_rows(&rgba, 2, whole, 32),
            [
                255, 0, 0, 255, 255, 255, 255, 255, // the bottom row first
                0, 0, 255, 255, 0, 255, 0, 255,
            ]
        );
        // 24 bits: 6 bytes a row, padded to 8.
        assert_eq!(
            bitmap_rows(&rgba, 2, whole, 24),
            [255, 0, 0, 255, 255, 255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 0]
        );
        // 16 bits (RGB565, little-endian), one pixel: 2 bytes padded to 4.
        let one = Rect {
            x: 1,
            y: 0,
            w: 1,
            h: 1,
        };
        assert_eq!(bitmap_rows(&rgba, 2, one, 16), [0xe0, 0x07, 0, 0]);
    }

    #[test]
    fn tiles_cover_the_rectangle_exactly() {
        let rect = Rect {
            x: 10,
            y: 5,
            w: 150,
            h: 70,
        };
        let tiles: Vec<Rect> = tiles(rect).collect();
        assert_eq!(tiles.len(), 3 * 3);
        let area: u32 = tiles.iter().map(|t| u32::from(t.w) * u32::from(t.h)).sum();
        assert_eq!(area, 150 * 70);
        assert!(
            tiles
                .iter()
                .all(|t| t.w <= TILE.0 && t.h <= TILE.1 && rect.contains(*t))
        );
    }

    #[test]
    fn updates_are_fast_path_bitmaps_the_client_decodes() {
        let mut mirror = Mirror::new((100, 40));
        mirror
            .apply(&crate::screen::pixels_message(
                0,
                0,
                100,
                40,
                &[7; 100 * 40 * 4],
            ))
            .unwrap();
        let rects = mirror.damage.take();
        let out = bitmap_updates(&mirror, &rects, 32).unwrap();
        let mut cursor = ironrdp_core::ReadCursor::new(&out);
        let mut pixels = 0;
        while !cursor.is_empty() {
            let header: FastPathHeader = ironrdp_core::decode_cursor(&mut cursor).unwrap();
            assert!(header.data_length < 16 * 1024);
            let update: FastPathUpdatePdu<'_> = ironrdp_core::decode_cursor(&mut cursor).unwrap();
            assert_eq!(update.update_code, UpdateCode::Bitmap);
            assert_eq!(update.fragmentation, Fragmentation::Single);
            let bitmap: BitmapUpdateData<'_> = decode(update.data).unwrap();
            for r in bitmap.rectangles {
                assert_eq!(r.bits_per_pixel, 32);
                assert_eq!(r.rectangle.right - r.rectangle.left + 1, r.width);
                let (w, h) = (usize::from(r.width), usize::from(r.height));
                // Flat tiles of widths that are multiples of 4: compressed, and they decode to
                // the screen's colour.
                assert_eq!(r.compression_flags, Compression::BITMAP_COMPRESSION);
                assert!(r.bitmap_data.len() < w * h * 4);
                let mut decoded = Vec::new();
                ironrdp_graphics::rdp6::BitmapStreamDecoder::default()
                    .decode_bitmap_stream_to_rgb24(r.bitmap_data, &mut decoded, w, h)
                    .unwrap();
                assert_eq!(decoded, vec![7; w * h * 3]);
                pixels += w * h;
            }
        }
        assert_eq!(pixels, 100 * 40);

        // At 24 bits: uncompressed, BGR rows padded to 4 bytes.
        let out = bitmap_updates(&mirror, &rects, 24).unwrap();
        let mut cursor = ironrdp_core::ReadCursor::new(&out);
        while !cursor.is_empty() {
            let _: FastPathHeader = ironrdp_core::decode_cursor(&mut cursor).unwrap();
            let update: FastPathUpdatePdu<'_> = ironrdp_core::decode_cursor(&mut cursor).unwrap();
            let bitmap: BitmapUpdateData<'_> = decode(update.data).unwrap();
            for r in bitmap.rectangles {
                assert_eq!(r.compression_flags, Compression::empty());
                let row = (usize::from(r.width) * 3).div_ceil(4) * 4;
                assert_eq!(r.bitmap_data.len(), row * usize::from(r.height));
                assert_eq!(&r.bitmap_data[..3], &[7, 7, 7]);
            }
        }
    }

    #[test]
    fn keys_carry_their_code_and_their_us_keysym_with_shift() {
        let mut keys = Keys::default();
        let fast = |flags, code| FastPathInputEvent::KeyboardEvent(flags, code);
        let inputs = keys.fast_path(
            &[
                fast(KeyboardFlags::empty(), 0x1e),
                fast(KeyboardFlags::RELEASE, 0x1e),
                fast(KeyboardFlags::empty(), 0x2a),
                fast(KeyboardFlags::empty(), 0x1e),
                fast(KeyboardFlags::RELEASE, 0x2a),
                fast(KeyboardFlags::EXTENDED, 0x48),
                // No key Rampart knows: nothing.
                fast(KeyboardFlags::empty(), 0x7f),
            ],
            (800, 600),
        );
        let key = |down, keysym, code: &str| Input::Key {
            down,
            keysym,
            code: Some(code.to_owned()),
        };
        assert_eq!(
            inputs,
            [
                key(true, 0x61, "KeyA"),
                key(false, 0x61, "KeyA"),
                key(true, 0xffe1, "ShiftLeft"),
                key(true, 0x41, "KeyA"),
                key(false, 0xffe1, "ShiftLeft"),
                key(true, 0xff52, "ArrowUp"),
            ]
        );
        assert_eq!(
            keys.fast_path(
                &[FastPathInputEvent::UnicodeKeyboardEvent(
                    KeyboardFlags::empty(),
                    0x20ac
                )],
                (800, 600)
            ),
            [Input::Key {
                down: true,
                keysym: 0x0100_20ac,
                code: None
            }]
        );
    }

    #[test]
    fn the_pointer_keeps_its_buttons_and_the_wheel_clicks() {
        let mut keys = Keys::default();
        let mouse = |flags, x, y| {
            FastPathInputEvent::MouseEvent(MousePdu {
                flags,
                number_of_wheel_rotation_units: 0,
                x_position: x,
                y_position: y,
            })
        };
        let at = |x, y, buttons| Input::Pointer { x, y, buttons };
        let inputs = keys.fast_path(
            &[
                mouse(PointerFlags::MOVE, 10, 20),
                mouse(PointerFlags::LEFT_BUTTON | PointerFlags::DOWN, 10, 20),
                mouse(PointerFlags::RIGHT_BUTTON | PointerFlags::DOWN, 11, 20),
                mouse(PointerFlags::LEFT_BUTTON, 12, 20),
                mouse(
                    PointerFlags::VERTICAL_WHEEL | PointerFlags::WHEEL_NEGATIVE,
                    0,
                    0,
                ),
                // Outside the screen: its edge.
                mouse(PointerFlags::MOVE, 5000, 5000),
            ],
            (800, 600),
        );
        assert_eq!(
            inputs,
            [
                at(10, 20, 0),
                at(10, 20, 1),
                at(11, 20, 5),
                at(12, 20, 4),
                at(0, 0, 4 | 16),
                at(0, 0, 4),
                at(799, 599, 4),
            ]
        );
    }

    #[test]
    fn what_the_client_breaks_is_an_error_with_the_reason_never_a_panic() {
        let mut keys = Keys::default();
        let cases: [(ironrdp_pdu::Action, &[u8]); 4] = [
            (ironrdp_pdu::Action::FastPath, &[0x04]),
            (
                ironrdp_pdu::Action::FastPath,
                &[0x04, 0x05, 0xff, 0xff, 0xff],
            ),
            (
                ironrdp_pdu::Action::X224,
                &[3, 0, 0, 12, 2, 0xf0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            (ironrdp_pdu::Action::X224, &[3, 0, 0, 4]),
        ];
        for (action, frame) in cases {
            let said = keys.pdu(action, frame, only_io(1003), (800, 600));
            assert!(
                matches!(&said, Err(why) if why.starts_with("the client sent a malformed message")),
                "{frame:?}: {said:?}"
            );
        }
        // A shutdown request on the I/O channel ends the session.
        let shutdown = ShareControlHeader {
            share_id: 0,
            pdu_source: 1007,
            share_control_pdu: ShareControlPdu::Data(ironrdp_pdu::rdp::headers::ShareDataHeader {
                share_data_pdu: ShareDataPdu::ShutdownRequest,
                stream_priority: ironrdp_pdu::rdp::headers::StreamPriority::Medium,
                compression_flags: ironrdp_pdu::rdp::headers::CompressionFlags::empty(),
                compression_type: ironrdp_pdu::rdp::client_info::CompressionType::K8,
            }),
        };
        let frame = encode_vec(&X224(ironrdp_pdu::mcs::SendDataRequest {
            initiator_id: 1007,
            channel_id: 1003,
            user_data: encode_vec(&shutdown).unwrap().into(),
        }))
        .unwrap();
        assert_eq!(
            keys.pdu(
                ironrdp_pdu::Action::X224,
                &frame,
                Channels {
                    clipboard: Some(1005),
                    ..only_io(1003)
                },
                (800, 600)
            ),
            Ok(ClientSaid::Leave)
        );
        // On another channel: nothing; on the clipboard's, its bytes for the clipboard.
        assert_eq!(
            keys.pdu(ironrdp_pdu::Action::X224, &frame, only_io(1004), (800, 600)),
            Ok(ClientSaid::Nothing)
        );
        assert_eq!(
            keys.pdu(
                ironrdp_pdu::Action::X224,
                &frame,
                Channels {
                    clipboard: Some(1003),
                    ..only_io(1004)
                },
                (800, 600)
            ),
            Ok(ClientSaid::Clipboard(encode_vec(&shutdown).unwrap()))
        );
        assert_eq!(
            keys.pdu(
                ironrdp_pdu::Action::X224,
                &frame,
                Channels {
                    dynamic: Some(1003),
                    ..only_io(1004)
                },
                (800, 600)
            ),
            Ok(ClientSaid::Dynamic(encode_vec(&shutdown).unwrap()))
        );
    }

    fn only_io(io: u16) -> Channels {
        Channels {
            io,
            clipboard: None,
            dynamic: None,
        }
    }

    #[test]
    fn deactivate_all_goes_on_the_io_channel_from_the_server() {
        let frame = deactivate_all(1003, 1002).unwrap();
        let message: X224<McsMessage<'_>> = decode(&frame).unwrap();
        let McsMessage::SendDataIndication(data) = message.0 else {
            panic!("not a Send Data Indication: {:?}", message.0);
        };
        assert_eq!((data.initiator_id, data.channel_id), (1002, 1003));
        let control: ShareControlHeader = decode(data.user_data.as_ref()).unwrap();
        assert_eq!(control.pdu_source, 1003);
        assert!(matches!(
            control.share_control_pdu,
            ShareControlPdu::ServerDeactivateAll(_)
        ));
    }

    #[test]
    fn a_client_at_another_colour_depth_is_told_why() {
        let bitmap = |bpp| {
            vec![CapabilitySet::Bitmap(caps::Bitmap {
                pref_bits_per_pix: bpp,
                desktop_width: 800,
                desktop_height: 600,
                desktop_resize_flag: true,
                drawing_flags: caps::BitmapDrawingFlags::empty(),
            })]
        };
        assert_eq!(colour_depth(&bitmap(16)), Ok(16));
        assert_eq!(colour_depth(&bitmap(32)), Ok(32));
        assert!(
            colour_depth(&bitmap(8))
                .unwrap_err()
                .contains("8 bits a pixel")
        );
    }
}
