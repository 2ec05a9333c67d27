//! Network domains (places Rampart reaches only through a gateway) and their SSH-hop gateways.
//!
//! An asset is in at most one domain (`assets.domain` names a row of `domains`). A gateway is an
//! SSH server in the domain's network that Rampart logs in to with a vaulted credential (sealed
//! like an account's secret, bound to the gateway's row) and whose host key is pinned like a
//! target's.

use crate::accounts::{
    SealedSecret, active_key_id, check_secret, secret_kind as parse_secret_kind,
};
use crate::rows::{self, new_id, now, time_text};
use crate::vault::{KeyId, Vault};
use crate::{NewAccountSecret, Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{ExposeSecret, Name, SecretKind, SecretString};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

/// A network domain.
#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    pub name: Name,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A domain with what it holds: its gateways in priority order and its assets' names.
#[derive(Debug, Clone, Serialize)]
pub struct DomainDetail {
    #[serde(flatten)]
    pub domain: Domain,
    pub gateways: Vec<Gateway>,
    pub assets: Vec<Name>,
}

/// An SSH-hop gateway of a domain (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    pub name: Name,
    pub domain: Name,
    pub host: String,
    pub port: u16,
    /// The login Rampart uses on the gateway.
    pub login: Name,
    /// Lower first: sessions try the domain's gateways in this order.
    pub priority: u32,
    pub secret_kind: SecretKind,
    /// The pinned host key (`authorized_keys` form); none until the first connection pins it
    /// (or an administrator does).
    pub host_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The background health check's last verdict: `ok` or `failing`; none: not checked yet.
    pub health: Option<String>,
    /// Why the last check failed.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub health_checked_at: Option<OffsetDateTime>,
}

/// What `add_gateway` needs; `host` is already validated with `rampart_core::parse_host`.
#[derive(Debug)]
pub struct NewGateway {
    pub name: Name,
    pub domain: Name,
    pub host: String,
    pub port: u16,
    pub login: Name,
    /// None: after the domain's last gateway.
    pub priority: Option<u32>,
    pub secret: NewAccountSecret,
}

/// The associated data that binds a gateway's sealed secret to its row and kind.
fn gateway_aad(gateway_id: &str, kind: &str) -> Vec<u8> {
    format!("rampart/v1/gateways/{gateway_id}/secret/{kind}").into_bytes()
}

async fn domain_id(conn: &mut AnyConnection, domain: &Name) -> Result<String> {
    sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
        .bind(domain.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| unknown_domain(domain))
}

/// The error for a domain that does not exist, with how to create it.
pub(crate) fn unknown_domain(domain: &Name) -> StoreError {
    StoreError::invalid(format!(
        "network domain {domain} not found: create it with `rampart domain add {domain}`"
    ))
}

/// Checks that `domain` exists (for assets put in it).
pub(crate) async fn check_domain(conn: &mut AnyConnection, domain: &Name) -> Result<()> {
    domain_id(conn, domain).await.map(|_| ())
}

