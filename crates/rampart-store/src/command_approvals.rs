//! Command approvals: a shell line that matched an `approve` rule waits here for an approver
//! (`pending`), until it is `approved` or `denied`, `timed_out` (no decision before
//! `expires_at`) or `cancelled` (its session ended while it waited). The waiting session polls
//! the row; whatever process decides (the API, the CLI) writes it, so the database is the one
//! arbiter: every transition is an `UPDATE ... WHERE state = 'pending'` in a write transaction
//! with its audit event, and only the first one happens. Who may decide is
//! `rampart_core::requests::may_decide`, asked by the callers; the store refuses a
//! self-decision again (fail closed).

use crate::access_requests::Decision;
use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::time_arg::format_duration;
use rampart_core::{Label, Name};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

/// The longest note kept, and the longest line shown.
const MAX_TEXT_CHARS: usize = 500;
/// The most approvals a list returns (newest).
const MAX_LISTED: i64 = 1_000;

/// A line to hold.
#[derive(Debug, Clone)]
pub struct NewCommandApproval {
    pub session: Uuid,
    pub requester: Name,
    /// `login@asset`.
    pub target: String,
    pub asset: Name,
    pub labels: Vec<Label>,
    pub line: String,
    pub command: String,
    /// `#3 approve prefix:systemctl`.
    pub rule: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandApproval {
    pub id: Uuid,
    pub session: String,
    pub requester: String,
    pub target: String,
    pub asset: String,
    pub labels: Vec<String>,
    pub line: String,
    pub command: String,
    pub rule: String,
    /// `pending`, `approved`, `denied`, `timed_out` or `cancelled`.
    pub state: String,
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    #[serde(skip)]
    expires: time::OffsetDateTime,
}

impl CommandApproval {
    /// Pending and not past its time.
    pub fn is_pending(&self) -> bool {
        self.state == "pending" && now() < self.expires
    }

    /// The asset labels the decision goes by.
    pub fn label_values(&self) -> Vec<Label> {
        self.labels
            .iter()
            .filter_map(|label| Label::parse(label).ok())
            .collect()
    }

