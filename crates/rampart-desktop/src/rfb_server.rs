//! The RFB protocol (RFC 6143), server side, towards native VNC viewers (TigerVNC's
//! `vncviewer` and the like): version 3.8 only, the security type VeNCrypt (19) only, with
//! its subtype X509Plain (262) only: TLS with the node's certificate first, then a user name
//! and a password inside it. None and VNC authentication (DES) are never offered; neither are
//! VeNCrypt's anonymous TLS subtypes (TLSPlain and its kin are anonymous Diffie-Hellman, which
//! rustls does not do and which would leave the viewer nothing to check), nor the subtypes
//! without TLS.
//!
//! Written by hand, like `rfb`, the client side: the maintained RFB crates are clients
//! (`vnc-rs`) or servers without VeNCrypt that own the socket and the framebuffer (`rfb`,
//! `libvnc` bindings, which are C); what Rampart needs is the handshake above, six client
//! messages and one kind of update, each length checked before anything is kept.
//!
//! Protocol logic without I/O where it can be: [`parse_client_message`] takes bytes and gives
//! one whole message (or says more are needed), [`PixelFormat`] converts RGBA pixels into the
//! viewer's format, [`Damage`] gathers what changed, [`framebuffer_update`] writes an update.
//! The handshake's few steps ([`negotiate`], [`read_plain`], [`security_result`]) read and
//! write a stream, since TLS comes between them.
//!
//! INVARIANTS:
//! - Nothing the viewer sends is trusted: every message's length is known or bounded before it
//!   is kept ([`MAX_CUT_TEXT`], [`MAX_ENCODINGS`], [`MAX_CREDENTIAL`]); an unknown message
//!   type, a colour-map pixel format or an impossible one ends the connection with its reason.
//! - The password read from the viewer lives in a [`SecretString`] and is never logged.
//! - What waits to be sent is bounded: at most [`MAX_DAMAGE`] rectangles, merged beyond that.

use bytes::{BufMut, Bytes, BytesMut};
use rampart_core::SecretString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// The only security type offered.
pub const SECURITY_VENCRYPT: u8 = 19;
/// The only VeNCrypt subtype offered: TLS with a certificate, then Plain.
pub const X509_PLAIN: u32 = crate::rfb::X509_PLAIN;
/// The longest user name or password a viewer may send.
pub const MAX_CREDENTIAL: u32 = 1024;
/// The longest clipboard text a viewer may send (the relay passes at most
/// `session::MAX_CLIPBOARD` of it, and audits a larger one as refused).
pub const MAX_CUT_TEXT: u32 = crate::rfb::MAX_TEXT;
/// The most encodings a viewer may list.
pub const MAX_ENCODINGS: u16 = 1024;
/// Rectangles kept apart before they are merged into one.
pub const MAX_DAMAGE: usize = 32;
/// Encodings.
pub const ENCODING_RAW: i32 = crate::rfb::ENCODING_RAW;
pub const ENCODING_DESKTOP_SIZE: i32 = crate::rfb::ENCODING_DESKTOP_SIZE;
pub const ENCODING_EXTENDED_DESKTOP_SIZE: i32 = crate::rfb::ENCODING_EXTENDED_DESKTOP_SIZE;
/// ExtendedDesktopSize's reasons (the rectangle's x): the server's own change, and the answer
/// to the viewer's SetDesktopSize.
pub const REASON_SERVER: u16 = 0;
pub const REASON_CLIENT: u16 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ViewerError {
    #[error("the viewer closed the connection")]
    Closed,
    #[error("the viewer speaks {0:?}, not RFB 3.8")]
    Version(String),
    #[error("the viewer chose the security type {0}; Rampart offers only VeNCrypt (19)")]
    SecurityType(u8),
    #[error("the viewer speaks VeNCrypt {0}.{1}, not 0.2")]
    VencryptVersion(u8, u8),
    #[error("the viewer chose the VeNCrypt subtype {0}; Rampart offers only X509Plain (262)")]
    Subtype(u32),
    #[error("the viewer sent a malformed message: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> ViewerError {
    ViewerError::Malformed(what.into())
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), ViewerError> {
    stream
        .write_all(bytes)
        .await
        .map_err(|_| ViewerError::Closed)?;
    stream.flush().await.map_err(|_| ViewerError::Closed)
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<(), ViewerError> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ViewerError::Closed)
}

