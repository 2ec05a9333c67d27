//! The target model in the store: an existing data directory's assets (one host and port each,
//! before migration 14) open as assets with an ssh endpoint, with their pinned host keys, labels,
//! accounts and grants, and with the evidence rows untouched; endpoints are then added, changed
//! and removed through the store API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use rampart_core::audit::Actor;
use rampart_core::target::RdpSecurity;
use rampart_core::{Endpoint, Name, Protocol, SessionKind};
use rampart_store::{AssetChange, EndpointChange, MasterKeySource, Store, StoreOptions};
use sqlx::{Connection, Row, SqliteConnection};
use std::os::unix::fs::DirBuilderExt;

/// The last migration before the target model.
const BEFORE_TARGET_MODEL: i64 = 13;

const WEB_ID: &str = "01900000-0000-7000-8000-000000000001";
const DB_ID: &str = "01900000-0000-7000-8000-000000000002";
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const CREATED: &str = "2026-01-02T03:04:05Z";

/// Writes a data directory's database as a node before the target model left it: two assets
/// (one with a pinned host key and a label) and two sessions.
async fn old_data_dir(root: &std::path::Path) {
    std::fs::DirBuilder::new().mode(0o700).create(root).unwrap();
    let db = root.join("rampart.db");
    rampart_store::create_database_at_version(&db, BEFORE_TARGET_MODEL)
        .await
        .unwrap();
    let url = format!("sqlite://{}?mode=rw", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    for (id, name, host, port, key) in [
        (WEB_ID, "web-01", "10.0.0.5", 2222, Some(HOST_KEY)),
        (DB_ID, "db-01", "db.internal", 22, None),
    ] {
        sqlx::query(
            "INSERT INTO assets (id, name, host, port, host_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(name)
        .bind(host)
        .bind(port)
        .bind(key)
        .bind(CREATED)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO asset_labels (asset_id, key, value) VALUES ($1, 'env', 'prod')")
        .bind(WEB_ID)
        .execute(&mut conn)
        .await
        .unwrap();
    for (id, kind) in [
        ("01900000-0000-7000-8000-00000000000a", "shell"),
        ("01900000-0000-7000-8000-00000000000b", "port_forward:5432"),
    ] {
        sqlx::query(
            "INSERT INTO sessions (id, user_name, asset_name, account_login, kind, source_addr, \
             started_at, ended_at, bytes_from_client, bytes_to_client, end_reason) \
             VALUES ($1, 'alice', 'web-01', 'root', $2, '127.0.0.1:5000', $3, $3, 10, 20, 'closed')",
        )
        .bind(id)
        .bind(kind)
        .bind(CREATED)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();
}

/// Every column of every session row, as text: the evidence the migration must not touch (the
/// start to the second: migration 35 writes every time with six fraction digits).
async fn session_rows(root: &std::path::Path) -> Vec<String> {
    let url = format!("sqlite://{}", root.join("rampart.db").display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT id || '|' || user_name || '|' || asset_name || '|' || account_login || '|' || \
         kind || '|' || substr(started_at, 1, 19) || '|' || bytes_from_client || '|' || bytes_to_client AS line \
         FROM sessions ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    rows.iter().map(|r| r.get::<String, _>("line")).collect()
}

fn name(text: &str) -> Name {
    Name::parse("asset", text).unwrap()
}

#[tokio::test]
async fn an_existing_data_directory_migrates_each_asset_port_to_its_ssh_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    old_data_dir(&root).await;
    let evidence_before = session_rows(&root).await;
    assert_eq!(evidence_before.len(), 2);

    let options = StoreOptions {
        data_dir: root.clone(),
        master_key: MasterKeySource::DataDir,
        database: None,
    };
    let (store, _) = Store::create_or_open(&options).await.unwrap();
    let web = store.asset(&name("web-01")).await.unwrap();
    assert_eq!(web.host, "10.0.0.5");
    assert_eq!(web.endpoints, vec![Endpoint::new(Protocol::Ssh, 2222)]);
    assert_eq!(web.domain, None);
    assert_eq!(web.host_key.as_deref(), Some(HOST_KEY), "the pin survives");
    assert_eq!(web.labels.len(), 1);
    assert_eq!(web.address(Protocol::Ssh).as_deref(), Some("10.0.0.5:2222"));
    let db = store.asset(&name("db-01")).await.unwrap();
    assert_eq!(db.endpoints, vec![Endpoint::new(Protocol::Ssh, 22)]);
    assert_eq!(db.host_key, None);

    // The evidence rows are as they were, and their kinds read back typed.
    let kinds: Vec<SessionKind> = store
        .list_sessions(false)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.kind)
        .collect();
    assert!(kinds.contains(&SessionKind::Shell), "{kinds:?}");
    assert!(kinds.contains(&SessionKind::PortForward(5432)), "{kinds:?}");
    drop(store);
    assert_eq!(session_rows(&root).await, evidence_before);

    // Opening again applies nothing twice.
    let (store, _) = Store::create_or_open(&options).await.unwrap();
    assert_eq!(
        store.asset(&name("web-01")).await.unwrap().endpoints.len(),
        1
    );
}

#[tokio::test]
async fn endpoints_are_added_changed_and_removed_with_one_clear_refusal_each() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    old_data_dir(&root).await;
    let options = StoreOptions {
        data_dir: root,
        master_key: MasterKeySource::DataDir,
        database: None,
    };
    let (store, _) = Store::create_or_open(&options).await.unwrap();
    let actor = Actor::System;
    let web = name("web-01");

    let added = store
        .add_asset_endpoint(&actor, &web, &Endpoint::new(Protocol::Postgres, 5432))
        .await
        .unwrap();
    let words: Vec<String> = added.endpoints.iter().map(ToString::to_string).collect();
    assert_eq!(words, ["ssh:2222", "postgres:5432"]);

    let refusals = [
        (
            store
                .add_asset_endpoint(&actor, &web, &Endpoint::new(Protocol::Postgres, 5433))
                .await,
            "already has a postgres endpoint",
        ),
        (
            store
                .add_asset_endpoint(&actor, &web, &Endpoint::new(Protocol::Redis, 2222))
                .await,
            "port 2222 of web-01 is already its ssh endpoint",
        ),
        (
            store
                .remove_asset_endpoint(&actor, &web, Protocol::Mysql)
                .await,
            "web-01 has no mysql endpoint",
        ),
        (
            store
                .set_asset_endpoint(
                    &actor,
                    &web,
                    Protocol::Ssh,
                    &EndpointChange {
                        tls_fingerprint: Some(Some("ab".repeat(32))),
                        ..EndpointChange::default()
                    },
                )
                .await,
            "ssh endpoints have no TLS certificate to pin",
        ),
        (
            store
                .set_asset_endpoint(
                    &actor,
                    &web,
                    Protocol::Postgres,
                    &EndpointChange {
                        rdp_security: Some("tls".to_owned()),
                        ..EndpointChange::default()
                    },
                )
                .await,
            "postgres endpoints have no RDP security to set",
        ),
        (
            store
                .add_asset_endpoint(&actor, &name("nohost"), &Endpoint::new(Protocol::Tcp, 80))
                .await,
            "asset nohost not found",
        ),
    ];
    for (result, expected) in refusals {
        let err = result.unwrap_err().to_string();
        assert!(err.contains(expected), "{err:?} should say {expected:?}");
    }

    let changed = store
        .set_asset_endpoint(
            &actor,
            &web,
            Protocol::Postgres,
            &EndpointChange {
                port: Some(5433),
                tls_fingerprint: Some(Some("AB".repeat(32))),
                rdp_security: None,
            },
        )
        .await
        .unwrap();
    let postgres = changed.endpoint(Protocol::Postgres).unwrap();
    assert_eq!(postgres.port, 5433);
    assert_eq!(
        postgres.tls_fingerprint,
        Some(format!("SHA256:{}", "ab".repeat(32)))
    );

    // An RDP endpoint logs in with NLA unless it is set to TLS without NLA (xrdp); a word
    // other than nla or tls is refused, and the setting reads back from the store.
    store
        .add_asset_endpoint(&actor, &web, &Endpoint::new(Protocol::Rdp, 3389))
        .await
        .unwrap();
    let rdp = |asset: &rampart_core::Asset| asset.endpoint(Protocol::Rdp).unwrap().clone();
    let before = rdp(&store.asset(&web).await.unwrap());
    assert_eq!(before.rdp_security, None);
    assert_eq!(before.rdp_security(), RdpSecurity::Nla);
    let set_security = |word: &str| EndpointChange {
        rdp_security: Some(word.to_owned()),
        ..EndpointChange::default()
    };
    let err = store
        .set_asset_endpoint(&actor, &web, Protocol::Rdp, &set_security("rdp"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected nla (the default) or tls"), "{err}");
    let changed = store
        .set_asset_endpoint(&actor, &web, Protocol::Rdp, &set_security("tls"))
        .await
        .unwrap();
    assert_eq!(rdp(&changed).rdp_security(), RdpSecurity::Tls);
    assert_eq!(
        serde_json::to_value(rdp(&changed)).unwrap()["rdp_security"],
        "tls"
    );
    assert_eq!(
        rdp(&store.asset(&web).await.unwrap()).rdp_security,
        Some(RdpSecurity::Tls)
    );
    store
        .remove_asset_endpoint(&actor, &web, Protocol::Rdp)
        .await
        .unwrap();

    // A domain must exist before an asset is put in it.
    let into_unknown = AssetChange {
        host: None,
        domain: Some(Some(name("dc-2"))),
        labels: None,
    };
    let err = store
        .set_asset(&actor, &web, &into_unknown)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "network domain dc-2 not found: create it with `rampart domain add dc-2`"
    );
    store.add_domain(&actor, &name("dc-2")).await.unwrap();
    let moved = store
        .set_asset(
            &actor,
            &web,
            &AssetChange {
                host: Some("10.0.0.6".into()),
                domain: Some(Some(name("dc-2"))),
                labels: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.host, "10.0.0.6");
    assert_eq!(moved.domain.as_ref().map(Name::as_str), Some("dc-2"));

    let removed = store
        .remove_asset_endpoint(&actor, &web, Protocol::Ssh)
        .await
        .unwrap();
    assert_eq!(removed.endpoints.len(), 1);
    let last = store
        .remove_asset_endpoint(&actor, &web, Protocol::Postgres)
        .await
        .unwrap_err()
        .to_string();
    assert!(last.contains("last endpoint of web-01"), "{last}");

    let kinds: Vec<String> = store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "asset_endpoint_added",
        "asset_endpoint_changed",
        "asset_changed",
        "asset_endpoint_removed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}
