//! PostgreSQL wire protocol v3 framing: bounded reads of the startup packet and of typed
//! messages, and the few messages Rampart writes itself.
//!
//! INVARIANT: nothing read from the network is trusted for a size: a startup packet is at most
//! [`MAX_STARTUP`] bytes and any other message at most [`MAX_MESSAGE`]; a length outside that
//! ends the connection with an error, before anything is allocated for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest startup packet accepted (PostgreSQL itself allows 10000 bytes).
pub const MAX_STARTUP: usize = 10_000;
/// The largest message accepted either way (a query text, a bound value, a data row).
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;
/// Startup request codes.
pub const PROTOCOL_3: u32 = 196_608;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// A protocol error: the connection ends with this line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for WireError {
    fn from(err: std::io::Error) -> Self {
        WireError(format!("connection error: {}", err.kind()))
    }
}

fn wire(text: impl Into<String>) -> WireError {
    WireError(text.into())
}

/// The first packet of a connection (no type byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel {
        pid: u32,
        key: u32,
    },
    /// Protocol 3.0 with its parameters, in order.
    Params(Vec<(String, String)>),
}

/// Reads one startup packet.
pub async fn read_startup(io: &mut (impl AsyncRead + Unpin)) -> Result<Startup, WireError> {
    let len = io.read_u32().await? as usize;
    if !(8..=MAX_STARTUP).contains(&len) {
        return Err(wire("invalid startup packet length"));
    }
    let mut body = vec![0u8; len - 4];
    io.read_exact(&mut body).await?;
    let mut body = Bytes::from(body);
    let code = body.get_u32();
    match code {
        SSL_REQUEST => Ok(Startup::Ssl),
        GSSENC_REQUEST => Ok(Startup::GssEnc),
        CANCEL_REQUEST => {
            if body.remaining() != 8 {
                return Err(wire("invalid cancel request"));
            }
            Ok(Startup::Cancel {
                pid: body.get_u32(),
                key: body.get_u32(),
            })
        }
        PROTOCOL_3 => {
            let mut params = Vec::new();
            loop {
                let name = cstring(&mut body)?;
                if name.is_empty() {
                    break;
                }
                let value = cstring(&mut body)?;
                if params.len() >= 64 {
                    return Err(wire("too many startup parameters"));
                }
                params.push((name, value));
            }
            Ok(Startup::Params(params))
        }
        other => Err(wire(format!(
            "unsupported frontend protocol {}.{}: Rampart speaks 3.0",
            other >> 16,
            other & 0xffff
        ))),
    }
}

/// Reads a NUL-terminated UTF-8 string from `body`.
pub fn cstring(body: &mut Bytes) -> Result<String, WireError> {
    let end = body
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| wire("a string without its terminator"))?;
    let text = body.split_to(end);
    body.advance(1);
    String::from_utf8(text.to_vec()).map_err(|_| wire("a string that is not UTF-8"))
}

/// One typed message: its type byte and its body (without the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub body: Bytes,
}

impl Message {
    /// The message as it goes on the wire.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.tag);
        out.put_u32(u32::try_from(self.body.len() + 4).unwrap_or(u32::MAX));
        out.put_slice(&self.body);
    }
}

/// Splits the whole messages at the front of `buf` off it; what remains is an incomplete one.
/// A length outside 4..=[`MAX_MESSAGE`] + 4 is an error.
pub fn split_messages(buf: &mut BytesMut) -> Result<Option<Bytes>, WireError> {
    let mut end = 0usize;
    while let Some(header) = buf.get(end..end + 5) {
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(header.get(1..5).unwrap_or(&[0, 0, 0, 0]));
        let len = u32::from_be_bytes(len_bytes) as usize;
        if !(4..=MAX_MESSAGE + 4).contains(&len) {
            return Err(wire("a message of invalid length"));
        }
        if buf.len() < end + 1 + len {
            break;
        }
        end += 1 + len;
    }
    if end == 0 {
        return Ok(None);
    }
    Ok(Some(buf.split_to(end).freeze()))
}

