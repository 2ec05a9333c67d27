//! Access requests: a user asks for time-bound access (an asset or labels, accounts, actions, a
//! duration and a reason); an approver approves, which creates a grant valid from the approval
//! for the duration, in the same transaction, or denies; the requester may cancel while it is
//! pending. Who may decide is `rampart_core::requests::may_decide`, asked by the callers; the
//! store refuses a self-decision again (fail closed). Every step is an audit event.

use crate::grants::{NewGrant, insert_grant};
use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::time_arg::{format_duration, format_rfc3339};
use rampart_core::{ActionSet, GrantSubject, GrantTarget, Label, Name};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

/// The longest reason kept.
pub const MAX_REASON_CHARS: usize = 500;
/// The most requests a list returns (newest).
const MAX_LISTED: i64 = 1_000;

/// What a user asks for.
#[derive(Debug, Clone)]
pub struct NewAccessRequest {
    pub requester: Name,
    pub target: GrantTarget,
    pub accounts: Vec<Name>,
    pub actions: ActionSet,
    pub duration: Duration,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessRequest {
    pub id: Uuid,
    pub requester: String,
    /// `asset NAME` or the labels, as grants show their target.
    pub target: String,
    pub asset: Option<String>,
    pub labels: Vec<String>,
    pub accounts: Vec<String>,
    pub actions: String,
    pub duration: String,
    /// The same, in seconds (what an approval's grant lasts).
    #[serde(skip)]
    pub duration_secs: u64,
    pub reason: String,
    /// `pending`, `approved`, `denied` or `cancelled`.
    pub state: String,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    pub grant: Option<String>,
    pub valid_until: Option<String>,
}

impl AccessRequest {
    pub fn is_pending(&self) -> bool {
        self.state == "pending"
    }
}

/// Which requests a list shows.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub state: Option<String>,
    pub requester: Option<Name>,
}

