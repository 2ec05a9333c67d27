//! The `[vnc]` section: the optional native VNC listener for stock VNC viewers (off unless
//! `vnc.listen` is set), VeNCrypt X509Plain with the node's certificate.

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use rampart_desktop::NativeVncSettings;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VncSection {
    listen: Option<String>,
    login_grace_time: Option<String>,
}

/// The listener's address (none: no listener) and its settings.
#[derive(Debug, Clone, Default)]
pub struct VncConfig {
    pub listen: Option<SocketAddr>,
    pub settings: NativeVncSettings,
}

pub(super) fn vnc_config(
    section: &VncSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<VncConfig, ConfigError> {
    let mut config = VncConfig::default();
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    if let Some(Sourced { value, source }) =
        get("vnc.listen", "RAMPART_VNC_LISTEN", section.listen.clone())
    {
        config.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "vnc.listen (from {source}): {value:?} is not an IP address and port, such as 127.0.0.1:5901"
            ))
        })?);
    }
    if let Some(Sourced { value, source }) = get(
        "vnc.login_grace_time",
        "RAMPART_VNC_LOGIN_GRACE_TIME",
        section.login_grace_time.clone(),
    ) {
        config.settings.login_grace_time = parse_duration("vnc.login_grace_time", &value)
            .map_err(|err| ConfigError(format!("vnc.login_grace_time (from {source}): {err}")))?;
    }
    Ok(config)
}
