//! Access requests: a user asks for time-bound access; approvers approve (a grant that ends on
//! its own) or deny. Who may decide is `rampart_core::requests::may_decide`, the CLI's rule too.

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Path, Query};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::requests::{Approver, RequestFacts, may_decide};
use rampart_core::time_arg::{format_duration, parse_duration};
use rampart_core::{ActionSet, GrantTarget, Label, Name, Role};
use rampart_store::{AccessRequest, Decision, NewAccessRequest, RequestFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, paged, uuid};

#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    asset: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
    actions: Option<String>,
    /// Such as `2h`.
    duration: String,
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    note: Option<String>,
}

/// The labels a decision about `request` goes by: its own, or its asset's.
async fn labels_of(state: &WebState, request: &AccessRequest) -> ApiResult<Vec<Label>> {
    match &request.asset {
        Some(asset) => match state.store.asset(&name("asset", asset)?).await {
            Ok(asset) => Ok(asset.labels),
            // The asset is gone: only administrators (no label needed) can still decide.
            Err(rampart_store::StoreError::NotFound { .. }) => Ok(Vec::new()),
            Err(err) => Err(err.into()),
        },
        None => Ok(request
            .labels
            .iter()
            .filter_map(|l| Label::parse(l).ok())
            .collect()),
    }
}

async fn can_decide(state: &WebState, caller: &Caller, request: &AccessRequest) -> ApiResult<bool> {
    Ok(check(state, caller, request).await?.is_ok())
}

async fn check(
    state: &WebState,
    caller: &Caller,
    request: &AccessRequest,
) -> ApiResult<Result<(), rampart_core::requests::Refusal>> {
    let labels = labels_of(state, request).await?;
    let requester = name("user", &request.requester)?;
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

fn shown(request: &AccessRequest, mine: bool, can_decide: bool) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("mine".into(), json!(mine));
        map.insert(
            "can_decide".into(),
            json!(can_decide && request.is_pending()),
        );
    }
    value
}

/// My requests and those I may decide; auditors and administrators see all. Newest first.
pub async fn requests_list(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<RequestsQuery>,
) -> ApiResult<Response> {
    let all = state
        .store
        .list_access_requests(&RequestFilter {
            state: query.state.clone(),
            requester: None,
        })
        .await?;
    let sees_all = matches!(caller.user.role, Role::Admin | Role::Auditor);
    let mut visible = Vec::new();
    for request in all {
        let mine = request.requester == caller.user.name.as_str();
        let decides = can_decide(&state, &caller, &request).await?;
        if sees_all || mine || (decides && request.is_pending()) {
            visible.push(shown(&request, mine, decides));
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

/// Asks for access as the caller.
pub async fn request_create(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Json(input): Json<RequestInput>,
) -> ApiResult<Response> {
    let target = match (&input.asset, input.labels.is_empty()) {
        (Some(asset), true) => GrantTarget::Asset(name("asset", asset)?),
        (None, false) => GrantTarget::Labels(
            input
                .labels
                .iter()
                .map(|l| Label::parse(l))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(ApiError::bad_request("give exactly one of asset or labels")),
    };
    let duration = parse_duration("duration", &input.duration)?;
    let max = state.settings.requests.max_duration;
    if duration > max {
        return Err(ApiError::bad_request(format!(
            "a request may ask for at most {} (requests.max_duration)",
            format_duration(max)
        )));
    }
    let request = NewAccessRequest {
        requester: caller.user.name.clone(),
        target,
        accounts: input
            .accounts
            .iter()
            .map(|a| Name::parse("account", a))
            .collect::<Result<_, _>>()?,
        actions: match &input.actions {
            Some(list) => ActionSet::parse(list)?,
            None => ActionSet::default_for_grant(),
        },
        duration,
        reason: input.reason,
    };
    let made = state
        .store
        .create_access_request(&caller.actor(), &request)
        .await?;
    Ok(created(shown(&made, true, false)))
}

async fn decide(
    state: WebState,
    caller: Caller,
    id: String,
    decision: Decision,
    input: Option<Json<DecisionInput>>,
) -> ApiResult<Json<Value>> {
    let id = uuid("access request", &id)?;
    let request = state.store.access_request(id).await?;
    let mine = request.requester == caller.user.name.as_str();
    let sees_all = matches!(caller.user.role, Role::Admin | Role::Auditor);
    match check(&state, &caller, &request).await? {
        Ok(()) => {}
        // Someone else's request they may not decide: as if it did not exist, unless they may
        // see every request anyway.
        Err(_) if !mine && !sees_all => {
            return Err(ApiError::not_found(format!("no access request {id}")));
        }
        Err(refusal) => return Err(ApiError::forbidden(refusal.to_string())),
    }
    let note = input.and_then(|Json(i)| i.note);
    let decided = state
        .store
        .decide_access_request(
            &caller.actor(),
            id,
            Some(&caller.user.name),
            decision,
            note.as_deref(),
        )
        .await?;
    Ok(Json(shown(&decided, mine, false)))
}

pub async fn request_approve(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    input: Option<Json<DecisionInput>>,
) -> ApiResult<Json<Value>> {
    decide(state, caller, id, Decision::Approve, input).await
}

pub async fn request_deny(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    input: Option<Json<DecisionInput>>,
) -> ApiResult<Json<Value>> {
    decide(state, caller, id, Decision::Deny, input).await
}

/// The requester withdraws a pending request.
pub async fn request_cancel(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid("access request", &id)?;
    let cancelled = state
        .store
        .cancel_access_request(&caller.actor(), id, &caller.user.name)
        .await?;
    Ok(Json(shown(&cancelled, true, false)))
}
