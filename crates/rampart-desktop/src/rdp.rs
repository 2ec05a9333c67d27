//! RDP towards the target: Rampart is the client, with IronRDP's sans-I/O crates. X.224
//! negotiation, then TLS with the endpoint's pinned certificate (`rampart_session::target_tls`,
//! the same check as every TLS target), then the login with the vaulted password: NLA
//! (CredSSP, NTLM) by default, or, for an endpoint set to TLS without NLA (`asset endpoint set
//! ASSET rdp --rdp-security tls`, for xrdp 0.9, which has no NLA), the Client Info PDU's
//! automatic logon inside that TLS. Then the active stage: the server's fast-path and
//! slow-path graphics are decoded into an RGBA image here, and each changed rectangle becomes
//! a [`ServerEvent::Raw`] of the desktop stream, so the browser, the recording, replay, watch
//! and kill are the VNC desktop's. The clipboard is the CLIPRDR channel with
//! `rdp_clipboard`'s text backend: the browser's text (already allowed by the relay) is
//! offered to the server, and the server's text becomes a [`ServerEvent::CutText`] for the
//! relay to pass or refuse, as a VNC server's. The desktop follows the browser's view with
//! the Display Control dynamic channel (MS-RDPEDISP) when the server opens it: the relay's
//! (bounded, paced) size becomes a monitor layout, and the server's Deactivation-Reactivation
//! sequence that follows is driven here, the session going on at the new size (a
//! [`ServerEvent::Resize`], as a VNC server's).
//!
//! INVARIANTS:
//! - TLS always, and exactly the endpoint's one login: an NLA endpoint offers only NLA
//!   (HYBRID/HYBRID_EX), so the password only ever goes inside CredSSP, bound to the pinned
//!   certificate's public key; a TLS endpoint offers only TLS (SSL), so the password goes in
//!   the Client Info PDU, inside the pinned TLS. Standard RDP security (no TLS) is never
//!   offered, and a server that selects anything but what was offered is refused before the
//!   TLS handshake, the refusal naming what the server selected or required and what the
//!   endpoint allows.
//! - An endpoint without a pinned certificate is refused after the TLS handshake and before
//!   CredSSP or the Client Info PDU: nothing of the credential was sent, and the refusal names
//!   the fingerprint the server presented, for an administrator to check and pin (`asset
//!   endpoint set`).
//! - Nothing the server sends can panic the node or grow memory without bound: PDUs are
//!   length-framed (at most 64 KiB each), the desktop is at most `rfb::MAX_PIXELS`, a PDU
//!   IronRDP cannot decode ends the session with its reason, and the clipboard channel's chunk
//!   sequences are bounded before IronRDP reassembles them (`rdp_clipboard::ChannelGuard`),
//!   and so are the dynamic channels' (`dynamic_chunk`: the same guard, and a DVC message
//!   declaring more than `rdp_clipboard::MAX_DVC_MESSAGE` ends the session); a reactivation is bounded by
//!   [`CONNECT_TIMEOUT`] and its new size by `rfb::MAX_PIXELS`.
//! - One task owns the active stage (its state is not shareable): it takes the server's PDUs
//!   from a reader task and the browser's input from the relay, in one `select!`.
//! - The connection sequence runs on a blocking-pool thread (`Handle::block_on`) under its own
//!   timeout: IronRDP's async framing has futures the compiler cannot prove `Send` for every
//!   lifetime, so they are not moved between the runtime's threads. The active stage frames
//!   PDUs itself (`ironrdp_pdu::find_size`) and runs as an ordinary task.

use crate::rdp_clipboard::{self, ChannelGuard, Chunk, Step};
use crate::rfb;
use crate::screen::{ServerEvent, TargetScreen};
use crate::session::{Input, TargetEnded};
use bytes::BytesMut;
use ironrdp_cliprdr::CliprdrClient;
use ironrdp_connector::connection_activation::{
    ConnectionActivationFactory, ConnectionActivationState,
};
use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::{
    ClientConnector, ConnectionOutcome, ConnectionResult, ConnectorResult, Credentials,
    DesktopSize, Sequence, ServerName,
};
use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_displaycontrol::pdu::MonitorLayoutEntry;
use ironrdp_dvc::DrdynvcClient;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_input::{Database, MouseButton, MousePosition, Operation, Scancode, WheelRotations};
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::TokioFramed;
use rampart_core::audit::Actor;
use rampart_core::target::RdpSecurity;
use rampart_core::{Asset, ExposeSecret, Protocol, SecretString};
use rampart_session::dial::TargetStream;
use rampart_session::target_tls;
use rampart_store::Store;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

/// Messages for the clipboard channel, as the active stage sends them.
type ClipboardMessages = ironrdp_cliprdr::CliprdrSvcMessages<ironrdp_cliprdr::Client>;

/// The desktop size Rampart asks for (the server may answer with another, within
/// `rfb::MAX_PIXELS`).
pub const DESKTOP_WIDTH: u16 = 1280;
pub const DESKTOP_HEIGHT: u16 = 800;

/// A stream that is `Sync` because only `&mut` reaches it: IronRDP's framing wants
/// `Send + Sync` streams, the dialer's are `Send`.
#[derive(Debug)]
pub struct SyncStream<S>(std::sync::Mutex<S>);

impl<S> SyncStream<S> {
    pub fn new(stream: S) -> Self {
        Self(std::sync::Mutex::new(stream))
    }

