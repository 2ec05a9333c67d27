//! `rampart approval ...`: shell lines an `approve` command rule holds, from the node's command
//! line. The operator acts as the node (`cli:NAME`): they may decide any line, as an
//! administrator may (never a user's own: the operator is not a user).

use crate::cli::ApprovalCommand;
use crate::output::{Table, done, print_json};
use rampart_core::audit::Actor;
use rampart_store::{CommandApproval, Decision, IdKind, Store};

fn line(approval: &CommandApproval) -> String {
    format!(
        "{} {}'s line `{}` on {} (approval {})",
        approval.state, approval.requester, approval.line, approval.target, approval.id
    )
}

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: ApprovalCommand,
) -> anyhow::Result<()> {
    match command {
        ApprovalCommand::List { all } => {
            let approvals = store.list_command_approvals(!all).await?;
            if json {
                return print_json(&approvals);
            }
            let mut table = Table::new([
                "ID",
                "ASKED",
                "USER",
                "ON",
                "LINE",
                "RULE",
                "STATE",
                "DECIDED BY",
                "NOTE",
            ]);
            for a in &approvals {
                table.row([
                    a.id.to_string(),
                    a.created_at.clone(),
                    a.requester.clone(),
                    a.target.clone(),
                    a.line.clone(),
                    a.rule.clone(),
                    a.state.clone(),
                    a.decided_by.clone().unwrap_or_else(|| "-".into()),
                    a.note.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            table.print("no command approvals");
            Ok(())
        }
        ApprovalCommand::Approve { id, note } => {
            decide(store, actor, json, &id, note.as_deref(), Decision::Approve).await
        }
        ApprovalCommand::Deny { id, note } => {
            decide(store, actor, json, &id, note.as_deref(), Decision::Deny).await
        }
    }
}

async fn decide(
    store: &Store,
    actor: &Actor,
    json: bool,
    id: &str,
    note: Option<&str>,
    decision: Decision,
) -> anyhow::Result<()> {
    let id = store.resolve_id(IdKind::CommandApproval, id).await?;
    let decided = store
        .decide_command_approval(actor, id, None, decision, note)
        .await?;
    done(json, &decided, &line(&decided))
}
