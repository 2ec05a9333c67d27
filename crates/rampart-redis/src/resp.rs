//! Bounded, incremental framing of RESP2 and RESP3.
//!
//! Hand-written rather than a crate: the proxy needs only to find where each value ends (it
//! relays the bytes as they came) and to read the arguments of a command, with limits on every
//! length before anything is kept; the RESP crates decode into owned frames (an allocation per
//! element) and leave size limits to the caller. This framer resumes where it stopped, so a
//! large value arriving in many reads is scanned once, and it allocates only its stack of open
//! aggregates (at most [`Limits::depth`]).
//!
//! INVARIANT: a frame is never longer than [`Limits::frame`]; a buffer holding an incomplete
//! frame never grows past it; nesting never deeper than [`Limits::depth`]. Anything else is a
//! [`RespError`], which ends the session.

use bytes::{Bytes, BytesMut};

/// Why the bytes are not RESP Rampart accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespError(pub String);

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How large values may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One whole value (a command, a reply), bytes.
    pub frame: usize,
    /// Aggregates inside aggregates.
    pub depth: usize,
    /// A line (a simple string, an error, a header), bytes.
    pub line: usize,
    /// Empty lines between values are skipped (clients: Redis ignores them, and
    /// `redis-cli --pipe` sends one).
    pub blank_lines: bool,
}

impl Limits {
    /// Commands from clients: 64 MiB (a large `SET`), flat.
    pub const CLIENT: Limits = Limits {
        frame: 64 * 1024 * 1024,
        depth: 1,
        line: 64 * 1024,
        blank_lines: true,
    };
    /// The login command (`AUTH`, `HELLO`), before the client is known.
    pub const LOGIN: Limits = Limits {
        frame: 4096,
        depth: 1,
        line: 1024,
        blank_lines: true,
    };
    /// Replies from the target.
    pub const TARGET: Limits = Limits {
        frame: 64 * 1024 * 1024,
        depth: 32,
        line: 1024 * 1024,
        blank_lines: false,
    };
}

/// Finds the ends of whole values in a buffer, resuming where it left off.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    /// Where the next element starts, from the start of the current frame.
    pos: usize,
    /// Elements still to come in each open aggregate.
    open: Vec<u64>,
}

enum Step {
    /// One element complete (a scalar, or an empty aggregate).
    Element,
    /// An aggregate opened with this many elements.
    Open(u64),
    Incomplete,
}

