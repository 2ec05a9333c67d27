//! File transfer evidence for SFTP sessions: a pure observer of both directions of the SFTP
//! stream (protocol version 3, as OpenSSH speaks it) that reports each file transferred (path,
//! direction, size, SHA-256 of the bytes moved) and each change to the file system.
//!
//! It never alters the stream; the relay passes the bytes on unchanged. Packets are reassembled
//! in a buffer bounded by the largest packet OpenSSH sends; a larger or malformed packet makes
//! the stream uninspectable, which the relay treats as a recording failure (fail closed).

use crate::hex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// OpenSSH's sftp-server accepts packets up to 256 KiB; a little room for headers.
const MAX_PACKET: usize = 256 * 1024 + 1024;
/// Requests in flight and open handles are bounded like the server bounds them.
const MAX_PENDING: usize = 4096;
const MAX_HANDLES: usize = 1024;

const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const SETSTAT: u8 = 9;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const RENAME: u8 = 18;
const SYMLINK: u8 = 20;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;
const EXTENDED: u8 = 200;

const WRITE_FLAGS: u32 = 0x02 | 0x04 | 0x08 | 0x10 | 0x20; // WRITE APPEND CREAT TRUNC EXCL

/// Something that happened to a file, as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftpEvent {
    /// A file was read (download) or written (upload) through a handle that is now closed.
    Transferred {
        path: String,
        upload: bool,
        bytes: u64,
        /// None when the transfer did not move the file in order from its start (seeks).
        sha256: Option<String>,
    },
    /// A change to the file system, with whether the server reported success.
    Changed {
        operation: String,
        path: String,
        target: Option<String>,
        succeeded: bool,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the SFTP stream cannot be inspected: {0}")]
pub struct SftpError(String);

/// An open file handle and what has moved through it.
struct OpenFile {
    path: String,
    upload: bool,
    bytes: u64,
    hasher: Option<Sha256>,
    next_offset: u64,
}

impl OpenFile {
    fn moved(&mut self, offset: u64, data: &[u8]) {
        self.bytes = self.bytes.saturating_add(data.len() as u64);
        if offset != self.next_offset {
            self.hasher = None;
        }
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(data);
        }
        self.next_offset = offset.saturating_add(data.len() as u64);
    }
}

/// A request waiting for its answer.
enum Pending {
    Open {
        path: String,
        upload: bool,
    },
    Read {
        handle: Vec<u8>,
        offset: u64,
    },
    Change {
        operation: String,
        path: String,
        target: Option<String>,
    },
}

/// Reassembles one direction's packets.
#[derive(Default)]
struct Framer {
    buffer: Vec<u8>,
}

impl Framer {
    fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, SftpError> {
        self.buffer.extend_from_slice(data);
        let mut packets = Vec::new();
        while let Some(header) = self.buffer.first_chunk::<4>() {
            let length = u32::from_be_bytes(*header) as usize;
            if length == 0 || length > MAX_PACKET {
                return Err(SftpError(format!("a packet of {length} bytes")));
            }
            if self.buffer.len() < 4 + length {
                break;
            }
            let rest = self.buffer.split_off(4 + length);
            let mut packet = std::mem::replace(&mut self.buffer, rest);
            packet.drain(..4);
            packets.push(packet);
        }
        Ok(packets)
    }
}

/// Reads SFTP wire types from a packet body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }
    fn u32(&mut self) -> Option<u32> {
        let (bytes, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let (bytes, rest) = self.0.split_at_checked(8)?;
        self.0 = rest;
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = self.u32()? as usize;
        let (bytes, rest) = self.0.split_at_checked(length)?;
        self.0 = rest;
        Some(bytes)
    }
    fn text(&mut self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// Watches one SFTP session.
#[derive(Default)]
pub struct SftpObserver {
    from_client: Framer,
    from_server: Framer,
    pending: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, OpenFile>,
}

impl std::fmt::Debug for SftpObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpObserver")
            .field("pending", &self.pending.len())
            .field("handles", &self.handles.len())
            .finish()
    }
}

