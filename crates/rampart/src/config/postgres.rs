//! The `[postgres]` section: the optional PostgreSQL listener (off unless `postgres.listen` is
//! set).

use super::ConfigError;
use super::database::{ListenerSection, listener_keys};
use rampart_postgres::PostgresSettings;
use std::net::SocketAddr;

pub(super) type PostgresSection = ListenerSection;

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
    let keys = listener_keys("postgres", section, env_lookup, file_name)?;
    let mut config = PostgresConfig {
        listen: keys.listen,
        ..PostgresConfig::default()
    };
    if let Some(allow) = keys.allow_plain_loopback {
        config.settings.allow_plain_loopback = allow;
    }
    if let Some(grace) = keys.login_grace_time {
        config.settings.login_grace_time = grace;
    }
    Ok(config)
}
