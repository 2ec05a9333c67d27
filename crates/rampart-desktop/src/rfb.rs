//! The RFB protocol (RFC 6143), client side, version 3.8 only: the handshake with the security
//! types None, VNC authentication and VeNCrypt (type 19, version 0.2, its X509 subtypes: TLS
//! with a certificate, then None, VNC authentication or Plain inside), the client's messages,
//! and a reader of the server's messages that checks every length before it reads or
//! allocates. The TLS itself is not here: `vnc` does it with the endpoint's pinned certificate
//! between [`vencrypt`] and [`authenticate`].
//!
//! INVARIANTS:
//! - Nothing the server sends is trusted: the framebuffer is at most [`MAX_PIXELS`], every
//!   rectangle lies inside it, strings are bounded ([`MAX_TEXT`]), unknown messages and
//!   encodings end the session (they cannot be skipped: RFB messages carry no length).
//! - The password only enters the DES key for the challenge (or, for VeNCrypt's X509Plain, the
//!   TLS connection); it is never logged or echoed.
//! - VeNCrypt's anonymous subtypes (TLSNone, TLSVnc, TLSPlain: anonymous Diffie-Hellman, no
//!   certificate) and its subtypes without TLS are never chosen.
//! - Reading is not cancel-safe: one task owns the [`Reader`] (see `session`).

use rampart_core::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest framebuffer accepted (width × height), 4K UHD: 33 MB of RGBA.
pub const MAX_PIXELS: u32 = 3840 * 2160;
/// The longest desktop name, failure reason or clipboard text kept from the server.
pub const MAX_TEXT: u32 = 1024 * 1024;
/// Security types.
const SECURITY_NONE: u8 = 1;
const SECURITY_VNC: u8 = 2;
const SECURITY_VENCRYPT: u8 = 19;
/// VeNCrypt's subtypes with TLS and a certificate (X509), by what follows inside the TLS.
pub const X509_NONE: u32 = 260;
pub const X509_VNC: u32 = 261;
pub const X509_PLAIN: u32 = 262;
/// VeNCrypt's anonymous TLS subtypes (TLSNone, TLSVnc, TLSPlain): never chosen.
const ANONYMOUS_TLS: [u32; 3] = [257, 258, 259];
/// Encodings we ask for.
pub const ENCODING_RAW: i32 = 0;
pub const ENCODING_COPY_RECT: i32 = 1;
pub const ENCODING_DESKTOP_SIZE: i32 = -223;
pub const ENCODING_EXTENDED_DESKTOP_SIZE: i32 = -308;
/// The most screens an ExtendedDesktopSize layout may list (TigerVNC's viewer sends one per
/// monitor); more ends the session before they are read.
pub const MAX_SCREENS: u8 = 16;
/// SetDesktopSize, the client's request for a new size (ExtendedDesktopSize).
const SET_DESKTOP_SIZE: u8 = 251;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RfbError {
    #[error("the VNC server closed the connection")]
    Closed,
    #[error("the VNC server speaks {0:?}, not RFB 3.8")]
    Version(String),
    #[error("the VNC server refused the connection: {0}")]
    Refused(String),
    #[error(
        "the VNC server offers no security type Rampart uses (None, VNC authentication or VeNCrypt)"
    )]
    NoSecurityType,
    #[error(
        "the VNC endpoint has a pinned certificate but the server does not offer VeNCrypt (TLS), \
         so nothing was sent"
    )]
    NoVencrypt,
    #[error(
        "the VNC server offers only anonymous TLS (VeNCrypt TLSNone, TLSVnc or TLSPlain: anonymous \
         Diffie-Hellman, no certificate to pin), which Rampart does not use; give the server an \
         X.509 certificate (an X509 subtype)"
    )]
    AnonymousTlsOnly,
    #[error(
        "the VNC server offers no VeNCrypt subtype Rampart uses (X509None, X509Vnc, X509Plain)"
    )]
    NoVencryptSubtype,
    #[error("the VNC server speaks VeNCrypt {0}.{1}, not 0.2")]
    VencryptVersion(u8, u8),
    #[error("the VNC server asks for a password and the account has none in the vault")]
    NeedsPassword,
    #[error("the VNC server refused the vaulted password: {0}")]
    AuthFailed(String),
    #[error("the VNC server sent a malformed message: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> RfbError {
    RfbError::Malformed(what.into())
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), RfbError> {
    r.read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| RfbError::Closed)
}

async fn u8_<R: AsyncRead + Unpin>(r: &mut R) -> Result<u8, RfbError> {
    r.read_u8().await.map_err(|_| RfbError::Closed)
}

async fn u16_<R: AsyncRead + Unpin>(r: &mut R) -> Result<u16, RfbError> {
    r.read_u16().await.map_err(|_| RfbError::Closed)
}

async fn u32_<R: AsyncRead + Unpin>(r: &mut R) -> Result<u32, RfbError> {
    r.read_u32().await.map_err(|_| RfbError::Closed)
}

