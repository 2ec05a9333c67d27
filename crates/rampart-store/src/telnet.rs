//! Telnet login settings per asset (migration 21): the patterns of its login prompt, password
//! prompt, success and failure, and the login's timeout. The store keeps the text; what it
//! means (and whether it compiles) is `rampart-telnet`'s, which the CLI asks before storing and
//! the gateway again at use.

use crate::rows::{self, Named};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, Protocol};
use serde::Serialize;
use sqlx::Row;

/// An asset's Telnet login settings; `None` is the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TelnetLoginSettings {
    pub login_prompt: Option<String>,
    pub password_prompt: Option<String>,
    pub success: Option<String>,
    pub failure: Option<String>,
    pub timeout_seconds: Option<u32>,
}

/// The longest pattern kept.
pub const MAX_TELNET_PATTERN: usize = 1024;

impl Store {
    /// The asset's Telnet login settings (all defaults when none were set).
    pub async fn telnet_login_settings(&self, asset: &Name) -> Result<TelnetLoginSettings> {
        let mut conn = self.pool.acquire().await?;
        let id = rows::id_of(&mut conn, Named::Asset, asset).await?;
        let row = sqlx::query(
            "SELECT login_prompt, password_prompt, success_pattern, failure_pattern, \
             timeout_seconds FROM telnet_login_settings WHERE asset_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(TelnetLoginSettings::default());
        };
        let timeout: Option<i64> = row.try_get("timeout_seconds")?;
        Ok(TelnetLoginSettings {
            login_prompt: row.try_get("login_prompt")?,
            password_prompt: row.try_get("password_prompt")?,
            success: row.try_get("success_pattern")?,
            failure: row.try_get("failure_pattern")?,
            timeout_seconds: timeout
                .map(u32::try_from)
                .transpose()
                .map_err(|_| StoreError::Corrupt("telnet_login_settings.timeout_seconds".into()))?,
        })
    }

    /// Replaces the asset's Telnet login settings, with its `telnet_login_changed` event. The
    /// asset must have a telnet endpoint.
    pub async fn set_telnet_login_settings(
        &self,
        actor: &Actor,
        asset: &Name,
        settings: &TelnetLoginSettings,
    ) -> Result<()> {
        for pattern in [
            &settings.login_prompt,
            &settings.password_prompt,
            &settings.success,
            &settings.failure,
        ]
        .into_iter()
        .flatten()
        {
            if pattern.is_empty() || pattern.len() > MAX_TELNET_PATTERN {
                return Err(StoreError::invalid(format!(
                    "a Telnet login pattern must have 1 to {MAX_TELNET_PATTERN} bytes"
                )));
            }
        }
        if settings.timeout_seconds == Some(0) {
            return Err(StoreError::invalid(
                "the Telnet login timeout must be at least 1 second",
            ));
        }
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, Named::Asset, asset).await?.to_string();
        let telnet: Option<i64> = sqlx::query_scalar(
            "SELECT port FROM asset_endpoints WHERE asset_id = $1 AND protocol = $2",
        )
        .bind(&id)
        .bind(Protocol::Telnet.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if telnet.is_none() {
            return Err(StoreError::invalid(format!(
                "asset {asset} has no telnet endpoint (add one with rampart asset endpoint add {asset} telnet)"
            )));
        }
        sqlx::query(
            "INSERT INTO telnet_login_settings (asset_id, login_prompt, password_prompt, \
             success_pattern, failure_pattern, timeout_seconds) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (asset_id) DO UPDATE SET login_prompt = excluded.login_prompt, \
             password_prompt = excluded.password_prompt, success_pattern = excluded.success_pattern, \
             failure_pattern = excluded.failure_pattern, timeout_seconds = excluded.timeout_seconds",
        )
        .bind(&id)
        .bind(&settings.login_prompt)
        .bind(&settings.password_prompt)
        .bind(&settings.success)
        .bind(&settings.failure)
        .bind(settings.timeout_seconds.map(i64::from))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::TelnetLoginChanged {
            asset: asset.to_string(),
            login_prompt: settings.login_prompt.clone(),
            password_prompt: settings.password_prompt.clone(),
            success: settings.success.clone(),
            failure: settings.failure.clone(),
            timeout_seconds: settings.timeout_seconds,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}