/// Iterates over whole messages (as [`split_messages`] returned them).
pub fn messages(mut frames: Bytes) -> impl Iterator<Item = Message> {
    std::iter::from_fn(move || {
        if frames.remaining() < 5 {
            return None;
        }
        let tag = frames.get_u8();
        let len = (frames.get_u32() as usize)
            .saturating_sub(4)
            .min(frames.remaining());
        let body = frames.split_to(len);
        Some(Message { tag, body })
    })
}

/// Reads one whole message (used during the login phases, before the relay).
pub async fn read_message(
    io: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Message, WireError> {
    let tag = io.read_u8().await?;
    let len = io.read_u32().await? as usize;
    if !(4..=max + 4).contains(&len) {
        return Err(wire("a message of invalid length"));
    }
    let mut body = vec![0u8; len - 4];
    io.read_exact(&mut body).await?;
    Ok(Message {
        tag,
        body: Bytes::from(body),
    })
}

pub async fn write_message(
    io: &mut (impl AsyncWrite + Unpin),
    tag: u8,
    body: &[u8],
) -> Result<(), WireError> {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    Message {
        tag,
        body: Bytes::copy_from_slice(body),
    }
    .encode(&mut out);
    io.write_all(&out).await?;
    io.flush().await?;
    Ok(())
}

/// An `ErrorResponse` with severity, SQLSTATE code and message.
pub fn error_response(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    body
}

/// Writes an `ErrorResponse` (best effort: the connection ends after it anyway).
pub async fn send_error(
    io: &mut (impl AsyncWrite + Unpin),
    severity: &str,
    code: &str,
    message: &str,
) {
    let _ = write_message(io, b'E', &error_response(severity, code, message)).await;
}

/// The fields of an `ErrorResponse` or `NoticeResponse` body, by field type.
pub fn error_fields(body: &Bytes) -> Vec<(u8, String)> {
    let mut body = body.clone();
    let mut fields = Vec::new();
    while body.has_remaining() {
        let field = body.get_u8();
        if field == 0 {
            break;
        }
        match cstring(&mut body) {
            Ok(value) => fields.push((field, value)),
            Err(_) => break,
        }
        if fields.len() > 32 {
            break;
        }
    }
    fields
}

/// `SEVERITY CODE: message` of an error body.
pub fn error_summary(body: &Bytes) -> String {
    let fields = error_fields(body);
    let get = |tag: u8| {
        fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    format!("{} {}: {}", get(b'S'), get(b'C'), get(b'M'))
}

/// A startup message with `params`.
pub fn startup_message(params: &[(String, String)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.put_u32(PROTOCOL_3);
    for (name, value) in params {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_u32(u32::try_from(body.len() + 4).unwrap_or(u32::MAX));
    out.extend_from_slice(&body);
    out
}

/// An `SSLRequest`: Rampart asks the target for TLS before its startup message.
pub fn ssl_request() -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    out.put_u32(8);
    out.put_u32(SSL_REQUEST);
    out
}

/// A cancel request for `pid`/`key`.
pub fn cancel_request(pid: u32, key: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.put_u32(16);
    out.put_u32(CANCEL_REQUEST);
    out.put_u32(pid);
    out.put_u32(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_incomplete_tail_and_refuses_huge_lengths() {
        let mut buf = BytesMut::new();
        Message {
            tag: b'Q',
            body: Bytes::from_static(b"select 1\0"),
        }
        .encode(&mut buf);
        buf.put_slice(&[b'Q', 0, 0]);
        let whole = split_messages(&mut buf).unwrap().unwrap();
        assert_eq!(messages(whole).count(), 1);
        assert_eq!(buf.len(), 3);
        let mut huge = BytesMut::from(&[b'Q', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(split_messages(&mut huge).is_err());
        let mut short = BytesMut::from(&[b'Q', 0, 0, 0, 2][..]);
        assert!(split_messages(&mut short).is_err());
    }

    #[tokio::test]
    async fn startup_refuses_bad_lengths() {
        let mut input: &[u8] = &[0, 0, 0x7f, 0xff, 0, 0, 0, 0];
        assert!(read_startup(&mut input).await.is_err());
        let mut tiny: &[u8] = &[0, 0, 0, 4];
        assert!(read_startup(&mut tiny).await.is_err());
    }
}
