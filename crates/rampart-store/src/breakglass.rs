//! Break-glass kits' seal parameters (issue 17, migration 25): which accounts each offline kit
//! at a path covers, for which custodians (public keys only) and threshold, and the id of the
//! kit last written there. The kit file itself is sealed by `rampart-rotate::kits`; this is what
//! lets it be sealed again after a rotation. No secret is stored here.

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::AccountRef;
use rampart_core::audit::{Actor, AuditEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A custodian as a kit records them: a name and a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitCustodian {
    pub name: String,
    pub recipient: String,
}

/// A kit's seal parameters.
#[derive(Debug, Clone, Serialize)]
pub struct BreakglassKit {
    pub path: String,
    pub accounts: Vec<AccountRef>,
    pub custodians: Vec<KitCustodian>,
    pub threshold: u8,
    /// The id in the kit file last sealed to `path`.
    pub kit: String,
    #[serde(with = "time::serde::rfc3339")]
    pub sealed_at: OffsetDateTime,
}

fn kit_from(row: &sqlx::any::AnyRow) -> Result<BreakglassKit> {
    let corrupt = || StoreError::Corrupt("breakglass_kits".into());
    let accounts: Vec<String> =
        serde_json::from_str(&rows::text(row, "accounts")?).map_err(|_| corrupt())?;
    let accounts = accounts
        .iter()
        .map(|text| AccountRef::parse(text).map_err(|_| corrupt()))
        .collect::<Result<Vec<_>>>()?;
    let custodians: Vec<KitCustodian> =
        serde_json::from_str(&rows::text(row, "custodians")?).map_err(|_| corrupt())?;
    let threshold: i64 = sqlx::Row::try_get(row, "threshold")?;
    Ok(BreakglassKit {
        path: rows::text(row, "path")?,
        accounts,
        custodians,
        threshold: u8::try_from(threshold).map_err(|_| corrupt())?,
        kit: rows::text(row, "kit")?,
        sealed_at: rows::time(row, "sealed_at")?,
    })
}

impl Store {
    /// Records that `kit` was sealed to its path (a new kit, or the same path sealed again),
    /// with its audit event. Called after the file is in place.
    pub async fn record_breakglass_kit(
        &self,
        actor: &Actor,
        kit: &BreakglassKit,
        reason: &str,
    ) -> Result<()> {
        let accounts: Vec<String> = kit.accounts.iter().map(ToString::to_string).collect();
        let accounts_json = serde_json::to_string(&accounts)
            .map_err(|_| StoreError::invalid("cannot encode the kit's accounts"))?;
        let custodians_json = serde_json::to_string(&kit.custodians)
            .map_err(|_| StoreError::invalid("cannot encode the kit's custodians"))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO breakglass_kits (id, path, accounts, custodians, threshold, kit, \
             sealed_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (path) DO UPDATE SET accounts = excluded.accounts, \
             custodians = excluded.custodians, threshold = excluded.threshold, \
             kit = excluded.kit, sealed_at = excluded.sealed_at",
        )
        .bind(new_id().to_string())
        .bind(&kit.path)
        .bind(accounts_json)
        .bind(custodians_json)
        .bind(i64::from(kit.threshold))
        .bind(&kit.kit)
        .bind(time_text(kit.sealed_at))
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::BreakglassKitSealed {
                path: kit.path.clone(),
                kit: kit.kit.clone(),
                accounts,
                custodians: kit.custodians.iter().map(|c| c.name.clone()).collect(),
                threshold: u32::from(kit.threshold),
                reason: reason.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every recorded kit, by path.
    pub async fn breakglass_kits(&self) -> Result<Vec<BreakglassKit>> {
        let rows = sqlx::query(
            "SELECT path, accounts, custodians, threshold, kit, sealed_at FROM breakglass_kits \
             ORDER BY path",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(kit_from).collect()
    }

    /// The kit recorded at `path`, if any.
    pub async fn breakglass_kit(&self, path: &str) -> Result<Option<BreakglassKit>> {
        let row = sqlx::query(
            "SELECT path, accounts, custodians, threshold, kit, sealed_at FROM breakglass_kits \
             WHERE path = $1",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(kit_from).transpose()
    }

    /// The kits that hold `account`'s secret (to seal again after it rotates).
    pub async fn breakglass_kits_covering(
        &self,
        account: &AccountRef,
    ) -> Result<Vec<BreakglassKit>> {
        Ok(self
            .breakglass_kits()
            .await?
            .into_iter()
            .filter(|kit| kit.accounts.contains(account))
            .collect())
    }

    /// Stops sealing the kit at `path` again (the file is left alone), with its event.
    pub async fn forget_breakglass_kit(&self, actor: &Actor, path: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM breakglass_kits WHERE path = $1")
            .bind(path)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::not_found("break-glass kit", path));
        }
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::BreakglassKitForgotten {
                path: path.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A break-glass access request and where it is.
#[derive(Debug, Clone, Serialize)]
pub struct BreakglassRequest {
    pub id: String,
    pub user: String,
    pub asset: String,
    pub reason: String,
    pub requested_by: String,
    /// `pending` (waiting for approvals) or `active` (its grant exists until `ends_at`).
    pub state: String,
    pub approvals: Vec<String>,
    pub grant: Option<String>,
    pub duration_seconds: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
}

/// Approvals a break-glass request needs, from distinct administrators other than its user.
pub const BREAKGLASS_APPROVALS: usize = 2;

/// Emergency access lasts at most this long.
pub const MAX_BREAKGLASS_SECONDS: u64 = 24 * 3600;

async fn load_request(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<BreakglassRequest>> {
    let row = sqlx::query(
        "SELECT id, user_name, asset_name, reason, requested_by, state, duration_seconds, \
         grant_id, created_at, ends_at FROM breakglass_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let approvals: Vec<String> = sqlx::query_scalar(
        "SELECT admin FROM breakglass_approvals WHERE request_id = $1 ORDER BY approved_at, admin",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let duration: i64 = sqlx::Row::try_get(&row, "duration_seconds")?;
    Ok(Some(BreakglassRequest {
        id: rows::text(&row, "id")?,
        user: rows::text(&row, "user_name")?,
        asset: rows::text(&row, "asset_name")?,
        reason: rows::text(&row, "reason")?,
        requested_by: rows::text(&row, "requested_by")?,
        state: rows::text(&row, "state")?,
        approvals,
        grant: sqlx::Row::try_get(&row, "grant_id")?,
        duration_seconds: u64::try_from(duration).unwrap_or(0),
        created_at: rows::time(&row, "created_at")?,
        ends_at: rows::optional_time(&row, "ends_at")?,
    }))
}

fn breakglass_alert(detail: String, user: &str, asset: &str) -> AuditEvent {
    AuditEvent::AlertRaised {
        alert: "breakglass".into(),
        severity: "critical".into(),
        user: user.to_owned(),
        session: None,
        target: Some(asset.to_owned()),
        detail,
    }
}

impl Store {
    /// Files a break-glass request for `user` on `asset`; it gives nothing until two
    /// administrators other than the user approve it. Raises an alert (every sink gets it).
    pub async fn request_breakglass(
        &self,
        actor: &Actor,
        user: &rampart_core::Name,
        asset: &rampart_core::Name,
        reason: &str,
        duration: std::time::Duration,
    ) -> Result<BreakglassRequest> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 1000 {
            return Err(StoreError::invalid(
                "a break-glass request needs a reason (at most 1000 characters)",
            ));
        }
        let seconds = duration.as_secs();
        if !(60..=MAX_BREAKGLASS_SECONDS).contains(&seconds) {
            return Err(StoreError::invalid(
                "break-glass access lasts from 1 minute to 24 hours",
            ));
        }
        let mut tx = self.begin_write().await?;
        rows::id_of(&mut tx, rows::Named::User, user).await?;
        rows::id_of(&mut tx, rows::Named::Asset, asset).await?;
        let id = new_id().to_string();
        sqlx::query(
            "INSERT INTO breakglass_requests (id, user_name, asset_name, reason, requested_by, \
             state, duration_seconds, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(&id)
        .bind(user.as_str())
        .bind(asset.as_str())
        .bind(reason)
        .bind(actor.to_string())
        .bind(i64::try_from(seconds).unwrap_or(i64::MAX))
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        let duration_text = rampart_core::time_arg::format_duration(duration);
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::BreakglassRequested {
                request: id.clone(),
                user: user.to_string(),
                asset: asset.to_string(),
                reason: reason.to_owned(),
                duration: duration_text.clone(),
            },
        )
        .await?;
        audit_log::append(
            &mut tx,
            actor,
            &breakglass_alert(
                format!(
                    "break-glass access to {asset} for {user} requested ({duration_text}): \
                     {reason}; it needs two administrators' approval"
                ),
                user.as_str(),
                asset.as_str(),
            ),
        )
        .await?;
        let request = load_request(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::not_found("break-glass request", &id))?;
        tx.commit().await?;
        Ok(request)
    }

    /// The break-glass request `id`.
    pub async fn breakglass_request(&self, id: &str) -> Result<BreakglassRequest> {
        let mut conn = self.pool.acquire().await?;
        load_request(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::not_found("break-glass request", id))
    }

    /// Every break-glass request, newest first.
    pub async fn breakglass_requests(&self) -> Result<Vec<BreakglassRequest>> {
        let mut conn = self.pool.acquire().await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM breakglass_requests ORDER BY created_at DESC, id")
                .fetch_all(&mut *conn)
                .await?;
        let mut requests = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(request) = load_request(&mut conn, &id).await? {
                requests.push(request);
            }
        }
        Ok(requests)
    }

    /// `admin` approves request `id`. The admin must be an enabled administrator, not the
    /// request's user, and may approve once; the second approval makes the grant (valid until
    /// now + the request's duration), activates the request and raises an alert.
    pub async fn approve_breakglass(
        &self,
        actor: &Actor,
        id: &str,
        admin: &rampart_core::Name,
    ) -> Result<BreakglassRequest> {
        let mut tx = self.begin_write().await?;
        let request = load_request(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::not_found("break-glass request", id))?;
        if request.state != "pending" {
            return Err(StoreError::invalid(format!(
                "break-glass request {id} is {}, not pending",
                request.state
            )));
        }
        let approver: Option<(String, i64)> = sqlx::query_as(
            "SELECT role, CASE WHEN disabled THEN 1 ELSE 0 END FROM users WHERE name = $1",
        )
        .bind(admin.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        match approver {
            Some((role, 0)) if role == "admin" => {}
            _ => {
                return Err(StoreError::invalid(format!(
                    "{admin} is not an enabled administrator: only administrators approve \
                     break-glass access"
                )));
            }
        }
        if admin.as_str() == request.user {
            return Err(StoreError::invalid(
                "the user who gets break-glass access cannot approve it",
            ));
        }
        if request.approvals.iter().any(|a| a == admin.as_str()) {
            return Err(StoreError::invalid(format!(
                "{admin} already approved break-glass request {id}: a second administrator must"
            )));
        }
        sqlx::query(
            "INSERT INTO breakglass_approvals (request_id, admin, approved_at) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(admin.as_str())
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        let approvals = request.approvals.len() + 1;
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::BreakglassApproved {
                request: id.to_owned(),
                admin: admin.to_string(),
                approvals: u32::try_from(approvals).unwrap_or(u32::MAX),
            },
        )
        .await?;
        tx.commit().await?;
        if approvals < BREAKGLASS_APPROVALS {
            return self.breakglass_request(id).await;
        }
        self.activate_breakglass(actor, &request).await
    }

    async fn activate_breakglass(
        &self,
        actor: &Actor,
        request: &BreakglassRequest,
    ) -> Result<BreakglassRequest> {
        let user = rampart_core::Name::parse("user", &request.user)
            .map_err(|_| StoreError::Corrupt("breakglass_requests.user_name".into()))?;
        let asset = rampart_core::Name::parse("asset", &request.asset)
            .map_err(|_| StoreError::Corrupt("breakglass_requests.asset_name".into()))?;
        let until =
            now() + time::Duration::seconds(i64::try_from(request.duration_seconds).unwrap_or(0));
        let grant = self
            .add_grant(
                actor,
                &crate::NewGrant {
                    subject: rampart_core::GrantSubject::User(user),
                    target: rampart_core::GrantTarget::Asset(asset),
                    accounts: Vec::new(),
                    actions: rampart_core::ActionSet::default_for_grant(),
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
        let mut tx = self.begin_write().await?;
        let activated = sqlx::query(
            "UPDATE breakglass_requests SET state = 'active', grant_id = $1, ends_at = $2 \
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(grant.id.to_string())
        .bind(time_text(until))
        .bind(&request.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if activated == 0 {
            drop(tx);
            let _ = self.remove_grant(actor, grant.id).await;
            return Err(StoreError::invalid(format!(
                "break-glass request {} is no longer pending",
                request.id
            )));
        }
        let until_text = rampart_core::time_arg::format_rfc3339(until);
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::BreakglassActivated {
                request: request.id.clone(),
                user: request.user.clone(),
                asset: request.asset.clone(),
                grant: grant.id.to_string(),
                until: until_text.clone(),
            },
        )
        .await?;
        audit_log::append(
            &mut tx,
            actor,
            &breakglass_alert(
                format!(
                    "break-glass access to {} for {} is open until {until_text} (request {}): {}",
                    request.asset, request.user, request.id, request.reason
                ),
                &request.user,
                &request.asset,
            ),
        )
        .await?;
        let loaded = load_request(&mut tx, &request.id)
            .await?
            .ok_or_else(|| StoreError::not_found("break-glass request", &request.id))?;
        tx.commit().await?;
        Ok(loaded)
    }
}