impl Framer {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pos: 0,
            open: Vec::new(),
        }
    }

    /// The length of the whole value at the start of `buf`, if it is all there.
    pub fn next_len(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        loop {
            match self.step(buf)? {
                Step::Incomplete => {
                    if buf.len() > self.limits.frame {
                        return Err(RespError(format!(
                            "a value larger than {} bytes",
                            self.limits.frame
                        )));
                    }
                    return Ok(None);
                }
                Step::Open(count) => {
                    if self.open.len() >= self.limits.depth {
                        return Err(RespError(format!(
                            "values nested deeper than {}",
                            self.limits.depth
                        )));
                    }
                    self.open.push(count);
                }
                Step::Element => loop {
                    match self.open.last_mut() {
                        None => {
                            let len = self.pos;
                            self.pos = 0;
                            return Ok(Some(len));
                        }
                        Some(left) => {
                            *left = left.saturating_sub(1);
                            if *left > 0 {
                                break;
                            }
                            self.open.pop();
                        }
                    }
                },
            }
        }
    }

    /// Reads one header (and a bulk value's body) at `pos`.
    fn step(&mut self, buf: &[u8]) -> Result<Step, RespError> {
        let rest = buf.get(self.pos..).unwrap_or_default();
        let Some(&kind) = rest.first() else {
            return Ok(Step::Incomplete);
        };
        if !b"+-:_,#($!=*~>%|?".contains(&kind) {
            return Err(RespError(format!(
                "unknown type byte {}",
                if kind.is_ascii_graphic() {
                    format!("'{}'", kind as char)
                } else {
                    format!("0x{kind:02x}")
                }
            )));
        }
        let window = rest
            .get(..self.limits.line.saturating_add(2))
            .unwrap_or(rest);
        let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
            if rest.len() > self.limits.line + 2 {
                return Err(RespError(format!(
                    "a line longer than {} bytes",
                    self.limits.line
                )));
            }
            return Ok(Step::Incomplete);
        };
        let line = rest.get(1..end).unwrap_or_default();
        let header = end + 2;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                self.advance(header)?;
                Ok(Step::Element)
            }
            b'$' | b'!' | b'=' => {
                let len = number(line)?;
                if len < 0 {
                    if kind == b'$' && len == -1 {
                        self.advance(header)?;
                        return Ok(Step::Element);
                    }
                    return Err(RespError("a negative length".into()));
                }
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= self.limits.frame)
                    .ok_or_else(|| {
                        RespError(format!("a value larger than {} bytes", self.limits.frame))
                    })?;
                let total = header + len + 2;
                if self.pos + total > self.limits.frame {
                    return Err(RespError(format!(
                        "a value larger than {} bytes",
                        self.limits.frame
                    )));
                }
                match rest.get(header + len..total) {
                    None => Ok(Step::Incomplete),
                    Some(b"\r\n") => {
                        self.advance(total)?;
                        Ok(Step::Element)
                    }
                    Some(_) => Err(RespError("a bulk string without its CRLF".into())),
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let count = number(line)?;
                self.advance(header)?;
                if count < 0 {
                    return if kind == b'*' && count == -1 {
                        Ok(Step::Element)
                    } else {
                        Err(RespError("a negative count".into()))
                    };
                }
                let count = u64::try_from(count).unwrap_or(0);
                // A map has two values per entry; an attribute's entries are followed by the
                // value it describes, which belongs to the same frame.
                let elements = match kind {
                    b'%' => count.saturating_mul(2),
                    b'|' => count.saturating_mul(2).saturating_add(1),
                    _ => count,
                };
                if elements == 0 {
                    Ok(Step::Element)
                } else {
                    Ok(Step::Open(elements))
                }
            }
            _ => Err(RespError("streamed values are not supported".into())),
        }
    }

    fn advance(&mut self, by: usize) -> Result<(), RespError> {
        self.pos += by;
        if self.pos > self.limits.frame {
            return Err(RespError(format!(
                "a value larger than {} bytes",
                self.limits.frame
            )));
        }
        Ok(())
    }
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| RespError("a malformed length".into()))
}

/// Takes the whole values at the start of `buf` (in one piece) and their lengths.
pub fn split_frames(
    framer: &mut Framer,
    buf: &mut BytesMut,
) -> Result<Option<(Bytes, Vec<usize>)>, RespError> {
    let mut lengths = Vec::new();
    let mut total = 0;
    loop {
        let idle = framer.pos == 0 && framer.open.is_empty();
        let blank = |b: &u8| *b == b'\r' || *b == b'\n';
        if framer.limits.blank_lines && idle {
            if lengths.is_empty() {
                let skip = buf.iter().take_while(|b| blank(b)).count();
                let _ = buf.split_to(skip);
            } else if buf.get(total).is_some_and(blank) {
                // Taken out at the next call, when it leads.
                break;
            }
        }
        match framer.next_len(buf.get(total..).unwrap_or_default())? {
            Some(len) => {
                lengths.push(len);
                total += len;
            }
            None => break,
        }
    }
    if lengths.is_empty() {
        return Ok(None);
    }
    Ok(Some((buf.split_to(total).freeze(), lengths)))
}

/// The whole values in `bytes` (which holds whole values only).
pub fn frames(bytes: &Bytes, limits: Limits) -> Result<Vec<Bytes>, RespError> {
    let mut framer = Framer::new(limits);
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match framer.next_len(bytes.get(at..).unwrap_or_default())? {
            Some(len) => {
                out.push(bytes.slice(at..at + len));
                at += len;
            }
            None => return Err(RespError("an incomplete value".into())),
        }
    }
    Ok(out)
}

