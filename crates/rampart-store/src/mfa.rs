//! Users' TOTP second factor: enrolment, reset, and the check of a code.
//!
//! The secret is sealed by the vault with associated data naming the user row, so a ciphertext
//! copied onto another user does not open. The last accepted time step is stored with it: a
//! code is accepted once, and never a code of an earlier step (replay, A7).

use crate::accounts::{SealedSecret, active_key_id};
use crate::vault::{KeyId, Vault};
use crate::{Result, Store, StoreError, audit_log, rows, users};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, mfa};
use sqlx::{AnyConnection, Row};
use zeroize::Zeroizing;

/// What checking a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code matches a later step than any accepted before; that step is now used up.
    Accepted,
    /// The code does not match, or is not six digits.
    Wrong,
    /// The code matches a step already accepted: a replay, or a second login within one step.
    Reused,
    /// The user does not exist or has no second factor.
    NotEnrolled,
}

/// A new random TOTP secret (160 bits) from the operating system's CSPRNG.
pub fn new_totp_secret() -> Result<Zeroizing<Vec<u8>>> {
    let mut secret = Zeroizing::new(vec![0u8; mfa::SECRET_BYTES]);
    getrandom::fill(&mut secret).map_err(|err| StoreError::Randomness(err.to_string()))?;
    Ok(secret)
}

/// The associated data that binds a sealed TOTP secret to its user row and purpose.
fn totp_aad(user_id: &str) -> Vec<u8> {
    format!("rampart/v1/users/{user_id}/totp").into_bytes()
}

/// What [`Store::reset_second_factors`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondFactorsRemoved {
    pub totp: bool,
    pub passkeys: u64,
}

impl Store {
    /// Stores `secret` as the user's TOTP second factor, sealed by the vault. The caller has
    /// checked a code from the user's app first, so only a working enrolment is stored. Refuses
    /// to overwrite an enrolled factor unless `replace`. Ends the user's live sessions (auth
    /// epoch). `confirmed_step` is the time step of the code that confirmed the enrolment: it
    /// counts as used, so that code cannot also log in.
    pub async fn enroll_totp(
        &self,
        actor: &Actor,
        name: &Name,
        secret: &[u8],
        replace: bool,
        confirmed_step: Option<u64>,
    ) -> Result<()> {
        if !(mfa::MIN_SECRET_BYTES..=mfa::MAX_SECRET_BYTES).contains(&secret.len()) {
            return Err(StoreError::invalid(format!(
                "a TOTP secret must be {} to {} bytes",
                mfa::MIN_SECRET_BYTES,
                mfa::MAX_SECRET_BYTES
            )));
        }
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        let enrolled: i64 = sqlx::query_scalar(
            "SELECT CASE WHEN totp_secret IS NOT NULL THEN 1 ELSE 0 END FROM users WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if enrolled != 0 && !replace {
            return Err(StoreError::already_exists("second factor of user", name));
        }
        let key_id = active_key_id(&mut tx).await?;
        let sealed = self
            .vault
            .seal(key_id, &totp_aad(&id.to_string()), secret)?;
        sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = $2 WHERE id = $3")
            .bind(sealed)
            .bind(confirmed_step.and_then(|step| i64::try_from(step).ok()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        users::bump_auth_epoch(&mut tx, id).await?;
        let event = AuditEvent::MfaEnrolled {
            user: name.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes every second factor of the user (the TOTP secret and every passkey): a lost
    /// device, a departing authenticator. They must enroll again. Ends their live sessions.
    pub async fn reset_second_factors(
        &self,
        actor: &Actor,
        name: &Name,
    ) -> Result<SecondFactorsRemoved> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        let totp = sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_last_step = NULL \
             WHERE id = $1 AND totp_secret IS NOT NULL",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let passkeys = sqlx::query("DELETE FROM user_passkeys WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if totp == 0 && passkeys == 0 {
            return Err(StoreError::not_found("second factor of user", name));
        }
        users::bump_auth_epoch(&mut tx, id).await?;
        let event = AuditEvent::MfaReset {
            user: name.to_string(),
            passkeys,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(SecondFactorsRemoved {
            totp: totp > 0,
            passkeys,
        })
    }

    /// Checks a code from the user's authenticator app at `at_unix` (seconds since 1970).
    ///
    /// Runs under the write lock from the first read, so of two processes checking the same code
    /// only one accepts it. Wrong codes are not counted here: lockout is the caller's. An accepted
    /// code writes no audit event either: it is one step of a login, which the caller records.
    pub async fn check_totp(&self, name: &Name, code: &str, at_unix: u64) -> Result<TotpCheck> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT id, totp_secret, totp_last_step FROM users WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(TotpCheck::NotEnrolled);
        };
        let Some(sealed) = row.try_get::<Option<Vec<u8>>, _>("totp_secret")? else {
            return Ok(TotpCheck::NotEnrolled);
        };
        let id = rows::text(&row, "id")?;
        let secret = self.vault.open(&totp_aad(&id), &sealed)?;
        let Some(step) = mfa::verify(&secret, code, at_unix) else {
            return Ok(TotpCheck::Wrong);
        };
        // A step is at most u64::MAX / 30, which always fits.
        let step = i64::try_from(step).map_err(|_| StoreError::invalid("time out of range"))?;
        let last_step: Option<i64> = row.try_get("totp_last_step")?;
        if last_step.is_some_and(|last| step <= last) {
            return Ok(TotpCheck::Reused);
        }
        sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2")
            .bind(step)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(TotpCheck::Accepted)
    }
}

/// Every sealed TOTP secret, by user name.
pub(crate) async fn sealed_totp_secrets(conn: &mut AnyConnection) -> Result<Vec<SealedSecret>> {
    let rows = sqlx::query(
        "SELECT id, name, totp_secret FROM users WHERE totp_secret IS NOT NULL ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SealedSecret {
                label: format!("user {} (totp)", rows::text(row, "name")?),
                aad: totp_aad(&rows::text(row, "id")?),
                sealed: row.try_get("totp_secret")?,
            })
        })
        .collect()
}

/// Re-seals every TOTP secret under `new_key_id`, inside the rotation's transaction. Returns how
/// many it re-sealed.
pub(crate) async fn reseal_totp_secrets(
    conn: &mut AnyConnection,
    vault: &Vault,
    new_key_id: KeyId,
) -> Result<u64> {
    let rows = sqlx::query("SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL")
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let id = rows::text(row, "id")?;
        let aad = totp_aad(&id);
        let sealed: Vec<u8> = row.try_get("totp_secret")?;
        let plain = vault.open(&aad, &sealed)?;
        let resealed = vault.seal(new_key_id, &aad, &plain)?;
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2")
            .bind(resealed)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}