impl Store {
    pub async fn add_domain(&self, actor: &Actor, name: &Name) -> Result<Domain> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::already_exists("network domain", name));
        }
        let created_at = now();
        sqlx::query("INSERT INTO domains (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(new_id().to_string())
            .bind(name.as_str())
            .bind(time_text(created_at))
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::DomainAdded {
            domain: name.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(Domain {
            name: name.clone(),
            created_at,
        })
    }

    pub async fn list_domains(&self) -> Result<Vec<DomainDetail>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query("SELECT name, created_at FROM domains ORDER BY name")
            .fetch_all(&mut *conn)
            .await?;
        let mut domains = Vec::with_capacity(rows.len());
        for row in &rows {
            let domain = Domain {
                name: rows::name(row, "name")?,
                created_at: rows::time(row, "created_at")?,
            };
            domains.push(detail(&mut conn, domain).await?);
        }
        Ok(domains)
    }

    pub async fn domain(&self, name: &Name) -> Result<DomainDetail> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query("SELECT name, created_at FROM domains WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::not_found("network domain", name))?;
        let domain = Domain {
            name: rows::name(&row, "name")?,
            created_at: rows::time(&row, "created_at")?,
        };
        detail(&mut conn, domain).await
    }

    /// Removes an empty domain; one that still holds assets or gateways is refused, naming them.
    pub async fn remove_domain(&self, actor: &Actor, name: &Name) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Err(StoreError::not_found("network domain", name));
        };
        let held = detail(
            &mut tx,
            Domain {
                name: name.clone(),
                created_at: now(),
            },
        )
        .await?;
        let mut holds = Vec::new();
        if !held.assets.is_empty() {
            holds.push(format!("assets {}", join(&held.assets)));
        }
        if !held.gateways.is_empty() {
            let names: Vec<Name> = held.gateways.iter().map(|g| g.name.clone()).collect();
            holds.push(format!("gateways {}", join(&names)));
        }
        let agents: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM agents WHERE domain_id = $1 AND revoked_at IS NULL ORDER BY name",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?;
        if !agents.is_empty() {
            holds.push(format!("agents {}", agents.join(", ")));
        }
        if !holds.is_empty() {
            return Err(StoreError::invalid(format!(
                "network domain {name} still holds {}: move the assets out (`asset set NAME \
                 --no-domain`), remove the gateways (`gateway remove NAME`) and revoke the \
                 agents (`agent revoke NAME`) first",
                holds.join(" and ")
            )));
        }
        // Revoked agents and enrolment tokens go with the domain (their events stay).
        for table in [
            "DELETE FROM agents WHERE domain_id = $1",
            "DELETE FROM agent_tokens WHERE domain_id = $1",
        ] {
            sqlx::query(table).bind(&id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM domains WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::DomainRemoved {
            domain: name.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_gateway(&self, actor: &Actor, gateway: &NewGateway) -> Result<Gateway> {
        check_secret(&gateway.secret)?;
        if gateway.port == 0 {
            return Err(StoreError::invalid("invalid port 0: expected 1 to 65535"));
        }
        let mut tx = self.begin_write().await?;
        let domain = domain_id(&mut tx, &gateway.domain).await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM gateways WHERE name = $1")
            .bind(gateway.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::already_exists("gateway", &gateway.name));
        }
        let priority = match gateway.priority {
            Some(priority) => i64::from(priority),
            None => {
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(priority) FROM gateways WHERE domain_id = $1")
                        .bind(&domain)
                        .fetch_one(&mut *tx)
                        .await?;
                last.map_or(1, |last| last.saturating_add(1))
            }
        };
        let id = new_id().to_string();
        let kind = gateway.secret.kind;
        let key_id = active_key_id(&mut tx).await?;
        let sealed = self.vault.seal(
            key_id,
            &gateway_aad(&id, kind.as_str()),
            gateway.secret.value.expose_secret().as_bytes(),
        )?;
        sqlx::query(
            "INSERT INTO gateways (id, name, domain_id, host, port, login, priority, secret_kind, \
             secret, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(gateway.name.as_str())
        .bind(&domain)
        .bind(&gateway.host)
        .bind(i64::from(gateway.port))
        .bind(gateway.login.as_str())
        .bind(priority)
        .bind(kind.as_str())
        .bind(sealed)
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::GatewayAdded {
            gateway: gateway.name.to_string(),
            domain: gateway.domain.to_string(),
            host: gateway.host.clone(),
            port: gateway.port,
            login: gateway.login.to_string(),
            secret_kind: kind.to_string(),
            priority: u32::try_from(priority).unwrap_or(u32::MAX),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let added = load_gateways(&mut tx, None, Some(&gateway.name))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("gateway", &gateway.name))?;
        tx.commit().await?;
        Ok(added)
    }

    /// Gateways, of one domain (which must exist) or all, in priority order within a domain.
    pub async fn list_gateways(&self, domain: Option<&Name>) -> Result<Vec<Gateway>> {
        let mut conn = self.pool.acquire().await?;
        if let Some(domain) = domain {
            check_domain(&mut conn, domain).await?;
        }
        load_gateways(&mut conn, domain, None).await
    }

    pub async fn gateway(&self, name: &Name) -> Result<Gateway> {
        let mut conn = self.pool.acquire().await?;
        load_gateways(&mut conn, None, Some(name))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("gateway", name))
    }

    pub async fn remove_gateway(&self, actor: &Actor, name: &Name) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let gateway = load_gateways(&mut tx, None, Some(name))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("gateway", name))?;
        sqlx::query("DELETE FROM gateways WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::GatewayRemoved {
            gateway: name.to_string(),
            domain: gateway.domain.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Decrypts a gateway's secret for the connection about to use it; keep it only that long.
    pub async fn reveal_gateway_secret(&self, name: &Name) -> Result<(SecretKind, SecretString)> {
        let row = sqlx::query("SELECT id, secret_kind, secret FROM gateways WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("gateway", name))?;
        let kind = parse_secret_kind(&rows::text(&row, "secret_kind")?)?;
        let sealed: Vec<u8> = row.try_get("secret")?;
        let mut plain = self.vault.open(
            &gateway_aad(&rows::text(&row, "id")?, kind.as_str()),
            &sealed,
        )?;
        let text = String::from_utf8(std::mem::take(&mut *plain))
            .map_err(|_| StoreError::Corrupt("gateways.secret".into()))?;
        Ok((kind, SecretString::from(text)))
    }

    /// Pins `host_key` (`authorized_keys` form) for a gateway. With `replace` false it only pins
    /// when no key is pinned yet (trust on first use; first writer wins) and returns whether it
    /// did.
    pub async fn pin_gateway_host_key(
        &self,
        actor: &Actor,
        gateway: &Name,
        host_key: &str,
        how: &str,
        replace: bool,
    ) -> Result<bool> {
        let parsed = crate::ssh_keys::parse_public_keys("host key", host_key)?;
        let [key] = parsed.as_slice() else {
            return Err(StoreError::invalid("give exactly one host key"));
        };
        let mut tx = self.begin_write().await?;
        let sql = if replace {
            "UPDATE gateways SET host_key = $1 WHERE name = $2"
        } else {
            "UPDATE gateways SET host_key = $1 WHERE name = $2 AND host_key IS NULL"
        };
        let changed = sqlx::query(sql)
            .bind(&key.public_key)
            .bind(gateway.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let pinned = changed == 1;
        if pinned {
            let event = AuditEvent::GatewayHostKeyPinned {
                gateway: gateway.to_string(),
                fingerprint: key.fingerprint.clone(),
                how: how.to_owned(),
            };
            audit_log::append(&mut tx, actor, &event).await?;
        } else if replace {
            return Err(StoreError::not_found("gateway", gateway));
        }
        tx.commit().await?;
        Ok(pinned)
    }
}

fn join(names: &[Name]) -> String {
    names
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn detail(conn: &mut AnyConnection, domain: Domain) -> Result<DomainDetail> {
    let gateways = load_gateways(conn, Some(&domain.name), None).await?;
    let asset_rows = sqlx::query("SELECT name FROM assets WHERE domain = $1 ORDER BY name")
        .bind(domain.name.as_str())
        .fetch_all(&mut *conn)
        .await?;
    let assets = asset_rows
        .iter()
        .map(|row| rows::name(row, "name"))
        .collect::<Result<_>>()?;
    Ok(DomainDetail {
        domain,
        gateways,
        assets,
    })
}

async fn load_gateways(
    conn: &mut AnyConnection,
    domain: Option<&Name>,
    name: Option<&Name>,
) -> Result<Vec<Gateway>> {
    let rows = sqlx::query(
        "SELECT g.name, d.name AS domain, g.host, g.port, g.login, g.priority, g.secret_kind, \
         g.host_key, g.created_at, g.health, g.health_error, g.health_checked_at \
         FROM gateways g JOIN domains d ON d.id = g.domain_id \
         WHERE ($1 IS NULL OR d.name = $1) AND ($2 IS NULL OR g.name = $2) \
         ORDER BY d.name, g.priority, g.name",
    )
    .bind(domain.map(Name::as_str))
    .bind(name.map(Name::as_str))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(gateway_from_row).collect()
}

fn gateway_from_row(row: &AnyRow) -> Result<Gateway> {
    let port: i64 = row.try_get("port")?;
    let priority: i64 = row.try_get("priority")?;
    Ok(Gateway {
        name: rows::name(row, "name")?,
        domain: rows::name(row, "domain")?,
        host: rows::text(row, "host")?,
        port: u16::try_from(port).map_err(|_| StoreError::Corrupt("gateways.port".into()))?,
        login: rows::name(row, "login")?,
        priority: u32::try_from(priority)
            .map_err(|_| StoreError::Corrupt("gateways.priority".into()))?,
        secret_kind: parse_secret_kind(&rows::text(row, "secret_kind")?)?,
        host_key: row.try_get("host_key")?,
        created_at: rows::time(row, "created_at")?,
        health: row.try_get("health")?,
        last_error: row.try_get("health_error")?,
        health_checked_at: rows::optional_time(row, "health_checked_at")?,
    })
}

impl Store {
    /// Records a background health check of `gateway`: `Ok` or the failure's reason. A change
    /// of verdict (or of the failure's reason) is a `gateway_health_changed` event, in the same
    /// transaction; a repeat only updates the time. Returns whether it changed.
    pub async fn record_gateway_health(
        &self,
        gateway: &Name,
        result: std::result::Result<(), &str>,
    ) -> Result<bool> {
        let (health, error) = match result {
            Ok(()) => ("ok", None),
            Err(why) => ("failing", Some(why)),
        };
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT health, health_error FROM gateways WHERE name = $1")
            .bind(gateway.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        // Removed meanwhile: nothing to record.
        let Some(row) = row else {
            return Ok(false);
        };
        let before: (Option<String>, Option<String>) =
            (row.try_get("health")?, row.try_get("health_error")?);
        let changed = before.0.as_deref() != Some(health) || before.1.as_deref() != error;
        sqlx::query(
            "UPDATE gateways SET health = $1, health_error = $2, health_checked_at = $3 \
             WHERE name = $4",
        )
        .bind(health)
        .bind(error)
        .bind(time_text(now()))
        .bind(gateway.as_str())
        .execute(&mut *tx)
        .await?;
        if changed {
            let event = AuditEvent::GatewayHealthChanged {
                gateway: gateway.to_string(),
                health: health.to_owned(),
                reason: error.map(str::to_owned),
            };
            audit_log::append(&mut tx, &Actor::System, &event).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// Every gateway's sealed secret, for the vault's status check.
pub(crate) async fn sealed_gateway_secrets(conn: &mut AnyConnection) -> Result<Vec<SealedSecret>> {
    let rows = sqlx::query("SELECT id, name, secret_kind, secret FROM gateways ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SealedSecret {
                label: format!("gateway {}", rows::text(row, "name")?),
                aad: gateway_aad(&rows::text(row, "id")?, &rows::text(row, "secret_kind")?),
                sealed: row.try_get("secret")?,
            })
        })
        .collect()
}

/// Re-seals every gateway secret under `new_key_id`, inside the rotation's transaction.
pub(crate) async fn reseal_gateway_secrets(
    conn: &mut AnyConnection,
    vault: &Vault,
    new_key_id: KeyId,
) -> Result<u64> {
    let rows = sqlx::query("SELECT id, secret_kind, secret FROM gateways")
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let id = rows::text(row, "id")?;
        let aad = gateway_aad(&id, &rows::text(row, "secret_kind")?);
        let sealed: Vec<u8> = row.try_get("secret")?;
        let plain = vault.open(&aad, &sealed)?;
        let resealed = vault.seal(new_key_id, &aad, &plain)?;
        sqlx::query("UPDATE gateways SET secret = $1 WHERE id = $2")
            .bind(resealed)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}