    fn inner(self: Pin<&mut Self>) -> io::Result<Pin<&mut S>>
    where
        S: Unpin,
    {
        match self.get_mut().0.get_mut() {
            Ok(inner) => Ok(Pin::new(inner)),
            Err(_) => Err(io::Error::other("the stream's lock is poisoned")),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.inner() {
            Ok(inner) => inner.poll_read(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.inner() {
            Ok(inner) => inner.poll_write(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.inner() {
            Ok(inner) => inner.poll_flush(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.inner() {
            Ok(inner) => inner.poll_shutdown(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

type RdpStream = tokio_rustls::client::TlsStream<SyncStream<TargetStream>>;

/// How long the connection sequence may take (X.224, TLS, CredSSP, capabilities).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A logged-in RDP connection, ready for its active stage.
pub struct Connected {
    stream: RdpStream,
    /// Bytes already read past the connection sequence.
    leftover: BytesMut,
    result: ConnectionResult,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("desktop_size", &self.result.desktop_size)
            .finish_non_exhaustive()
    }
}

impl Connected {
    /// The desktop's size as the server settled it.
    pub fn size(&self) -> (u16, u16) {
        (
            self.result.desktop_size.width,
            self.result.desktop_size.height,
        )
    }
}

/// Who logs in where, and who answers for a refused certificate.
#[derive(Debug)]
pub struct Login {
    pub asset: Asset,
    pub username: String,
    pub password: SecretString,
    pub store: Arc<Store>,
    pub actor: Actor,
    /// Rampart's end of the connection (the client address CredSSP and the connector name).
    pub client_addr: SocketAddr,
}

/// CredSSP's Kerberos would ask Rampart to reach a KDC; it is not offered (NTLM is).
struct NoKdc;

impl ironrdp_tokio::NetworkClient for NoKdc {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(ironrdp_connector::general_err!(
            "Rampart does not reach a Kerberos KDC for RDP logins (NTLM is used)"
        ))
    }
}

/// The client build Rampart announces (TS_UD_CS_CORE clientBuild), as FreeRDP 2 does: xrdp
/// takes a client whose build is 419 or less for one that cannot resize, and then neither
/// follows a Display Control layout nor its own desktop's resize with a reactivation.
const CLIENT_BUILD: u32 = 2600;

/// The connector's settings. The security protocols offered are exactly the endpoint's one
/// (never standard RDP security); with TLS, the logon is automatic with the credentials of the
/// Client Info PDU (no logon screen is asked for).
fn config(
    username: &str,
    password: &SecretString,
    security: RdpSecurity,
) -> ironrdp_connector::Config {
    let tls = security == RdpSecurity::Tls;
    ironrdp_connector::Config {
        desktop_size: DesktopSize {
            width: DESKTOP_WIDTH,
            height: DESKTOP_HEIGHT,
        },
        monitor_layout: None,
        desktop_scale_factor: 0,
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: tls,
        enable_credssp: !tls,
        enable_standard_rdp_security: false,
        credentials: Credentials::UsernamePassword {
            username: username.to_owned(),
            password: password.expose_secret().to_owned(),
        },
        domain: None,
        client_build: CLIENT_BUILD,
        client_name: "rampart".to_owned(),
        keyboard_type: ironrdp_pdu::gcc::KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_layout: 0,
        keyboard_functional_keys_count: 12,
        connection_type: ironrdp_pdu::gcc::ConnectionType::Lan,
        ime_file_name: String::new(),
        bitmap: None,
        dig_product_id: String::new(),
        client_dir: String::new(),
        platform: ironrdp_pdu::rdp::capability_sets::MajorPlatformType::UNIX,
        hardware_id: None,
        request_data: None,
        autologon: tls,
        enable_audio_playback: false,
        enable_audio_capture: false,
        license_cache: None,
        compression_type: None,
        enable_server_pointer: false,
        pointer_software_rendering: false,
        multitransport_flags: None,
        support_dyn_vc_gfx_protocol: false,
        performance_flags: Default::default(),
        timezone_info: Default::default(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
    }
}

/// The DRDYNVC static channel with one dynamic channel: Display Control (MS-RDPEDISP), which
/// the server opens when it takes resize requests, sending its capabilities (the limits a
/// monitor layout is fitted to). Any other dynamic channel the server offers is refused.
fn dynamic_channels() -> DrdynvcClient {
    DrdynvcClient::new().with_dynamic_channel(DisplayControlClient::new(|_| Ok(Vec::new())))
}

/// The size a Display Control monitor layout asks for when the user's view is `size` (already
/// bounded by `resize::requested_size`): its width even (rounded down), each side within
/// Display Control's 200..=8192, as MS-RDPEDISP 2.2.2.2.1 requires.
pub fn monitor_size((width, height): (u16, u16)) -> (u16, u16) {
    let (width, height) =
        MonitorLayoutEntry::adjust_display_size(u32::from(width), u32::from(height));
    let side = |v: u32| u16::try_from(v).unwrap_or(crate::resize::MAX_SIDE & !1);
    (side(width), side(height))
}

/// Connects and logs in: X.224, TLS with the pinned certificate, CredSSP with the password
/// (or, for a TLS endpoint, the Client Info PDU), the capability exchange. Every refusal is the
/// line the user sees.
pub async fn connect(stream: TargetStream, login: Login) -> Result<Connected, String> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            tokio::time::timeout(CONNECT_TIMEOUT, connect_here(stream, login))
                .await
                .unwrap_or_else(|_| Err("the RDP server did not answer in time".to_owned()))
        })
    })
    .await
    .map_err(|_| "the RDP connection sequence failed".to_owned())?
}

async fn connect_here(stream: TargetStream, login: Login) -> Result<Connected, String> {
    let asset = &login.asset;
    let target = asset
        .address(Protocol::Rdp)
        .unwrap_or_else(|| asset.name.to_string());
    let failed = |err: ironrdp_connector::ConnectorError| format!("RDP with {target}: {err}");
    let security = asset
        .endpoint(Protocol::Rdp)
        .map_or(RdpSecurity::Nla, |endpoint| endpoint.rdp_security());
    let mut connector = ClientConnector::new(
        config(&login.username, &login.password, security),
        login.client_addr,
    )
    .with_static_channel(rdp_clipboard::channel())
    .with_static_channel(dynamic_channels());
    let mut framed = TokioFramed::new(SyncStream::new(stream));
    let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector)
        .await
        .map_err(|err| negotiation_failed(&target, &asset.name, security, &err))?;
    let stream = framed.into_inner_no_leftover();
    let tls = target_tls::connect_pinned(stream, asset, Protocol::Rdp, &login.store, &login.actor)
        .await?;
    let public_key = server_public_key(&tls)?;
    let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
    let mut framed = TokioFramed::new(tls);
    let outcome = ironrdp_tokio::connect_finalize(
        upgraded,
        connector,
        &mut framed,
        &mut NoKdc,
        ServerName::new(asset.host.clone()),
        public_key,
        None,
    )
    .await
    .map_err(failed)?;
    let result = match outcome {
        ConnectionOutcome::Connected(result) => result,
        ConnectionOutcome::Redirected(_) => {
            return Err(format!(
                "the RDP server {target} redirected the connection elsewhere; Rampart does not follow redirections"
            ));
        }
    };
    let DesktopSize { width, height } = result.desktop_size;
    rfb::check_size(width, height).map_err(|err| format!("the RDP server {target}: {err}"))?;
    let (stream, leftover) = framed.into_inner();
    Ok(Connected {
        stream,
        leftover,
        result,
    })
}

/// Why the X.224 negotiation failed, for the user: what the server required or selected and
/// what the endpoint allows, with the setting that changes it when the server wants the other
/// of Rampart's two logins.
fn negotiation_failed(
    target: &str,
    asset: &rampart_core::Name,
    allowed: RdpSecurity,
    err: &ironrdp_connector::ConnectorError,
) -> String {
    use ironrdp_pdu::nego::FailureCode;
    let allows = match allowed {
        RdpSecurity::Nla => "NLA (CredSSP) only",
        RdpSecurity::Tls => "TLS without NLA only",
    };
    let other = |word: &str| {
        format!(
            "; if that is expected, `rampart asset endpoint set {asset} rdp --rdp-security {word}`"
        )
    };
    let server = match err.kind() {
        ironrdp_connector::ConnectorErrorKind::Negotiation(failure) => match failure.code() {
            FailureCode::HYBRID_REQUIRED_BY_SERVER => {
                Some(format!("the server requires NLA{}", other("nla")))
            }
            FailureCode::SSL_REQUIRED_BY_SERVER if allowed == RdpSecurity::Nla => Some(format!(
                "the server requires TLS without NLA (it has no NLA, as xrdp 0.9){}",
                other("tls")
            )),
            FailureCode::SSL_NOT_ALLOWED_BY_SERVER => Some(
                "the server only offers standard RDP security (no TLS), which Rampart never uses"
                    .to_owned(),
            ),
            _ => Some(format!("the server refused: {failure}")),
        },
        // IronRDP's own words name what the server selected ("client advertised SSL, but
        // server selected HYBRID"; standard RDP security is STANDARD_RDP_SECURITY).
        ironrdp_connector::ConnectorErrorKind::Reason(text) if text.contains("server selected") => {
            let hint = match allowed {
                RdpSecurity::Nla if text.ends_with("selected SSL") => other("tls"),
                RdpSecurity::Tls if text.contains("selected HYBRID") => other("nla"),
                _ => String::new(),
            };
            Some(format!("{text}{hint}"))
        }
        _ => None,
    };
    match server {
        Some(server) => format!("RDP with {target}: {server}; the endpoint allows {allows}"),
        None => format!("RDP with {target}: {err}"),
    }
}

/// The subject public key of the certificate the server presented: CredSSP binds the
/// credentials to it.
fn server_public_key(tls: &RdpStream) -> Result<Vec<u8>, String> {
    let (_, session) = tls.get_ref();
    let der = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| "the RDP server presented no certificate".to_owned())?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| "the RDP server's certificate cannot be read".to_owned())?;
    Ok(cert
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec())
}

/// Starts the active stage on its own task: the server's screen as events, input from the
/// relay. The task ends when either side does; dropping the input sender ends it.
pub fn start(
    connected: Connected,
) -> (
    mpsc::Receiver<Result<ServerEvent, TargetEnded>>,
    mpsc::Sender<Input>,
    tokio::task::JoinHandle<()>,
) {
    let (events_tx, events) = mpsc::channel(16);
    let (input, input_rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        let ended = active(connected, &events_tx, input_rx).await;
        let _ = events_tx.send(Err(ended)).await;
    });
    (events, input, task)
}

/// Aborts a task when dropped, however its owner ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn closed() -> TargetEnded {
    TargetEnded::closed("the RDP server closed the connection")
}

