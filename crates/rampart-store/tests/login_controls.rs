//! Login rules and lockout through the store's public API, with time driven by the caller.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::login_rules::{LockoutPolicy, LoginFactor, LoginRules, parse_cidr_list};
use rampart_core::schedule::Schedule;
use rampart_core::{Name, Role};
use rampart_store::{LoginAttempt, Store, UserLock};
use sqlx::Connection;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

async fn store(dir: &std::path::Path) -> Store {
    let options = common::options(dir.join("data"));
    Store::create_or_open(&options).await.unwrap().0
}

async fn with_user(dir: &std::path::Path, user: &str) -> Store {
    let store = store(dir).await;
    store
        .add_user(&Actor::System, &name(user), Role::User, &[])
        .await
        .unwrap();
    store
}

fn name(text: &str) -> Name {
    Name::parse("user", text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

/// How many audit events of each kind there are.
async fn kinds(store: &Store) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for record in store.all_audit_events().await.unwrap() {
        *counts.entry(record.kind).or_default() += 1;
    }
    counts
}

/// A wrong password.
async fn fail(store: &Store, login: &str, user: Option<&Name>, source: &str, at: OffsetDateTime) {
    fail_with(store, LoginFactor::Password, login, user, source, at).await;
}

async fn fail_with(
    store: &Store,
    factor: LoginFactor,
    login: &str,
    user: Option<&Name>,
    source: &str,
    at: OffsetDateTime,
) {
    let attempt = LoginAttempt {
        login,
        user,
        source: ip(source),
        factor,
        method: factor.as_str(),
    };
    store
        .record_login_failure(&attempt, &LockoutPolicy::default(), at)
        .await
        .unwrap();
}

fn password_attempt<'a>(login: &'a str, user: Option<&'a Name>, source: &str) -> LoginAttempt<'a> {
    LoginAttempt {
        login,
        user,
        source: ip(source),
        factor: LoginFactor::Password,
        method: "password",
    }
}

/// When the user's own lock of password logins ends, if it is in force at `at`.
async fn user_locked_until(
    store: &Store,
    user: &Name,
    at: OffsetDateTime,
) -> Option<OffsetDateTime> {
    user_lock(store, user, LoginFactor::Password, at).await
}

async fn user_lock(
    store: &Store,
    user: &Name,
    factor: LoginFactor,
    at: OffsetDateTime,
) -> Option<OffsetDateTime> {
    store
        .user_locks(user, at)
        .await
        .unwrap()
        .into_iter()
        .find(|lock: &UserLock| lock.factor == factor)
        .map(|lock| lock.until)
}

/// Whether a login with `factor` by `user` from `source` is locked at `at`.
async fn locked(
    store: &Store,
    user: Option<&Name>,
    source: &str,
    factor: LoginFactor,
    at: OffsetDateTime,
) -> bool {
    store
        .login_locked(user, ip(source), factor, at)
        .await
        .unwrap()
        .is_some()
}

/// A second connection to the database, to look at the counters table itself.
async fn database(dir: &std::path::Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", dir.join("data/rampart.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

async fn counters(conn: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM login_failures")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn count_rows(dir: &std::path::Path) -> i64 {
    if let Some(url) = common::database_url() {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        return rows;
    }
    let mut conn = database(dir).await;
    let rows = counters(&mut conn).await;
    conn.close().await.unwrap();
    rows
}

async fn rules_are_stored_loaded_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    assert!(store.user(&alice).await.unwrap().login_rules.is_empty());
    let rules = LoginRules {
        allow_from: parse_cidr_list("allow_from", "10.0.0.0/8,2001:db8::/32").unwrap(),
        deny_from: parse_cidr_list("deny_from", "10.66.0.0/16").unwrap(),
        hours: Some(Schedule::parse("Mon-Fri 08:00-18:00 Europe/Berlin").unwrap()),
    };
    let user = store
        .set_user_login_rules(&Actor::System, &alice, &rules)
        .await
        .unwrap();
    assert_eq!(user.login_rules, rules);
    assert_eq!(store.user(&alice).await.unwrap().login_rules, rules);
    assert_eq!(store.list_users().await.unwrap()[0].login_rules, rules);

    let cleared = LoginRules {
        deny_from: rules.deny_from.clone(),
        ..LoginRules::default()
    };
    let user = store
        .set_user_login_rules(&Actor::System, &alice, &cleared)
        .await
        .unwrap();
    assert_eq!(user.login_rules, cleared);

    let events = store.all_audit_events().await.unwrap();
    let changes: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "user_login_rules_changed")
        .map(|e| e.event.clone())
        .collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["allow_from"], "10.0.0.0/8,2001:db8::/32");
    assert_eq!(
        changes[0]["login_hours"],
        "Mon-Fri 08:00-18:00 Europe/Berlin"
    );
    assert_eq!(changes[1]["allow_from"], serde_json::Value::Null);
    assert_eq!(changes[1]["deny_from"], "10.66.0.0/16");

    let err = store
        .set_user_login_rules(&Actor::System, &name("nobody"), &rules)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "user nobody not found");
}

