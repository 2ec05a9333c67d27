//! The `[oidc]` section: portal sign-in through an OpenID Connect provider. Read from the file
//! only (the client secret from its own file, never inline and never from the environment).

use super::ConfigError;
use rampart_core::SecretString;
use rampart_core::time_arg::parse_duration;
use rampart_oidc::settings::{DEFAULT_RECHECK_INTERVAL, DEFAULT_SCOPES};
use rampart_oidc::{GroupTarget, OidcSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A client secret file longer than this is refused.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcSection {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<String>,
    redirect_url: Option<String>,
    scopes: Option<Vec<String>>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    group_map: Option<BTreeMap<String, String>>,
    counts_as_mfa: Option<bool>,
    ca_file: Option<String>,
    recheck_interval: Option<String>,
    display_name: Option<String>,
}

fn error(key: &str, file_name: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("oidc.{key} (from {file_name}): {message}"))
}

/// `None` when the section names no issuer (single sign-on off); every other key then must be
/// absent too.
pub(super) fn oidc_config(
    section: &OidcSection,
    file_name: &str,
) -> Result<Option<OidcSettings>, ConfigError> {
    let Some(issuer) = section.issuer.clone() else {
        let other_key = section.client_id.is_some()
            || section.client_secret_file.is_some()
            || section.redirect_url.is_some()
            || section.group_map.is_some();
        if other_key {
            return Err(error(
                "issuer",
                file_name,
                "missing: the [oidc] section needs the provider's issuer URL",
            ));
        }
        return Ok(None);
    };
    if !rampart_oidc::provider::url_allowed(&issuer) {
        return Err(error(
            "issuer",
            file_name,
            format!("{issuer:?} is not an https:// URL (http:// only to a loopback address)"),
        ));
    }
    let required = |key: &str, value: &Option<String>| {
        value
            .clone()
            .filter(|value| !value.trim().is_empty())
            .ok_or_else(|| error(key, file_name, "missing: required when oidc.issuer is set"))
    };
    let client_id = required("client_id", &section.client_id)?;
    let redirect_url = required("redirect_url", &section.redirect_url)?;
    if !rampart_oidc::provider::url_allowed(&redirect_url) {
        return Err(error(
            "redirect_url",
            file_name,
            format!("{redirect_url:?} is not an https:// URL (http:// only to a loopback address)"),
        ));
    }
    let secret_path = required("client_secret_file", &section.client_secret_file)?;
    let client_secret = read_secret(Path::new(&secret_path))
        .map_err(|message| error("client_secret_file", file_name, message))?;
    let ca_pem = match &section.ca_file {
        None => None,
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|err| error("ca_file", file_name, format!("cannot read {path}: {err}")))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(error(
                    "ca_file",
                    file_name,
                    format!("{path} holds no PEM certificate"),
                ));
            }
            Some(pem)
        }
    };
    let mut group_map = Vec::new();
    for (provider_group, target) in section.group_map.iter().flatten() {
        let target = GroupTarget::parse(target).map_err(|err| {
            error("group_map", file_name, format!("{provider_group:?} = {target:?}: {err} (a Rampart group, or role:admin, role:auditor, role:user)"))
        })?;
        group_map.push((provider_group.clone(), target));
    }
    let recheck_interval = match &section.recheck_interval {
        None => DEFAULT_RECHECK_INTERVAL,
        Some(text) => parse_duration("oidc.recheck_interval", text)
            .map_err(|err| error("recheck_interval", file_name, err))?,
    };
    if recheck_interval.is_zero() {
        return Err(error("recheck_interval", file_name, "must be more than 0"));
    }
    let scopes = section
        .scopes
        .clone()
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    if let Some(bad) = scopes.iter().find(|scope| {
        scope.is_empty()
            || !scope
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    }) {
        return Err(error(
            "scopes",
            file_name,
            format!("{bad:?} is not a scope"),
        ));
    }
    Ok(Some(OidcSettings {
        display_name: section
            .display_name
            .clone()
            .unwrap_or_else(|| "single sign-on".to_owned()),
        issuer,
        client_id,
        client_secret,
        redirect_url,
        scopes,
        username_claim: section
            .username_claim
            .clone()
            .unwrap_or_else(|| "preferred_username".to_owned()),
        groups_claim: section
            .groups_claim
            .clone()
            .unwrap_or_else(|| "groups".to_owned()),
        group_map,
        counts_as_mfa: section.counts_as_mfa.unwrap_or(false),
        ca_pem,
        recheck_interval,
    }))
}

fn read_secret(path: &Path) -> Result<SecretString, String> {
    let size = std::fs::metadata(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?
        .len();
    if size > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SECRET_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(secret.to_owned()))
}
