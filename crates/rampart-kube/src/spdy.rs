//! SPDY/3.1 as kubectl's port-forward tunnel carries it (pure: bytes in, frames out).
//!
//! kubectl 1.31+ forwards ports over a WebSocket with the `SPDY/3.1+portforward.k8s.io`
//! subprotocol (KEP-4006): the binary messages are a byte stream of SPDY frames, whose
//! boundaries need not match the messages'. Each forwarded connection is two streams opened by
//! the client (`SYN_STREAM`), an error stream and a data stream, whose headers (`streamtype`,
//! `port`, `requestid`) say which port they reach. Header blocks are zlib-compressed with the
//! SPDY/3 dictionary, one compression context per direction for the whole connection, so every
//! header block the client sends is inflated in order.
//!
//! [`FrameReader`] cuts whole frames out of the stream (bounded); [`HeaderInflater`] reads the
//! client's header blocks. Rampart only reads: the frames it forwards are the client's bytes.

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};

/// Largest frame payload accepted (SPDY allows 16 MiB; kubectl writes 32 KiB data frames).
pub const MAX_FRAME: usize = 1024 * 1024;
/// Largest inflated header block.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Most header pairs in one block.
const MAX_HEADERS: u32 = 64;
/// The frame header: 8 bytes.
const HEAD: usize = 8;

/// `SYN_STREAM`: a stream opened, with its headers.
pub const SYN_STREAM: u16 = 1;
/// `SYN_REPLY`: a stream accepted, with headers.
pub const SYN_REPLY: u16 = 2;
/// `RST_STREAM`: a stream ended abruptly.
pub const RST_STREAM: u16 = 3;
/// `HEADERS`: more headers on a stream.
pub const HEADERS: u16 = 8;
/// A frame's flag: the sender's half of the stream ends with it.
pub const FLAG_FIN: u8 = 0x01;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        payload: Bytes,
    },
    Control {
        kind: u16,
        flags: u8,
        body: Bytes,
    },
}

impl Frame {
    /// The stream a control frame names first (`SYN_STREAM`, `SYN_REPLY`, `RST_STREAM`,
    /// `HEADERS`, `WINDOW_UPDATE`), if the body holds one.
    pub fn control_stream(body: &[u8]) -> Option<u32> {
        let id: [u8; 4] = body.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(id) & 0x7FFF_FFFF)
    }
}

