//! Session records: one row per use of a grant, written by the gateways.

use crate::rows;
use crate::{Result, Store, StoreError};
use rampart_core::Session;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

impl Store {
    /// Sessions, newest first; only those still open with `live_only`.
    pub async fn list_sessions(&self, live_only: bool) -> Result<Vec<Session>> {
        let rows = sqlx::query(
            "SELECT id, user_name, asset_name, account_login, kind, source_addr, started_at, \
             ended_at, bytes_from_client, bytes_to_client, exit_status, end_reason FROM sessions \
             WHERE NOT $1 OR ended_at IS NULL ORDER BY started_at DESC, id DESC",
        )
        .bind(live_only)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    pub async fn session(&self, id: Uuid) -> Result<Session> {
        let row = sqlx::query(
            "SELECT id, user_name, asset_name, account_login, kind, source_addr, started_at, \
             ended_at, bytes_from_client, bytes_to_client, exit_status, end_reason FROM sessions \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("session", id))?;
        session_from_row(&row)
    }
}

fn session_from_row(row: &SqliteRow) -> Result<Session> {
    let count = |column: &str| -> Result<u64> {
        u64::try_from(row.try_get::<i64, _>(column)?)
            .map_err(|_| StoreError::Corrupt(format!("sessions.{column}")))
    };
    Ok(Session {
        id: rows::uuid(row, "id")?,
        user: rows::text(row, "user_name")?,
        asset: rows::text(row, "asset_name")?,
        account: rows::text(row, "account_login")?,
        kind: rows::text(row, "kind")?,
        source_addr: rows::text(row, "source_addr")?,
        started_at: rows::time(row, "started_at")?,
        ended_at: rows::optional_time(row, "ended_at")?,
        bytes_from_client: count("bytes_from_client")?,
        bytes_to_client: count("bytes_to_client")?,
        exit_status: row.try_get("exit_status")?,
        end_reason: row.try_get("end_reason")?,
    })
}
