//! Break-glass in the API (issue 17): the offline kits' seal parameters (never a secret or a
//! share: the store holds none, and kits are sealed and opened with the CLI only), emergency
//! access requests, and their approval by two administrators, each approving as themselves.
//! The rules (two distinct enabled administrators, never the request's user) are the store's
//! (`approve_breakglass`), the same as the CLI's.

use super::{Caller_, created, name};
use crate::WebState;
use crate::error::{ApiResult, Path};
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use rampart_core::time_arg::parse_duration;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakglassInput {
    user: String,
    asset: String,
    reason: String,
    /// Such as `2h` (default 1h).
    duration: Option<String>,
}

/// The kits: file, kit id, when sealed, which accounts, which custodians (names only) and how
/// many of them open it.
pub async fn breakglass_kits(State(state): State<WebState>) -> ApiResult<Json<Value>> {
    let kits = state.store.breakglass_kits().await?;
    let kits: Vec<Value> = kits
        .iter()
        .map(|kit| {
            json!({
                "path": kit.path,
                "kit": kit.kit,
                "sealed_at": rampart_core::time_arg::format_rfc3339(kit.sealed_at),
                "accounts": kit.accounts.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "custodians": kit.custodians.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "threshold": kit.threshold,
            })
        })
        .collect();
    Ok(Json(Value::Array(kits)))
}

/// Every break-glass request, with its approvals.
pub async fn breakglass_requests(State(state): State<WebState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.breakglass_requests().await?)))
}

/// Files a break-glass request (an alert to every sink); it gives nothing until two other
/// administrators approve it.
pub async fn breakglass_request(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Json(input): Json<BreakglassInput>,
) -> ApiResult<Response> {
    let user = name("user", &input.user)?;
    let asset = name("asset", &input.asset)?;
    let duration = parse_duration("duration", input.duration.as_deref().unwrap_or("1h"))?;
    let request = state
        .store
        .request_breakglass(&caller.actor(), &user, &asset, &input.reason, duration)
        .await?;
    Ok(created(json!(request)))
}

/// The caller approves request `id`; the second administrator's approval opens the access.
pub async fn breakglass_approve(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let request = state
        .store
        .approve_breakglass(&caller.actor(), id.trim(), &caller.user.name)
        .await?;
    Ok(Json(json!(request)))
}
