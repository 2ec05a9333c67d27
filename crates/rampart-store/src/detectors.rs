//! The anomaly detectors that read the audit log (new source address, off-hours login, new
//! asset): `run_detectors` judges the events after the detectors' position with
//! `rampart_core::detectors` (the decisions) against what it remembers of each user
//! (`detector_seen`, migration 24), and writes what it learned, the alerts it raised
//! (`alert_raised` events, so every sink gets them) and the new position in one write
//! transaction: each event is judged exactly once, across crashes and restarts.
//!
//! The failed-login burst is not here: it counts where failures are counted
//! (`login_controls`), since a storm of failures is deliberately not one event each (E6); nor
//! is the bulk transfer, which the session core checks as a session's bytes pass.

use crate::rows::{self, time_text};
use crate::{Result, Store, audit_log};
use rampart_core::audit::Actor;
use rampart_core::detectors::{self, DetectorAlert, DetectorSettings, Seen};
use rampart_core::time_arg::parse_rfc3339;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

/// The detectors' row in `detector_progress`.
const PROGRESS: &str = "detectors";

impl Store {
    /// Judges up to `batch` audit events after the detectors' position. The first run starts
    /// at the beginning of the log but only learns up to the head it finds (no alerts about the
    /// past). Returns whether more events are waiting (the batch was full).
    pub async fn run_detectors(&self, settings: &DetectorSettings, batch: u32) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let head = audit_log::head_seq(&mut tx).await?.unwrap_or(0);
        let progress: Option<(i64, i64)> =
            sqlx::query_as("SELECT seq, quiet_until FROM detector_progress WHERE name = $1")
                .bind(PROGRESS)
                .fetch_optional(&mut *tx)
                .await?;
        let (position, quiet_until) = progress.unwrap_or((0, head));
        if position >= head && progress.is_some() {
            return Ok(false);
        }
        let rows = sqlx::query(
            "SELECT seq, at, kind, event FROM audit_events WHERE seq > $1 AND seq <= $2 \
             AND kind IN ('login_succeeded', 'session_started') \
             ORDER BY seq LIMIT $3",
        )
        .bind(position)
        .bind(head)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        // A full batch ends at its last event; a short one saw everything up to the head.
        let full = rows.len() >= usize::try_from(batch).unwrap_or(usize::MAX);
        let mut judged_to = head;
        let mut alerts = Vec::new();
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            judged_to = seq;
            let at = rows::time(row, "at")?;
            let kind = rows::text(row, "kind")?;
            let event: serde_json::Value =
                serde_json::from_str(&rows::text(row, "event")?).unwrap_or_default();
            let found = judge(&mut tx, settings, &kind, &event, at).await?;
            if seq > quiet_until {
                alerts.extend(found);
            }
        }
        if !full {
            judged_to = head;
        }
        for alert in &alerts {
            audit_log::append(&mut tx, &Actor::System, &alert.event()).await?;
        }
        sqlx::query(
            "INSERT INTO detector_progress (name, seq, quiet_until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET seq = $2",
        )
        .bind(PROGRESS)
        .bind(judged_to)
        .bind(quiet_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(full)
    }
}

/// One event: what the detectors say about it, and what is learned from it.
async fn judge(
    conn: &mut AnyConnection,
    settings: &DetectorSettings,
    kind: &str,
    event: &serde_json::Value,
    at: OffsetDateTime,
) -> Result<Vec<DetectorAlert>> {
    let field = |name: &str| event.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let mut alerts = Vec::new();
    match kind {
        "login_succeeded" => {
            let user = field("user");
            // A connection inherited from another login (a browser terminal, a ProxyJump hop)
            // is not a login of its own.
            let Some(source) = detectors::source_address(field("source")) else {
                return Ok(alerts);
            };
            let address = source.to_string();
            let seen = seen(conn, user, "source", &address).await?;
            alerts.extend(detectors::new_source(settings, user, source, seen, at));
            alerts.extend(detectors::off_hours(settings, user, source, at));
            remember(conn, user, "source", &address, at).await?;
        }
        "session_started" => {
            let (user, target) = (field("user"), field("target"));
            let asset = target.rsplit('@').next().unwrap_or(target);
            let seen = seen(conn, user, "asset", asset).await?;
            alerts.extend(detectors::new_asset(
                settings,
                user,
                field("session"),
                target,
                asset,
                seen,
            ));
            remember(conn, user, "asset", asset, at).await?;
        }
        _ => {}
    }
    Ok(alerts)
}

async fn seen(conn: &mut AnyConnection, user: &str, what: &str, value: &str) -> Result<Seen> {
    let last: Option<String> = sqlx::query_scalar(
        "SELECT last_seen FROM detector_seen WHERE user_name = $1 AND what = $2 AND value = $3",
    )
    .bind(user)
    .bind(what)
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(last) = last {
        let at = parse_rfc3339("last_seen", &last)
            .map_err(|err| crate::StoreError::Corrupt(format!("detector_seen: {err}")))?;
        return Ok(Seen::LastAt(at));
    }
    let any: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM detector_seen WHERE user_name = $1 AND what = $2 LIMIT 1",
    )
    .bind(user)
    .bind(what)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(if any.is_some() {
        Seen::Never
    } else {
        Seen::NothingYet
    })
}

async fn remember(
    conn: &mut AnyConnection,
    user: &str,
    what: &str,
    value: &str,
    at: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO detector_seen (user_name, what, value, last_seen) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_name, what, value) DO UPDATE SET last_seen = $4",
    )
    .bind(user)
    .bind(what)
    .bind(value)
    .bind(time_text(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
