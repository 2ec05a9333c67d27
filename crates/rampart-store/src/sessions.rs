//! Session records: one row per use of a grant, written by the gateways.

use crate::rows::{self, now, time_text};
use crate::{Page, Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent, RecordingAnchor};
use rampart_core::{Session, SessionKind};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// A session about to start, as the gateway knows it.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Chosen by the gateway, so the recording can be created (and fail) before the record.
    pub id: Uuid,
    pub user: String,
    pub asset: String,
    pub account: String,
    pub kind: SessionKind,
    pub source_addr: String,
    /// The grant that allowed it.
    pub grant: Uuid,
    /// Whether the grant has it recorded.
    pub recorded: bool,
    /// A command's recording keeps at most this many bytes each way (none: everything).
    pub recording_cap: Option<u64>,
    /// An exec session's command, as the lists show it.
    pub command: Option<String>,
}

/// What a session search asks for; every part optional.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub live_only: bool,
    pub user: Option<String>,
    pub asset: Option<String>,
    /// Started at or after.
    pub since: Option<OffsetDateTime>,
    /// Started before.
    pub until: Option<OffsetDateTime>,
}

/// How a session ended.
#[derive(Debug, Clone, Default)]
pub struct SessionEnd {
    pub reason: String,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub exit_status: Option<i64>,
    /// The sealed recording, anchored in the chain by the `session_ended` event.
    pub recording: Option<RecordingAnchor>,
}

/// A new session id: time-ordered, so listings sort by start.
pub fn new_session_id() -> Uuid {
    crate::rows::new_id()
}

