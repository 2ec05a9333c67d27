//! Login controls kept in the store: each user's source address and login-hours rules, and the
//! failed-login counters that lock a login factor of a user or of a source address.
//!
//! Counters are kept per login factor (`password`, `publickey`), keyed `FACTOR:user:NAME` (only
//! for users that exist, so guessing names cannot fill the table with users) and
//! `FACTOR:source:ADDRESS`, where an IPv6 source counts as its /64: one host usually holds a
//! whole /64 and could otherwise take a fresh address for every guess. A lock refuses logins
//! with its factor only: password guesses, from however many addresses, never lock the user's
//! key login (lockout must not be a weapon), and a failed second factor counts against the first
//! factor it followed. An administrator lifts every lock of a user with `unlock_user`.
//!
//! A brute-force storm must not flood the audit log (security test E6): a failure is logged
//! (`login_failed`) only when it opens a new counting window for its source or user, and a lock
//! once when it starts (`login_locked`). Everything in between is only counted. Logins refused
//! by the login rules are audited (`login_refused`) the same bounded way, with counters of their
//! own (`refused:user:NAME`, `refused:source:ADDRESS`) that never lock anything.

use crate::rows::{self, time_text};
use crate::{Result, Store, StoreError, audit_log, users};
use ipnet::Ipv6Net;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::detectors::{self, BurstOf, FailureBurst};
use rampart_core::login_rules::{
    LockoutPolicy, LoginFactor, LoginRules, format_cidr_list, parse_cidr_list,
};
use rampart_core::schedule::Schedule;
use rampart_core::{Name, User};
use sqlx::{AnyConnection, Row};
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;

/// How much of an attempted login is kept: enough to recognise it, not enough to store a payload.
const MAX_LOGIN_CHARS: usize = 64;
/// How many expired counters one write deletes, so cleaning up never makes a login slow.
const CLEANUP_BATCH: i64 = 100;
/// Failures counted while a key is locked stop growing here.
const MAX_COUNTED_FAILURES: u32 = 1_000_000;
/// The counter namespace of refusals by the login rules (counted for the audit trail only).
const REFUSED: &str = "refused";
/// The counter namespace of the failed-login burst detector (every factor together).
const BURST: &str = "burst";

/// One login attempt that did not succeed, as the listeners report it.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The login as the client sent it (attacker-controlled; stored cut and cleaned).
    pub login: &'a str,
    /// The user it names, only if that user exists.
    pub user: Option<&'a Name>,
    pub source: IpAddr,
    /// The first factor the attempt presented (or, for a second factor, followed).
    pub factor: LoginFactor,
    /// How it was made, for the audit log (`password`, `web-password`, `publickey`, `totp`).
    pub method: &'a str,
}

