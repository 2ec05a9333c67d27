//! Users' own passwords: Argon2id hashes in PHC form, never vault entries (they are verified, not
//! used, so nothing needs to read them back).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rampart_core::{ExposeSecret, InvalidInput, SecretString};

/// The shortest password Rampart accepts for a person.
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;

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
    Argon2::default()
        .hash_password(text.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| InvalidInput::new(format!("cannot hash the password: {err}")))
}

/// Whether `password` matches `stored`. A malformed stored hash is a damaged store, not a
/// wrong password: it must not count toward anyone's lockout.
pub fn verify_password(password: &SecretString, stored: &str) -> crate::Result<bool> {
    let hash = PasswordHash::new(stored)
        .map_err(|_| crate::StoreError::Corrupt("users.password_hash".into()))?;
    let bytes = password.expose_secret().as_bytes();
    Ok(
        bytes.len() <= MAX_PASSWORD_BYTES
            && Argon2::default().verify_password(bytes, &hash).is_ok(),
    )
}

/// Spends what checking a real password costs, for a login name with no password: an attacker
/// timing the answer cannot tell unknown users from wrong passwords (A2). Runs like
/// [`verify_password_off_runtime`], so it costs the same and blocks no async thread either.
pub async fn burn_password_check(password: &SecretString) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password(&SecretString::from("rampart-timing-equalizer".to_owned())).ok()
    });
    if let Some(hash) = dummy {
        // Only the time it takes matters.
        let _ = verify_password_off_runtime(password, hash.clone()).await;
    }
}

/// Argon2id checks running at once: one core stays free for relayed sessions (at least one).
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// [`verify_password`] for async callers: Argon2id (19 MiB, tens of milliseconds of CPU) runs
/// on the blocking pool, never on an async worker thread (where it would stall every session
/// the thread carries), and only as many at once as [`hashing_slots`] allows; the rest wait
/// their turn without holding a thread. A check that cannot run is an error, never a
/// mismatch.
pub async fn verify_password_off_runtime(
    password: &SecretString,
    stored: String,
) -> crate::Result<bool> {
    let _slot = hashing_slots()
        .acquire()
        .await
        .map_err(|err| crate::StoreError::PasswordCheck(err.to_string()))?;
    let password = password.clone();
    tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(|err| crate::StoreError::PasswordCheck(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_hide_the_password() {
        let password = SecretString::from("correct horse battery".to_owned());
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&password, &hash).unwrap());
        assert!(
            !verify_password(&SecretString::from("wrong horse battery".to_owned()), &hash).unwrap()
        );
        assert!(verify_password(&password, "not a hash").is_err());
        assert!(hash_password(&SecretString::from("short".to_owned())).is_err());
    }

    #[tokio::test]
    async fn checks_off_the_runtime_agree_with_checks_on_it() {
        let password = SecretString::from("correct horse battery".to_owned());
        let hash = hash_password(&password).unwrap();
        assert!(
            verify_password_off_runtime(&password, hash.clone())
                .await
                .unwrap()
        );
        let wrong = SecretString::from("wrong horse battery".to_owned());
        assert!(!verify_password_off_runtime(&wrong, hash).await.unwrap());
        burn_password_check(&wrong).await;
    }
}
