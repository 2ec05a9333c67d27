//! `rampart grant ...`

use super::{name, time_text};
use crate::cli::{GrantAddArgs, GrantCommand, GrantExplainArgs};
use crate::output::{Table, done, join_or_dash, or_dash, print_json};
use anyhow::Context;
use rampart_core::audit::Actor;
use rampart_core::login_rules::{AuthSettings, check_login};
use rampart_core::policy::{self, AccessRequest, Decision, GrantVerdict};
use rampart_core::time_arg::{format_duration, parse_rfc3339};
use rampart_core::{Action, ActionSet, Grant};
use rampart_store::{GrantInput, NewGrant, Store};
use time::OffsetDateTime;
use uuid::Uuid;

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
                    added.actions
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
        GrantCommand::Remove { id } => {
            let id = Uuid::parse_str(&id).with_context(|| {
                format!("invalid grant id {id:?}: expected the id `rampart grant list` prints")
            })?;
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
    let user = store.user(&name("user", &args.user)?).await?;
    let asset = store.asset(&name("asset", &args.asset)?).await?;
    let action = match ActionSet::parse(&args.action)?
        .iter()
        .collect::<Vec<Action>>()[..]
    {
        [action] => action,
        _ => anyhow::bail!("--action takes one action, such as shell or sftp_read"),
    };
    let at = match &args.at {
        Some(text) => parse_rfc3339("--at time", text)?,
        None => OffsetDateTime::now_utc(),
    };
    // Users with a second factor enrolled always log in with it.
    let mfa = args.mfa.unwrap_or(user.mfa_enrolled);
    let accounts = match &args.account {
        Some(login) => vec![name("account", login)?],
        None => store
            .list_accounts(Some(&asset.name))
            .await?
            .into_iter()
            .map(|account| account.login)
            .collect(),
    };
    if accounts.is_empty() {
        anyhow::bail!(
            "asset {} has no accounts: add one with `rampart account add`",
            asset.name
        );
    }
    let grants = store.list_grants().await?;
    // A login the rules refuse gets nowhere, whatever the grants say.
    let login = args
        .from
        .map(|source| check_login(&auth.global, &user.login_rules, source, at));
    let login_denied = match &login {
        Some(Err(denied)) => Some(format!("the login is refused: {denied}")),
        _ => None,
    };
    let mut results = Vec::new();
    for account in &accounts {
        let request = AccessRequest {
            user: &user,
            asset: &asset,
            account,
            action,
            at,
            mfa,
        };
        let explanation = policy::explain(&request, &grants);
        let (decision, reason, grant) = match (&login_denied, &explanation.decision) {
            (Some(denied), _) => ("deny", Some(denied.clone()), None),
            (None, Decision::Allow { grant, .. }) => ("allow", None, Some(*grant)),
            (None, Decision::Deny(reason)) => ("deny", Some(reason.to_string()), None),
        };
        let verdicts: Vec<serde_json::Value> = grants
            .iter()
            .zip(&explanation.grants)
            .map(|(g, (_, verdict))| {
                serde_json::json!({
                    "grant": g.id,
                    "who": g.subject.to_string(),
                    "target": g.target.to_string(),
                    "verdict": verdict.to_string(),
                    "allows": *verdict == GrantVerdict::Allows,
                })
            })
            .collect();
        results.push(serde_json::json!({
            "user": user.name,
            "account": format!("{account}@{}", asset.name),
            "action": action.to_string(),
            "at": rampart_core::time_arg::format_rfc3339(at),
            "mfa": mfa,
            "from": args.from.map(|ip| ip.to_string()),
            "login": login.as_ref().map(|l| match l {
                Ok(()) => "allowed".to_owned(),
                Err(denied) => denied.to_string(),
            }),
            "decision": decision,
            "reason": reason,
            "grant": grant,
            "grants": verdicts,
        }));
    }
    if json {
        return print_json(&results);
    }
    for result in &results {
        let text = |key: &str| result[key].as_str().unwrap_or("-").to_owned();
        println!(
            "{}: {} may{} use {} for {} at {} ({} second factor)",
            text("decision").to_uppercase(),
            text("user"),
            if text("decision") == "allow" {
                ""
            } else {
                " not"
            },
            text("account"),
            text("action"),
            text("at"),
            if mfa { "with a" } else { "without a" },
        );
        if let (Some(from), Some(login)) = (result["from"].as_str(), result["login"].as_str()) {
            println!("  login from {from}: {login}");
        }
        match (result["grant"].as_str(), result["reason"].as_str()) {
            (Some(grant), _) => println!("  allowed by grant {grant}"),
            (None, Some(reason)) => println!("  reason: {reason}"),
            _ => {}
        }
        for verdict in result["grants"].as_array().into_iter().flatten() {
            let field = |key: &str| verdict[key].as_str().unwrap_or("-").to_owned();
            println!(
                "  grant {} ({} on {}): {}",
                field("grant"),
                field("who"),
                field("target"),
                field("verdict")
            );
        }
        if grants.is_empty() {
            println!("  (there are no grants)");
        }
    }
    Ok(())
}

/// The flags as a [`GrantInput`], parsed by the same function the API uses.
fn new_grant(args: &GrantAddArgs) -> anyhow::Result<NewGrant> {
    let input = GrantInput {
        user: args.user.clone(),
        group: args.group.clone(),
        asset: args.asset.clone(),
        labels: args.labels.clone(),
        accounts: args.accounts.clone(),
        actions: args.actions.clone(),
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
