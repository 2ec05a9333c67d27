//! Network domains and gateways through the store's public API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::{ExposeSecret, Name, SecretKind, SecretString};
use rampart_store::{NewAccountSecret, NewAsset, NewGateway, Store};

async fn store(dir: &std::path::Path) -> Store {
    let options = common::options(dir.join("data"));
    Store::create_or_open(&options).await.unwrap().0
}

fn name(text: &str) -> Name {
    Name::parse("name", text).unwrap()
}

fn gateway(gw: &str, domain: &str, password: &str) -> NewGateway {
    NewGateway {
        name: name(gw),
        domain: name(domain),
        host: "192.0.2.7".into(),
        port: 22,
        login: name("jump"),
        priority: None,
        secret: NewAccountSecret {
            kind: SecretKind::Password,
            value: SecretString::from(password.to_owned()),
        },
    }
}

async fn gateway_secrets_live_in_the_vault_and_survive_a_key_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    let actor = Actor::System;
    store.add_domain(&actor, &name("dc-east")).await.unwrap();
    store
        .add_gateway(&actor, &gateway("gw-1", "dc-east", "first-secret"))
        .await
        .unwrap();
    let second = store
        .add_gateway(&actor, &gateway("gw-2", "dc-east", "second-secret"))
        .await
        .unwrap();
    // Priority follows the order of adding.
    assert_eq!(second.priority, 2);
    let status = store.vault_status().await.unwrap();
    assert_eq!(status.secrets, 2);
    assert!(status.unreadable.is_empty(), "{:?}", status.unreadable);

    let report = store.rotate_vault_key(&actor, None).await.unwrap();
    assert_eq!(report.secrets_reencrypted, 2);
    let (kind, secret) = store.reveal_gateway_secret(&name("gw-2")).await.unwrap();
    assert_eq!(kind, SecretKind::Password);
    assert_eq!(secret.expose_secret(), "second-secret");
    let status = store.vault_status().await.unwrap();
    assert_eq!(
        status.secrets_by_key.len(),
        1,
        "{:?}",
        status.secrets_by_key
    );
    assert!(status.unreadable.is_empty(), "{:?}", status.unreadable);
}

async fn assets_name_existing_domains_and_a_domain_in_use_is_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    let actor = Actor::System;
    let mut asset = NewAsset::ssh(name("db-01"), "10.20.0.5".into(), 22, vec![]);
    asset.domain = Some(name("dc-east"));
    let err = store.add_asset(&actor, &asset).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "network domain dc-east not found: create it with `rampart domain add dc-east`"
    );
    let err = store
        .add_gateway(&actor, &gateway("gw-1", "dc-east", "s"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("network domain dc-east not found"));

    store.add_domain(&actor, &name("dc-east")).await.unwrap();
    store.add_asset(&actor, &asset).await.unwrap();
    store
        .add_gateway(&actor, &gateway("gw-1", "dc-east", "s"))
        .await
        .unwrap();
    let err = store
        .remove_domain(&actor, &name("dc-east"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("network domain dc-east still holds assets db-01 and gateways gw-1"),
        "{err}"
    );
    store.remove_gateway(&actor, &name("gw-1")).await.unwrap();
    store.remove_asset(&actor, &name("db-01")).await.unwrap();
    store.remove_domain(&actor, &name("dc-east")).await.unwrap();
    assert!(store.list_domains().await.unwrap().is_empty());
    // Each change is audited.
    let kinds: Vec<String> = store
        .audit_events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.kind)
        .collect();
    for kind in [
        "domain_added",
        "gateway_added",
        "gateway_removed",
        "domain_removed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

on_both_backends!(
    gateway_secrets_live_in_the_vault_and_survive_a_key_rotation,
    assets_name_existing_domains_and_a_domain_in_use_is_not_removed,
);
