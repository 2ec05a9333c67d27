//! Rotation policies beyond one account (issue 17, migration 31): schedules per asset label,
//! generated-password policies per asset, and the sessions whose end rotates their account
//! (break-glass sessions, and sessions of accounts set to rotate after every session).
//!
//! INVARIANT: each ended session is handled once (`session_end_rotations`, keyed by session),
//! and an account set to rotate after sessions is rotated for the sessions that started after
//! that was set, never for older ones.

use crate::rows::{self, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::password_policy::PasswordPolicy;
use rampart_core::{AccountRef, Label, Name};
use serde::Serialize;
use sqlx::Row;

/// A rotation schedule for the accounts of the assets with a label.
#[derive(Debug, Clone, Serialize)]
pub struct LabelSchedule {
    pub label: String,
    pub every_seconds: u64,
    /// How many accounts it covers now (the assets with the label; an account's own schedule
    /// still wins for that account).
    pub accounts: u64,
}

/// An ended session whose account is to be rotated.
#[derive(Debug, Clone)]
pub struct SessionToRotate {
    pub session: String,
    pub account: AccountRef,
    /// A break-glass session (else: the account rotates after every session).
    pub breakglass: bool,
}

impl Store {
    /// Sets (or with `None` removes) the rotation schedule of the accounts of the assets
    /// labelled `label`, with its audit event.
    pub async fn set_label_rotation_schedule(
        &self,
        actor: &Actor,
        label: &Label,
        every_seconds: Option<u64>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let label_text = label.to_string();
        let policy = match every_seconds {
            Some(every) => {
                if every < 60 {
                    return Err(StoreError::invalid(
                        "the rotation interval must be at least one minute",
                    ));
                }
                sqlx::query(
                    "INSERT INTO label_rotation_schedules (label, every_seconds, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (label) DO UPDATE SET \
                     every_seconds = excluded.every_seconds",
                )
                .bind(&label_text)
                .bind(i64::try_from(every).unwrap_or(i64::MAX))
                .bind(time_text(now()))
                .execute(&mut *tx)
                .await?;
                format!("rotate every {every}s")
            }
            None => {
                let removed = sqlx::query("DELETE FROM label_rotation_schedules WHERE label = $1")
                    .bind(&label_text)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if removed == 0 {
                    return Err(StoreError::not_found(
                        "rotation schedule for label",
                        &label_text,
                    ));
                }
                "removed".to_owned()
            }
        };
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::RotationPolicyChanged {
                scope: format!("label {label_text}"),
                policy,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every label schedule, by label.
    pub async fn label_rotation_schedules(&self) -> Result<Vec<LabelSchedule>> {
        let rows = sqlx::query(
            "SELECT l.label, l.every_seconds, (SELECT COUNT(*) FROM accounts c \
               JOIN asset_labels al ON al.asset_id = c.asset_id \
               WHERE al.key || '=' || al.value = l.label) AS accounts \
             FROM label_rotation_schedules l ORDER BY l.label",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let every: i64 = row.try_get("every_seconds")?;
                let accounts: i64 = row.try_get("accounts")?;
                Ok(LabelSchedule {
                    label: rows::text(row, "label")?,
                    every_seconds: u64::try_from(every).unwrap_or(0),
                    accounts: u64::try_from(accounts).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Sets (or with `None` removes) the generated-password policy of `asset`'s accounts.
    pub async fn set_asset_password_policy(
        &self,
        actor: &Actor,
        asset: &Name,
        policy: Option<&PasswordPolicy>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let asset_id: String = sqlx::query_scalar("SELECT id FROM assets WHERE name = $1")
            .bind(asset.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("asset", asset))?;
        let summary = match policy {
            Some(policy) => {
                sqlx::query(
                    "INSERT INTO asset_password_policies (asset_id, length, classes, excluded) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (asset_id) DO UPDATE SET \
                     length = excluded.length, classes = excluded.classes, \
                     excluded = excluded.excluded",
                )
                .bind(&asset_id)
                .bind(policy.length.map(i64::from))
                .bind(policy.classes_text())
                .bind(&policy.excluded)
                .execute(&mut *tx)
                .await?;
                policy.summary()
            }
            None => {
                sqlx::query("DELETE FROM asset_password_policies WHERE asset_id = $1")
                    .bind(&asset_id)
                    .execute(&mut *tx)
                    .await?;
                "removed".to_owned()
            }
        };
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::RotationPolicyChanged {
                scope: format!("asset {asset}"),
                policy: summary,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The generated-password policy of `asset`'s accounts (the default when none is set).
    pub async fn asset_password_policy(&self, asset: &Name) -> Result<PasswordPolicy> {
        let row = sqlx::query(
            "SELECT p.length, p.classes, p.excluded FROM asset_password_policies p \
             JOIN assets a ON a.id = p.asset_id WHERE a.name = $1",
        )
        .bind(asset.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(PasswordPolicy::default());
        };
        let length: Option<i64> = row.try_get("length")?;
        PasswordPolicy::parse(
            length.and_then(|l| u32::try_from(l).ok()),
            &rows::text(&row, "classes")?,
            &rows::text(&row, "excluded")?,
        )
        .map_err(|_| StoreError::Corrupt("asset_password_policies".into()))
    }

    /// Ended sessions whose account is to be rotated and that were not handled yet, oldest
    /// first: break-glass sessions, and sessions started since their account was set to rotate
    /// after every session.
    pub async fn sessions_to_rotate(&self) -> Result<Vec<SessionToRotate>> {
        let rows = sqlx::query(
            "SELECT s.id, s.account_login, s.asset_name, s.breakglass, s.started_at, \
               (SELECT st.rotate_after_sessions_since FROM account_rotation_settings st \
                JOIN accounts c ON c.id = st.account_id JOIN assets a ON a.id = c.asset_id \
                WHERE a.name = s.asset_name AND c.login = s.account_login) AS since \
             FROM sessions s \
             WHERE s.ended_at IS NOT NULL AND NOT EXISTS \
               (SELECT 1 FROM session_end_rotations r WHERE r.session_id = s.id) \
             AND (s.breakglass IS NOT NULL OR EXISTS (SELECT 1 FROM account_rotation_settings st \
                JOIN accounts c ON c.id = st.account_id JOIN assets a ON a.id = c.asset_id \
                WHERE a.name = s.asset_name AND c.login = s.account_login \
                AND st.rotate_after_sessions_since IS NOT NULL)) \
             ORDER BY s.ended_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for row in &rows {
            let breakglass: Option<String> = row.try_get("breakglass")?;
            let breakglass = breakglass.is_some();
            if !breakglass {
                // Only sessions that started after the account was set to rotate after them.
                let Some(since) = rows::optional_time(row, "since")? else {
                    continue;
                };
                if rows::time(row, "started_at")? < since {
                    continue;
                }
            }
            let account = AccountRef::parse(&format!(
                "{}@{}",
                rows::text(row, "account_login")?,
                rows::text(row, "asset_name")?
            ))
            .map_err(|_| StoreError::Corrupt("sessions.account_login".into()))?;
            due.push(SessionToRotate {
                session: rows::text(row, "id")?,
                account,
                breakglass,
            });
        }
        Ok(due)
    }

    /// Records that an ended session's account was rotated (or why not), with its event
    /// (`breakglass_account_rotated` or `session_account_rotated`).
    pub async fn record_session_end_rotation(
        &self,
        actor: &Actor,
        session: &SessionToRotate,
        state: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO session_end_rotations (session_id, account, state, at, why) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(&session.session)
        .bind(session.account.to_string())
        .bind(state)
        .bind(time_text(now()))
        .bind(if session.breakglass {
            "breakglass"
        } else {
            "after_session"
        })
        .execute(&mut *tx)
        .await?;
        let event = if session.breakglass {
            AuditEvent::BreakglassAccountRotated {
                session: session.session.clone(),
                account: session.account.to_string(),
                state: state.to_owned(),
            }
        } else {
            AuditEvent::SessionAccountRotated {
                session: session.session.clone(),
                account: session.account.to_string(),
                state: state.to_owned(),
            }
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}
