//! `rampart request ...`: access requests from the node's command line. The operator acts as
//! the node (`cli:NAME`): they may decide any request, as an administrator may.

use crate::cli::RequestCommand;
use crate::output::{Table, done, print_json};
use anyhow::bail;
use rampart_core::audit::Actor;
use rampart_core::requests::RequestSettings;
use rampart_core::time_arg::{format_duration, parse_duration};
use rampart_core::{ActionSet, GrantTarget, Label, Name};
use rampart_store::{AccessRequest, Decision, IdKind, NewAccessRequest, RequestFilter, Store};

fn line(request: &AccessRequest) -> String {
    match request.state.as_str() {
        "approved" => format!(
            "approved {}'s request {} for {}: access until {}",
            request.requester,
            request.id,
            request.target,
            request.valid_until.as_deref().unwrap_or("-")
        ),
        state => format!(
            "{state} {}'s request {} for {}",
            request.requester, request.id, request.target
        ),
    }
}

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: RequestCommand,
    settings: &RequestSettings,
) -> anyhow::Result<()> {
    match command {
        RequestCommand::Create {
            user,
            asset,
            label,
            account,
            actions,
            duration,
            reason,
        } => {
            let target = match (asset, label.is_empty()) {
                (Some(asset), true) => GrantTarget::Asset(Name::parse("asset", &asset)?),
                (None, false) => GrantTarget::Labels(
                    label
                        .iter()
                        .map(|l| Label::parse(l))
                        .collect::<Result<_, _>>()?,
                ),
                _ => bail!("give --asset or at least one --label"),
            };
            let duration = parse_duration("--duration", &duration)?;
            if duration > settings.max_duration {
                bail!(
                    "a request may ask for at most {} (requests.max_duration)",
                    format_duration(settings.max_duration)
                );
            }
            let request = NewAccessRequest {
                requester: Name::parse("user", &user)?,
                target,
                accounts: account
                    .iter()
                    .map(|a| Name::parse("account", a))
                    .collect::<Result<_, _>>()?,
                actions: match actions {
                    Some(list) => ActionSet::parse(&list)?,
                    None => ActionSet::default_for_grant(),
                },
                duration,
                reason,
            };
            let made = store.create_access_request(actor, &request).await?;
            done(
                json,
                &made,
                &format!(
                    "request {} by {} for {} ({}) is pending approval",
                    made.id, made.requester, made.target, made.duration
                ),
            )
        }
        RequestCommand::List { state, user } => {
            let filter = RequestFilter {
                state,
                requester: user.map(|u| Name::parse("user", &u)).transpose()?,
            };
            let requests = store.list_access_requests(&filter).await?;
            if json {
                return print_json(&requests);
            }
            let mut table = Table::new([
                "ID",
                "ASKED",
                "USER",
                "FOR",
                "ACCOUNTS",
                "HOW LONG",
                "STATE",
                "DECIDED BY",
                "REASON",
            ]);
            for r in &requests {
                table.row([
                    r.id.to_string(),
                    r.created_at.clone(),
                    r.requester.clone(),
                    r.target.clone(),
                    if r.accounts.is_empty() {
                        "any".to_owned()
                    } else {
                        r.accounts.join(",")
                    },
                    r.duration.clone(),
                    r.state.clone(),
                    r.decided_by.clone().unwrap_or_else(|| "-".into()),
                    r.reason.clone(),
                ]);
            }
            table.print("no access requests");
            Ok(())
        }
        RequestCommand::Approve { id, note } => {
            decide(store, actor, json, &id, note.as_deref(), Decision::Approve).await
        }
        RequestCommand::Deny { id, note } => {
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
    let id = store.resolve_id(IdKind::AccessRequest, id).await?;
    let decided = store
        .decide_access_request(actor, id, None, decision, note)
        .await?;
    done(json, &decided, &line(&decided))
}
