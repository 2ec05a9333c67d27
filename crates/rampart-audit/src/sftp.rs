//! File transfer evidence and direction filtering for SFTP sessions: a pure observer of both
//! directions of the SFTP stream (protocol version 3, as OpenSSH speaks it) that reports each
//! file transferred (path, direction, size, SHA-256 of the bytes moved) and each change to the
//! file system.
//!
//! With both directions allowed it never alters the stream; the relay passes the bytes on
//! unchanged. A session allowed only one direction ([`SftpDirections`]) passes the client's
//! requests whole, one by one ([`SftpObserver::filter_client`]): a request the directions do not
//! allow is never sent to the server and is answered `SSH_FX_PERMISSION_DENIED` by Rampart. What
//! each request needs is decided by [`needs`]:
//!
//! - reading: open with the read flag (or without the write flag), read, opendir, readdir,
//!   readlink, and extensions that read contents;
//! - writing: open with any of write, append, create, truncate or exclusive, write, setstat,
//!   fsetstat, remove, mkdir, rmdir, rename, symlink, and the extensions that change files
//!   (posix-rename, hardlink, fsync, lsetstat, copy-data);
//! - either direction: realpath, stat, lstat, fstat, close, and the extensions that only report
//!   (statvfs, limits, expand-path, home-directory, users-groups-by-id). Uploading needs them
//!   (is the target a directory?), and they show attributes, never contents.
//!
//! Anything unknown needs both. Packets are reassembled in a buffer bounded by the largest
//! packet OpenSSH sends; a larger or malformed packet makes the stream uninspectable, which the
//! relay treats as a recording failure (fail closed).

use crate::hex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// OpenSSH's sftp-server accepts packets up to 256 KiB; a little room for headers.
const MAX_PACKET: usize = 256 * 1024 + 1024;
/// Requests in flight and open handles are bounded like the server bounds them.
const MAX_PENDING: usize = 4096;
const MAX_HANDLES: usize = 1024;

/// Refusals audited one by one in a session; after that one event says more were refused, so a
/// client looping on refused requests cannot flood the audit log.
pub const MAX_AUDITED_REFUSALS: u64 = 100;

const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const LSTAT: u8 = 7;
const FSTAT: u8 = 8;
const SETSTAT: u8 = 9;
const FSETSTAT: u8 = 10;
const OPENDIR: u8 = 11;
const READDIR: u8 = 12;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const REALPATH: u8 = 16;
const STAT: u8 = 17;
const RENAME: u8 = 18;
const READLINK: u8 = 19;
const SYMLINK: u8 = 20;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;
const EXTENDED: u8 = 200;

const READ_FLAG: u32 = 0x01;
const WRITE_FLAG: u32 = 0x02;
const WRITE_FLAGS: u32 = 0x02 | 0x04 | 0x08 | 0x10 | 0x20; // WRITE APPEND CREAT TRUNC EXCL
const PERMISSION_DENIED: u32 = 3;

/// Which directions an SFTP session may use: its account's `sftp_read` and `sftp_write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SftpDirections {
    pub read: bool,
    pub write: bool,
}

impl SftpDirections {
    pub const BOTH: Self = Self {
        read: true,
        write: true,
    };

    fn allow(self, need: Need) -> bool {
        (!need.read || self.read) && (!need.write || self.write)
    }
}

impl Default for SftpDirections {
    fn default() -> Self {
        Self::BOTH
    }
}

/// What a request needs: reading, writing, both, or neither (allowed in either direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub read: bool,
    pub write: bool,
}

const EITHER: Need = Need {
    read: false,
    write: false,
};
const READING: Need = Need {
    read: true,
    write: false,
};
const WRITING: Need = Need {
    read: false,
    write: true,
};
const BOTH: Need = Need {
    read: true,
    write: true,
};

