//! The audit log: typed events appended in the same transaction as the change they record, each
//! row chained to the previous one by SHA-256.
//!
//! `hash = SHA-256(prev_hash "\n" seq "\n" at "\n" actor "\n" event)` over the stored text, so
//! altering, deleting or reordering a row breaks every later link. Signing the chain head and the
//! offline verifier belong to the audit crate.

use crate::rows::{self, now, time_text};
use crate::{Result, Store};
use rampart_core::audit::{Actor, AuditEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

/// The hash the first event chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: Actor,
    pub kind: String,
    pub event: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

pub fn chain_hash(prev_hash: &str, seq: i64, at: &str, actor: &str, event: &str) -> String {
    let digest = Sha256::new()
        .chain_update(prev_hash)
        .chain_update("\n")
        .chain_update(seq.to_string())
        .chain_update("\n")
        .chain_update(at)
        .chain_update("\n")
        .chain_update(actor)
        .chain_update("\n")
        .chain_update(event)
        .finalize();
    crate::data_dir::hex(&digest)
}

/// The newest event's sequence number, if there is any event.
pub(crate) async fn head_seq(conn: &mut AnyConnection) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Appends `event` inside the caller's write transaction.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    actor: &Actor,
    event: &AuditEvent,
) -> Result<()> {
    let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (seq, prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>("seq")? + 1, rows::text(&row, "hash")?),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let at = time_text(now());
    let actor_json =
        serde_json::to_string(actor).map_err(|err| crate::StoreError::Corrupt(err.to_string()))?;
    let event_json =
        serde_json::to_string(event).map_err(|err| crate::StoreError::Corrupt(err.to_string()))?;
    let hash = chain_hash(&prev_hash, seq, &at, &actor_json, &event_json);
    sqlx::query(
        "INSERT INTO audit_events (seq, at, at_utc, actor, kind, event, prev_hash, hash) \
         VALUES ($1, $2, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(&at)
    .bind(&actor_json)
    .bind(event.kind())
    .bind(&event_json)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows per multi-row `INSERT` in [`append_all`]: 8 bound values each, far below SQLite's and
/// PostgreSQL's limits on parameters.
const APPEND_CHUNK: usize = 64;

/// Appends `events`, in order, inside the caller's write transaction: the same rows and hashes
/// as one [`append`] per event, with the chain's head read once and the rows inserted
/// [`APPEND_CHUNK`] at a time (a statement log's batch: one round trip to the database per
/// chunk instead of two per event).
pub(crate) async fn append_all(
    conn: &mut AnyConnection,
    events: &[(&Actor, &AuditEvent)],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (mut seq, mut prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>("seq")?, rows::text(&row, "hash")?),
        None => (0, GENESIS_HASH.to_owned()),
    };
    for chunk in events.chunks(APPEND_CHUNK) {
        let mut values = Vec::with_capacity(chunk.len());
        for (actor, event) in chunk {
            seq += 1;
            let at = time_text(now());
            let actor_json = serde_json::to_string(actor)
                .map_err(|err| crate::StoreError::Corrupt(err.to_string()))?;
            let event_json = serde_json::to_string(event)
                .map_err(|err| crate::StoreError::Corrupt(err.to_string()))?;
            let hash = chain_hash(&prev_hash, seq, &at, &actor_json, &event_json);
            let row = (
                seq,
                at,
                actor_json,
                event.kind(),
                event_json,
                prev_hash,
                hash.clone(),
            );
            values.push(row);
            prev_hash = hash;
        }
        // `at` and `at_utc` take the same value.
        let placeholders =
            crate::rows::values_placeholders(values.len(), 7, &[1, 2, 2, 3, 4, 5, 6, 7]);
        let sql = format!(
            "INSERT INTO audit_events (seq, at, at_utc, actor, kind, event, prev_hash, hash) \
             VALUES {placeholders}"
        );
        // Built from numbers only: nothing of the rows is in the text.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (seq, at, actor_json, kind, event_json, prev, hash) in values {
            query = query
                .bind(seq)
                .bind(at)
                .bind(actor_json)
                .bind(kind)
                .bind(event_json)
                .bind(prev)
                .bind(hash);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How far a SIEM sink has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkStatus {
    pub sink: String,
    /// The last event the sink acknowledged (everything up to it was delivered).
    pub delivered_seq: i64,
    /// Failed delivery attempts (each is retried until it succeeds).
    pub failed: u64,
    pub last_error: Option<String>,
}

/// A signature over the chain head at `seq`, made at `sealed_at` (part of what is signed) by a
/// process in `state` (`running`, `final`, or `legacy` for heads signed before either existed).
/// A running server signs its head again every seal interval, so the newest row's time says
/// when the signer was last seen alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSeal {
    pub seq: i64,
    pub hash: String,
    pub sealed_at: String,
    pub state: String,
    pub signature: String,
}

/// Where the audit chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("audit event {seq} was altered (its hash does not match its content)")]
    Altered { seq: i64 },
    #[error("audit events are missing before event {seq} (expected {expected})")]
    Missing { seq: i64, expected: i64 },
    #[error(
        "audit event {seq} does not chain to the event before it (deleted or reordered events)"
    )]
    Unlinked { seq: i64 },
}