/// The handshake up to VeNCrypt's TLS: the version (3.8 both ways), the security types
/// (VeNCrypt alone), VeNCrypt's version (0.2) and subtypes (X509Plain alone). A viewer that
/// chooses anything else gets the failure its protocol step allows, and the error.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<(), ViewerError> {
    write(stream, b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    read_exact(stream, &mut version).await?;
    if &version != b"RFB 003.008\n" {
        return Err(ViewerError::Version(
            String::from_utf8_lossy(&version).trim_end().to_owned(),
        ));
    }
    write(stream, &[1, SECURITY_VENCRYPT]).await?;
    let mut chosen = [0u8; 1];
    read_exact(stream, &mut chosen).await?;
    let [chosen] = chosen;
    if chosen != SECURITY_VENCRYPT {
        let err = ViewerError::SecurityType(chosen);
        let _ = security_result(stream, Err(&err.to_string())).await;
        return Err(err);
    }
    write(stream, &[0, 2]).await?;
    let mut theirs = [0u8; 2];
    read_exact(stream, &mut theirs).await?;
    if let [major, minor] = theirs
        && (major, minor) != (0, 2)
    {
        let _ = write(stream, &[1]).await;
        return Err(ViewerError::VencryptVersion(major, minor));
    }
    let mut offer = vec![0u8, 1];
    offer.extend_from_slice(&X509_PLAIN.to_be_bytes());
    write(stream, &offer).await?;
    let mut subtype = [0u8; 4];
    read_exact(stream, &mut subtype).await?;
    let subtype = u32::from_be_bytes(subtype);
    if subtype != X509_PLAIN {
        let _ = write(stream, &[0]).await;
        return Err(ViewerError::Subtype(subtype));
    }
    write(stream, &[1]).await
}

/// Plain's credentials, read inside the TLS: the user name (UTF-8) and the password.
pub async fn read_plain<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(String, SecretString), ViewerError> {
    let mut lengths = [0u8; 8];
    read_exact(stream, &mut lengths).await?;
    let (user_len, password_len) = parse_plain_lengths(&lengths)?;
    let mut user = vec![0u8; user_len];
    read_exact(stream, &mut user).await?;
    let mut password = Zeroizing::new(vec![0u8; password_len]);
    read_exact(stream, &mut password).await?;
    let user =
        String::from_utf8(user).map_err(|_| malformed("a user name that is not UTF-8 text"))?;
    let password = std::str::from_utf8(&password)
        .map_err(|_| malformed("a password that is not UTF-8 text"))?;
    Ok((user, SecretString::from(password.to_owned())))
}

/// Plain's two lengths, each at most [`MAX_CREDENTIAL`].
pub fn parse_plain_lengths(lengths: &[u8; 8]) -> Result<(usize, usize), ViewerError> {
    let [u0, u1, u2, u3, p0, p1, p2, p3] = *lengths;
    let user = u32::from_be_bytes([u0, u1, u2, u3]);
    let password = u32::from_be_bytes([p0, p1, p2, p3]);
    if user > MAX_CREDENTIAL || password > MAX_CREDENTIAL {
        return Err(malformed(format!(
            "a user name of {user} bytes or a password of {password} (at most {MAX_CREDENTIAL})"
        )));
    }
    Ok((user as usize, password as usize))
}

/// SecurityResult: OK, or failed with the reason the viewer shows (RFB 3.8).
pub async fn security_result<S: AsyncWrite + Unpin>(
    stream: &mut S,
    result: Result<(), &str>,
) -> Result<(), ViewerError> {
    write(stream, &security_result_message(result)).await
}

/// The bytes of a SecurityResult.
pub fn security_result_message(result: Result<(), &str>) -> Vec<u8> {
    match result {
        Ok(()) => 0u32.to_be_bytes().to_vec(),
        Err(reason) => {
            let reason = reason.as_bytes();
            let mut m = 1u32.to_be_bytes().to_vec();
            m.extend_from_slice(&(reason.len() as u32).to_be_bytes());
            m.extend_from_slice(reason);
            m
        }
    }
}

/// ClientInit's one byte (whether other viewers may stay: the target's connection is always
/// shared, so it does not matter here).
pub async fn read_client_init<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(), ViewerError> {
    let mut shared = [0u8; 1];
    read_exact(stream, &mut shared).await
}

/// ServerInit: the desktop's size, [`PixelFormat::DEFAULT`], and its name.
pub fn server_init(width: u16, height: u16, name: &str) -> Vec<u8> {
    let name = name.as_bytes();
    let mut m = Vec::with_capacity(24 + name.len());
    m.extend_from_slice(&width.to_be_bytes());
    m.extend_from_slice(&height.to_be_bytes());
    m.extend_from_slice(&PixelFormat::DEFAULT.to_bytes());
    m.extend_from_slice(&(name.len() as u32).to_be_bytes());
    m.extend_from_slice(name);
    m
}

/// A true-colour pixel format the viewer asked for (RFB's PIXEL_FORMAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

