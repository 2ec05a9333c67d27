//! Users' passkeys (WebAuthn credentials; migration 34): several per user, each with a name.
//!
//! The store keeps the credential as the authenticator gave it to it (webauthn-rs's serialized
//! `Passkey`: public key, signature counter, backup flags; no secret) as opaque text: checking
//! a ceremony is `rampart-auth`'s. The credential id is unique across every user, so a
//! passwordless login names exactly one user. Adding or removing a passkey changes the user's
//! credentials: their sessions end (`auth_epoch`, A11), with its audit event.

use crate::rows::{new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log, rows, users};
use rampart_core::Name;
use rampart_core::audit::{Actor, AuditEvent};
use serde::Serialize;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// At most this many passkeys per user.
pub const MAX_PASSKEYS_PER_USER: usize = 16;
/// A passkey's name: at most this many characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;
/// A stored credential longer than this is refused (a passkey is a few hundred bytes).
const MAX_PASSKEY_BYTES: usize = 16 * 1024;

/// One of a user's passkeys as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub name: String,
    /// The credential id, base64url without padding, as the browser reports it.
    pub credential_id: String,
    /// webauthn-rs's serialized `Passkey` (public; never shown by the API).
    #[serde(skip)]
    pub passkey: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

fn stored(row: &AnyRow) -> Result<StoredPasskey> {
    Ok(StoredPasskey {
        id: rows::uuid(row, "id")?,
        name: rows::text(row, "name")?,
        credential_id: rows::text(row, "credential_id")?,
        passkey: rows::text(row, "passkey")?,
        created_at: rows::time(row, "created_at")?,
        last_used_at: rows::optional_time(row, "last_used_at")?,
    })
}

/// A passkey's name as typed: trimmed, 1 to 64 characters, no control characters.
pub fn parse_passkey_name(text: &str) -> Result<String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_PASSKEY_NAME_CHARS {
        return Err(StoreError::invalid(format!(
            "invalid passkey name: give 1 to {MAX_PASSKEY_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "invalid passkey name: no control characters",
        ));
    }
    Ok(name.to_owned())
}

impl Store {
    /// The WebAuthn user handle of `user`: their row id, which never changes while they exist.
    pub async fn user_handle(&self, user: &Name) -> Result<Uuid> {
        let mut conn = self.pool.acquire().await?;
        rows::id_of(&mut conn, rows::Named::User, user).await
    }

    /// The user's passkeys, oldest first.
    pub async fn passkeys(&self, user: &Name) -> Result<Vec<StoredPasskey>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.credential_id, p.passkey, p.created_at, p.last_used_at \
             FROM user_passkeys p JOIN users u ON u.id = p.user_id \
             WHERE u.name = $1 ORDER BY p.created_at, p.id",
        )
        .bind(user.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(stored).collect()
    }

    /// The user whose passkey has `credential_id` and the user handle it was registered under,
    /// with the passkey: what a passwordless login needs. `None` for an unknown credential.
    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<(Name, Uuid, StoredPasskey)>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT p.id, p.name, p.credential_id, p.passkey, p.created_at, p.last_used_at, \
             u.name AS user_name, u.id AS user_id FROM user_passkeys p \
             JOIN users u ON u.id = p.user_id WHERE p.credential_id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok((
                rows::name(&row, "user_name")?,
                rows::uuid(&row, "user_id")?,
                stored(&row)?,
            ))
        })
        .transpose()
    }

    /// Registers a passkey for `user` under `name`, with its `passkey_added` event; ends the
    /// user's sessions (A11). A name the user already gave, a credential registered before (to
    /// anyone) and more than [`MAX_PASSKEYS_PER_USER`] are refused.
    pub async fn add_passkey(
        &self,
        actor: &Actor,
        user: &Name,
        name: &str,
        credential_id: &str,
        passkey: &str,
    ) -> Result<StoredPasskey> {
        let name = parse_passkey_name(name)?;
        if passkey.len() > MAX_PASSKEY_BYTES || credential_id.is_empty() {
            return Err(StoreError::invalid("invalid passkey: too large or empty"));
        }
        let mut tx = self.begin_write().await?;
        let user_id = rows::id_of(&mut tx, rows::Named::User, user).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_passkeys WHERE user_id = $1")
                .bind(user_id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_PASSKEYS_PER_USER {
            return Err(StoreError::invalid(format!(
                "a user has at most {MAX_PASSKEYS_PER_USER} passkeys: remove one first"
            )));
        }
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM user_passkeys WHERE (user_id = $1 AND name = $2) OR credential_id = $3",
        )
        .bind(user_id.to_string())
        .bind(&name)
        .bind(credential_id)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::already_exists("passkey", &name));
        }
        let created_at = now();
        let passkey_row = StoredPasskey {
            id: new_id(),
            name: name.clone(),
            credential_id: credential_id.to_owned(),
            passkey: passkey.to_owned(),
            created_at,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO user_passkeys (id, user_id, name, credential_id, passkey, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(passkey_row.id.to_string())
        .bind(user_id.to_string())
        .bind(&name)
        .bind(credential_id)
        .bind(passkey)
        .bind(time_text(created_at))
        .execute(&mut *tx)
        .await?;
        users::bump_auth_epoch(&mut tx, user_id).await?;
        let event = AuditEvent::PasskeyAdded {
            user: user.to_string(),
            name,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(passkey_row)
    }

    /// Removes the user's passkey `id`, with its `passkey_removed` event; ends the user's
    /// sessions (A11). Another user's passkey is not found, as an unknown one.
    pub async fn remove_passkey(&self, actor: &Actor, user: &Name, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let user_id = rows::id_of(&mut tx, rows::Named::User, user).await?;
        let name: Option<String> = sqlx::query_scalar(
            "DELETE FROM user_passkeys WHERE id = $1 AND user_id = $2 RETURNING name",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else {
            return Err(StoreError::not_found("passkey", id));
        };
        users::bump_auth_epoch(&mut tx, user_id).await?;
        let event = AuditEvent::PasskeyRemoved {
            user: user.to_string(),
            name,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a login with the user's passkey `credential_id`: its updated form (signature
    /// counter, backup flags) and the time. `false` when it no longer exists (removed
    /// meanwhile): the login must be refused.
    pub async fn record_passkey_use(
        &self,
        user: &Name,
        credential_id: &str,
        passkey: &str,
    ) -> Result<bool> {
        if passkey.len() > MAX_PASSKEY_BYTES {
            return Err(StoreError::invalid("invalid passkey: too large"));
        }
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE user_passkeys SET passkey = $1, last_used_at = $2 \
             WHERE credential_id = $3 AND user_id = (SELECT id FROM users WHERE name = $4)",
        )
        .bind(passkey)
        .bind(time_text(now()))
        .bind(credential_id)
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(updated == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkey_names_are_bounded_and_printable() {
        assert_eq!(parse_passkey_name("  laptop ").unwrap(), "laptop");
        assert!(parse_passkey_name("").is_err());
        assert!(parse_passkey_name("   ").is_err());
        assert!(parse_passkey_name(&"x".repeat(65)).is_err());
        assert!(parse_passkey_name("a\nb").is_err());
        assert!(parse_passkey_name("clé USB").is_ok());
    }
}
