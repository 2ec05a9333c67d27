//! Users' TOTP second factor through the store's public API, with the database file tampered
//! with directly and the data directory searched for the secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::mfa::{code_at, otpauth_uri};
use rampart_core::{Name, Role};
use rampart_store::{Store, StoreError, TotpCheck, VaultError};
use rampart_testkit::files_containing;
use sqlx::Connection;
use std::path::Path;

/// A time inside a step, not at its edge: codes of the steps either side are distinct inputs.
const T: u64 = 1_700_000_010;
const ALICE_SECRET: &[u8] = b"canary-totp-alice-4c1f9e02";
const BOB_SECRET: &[u8] = b"canary-totp-bob-77d0a3e15b";

async fn store(dir: &Path) -> Store {
    let options = common::options(dir.join("data"));
    Store::create_or_open(&options).await.unwrap().0
}

fn name(text: &str) -> Name {
    Name::parse("user", text).unwrap()
}

async fn add_users(store: &Store, names: &[&str]) {
    for user in names {
        store
            .add_user(&Actor::System, &name(user), Role::User, &[])
            .await
            .unwrap();
    }
}

async fn enroll(store: &Store, user: &str, secret: &[u8]) {
    store
        .enroll_totp(&Actor::System, &name(user), secret, false, None)
        .await
        .unwrap();
}

async fn epoch(store: &Store, user: &Name) -> i64 {
    store.user(user).await.unwrap().auth_epoch
}

async fn check(store: &Store, user: &str, code: &str, at: u64) -> TotpCheck {
    store.check_totp(&name(user), code, at).await.unwrap()
}

/// A six-digit code that matches none of the steps a check at `at` (or one step later)
/// could accept.
fn wrong_code(secret: &[u8], at: u64) -> String {
    let near: Vec<String> = [at - 30, at, at + 30, at + 60]
        .iter()
        .map(|t| code_at(secret, *t))
        .collect();
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|code| !near.contains(code))
        .unwrap()
}

async fn database(dir: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", dir.join("data/rampart.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

async fn a_code_is_accepted_once_and_never_one_of_an_earlier_step() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    add_users(&store, &["alice", "bob"]).await;
    enroll(&store, "alice", ALICE_SECRET).await;
    assert!(store.user(&name("alice")).await.unwrap().mfa_enrolled);
    assert!(!store.user(&name("bob")).await.unwrap().mfa_enrolled);

    let code = code_at(ALICE_SECRET, T);
    assert_eq!(check(&store, "alice", &code, T).await, TotpCheck::Accepted);
    // The same code again within its window: a replay (A7).
    assert_eq!(check(&store, "alice", &code, T).await, TotpCheck::Reused);
    assert_eq!(
        check(&store, "alice", &code, T + 30).await,
        TotpCheck::Reused
    );
    // The previous step's code is still inside the skew window, but older than the accepted one.
    let previous = code_at(ALICE_SECRET, T - 30);
    assert_eq!(
        check(&store, "alice", &previous, T).await,
        TotpCheck::Reused
    );
    // Wrong and malformed codes.
    let wrong = wrong_code(ALICE_SECRET, T);
    assert_eq!(check(&store, "alice", &wrong, T).await, TotpCheck::Wrong);
    for malformed in ["", "12345", "1234567", "abcdef", &format!(" {code}")] {
        assert_eq!(
            check(&store, "alice", malformed, T).await,
            TotpCheck::Wrong,
            "{malformed:?}"
        );
    }
    // Bob's code is not Alice's.
    let bobs = code_at(BOB_SECRET, T + 30);
    assert_eq!(
        check(&store, "alice", &bobs, T + 30).await,
        TotpCheck::Wrong
    );
    // The next step's code is accepted once.
    let next = code_at(ALICE_SECRET, T + 30);
    assert_eq!(
        check(&store, "alice", &next, T + 30).await,
        TotpCheck::Accepted
    );
    assert_eq!(
        check(&store, "alice", &next, T + 30).await,
        TotpCheck::Reused
    );

    assert_eq!(check(&store, "bob", &code, T).await, TotpCheck::NotEnrolled);
    assert_eq!(
        check(&store, "nobody", &code, T).await,
        TotpCheck::NotEnrolled
    );
}

