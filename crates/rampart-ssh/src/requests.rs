//! The environment a client asks for before its session starts, answered in the connection's
//! handler as each request arrives.
//!
//! russh keeps one "wants a reply" flag per channel, set when a request is read. An answer sent
//! later from the channel's task (through the connection's handle) goes to whichever request
//! was read last, or nowhere: a client that pipelines requests and waits for each reply then
//! waits forever. Answers given in the handler go out in order, one per request that wants one.
//! The relay takes the variables kept when the channel starts something.

use crate::relay::remember_env;
use russh::ChannelId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The variables kept for one channel, shared by the handler (which fills it) and the channel's
/// relay task (which takes it at the start request).
pub(crate) type SharedEnvironment = Arc<Mutex<Vec<(String, String)>>>;

/// Per channel that has not started anything yet, the environment kept so far (keyed by
/// channel id; generic only so tests can name channels).
pub(crate) struct PendingEnvironments<K = ChannelId>(HashMap<K, SharedEnvironment>);

impl<K> Default for PendingEnvironments<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq> PendingEnvironments<K> {
    /// A new session channel: its environment starts empty.
    pub(crate) fn opened(&mut self, channel: K) -> SharedEnvironment {
        let environment = SharedEnvironment::default();
        self.0.insert(channel, environment.clone());
        environment
    }

    /// One `env` request: whether the variable was kept (allowed, within the bounds, and the
    /// channel has not started yet).
    pub(crate) fn request(&mut self, channel: K, name: &str, value: &str) -> bool {
        let Some(environment) = self.0.get(&channel) else {
            return false;
        };
        match environment.lock() {
            Ok(mut environment) => {
                remember_env(&mut environment, name.to_owned(), value.to_owned())
            }
            // Nothing panics while holding it; refuse rather than guess.
            Err(_) => false,
        }
    }

    /// The channel started something or closed: later requests are refused.
    pub(crate) fn done(&mut self, channel: K) {
        self.0.remove(&channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fill_the_channels_environment_until_it_starts() {
        let mut pending = PendingEnvironments::<u32>::default();
        let channel = 7;
        let environment = pending.opened(channel);
        assert!(pending.request(channel, "LANG", "C.UTF-8"));
        assert!(!pending.request(channel, "LD_PRELOAD", "/tmp/x.so"));
        assert!(!pending.request(8, "LANG", "C"));
        pending.done(channel);
        assert!(!pending.request(channel, "TZ", "UTC"));
        assert_eq!(
            *environment.lock().unwrap(),
            [("LANG".to_owned(), "C.UTF-8".to_owned())]
        );
    }
}
