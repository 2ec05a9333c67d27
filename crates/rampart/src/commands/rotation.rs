//! `rampart account rotate|history|set`: credential rotation from the command line. The state
//! machine is `rampart-rotate`'s; this only parses, runs it and prints (never a secret).

use super::time_text;
use crate::cli::{AccountCommand, RotationCommand};
use crate::config::Config;
use crate::output::{Table, done, print_fields, print_json};
use rampart_core::audit::Actor;
use rampart_core::time_arg::parse_duration;
use rampart_core::{AccountRef, Name};
use rampart_rotate::Rotator;
use rampart_ssh::rotate::RotationReach;
use rampart_store::{RotationSettingsChange, RotationState, Store};
use std::sync::Arc;

/// Whether `command` is one of the rotation commands this module runs.
pub fn handles(command: &AccountCommand) -> bool {
    matches!(
        command,
        AccountCommand::Rotate { .. } | AccountCommand::History { .. } | AccountCommand::Set { .. }
    )
}

/// The node's rotation engine, reaching targets as sessions do.
pub fn rotator(store: &Arc<Store>, config: &Config, actor: &Actor) -> Rotator {
    Rotator::new(RotationReach {
        dialer: rampart_ssh::Dialer::with_gateways(store.clone(), config.target_host_keys.into()),
        store: store.clone(),
        host_keys: config.target_host_keys,
        actor: actor.clone(),
    })
}

/// How often `serve` looks for accounts due for rotation; tests shorten it with
/// `RAMPART_TEST_ROTATION_TICK_SECONDS`.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// `serve`'s rotation task: resumes what a dead process left, then runs the schedule until the
/// node stops.
pub async fn run_in_serve(rotator: Rotator, mut stop: tokio::sync::watch::Receiver<bool>) {
    // Each outcome is logged (and audited) by the engine.
    let _ = rotator.resume_all().await;
    let tick = std::env::var("RAMPART_TEST_ROTATION_TICK_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .map_or(SCHEDULE_TICK, std::time::Duration::from_secs);
    let mut stop_breakglass = stop.clone();
    // Break-glass sessions, and sessions of accounts that rotate after every session, end in
    // the rotation of their accounts, on the same tick.
    tokio::join!(
        rotator.run_schedule(tick, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }),
        rotator.run_session_end_rotations(tick, async move {
            let _ = stop_breakglass.wait_for(|stop| *stop).await;
        }),
    );
}

pub async fn run(
    store: &Arc<Store>,
    config: &Config,
    actor: &Actor,
    json: bool,
    command: AccountCommand,
) -> anyhow::Result<()> {
    match command {
        AccountCommand::Rotate { account } => {
            let account = AccountRef::parse(&account)?;
            let outcome = rotator(store, config, actor).rotate(&account).await?;
            if json {
                print_json(&outcome)?;
            } else {
                println!(
                    "rotation {} of {}: {} ({})",
                    outcome.rotation,
                    outcome.account,
                    outcome.state.as_str(),
                    outcome.reason
                );
            }
            if outcome.state == RotationState::Committed {
                Ok(())
            } else {
                anyhow::bail!(
                    "the rotation of {} did not commit: {}",
                    outcome.account,
                    outcome.state.as_str()
                )
            }
        }
        AccountCommand::History { account } => {
            let account = AccountRef::parse(&account)?;
            let settings = store.rotation_settings(&account).await?;
            let history = store.rotation_history(&account).await?;
            if json {
                return print_json(&serde_json::json!({
                    "settings": settings,
                    "rotations": history,
                }));
            }
            print_fields(&[
                ("account", settings.account.clone()),
                ("status", settings.status.clone()),
                (
                    "rotate every",
                    settings
                        .every_seconds
                        .map_or_else(|| "never".to_owned(), |s| format!("{s}s")),
                ),
                (
                    "rotate via",
                    settings
                        .via_login
                        .clone()
                        .unwrap_or_else(|| "the account itself".to_owned()),
                ),
                ("password length", settings.password_length.to_string()),
                (
                    "after every session",
                    settings.rotate_after_sessions_since.map_or_else(
                        || "no".to_owned(),
                        |at| format!("yes, since {}", time_text(at)),
                    ),
                ),
                (
                    "last rotated",
                    settings
                        .last_rotated_at
                        .map_or_else(|| "never".to_owned(), time_text),
                ),
            ]);
            let mut table = Table::new(["ROTATION", "STATE", "STARTED", "UPDATED", "REASON"]);
            for rotation in &history {
                table.row([
                    rotation.id.clone(),
                    rotation.state.as_str().to_owned(),
                    time_text(rotation.started_at),
                    time_text(rotation.updated_at),
                    rotation.reason.clone().unwrap_or_default(),
                ]);
            }
            table.print("no rotations yet: run `rampart account rotate ACCOUNT@ASSET`");
            Ok(())
        }
        AccountCommand::Set {
            account,
            rotate_every,
            rotate_via,
            password_length,
            rotate_after_sessions,
        } => {
            let account = AccountRef::parse(&account)?;
            let every_seconds = rotate_every
                .map(|text| -> anyhow::Result<Option<u64>> {
                    if text == "never" {
                        return Ok(None);
                    }
                    Ok(Some(parse_duration("--rotate-every", &text)?.as_secs()))
                })
                .transpose()?;
            let via_login = rotate_via
                .map(|text| -> anyhow::Result<Option<Name>> {
                    if text == "self" {
                        return Ok(None);
                    }
                    Ok(Some(Name::parse("login", &text)?))
                })
                .transpose()?;
            let change = RotationSettingsChange {
                every_seconds,
                via_login,
                password_length,
                rotate_after_sessions,
            };
            let settings = store
                .set_rotation_settings(actor, &account, &change)
                .await?;
            done(json, &settings, &format!("changed how {account} rotates"))
        }
        AccountCommand::Add { .. }
        | AccountCommand::List { .. }
        | AccountCommand::Remove { .. } => {
            anyhow::bail!("not a rotation command")
        }
    }
}

