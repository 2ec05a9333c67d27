//! MySQL client/server protocol framing: packets (3-byte length, sequence number, payload),
//! length-encoded integers and strings, and the packets Rampart writes itself.
//!
//! INVARIANT: nothing read from the network is trusted for a size: a packet is at most
//! [`MAX_PAYLOAD`] bytes (no 16 MiB continuation packets: a payload of `0xFFFFFF` bytes is
//! refused), login packets at most what their reader allows; a length outside that ends the
//! connection with an error, before anything is allocated for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest payload relayed (one packet short of 16 MiB: continuations are not relayed).
pub const MAX_PAYLOAD: usize = 0xFF_FFFF - 1;

/// Capability flags (the ones Rampart looks at).
pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const PLUGIN_AUTH_LENENC_DATA: u32 = 1 << 21;
}

/// Server status flags.
pub const STATUS_AUTOCOMMIT: u16 = 0x0002;
pub const STATUS_MORE_RESULTS: u16 = 0x0008;

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

pub fn wire(text: impl Into<String>) -> WireError {
    WireError(text.into())
}

/// One packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Bytes,
}

impl Packet {
    pub fn encode(&self, out: &mut BytesMut) {
        let len = self.payload.len().min(MAX_PAYLOAD);
        out.put_uint_le(len as u64, 3);
        out.put_u8(self.seq);
        out.put_slice(self.payload.get(..len).unwrap_or(&[]));
    }

