//! Web approval at SSH login: keyboard-interactive shows a one-time link to the portal; the
//! user, signed in there (with the second factor when they have one), approves or denies; the
//! waiting SSH login completes or is refused. Offered only when `auth.ssh_web_approval` is on,
//! as a first factor for any well-formed login name (whether or not the user exists: the link
//! shows nothing to anyone but that user), after public key and password.
//!
//! Requests live in memory in the gateway (the web listener answers them through
//! `Gateway::web_approvals`): a random 128-bit id, the user the login names, the source, at
//! most [`MAX_WAITING`] at once; each waits at most the configured timeout, which stays below
//! the login grace time (the connection is closed then anyway).

use rampart_core::Name;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Requests waiting at once.
const MAX_WAITING: usize = 256;

/// What the user answered in the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Approved from a browser session that used the second factor (`mfa`) or not.
    Approved {
        mfa: bool,
    },
    Denied,
}

#[derive(Debug)]
struct Waiting {
    user: Name,
    login: String,
    source: IpAddr,
    created: Instant,
    answer: watch::Sender<Option<Answer>>,
}

/// A waiting login as its user sees it in the portal.
#[derive(Debug, Clone)]
pub struct WaitingLogin {
    /// The SSH login name (`alice@root@web-01`).
    pub login: String,
    pub source: IpAddr,
}

/// The logins waiting for a web approval (shared by the SSH listener and the web listener).
#[derive(Debug)]
pub struct WebApprovals {
    waiting: Mutex<HashMap<String, Waiting>>,
    timeout: Duration,
}

impl WebApprovals {
    pub fn new(timeout: Duration) -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// How long a login waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new request for `user`'s login: its id (for the link) and where its answer arrives.
    /// `None` when too many wait, or without randomness.
    pub(crate) fn request(
        &self,
        user: Name,
        login: &str,
        source: IpAddr,
    ) -> Option<(String, watch::Receiver<Option<Answer>>)> {
        let now = Instant::now();
        let mut waiting = self.locked();
        waiting.retain(|_, w| now.duration_since(w.created) < self.timeout);
        if waiting.len() >= MAX_WAITING {
            return None;
        }
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let (sender, receiver) = watch::channel(None);
        waiting.insert(
            id.clone(),
            Waiting {
                user,
                login: login.chars().take(200).collect(),
                source,
                created: now,
                answer: sender,
            },
        );
        Some((id, receiver))
    }

    /// The login waiting under `id`, if it is `user`'s (anyone else: `None`, as for no login).
    pub fn show(&self, id: &str, user: &Name) -> Option<WaitingLogin> {
        let waiting = self.locked();
        waiting
            .get(id)
            .filter(|w| &w.user == user && w.created.elapsed() < self.timeout)
            .map(|w| WaitingLogin {
                login: w.login.clone(),
                source: w.source,
            })
    }

    /// `user` answers the login waiting under `id` (theirs only; once).
    pub fn answer(&self, id: &str, user: &Name, answer: Answer) -> bool {
        let mut waiting = self.locked();
        let theirs = waiting
            .get(id)
            .is_some_and(|w| &w.user == user && w.created.elapsed() < self.timeout);
        if !theirs {
            return false;
        }
        waiting
            .remove(id)
            .is_some_and(|w| w.answer.send(Some(answer)).is_ok())
    }

    /// Forgets a request whose login ended (answered, timed out or gone).
    pub(crate) fn forget(&self, id: &str) {
        self.locked().remove(id);
    }
}

/// Waits for the answer to a request, at most `timeout`; `None` when it did not come.
pub(crate) async fn wait(
    mut receiver: watch::Receiver<Option<Answer>>,
    timeout: Duration,
) -> Option<Answer> {
    let answered = tokio::time::timeout(timeout, receiver.wait_for(Option::is_some)).await;
    match answered {
        Ok(Ok(answer)) => *answer,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn name(text: &str) -> Name {
        Name::parse("user", text).unwrap()
    }

    #[tokio::test]
    async fn only_the_named_user_sees_and_answers_a_request_once() {
        let approvals = WebApprovals::new(Duration::from_secs(30));
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (id, receiver) = approvals
            .request(name("alice"), "alice@root@web-01", source)
            .unwrap();
        assert!(approvals.show(&id, &name("bob")).is_none());
        assert!(!approvals.answer(&id, &name("bob"), Answer::Approved { mfa: true }));
        assert_eq!(
            approvals.show(&id, &name("alice")).unwrap().login,
            "alice@root@web-01"
        );
        assert!(approvals.answer(&id, &name("alice"), Answer::Approved { mfa: true }));
        assert!(
            !approvals.answer(&id, &name("alice"), Answer::Denied),
            "once"
        );
        assert_eq!(
            wait(receiver, Duration::from_secs(1)).await,
            Some(Answer::Approved { mfa: true })
        );
    }

    #[tokio::test]
    async fn an_unanswered_request_times_out() {
        let approvals = WebApprovals::new(Duration::from_secs(30));
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (_, receiver) = approvals.request(name("alice"), "alice", source).unwrap();
        assert_eq!(wait(receiver, Duration::from_millis(50)).await, None);
    }
}
