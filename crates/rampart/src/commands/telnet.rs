//! `rampart asset telnet NAME ...`: an asset's Telnet login settings, checked by
//! `rampart-telnet` (the patterns must compile) before the store keeps them.

use crate::output::{done, print_fields, print_json};
use rampart_core::Name;
use rampart_core::audit::Actor;
use rampart_core::time_arg::parse_duration;
use rampart_store::{Store, TelnetLoginSettings};
use rampart_telnet::login::{
    DEFAULT_FAILURE, DEFAULT_LOGIN_PROMPT, DEFAULT_PASSWORD_PROMPT, DEFAULT_SUCCESS,
};

/// What the command line asked to change (`Some("")`: back to the default).
#[derive(Debug)]
pub struct TelnetChange {
    pub login_prompt: Option<String>,
    pub password_prompt: Option<String>,
    pub success: Option<String>,
    pub failure: Option<String>,
    pub timeout: Option<String>,
    pub reset: bool,
}

impl TelnetChange {
    fn is_empty(&self) -> bool {
        !self.reset
            && self.login_prompt.is_none()
            && self.password_prompt.is_none()
            && self.success.is_none()
            && self.failure.is_none()
            && self.timeout.is_none()
    }
}

/// A flag's value applied to a setting: absent keeps it, empty clears it.
fn apply(setting: &mut Option<String>, flag: Option<String>) {
    if let Some(value) = flag {
        *setting = (!value.is_empty()).then_some(value);
    }
}

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    asset: &Name,
    change: TelnetChange,
) -> anyhow::Result<()> {
    let current = store.telnet_login_settings(asset).await?;
    if change.is_empty() {
        return show(json, asset, &current);
    }
    let mut settings = if change.reset {
        TelnetLoginSettings::default()
    } else {
        current
    };
    apply(&mut settings.login_prompt, change.login_prompt);
    apply(&mut settings.password_prompt, change.password_prompt);
    apply(&mut settings.success, change.success);
    apply(&mut settings.failure, change.failure);
    if let Some(timeout) = change.timeout {
        settings.timeout_seconds = if timeout.is_empty() {
            None
        } else {
            let duration = parse_duration("--timeout", &timeout)?;
            let seconds = u32::try_from(duration.as_secs())
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| {
                    anyhow::anyhow!("invalid --timeout {timeout:?}: expected 1s to 1h")
                })?;
            Some(seconds)
        };
    }
    // The gateway compiles the same patterns at each login; refuse what it could not.
    rampart_telnet::LoginPatterns::new(
        settings.login_prompt.as_deref(),
        settings.password_prompt.as_deref(),
        settings.success.as_deref(),
        settings.failure.as_deref(),
    )?;
    store
        .set_telnet_login_settings(actor, asset, &settings)
        .await?;
    done(
        json,
        &settings,
        &format!("changed the Telnet login settings of {asset}"),
    )
}

fn show(json: bool, asset: &Name, settings: &TelnetLoginSettings) -> anyhow::Result<()> {
    if json {
        return print_json(settings);
    }
    let or_default = |value: &Option<String>, default: &str| match value {
        Some(value) => value.clone(),
        None => format!("{default} (default)"),
    };
    print_fields(&[
        ("asset", asset.to_string()),
        (
            "login prompt",
            or_default(&settings.login_prompt, DEFAULT_LOGIN_PROMPT),
        ),
        (
            "password prompt",
            or_default(&settings.password_prompt, DEFAULT_PASSWORD_PROMPT),
        ),
        ("success", or_default(&settings.success, DEFAULT_SUCCESS)),
        ("failure", or_default(&settings.failure, DEFAULT_FAILURE)),
        (
            "timeout",
            settings.timeout_seconds.map_or_else(
                || "ssh.target_answer_timeout (default)".to_owned(),
                |s| format!("{s}s"),
            ),
        ),
    ]);
    Ok(())
}