impl Store {
    /// Recomputes the whole audit chain from the stored text. Returns the number of events.
    pub async fn verify_audit_chain(&self) -> Result<std::result::Result<u64, ChainProblem>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, event, prev_hash, hash FROM audit_events ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut previous = GENESIS_HASH.to_owned();
        for (expected_seq, row) in (1i64..).zip(rows.iter()) {
            let seq: i64 = row.try_get("seq")?;
            if seq != expected_seq {
                return Ok(Err(ChainProblem::Missing {
                    seq,
                    expected: expected_seq,
                }));
            }
            let prev_hash = rows::text(row, "prev_hash")?;
            if prev_hash != previous {
                return Ok(Err(ChainProblem::Unlinked { seq }));
            }
            let hash = chain_hash(
                &prev_hash,
                seq,
                &rows::text(row, "at")?,
                &rows::text(row, "actor")?,
                &rows::text(row, "event")?,
            );
            if hash != rows::text(row, "hash")? {
                return Ok(Err(ChainProblem::Altered { seq }));
            }
            previous = hash;
        }
        Ok(Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX)))
    }

    /// The newest event's sequence number and hash, if there is any event.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("seq")?, rows::text(&row, "hash")?)))
            .transpose()
    }

    /// The newest signed head (the highest sequence number).
    pub async fn last_audit_seal(&self) -> Result<Option<AuditSeal>> {
        let row = sqlx::query(
            "SELECT seq, hash, sealed_at, state, signature FROM audit_seals ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(seal_from_row).transpose()
    }

    /// The newest signed head at or before event `seq` (what a sink that delivered up to `seq`
    /// can be sent).
    pub async fn audit_seal_at_or_before(&self, seq: i64) -> Result<Option<AuditSeal>> {
        let row = sqlx::query(
            "SELECT seq, hash, sealed_at, state, signature FROM audit_seals WHERE seq <= $1 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(seal_from_row).transpose()
    }

    /// Stores a signature over the chain head (not itself an audit event: that would move the
    /// head it signs). Signing the same head again replaces its time, state and signature.
    pub async fn record_audit_seal(&self, seal: &AuditSeal) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_seals (seq, hash, sealed_at, state, signature) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (seq) DO UPDATE SET hash = $2, sealed_at = $3, state = $4, signature = $5",
        )
        .bind(seal.seq)
        .bind(&seal.hash)
        .bind(&seal.sealed_at)
        .bind(&seal.state)
        .bind(&seal.signature)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every chain head signature, oldest first.
    pub async fn audit_seals(&self) -> Result<Vec<AuditSeal>> {
        let rows = sqlx::query(
            "SELECT seq, hash, sealed_at, state, signature FROM audit_seals ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(seal_from_row).collect()
    }

    /// The stored hash of event `seq`, if it exists.
    pub async fn audit_event_hash(&self, seq: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` events after `seq`, oldest first (what a sink has not seen yet).
    pub async fn audit_events_after(&self, seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, event, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// A sink's progress; a new sink starts at the current head (it is not sent the past).
    pub async fn sink_status(&self, sink: &str) -> Result<SinkStatus> {
        let row = sqlx::query(
            "SELECT delivered_seq, failed, last_error FROM sink_status WHERE sink = $1",
        )
        .bind(sink)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(SinkStatus {
                sink: sink.to_owned(),
                delivered_seq: row.try_get("delivered_seq")?,
                failed: u64::try_from(row.try_get::<i64, _>("failed")?).unwrap_or(0),
                last_error: row.try_get("last_error")?,
            }),
            None => {
                let head = self.audit_head().await?.map_or(0, |(seq, _)| seq);
                let status = SinkStatus {
                    sink: sink.to_owned(),
                    delivered_seq: head,
                    failed: 0,
                    last_error: None,
                };
                self.save_sink_status(&status).await?;
                Ok(status)
            }
        }
    }

    pub async fn save_sink_status(&self, status: &SinkStatus) -> Result<()> {
        sqlx::query(
            "INSERT INTO sink_status (sink, delivered_seq, failed, last_error, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sink) DO UPDATE SET delivered_seq = $2, failed = $3, last_error = $4, updated_at = $5",
        )
        .bind(&status.sink)
        .bind(status.delivered_seq)
        .bind(i64::try_from(status.failed).unwrap_or(i64::MAX))
        .bind(&status.last_error)
        .bind(time_text(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every sink's progress.
    pub async fn sink_statuses(&self) -> Result<Vec<SinkStatus>> {
        let rows = sqlx::query(
            "SELECT sink, delivered_seq, failed, last_error FROM sink_status ORDER BY sink",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SinkStatus {
                    sink: rows::text(row, "sink")?,
                    delivered_seq: row.try_get("delivered_seq")?,
                    failed: u64::try_from(row.try_get::<i64, _>("failed")?).unwrap_or(0),
                    last_error: row.try_get("last_error")?,
                })
            })
            .collect()
    }

    /// Records an event that goes with no other change (a login, a denial).
    pub async fn record_event(&self, actor: &Actor, event: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, actor, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every event, oldest first (for export; filtered by the caller).
    pub async fn all_audit_events(&self) -> Result<Vec<AuditRecord>> {
        self.matching_audit_events(&AuditFilter::default(), None)
            .await
    }

    /// The newest `limit` events (all with `None`) that match `filter`, oldest first. Filtered
    /// in SQL, so a search reads only what it returns.
    pub async fn matching_audit_events(
        &self,
        filter: &AuditFilter,
        limit: Option<u32>,
    ) -> Result<Vec<AuditRecord>> {
        let limit = limit.unwrap_or(u32::MAX);
        Ok(self.audit_events_page(filter, None, limit).await?.items)
    }

    /// One page of [`Store::matching_audit_events`]: the newest `limit` matching events before
    /// sequence number `before` (the `next` of the previous page), oldest first.
    pub async fn audit_events_page(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<crate::Page<AuditRecord>> {
        let actor = match &filter.actor {
            Some(text) => match parse_actor(text) {
                Some(actor) => Some(
                    serde_json::to_string(&actor)
                        .map_err(|err| crate::StoreError::Corrupt(err.to_string()))?,
                ),
                None => return Ok(crate::Page::new(Vec::new(), 0, limit, None::<i64>)),
            },
            None => None,
        };
        // `at_utc` is fixed-width text (migration 35): the time filter is exact in SQL, before
        // the limit.
        let sql = match self.backend {
            crate::Backend::Sqlite => {
                "SELECT * FROM (SELECT seq, at, actor, kind, event, prev_hash, hash FROM audit_events \
                 WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR actor = $2) \
                 AND ($3 IS NULL OR instr(event, $3) > 0) \
                 AND ($4 IS NULL OR at_utc >= $4) AND ($5 IS NULL OR at_utc < $5) \
                 AND ($7 IS NULL OR seq < $7) \
                 ORDER BY seq DESC LIMIT $6) AS page ORDER BY seq"
            }
            crate::Backend::Postgres => {
                "SELECT * FROM (SELECT seq, at, actor, kind, event, prev_hash, hash FROM audit_events \
                 WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR actor = $2) \
                 AND ($3::text IS NULL OR strpos(event, $3) > 0) \
                 AND ($4::text IS NULL OR at_utc >= $4) AND ($5::text IS NULL OR at_utc < $5) \
                 AND ($7::bigint IS NULL OR seq < $7) \
                 ORDER BY seq DESC LIMIT $6) AS page ORDER BY seq"
            }
        };
        let rows = sqlx::query(sql)
            .bind(filter.kind.as_deref())
            .bind(actor)
            .bind(filter.contains.as_deref())
            .bind(filter.since.map(time_text))
            .bind(filter.until.map(time_text))
            .bind(i64::from(limit))
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        // Oldest first: the page continues before its first row.
        let first = records.first().map(|record| record.seq);
        Ok(crate::Page::new(records, rows.len(), limit, first))
    }

    /// The events after sequence number `after` between `filter`'s times (its other parts are
    /// ignored), oldest first, at most `limit`: the export's pages, which continue after the
    /// last event read.
    pub async fn audit_export_page(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: u32,
    ) -> Result<crate::Page<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, event, prev_hash, hash FROM audit_events \
             WHERE seq > $1 AND ($2 IS NULL OR at_utc >= $2) \
             AND ($3 IS NULL OR at_utc < $3) ORDER BY seq LIMIT $4",
        )
        .bind(after)
        .bind(filter.since.map(time_text))
        .bind(filter.until.map(time_text))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        let last = records.last().map(|record| record.seq);
        Ok(crate::Page::new(records, rows.len(), limit, last))
    }

    /// The newest `limit` events, oldest first.
    pub async fn recent_audit_events(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        self.matching_audit_events(&AuditFilter::default(), Some(limit))
            .await
    }
}

/// What an audit search asks for; every part optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The event kind, such as `login_failed`.
    pub kind: Option<String>,
    /// The actor as events show it: `system`, `cli:NAME` or `user:NAME`.
    pub actor: Option<String>,
    /// Text the event's JSON contains.
    pub contains: Option<String>,
    pub since: Option<OffsetDateTime>,
    /// Exclusive.
    pub until: Option<OffsetDateTime>,
}

/// The actor an `Actor`'s display text names.
fn parse_actor(text: &str) -> Option<Actor> {
    match text.split_once(':') {
        None if text == "system" => Some(Actor::System),
        Some(("cli", name)) => Some(Actor::LocalCli {
            os_user: name.to_owned(),
        }),
        Some(("user", name)) => Some(Actor::User {
            name: name.to_owned(),
        }),
        _ => None,
    }
}

fn seal_from_row(row: &sqlx::any::AnyRow) -> Result<AuditSeal> {
    Ok(AuditSeal {
        seq: row.try_get("seq")?,
        hash: rows::text(row, "hash")?,
        sealed_at: rows::text(row, "sealed_at")?,
        state: rows::text(row, "state")?,
        signature: rows::text(row, "signature")?,
    })
}

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord> {
    let json = |column: &str| -> Result<serde_json::Value> {
        serde_json::from_str(&rows::text(row, column)?)
            .map_err(|_| crate::StoreError::Corrupt(format!("audit_events.{column}")))
    };
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: rows::text(row, "at")?,
        actor: serde_json::from_value(json("actor")?)
            .map_err(|_| crate::StoreError::Corrupt("audit_events.actor".into()))?,
        kind: rows::text(row, "kind")?,
        event: json("event")?,
        prev_hash: rows::text(row, "prev_hash")?,
        hash: rows::text(row, "hash")?,
    })
}
