//! File transfer evidence for legacy scp (`scp -O`): an observer of the direction that carries
//! the files (`scp -t` receives from the client, `scp -f` sends to it), reporting each file with
//! its size and SHA-256. Like the SFTP observer it never alters the stream, and it gives up
//! (making the session uninspectable, which ends it) on input it cannot follow.

use crate::hex;
use crate::sftp::SftpEvent;
use sha2::{Digest, Sha256};

/// A protocol line (`C0644 12 name`) longer than this is not scp.
const MAX_LINE: usize = 4096;
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the scp stream cannot be inspected: {0}")]
pub struct ScpError(String);

/// The scp command the client ran on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpCommand {
    /// `scp -t`: files flow from the client (upload).
    pub upload: bool,
    /// The path named on the command line.
    pub path: String,
    /// `-d` or `-r`: the path is a directory the files go into.
    pub into_directory: bool,
}

impl ScpCommand {
    /// Parses `scp [-v] [-p] [-d] [-r] (-t|-f) [--] PATH`.
    pub fn parse(command: &str) -> Option<Self> {
        let mut words = command.split_whitespace();
        if words.next()? != "scp" {
            return None;
        }
        let (mut upload, mut download, mut into_directory, mut path) = (false, false, false, None);
        for word in words {
            match word {
                "--" => {}
                flag if flag.starts_with('-') && path.is_none() => {
                    upload |= flag.contains('t');
                    download |= flag.contains('f');
                    into_directory |= flag.contains('d') || flag.contains('r');
                }
                other => path = Some(other.to_owned()),
            }
        }
        (upload != download).then_some(Self {
            upload,
            path: path?,
            into_directory,
        })
    }
}

enum State {
    Line(Vec<u8>),
    Data {
        name: String,
        remaining: u64,
        size: u64,
        hasher: Sha256,
    },
    /// After a file's bytes, the sender sends one status byte.
    Status {
        name: String,
        size: u64,
        hasher: Sha256,
    },
}

pub struct ScpObserver {
    command: ScpCommand,
    state: State,
    directories: Vec<String>,
}

