//! Alerts: `alert_raised` audit events (so every sink gets them, with their severity) and their
//! acknowledgements (`alert_acknowledged` events). Nothing else is stored: the audit log is the
//! one record of both.

use crate::audit_log::{self, AuditFilter};
use crate::{Result, Store, StoreError};
use rampart_core::audit::{Actor, AuditEvent};
use serde::Serialize;
use sqlx::Row;

/// The most alerts a list returns (newest).
const MAX_ALERTS: u32 = 10_000;

/// An alert with whether someone acknowledged it.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// The sequence number of its `alert_raised` event: its id.
    pub id: i64,
    pub at: String,
    /// The `alert_raised` event (alert, severity, user, session, target, detail).
    pub event: serde_json::Value,
    /// Who acknowledged it (`user:NAME`, `cli:NAME`) and when; none while open.
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

impl Store {
    /// Alerts, newest first.
    pub async fn list_alerts(&self) -> Result<Vec<Alert>> {
        let raised = AuditFilter {
            kind: Some("alert_raised".into()),
            ..AuditFilter::default()
        };
        let acknowledged = AuditFilter {
            kind: Some("alert_acknowledged".into()),
            ..AuditFilter::default()
        };
        let acks = self
            .matching_audit_events(&acknowledged, Some(MAX_ALERTS))
            .await?;
        let mut alerts: Vec<Alert> = self
            .matching_audit_events(&raised, Some(MAX_ALERTS))
            .await?
            .into_iter()
            .map(|record| {
                let ack = acks.iter().find(|ack| {
                    ack.event.get("alert").and_then(|v| v.as_i64()) == Some(record.seq)
                });
                Alert {
                    id: record.seq,
                    at: record.at,
                    event: record.event,
                    acknowledged_by: ack.map(|ack| ack.actor.to_string()),
                    acknowledged_at: ack.map(|ack| ack.at.clone()),
                }
            })
            .collect();
        alerts.reverse();
        Ok(alerts)
    }

    /// Acknowledges an open alert (once).
    pub async fn acknowledge_alert(&self, actor: &Actor, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let kind: Option<String> = sqlx::query("SELECT kind FROM audit_events WHERE seq = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("kind"))
            .transpose()?;
        if kind.as_deref() != Some("alert_raised") {
            return Err(StoreError::not_found("alert", id));
        }
        let sql = match self.backend {
            crate::Backend::Sqlite => {
                "SELECT seq FROM audit_events WHERE kind = 'alert_acknowledged' \
                 AND json_extract(event, '$.alert') = $1"
            }
            crate::Backend::Postgres => {
                "SELECT seq FROM audit_events WHERE kind = 'alert_acknowledged' \
                 AND CAST(event AS jsonb) -> 'alert' = to_jsonb($1::bigint)"
            }
        };
        let done: Option<i64> = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            return Err(StoreError::invalid(format!(
                "alert {id} is already acknowledged"
            )));
        }
        audit_log::append(&mut tx, actor, &AuditEvent::AlertAcknowledged { alert: id }).await?;
        tx.commit().await?;
        Ok(())
    }
}
