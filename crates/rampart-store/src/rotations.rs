//! Credential rotation's persistent half (issue 17): each account's rotation settings, and every
//! rotation's state machine with its sealed pending secret.
//!
//! States: `pending` (the new secret is sealed here; nothing changed on the target yet) ->
//! `applied` (the target was told to change it) -> `committed` (a fresh login with the new
//! secret worked; it replaced the account's secret in the same transaction) or `failed` (the old
//! secret is kept and works; the pending one is discarded) or `unknown` (neither logged in; both
//! are kept, and an alert was raised). Every transition is one write transaction with its audit
//! event (`account_rotation_changed`), which never holds a secret.
//!
//! INVARIANT: the account's own secret changes only at commit, so sessions use the old secret
//! until then, and at every moment the vault holds every secret the target may accept.

use crate::accounts::SealedSecret;
use crate::accounts::{active_key_id, check_secret};
use crate::rows::{self, new_id, now, time_text};
use crate::vault::{KeyId, Vault};
use crate::{NewAccountSecret, Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{AccountRef, ExposeSecret, Name, SecretKind, SecretString};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

/// Where a rotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    Pending,
    Applied,
    Committed,
    Failed,
    Unknown,
}

impl RotationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationState::Pending => "pending",
            RotationState::Applied => "applied",
            RotationState::Committed => "committed",
            RotationState::Failed => "failed",
            RotationState::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "pending" => RotationState::Pending,
            "applied" => RotationState::Applied,
            "committed" => RotationState::Committed,
            "failed" => RotationState::Failed,
            "unknown" => RotationState::Unknown,
            _ => return Err(StoreError::Corrupt("account_rotations.state".into())),
        })
    }
}

/// How loud an event is: `Alert` needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Alert,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Alert => "alert",
        }
    }
}

/// One rotation as history shows it (no secret).
#[derive(Debug, Clone, Serialize)]
pub struct RotationRecord {
    pub id: String,
    pub account: String,
    pub state: RotationState,
    pub secret_kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub reason: Option<String>,
    /// Who started it (`system`, `user:NAME`, `cli:OS_USER`); none before migration 31.
    pub started_by: Option<String>,
}

/// A rotation that is not finished: what the rotation engine needs to drive or resume it.
#[derive(Debug, Clone)]
pub struct InFlightRotation {
    pub id: String,
    pub account: AccountRef,
    pub state: RotationState,
    pub secret_kind: SecretKind,
    /// The process driving it when it was last claimed.
    pub owner_pid: u32,
}

/// An account's rotation settings.
#[derive(Debug, Clone, Serialize)]
pub struct RotationSettings {
    pub account: String,
    /// Rotate every this many seconds (none: only on demand).
    pub every_seconds: Option<u64>,
    /// The privileged login on the same asset that changes the password (none: the account
    /// itself).
    pub via_login: Option<String>,
    pub password_length: u32,
    /// `ok`, or `unknown`: the last rotation could not tell which secret works.
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_rotated_at: Option<OffsetDateTime>,
    /// Rotated once each session that used it ended (sessions started since this time).
    #[serde(with = "time::serde::rfc3339::option")]
    pub rotate_after_sessions_since: Option<OffsetDateTime>,
}

/// A change to an account's rotation settings; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct RotationSettingsChange {
    pub every_seconds: Option<Option<u64>>,
    pub via_login: Option<Option<Name>>,
    pub password_length: Option<u32>,
    /// Rotate after every session that used the account (from now on), or not.
    pub rotate_after_sessions: Option<bool>,
}

/// Generated passwords are at least this long, and at most this long.
pub const MIN_PASSWORD_LENGTH: u32 = 12;
pub const MAX_PASSWORD_LENGTH: u32 = 128;

fn pending_aad(account_id: &str, rotation_id: &str, kind: &str) -> Vec<u8> {
    format!("rampart/v1/accounts/{account_id}/rotations/{rotation_id}/secret/{kind}").into_bytes()
}

