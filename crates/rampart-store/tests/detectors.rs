//! The anomaly detectors through the store's public API: the failed-login burst (time driven by
//! the caller) and the detectors that read the audit log (exactly once, learning first).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::detectors::{DetectorSettings, FailureBurst};
use rampart_core::login_rules::{LockoutPolicy, LoginFactor};
use rampart_core::{Name, Role};
use rampart_store::{LoginAttempt, Store};
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

async fn store(dir: &std::path::Path) -> Store {
    let options = common::options(dir.join("data"));
    let store = Store::create_or_open(&options).await.unwrap().0;
    store
        .add_user(
            &Actor::System,
            &Name::parse("user", "alice").unwrap(),
            Role::User,
            &[],
        )
        .await
        .unwrap();
    store
}

/// The details of every alert raised so far, oldest first.
async fn alerts(store: &Store) -> Vec<String> {
    store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.kind == "alert_raised")
        .map(|record| record.event["detail"].as_str().unwrap().to_owned())
        .collect()
}

const BURST: FailureBurst = FailureBurst {
    count: 3,
    window: Duration::from_secs(600),
};

async fn fail(store: &Store, login: &str, user: Option<&Name>, source: &str, at: OffsetDateTime) {
    let attempt = LoginAttempt {
        login,
        user,
        source: source.parse().unwrap(),
        factor: LoginFactor::Password,
        method: "password",
    };
    store
        .record_login_failure_detecting(&attempt, &LockoutPolicy::default(), Some(&BURST), at)
        .await
        .unwrap();
}

async fn a_failed_login_burst_alerts_once_per_window_per_user_and_per_source_and_locks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let alice = Name::parse("user", "alice").unwrap();
    // Alice's password guessed from three addresses: the user's burst, no source's.
    fail(&store, "alice", Some(&alice), "192.0.2.1", T0).await;
    fail(
        &store,
        "alice",
        Some(&alice),
        "192.0.2.2",
        T0 + time::Duration::minutes(1),
    )
    .await;
    assert!(alerts(&store).await.is_empty());
    fail(
        &store,
        "alice",
        Some(&alice),
        "192.0.2.3",
        T0 + time::Duration::minutes(2),
    )
    .await;
    assert_eq!(
        alerts(&store).await,
        ["3 failed logins of alice within 10m (the last from 192.0.2.3)"]
    );
    // More in the same window: counted, not alerted again.
    fail(
        &store,
        "alice",
        Some(&alice),
        "192.0.2.4",
        T0 + time::Duration::minutes(3),
    )
    .await;
    assert_eq!(alerts(&store).await.len(), 1);
    // One address guessing names that do not exist: the source's burst.
    for (n, login) in ["root", "admin", "oracle"].into_iter().enumerate() {
        let at = T0 + time::Duration::minutes(4 + i64::try_from(n).unwrap());
        fail(&store, login, None, "198.51.100.7", at).await;
    }
    assert_eq!(
        alerts(&store).await[1],
        "3 failed logins from 198.51.100.7 within 10m (the last as oracle)"
    );
    // Nothing was locked by the burst counters (the lockout threshold is 5 per factor).
    let locked = store
        .login_locked(
            Some(&alice),
            "192.0.2.9".parse().unwrap(),
            LoginFactor::Password,
            T0 + time::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(locked, None);
    // Spread out over more than the window: no burst.
    let later = T0 + time::Duration::hours(2);
    fail(&store, "alice", Some(&alice), "192.0.2.1", later).await;
    fail(
        &store,
        "alice",
        Some(&alice),
        "192.0.2.1",
        later + time::Duration::minutes(11),
    )
    .await;
    fail(
        &store,
        "alice",
        Some(&alice),
        "192.0.2.1",
        later + time::Duration::minutes(22),
    )
    .await;
    assert_eq!(alerts(&store).await.len(), 2);
    // Without the detector configured, nothing is counted for it.
    let attempt = LoginAttempt {
        login: "alice",
        user: Some(&alice),
        source: "192.0.2.1".parse().unwrap(),
        factor: LoginFactor::Password,
        method: "password",
    };
    for minute in 0..5 {
        store
            .record_login_failure(
                &attempt,
                &LockoutPolicy::default(),
                later + time::Duration::minutes(40 + minute),
            )
            .await
            .unwrap();
    }
    assert_eq!(alerts(&store).await.len(), 2);
}

fn login(user: &str, source: &str) -> AuditEvent {
    AuditEvent::LoginSucceeded {
        user: user.to_owned(),
        method: "publickey".to_owned(),
        source: source.to_owned(),
    }
}

async fn log_detectors_learn_the_past_quietly_then_judge_each_new_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let settings = DetectorSettings {
        new_source_after: Some(Duration::from_secs(30 * 86_400)),
        ..DetectorSettings::default()
    };
    // History from before the detectors ran: learned, no alert about it.
    store
        .record_event(&Actor::System, &login("alice", "192.0.2.1:40000"))
        .await
        .unwrap();
    store
        .record_event(&Actor::System, &login("alice", "192.0.2.2:40000"))
        .await
        .unwrap();
    assert!(!store.run_detectors(&settings, 100).await.unwrap());
    assert!(alerts(&store).await.is_empty());
    // Known addresses, an inherited connection and another user's first login: no alert.
    for event in [
        login("alice", "192.0.2.1:40001"),
        login("alice", "192.0.2.9:40001 (web)"),
        login("bob", "203.0.113.5:1"),
    ] {
        store.record_event(&Actor::System, &event).await.unwrap();
    }
    // A new address for alice: one alert, however often the detectors run.
    store
        .record_event(&Actor::System, &login("alice", "[2001:db8::7]:40002"))
        .await
        .unwrap();
    // Small batches: the position moves batch by batch.
    while store.run_detectors(&settings, 1).await.unwrap() {}
    store.run_detectors(&settings, 100).await.unwrap();
    assert_eq!(
        alerts(&store).await,
        ["login of alice from a new address 2001:db8::7"]
    );
    // Bob now has history; his new address alerts.
    store
        .record_event(&Actor::System, &login("bob", "203.0.113.6:1"))
        .await
        .unwrap();
    store.run_detectors(&settings, 100).await.unwrap();
    store.run_detectors(&settings, 100).await.unwrap();
    assert_eq!(alerts(&store).await.len(), 2);
    assert_eq!(
        alerts(&store).await[1],
        "login of bob from a new address 203.0.113.6"
    );
}

on_both_backends!(
    a_failed_login_burst_alerts_once_per_window_per_user_and_per_source_and_locks_nothing,
    log_detectors_learn_the_past_quietly_then_judge_each_new_event_exactly_once,
);
