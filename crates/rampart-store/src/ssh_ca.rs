//! The node's two SSH certificate authorities, kept in `keys/` like the node's other keys:
//!
//! - the **host CA** signs the node's host key, per ProxyJump hop, as a host certificate naming
//!   the asset (its name and address), so one `@cert-authority * KEY` line in `known_hosts`
//!   covers every asset;
//! - the **user CA** signs a user's public key for a short time as a user certificate whose one
//!   principal is the Rampart user name; [`check_user_certificate`] is the one place such a
//!   certificate is judged (the authenticator calls it).
//!
//! Certificates are built, signed and verified by the `ssh-key` crate; nothing here is
//! hand-written cryptography.

use crate::StoreError;
use crate::data_dir::DataDir;
use rampart_core::InvalidInput;
use ssh_key::PrivateKey;
use ssh_key::certificate::{Builder, CertType};
pub use ssh_key::{Certificate, HashAlg, PublicKey};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// How far back a certificate's validity starts, for clients whose clock is a little behind.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// How long a host certificate for one hop is valid (it is signed afresh for every hop; the key
/// it certifies never leaves the node).
const HOST_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest user certificate the CA signs, whatever is configured.
pub const MAX_USER_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Which of the node's two authorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    Host,
    User,
}

impl CaKind {
    fn path(self, dir: &DataDir) -> std::path::PathBuf {
        match self {
            Self::Host => dir.host_ca_key_path(),
            Self::User => dir.user_ca_key_path(),
        }
    }
}

/// One certificate authority's key pair, read from the data directory.
pub struct CertificateAuthority {
    kind: CaKind,
    key: PrivateKey,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("CertificateAuthority")
            .field("kind", &self.kind)
            .field("public_key", &self.public_key_line())
            .finish()
    }
}

impl CertificateAuthority {
    /// Reads the authority's key from the data directory (made by `ensure_node_keys`).
    pub fn load(dir: &DataDir, kind: CaKind) -> Result<Self, StoreError> {
        let path = kind.path(dir);
        Ok(Self {
            kind,
            key: read_key(&path)?,
        })
    }

    /// The authority's public key, `algorithm base64` (no comment).
    pub fn public_key(&self) -> PublicKey {
        let mut public = self.key.public_key().clone();
        public.set_comment("");
        public
    }

    /// `ssh-ed25519 AAAA...` with the authority's name as the comment.
    pub fn public_key_line(&self) -> String {
        let name = match self.kind {
            CaKind::Host => "rampart-host-ca",
            CaKind::User => "rampart-user-ca",
        };
        let text = self.public_key().to_openssh().unwrap_or_default();
        format!("{} {name}", text.trim_end())
    }

    /// The `known_hosts` line that trusts every asset's ProxyJump hop:
    /// `@cert-authority * ssh-ed25519 AAAA... rampart-host-ca`.
    pub fn known_hosts_line(&self) -> String {
        format!("@cert-authority * {}", self.public_key_line())
    }

    /// A host certificate for `host_key` naming `principals` (an asset's name and address),
    /// valid from a few minutes ago for a day.
    pub fn sign_host(
        &self,
        host_key: &PublicKey,
        principals: &[&str],
        now: SystemTime,
    ) -> Result<Certificate, CertificateError> {
        if self.kind != CaKind::Host {
            return Err(CertificateError::WrongAuthority);
        }
        let mut builder = self.builder(host_key, now, HOST_CERTIFICATE_VALIDITY)?;
        builder.cert_type(CertType::Host).map_err(sign_error)?;
        builder
            .key_id(format!("rampart host {}", principals.join(",")))
            .map_err(sign_error)?;
        if principals.is_empty() {
            return Err(CertificateError::NoPrincipal);
        }
        for principal in principals {
            builder.valid_principal(*principal).map_err(sign_error)?;
        }
        builder.sign(&self.key).map_err(sign_error)
    }

    /// A user certificate for `user_key` whose one principal is `user` (the Rampart user name),
    /// valid from a few minutes ago until `now + valid_for` (at most
    /// [`MAX_USER_CERTIFICATE_VALIDITY`]). The usual extensions let a client open a terminal and
    /// forwards; Rampart's grants decide what they reach.
    pub fn sign_user(
        &self,
        user_key: &PublicKey,
        user: &rampart_core::Name,
        valid_for: Duration,
        now: SystemTime,
    ) -> Result<Certificate, CertificateError> {
        if self.kind != CaKind::User {
            return Err(CertificateError::WrongAuthority);
        }
        let valid_for = valid_for.min(MAX_USER_CERTIFICATE_VALIDITY);
        let mut builder = self.builder(user_key, now, valid_for)?;
        builder.cert_type(CertType::User).map_err(sign_error)?;
        builder
            .key_id(format!("rampart user {user}"))
            .map_err(sign_error)?;
        builder.valid_principal(user.as_str()).map_err(sign_error)?;
        for extension in [
            "permit-port-forwarding",
            "permit-pty",
            "permit-agent-forwarding",
        ] {
            builder.extension(extension, "").map_err(sign_error)?;
        }
        builder.sign(&self.key).map_err(sign_error)
    }