fn account_aad(account_id: &str, kind: &str) -> Vec<u8> {
    format!("rampart/v1/accounts/{account_id}/secret/{kind}").into_bytes()
}

async fn account_id(conn: &mut AnyConnection, account: &AccountRef) -> Result<String> {
    sqlx::query_scalar(
        "SELECT c.id FROM accounts c JOIN assets a ON a.id = c.asset_id \
         WHERE a.name = $1 AND c.login = $2",
    )
    .bind(account.asset.as_str())
    .bind(account.login.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found("account", account))
}

fn parse_kind(text: &str) -> Result<SecretKind> {
    crate::accounts::secret_kind(text)
}

fn parse_account(text: &str) -> Result<AccountRef> {
    AccountRef::parse(text).map_err(|_| StoreError::Corrupt("account_rotations.account".into()))
}

fn in_flight_from(row: &sqlx::any::AnyRow) -> Result<InFlightRotation> {
    let pid: i64 = row.try_get("owner_pid")?;
    Ok(InFlightRotation {
        id: rows::text(row, "id")?,
        account: parse_account(&rows::text(row, "account")?)?,
        state: RotationState::parse(&rows::text(row, "state")?)?,
        secret_kind: parse_kind(&rows::text(row, "secret_kind")?)?,
        owner_pid: u32::try_from(pid).unwrap_or(0),
    })
}

async fn append_event(
    conn: &mut AnyConnection,
    actor: &Actor,
    account: &str,
    rotation: &str,
    state: &str,
    severity: Severity,
    reason: &str,
) -> Result<()> {
    let event = AuditEvent::AccountRotationChanged {
        account: account.to_owned(),
        rotation: rotation.to_owned(),
        state: state.to_owned(),
        severity: severity.as_str().to_owned(),
        reason: reason.to_owned(),
    };
    audit_log::append(conn, actor, &event).await
}