/// The arguments of a command: a RESP array of bulk strings (what every client sends).
pub fn command_args(frame: &Bytes) -> Result<Vec<Bytes>, RespError> {
    let not_a_command = || {
        RespError(
            "a command must be an array of bulk strings (inline commands are not supported)".into(),
        )
    };
    let mut at = 0;
    let line = |at: &mut usize| -> Result<(u8, i64), RespError> {
        let rest = frame.get(*at..).ok_or_else(not_a_command)?;
        let kind = *rest.first().ok_or_else(not_a_command)?;
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(not_a_command)?;
        let value = number(rest.get(1..end).unwrap_or_default())?;
        *at += end + 2;
        Ok((kind, value))
    };
    let (kind, count) = line(&mut at)?;
    if kind != b'*' || count < 1 {
        return Err(not_a_command());
    }
    let mut args = Vec::new();
    for _ in 0..count {
        let (kind, len) = line(&mut at)?;
        let len = usize::try_from(len).map_err(|_| not_a_command())?;
        if kind != b'$' || at + len + 2 > frame.len() {
            return Err(not_a_command());
        }
        args.push(frame.slice(at..at + len));
        at += len + 2;
    }
    Ok(args)
}

/// A command as RESP (for the target login).
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An error reply: `-CODE text` on one line (line breaks replaced).
pub fn error(code: &str, text: &str) -> Vec<u8> {
    let clean: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    format!("-{code} {clean}\r\n").into_bytes()
}

/// What a reply says, briefly, for the query log: `OK`, `integer 3`, `12 bytes`, `nil`,
/// `3 elements`; an error reply is `Err` with its text.
pub fn summary(frame: &[u8]) -> Result<String, String> {
    let end = frame
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(frame.len());
    let line = String::from_utf8_lossy(frame.get(1..end).unwrap_or_default()).into_owned();
    let cut = |text: String| rampart_session::database::bounded(&text, 256);
    match frame.first() {
        Some(b'+') => Ok(cut(line)),
        Some(b'-') => Err(rampart_session::database::bounded(&line, 1024)),
        Some(b'!') => Err(rampart_session::database::bounded(
            &String::from_utf8_lossy(
                frame
                    .get(end + 2..frame.len().saturating_sub(2))
                    .unwrap_or_default(),
            ),
            1024,
        )),
        Some(b':') => Ok(format!("integer {line}")),
        Some(b'(') => Ok(format!("integer {}", cut(line))),
        Some(b',') => Ok(format!("double {}", cut(line))),
        Some(b'#') => Ok(format!("boolean {line}")),
        Some(b'_') => Ok("nil".into()),
        Some(b'$') if line == "-1" => Ok("nil".into()),
        Some(b'*') if line == "-1" => Ok("nil".into()),
        Some(b'$' | b'=') => Ok(format!("{line} bytes")),
        Some(b'*' | b'~' | b'>') => Ok(format!("{line} elements")),
        Some(b'%') => Ok(format!("{line} entries")),
        Some(b'|') => Ok("attributes".into()),
        _ => Ok(String::new()),
    }
}

/// The first element of an array or push as text (a pub/sub message's kind), lowercased.
pub fn first_word(frame: &Bytes) -> Option<String> {
    if !matches!(frame.first(), Some(b'*' | b'>')) {
        return None;
    }
    let end = frame.windows(2).position(|w| w == b"\r\n")?;
    let rest = frame.get(end + 2..)?;
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let text = match rest.first()? {
        b'+' => rest.get(1..line_end)?,
        b'$' => {
            let len: usize = std::str::from_utf8(rest.get(1..line_end)?)
                .ok()?
                .parse()
                .ok()?;
            rest.get(line_end + 2..line_end + 2 + len)?
        }
        _ => return None,
    };
    Some(String::from_utf8_lossy(text).to_ascii_lowercase())
}