async fn the_threshold_locks_the_user_and_the_source_until_the_lock_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    for i in 0..4 {
        fail(&store, "alice", Some(&alice), "192.0.2.1", T0 + minutes(i)).await;
        assert_eq!(
            store
                .login_locked(
                    Some(&alice),
                    ip("192.0.2.1"),
                    LoginFactor::Password,
                    T0 + minutes(i)
                )
                .await
                .unwrap(),
            None
        );
    }
    let fifth = T0 + minutes(4);
    fail(&store, "alice", Some(&alice), "192.0.2.1", fifth).await;
    let until = fifth + minutes(15);
    // Locked by user (from anywhere) and by source (for anyone).
    for (user, source) in [
        (Some(&alice), "198.51.100.7"),
        (None, "192.0.2.1"),
        (Some(&name("bob")), "192.0.2.1"),
        (Some(&alice), "::ffff:192.0.2.1"),
    ] {
        assert_eq!(
            store
                .login_locked(user, ip(source), LoginFactor::Password, fifth)
                .await
                .unwrap(),
            Some(until),
            "{user:?} from {source}"
        );
    }
    assert_eq!(user_locked_until(&store, &alice, fifth).await, Some(until));
    assert_eq!(
        store
            .login_locked(None, ip("198.51.100.7"), LoginFactor::Password, fifth)
            .await
            .unwrap(),
        None
    );
    // Failures during the lock neither extend it nor log anything.
    let before = kinds(&store).await;
    for i in 0..20 {
        fail(
            &store,
            "alice",
            Some(&alice),
            "192.0.2.1",
            fifth + minutes(10) + time::Duration::seconds(i),
        )
        .await;
    }
    assert_eq!(kinds(&store).await, before);
    assert_eq!(before["login_failed"], 1);
    assert_eq!(before["login_locked"], 2, "user and source");
    let locked: Vec<_> = store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login_locked")
        .map(|e| e.event)
        .collect();
    assert_eq!(locked[0]["key"], "password:source:192.0.2.1");
    assert_eq!(locked[1]["key"], "password:user:alice");
    assert_eq!(locked[1]["until"], "2026-06-01T12:19:00Z");
    assert_eq!(locked[1]["failures"], 5);

    // The lock ends on time; the next failure opens a new window instead of re-locking.
    assert!(
        store
            .login_locked(
                Some(&alice),
                ip("192.0.2.1"),
                LoginFactor::Password,
                until - time::Duration::seconds(1)
            )
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .login_locked(Some(&alice), ip("192.0.2.1"), LoginFactor::Password, until)
            .await
            .unwrap(),
        None
    );
    fail(&store, "alice", Some(&alice), "192.0.2.1", until).await;
    assert_eq!(
        store
            .login_locked(Some(&alice), ip("192.0.2.1"), LoginFactor::Password, until)
            .await
            .unwrap(),
        None
    );
    assert_eq!(kinds(&store).await["login_failed"], 2);
}