impl PixelFormat {
    /// What ServerInit announces: 32 bits, depth 24, little endian, red in bits 16-23.
    pub const DEFAULT: Self = Self {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    /// Parses and checks SetPixelFormat's 16 bytes: true colour, 8, 16 or 32 bits per pixel,
    /// each channel's maximum non-zero and inside the pixel once shifted.
    pub fn parse(bytes: &[u8; 16]) -> Result<Self, ViewerError> {
        let [
            bpp,
            depth,
            big_endian,
            true_colour,
            r0,
            r1,
            g0,
            g1,
            b0,
            b1,
            rs,
            gs,
            bs,
            ..,
        ] = *bytes;
        if true_colour == 0 {
            return Err(malformed(
                "a colour-map pixel format (Rampart sends true colour only: choose 8, 16 or 32 \
                 bits per pixel with true colour)",
            ));
        }
        if !matches!(bpp, 8 | 16 | 32) {
            return Err(malformed(format!(
                "a pixel format of {bpp} bits per pixel (8, 16 or 32)"
            )));
        }
        let format = Self {
            bits_per_pixel: bpp,
            depth,
            big_endian: big_endian != 0,
            red_max: u16::from_be_bytes([r0, r1]),
            green_max: u16::from_be_bytes([g0, g1]),
            blue_max: u16::from_be_bytes([b0, b1]),
            red_shift: rs,
            green_shift: gs,
            blue_shift: bs,
        };
        for (max, shift) in format.channels() {
            let bits = 16 - max.leading_zeros();
            if max == 0 || u32::from(shift) + bits > u32::from(bpp) {
                return Err(malformed(format!(
                    "a colour channel (maximum {max}, shift {shift}) outside a {bpp}-bit pixel"
                )));
            }
        }
        Ok(format)
    }

    fn channels(&self) -> [(u16, u8); 3] {
        [
            (self.red_max, self.red_shift),
            (self.green_max, self.green_shift),
            (self.blue_max, self.blue_shift),
        ]
    }

    pub fn to_bytes(&self) -> [u8; 16] {
        let [r0, r1] = self.red_max.to_be_bytes();
        let [g0, g1] = self.green_max.to_be_bytes();
        let [b0, b1] = self.blue_max.to_be_bytes();
        [
            self.bits_per_pixel,
            self.depth,
            u8::from(self.big_endian),
            1,
            r0,
            r1,
            g0,
            g1,
            b0,
            b1,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
            0,
            0,
            0,
        ]
    }

    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// A converter from RGBA: each channel's 256 values scaled and shifted once.
    pub fn converter(&self) -> Converter {
        let table = |max: u16, shift: u8| -> Box<[u32; 256]> {
            let mut t = Box::new([0u32; 256]);
            for (v, slot) in t.iter_mut().enumerate() {
                let scaled = (v as u32 * u32::from(max) + 127) / 255;
                *slot = scaled << shift;
            }
            t
        };
        Converter {
            format: *self,
            red: table(self.red_max, self.red_shift),
            green: table(self.green_max, self.green_shift),
            blue: table(self.blue_max, self.blue_shift),
        }
    }
}

/// RGBA pixels into one [`PixelFormat`].
#[derive(Debug, Clone)]
pub struct Converter {
    format: PixelFormat,
    red: Box<[u32; 256]>,
    green: Box<[u32; 256]>,
    blue: Box<[u32; 256]>,
}

impl Converter {
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Appends `rgba` (4 bytes a pixel) in the viewer's format.
    pub fn convert(&self, rgba: &[u8], out: &mut Vec<u8>) {
        let bpp = self.format.bytes_per_pixel();
        out.reserve(rgba.len() / 4 * bpp);
        for px in rgba.chunks_exact(4) {
            let &[r, g, b, _] = px else { continue };
            // INVARIANT: each table has 256 entries, one for every u8.
            let at = |table: &[u32; 256], v: u8| table.get(usize::from(v)).copied().unwrap_or(0);
            let v = at(&self.red, r) | at(&self.green, g) | at(&self.blue, b);
            match (bpp, self.format.big_endian) {
                (4, false) => out.extend_from_slice(&v.to_le_bytes()),
                (4, true) => out.extend_from_slice(&v.to_be_bytes()),
                (2, false) => out.extend_from_slice(&(v as u16).to_le_bytes()),
                (2, true) => out.extend_from_slice(&(v as u16).to_be_bytes()),
                _ => out.push(v as u8),
            }
        }
    }
}

/// What a viewer sends once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    SetPixelFormat(PixelFormat),
    SetEncodings(Vec<i32>),
    UpdateRequest {
        incremental: bool,
        area: Rect,
    },
    Key {
        down: bool,
        keysym: u32,
    },
    Pointer {
        buttons: u8,
        x: u16,
        y: u16,
    },
    /// ClientCutText's bytes (Latin-1).
    CutText(Bytes),
    /// SetDesktopSize (ExtendedDesktopSize's request): the size the viewer asks for; its
    /// screen layout is read past (the target's one screen takes the whole size).
    SetDesktopSize {
        width: u16,
        height: u16,
    },
}

