//! What `/metrics` and `rampart doctor` read from the store: live sessions, and the audit log read forward from
//! where the last scrape stopped (so a scrape reads only new events).

use crate::{Result, Store};
use std::time::{Duration, Instant};

/// Live sessions of one kind through one door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCount {
    pub kind: String,
    /// `ssh`, or `web` for browser terminals (their source reads `ADDR (web)`).
    pub via: String,
    pub count: u64,
}

/// One audit event as the metrics see it.
#[derive(Debug, Clone)]
pub struct EventFact {
    pub seq: i64,
    pub kind: String,
    /// For `session_ended`: bytes from and to the client.
    pub bytes: Option<(u64, u64)>,
}

impl Store {
    /// Live sessions by kind and door, across every process on this data directory.
    pub async fn live_session_counts(&self) -> Result<Vec<LiveCount>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, CASE WHEN source_addr LIKE '%(web)' THEN 'web' ELSE 'ssh' END, \
             COUNT(*) FROM sessions WHERE ended_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, via, count)| LiveCount {
                kind,
                via,
                count: u64::try_from(count).unwrap_or(0),
            })
            .collect())
    }

    /// At most `limit` audit events after `seq`, oldest first.
    pub async fn audit_facts_after(&self, seq: i64, limit: u32) -> Result<Vec<EventFact>> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT seq, kind, CASE WHEN kind = 'session_ended' THEN event END \
             FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, kind, event)| {
                let bytes = event
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .map(|event| {
                        let field = |name: &str| {
                            event
                                .get(name)
                                .and_then(serde_json::Value::as_u64)
                                .unwrap_or(0)
                        };
                        (field("bytes_from_client"), field("bytes_to_client"))
                    });
                EventFact { seq, kind, bytes }
            })
            .collect())
    }

    /// When the newest audit event was written, in Unix seconds (`rampart doctor`'s clock check).
    pub async fn last_audit_event_time(&self) -> Result<Option<i64>> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT at FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.and_then(|at| {
            rampart_core::time_arg::parse_rfc3339("time", &at)
                .ok()
                .map(|at| at.unix_timestamp())
        }))
    }

    /// How long a trivial query takes now: the store's latency as a caller meets it (the
    /// pool's wait included).
    pub async fn probe_latency(&self) -> Result<Duration> {
        let started = Instant::now();
        self.ping().await?;
        Ok(started.elapsed())
    }
}
