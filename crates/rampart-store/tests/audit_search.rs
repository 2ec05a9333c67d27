//! Audit searches filter in SQL and return the newest matches, oldest first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use rampart_core::audit::Actor;
use rampart_core::{Name, Role};
use rampart_store::{AuditFilter, MasterKeySource, Store, StoreOptions};
use time::OffsetDateTime;

#[tokio::test]
async fn searches_filter_by_kind_actor_text_and_time_and_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&StoreOptions {
        data_dir: dir.path().join("data"),
        master_key: MasterKeySource::DataDir,
    })
    .await
    .unwrap();
    let cli = Actor::LocalCli {
        os_user: "root".into(),
    };
    let admin = Actor::User {
        name: "adam".into(),
    };
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(2);
    for (actor, user) in [
        (&cli, "alice"),
        (&admin, "bob"),
        (&cli, "carol"),
        (&admin, "dave"),
    ] {
        let name = Name::parse("user", user).unwrap();
        store.add_user(actor, &name, Role::User, &[]).await.unwrap();
    }
    let search = |filter: AuditFilter, limit: Option<u32>| {
        let store = &store;
        async move { store.matching_audit_events(&filter, limit).await.unwrap() }
    };
    let users = |records: &[rampart_store::AuditRecord]| -> Vec<String> {
        records
            .iter()
            .map(|r| r.event["user"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    let added = AuditFilter {
        kind: Some("user_added".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        users(&search(added.clone(), None).await),
        ["alice", "bob", "carol", "dave"]
    );
    // The newest two, still oldest first.
    assert_eq!(
        users(&search(added.clone(), Some(2)).await),
        ["carol", "dave"]
    );
    let by_adam = AuditFilter {
        actor: Some("user:adam".into()),
        ..added.clone()
    };
    assert_eq!(users(&search(by_adam, None).await), ["bob", "dave"]);
    let text = AuditFilter {
        contains: Some("caro".into()),
        ..added.clone()
    };
    assert_eq!(users(&search(text, None).await), ["carol"]);
    let nobody = AuditFilter {
        actor: Some("robot:x".into()),
        ..AuditFilter::default()
    };
    assert!(search(nobody, None).await.is_empty());
    let window = |since, until| AuditFilter {
        since,
        until,
        ..added.clone()
    };
    assert_eq!(search(window(Some(before), None), None).await.len(), 4);
    assert!(search(window(None, Some(before)), None).await.is_empty());
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(2);
    assert!(search(window(Some(later), None), None).await.is_empty());
}
