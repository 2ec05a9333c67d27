//! The `[ldap]` section: the directory Rampart binds to for directory users' passwords and
//! syncs users, SSH keys and groups from. Off unless `ldap.url` is set.

use super::{ConfigError, Sourced, pick};
use rampart_core::SecretString;
use rampart_core::time_arg::parse_duration;
use rampart_ldap::settings::{
    DEFAULT_GROUP_FILTER, DEFAULT_SSH_KEY_ATTRIBUTE, DEFAULT_TIMEOUT, check_filter, tls_config,
    username_attribute,
};
use rampart_ldap::{GroupTarget, LdapSettings, ServiceBind, Transport};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// The directory is synced this often unless `ldap.sync_interval` says otherwise (`off`: only
/// `rampart ldap sync`).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// The largest password or CA file read.
const MAX_FILE_BYTES: u64 = 256 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LdapSection {
    url: Option<String>,
    start_tls: Option<bool>,
    allow_plain_loopback: Option<bool>,
    ca_file: Option<String>,
    bind_dn: Option<String>,
    bind_password_file: Option<String>,
    user_base: Option<String>,
    user_filter: Option<String>,
    group_base: Option<String>,
    group_filter: Option<String>,
    group_map: Option<BTreeMap<String, String>>,
    ssh_key_attribute: Option<String>,
    sync_interval: Option<String>,
    timeout: Option<String>,
}

