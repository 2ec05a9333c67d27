//! The `[postgres]` section: the optional PostgreSQL listener (off unless `postgres.listen` is
//! set).

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use rampart_postgres::PostgresSettings;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PostgresSection {
    listen: Option<String>,
    allow_plain_loopback: Option<bool>,
    login_grace_time: Option<String>,
}

/// The listener's address (none: no listener) and its settings.
#[derive(Debug, Clone, Default)]
pub struct PostgresConfig {
    pub listen: Option<SocketAddr>,
    pub settings: PostgresSettings,
}

pub(super) fn postgres_config(
    section: &PostgresSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<PostgresConfig, ConfigError> {
    let mut config = PostgresConfig::default();
    if let Some(Sourced { value, source }) = pick(
        "postgres.listen",
        ("", None),
        "RAMPART_POSTGRES_LISTEN",
        env_lookup,
        section.listen.clone(),
        file_name,
    ) {
        config.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "postgres.listen (from {source}): {value:?} is not an IP address and port, such as 127.0.0.1:5433"
            ))
        })?);
    }
    if let Some(Sourced { value, source }) = pick(
        "postgres.allow_plain_loopback",
        ("", None),
        "RAMPART_POSTGRES_ALLOW_PLAIN_LOOPBACK",
        env_lookup,
        section.allow_plain_loopback.map(|b| b.to_string()),
        file_name,
    ) {
        config.settings.allow_plain_loopback = match value.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError(format!(
                    "postgres.allow_plain_loopback (from {source}): expected true or false"
                )));
            }
        };
    }
    if let Some(Sourced { value, source }) = pick(
        "postgres.login_grace_time",
        ("", None),
        "RAMPART_POSTGRES_LOGIN_GRACE_TIME",
        env_lookup,
        section.login_grace_time.clone(),
        file_name,
    ) {
        config.settings.login_grace_time = parse_duration("postgres.login_grace_time", &value)
            .map_err(|err| {
                ConfigError(format!("postgres.login_grace_time (from {source}): {err}"))
            })?;
    }
    Ok(config)
}