/// What a client request (a whole packet body) needs, and what to call it in the audit trail.
/// `None` for a packet too short to be a request.
pub fn needs(packet: &[u8]) -> Option<(Need, String)> {
    let mut r = Reader(packet);
    let kind = r.u8()?;
    if kind == INIT {
        return Some((EITHER, "init".into()));
    }
    let _id = r.u32()?;
    let named = |need: Need, name: &str| Some((need, name.to_owned()));
    match kind {
        OPEN => {
            let _path = r.bytes()?;
            let flags = r.u32()?;
            // OpenSSH opens read-only unless the write flag is set, so an open without either
            // flag (or with only create) can read.
            let need = Need {
                read: flags & READ_FLAG != 0 || flags & WRITE_FLAG == 0,
                write: flags & WRITE_FLAGS != 0,
            };
            let name = if need.write {
                "open for writing"
            } else {
                "open for reading"
            };
            named(need, name)
        }
        CLOSE => named(EITHER, "close"),
        READ => named(READING, "read"),
        WRITE => named(WRITING, "write"),
        LSTAT => named(EITHER, "lstat"),
        FSTAT => named(EITHER, "fstat"),
        SETSTAT => named(WRITING, "setstat"),
        FSETSTAT => named(WRITING, "fsetstat"),
        OPENDIR => named(READING, "opendir"),
        READDIR => named(READING, "readdir"),
        REMOVE => named(WRITING, "remove"),
        MKDIR => named(WRITING, "mkdir"),
        RMDIR => named(WRITING, "rmdir"),
        REALPATH => named(EITHER, "realpath"),
        STAT => named(EITHER, "stat"),
        RENAME => named(WRITING, "rename"),
        READLINK => named(READING, "readlink"),
        SYMLINK => named(WRITING, "symlink"),
        EXTENDED => {
            let name = String::from_utf8_lossy(r.bytes()?).into_owned();
            let need = match name.as_str() {
                "statvfs@openssh.com"
                | "fstatvfs@openssh.com"
                | "limits@openssh.com"
                | "expand-path@openssh.com"
                | "home-directory"
                | "users-groups-by-id@openssh.com" => EITHER,
                "posix-rename@openssh.com"
                | "hardlink@openssh.com"
                | "fsync@openssh.com"
                | "lsetstat@openssh.com" => WRITING,
                _ => BOTH,
            };
            Some((need, name))
        }
        other => Some((BOTH, format!("request type {other}"))),
    }
}