impl Store {
    /// Starts a rotation: seals `secret` as the account's pending secret, before anything
    /// changes on the target. Refused while another rotation of the account is in flight.
    pub async fn begin_rotation(
        &self,
        actor: &Actor,
        account: &AccountRef,
        secret: &NewAccountSecret,
    ) -> Result<InFlightRotation> {
        check_secret(secret)?;
        let mut tx = self.begin_write().await?;
        let account_id = account_id(&mut tx, account).await?;
        let busy: Option<String> = sqlx::query_scalar(
            "SELECT state FROM account_rotations WHERE account_id = $1 \
             AND state IN ('pending', 'applied', 'unknown')",
        )
        .bind(&account_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(state) = busy {
            return Err(StoreError::invalid(format!(
                "a rotation of {account} is already in flight ({state}); it is resumed, not \
                 started again"
            )));
        }
        let id = new_id().to_string();
        let key_id = active_key_id(&mut tx).await?;
        let sealed = self.vault.seal(
            key_id,
            &pending_aad(&account_id, &id, secret.kind.as_str()),
            secret.value.expose_secret().as_bytes(),
        )?;
        let at = time_text(now());
        sqlx::query(
            "INSERT INTO account_rotations (id, account_id, account, state, secret_kind, \
             pending_secret, owner_pid, started_at, updated_at, started_by) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $7, $8)",
        )
        .bind(&id)
        .bind(&account_id)
        .bind(account.to_string())
        .bind(secret.kind.as_str())
        .bind(sealed)
        .bind(i64::from(std::process::id()))
        .bind(&at)
        .bind(actor.to_string())
        .execute(&mut *tx)
        .await?;
        append_event(
            &mut tx,
            actor,
            &account.to_string(),
            &id,
            "pending",
            Severity::Info,
            "a new secret was generated and sealed in the vault",
        )
        .await?;
        tx.commit().await?;
        Ok(InFlightRotation {
            id,
            account: account.clone(),
            state: RotationState::Pending,
            secret_kind: secret.kind,
            owner_pid: std::process::id(),
        })
    }

    /// The account's rotation in flight, if any.
    pub async fn rotation_in_flight(
        &self,
        account: &AccountRef,
    ) -> Result<Option<InFlightRotation>> {
        let row = sqlx::query(
            "SELECT id, account, state, secret_kind, owner_pid FROM account_rotations \
             WHERE account = $1 AND state IN ('pending', 'applied', 'unknown')",
        )
        .bind(account.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(in_flight_from).transpose()
    }

    /// Every rotation in flight (to resume them at start).
    pub async fn rotations_in_flight(&self) -> Result<Vec<InFlightRotation>> {
        let rows = sqlx::query(
            "SELECT id, account, state, secret_kind, owner_pid FROM account_rotations \
             WHERE state IN ('pending', 'applied', 'unknown') ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(in_flight_from).collect()
    }

    /// Takes over a rotation from `from_pid` (a process that is gone): true if this process now
    /// owns it; false if someone else claimed it first.
    pub async fn claim_rotation(&self, actor: &Actor, rotation: &InFlightRotation) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE account_rotations SET owner_pid = $1, updated_at = $2 \
             WHERE id = $3 AND owner_pid = $4 AND state IN ('pending', 'applied', 'unknown')",
        )
        .bind(i64::from(std::process::id()))
        .bind(time_text(now()))
        .bind(&rotation.id)
        .bind(i64::from(rotation.owner_pid))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        append_event(
            &mut tx,
            actor,
            &rotation.account.to_string(),
            &rotation.id,
            "resumed",
            Severity::Info,
            &format!(
                "resuming a rotation left {} by process {}",
                rotation.state.as_str(),
                rotation.owner_pid
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The rotation's pending secret, for the engine about to apply or try it.
    pub async fn reveal_pending_secret(&self, rotation: &str) -> Result<SecretString> {
        let row = sqlx::query(
            "SELECT account_id, secret_kind, pending_secret FROM account_rotations WHERE id = $1",
        )
        .bind(rotation)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("rotation", rotation))?;
        let sealed: Option<Vec<u8>> = row.try_get("pending_secret")?;
        let sealed = sealed.ok_or_else(|| {
            StoreError::invalid(format!("rotation {rotation} holds no pending secret"))
        })?;
        let mut plain = self.vault.open(
            &pending_aad(
                &rows::text(&row, "account_id")?,
                rotation,
                &rows::text(&row, "secret_kind")?,
            ),
            &sealed,
        )?;
        let text = String::from_utf8(std::mem::take(&mut *plain))
            .map_err(|_| StoreError::Corrupt("account_rotations.pending_secret".into()))?;
        Ok(SecretString::from(text))
    }

    /// Moves a rotation in flight to `applied`, `failed` or `unknown`, with its audit event.
    /// `failed` discards the pending secret (the old one works); `unknown` keeps both and
    /// marks the account.
    pub async fn set_rotation_state(
        &self,
        actor: &Actor,
        rotation: &InFlightRotation,
        state: RotationState,
        severity: Severity,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let discard = state == RotationState::Failed;
        let changed = sqlx::query(
            "UPDATE account_rotations SET state = $1, updated_at = $2, reason = $3, \
             pending_secret = CASE WHEN $4 THEN NULL ELSE pending_secret END \
             WHERE id = $5 AND state IN ('pending', 'applied', 'unknown')",
        )
        .bind(state.as_str())
        .bind(time_text(now()))
        .bind(reason)
        .bind(discard)
        .bind(&rotation.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::invalid(format!(
                "rotation {} is no longer in flight",
                rotation.id
            )));
        }
        let status = match state {
            RotationState::Unknown => Some("unknown"),
            RotationState::Failed => Some("ok"),
            _ => None,
        };
        if let Some(status) = status {
            set_status(&mut tx, &rotation.id, status, None).await?;
        }
        append_event(
            &mut tx,
            actor,
            &rotation.account.to_string(),
            &rotation.id,
            state.as_str(),
            severity,
            reason,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits a rotation: its pending secret becomes the account's secret, in one transaction
    /// with the event. Only after a fresh login with it worked.
    pub async fn commit_rotation(
        &self,
        actor: &Actor,
        rotation: &InFlightRotation,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT account_id, secret_kind, pending_secret FROM account_rotations \
             WHERE id = $1 AND state IN ('pending', 'applied', 'unknown')",
        )
        .bind(&rotation.id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::invalid(format!("rotation {} is no longer in flight", rotation.id))
        })?;
        let account_id = rows::text(&row, "account_id")?;
        let kind = rows::text(&row, "secret_kind")?;
        let sealed: Option<Vec<u8>> = row.try_get("pending_secret")?;
        let sealed = sealed.ok_or_else(|| StoreError::Corrupt("account_rotations".into()))?;
        let plain = self
            .vault
            .open(&pending_aad(&account_id, &rotation.id, &kind), &sealed)?;
        let key_id = active_key_id(&mut tx).await?;
        let resealed = self
            .vault
            .seal(key_id, &account_aad(&account_id, &kind), &plain)?;
        drop(plain);
        let updated =
            sqlx::query("UPDATE accounts SET secret_kind = $1, secret = $2 WHERE id = $3")
                .bind(&kind)
                .bind(resealed)
                .bind(&account_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(StoreError::not_found("account", &rotation.account));
        }
        let at = time_text(now());
        sqlx::query(
            "UPDATE account_rotations SET state = 'committed', pending_secret = NULL, \
             updated_at = $1, reason = $2 WHERE id = $3",
        )
        .bind(&at)
        .bind(reason)
        .bind(&rotation.id)
        .execute(&mut *tx)
        .await?;
        set_status(&mut tx, &rotation.id, "ok", Some(&at)).await?;
        append_event(
            &mut tx,
            actor,
            &rotation.account.to_string(),
            &rotation.id,
            "committed",
            Severity::Info,
            reason,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's rotations, newest first.
    pub async fn rotation_history(&self, account: &AccountRef) -> Result<Vec<RotationRecord>> {
        let mut conn = self.pool.acquire().await?;
        account_id(&mut conn, account).await?;
        let rows = sqlx::query(
            "SELECT id, account, state, secret_kind, started_at, updated_at, reason, started_by \
             FROM account_rotations WHERE account = $1 ORDER BY started_at DESC, id DESC",
        )
        .bind(account.to_string())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RotationRecord {
                    id: rows::text(row, "id")?,
                    account: rows::text(row, "account")?,
                    state: RotationState::parse(&rows::text(row, "state")?)?,
                    secret_kind: rows::text(row, "secret_kind")?,
                    started_at: rows::time(row, "started_at")?,
                    updated_at: rows::time(row, "updated_at")?,
                    reason: row.try_get("reason")?,
                    started_by: row.try_get("started_by")?,
                })
            })
            .collect()
    }

    /// The account's rotation settings (defaults when never set).
    pub async fn rotation_settings(&self, account: &AccountRef) -> Result<RotationSettings> {
        let mut conn = self.pool.acquire().await?;
        let id = account_id(&mut conn, account).await?;
        load_settings(&mut conn, &id, account).await
    }

    /// Changes an account's rotation settings, with its audit event.
    pub async fn set_rotation_settings(
        &self,
        actor: &Actor,
        account: &AccountRef,
        change: &RotationSettingsChange,
    ) -> Result<RotationSettings> {
        if let Some(length) = change.password_length
            && !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length)
        {
            return Err(StoreError::invalid(format!(
                "the password length must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH}"
            )));
        }
        if let Some(Some(every)) = change.every_seconds
            && every < 60
        {
            return Err(StoreError::invalid(
                "the rotation interval must be at least one minute",
            ));
        }
        let mut tx = self.begin_write().await?;
        let id = account_id(&mut tx, account).await?;
        if let Some(Some(via)) = &change.via_login {
            let via_ref = AccountRef {
                login: via.clone(),
                asset: account.asset.clone(),
            };
            account_id(&mut tx, &via_ref).await?;
            if via == &account.login {
                return Err(StoreError::invalid(
                    "the rotation account must be another account of the asset",
                ));
            }
        }
        sqlx::query(
            "INSERT INTO account_rotation_settings (account_id) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if let Some(every) = change.every_seconds {
            sqlx::query(
                "UPDATE account_rotation_settings SET every_seconds = $1 WHERE account_id = $2",
            )
            .bind(every.map(|e| i64::try_from(e).unwrap_or(i64::MAX)))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(via) = &change.via_login {
            sqlx::query(
                "UPDATE account_rotation_settings SET via_login = $1 WHERE account_id = $2",
            )
            .bind(via.as_ref().map(Name::as_str))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(length) = change.password_length {
            sqlx::query(
                "UPDATE account_rotation_settings SET password_length = $1 WHERE account_id = $2",
            )
            .bind(i64::from(length))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(after) = change.rotate_after_sessions {
            sqlx::query(
                "UPDATE account_rotation_settings SET rotate_after_sessions_since = \
                 CASE WHEN $1 THEN COALESCE(rotate_after_sessions_since, $2) ELSE NULL END \
                 WHERE account_id = $3",
            )
            .bind(after)
            .bind(time_text(now()))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        let settings = load_settings(&mut tx, &id, account).await?;
        append_event(
            &mut tx,
            actor,
            &account.to_string(),
            "",
            "settings",
            Severity::Info,
            &format!(
                "every: {}, via: {}, password length: {}, after every session: {}",
                settings
                    .every_seconds
                    .map_or_else(|| "never".to_owned(), |s| format!("{s}s")),
                settings
                    .via_login
                    .as_deref()
                    .unwrap_or("the account itself"),
                settings.password_length,
                if settings.rotate_after_sessions_since.is_some() {
                    "yes"
                } else {
                    "no"
                }
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(settings)
    }

    /// Accounts whose schedule says they are due at `at` and that have no rotation in flight.
    /// An account's own interval wins; else the shortest of its asset's labels' schedules.
    /// Due: the interval has passed since the last commit (or the account's creation). A
    /// rotation that did not commit since is tried again after an hour (or the interval, if
    /// shorter), not on every tick.
    pub async fn rotations_due(&self, at: OffsetDateTime) -> Result<Vec<AccountRef>> {
        let rows = sqlx::query(
            "SELECT c.login, a.name AS asset, c.created_at, s.every_seconds, s.last_rotated_at, \
               (SELECT MIN(l.every_seconds) FROM label_rotation_schedules l \
                JOIN asset_labels al ON al.key || '=' || al.value = l.label \
                WHERE al.asset_id = a.id) AS label_every, \
               (SELECT MAX(r.started_at) FROM account_rotations r WHERE r.account_id = c.id) \
                AS last_started \
             FROM accounts c JOIN assets a ON a.id = c.asset_id \
             LEFT JOIN account_rotation_settings s ON s.account_id = c.id \
             WHERE NOT EXISTS (SELECT 1 FROM account_rotations r \
               WHERE r.account_id = c.id AND r.state IN ('pending', 'applied', 'unknown')) \
             ORDER BY a.name, c.login",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for row in &rows {
            let own: Option<i64> = row.try_get("every_seconds")?;
            let label: Option<i64> = row.try_get("label_every")?;
            let Some(every) = own.or(label) else {
                continue;
            };
            let since = match rows::optional_time(row, "last_rotated_at")? {
                Some(at) => at,
                None => rows::time(row, "created_at")?,
            };
            if since + time::Duration::seconds(every) > at {
                continue;
            }
            if let Some(tried) = rows::optional_time(row, "last_started")?
                && tried > since
                && tried + time::Duration::seconds(every.min(3600)) > at
            {
                continue;
            }
            due.push(AccountRef {
                login: rows::name(row, "login")?,
                asset: rows::name(row, "asset")?,
            });
        }
        Ok(due)
    }
}

async fn load_settings(
    conn: &mut AnyConnection,
    account_id: &str,
    account: &AccountRef,
) -> Result<RotationSettings> {
    let row = sqlx::query(
        "SELECT every_seconds, via_login, password_length, status, last_rotated_at, \
         rotate_after_sessions_since FROM account_rotation_settings WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(RotationSettings {
            account: account.to_string(),
            every_seconds: None,
            via_login: None,
            password_length: 24,
            status: "ok".into(),
            last_rotated_at: None,
            rotate_after_sessions_since: None,
        });
    };
    let every: Option<i64> = row.try_get("every_seconds")?;
    let length: i64 = row.try_get("password_length")?;
    Ok(RotationSettings {
        account: account.to_string(),
        every_seconds: every.and_then(|e| u64::try_from(e).ok()),
        via_login: row.try_get("via_login")?,
        password_length: u32::try_from(length).unwrap_or(24),
        status: rows::text(&row, "status")?,
        last_rotated_at: rows::optional_time(&row, "last_rotated_at")?,
        rotate_after_sessions_since: rows::optional_time(&row, "rotate_after_sessions_since")?,
    })
}

/// Sets the status (and, on commit, the last rotation time) of the rotation's account.
async fn set_status(
    conn: &mut AnyConnection,
    rotation: &str,
    status: &str,
    rotated_at: Option<&str>,
) -> Result<()> {
    let account_id: String =
        sqlx::query_scalar("SELECT account_id FROM account_rotations WHERE id = $1")
            .bind(rotation)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(
        "INSERT INTO account_rotation_settings (account_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(&account_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE account_rotation_settings SET status = $1, \
         last_rotated_at = COALESCE($2, last_rotated_at) WHERE account_id = $3",
    )
    .bind(status)
    .bind(rotated_at)
    .bind(&account_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Pending secrets, for `vault status`.
pub(crate) async fn sealed_pending_secrets(conn: &mut AnyConnection) -> Result<Vec<SealedSecret>> {
    let rows = sqlx::query(
        "SELECT id, account_id, account, secret_kind, pending_secret FROM account_rotations \
         WHERE pending_secret IS NOT NULL ORDER BY started_at",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id = rows::text(row, "id")?;
            Ok(SealedSecret {
                label: format!("{} (rotation {id}, pending)", rows::text(row, "account")?),
                aad: pending_aad(
                    &rows::text(row, "account_id")?,
                    &id,
                    &rows::text(row, "secret_kind")?,
                ),
                sealed: row.try_get("pending_secret")?,
            })
        })
        .collect()
}

/// Re-seals every pending secret under `new_key_id`, inside the vault key rotation's
/// transaction.
pub(crate) async fn reseal_pending_secrets(
    conn: &mut AnyConnection,
    vault: &Vault,
    new_key_id: KeyId,
) -> Result<u64> {
    let secrets = sealed_pending_secrets(conn).await?;
    let ids = sqlx::query_scalar::<_, String>(
        "SELECT id FROM account_rotations WHERE pending_secret IS NOT NULL ORDER BY started_at",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (secret, id) in secrets.iter().zip(&ids) {
        let plain = vault.open(&secret.aad, &secret.sealed)?;
        let resealed = vault.seal(new_key_id, &secret.aad, &plain)?;
        sqlx::query("UPDATE account_rotations SET pending_secret = $1 WHERE id = $2")
            .bind(resealed)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(u64::try_from(secrets.len()).unwrap_or(u64::MAX))
}
