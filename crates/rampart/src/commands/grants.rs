//! `rampart grant ...`

use super::{name, time_text};
use crate::cli::{GrantAddArgs, GrantCommand, GrantExplainArgs};
use crate::output::{Table, done, join_or_dash, or_dash, print_json};
use rampart_core::audit::Actor;
use rampart_core::login_rules::AuthSettings;
use rampart_core::time_arg::{DayEdge, format_duration, parse_time_or_date};
use rampart_core::{Action, ActionSet, Grant};
use rampart_session::explain::{ExplainQuery, explain_access};
use rampart_store::IdKind;
use rampart_store::{GrantInput, NewGrant, Store};
use time::OffsetDateTime;

pub async fn run(
    store: &Store,
    actor: &Actor,
    auth: &AuthSettings,
    json: bool,
    command: GrantCommand,
) -> anyhow::Result<()> {
    match command {
        GrantCommand::Add(args) => {
            let grant = new_grant(&args)?;
            let added = store.add_grant(actor, &grant).await?;
            done(
                json,
                &added,
                &format!(
                    "added grant {}: {} may use {} on {} for {}",
                    added.id,
                    added.subject,
                    if added.accounts.is_empty() {
                        "every account".to_owned()
                    } else {
                        join_or_dash(added.accounts.iter().map(ToString::to_string))
                    },
                    added.target,
                    if added.namespaces.is_empty() {
                        added.actions.to_string()
                    } else {
                        format!(
                            "{} in the namespaces {}",
                            added.actions,
                            added.namespaces.join(", ")
                        )
                    }
                ),
            )
        }
        GrantCommand::List => {
            let grants = store.list_grants().await?;
            if json {
                return print_json(&grants);
            }
            let mut table = Table::new([
                "ID",
                "WHO",
                "TARGET",
                "ACCOUNTS",
                "ACTIONS",
                "FROM",
                "UNTIL",
                "CONDITIONS",
            ]);
            for grant in &grants {
                table.row([
                    grant.id.to_string(),
                    grant.subject.to_string(),
                    grant.target.to_string(),
                    if grant.accounts.is_empty() {
                        "*".to_owned()
                    } else {
                        join_or_dash(grant.accounts.iter().map(ToString::to_string))
                    },
                    grant.actions.to_string(),
                    or_dash(grant.valid_from.map(time_text)),
                    or_dash(grant.valid_until.map(time_text)),
                    conditions(grant),
                ]);
            }
            table.print("no grants yet: add one with `rampart grant add --user NAME --asset NAME`");
            Ok(())
        }
        GrantCommand::Explain(args) => explain(store, auth, json, &args).await,
        GrantCommand::Set(args) => {
            let change = rampart_store::GrantChangeInput {
                actions: args.actions,
                from: args.from,
                until: args.until,
                schedule: args.schedule,
                require_mfa: args.require_mfa,
                idle_timeout: args.idle_timeout,
                max_duration: args.max_duration,
                recording: args.recording,
            }
            .parse()?;
            let id = store.resolve_id(IdKind::Grant, &args.id).await?;
            let grant = store.change_grant(actor, id, &change).await?;
            done(
                json,
                &grant,
                &format!(
                    "changed grant {id}: {}; {}",
                    grant.actions,
                    conditions(&grant)
                ),
            )
        }
        GrantCommand::Remove { id } => {
            let id = store.resolve_id(IdKind::Grant, &id).await?;
            store.remove_grant(actor, id).await?;
            done(
                json,
                &serde_json::json!({ "removed": id }),
                &format!("removed grant {id}"),
            )
        }
    }
}

/// Schedule, second factor and time limits, in one short column.
fn conditions(grant: &Grant) -> String {
    let mut parts = Vec::new();
    if !grant.namespaces.is_empty() {
        parts.push(format!("namespaces {}", grant.namespaces.join(",")));
    }
    if let Some(schedule) = &grant.schedule {
        parts.push(schedule.to_string());
    }
    if grant.require_mfa {
        parts.push("mfa".to_owned());
    }
    if let Some(idle) = grant.idle_timeout {
        parts.push(format!("idle {}", format_duration(idle)));
    }
    if let Some(max) = grant.max_duration {
        parts.push(format!("max {}", format_duration(max)));
    }
    if !grant.record {
        parts.push("not recorded".to_owned());
    }
    or_dash((!parts.is_empty()).then(|| parts.join("; ")))
}

/// `rampart grant explain`: the same policy function the gateways ask, with every grant's
/// verdict, for each account in question.
async fn explain(
    store: &Store,
    auth: &AuthSettings,
    json: bool,
    args: &GrantExplainArgs,
) -> anyhow::Result<()> {
    let action = match ActionSet::parse(&args.action)?
        .iter()
        .collect::<Vec<Action>>()[..]
    {
        [action] => action,
        _ => anyhow::bail!("--action takes one action, such as shell or sftp_read"),
    };
    let query = ExplainQuery {
        user: name("user", &args.user)?,
        asset: name("asset", &args.asset)?,
        account: args
            .account
            .as_deref()
            .map(|a| name("account", a))
            .transpose()?,
        action,
        at: match &args.at {
            Some(text) => parse_time_or_date("--at time", text, DayEdge::Start)?,
            None => OffsetDateTime::now_utc(),
        },
        mfa: args.mfa,
        from: args.from,
        namespace: args.namespace.clone(),
    };
    let reports = explain_access(store, &query, &auth.global).await?;
    if json {
        return print_json(&reports);
    }
    for report in &reports {
        println!(
            "{}: {} may{} use {} for {} at {} ({} second factor)",
            report.decision.to_uppercase(),
            report.user,
            if report.decision == "allow" {
                ""
            } else {
                " not"
            },
            report.account,
            report.action,
            report.at,
            if report.mfa { "with a" } else { "without a" },
        );
        if let (Some(from), Some(login)) = (&report.from, &report.login) {
            println!("  login from {from}: {login}");
        }
        match (&report.grant, &report.reason) {
            (Some(grant), _) => println!("  allowed by grant {grant}"),
            (None, Some(reason)) => println!("  reason: {reason}"),
            _ => {}
        }
        if let Some(namespaces) = &report.namespaces {
            println!("  Kubernetes namespaces: {} only", namespaces.join(", "));
        }
        if let Some(rules) = &report.rules {
            println!(
                "  session rules (the strictest of the allowing grants): {}",
                rules.summary
            );
        }
        for verdict in &report.grants {
            let limit = if verdict.namespaces.is_empty() {
                String::new()
            } else {
                format!(", namespaces {}", verdict.namespaces.join(","))
            };
            println!(
                "  grant {} ({} on {}{limit}): {}",
                verdict.grant, verdict.who, verdict.target, verdict.verdict
            );
        }
        if report.grants.is_empty() {
            println!("  (there are no grants)");
        }
    }
    Ok(())
}

fn new_grant(args: &GrantAddArgs) -> anyhow::Result<NewGrant> {
    let input = GrantInput {
        user: args.user.clone(),
        group: args.group.clone(),
        asset: args.asset.clone(),
        labels: args.labels.clone(),
        accounts: args.accounts.clone(),
        actions: args.actions.clone(),
        namespaces: args.namespaces.iter().cloned().collect(),
        from: args.from.clone(),
        until: args.until.clone(),
        schedule: args.schedule.clone(),
        require_mfa: args.require_mfa,
        idle_timeout: args.idle_timeout.clone(),
        max_duration: args.max_duration.clone(),
        no_recording: args.no_recording,
    };
    Ok(input.parse()?)
}