/// A length-prefixed string (u32 length), at most `max` bytes, as lossy UTF-8.
async fn text<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<String, RfbError> {
    let len = u32_(r).await?;
    if len > max {
        return Err(malformed(format!("a text of {len} bytes (at most {max})")));
    }
    let mut buf = vec![0; len as usize];
    read_exact(r, &mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Skips `len` bytes without keeping them.
async fn skip<R: AsyncRead + Unpin>(r: &mut R, mut len: u64) -> Result<(), RfbError> {
    let mut buf = [0u8; 8192];
    while len > 0 {
        let n = usize::try_from(len.min(buf.len() as u64)).unwrap_or(buf.len());
        read_exact(r, buf.get_mut(..n).unwrap_or_default()).await?;
        len -= n as u64;
    }
    Ok(())
}

/// What the server said about its desktop once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub name: String,
}

/// Checks a framebuffer size against [`MAX_PIXELS`] (and that it is not empty).
pub fn check_size(width: u16, height: u16) -> Result<(), RfbError> {
    let pixels = u32::from(width) * u32::from(height);
    if pixels == 0 || pixels > MAX_PIXELS {
        return Err(malformed(format!(
            "a {width}x{height} desktop (at most {MAX_PIXELS} pixels)"
        )));
    }
    Ok(())
}

/// The VNC authentication response: the challenge encrypted with DES, the key being the
/// password's first 8 bytes (zero padded), each byte's bits reversed (RFB's historical quirk).
pub fn vnc_auth_response(password: &SecretString, challenge: &[u8; 16]) -> [u8; 16] {
    use des::cipher::{BlockCipherEncrypt, KeyInit};
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.expose_secret().as_bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new(&key.into());
    key.fill(0);
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(block);
        let mut arr = b.into();
        cipher.encrypt_block(&mut arr);
        block.copy_from_slice(arr.as_slice());
    }
    out
}

/// The start of the RFB 3.8 handshake: the version, then the security types the server
/// offers (at least one; none is the server's refusal, with its reason).
pub async fn security_types<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Vec<u8>, RfbError> {
    let mut version = [0u8; 12];
    read_exact(stream, &mut version).await?;
    if &version != b"RFB 003.008\n" {
        // Newer minor versions are answered with 3.8 (RFC 6143 section 7.1.1); older ones
        // are refused.
        let text = String::from_utf8_lossy(&version).trim_end().to_owned();
        let newer = version.starts_with(b"RFB 003.")
            && version.ends_with(b"\n")
            && version
                .get(8..11)
                .and_then(|minor| std::str::from_utf8(minor).ok())
                .and_then(|m| m.parse::<u16>().ok())
                .is_some_and(|minor| minor >= 8);
        if !newer {
            return Err(RfbError::Version(text));
        }
    }
    stream
        .write_all(b"RFB 003.008\n")
        .await
        .map_err(|_| RfbError::Closed)?;
    let count = u8_(stream).await?;
    if count == 0 {
        let reason = text(stream, 4096).await?;
        return Err(RfbError::Refused(reason));
    }
    let mut types = vec![0u8; usize::from(count)];
    read_exact(stream, &mut types).await?;
    Ok(types)
}

/// The security type Rampart uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    Vnc,
    VeNCrypt,
}

/// What authenticates the client once the security type (and VeNCrypt's TLS) is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// VNC authentication: the challenge encrypted with the password.
    Vnc,
    /// VeNCrypt's Plain: the user name and the password (inside TLS only).
    Plain,
}

/// Chooses among the `offered` security types. With `pinned` (the endpoint has a pinned
/// certificate) only VeNCrypt will do: a server that stops offering it is refused rather than
/// reached without TLS. Without a pin: VNC authentication when `password` is vaulted, else
/// None, as before; VeNCrypt only when the server offers nothing else (its certificate is then
/// named in the refusal, for an administrator to pin).
pub fn choose_security(offered: &[u8], password: bool, pinned: bool) -> Result<Security, RfbError> {
    let has = |t: u8| offered.contains(&t);
    if pinned {
        return if has(SECURITY_VENCRYPT) {
            Ok(Security::VeNCrypt)
        } else {
            Err(RfbError::NoVencrypt)
        };
    }
    if has(SECURITY_VNC) && password {
        Ok(Security::Vnc)
    } else if has(SECURITY_NONE) {
        Ok(Security::None)
    } else if has(SECURITY_VENCRYPT) {
        Ok(Security::VeNCrypt)
    } else if has(SECURITY_VNC) {
        Err(RfbError::NeedsPassword)
    } else {
        Err(RfbError::NoSecurityType)
    }
}

/// Sends the chosen type None or VNC authentication; returns what authenticates next.
pub async fn select<S: AsyncWrite + Unpin>(
    stream: &mut S,
    security: Security,
) -> Result<Auth, RfbError> {
    let (byte, auth) = match security {
        Security::None => (SECURITY_NONE, Auth::None),
        Security::Vnc => (SECURITY_VNC, Auth::Vnc),
        Security::VeNCrypt => return Err(malformed("VeNCrypt is negotiated by `vencrypt`")),
    };
    stream
        .write_all(&[byte])
        .await
        .map_err(|_| RfbError::Closed)?;
    Ok(auth)
}

/// VeNCrypt up to its TLS handshake: the type, version 0.2, and an X509 subtype (X509Vnc or
/// X509Plain when a password is vaulted, else X509None). The caller then does TLS on the
/// same stream, and [`authenticate`] inside it with the returned [`Auth`].
pub async fn vencrypt<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    password: bool,
) -> Result<Auth, RfbError> {
    stream
        .write_all(&[SECURITY_VENCRYPT])
        .await
        .map_err(|_| RfbError::Closed)?;
    let major = u8_(stream).await?;
    let minor = u8_(stream).await?;
    if (major, minor) < (0, 2) {
        return Err(RfbError::VencryptVersion(major, minor));
    }
    stream
        .write_all(&[0, 2])
        .await
        .map_err(|_| RfbError::Closed)?;
    if u8_(stream).await? != 0 {
        return Err(RfbError::Refused("VeNCrypt version 0.2".to_owned()));
    }
    let count = u8_(stream).await?;
    let mut subtypes = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        subtypes.push(u32_(stream).await?);
    }
    let (subtype, auth) = choose_subtype(&subtypes, password)?;
    stream
        .write_all(&subtype.to_be_bytes())
        .await
        .map_err(|_| RfbError::Closed)?;
    if u8_(stream).await? != 1 {
        return Err(RfbError::Refused(format!("the VeNCrypt subtype {subtype}")));
    }
    Ok(auth)
}