/// One whole message from the start of `buf` and its length, or `None` when more bytes are
/// needed. A length beyond its bound is an error before its bytes arrive, so a caller
/// buffering until a message is whole buffers at most `8 + MAX_CUT_TEXT` bytes.
pub fn parse_client_message(buf: &[u8]) -> Result<Option<(ClientMessage, usize)>, ViewerError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let u16_at = |at: usize| {
        buf.get(at..at + 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_be_bytes)
    };
    let u32_at = |at: usize| {
        buf.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let need = |len: usize| buf.len() >= len;
    match kind {
        0 => {
            if !need(20) {
                return Ok(None);
            }
            let format: [u8; 16] = buf
                .get(4..20)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default();
            Ok(Some((
                ClientMessage::SetPixelFormat(PixelFormat::parse(&format)?),
                20,
            )))
        }
        2 => {
            let Some(count) = u16_at(2) else {
                return Ok(None);
            };
            if count > MAX_ENCODINGS {
                return Err(malformed(format!(
                    "{count} encodings (at most {MAX_ENCODINGS})"
                )));
            }
            let len = 4 + 4 * usize::from(count);
            if !need(len) {
                return Ok(None);
            }
            let encodings = (0..usize::from(count))
                .filter_map(|i| u32_at(4 + 4 * i).map(|v| v as i32))
                .collect();
            Ok(Some((ClientMessage::SetEncodings(encodings), len)))
        }
        3 => {
            let (Some(x), Some(y), Some(w), Some(h)) = (u16_at(2), u16_at(4), u16_at(6), u16_at(8))
            else {
                return Ok(None);
            };
            let incremental = buf.get(1).is_some_and(|b| *b != 0);
            Ok(Some((
                ClientMessage::UpdateRequest {
                    incremental,
                    area: Rect { x, y, w, h },
                },
                10,
            )))
        }
        4 => {
            let Some(keysym) = u32_at(4) else {
                return Ok(None);
            };
            let down = buf.get(1).is_some_and(|b| *b != 0);
            Ok(Some((ClientMessage::Key { down, keysym }, 8)))
        }
        5 => {
            let (Some(x), Some(y)) = (u16_at(2), u16_at(4)) else {
                return Ok(None);
            };
            let buttons = buf.get(1).copied().unwrap_or_default();
            Ok(Some((ClientMessage::Pointer { buttons, x, y }, 6)))
        }
        6 => {
            let Some(len) = u32_at(4) else {
                return Ok(None);
            };
            if len > MAX_CUT_TEXT {
                // A negative length (the extended clipboard, never offered) lands here too.
                return Err(malformed(format!(
                    "a clipboard text of {len} bytes (at most {MAX_CUT_TEXT})"
                )));
            }
            let end = 8 + len as usize;
            match buf.get(8..end) {
                Some(text) => Ok(Some((
                    ClientMessage::CutText(Bytes::copy_from_slice(text)),
                    end,
                ))),
                None => Ok(None),
            }
        }
        251 => {
            let (Some(width), Some(height), Some(&screens)) = (u16_at(2), u16_at(4), buf.get(6))
            else {
                return Ok(None);
            };
            // At most 8 + 255 * 16 bytes: bounded by its one-byte count.
            let len = 8 + 16 * usize::from(screens);
            if !need(len) {
                return Ok(None);
            }
            Ok(Some((ClientMessage::SetDesktopSize { width, height }, len)))
        }
        other => Err(malformed(format!("unknown message type {other}"))),
    }
}

/// ClientCutText's Latin-1 bytes as text.
pub fn latin1_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// ServerCutText: `text` as Latin-1 (other characters become `?`).
pub fn server_cut_text(text: &str) -> Vec<u8> {
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    let mut m = vec![3u8, 0, 0, 0];
    m.extend_from_slice(&(latin1.len() as u32).to_be_bytes());
    m.extend_from_slice(&latin1);
    m
}

/// A rectangle of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
}

impl Rect {
    /// This rectangle cut to a `width` x `height` screen (`None`: nothing of it is inside).
    pub fn clip(self, width: u16, height: u16) -> Option<Rect> {
        let x1 = (u32::from(self.x) + u32::from(self.w)).min(u32::from(width));
        let y1 = (u32::from(self.y) + u32::from(self.h)).min(u32::from(height));
        let (x0, y0) = (u32::from(self.x), u32::from(self.y));
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        Some(Rect {
            x: self.x,
            y: self.y,
            w: (x1 - x0) as u16,
            h: (y1 - y0) as u16,
        })
    }