async fn failures_outside_the_window_do_not_add_up() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    // Four failures, then a pause longer than the window: the count starts again.
    for i in 0..4 {
        fail(&store, "alice", Some(&alice), "192.0.2.1", T0 + minutes(i)).await;
    }
    let later = T0 + minutes(10);
    for i in 0..4 {
        fail(
            &store,
            "alice",
            Some(&alice),
            "192.0.2.1",
            later + minutes(i),
        )
        .await;
    }
    assert_eq!(
        store
            .login_locked(
                Some(&alice),
                ip("192.0.2.1"),
                LoginFactor::Password,
                later + minutes(4)
            )
            .await
            .unwrap(),
        None
    );
    // One login_failed per window, with the count of failures so far.
    let failed: Vec<_> = store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login_failed")
        .map(|e| e.event)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1]["failures"], 1);
    assert_eq!(failed[1]["source"], "192.0.2.1");
    assert_eq!(failed[1]["method"], "password");
    // The window started at the first failure: the fifth within it locks.
    fail(
        &store,
        "alice",
        Some(&alice),
        "192.0.2.1",
        later + minutes(9),
    )
    .await;
    assert!(
        store
            .login_locked(
                Some(&alice),
                ip("192.0.2.1"),
                LoginFactor::Password,
                later + minutes(9)
            )
            .await
            .unwrap()
            .is_some()
    );
}

async fn unlock_lifts_the_users_lock_and_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    for i in 0..5 {
        // Each from its own source: only the user is locked.
        fail(&store, "alice", Some(&alice), &format!("192.0.2.{i}"), T0).await;
    }
    assert!(user_locked_until(&store, &alice, T0).await.is_some());
    store.unlock_user(&Actor::System, &alice).await.unwrap();
    assert_eq!(user_locked_until(&store, &alice, T0).await, None);
    assert_eq!(
        store
            .login_locked(Some(&alice), ip("192.0.2.9"), LoginFactor::Password, T0)
            .await
            .unwrap(),
        None
    );
    // The count is cleared too: one more failure does not lock again.
    fail(&store, "alice", Some(&alice), "192.0.2.9", T0).await;
    assert_eq!(user_locked_until(&store, &alice, T0).await, None);
    let events = store.all_audit_events().await.unwrap();
    let unlocked = events.iter().find(|e| e.kind == "user_unlocked").unwrap();
    assert_eq!(unlocked.event["user"], "alice");
    assert_eq!(unlocked.actor, Actor::System);
    assert_eq!(
        store
            .unlock_user(&Actor::System, &name("nobody"))
            .await
            .unwrap_err()
            .to_string(),
        "user nobody not found"
    );
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

async fn a_success_clears_the_users_count_but_not_the_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    // A typo now and then, each followed by a good login, never locks.
    for i in 0..20 {
        let at = T0 + minutes(i);
        fail(
            &store,
            "alice",
            Some(&alice),
            &format!("198.51.100.{i}"),
            at,
        )
        .await;
        store
            .record_login_success(&alice, LoginFactor::Password)
            .await
            .unwrap();
        assert_eq!(user_locked_until(&store, &alice, at).await, None);
    }
    // The source's count survives a success: four failures, a success, one more failure lock it.
    for i in 0..4 {
        fail(
            &store,
            "alice",
            Some(&alice),
            "192.0.2.1",
            T0 + minutes(30 + i),
        )
        .await;
    }
    store
        .record_login_success(&alice, LoginFactor::Password)
        .await
        .unwrap();
    let at = T0 + minutes(35);
    fail(&store, "alice", Some(&alice), "192.0.2.1", at).await;
    assert!(
        store
            .login_locked(None, ip("192.0.2.1"), LoginFactor::Password, at)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(user_locked_until(&store, &alice, at).await, None);
    // A success does not lift a lock.
    for i in 0..5 {
        fail(&store, "alice", Some(&alice), &format!("203.0.113.{i}"), at).await;
    }
    store
        .record_login_success(&alice, LoginFactor::Password)
        .await
        .unwrap();
    assert!(user_locked_until(&store, &alice, at).await.is_some());
    // Removing the user removes their counter: a new alice starts clean.
    store.remove_user(&Actor::System, &alice).await.unwrap();
    store
        .add_user(&Actor::System, &alice, Role::User, &[])
        .await
        .unwrap();
    assert_eq!(user_locked_until(&store, &alice, at).await, None);
}