    /// What the waiting session does now (`None`: it still waits).
    pub fn outcome(&self) -> Option<ApprovalOutcome> {
        let by = self.decided_by.clone().unwrap_or_default();
        match self.state.as_str() {
            "pending" => None,
            "approved" => Some(ApprovalOutcome::Approved { by }),
            "denied" => Some(ApprovalOutcome::Denied {
                by,
                note: self.note.clone(),
            }),
            "timed_out" => Some(ApprovalOutcome::TimedOut),
            _ => Some(ApprovalOutcome::Cancelled),
        }
    }
}

/// How a held line ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    Approved { by: String },
    Denied { by: String, note: Option<String> },
    TimedOut,
    Cancelled,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<CommandApproval> {
    let labels: String = row.try_get("labels")?;
    Ok(CommandApproval {
        id: rows::uuid(row, "id")?,
        session: rows::text(row, "session_id")?,
        requester: rows::text(row, "requester")?,
        target: rows::text(row, "target")?,
        asset: rows::text(row, "asset")?,
        labels: labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        line: rows::text(row, "line")?,
        command: rows::text(row, "command")?,
        rule: rows::text(row, "rule")?,
        state: rows::text(row, "state")?,
        created_at: rows::text(row, "created_at")?,
        expires_at: rows::text(row, "expires_at")?,
        decided_at: row.try_get("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        note: row.try_get("note")?,
        expires: rows::time(row, "expires_at")?,
    })
}

fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Store {
    /// Holds a line: a pending approval and its `command_approval_requested` event.
    pub async fn request_command_approval(
        &self,
        new: &NewCommandApproval,
    ) -> Result<CommandApproval> {
        let id = new_id();
        let at = now();
        let expires = at
            + time::Duration::try_from(new.timeout)
                .map_err(|_| StoreError::invalid("the approval timeout is too long"))?;
        let (line, command) = (clean(&new.line), clean(&new.command));
        let labels = new
            .labels
            .iter()
            .map(Label::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO command_approvals (id, session_id, requester, target, asset, labels, \
             line, command, rule, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)",
        )
        .bind(id.to_string())
        .bind(new.session.to_string())
        .bind(new.requester.as_str())
        .bind(&new.target)
        .bind(new.asset.as_str())
        .bind(labels)
        .bind(&line)
        .bind(&command)
        .bind(&new.rule)
        .bind(time_text(at))
        .bind(time_text(expires))
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            &Actor::User {
                name: new.requester.to_string(),
            },
            &AuditEvent::CommandApprovalRequested {
                approval: id.to_string(),
                session: new.session.to_string(),
                user: new.requester.to_string(),
                target: new.target.clone(),
                line,
                command,
                rule: new.rule.clone(),
                timeout: format_duration(new.timeout),
            },
        )
        .await?;
        let created = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn command_approval(&self, id: Uuid) -> Result<CommandApproval> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    /// Approvals, newest first; `pending_only`: those still waiting (and not past their time).
    pub async fn list_command_approvals(&self, pending_only: bool) -> Result<Vec<CommandApproval>> {
        let rows = sqlx::query(
            "SELECT * FROM command_approvals WHERE ($1 = 0 OR state = 'pending') \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(i64::from(pending_only))
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        let all = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(all
            .into_iter()
            .filter(|approval| !pending_only || approval.is_pending())
            .collect())
    }

    /// An approver approves or denies a pending approval. `decider` is the deciding user, if a
    /// user decides (the CLI operator is none); nobody decides their own line.
    pub async fn decide_command_approval(
        &self,
        actor: &Actor,
        id: Uuid,
        decider: Option<&Name>,
        decision: Decision,
        note: Option<&str>,
    ) -> Result<CommandApproval> {
        let note = note.map(clean).filter(|n| !n.is_empty());
        let mut tx = self.begin_write().await?;
        let approval = load(&mut tx, id).await?;
        if !approval.is_pending() {
            let state = match approval.state.as_str() {
                "pending" => "timed out",
                other => other,
            };
            return Err(StoreError::invalid(format!(
                "command approval {id} is already {state}"
            )));
        }
        if decider.is_some_and(|d| d.as_str() == approval.requester) {
            return Err(StoreError::invalid(
                "nobody may approve or deny their own command",
            ));
        }
        let state = match decision {
            Decision::Approve => "approved",
            Decision::Deny => "denied",
        };
        let decided_by = decider.map_or_else(|| actor.to_string(), Name::to_string);
        finish(&mut tx, actor, &approval, state, &decided_by, note).await?;
        let decided = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(decided)
    }

    /// The waiting session's view: the approval as it is now; past its time and still pending,
    /// it is marked `timed_out` first (unless an approver's decision got there first).
    pub async fn poll_command_approval(&self, id: Uuid) -> Result<CommandApproval> {
        let current = self.command_approval(id).await?;
        if current.state != "pending" || current.is_pending() {
            return Ok(current);
        }
        self.end_command_approval(id, "timed_out").await
    }

    /// The session ended while its line waited: `cancelled` (if nobody decided yet).
    pub async fn cancel_command_approval(&self, id: Uuid) -> Result<CommandApproval> {
        self.end_command_approval(id, "cancelled").await
    }

    async fn end_command_approval(&self, id: Uuid, state: &str) -> Result<CommandApproval> {
        let mut tx = self.begin_write().await?;
        let approval = load(&mut tx, id).await?;
        if approval.state == "pending" {
            finish(&mut tx, &Actor::System, &approval, state, "rampart", None).await?;
        }
        let ended = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(ended)
    }
}

async fn finish(
    tx: &mut sqlx::AnyConnection,
    actor: &Actor,
    approval: &CommandApproval,
    state: &str,
    decided_by: &str,
    note: Option<String>,
) -> Result<()> {
    sqlx::query(
        "UPDATE command_approvals SET state = $2, decided_at = $3, decided_by = $4, note = $5 \
         WHERE id = $1 AND state = 'pending'",
    )
    .bind(approval.id.to_string())
    .bind(state)
    .bind(time_text(now()))
    .bind(decided_by)
    .bind(&note)
    .execute(&mut *tx)
    .await?;
    audit_log::append(
        tx,
        actor,
        &AuditEvent::CommandApprovalDecided {
            approval: approval.id.to_string(),
            session: approval.session.clone(),
            user: approval.requester.clone(),
            line: approval.line.clone(),
            decision: state.to_owned(),
            note,
        },
    )
    .await
}

async fn load(conn: &mut sqlx::AnyConnection, id: Uuid) -> Result<CommandApproval> {
    let row = sqlx::query("SELECT * FROM command_approvals WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found("command approval", id))?;
    from_row(&row)
}
