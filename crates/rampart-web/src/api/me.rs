//! Who the caller is and which accounts they may use now.

use crate::error::{ApiResult, Query};
use crate::paging::{self, Order};
use crate::{WebState, now};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::time_arg::format_rfc3339;
use rampart_session::authorize::Snapshot;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, one_action};

pub async fn me(State(state): State<WebState>, Extension(caller): Caller_) -> Json<Value> {
    Json(json!({
        "user": caller.user,
        "via": if caller.session.is_some() { "session" } else { "token" },
        "scope": caller.token.as_ref().map(|t| t.scope),
        "mfa": caller.session.as_ref().map(|s| s.mfa).unwrap_or(false),
        "csrf_token": caller.csrf_token,
        "session_expires_at": caller.session.as_ref().map(|s| format_rfc3339(s.expires_at)),
        // Where users connect with their own SSH client (the portal builds `ssh` commands).
        "ssh": { "port": state.settings.ssh_port },
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    action: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The accounts the caller may use now for `action` (default shell), as the SSH menu shows.
pub async fn my_accounts(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<ActionQuery>,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let action = one_action(query.action.as_deref().unwrap_or("shell"))?;
    let mfa = caller.session.as_ref().is_some_and(|s| s.mfa);
    let snapshot = Snapshot::for_user(&state.store, &caller.user.name).await?;
    let allowed = snapshot
        .as_user(&caller.user.name, mfa, now())
        .map(|access| access.allowed_accounts(action))
        .unwrap_or_default();
    let list: Vec<Value> = allowed
        .into_iter()
        .map(|(asset, login)| {
            json!({
                "account": format!("{login}@{}", asset.name),
                "login": login,
                "asset": asset.name,
                "host": asset.host,
                "port": asset.endpoint(rampart_core::Protocol::Ssh).map(|e| e.port),
                "endpoints": asset.endpoints,
                "labels": asset.labels,
            })
        })
        .collect();
    let key = |item: &Value| item["account"].as_str().unwrap_or_default().to_owned();
    let (page, next) =
        paging::in_memory(list, key, Order::Ascending, limit, query.cursor.as_deref());
    Ok(paging::respond(&page, next))
}