pub(super) fn ldap_config(
    section: LdapSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<Option<LdapSettings>, ConfigError> {
    let get = |key: &str, value: Option<String>| {
        let env = format!("RAMPART_{}", key.replace('.', "_").to_ascii_uppercase());
        pick(key, ("", None), &env, env_lookup, value, file_name)
    };
    let flag = |key: &str, value: Option<bool>| -> Result<bool, ConfigError> {
        match get(key, value.map(|b| b.to_string())) {
            None => Ok(false),
            Some(Sourced { value, source }) => match value.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(ConfigError(format!(
                    "{key} (from {source}): {other:?} is not true or false"
                ))),
            },
        }
    };
    let Some(url) = get("ldap.url", section.url) else {
        let set = section.bind_dn.is_some()
            || section.user_base.is_some()
            || section.group_map.is_some()
            || section.bind_password_file.is_some();
        if set {
            return Err(ConfigError(
                "ldap.url is not set, but other [ldap] keys are: set ldap.url (ldaps://HOST:PORT)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let start_tls = flag("ldap.start_tls", section.start_tls)?;
    let allow_plain = flag("ldap.allow_plain_loopback", section.allow_plain_loopback)?;
    let transport = Transport::choose(&url.value, start_tls, allow_plain)
        .map_err(|err| ConfigError(format!("ldap.url (from {}): {err}", url.source)))?;

    let ca_pem = match get("ldap.ca_file", section.ca_file) {
        None => None,
        Some(Sourced { value, source }) => Some(
            read_file(&value, false)
                .map_err(|err| ConfigError(format!("ldap.ca_file (from {source}): {err}")))?,
        ),
    };
    // A plain loopback directory never uses it; it needs no trusted certificate.
    let needs_roots = transport != Transport::PlainLoopback;
    let tls = tls_config(ca_pem.as_deref().map(|pem| &pem[..]), needs_roots)
        .map_err(|err| ConfigError(format!("ldap.ca_file: {err}")))?;

    let service = match (
        get("ldap.bind_dn", section.bind_dn),
        get("ldap.bind_password_file", section.bind_password_file),
    ) {
        (None, None) => None,
        (Some(dn), Some(Sourced { value, source })) => {
            let bytes = read_file(&value, true).map_err(|err| {
                ConfigError(format!("ldap.bind_password_file (from {source}): {err}"))
            })?;
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                ConfigError(format!(
                    "ldap.bind_password_file (from {source}): not UTF-8 text"
                ))
            })?;
            let password = text.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                return Err(ConfigError(format!(
                    "ldap.bind_password_file (from {source}): the file is empty"
                )));
            }
            Some(ServiceBind {
                dn: dn.value,
                password: SecretString::from(password),
            })
        }
        (Some(dn), None) => {
            return Err(ConfigError(format!(
                "ldap.bind_dn (from {}) needs ldap.bind_password_file",
                dn.source
            )));
        }
        (None, Some(file)) => {
            return Err(ConfigError(format!(
                "ldap.bind_password_file (from {}) needs ldap.bind_dn",
                file.source
            )));
        }
    };

    let Some(user_base) = get("ldap.user_base", section.user_base) else {
        return Err(ConfigError(
            "ldap.user_base is required with ldap.url (e.g. \"ou=people,dc=example,dc=org\")"
                .into(),
        ));
    };
    let (user_filter, username_attribute) = match get("ldap.user_filter", section.user_filter) {
        None => ("(uid={username})".to_owned(), "uid".to_owned()),
        Some(Sourced { value, source }) => {
            let attribute = username_attribute(&value)
                .map_err(|err| ConfigError(format!("ldap.user_filter (from {source}): {err}")))?;
            (value, attribute)
        }
    };
    let group_base = get("ldap.group_base", section.group_base).map(|s| s.value);
    let group_filter = match get("ldap.group_filter", section.group_filter) {
        None => DEFAULT_GROUP_FILTER.to_owned(),
        Some(Sourced { value, source }) => {
            check_filter(&value)
                .map_err(|err| ConfigError(format!("ldap.group_filter (from {source}): {err}")))?;
            value
        }
    };
    let mut group_map = Vec::new();
    for (group, target) in section.group_map.unwrap_or_default() {
        let target = GroupTarget::parse(&target).map_err(|err| {
            ConfigError(format!(
                "ldap.group_map (from {file_name}) {group:?}: {err} (a Rampart group, or role:admin|auditor|user)"
            ))
        })?;
        group_map.push((group, target));
    }
    if !group_map.is_empty() && group_base.is_none() {
        return Err(ConfigError(
            "ldap.group_map needs ldap.group_base (where the groups are)".into(),
        ));
    }
    let ssh_key_attribute = get("ldap.ssh_key_attribute", section.ssh_key_attribute)
        .map_or_else(|| DEFAULT_SSH_KEY_ATTRIBUTE.to_owned(), |s| s.value);
    let sync_interval = match get("ldap.sync_interval", section.sync_interval) {
        None => Some(DEFAULT_SYNC_INTERVAL),
        Some(Sourced { value, .. }) if value == "off" => None,
        Some(Sourced { value, source }) => {
            let interval = parse_duration("ldap.sync_interval", &value).map_err(|err| {
                ConfigError(format!(
                    "ldap.sync_interval (from {source}): {err} (or off)"
                ))
            })?;
            if interval < Duration::from_secs(1) {
                return Err(ConfigError(format!(
                    "ldap.sync_interval (from {source}): at least 1s"
                )));
            }
            Some(interval)
        }
    };
    let timeout = match get("ldap.timeout", section.timeout) {
        None => DEFAULT_TIMEOUT,
        Some(Sourced { value, source }) => parse_duration("ldap.timeout", &value)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                ConfigError(format!(
                    "ldap.timeout (from {source}): {value:?} is not a duration such as 10s"
                ))
            })?,
    };
    Ok(Some(LdapSettings {
        url: url.value,
        transport,
        tls,
        service,
        user_base: user_base.value,
        user_filter,
        username_attribute,
        group_base,
        group_filter,
        group_map,
        ssh_key_attribute,
        sync_interval,
        timeout,
    }))
}

/// A small file's bytes; a secret file must be readable by its owner only.
fn read_file(path: &str, secret: bool) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot read {path}: {err}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if secret && mode & 0o077 != 0 {
        return Err(format!(
            "{path} must be readable by its owner only (mode is {mode:04o}; run chmod 600)"
        ));
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read {path}: {err}"))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
        return Err(format!("{path} is larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}