    /// Whether `other` lies wholly inside this rectangle.
    pub fn contains(self, other: Rect) -> bool {
        let end = |at: u16, len: u16| u32::from(at) + u32::from(len);
        self.x <= other.x
            && self.y <= other.y
            && end(other.x, other.w) <= end(self.x, self.w)
            && end(other.y, other.h) <= end(self.y, self.h)
    }

    fn union(self, other: Rect) -> Rect {
        let x0 = self.x.min(other.x);
        let y0 = self.y.min(other.y);
        let x1 =
            (u32::from(self.x) + u32::from(self.w)).max(u32::from(other.x) + u32::from(other.w));
        let y1 =
            (u32::from(self.y) + u32::from(self.h)).max(u32::from(other.y) + u32::from(other.h));
        Rect {
            x: x0,
            y: y0,
            w: u16::try_from(x1 - u32::from(x0)).unwrap_or(u16::MAX),
            h: u16::try_from(y1 - u32::from(y0)).unwrap_or(u16::MAX),
        }
    }
}

/// The parts of the screen that changed since the viewer last got them: at most
/// [`MAX_DAMAGE`] rectangles, none inside another; one more merges them all into their
/// bounding box.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Damage {
    rects: Vec<Rect>,
}

impl Damage {
    pub fn add(&mut self, rect: Rect) {
        if rect.w == 0 || rect.h == 0 || self.rects.iter().any(|r| r.contains(rect)) {
            return;
        }
        self.rects.retain(|r| !rect.contains(*r));
        if self.rects.len() >= MAX_DAMAGE {
            let merged = self.rects.iter().fold(rect, |all, r| all.union(*r));
            self.rects.clear();
            self.rects.push(merged);
        } else {
            self.rects.push(rect);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    pub fn clear(&mut self) {
        self.rects.clear();
    }

    pub fn take(&mut self) -> Vec<Rect> {
        std::mem::take(&mut self.rects)
    }
}

/// A native front's copy of the screen: the session's desktop stream applied to a
/// framebuffer, with what changed since the client last got it (the native VNC and RDP fronts
/// both send from it).
#[derive(Debug)]
pub struct Mirror {
    pub fb: crate::screen::Framebuffer,
    pub damage: Damage,
    /// The screen's size changed since the client last heard of it.
    pub resized: bool,
}

impl Mirror {
    pub fn new((width, height): (u16, u16)) -> Self {
        Self {
            fb: crate::screen::Framebuffer::new(width, height),
            damage: Damage::default(),
            resized: false,
        }
    }

    /// The whole screen.
    pub fn whole(&self) -> Rect {
        let (w, h) = self.fb.size();
        Rect { x: 0, y: 0, w, h }
    }

    /// One message of the desktop stream (as the browser gets it) applied to the screen.
    pub fn apply(&mut self, message: &[u8]) -> Result<(), String> {
        let before = self.fb.size();
        self.fb.apply_message(message)?;
        let field = |i: usize| {
            message
                .get(1 + 2 * i..3 + 2 * i)
                .and_then(|b| b.try_into().ok())
                .map(u16::from_be_bytes)
                .unwrap_or_default()
        };
        match message.first() {
            Some(b'I' | b'K') if self.fb.size() != before => {
                self.resized = true;
                self.damage.clear();
                self.damage.add(self.whole());
            }
            Some(b'Z' | b'C') => self.damage.add(Rect {
                x: field(0),
                y: field(1),
                w: field(2),
                h: field(3),
            }),
            _ => {}
        }
        Ok(())
    }
}

/// How an update tells the viewer the screen's size, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeNotice {
    /// The DesktopSize pseudo-rectangle.
    DesktopSize,
    /// The ExtendedDesktopSize pseudo-rectangle with one screen of the whole size: `reason`
    /// ([`REASON_SERVER`], [`REASON_CLIENT`]) and its status (0: done).
    Extended { reason: u16 },
}

/// A FramebufferUpdate: the size's pseudo-rectangle first when `size` says so, then each
/// rectangle's pixels (Raw) from `rgba` (the screen, `width` pixels a row) in the viewer's
/// format. Rectangles are clipped to the screen.
pub fn framebuffer_update(
    rgba: &[u8],
    (width, height): (u16, u16),
    rects: &[Rect],
    size: Option<SizeNotice>,
    converter: &Converter,
) -> Bytes {
    let rects: Vec<Rect> = rects.iter().filter_map(|r| r.clip(width, height)).collect();
    let count = rects.len() + usize::from(size.is_some());
    let pixels: usize = rects
        .iter()
        .map(|r| usize::from(r.w) * usize::from(r.h))
        .sum();
    let mut m =
        BytesMut::with_capacity(24 + 12 * count + pixels * converter.format.bytes_per_pixel());
    m.put_u8(0);
    m.put_u8(0);
    m.put_u16(u16::try_from(count).unwrap_or(u16::MAX));
    match size {
        None => {}
        Some(SizeNotice::DesktopSize) => {
            for v in [0, 0, width, height] {
                m.put_u16(v);
            }
            m.put_i32(ENCODING_DESKTOP_SIZE);
        }
        Some(SizeNotice::Extended { reason }) => {
            for v in [reason, 0, width, height] {
                m.put_u16(v);
            }
            m.put_i32(ENCODING_EXTENDED_DESKTOP_SIZE);
            // One screen: its count and padding, then id 0 at 0,0 of the whole size, flags 0.
            m.put_u32(1 << 24);
            m.put_u32(0);
            for v in [0, 0, width, height] {
                m.put_u16(v);
            }
            m.put_u32(0);
        }
    }
    let stride = usize::from(width) * 4;
    let mut out = Vec::new();
    for r in rects {
        for v in [r.x, r.y, r.w, r.h] {
            m.put_u16(v);
        }
        m.put_i32(ENCODING_RAW);
        for row in 0..usize::from(r.h) {
            let start = (usize::from(r.y) + row) * stride + usize::from(r.x) * 4;
            let end = start + usize::from(r.w) * 4;
            out.clear();
            converter.convert(rgba.get(start..end).unwrap_or_default(), &mut out);
            m.extend_from_slice(&out);
        }
    }
    m.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_bytes(bpp: u8, true_colour: u8, maxes: [u16; 3], shifts: [u8; 3]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = bpp;
        b[1] = bpp.min(24);
        b[3] = true_colour;
        b[4..6].copy_from_slice(&maxes[0].to_be_bytes());
        b[6..8].copy_from_slice(&maxes[1].to_be_bytes());
        b[8..10].copy_from_slice(&maxes[2].to_be_bytes());
        b[10..13].copy_from_slice(&shifts);
        b
    }

    fn convert(format: PixelFormat, rgba: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        format.converter().convert(rgba, &mut out);
        out
    }

    #[test]
    fn pixels_convert_to_32_16_and_8_bit_true_colour() {
        let px = [0x12, 0xab, 0x34, 255];
        // 32 bits, little endian, red at 16: B G R X in memory.
        assert_eq!(convert(PixelFormat::DEFAULT, &px), [0x34, 0xab, 0x12, 0]);
        let big = PixelFormat {
            big_endian: true,
            ..PixelFormat::DEFAULT
        };
        assert_eq!(convert(big, &px), [0, 0x12, 0xab, 0x34]);
        // RGB565 little endian: r 0x12*31/255=2, g 0xab*63/255=42, b 0x34*31/255=6.
        let rgb565 = PixelFormat::parse(&format_bytes(16, 1, [31, 63, 31], [11, 5, 0])).unwrap();
        let v: u16 = (2 << 11) | (42 << 5) | 6;
        assert_eq!(convert(rgb565, &px), v.to_le_bytes());
        // BGR233 (TigerVNC's 8-bit): r max 7 at 0, g max 7 at 3, b max 3 at 6.
        let bgr233 = PixelFormat::parse(&format_bytes(8, 1, [7, 7, 3], [0, 3, 6])).unwrap();
        let white = [255, 255, 255, 255];
        assert_eq!(convert(bgr233, &white), [0xff]);
        assert_eq!(convert(bgr233, &[255, 0, 0, 255]), [0x07]);
        assert_eq!(convert(bgr233, &[0, 0, 255, 255]), [0xc0]);
    }

    #[test]
    fn colour_maps_and_impossible_formats_are_refused_with_a_reason() {
        let colour_map = PixelFormat::parse(&format_bytes(8, 0, [7, 7, 3], [0, 3, 6]));
        assert!(
            matches!(&colour_map, Err(ViewerError::Malformed(why)) if why.contains("colour-map")),
            "{colour_map:?}"
        );
        for bad in [
            format_bytes(24, 1, [255, 255, 255], [16, 8, 0]),
            format_bytes(8, 1, [255, 7, 3], [1, 3, 6]),
            format_bytes(16, 1, [0, 63, 31], [11, 5, 0]),
            format_bytes(32, 1, [255, 255, 255], [30, 8, 0]),
        ] {
            assert!(PixelFormat::parse(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            PixelFormat::parse(&PixelFormat::DEFAULT.to_bytes()),
            Ok(PixelFormat::DEFAULT)
        );
    }

    #[test]
    fn each_client_message_is_parsed_whole_or_waits_for_more() {
        let mut pf = vec![0u8, 0, 0, 0];
        pf.extend_from_slice(&PixelFormat::DEFAULT.to_bytes());
        let mut enc = vec![2u8, 0, 0, 2];
        enc.extend_from_slice(&0i32.to_be_bytes());
        enc.extend_from_slice(&(-223i32).to_be_bytes());
        let cases: Vec<(Vec<u8>, ClientMessage)> = vec![
            (pf, ClientMessage::SetPixelFormat(PixelFormat::DEFAULT)),
            (enc, ClientMessage::SetEncodings(vec![0, -223])),
            (
                vec![3, 1, 0, 1, 0, 2, 0, 3, 0, 4],
                ClientMessage::UpdateRequest {
                    incremental: true,
                    area: Rect {
                        x: 1,
                        y: 2,
                        w: 3,
                        h: 4,
                    },
                },
            ),
            (
                vec![4, 1, 0, 0, 0, 0, 0xff, 0x0d],
                ClientMessage::Key {
                    down: true,
                    keysym: 0xff0d,
                },
            ),
            (
                vec![5, 1, 0, 7, 0, 9],
                ClientMessage::Pointer {
                    buttons: 1,
                    x: 7,
                    y: 9,
                },
            ),
            (
                vec![6, 0, 0, 0, 0, 0, 0, 2, b'h', 0xe9],
                ClientMessage::CutText(Bytes::from_static(&[b'h', 0xe9])),
            ),
            // SetDesktopSize for 1024x768 with one screen (its 16 bytes read past).
            (
                [vec![251, 0, 4, 0, 3, 0, 1, 0], vec![7; 16]].concat(),
                ClientMessage::SetDesktopSize {
                    width: 1024,
                    height: 768,
                },
            ),
        ];
        for (bytes, want) in cases {
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse_client_message(&bytes[..cut]),
                    Ok(None),
                    "{want:?} cut at {cut}"
                );
            }
            let mut more = bytes.clone();
            more.extend_from_slice(&[5, 0]);
            assert_eq!(parse_client_message(&more), Ok(Some((want, bytes.len()))));
        }
        assert_eq!(latin1_text(&[b'h', 0xe9]), "h\u{e9}");
    }

    #[test]
    fn oversized_and_unknown_messages_are_refused_before_their_bytes_arrive() {
        // A clipboard of 4 GiB, and a negative (extended clipboard) one.
        for len in [u32::MAX, MAX_CUT_TEXT + 1, 0x8000_0010] {
            let mut m = vec![6u8, 0, 0, 0];
            m.extend_from_slice(&len.to_be_bytes());
            assert!(
                matches!(parse_client_message(&m), Err(ViewerError::Malformed(_))),
                "{len}"
            );
        }
        let encodings = [2u8, 0, 0xff, 0xff];
        assert!(parse_client_message(&encodings).is_err());
        for kind in [1u8, 7, 150, 248, 250, 255] {
            assert!(parse_client_message(&[kind, 0, 0, 0]).is_err(), "{kind}");
        }
        let colour_map = format_bytes(8, 0, [7, 7, 3], [0, 3, 6]);
        let mut m = vec![0u8, 0, 0, 0];
        m.extend_from_slice(&colour_map);
        assert!(parse_client_message(&m).is_err());
        // Plain's lengths are bounded too.
        let mut lengths = [0u8; 8];
        lengths[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_plain_lengths(&lengths).is_err());
        lengths[..4].copy_from_slice(&5u32.to_be_bytes());
        lengths[4..].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(parse_plain_lengths(&lengths), Ok((5, 7)));
    }

    #[test]
    fn damage_is_bounded_and_an_update_carries_the_viewer_s_pixels() {
        let mut damage = Damage::default();
        for i in 0..(MAX_DAMAGE as u16 * 3) {
            damage.add(Rect {
                x: i,
                y: i,
                w: 1,
                h: 1,
            });
            assert!(damage.rects.len() <= MAX_DAMAGE);
        }
        let all = damage.take();
        assert!(all.iter().any(|r| r.x == 0 && r.w >= 60), "{all:?}");
        assert!(damage.is_empty());

        // A 2x2 screen; the rectangle of its right column, and one hanging off the screen.
        let rgba = [
            1, 2, 3, 255, 4, 5, 6, 255, //
            7, 8, 9, 255, 10, 11, 12, 255,
        ];
        let rects = [
            Rect {
                x: 1,
                y: 0,
                w: 1,
                h: 2,
            },
            Rect {
                x: 5,
                y: 5,
                w: 9,
                h: 9,
            },
        ];
        let converter = PixelFormat::DEFAULT.converter();
        let update = |size| framebuffer_update(&rgba, (2, 2), &rects, size, &converter);
        let mut pixels = vec![0, 1, 0, 0, 0, 1, 0, 2];
        pixels.extend_from_slice(&0i32.to_be_bytes());
        pixels.extend_from_slice(&[6, 5, 4, 0, 12, 11, 10, 0]);

        let mut want = vec![0u8, 0, 0, 2];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 2]);
        want.extend_from_slice(&ENCODING_DESKTOP_SIZE.to_be_bytes());
        want.extend_from_slice(&pixels);
        assert_eq!(&update(Some(SizeNotice::DesktopSize))[..], &want[..]);

