//! Audit searches filter in SQL and return the newest matches, oldest first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::{Name, Role};
use rampart_store::{AuditFilter, Store};
use time::OffsetDateTime;

async fn searches_filter_by_kind_actor_text_and_time_and_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::create_or_open(&common::options(dir.path().join("data")))
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

async fn session_searches_filter_in_the_store_and_keep_the_newest() {
    use rampart_store::{NewSession, SessionEnd, SessionFilter, new_session_id};
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::create_or_open(&common::options(dir.path().join("data")))
        .await
        .unwrap();
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(2);
    let mut ids = Vec::new();
    for (user, asset) in [("alice", "web-01"), ("bob", "web-01"), ("alice", "db-01")] {
        let id = new_session_id();
        store
            .start_session(&NewSession {
                id,
                user: user.into(),
                asset: asset.into(),
                account: "root".into(),
                kind: rampart_core::SessionKind::Shell,
                source_addr: "127.0.0.1:1".into(),
                grant: uuid::Uuid::nil(),
                recorded: true,
                recording_cap: None,
                command: None,
            })
            .await
            .unwrap();
        ids.push(id);
    }
    store
        .end_session(ids[0], &SessionEnd::default())
        .await
        .unwrap();
    let find = |filter: SessionFilter, limit: u32| {
        let store = &store;
        async move { store.find_sessions(&filter, limit).await.unwrap() }
    };
    let found = |sessions: Vec<rampart_core::Session>| -> Vec<uuid::Uuid> {
        sessions.iter().map(|s| s.id).collect()
    };
    // Newest first.
    assert_eq!(
        found(find(SessionFilter::default(), 10).await),
        [ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        found(find(SessionFilter::default(), 2).await),
        [ids[2], ids[1]]
    );
    let alice = SessionFilter {
        user: Some("alice".into()),
        ..SessionFilter::default()
    };
    assert_eq!(found(find(alice.clone(), 10).await), [ids[2], ids[0]]);
    let live_alice = SessionFilter {
        live_only: true,
        ..alice.clone()
    };
    assert_eq!(found(find(live_alice, 10).await), [ids[2]]);
    let web = SessionFilter {
        asset: Some("web-01".into()),
        ..SessionFilter::default()
    };
    assert_eq!(found(find(web, 10).await), [ids[1], ids[0]]);
    let recent = SessionFilter {
        since: Some(before),
        ..SessionFilter::default()
    };
    assert_eq!(find(recent, 10).await.len(), 3);
    let old = SessionFilter {
        until: Some(before),
        ..SessionFilter::default()
    };
    assert!(find(old, 10).await.is_empty());
}

on_both_backends!(
    searches_filter_by_kind_actor_text_and_time_and_keep_the_newest,
    session_searches_filter_in_the_store_and_keep_the_newest,
);
