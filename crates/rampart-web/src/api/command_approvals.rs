//! Command approvals: shell lines an `approve` command rule holds, waiting for an approver.
//! Who may decide is the access requests' rule (`rampart_core::requests::may_decide` over the
//! asset's labels): never one's own line, any for administrators, else a configured approver
//! group covering the asset. The CLI asks the same.

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Path, Query};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::Role;
use rampart_core::requests::{Approver, RequestFacts, may_decide};
use rampart_store::{CommandApproval, Decision};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, name, paged, uuid};

#[derive(Debug, Deserialize)]
pub struct ApprovalsQuery {
    /// `pending` (the default) or `all`.
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecisionInput {
    note: Option<String>,
}

fn check(
    state: &WebState,
    caller: &Caller,
    approval: &CommandApproval,
) -> ApiResult<Result<(), rampart_core::requests::Refusal>> {
    let requester = name("user", &approval.requester)?;
    let labels = approval.label_values();
    Ok(may_decide(
        &Approver {
            name: &caller.user.name,
            role: caller.user.role,
            groups: &caller.user.groups,
        },
        &RequestFacts {
            requester: &requester,
            labels: &labels,
        },
        &state.settings.requests.approvers,
    ))
}

fn shown(approval: &CommandApproval, mine: bool, can_decide: bool) -> Value {
    let mut value = serde_json::to_value(approval).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        let pending = approval.is_pending();
        if approval.state == "pending" && !pending {
            // Past its time: the session has denied it (or will, at its next look).
            map.insert("state".into(), json!("timed_out"));
        }
        map.insert("mine".into(), json!(mine));
        map.insert("can_decide".into(), json!(can_decide && pending));
    }
    value
}

/// Held lines waiting for an approver: mine, those I may decide and those I decided; auditors
/// and administrators see all. Newest first. `state=all` includes decided ones.
pub async fn command_approvals_list(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<ApprovalsQuery>,
) -> ApiResult<Response> {
    let pending_only = match query.state.as_deref() {
        None | Some("pending") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid state {other:?}: use pending or all"
            )));
        }
    };
    let all = state.store.list_command_approvals(pending_only).await?;
    let sees_all = matches!(caller.user.role, Role::Admin | Role::Auditor);
    let mut visible = Vec::new();
    for approval in all {
        let mine = approval.requester == caller.user.name.as_str();
        let decides = check(&state, &caller, &approval)?.is_ok();
        let decided_it = approval.decided_by.as_deref() == Some(caller.user.name.as_str());
        if sees_all || mine || decided_it || (decides && approval.is_pending()) {
            visible.push(shown(&approval, mine, decides));
        }
    }
    // Newest first: ids are time-ordered (UUID v7), the key reverses them.
    let key = |value: &Value| {
        let id = value["id"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map_or(0, |id| id.as_u128());
        format!("{:032x}", u128::MAX - id)
    };
    paged(
        visible,
        key,
        &crate::paging::PageQuery {
            limit: query.limit,
            cursor: query.cursor,
        },
    )
}

async fn decide(
    state: WebState,
    caller: Caller,
    id: String,
    decision: Decision,
    input: Option<Json<ApprovalDecisionInput>>,
) -> ApiResult<Json<Value>> {
    let id = uuid("command approval", &id)?;
    let approval = state.store.command_approval(id).await?;
    let mine = approval.requester == caller.user.name.as_str();
    let sees_all = matches!(caller.user.role, Role::Admin | Role::Auditor);
    match check(&state, &caller, &approval)? {
        Ok(()) => {}
        // Someone else's line they may not decide: as if it did not exist, unless they may see
        // every approval anyway.
        Err(_) if !mine && !sees_all => {
            return Err(ApiError::not_found(format!("no command approval {id}")));
        }
        Err(refusal) => return Err(ApiError::forbidden(refusal.to_string())),
    }
    let note = input.and_then(|Json(i)| i.note);
    let decided = state
        .store
        .decide_command_approval(
            &caller.actor(),
            id,
            Some(&caller.user.name),
            decision,
            note.as_deref(),
        )
        .await?;
    Ok(Json(shown(&decided, mine, false)))
}

pub async fn command_approval_approve(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    input: Option<Json<ApprovalDecisionInput>>,
) -> ApiResult<Json<Value>> {
    decide(state, caller, id, Decision::Approve, input).await
}

pub async fn command_approval_deny(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    input: Option<Json<ApprovalDecisionInput>>,
) -> ApiResult<Json<Value>> {
    decide(state, caller, id, Decision::Deny, input).await
}
