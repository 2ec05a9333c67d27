//! Legacy scp (`scp -O`): the strict parser of the command a client runs on the target, and an
//! observer of the direction that carries the files (`scp -t` receives from the client, `scp -f`
//! sends to it), reporting each file with its size and SHA-256. Like the SFTP observer it never
//! alters the stream, and it gives up (making the session uninspectable, which ends it) on input
//! it cannot follow.
//!
//! A command is classed as scp only if [`ScpCommand::parse`] accepts it, and what runs on the
//! target is [`ScpCommand::command`], rebuilt from the parsed form: nothing the user typed reaches
//! the target's shell beyond one path, quoted. Anything else is an ordinary command (`exec`).

use crate::hex;
use crate::sftp::SftpEvent;
use sha2::{Digest, Sha256};

/// A protocol line (`C0644 12 name`) longer than this is not scp.
const MAX_LINE: usize = 4096;
const MAX_DEPTH: usize = 64;
/// Longer than any path a file system takes (PATH_MAX is 4096).
const MAX_COMMAND: usize = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the scp stream cannot be inspected: {0}")]
pub struct ScpError(String);

/// Why a command is not a plain legacy scp transfer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a plain scp transfer: {0}")]
pub struct NotScp(String);

/// A legacy scp command as OpenSSH's `scp -O` sends it:
/// `scp [-v] [-r] [-p] [-d] (-t|-f) [--] PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpCommand {
    /// `scp -t`: files flow from the client (upload); `scp -f`: to it.
    pub upload: bool,
    /// The path, as the target's shell would have passed it to scp (quotes removed).
    pub path: String,
    /// `-v`
    pub verbose: bool,
    /// `-r`
    pub recursive: bool,
    /// `-p`
    pub preserve_times: bool,
    /// `-d`: the target must be a directory.
    pub target_is_directory: bool,
}

/// Characters that mean nothing to a POSIX shell outside quotes (and that OpenSSH's scp sends
/// bare), so a path made only of them is passed on unquoted.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '/' | '.' | '_' | '-' | '+' | ',' | ':' | '@' | '%' | '=')
}

impl ScpCommand {
    /// Parses the command strictly. OpenSSH's scp passes the path as the user typed it, for the
    /// target's shell to read, so the path is one shell word: bare characters that mean nothing
    /// to a shell, `'...'`, `"..."` without `$`, `` ` ``, `\` or `!`, and `\`-escaped characters;
    /// a leading `~/` (or `~` alone) is the home directory, where the command starts. Anything
    /// else (a second word, `;`, `$(...)`, backticks, globs, control characters such as a
    /// newline, options such as `-S` or `-o`) is refused.
    pub fn parse(command: &[u8]) -> Result<Self, NotScp> {
        let refuse = |why: &str| Err(NotScp(why.to_owned()));
        if command.len() > MAX_COMMAND {
            return refuse("the command is too long");
        }
        let Ok(command) = std::str::from_utf8(command) else {
            return refuse("the command is not UTF-8");
        };
        let Some(mut rest) = command.strip_prefix("scp ") else {
            return refuse("the command is not scp");
        };
        let mut parsed = Self {
            upload: false,
            path: String::new(),
            verbose: false,
            recursive: false,
            preserve_times: false,
            target_is_directory: false,
        };
        let mut direction = None;
        loop {
            rest = rest.trim_start_matches(' ');
            let Some(options) = rest.strip_prefix('-') else {
                break;
            };
            let (word, after) = options.split_once(' ').unwrap_or((options, ""));
            rest = after;
            if word == "-" {
                rest = rest.trim_start_matches(' ');
                break;
            }
            if word.is_empty() {
                return refuse("an empty option");
            }
            for letter in word.chars() {
                match letter {
                    'v' => parsed.verbose = true,
                    'r' => parsed.recursive = true,
                    'p' => parsed.preserve_times = true,
                    'd' => parsed.target_is_directory = true,
                    't' | 'f' if direction.is_none() => direction = Some(letter == 't'),
                    't' | 'f' => return refuse("more than one of -t and -f"),
                    other => return Err(NotScp(format!("the option -{other}"))),
                }
            }
        }
        let Some(upload) = direction else {
            return refuse("neither -t nor -f");
        };
        parsed.upload = upload;
        parsed.path = shell_word(rest)?;
        Ok(parsed)
    }

    /// `-d` or `-r`: the path is a directory the files go into.
    pub fn into_directory(&self) -> bool {
        self.target_is_directory || self.recursive
    }

    /// The command to run on the target, rebuilt from the parsed form with the path quoted.
    pub fn command(&self) -> String {
        let mut command = "scp".to_owned();
        for (set, flag) in [
            (self.verbose, " -v"),
            (self.recursive, " -r"),
            (self.preserve_times, " -p"),
            (self.target_is_directory, " -d"),
        ] {
            if set {
                command.push_str(flag);
            }
        }
        command.push_str(if self.upload { " -t " } else { " -f " });
        if self.path.starts_with('-') {
            command.push_str("-- ");
        }
        if self.path.chars().all(plain) {
            command.push_str(&self.path);
        } else {
            command.push('\'');
            command.push_str(&self.path.replace('\'', r"'\''"));
            command.push('\'');
        }
        command
    }
}

