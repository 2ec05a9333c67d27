//! What Rampart makes of one Redis command: its text for the query log (bounded, secrets
//! masked), and whether it is passed on, answered by Rampart, or refused.

use bytes::Bytes;
use rampart_session::database::bounded;

/// Bytes of a command's text kept in its record.
pub const MAX_TEXT: usize = 16 * 1024;
/// Bytes of one argument kept in the text.
pub const MAX_ARG: usize = 1024;

/// What the log shows instead of a secret.
pub const MASK: &str = "***";

/// The node's list of refused commands (`redis.deny_commands`): `FLUSHALL`, or a command with
/// its subcommand (`CONFIG SET`). Case does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList(Vec<(String, Option<String>)>);

impl DenyList {
    /// Parses `FLUSHALL, FLUSHDB, CONFIG SET`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut words = entry.split_whitespace();
            let command = words.next().unwrap_or_default().to_ascii_uppercase();
            let sub = words.next().map(str::to_ascii_uppercase);
            let plain = |w: &str| {
                w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if words.next().is_some() || !plain(&command) || !sub.as_deref().is_none_or(plain) {
                return Err(format!(
                    "{entry:?} is not a command name (COMMAND or COMMAND SUBCOMMAND)"
                ));
            }
            entries.push((command, sub));
        }
        Ok(Self(entries))
    }

    /// The entry that refuses `args`, as written (`CONFIG`, `CONFIG SET`).
    pub fn refuses(&self, args: &[Bytes]) -> Option<String> {
        let name = upper(args.first()?);
        let sub = args.get(1).map(|a| upper(a));
        self.0.iter().find_map(|(command, wanted)| {
            if *command != name {
                return None;
            }
            match wanted {
                None => Some(command.clone()),
                Some(wanted) if sub.as_deref() == Some(wanted.as_str()) => {
                    Some(format!("{command} {wanted}"))
                }
                Some(_) => None,
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for DenyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<String> = self
            .0
            .iter()
            .map(|(c, s)| match s {
                Some(s) => format!("{c} {s}"),
                None => c.clone(),
            })
            .collect();
        // With spaces, so that it wraps where it is shown (the portal's settings page).
        f.write_str(&words.join(", "))
    }
}

/// The commands refused unless configured otherwise: they wipe or reconfigure the whole server.
pub const DEFAULT_DENIED: &str =
    "FLUSHALL,FLUSHDB,CONFIG,SHUTDOWN,DEBUG,REPLICAOF,SLAVEOF,MODULE,ACL SETUSER,ACL DELUSER";

pub fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

/// What the front does with a command after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed to the target.
    Pass,
    /// Refused by the deny-list: Rampart answers `-ERR` and the session goes on.
    Denied(String),
    /// Not relayed: Rampart cannot keep its log true through it (`MONITOR`, `CLIENT REPLY`,
    /// replication) or it would change who is logged in (`AUTH`); answered `-ERR`.
    Unsupported(&'static str),
}

pub fn verdict(args: &[Bytes], deny: &DenyList) -> Verdict {
    let name = args.first().map(|a| upper(a)).unwrap_or_default();
    let sub = args.get(1).map(|a| upper(a));
    match (name.as_str(), sub.as_deref()) {
        ("AUTH", _) => {
            return Verdict::Unsupported(
                "the session is logged in through Rampart; AUTH is not passed on",
            );
        }
        ("HELLO", _) if args.iter().skip(2).any(|a| upper(a) == "AUTH") => {
            return Verdict::Unsupported(
                "the session is logged in through Rampart; HELLO with AUTH is not passed on",
            );
        }
        ("MONITOR" | "SYNC" | "PSYNC", _) | ("CLIENT", Some("REPLY")) => {
            return Verdict::Unsupported("this command is not supported through Rampart");
        }
        _ => {}
    }
    match deny.refuses(args) {
        Some(entry) => Verdict::Denied(entry),
        None => Verdict::Pass,
    }
}

/// A command as text for the log: arguments separated by spaces, quoted when they hold
/// spaces, quotes or bytes that are not printable; each cut at [`MAX_ARG`], the whole at
/// [`MAX_TEXT`]; passwords masked (`AUTH`, `HELLO ... AUTH`, `CONFIG SET requirepass`,
/// `ACL SETUSER` rules, `MIGRATE ... AUTH/AUTH2`).
pub fn render(args: &[Bytes]) -> String {
    let secret = secret_positions(args);
    let mut text = String::new();
    for (index, arg) in args.iter().enumerate() {
        if index > 0 {
            text.push(' ');
        }
        if secret.contains(&index) {
            text.push_str(MASK);
            continue;
        }
        text.push_str(&quote(arg));
        if text.len() > MAX_TEXT * 2 {
            break;
        }
    }
    bounded(&text, MAX_TEXT)
}

fn quote(arg: &[u8]) -> String {
    let kept = arg.get(..MAX_ARG).unwrap_or(arg);
    let plain = !kept.is_empty()
        && kept
            .iter()
            .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\'' && *b != b'\\');
    let mut out = if plain {
        String::from_utf8_lossy(kept).into_owned()
    } else {
        let mut quoted = String::from("\"");
        for chunk in kept.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    '\r' => quoted.push_str("\\r"),
                    '\t' => quoted.push_str("\\t"),
                    c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", c as u32)),
                    c => quoted.push(c),
                }
            }
            for byte in chunk.invalid() {
                quoted.push_str(&format!("\\x{byte:02x}"));
            }
        }
        quoted.push('"');
        quoted
    };
    if arg.len() > kept.len() {
        out.push_str(&format!("… ({} more bytes)", arg.len() - kept.len()));
    }
    out
}

