//! The web API's credentials: browser sessions (behind a cookie) and API tokens (bearer).
//!
//! INVARIANT: only the SHA-256 of a session cookie or token is stored; the secret itself is
//! returned once, to the caller that created it, as a `SecretString`. Secrets are 32 random
//! bytes from the operating system, so a plain hash is enough (no guessing to slow down).

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_core::access::TokenScope;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, SecretString, User};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The token query with a `WHERE` clause (a literal, so the SQL is static).
macro_rules! token_select {
    ($rest:literal) => {
        concat!(
            "SELECT t.id, u.name, t.scope, t.description, t.created_by, t.created_at, ",
            "t.expires_at, t.revoked_at, t.last_used_at, t.auth_epoch <> u.auth_epoch AS superseded ",
            "FROM api_tokens t JOIN users u ON u.id = t.user_id ",
            $rest
        )
    };
}

/// What every API token starts with, so secret scanners and people recognise one.
pub const API_TOKEN_PREFIX: &str = "rampart_";
/// The longest description a token may carry.
const MAX_DESCRIPTION_CHARS: usize = 200;
/// How many expired browser sessions one login deletes.
const CLEANUP_BATCH: i64 = 100;

/// A browser session as stored (never its cookie).
#[derive(Debug, Clone, Serialize)]
pub struct WebSession {
    pub id: Uuid,
    pub user: Name,
    /// The user's `auth_epoch` at login; a later epoch ends the session.
    pub auth_epoch: i64,
    /// Whether the login used a second factor.
    pub mfa: bool,
    pub source_addr: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An API token as stored and listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: Uuid,
    pub user: Name,
    pub scope: TokenScope,
    pub description: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The user's credentials or status changed since the token was created: it no longer works.
    pub superseded: bool,
}

impl ApiToken {
    /// Neither revoked, expired, nor from before a change to the user's credentials.
    pub fn is_active(&self, at: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && !self.superseded && self.expires_at.is_none_or(|end| end > at)
    }
}

/// The stored form of a secret: its SHA-256, in hex.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes from the operating system, base64url without padding.
pub(crate) fn random_secret() -> Result<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut_slice()).map_err(|err| StoreError::Randomness(err.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

pub(crate) fn plus(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d))
        .unwrap_or(time::macros::datetime!(9999-12-31 00:00 UTC))
}

