//! Personal tokens have a kind (migration 22): a Kubernetes token (a kubeconfig's bearer token)
//! never logs in to a database listener, a database token never opens the Kubernetes listener,
//! and a Kubernetes token's owner is found from the token alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::{ExposeSecret, Name, Role};
use rampart_store::{Store, TokenKind};
use std::time::Duration;

async fn a_token_opens_only_the_listeners_of_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let options = common::options(dir.path().join("data"));
    let store = Store::create_or_open(&options).await.unwrap().0;
    let alice = Name::parse("user", "alice").unwrap();
    store
        .add_user(&Actor::System, &alice, Role::User, &[])
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    let (_, kube) = store
        .create_token(&Actor::System, &alice, hour, TokenKind::Kubernetes)
        .await
        .unwrap();
    let (_, db) = store
        .create_db_token(&Actor::System, &alice, hour)
        .await
        .unwrap();
    let (kube, db) = (kube.expose_secret(), db.expose_secret());
    assert!(kube.starts_with("rampartkube_") && db.starts_with("rampartdb_"));

    assert!(!store.check_db_token(&alice, kube).await.unwrap());
    assert!(store.check_db_token(&alice, db).await.unwrap());
    assert!(
        store
            .check_token(&alice, kube, TokenKind::Kubernetes)
            .await
            .unwrap()
    );
    assert!(
        !store
            .check_token(&alice, db, TokenKind::Kubernetes)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .token_owner(kube, TokenKind::Kubernetes)
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.token_owner(db, TokenKind::Kubernetes).await.unwrap(),
        None
    );
    let listed = store.db_tokens(Some(&alice)).await.unwrap();
    let kinds: Vec<TokenKind> = listed.iter().map(|t| t.kind).collect();
    assert!(kinds.contains(&TokenKind::Kubernetes) && kinds.contains(&TokenKind::Database));
}

on_both_backends!(a_token_opens_only_the_listeners_of_its_kind,);
