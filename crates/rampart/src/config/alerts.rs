//! The `[alerts]` section: the anomaly detectors' settings (each detector is off until set).
//!
//! ```toml
//! [alerts]
//! new_source_days = 30                          # a login from an address not used for 30 days
//! business_hours = "Mon-Fri 08:00-18:00 Europe/Berlin"   # a login outside these hours
//! failed_logins = 10                            # 10 failed logins ...
//! failed_logins_window = "5m"                   # ... within 5 minutes, per user and per source
//! bulk_transfer = "1GiB"                        # a session moving more than this
//! new_asset = true                              # a first session to an asset
//! ```

use super::{ConfigError, Sourced, parse_bytes, pick};
use rampart_core::detectors::{DetectorSettings, FailureBurst};
use rampart_core::schedule::Schedule;
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;
use std::time::Duration;

/// The failed-login window when only the count is given.
const DEFAULT_FAILED_LOGINS_WINDOW: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsSection {
    new_source_days: Option<i64>,
    business_hours: Option<String>,
    failed_logins: Option<i64>,
    failed_logins_window: Option<String>,
    bulk_transfer: Option<toml::Value>,
    new_asset: Option<bool>,
}

pub(super) fn alerts_config(
    section: &AlertsSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<DetectorSettings, ConfigError> {
    let mut settings = DetectorSettings::default();
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    let whole = |key: &str, value: &str, source: &str, max: i64| {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "{key} (from {source}): {value:?} is not a whole number from 1 to {max}"
                ))
            })
    };
    if let Some(Sourced { value, source }) = get(
        "alerts.new_source_days",
        "RAMPART_ALERTS_NEW_SOURCE_DAYS",
        section.new_source_days.map(|n| n.to_string()),
    ) {
        let days = whole("alerts.new_source_days", &value, &source, 3650)?;
        settings.new_source_after = Some(Duration::from_secs(
            u64::try_from(days).unwrap_or(1).saturating_mul(86_400),
        ));
    }
    if let Some(Sourced { value, source }) = get(
        "alerts.business_hours",
        "RAMPART_ALERTS_BUSINESS_HOURS",
        section.business_hours.clone(),
    ) {
        settings.business_hours =
            Some(Schedule::parse(&value).map_err(|err| {
                ConfigError(format!("alerts.business_hours (from {source}): {err}"))
            })?);
    }
    let window = match get(
        "alerts.failed_logins_window",
        "RAMPART_ALERTS_FAILED_LOGINS_WINDOW",
        section.failed_logins_window.clone(),
    ) {
        None => None,
        Some(Sourced { value, source }) => Some(
            parse_duration("alerts.failed_logins_window", &value)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "alerts.failed_logins_window (from {source}): {value:?} is not a duration such as 5m"
                    ))
                })?,
        ),
    };
    match get(
        "alerts.failed_logins",
        "RAMPART_ALERTS_FAILED_LOGINS",
        section.failed_logins.map(|n| n.to_string()),
    ) {
        Some(Sourced { value, source }) => {
            let count = whole("alerts.failed_logins", &value, &source, 1_000_000)?;
            settings.failed_logins = Some(FailureBurst {
                count: u32::try_from(count).unwrap_or(u32::MAX),
                window: window.unwrap_or(DEFAULT_FAILED_LOGINS_WINDOW),
            });
        }
        None if window.is_some() => {
            return Err(ConfigError(
                "alerts.failed_logins_window is set but alerts.failed_logins is not: give the count too"
                    .to_owned(),
            ));
        }
        None => {}
    }
    let bulk = section.bulk_transfer.as_ref().map(|value| match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(bytes) => bytes.to_string(),
        other => format!("{other:?}"),
    });
    if let Some(Sourced { value, source }) =
        get("alerts.bulk_transfer", "RAMPART_ALERTS_BULK_TRANSFER", bulk)
    {
        settings.bulk_transfer_bytes = Some(parse_bytes(&value).ok_or_else(|| {
            ConfigError(format!(
                "alerts.bulk_transfer (from {source}): {value:?} is not a size such as 1GiB, 500MiB or 1048576"
            ))
        })?);
    }
    if let Some(Sourced { value, source }) = get(
        "alerts.new_asset",
        "RAMPART_ALERTS_NEW_ASSET",
        section.new_asset.map(|b| b.to_string()),
    ) {
        settings.new_asset = match value.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError(format!(
                    "alerts.new_asset (from {source}): expected true or false"
                )));
            }
        };
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<DetectorSettings, ConfigError> {
        let section: AlertsSection = toml::from_str(toml_text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        alerts_config(
            &section,
            &|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            "rampart.toml",
        )
    }

    #[test]
    fn detectors_are_off_until_set_and_read_every_setting() {
        assert_eq!(load("", &[]).unwrap(), DetectorSettings::default());
        let settings = load(
            "new_source_days = 30\nbusiness_hours = \"Mon-Fri 08:00-18:00 Europe/Berlin\"\n\
             failed_logins = 10\nfailed_logins_window = \"5m\"\nbulk_transfer = \"1GiB\"\nnew_asset = true\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            settings.new_source_after,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert!(settings.business_hours.is_some());
        assert_eq!(
            settings.failed_logins,
            Some(FailureBurst {
                count: 10,
                window: Duration::from_secs(300)
            })
        );
        assert_eq!(settings.bulk_transfer_bytes, Some(1 << 30));
        assert!(settings.new_asset);
        // The environment wins; a count alone gets the default window; bytes as a number.
        let settings = load(
            "bulk_transfer = 5000\nfailed_logins = 3\n",
            &[("RAMPART_ALERTS_BULK_TRANSFER", "2MiB")],
        )
        .unwrap();
        assert_eq!(settings.bulk_transfer_bytes, Some(2 << 20));
        assert_eq!(
            settings.failed_logins.unwrap().window,
            DEFAULT_FAILED_LOGINS_WINDOW
        );
        assert_eq!(
            load("bulk_transfer = 5000\n", &[])
                .unwrap()
                .bulk_transfer_bytes,
            Some(5000)
        );
    }

    #[test]
    fn bad_settings_name_the_key_and_the_source() {
        for (text, env, expected) in [
            (
                "new_source_days = 0\n",
                vec![],
                "alerts.new_source_days (from rampart.toml key alerts.new_source_days): \"0\" is not a whole number",
            ),
            (
                "business_hours = \"sometimes\"\n",
                vec![],
                "alerts.business_hours (from rampart.toml key alerts.business_hours)",
            ),
            (
                "",
                vec![("RAMPART_ALERTS_BULK_TRANSFER", "lots")],
                "alerts.bulk_transfer (from environment RAMPART_ALERTS_BULK_TRANSFER)",
            ),
            (
                "failed_logins_window = \"5m\"\n",
                vec![],
                "alerts.failed_logins_window is set but alerts.failed_logins is not",
            ),
            (
                "new_asset = true\n",
                vec![("RAMPART_ALERTS_NEW_ASSET", "yes")],
                "alerts.new_asset (from environment RAMPART_ALERTS_NEW_ASSET): expected true or false",
            ),
        ] {
            let err = load(text, &env).unwrap_err().to_string();
            assert!(err.contains(expected), "{text} {env:?}: {err}");
        }
    }
}