async fn failures_for_unknown_users_lock_only_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    for i in 0..5 {
        fail(&store, &format!("ghost{i}"), None, "2001:db8:1:2::1", T0).await;
    }
    // The whole /64 is locked, alice is not.
    assert!(
        store
            .login_locked(None, ip("2001:db8:1:2:ffff::9"), LoginFactor::Password, T0)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .login_locked(
                Some(&name("alice")),
                ip("2001:db8:1:3::1"),
                LoginFactor::Password,
                T0
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(count_rows(tmp.path()).await, 1);
    let failed = store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "login_failed")
        .unwrap();
    assert_eq!(failed.event["login"], "ghost0");
    assert_eq!(failed.event["source"], "2001:db8:1:2::1");
}

async fn attempted_logins_are_stored_cut_and_without_control_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    let hostile = format!("root\u{1b}]0;pwned\u{7}\r\n{}", "A".repeat(10_000));
    fail(&store, &hostile, None, "192.0.2.1", T0).await;
    let failed = store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "login_failed")
        .unwrap();
    let login = failed.event["login"].as_str().unwrap();
    assert_eq!(login.chars().count(), 64);
    assert!(login.starts_with("root]0;pwned"), "{login:?}");
    assert!(!login.chars().any(char::is_control));
}

/// Security test E6: a brute-force storm keeps the audit log and the counters bounded.
#[tokio::test]
async fn a_brute_force_storm_keeps_the_audit_log_and_the_counters_bounded() {
    common::select(common::Db::Sqlite); // raw SQL on the SQLite file
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    let policy = LockoutPolicy::default();
    let events_before = store.all_audit_events().await.unwrap().len();
    // 5,000 failures from 50 sources in ten seconds: random names, and alice now and then.
    let mut seed: u64 = 0x5eed;
    let sources = 50;
    for i in 0..5_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let source = format!("203.0.113.{}", seed % sources);
        let at = T0 + time::Duration::milliseconds(i64::try_from(i * 2).unwrap());
        let (login, user) = if i % 10 == 0 {
            ("alice".to_owned(), Some(&alice))
        } else {
            (format!("user{seed:x}"), None)
        };
        store
            .record_login_failure(&password_attempt(&login, user, &source), &policy, at)
            .await
            .unwrap();
    }
    let keys = usize::try_from(sources).unwrap() + 1;
    let written = store.all_audit_events().await.unwrap().len() - events_before;
    // At most one login_failed and one login_locked per key, whatever the attempt count.
    assert!(written <= 2 * keys, "{written} events for {keys} keys");
    let counts = kinds(&store).await;
    assert_eq!(counts["login_locked"], keys, "every key got locked once");
    assert!(counts["login_failed"] <= keys, "{counts:?}");
    assert_eq!(count_rows(tmp.path()).await, i64::try_from(keys).unwrap());

    // Once windows and locks have passed, further writes clear the old counters.
    let much_later = T0 + minutes(60);
    store
        .record_login_failure(
            &password_attempt("x", None, "198.51.100.1"),
            &policy,
            much_later,
        )
        .await
        .unwrap();
    assert_eq!(count_rows(tmp.path()).await, 1);

    // A steady stream of new sources (each a key of its own): the table holds the sources of
    // one window, never the whole history.
    let mut conn = database(tmp.path()).await;
    for i in 0..1_000u32 {
        let at = much_later + time::Duration::seconds(i64::from(i));
        let source = format!("10.{}.{}.1", i / 256, i % 256);
        store
            .record_login_failure(&password_attempt("x", None, &source), &policy, at)
            .await
            .unwrap();
        let rows = counters(&mut conn).await;
        // One new source a second and a window of 600 s (plus the one from before, at first).
        assert!(rows <= 601, "{rows} counters at step {i}");
    }
    assert_eq!(counters(&mut conn).await, 600);
    conn.close().await.unwrap();
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// Issue 11, item 7: password guesses, however many and from wherever, lock password logins
/// only; the user's key login is never locked by them (lockout is not a weapon against a factor
/// the guesser does not hold).
async fn password_guesses_from_many_sources_never_lock_the_key_login() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    // Five wrong passwords from five addresses, then a storm of fifty more.
    for i in 0..55 {
        let source = format!("203.0.113.{}", i % 5 + 1);
        fail(
            &store,
            "alice",
            Some(&alice),
            &source,
            T0 + time::Duration::seconds(i),
        )
        .await;
    }
    let at = T0 + minutes(1);
    // Her password logins are locked from anywhere...
    assert!(
        locked(
            &store,
            Some(&alice),
            "198.51.100.7",
            LoginFactor::Password,
            at
        )
        .await
    );
    // ...her key logins from nowhere, not even from the guessing addresses.
    for source in ["198.51.100.7", "203.0.113.1", "203.0.113.5"] {
        assert!(
            !locked(&store, Some(&alice), source, LoginFactor::PublicKey, at).await,
            "key login from {source}"
        );
    }
    assert_eq!(
        store.user_locks(&alice, at).await.unwrap(),
        vec![UserLock {
            factor: LoginFactor::Password,
            until: T0 + time::Duration::seconds(4) + minutes(15),
        }]
    );
    let locked_keys: Vec<_> = store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login_locked")
        .map(|e| e.event["key"].as_str().unwrap().to_owned())
        .collect();
    // The user's password and the guessing addresses' passwords; no key login anywhere.
    assert!(locked_keys.contains(&"password:user:alice".to_owned()));
    assert!(
        locked_keys.iter().all(|key| key.starts_with("password:")),
        "{locked_keys:?}"
    );

    // The other way round: failures of a key from one address lock key logins from there only
    // (the gateway counts a wrong key for the source alone: keys cannot be guessed).
    for i in 0..5 {
        fail_with(
            &store,
            LoginFactor::PublicKey,
            "alice",
            None,
            "192.0.2.50",
            at + minutes(i),
        )
        .await;
    }
    let later = at + minutes(5);
    assert!(locked(&store, None, "192.0.2.50", LoginFactor::PublicKey, later).await);
    assert!(
        !locked(
            &store,
            Some(&alice),
            "192.0.2.51",
            LoginFactor::PublicKey,
            later
        )
        .await
    );
    assert!(!locked(&store, None, "192.0.2.50", LoginFactor::Password, later).await);
}

