//! Login controls kept in the store: each user's source address and login-hours rules, and the
//! failed-login counters that lock a user or a source address.
//!
//! Counters are keyed `user:NAME` (only for users that exist, so guessing names cannot fill the
//! table with users) or `source:ADDRESS`, where an IPv6 source counts as its /64: one host
//! usually holds a whole /64 and could otherwise take a fresh address for every guess.
//!
//! A brute-force storm must not flood the audit log (security test E6): a failure is logged
//! (`login_failed`) only when it opens a new counting window for its source or user, and a lock
//! once when it starts (`login_locked`). Everything in between is only counted.

use crate::rows::{self, time_text};
use crate::{Result, Store, StoreError, audit_log, users};
use ipnet::Ipv6Net;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::login_rules::{LockoutPolicy, LoginRules, format_cidr_list, parse_cidr_list};
use rampart_core::schedule::Schedule;
use rampart_core::{Name, User};
use sqlx::{Row, SqliteConnection};
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;

/// How much of an attempted login is kept: enough to recognise it, not enough to store a payload.
const MAX_LOGIN_CHARS: usize = 64;
/// How many expired counters one write deletes, so cleaning up never makes a login slow.
const CLEANUP_BATCH: i64 = 100;
/// Failures counted while a key is locked stop growing here.
const MAX_COUNTED_FAILURES: u32 = 1_000_000;