/// An X509 subtype among `offered`: VNC authentication or Plain inside TLS when a password is
/// vaulted, else none; never an anonymous or unencrypted one.
fn choose_subtype(offered: &[u32], password: bool) -> Result<(u32, Auth), RfbError> {
    let has = |t: u32| offered.contains(&t);
    if password && has(X509_VNC) {
        Ok((X509_VNC, Auth::Vnc))
    } else if password && has(X509_PLAIN) {
        Ok((X509_PLAIN, Auth::Plain))
    } else if has(X509_NONE) {
        Ok((X509_NONE, Auth::None))
    } else if has(X509_VNC) || has(X509_PLAIN) {
        Err(RfbError::NeedsPassword)
    } else if offered.iter().any(|t| ANONYMOUS_TLS.contains(t)) {
        Err(RfbError::AnonymousTlsOnly)
    } else {
        Err(RfbError::NoVencryptSubtype)
    }
}

/// The rest of the handshake once the security type is set up (for VeNCrypt, inside its
/// TLS): `auth` with `login` and `password`, the SecurityResult, ClientInit (shared: other
/// viewers stay connected) and ServerInit.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    auth: Auth,
    login: &str,
    password: Option<&SecretString>,
) -> Result<ServerInit, RfbError> {
    match auth {
        Auth::None => {}
        Auth::Vnc => {
            let mut challenge = [0u8; 16];
            read_exact(stream, &mut challenge).await?;
            let Some(password) = password else {
                return Err(RfbError::NeedsPassword);
            };
            let mut response = vnc_auth_response(password, &challenge);
            let sent = stream.write_all(&response).await;
            response.fill(0);
            sent.map_err(|_| RfbError::Closed)?;
        }
        Auth::Plain => {
            let Some(password) = password else {
                return Err(RfbError::NeedsPassword);
            };
            let secret = password.expose_secret().as_bytes();
            let (Ok(login_len), Ok(secret_len)) =
                (u32::try_from(login.len()), u32::try_from(secret.len()))
            else {
                return Err(malformed("a user name or password too long for Plain"));
            };
            let mut message = Vec::with_capacity(8 + login.len() + secret.len());
            message.extend_from_slice(&login_len.to_be_bytes());
            message.extend_from_slice(&secret_len.to_be_bytes());
            message.extend_from_slice(login.as_bytes());
            message.extend_from_slice(secret);
            let sent = stream.write_all(&message).await;
            message.fill(0);
            sent.map_err(|_| RfbError::Closed)?;
        }
    }
    // 3.8 sends a SecurityResult for None too.
    match u32_(stream).await? {
        0 => {}
        _ => {
            let reason = text(stream, 4096).await.unwrap_or_default();
            return Err(RfbError::AuthFailed(reason));
        }
    }
    stream.write_all(&[1]).await.map_err(|_| RfbError::Closed)?;
    let width = u16_(stream).await?;
    let height = u16_(stream).await?;
    check_size(width, height)?;
    let mut format = [0u8; 16];
    read_exact(stream, &mut format).await?;
    let name = text(stream, 4096).await?;
    Ok(ServerInit {
        width,
        height,
        name,
    })
}

/// SetPixelFormat: 32 bits per pixel, depth 24, little endian, true colour, red in the lowest
/// byte, so each pixel's bytes are R, G, B, unused (the browser's RGBA with alpha to fill).
pub fn set_pixel_format() -> Vec<u8> {
    let mut m = vec![0u8, 0, 0, 0];
    m.extend_from_slice(&[32, 24, 0, 1]); // bpp, depth, big-endian: no, true colour: yes
    m.extend_from_slice(&255u16.to_be_bytes());
    m.extend_from_slice(&255u16.to_be_bytes());
    m.extend_from_slice(&255u16.to_be_bytes());
    m.extend_from_slice(&[0, 8, 16, 0, 0, 0]); // shifts, padding
    m
}

/// SetEncodings: Raw, CopyRect and the DesktopSize and ExtendedDesktopSize pseudo-encodings.
pub fn set_encodings() -> Vec<u8> {
    let encodings = [
        ENCODING_COPY_RECT,
        ENCODING_RAW,
        ENCODING_DESKTOP_SIZE,
        ENCODING_EXTENDED_DESKTOP_SIZE,
    ];
    let mut m = vec![2u8, 0];
    m.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
    for e in encodings {
        m.extend_from_slice(&e.to_be_bytes());
    }
    m
}

/// FramebufferUpdateRequest for the whole screen.
pub fn update_request(incremental: bool, width: u16, height: u16) -> Vec<u8> {
    let mut m = vec![3u8, u8::from(incremental), 0, 0, 0, 0];
    m.extend_from_slice(&width.to_be_bytes());
    m.extend_from_slice(&height.to_be_bytes());
    m
}

