//! SSH user certificates issued by the node's user CA (`crate::ssh_ca`): issuing one (signed,
//! recorded and audited in one transaction) and the two questions the SSH login asks about them.
//!
//! INVARIANT: a certificate logs in only while its row exists and the user's `auth_epoch` is the
//! one it was issued under: a change to the user's credentials or status (password, keys, TOTP,
//! disabled) ends every certificate issued before it, as it ends web sessions and tokens (A11).

use crate::rows::{now, time_text};
use crate::ssh_ca::{CaKind, CertificateAuthority, MAX_USER_CERTIFICATE_VALIDITY};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::Name;
use rampart_core::audit::{Actor, AuditEvent};
use sqlx::Row;
use ssh_key::{Certificate, HashAlg, PublicKey};
use std::time::Duration;

impl Store {
    /// Signs `key` for `user` with the user CA, valid for `ttl` (at most 7 days), records the
    /// certificate and audits it (`ssh_certificate_issued`, `via` saying how it was asked for).
    pub async fn issue_ssh_certificate(
        &self,
        actor: &Actor,
        user: &Name,
        key: &PublicKey,
        ttl: Duration,
        via: &str,
    ) -> Result<Certificate> {
        if ttl.is_zero() || ttl > MAX_USER_CERTIFICATE_VALIDITY {
            return Err(StoreError::invalid(
                "an SSH certificate lives between 1 second and 7 days",
            ));
        }
        let ca = CertificateAuthority::load(self.data_dir(), CaKind::User)?;
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let mut tx = self.begin_write().await?;
        let owner = crate::users::load_user(&mut tx, user).await?;
        if owner.disabled {
            return Err(StoreError::invalid(format!("user {user} is disabled")));
        }
        let at = now();
        let certificate = ca
            .sign_user(key, user, ttl, std::time::SystemTime::now())
            .map_err(|err| StoreError::DataDir(err.to_string()))?;
        let valid_before = time::OffsetDateTime::from_unix_timestamp(
            i64::try_from(certificate.valid_before()).unwrap_or(i64::MAX),
        )
        .map_err(|_| StoreError::DataDir("certificate end out of range".into()))?;
        let serial = certificate.serial().to_string();
        sqlx::query(
            "INSERT INTO ssh_certificates (serial, user_id, key_fingerprint, issued_at, \
             valid_before, auth_epoch) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&serial)
        .bind(owner.id.to_string())
        .bind(&fingerprint)
        .bind(time_text(at))
        .bind(time_text(valid_before))
        .bind(owner.auth_epoch)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::SshCertificateIssued {
            user: user.to_string(),
            serial,
            fingerprint,
            valid_before: rampart_core::time_arg::format_rfc3339(valid_before),
            via: via.to_owned(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(certificate)
    }

    /// Whether `user` holds a certificate issued here, under their current `auth_epoch`, for the
    /// key `fingerprint`. Asked when such a key is offered without a signature: the offer does
    /// not say whether a certificate comes with it, and the client signs only if told to.
    pub async fn has_ssh_certificate_for_key(
        &self,
        user: &Name,
        fingerprint: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM ssh_certificates c JOIN users u ON u.id = c.user_id \
             WHERE u.name = $1 AND c.key_fingerprint = $2 AND c.auth_epoch = u.auth_epoch",
        )
        .bind(user.as_str())
        .bind(fingerprint)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Whether the certificate `serial` for the key `fingerprint` was issued here to `user` and
    /// still stands (the user's credentials and status unchanged since).
    pub async fn ssh_certificate_stands(
        &self,
        user: &Name,
        serial: u64,
        fingerprint: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM ssh_certificates c JOIN users u ON u.id = c.user_id \
             WHERE c.serial = $1 AND u.name = $2 AND c.key_fingerprint = $3 \
             AND c.auth_epoch = u.auth_epoch",
        )
        .bind(serial.to_string())
        .bind(user.as_str())
        .bind(fingerprint)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}
