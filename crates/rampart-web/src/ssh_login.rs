//! `rampart login`'s device flow, the listener's side: a client hands in a public key and gets a
//! secret device code (to poll with) and a short user code (to type in the portal); a user
//! signed in to the portal approves or denies that code; the approval signs the key for the
//! approving user, and the next poll hands the certificate out, once.
//!
//! Requests live in memory only (a restart forgets them; the client starts again): bounded in
//! number overall and per source address, each for [`REQUEST_LIFETIME`]. The device code is 32
//! random bytes; the user code 8 characters from a 32-letter alphabet (40 bits: a guessed code
//! only ever hands the guesser's own certificate to someone else's key).

use rampart_core::Name;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a request waits for its approval.
pub const REQUEST_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Requests waiting at once, in all and per source address.
const MAX_REQUESTS: usize = 256;
const MAX_REQUESTS_PER_SOURCE: usize = 8;
/// Letters of user codes: no 0/O or 1/I look-alikes; 32 of them, so a random byte picks one
/// without bias.
const USER_CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// What became of a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    Pending,
    /// Approved by `user`: the certificate, in `authorized_keys` form.
    Approved {
        user: Name,
        certificate: String,
    },
    Denied,
}

#[derive(Debug)]
struct Request {
    user_code: String,
    public_key: String,
    fingerprint: String,
    source: IpAddr,
    created: Instant,
    outcome: Outcome,
}

/// A new request, as the client sees it.
#[derive(Debug)]
pub struct Started {
    pub device_code: String,
    pub user_code: String,
}

/// A request as the approving user sees it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub public_key: String,
    pub fingerprint: String,
    pub source: IpAddr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SshLoginError {
    #[error("too many logins are waiting for approval; try again in a few minutes")]
    Busy,
    #[error("no login waits for that code (wrong, expired or already answered)")]
    Unknown,
    #[error("no randomness from the operating system")]
    Randomness,
}

/// The requests waiting for approval (shared by the listener's handlers).
#[derive(Debug, Default)]
pub struct SshLogins {
    /// By device code.
    requests: Mutex<HashMap<String, Request>>,
}

impl SshLogins {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Request>> {
        // A panic while holding the lock cannot leave a request half-changed: recover.
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a request for `public_key` (already parsed) from `source`.
    pub fn start(
        &self,
        public_key: String,
        fingerprint: String,
        source: IpAddr,
        now: Instant,
    ) -> Result<Started, SshLoginError> {
        let mut requests = self.locked();
        requests.retain(|_, request| now.duration_since(request.created) < REQUEST_LIFETIME);
        let from_source = requests.values().filter(|r| r.source == source).count();
        if requests.len() >= MAX_REQUESTS || from_source >= MAX_REQUESTS_PER_SOURCE {
            return Err(SshLoginError::Busy);
        }
        let mut device = [0u8; 32];
        getrandom::fill(&mut device).map_err(|_| SshLoginError::Randomness)?;
        let device_code = device
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let mut letters = [0u8; 8];
        getrandom::fill(&mut letters).map_err(|_| SshLoginError::Randomness)?;
        let code: String = letters
            .iter()
            .map(|b| {
                char::from(
                    USER_CODE_ALPHABET
                        .get(usize::from(*b) % USER_CODE_ALPHABET.len())
                        .copied()
                        .unwrap_or(b'X'),
                )
            })
            .collect();
        let user_code = format!(
            "{}-{}",
            code.get(..4).unwrap_or(""),
            code.get(4..).unwrap_or("")
        );
        requests.insert(
            device_code.clone(),
            Request {
                user_code: user_code.clone(),
                public_key,
                fingerprint,
                source,
                created: now,
                outcome: Outcome::Pending,
            },
        );
        Ok(Started {
            device_code,
            user_code,
        })
    }

    /// The request waiting under `user_code`, for the approval page.
    pub fn pending(&self, user_code: &str, now: Instant) -> Result<Pending, SshLoginError> {
        let requests = self.locked();
        let request = find_pending(&requests, user_code, now)?;
        Ok(Pending {
            public_key: request.public_key.clone(),
            fingerprint: request.fingerprint.clone(),
            source: request.source,
        })
    }