/// The last element of a pub/sub confirmation (`subscribe`, channel, count): the count.
pub fn last_integer(frame: &Bytes) -> Option<i64> {
    let trimmed = frame.strip_suffix(b"\r\n")?;
    let start = trimmed.iter().rposition(|b| *b == b'\n')? + 1;
    let line = trimmed.get(start..)?;
    match line.first()? {
        b':' => std::str::from_utf8(line.get(1..)?).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8], limits: Limits) -> Result<Option<usize>, RespError> {
        Framer::new(limits).next_len(bytes)
    }

    #[test]
    fn frames_every_resp2_and_resp3_type() {
        for value in [
            &b"+OK\r\n"[..],
            b"-ERR no\r\n",
            b":42\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"_\r\n",
            b",1.5\r\n",
            b"#t\r\n",
            b"(12345678901234567890\r\n",
            b"!3\r\nERR\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",
            b"~1\r\n+x\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
        ] {
            assert_eq!(
                whole(value, Limits::TARGET),
                Ok(Some(value.len())),
                "{}",
                String::from_utf8_lossy(value)
            );
            // Every cut short is incomplete, never an error.
            for cut in 0..value.len() {
                assert_eq!(
                    whole(value.get(..cut).unwrap(), Limits::TARGET),
                    Ok(None),
                    "{}",
                    String::from_utf8_lossy(value)
                );
            }
        }
    }

    #[test]
    fn resumes_across_reads_and_splits_pipelines() {
        let pipeline = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4";
        let mut framer = Framer::new(Limits::CLIENT);
        let mut buf = BytesMut::from(&pipeline[..]);
        let (bytes, lengths) = split_frames(&mut framer, &mut buf).unwrap().unwrap();
        assert_eq!(lengths, [14, 20]);
        assert_eq!(bytes.len(), 34);
        assert_eq!(&buf[..], b"*1\r\n$4");
        assert!(split_frames(&mut framer, &mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\r\nQUIT\r\n");
        let (bytes, _) = split_frames(&mut framer, &mut buf).unwrap().unwrap();
        assert_eq!(command_args(&bytes).unwrap(), [Bytes::from_static(b"QUIT")]);
    }

    #[test]
    fn refuses_oversized_deep_and_malformed_values() {
        let limits = Limits {
            frame: 64,
            depth: 2,
            line: 16,
            blank_lines: false,
        };
        for bad in [
            &b"$100\r\n"[..],
            b"*1\r\n*1\r\n*1\r\n:1\r\n",
            b"$3\r\nabcXY",
            b"$x\r\n",
            b"?1\r\n",
            b"$-5\r\n",
            b"+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"\x16\x03\x01",
        ] {
            assert!(
                whole(bad, limits).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A buffer that grows past the frame limit without completing a value.
        let many = b"*1000\r\n"
            .iter()
            .chain(&[b':', b'1', b'\r', b'\n'].repeat(20))
            .copied()
            .collect::<Vec<_>>();
        assert!(whole(&many, limits).is_err());
        // Commands are arrays of bulk strings, nothing else.
        for bad in [&b"PING\r\n"[..], b"*1\r\n:1\r\n", b"*0\r\n"] {
            assert!(command_args(&Bytes::from_static(bad)).is_err());
        }
    }

    #[test]
    fn summaries_and_pubsub_words() {
        assert_eq!(summary(b"+OK\r\n"), Ok("OK".into()));
        assert_eq!(summary(b"-ERR no\r\n"), Err("ERR no".into()));
        assert_eq!(summary(b":5\r\n"), Ok("integer 5".into()));
        assert_eq!(summary(b"$3\r\nabc\r\n"), Ok("3 bytes".into()));
        assert_eq!(summary(b"$-1\r\n"), Ok("nil".into()));
        let confirm = Bytes::from_static(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
        assert_eq!(first_word(&confirm).as_deref(), Some("subscribe"));
        assert_eq!(last_integer(&confirm), Some(1));
    }
}

#[cfg(test)]
mod chunked {
    use super::*;

    #[test]
    fn a_pipeline_read_in_small_pieces_splits_into_its_commands() {
        let mut all = Vec::new();
        for n in 0..300 {
            let value = n.to_string();
            let key = format!("key:{n}");
            all.extend(encode_command(&[b"SET", key.as_bytes(), value.as_bytes()]));
        }
        // What `redis-cli --pipe` sends last.
        all.extend(b"\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n");
        for chunk in [1, 7, 64, 4096] {
            let mut framer = Framer::new(Limits::CLIENT);
            let mut buf = BytesMut::new();
            let mut count = 0;
            for piece in all.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some((bytes, lengths)) = split_frames(&mut framer, &mut buf).unwrap() {
                    count += lengths.len();
                    for frame in frames(&bytes, Limits::CLIENT).unwrap() {
                        command_args(&frame).unwrap();
                    }
                }
            }
            assert_eq!(count, 301, "chunk {chunk}");
        }
    }
}
