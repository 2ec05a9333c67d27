//! Passkey ceremonies waiting for the browser's answer, in memory: a login's challenge (after
//! the password, or passwordless) under a random id, and a user's registration under their
//! name. Each is taken once (an answer is checked at most once: no replay), lives 5 minutes,
//! and the maps are bounded in all and per source address, so the network cannot grow them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_auth::PendingSecondFactor;
use rampart_auth::passkeys::{
    DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration,
};
use rampart_core::Name;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a challenge may be answered.
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(300);
/// Logins waiting at once, in all and from one source address.
const MAX_LOGINS: usize = 1024;
const MAX_LOGINS_PER_SOURCE: usize = 16;
/// Registrations waiting at once (one per user).
const MAX_REGISTRATIONS: usize = 256;

/// A login waiting for a passkey's answer.
pub enum PasskeyLogin {
    /// After the password: the first factor that passed and the challenge.
    SecondFactor {
        pending: Box<PendingSecondFactor>,
        state: PasskeyAuthentication,
    },
    /// Passwordless: any registered discoverable passkey may answer.
    Passwordless(DiscoverableAuthentication),
}

impl std::fmt::Debug for PasskeyLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            PasskeyLogin::SecondFactor { .. } => "SecondFactor",
            PasskeyLogin::Passwordless(_) => "Passwordless",
        };
        f.debug_struct("PasskeyLogin")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

struct Waiting<T> {
    value: T,
    source: IpAddr,
    at: Instant,
}

/// The ceremonies waiting on one listener.
#[derive(Default)]
pub struct PasskeyCeremonies {
    logins: Mutex<HashMap<String, Waiting<PasskeyLogin>>>,
    registrations: Mutex<HashMap<Name, Waiting<PasskeyRegistration>>>,
}

impl std::fmt::Debug for PasskeyCeremonies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyCeremonies").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn alive(at: Instant, now: Instant) -> bool {
    now.duration_since(at) < CEREMONY_LIFETIME
}

/// The address a login counts against: IPv6 by its /64 (one host usually has a whole one).
fn source_key(source: IpAddr) -> IpAddr {
    match source.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// A fresh login id: 32 bytes from the operating system's CSPRNG, base64url.
fn new_id() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

impl PasskeyCeremonies {
    /// Keeps `login` until answered; its id, or `None` when too many wait (in all or from
    /// `source`).
    pub fn start_login(&self, login: PasskeyLogin, source: IpAddr, now: Instant) -> Option<String> {
        let source = source_key(source);
        let mut logins = lock(&self.logins);
        logins.retain(|_, waiting| alive(waiting.at, now));
        let from_source = logins.values().filter(|w| w.source == source).count();
        if logins.len() >= MAX_LOGINS || from_source >= MAX_LOGINS_PER_SOURCE {
            return None;
        }
        let id = new_id()?;
        logins.insert(
            id.clone(),
            Waiting {
                value: login,
                source,
                at: now,
            },
        );
        Some(id)
    }

    /// The login waiting under `id`, taken: a second answer finds nothing.
    pub fn take_login(&self, id: &str, now: Instant) -> Option<PasskeyLogin> {
        lock(&self.logins)
            .remove(id)
            .filter(|waiting| alive(waiting.at, now))
            .map(|waiting| waiting.value)
    }

    /// Keeps `user`'s registration (replacing one they started before); `false` when too many
    /// users are registering.
    pub fn start_registration(
        &self,
        user: Name,
        state: PasskeyRegistration,
        source: IpAddr,
        now: Instant,
    ) -> bool {
        let mut registrations = lock(&self.registrations);
        registrations.retain(|_, waiting| alive(waiting.at, now));
        if registrations.len() >= MAX_REGISTRATIONS && !registrations.contains_key(&user) {
            return false;
        }
        registrations.insert(
            user,
            Waiting {
                value: state,
                source,
                at: now,
            },
        );
        true
    }

    /// `user`'s registration, taken (a failed answer means starting again).
    pub fn take_registration(&self, user: &Name, now: Instant) -> Option<PasskeyRegistration> {
        lock(&self.registrations)
            .remove(user)
            .filter(|waiting| alive(waiting.at, now))
            .map(|waiting| waiting.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwordless() -> PasskeyLogin {
        let passkeys = rampart_auth::Passkeys::new("localhost", "https://localhost:8443").unwrap();
        let store_free = passkeys_challenge(&passkeys);
        PasskeyLogin::Passwordless(store_free)
    }

    fn passkeys_challenge(passkeys: &rampart_auth::Passkeys) -> DiscoverableAuthentication {
        rampart_auth::passkeys::discoverable_challenge(passkeys)
            .unwrap()
            .1
    }

    #[test]
    fn a_login_is_taken_once_expires_and_is_bounded_per_source() {
        let ceremonies = PasskeyCeremonies::default();
        let now = Instant::now();
        let source: IpAddr = "192.0.2.1".parse().unwrap();
        let id = ceremonies.start_login(passwordless(), source, now).unwrap();
        assert!(ceremonies.take_login(&id, now).is_some());
        assert!(ceremonies.take_login(&id, now).is_none(), "taken once");
        let late = ceremonies.start_login(passwordless(), source, now).unwrap();
        assert!(
            ceremonies
                .take_login(&late, now + CEREMONY_LIFETIME)
                .is_none(),
            "expired"
        );
        for _ in 0..MAX_LOGINS_PER_SOURCE {
            assert!(
                ceremonies
                    .start_login(passwordless(), source, now)
                    .is_some()
            );
        }
        assert!(
            ceremonies
                .start_login(passwordless(), source, now)
                .is_none()
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(ceremonies.start_login(passwordless(), other, now).is_some());
        // IPv6 counts by /64: a host cannot take every slot by changing its address.
        for n in 0..MAX_LOGINS_PER_SOURCE {
            let address: IpAddr = format!("2001:db8::{:x}", n + 1).parse().unwrap();
            assert!(
                ceremonies
                    .start_login(passwordless(), address, now)
                    .is_some()
            );
        }
        let same_64: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert!(
            ceremonies
                .start_login(passwordless(), same_64, now)
                .is_none()
        );
    }
}