/// SetDesktopSize: the whole desktop `width`×`height` as one screen at 0,0, the server's
/// first screen (`id` and `flags` as its last ExtendedDesktopSize listed them).
pub fn set_desktop_size(width: u16, height: u16, screen: crate::screen::TargetScreen) -> Vec<u8> {
    let mut m = vec![SET_DESKTOP_SIZE, 0];
    m.extend_from_slice(&width.to_be_bytes());
    m.extend_from_slice(&height.to_be_bytes());
    m.extend_from_slice(&[1, 0]); // one screen, padding
    m.extend_from_slice(&screen.id.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]); // x, y
    m.extend_from_slice(&width.to_be_bytes());
    m.extend_from_slice(&height.to_be_bytes());
    m.extend_from_slice(&screen.flags.to_be_bytes());
    m
}

/// KeyEvent.
pub fn key_event(down: bool, keysym: u32) -> Vec<u8> {
    let mut m = vec![4u8, u8::from(down), 0, 0];
    m.extend_from_slice(&keysym.to_be_bytes());
    m
}

/// PointerEvent (`buttons`: bit 0 left, 1 middle, 2 right, 3/4 wheel up/down).
pub fn pointer_event(buttons: u8, x: u16, y: u16) -> Vec<u8> {
    let mut m = vec![5u8, buttons];
    m.extend_from_slice(&x.to_be_bytes());
    m.extend_from_slice(&y.to_be_bytes());
    m
}

/// A character RFB's cut text cannot carry (ClientCutText is Latin-1), the first of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLatin1(pub char);

impl std::fmt::Display for NotLatin1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the clipboard text was not sent: it has \u{201c}{}\u{201d} (U+{:04X}), and VNC's \
             clipboard carries Latin-1 only",
            self.0,
            u32::from(self.0)
        )
    }
}

/// ClientCutText: `text` as Latin-1 (RFB's clipboard encoding), or the first character Latin-1
/// does not have. A text with one is not sent altered (a pasted command or password would
/// arrive different from what the user copied): the caller refuses it.
pub fn client_cut_text(text: &str) -> Result<Vec<u8>, NotLatin1> {
    let latin1 = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| NotLatin1(c)))
        .collect::<Result<Vec<u8>, _>>()?;
    let mut m = vec![6u8, 0, 0, 0];
    m.extend_from_slice(&(latin1.len() as u32).to_be_bytes());
    m.extend_from_slice(&latin1);
    Ok(m)
}

/// The size of a ClientCutText's text: what the target gets.
pub fn client_cut_text_len(message: &[u8]) -> usize {
    message.len().saturating_sub(8)
}

/// ServerCutText's bytes as text. RFB says Latin-1, but x11vnc passes on whatever the X
/// selection's owner answered to its request for `STRING`, and owners such as `xclip` answer
/// with UTF-8 (a copied "é" arrived as "Ã©"). Bytes that are valid UTF-8 are read as UTF-8;
/// anything else is Latin-1 (Latin-1 text with accents is almost never valid UTF-8).
fn cut_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|not_utf8| {
        not_utf8
            .into_bytes()
            .iter()
            .map(|&b| char::from(b))
            .collect()
    })
}

pub use crate::screen::ServerEvent;

/// Reads the server's messages one event at a time, keeping the size it must check against.
#[derive(Debug)]
pub struct Reader {
    width: u16,
    height: u16,
    /// Rectangles left in the current update.
    rects_left: u16,
    /// Inside an update: its end is the next event once no rectangle is left.
    in_update: bool,
    /// The event after the one just returned (an ExtendedDesktopSize is two: the layout, then
    /// the resize).
    pending: Option<ServerEvent>,
}

impl Reader {
    pub fn new(init: &ServerInit) -> Self {
        Self {
            width: init.width,
            height: init.height,
            rects_left: 0,
            in_update: false,
            pending: None,
        }
    }

    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    fn inside(&self, x: u16, y: u16, w: u16, h: u16) -> bool {
        u32::from(x) + u32::from(w) <= u32::from(self.width)
            && u32::from(y) + u32::from(h) <= u32::from(self.height)
    }

