//! Assets: the hosts Rampart connects to, and their endpoints (the protocols they speak).

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::target::{RdpSecurity, check_endpoints, parse_tls_fingerprint};
use rampart_core::{Asset, Endpoint, Label, Name, Protocol};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// What `add_asset` needs; `host` is already validated with `rampart_core::parse_host`.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub name: Name,
    pub host: String,
    pub domain: Option<Name>,
    /// At least one; at most one per protocol and one per port.
    pub endpoints: Vec<Endpoint>,
    pub labels: Vec<Label>,
}

impl NewAsset {
    /// An asset reached over SSH on `port`, as `asset add --host H --port P` makes.
    pub fn ssh(name: Name, host: String, port: u16, labels: Vec<Label>) -> Self {
        Self {
            name,
            host,
            domain: None,
            endpoints: vec![Endpoint::new(Protocol::Ssh, port)],
            labels,
        }
    }
}

/// What `set_asset` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AssetChange {
    /// Already validated with `rampart_core::parse_host`.
    pub host: Option<String>,
    /// `Some(None)` takes the asset out of its domain.
    pub domain: Option<Option<Name>>,
    /// The asset's whole new set of labels (label grants select by them).
    pub labels: Option<Vec<Label>>,
}

/// What `set_asset_endpoint` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub port: Option<u16>,
    /// `Some(None)` forgets the pinned fingerprint.
    pub tls_fingerprint: Option<Option<String>>,
    /// An RDP endpoint's login security (`RdpSecurity::parse`'s words: `nla` or `tls`).
    pub rdp_security: Option<String>,
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
        check_endpoints(&asset.endpoints)?;
        if let Some(endpoint) = asset.endpoints.iter().find(|e| e.port == 0) {
            return Err(StoreError::invalid(format!(
                "invalid port 0 for {}: expected 1 to 65535",
                endpoint.protocol
            )));
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
        if let Some(domain) = &asset.domain {
            crate::domains::check_domain(&mut tx, domain).await?;
        }
        if rows::find_id(&mut tx, rows::Named::Asset, &asset.name)
            .await?
            .is_some()
        {
            return Err(StoreError::already_exists("asset", &asset.name));
        }
        let id = new_id().to_string();
        sqlx::query(
            "INSERT INTO assets (id, name, host, domain, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(asset.name.as_str())
        .bind(&asset.host)
        .bind(asset.domain.as_ref().map(Name::as_str))
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        for endpoint in &asset.endpoints {
            insert_endpoint(&mut tx, &id, endpoint).await?;
        }
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
            port: asset
                .endpoints
                .iter()
                .find(|e| e.protocol == Protocol::Ssh)
                .map(|e| e.port),
            labels: asset.labels.iter().map(Label::to_string).collect(),
            endpoints: asset.endpoints.iter().map(Endpoint::to_string).collect(),
            domain: asset.domain.as_ref().map(Name::to_string),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_asset(&mut tx, &asset.name).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    /// Changes an asset's host or network domain.
    pub async fn set_asset(
        &self,
        actor: &Actor,
        asset: &Name,
        change: &AssetChange,
    ) -> Result<Asset> {
        if change.host.is_none() && change.domain.is_none() && change.labels.is_none() {
            return Err(StoreError::invalid(
                "nothing to change: give a new host, domain or labels",
            ));
        }
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, asset)
            .await?
            .to_string();
        if let Some(host) = &change.host {
            sqlx::query("UPDATE assets SET host = $1 WHERE id = $2")
                .bind(host)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(domain) = &change.domain {
            if let Some(domain) = domain {
                crate::domains::check_domain(&mut tx, domain).await?;
            }
            sqlx::query("UPDATE assets SET domain = $1 WHERE id = $2")
                .bind(domain.as_ref().map(Name::as_str))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(labels) = &change.labels {
            let mut keys = std::collections::HashSet::new();
            if let Some(twice) = labels.iter().find(|l| !keys.insert(l.key.as_str())) {
                return Err(StoreError::invalid(format!(
                    "label key {:?} given twice",
                    twice.key
                )));
            }
            sqlx::query("DELETE FROM asset_labels WHERE asset_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            for label in labels {
                sqlx::query("INSERT INTO asset_labels (asset_id, key, value) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(&label.key)
                    .bind(&label.value)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let changed = load_asset(&mut tx, asset).await?;
        let event = AuditEvent::AssetChanged {
            asset: asset.to_string(),
            host: changed.host.clone(),
            domain: changed.domain.as_ref().map(Name::to_string),
            labels: change.labels.as_ref().map(|_| {
                changed
                    .labels
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Adds an endpoint to an asset: a protocol it does not speak yet, on a port no other of its
    /// endpoints uses.
    pub async fn add_asset_endpoint(
        &self,
        actor: &Actor,
        asset: &Name,
        endpoint: &Endpoint,
    ) -> Result<Asset> {
        if endpoint.port == 0 {
            return Err(StoreError::invalid("invalid port 0: expected 1 to 65535"));
        }
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, asset)
            .await?
            .to_string();
        let current = load_asset(&mut tx, asset).await?;
        if let Some(existing) = current.endpoint(endpoint.protocol) {
            return Err(StoreError::invalid(format!(
                "{asset} already has a {} endpoint ({existing}): change it with `asset endpoint                  set {asset} {} --port PORT`",
                endpoint.protocol, endpoint.protocol
            )));
        }
        if let Some(existing) = current.endpoint_on(endpoint.port) {
            return Err(StoreError::invalid(format!(
                "port {} of {asset} is already its {} endpoint",
                endpoint.port, existing.protocol
            )));
        }
        insert_endpoint(&mut tx, &id, endpoint).await?;
        let event = AuditEvent::AssetEndpointAdded {
            asset: asset.to_string(),
            protocol: endpoint.protocol.to_string(),
            port: endpoint.port,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let changed = load_asset(&mut tx, asset).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Changes the port or the pinned certificate fingerprint of an asset's endpoint.
    pub async fn set_asset_endpoint(
        &self,
        actor: &Actor,
        asset: &Name,
        protocol: Protocol,
        change: &EndpointChange,
    ) -> Result<Asset> {
        if change.port.is_none()
            && change.tls_fingerprint.is_none()
            && change.rdp_security.is_none()
        {
            return Err(StoreError::invalid(
                "nothing to change: give a new port, certificate fingerprint or RDP security",
            ));
        }
        let rdp_security = match &change.rdp_security {
            Some(text) if protocol == Protocol::Rdp => Some(RdpSecurity::parse(text)?),
            Some(_) => {
                return Err(StoreError::invalid(format!(
                    "{protocol} endpoints have no RDP security to set (only rdp endpoints do)"
                )));
            }
            None => None,
        };
        if change.port == Some(0) {
            return Err(StoreError::invalid("invalid port 0: expected 1 to 65535"));
        }
        let fingerprint = match &change.tls_fingerprint {
            Some(Some(text)) => {
                if protocol.identity_kind()
                    != Some(rampart_core::target::IdentityKind::TlsCertificate)
                {
                    return Err(StoreError::invalid(format!(
                        "{protocol} endpoints have no TLS certificate to pin"
                    )));
                }
                Some(Some(parse_tls_fingerprint(text)?))
            }
            other => other.clone(),
        };
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, asset)
            .await?
            .to_string();
        let current = load_asset(&mut tx, asset).await?;
        let Some(endpoint) = current.endpoint(protocol) else {
            return Err(no_endpoint(asset, protocol));
        };
        let mut updated = endpoint.clone();
        if let Some(port) = change.port {
            if let Some(other) = current
                .endpoint_on(port)
                .filter(|other| other.protocol != protocol)
            {
                return Err(StoreError::invalid(format!(
                    "port {port} of {asset} is already its {} endpoint",
                    other.protocol
                )));
            }
            updated.port = port;
        }
        if let Some(fingerprint) = fingerprint {
            updated.tls_fingerprint = fingerprint;
        }
        if let Some(security) = rdp_security {
            updated.rdp_security = Some(security);
        }
        sqlx::query(
            "UPDATE asset_endpoints SET port = $1, tls_fingerprint = $2, rdp_security = $3 \
             WHERE asset_id = $4 AND protocol = $5",
        )
        .bind(i64::from(updated.port))
        .bind(&updated.tls_fingerprint)
        .bind(updated.rdp_security.map(RdpSecurity::as_str))
        .bind(&id)
        .bind(protocol.as_str())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::AssetEndpointChanged {
            asset: asset.to_string(),
            protocol: protocol.to_string(),
            port: updated.port,
            tls_fingerprint: updated.tls_fingerprint.clone(),
            rdp_security: updated.rdp_security.map(|s| s.as_str().to_owned()),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let changed = load_asset(&mut tx, asset).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Removes an asset's endpoint for `protocol`; its last endpoint cannot be removed (remove
    /// the asset instead).
    pub async fn remove_asset_endpoint(
        &self,
        actor: &Actor,
        asset: &Name,
        protocol: Protocol,
    ) -> Result<Asset> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Asset, asset)
            .await?
            .to_string();
        let current = load_asset(&mut tx, asset).await?;
        let Some(endpoint) = current.endpoint(protocol) else {
            return Err(no_endpoint(asset, protocol));
        };
        if current.endpoints.len() == 1 {
            return Err(StoreError::invalid(format!(
                "{protocol} is the last endpoint of {asset}: an asset needs at least one (remove                  the asset with `asset remove {asset}`)"
            )));
        }
        sqlx::query("DELETE FROM asset_endpoints WHERE asset_id = $1 AND protocol = $2")
            .bind(&id)
            .bind(protocol.as_str())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::AssetEndpointRemoved {
            asset: asset.to_string(),
            protocol: protocol.to_string(),
            port: endpoint.port,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let changed = load_asset(&mut tx, asset).await?;
        tx.commit().await?;
        Ok(changed)
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

fn no_endpoint(asset: &Name, protocol: Protocol) -> StoreError {
    StoreError::invalid(format!(
        "{asset} has no {protocol} endpoint: add one with `asset endpoint add {asset} {protocol} \
         PORT`"
    ))
}

async fn insert_endpoint(
    conn: &mut AnyConnection,
    asset_id: &str,
    endpoint: &Endpoint,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO asset_endpoints (asset_id, protocol, port, tls_fingerprint)          VALUES ($1, $2, $3, $4)",
    )
    .bind(asset_id)
    .bind(endpoint.protocol.as_str())
    .bind(i64::from(endpoint.port))
    .bind(&endpoint.tls_fingerprint)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn load_asset(conn: &mut AnyConnection, name: &Name) -> Result<Asset> {
    load_assets(conn, Some(name))
        .await?
        .pop()
        .ok_or_else(|| StoreError::not_found("asset", name))
}

pub(crate) async fn load_assets(
    conn: &mut AnyConnection,
    only: Option<&Name>,
) -> Result<Vec<Asset>> {
    let only = only.map(Name::as_str);
    let asset_rows = sqlx::query(
        "SELECT id, name, host, domain, host_key, created_at FROM assets \
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
    let endpoint_rows = sqlx::query(
        "SELECT e.asset_id, e.protocol, e.port, e.tls_fingerprint, e.rdp_security \
         FROM asset_endpoints e \
         JOIN assets a ON a.id = e.asset_id WHERE $1 IS NULL OR a.name = $1",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut endpoints: HashMap<Uuid, Vec<Endpoint>> = HashMap::new();
    for row in &endpoint_rows {
        let protocol = Protocol::parse(&rows::text(row, "protocol")?)
            .map_err(|_| StoreError::Corrupt("asset_endpoints.protocol".into()))?;
        let port: i64 = row.try_get("port")?;
        endpoints
            .entry(rows::uuid(row, "asset_id")?)
            .or_default()
            .push(Endpoint {
                protocol,
                port: u16::try_from(port)
                    .map_err(|_| StoreError::Corrupt("asset_endpoints.port".into()))?,
                tls_fingerprint: row.try_get("tls_fingerprint")?,
                rdp_security: row
                    .try_get::<Option<String>, _>("rdp_security")?
                    .map(|text| {
                        RdpSecurity::parse(&text)
                            .map_err(|_| StoreError::Corrupt("asset_endpoints.rdp_security".into()))
                    })
                    .transpose()?,
            });
    }
    for list in endpoints.values_mut() {
        list.sort_by_key(|e| e.protocol);
    }
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
            let domain: Option<String> = row.try_get("domain")?;
            Ok(Asset {
                id,
                name: rows::name(row, "name")?,
                host: rows::text(row, "host")?,
                domain: domain
                    .map(|d| Name::parse("domain", &d))
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("assets.domain".into()))?,
                endpoints: endpoints.remove(&id).unwrap_or_default(),
                labels: labels.remove(&id).unwrap_or_default(),
                host_key: row.try_get("host_key")?,
                created_at: rows::time(row, "created_at")?,
            })
        })
        .collect()
}
