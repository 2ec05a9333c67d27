//! The MySQL/MariaDB side of credential rotation (issue 17): try a login with a given password,
//! change a user's password on the server, and (MySQL 8) discard the retained old one. Every
//! connection comes from the node's dialer and logs in with the one target login the sessions
//! use (`front::login_to_target`).
//!
//! Which statement:
//! - As the account itself: MySQL `ALTER USER CURRENT_USER() IDENTIFIED BY '...'`; MariaDB
//!   `SET PASSWORD = PASSWORD('...')` (MariaDB's `ALTER USER` needs `CREATE USER` even for
//!   one's own account; `SET PASSWORD` does not).
//! - Through a privileged rotation account: `ALTER USER 'user'@'host' IDENTIFIED BY '...'`,
//!   where `'user'@'host'` is the server's own answer to `SELECT CURRENT_USER()` in a login as
//!   the account (the entry that Rampart's logins match, whatever its host pattern).
//! - MySQL 8.0.14 and later keep the old password as a secondary one (`RETAIN CURRENT
//!   PASSWORD`), so sessions that still use the old secret keep working until the rotation
//!   commits; the old one is then dropped (`DISCARD OLD PASSWORD`). An account that may not
//!   retain its own password (error 1227: no `APPLICATION_PASSWORD_ADMIN`) is changed with the
//!   plain form. MariaDB has no dual passwords: the plain form.
//!
//! INVARIANT: the new password is only ever in the statement sent to the target (a MySQL
//! string literal, so a password holding a quote, a backslash or anything but printable ASCII
//! is refused before anything is sent); an error line that may echo the statement (a syntax
//! error, or any text holding part of the password) keeps only its code and SQLSTATE.

use crate::front::{Io, TargetClient, login_to_target, secure};
use crate::handshake::{DEFAULT_COLLATION, TargetGreeting, parse_target_greeting};
use crate::wire::{self, error_summary, lenenc_bytes, lenenc_int, read_packet, write_packet};
use bytes::{Buf, Bytes};
use rampart_core::{Asset, ExposeSecret, Name, Protocol, SecretString};
use rampart_session::target_tls::Reach;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long one rotation step (connect, log in, run the statements) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer packet read during a rotation step.
const MAX_ANSWER: usize = 64 * 1024;
/// Login errors that say "not now" rather than "not this password": too many connections,
/// host blocked after connection errors, per-user connection and resource limits.
const TRANSIENT_LOGIN_ERRORS: [u16; 4] = [1040, 1129, 1203, 1226];
/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: the statement needs a privilege the login lacks.
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;

/// What kind of server, as its greeting's version says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MariaDb,
    Mysql {
        /// MySQL 8.0.14 and later: `RETAIN CURRENT PASSWORD` / `DISCARD OLD PASSWORD`.
        dual_password: bool,
    },
}

/// The dialect of a server from its version string (`5.5.5-10.11.6-MariaDB-...` is MariaDB;
/// `8.0.36`, `8.4.3`, `9.1.0` are MySQL).
pub fn dialect(version: &str) -> Dialect {
    if version.contains("MariaDB") {
        return Dialect::MariaDb;
    }
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    let patch = numbers.next().unwrap_or(0);
    Dialect::Mysql {
        dual_password: (major, minor, patch) >= (8, 0, 14),
    }
}

enum Failure {
    /// The server refused the login (wrong password, unknown or locked account).
    Refused(String),
    /// No usable answer: unreachable, closed, timed out, busy.
    Other(String),
}

impl Failure {
    fn text(self) -> String {
        match self {
            Failure::Refused(why) | Failure::Other(why) => why,
        }
    }
}

/// A logged-in connection, ready for statements.
struct Connection {
    stream: Box<dyn Io>,
    dialect: Dialect,
}