        // The answer to the viewer's request: reason 1, status 0, one screen (id 0) of 2x2.
        let mut want = vec![0u8, 0, 0, 2];
        want.extend_from_slice(&[0, 1, 0, 0, 0, 2, 0, 2]);
        want.extend_from_slice(&ENCODING_EXTENDED_DESKTOP_SIZE.to_be_bytes());
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0]);
        want.extend_from_slice(&pixels);
        let reason = REASON_CLIENT;
        assert_eq!(
            &update(Some(SizeNotice::Extended { reason }))[..],
            &want[..]
        );

        let mut want = vec![0u8, 0, 0, 1];
        want.extend_from_slice(&pixels);
        assert_eq!(&update(None)[..], &want[..]);
    }

    #[tokio::test]
    async fn the_handshake_offers_only_vencrypt_x509plain_and_refuses_anything_else() {
        // A viewer that follows the offer.
        let (mut viewer, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move { negotiate(&mut server).await });
        let mut got = [0u8; 12];
        viewer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"RFB 003.008\n");
        viewer.write_all(b"RFB 003.008\n").await.unwrap();
        let mut types = [0u8; 2];
        viewer.read_exact(&mut types).await.unwrap();
        assert_eq!(types, [1, 19], "only VeNCrypt is offered");
        viewer.write_all(&[19]).await.unwrap();
        let mut version = [0u8; 2];
        viewer.read_exact(&mut version).await.unwrap();
        assert_eq!(version, [0, 2]);
        viewer.write_all(&[0, 2]).await.unwrap();
        let mut subtypes = [0u8; 6];
        viewer.read_exact(&mut subtypes).await.unwrap();
        assert_eq!(subtypes, [0, 1, 0, 0, 1, 6], "only X509Plain is offered");
        viewer.write_all(&X509_PLAIN.to_be_bytes()).await.unwrap();
        assert_eq!(viewer.read_u8().await.unwrap(), 1);
        assert_eq!(serve.await.unwrap(), Ok(()));

        // A viewer that picks VNC authentication gets a failed SecurityResult with a reason.
        let (mut viewer, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move { negotiate(&mut server).await });
        let mut head = [0u8; 14];
        viewer.read_exact(&mut head[..12]).await.unwrap();
        viewer.write_all(b"RFB 003.008\n").await.unwrap();
        viewer.read_exact(&mut head[12..]).await.unwrap();
        viewer.write_all(&[2]).await.unwrap();
        assert_eq!(viewer.read_u32().await.unwrap(), 1);
        let len = viewer.read_u32().await.unwrap();
        let mut reason = vec![0u8; len as usize];
        viewer.read_exact(&mut reason).await.unwrap();
        assert!(String::from_utf8_lossy(&reason).contains("only VeNCrypt"));
        assert_eq!(serve.await.unwrap(), Err(ViewerError::SecurityType(2)));

        // An RFB 3.3 viewer is refused.
        let (mut viewer, mut server) = tokio::io::duplex(4096);
        let serve = tokio::spawn(async move { negotiate(&mut server).await });
        viewer.read_exact(&mut head[..12]).await.unwrap();
        viewer.write_all(b"RFB 003.003\n").await.unwrap();
        assert!(matches!(serve.await.unwrap(), Err(ViewerError::Version(_))));
    }

    #[tokio::test]
    async fn plain_credentials_are_read_and_bounded() {
        let mut m = Vec::new();
        m.extend_from_slice(&14u32.to_be_bytes());
        m.extend_from_slice(&6u32.to_be_bytes());
        m.extend_from_slice(b"alice@vnc@deskt0ken");
        m.push(b'!');
        let (user, password) = read_plain(&mut &m[..]).await.unwrap();
        assert_eq!(user, "alice@vnc@desk");
        assert_eq!(
            rampart_core::ExposeSecret::expose_secret(&password),
            "t0ken!"
        );
        let mut huge = Vec::new();
        huge.extend_from_slice(&(MAX_CREDENTIAL + 1).to_be_bytes());
        huge.extend_from_slice(&1u32.to_be_bytes());
        assert!(matches!(
            read_plain(&mut &huge[..]).await,
            Err(ViewerError::Malformed(_))
        ));
    }
}
