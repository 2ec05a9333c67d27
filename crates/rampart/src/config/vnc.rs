//! The `[vnc]` and `[rdp]` sections: the optional native listeners for stock VNC viewers
//! (VeNCrypt X509Plain) and stock RDP clients (TLS security), each off unless its `listen` is
//! set, both with the node's certificate. One shape for both: `listen` and
//! `login_grace_time`, overridden by `RAMPART_VNC_*` and `RAMPART_RDP_*`.

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use rampart_desktop::NativeSettings;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NativeSection {
    listen: Option<String>,
    login_grace_time: Option<String>,
}

/// A native listener's address (none: no listener) and its settings.
#[derive(Debug, Clone, Default)]
pub struct NativeListenerConfig {
    pub listen: Option<SocketAddr>,
    pub settings: NativeSettings,
}

/// The `[vnc]` section.
pub type VncConfig = NativeListenerConfig;
/// The `[rdp]` section.
pub type RdpConfig = NativeListenerConfig;

/// `name` is the section (`vnc`, `rdp`), `example` an address for the error line.
pub(super) fn native_config(
    name: &str,
    example: &str,
    section: &NativeSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<NativeListenerConfig, ConfigError> {
    let mut config = NativeListenerConfig::default();
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    let upper = name.to_ascii_uppercase();
    let listen_key = format!("{name}.listen");
    if let Some(Sourced { value, source }) = get(
        &listen_key,
        &format!("RAMPART_{upper}_LISTEN"),
        section.listen.clone(),
    ) {
        config.listen = Some(value.parse().map_err(|_| {
            ConfigError(format!(
                "{listen_key} (from {source}): {value:?} is not an IP address and port, such as {example}"
            ))
        })?);
    }
    let grace_key = format!("{name}.login_grace_time");
    if let Some(Sourced { value, source }) = get(
        &grace_key,
        &format!("RAMPART_{upper}_LOGIN_GRACE_TIME"),
        section.login_grace_time.clone(),
    ) {
        config.settings.login_grace_time = parse_duration(&grace_key, &value)
            .map_err(|err| ConfigError(format!("{grace_key} (from {source}): {err}")))?;
    }
    Ok(config)
}
