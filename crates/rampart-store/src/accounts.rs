//! Accounts (logins on assets) and the vault operations on their secrets.

use crate::data_dir::{io_error, replace_file, write_new_secret_file};
use crate::mfa::{reseal_totp_secrets, sealed_totp_secrets};
use crate::rows::{self, new_id, now, time_text};
use crate::vault::{
    KeyId, MasterKeySource, envelope_key_id, generate_master_key_base64, pending_key_path,
};
use crate::{Result, Store, StoreError, audit_log, ssh_keys};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Account, AccountRef, ExposeSecret, Name, SecretKind, SecretString};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;
use zeroize::Zeroizing;

const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A secret on its way into the vault.
#[derive(Debug)]
pub struct NewAccountSecret {
    pub kind: SecretKind,
    pub value: SecretString,
}

/// Which keys the vault's secrets are sealed with, and whether each one opens.
#[derive(Debug, Serialize)]
pub struct VaultStatus {
    pub master_key_source: String,
    pub active_key_id: String,
    pub keys_held: Vec<String>,
    pub secrets: u64,
    pub secrets_by_key: BTreeMap<String, u64>,
    /// Secrets that do not open with the keys held (should be empty): accounts as
    /// `login@asset`, TOTP second factors as `user NAME (totp)`.
    pub unreadable: Vec<String>,
}

/// What a master key rotation did.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    pub old_key_ids: Vec<String>,
    pub new_key_id: String,
    pub secrets_reencrypted: u64,
    /// Where the new key is, when the operator supplied it and must now configure it.
    pub new_key_file: Option<PathBuf>,
}

/// One sealed secret of any kind, for the vault's status check.
pub(crate) struct SealedSecret {
    /// How `vault status` names it.
    pub label: String,
    pub aad: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// The associated data that binds a sealed secret to its account row and kind.
fn secret_aad(account_id: &str, kind: &str) -> Vec<u8> {
    format!("rampart/v1/accounts/{account_id}/secret/{kind}").into_bytes()
}

/// A secret a person gives for an account: not empty, not huge, and a private key must parse.
pub(crate) fn check_secret(secret: &NewAccountSecret) -> Result<()> {
    let value = secret.value.expose_secret();
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return Err(StoreError::invalid(format!(
            "the secret must be 1 to {MAX_SECRET_BYTES} bytes"
        )));
    }
    if secret.kind == SecretKind::PrivateKey {
        ssh_keys::validate_private_key("the key file", &Zeroizing::new(value.to_owned()))?;
    }
    Ok(())
}

