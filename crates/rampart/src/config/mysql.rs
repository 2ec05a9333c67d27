//! The `[mysql]` section: the optional MySQL/MariaDB listener (off unless `mysql.listen` is
//! set).

use super::ConfigError;
use super::database::{ListenerSection, listener_keys};
use rampart_mysql::MysqlSettings;
use std::net::SocketAddr;

pub(super) type MysqlSection = ListenerSection;

/// The listener's address (none: no listener) and its settings.
#[derive(Debug, Clone, Default)]
pub struct MysqlConfig {
    pub listen: Option<SocketAddr>,
    pub settings: MysqlSettings,
}

pub(super) fn mysql_config(
    section: &MysqlSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<MysqlConfig, ConfigError> {
    let keys = listener_keys("mysql", section, env_lookup, file_name)?;
    let mut config = MysqlConfig {
        listen: keys.listen,
        ..MysqlConfig::default()
    };
    if let Some(allow) = keys.allow_plain_loopback {
        config.settings.allow_plain_loopback = allow;
    }
    if let Some(grace) = keys.login_grace_time {
        config.settings.login_grace_time = grace;
    }
    Ok(config)
}
