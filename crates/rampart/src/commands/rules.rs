//! `rampart rule ...`: command rules (allow, warn or deny commands) on grants and asset labels.

use crate::cli::RuleCommand;
use crate::output::{Table, done, print_json};
use anyhow::Context;
use rampart_core::Label;
use rampart_core::audit::Actor;
use rampart_core::rules::{Matcher, RuleAction, RuleScope};
use rampart_store::{NewCommandRule, Store};
use uuid::Uuid;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: RuleCommand,
) -> anyhow::Result<()> {
    match command {
        RuleCommand::Add {
            grant,
            label,
            matcher,
            action,
            position,
        } => {
            let scope = match (grant, label) {
                (Some(grant), None) => RuleScope::Grant(parse_id("grant", &grant)?),
                (None, Some(label)) => RuleScope::Label(Label::parse(&label)?),
                _ => anyhow::bail!("give exactly one of --grant ID or --label KEY=VALUE"),
            };
            let new = NewCommandRule {
                scope,
                matcher: Matcher::parse(&matcher)?,
                action: RuleAction::parse(&action)?,
                position,
            };
            let rule = store.add_command_rule(actor, &new).await?;
            done(
                json,
                &rule.summary(),
                &format!(
                    "added command rule {} ({}) on {}",
                    rule.id,
                    rule.describe(),
                    rule.scope
                ),
            )
        }
        RuleCommand::List => {
            let rules = store.list_command_rules().await?;
            let summaries: Vec<_> = rules.iter().map(|rule| rule.summary()).collect();
            if json {
                return print_json(&summaries);
            }
            let mut table = Table::new(["POSITION", "ID", "ON", "MATCH", "ACTION"]);
            for rule in &rules {
                table.row([
                    rule.position.to_string(),
                    rule.id.to_string(),
                    rule.scope.to_string(),
                    rule.matcher.to_string(),
                    rule.action.to_string(),
                ]);
            }
            table.print(
                "no command rules: every command is allowed (add one with `rampart rule add`)",
            );
            Ok(())
        }
        RuleCommand::Remove { id } => {
            let id = parse_id("command rule", &id)?;
            store.remove_command_rule(actor, id).await?;
            done(
                json,
                &serde_json::json!({ "removed": id.to_string() }),
                &format!("removed command rule {id}"),
            )
        }
    }
}

fn parse_id(what: &str, text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("invalid {what} id {text:?}: expected a UUID"))
}
