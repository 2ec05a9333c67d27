//! The `[redis]` section: the optional Redis listener (off unless `redis.listen` is set).

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use rampart_redis::{DenyList, RedisSettings};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RedisSection {
    listen: Option<String>,
    allow_plain_loopback: Option<bool>,
    login_grace_time: Option<String>,
    deny_commands: Option<String>,
}

/// The listener's address (none: no listener) and its settings.
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    pub listen: Option<SocketAddr>,
    pub settings: RedisSettings,
}

pub(super) fn redis_config(
    section: &RedisSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<RedisConfig, ConfigError> {
    let mut config = RedisConfig::default();
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    if let Some(Sourced { value, source }) = get(
        "redis.listen",
        "RAMPART_REDIS_LISTEN",
        section.listen.clone(),
    ) {
        config.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "redis.listen (from {source}): {value:?} is not an IP address and port, such as 127.0.0.1:6380"
            ))
        })?);
    }
    if let Some(Sourced { value, source }) = get(
        "redis.allow_plain_loopback",
        "RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK",
        section.allow_plain_loopback.map(|b| b.to_string()),
    ) {
        config.settings.allow_plain_loopback = match value.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError(format!(
                    "redis.allow_plain_loopback (from {source}): expected true or false"
                )));
            }
        };
    }
    if let Some(Sourced { value, source }) = get(
        "redis.login_grace_time",
        "RAMPART_REDIS_LOGIN_GRACE_TIME",
        section.login_grace_time.clone(),
    ) {
        config.settings.login_grace_time = parse_duration("redis.login_grace_time", &value)
            .map_err(|err| ConfigError(format!("redis.login_grace_time (from {source}): {err}")))?;
    }
    if let Some(Sourced { value, source }) = get(
        "redis.deny_commands",
        "RAMPART_REDIS_DENY_COMMANDS",
        section.deny_commands.clone(),
    ) {
        config.settings.deny = DenyList::parse(&value)
            .map_err(|err| ConfigError(format!("redis.deny_commands (from {source}): {err}")))?;
    }
    Ok(config)
}
