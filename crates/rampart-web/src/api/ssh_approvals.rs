//! Web approval at SSH login, the portal's side: the user the login names sees it (its login
//! name and source) and approves or denies it. Approving needs a browser session, with the
//! second factor when the user has one; the SSH login then carries that session's `mfa`.

use crate::WebState;
use crate::error::{ApiError, ApiResult, Body, Path};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use rampart_ssh::web_approval::{Answer, WebApprovals};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::Caller_;

fn approvals(state: &WebState) -> ApiResult<Arc<WebApprovals>> {
    state
        .gateway
        .as_ref()
        .and_then(rampart_ssh::Gateway::web_approvals)
        .ok_or_else(|| {
            ApiError::not_found("web approval at SSH login is off (auth.ssh_web_approval)")
        })
}

const NOT_WAITING: &str = "no login of yours waits for that approval (wrong, expired or answered)";

pub async fn ssh_approval_show(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let waiting = approvals(&state)?
        .show(&id, &caller.user.name)
        .ok_or_else(|| ApiError::not_found(NOT_WAITING))?;
    Ok(Json(json!({
        "login": waiting.login,
        "source": waiting.source.to_string(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    approve: bool,
}

pub async fn ssh_approval_answer(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    Body(body): Body<ApprovalAnswer>,
) -> ApiResult<Json<Value>> {
    let approvals = approvals(&state)?;
    let answer = if body.approve {
        let Some(session) = &caller.session else {
            return Err(ApiError::forbidden(
                "an SSH login is approved from a browser session only, not with an API token",
            ));
        };
        if caller.user.has_second_factor() && !session.mfa {
            return Err(ApiError::forbidden(
                "approving an SSH login needs a portal login with your second factor",
            ));
        }
        Answer::Approved { mfa: session.mfa }
    } else {
        Answer::Denied
    };
    if !approvals.answer(&id, &caller.user.name, answer) {
        return Err(ApiError::not_found(NOT_WAITING));
    }
    Ok(Json(json!({ "approved": body.approve })))
}