/// Whole frames out of a byte stream.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    /// Adds bytes that arrived; refuses more than one frame and one message can hold.
    pub fn push(&mut self, data: &[u8]) -> Result<(), String> {
        if self.buf.len() + data.len() > 2 * (MAX_FRAME + HEAD) {
            return Err("the port-forward stream sent more than a frame can hold".to_owned());
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next whole frame and its bytes as they came, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<(Frame, Bytes)>, String> {
        let Some(head) = self.buf.get(..HEAD) else {
            return Ok(None);
        };
        let word = |at: usize| -> u32 {
            let bytes: [u8; 4] = head
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default();
            u32::from_be_bytes(bytes)
        };
        let (first, flags_length) = (word(0), word(4));
        let length = (flags_length & 0x00FF_FFFF) as usize;
        let flags = (flags_length >> 24) as u8;
        if length > MAX_FRAME {
            return Err(format!(
                "a port-forward frame of {length} bytes is larger than Rampart relays"
            ));
        }
        if self.buf.len() < HEAD + length {
            return Ok(None);
        }
        let raw = self.buf.split_to(HEAD + length).freeze();
        let mut body = raw.clone();
        body.advance(HEAD);
        let frame = if first & 0x8000_0000 != 0 {
            let version = (first >> 16) & 0x7FFF;
            if version != 3 {
                return Err(format!("SPDY version {version} is not relayed (3 only)"));
            }
            Frame::Control {
                kind: (first & 0xFFFF) as u16,
                flags,
                body,
            }
        } else {
            Frame::Data {
                stream: first,
                fin: flags & FLAG_FIN != 0,
                payload: body,
            }
        };
        Ok(Some((frame, raw)))
    }
}

/// The SPDY/3 header dictionary (the draft-3 specification's): length-prefixed words, then a
/// run of common values. 1423 bytes.
pub fn dictionary() -> Vec<u8> {
    const WORDS: [&str; 66] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
        "",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut out = Vec::with_capacity(1423);
    for word in WORDS.iter().filter(|w| !w.is_empty()) {
        out.extend_from_slice(&u32::try_from(word.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(word.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

/// Adler-32, the zlib header's dictionary id.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Inflates one direction's header blocks, in order.
pub struct HeaderInflater {
    inflate: Decompress,
    dictionary_id: u32,
    /// The zlib header (and dictionary id) comes once, before the first block.
    started: bool,
}

impl std::fmt::Debug for HeaderInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderInflater")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl HeaderInflater {
    /// A raw inflater whose window already holds the dictionary: a preset dictionary is the
    /// same as its bytes having come before, so it is fed as one stored (uncompressed) block.
    pub fn new() -> Result<Self, String> {
        let dictionary = dictionary();
        let length = u16::try_from(dictionary.len()).map_err(|_| "dictionary".to_owned())?;
        let mut stored = vec![0u8];
        stored.extend_from_slice(&length.to_le_bytes());
        stored.extend_from_slice(&(!length).to_le_bytes());
        stored.extend_from_slice(&dictionary);
        let mut inflate = Decompress::new(false);
        let mut out = Vec::with_capacity(dictionary.len() + 16);
        inflate
            .decompress_vec(&stored, &mut out, FlushDecompress::Sync)
            .map_err(|err| format!("cannot prepare the SPDY header inflater: {err}"))?;
        if out != dictionary {
            return Err("cannot prepare the SPDY header inflater".to_owned());
        }
        Ok(Self {
            inflate,
            dictionary_id: adler32(&dictionary),
            started: false,
        })
    }

    /// The headers of one block (names lowercase, as SPDY/3 writes them; several values of a
    /// name joined by NUL are kept as they are).
    pub fn headers(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let bad = || "a port-forward stream's headers cannot be read".to_owned();
        let mut input = block;
        if !self.started {
            let (&cmf, rest) = input.split_first().ok_or_else(bad)?;
            let (&flg, rest) = rest.split_first().ok_or_else(bad)?;
            if cmf & 0x0F != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                return Err(bad());
            }
            input = rest;
            if flg & 0x20 != 0 {
                let id: [u8; 4] = input
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(bad)?;
                if u32::from_be_bytes(id) != self.dictionary_id {
                    return Err(bad());
                }
                input = input.get(4..).ok_or_else(bad)?;
            }
            self.started = true;
        }
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        loop {
            let before = self.inflate.total_in();
            let produced_before = out.len();
            let status = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
                .map_err(|_| bad())?;
            let used = usize::try_from(self.inflate.total_in() - before).map_err(|_| bad())?;
            input = input.get(used..).ok_or_else(bad)?;
            if out.len() > MAX_HEADER_BLOCK {
                return Err("a port-forward stream's headers are too large".to_owned());
            }
            let full = out.len() == out.capacity();
            if status == Status::StreamEnd || (input.is_empty() && !full) {
                break;
            }
            if full {
                out.reserve(4096);
            } else if used == 0 && out.len() == produced_before {
                return Err(bad());
            }
        }
        parse_block(&out).ok_or_else(bad)
    }
}

/// `count, (len name, len value)*`, big-endian 32-bit lengths.
fn parse_block(block: &[u8]) -> Option<Vec<(String, String)>> {
    let mut cursor = Cursor(block);
    let count = cursor.word()?;
    if count > MAX_HEADERS {
        return None;
    }
    let mut headers = Vec::new();
    for _ in 0..count {
        let n = usize::try_from(cursor.word()?).ok()?;
        let name = String::from_utf8_lossy(cursor.take(n)?).to_ascii_lowercase();
        let n = usize::try_from(cursor.word()?).ok()?;
        let value = String::from_utf8_lossy(cursor.take(n)?).into_owned();
        headers.push((name, value));
    }
    Some(headers)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }

    fn word(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_spdy3_one() {
        let dictionary = dictionary();
        assert_eq!(dictionary.len(), 1423);
        // The id every SPDY/3 peer puts in its first header block.
        assert_eq!(adler32(&dictionary), 0xe3c6_a7c2);
    }

    #[test]
    fn frames_are_cut_whole_across_messages() {
        let mut reader = FrameReader::default();
        let mut bytes = vec![0, 0, 0, 3, FLAG_FIN, 0, 0, 5];
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]);
        reader.push(&bytes[..6]).unwrap();
        assert_eq!(reader.next_frame().unwrap(), None);
        reader.push(&bytes[6..]).unwrap();
        let (frame, raw) = reader.next_frame().unwrap().unwrap();
        assert_eq!(
            frame,
            Frame::Data {
                stream: 3,
                fin: true,
                payload: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(raw.len(), 13);
        let (frame, _) = reader.next_frame().unwrap().unwrap();
        let Frame::Control { kind, body, .. } = frame else {
            panic!("{frame:?}")
        };
        assert_eq!((kind, Frame::control_stream(&body)), (RST_STREAM, Some(3)));
        assert_eq!(reader.next_frame().unwrap(), None);
    }

    #[test]
    fn oversized_frames_and_floods_are_refused() {
        let mut reader = FrameReader::default();
        reader.push(&[0, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF]).unwrap();
        assert!(reader.next_frame().is_err());
        let mut reader = FrameReader::default();
        assert!(reader.push(&vec![0; 3 * MAX_FRAME]).is_err());
    }

    #[test]
    fn garbage_headers_are_refused_not_panicked_on() {
        let mut inflater = HeaderInflater::new().unwrap();
        assert!(inflater.headers(b"").is_err());
        let mut inflater = HeaderInflater::new().unwrap();
        assert!(
            inflater
                .headers(&[0x78, 0xBB, 0, 0, 0, 0, 1, 2, 3])
                .is_err()
        );
        assert_eq!(parse_block(&[0, 0, 0, 1, 0, 0, 0, 9]), None);
        assert_eq!(parse_block(&[0xFF, 0xFF, 0xFF, 0xFF]), None);
    }
}
