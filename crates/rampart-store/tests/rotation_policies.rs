//! Rotation policies in the store (issue 17, migration 31): label schedules decide which
//! accounts are due (an account's own schedule wins, the shortest label wins, a failed attempt
//! is retried after an hour, not on every tick), asset password policies round-trip, and every
//! change is audited.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::password_policy::PasswordPolicy;
use rampart_core::{AccountRef, Label, Name, SecretKind, SecretString};
use rampart_store::{
    NewAccountSecret, NewAsset, RotationSettingsChange, RotationState, Severity, Store,
};
use time::{Duration, OffsetDateTime};

async fn store(dir: &std::path::Path) -> Store {
    let options = common::options(dir.join("data"));
    Store::create_or_open(&options).await.unwrap().0
}

fn name(text: &str) -> Name {
    Name::parse("name", text).unwrap()
}

fn password(text: &str) -> NewAccountSecret {
    NewAccountSecret {
        kind: SecretKind::Password,
        value: SecretString::from(text.to_owned()),
    }
}

fn account(text: &str) -> AccountRef {
    AccountRef::parse(text).unwrap()
}

async fn asset(store: &Store, asset: &str, labels: &[&str]) {
    let labels = labels.iter().map(|l| Label::parse(l).unwrap()).collect();
    store
        .add_asset(
            &Actor::System,
            &NewAsset::ssh(name(asset), "192.0.2.9".into(), 22, labels),
        )
        .await
        .unwrap();
}

fn due_names(due: &[AccountRef]) -> Vec<String> {
    due.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn label_schedules_make_the_accounts_of_labelled_assets_due_and_an_own_schedule_wins() {
    common::select(common::Db::Sqlite); // raw SQL on the SQLite file
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    let actor = Actor::System;
    asset(&store, "prod-1", &["env=prod", "tier=db"]).await;
    asset(&store, "dev-1", &["env=dev"]).await;
    for a in ["root@prod-1", "app@prod-1", "root@dev-1"] {
        store
            .add_account(&actor, &account(a), &password("pw-123456789012"))
            .await
            .unwrap();
    }
    let now = OffsetDateTime::now_utc();
    // No schedule: nothing is ever due.
    assert!(
        store
            .rotations_due(now + Duration::days(365))
            .await
            .unwrap()
            .is_empty()
    );

    let env_prod = Label::parse("env=prod").unwrap();
    store
        .set_label_rotation_schedule(&actor, &env_prod, Some(30 * 86400))
        .await
        .unwrap();
    assert!(
        store
            .rotations_due(now + Duration::days(29))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        due_names(&store.rotations_due(now + Duration::days(31)).await.unwrap()),
        ["app@prod-1", "root@prod-1"]
    );
    // Of two labels, the shorter interval; an account's own schedule wins over both.
    store
        .set_label_rotation_schedule(&actor, &Label::parse("tier=db").unwrap(), Some(7 * 86400))
        .await
        .unwrap();
    store
        .set_rotation_settings(
            &actor,
            &account("app@prod-1"),
            &RotationSettingsChange {
                every_seconds: Some(Some(90 * 86400)),
                ..RotationSettingsChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        due_names(&store.rotations_due(now + Duration::days(8)).await.unwrap()),
        ["root@prod-1"]
    );
    let schedules = store.label_rotation_schedules().await.unwrap();
    assert_eq!(schedules.len(), 2);
    assert_eq!(schedules[0].label, "env=prod");
    assert_eq!(schedules[0].accounts, 2);

    // A rotation that did not commit is retried an hour later, not on every tick: root@prod-1
    // is made years old (due now under the 7-day label), then a rotation of it fails.
    let db = tmp.path().join("data/rampart.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}?mode=rw",
        db.display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "UPDATE accounts SET created_at = '2020-01-01T00:00:00Z' WHERE login = 'root' \
         AND asset_id = (SELECT id FROM assets WHERE name = 'prod-1')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        due_names(&store.rotations_due(now).await.unwrap()),
        ["root@prod-1"]
    );
    let rotation = store
        .begin_rotation(
            &actor,
            &account("root@prod-1"),
            &password("new-pw-123456789"),
        )
        .await
        .unwrap();
    // In flight: not due (it is resumed, not started again).
    assert!(
        store
            .rotations_due(now + Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    store
        .set_rotation_state(
            &actor,
            &rotation,
            RotationState::Failed,
            Severity::Alert,
            "refused",
        )
        .await
        .unwrap();
    assert!(
        store
            .rotations_due(now + Duration::minutes(10))
            .await
            .unwrap()
            .is_empty(),
        "retried on the next tick"
    );
    assert_eq!(
        due_names(
            &store
                .rotations_due(now + Duration::minutes(70))
                .await
                .unwrap()
        ),
        ["root@prod-1"]
    );

    // Removing the schedules: nothing due; removing one that is not there says so.
    store
        .set_label_rotation_schedule(&actor, &env_prod, None)
        .await
        .unwrap();
    store
        .set_label_rotation_schedule(&actor, &Label::parse("tier=db").unwrap(), None)
        .await
        .unwrap();
    assert!(
        store
            .rotations_due(now + Duration::days(31))
            .await
            .unwrap()
            .is_empty()
    );
    let err = store
        .set_label_rotation_schedule(&actor, &env_prod, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("env=prod"), "{err}");
    let events = store.audit_events_after(0, 100_000).await.unwrap();
    let policy_events: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "rotation_policy_changed")
        .map(|e| e.event["scope"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        policy_events,
        [
            "label env=prod",
            "label tier=db",
            "label env=prod",
            "label tier=db"
        ]
    );
}

async fn an_asset_password_policy_round_trips_and_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    let actor = Actor::System;
    asset(&store, "sw-1", &[]).await;
    assert_eq!(
        store.asset_password_policy(&name("sw-1")).await.unwrap(),
        PasswordPolicy::default()
    );
    let policy = PasswordPolicy::parse(Some(16), "lower,upper,digits", "0O1l").unwrap();
    store
        .set_asset_password_policy(&actor, &name("sw-1"), Some(&policy))
        .await
        .unwrap();
    assert_eq!(
        store.asset_password_policy(&name("sw-1")).await.unwrap(),
        policy
    );
    let err = store
        .set_asset_password_policy(&actor, &name("nope"), Some(&policy))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    store
        .set_asset_password_policy(&actor, &name("sw-1"), None)
        .await
        .unwrap();
    assert_eq!(
        store.asset_password_policy(&name("sw-1")).await.unwrap(),
        PasswordPolicy::default()
    );
    let events = store.audit_events_after(0, 100_000).await.unwrap();
    let policies: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "rotation_policy_changed")
        .map(|e| e.event["policy"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        policies,
        [
            "length: 16, classes: lower,upper,digits, excluded: 0O1l",
            "removed"
        ]
    );
}

on_both_backends!(an_asset_password_policy_round_trips_and_is_audited,);