/// Reads one shell word that must be all of `text`, the strict subset described at
/// [`ScpCommand::parse`].
fn shell_word(text: &str) -> Result<String, NotScp> {
    let refuse = |why: String| Err(NotScp(why));
    if let Some(bad) = text.chars().find(|c| c.is_control()) {
        return refuse(format!("a control character ({:?}) in the path", bad));
    }
    let (mut path, text) = match text {
        "~" => (".".to_owned(), ""),
        _ => match text.strip_prefix("~/") {
            Some("") => (".".to_owned(), ""),
            Some(rest) => (String::new(), rest),
            None => (String::new(), text),
        },
    };
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(inner) => path.push(inner),
                    None => return refuse("an unclosed quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some(inner @ ('$' | '`' | '\\' | '!')) => {
                        return refuse(format!("{inner:?} inside double quotes"));
                    }
                    Some(inner) => path.push(inner),
                    None => return refuse("an unclosed quote".into()),
                }
            },
            '\\' => match chars.next() {
                Some(escaped) => path.push(escaped),
                None => return refuse("a trailing backslash".into()),
            },
            ' ' => return refuse("more than one path".into()),
            c if plain(c) || !c.is_ascii() => path.push(c),
            other => return refuse(format!("{other:?} outside quotes")),
        }
    }
    if path.is_empty() {
        return refuse("no path".into());
    }
    Ok(path)
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
        if self.command.into_directory() || self.command.path.ends_with('/') {
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

    fn parse(command: &str) -> Result<ScpCommand, NotScp> {
        ScpCommand::parse(command.as_bytes())
    }

    #[test]
    fn commands_openssh_sends_parse_and_rebuild_unchanged() {
        let up = parse("scp -t /tmp/x").unwrap();
        assert!(up.upload && !up.into_directory() && up.path == "/tmp/x");
        let down = parse("scp -f -- /etc/motd").unwrap();
        assert!(!down.upload && down.path == "/etc/motd");
        assert!(parse("scp -r -d -t /srv").unwrap().into_directory());
        // What `scp -O` (OpenSSH 9.2) sends, checked with `scp -O -v`: rebuilt byte for byte.
        for sent in [
            "scp -t /tmp/x",
            "scp -f /tmp/x",
            "scp -v -t /tmp/x",
            "scp -v -r -p -t /tmp/dir/",
            "scp -v -d -t /tmp/d",
            "scp -v -f -- -dash",
            "scp -r -p -d -f relative/path.tar.gz",
        ] {
            assert_eq!(parse(sent).unwrap().command(), sent);
        }
    }

    #[test]
    fn quoted_paths_arrive_unchanged_and_are_requoted() {
        for (sent, path, rebuilt) in [
            ("scp -t '/tmp/a b'", "/tmp/a b", "scp -t '/tmp/a b'"),
            ("scp -t \"/tmp/a b\"", "/tmp/a b", "scp -t '/tmp/a b'"),
            ("scp -t /tmp/a\\ b", "/tmp/a b", "scp -t '/tmp/a b'"),
            (
                "scp -t '/tmp/it'\\''s'",
                "/tmp/it's",
                "scp -t '/tmp/it'\\''s'",
            ),
            (
                "scp -t \"/tmp/it's\"",
                "/tmp/it's",
                "scp -t '/tmp/it'\\''s'",
            ),
            ("scp -t '$(id)'", "$(id)", "scp -t '$(id)'"),
            ("scp -t '; id'", "; id", "scp -t '; id'"),
            ("scp -t '-x'", "-x", "scp -t -- -x"),
            ("scp -f ~/notes.txt", "notes.txt", "scp -f notes.txt"),
            ("scp -t ~", ".", "scp -t ."),
            ("scp -t '~/x'", "~/x", "scp -t '~/x'"),
            ("scp -tr /srv", "/srv", "scp -r -t /srv"),
            (
                "scp -t /tmp/données",
                "/tmp/données",
                "scp -t '/tmp/données'",
            ),
        ] {
            let parsed = parse(sent).unwrap_or_else(|err| panic!("{sent}: {err}"));
            assert_eq!(parsed.path, path, "{sent}");
            assert_eq!(parsed.command(), rebuilt, "{sent}");
            // The rebuilt command parses back to the same thing.
            assert_eq!(parse(&parsed.command()).unwrap(), parsed, "{sent}");
        }
    }

    #[test]
    fn anything_else_is_not_scp() {
        for command in [
            "scp",
            "scp ",
            "scp ; id",
            "scp -t /tmp; id",
            "scp -t /tmp;id",
            "scp -t \"$(id)\"",
            "scp -t $(id)",
            "scp -t `id`",
            "scp -t \"`id`\"",
            "scp -t '/tmp/x\nid'",
            "scp -t /tmp/x\nid",
            "scp -t /tmp/x\rid",
            "scp -S /bin/sh -t x",
            "scp -o ProxyCommand=id -t x",
            "scp -t -o x",
            "scp -t -f x",
            "scp -tf x",
            "scp -t",
            "scp -t ''",
            "scp -t a b",
            "scp -t x &",
            "scp -t x | id",
            "scp -t x > y",
            "scp -t *.txt",
            "scp -f {a,b}",
            "scp -f ~root/x",
            "scp -t 'unclosed",
            "scp -t x\\",
            "scp -t \"$HOME\"",
            "scp -h 2>/dev/null; echo INJECTED",
            "scp\t-t x",
            "ls -t x",
            " scp -t x",
            "scp -t x\0",
        ] {
            assert!(parse(command).is_err(), "{command:?} must not be scp");
        }
        assert!(ScpCommand::parse(b"scp -t \xff").is_err());
        let long = format!("scp -t /{}", "a".repeat(MAX_COMMAND));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn files_and_directories_in_any_pieces() {
        let command = parse("scp -r -t /srv").unwrap();
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
        let command = parse("scp -f x").unwrap();
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