/// Which arguments are secrets.
fn secret_positions(args: &[Bytes]) -> Vec<usize> {
    let words: Vec<String> = args.iter().map(|a| upper(a)).collect();
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let mut secret = Vec::new();
    match word(0) {
        // AUTH password | AUTH user password: the last argument.
        "AUTH" if args.len() >= 2 => secret.push(args.len() - 1),
        // HELLO 3 AUTH user password
        "HELLO" => {
            if let Some(at) = words.iter().position(|w| w == "AUTH") {
                secret.push(at + 2);
            }
        }
        // CONFIG SET name value [name value ...]: values of password settings.
        "CONFIG" if word(1) == "SET" => {
            let mut at = 2;
            while at + 1 < args.len() {
                if matches!(
                    word(at),
                    "REQUIREPASS" | "MASTERAUTH" | "MASTERUSER" | "TLS-KEY-FILE-PASS"
                ) || word(at).contains("PASS")
                {
                    secret.push(at + 1);
                }
                at += 2;
            }
        }
        // ACL SETUSER name rules...: `>password`, `<password`, `#hash`, `!hash`.
        "ACL" if word(1) == "SETUSER" => {
            for (at, arg) in args.iter().enumerate().skip(3) {
                if matches!(arg.first(), Some(b'>' | b'<' | b'#' | b'!')) {
                    secret.push(at);
                }
            }
        }
        // MIGRATE ... AUTH password | AUTH2 user password
        "MIGRATE" => {
            for (at, w) in words.iter().enumerate() {
                match w.as_str() {
                    "AUTH" => secret.push(at + 1),
                    "AUTH2" => secret.push(at + 2),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    secret
}

/// Pub/sub commands whose answers are confirmations (one per channel).
pub fn subscription(args: &[Bytes]) -> Option<&'static str> {
    let name = upper(args.first()?);
    Some(match name.as_str() {
        "SUBSCRIBE" => "subscribe",
        "UNSUBSCRIBE" => "unsubscribe",
        "PSUBSCRIBE" => "psubscribe",
        "PUNSUBSCRIBE" => "punsubscribe",
        "SSUBSCRIBE" => "ssubscribe",
        "SUNSUBSCRIBE" => "sunsubscribe",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn secrets_are_masked_in_the_text() {
        for (command, shown) in [
            (&["AUTH", "s3cret"][..], "AUTH ***"),
            (&["auth", "bob", "s3cret"], "auth bob ***"),
            (
                &["HELLO", "3", "AUTH", "bob", "s3cret"],
                "HELLO 3 AUTH bob ***",
            ),
            (
                &["CONFIG", "SET", "requirepass", "s3cret", "maxmemory", "1mb"],
                "CONFIG SET requirepass *** maxmemory 1mb",
            ),
            (
                &["ACL", "SETUSER", "bob", "on", ">s3cret", "~*", "+@all"],
                "ACL SETUSER bob on *** ~* +@all",
            ),
            (
                &["MIGRATE", "h", "1", "k", "0", "5", "AUTH2", "u", "s3cret"],
                "MIGRATE h 1 k 0 5 AUTH2 u ***",
            ),
        ] {
            let text = render(&args(command));
            assert_eq!(text, shown);
            assert!(!text.contains("s3cret"));
        }
    }

    #[test]
    fn text_is_quoted_and_bounded() {
        assert_eq!(render(&args(&["SET", "k", "a b\n"])), "SET k \"a b\\n\"");
        let big = "x".repeat(MAX_ARG + 10);
        let text = render(&args(&["SET", "k", &big]));
        assert!(text.ends_with("… (10 more bytes)"), "{text}");
        let many: Vec<String> = (0..100).map(|_| "y".repeat(MAX_ARG)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let text = render(&args(&many));
        assert!(text.len() < MAX_TEXT + 64, "{}", text.len());
        assert!(text.contains("more bytes)"));
    }

    #[test]
    fn deny_list_matches_commands_and_subcommands() {
        let deny = DenyList::parse("flushall, CONFIG SET").unwrap();
        assert_eq!(
            deny.refuses(&args(&["FLUSHALL"])).as_deref(),
            Some("FLUSHALL")
        );
        assert_eq!(
            deny.refuses(&args(&["config", "set", "x", "y"])).as_deref(),
            Some("CONFIG SET")
        );
        assert_eq!(deny.refuses(&args(&["CONFIG", "GET", "x"])), None);
        assert_eq!(deny.refuses(&args(&["GET", "k"])), None);
        assert!(DenyList::parse("A B C").is_err());
        assert!(DenyList::parse("FLUSH*").is_err());
        assert_eq!(
            verdict(&args(&["AUTH", "x"]), &deny),
            Verdict::Unsupported("the session is logged in through Rampart; AUTH is not passed on")
        );
        assert_eq!(verdict(&args(&["HELLO", "3"]), &deny), Verdict::Pass);
        assert!(matches!(
            verdict(&args(&["MONITOR"]), &deny),
            Verdict::Unsupported(_)
        ));
    }
}