fn malformed(what: &str) -> SftpError {
    SftpError(format!("a malformed {what} packet"))
}

impl SftpObserver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the client sent to the server.
    pub fn client(&mut self, data: &[u8]) -> Result<Vec<SftpEvent>, SftpError> {
        let mut events = Vec::new();
        for packet in self.from_client.push(data)? {
            self.request(&packet, &mut events)?;
        }
        Ok(events)
    }

    /// Bytes the server sent to the client.
    pub fn server(&mut self, data: &[u8]) -> Result<Vec<SftpEvent>, SftpError> {
        let mut events = Vec::new();
        for packet in self.from_server.push(data)? {
            self.reply(&packet, &mut events)?;
        }
        Ok(events)
    }

    /// Files still open when the session ends are reported as they are.
    pub fn finish(&mut self) -> Vec<SftpEvent> {
        self.handles
            .drain()
            .map(|(_, file)| transferred(file))
            .collect()
    }

    fn wait_for(&mut self, id: u32, pending: Pending) -> Result<(), SftpError> {
        if self.pending.len() >= MAX_PENDING {
            return Err(SftpError("too many requests in flight".into()));
        }
        self.pending.insert(id, pending);
        Ok(())
    }

    fn request(&mut self, packet: &[u8], events: &mut Vec<SftpEvent>) -> Result<(), SftpError> {
        let mut r = Reader(packet);
        let kind = r.u8().ok_or_else(|| malformed("client"))?;
        if kind == INIT {
            return Ok(());
        }
        let id = r.u32().ok_or_else(|| malformed("client"))?;
        let change = |operation: &str, path: Option<String>, target: Option<String>| {
            path.map(|path| Pending::Change {
                operation: operation.into(),
                path,
                target,
            })
            .ok_or_else(|| malformed(operation))
        };
        match kind {
            OPEN => {
                let path = r.text().ok_or_else(|| malformed("open"))?;
                let flags = r.u32().ok_or_else(|| malformed("open"))?;
                self.wait_for(
                    id,
                    Pending::Open {
                        path,
                        upload: flags & WRITE_FLAGS != 0,
                    },
                )?;
            }
            READ => {
                let handle = r.bytes().ok_or_else(|| malformed("read"))?.to_vec();
                let offset = r.u64().ok_or_else(|| malformed("read"))?;
                self.wait_for(id, Pending::Read { handle, offset })?;
            }
            WRITE => {
                let handle = r.bytes().ok_or_else(|| malformed("write"))?;
                let offset = r.u64().ok_or_else(|| malformed("write"))?;
                let data = r.bytes().ok_or_else(|| malformed("write"))?;
                if let Some(file) = self.handles.get_mut(handle) {
                    file.moved(offset, data);
                }
            }
            CLOSE => {
                let handle = r.bytes().ok_or_else(|| malformed("close"))?;
                if let Some(file) = self.handles.remove(handle) {
                    events.push(transferred(file));
                }
            }
            REMOVE => self.wait_for(id, change("remove", r.text(), None)?)?,
            MKDIR => self.wait_for(id, change("mkdir", r.text(), None)?)?,
            RMDIR => self.wait_for(id, change("rmdir", r.text(), None)?)?,
            SETSTAT => self.wait_for(id, change("setstat", r.text(), None)?)?,
            RENAME => {
                let from = r.text();
                let to = r.text();
                self.wait_for(id, change("rename", from, to)?)?;
            }
            SYMLINK => {
                let link = r.text();
                let target = r.text();
                self.wait_for(id, change("symlink", link, target)?)?;
            }
            EXTENDED => {
                let name = r.text().ok_or_else(|| malformed("extended"))?;
                // OpenSSH's extensions that change the file system.
                let operation = match name.as_str() {
                    "posix-rename@openssh.com" => Some("rename"),
                    "hardlink@openssh.com" => Some("hardlink"),
                    "lsetstat@openssh.com" => Some("setstat"),
                    "copy-data" => Some("copy"),
                    _ => None,
                };
                if let Some(operation) = operation {
                    let from = r.text();
                    let to = if operation == "setstat" {
                        None
                    } else {
                        r.text()
                    };
                    self.wait_for(id, change(operation, from, to)?)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn reply(&mut self, packet: &[u8], events: &mut Vec<SftpEvent>) -> Result<(), SftpError> {
        let mut r = Reader(packet);
        let kind = r.u8().ok_or_else(|| malformed("server"))?;
        if kind == VERSION {
            return Ok(());
        }
        let id = r.u32().ok_or_else(|| malformed("server"))?;
        let Some(pending) = self.pending.remove(&id) else {
            return Ok(());
        };
        match (kind, pending) {
            (HANDLE, Pending::Open { path, upload }) => {
                let handle = r.bytes().ok_or_else(|| malformed("handle"))?.to_vec();
                if self.handles.len() >= MAX_HANDLES {
                    return Err(SftpError("too many open files".into()));
                }
                let file = OpenFile {
                    path,
                    upload,
                    bytes: 0,
                    hasher: Some(Sha256::new()),
                    next_offset: 0,
                };
                self.handles.insert(handle, file);
            }
            (DATA, Pending::Read { handle, offset }) => {
                let data = r.bytes().ok_or_else(|| malformed("data"))?;
                if let Some(file) = self.handles.get_mut(&handle) {
                    file.moved(offset, data);
                }
            }
            (
                STATUS,
                Pending::Change {
                    operation,
                    path,
                    target,
                },
            ) => {
                let code = r.u32().ok_or_else(|| malformed("status"))?;
                events.push(SftpEvent::Changed {
                    operation,
                    path,
                    target,
                    succeeded: code == 0,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

fn transferred(file: OpenFile) -> SftpEvent {
    SftpEvent::Transferred {
        path: file.path,
        upload: file.upload,
        bytes: file.bytes,
        sha256: file.hasher.map(|h| hex(&h.finalize())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: Option<u32>, fields: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![kind];
        if let Some(id) = id {
            body.extend_from_slice(&id.to_be_bytes());
        }
        for field in fields {
            body.extend_from_slice(field);
        }
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    fn string(text: &[u8]) -> Vec<u8> {
        let mut out = (text.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(text);
        out
    }

    #[test]
    fn an_upload_in_pieces_is_hashed_and_renames_are_reported() {
        let mut o = SftpObserver::new();
        o.client(&packet(INIT, None, &[&3u32.to_be_bytes()]))
            .unwrap();
        o.server(&packet(VERSION, None, &[&3u32.to_be_bytes()]))
            .unwrap();
        let open = packet(
            OPEN,
            Some(1),
            &[
                &string(b"/tmp/up"),
                &(0x02u32 | 0x08 | 0x10).to_be_bytes(),
                &0u32.to_be_bytes(),
            ],
        );
        o.client(&open).unwrap();
        o.server(&packet(HANDLE, Some(1), &[&string(b"h1")]))
            .unwrap();
        let mut stream = Vec::new();
        stream.extend(packet(
            WRITE,
            Some(2),
            &[&string(b"h1"), &0u64.to_be_bytes(), &string(b"hello ")],
        ));
        stream.extend(packet(
            WRITE,
            Some(3),
            &[&string(b"h1"), &6u64.to_be_bytes(), &string(b"world")],
        ));
        stream.extend(packet(CLOSE, Some(4), &[&string(b"h1")]));
        // Fed in awkward pieces, as TCP may deliver them.
        let mut events = Vec::new();
        for piece in stream.chunks(7) {
            events.extend(o.client(piece).unwrap());
        }
        assert_eq!(
            events,
            [SftpEvent::Transferred {
                path: "/tmp/up".into(),
                upload: true,
                bytes: 11,
                sha256: Some(hex(&Sha256::digest(b"hello world"))),
            }]
        );
        o.client(&packet(
            RENAME,
            Some(5),
            &[&string(b"/tmp/up"), &string(b"/tmp/done")],
        ))
        .unwrap();
        let events = o
            .server(&packet(STATUS, Some(5), &[&0u32.to_be_bytes()]))
            .unwrap();
        assert_eq!(
            events,
            [SftpEvent::Changed {
                operation: "rename".into(),
                path: "/tmp/up".into(),
                target: Some("/tmp/done".into()),
                succeeded: true
            }]
        );
    }

    #[test]
    fn a_download_is_hashed_from_the_data_replies() {
        let mut o = SftpObserver::new();
        o.client(&packet(
            OPEN,
            Some(1),
            &[
                &string(b"/etc/motd"),
                &1u32.to_be_bytes(),
                &0u32.to_be_bytes(),
            ],
        ))
        .unwrap();
        o.server(&packet(HANDLE, Some(1), &[&string(b"h")]))
            .unwrap();
        o.client(&packet(
            READ,
            Some(2),
            &[&string(b"h"), &0u64.to_be_bytes(), &32768u32.to_be_bytes()],
        ))
        .unwrap();
        o.client(&packet(
            READ,
            Some(3),
            &[&string(b"h"), &4u64.to_be_bytes(), &32768u32.to_be_bytes()],
        ))
        .unwrap();
        o.server(&packet(DATA, Some(2), &[&string(b"abcd")]))
            .unwrap();
        o.server(&packet(DATA, Some(3), &[&string(b"ef")])).unwrap();
        let events = o.client(&packet(CLOSE, Some(4), &[&string(b"h")])).unwrap();
        assert_eq!(
            events,
            [SftpEvent::Transferred {
                path: "/etc/motd".into(),
                upload: false,
                bytes: 6,
                sha256: Some(hex(&Sha256::digest(b"abcdef")))
            }]
        );
    }

    #[test]
    fn a_failed_removal_is_reported_as_failed_and_seeks_drop_the_hash() {
        let mut o = SftpObserver::new();
        o.client(&packet(REMOVE, Some(9), &[&string(b"/etc/shadow")]))
            .unwrap();
        let events = o
            .server(&packet(STATUS, Some(9), &[&3u32.to_be_bytes()]))
            .unwrap();
        assert!(matches!(
            &events[..],
            [SftpEvent::Changed {
                succeeded: false,
                ..
            }]
        ));
        o.client(&packet(
            OPEN,
            Some(1),
            &[&string(b"f"), &2u32.to_be_bytes(), &0u32.to_be_bytes()],
        ))
        .unwrap();
        o.server(&packet(HANDLE, Some(1), &[&string(b"h")]))
            .unwrap();
        o.client(&packet(
            WRITE,
            Some(2),
            &[&string(b"h"), &100u64.to_be_bytes(), &string(b"x")],
        ))
        .unwrap();
        let events = o.finish();
        assert!(matches!(
            &events[..],
            [SftpEvent::Transferred {
                sha256: None,
                bytes: 1,
                ..
            }]
        ));
    }

    #[test]
    fn hostile_streams_are_refused_not_buffered() {
        let mut o = SftpObserver::new();
        assert!(o.client(&u32::MAX.to_be_bytes()).is_err());
        let mut o = SftpObserver::new();
        assert!(o.client(&0u32.to_be_bytes()).is_err());
        let mut o = SftpObserver::new();
        // Truncated fields inside a complete packet.
        assert!(o.client(&packet(OPEN, Some(1), &[&[0, 0, 0, 50]])).is_err());
        let mut o = SftpObserver::new();
        for id in 0..MAX_PENDING as u32 {
            o.client(&packet(REMOVE, Some(id), &[&string(b"x")]))
                .unwrap();
        }
        assert!(
            o.client(&packet(REMOVE, Some(u32::MAX), &[&string(b"x")]))
                .is_err()
        );
    }
}
