//! The one place where login passwords are checked: Argon2id (19 MiB, tens of milliseconds of
//! CPU) runs on tokio's blocking pool, never on an async worker thread, where it would stall
//! every session that thread carries; and only as many checks run at once as the process has
//! cores to spare (one core stays for relayed sessions, at least one check runs). The rest wait
//! their turn without holding a thread.
//!
//! INVARIANT: every login attempt with a password costs exactly one check here, whether the
//! user exists, is locked, refused by the rules, or simply typed the wrong password (A2). The
//! counter in [`PasswordChecks`] lets the tests see that.

use rampart_core::SecretString;
use rampart_store::StoredPasswordHash;
use rampart_store::passwords::{self, equalizer_hash, verify_password};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Argon2id checks running at once in this process, whichever front asked: one core stays free
/// for relayed sessions (at least one check runs).
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(slots_for(available_cores())))
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Checks at once on a machine with `cores` cores.
fn slots_for(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// A password check that could not run (the blocking pool, or a damaged stored hash).
#[derive(Debug)]
pub(crate) struct CheckFailed(pub(crate) String);

/// Runs password checks for one authenticator, and counts them.
#[derive(Debug, Clone, Default)]
pub(crate) struct PasswordChecks {
    run: Arc<AtomicU64>,
}

impl PasswordChecks {
    /// Whether `password` matches `stored`. A check that cannot run, or a stored hash that
    /// cannot be read, is an error: the store is damaged, the attempt is not a wrong password.
    pub(crate) async fn verify(
        &self,
        password: &SecretString,
        stored: StoredPasswordHash,
    ) -> Result<bool, CheckFailed> {
        self.run.fetch_add(1, Ordering::Relaxed);
        let _slot = hashing_slots()
            .acquire()
            .await
            .map_err(|err| CheckFailed(err.to_string()))?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .map_err(|err| CheckFailed(err.to_string()))?
            .map_err(|err| CheckFailed(err.to_string()))
    }

    /// Spends what checking a real password costs, for an attempt that has no password to check
    /// (unknown user, locked, refused by the rules): the answer and its timing tell nothing.
    /// The attempted password is not used: however long or short, it costs the same.
    pub(crate) async fn burn(&self) {
        static EQUALIZER: std::sync::OnceLock<Option<StoredPasswordHash>> =
            std::sync::OnceLock::new();
        let equalizer = EQUALIZER.get_or_init(equalizer_hash);
        let probe = SecretString::from("not the equalizer password".to_owned());
        match equalizer {
            Some(hash) => {
                let _ = self.verify(&probe, hash.clone()).await;
            }
            None => tracing::error!("cannot make the timing equalizer hash"),
        }
    }

    /// How many checks this authenticator has run (real ones and burnt ones alike).
    pub(crate) fn count(&self) -> u64 {
        self.run.load(Ordering::Relaxed)
    }
}

/// Whether `password` is too long to be anyone's: refused without being checked (after the same
/// cost as a check).
pub(crate) fn too_long(password: &SecretString) -> bool {
    use rampart_core::ExposeSecret;
    password.expose_secret().len() > passwords::MAX_PASSWORD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_always_stays_free_and_one_check_always_runs() {
        assert_eq!(slots_for(1), 1);
        assert_eq!(slots_for(2), 1);
        assert_eq!(slots_for(8), 7);
    }

    #[tokio::test]
    async fn checks_off_the_runtime_agree_with_checks_on_it() {
        let checks = PasswordChecks::default();
        let password = SecretString::from("correct horse battery".to_owned());
        let hash = StoredPasswordHash::from_phc(passwords::hash_password(&password).unwrap());
        assert!(checks.verify(&password, hash.clone()).await.unwrap());
        let wrong = SecretString::from("wrong horse battery".to_owned());
        assert!(!checks.verify(&wrong, hash).await.unwrap());
        checks.burn().await;
        assert_eq!(checks.count(), 3);
    }
}
