//! `rampart group ...`

use super::name;
use crate::cli::{GroupCommand, GroupMemberCommand};
use crate::output::{Table, done, join_or_dash, print_json};
use rampart_core::audit::Actor;
use rampart_store::{Named, Store};

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: GroupCommand,
) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add { name: group } => {
            let group = store.add_group(actor, &name("group", &group)?).await?;
            done(json, &group, &format!("added group {}", group.name))
        }
        GroupCommand::Member(GroupMemberCommand::Add { group, user }) => {
            let user = name("user", &user)?;
            let group = store
                .add_group_member(actor, &name("group", &group)?, &user)
                .await?;
            done(
                json,
                &group,
                &format!("added user {user} to group {}", group.name),
            )
        }
        GroupCommand::Member(GroupMemberCommand::Remove { group, user }) => {
            let user = name("user", &user)?;
            let group = store
                .remove_group_member(actor, &name("group", &group)?, &user)
                .await?;
            done(
                json,
                &group,
                &format!("removed user {user} from group {}", group.name),
            )
        }
        GroupCommand::Remove { name: group, yes } => {
            let group = name("group", &group)?;
            let cascade = store.cascade_of(Named::Group, &group).await?;
            super::confirm_cascade(&format!("group {group}"), cascade, yes)?;
            let grants_removed = store.remove_group(actor, &group).await?;
            done(
                json,
                &serde_json::json!({ "removed": group, "grants_removed": grants_removed }),
                &format!("removed group {group} and {grants_removed} grant(s) naming it"),
            )
        }
        GroupCommand::List => {
            let groups = store.list_groups().await?;
            if json {
                return print_json(&groups);
            }
            let mut table = Table::new(["NAME", "MEMBERS"]);
            for group in &groups {
                table.row([
                    group.name.to_string(),
                    join_or_dash(group.members.iter().map(ToString::to_string)),
                ]);
            }
            table.print("no groups yet: add one with `rampart group add NAME`");
            Ok(())
        }
    }
}
