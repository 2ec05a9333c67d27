//! The vault through the store's public API, with the database file tampered with directly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::{AccountRef, ExposeSecret, Name, SecretKind, SecretString};
use rampart_store::{NewAccountSecret, NewAsset, Store, StoreError, VaultError};
use sqlx::Connection;

async fn store(dir: &std::path::Path) -> Store {
    let options = common::options(dir.join("data"));
    Store::create_or_open(&options).await.unwrap().0
}

async fn add_accounts(store: &Store, secrets: &[(&str, &str)]) {
    let actor = Actor::System;
    let asset = NewAsset::ssh(
        Name::parse("asset", "web-01").unwrap(),
        "127.0.0.1".into(),
        22,
        vec![],
    );
    store.add_asset(&actor, &asset).await.unwrap();
    for (login, secret) in secrets {
        let secret = NewAccountSecret {
            kind: SecretKind::Password,
            value: SecretString::from((*secret).to_owned()),
        };
        store
            .add_account(&actor, &account(login), &secret)
            .await
            .unwrap();
    }
}

fn account(login: &str) -> AccountRef {
    AccountRef::parse(&format!("{login}@web-01")).unwrap()
}

async fn reveal(store: &Store, login: &str) -> Result<String, StoreError> {
    let (_, secret) = store.reveal_account_secret(&account(login)).await?;
    Ok(secret.expose_secret().to_owned())
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_decrypt() {
    common::select(common::Db::Sqlite); // raw SQL on the SQLite file
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path()).await;
    add_accounts(
        &store,
        &[("root", "root-secret"), ("backup", "backup-secret")],
    )
    .await;
    assert_eq!(reveal(&store, "root").await.unwrap(), "root-secret");

    // An attacker with write access to the database copies root's sealed secret into backup's row.
    let url = format!("sqlite://{}", tmp.path().join("data/rampart.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let moved = sqlx::query(
        "UPDATE accounts SET secret = (SELECT secret FROM accounts WHERE login = 'root') WHERE login = 'backup'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    conn.close().await.unwrap();

    let err = reveal(&store, "backup").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Vault(VaultError::Tampered)),
        "{err:?}"
    );
    assert!(!err.to_string().contains("root-secret"));
    assert_eq!(reveal(&store, "root").await.unwrap(), "root-secret");
    let status = store.vault_status().await.unwrap();
    assert_eq!(status.unreadable, vec!["backup@web-01".to_owned()]);
}

async fn rotation_reseals_everything_and_resumes_an_interrupted_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = [("root", "one"), ("admin", "two"), ("backup", "three")];
    {
        let store = store(tmp.path()).await;
        add_accounts(&store, &secrets).await;
        store.close().await;
    }
    // A rotation died after writing its new key but before re-sealing anything.
    let keys = tmp.path().join("data/keys");
    rampart_store::vault::write_new_master_key_file(&keys.join("vault-master.key.next")).unwrap();

    let store = store(tmp.path()).await;
    let before = store.vault_status().await.unwrap();
    assert_eq!(
        before.keys_held.len(),
        2,
        "both keys are held while a rotation is pending"
    );
    let pending_id = before
        .keys_held
        .iter()
        .find(|id| **id != before.active_key_id)
        .unwrap()
        .clone();
    for (login, secret) in secrets {
        assert_eq!(reveal(&store, login).await.unwrap(), secret);
    }

    let report = store.rotate_vault_key(&Actor::System, None).await.unwrap();
    assert_eq!(
        report.new_key_id, pending_id,
        "the interrupted rotation's key is reused"
    );
    assert_eq!(report.secrets_reencrypted, 3);
    for (login, secret) in secrets {
        assert_eq!(reveal(&store, login).await.unwrap(), secret);
    }
    let after = store.vault_status().await.unwrap();
    assert_eq!(after.active_key_id, pending_id);
    assert_eq!(after.keys_held, vec![pending_id.clone()]);
    assert_eq!(after.secrets_by_key.get(&pending_id), Some(&3));
    assert_eq!(
        after.secrets_by_key.len(),
        1,
        "nothing left under the old key"
    );
    assert!(!keys.join("vault-master.key.next").exists());
}

on_both_backends!(rotation_reseals_everything_and_resumes_an_interrupted_rotation,);