    /// The first byte of the payload (the command, or OK/ERR/EOF).
    pub fn first(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    /// An EOF packet (`0xFE` and short: a longer one is a row or a length).
    pub fn is_eof(&self) -> bool {
        self.first() == Some(0xFE) && self.payload.len() < 9
    }

    pub fn is_err(&self) -> bool {
        self.first() == Some(0xFF)
    }
}

/// Reads one packet of at most `max` payload bytes.
pub async fn read_packet(
    io: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Packet, WireError> {
    let mut header = [0u8; 4];
    io.read_exact(&mut header).await?;
    let [a, b, c, seq] = header;
    let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
    if len > max.min(MAX_PAYLOAD) {
        return Err(wire(format!(
            "packet of {len} bytes is over the limit of {} bytes",
            max.min(MAX_PAYLOAD)
        )));
    }
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    Ok(Packet {
        seq,
        payload: Bytes::from(payload),
    })
}

pub async fn write_packet(
    io: &mut (impl AsyncWrite + Unpin),
    seq: u8,
    payload: &[u8],
) -> Result<(), WireError> {
    let mut out = BytesMut::with_capacity(payload.len() + 4);
    Packet {
        seq,
        payload: Bytes::copy_from_slice(payload),
    }
    .encode(&mut out);
    io.write_all(&out).await?;
    io.flush().await?;
    Ok(())
}

/// Takes every whole packet off the front of `buf` (`None` when there is none yet). A packet
/// header announcing more than [`MAX_PAYLOAD`] bytes is an error, whatever follows.
pub fn split_packets(buf: &mut BytesMut) -> Result<Option<Bytes>, WireError> {
    let mut end = 0;
    while let Some(&[a, b, c, _]) = buf.get(end..end + 4) {
        let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
        if len > MAX_PAYLOAD {
            return Err(wire(
                "a packet of 16 MiB or more (continued packets are not relayed)",
            ));
        }
        if buf.len() < end + 4 + len {
            break;
        }
        end += 4 + len;
    }
    if end == 0 {
        return Ok(None);
    }
    Ok(Some(buf.split_to(end).freeze()))
}

/// The packets of whole frames (as `split_packets` returns them).
pub fn packets(mut frames: Bytes) -> impl Iterator<Item = Packet> {
    std::iter::from_fn(move || {
        if frames.remaining() < 4 {
            return None;
        }
        let len = usize::try_from(frames.get_uint_le(3)).ok()?;
        let seq = frames.get_u8();
        if frames.remaining() < len {
            return None;
        }
        Some(Packet {
            seq,
            payload: frames.split_to(len),
        })
    })
}

/// A length-encoded integer; `None` if the buffer is short or the prefix is not one.
pub fn lenenc_int(buf: &mut Bytes) -> Option<u64> {
    let first = *buf.first()?;
    let need = match first {
        0xFC => 3,
        0xFD => 4,
        0xFE => 9,
        0xFB | 0xFF => return None,
        _ => 1,
    };
    if buf.remaining() < need {
        return None;
    }
    buf.advance(1);
    Some(match first {
        0xFC => u64::from(buf.get_u16_le()),
        0xFD => buf.get_uint_le(3),
        0xFE => buf.get_u64_le(),
        small => u64::from(small),
    })
}

/// A length-encoded string's bytes.
pub fn lenenc_bytes(buf: &mut Bytes) -> Option<Bytes> {
    let len = usize::try_from(lenenc_int(buf)?).ok()?;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

pub fn put_lenenc_int(out: &mut BytesMut, value: u64) {
    match value {
        0..=250 => out.put_u8(value as u8),
        251..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_u16_le(value as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            out.put_uint_le(value, 3);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(value);
        }
    }
}

/// A NUL-terminated string (lossy UTF-8); the rest of the buffer if there is no NUL.
pub fn nul_string(buf: &mut Bytes) -> String {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(buf.get(..end).unwrap_or(&[])).into_owned();
    buf.advance((end + 1).min(buf.remaining()));
    text
}

/// An ERR packet's payload (protocol 4.1 form).
pub fn err_payload(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 9);
    out.push(0xFF);
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    let mut state = state.as_bytes().to_vec();
    state.resize(5, b'0');
    out.extend_from_slice(&state);
    out.extend_from_slice(message.as_bytes());
    out
}

/// Sends an ERR packet; write failures are ignored (the connection ends anyway).
pub async fn send_err(
    io: &mut (impl AsyncWrite + Unpin),
    seq: u8,
    code: u16,
    state: &str,
    message: &str,
) {
    let _ = write_packet(io, seq, &err_payload(code, state, message)).await;
}

/// An OK packet's payload: no rows, autocommit.
pub fn ok_payload() -> Vec<u8> {
    let mut out = vec![0x00, 0x00, 0x00];
    out.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// An ERR payload as one line: `ERROR 1146 (42S02): Table 'x' doesn't exist`.
pub fn error_summary(payload: &Bytes) -> String {
    let mut body = payload.clone();
    if body.remaining() < 3 || body.get_u8() != 0xFF {
        return "malformed error".to_owned();
    }
    let code = body.get_u16_le();
    let state = if body.first() == Some(&b'#') && body.remaining() >= 6 {
        body.advance(1);
        let state = String::from_utf8_lossy(&body.split_to(5)).into_owned();
        format!(" ({state})")
    } else {
        String::new()
    };
    format!("ERROR {code}{state}: {}", String::from_utf8_lossy(&body))
}

/// An OK payload's summary (`OK, 2 rows affected`) and status flags.
pub fn ok_summary(payload: &Bytes) -> Option<(String, u16)> {
    let mut body = payload.clone();
    if body.first() != Some(&0x00) {
        return None;
    }
    body.advance(1);
    let affected = lenenc_int(&mut body)?;
    let _last_insert = lenenc_int(&mut body)?;
    let status = if body.remaining() >= 2 {
        body.get_u16_le()
    } else {
        0
    };
    let rows = if affected == 1 { "row" } else { "rows" };
    Some((format!("OK, {affected} {rows} affected"), status))
}

/// An EOF payload's status flags.
pub fn eof_status(payload: &Bytes) -> u16 {
    let mut body = payload.clone();
    if body.remaining() >= 5 {
        body.advance(3);
        body.get_u16_le()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trips_and_refuses_short_input() {
        for value in [0, 250, 251, 65_535, 65_536, 0xFF_FFFF, 0x100_0000, u64::MAX] {
            let mut out = BytesMut::new();
            put_lenenc_int(&mut out, value);
            assert_eq!(lenenc_int(&mut out.freeze()), Some(value));
        }
        assert_eq!(lenenc_int(&mut Bytes::from_static(&[0xFC, 1])), None);
        assert_eq!(lenenc_int(&mut Bytes::from_static(&[0xFF])), None);
        assert_eq!(lenenc_bytes(&mut Bytes::from_static(&[5, b'a'])), None);
    }

    #[test]
    fn split_takes_whole_packets_and_refuses_huge_ones() {
        let mut buf = BytesMut::from(&[1, 0, 0, 0, 0x0e, 3, 0, 0, 0, b'a'][..]);
        let whole = split_packets(&mut buf).unwrap().unwrap();
        assert_eq!(packets(whole).count(), 1);
        assert_eq!(buf.len(), 5);
        assert_eq!(split_packets(&mut buf).unwrap(), None);
        let mut huge = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0][..]);
        assert!(split_packets(&mut huge).is_err());
    }

    #[test]
    fn error_and_ok_summaries() {
        let err = Bytes::from(err_payload(1146, "42S02", "Table 't' doesn't exist"));
        assert_eq!(
            error_summary(&err),
            "ERROR 1146 (42S02): Table 't' doesn't exist"
        );
        let ok = Bytes::from_static(&[0, 2, 0, 0x0a, 0, 0, 0]);
        assert_eq!(
            ok_summary(&ok),
            Some(("OK, 2 rows affected".to_owned(), 0x0a))
        );
    }
}