/// A successful login resets only its own factor's count: logging in with the key now and
/// then does not give someone guessing the password a fresh budget.
async fn a_key_login_does_not_reset_the_password_count() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    for i in 0..4 {
        fail(
            &store,
            "alice",
            Some(&alice),
            &format!("203.0.113.{i}"),
            T0 + minutes(i),
        )
        .await;
        store
            .record_login_success(&alice, LoginFactor::PublicKey)
            .await
            .unwrap();
    }
    fail(
        &store,
        "alice",
        Some(&alice),
        "203.0.113.9",
        T0 + minutes(5),
    )
    .await;
    assert!(
        user_locked_until(&store, &alice, T0 + minutes(5))
            .await
            .is_some()
    );
}

/// An administrator lifts every lock a user has, whatever the factor.
async fn unlock_lifts_the_locks_of_every_factor() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    let alice = name("alice");
    for factor in LoginFactor::ALL {
        for i in 0..5 {
            fail_with(
                &store,
                factor,
                "alice",
                Some(&alice),
                &format!("192.0.2.{i}"),
                T0,
            )
            .await;
        }
    }
    assert_eq!(store.user_locks(&alice, T0).await.unwrap().len(), 2);
    assert!(
        user_lock(&store, &alice, LoginFactor::PublicKey, T0)
            .await
            .is_some()
    );
    store.unlock_user(&Actor::System, &alice).await.unwrap();
    assert_eq!(store.user_locks(&alice, T0).await.unwrap(), vec![]);
    for factor in LoginFactor::ALL {
        assert!(!locked(&store, Some(&alice), "198.51.100.1", factor, T0).await);
    }
    // Removing a user removes the counters of every factor.
    for i in 0..5 {
        fail_with(
            &store,
            LoginFactor::PublicKey,
            "alice",
            Some(&alice),
            &format!("192.0.2.{i}"),
            T0,
        )
        .await;
    }
    store.remove_user(&Actor::System, &alice).await.unwrap();
    store
        .add_user(&Actor::System, &alice, Role::User, &[])
        .await
        .unwrap();
    assert_eq!(store.user_locks(&alice, T0).await.unwrap(), vec![]);
}