/// What the relay does with bytes the client sent, once filtered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// The bytes for the server; `None` when all of what came passes unchanged.
    pub forward: Option<Vec<u8>>,
    /// Whole reply packets Rampart answers with, for the client.
    pub replies: Vec<u8>,
    pub events: Vec<SftpEvent>,
}

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
    /// A request the session's directions do not allow, answered by Rampart with
    /// `SSH_FX_PERMISSION_DENIED`; it never reached the server. `read` and `write` say which
    /// missing direction refused it. After [`MAX_AUDITED_REFUSALS`] one more event has the
    /// operation `more refused requests (not reported one by one)`.
    Refused {
        operation: String,
        path: String,
        read: bool,
        write: bool,
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

/// Watches one SFTP session, and keeps it to its directions.
#[derive(Default)]
pub struct SftpObserver {
    from_client: Framer,
    from_server: Framer,
    pending: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, OpenFile>,
    directions: SftpDirections,
    refused: u64,
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

    /// An observer that also keeps the session to `directions` ([`Self::filter_client`]).
    pub fn with_directions(directions: SftpDirections) -> Self {
        Self {
            directions,
            ..Self::default()
        }
    }

    /// Bytes the client sent: what to pass to the server, what to answer at once, and the
    /// evidence. With both directions everything passes as it came; otherwise only whole
    /// requests the directions allow pass (a partial one waits for its rest), and the others are
    /// answered with `SSH_FX_PERMISSION_DENIED` under their request id.
    pub fn filter_client(&mut self, data: &[u8]) -> Result<Filtered, SftpError> {
        if self.directions == SftpDirections::BOTH {
            return Ok(Filtered {
                forward: None,
                replies: Vec::new(),
                events: self.client(data)?,
            });
        }
        let mut filtered = Filtered {
            forward: Some(Vec::new()),
            ..Filtered::default()
        };
        for packet in self.from_client.push(data)? {
            let (need, operation) = needs(&packet).ok_or_else(|| malformed("client"))?;
            if self.directions.allow(need) {
                self.request(&packet, &mut filtered.events)?;
                if let Some(forward) = filtered.forward.as_mut() {
                    forward.extend_from_slice(&(packet.len() as u32).to_be_bytes());
                    forward.extend_from_slice(&packet);
                }
                continue;
            }
            let mut r = Reader(&packet);
            let _kind = r.u8();
            let id = r.u32().ok_or_else(|| malformed("client"))?;
            let missing = if need.write && !self.directions.write {
                "writing"
            } else {
                "reading"
            };
            filtered.replies.extend(status(
                id,
                PERMISSION_DENIED,
                &format!("Rampart: this session does not allow {missing}"),
            ));
            self.refused = self.refused.saturating_add(1);
            if self.refused <= MAX_AUDITED_REFUSALS {
                filtered.events.push(SftpEvent::Refused {
                    path: self.path_of_request(&packet),
                    operation,
                    read: need.read && !self.directions.read,
                    write: need.write && !self.directions.write,
                });
            } else if self.refused == MAX_AUDITED_REFUSALS + 1 {
                filtered.events.push(SftpEvent::Refused {
                    operation: "more refused requests (not reported one by one)".into(),
                    path: "-".into(),
                    read: !self.directions.read,
                    write: !self.directions.write,
                });
            }
        }
        Ok(filtered)
    }

    /// Whether the server's stream is between two packets, where a reply of Rampart's may be
    /// put in without breaking one.
    pub fn server_between_packets(&self) -> bool {
        self.from_server.buffer.is_empty()
    }

    /// The path a request names, or the path a handle it names was opened with.
    fn path_of_request(&self, packet: &[u8]) -> String {
        let mut r = Reader(packet);
        let kind = r.u8();
        let _id = r.u32();
        if kind == Some(EXTENDED) {
            let _name = r.bytes();
        }
        let Some(first) = r.bytes() else {
            return "-".into();
        };
        match kind {
            Some(READ | WRITE | FSETSTAT | READDIR | FSTAT) => self
                .handles
                .get(first)
                .map_or_else(|| "(a handle)".to_owned(), |file| file.path.clone()),
            _ => String::from_utf8_lossy(first).into_owned(),
        }
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

/// An `SSH_FXP_STATUS` reply packet, with its length.
fn status(id: u32, code: u32, message: &str) -> Vec<u8> {
    let mut body = vec![STATUS];
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    body.extend_from_slice(&0u32.to_be_bytes()); // language tag
    let mut packet = (body.len() as u32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
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

    fn open(id: u32, path: &[u8], flags: u32) -> Vec<u8> {
        packet(
            OPEN,
            Some(id),
            &[&string(path), &flags.to_be_bytes(), &0u32.to_be_bytes()],
        )
    }

    /// Feeds `stream` in `piece`-byte pieces; returns what passed, the replies and the events.
    fn filter(
        o: &mut SftpObserver,
        stream: &[u8],
        piece: usize,
    ) -> (Vec<u8>, Vec<u8>, Vec<SftpEvent>) {
        let (mut passed, mut replies, mut events) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in stream.chunks(piece) {
            let filtered = o.filter_client(chunk).unwrap();
            passed.extend(filtered.forward.unwrap_or_else(|| chunk.to_vec()));
            replies.extend(filtered.replies);
            events.extend(filtered.events);
        }
        (passed, replies, events)
    }

    fn denied(id: u32, missing: &str) -> Vec<u8> {
        packet(
            STATUS,
            Some(id),
            &[
                &3u32.to_be_bytes(),
                &string(format!("Rampart: this session does not allow {missing}").as_bytes()),
                &string(b""),
            ],
        )
    }

    #[test]
    fn read_only_passes_reads_whole_and_answers_writes_itself() {
        let read_only = SftpDirections {
            read: true,
            write: false,
        };
        let allowed: Vec<Vec<u8>> = vec![
            packet(INIT, None, &[&3u32.to_be_bytes()]),
            packet(REALPATH, Some(1), &[&string(b".")]),
            open(2, b"/etc/motd", READ_FLAG),
            packet(STAT, Some(3), &[&string(b"/etc")]),
            packet(LSTAT, Some(4), &[&string(b"/etc")]),
            packet(OPENDIR, Some(5), &[&string(b"/etc")]),
            packet(READDIR, Some(6), &[&string(b"d")]),
            packet(READLINK, Some(7), &[&string(b"/l")]),
            packet(CLOSE, Some(8), &[&string(b"d")]),
            packet(
                EXTENDED,
                Some(9),
                &[&string(b"statvfs@openssh.com"), &string(b"/")],
            ),
        ];
        let refused: Vec<(Vec<u8>, &str, &str)> = vec![
            (
                open(20, b"/tmp/new", WRITE_FLAG | 0x08 | 0x10),
                "open for writing",
                "/tmp/new",
            ),
            (open(21, b"/tmp/log", 0x04), "open for writing", "/tmp/log"),
            (
                open(22, b"/tmp/rw", READ_FLAG | WRITE_FLAG),
                "open for writing",
                "/tmp/rw",
            ),
            (
                packet(
                    WRITE,
                    Some(23),
                    &[&string(b"h"), &0u64.to_be_bytes(), &string(b"x")],
                ),
                "write",
                "(a handle)",
            ),
            (
                packet(REMOVE, Some(24), &[&string(b"/etc/passwd")]),
                "remove",
                "/etc/passwd",
            ),
            (
                packet(MKDIR, Some(25), &[&string(b"/tmp/d"), &0u32.to_be_bytes()]),
                "mkdir",
                "/tmp/d",
            ),
            (
                packet(RMDIR, Some(26), &[&string(b"/tmp/d")]),
                "rmdir",
                "/tmp/d",
            ),
            (
                packet(RENAME, Some(27), &[&string(b"/a"), &string(b"/b")]),
                "rename",
                "/a",
            ),
            (
                packet(SETSTAT, Some(28), &[&string(b"/a"), &0u32.to_be_bytes()]),
                "setstat",
                "/a",
            ),
            (
                packet(FSETSTAT, Some(29), &[&string(b"h"), &0u32.to_be_bytes()]),
                "fsetstat",
                "(a handle)",
            ),
            (
                packet(SYMLINK, Some(30), &[&string(b"/l"), &string(b"/etc")]),
                "symlink",
                "/l",
            ),
            (
                packet(
                    EXTENDED,
                    Some(31),
                    &[
                        &string(b"posix-rename@openssh.com"),
                        &string(b"/a"),
                        &string(b"/b"),
                    ],
                ),
                "posix-rename@openssh.com",
                "/a",
            ),
            (
                packet(EXTENDED, Some(32), &[&string(b"something-new@example.com")]),
                "something-new@example.com",
                "-",
            ),
            (packet(99, Some(33), &[]), "request type 99", "-"),
        ];
        // Interleaved, fed whole and in awkward pieces.
        let mut stream = Vec::new();
        for (i, pass) in allowed.iter().enumerate() {
            stream.extend(pass);
            if let Some((refuse, _, _)) = refused.get(i) {
                stream.extend(refuse);
            }
        }
        for (refuse, _, _) in refused.iter().skip(allowed.len()) {
            stream.extend(refuse);
        }
        for piece in [1, 5, stream.len()] {
            let mut o = SftpObserver::with_directions(read_only);
            let (passed, replies, events) = filter(&mut o, &stream, piece);
            assert_eq!(passed, allowed.concat(), "only the allowed requests, whole");
            let expected: Vec<u8> = (20..34).flat_map(|id| denied(id, "writing")).collect();
            assert_eq!(replies, expected);
            let refusals: Vec<(String, String)> = events
                .iter()
                .filter_map(|e| match e {
                    SftpEvent::Refused {
                        operation,
                        path,
                        write: true,
                        read: false,
                    } => Some((operation.clone(), path.clone())),
                    _ => None,
                })
                .collect();
            let wanted: Vec<(String, String)> = refused
                .iter()
                .map(|(_, op, path)| ((*op).to_owned(), (*path).to_owned()))
                .collect();
            assert_eq!(refusals, wanted);
        }
    }

    #[test]
    fn write_only_uploads_and_never_reads_contents() {
        let mut o = SftpObserver::with_directions(SftpDirections {
            read: false,
            write: true,
        });
        let allowed = [
            packet(REALPATH, Some(1), &[&string(b".")]),
            packet(STAT, Some(2), &[&string(b"/srv")]),
            open(3, b"/srv/up", WRITE_FLAG | 0x08 | 0x10),
            packet(
                WRITE,
                Some(4),
                &[&string(b"h"), &0u64.to_be_bytes(), &string(b"x")],
            ),
            packet(MKDIR, Some(5), &[&string(b"/srv/d"), &0u32.to_be_bytes()]),
        ]
        .concat();
        let refused = [
            open(6, b"/etc/shadow", READ_FLAG),
            open(7, b"/etc/shadow", 0),
            open(8, b"/srv/x", 0x08),
            packet(
                READ,
                Some(9),
                &[&string(b"h"), &0u64.to_be_bytes(), &1u32.to_be_bytes()],
            ),
            packet(OPENDIR, Some(10), &[&string(b"/etc")]),
            packet(READDIR, Some(11), &[&string(b"d")]),
            packet(READLINK, Some(12), &[&string(b"/l")]),
        ]
        .concat();
        let (passed, replies, _) = filter(&mut o, &[allowed.clone(), refused].concat(), 3);
        assert_eq!(passed, allowed);
        let expected: Vec<u8> = (6..13).flat_map(|id| denied(id, "reading")).collect();
        assert_eq!(replies, expected);
    }

    #[test]
    fn both_directions_pass_everything_unchanged_and_refusals_are_audited_up_to_a_bound() {
        let mut o = SftpObserver::with_directions(SftpDirections::BOTH);
        let remove = packet(REMOVE, Some(1), &[&string(b"/x")]);
        let filtered = o.filter_client(&remove[..3]).unwrap();
        assert_eq!(
            filtered.forward, None,
            "passes as it came, even half a packet"
        );
        let mut o = SftpObserver::with_directions(SftpDirections {
            read: true,
            write: false,
        });
        let flood: Vec<u8> = (0..MAX_AUDITED_REFUSALS as u32 + 50)
            .flat_map(|id| packet(REMOVE, Some(id), &[&string(b"/x")]))
            .collect();
        let (passed, replies, events) = filter(&mut o, &flood, 4096);
        assert!(passed.is_empty());
        assert_eq!(
            replies.len(),
            denied(0, "writing").len() * (MAX_AUDITED_REFUSALS as usize + 50)
        );
        assert_eq!(events.len(), MAX_AUDITED_REFUSALS as usize + 1);
        assert!(o.server_between_packets());
        o.server(&packet(STATUS, Some(1), &[&0u32.to_be_bytes()])[..6])
            .unwrap();
        assert!(!o.server_between_packets());
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
