//! Assets: the hosts and services Rampart connects to.

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Asset, Label, Name};
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;
use uuid::Uuid;

/// What `add_asset` needs; `host` is already validated with `rampart_core::parse_host`.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub name: Name,
    pub host: String,
    pub port: u16,
    pub labels: Vec<Label>,
}

impl Store {
    /// Pins `host_key` (`authorized_keys` form) for an asset. With `replace` false it only pins
    /// when no key is pinned yet (trust on first use) and returns whether it did.
    pub async fn pin_asset_host_key(
        &self,
        actor: &Actor,
        asset: &Name,
        host_key: &str,
        how: &str,
        replace: bool,
    ) -> Result<bool> {
        let parsed = crate::ssh_keys::parse_public_keys("host key", host_key)?;
        let [key] = parsed.as_slice() else {
            return Err(StoreError::invalid("give exactly one host key"));
        };
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, asset).await?;
        let sql = if replace {
            "UPDATE assets SET host_key = $1 WHERE id = $2"
        } else {
            "UPDATE assets SET host_key = $1 WHERE id = $2 AND host_key IS NULL"
        };
        let pinned = sqlx::query(sql)
            .bind(&key.public_key)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if pinned {
            let event = AuditEvent::HostKeyPinned {
                asset: asset.to_string(),
                fingerprint: key.fingerprint.clone(),
                how: how.to_owned(),
            };
            audit_log::append(&mut tx, actor, &event).await?;
        }
        tx.commit().await?;
        Ok(pinned)
    }

    pub async fn add_asset(&self, actor: &Actor, asset: &NewAsset) -> Result<Asset> {
        if asset.port == 0 {
            return Err(StoreError::invalid("invalid port 0: expected 1 to 65535"));
        }
        let mut keys: Vec<&str> = asset.labels.iter().map(|l| l.key.as_str()).collect();
        keys.sort_unstable();
        if let Some(pair) = keys.windows(2).find(|pair| pair.first() == pair.last()) {
            return Err(StoreError::invalid(format!(
                "label key {:?} given twice",
                pair.first().unwrap_or(&"")
            )));
        }
        let mut tx = self.begin_write().await?;
        if rows::find_id(&mut tx, rows::Named::Asset, &asset.name)
            .await?
            .is_some()
        {
            return Err(StoreError::already_exists("asset", &asset.name));
        }
        let id = new_id().to_string();
        sqlx::query(
            "INSERT INTO assets (id, name, host, port, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(asset.name.as_str())
        .bind(&asset.host)
        .bind(i64::from(asset.port))
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        for label in &asset.labels {
            sqlx::query("INSERT INTO asset_labels (asset_id, key, value) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(&label.key)
                .bind(&label.value)
                .execute(&mut *tx)
                .await?;
        }
        let event = AuditEvent::AssetAdded {
            asset: asset.name.to_string(),
            host: asset.host.clone(),
            port: asset.port,
            labels: asset.labels.iter().map(Label::to_string).collect(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_asset(&mut tx, &asset.name).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    /// Forgets an asset's pinned host key; the next successful connection pins the key it sees.
    pub async fn clear_asset_host_key(&self, actor: &Actor, asset: &Name) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, asset).await?;
        sqlx::query("UPDATE assets SET host_key = NULL WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::HostKeyCleared {
            asset: asset.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_assets(&self) -> Result<Vec<Asset>> {
        let mut conn = self.pool.acquire().await?;
        load_assets(&mut conn, None).await
    }

    pub async fn asset(&self, name: &Name) -> Result<Asset> {
        let mut conn = self.pool.acquire().await?;
        load_asset(&mut conn, name).await
    }

    /// Removes an asset with its accounts (and their secrets) and the grants that name it.
    pub async fn remove_asset(&self, actor: &Actor, name: &Name) -> Result<(u64, u64)> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, name)
            .await?
            .to_string();
        let accounts_removed = sqlx::query("DELETE FROM accounts WHERE asset_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let grants_removed = sqlx::query("DELETE FROM grants WHERE asset_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::AssetRemoved {
            asset: name.to_string(),
            accounts_removed,
            grants_removed,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok((accounts_removed, grants_removed))
    }
}

async fn load_asset(conn: &mut SqliteConnection, name: &Name) -> Result<Asset> {
    load_assets(conn, Some(name))
        .await?
        .pop()
        .ok_or_else(|| StoreError::not_found("asset", name))
}

pub(crate) async fn load_assets(
    conn: &mut SqliteConnection,
    only: Option<&Name>,
) -> Result<Vec<Asset>> {
    let only = only.map(Name::as_str);
    let asset_rows = sqlx::query(
        "SELECT id, name, host, port, host_key, created_at FROM assets \
         WHERE $1 IS NULL OR name = $1 ORDER BY name",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let label_rows = sqlx::query(
        "SELECT l.asset_id, l.key, l.value FROM asset_labels l JOIN assets a ON a.id = l.asset_id \
         WHERE $1 IS NULL OR a.name = $1 ORDER BY l.key",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut labels: HashMap<Uuid, Vec<Label>> = HashMap::new();
    for row in &label_rows {
        labels
            .entry(rows::uuid(row, "asset_id")?)
            .or_default()
            .push(Label {
                key: rows::text(row, "key")?,
                value: rows::text(row, "value")?,
            });
    }
    asset_rows
        .iter()
        .map(|row| {
            let id = rows::uuid(row, "id")?;
            let port: i64 = row.try_get("port")?;
            Ok(Asset {
                id,
                name: rows::name(row, "name")?,
                host: rows::text(row, "host")?,
                port: u16::try_from(port).map_err(|_| StoreError::Corrupt("assets.port".into()))?,
                labels: labels.remove(&id).unwrap_or_default(),
                host_key: row.try_get("host_key")?,
                created_at: rows::time(row, "created_at")?,
            })
        })
        .collect()
}