async fn enrolment_and_reset_bump_the_auth_epoch_and_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    add_users(&store, &["alice"]).await;
    let alice = name("alice");
    let before = epoch(&store, &alice).await;
    enroll(&store, "alice", ALICE_SECRET).await;
    let enrolled = epoch(&store, &alice).await;
    assert!(enrolled > before, "{enrolled} > {before}");
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T), T).await,
        TotpCheck::Accepted
    );

    // A second enrolment must say it replaces the first; a refused one changes nothing.
    let err = store
        .enroll_totp(&Actor::System, &alice, BOB_SECRET, false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "second factor of user alice already exists"
    );
    assert_eq!(epoch(&store, &alice).await, enrolled);
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T + 30), T + 30).await,
        TotpCheck::Accepted
    );
    store
        .enroll_totp(&Actor::System, &alice, BOB_SECRET, true, None)
        .await
        .unwrap();
    let replaced = epoch(&store, &alice).await;
    assert!(replaced > enrolled);
    // The new secret starts with a fresh last step: its code for an earlier step is accepted.
    assert_eq!(
        check(&store, "alice", &code_at(BOB_SECRET, T), T).await,
        TotpCheck::Accepted
    );
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T + 90), T + 90).await,
        TotpCheck::Wrong,
        "the replaced secret no longer works"
    );

    store
        .reset_second_factors(&Actor::System, &alice)
        .await
        .unwrap();
    let reset = epoch(&store, &alice).await;
    assert!(reset > replaced);
    assert!(!store.user(&alice).await.unwrap().mfa_enrolled);
    assert_eq!(
        check(&store, "alice", &code_at(BOB_SECRET, T + 120), T + 120).await,
        TotpCheck::NotEnrolled
    );
    let err = store
        .reset_second_factors(&Actor::System, &alice)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "second factor of user alice not found");
    let err = store
        .reset_second_factors(&Actor::System, &name("nobody"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "user nobody not found");
    let err = store
        .enroll_totp(&Actor::System, &alice, b"too short", false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(
        epoch(&store, &alice).await,
        reset,
        "refusals change nothing"
    );

    let events = store.recent_audit_events(100).await.unwrap();
    let mfa_events: Vec<(&str, &serde_json::Value)> = events
        .iter()
        .filter(|e| e.kind.starts_with("mfa_"))
        .map(|e| (e.kind.as_str(), &e.event["user"]))
        .collect();
    assert_eq!(
        mfa_events,
        [
            ("mfa_enrolled", &serde_json::json!("alice")),
            ("mfa_enrolled", &serde_json::json!("alice")),
            ("mfa_reset", &serde_json::json!("alice")),
        ]
    );
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_totp_ciphertext_copied_onto_another_user_does_not_open() {
    common::select(common::Db::Sqlite); // raw SQL on the SQLite file
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    add_users(&store, &["alice", "bob"]).await;
    enroll(&store, "alice", ALICE_SECRET).await;
    enroll(&store, "bob", BOB_SECRET).await;

    // An attacker with write access to the database gives bob alice's sealed secret.
    let mut conn = database(tmp.path()).await;
    let moved = sqlx::query(
        "UPDATE users SET totp_secret = (SELECT totp_secret FROM users WHERE name = 'alice') \
         WHERE name = 'bob'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    conn.close().await.unwrap();

    let err = store
        .check_totp(&name("bob"), &code_at(ALICE_SECRET, T), T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Vault(VaultError::Tampered)),
        "{err:?}"
    );
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T), T).await,
        TotpCheck::Accepted
    );
    let status = store.vault_status().await.unwrap();
    assert_eq!(status.secrets, 2);
    assert_eq!(status.unreadable, ["user bob (totp)"]);
}

async fn key_rotation_reseals_totp_secrets_and_they_still_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    add_users(&store, &["alice", "bob"]).await;
    enroll(&store, "alice", ALICE_SECRET).await;
    let before = store.vault_status().await.unwrap();
    assert_eq!(before.secrets, 1);

    let report = store.rotate_vault_key(&Actor::System, None).await.unwrap();
    assert_eq!(report.secrets_reencrypted, 1);
    assert_ne!(report.new_key_id, before.active_key_id);
    let after = store.vault_status().await.unwrap();
    assert_eq!(after.keys_held, [report.new_key_id.as_str()]);
    assert_eq!(
        after.secrets_by_key.into_iter().collect::<Vec<_>>(),
        [(report.new_key_id.clone(), 1)],
        "nothing left under the old key"
    );
    assert!(after.unreadable.is_empty());
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T), T).await,
        TotpCheck::Accepted
    );
    store.close().await;

    // A fresh process holds only the new key, and the secret opens with it.
    let store = self::store(tmp.path()).await;
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T + 30), T + 30).await,
        TotpCheck::Accepted
    );
}

#[tokio::test]
async fn the_totp_secret_is_nowhere_in_the_data_directory_in_clear() {
    common::select(common::Db::Sqlite); // raw SQL on the SQLite file
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let store = store(tmp.path()).await;
    add_users(&store, &["alice"]).await;
    enroll(&store, "alice", ALICE_SECRET).await;
    assert_eq!(
        check(&store, "alice", &code_at(ALICE_SECRET, T), T).await,
        TotpCheck::Accepted
    );
    let uri = otpauth_uri(ALICE_SECRET, "alice", "Rampart");
    let base32 = uri
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap()
        .to_owned();
    assert!(base32.len() >= 32, "{base32}");

    let mut conn = database(tmp.path()).await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT totp_secret FROM users WHERE name = 'alice'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let only_sealed = |state: &str| {
        for needle in [ALICE_SECRET, base32.as_bytes()] {
            let hits = files_containing(&data_dir, needle);
            assert!(hits.is_empty(), "{state}: secret in clear in {hits:?}");
        }
        // The search would see the secret: its sealed form is found where it is stored.
        assert!(
            !files_containing(&data_dir, &sealed).is_empty(),
            "{state}: the sealed secret is in no file"
        );
    };
    // While the store is open the row may live only in the write-ahead log; after closing,
    // in the database file.
    only_sealed("store open");
    store.close().await;
    only_sealed("store closed");
}

async fn two_processes_checking_one_code_accept_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let first = store(tmp.path()).await;
    add_users(&first, &["alice"]).await;
    enroll(&first, "alice", ALICE_SECRET).await;
    let second = store(tmp.path()).await;
    let alice = name("alice");
    for step in 0..5 {
        let at = T + 30 * step;
        let code = code_at(ALICE_SECRET, at);
        let (a, b) = tokio::join!(
            first.check_totp(&alice, &code, at),
            second.check_totp(&alice, &code, at)
        );
        let mut results = [a.unwrap(), b.unwrap()];
        results.sort_by_key(|r| *r != TotpCheck::Accepted);
        assert_eq!(
            results,
            [TotpCheck::Accepted, TotpCheck::Reused],
            "step {step}"
        );
    }
}

on_both_backends!(
    a_code_is_accepted_once_and_never_one_of_an_earlier_step,
    enrolment_and_reset_bump_the_auth_epoch_and_are_audited,
    key_rotation_reseals_totp_secrets_and_they_still_verify,
    two_processes_checking_one_code_accept_it_once,
);