    fn builder(
        &self,
        subject: &PublicKey,
        now: SystemTime,
        valid_for: Duration,
    ) -> Result<Builder, CertificateError> {
        let mut nonce = [0u8; Builder::RECOMMENDED_NONCE_SIZE];
        getrandom::fill(&mut nonce).map_err(|err| CertificateError::Sign(err.to_string()))?;
        let mut serial = [0u8; 8];
        getrandom::fill(&mut serial).map_err(|err| CertificateError::Sign(err.to_string()))?;
        let after = unix_seconds(now.checked_sub(BACKDATE).unwrap_or(UNIX_EPOCH));
        let before = unix_seconds(now).saturating_add(valid_for.as_secs());
        let mut builder =
            Builder::new(nonce, subject.key_data().clone(), after, before).map_err(sign_error)?;
        builder
            .serial(u64::from_be_bytes(serial))
            .map_err(sign_error)?;
        Ok(builder)
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("a certificate needs at least one principal")]
    NoPrincipal,
    #[error("this certificate authority does not sign that kind of certificate")]
    WrongAuthority,
    #[error("cannot sign the certificate: {0}")]
    Sign(String),
}

fn sign_error(err: ssh_key::Error) -> CertificateError {
    CertificateError::Sign(err.to_string())
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

fn read_key(path: &Path) -> Result<PrivateKey, StoreError> {
    let pem = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|err| crate::data_dir::io_error(path, "cannot read", &err))?,
    );
    PrivateKey::from_openssh(pem.as_bytes())
        .map_err(|err| StoreError::DataDir(format!("{} is not a valid key: {err}", path.display())))
}

/// Why a user certificate is refused. Only for logs and tests: the client sees one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    #[error("signed by another certificate authority")]
    ForeignAuthority,
    #[error("the certificate's signature does not verify")]
    BadSignature,
    #[error("a host certificate, not a user certificate")]
    NotUserCertificate,
    #[error("not valid yet")]
    NotYetValid,
    #[error("expired")]
    Expired,
    #[error("the certificate does not name this user")]
    WrongPrincipal,
    #[error("the certificate carries a critical option Rampart does not enforce")]
    UnknownCriticalOption,
}

/// Judges a user certificate (whose key already signed the login, checked by the SSH library)
/// for the Rampart user `user` at `now`: signed by the user CA `ca`, a user certificate, inside
/// its validity window, with `user` among exactly-matching principals (an empty list, which
/// OpenSSH reads as "anyone", is refused; A9), and no critical option (Rampart enforces none, so
/// one it would ignore is refused rather than dropped).
pub fn check_user_certificate(
    certificate: &Certificate,
    ca: &PublicKey,
    user: &str,
    now: SystemTime,
) -> Result<(), CertificateRefusal> {
    if certificate.signature_key() != ca.key_data() {
        return Err(CertificateRefusal::ForeignAuthority);
    }
    if certificate.verify_signature().is_err() {
        return Err(CertificateRefusal::BadSignature);
    }
    if certificate.cert_type() != CertType::User {
        return Err(CertificateRefusal::NotUserCertificate);
    }
    let now = unix_seconds(now);
    if now < certificate.valid_after() {
        return Err(CertificateRefusal::NotYetValid);
    }
    if now >= certificate.valid_before() {
        return Err(CertificateRefusal::Expired);
    }
    if !certificate
        .valid_principals()
        .iter()
        .any(|principal| principal == user)
    {
        return Err(CertificateRefusal::WrongPrincipal);
    }
    if !certificate.critical_options().is_empty() {
        return Err(CertificateRefusal::UnknownCriticalOption);
    }
    Ok(())
}

