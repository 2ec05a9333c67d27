//! What the database listener sections (`[postgres]`, `[mysql]`) share: `listen`,
//! `allow_plain_loopback` and `login_grace_time`, each also from `RAMPART_<SECTION>_<KEY>`.

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenerSection {
    listen: Option<String>,
    allow_plain_loopback: Option<bool>,
    login_grace_time: Option<String>,
}

/// A database listener's keys as given (none given: `None`).
#[derive(Debug, Default)]
pub(super) struct ListenerKeys {
    pub listen: Option<SocketAddr>,
    pub allow_plain_loopback: Option<bool>,
    pub login_grace_time: Option<Duration>,
}

/// Reads the section `name` (`postgres`, `mysql`) from the file and the environment.
pub(super) fn listener_keys(
    name: &str,
    section: &ListenerSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<ListenerKeys, ConfigError> {
    let env = |key: &str| format!("RAMPART_{}_{}", name.to_uppercase(), key.to_uppercase());
    let mut keys = ListenerKeys::default();
    let key = format!("{name}.listen");
    if let Some(Sourced { value, source }) = pick(
        &key,
        ("", None),
        &env("listen"),
        env_lookup,
        section.listen.clone(),
        file_name,
    ) {
        keys.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "{key} (from {source}): {value:?} is not an IP address and port, such as 127.0.0.1:5433"
            ))
        })?);
    }
    let key = format!("{name}.allow_plain_loopback");
    if let Some(Sourced { value, source }) = pick(
        &key,
        ("", None),
        &env("allow_plain_loopback"),
        env_lookup,
        section.allow_plain_loopback.map(|b| b.to_string()),
        file_name,
    ) {
        keys.allow_plain_loopback = Some(match value.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError(format!(
                    "{key} (from {source}): expected true or false"
                )));
            }
        });
    }
    let key = format!("{name}.login_grace_time");
    if let Some(Sourced { value, source }) = pick(
        &key,
        ("", None),
        &env("login_grace_time"),
        env_lookup,
        section.login_grace_time.clone(),
        file_name,
    ) {
        keys.login_grace_time = Some(
            parse_duration(&key, &value)
                .map_err(|err| ConfigError(format!("{key} (from {source}): {err}")))?,
        );
    }
    Ok(keys)
}