impl std::fmt::Debug for ScpObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScpObserver")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl ScpObserver {
    pub fn new(command: ScpCommand) -> Self {
        Self {
            command,
            state: State::Line(Vec::new()),
            directories: Vec::new(),
        }
    }

    pub fn upload(&self) -> bool {
        self.command.upload
    }

    /// Bytes of the direction that carries files.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<SftpEvent>, ScpError> {
        let mut events = Vec::new();
        while !data.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Line(Vec::new()));
            self.state = match state {
                State::Line(mut line) => {
                    let (head, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                        Some(end) => (
                            data.get(..end).unwrap_or_default(),
                            data.get(end + 1..).unwrap_or_default(),
                            true,
                        ),
                        None => (data, &[][..], false),
                    };
                    line.extend_from_slice(head);
                    data = rest;
                    if line.len() > MAX_LINE {
                        return Err(ScpError("a protocol line that never ends".into()));
                    }
                    if complete {
                        self.line(&line)?
                    } else {
                        State::Line(line)
                    }
                }
                State::Data {
                    name,
                    remaining,
                    size,
                    mut hasher,
                } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let (bytes, rest) = data.split_at(take);
                    hasher.update(bytes);
                    data = rest;
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        State::Status { name, size, hasher }
                    } else {
                        State::Data {
                            name,
                            remaining,
                            size,
                            hasher,
                        }
                    }
                }
                State::Status { name, size, hasher } => {
                    data = data.get(1..).unwrap_or_default();
                    events.push(SftpEvent::Transferred {
                        path: self.path_of(&name),
                        upload: self.command.upload,
                        bytes: size,
                        sha256: Some(hex(&hasher.finalize())),
                    });
                    State::Line(Vec::new())
                }
            };
        }
        Ok(events)
    }

    fn line(&mut self, line: &[u8]) -> Result<State, ScpError> {
        let text = String::from_utf8_lossy(line);
        let bad = || {
            ScpError(format!(
                "an unexpected line {:?}",
                text.chars().take(80).collect::<String>()
            ))
        };
        match line.first() {
            Some(b'C') => {
                let mut fields = text.splitn(3, ' ');
                let _mode = fields.next();
                let size: u64 = fields.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                let name = fields.next().ok_or_else(bad)?.to_owned();
                let state = State::Data {
                    name,
                    remaining: size,
                    size,
                    hasher: Sha256::new(),
                };
                Ok(match size {
                    0 => match state {
                        State::Data {
                            name, size, hasher, ..
                        } => State::Status { name, size, hasher },
                        other => other,
                    },
                    _ => state,
                })
            }
            Some(b'D') => {
                if self.directories.len() >= MAX_DEPTH {
                    return Err(ScpError("directories nested too deep".into()));
                }
                let name = text.splitn(3, ' ').nth(2).ok_or_else(bad)?.to_owned();
                self.directories.push(name);
                Ok(State::Line(Vec::new()))
            }
            Some(b'E') => {
                self.directories.pop();
                Ok(State::Line(Vec::new()))
            }
            // Times (`T...`) and the acknowledgement bytes that may lead a line.
            Some(b'T') | Some(0) => Ok(State::Line(Vec::new())),
            _ => Err(bad()),
        }
    }

    fn path_of(&self, name: &str) -> String {
        if self.command.into_directory || self.command.path.ends_with('/') {
            let mut path = self.command.path.trim_end_matches('/').to_owned();
            for directory in &self.directories {
                path.push('/');
                path.push_str(directory);
            }
            path.push('/');
            path.push_str(name);
            path
        } else {
            self.command.path.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let up = ScpCommand::parse("scp -t /tmp/x").unwrap();
        assert!(up.upload && !up.into_directory && up.path == "/tmp/x");
        let down = ScpCommand::parse("scp -f -- /etc/motd").unwrap();
        assert!(!down.upload && down.path == "/etc/motd");
        assert!(
            ScpCommand::parse("scp -r -d -t /srv")
                .unwrap()
                .into_directory
        );
        assert_eq!(ScpCommand::parse("scp -t -f x"), None);
        assert_eq!(ScpCommand::parse("ls -t x"), None);
    }

    #[test]
    fn files_and_directories_in_any_pieces() {
        let command = ScpCommand::parse("scp -r -t /srv").unwrap();
        let stream = b"D0755 0 site\nC0644 5 a.txt\nhello\0C0644 0 empty\n\0E\n";
        for piece_size in [1, 3, stream.len()] {
            let mut observer = ScpObserver::new(command.clone());
            let mut events = Vec::new();
            for piece in stream.chunks(piece_size) {
                events.extend(observer.feed(piece).unwrap());
            }
            assert_eq!(
                events,
                [
                    SftpEvent::Transferred {
                        path: "/srv/site/a.txt".into(),
                        upload: true,
                        bytes: 5,
                        sha256: Some(hex(&Sha256::digest(b"hello"))),
                    },
                    SftpEvent::Transferred {
                        path: "/srv/site/empty".into(),
                        upload: true,
                        bytes: 0,
                        sha256: Some(hex(&Sha256::digest(b""))),
                    },
                ]
            );
        }
    }

    #[test]
    fn garbage_and_endless_lines_are_refused() {
        let command = ScpCommand::parse("scp -f x").unwrap();
        assert!(
            ScpObserver::new(command.clone())
                .feed(b"Xnot scp\n")
                .is_err()
        );
        assert!(
            ScpObserver::new(command.clone())
                .feed(b"C0644 notanumber x\n")
                .is_err()
        );
        assert!(
            ScpObserver::new(command)
                .feed(&[b'C'; MAX_LINE + 10])
                .is_err()
        );
    }
}