/// Parses the one public key a person hands in to be certified (a `.pub` line). Certificates
/// and private keys are refused.
pub fn parse_subject_key(text: &str) -> Result<PublicKey, InvalidInput> {
    let line = text.trim();
    if line.starts_with("-----BEGIN") {
        return Err(InvalidInput::new(
            "this is a private key; give the public key (the .pub file)",
        ));
    }
    if line.lines().count() != 1 {
        return Err(InvalidInput::new("give exactly one SSH public key"));
    }
    PublicKey::from_openssh(line).map_err(|_| {
        InvalidInput::new(
            "not an SSH public key (expected e.g. \"ssh-ed25519 AAAA... comment\"; a certificate \
             cannot be certified)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::Ed25519Keypair;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn ca(kind: CaKind, seed: u8) -> CertificateAuthority {
        CertificateAuthority {
            kind,
            key: key(seed),
        }
    }

    fn name(text: &str) -> rampart_core::Name {
        rampart_core::Name::parse("user", text).unwrap()
    }

    #[test]
    fn a_user_certificate_is_accepted_only_for_its_user_its_ca_and_its_window() {
        let user_ca = ca(CaKind::User, 1);
        let foreign = ca(CaKind::User, 2);
        let subject = key(3).public_key().clone();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let cert = user_ca
            .sign_user(&subject, &name("alice"), hour, now)
            .unwrap();
        let ca_key = user_ca.public_key();
        assert_eq!(check_user_certificate(&cert, &ca_key, "alice", now), Ok(()));
        let cases = [
            (
                check_user_certificate(&cert, &ca_key, "bob", now),
                CertificateRefusal::WrongPrincipal,
            ),
            (
                check_user_certificate(&cert, &foreign.public_key(), "alice", now),
                CertificateRefusal::ForeignAuthority,
            ),
            (
                check_user_certificate(&cert, &ca_key, "alice", now + 2 * hour),
                CertificateRefusal::Expired,
            ),
            (
                check_user_certificate(&cert, &ca_key, "alice", now - hour),
                CertificateRefusal::NotYetValid,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
    }

    #[test]
    fn a_host_certificate_or_an_empty_principal_list_is_not_a_user_login() {
        let user_ca = ca(CaKind::User, 1);
        let now = SystemTime::now();
        let subject = key(3).public_key().clone();
        // A host certificate signed by the same key (if an operator ever mixed them up).
        let mut builder = user_ca
            .builder(&subject, now, Duration::from_secs(60))
            .unwrap();
        builder.cert_type(CertType::Host).unwrap();
        builder.valid_principal("alice").unwrap();
        let host = builder.sign(&user_ca.key).unwrap();
        assert_eq!(
            check_user_certificate(&host, &user_ca.public_key(), "alice", now),
            Err(CertificateRefusal::NotUserCertificate)
        );
        let mut builder = user_ca
            .builder(&subject, now, Duration::from_secs(60))
            .unwrap();
        builder.cert_type(CertType::User).unwrap();
        builder.all_principals_valid().unwrap();
        let golden = builder.sign(&user_ca.key).unwrap();
        assert_eq!(
            check_user_certificate(&golden, &user_ca.public_key(), "alice", now),
            Err(CertificateRefusal::WrongPrincipal)
        );
        let mut builder = user_ca
            .builder(&subject, now, Duration::from_secs(60))
            .unwrap();
        builder.cert_type(CertType::User).unwrap();
        builder.valid_principal("alice,bob").unwrap();
        let comma = builder.sign(&user_ca.key).unwrap();
        assert_eq!(
            check_user_certificate(&comma, &user_ca.public_key(), "bob", now),
            Err(CertificateRefusal::WrongPrincipal)
        );
        let mut builder = user_ca
            .builder(&subject, now, Duration::from_secs(60))
            .unwrap();
        builder.cert_type(CertType::User).unwrap();
        builder.valid_principal("alice").unwrap();
        builder.critical_option("force-command", "id").unwrap();
        let forced = builder.sign(&user_ca.key).unwrap();
        assert_eq!(
            check_user_certificate(&forced, &user_ca.public_key(), "alice", now),
            Err(CertificateRefusal::UnknownCriticalOption)
        );
    }

    #[test]
    fn each_authority_signs_only_its_own_kind() {
        let now = SystemTime::now();
        let subject = key(3).public_key().clone();
        assert!(matches!(
            ca(CaKind::Host, 1).sign_user(&subject, &name("alice"), Duration::from_secs(60), now),
            Err(CertificateError::WrongAuthority)
        ));
        assert!(matches!(
            ca(CaKind::User, 1).sign_host(&subject, &["web-01"], now),
            Err(CertificateError::WrongAuthority)
        ));
        let host = ca(CaKind::Host, 1)
            .sign_host(&subject, &["web-01", "10.0.0.5"], now)
            .unwrap();
        assert_eq!(host.cert_type(), CertType::Host);
        assert_eq!(host.valid_principals(), ["web-01", "10.0.0.5"]);
    }
}
