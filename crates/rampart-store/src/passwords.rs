//! Users' own passwords: Argon2id hashes in PHC form, never vault entries (they are verified, not
//! used, so nothing needs to read them back).
//!
//! These are the plain, blocking computations. Checking a password at login (off the async
//! threads, behind a limit sized to the cores, with the same cost for unknown users) is the
//! authenticator's job (`rampart-auth`), and only its.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rampart_core::{ExposeSecret, InvalidInput, SecretString};

/// The shortest password Rampart accepts for a person.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, so nothing unbounded reaches Argon2.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Raises the number of Argon2id passes of new hashes above the default (never below it): the
/// tests that show password checks cannot stall sessions make each check slow with it.
pub const PASSES_ENV: &str = "RAMPART_TEST_ARGON2_PASSES";

/// A user's stored password hash (PHC string). Not a secret, but nobody's business either: it
/// does not print.
#[derive(Clone)]
pub struct StoredPasswordHash(String);

impl StoredPasswordHash {
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }
}

impl std::fmt::Debug for StoredPasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredPasswordHash(..)")
    }
}

/// Argon2id with the OWASP parameters (19 MiB, 2 passes), or more passes if [`PASSES_ENV`] asks.
fn argon2() -> Argon2<'static> {
    static PARAMS: std::sync::OnceLock<Params> = std::sync::OnceLock::new();
    let params = PARAMS.get_or_init(|| {
        let passes = std::env::var(PASSES_ENV)
            .ok()
            .and_then(|text| text.parse::<u32>().ok())
            .map_or(Params::DEFAULT_T_COST, |passes| {
                passes.max(Params::DEFAULT_T_COST)
            });
        Params::new(Params::DEFAULT_M_COST, passes, Params::DEFAULT_P_COST, None)
            .unwrap_or_default()
    });
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Whether `password` is acceptable as a new password (length), without hashing it.
pub fn check_new_password(password: &SecretString) -> Result<(), InvalidInput> {
    let text = password.expose_secret();
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(InvalidInput::new(format!(
            "password too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(InvalidInput::new(format!(
            "password too long: use at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

pub fn hash_password(password: &SecretString) -> Result<String, InvalidInput> {
    let text = password.expose_secret();
    if text.chars().count() < MIN_PASSWORD_CHARS {
        return Err(InvalidInput::new(format!(
            "password too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(InvalidInput::new(format!(
            "password too long: use at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    argon2()
        .hash_password(text.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| InvalidInput::new(format!("cannot hash the password: {err}")))
}

/// Whether `password` matches `stored`. Blocking: tens of milliseconds of CPU and 19 MiB. A
/// malformed stored hash is a damaged store, not a wrong password: it must not count toward
/// anyone's lockout.
pub fn verify_password(
    password: &SecretString,
    stored: &StoredPasswordHash,
) -> crate::Result<bool> {
    let hash = PasswordHash::new(&stored.0)
        .map_err(|_| crate::StoreError::Corrupt("users.password_hash".into()))?;
    let bytes = password.expose_secret().as_bytes();
    Ok(bytes.len() <= MAX_PASSWORD_BYTES && argon2().verify_password(bytes, &hash).is_ok())
}

/// A hash made like every user's hash, of a password nobody has: checking a password against it
/// costs what checking a real one does (for unknown users, A2).
pub fn equalizer_hash() -> Option<StoredPasswordHash> {
    hash_password(&SecretString::from("rampart-timing-equalizer".to_owned()))
        .ok()
        .map(StoredPasswordHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_hide_the_password() {
        let password = SecretString::from("correct horse battery".to_owned());
        let hash = StoredPasswordHash(hash_password(&password).unwrap());
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(!hash.0.contains("correct horse"));
        assert!(!format!("{hash:?}").contains("argon2"));
        assert!(verify_password(&password, &hash).unwrap());
        assert!(
            !verify_password(&SecretString::from("wrong horse battery".to_owned()), &hash).unwrap()
        );
        assert!(verify_password(&password, &StoredPasswordHash("not a hash".into())).is_err());
        assert!(hash_password(&SecretString::from("short".to_owned())).is_err());
        assert!(equalizer_hash().is_some());
    }
}
