//! The `[requests]` section: who approves access requests besides administrators, and the
//! longest access a request may ask for.

use super::{ConfigError, Sourced, pick};
use rampart_core::requests::{RequestSettings, parse_approvers};
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestsSection {
    approvers: Option<String>,
    max_duration: Option<String>,
}

pub(super) fn requests_config(
    section: &RequestsSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<RequestSettings, ConfigError> {
    let mut settings = RequestSettings::default();
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    if let Some(Sourced { value, source }) = get(
        "requests.approvers",
        "RAMPART_REQUESTS_APPROVERS",
        section.approvers.clone(),
    ) {
        settings.approvers = parse_approvers(&value)
            .map_err(|err| ConfigError(format!("requests.approvers (from {source}): {err}")))?;
    }
    if let Some(Sourced { value, source }) = get(
        "requests.max_duration",
        "RAMPART_REQUESTS_MAX_DURATION",
        section.max_duration.clone(),
    ) {
        settings.max_duration = parse_duration("requests.max_duration", &value)
            .map_err(|err| ConfigError(format!("requests.max_duration (from {source}): {err}")))?;
    }
    Ok(settings)
}
