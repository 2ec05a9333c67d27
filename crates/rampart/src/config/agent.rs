//! The `[agent]` section: the optional listener dial-out agents connect to (off unless
//! `agent.listen` is set).

use super::{ConfigError, Sourced, pick};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentSection {
    listen: Option<String>,
}

/// The agent listener's address (none: no listener).
#[derive(Debug, Clone, Default)]
pub struct AgentConfig {
    pub listen: Option<SocketAddr>,
}

pub(super) fn agent_config(
    section: &AgentSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<AgentConfig, ConfigError> {
    let mut config = AgentConfig::default();
    if let Some(Sourced { value, source }) = pick(
        "agent.listen",
        ("", None),
        "RAMPART_AGENT_LISTEN",
        env_lookup,
        section.listen.clone(),
        file_name,
    ) {
        config.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "agent.listen (from {source}): {value:?} is not an IP address and port, such as 0.0.0.0:2223"
            ))
        })?);
    }
    Ok(config)
}