/// The asset's id (which must exist) and the account's row id, if the account exists.
async fn find_account(
    conn: &mut AnyConnection,
    account: &AccountRef,
) -> Result<(Uuid, Option<String>)> {
    let asset_id = rows::id_of(conn, rows::Named::Asset, &account.asset).await?;
    let id = sqlx::query_scalar("SELECT id FROM accounts WHERE asset_id = $1 AND login = $2")
        .bind(asset_id.to_string())
        .bind(account.login.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok((asset_id, id))
}

impl Store {
    /// Seals `secret` for account row `id` under the vault's active key.
    async fn seal_secret(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        secret: &NewAccountSecret,
    ) -> Result<Vec<u8>> {
        let key_id = active_key_id(conn).await?;
        self.vault.seal(
            key_id,
            &secret_aad(id, secret.kind.as_str()),
            secret.value.expose_secret().as_bytes(),
        )
    }

    pub async fn add_account(
        &self,
        actor: &Actor,
        account: &AccountRef,
        secret: &NewAccountSecret,
    ) -> Result<Account> {
        check_secret(secret)?;
        let mut tx = self.begin_write().await?;
        let (asset_id, exists) = find_account(&mut tx, account).await?;
        if exists.is_some() {
            return Err(StoreError::already_exists("account", account));
        }
        let id = new_id().to_string();
        let sealed = self.seal_secret(&mut tx, &id, secret).await?;
        sqlx::query(
            "INSERT INTO accounts (id, asset_id, login, secret_kind, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(asset_id.to_string())
        .bind(account.login.as_str())
        .bind(secret.kind.as_str())
        .bind(sealed)
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::AccountAdded {
            account: account.to_string(),
            secret_kind: secret.kind.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_accounts(&mut tx, Some(&account.asset), Some(&account.login))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("account", account))?;
        tx.commit().await?;
        Ok(loaded)
    }

    /// Replaces an account's secret (and its kind) in the vault. The old secret is gone.
    pub async fn replace_account_secret(
        &self,
        actor: &Actor,
        account: &AccountRef,
        secret: &NewAccountSecret,
    ) -> Result<Account> {
        check_secret(secret)?;
        let mut tx = self.begin_write().await?;
        let id = find_account(&mut tx, account)
            .await?
            .1
            .ok_or_else(|| StoreError::not_found("account", account))?;
        let sealed = self.seal_secret(&mut tx, &id, secret).await?;
        sqlx::query("UPDATE accounts SET secret_kind = $1, secret = $2 WHERE id = $3")
            .bind(secret.kind.as_str())
            .bind(sealed)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::AccountSecretReplaced {
            account: account.to_string(),
            secret_kind: secret.kind.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_accounts(&mut tx, Some(&account.asset), Some(&account.login))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("account", account))?;
        tx.commit().await?;
        Ok(loaded)
    }

    /// Accounts, optionally of one asset (which must exist).
    pub async fn list_accounts(&self, asset: Option<&Name>) -> Result<Vec<Account>> {
        let mut conn = self.pool.acquire().await?;
        if let Some(asset) = asset {
            rows::id_of(&mut conn, rows::Named::Asset, asset).await?;
        }
        load_accounts(&mut conn, asset, None).await
    }

    pub async fn remove_account(&self, actor: &Actor, account: &AccountRef) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let asset_id = rows::id_of(&mut tx, rows::Named::Asset, &account.asset).await?;
        let removed = sqlx::query("DELETE FROM accounts WHERE asset_id = $1 AND login = $2")
            .bind(asset_id.to_string())
            .bind(account.login.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::not_found("account", account));
        }
        let event = AuditEvent::AccountRemoved {
            account: account.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Decrypts an account's secret for the component about to use it. Keep the result only
    /// as long as the connection attempt needs it.
    pub async fn reveal_account_secret(
        &self,
        account: &AccountRef,
    ) -> Result<(SecretKind, SecretString)> {
        let row = sqlx::query(
            "SELECT c.id, c.secret_kind, c.secret FROM accounts c JOIN assets a ON a.id = c.asset_id \
             WHERE a.name = $1 AND c.login = $2",
        )
        .bind(account.asset.as_str())
        .bind(account.login.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("account", account))?;
        let kind = secret_kind(&rows::text(&row, "secret_kind")?)?;
        let sealed: Vec<u8> = row.try_get("secret")?;
        let mut plain = self.vault.open(
            &secret_aad(&rows::text(&row, "id")?, kind.as_str()),
            &sealed,
        )?;
        let text = String::from_utf8(std::mem::take(&mut *plain))
            .map_err(|_| StoreError::Corrupt("accounts.secret".into()))?;
        Ok((kind, SecretString::from(text)))
    }

    /// Counts secrets (account secrets and users' TOTP secrets) per master key and tries to open
    /// every one of them.
    pub async fn vault_status(&self) -> Result<VaultStatus> {
        let mut conn = self.pool.acquire().await?;
        let active = active_key_id(&mut conn).await?;
        let rows = sqlx::query(
            "SELECT c.id, c.login, a.name AS asset, c.secret_kind, c.secret \
             FROM accounts c JOIN assets a ON a.id = c.asset_id ORDER BY a.name, c.login",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut status = VaultStatus {
            master_key_source: self.vault.source().describe(),
            active_key_id: active.to_string(),
            keys_held: self.vault.key_ids().iter().map(KeyId::to_string).collect(),
            secrets: 0,
            secrets_by_key: BTreeMap::new(),
            unreadable: Vec::new(),
        };
        let mut secrets = Vec::with_capacity(rows.len());
        for row in &rows {
            secrets.push(SealedSecret {
                label: format!(
                    "{}@{}",
                    rows::text(row, "login")?,
                    rows::text(row, "asset")?
                ),
                aad: secret_aad(&rows::text(row, "id")?, &rows::text(row, "secret_kind")?),
                sealed: row.try_get("secret")?,
            });
        }
        secrets.extend(sealed_totp_secrets(&mut conn).await?);
        secrets.extend(crate::domains::sealed_gateway_secrets(&mut conn).await?);
        secrets.extend(crate::rotations::sealed_pending_secrets(&mut conn).await?);
        secrets.extend(crate::oidc::sealed_refresh_tokens(&mut conn).await?);
        for secret in &secrets {
            let key = envelope_key_id(&secret.sealed)
                .map_or_else(|_| "malformed".to_owned(), |id| id.to_string());
            *status.secrets_by_key.entry(key).or_default() += 1;
            status.secrets += 1;
            if self.vault.open(&secret.aad, &secret.sealed).is_err() {
                status.unreadable.push(secret.label.clone());
            }
        }
        Ok(status)
    }

    /// Re-seals every secret (account secrets and users' TOTP secrets) under a new master key.
    /// With the key kept in the data directory, the new key is generated there and replaces the
    /// old one; with a key supplied from outside, `new_key_file` must hold the new key, and the
    /// operator then configures it.
    ///
    /// Crash-safe: the new key is written before any secret is re-sealed, all secrets move in
    /// one transaction, and until the new key file replaces the old one both stay readable; a
    /// second run finishes an interrupted rotation.
    pub async fn rotate_vault_key(
        &self,
        actor: &Actor,
        new_key_file: Option<PathBuf>,
    ) -> Result<RotationReport> {
        let _lock = self.data_dir.lock()?;
        let data_dir_key = matches!(self.vault.source(), MasterKeySource::DataDir);
        let pending = pending_key_path(&self.data_dir);
        let new_key = match (&new_key_file, data_dir_key) {
            (Some(_), true) => {
                return Err(StoreError::invalid(
                    "the master key lives in the data directory: rotate-key generates the new key \
                     itself (--new-key-file is for keys supplied by file or environment)",
                ));
            }
            (None, false) => {
                return Err(StoreError::invalid(format!(
                    "the master key is supplied by {}: give the new key with --new-key-file FILE \
                     (create one with `rampart vault generate-key FILE`)",
                    self.vault.source().describe()
                )));
            }
            (Some(path), false) => read_secret_file(path)?,
            (None, true) if pending.exists() => read_secret_file(&pending)?,
            (None, true) => {
                let key = generate_master_key_base64()?;
                write_new_secret_file(&pending, key.as_bytes())?;
                key
            }
        };
        let old_key_ids: Vec<String> = self.vault.key_ids().iter().map(KeyId::to_string).collect();
        let new_key_id = self.vault.add_key(&new_key)?;

        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT id, secret_kind, secret FROM accounts")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let id = rows::text(row, "id")?;
            let aad = secret_aad(&id, &rows::text(row, "secret_kind")?);
            let sealed: Vec<u8> = row.try_get("secret")?;
            let plain = self.vault.open(&aad, &sealed)?;
            let resealed = self.vault.seal(new_key_id, &aad, &plain)?;
            sqlx::query("UPDATE accounts SET secret = $1 WHERE id = $2")
                .bind(resealed)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        // Users' TOTP secrets move in the same transaction: none is left under the old key.
        let totp_secrets = reseal_totp_secrets(&mut tx, &self.vault, new_key_id).await?;
        // And the gateways' secrets.
        let gateway_secrets =
            crate::domains::reseal_gateway_secrets(&mut tx, &self.vault, new_key_id).await?;
        // And rotations' pending secrets.
        let pending_secrets =
            crate::rotations::reseal_pending_secrets(&mut tx, &self.vault, new_key_id).await?;
        // And the OpenID Connect refresh tokens.
        let refresh_tokens =
            crate::oidc::reseal_refresh_tokens(&mut tx, &self.vault, new_key_id).await?;
        sqlx::query("UPDATE vault_state SET active_key_id = $1 WHERE singleton = 1")
            .bind(new_key_id.to_string())
            .execute(&mut *tx)
            .await?;
        let secrets_reencrypted = u64::try_from(rows.len())
            .unwrap_or(u64::MAX)
            .saturating_add(totp_secrets)
            .saturating_add(gateway_secrets)
            .saturating_add(pending_secrets)
            .saturating_add(refresh_tokens);
        let old_key_ids: Vec<String> = old_key_ids
            .into_iter()
            .filter(|id| *id != new_key_id.to_string())
            .collect();
        let event = AuditEvent::VaultKeyRotated {
            old_key_ids: old_key_ids.clone(),
            new_key_id: new_key_id.to_string(),
            secrets_reencrypted,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;

        if data_dir_key {
            replace_file(&pending, &self.data_dir.master_key_path())?;
            self.vault.reload()?;
        }
        Ok(RotationReport {
            old_key_ids,
            new_key_id: new_key_id.to_string(),
            secrets_reencrypted,
            new_key_file: if data_dir_key { None } else { new_key_file },
        })
    }
}

fn read_secret_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|err| io_error(path, "cannot read", &err))
}

pub(crate) async fn active_key_id(conn: &mut AnyConnection) -> Result<KeyId> {
    let text: String =
        sqlx::query_scalar("SELECT active_key_id FROM vault_state WHERE singleton = 1")
            .fetch_one(&mut *conn)
            .await?;
    KeyId::parse(&text).ok_or_else(|| StoreError::Corrupt("vault_state.active_key_id".into()))
}

pub(crate) fn secret_kind(text: &str) -> Result<SecretKind> {
    match text {
        "password" => Ok(SecretKind::Password),
        "private_key" => Ok(SecretKind::PrivateKey),
        _ => Err(StoreError::Corrupt("accounts.secret_kind".into())),
    }
}

pub(crate) async fn load_accounts(
    conn: &mut AnyConnection,
    asset: Option<&Name>,
    login: Option<&Name>,
) -> Result<Vec<Account>> {
    let rows = sqlx::query(
        "SELECT c.id, c.login, a.name AS asset, c.secret_kind, c.created_at \
         FROM accounts c JOIN assets a ON a.id = c.asset_id \
         WHERE ($1 IS NULL OR a.name = $1) AND ($2 IS NULL OR c.login = $2) ORDER BY a.name, c.login",
    )
    .bind(asset.map(Name::as_str))
    .bind(login.map(Name::as_str))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Account {
                id: rows::uuid(row, "id")?,
                login: rows::name(row, "login")?,
                asset: rows::name(row, "asset")?,
                secret_kind: secret_kind(&rows::text(row, "secret_kind")?)?,
                created_at: rows::time(row, "created_at")?,
            })
        })
        .collect()
}