/// A lock on one factor of a user's logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLock {
    pub factor: LoginFactor,
    pub until: OffsetDateTime,
}

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

    /// When the lock on `factor` for `user` or for `source` ends, if either is locked at `at`
    /// (the later end if both are). Ask before checking credentials: a locked login is refused
    /// unchecked. Locks on other factors do not matter here.
    pub async fn login_locked(
        &self,
        user: Option<&Name>,
        source: IpAddr,
        factor: LoginFactor,
        at: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>> {
        let until: Option<String> = sqlx::query_scalar(
            "SELECT MAX(locked_until) FROM login_failures \
             WHERE (key = $1 OR key = $2) AND locked_until > $3",
        )
        .bind(source_key(factor.as_str(), source))
        .bind(user.map(|name| user_key(factor.as_str(), name)))
        .bind(second_text(at))
        .fetch_one(&self.pool)
        .await?;
        until.map(|text| parse_second(&text)).transpose()
    }

    /// The user's own locks in force at `at`, one per locked factor (for `rampart user show`).
    pub async fn user_locks(&self, name: &Name, at: OffsetDateTime) -> Result<Vec<UserLock>> {
        let mut locks = Vec::new();
        for factor in LoginFactor::ALL {
            let until: Option<String> = sqlx::query_scalar(
                "SELECT locked_until FROM login_failures WHERE key = $1 AND locked_until > $2",
            )
            .bind(user_key(factor.as_str(), name))
            .bind(second_text(at))
            .fetch_optional(&self.pool)
            .await?
            .flatten();
            if let Some(text) = until {
                locks.push(UserLock {
                    factor,
                    until: parse_second(&text)?,
                });
            }
        }
        Ok(locks)
    }

    /// Counts a failed login against its factor from its source (and for its user, which the
    /// caller sets only if the login names a user that exists), locking a key that reaches the
    /// policy's threshold. One write transaction; audit events only when a window opens or a
    /// lock starts.
    pub async fn record_login_failure(
        &self,
        attempt: &LoginAttempt<'_>,
        policy: &LockoutPolicy,
        at: OffsetDateTime,
    ) -> Result<()> {
        self.record_login_failure_detecting(attempt, policy, None, at)
            .await
    }

    /// [`Store::record_login_failure`], and the failed-login burst detector: with `burst`, the
    /// failure is also counted per user and per source (every factor together, under
    /// `burst:user:NAME` and `burst:source:ADDRESS`), and the failure that reaches
    /// `burst.count` within `burst.window` raises a `failed_logins` alert (an `alert_raised`
    /// event in the same transaction), once per key and window.
    pub async fn record_login_failure_detecting(
        &self,
        attempt: &LoginAttempt<'_>,
        policy: &LockoutPolicy,
        burst: Option<&FailureBurst>,
        at: OffsetDateTime,
    ) -> Result<()> {
        let at = whole_second(at);
        let factor = attempt.factor.as_str();
        let mut tx = self.begin_write().await?;
        let by_source =
            count_failure(&mut tx, &source_key(factor, attempt.source), policy, at).await?;
        let by_user = match attempt.user {
            Some(name) => Some(count_failure(&mut tx, &user_key(factor, name), policy, at).await?),
            None => None,
        };
        let counted = [Some(&by_source), by_user.as_ref()];
        if counted.iter().flatten().any(|c| c.opened_window) {
            let event = AuditEvent::LoginFailed {
                login: sanitize(attempt.login),
                source: attempt.source.to_canonical().to_string(),
                method: sanitize(attempt.method),
                failures: by_user.as_ref().unwrap_or(&by_source).failures,
            };
            audit_log::append(&mut tx, &Actor::System, &event).await?;
        }
        for counted in counted.into_iter().flatten() {
            if let Some(until) = counted.locked_now {
                let event = AuditEvent::LoginLocked {
                    key: counted.key.clone(),
                    until: rampart_core::time_arg::format_rfc3339(until),
                    failures: counted.failures,
                };
                audit_log::append(&mut tx, &Actor::System, &event).await?;
            }
        }
        if let Some(burst) = burst {
            count_burst(&mut tx, attempt, burst, at).await?;
        }
        delete_expired(&mut tx, policy, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A login the login rules refused (`reason` says which rule) before any credential was
    /// checked. It locks nothing (no credential was guessed); it is audited as `login_refused`
    /// when it opens a new window for its source or user, so a storm stays bounded (E6).
    pub async fn record_login_refused(
        &self,
        attempt: &LoginAttempt<'_>,
        reason: &str,
        policy: &LockoutPolicy,
        at: OffsetDateTime,
    ) -> Result<()> {
        let at = whole_second(at);
        // Counted for the audit trail only: a threshold no count reaches.
        let counting = LockoutPolicy {
            threshold: u32::MAX,
            ..*policy
        };
        let mut tx = self.begin_write().await?;
        let by_source =
            count_failure(&mut tx, &source_key(REFUSED, attempt.source), &counting, at).await?;
        let by_user = match attempt.user {
            Some(name) => {
                Some(count_failure(&mut tx, &user_key(REFUSED, name), &counting, at).await?)
            }
            None => None,
        };
        if by_source.opened_window || by_user.as_ref().is_some_and(|c| c.opened_window) {
            let event = AuditEvent::LoginRefused {
                login: sanitize(attempt.login),
                source: attempt.source.to_canonical().to_string(),
                method: sanitize(attempt.method),
                reason: sanitize_reason(reason),
            };
            audit_log::append(&mut tx, &Actor::System, &event).await?;
        }
        delete_expired(&mut tx, policy, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A successful login with `factor`: the user's failure count for that factor starts
    /// again, so occasional typos do not add up to a lock. Other factors' counts stay (a key
    /// login must not reset the budget of someone guessing the password). A lock stays (it is
    /// checked before credentials, so this is not reached while locked), and so does the
    /// source's count: a valid login to one account must not reset an address's guessing
    /// budget against the others.
    pub async fn record_login_success(&self, user: &Name, factor: LoginFactor) -> Result<()> {
        let key = user_key(factor.as_str(), user);
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

    /// Lifts every lock of a user (all factors) and clears their failure counts. Locks on
    /// source addresses stay.
    pub async fn unlock_user(&self, actor: &Actor, name: &Name) -> Result<()> {
        let mut tx = self.begin_write().await?;
        rows::id_of(&mut tx, rows::Named::User, name).await?;
        delete_user_counters(&mut tx, name).await?;
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
    conn: &mut AnyConnection,
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

/// The failed-login burst detector's counts (see `record_login_failure_detecting`): a counter
/// "locks" when it reaches the count, which only marks the alert as raised for that window
/// (nothing reads `burst:` locks to refuse a login).
async fn count_burst(
    conn: &mut AnyConnection,
    attempt: &LoginAttempt<'_>,
    burst: &FailureBurst,
    at: OffsetDateTime,
) -> Result<()> {
    let counting = LockoutPolicy {
        threshold: burst.count.max(1),
        window: burst.window,
        lock_for: burst.window,
    };
    let login = sanitize(attempt.login);
    let by_source = count_failure(conn, &source_key(BURST, attempt.source), &counting, at).await?;
    let mut alerts = Vec::new();
    if by_source.locked_now.is_some() {
        alerts.push(detectors::failed_logins(
            burst,
            BurstOf::Source(attempt.source.to_canonical()),
            by_source.failures,
            &login,
            attempt.source.to_canonical(),
        ));
    }
    if let Some(name) = attempt.user {
        let by_user = count_failure(conn, &user_key(BURST, name), &counting, at).await?;
        if by_user.locked_now.is_some() {
            alerts.push(detectors::failed_logins(
                burst,
                BurstOf::User(name.as_str()),
                by_user.failures,
                &login,
                attempt.source.to_canonical(),
            ));
        }
    }
    for alert in alerts {
        audit_log::append(conn, &Actor::System, &alert.event()).await?;
    }
    let window_passed = minus(at, burst.window);
    sqlx::query(
        "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures \
         WHERE key LIKE 'burst:%' AND window_start <= $1 \
         AND (locked_until IS NULL OR locked_until <= $2) LIMIT $3)",
    )
    .bind(time_text(window_passed))
    .bind(time_text(at))
    .bind(CLEANUP_BATCH)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// INVARIANT: the counters table stays bounded. A counter whose window and lock have both
/// passed says nothing any more; each write removes a batch of them.
async fn delete_expired(
    conn: &mut AnyConnection,
    policy: &LockoutPolicy,
    at: OffsetDateTime,
) -> Result<()> {
    let window_passed = minus(at, policy.window);
    sqlx::query(
        "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures \
         WHERE window_start <= $1 AND (locked_until IS NULL OR locked_until <= $2) \
         AND key NOT LIKE 'burst:%' LIMIT $3)",
    )
    .bind(time_text(window_passed))
    .bind(time_text(at))
    .bind(CLEANUP_BATCH)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes every counter and lock of a user (each factor's, and the refusal count).
pub(crate) async fn delete_user_counters(conn: &mut AnyConnection, name: &Name) -> Result<()> {
    let namespaces = LoginFactor::ALL
        .iter()
        .map(|factor| factor.as_str())
        .chain([REFUSED, BURST]);
    for namespace in namespaces {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(user_key(namespace, name))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `password:user:alice`: one counter per factor (or `refused`) and user.
fn user_key(namespace: &str, name: &Name) -> String {
    format!("{namespace}:user:{name}")
}

/// `password:source:192.0.2.1`, `publickey:source:2001:db8:1:2::/64`.
fn source_key(namespace: &str, source: IpAddr) -> String {
    match source.to_canonical() {
        IpAddr::V4(v4) => format!("{namespace}:source:{v4}"),
        IpAddr::V6(v6) => match Ipv6Net::new(v6, 64) {
            Ok(net) => format!("{namespace}:source:{}", net.trunc()),
            Err(_) => format!("{namespace}:source:{v6}"),
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

/// A refusal's reason as stored: it may quote configuration, never more than a line of it.
fn sanitize_reason(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .take(MAX_REASON_CHARS)
        .collect()
}

/// The longest refusal reason kept (a reason quotes one network or one schedule).
const MAX_REASON_CHARS: usize = 256;

/// Zero-width and bidirectional formatting characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Counter times are whole seconds in UTC.
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
pub(crate) fn rules_from_row(row: &sqlx::any::AnyRow) -> Result<LoginRules> {
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
        assert_eq!(
            source_key("password", ip("192.0.2.1")),
            "password:source:192.0.2.1"
        );
        assert_eq!(
            source_key("publickey", ip("::ffff:192.0.2.1")),
            "publickey:source:192.0.2.1"
        );
        assert_eq!(
            source_key("password", ip("2001:db8:1:2:3:4:5:6")),
            "password:source:2001:db8:1:2::/64"
        );
        assert_eq!(
            user_key("password", &Name::parse("user", "alice").unwrap()),
            "password:user:alice"
        );
    }
}
