//! Users who sign in through an OpenID Connect provider (migration 32: `oidc_identities`):
//! the link between the provider's `(issuer, subject)` and a Rampart user, created by
//! just-in-time provisioning, and the provider's refresh token, sealed by the vault, with which
//! the node checks at a bounded interval that the user may still get tokens.
//!
//! INVARIANT: a provider's subject is linked to a user only when that user is created for it
//! ([`Store::add_oidc_user`]): a local user of the same name is never taken over.

use crate::accounts::{SealedSecret, active_key_id};
use crate::rows::{self, new_id, now, time_text};
use crate::vault::{KeyId, Vault};
use crate::{Result, Store, StoreError, audit_log, users};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{ExposeSecret, Name, Role, SecretString, User};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A refresh token longer than this is refused (providers' tokens are far shorter).
pub const MAX_REFRESH_TOKEN_BYTES: usize = 8 * 1024;

/// One user linked to a provider, as the periodic check sees it.
#[derive(Debug, Clone)]
pub struct OidcIdentity {
    pub user: Name,
    pub issuer: String,
    pub subject: String,
    pub disabled: bool,
    pub checked_at: Option<OffsetDateTime>,
}

fn refresh_aad(user_id: &str) -> Vec<u8> {
    format!("rampart/v1/users/{user_id}/oidc-refresh-token").into_bytes()
}

impl Store {
    /// The user linked to the provider's `subject` at `issuer`, if any.
    pub async fn oidc_user(&self, issuer: &str, subject: &str) -> Result<Option<Name>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT u.name FROM oidc_identities o JOIN users u ON u.id = o.user_id \
             WHERE o.issuer = $1 AND o.subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| rows::name(&row, "name")).transpose()
    }

    /// Creates an external user (no password, no key) linked to `subject` at `issuer`, in one
    /// transaction with its `user_added` event. A name that is taken is refused: a local user
    /// is never linked to a provider's account by name.
    pub async fn add_oidc_user(
        &self,
        actor: &Actor,
        name: &Name,
        role: Role,
        issuer: &str,
        subject: &str,
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        if rows::find_id(&mut tx, rows::Named::User, name)
            .await?
            .is_some()
        {
            return Err(StoreError::already_exists("user", name));
        }
        let id = new_id();
        let at = time_text(now());
        sqlx::query(
            "INSERT INTO users (id, name, role, disabled, created_at) VALUES ($1, $2, $3, FALSE, $4)",
        )
        .bind(id.to_string())
        .bind(name.as_str())
        .bind(role.as_str())
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO oidc_identities (user_id, issuer, subject, last_login_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(issuer)
        .bind(subject)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::UserAdded {
            user: name.to_string(),
            role: role.to_string(),
            keys: Vec::new(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = users::load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Whether `name` is linked to a provider (an external user).
    pub async fn is_oidc_user(&self, name: &Name) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM oidc_identities o JOIN users u ON u.id = o.user_id WHERE u.name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(found.is_some())
    }

    /// Records a sign-in of a linked user: its time, and the provider's refresh token (sealed),
    /// or none when the provider gave none.
    pub async fn record_oidc_login(
        &self,
        name: &Name,
        refresh_token: Option<&SecretString>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id = linked_id(&mut tx, name).await?;
        let sealed = self.seal_refresh_token(&mut tx, &id, refresh_token).await?;
        sqlx::query(
            "UPDATE oidc_identities SET refresh_token = $1, last_login_at = $2, checked_at = $2 \
             WHERE user_id = $3",
        )
        .bind(sealed)
        .bind(time_text(now()))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Linked users with a refresh token whose last check is older than `before`, oldest
    /// first, at most `limit`.
    pub async fn oidc_identities_due(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OidcIdentity>> {
        let mut conn = self.pool.acquire().await?;
        let found = sqlx::query(
            "SELECT u.name, CAST(u.disabled AS INTEGER) AS disabled, o.issuer, o.subject, o.checked_at \
             FROM oidc_identities o JOIN users u ON u.id = o.user_id \
             WHERE o.refresh_token IS NOT NULL AND (o.checked_at IS NULL OR o.checked_at < $1) \
             ORDER BY o.checked_at, u.name LIMIT $2",
        )
        .bind(time_text(before))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(OidcIdentity {
                    user: rows::name(row, "name")?,
                    issuer: rows::text(row, "issuer")?,
                    subject: rows::text(row, "subject")?,
                    disabled: rows::flag(row, "disabled")?,
                    checked_at: rows::optional_time(row, "checked_at")?,
                })
            })
            .collect()
    }

    /// The refresh token of a linked user, opened from the vault.
    pub async fn oidc_refresh_token(&self, name: &Name) -> Result<Option<SecretString>> {
        let mut conn = self.pool.acquire().await?;
        let id = linked_id(&mut conn, name).await?;
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT refresh_token FROM oidc_identities WHERE user_id = $1")
                .bind(&id)
                .fetch_one(&mut *conn)
                .await?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = Zeroizing::new(self.vault.open(&refresh_aad(&id), &sealed)?);
        let text = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::invalid("a stored refresh token is not text"))?;
        Ok(Some(SecretString::from(text.to_owned())))
    }

    /// Records a check that passed: its time and, when the provider rotated it, the new
    /// refresh token.
    pub async fn record_oidc_check(
        &self,
        name: &Name,
        rotated: Option<&SecretString>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id = linked_id(&mut tx, name).await?;
        if rotated.is_some() {
            let sealed = self.seal_refresh_token(&mut tx, &id, rotated).await?;
            sqlx::query("UPDATE oidc_identities SET refresh_token = $1 WHERE user_id = $2")
                .bind(sealed)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE oidc_identities SET checked_at = $1 WHERE user_id = $2")
            .bind(time_text(now()))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables a linked user the provider no longer gives tokens to: the refresh token is
    /// dropped and the user disabled (`user_disabled`, the auth epoch moves: every browser
    /// session, live session and SSH certificate of theirs ends).
    pub async fn disable_oidc_user(&self, actor: &Actor, name: &Name) -> Result<User> {
        {
            let mut tx = self.begin_write().await?;
            let id = linked_id(&mut tx, name).await?;
            sqlx::query(
                "UPDATE oidc_identities SET refresh_token = NULL, checked_at = $1 WHERE user_id = $2",
            )
            .bind(time_text(now()))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        self.set_user_disabled(actor, name, true).await
    }

    async fn seal_refresh_token(
        &self,
        conn: &mut AnyConnection,
        user_id: &str,
        token: Option<&SecretString>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(token) = token else {
            return Ok(None);
        };
        let text = token.expose_secret();
        if text.is_empty() || text.len() > MAX_REFRESH_TOKEN_BYTES {
            return Err(StoreError::invalid(format!(
                "a refresh token must be 1 to {MAX_REFRESH_TOKEN_BYTES} bytes"
            )));
        }
        let key_id = active_key_id(conn).await?;
        Ok(Some(self.vault.seal(
            key_id,
            &refresh_aad(user_id),
            text.as_bytes(),
        )?))
    }
}

async fn linked_id(conn: &mut AnyConnection, name: &Name) -> Result<String> {
    let id = rows::id_of(conn, rows::Named::User, name)
        .await?
        .to_string();
    let linked: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM oidc_identities WHERE user_id = $1")
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await?;
    match linked {
        Some(_) => Ok(id),
        None => Err(StoreError::not_found("provider account of user", name)),
    }
}

/// Every sealed refresh token, for `vault status`.
pub(crate) async fn sealed_refresh_tokens(conn: &mut AnyConnection) -> Result<Vec<SealedSecret>> {
    let found = sqlx::query(
        "SELECT u.id, u.name, o.refresh_token FROM oidc_identities o JOIN users u ON u.id = o.user_id \
         WHERE o.refresh_token IS NOT NULL ORDER BY u.name",
    )
    .fetch_all(&mut *conn)
    .await?;
    found
        .iter()
        .map(|row| {
            Ok(SealedSecret {
                label: format!("user {} (oidc refresh token)", rows::text(row, "name")?),
                aad: refresh_aad(&rows::text(row, "id")?),
                sealed: row.try_get("refresh_token")?,
            })
        })
        .collect()
}

/// Re-seals every refresh token under `new_key_id`, inside the rotation's transaction.
pub(crate) async fn reseal_refresh_tokens(
    conn: &mut AnyConnection,
    vault: &Vault,
    new_key_id: KeyId,
) -> Result<u64> {
    let found = sqlx::query(
        "SELECT user_id, refresh_token FROM oidc_identities WHERE refresh_token IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in &found {
        let id = rows::text(row, "user_id")?;
        let aad = refresh_aad(&id);
        let sealed: Vec<u8> = row.try_get("refresh_token")?;
        let plain = Zeroizing::new(vault.open(&aad, &sealed)?);
        let resealed = vault.seal(new_key_id, &aad, &plain)?;
        sqlx::query("UPDATE oidc_identities SET refresh_token = $1 WHERE user_id = $2")
            .bind(resealed)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(u64::try_from(found.len()).unwrap_or(u64::MAX))
}