/// The error code of a login refusal's text (`... ERROR 1045 (28000): ...`).
fn error_code(text: &str) -> Option<u16> {
    let rest = text.split("ERROR ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

async fn connect(
    reach: &Reach<'_>,
    asset: &Asset,
    login: &Name,
    password: &SecretString,
) -> Result<Connection, Failure> {
    let work = async {
        let dialed = reach
            .dialer
            .dial(asset, Protocol::Mysql)
            .await
            .map_err(|err| Failure::Other(err.to_string()))?;
        let target = dialed.target.clone();
        let mut stream: Box<dyn Io> = Box::new(dialed.stream);
        let greeting = read_packet(&mut stream, MAX_ANSWER)
            .await
            .map_err(|err| Failure::Other(format!("target {target}: {err}")))?;
        let parsed: TargetGreeting = parse_target_greeting(&greeting.payload)
            .map_err(|err| Failure::Other(format!("target {target}: {err}")))?;
        let client = TargetClient {
            caps: 0,
            collation: DEFAULT_COLLATION,
            user: login.as_str(),
            database: None,
        };
        // TLS as the sessions do it: on when the endpoint pins a certificate.
        let (mut stream, seq, tls) = secure(
            stream,
            &target.to_string(),
            greeting.seq,
            &parsed,
            (0, DEFAULT_COLLATION),
            asset,
            reach,
        )
        .await
        .map_err(Failure::Other)?;
        match login_to_target(&mut stream, &client, &parsed, password, seq, tls).await {
            Ok(()) => Ok(Connection {
                stream,
                dialect: dialect(&parsed.version),
            }),
            Err(err) => {
                let text = err.to_string();
                let transient =
                    error_code(&text).is_some_and(|code| TRANSIENT_LOGIN_ERRORS.contains(&code));
                if text.contains("refused the login") && !transient {
                    Err(Failure::Refused(text))
                } else {
                    Err(Failure::Other(text))
                }
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(Failure::Other("the target did not answer in time".into())))
}

/// An ERR packet's line, without its message when the statement held `secret` and the message
/// may echo part of it (a syntax error quotes the statement near the error).
fn masked_error(payload: &Bytes, secret: Option<&SecretString>) -> (u16, String) {
    let summary = error_summary(payload);
    let code = error_code(&summary).unwrap_or(0);
    let Some(secret) = secret else {
        return (code, summary);
    };
    let secret = secret.expose_secret().as_bytes();
    let echoes = code == 1064
        || secret
            .windows(6usize.min(secret.len().max(1)))
            .any(|window| {
                summary
                    .as_bytes()
                    .windows(window.len())
                    .any(|w| w == window)
            });
    if echoes {
        let head = summary.split(':').next().unwrap_or("ERROR").to_owned();
        return (
            code,
            format!("{head}: (message withheld: it may quote the password)"),
        );
    }
    (code, summary)
}

/// Runs one statement; `Ok(first value of the first row)` (none for a statement without
/// rows), or `Err((code, line))`.
async fn run(
    connection: &mut Connection,
    statement: &[u8],
    secret: Option<&SecretString>,
) -> Result<Option<String>, (u16, String)> {
    let stream = &mut connection.stream;
    let io = |err: wire::WireError| (0, err.to_string());
    let mut command = Zeroizing::new(Vec::with_capacity(statement.len() + 1));
    command.push(0x03); // COM_QUERY
    command.extend_from_slice(statement);
    write_packet(stream, 0, &command).await.map_err(io)?;
    drop(command);
    let first = read_packet(stream, MAX_ANSWER).await.map_err(io)?;
    match first.first() {
        Some(0x00) => return Ok(None),
        Some(0xFF) => return Err(masked_error(&first.payload, secret)),
        _ => {}
    }
    // A result set: the column count, the columns' definitions, EOF, rows, EOF.
    let mut count = first.payload.clone();
    let columns = lenenc_int(&mut count).ok_or((0, "malformed result set".to_owned()))?;
    for _ in 0..columns {
        read_packet(stream, MAX_ANSWER).await.map_err(io)?;
    }
    let eof = read_packet(stream, MAX_ANSWER).await.map_err(io)?;
    if !eof.is_eof() {
        return Err((0, "malformed result set".to_owned()));
    }
    let mut value = None;
    loop {
        let row = read_packet(stream, MAX_ANSWER).await.map_err(io)?;
        if row.is_eof() {
            return Ok(value);
        }
        if row.is_err() {
            return Err(masked_error(&row.payload, secret));
        }
        if value.is_none() {
            let mut body = row.payload.clone();
            value = if body.first() == Some(&0xFB) {
                body.advance(1);
                None
            } else {
                lenenc_bytes(&mut body).map(|text| String::from_utf8_lossy(&text).into_owned())
            };
        }
    }
}

/// What a login with a password showed: `Ok(true)` works, `Ok(false)` refused, `Err` no answer.
pub async fn check_login(
    reach: &Reach<'_>,
    asset: &Asset,
    login: &Name,
    password: &SecretString,
) -> Result<bool, String> {
    match connect(reach, asset, login, password).await {
        Ok(_) => Ok(true),
        Err(Failure::Refused(_)) => Ok(false),
        Err(Failure::Other(why)) => Err(why),
    }
}

/// A string literal for a MySQL statement: `'...'` with `'` doubled and `\` escaped.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The new password as a string literal, or why it cannot be one.
fn password_literal(new: &SecretString) -> Result<Zeroizing<String>, String> {
    let text = new.expose_secret();
    if text.is_empty()
        || !text
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b'\'' && c != b'\\' && c != b'"')
    {
        return Err(
            "the new password holds a character Rampart does not send in a MySQL statement \
             (quotes, backslash, space or anything but printable ASCII)"
                .into(),
        );
    }
    Ok(Zeroizing::new(format!("'{text}'")))
}

/// `'user'@'host'` from the server's `CURRENT_USER()` (`user@host`).
fn account_literal(current_user: &str) -> Result<String, String> {
    let (user, host) = current_user
        .rsplit_once('@')
        .ok_or_else(|| format!("the server named the account {current_user:?}"))?;
    Ok(format!("{}@{}", quoted(user), quoted(host)))
}

/// Logs in as `account` with `password` and asks the server which account entry that is.
async fn learn_account(
    reach: &Reach<'_>,
    asset: &Asset,
    account: &Name,
    password: &SecretString,
) -> Result<String, String> {
    let mut connection = connect(reach, asset, account, password)
        .await
        .map_err(|failure| {
            format!(
                "cannot learn which account {account} is on the server: login as {account}: {}",
                failure.text()
            )
        })?;
    let work = run(&mut connection, b"SELECT CURRENT_USER()", None);
    let current = tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .map_err(|_| "the target did not answer SELECT CURRENT_USER() in time".to_owned())?
        .map_err(|(_, why)| format!("SELECT CURRENT_USER() as {account}: {why}"))?
        .ok_or_else(|| "SELECT CURRENT_USER() gave no row".to_owned())?;
    account_literal(&current)
}

/// Sets `account`'s password to `new` on `asset`: logged in as the account with `old`, or as
/// `via` (the rotation account: login and password). On MySQL 8 the old password stays valid
/// as the secondary one until [`discard_old_password`].
pub async fn change_password(
    reach: &Reach<'_>,
    asset: &Asset,
    account: &Name,
    old: &SecretString,
    new: &SecretString,
    via: Option<(&Name, &SecretString)>,
) -> Result<(), String> {
    let literal = password_literal(new)?;
    let (target, login, password) = match via {
        Some((via_login, via_password)) => (
            Some(learn_account(reach, asset, account, old).await?),
            via_login,
            via_password,
        ),
        None => (None, account, old),
    };
    let mut connection = connect(reach, asset, login, password)
        .await
        .map_err(|failure| format!("login as {login}: {}", failure.text()))?;
    let who = target
        .clone()
        .unwrap_or_else(|| "CURRENT_USER()".to_owned());
    let plain = match (connection.dialect, &target) {
        (Dialect::MariaDb, None) => format!("SET PASSWORD = PASSWORD({})", literal.as_str()),
        _ => format!("ALTER USER {who} IDENTIFIED BY {}", literal.as_str()),
    };
    let plain = Zeroizing::new(plain);
    let work = async {
        if connection.dialect
            == (Dialect::Mysql {
                dual_password: true,
            })
        {
            let dual = Zeroizing::new(format!("{} RETAIN CURRENT PASSWORD", plain.as_str()));
            match run(&mut connection, dual.as_bytes(), Some(new)).await {
                Ok(_) => return Ok(()),
                // May not retain its own password: the plain form.
                Err((ER_SPECIFIC_ACCESS_DENIED, _)) => {}
                Err((_, why)) => return Err(why),
            }
        }
        run(&mut connection, plain.as_bytes(), Some(new))
            .await
            .map(|_| ())
            .map_err(|(_, why)| why)
    };
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("the target did not answer in time".into()))
        .map_err(|why| format!("changing the password of {account} as {login}: {why}"))
}

/// After a commit on a server with dual passwords: the old (secondary) password of `account`
/// stops working. Logged in as the account with its new password, or as `via`. `Ok(false)`:
/// the server keeps no old password (MariaDB, MySQL before 8.0.14), nothing to do.
pub async fn discard_old_password(
    reach: &Reach<'_>,
    asset: &Asset,
    account: &Name,
    new: &SecretString,
    via: Option<(&Name, &SecretString)>,
) -> Result<bool, String> {
    let (target, login, password) = match via {
        Some((via_login, via_password)) => (
            Some(learn_account(reach, asset, account, new).await?),
            via_login,
            via_password,
        ),
        None => (None, account, new),
    };
    let mut connection = connect(reach, asset, login, password)
        .await
        .map_err(|failure| format!("login as {login}: {}", failure.text()))?;
    if connection.dialect
        != (Dialect::Mysql {
            dual_password: true,
        })
    {
        return Ok(false);
    }
    let who = target.unwrap_or_else(|| "CURRENT_USER()".to_owned());
    let statement = format!("ALTER USER {who} DISCARD OLD PASSWORD");
    tokio::time::timeout(
        STEP_TIMEOUT,
        run(&mut connection, statement.as_bytes(), None),
    )
    .await
    .map_err(|_| "the target did not answer in time".to_owned())?
    .map(|_| true)
    .map_err(|(_, why)| format!("{statement} as {login}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialect_follows_the_greeting_version() {
        assert_eq!(dialect("5.5.5-10.11.6-MariaDB-0+deb12u1"), Dialect::MariaDb);
        assert_eq!(dialect("11.4.2-MariaDB"), Dialect::MariaDb);
        for (version, dual_password) in [
            ("8.0.36", true),
            ("8.0.14", true),
            ("8.0.13", false),
            ("5.7.44-log", false),
            ("8.4.3", true),
            ("9.1.0", true),
            ("garbage", false),
        ] {
            assert_eq!(
                dialect(version),
                Dialect::Mysql { dual_password },
                "{version}"
            );
        }
    }

    #[test]
    fn a_password_that_cannot_be_a_plain_literal_is_refused_before_anything_is_sent() {
        for bad in ["", "a'b", "a\\b", "a b", "a\"b", "é-password", "a\nb"] {
            assert!(
                password_literal(&SecretString::from(bad.to_owned())).is_err(),
                "{bad:?}"
            );
        }
        let good = password_literal(&SecretString::from("Ab3-_.,+=!@#%^*()[]{}~".to_owned()));
        assert_eq!(good.unwrap().as_str(), "'Ab3-_.,+=!@#%^*()[]{}~'");
    }

    #[test]
    fn the_account_entry_is_quoted_as_literals() {
        assert_eq!(
            account_literal("app@127.0.0.1").unwrap(),
            "'app'@'127.0.0.1'"
        );
        assert_eq!(account_literal("a@b@%").unwrap(), "'a@b'@'%'");
        assert_eq!(account_literal("o'x@h\\").unwrap(), "'o''x'@'h\\\\'");
        assert!(account_literal("nohost").is_err());
    }

    #[test]
    fn an_error_that_may_quote_the_password_keeps_only_its_code() {
        let secret = SecretString::from("Secret-Pass-123".to_owned());
        let payload =
            |code: u16, message: &str| Bytes::from(wire::err_payload(code, "42000", message));
        let (code, line) = masked_error(
            &payload(1064, "You have an error near 'retain current password'"),
            Some(&secret),
        );
        assert_eq!(code, 1064);
        assert!(!line.contains("retain"), "{line}");
        let (_, line) = masked_error(
            &payload(1396, "Operation failed: Secret-Pass"),
            Some(&secret),
        );
        assert!(!line.contains("Secret-Pass"), "{line}");
        let (code, line) = masked_error(
            &payload(1227, "Access denied; you need the CREATE USER privilege"),
            Some(&secret),
        );
        assert_eq!(code, 1227);
        assert!(line.contains("CREATE USER privilege"), "{line}");
    }
}