/// A decision on a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<AccessRequest> {
    let asset: Option<String> = row.try_get("asset")?;
    let labels: Option<String> = row.try_get("labels")?;
    let labels: Vec<String> = labels
        .map(|l| l.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let accounts: String = row.try_get("accounts")?;
    let duration = u64::try_from(row.try_get::<i64, _>("duration_secs")?).unwrap_or(0);
    Ok(AccessRequest {
        id: rows::uuid(row, "id")?,
        requester: rows::text(row, "requester")?,
        target: match &asset {
            Some(asset) => format!("asset {asset}"),
            None => format!("labels {}", labels.join(",")),
        },
        asset,
        labels,
        accounts: accounts
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        actions: rows::text(row, "actions")?,
        duration: format_duration(Duration::from_secs(duration)),
        duration_secs: duration,
        reason: rows::text(row, "reason")?,
        state: rows::text(row, "state")?,
        created_at: rows::text(row, "created_at")?,
        decided_at: row.try_get("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        note: row.try_get("note")?,
        grant: row.try_get("grant_id")?,
        valid_until: row.try_get("valid_until")?,
    })
}

fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Store {
    /// Records a new pending request (the requester must exist and be enabled; the asset must
    /// exist).
    pub async fn create_access_request(
        &self,
        actor: &Actor,
        request: &NewAccessRequest,
    ) -> Result<AccessRequest> {
        let reason = clean(&request.reason, MAX_REASON_CHARS);
        if reason.is_empty() {
            return Err(StoreError::invalid("a request needs a reason"));
        }
        if request.duration.is_zero() {
            return Err(StoreError::invalid("a request needs a duration"));
        }
        let mut tx = self.begin_write().await?;
        rows::id_of(&mut tx, rows::Named::User, &request.requester).await?;
        let (asset, labels) = match &request.target {
            GrantTarget::Asset(name) => {
                rows::id_of(&mut tx, rows::Named::Asset, name).await?;
                (Some(name.to_string()), None)
            }
            GrantTarget::Labels(labels) if labels.is_empty() => {
                return Err(StoreError::invalid("a request needs an asset or labels"));
            }
            GrantTarget::Labels(labels) => (
                None,
                Some(
                    labels
                        .iter()
                        .map(Label::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ),
        };
        let id = new_id();
        let accounts = request
            .accounts
            .iter()
            .map(Name::to_string)
            .collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO access_requests (id, requester, asset, labels, accounts, actions, \
             duration_secs, reason, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
        )
        .bind(id.to_string())
        .bind(request.requester.as_str())
        .bind(&asset)
        .bind(&labels)
        .bind(accounts.join(","))
        .bind(request.actions.to_string())
        .bind(i64::try_from(request.duration.as_secs()).unwrap_or(i64::MAX))
        .bind(&reason)
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::AccessRequested {
                request: id.to_string(),
                user: request.requester.to_string(),
                target: request.target.to_string(),
                accounts,
                actions: request.actions.to_string(),
                duration: format_duration(request.duration),
                reason,
            },
        )
        .await?;
        let created = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn access_request(&self, id: Uuid) -> Result<AccessRequest> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    /// Requests, newest first.
    pub async fn list_access_requests(&self, filter: &RequestFilter) -> Result<Vec<AccessRequest>> {
        let rows = sqlx::query(
            "SELECT * FROM access_requests WHERE ($1 IS NULL OR state = $1) \
             AND ($2 IS NULL OR requester = $2) ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(filter.state.as_deref())
        .bind(filter.requester.as_ref().map(Name::as_str))
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Approves (creating the grant, valid from now for the requested duration) or denies a
    /// pending request. `decider` is the deciding user, if a user decides (the CLI operator is
    /// none); nobody decides their own request.
    pub async fn decide_access_request(
        &self,
        actor: &Actor,
        id: Uuid,
        decider: Option<&Name>,
        decision: Decision,
        note: Option<&str>,
    ) -> Result<AccessRequest> {
        let note = note
            .map(|n| clean(n, MAX_REASON_CHARS))
            .filter(|n| !n.is_empty());
        let mut tx = self.begin_write().await?;
        let request = load(&mut tx, id).await?;
        if !request.is_pending() {
            return Err(StoreError::invalid(format!(
                "access request {id} is already {}",
                request.state
            )));
        }
        if decider.is_some_and(|d| d.as_str() == request.requester) {
            return Err(StoreError::invalid(
                "nobody may approve or deny their own request",
            ));
        }
        let at = now();
        let (state, grant, valid_until) = match decision {
            Decision::Deny => ("denied", None, None),
            Decision::Approve => {
                let requester = Name::parse("user", &request.requester)?;
                let target = match &request.asset {
                    Some(asset) => GrantTarget::Asset(Name::parse("asset", asset)?),
                    None => GrantTarget::Labels(
                        request
                            .labels
                            .iter()
                            .map(|l| Label::parse(l))
                            .collect::<std::result::Result<_, _>>()?,
                    ),
                };
                let until =
                    at + time::Duration::seconds(i64::try_from(request.duration_secs).unwrap_or(0));
                let grant = insert_grant(
                    &mut tx,
                    actor,
                    &NewGrant {
                        subject: GrantSubject::User(requester),
                        target,
                        accounts: request
                            .accounts
                            .iter()
                            .map(|a| Name::parse("account", a))
                            .collect::<std::result::Result<_, _>>()?,
                        actions: ActionSet::parse(&request.actions)?,
                        namespaces: Vec::new(),
                        valid_from: None,
                        valid_until: Some(until),
                        schedule: None,
                        require_mfa: false,
                        idle_timeout: None,
                        max_duration: None,
                        record: true,
                    },
                )
                .await?;
                ("approved", Some(grant.id), Some(until))
            }
        };
        sqlx::query(
            "UPDATE access_requests SET state = $2, decided_at = $3, decided_by = $4, note = $5, \
             grant_id = $6, valid_until = $7 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(state)
        .bind(time_text(at))
        .bind(actor.to_string())
        .bind(&note)
        .bind(grant.map(|g| g.to_string()))
        .bind(valid_until.map(time_text))
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::AccessRequestDecided {
                request: id.to_string(),
                user: request.requester.clone(),
                decision: state.to_owned(),
                note,
                grant: grant.map(|g| g.to_string()),
                valid_until: valid_until.map(format_rfc3339),
            },
        )
        .await?;
        let decided = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(decided)
    }

    /// The requester withdraws a pending request.
    pub async fn cancel_access_request(
        &self,
        actor: &Actor,
        id: Uuid,
        by: &Name,
    ) -> Result<AccessRequest> {
        let mut tx = self.begin_write().await?;
        let request = load(&mut tx, id).await?;
        if request.requester != by.as_str() {
            return Err(StoreError::not_found("access request", id));
        }
        if !request.is_pending() {
            return Err(StoreError::invalid(format!(
                "access request {id} is already {}",
                request.state
            )));
        }
        sqlx::query(
            "UPDATE access_requests SET state = 'cancelled', decided_at = $2, decided_by = $3 \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(time_text(now()))
        .bind(actor.to_string())
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::AccessRequestDecided {
                request: id.to_string(),
                user: request.requester.clone(),
                decision: "cancelled".to_owned(),
                note: None,
                grant: None,
                valid_until: None,
            },
        )
        .await?;
        let cancelled = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(cancelled)
    }
}

async fn load(conn: &mut sqlx::AnyConnection, id: Uuid) -> Result<AccessRequest> {
    let row = sqlx::query("SELECT * FROM access_requests WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found("access request", id))?;
    from_row(&row)
}