impl Store {
    /// Replaces a user's login rules (an empty list or no hours removes that rule).
    pub async fn set_user_login_rules(
        &self,
        actor: &Actor,
        name: &Name,
        rules: &LoginRules,
    ) -> Result<User> {
        let (allow_from, deny_from, login_hours) = rules_to_columns(rules);
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        sqlx::query(
            "UPDATE users SET allow_from = $1, deny_from = $2, login_hours = $3 WHERE id = $4",
        )
        .bind(&allow_from)
        .bind(&deny_from)
        .bind(&login_hours)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::UserLoginRulesChanged {
            user: name.to_string(),
            allow_from,
            deny_from,
            login_hours,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = users::load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// When the lock on `user` or on `source` ends, if either is locked at `at` (the later end
    /// if both are). Ask before checking credentials: a locked login is refused unchecked.
    pub async fn login_locked(
        &self,
        user: Option<&Name>,
        source: IpAddr,
        at: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>> {
        let until: Option<String> = sqlx::query_scalar(
            "SELECT MAX(locked_until) FROM login_failures \
             WHERE (key = $1 OR key = $2) AND locked_until > $3",
        )
        .bind(source_key(source))
        .bind(user.map(user_key))
        .bind(second_text(at))
        .fetch_one(&self.pool)
        .await?;
        until.map(|text| parse_second(&text)).transpose()
    }

    /// When the user's own lock ends, if they are locked at `at` (for `rampart user show`).
    pub async fn user_locked_until(
        &self,
        name: &Name,
        at: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>> {
        let until: Option<String> = sqlx::query_scalar(
            "SELECT locked_until FROM login_failures WHERE key = $1 AND locked_until > $2",
        )
        .bind(user_key(name))
        .bind(second_text(at))
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        until.map(|text| parse_second(&text)).transpose()
    }

    /// Counts a failed login from `source` (and against `user`, which the caller passes only
    /// if `attempted_login` names a user that exists), locking a key that reaches the policy's
    /// threshold. One write transaction; audit events only when a window opens or a lock starts.
    pub async fn record_login_failure(
        &self,
        attempted_login: &str,
        user: Option<&Name>,
        source: IpAddr,
        method: &str,
        policy: &LockoutPolicy,
        at: OffsetDateTime,
    ) -> Result<()> {
        let at = whole_second(at);
        let mut tx = self.begin_write().await?;
        let by_source = count_failure(&mut tx, &source_key(source), policy, at).await?;
        let by_user = match user {
            Some(name) => Some(count_failure(&mut tx, &user_key(name), policy, at).await?),
            None => None,
        };
        let counted = [Some(&by_source), by_user.as_ref()];
        if counted.iter().flatten().any(|c| c.opened_window) {
            let event = AuditEvent::LoginFailed {
                login: sanitize(attempted_login),
                source: source.to_canonical().to_string(),
                method: sanitize(method),
                failures: by_user.as_ref().unwrap_or(&by_source).failures,
            };
            audit_log::append(&mut tx, &Actor::System, &event).await?;
        }
        for counted in counted.into_iter().flatten() {
            if let Some(until) = counted.locked_now {
                let event = AuditEvent::LoginLocked {
                    key: counted.key.clone(),
                    until: time_text(until),
                    failures: counted.failures,
                };
                audit_log::append(&mut tx, &Actor::System, &event).await?;
            }
        }
        delete_expired(&mut tx, policy, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A successful login: the user's failure count starts again, so occasional typos do not add
    /// up to a lock. A lock stays (it is checked before credentials, so this is not reached while
    /// locked), and so does the source's count: a valid login to one account must not reset an
    /// address's guessing budget against the others.
    pub async fn record_login_success(&self, user: &Name) -> Result<()> {
        let key = user_key(user);
        // Most logins have nothing to clear: read first, so they take no write lock.
        let counted: Option<i64> =
            sqlx::query_scalar("SELECT failures FROM login_failures WHERE key = $1")
                .bind(&key)
                .fetch_optional(&self.pool)
                .await?;
        if counted.is_none_or(|failures| failures == 0) {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM login_failures WHERE key = $1 AND locked_until IS NULL")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE login_failures SET failures = 0 WHERE key = $1")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts a user's lock and clears their failure count. Locks on source addresses stay.
    pub async fn unlock_user(&self, actor: &Actor, name: &Name) -> Result<()> {
        let mut tx = self.begin_write().await?;
        rows::id_of(&mut tx, rows::Named::User, name).await?;
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(user_key(name))
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::UserUnlocked {
            user: name.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What counting one failure did to one key.
#[derive(Debug)]
struct Counted {
    key: String,
    failures: u32,
    opened_window: bool,
    /// Set when this failure started a lock, to when it ends.
    locked_now: Option<OffsetDateTime>,
}

async fn count_failure(
    conn: &mut SqliteConnection,
    key: &str,
    policy: &LockoutPolicy,
    at: OffsetDateTime,
) -> Result<Counted> {
    let row = sqlx::query(
        "SELECT failures, window_start, locked_until FROM login_failures WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let previous = match &row {
        Some(row) => Some((
            u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(MAX_COUNTED_FAILURES),
            rows::time(row, "window_start")?,
            rows::optional_time(row, "locked_until")?,
        )),
        None => None,
    };
    let mut counted = Counted {
        key: key.to_owned(),
        failures: 1,
        opened_window: false,
        locked_now: None,
    };
    let mut window_start = at;
    let mut locked_until = None;
    match previous {
        // Locked: counted, but the lock is neither extended nor logged again.
        Some((failures, start, Some(until))) if until > at => {
            counted.failures = failures.saturating_add(1).min(MAX_COUNTED_FAILURES);
            window_start = start;
            locked_until = Some(until);
        }
        // The same window, no lock in between.
        Some((failures, start, None)) if at < plus(start, policy.window) => {
            counted.failures = failures.saturating_add(1).min(MAX_COUNTED_FAILURES);
            window_start = start;
        }
        // No counter, its window has passed, or its lock has ended: a new window.
        _ => counted.opened_window = true,
    }
    if locked_until.is_none() && counted.failures >= policy.threshold {
        let until = plus(at, policy.lock_for);
        locked_until = Some(until);
        counted.locked_now = Some(until);
    }
    sqlx::query(
        "INSERT INTO login_failures (key, failures, window_start, locked_until) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE \
         SET failures = $2, window_start = $3, locked_until = $4",
    )
    .bind(key)
    .bind(i64::from(counted.failures))
    .bind(time_text(window_start))
    .bind(locked_until.map(time_text))
    .execute(&mut *conn)
    .await?;
    Ok(counted)
}

/// INVARIANT: the counters table stays bounded. A counter whose window and lock have both
/// passed says nothing any more; each write removes a batch of them.
async fn delete_expired(
    conn: &mut SqliteConnection,
    policy: &LockoutPolicy,
    at: OffsetDateTime,
) -> Result<()> {
    let window_passed = minus(at, policy.window);
    sqlx::query(
        "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures \
         WHERE window_start <= $1 AND (locked_until IS NULL OR locked_until <= $2) LIMIT $3)",
    )
    .bind(time_text(window_passed))
    .bind(time_text(at))
    .bind(CLEANUP_BATCH)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) fn user_key(name: &Name) -> String {
    format!("user:{name}")
}

fn source_key(source: IpAddr) -> String {
    match source.to_canonical() {
        IpAddr::V4(v4) => format!("source:{v4}"),
        IpAddr::V6(v6) => match Ipv6Net::new(v6, 64) {
            Ok(net) => format!("source:{}", net.trunc()),
            Err(_) => format!("source:{v6}"),
        },
    }
}

/// The attempted login as it may be stored: at most 64 characters, without control or
/// invisible formatting characters (which could rewrite a terminal or hide text from a reader).
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .take(MAX_LOGIN_CHARS)
        .collect()
}

/// Zero-width and bidirectional formatting characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Counter times are whole seconds in UTC, so their RFC 3339 texts compare in time order.
fn whole_second(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0).unwrap_or(at)
}

fn second_text(at: OffsetDateTime) -> String {
    time_text(whole_second(at))
}

fn parse_second(text: &str) -> Result<OffsetDateTime> {
    rampart_core::time_arg::parse_rfc3339("time", text)
        .map_err(|_| StoreError::Corrupt("login_failures.locked_until".into()))
}

/// `at + duration`, saturating at the end of time rather than failing a login.
fn plus(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d))
        .unwrap_or(time::macros::datetime!(9999-12-31 00:00 UTC))
}

/// `at - duration`, saturating at the start of time.
fn minus(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_sub(d))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A user's rules as stored: `None` for each rule that is not set.
fn rules_to_columns(rules: &LoginRules) -> (Option<String>, Option<String>, Option<String>) {
    let list = |nets: &[ipnet::IpNet]| (!nets.is_empty()).then(|| format_cidr_list(nets));
    (
        list(&rules.allow_from),
        list(&rules.deny_from),
        rules.hours.as_ref().map(ToString::to_string),
    )
}

/// A user's rules from the stored columns; a value that does not parse is corruption.
pub(crate) fn rules_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<LoginRules> {
    let column = |name: &str| -> Result<Option<String>> { Ok(row.try_get(name)?) };
    let corrupt = |name: &str| StoreError::Corrupt(format!("users.{name}"));
    let list = |name: &str| -> Result<Vec<ipnet::IpNet>> {
        match column(name)? {
            Some(text) => parse_cidr_list(name, &text).map_err(|_| corrupt(name)),
            None => Ok(Vec::new()),
        }
    };
    Ok(LoginRules {
        allow_from: list("allow_from")?,
        deny_from: list("deny_from")?,
        hours: column("login_hours")?
            .map(|text| Schedule::parse(&text).map_err(|_| corrupt("login_hours")))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempted_logins_are_cut_and_cleaned() {
        assert_eq!(sanitize("alice"), "alice");
        assert_eq!(sanitize("al\u{1b}[2Jice\r\n"), "al[2Jice");
        assert_eq!(sanitize("adm\u{202e}nimda"), "admnimda");
        assert_eq!(sanitize(&"x".repeat(1000)).len(), MAX_LOGIN_CHARS);
        assert_eq!(sanitize(&"é".repeat(100)).chars().count(), MAX_LOGIN_CHARS);
    }

    #[test]
    fn keys() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(source_key(ip("192.0.2.1")), "source:192.0.2.1");
        assert_eq!(source_key(ip("::ffff:192.0.2.1")), "source:192.0.2.1");
        assert_eq!(
            source_key(ip("2001:db8:1:2:3:4:5:6")),
            "source:2001:db8:1:2::/64"
        );
        assert_eq!(
            user_key(&Name::parse("user", "alice").unwrap()),
            "user:alice"
        );
    }
}
