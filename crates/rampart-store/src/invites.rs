//! One-time enrolment links ("invites"): an administrator invites an existing user; the user
//! opens the link and sets their own password and TOTP second factor, which no administrator
//! sees. INVARIANT: only the SHA-256 of a token is stored; a token is used once, before expiry.

use crate::rows::{now, time_text};
use crate::web_auth::{plus, random_secret, secret_hash};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, SecretString};
use sqlx::Row;
use std::time::Duration;
use time::OffsetDateTime;

/// What every invite token starts with.
pub const INVITE_TOKEN_PREFIX: &str = "rampartinv_";
/// The longest an invite may wait.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

impl Store {
    /// Makes a one-time enrolment link's token for `user`, valid for `ttl`; returns its expiry
    /// and the token (shown once).
    pub async fn create_invite(
        &self,
        actor: &Actor,
        user: &Name,
        ttl: Duration,
    ) -> Result<(OffsetDateTime, SecretString)> {
        if ttl.is_zero() || ttl > MAX_INVITE_TTL {
            return Err(StoreError::invalid(
                "an invite lives between 1 second and 30 days",
            ));
        }
        let at = now();
        let expires_at = plus(at, ttl);
        let token = format!("{INVITE_TOKEN_PREFIX}{}", random_secret()?);
        let mut tx = self.begin_write().await?;
        let owner = crate::users::load_user(&mut tx, user).await?;
        if owner.source == rampart_core::UserSource::Ldap {
            return Err(StoreError::invalid(format!(
                "user {user} comes from the LDAP directory: they log in to the portal with their \
                 directory password and enrol their second factor on the Account page"
            )));
        }
        sqlx::query(
            "INSERT INTO user_invites (token_hash, user_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret_hash(&token))
        .bind(owner.id.to_string())
        .bind(actor.to_string())
        .bind(time_text(at))
        .bind(time_text(expires_at))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::InviteCreated {
            user: user.to_string(),
            expires_at: rampart_core::time_arg::format_rfc3339(expires_at),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok((expires_at, SecretString::from(token)))
    }

    /// The user a usable (unused, unexpired) invite token is for; `NotFound` otherwise.
    pub async fn invite_user(&self, token: &str) -> Result<Name> {
        let row = sqlx::query(
            "SELECT u.name FROM user_invites i JOIN users u ON u.id = i.user_id \
             WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2",
        )
        .bind(secret_hash(token))
        .bind(time_text(now()))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::not_found("invite", "(wrong, expired or used)"));
        };
        Name::parse("user", &row.try_get::<String, _>("name")?)
            .map_err(|_| StoreError::Corrupt("users.name".into()))
    }

    /// Uses an invite: marks it used (once, whoever comes second gets `NotFound`) and records
    /// `invite_used`; then sets the user's password and TOTP secret (confirmed at `step`), each
    /// with its own event, as the user themselves.
    pub async fn use_invite(
        &self,
        token: &str,
        password: &SecretString,
        totp_secret: &[u8],
        step: u64,
    ) -> Result<Name> {
        // Checked before the invite is spent: a bad password leaves it usable.
        crate::passwords::check_new_password(password)?;
        let user = self.invite_user(token).await?;
        let actor = Actor::User {
            name: user.to_string(),
        };
        let mut tx = self.begin_write().await?;
        let used = sqlx::query(
            "UPDATE user_invites SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND expires_at > $1",
        )
        .bind(time_text(now()))
        .bind(secret_hash(token))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if used != 1 {
            return Err(StoreError::not_found("invite", "(wrong, expired or used)"));
        }
        audit_log::append(
            &mut tx,
            &actor,
            &AuditEvent::InviteUsed {
                user: user.to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        self.set_user_password(&actor, &user, password).await?;
        self.enroll_totp(&actor, &user, totp_secret, true, Some(step))
            .await?;
        Ok(user)
    }
}
