//! The `[rules]` section: how long a shell line an `approve` command rule holds waits for an
//! approver before it is denied.

use super::{ConfigError, Sourced, pick};
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;
use std::time::Duration;

/// The longest wait that may be configured: a held shell is a user waiting at a prompt.
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RulesSection {
    approval_timeout: Option<String>,
}

/// `rules.approval_timeout` (default 120 s; at most an hour).
pub(super) fn approval_timeout(
    section: &RulesSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<Duration, ConfigError> {
    let Some(Sourced { value, source }) = pick(
        "rules.approval_timeout",
        ("", None),
        "RAMPART_RULES_APPROVAL_TIMEOUT",
        env_lookup,
        section.approval_timeout.clone(),
        file_name,
    ) else {
        return Ok(rampart_session::live::DEFAULT_APPROVAL_TIMEOUT);
    };
    let timeout = parse_duration("rules.approval_timeout", &value)
        .map_err(|err| ConfigError(format!("rules.approval_timeout (from {source}): {err}")))?;
    if timeout.is_zero() || timeout > MAX_APPROVAL_TIMEOUT {
        return Err(ConfigError(format!(
            "rules.approval_timeout (from {source}): must be between 1s and 1h"
        )));
    }
    Ok(timeout)
}
