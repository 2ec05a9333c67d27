//! Self-enrolment of a TOTP second factor, between its two requests: the secret made for a user
//! waits here (in memory, zeroized when dropped) until they confirm it with a code from their
//! app, for at most [`PENDING_LIFETIME`]; a new start replaces it. At most [`MAX_PENDING`] users
//! at once. The secret goes to the user's own browser only (the `otpauth://` URI), never to an
//! administrator.

use rampart_core::Name;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const PENDING_LIFETIME: Duration = Duration::from_secs(10 * 60);
const MAX_PENDING: usize = 1024;

type Secret = Zeroizing<Vec<u8>>;

#[derive(Default)]
pub struct PendingTotp {
    pending: Mutex<HashMap<Name, (Secret, Instant)>>,
}

impl std::fmt::Debug for PendingTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("PendingTotp").finish_non_exhaustive()
    }
}

impl PendingTotp {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<Name, (Secret, Instant)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `secret` for `user` until confirmed; `false` when too many users are enrolling.
    pub fn start(&self, user: Name, secret: Secret, now: Instant) -> bool {
        let mut pending = self.locked();
        pending.retain(|_, (_, at)| now.duration_since(*at) < PENDING_LIFETIME);
        if pending.len() >= MAX_PENDING && !pending.contains_key(&user) {
            return false;
        }
        pending.insert(user, (secret, now));
        true
    }

    /// The secret waiting for `user`, taken (a wrong code means starting again).
    pub fn take(&self, user: &Name, now: Instant) -> Option<Secret> {
        self.locked()
            .remove(user)
            .filter(|(_, at)| now.duration_since(*at) < PENDING_LIFETIME)
            .map(|(secret, _)| secret)
    }
}
