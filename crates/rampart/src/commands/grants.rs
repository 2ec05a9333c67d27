//! `rampart grant ...`

use super::{name, time_text};
use crate::cli::{GrantAddArgs, GrantCommand};
use crate::output::{Table, done, join_or_dash, or_dash, print_json};
use anyhow::Context;
use rampart_core::audit::Actor;
use rampart_core::time_arg::parse_rfc3339;
use rampart_core::{ActionSet, GrantSubject, GrantTarget, Label};
use rampart_store::{NewGrant, Store};
use uuid::Uuid;

pub async fn run(
    store: &Store,
    actor: &Actor,
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
                "ID", "WHO", "TARGET", "ACCOUNTS", "ACTIONS", "FROM", "UNTIL",
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
                ]);
            }
            table.print("no grants yet: add one with `rampart grant add --user NAME --asset NAME`");
            Ok(())
        }
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

fn new_grant(args: &GrantAddArgs) -> anyhow::Result<NewGrant> {
    let subject = match (&args.user, &args.group) {
        (Some(user), None) => GrantSubject::User(name("user", user)?),
        (None, Some(group)) => GrantSubject::Group(name("group", group)?),
        _ => anyhow::bail!("give exactly one of --user or --group"),
    };
    let target = match &args.asset {
        Some(asset) => GrantTarget::Asset(name("asset", asset)?),
        None => GrantTarget::Labels(
            args.labels
                .iter()
                .map(|l| Label::parse(l))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(NewGrant {
        subject,
        target,
        accounts: args
            .accounts
            .iter()
            .map(|a| name("account", a))
            .collect::<Result<_, _>>()?,
        actions: match &args.actions {
            Some(list) => ActionSet::parse(list)?,
            None => ActionSet::default_for_grant(),
        },
        valid_from: args
            .from
            .as_deref()
            .map(|t| parse_rfc3339("--from time", t))
            .transpose()?,
        valid_until: args
            .until
            .as_deref()
            .map(|t| parse_rfc3339("--until time", t))
            .transpose()?,
    })
}
