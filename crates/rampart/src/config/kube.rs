//! The `[kube]` section: the optional Kubernetes API listener (off unless `kube.listen` is set).

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use rampart_kube::KubeSettings;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KubeSection {
    listen: Option<String>,
    login_grace_time: Option<String>,
    /// The address kubeconfigs name as the server (`rampart kube config`), when clients reach
    /// the listener by another name than its address (a DNS name, a load balancer).
    public_address: Option<String>,
}

/// The listener's address (none: no listener) and its settings.
#[derive(Debug, Clone, Default)]
pub struct KubeConfig {
    pub listen: Option<SocketAddr>,
    pub public_address: Option<String>,
    pub settings: KubeSettings,
}

pub(super) fn kube_config(
    section: &KubeSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<KubeConfig, ConfigError> {
    let mut config = KubeConfig::default();
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    if let Some(Sourced { value, source }) =
        get("kube.listen", "RAMPART_KUBE_LISTEN", section.listen.clone())
    {
        config.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "kube.listen (from {source}): {value:?} is not an IP address and port, such as 127.0.0.1:6443"
            ))
        })?);
    }
    if let Some(Sourced { value, source }) = get(
        "kube.login_grace_time",
        "RAMPART_KUBE_LOGIN_GRACE_TIME",
        section.login_grace_time.clone(),
    ) {
        config.settings.login_grace_time = parse_duration("kube.login_grace_time", &value)
            .map_err(|err| ConfigError(format!("kube.login_grace_time (from {source}): {err}")))?;
    }
    if let Some(Sourced { value, source }) = get(
        "kube.public_address",
        "RAMPART_KUBE_PUBLIC_ADDRESS",
        section.public_address.clone(),
    ) {
        let valid = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid {
            return Err(ConfigError(format!(
                "kube.public_address (from {source}): {value:?} is not HOST:PORT, such as k8s.example.com:6443"
            )));
        }
        config.public_address = Some(value);
    }
    Ok(config)
}