async fn write_frame(
    writer: &mut (impl AsyncWrite + Unpin),
    frame: &[u8],
) -> Result<(), TargetEnded> {
    writer.write_all(frame).await.map_err(|_| closed())
}

/// Reads one PDU (X.224 or fast-path, by its header's length: at most 64 KiB).
async fn read_pdu(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> io::Result<(ironrdp_pdu::Action, BytesMut)> {
    loop {
        let found = ironrdp_pdu::find_size(buf)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
        if let Some(info) = found
            && buf.len() >= info.length
        {
            return Ok((info.action, buf.split_to(info.length)));
        }
        if reader.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The server's PDUs, as the reader task frames them.
type Pdus = mpsc::Receiver<io::Result<(ironrdp_pdu::Action, BytesMut)>>;

/// The next PDU of the server, or why there is none.
async fn next_pdu(pdus: &mut Pdus) -> Result<(ironrdp_pdu::Action, BytesMut), TargetEnded> {
    match pdus.recv().await {
        None => Err(closed()),
        Some(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => Err(closed()),
        Some(Err(err)) => Err(TargetEnded::malformed(format!(
            "the RDP server sent a malformed message: {err}"
        ))),
        Some(Ok(pdu)) => Ok(pdu),
    }
}

/// The active stage's side of the connection: the stage, the image it draws into, the
/// clipboard channel's guard, and whether the relay heard that the server takes resizes.
struct Client {
    stage: ActiveStage,
    image: DecodedImage,
    clipboard_channel: Option<u16>,
    clipboard_guard: ChannelGuard,
    /// The DRDYNVC channel, when the server joined it, and the bound on its reassembly.
    dynamic_channel: Option<u16>,
    dynamic_guard: ChannelGuard,
    said_resizable: bool,
}

impl Client {
    /// One PDU of the server through the active stage: answers written, the screen's changes
    /// and the clipboard sent on. Returns whether the server deactivated the session (its
    /// Deactivation-Reactivation Sequence follows).
    async fn server_pdu(
        &mut self,
        writer: &mut (impl AsyncWrite + Unpin),
        events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
        action: ironrdp_pdu::Action,
        payload: &[u8],
    ) -> Result<bool, TargetEnded> {
        match channel_chunk(
            &mut self.dynamic_guard,
            ChannelGuard::check_dynamic,
            self.dynamic_channel,
            action,
            payload,
        ) {
            Chunk::Pass => {}
            Chunk::Skip | Chunk::SkipData { .. } => return Ok(false),
            Chunk::Malformed => {
                return Err(TargetEnded::malformed(
                    "the RDP server sent a malformed or oversized dynamic channel message",
                ));
            }
        }
        match channel_chunk(
            &mut self.clipboard_guard,
            ChannelGuard::check,
            self.clipboard_channel,
            action,
            payload,
        ) {
            Chunk::Pass => {}
            Chunk::Skip => return Ok(false),
            Chunk::SkipData { bytes } => {
                skipped_clipboard(&mut self.stage, writer, events, bytes).await?;
                return Ok(false);
            }
            Chunk::Malformed => {
                return Err(TargetEnded::malformed(
                    "the RDP server sent a malformed clipboard message",
                ));
            }
        }
        let outputs = self
            .stage
            .process(&mut self.image, action, payload, None)
            .map_err(|err| {
                TargetEnded::malformed(format!(
                    "the RDP server sent a message Rampart cannot decode: {err}"
                ))
            })?;
        let deactivated = outputs_to(writer, events, &self.image, outputs).await?;
        clipboard_todos(&mut self.stage, writer, events).await?;
        if !self.said_resizable && self.stage.display_control_ready() == Some(true) {
            self.said_resizable = true;
            events
                .send(Ok(ServerEvent::Resizable(TargetScreen::default())))
                .await
                .map_err(|_| TargetEnded::closed("the desktop was closed"))?;
        }
        Ok(deactivated)
    }

    /// Asks the server for a desktop of `width`×`height` (the relay bounded it and made the
    /// width even) with a Display Control monitor layout of one primary monitor, fitted to the
    /// server's limits. Without the channel (or its capabilities) nothing is sent: the view
    /// scrolls.
    async fn resize(
        &mut self,
        writer: &mut (impl AsyncWrite + Unpin),
        (width, height): (u16, u16),
    ) -> Result<(), TargetEnded> {
        match self
            .stage
            .encode_resize(u32::from(width), u32::from(height), None, None)
        {
            Some(Ok(frame)) => write_frame(writer, &frame).await,
            Some(Err(err)) => {
                tracing::debug!(error = %err, "RDP: a resize request was left out");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The Deactivation-Reactivation Sequence (MS-RDPBCGR 1.3.1.3) after the server's
    /// Deactivate All: a fresh capability exchange and finalization over the same connection,
    /// under [`CONNECT_TIMEOUT`]. The session goes on at the size the server now demands: a new
    /// image, a [`ServerEvent::Resize`] for the relay (the browser and the recording), and a
    /// request for the whole screen.
    async fn reactivate(
        &mut self,
        factory: &ConnectionActivationFactory,
        pdus: &mut Pdus,
        writer: &mut (impl AsyncWrite + Unpin),
        events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
    ) -> Result<(), TargetEnded> {
        let finalized = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.activation(factory, pdus, writer, events),
        )
        .await
        .unwrap_or_else(|_| {
            Err(TargetEnded::malformed(
                "the RDP server did not finish reactivating the session in time",
            ))
        })?;
        let ConnectionActivationState::Finalized {
            desktop_size: DesktopSize { width, height },
            share_id,
            static_channel_chunk_size,
            refresh_rect_support,
            suppress_output_support,
            ..
        } = finalized
        else {
            return Err(TargetEnded::malformed(
                "the RDP server's reactivation did not finish",
            ));
        };
        rfb::check_size(width, height).map_err(|err| {
            TargetEnded::malformed(format!("the RDP server's reactivation: {err}"))
        })?;
        if !self.stage.reactivate(
            factory.io_channel_id(),
            factory.user_channel_id(),
            share_id,
            false,
            false,
            static_channel_chunk_size,
        ) {
            return Err(TargetEnded::malformed(
                "the RDP server's reactivation has an invalid channel chunk size",
            ));
        }
        self.image = DecodedImage::new(PixelFormat::RgbA32, width, height);
        events
            .send(Ok(ServerEvent::Resize { width, height }))
            .await
            .map_err(|_| TargetEnded::closed("the desktop was closed"))?;
        let redraw = self
            .stage
            .request_full_redraw(width, height, refresh_rect_support, suppress_output_support)
            .map_err(|err| {
                TargetEnded::malformed(format!("cannot ask the RDP server for its screen: {err}"))
            })?;
        for frame in redraw {
            write_frame(writer, &frame).await?;
        }
        Ok(())
    }

    /// Drives a fresh activation sequence to its end with the server's PDUs: share-control
    /// PDUs of the I/O channel go to the sequence; other channels' data (the clipboard's,
    /// DRDYNVC's) goes on through the active stage as before; fast-path updates (drawn for the
    /// screen being replaced) are dropped.
    async fn activation(
        &mut self,
        factory: &ConnectionActivationFactory,
        pdus: &mut Pdus,
        writer: &mut (impl AsyncWrite + Unpin),
        events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
    ) -> Result<ConnectionActivationState, TargetEnded> {
        let mut sequence = factory.create();
        let mut out = ironrdp_pdu::WriteBuf::new();
        loop {
            match sequence.connection_activation_state() {
                state @ ConnectionActivationState::Finalized { .. } => return Ok(state),
                ConnectionActivationState::Redirected { .. } => {
                    return Err(TargetEnded::closed(
                        "the RDP server redirected the session elsewhere; Rampart does not \
                         follow redirections",
                    ));
                }
                _ => {}
            }
            out.clear();
            // The client's own steps (Synchronize, Control, Font List) take no input.
            let written = if sequence.next_pdu_hint().is_none() {
                sequence.step_no_input(&mut out)
            } else {
                let (action, payload) = next_pdu(pdus).await?;
                if action != ironrdp_pdu::Action::X224 {
                    continue;
                }
                let channel = ironrdp_pdu::mcs::decode_send_data_indication(&payload)
                    .map(|data| data.channel_id)
                    .ok();
                if channel.is_some_and(|id| id != factory.io_channel_id()) {
                    // A second Deactivate All here would only restart what is under way.
                    self.server_pdu(writer, events, action, &payload).await?;
                    continue;
                }
                if not_for_activation(&payload) {
                    continue;
                }
                sequence.step(&payload, None, &mut out)
            }
            .map_err(|err| {
                TargetEnded::malformed(format!("the RDP server's reactivation failed: {err}"))
            })?;
            if let Some(size) = written.size() {
                let frame = out.filled().get(..size).unwrap_or_default();
                write_frame(writer, frame).await?;
            }
        }
    }
}

/// Whether a PDU of the I/O channel is output the server sends while the connection
/// reactivates (xrdp repaints and sets its pointers at once: slow-path updates, pointers, the
/// keyboard's indicators...), which the activation sequence would take for a protocol error:
/// dropped, the whole screen is asked for once the sequence ends. What the sequence needs (the
/// Demand Active, Synchronize, Control, Font Map, a monitor layout, an error) goes to it.
fn not_for_activation(payload: &[u8]) -> bool {
    use ironrdp_pdu::rdp::headers::{ShareControlPdu, ShareDataPdu};
    let Ok(data) = ironrdp_pdu::mcs::decode_send_data_indication(payload) else {
        return false;
    };
    let Ok(control) = ironrdp_pdu::rdp::headers::decode_share_control(data) else {
        return false;
    };
    let ShareControlPdu::Data(data) = control.pdu else {
        return false;
    };
    !matches!(
        data.share_data_pdu,
        ShareDataPdu::Synchronize(_)
            | ShareDataPdu::Control(_)
            | ShareDataPdu::FontMap(_)
            | ShareDataPdu::MonitorLayout(_)
            | ShareDataPdu::ServerSetErrorInfo(_)
    )
}

/// The active stage until either side ends; returns why.
async fn active(
    connected: Connected,
    events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
    mut input: mpsc::Receiver<Input>,
) -> TargetEnded {
    let Connected {
        stream,
        leftover,
        result,
    } = connected;
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Reading a PDU is not cancel-safe (a partial read), so one task owns the reader.
    let (pdu_tx, mut pdus) = mpsc::channel(4);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        let mut buf = leftover;
        loop {
            let read = read_pdu(&mut reader, &mut buf).await;
            let failed = read.is_err();
            if pdu_tx.send(read).await.is_err() || failed {
                return;
            }
        }
    }));
    let DesktopSize { width, height } = result.desktop_size;
    let factory = result.activation_factory;
    let mut client = Client {
        image: DecodedImage::new(PixelFormat::RgbA32, width, height),
        // The clipboard channel, when the server joined it.
        clipboard_channel: result
            .static_channels
            .get_channel_id_by_type::<CliprdrClient>(),
        clipboard_guard: ChannelGuard::default(),
        dynamic_channel: result
            .static_channels
            .get_channel_id_by_type::<DrdynvcClient>(),
        dynamic_guard: ChannelGuard::default(),
        said_resizable: false,
        stage: ActiveStageBuilder {
            static_channels: result.static_channels,
            user_channel_id: result.user_channel_id,
            io_channel_id: result.io_channel_id,
            message_channel_id: result.message_channel_id,
            share_id: result.share_id,
            compression_type: result.compression_type,
            enable_server_pointer: false,
            pointer_software_rendering: false,
        }
        .build(),
    };
    let mut keyboard = Database::new();
    let mut buttons = 0u8;
    loop {
        tokio::select! {
            pdu = next_pdu(&mut pdus) => {
                let (action, payload) = match pdu {
                    Ok(pdu) => pdu,
                    Err(ended) => return ended,
                };
                let deactivated = match client.server_pdu(&mut writer, events, action, &payload).await {
                    Ok(deactivated) => deactivated,
                    Err(ended) => return ended,
                };
                if deactivated
                    && let Err(ended) = client.reactivate(&factory, &mut pdus, &mut writer, events).await
                {
                    return ended;
                }
            }
            next = input.recv() => {
                let Some(next) = next else {
                    // The relay is gone (the user left or the session was stopped): say
                    // goodbye to the server, as a client closing its window does.
                    if let Ok(outputs) = client.stage.graceful_shutdown() {
                        for output in outputs {
                            if let ActiveStageOutput::ResponseFrame(frame) = output {
                                let _ = write_frame(&mut writer, &frame).await;
                            }
                        }
                    }
                    return TargetEnded::closed("the desktop was closed");
                };
                match next {
                    Input::Clipboard(text) => {
                        offer_clipboard(&mut client.stage, text);
                        if let Err(ended) = clipboard_todos(&mut client.stage, &mut writer, events).await {
                            return ended;
                        }
                        continue;
                    }
                    Input::Resize { width, height } => {
                        if let Err(ended) = client.resize(&mut writer, (width, height)).await {
                            return ended;
                        }
                        continue;
                    }
                    _ => {}
                }
                let fast = keyboard.apply(operations(&next, &mut buttons));
                match client.stage.process_fastpath_input(&mut client.image, &fast) {
                    Ok(outputs) => {
                        // Input answers nothing that deactivates.
                        if let Err(ended) = outputs_to(&mut writer, events, &client.image, outputs).await {
                            return ended;
                        }
                    }
                    Err(err) => {
                        return TargetEnded::malformed(format!("cannot encode input for the RDP server: {err}"));
                    }
                }
            }
        }
    }
}

/// What to do with a PDU for a bounded static channel's sake (the clipboard's, with
/// `ChannelGuard::check`; DRDYNVC's, with `ChannelGuard::check_dynamic`): every chunk of
/// `channel` goes through the guard first (IronRDP reassembles what it passes); other PDUs,
/// and not channel data, pass (IronRDP judges those).
fn channel_chunk(
    guard: &mut ChannelGuard,
    check: fn(&mut ChannelGuard, &[u8]) -> Chunk,
    channel: Option<u16>,
    action: ironrdp_pdu::Action,
    payload: &[u8],
) -> Chunk {
    let Some(channel) = channel else {
        return Chunk::Pass;
    };
    if action != ironrdp_pdu::Action::X224 {
        return Chunk::Pass;
    }
    match ironrdp_pdu::mcs::decode_send_data_indication(payload) {
        Ok(data) if data.channel_id == channel => check(guard, data.user_data),
        _ => Chunk::Pass,
    }
}

/// The browser's text (the relay let it through) on offer to the server's clipboard.
fn offer_clipboard(stage: &mut ActiveStage, text: String) {
    if let Some(cliprdr) = stage.get_svc_processor_mut::<CliprdrClient>() {
        rdp_clipboard::offer(cliprdr, text);
    }
}

/// A clipboard text too large to reassemble was skipped: the relay hears of its size (to refuse
/// and audit it), and IronRDP of a failed answer.
async fn skipped_clipboard(
    stage: &mut ActiveStage,
    writer: &mut (impl AsyncWrite + Unpin),
    events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
    bytes: u32,
) -> Result<(), TargetEnded> {
    let too_large = ServerEvent::CutText {
        text: None,
        len: bytes,
    };
    events
        .send(Ok(too_large))
        .await
        .map_err(|_| TargetEnded::closed("the desktop was closed"))?;
    if let Some(cliprdr) = stage.get_svc_processor_mut::<CliprdrClient>() {
        rdp_clipboard::skipped_answer(cliprdr);
    }
    clipboard_todos(stage, writer, events).await
}

/// Carries out what the clipboard backend asked for: its messages to the server, the server's
/// text to the relay.
async fn clipboard_todos(
    stage: &mut ActiveStage,
    writer: &mut (impl AsyncWrite + Unpin),
    events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
) -> Result<(), TargetEnded> {
    // Each PDU leaves at most a few; whatever is left waits for the next turn.
    for _ in 0..16 {
        let Some(step) = stage
            .get_svc_processor_mut::<CliprdrClient>()
            .and_then(rdp_clipboard::next_step)
        else {
            return Ok(());
        };
        match step {
            Step::Deliver(event) => events
                .send(Ok(event))
                .await
                .map_err(|_| TargetEnded::closed("the desktop was closed"))?,
            Step::Send(messages) => {
                match stage.process_svc_processor_messages(ClipboardMessages::from(messages)) {
                    Ok(frame) => write_frame(writer, &frame).await?,
                    Err(err) => {
                        tracing::debug!(error = %err, "RDP clipboard: a message was left out");
                    }
                }
            }
        }
    }
    Ok(())
}

/// Acts on what the active stage produced: answers to the server, changed rectangles to the
/// relay (then an update's end, when a key frame may be taken). Returns whether the server
/// deactivated the session (Deactivate All: its reactivation is the caller's).
async fn outputs_to(
    writer: &mut (impl AsyncWrite + Unpin),
    events: &mpsc::Sender<Result<ServerEvent, TargetEnded>>,
    image: &DecodedImage,
    outputs: Vec<ActiveStageOutput>,
) -> Result<bool, TargetEnded> {
    let mut changed = false;
    let mut deactivated = false;
    for output in outputs {
        match output {
            ActiveStageOutput::ResponseFrame(frame) => write_frame(writer, &frame).await?,
            ActiveStageOutput::GraphicsUpdate(rect) => {
                if let Some(event) = pixels(image, &rect) {
                    changed = true;
                    events
                        .send(Ok(event))
                        .await
                        .map_err(|_| TargetEnded::closed("the desktop was closed"))?;
                }
            }
            ActiveStageOutput::Terminate(reason) => {
                return Err(TargetEnded::closed(format!(
                    "the RDP server ended the session: {reason}"
                )));
            }
            ActiveStageOutput::DeactivateAll => deactivated = true,
            ActiveStageOutput::ServerRedirection(_) => {
                return Err(TargetEnded::closed(
                    "the RDP server redirected the session elsewhere; Rampart does not follow \
                     redirections",
                ));
            }
            _ => {}
        }
    }
    if changed {
        events
            .send(Ok(ServerEvent::UpdateEnd))
            .await
            .map_err(|_| TargetEnded::closed("the desktop was closed"))?;
    }
    Ok(deactivated)
}

/// A changed rectangle of the image as RGBA (alpha 255), clipped to the screen.
fn pixels(image: &DecodedImage, rect: &InclusiveRectangle) -> Option<ServerEvent> {
    let (width, height) = (image.width(), image.height());
    let (x, y) = (rect.left, rect.top);
    if x >= width || y >= height {
        return None;
    }
    let right = rect.right.min(width - 1);
    let bottom = rect.bottom.min(height - 1);
    if right < x || bottom < y {
        return None;
    }
    let (w, h) = (right - x + 1, bottom - y + 1);
    let stride = image.stride();
    let bpp = image.bytes_per_pixel();
    let row = usize::from(w) * bpp;
    let data = image.data();
    let mut rgba = Vec::with_capacity(row * usize::from(h));
    for line in usize::from(y)..=usize::from(bottom) {
        let at = line * stride + usize::from(x) * bpp;
        rgba.extend_from_slice(data.get(at..at + row)?);
    }
    for px in rgba.chunks_exact_mut(4) {
        if let Some(a) = px.get_mut(3) {
            *a = 255;
        }
    }
    Some(ServerEvent::Raw {
        x,
        y,
        w,
        h,
        rgba: rgba.into(),
    })
}

/// The browser's input as IronRDP's input operations: keys by scancode (from
/// `KeyboardEvent.code`, so the target's layout applies) or, for a key without one, by its
/// character; the pointer with RFB's button mask (1 left, 2 middle, 4 right, 8 and 16 the
/// wheel's up and down).
fn operations(input: &Input, buttons: &mut u8) -> Vec<Operation> {
    match input {
        Input::Key { down, keysym, code } => {
            if let Some(scancode) = code.as_deref().and_then(scancode) {
                vec![if *down {
                    Operation::KeyPressed(scancode)
                } else {
                    Operation::KeyReleased(scancode)
                }]
            } else if let Some(c) = keysym_char(*keysym) {
                vec![if *down {
                    Operation::UnicodeKeyPressed(c)
                } else {
                    Operation::UnicodeKeyReleased(c)
                }]
            } else {
                Vec::new()
            }
        }
        Input::Pointer { x, y, buttons: now } => {
            let mut ops = vec![Operation::MouseMove(MousePosition { x: *x, y: *y })];
            for (bit, button) in [
                (1u8, MouseButton::Left),
                (2, MouseButton::Middle),
                (4, MouseButton::Right),
            ] {
                match (*buttons & bit != 0, now & bit != 0) {
                    (false, true) => ops.push(Operation::MouseButtonPressed(button)),
                    (true, false) => ops.push(Operation::MouseButtonReleased(button)),
                    _ => {}
                }
            }
            for (bit, units) in [(8u8, 120i16), (16, -120)] {
                if now & bit != 0 && *buttons & bit == 0 {
                    ops.push(Operation::WheelRotations(WheelRotations {
                        is_vertical: true,
                        rotation_units: units,
                    }));
                }
            }
            *buttons = *now;
            ops
        }
        Input::Clipboard(_) | Input::Resize { .. } | Input::Leave(_) => Vec::new(),
    }
}

/// The character of a keysym the browser sent (Latin-1 or Unicode keysyms).
fn keysym_char(keysym: u32) -> Option<char> {
    match keysym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        0x0100_0000..=0x0110_ffff => char::from_u32(keysym - 0x0100_0000),
        _ => None,
    }
}

/// The keys Rampart knows by position: `KeyboardEvent.code`, the PC/AT (set 1) scancode
/// (extended, value), and the X keysym the key gives on a US layout without and with Shift
/// (what a VNC target gets for a key an RDP client sends by scancode).
const KEYS: &[(&str, bool, u8, u32, u32)] = &[
    ("Escape", false, 0x01, 0xff1b, 0xff1b),
    ("Digit1", false, 0x02, 0x0031, 0x0021),
    ("Digit2", false, 0x03, 0x0032, 0x0040),
    ("Digit3", false, 0x04, 0x0033, 0x0023),
    ("Digit4", false, 0x05, 0x0034, 0x0024),
    ("Digit5", false, 0x06, 0x0035, 0x0025),
    ("Digit6", false, 0x07, 0x0036, 0x005e),
    ("Digit7", false, 0x08, 0x0037, 0x0026),
    ("Digit8", false, 0x09, 0x0038, 0x002a),
    ("Digit9", false, 0x0a, 0x0039, 0x0028),
    ("Digit0", false, 0x0b, 0x0030, 0x0029),
    ("Minus", false, 0x0c, 0x002d, 0x005f),
    ("Equal", false, 0x0d, 0x003d, 0x002b),
    ("Backspace", false, 0x0e, 0xff08, 0xff08),
    ("Tab", false, 0x0f, 0xff09, 0xff09),
    ("KeyQ", false, 0x10, 0x0071, 0x0051),
    ("KeyW", false, 0x11, 0x0077, 0x0057),
    ("KeyE", false, 0x12, 0x0065, 0x0045),
    ("KeyR", false, 0x13, 0x0072, 0x0052),
    ("KeyT", false, 0x14, 0x0074, 0x0054),
    ("KeyY", false, 0x15, 0x0079, 0x0059),
    ("KeyU", false, 0x16, 0x0075, 0x0055),
    ("KeyI", false, 0x17, 0x0069, 0x0049),
    ("KeyO", false, 0x18, 0x006f, 0x004f),
    ("KeyP", false, 0x19, 0x0070, 0x0050),
    ("BracketLeft", false, 0x1a, 0x005b, 0x007b),
    ("BracketRight", false, 0x1b, 0x005d, 0x007d),
    ("Enter", false, 0x1c, 0xff0d, 0xff0d),
    ("ControlLeft", false, 0x1d, 0xffe3, 0xffe3),
    ("KeyA", false, 0x1e, 0x0061, 0x0041),
    ("KeyS", false, 0x1f, 0x0073, 0x0053),
    ("KeyD", false, 0x20, 0x0064, 0x0044),
    ("KeyF", false, 0x21, 0x0066, 0x0046),
    ("KeyG", false, 0x22, 0x0067, 0x0047),
    ("KeyH", false, 0x23, 0x0068, 0x0048),
    ("KeyJ", false, 0x24, 0x006a, 0x004a),
    ("KeyK", false, 0x25, 0x006b, 0x004b),
    ("KeyL", false, 0x26, 0x006c, 0x004c),
    ("Semicolon", false, 0x27, 0x003b, 0x003a),
    ("Quote", false, 0x28, 0x0027, 0x0022),
    ("Backquote", false, 0x29, 0x0060, 0x007e),
    ("ShiftLeft", false, 0x2a, 0xffe1, 0xffe1),
    ("Backslash", false, 0x2b, 0x005c, 0x007c),
    ("KeyZ", false, 0x2c, 0x007a, 0x005a),
    ("KeyX", false, 0x2d, 0x0078, 0x0058),
    ("KeyC", false, 0x2e, 0x0063, 0x0043),
    ("KeyV", false, 0x2f, 0x0076, 0x0056),
    ("KeyB", false, 0x30, 0x0062, 0x0042),
    ("KeyN", false, 0x31, 0x006e, 0x004e),
    ("KeyM", false, 0x32, 0x006d, 0x004d),
    ("Comma", false, 0x33, 0x002c, 0x003c),
    ("Period", false, 0x34, 0x002e, 0x003e),
    ("Slash", false, 0x35, 0x002f, 0x003f),
    ("ShiftRight", false, 0x36, 0xffe2, 0xffe2),
    ("NumpadMultiply", false, 0x37, 0xffaa, 0xffaa),
    ("AltLeft", false, 0x38, 0xffe9, 0xffe9),
    ("Space", false, 0x39, 0x0020, 0x0020),
    ("CapsLock", false, 0x3a, 0xffe5, 0xffe5),
    ("F1", false, 0x3b, 0xffbe, 0xffbe),
    ("F2", false, 0x3c, 0xffbf, 0xffbf),
    ("F3", false, 0x3d, 0xffc0, 0xffc0),
    ("F4", false, 0x3e, 0xffc1, 0xffc1),
    ("F5", false, 0x3f, 0xffc2, 0xffc2),
    ("F6", false, 0x40, 0xffc3, 0xffc3),
    ("F7", false, 0x41, 0xffc4, 0xffc4),
    ("F8", false, 0x42, 0xffc5, 0xffc5),
    ("F9", false, 0x43, 0xffc6, 0xffc6),
    ("F10", false, 0x44, 0xffc7, 0xffc7),
    ("NumLock", false, 0x45, 0xff7f, 0xff7f),
    ("ScrollLock", false, 0x46, 0xff14, 0xff14),
    ("Numpad7", false, 0x47, 0xffb7, 0xffb7),
    ("Numpad8", false, 0x48, 0xffb8, 0xffb8),
    ("Numpad9", false, 0x49, 0xffb9, 0xffb9),
    ("NumpadSubtract", false, 0x4a, 0xffad, 0xffad),
    ("Numpad4", false, 0x4b, 0xffb4, 0xffb4),
    ("Numpad5", false, 0x4c, 0xffb5, 0xffb5),
    ("Numpad6", false, 0x4d, 0xffb6, 0xffb6),
    ("NumpadAdd", false, 0x4e, 0xffab, 0xffab),
    ("Numpad1", false, 0x4f, 0xffb1, 0xffb1),
    ("Numpad2", false, 0x50, 0xffb2, 0xffb2),
    ("Numpad3", false, 0x51, 0xffb3, 0xffb3),
    ("Numpad0", false, 0x52, 0xffb0, 0xffb0),
    ("NumpadDecimal", false, 0x53, 0xffae, 0xffae),
    ("IntlBackslash", false, 0x56, 0x003c, 0x003e),
    ("F11", false, 0x57, 0xffc8, 0xffc8),
    ("F12", false, 0x58, 0xffc9, 0xffc9),
    ("NumpadEnter", true, 0x1c, 0xff8d, 0xff8d),
    ("ControlRight", true, 0x1d, 0xffe4, 0xffe4),
    ("NumpadDivide", true, 0x35, 0xffaf, 0xffaf),
    ("PrintScreen", true, 0x37, 0xff61, 0xff61),
    ("AltRight", true, 0x38, 0xffea, 0xffea),
    ("Home", true, 0x47, 0xff50, 0xff50),
    ("ArrowUp", true, 0x48, 0xff52, 0xff52),
    ("PageUp", true, 0x49, 0xff55, 0xff55),
    ("ArrowLeft", true, 0x4b, 0xff51, 0xff51),
    ("ArrowRight", true, 0x4d, 0xff53, 0xff53),
    ("End", true, 0x4f, 0xff57, 0xff57),
    ("ArrowDown", true, 0x50, 0xff54, 0xff54),
    ("PageDown", true, 0x51, 0xff56, 0xff56),
    ("Insert", true, 0x52, 0xff63, 0xff63),
    ("Delete", true, 0x53, 0xffff, 0xffff),
    ("MetaLeft", true, 0x5b, 0xffeb, 0xffeb),
    ("MetaRight", true, 0x5c, 0xffec, 0xffec),
    ("ContextMenu", true, 0x5d, 0xff67, 0xff67),
];

/// The PC/AT (set 1) scancode of a key by its `KeyboardEvent.code`.
pub fn scancode(code: &str) -> Option<Scancode> {
    KEYS.iter()
        .find(|key| key.0 == code)
        .map(|&(_, extended, value, _, _)| Scancode::from_u8(extended, value))
}

/// A key by its scancode (an RDP client's): its `KeyboardEvent.code` and its keysym on a US
/// layout, shifted or not.
pub fn key_by_scancode(extended: bool, value: u8, shifted: bool) -> Option<(&'static str, u32)> {
    KEYS.iter()
        .find(|key| key.1 == extended && key.2 == value)
        .map(|&(code, _, _, keysym, shifted_keysym)| {
            (code, if shifted { shifted_keysym } else { keysym })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_connector::{ConnectorError, ConnectorErrorExt, ConnectorErrorKind, Sequence};
    use ironrdp_pdu::nego::{ConnectionRequest, FailureCode, SecurityProtocol};

    /// What the connector's first message (the X.224 connection request) offers.
    fn offered(security: RdpSecurity) -> SecurityProtocol {
        let mut connector = ClientConnector::new(
            config("alice", &SecretString::from("pw"), security),
            "127.0.0.1:50000".parse().unwrap(),
        );
        let mut out = ironrdp_pdu::WriteBuf::new();
        connector.step_no_input(&mut out).unwrap();
        let request =
            ironrdp_pdu::decode::<ironrdp_pdu::x224::X224<ConnectionRequest>>(out.filled())
                .unwrap()
                .0;
        request.protocol
    }

    #[test]
    fn an_endpoint_offers_exactly_its_one_login_and_never_standard_rdp_security() {
        let nla = offered(RdpSecurity::Nla);
        assert!(nla.contains(SecurityProtocol::HYBRID), "{nla}");
        assert!(!nla.contains(SecurityProtocol::SSL), "{nla}");
        assert_eq!(offered(RdpSecurity::Tls), SecurityProtocol::SSL);
        let tls = config("alice", &SecretString::from("pw"), RdpSecurity::Tls);
        assert!(tls.autologon && !tls.enable_credssp && !tls.enable_standard_rdp_security);
        let nla = config("alice", &SecretString::from("pw"), RdpSecurity::Nla);
        assert!(!nla.autologon && !nla.enable_tls && !nla.enable_standard_rdp_security);
    }

    #[test]
    fn a_negotiation_refusal_names_what_the_server_wants_and_what_the_endpoint_allows() {
        let asset = rampart_core::Name::parse("asset", "desk").unwrap();
        let refused = |code| {
            ConnectorError::new(
                "negotiation failure",
                ConnectorErrorKind::Negotiation(ironrdp_connector::NegotiationFailure::from(code)),
            )
        };
        let said = negotiation_failed(
            "127.0.0.1:3389",
            &asset,
            RdpSecurity::Nla,
            &refused(FailureCode::SSL_REQUIRED_BY_SERVER),
        );
        assert!(said.contains("requires TLS without NLA"), "{said}");
        assert!(said.contains("allows NLA (CredSSP) only"), "{said}");
        assert!(said.contains("--rdp-security tls"), "{said}");
        let said = negotiation_failed(
            "127.0.0.1:3389",
            &asset,
            RdpSecurity::Tls,
            &refused(FailureCode::HYBRID_REQUIRED_BY_SERVER),
        );
        assert!(said.contains("requires NLA"), "{said}");
        assert!(said.contains("allows TLS without NLA only"), "{said}");
        assert!(said.contains("--rdp-security nla"), "{said}");
        let selected = ConnectorError::reason(
            "Initiation",
            "client advertised SSL, but server selected HYBRID",
        );
        let said = negotiation_failed("127.0.0.1:3389", &asset, RdpSecurity::Tls, &selected);
        assert!(said.contains("server selected HYBRID"), "{said}");
        assert!(said.contains("allows TLS without NLA only"), "{said}");
        let standard = ConnectorError::reason(
            "Initiation",
            "client advertised SSL, but server selected STANDARD_RDP_SECURITY",
        );
        let said = negotiation_failed("127.0.0.1:3389", &asset, RdpSecurity::Tls, &standard);
        assert!(said.contains("selected STANDARD_RDP_SECURITY"), "{said}");
        assert!(!said.contains("--rdp-security"), "{said}");
    }

    #[test]
    fn a_monitor_layout_asks_for_an_even_width_within_display_controls_sides() {
        for (asked, want) in [
            ((1084, 701), (1084, 701)),
            ((1085, 700), (1084, 700)),
            ((201, 200), (200, 200)),
            ((200, 200), (200, 200)),
            ((8191, 1012), (8190, 1012)),
            ((8192, 1012), (8192, 1012)),
        ] {
            assert_eq!(monitor_size(asked), want, "{asked:?}");
        }
        // Whatever the browser sent, once bounded by `requested_size`: even, within 200..=8192.
        for (width, height) in [
            (0, 0),
            (1, 1),
            (u32::MAX, u32::MAX),
            (3001, 999),
            (199, 8193),
        ] {
            let (w, h) = monitor_size(crate::resize::requested_size(width, height));
            assert!(w % 2 == 0 && (200..=8192).contains(&w), "{w}");
            assert!((200..=8192).contains(&h), "{h}");
            assert!(u32::from(w) * u32::from(h) <= rfb::MAX_PIXELS);
        }
    }

    #[test]
    fn a_dynamic_channel_message_declaring_too_much_ends_the_session_before_reassembly() {
        // DataFirst on channel 3 (1-byte id) with a 4-byte length; Data; a 2-byte length.
        let first = |length: u32| {
            let mut pdu = vec![0x28, 3];
            pdu.extend(length.to_le_bytes());
            pdu.extend([1, 2, 3]);
            pdu
        };

        let frame = |channel_id, flags: u32, dvc: &[u8]| {
            let mut chunk = u32::try_from(dvc.len()).unwrap().to_le_bytes().to_vec();
            chunk.extend(flags.to_le_bytes());
            chunk.extend(dvc);
            ironrdp_pdu::encode_vec(&ironrdp_pdu::x224::X224(
                ironrdp_pdu::mcs::SendDataIndication {
                    initiator_id: 1002,
                    channel_id,
                    user_data: chunk.into(),
                },
            ))
            .unwrap()
        };
        let x224 = ironrdp_pdu::Action::X224;
        let mut guard = ChannelGuard::default();
        let whole = 1 | 2; // CHANNEL_FLAG_FIRST | CHANNEL_FLAG_LAST
        let huge = frame(1005, whole, &first(rdp_clipboard::MAX_DVC_MESSAGE + 1));
        assert_eq!(
            channel_chunk(
                &mut guard,
                ChannelGuard::check_dynamic,
                Some(1005),
                x224,
                &huge
            ),
            Chunk::Malformed
        );
        let fine = frame(1005, whole, &first(rdp_clipboard::MAX_DVC_MESSAGE));
        assert_eq!(
            channel_chunk(
                &mut guard,
                ChannelGuard::check_dynamic,
                Some(1005),
                x224,
                &fine
            ),
            Chunk::Pass
        );
        // Another channel's, or no DRDYNVC channel: not this guard's.
        assert_eq!(
            channel_chunk(
                &mut guard,
                ChannelGuard::check_dynamic,
                Some(1006),
                x224,
                &huge
            ),
            Chunk::Pass
        );
        assert_eq!(
            channel_chunk(&mut guard, ChannelGuard::check_dynamic, None, x224, &huge),
            Chunk::Pass
        );
    }

    #[test]
    fn while_reactivating_screen_output_is_dropped_and_the_sequence_gets_its_own_pdus() {
        use ironrdp_pdu::rdp::client_info::CompressionType;
        use ironrdp_pdu::rdp::finalization_messages::SynchronizePdu;
        use ironrdp_pdu::rdp::headers::{
            CompressionFlags, ServerDeactivateAll, ShareControlHeader, ShareControlPdu,
            ShareDataHeader, ShareDataPdu, StreamPriority,
        };
        let header = |pdu: ShareControlPdu| {
            ironrdp_pdu::encode_vec(&ShareControlHeader {
                share_control_pdu: pdu,
                pdu_source: 1002,
                share_id: 0x1_03ea,
            })
            .unwrap()
        };
        let on_io_channel = |user_data: Vec<u8>| {
            ironrdp_pdu::encode_vec(&ironrdp_pdu::x224::X224(
                ironrdp_pdu::mcs::SendDataIndication {
                    initiator_id: 1002,
                    channel_id: 1003,
                    user_data: user_data.into(),
                },
            ))
            .unwrap()
        };
        let sync = || {
            header(ShareControlPdu::Data(ShareDataHeader {
                share_data_pdu: ShareDataPdu::Synchronize(SynchronizePdu {
                    target_user_id: 1002,
                }),
                stream_priority: StreamPriority::Medium,
                compression_flags: CompressionFlags::empty(),
                compression_type: CompressionType::K8,
            }))
        };
        // IronRDP does not encode updates: a Synchronize with another pduType2 (after the
        // Share Control header's 6 bytes and the Share Data header's first 8).
        let retyped = |pdu_type2: u8| {
            let mut user_data = sync();
            user_data[14] = pdu_type2;
            on_io_channel(user_data)
        };
        // xrdp repaints while it reactivates (Update, Pointer): dropped, not a protocol error.
        assert!(not_for_activation(&retyped(0x02)));
        assert!(not_for_activation(&retyped(0x1b)));
        // The sequence's own.
        assert!(!not_for_activation(&on_io_channel(sync())));
        assert!(!not_for_activation(&on_io_channel(header(
            ShareControlPdu::ServerDeactivateAll(ServerDeactivateAll)
        ))));
        // Garbage is the sequence's to refuse (ending the session with its reason).
        assert!(!not_for_activation(&[3, 0, 0, 7, 2, 0xf0, 0x80]));
        assert!(!not_for_activation(&[]));
    }

    #[test]
    fn the_connector_offers_the_dynamic_channels_with_display_control() {
        let drdynvc = dynamic_channels();
        assert!(drdynvc.has_registered_dvc::<DisplayControlClient>());
        // xrdp resizes only a client whose build is above 419.
        let config = config("alice", &SecretString::from("pw"), RdpSecurity::Tls);
        assert!(config.client_build > 419, "{}", config.client_build);
    }

    #[test]
    fn keys_go_by_their_position_and_unknown_codes_by_their_character() {
        let mut buttons = 0;
        let key = |code: Option<&str>, keysym| Input::Key {
            down: true,
            keysym,
            code: code.map(str::to_owned),
        };
        let ops = operations(&key(Some("KeyA"), 0x61), &mut buttons);
        assert!(
            matches!(ops.as_slice(), [Operation::KeyPressed(s)] if s.as_u16() == 0x1e),
            "{ops:?}"
        );
        let ops = operations(&key(Some("ArrowUp"), 0xff52), &mut buttons);
        assert!(
            matches!(ops.as_slice(), [Operation::KeyPressed(s)] if s.as_u16() == 0xe048),
            "{ops:?}"
        );
        let ops = operations(&key(None, 0xe9), &mut buttons);
        assert!(
            matches!(ops.as_slice(), [Operation::UnicodeKeyPressed('é')]),
            "{ops:?}"
        );
        assert!(operations(&key(Some("Fn"), 0xff00), &mut buttons).is_empty());
    }

    #[test]
    fn the_pointer_mask_becomes_presses_releases_and_wheel_turns() {
        let mut buttons = 0;
        let pointer = |buttons| Input::Pointer {
            x: 3,
            y: 4,
            buttons,
        };
        let ops = operations(&pointer(1), &mut buttons);
        assert!(matches!(
            ops.as_slice(),
            [
                Operation::MouseMove(MousePosition { x: 3, y: 4 }),
                Operation::MouseButtonPressed(MouseButton::Left)
            ]
        ));
        let ops = operations(&pointer(1 | 16), &mut buttons);
        assert!(matches!(
            ops.as_slice(),
            [
                Operation::MouseMove(_),
                Operation::WheelRotations(WheelRotations {
                    is_vertical: true,
                    rotation_units: -120
                })
            ]
        ));
        let ops = operations(&pointer(0), &mut buttons);
        assert!(matches!(
            ops.as_slice(),
            [
                Operation::MouseMove(_),
                Operation::MouseButtonReleased(MouseButton::Left)
            ]
        ));
    }

    #[tokio::test]
    async fn pdus_are_framed_by_their_header_and_garbage_is_an_error() {
        // Two X.224 PDUs (TPKT, 7 bytes each) in one read, then a byte that is no header.
        let mut wire: &[u8] = &[
            3, 0, 0, 7, 2, 0xf0, 0x80, 3, 0, 0, 7, 2, 0xf0, 0x80, 0x01, 9,
        ];
        let mut buf = BytesMut::new();
        for _ in 0..2 {
            let (action, pdu) = read_pdu(&mut wire, &mut buf).await.unwrap();
            assert_eq!(action, ironrdp_pdu::Action::X224);
            assert_eq!(pdu.len(), 7);
        }
        let err = read_pdu(&mut wire, &mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A header announcing more than the peer sends: the end of the stream, not a hang.
        let mut short: &[u8] = &[3, 0, 0, 40, 2, 0xf0];
        let err = read_pdu(&mut short, &mut BytesMut::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn only_the_clipboard_channels_chunks_go_through_its_guard() {
        let frame = |channel_id, declared: u32| {
            let mut chunk = declared.to_le_bytes().to_vec();
            chunk.extend(1u32.to_le_bytes()); // CHANNEL_FLAG_FIRST
            chunk.extend([5, 0, 0, 0]);
            ironrdp_pdu::encode_vec(&ironrdp_pdu::x224::X224(
                ironrdp_pdu::mcs::SendDataIndication {
                    initiator_id: 1002,
                    channel_id,
                    user_data: chunk.into(),
                },
            ))
            .unwrap()
        };
        let x224 = ironrdp_pdu::Action::X224;
        let mut guard = ChannelGuard::default();
        let huge = frame(1004, u32::MAX);
        assert_eq!(
            channel_chunk(&mut guard, ChannelGuard::check, Some(1004), x224, &huge),
            Chunk::SkipData {
                bytes: u32::MAX - 8
            }
        );
        let mut guard = ChannelGuard::default();
        // Another channel's, the server without the clipboard channel, or fast-path: IronRDP's.
        assert_eq!(
            channel_chunk(&mut guard, ChannelGuard::check, Some(1005), x224, &huge),
            Chunk::Pass
        );
        assert_eq!(
            channel_chunk(&mut guard, ChannelGuard::check, None, x224, &huge),
            Chunk::Pass
        );
        let fast_path = ironrdp_pdu::Action::FastPath;
        assert_eq!(
            channel_chunk(
                &mut guard,
                ChannelGuard::check,
                Some(1004),
                fast_path,
                &huge
            ),
            Chunk::Pass
        );
        assert_eq!(
            channel_chunk(
                &mut guard,
                ChannelGuard::check,
                Some(1004),
                x224,
                &frame(1004, 12)
            ),
            Chunk::Pass
        );
    }

    #[test]
    fn a_changed_rectangle_is_clipped_to_the_screen_and_opaque() {
        let image = DecodedImage::new(PixelFormat::RgbA32, 4, 2);
        let event = pixels(
            &image,
            &InclusiveRectangle {
                left: 2,
                top: 1,
                right: 9,
                bottom: 9,
            },
        );
        let Some(ServerEvent::Raw { x, y, w, h, rgba }) = event else {
            panic!("no pixels: {event:?}");
        };
        assert_eq!((x, y, w, h), (2, 1, 2, 1));
        assert_eq!(&rgba[..], &[0, 0, 0, 255, 0, 0, 0, 255]);
        let outside = InclusiveRectangle {
            left: 4,
            top: 0,
            right: 5,
            bottom: 1,
        };
        assert_eq!(pixels(&image, &outside), None);
    }
}
