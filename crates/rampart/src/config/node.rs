//! The `[node]` section: this server's name in a cluster of nodes sharing one PostgreSQL store
//! (issue 19), where the others reach it, and how often it says it is alive.

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeSection {
    name: Option<String>,
    advertise: Option<String>,
    heartbeat_interval: Option<String>,
    lost_after: Option<String>,
}

/// This node in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Unique per node (`node.name`; the host name by default). Sessions carry it.
    pub name: String,
    /// The base URL other nodes reach this node's HTTP listener at (`node.advertise`), for
    /// watching its sessions from them; by default the HTTP listener's own address when it is
    /// a specific one.
    pub advertise: Option<String>,
    /// How often the node writes its heartbeat (`node.heartbeat_interval`, 2 s).
    pub heartbeat_interval: Duration,
    /// A node silent this long is declared lost and its sessions ended (`node.lost_after`,
    /// 10 s; at least three heartbeats).
    pub lost_after: Duration,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| rampart_store::nodes::check_node_name(name).is_ok())
        .unwrap_or_else(|| "rampart".to_owned())
}

pub(super) fn node_config(
    section: &NodeSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<NodeConfig, ConfigError> {
    let value = |key: &str, env: &str, from_file: Option<String>| {
        pick(key, ("", None), env, env_lookup, from_file, file_name)
    };
    let name = match value("node.name", "RAMPART_NODE_NAME", section.name.clone()) {
        None => host_name(),
        Some(Sourced { value, source }) => {
            let name = value.trim().to_owned();
            rampart_store::nodes::check_node_name(&name)
                .map_err(|err| ConfigError(format!("{err} (from {source})")))?;
            name
        }
    };
    let advertise = match value(
        "node.advertise",
        "RAMPART_NODE_ADVERTISE",
        section.advertise.clone(),
    ) {
        None => None,
        Some(Sourced { value, source }) => {
            let url = value.trim().trim_end_matches('/').to_owned();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "node.advertise (from {source}): give the node's base URL, e.g. https://10.0.0.7:8443"
                )));
            }
            Some(url)
        }
    };
    let duration = |key: &str, env: &str, from_file: Option<String>, default: Duration| match value(
        key, env, from_file,
    ) {
        None => Ok(default),
        Some(Sourced { value, source }) => parse_duration(key, &value)
            .map_err(|err| ConfigError(format!("{key} (from {source}): {err}"))),
    };
    let heartbeat_interval = duration(
        "node.heartbeat_interval",
        "RAMPART_NODE_HEARTBEAT_INTERVAL",
        section.heartbeat_interval.clone(),
        DEFAULT_HEARTBEAT_INTERVAL,
    )?;
    let lost_after = duration(
        "node.lost_after",
        "RAMPART_NODE_LOST_AFTER",
        section.lost_after.clone(),
        DEFAULT_LOST_AFTER,
    )?;
    if heartbeat_interval < Duration::from_millis(100)
        || heartbeat_interval > Duration::from_secs(60)
    {
        return Err(ConfigError(
            "node.heartbeat_interval: must be between 100ms and 60s".into(),
        ));
    }
    if lost_after < heartbeat_interval.saturating_mul(3) {
        return Err(ConfigError(format!(
            "node.lost_after: must be at least three heartbeats ({}ms), or a node busy for a \
             moment would be declared lost",
            heartbeat_interval.saturating_mul(3).as_millis()
        )));
    }
    Ok(NodeConfig {
        name,
        advertise,
        heartbeat_interval,
        lost_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
        let section: NodeSection = toml::from_str(file).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        node_config(
            &section,
            &|key| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
            "rampart.toml",
        )
    }

    #[test]
    fn a_node_is_named_after_its_host_by_default_and_heartbeats_every_two_seconds() {
        let node = load("", &[]).unwrap();
        assert!(!node.name.is_empty());
        assert_eq!(node.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL);
        assert_eq!(node.lost_after, DEFAULT_LOST_AFTER);
        assert_eq!(node.advertise, None);
    }

    #[test]
    fn a_node_name_with_spaces_or_a_lost_after_shorter_than_three_heartbeats_is_refused() {
        let err = load("name = \"node a\"", &[]).unwrap_err().to_string();
        assert!(err.contains("node name"), "{err}");
        let err = load("heartbeat_interval = \"2s\"\nlost_after = \"5s\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least three heartbeats"), "{err}");
        let err = load("advertise = \"10.0.0.7:8443\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("base URL"), "{err}");
        let node = load("name = \"a\"", &[("RAMPART_NODE_NAME", "b")]).unwrap();
        assert_eq!(node.name, "b", "the environment overrides the file");
    }
}