impl Store {
    /// Starts a browser session for `user` (whose credentials the caller has checked), records
    /// the login (`login_succeeded`, `method`) in the same transaction, and returns the session
    /// with its cookie value. The session ends `lifetime` after now at the latest.
    pub async fn start_web_session(
        &self,
        user: &User,
        source: &str,
        mfa: bool,
        method: &str,
        lifetime: Duration,
    ) -> Result<(WebSession, SecretString)> {
        let secret = random_secret()?;
        let at = now();
        let session = WebSession {
            id: new_id(),
            user: user.name.clone(),
            auth_epoch: user.auth_epoch,
            mfa,
            source_addr: source.to_owned(),
            created_at: at,
            last_seen_at: at,
            expires_at: plus(at, lifetime),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM web_sessions WHERE id IN \
             (SELECT id FROM web_sessions WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(time_text(at))
        .bind(CLEANUP_BATCH)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO web_sessions (id, token_hash, user_id, auth_epoch, mfa, source_addr, \
             created_at, last_seen_at, expires_at) \
             SELECT $1, $2, id, $3, $4, $5, $6, $6, $7 FROM users WHERE name = $8",
        )
        .bind(session.id.to_string())
        .bind(secret_hash(&secret))
        .bind(session.auth_epoch)
        .bind(mfa)
        .bind(source)
        .bind(time_text(at))
        .bind(time_text(session.expires_at))
        .bind(user.name.as_str())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::LoginSucceeded {
            user: user.name.to_string(),
            method: method.to_owned(),
            source: source.to_owned(),
        };
        audit_log::append(&mut tx, &user_actor(&user.name), &event).await?;
        tx.commit().await?;
        Ok((session, SecretString::from(secret)))
    }

    /// The browser session whose cookie is `secret`, if there is one (expired or not: the
    /// caller decides, with the user's current state).
    pub async fn web_session(&self, secret: &str) -> Result<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT s.id, u.name, s.auth_epoch, CAST(s.mfa AS INTEGER) AS mfa, s.source_addr, s.created_at, \
             s.last_seen_at, s.expires_at FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1",
        )
        .bind(secret_hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(WebSession {
                id: rows::uuid(&row, "id")?,
                user: rows::name(&row, "name")?,
                auth_epoch: row.try_get("auth_epoch")?,
                mfa: rows::flag(&row, "mfa")?,
                source_addr: rows::text(&row, "source_addr")?,
                created_at: rows::time(&row, "created_at")?,
                last_seen_at: rows::time(&row, "last_seen_at")?,
                expires_at: rows::time(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Marks a browser session as used at `at` (for the idle timeout).
    pub async fn touch_web_session(&self, id: Uuid, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(time_text(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a browser session (logout, expiry, credential change) with its audit event.
    /// Ending one that is already gone does nothing.
    pub async fn end_web_session(&self, session: &WebSession, reason: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM web_sessions WHERE id = $1")
            .bind(session.id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed > 0 {
            let event = AuditEvent::WebSessionEnded {
                user: session.user.to_string(),
                reason: reason.to_owned(),
            };
            audit_log::append(&mut tx, &user_actor(&session.user), &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Issues an API token for `user` with at most `scope`, valid until `expires_at` (never
    /// ending if `None`). Returns the token as stored and the token itself, which is shown once.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        user: &Name,
        scope: TokenScope,
        description: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(ApiToken, SecretString)> {
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION_CHARS
            || description.chars().any(char::is_control)
        {
            return Err(StoreError::invalid(format!(
                "invalid token description: one line of at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        let at = now();
        if expires_at.is_some_and(|end| end <= at) {
            return Err(StoreError::invalid("the token's expiry is in the past"));
        }
        let secret = format!("{API_TOKEN_PREFIX}{}", random_secret()?);
        let mut tx = self.begin_write().await?;
        let owner = crate::users::load_user(&mut tx, user).await?;
        let widest = TokenScope::widest_for(owner.role);
        if scope > widest {
            return Err(StoreError::invalid(format!(
                "user {user} has role {}: their tokens can have scope {widest} at most",
                owner.role
            )));
        }
        let token = ApiToken {
            id: new_id(),
            user: user.clone(),
            scope,
            description: description.to_owned(),
            created_by: actor.to_string(),
            created_at: at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            superseded: false,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, user_id, scope, description, created_by, \
             created_at, expires_at, auth_epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(token.id.to_string())
        .bind(secret_hash(&secret))
        .bind(owner.id.to_string())
        .bind(scope.as_str())
        .bind(&token.description)
        .bind(&token.created_by)
        .bind(time_text(at))
        .bind(expires_at.map(time_text))
        .bind(owner.auth_epoch)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::ApiTokenCreated {
            token: token.id.to_string(),
            user: user.to_string(),
            scope: scope.to_string(),
            expires_at: expires_at.map(rampart_core::time_arg::format_rfc3339),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok((token, SecretString::from(secret)))
    }

    /// API tokens, newest first; only `user`'s if given.
    pub async fn api_tokens(&self, user: Option<&Name>) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(token_select!(
            "WHERE $1 IS NULL OR u.name = $1 ORDER BY t.created_at DESC, t.id DESC"
        ))
        .bind(user.map(Name::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn api_token(&self, id: Uuid) -> Result<ApiToken> {
        let row = sqlx::query(token_select!("WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("token", id))?;
        token_from_row(&row)
    }

    /// The token whose secret is `secret`, if any (revoked or expired included).
    pub async fn api_token_by_secret(&self, secret: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(token_select!("WHERE t.token_hash = $1"))
            .bind(secret_hash(secret))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Marks a token as used at `at`.
    pub async fn touch_api_token(&self, id: Uuid, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(time_text(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes a token for good. Revoking a revoked token is an error (nothing changes).
    pub async fn revoke_api_token(&self, actor: &Actor, id: Uuid) -> Result<ApiToken> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(token_select!("WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("token", id))?;
        let token = token_from_row(&row)?;
        if token.revoked_at.is_some() {
            return Err(StoreError::invalid(format!(
                "token {id} is already revoked"
            )));
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(time_text(now()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::ApiTokenRevoked {
            token: id.to_string(),
            user: token.user.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let row = sqlx::query(token_select!("WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let token = token_from_row(&row)?;
        tx.commit().await?;
        Ok(token)
    }
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: rows::uuid(row, "id")?,
        user: rows::name(row, "name")?,
        scope: TokenScope::parse(&rows::text(row, "scope")?)
            .map_err(|_| StoreError::Corrupt("api_tokens.scope".into()))?,
        description: rows::text(row, "description")?,
        created_by: rows::text(row, "created_by")?,
        created_at: rows::time(row, "created_at")?,
        expires_at: rows::optional_time(row, "expires_at")?,
        revoked_at: rows::optional_time(row, "revoked_at")?,
        last_used_at: rows::optional_time(row, "last_used_at")?,
        superseded: rows::flag(row, "superseded")?,
    })
}

fn user_actor(name: &Name) -> Actor {
    Actor::User {
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let one = random_secret().unwrap();
        assert_eq!(one.len(), 43);
        assert_ne!(one, random_secret().unwrap());
    }
}