/// `rampart rotation schedule|schedules|policy|show-policy`.
pub async fn run_policies(
    store: &Arc<Store>,
    actor: &Actor,
    json: bool,
    command: RotationCommand,
) -> anyhow::Result<()> {
    match command {
        RotationCommand::Schedule { label, every } => {
            let label = rampart_core::Label::parse(&label)?;
            let every_seconds = if every == "never" {
                None
            } else {
                Some(parse_duration("--every", &every)?.as_secs())
            };
            store
                .set_label_rotation_schedule(actor, &label, every_seconds)
                .await?;
            let said = match every_seconds {
                Some(seconds) => {
                    format!("the accounts of assets labelled {label} rotate every {seconds}s")
                }
                None => format!("removed the rotation schedule of label {label}"),
            };
            done(
                json,
                &serde_json::json!({ "label": label.to_string(), "every_seconds": every_seconds }),
                &said,
            )
        }
        RotationCommand::Schedules => {
            let schedules = store.label_rotation_schedules().await?;
            if json {
                return print_json(&schedules);
            }
            let mut table = Table::new(["LABEL", "EVERY", "ACCOUNTS"]);
            for schedule in &schedules {
                table.row([
                    schedule.label.clone(),
                    format!("{}s", schedule.every_seconds),
                    schedule.accounts.to_string(),
                ]);
            }
            table.print(
                "no label schedules: `rampart rotation schedule --label KEY=VALUE --every 30d`",
            );
            Ok(())
        }
        RotationCommand::Policy {
            asset,
            length,
            classes,
            exclude,
            clear,
        } => {
            let asset = Name::parse("asset", &asset)?;
            if clear {
                store.set_asset_password_policy(actor, &asset, None).await?;
                return done(
                    json,
                    &serde_json::json!({ "asset": asset }),
                    &format!("removed the password policy of {asset}"),
                );
            }
            let policy =
                rampart_core::password_policy::PasswordPolicy::parse(length, &classes, &exclude)?;
            store
                .set_asset_password_policy(actor, &asset, Some(&policy))
                .await?;
            done(
                json,
                &policy,
                &format!("passwords for {asset}: {}", policy.summary()),
            )
        }
        RotationCommand::ShowPolicy { asset } => {
            let asset = Name::parse("asset", &asset)?;
            let policy = store.asset_password_policy(&asset).await?;
            if json {
                return print_json(&policy);
            }
            println!("{}", policy.summary());
            Ok(())
        }
    }
}