impl Store {
    /// Records a new session and its `session_started` event. If this fails the session must not
    /// start: no access without evidence.
    pub async fn start_session(&self, session: &NewSession) -> Result<Uuid> {
        let id = session.id;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_name, asset_name, account_login, kind, source_addr, started_at, recorded, recording_cap, command, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.to_string())
        .bind(&session.user)
        .bind(&session.asset)
        .bind(&session.account)
        .bind(session.kind.to_string())
        .bind(&session.source_addr)
        .bind(time_text(now()))
        .bind(session.recorded)
        .bind(
            session
                .recording_cap
                .map(|cap| i64::try_from(cap).unwrap_or(i64::MAX)),
        )
        .bind(session.command.as_deref())
        .bind(self.node())
        .execute(&mut *tx)
        .await?;
        // Marked when its allowing grant is an active break-glass request's.
        sqlx::query(
            "UPDATE sessions SET breakglass = (SELECT r.id FROM breakglass_requests r \
             WHERE r.grant_id = $1 AND r.state = 'active') WHERE id = $2",
        )
        .bind(session.grant.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::SessionStarted {
            session: id.to_string(),
            user: session.user.clone(),
            target: format!("{}@{}", session.account, session.asset),
            kind: session.kind.to_string(),
            grant: session.grant.to_string(),
            source: session.source_addr.clone(),
            recorded: session.recorded,
            recording_cap: session.recording_cap,
            command: session.command.clone(),
        };
        audit_log::append(
            &mut tx,
            &Actor::User {
                name: session.user.clone(),
            },
            &event,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Ends every session of this node (see [`Store::set_node`]) still marked live, with `reason` and the recording `recording_of`
    /// finds for it (sealed at this start). Called at start: a session cannot outlive the
    /// process that carried it. Only the server holding the data directory's
    /// [`ServeLock`](crate::ServeLock) may: another process would end sessions that are live.
    pub async fn end_live_sessions(
        &self,
        _held: &crate::ServeLock,
        reason: &str,
        recording_of: impl Fn(Uuid) -> Option<RecordingAnchor>,
    ) -> Result<Vec<Uuid>> {
        let live = self.list_sessions(true).await?;
        let mut ended = Vec::new();
        // Only this node's (and those from before nodes): other nodes' sessions are theirs.
        let mine = |session: &rampart_core::Session| match (&session.node, self.node()) {
            (Some(node), Some(me)) => node == me,
            _ => true,
        };
        for session in live.into_iter().filter(mine) {
            let end = SessionEnd {
                reason: reason.to_owned(),
                bytes_from_client: session.bytes_from_client,
                bytes_to_client: session.bytes_to_client,
                exit_status: None,
                recording: recording_of(session.id),
            };
            self.end_session(session.id, &end).await?;
            ended.push(session.id);
        }
        Ok(ended)
    }

    /// Applies retention: removes the records (sessions and their commands) of sessions that
    /// ended before `before`, with one `retention_applied` event. Returns the removed session
    /// ids so the caller removes their recordings. Audit events are kept: the chain stays whole.
    pub async fn apply_retention(
        &self,
        actor: &Actor,
        before: OffsetDateTime,
    ) -> Result<Vec<Uuid>> {
        // Old by the chain's `session_ended` time, never the `sessions` table's (a cache
        // anyone with the database can edit to make a recent session look old).
        let listed: std::collections::HashSet<Uuid> = self
            .list_sessions(false)
            .await?
            .into_iter()
            .filter(|s| s.ended_at.is_some())
            .map(|s| s.id)
            .collect();
        let rows = sqlx::query(
            "SELECT at, event FROM audit_events WHERE kind = 'session_ended' ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut expired = Vec::new();
        let mut recordings = Vec::new();
        for row in &rows {
            let at = rampart_core::time_arg::parse_rfc3339("time", &rows::text(row, "at")?)
                .map_err(|_| StoreError::Corrupt("audit_events.at".into()))?;
            let event: AuditEvent = serde_json::from_str(&rows::text(row, "event")?)
                .map_err(|_| StoreError::Corrupt("audit_events.event".into()))?;
            let AuditEvent::SessionEnded {
                session, recording, ..
            } = event
            else {
                continue;
            };
            let Ok(id) = Uuid::parse_str(&session) else {
                continue;
            };
            if at < before && listed.contains(&id) && !expired.contains(&id) {
                expired.push(id);
                recordings.extend(recording);
            }
        }
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut tx = self.begin_write().await?;
        for id in &expired {
            for sql in [
                "DELETE FROM commands WHERE session_id = $1",
                "DELETE FROM sessions WHERE id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let event = AuditEvent::RetentionApplied {
            before: rampart_core::time_arg::format_rfc3339(before),
            sessions_removed: expired.len() as u64,
            sessions: expired.iter().map(Uuid::to_string).collect(),
            recordings,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(expired)
    }

    /// Closes a session record with its totals and a `session_ended` event.
    pub async fn end_session(&self, id: Uuid, end: &SessionEnd) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let user: Option<String> = sqlx::query_scalar(
            "UPDATE sessions SET ended_at = $1, bytes_from_client = $2, bytes_to_client = $3, \
             exit_status = $4, end_reason = $5 WHERE id = $6 AND ended_at IS NULL RETURNING user_name",
        )
        .bind(time_text(now()))
        .bind(i64::try_from(end.bytes_from_client).unwrap_or(i64::MAX))
        .bind(i64::try_from(end.bytes_to_client).unwrap_or(i64::MAX))
        .bind(end.exit_status)
        .bind(&end.reason)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let user = user.ok_or_else(|| StoreError::not_found("live session", id))?;
        let event = AuditEvent::SessionEnded {
            session: id.to_string(),
            reason: end.reason.clone(),
            bytes_from_client: end.bytes_from_client,
            bytes_to_client: end.bytes_to_client,
            exit_status: end.exit_status,
            recording: end.recording.clone(),
        };
        audit_log::append(&mut tx, &Actor::User { name: user }, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Asks the server carrying a live session to end it (it polls these requests). Returns the
    /// session as it is now.
    pub async fn request_session_kill(
        &self,
        actor: &Actor,
        id: Uuid,
        reason: &str,
    ) -> Result<Session> {
        let mut tx = self.begin_write().await?;
        let user: Option<String> =
            sqlx::query_scalar("SELECT user_name FROM sessions WHERE id = $1 AND ended_at IS NULL")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let user = user.ok_or_else(|| StoreError::not_found("live session", id))?;
        sqlx::query(
            "INSERT INTO session_kills (session_id, reason, requested_by, requested_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO UPDATE SET reason = excluded.reason, \
             requested_by = excluded.requested_by, requested_at = excluded.requested_at",
        )
        .bind(id.to_string())
        .bind(reason)
        .bind(actor.to_string())
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::SessionKillRequested {
            session: id.to_string(),
            user,
            reason: reason.to_owned(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        self.session(id).await
    }

    /// Kill requests for sessions still live: (session, who asked, reason).
    pub async fn pending_session_kills(&self) -> Result<Vec<(Uuid, String, String)>> {
        let rows = sqlx::query(
            "SELECT k.session_id, k.requested_by, k.reason FROM session_kills k \
             JOIN sessions s ON s.id = k.session_id WHERE s.ended_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    rows::uuid(row, "session_id")?,
                    rows::text(row, "requested_by")?,
                    rows::text(row, "reason")?,
                ))
            })
            .collect()
    }

    /// Sessions, newest first; only those still open with `live_only`.
    pub async fn list_sessions(&self, live_only: bool) -> Result<Vec<Session>> {
        let filter = SessionFilter {
            live_only,
            ..SessionFilter::default()
        };
        self.find_sessions(&filter, u32::MAX).await
    }

    /// The newest `limit` sessions that match `filter`, newest first; filtered in SQL, so a
    /// search reads only what it returns.
    pub async fn find_sessions(&self, filter: &SessionFilter, limit: u32) -> Result<Vec<Session>> {
        Ok(self.find_sessions_page(filter, None, limit).await?.items)
    }

    /// One page of [`Store::find_sessions`]: the sessions after `cursor` (the `next` of the
    /// previous page) in the same order. `next` is set when the page is full.
    pub async fn find_sessions_page(
        &self,
        filter: &SessionFilter,
        cursor: Option<Uuid>,
        limit: u32,
    ) -> Result<Page<Session>> {
        // Start times are fixed-width text (migration 35): the filter is exact in SQL, before
        // the limit.
        let rows = sqlx::query(
            "SELECT id, user_name, asset_name, account_login, kind, source_addr, started_at, \
             ended_at, bytes_from_client, bytes_to_client, exit_status, end_reason, CAST(recorded AS INTEGER) AS recorded, recording_cap, route, command, breakglass, node FROM sessions \
             WHERE (NOT $1 OR ended_at IS NULL) AND ($2 IS NULL OR user_name = $2) \
             AND ($3 IS NULL OR asset_name = $3) \
             AND ($4 IS NULL OR started_at >= $4) \
             AND ($5 IS NULL OR started_at < $5) \
             AND ($7 IS NULL OR (started_at, id) < (SELECT started_at, id FROM sessions WHERE id = $7)) \
             ORDER BY started_at DESC, id DESC LIMIT $6",
        )
        .bind(filter.live_only)
        .bind(filter.user.as_deref())
        .bind(filter.asset.as_deref())
        .bind(filter.since.map(time_text))
        .bind(filter.until.map(time_text))
        .bind(i64::from(limit))
        .bind(cursor.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut sessions = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let session = session_from_row(row)?;
            last = Some(session.id);
            sessions.push(session);
        }
        Ok(Page::new(sessions, rows.len(), limit, last))
    }

    /// Records how a session reached its target (`direct`, `gateway NAME`), once it has.
    pub async fn set_session_route(&self, id: Uuid, route: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sessions SET route = $1 WHERE id = $2")
            .bind(route)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session(&self, id: Uuid) -> Result<Session> {
        let row = sqlx::query(
            "SELECT id, user_name, asset_name, account_login, kind, source_addr, started_at, \
             ended_at, bytes_from_client, bytes_to_client, exit_status, end_reason, CAST(recorded AS INTEGER) AS recorded, recording_cap, route, command, breakglass, node FROM sessions \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("session", id))?;
        session_from_row(&row)
    }

    /// What the hash chain holds about session `id`'s recording: its `session_ended` event and
    /// the recording that event anchors. Read from the audit log, never the `sessions` table.
    pub async fn chain_recording(&self, id: Uuid) -> Result<rampart_core::audit::ChainRecording> {
        let id = id.to_string();
        let sql = match self.backend {
            crate::Backend::Sqlite => {
                "SELECT seq, event FROM audit_events WHERE kind = 'session_ended' \
                 AND json_extract(event, '$.session') = $1 ORDER BY seq"
            }
            crate::Backend::Postgres => {
                "SELECT seq, event FROM audit_events WHERE kind = 'session_ended' \
                 AND CAST(event AS jsonb) ->> 'session' = $1 ORDER BY seq"
            }
        };
        let rows = sqlx::query(sql).bind(&id).fetch_all(&self.pool).await?;
        let mut found = rampart_core::audit::ChainRecording::Unfinished;
        for row in &rows {
            let event: AuditEvent = serde_json::from_str(&rows::text(row, "event")?)
                .map_err(|_| StoreError::Corrupt("audit_events.event".into()))?;
            if let AuditEvent::SessionEnded { recording, .. } = event {
                // A session ends once; a second end would be a forgery, and the first one
                // stands (the chain's order is the truth).
                if found == rampart_core::audit::ChainRecording::Unfinished {
                    found = rampart_core::audit::ChainRecording::Ended {
                        event: row.try_get("seq")?,
                        recording,
                    };
                }
            }
        }
        Ok(found)
    }
}

fn session_from_row(row: &AnyRow) -> Result<Session> {
    let count = |column: &str| -> Result<u64> {
        u64::try_from(row.try_get::<i64, _>(column)?)
            .map_err(|_| StoreError::Corrupt(format!("sessions.{column}")))
    };
    Ok(Session {
        id: rows::uuid(row, "id")?,
        user: rows::text(row, "user_name")?,
        asset: rows::text(row, "asset_name")?,
        account: rows::text(row, "account_login")?,
        kind: SessionKind::parse(&rows::text(row, "kind")?)
            .map_err(|_| StoreError::Corrupt("sessions.kind".into()))?,
        source_addr: rows::text(row, "source_addr")?,
        started_at: rows::time(row, "started_at")?,
        ended_at: rows::optional_time(row, "ended_at")?,
        bytes_from_client: count("bytes_from_client")?,
        bytes_to_client: count("bytes_to_client")?,
        exit_status: row.try_get("exit_status")?,
        end_reason: row.try_get("end_reason")?,
        recorded: rows::flag(row, "recorded")?,
        recording_cap: row
            .try_get::<Option<i64>, _>("recording_cap")?
            .map(|cap| u64::try_from(cap).unwrap_or(0)),
        route: row.try_get("route")?,
        command: row.try_get("command")?,
        breakglass: row.try_get("breakglass")?,
        node: row.try_get("node")?,
    })
}