    /// Answers the request waiting under `user_code`: `approved` with the certificate signed for
    /// `user`, or denied (`None`). A request is answered once.
    pub fn answer(
        &self,
        user_code: &str,
        answer: Option<(Name, String)>,
        now: Instant,
    ) -> Result<(), SshLoginError> {
        let mut requests = self.locked();
        let device_code = requests
            .iter()
            .find(|(_, r)| {
                matches!(r.outcome, Outcome::Pending)
                    && r.user_code == user_code
                    && now.duration_since(r.created) < REQUEST_LIFETIME
            })
            .map(|(device, _)| device.clone())
            .ok_or(SshLoginError::Unknown)?;
        let request = requests
            .get_mut(&device_code)
            .ok_or(SshLoginError::Unknown)?;
        request.outcome = match answer {
            Some((user, certificate)) => Outcome::Approved { user, certificate },
            None => Outcome::Denied,
        };
        Ok(())
    }

    /// What became of the request `device_code`; an answered one is handed out once and
    /// forgotten.
    pub fn poll(&self, device_code: &str, now: Instant) -> Result<Outcome, SshLoginError> {
        let mut requests = self.locked();
        let Some(request) = requests.get(device_code) else {
            return Err(SshLoginError::Unknown);
        };
        if now.duration_since(request.created) >= REQUEST_LIFETIME {
            requests.remove(device_code);
            return Err(SshLoginError::Unknown);
        }
        match request.outcome {
            Outcome::Pending => Ok(Outcome::Pending),
            _ => Ok(requests
                .remove(device_code)
                .map(|r| r.outcome)
                .unwrap_or(Outcome::Denied)),
        }
    }
}

fn find_pending<'a>(
    requests: &'a HashMap<String, Request>,
    user_code: &str,
    now: Instant,
) -> Result<&'a Request, SshLoginError> {
    requests
        .values()
        .find(|r| {
            matches!(r.outcome, Outcome::Pending)
                && r.user_code == user_code
                && now.duration_since(r.created) < REQUEST_LIFETIME
        })
        .ok_or(SshLoginError::Unknown)
}

/// A user code as a person may type it: case and spaces ignored, the dash optional.
pub fn normalize_user_code(text: &str) -> String {
    let letters: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .take(16)
        .collect();
    if letters.len() == 8 {
        format!(
            "{}-{}",
            letters.get(..4).unwrap_or(""),
            letters.get(4..).unwrap_or("")
        )
    } else {
        letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn alice() -> Name {
        Name::parse("user", "alice").unwrap()
    }

    #[test]
    fn a_request_is_answered_once_and_handed_out_once() {
        let logins = SshLogins::default();
        let now = Instant::now();
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let started = logins
            .start("ssh-ed25519 AAAA".into(), "SHA256:x".into(), source, now)
            .unwrap();
        assert!(matches!(
            logins.poll(&started.device_code, now),
            Ok(Outcome::Pending)
        ));
        let typed = normalize_user_code(&started.user_code.to_lowercase().replace('-', " "));
        assert_eq!(typed, started.user_code);
        logins
            .answer(&typed, Some((alice(), "cert".into())), now)
            .unwrap();
        assert_eq!(
            logins.answer(&typed, None, now),
            Err(SshLoginError::Unknown),
            "answered once"
        );
        assert!(matches!(
            logins.poll(&started.device_code, now),
            Ok(Outcome::Approved { .. })
        ));
        assert_eq!(
            logins.poll(&started.device_code, now).unwrap_err(),
            SshLoginError::Unknown,
            "handed out once"
        );
    }

    #[test]
    fn requests_expire_and_are_bounded_per_source() {
        let logins = SshLogins::default();
        let now = Instant::now();
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let first = logins.start("k".into(), "f".into(), source, now).unwrap();
        for _ in 1..MAX_REQUESTS_PER_SOURCE {
            logins.start("k".into(), "f".into(), source, now).unwrap();
        }
        assert_eq!(
            logins
                .start("k".into(), "f".into(), source, now)
                .unwrap_err(),
            SshLoginError::Busy
        );
        let later = now + REQUEST_LIFETIME;
        assert_eq!(
            logins.pending(&first.user_code, later).unwrap_err(),
            SshLoginError::Unknown
        );
        assert_eq!(
            logins.poll(&first.device_code, later).unwrap_err(),
            SshLoginError::Unknown
        );
        assert!(logins.start("k".into(), "f".into(), source, later).is_ok());
    }
}
