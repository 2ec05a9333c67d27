//! Personal database tokens: the password a user types into a database client (`psql`) that
//! connects through Rampart. Minted by `rampart db token`, shown once, expiring, revocable.
//!
//! INVARIANT: only the SHA-256 of a token is stored (32 random bytes from the operating system:
//! nothing to guess, so a plain hash is enough); a token works only for its own user, before
//! its expiry, unrevoked, and while the user's `auth_epoch` is the one it was issued under.

use crate::rows::{self, new_id, now, time_text};
use crate::web_auth::{plus, random_secret, secret_hash};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, SecretString};
use serde::Serialize;
use sqlx::any::AnyRow;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// What every database token starts with, so secret scanners and people recognise one.
pub const DB_TOKEN_PREFIX: &str = "rampartdb_";
/// What every Kubernetes token (a kubeconfig's bearer token) starts with.
pub const KUBE_TOKEN_PREFIX: &str = "rampartkube_";
/// The longest lifetime a token may be given.
pub const MAX_DB_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

macro_rules! db_token_select {
    ($rest:literal) => {
        concat!(
            "SELECT t.id, u.name, t.created_by, t.created_at, t.expires_at, t.revoked_at, ",
            "t.last_used_at, t.auth_epoch <> u.auth_epoch AS superseded, t.kind ",
            "FROM db_tokens t JOIN users u ON u.id = t.user_id ",
            $rest
        )
    };
}

/// A database token as stored and listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct DbToken {
    pub id: Uuid,
    pub user: Name,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The user's credentials or status changed since the token was issued: it no longer works.
    pub superseded: bool,
    /// What the token opens: `database` (the database listeners) or `kubernetes` (the
    /// Kubernetes listener, from a kubeconfig); never both.
    pub kind: TokenKind,
}

/// What a personal token opens (migration 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Database,
    Kubernetes,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Database => "database",
            TokenKind::Kubernetes => "kubernetes",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Database => DB_TOKEN_PREFIX,
            TokenKind::Kubernetes => KUBE_TOKEN_PREFIX,
        }
    }
}

impl DbToken {
    /// Neither revoked, expired, nor from before a change to the user's credentials.
    pub fn is_active(&self, at: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && !self.superseded && self.expires_at > at
    }
}

impl Store {
    /// Issues a database token for `user`, valid for `ttl` (at most [`MAX_DB_TOKEN_TTL`]).
    /// Returns the token as stored and the token itself, which is shown once.
    pub async fn create_db_token(
        &self,
        actor: &Actor,
        user: &Name,
        ttl: Duration,
    ) -> Result<(DbToken, SecretString)> {
        self.create_token(actor, user, ttl, TokenKind::Database)
            .await
    }

    /// Issues a personal token of `kind` (see [`Self::create_db_token`]).
    pub async fn create_token(
        &self,
        actor: &Actor,
        user: &Name,
        ttl: Duration,
        kind: TokenKind,
    ) -> Result<(DbToken, SecretString)> {
        if ttl.is_zero() || ttl > MAX_DB_TOKEN_TTL {
            return Err(StoreError::invalid(format!(
                "a {} token lives between 1 second and 30 days",
                kind.as_str()
            )));
        }
        let at = now();
        let expires_at = plus(at, ttl);
        let secret = format!("{}{}", kind.prefix(), random_secret()?);
        let mut tx = self.begin_write().await?;
        let owner = crate::users::load_user(&mut tx, user).await?;
        let token = DbToken {
            id: new_id(),
            user: user.clone(),
            created_by: actor.to_string(),
            created_at: at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            superseded: false,
            kind,
        };
        sqlx::query(
            "INSERT INTO db_tokens (id, token_hash, user_id, created_by, created_at, expires_at, \
             auth_epoch, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token.id.to_string())
        .bind(secret_hash(&secret))
        .bind(owner.id.to_string())
        .bind(&token.created_by)
        .bind(time_text(at))
        .bind(time_text(expires_at))
        .bind(owner.auth_epoch)
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::DbTokenCreated {
            token: token.id.to_string(),
            user: user.to_string(),
            expires_at: rampart_core::time_arg::format_rfc3339(expires_at),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok((token, SecretString::from(secret)))
    }

    /// Database tokens, newest first; only `user`'s if given.
    pub async fn db_tokens(&self, user: Option<&Name>) -> Result<Vec<DbToken>> {
        let rows = sqlx::query(db_token_select!(
            "WHERE $1 IS NULL OR u.name = $1 ORDER BY t.created_at DESC, t.id DESC"
        ))
        .bind(user.map(Name::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(db_token_from_row).collect()
    }

    /// Whether `secret` is an active database token of `user`; marks it used if so.
    pub async fn check_db_token(&self, user: &Name, secret: &str) -> Result<bool> {
        self.check_token(user, secret, TokenKind::Database).await
    }

    /// The user whose token of `kind` `secret` is, if any (active or not: the check is
    /// [`Self::check_token`]'s). A Kubernetes client sends a bearer token without a user name.
    pub async fn token_owner(&self, secret: &str, kind: TokenKind) -> Result<Option<Name>> {
        let row = sqlx::query(db_token_select!("WHERE t.token_hash = $1 AND t.kind = $2"))
            .bind(secret_hash(secret))
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .as_ref()
            .map(db_token_from_row)
            .transpose()?
            .map(|token| token.user))
    }

    /// Whether `secret` is an active token of `kind` of `user`; marks it used if so.
    pub async fn check_token(&self, user: &Name, secret: &str, kind: TokenKind) -> Result<bool> {
        let row = sqlx::query(db_token_select!(
            "WHERE t.token_hash = $1 AND u.name = $2 AND t.kind = $3"
        ))
        .bind(secret_hash(secret))
        .bind(user.as_str())
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(token) = row.as_ref().map(db_token_from_row).transpose()? else {
            return Ok(false);
        };
        let at = now();
        if !token.is_active(at) {
            return Ok(false);
        }
        sqlx::query("UPDATE db_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(time_text(at))
            .bind(token.id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Revokes a database token for good. Revoking a revoked token is an error.
    pub async fn revoke_db_token(&self, actor: &Actor, id: Uuid) -> Result<DbToken> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(db_token_select!("WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("database token", id))?;
        let mut token = db_token_from_row(&row)?;
        if token.revoked_at.is_some() {
            return Err(StoreError::invalid(format!(
                "database token {id} is already revoked"
            )));
        }
        let at = now();
        sqlx::query("UPDATE db_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(time_text(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::DbTokenRevoked {
            token: id.to_string(),
            user: token.user.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        token.revoked_at = Some(at);
        Ok(token)
    }
}

fn db_token_from_row(row: &AnyRow) -> Result<DbToken> {
    Ok(DbToken {
        id: rows::uuid(row, "id")?,
        user: rows::name(row, "name")?,
        created_by: rows::text(row, "created_by")?,
        created_at: rows::time(row, "created_at")?,
        expires_at: rows::time(row, "expires_at")?,
        revoked_at: rows::optional_time(row, "revoked_at")?,
        last_used_at: rows::optional_time(row, "last_used_at")?,
        superseded: rows::flag(row, "superseded")?,
        kind: match rows::text(row, "kind")?.as_str() {
            "kubernetes" => TokenKind::Kubernetes,
            _ => TokenKind::Database,
        },
    })
}
