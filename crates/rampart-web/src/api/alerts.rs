//! Alerts (`alert_raised` audit events) and their acknowledgement.

use crate::WebState;
use crate::error::{ApiResult, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::InvalidInput;
use serde_json::{Value, json};

use super::{Caller_, paged};

/// Newest first (the key orders pages by descending sequence number).
pub async fn alerts_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let alerts = state.store.list_alerts().await?;
    paged(
        alerts,
        |alert| format!("{:020}", i64::MAX.saturating_sub(alert.id)),
        &query,
    )
}

pub async fn alert_acknowledge(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: i64 = id
        .parse()
        .map_err(|_| InvalidInput::new(format!("invalid alert id {id:?}: expected a number")))?;
    state.store.acknowledge_alert(&caller.actor(), id).await?;
    Ok(Json(json!({ "acknowledged": id })))
}