    /// The next event. An error ends the session; what was read is not reusable.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<ServerEvent, RfbError> {
        if let Some(pending) = self.pending.take() {
            return Ok(pending);
        }
        if self.rects_left > 0 {
            self.rects_left -= 1;
            return self.rect(r).await;
        }
        if self.in_update {
            self.in_update = false;
            return Ok(ServerEvent::UpdateEnd);
        }
        match u8_(r).await? {
            0 => {
                let mut pad = [0u8; 1];
                read_exact(r, &mut pad).await?;
                let count = u16_(r).await?;
                if count == 0 {
                    return Ok(ServerEvent::UpdateEnd);
                }
                self.rects_left = count - 1;
                self.in_update = true;
                self.rect(r).await
            }
            // SetColourMapEntries: we asked for true colour, so a colour map is wrong.
            1 => Err(malformed("a colour map for a true-colour pixel format")),
            2 => Ok(ServerEvent::Bell),
            3 => {
                let mut pad = [0u8; 3];
                read_exact(r, &mut pad).await?;
                let len = u32_(r).await?;
                if len > MAX_TEXT {
                    skip(r, u64::from(len)).await?;
                    return Ok(ServerEvent::CutText { text: None, len });
                }
                let mut buf = vec![0u8; len as usize];
                read_exact(r, &mut buf).await?;
                Ok(ServerEvent::CutText {
                    text: Some(cut_text(buf)),
                    len,
                })
            }
            other => Err(malformed(format!("unknown message type {other}"))),
        }
    }

    async fn rect<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<ServerEvent, RfbError> {
        let x = u16_(r).await?;
        let y = u16_(r).await?;
        let w = u16_(r).await?;
        let h = u16_(r).await?;
        let encoding = r.read_i32().await.map_err(|_| RfbError::Closed)?;
        match encoding {
            ENCODING_DESKTOP_SIZE => {
                check_size(w, h)?;
                self.width = w;
                self.height = h;
                Ok(ServerEvent::Resize {
                    width: w,
                    height: h,
                })
            }
            // x: why (0 the server, 1 this client's request, 2 another client's), y: the status.
            ENCODING_EXTENDED_DESKTOP_SIZE => self.extended_desktop_size(r, x, y, w, h).await,
            ENCODING_RAW | ENCODING_COPY_RECT if !self.inside(x, y, w, h) => {
                Err(malformed(format!(
                    "a {w}x{h} rectangle at {x},{y} outside the {}x{} screen",
                    self.width, self.height
                )))
            }
            ENCODING_RAW => {
                // Inside the screen, so at most MAX_PIXELS * 4 bytes.
                let len = usize::from(w) * usize::from(h) * 4;
                let mut rgba = vec![0u8; len];
                read_exact(r, &mut rgba).await?;
                for px in rgba.chunks_exact_mut(4) {
                    if let Some(a) = px.get_mut(3) {
                        *a = 255;
                    }
                }
                Ok(ServerEvent::Raw {
                    x,
                    y,
                    w,
                    h,
                    rgba: rgba.into(),
                })
            }
            ENCODING_COPY_RECT => {
                let sx = u16_(r).await?;
                let sy = u16_(r).await?;
                if !self.inside(sx, sy, w, h) {
                    return Err(malformed("a copy from outside the screen"));
                }
                Ok(ServerEvent::Copy { x, y, w, h, sx, sy })
            }
            other => Err(malformed(format!(
                "an encoding it was not offered ({other})"
            ))),
        }
    }

    /// ExtendedDesktopSize's rectangle: the screens (at most [`MAX_SCREENS`], 16 bytes each:
    /// id, x, y, width, height, flags), then the layout event (the server takes SetDesktopSize,
    /// naming its first screen; a server listing none is taken as one screen of id 0) and,
    /// when `status` is 0 and the size changed, a resize. A refused request (a status other
    /// than 0) keeps the size.
    async fn extended_desktop_size<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        reason: u16,
        status: u16,
        w: u16,
        h: u16,
    ) -> Result<ServerEvent, RfbError> {
        let count = u8_(r).await?;
        if count > MAX_SCREENS {
            return Err(malformed(format!(
                "a desktop of {count} screens (at most {MAX_SCREENS})"
            )));
        }
        let mut pad = [0u8; 3];
        read_exact(r, &mut pad).await?;
        let mut first = None;
        for _ in 0..count {
            let mut screen = [0u8; 16];
            read_exact(r, &mut screen).await?;
            let [a, b, c, d, _, _, _, _, _, _, _, _, e, f, g, h] = screen;
            first.get_or_insert(crate::screen::TargetScreen {
                id: u32::from_be_bytes([a, b, c, d]),
                flags: u32::from_be_bytes([e, f, g, h]),
            });
        }
        let resize = if status == 0 {
            check_size(w, h)?;
            ((w, h) != (self.width, self.height)).then(|| {
                self.width = w;
                self.height = h;
                ServerEvent::Resize {
                    width: w,
                    height: h,
                }
            })
        } else {
            tracing::debug!(
                reason,
                status,
                "the VNC server refused a desktop size; it keeps {}x{}",
                self.width,
                self.height
            );
            None
        };
        self.pending = resize;
        Ok(ServerEvent::Resizable(first.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn init(w: u16, h: u16) -> ServerInit {
        ServerInit {
            width: w,
            height: h,
            name: String::new(),
        }
    }

    #[test]
    fn vnc_auth_uses_the_first_eight_bytes_of_the_password() {
        let challenge: [u8; 16] = core::array::from_fn(|i| i as u8);
        let a = vnc_auth_response(&SecretString::from("password".to_owned()), &challenge);
        let b = vnc_auth_response(
            &SecretString::from("password-longer".to_owned()),
            &challenge,
        );
        // Only the first 8 bytes of a password count.
        assert_eq!(a, b);
        // The same as `openssl enc -des-ecb -nopad` with the bit-reversed key 0e86ceceeef64e26.
        let expected = [
            0xb8, 0x66, 0x92, 0x41, 0x25, 0xc8, 0xee, 0xbb, 0x9d, 0xeb, 0xc1, 0xdb, 0x61, 0xc5,
            0x38, 0xe2,
        ];
        assert_eq!(a, expected);
    }

    #[tokio::test]
    async fn a_raw_rectangle_outside_the_screen_is_refused_before_reading_its_pixels() {
        let mut reader = Reader::new(&init(100, 100));
        let mut msg = vec![0u8, 0, 0, 1];
        for v in [90u16, 0, 20, 10] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        msg.extend_from_slice(&0i32.to_be_bytes());
        let err = reader.next(&mut &msg[..]).await.unwrap_err();
        assert!(matches!(err, RfbError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn an_oversized_desktop_size_is_refused() {
        let mut reader = Reader::new(&init(100, 100));
        let mut msg = vec![0u8, 0, 0, 1];
        for v in [0u16, 0, 65535, 65535] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        msg.extend_from_slice(&ENCODING_DESKTOP_SIZE.to_be_bytes());
        assert!(matches!(
            reader.next(&mut &msg[..]).await,
            Err(RfbError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn raw_and_copy_rectangles_are_read_in_order() {
        let mut reader = Reader::new(&init(4, 4));
        let mut msg = vec![0u8, 0, 0, 2];
        for v in [1u16, 1, 2, 1] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        msg.extend_from_slice(&0i32.to_be_bytes());
        msg.extend_from_slice(&[1, 2, 3, 0, 4, 5, 6, 0]);
        for v in [0u16, 0, 2, 2, 2, 2] {
            msg.extend_from_slice(&v.to_be_bytes());
            if msg.len() == 4 + 8 + 4 + 8 + 8 {
                msg.extend_from_slice(&1i32.to_be_bytes());
            }
        }
        let mut r = &msg[..];
        assert_eq!(
            reader.next(&mut r).await.unwrap(),
            ServerEvent::Raw {
                x: 1,
                y: 1,
                w: 2,
                h: 1,
                rgba: Bytes::from_static(&[1, 2, 3, 255, 4, 5, 6, 255])
            }
        );
        assert_eq!(
            reader.next(&mut r).await.unwrap(),
            ServerEvent::Copy {
                x: 0,
                y: 0,
                w: 2,
                h: 2,
                sx: 2,
                sy: 2
            }
        );
        assert_eq!(reader.next(&mut r).await.unwrap(), ServerEvent::UpdateEnd);
    }

    /// A FramebufferUpdate of one ExtendedDesktopSize rectangle: `reason`, `status`, the size,
    /// and `screens` (id, x, y, width, height, flags), the count said being `count`.
    fn extended_desktop_size(
        reason: u16,
        status: u16,
        (w, h): (u16, u16),
        count: u8,
        screens: &[(u32, u16, u16, u16, u16, u32)],
    ) -> Vec<u8> {
        let mut msg = vec![0u8, 0, 0, 1];
        for v in [reason, status, w, h] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        msg.extend_from_slice(&ENCODING_EXTENDED_DESKTOP_SIZE.to_be_bytes());
        msg.extend_from_slice(&[count, 0, 0, 0]);
        for (id, x, y, w, h, flags) in screens {
            msg.extend_from_slice(&id.to_be_bytes());
            for v in [x, y, w, h] {
                msg.extend_from_slice(&v.to_be_bytes());
            }
            msg.extend_from_slice(&flags.to_be_bytes());
        }
        msg
    }

    /// The events of one update, up to its end.
    async fn update_events(reader: &mut Reader, msg: &[u8]) -> Vec<ServerEvent> {
        let mut r = msg;
        let mut events = Vec::new();
        loop {
            let event = reader.next(&mut r).await.unwrap();
            if event == ServerEvent::UpdateEnd {
                return events;
            }
            events.push(event);
        }
    }

    #[tokio::test]
    async fn an_extended_desktop_size_names_the_first_screen_then_resizes() {
        let mut reader = Reader::new(&init(800, 600));
        let screens = [(7, 0, 0, 1024, 768, 3), (9, 1024, 0, 10, 10, 0)];
        let screen = ServerEvent::Resizable(crate::screen::TargetScreen { id: 7, flags: 3 });
        let resize = |width, height| ServerEvent::Resize { width, height };
        for (msg, want, size) in [
            // The answer to this client's request: the layout, then the new size.
            (
                extended_desktop_size(1, 0, (1024, 768), 2, &screens),
                vec![screen.clone(), resize(1024, 768)],
                (1024, 768),
            ),
            // The server's answer at the start (its size unchanged): the layout alone.
            (
                extended_desktop_size(0, 0, (1024, 768), 1, &screens[..1]),
                vec![screen.clone()],
                (1024, 768),
            ),
            // Refused (status 3, invalid layout): the size stays, whatever the rectangle says.
            (
                extended_desktop_size(1, 3, (0, 0), 1, &screens[..1]),
                vec![screen.clone()],
                (1024, 768),
            ),
            // No screen listed: taken as screen 0.
            (
                extended_desktop_size(0, 0, (640, 480), 0, &[]),
                vec![
                    ServerEvent::Resizable(crate::screen::TargetScreen::default()),
                    resize(640, 480),
                ],
                (640, 480),
            ),
        ] {
            assert_eq!(update_events(&mut reader, &msg).await, want);
            assert_eq!(reader.size(), size);
        }
    }

    #[tokio::test]
    async fn an_extended_desktop_size_too_large_with_too_many_screens_or_cut_short_is_refused() {
        let one = [(1, 0, 0, 100, 100, 0)];
        // Larger than MAX_PIXELS, or empty.
        for size in [(65535, 65535), (3841, 2160), (0, 100)] {
            let msg = extended_desktop_size(0, 0, size, 1, &one);
            let err = Reader::new(&init(100, 100))
                .next(&mut &msg[..])
                .await
                .unwrap_err();
            assert!(matches!(err, RfbError::Malformed(_)), "{size:?}: {err}");
        }
        // More screens than MAX_SCREENS: refused before they are read (none follow here).
        let msg = extended_desktop_size(0, 0, (100, 100), MAX_SCREENS + 1, &[]);
        let err = Reader::new(&init(100, 100))
            .next(&mut &msg[..])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("17 screens"), "{err}");
        // Fewer screens than it says, or a screen cut short: the connection is over.
        let msg = extended_desktop_size(0, 0, (100, 100), 2, &one);
        for len in [msg.len(), msg.len() - 1, 4 + 12 + 2] {
            let cut = msg.get(..len).unwrap();
            assert_eq!(
                Reader::new(&init(100, 100)).next(&mut &cut[..]).await,
                Err(RfbError::Closed),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn set_desktop_size_asks_for_one_screen_of_the_whole_size_naming_the_servers() {
        let screen = crate::screen::TargetScreen {
            id: 0x0102_0304,
            flags: 5,
        };
        assert_eq!(
            set_desktop_size(1280, 720, screen),
            [
                251, 0, 0x05, 0x00, 0x02, 0xd0, 1, 0, // type, pad, size, one screen, pad
                1, 2, 3, 4, 0, 0, 0, 0, // id, x, y
                0x05, 0x00, 0x02, 0xd0, 0, 0, 0, 5, // size, flags
            ]
        );
        assert!(set_encodings().ends_with(&(-308i32).to_be_bytes()));
    }

    #[tokio::test]
    async fn an_unknown_message_or_encoding_ends_the_session() {
        let mut reader = Reader::new(&init(4, 4));
        assert!(reader.next(&mut &[9u8][..]).await.is_err());
        let mut msg = vec![0u8, 0, 0, 1];
        for v in [0u16, 0, 1, 1] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        msg.extend_from_slice(&16i32.to_be_bytes());
        assert!(reader.next(&mut &msg[..]).await.is_err());
    }

    #[test]
    fn client_cut_text_is_latin1_and_a_text_latin1_cannot_carry_is_refused_not_altered() {
        // "é" is one byte in Latin-1 (two in UTF-8): the size sent is the Latin-1 one.
        let sent = client_cut_text("caf\u{e9}").unwrap();
        assert_eq!(sent, [6, 0, 0, 0, 0, 0, 0, 4, b'c', b'a', b'f', 0xe9]);
        assert_eq!(client_cut_text_len(&sent), 4);
        assert_eq!(client_cut_text("").unwrap(), [6, 0, 0, 0, 0, 0, 0, 0]);
        // Outside Latin-1 (the euro sign, a typographic quote, an emoji): refused, naming the
        // first such character, never sent as "?".
        for (text, first) in [
            ("5 \u{20ac}", '\u{20ac}'),
            ("it\u{2019}s caf\u{e9}", '\u{2019}'),
            ("ok \u{1f600}", '\u{1f600}'),
        ] {
            let refused = client_cut_text(text).unwrap_err();
            assert_eq!(refused, NotLatin1(first));
            let why = refused.to_string();
            assert!(why.contains("Latin-1") && why.contains(first), "{why}");
        }
    }

    #[tokio::test]
    async fn server_cut_text_is_read_as_utf8_when_valid_else_latin1() {
        for (bytes, want) in [
            (&b"caf\xc3\xa9"[..], "caf\u{e9}"),
            (&b"caf\xe9"[..], "caf\u{e9}"),
            (&b"plain"[..], "plain"),
        ] {
            let mut reader = Reader::new(&init(4, 4));
            let mut msg = vec![3u8, 0, 0, 0];
            msg.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            msg.extend_from_slice(bytes);
            assert_eq!(
                reader.next(&mut &msg[..]).await.unwrap(),
                ServerEvent::CutText {
                    text: Some(want.to_owned()),
                    len: bytes.len() as u32
                }
            );
        }
    }

    #[tokio::test]
    async fn a_huge_clipboard_is_skipped_not_kept() {
        let mut reader = Reader::new(&init(4, 4));
        let len = MAX_TEXT + 1;
        let mut msg = vec![3u8, 0, 0, 0];
        msg.extend_from_slice(&len.to_be_bytes());
        msg.resize(msg.len() + len as usize, b'a');
        assert_eq!(
            reader.next(&mut &msg[..]).await.unwrap(),
            ServerEvent::CutText { text: None, len }
        );
    }

    #[tokio::test]
    async fn the_handshake_answers_vnc_authentication_and_reads_server_init() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move {
            server.write_all(b"RFB 003.008\n").await.unwrap();
            let mut v = [0u8; 12];
            server.read_exact(&mut v).await.unwrap();
            assert_eq!(&v, b"RFB 003.008\n");
            server.write_all(&[2, 1, 2]).await.unwrap();
            assert_eq!(server.read_u8().await.unwrap(), 2);
            let challenge = [7u8; 16];
            server.write_all(&challenge).await.unwrap();
            let mut response = [0u8; 16];
            server.read_exact(&mut response).await.unwrap();
            let expected = vnc_auth_response(&SecretString::from("s3cret".to_owned()), &challenge);
            assert_eq!(response, expected);
            server.write_all(&0u32.to_be_bytes()).await.unwrap();
            assert_eq!(server.read_u8().await.unwrap(), 1);
            let mut init = Vec::new();
            init.extend_from_slice(&640u16.to_be_bytes());
            init.extend_from_slice(&480u16.to_be_bytes());
            init.extend_from_slice(&[0; 16]);
            init.extend_from_slice(&4u32.to_be_bytes());
            init.extend_from_slice(b"desk");
            server.write_all(&init).await.unwrap();
        });
        let password = SecretString::from("s3cret".to_owned());
        let init = plain_handshake(&mut client, Some(&password)).await.unwrap();
        assert_eq!(
            (init.width, init.height, init.name.as_str()),
            (640, 480, "desk")
        );
        serve.await.unwrap();
    }

    #[tokio::test]
    async fn an_old_protocol_version_is_refused() {
        let mut stream = tokio_test_stream(b"RFB 003.003\n");
        assert!(matches!(
            plain_handshake(&mut stream, None).await,
            Err(RfbError::Version(_))
        ));
    }

    /// The handshake of a server reached without TLS, as `vnc::connect` does it.
    async fn plain_handshake<S: AsyncRead + AsyncWrite + Unpin>(
        stream: &mut S,
        password: Option<&SecretString>,
    ) -> Result<ServerInit, RfbError> {
        let types = security_types(stream).await?;
        let security = choose_security(&types, password.is_some(), false)?;
        let auth = select(stream, security).await?;
        authenticate(stream, auth, "", password).await
    }

    #[test]
    fn a_pinned_endpoint_takes_only_vencrypt_and_an_unpinned_one_keeps_its_choice() {
        assert_eq!(
            choose_security(&[1, 2, 19], true, true),
            Ok(Security::VeNCrypt)
        );
        assert_eq!(choose_security(&[19], false, true), Ok(Security::VeNCrypt));
        assert_eq!(
            choose_security(&[1, 2], true, true),
            Err(RfbError::NoVencrypt)
        );
        assert_eq!(choose_security(&[2, 19], true, false), Ok(Security::Vnc));
        assert_eq!(choose_security(&[1, 19], false, false), Ok(Security::None));
        assert_eq!(choose_security(&[19], true, false), Ok(Security::VeNCrypt));
        assert_eq!(
            choose_security(&[2], false, false),
            Err(RfbError::NeedsPassword)
        );
        assert_eq!(
            choose_security(&[16, 30], true, false),
            Err(RfbError::NoSecurityType)
        );
    }

    #[test]
    fn vencrypt_subtypes_with_a_certificate_are_chosen_and_anonymous_ones_refused() {
        assert_eq!(
            choose_subtype(&[X509_NONE, X509_PLAIN, X509_VNC], true),
            Ok((X509_VNC, Auth::Vnc))
        );
        assert_eq!(
            choose_subtype(&[X509_PLAIN, 258], true),
            Ok((X509_PLAIN, Auth::Plain))
        );
        assert_eq!(
            choose_subtype(&[X509_VNC, X509_NONE], false),
            Ok((X509_NONE, Auth::None))
        );
        assert_eq!(
            choose_subtype(&[X509_VNC], false),
            Err(RfbError::NeedsPassword)
        );
        assert_eq!(
            choose_subtype(&[257, 258, 259], true),
            Err(RfbError::AnonymousTlsOnly)
        );
        // Subtypes without TLS (None, VncAuth, Plain) are never taken.
        assert_eq!(
            choose_subtype(&[1, 2, 256], true),
            Err(RfbError::NoVencryptSubtype)
        );
        assert_eq!(choose_subtype(&[], true), Err(RfbError::NoVencryptSubtype));
    }

    #[tokio::test]
    async fn vencrypt_0_2_is_negotiated_up_to_an_x509_subtype() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move {
            assert_eq!(server.read_u8().await.unwrap(), 19);
            server.write_all(&[0, 2]).await.unwrap();
            let mut version = [0u8; 2];
            server.read_exact(&mut version).await.unwrap();
            assert_eq!(version, [0, 2]);
            server.write_all(&[0, 3]).await.unwrap();
            for subtype in [258u32, X509_PLAIN, X509_VNC] {
                server.write_all(&subtype.to_be_bytes()).await.unwrap();
            }
            assert_eq!(server.read_u32().await.unwrap(), X509_VNC);
            server.write_all(&[1]).await.unwrap();
        });
        assert_eq!(vencrypt(&mut client, true).await, Ok(Auth::Vnc));
        serve.await.unwrap();
    }

    #[tokio::test]
    async fn a_server_offering_only_anonymous_tls_is_refused_before_a_subtype_is_sent() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move {
            assert_eq!(server.read_u8().await.unwrap(), 19);
            server.write_all(&[0, 2]).await.unwrap();
            let mut version = [0u8; 2];
            server.read_exact(&mut version).await.unwrap();
            server.write_all(&[0, 2]).await.unwrap();
            for subtype in [257u32, 258] {
                server.write_all(&subtype.to_be_bytes()).await.unwrap();
            }
            // Nothing more comes: the client closes.
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            rest
        });
        assert_eq!(
            vencrypt(&mut client, true).await,
            Err(RfbError::AnonymousTlsOnly)
        );
        drop(client);
        assert!(serve.await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn plain_sends_the_user_name_and_password_then_reads_server_init() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move {
            let mut head = [0u8; 8];
            server.read_exact(&mut head).await.unwrap();
            assert_eq!(head, [0, 0, 0, 3, 0, 0, 0, 6]);
            let mut credentials = [0u8; 9];
            server.read_exact(&mut credentials).await.unwrap();
            assert_eq!(&credentials, b"vncs3cret");
            server.write_all(&0u32.to_be_bytes()).await.unwrap();
            assert_eq!(server.read_u8().await.unwrap(), 1);
            let mut init = Vec::new();
            init.extend_from_slice(&320u16.to_be_bytes());
            init.extend_from_slice(&200u16.to_be_bytes());
            init.extend_from_slice(&[0; 16]);
            init.extend_from_slice(&0u32.to_be_bytes());
            server.write_all(&init).await.unwrap();
        });
        let password = SecretString::from("s3cret".to_owned());
        let init = authenticate(&mut client, Auth::Plain, "vnc", Some(&password))
            .await
            .unwrap();
        assert_eq!((init.width, init.height), (320, 200));
        serve.await.unwrap();
    }

    fn tokio_test_stream(bytes: &'static [u8]) -> tokio::io::DuplexStream {
        let (client, mut server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let _ = server.write_all(bytes).await;
            let mut sink = [0u8; 64];
            let _ = server.read(&mut sink).await;
        });
        client
    }
}