/// A login the login rules refused, as the gateway reports it.
async fn refuse(store: &Store, user: &Name, at: OffsetDateTime) {
    let attempt = LoginAttempt {
        login: user.as_str(),
        user: Some(user),
        source: ip("192.0.2.7"),
        factor: LoginFactor::PublicKey,
        method: "publickey",
    };
    store
        .record_login_refused(
            &attempt,
            "source 192.0.2.7 is in the user's deny_from list (192.0.2.0/24)",
            &LockoutPolicy::default(),
            at,
        )
        .await
        .unwrap();
}

/// Issue 11, item 5: a login the login rules refuse is audited (`login_refused`, with the
/// rule), once per user and source window under a storm, and locks nothing.
async fn refusals_by_the_login_rules_are_audited_bounded_and_lock_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = with_user(tmp.path(), "alice").await;
    store
        .add_user(&Actor::System, &name("bob"), Role::User, &[])
        .await
        .unwrap();
    let alice = name("alice");
    let bob = name("bob");
    for i in 0..50 {
        refuse(&store, &alice, T0 + time::Duration::seconds(i)).await;
    }
    let refused = |events: Vec<rampart_store::AuditRecord>| -> Vec<serde_json::Value> {
        events
            .into_iter()
            .filter(|e| e.kind == "login_refused")
            .map(|e| e.event)
            .collect()
    };
    let events = refused(store.all_audit_events().await.unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["login"], "alice");
    assert_eq!(events[0]["source"], "192.0.2.7");
    assert_eq!(events[0]["method"], "publickey");
    assert_eq!(
        events[0]["reason"],
        "source 192.0.2.7 is in the user's deny_from list (192.0.2.0/24)"
    );
    let at = T0 + minutes(1);
    for factor in LoginFactor::ALL {
        assert!(!locked(&store, Some(&alice), "192.0.2.7", factor, at).await);
    }
    assert_eq!(kinds(&store).await.get("login_locked"), None);
    // Another user from the same address opens a window of their own; a window later, alice
    // is audited again.
    refuse(&store, &bob, at).await;
    refuse(&store, &alice, T0 + minutes(11)).await;
    let events = refused(store.all_audit_events().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[1]["login"], "bob");
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

#[test]
fn default_policy_is_five_in_ten_minutes_for_fifteen() {
    let policy = LockoutPolicy::default();
    assert_eq!(policy.threshold, 5);
    assert_eq!(policy.window, Duration::from_secs(600));
    assert_eq!(policy.lock_for, Duration::from_secs(900));
}

on_both_backends!(
    rules_are_stored_loaded_and_audited,
    the_threshold_locks_the_user_and_the_source_until_the_lock_ends,
    failures_outside_the_window_do_not_add_up,
    unlock_lifts_the_users_lock_and_is_audited,
    a_success_clears_the_users_count_but_not_the_sources,
    failures_for_unknown_users_lock_only_the_source,
    attempted_logins_are_stored_cut_and_without_control_characters,
    password_guesses_from_many_sources_never_lock_the_key_login,
    a_key_login_does_not_reset_the_password_count,
    unlock_lifts_the_locks_of_every_factor,
    refusals_by_the_login_rules_are_audited_bounded_and_lock_nothing,
);
