//! Network domains' settings: the `[agent]` section (the optional listener dial-out agents
//! connect to, off unless `agent.listen` is set) and the `[gateway]` section (how often the
//! SSH-hop gateways are health-checked).

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentSection {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewaySection {
    health_interval: Option<String>,
}

/// The agent listener's address (none: no listener), and the gateways' health-check interval.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub listen: Option<SocketAddr>,
    pub gateway_health_interval: Duration,
}

/// How often gateways are health-checked unless `gateway.health_interval` says otherwise.
pub const DEFAULT_GATEWAY_HEALTH_INTERVAL: Duration = Duration::from_secs(30);

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: None,
            gateway_health_interval: DEFAULT_GATEWAY_HEALTH_INTERVAL,
        }
    }
}

pub(super) fn agent_config(
    section: &AgentSection,
    gateway: &GatewaySection,
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
    if let Some(Sourced { value, source }) = pick(
        "gateway.health_interval",
        ("", None),
        "RAMPART_GATEWAY_HEALTH_INTERVAL",
        env_lookup,
        gateway.health_interval.clone(),
        file_name,
    ) {
        let interval = parse_duration("gateway.health_interval", &value).map_err(|err| {
            ConfigError(format!("gateway.health_interval (from {source}): {err}"))
        })?;
        if interval < Duration::from_secs(1) {
            return Err(ConfigError(format!(
                "gateway.health_interval (from {source}): at least 1s"
            )));
        }
        config.gateway_health_interval = interval;
    }
    Ok(config)
}
