//! Alerts (`alert_raised` audit events) and their acknowledgement.

use crate::WebState;
use crate::error::{ApiResult, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::InvalidInput;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, paged};

#[derive(Debug, Deserialize)]
pub struct AlertQuery {
    /// `true`: only the alerts nobody has acknowledged yet.
    #[serde(default)]
    open: bool,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Newest first (the key orders pages by descending sequence number); `?open=true` leaves out
/// the acknowledged ones.
pub async fn alerts_list(
    State(state): State<WebState>,
    Query(query): Query<AlertQuery>,
) -> ApiResult<Response> {
    let mut alerts = state.store.list_alerts().await?;
    if query.open {
        alerts.retain(|alert| alert.acknowledged_by.is_none());
    }
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    paged(
        alerts,
        |alert| format!("{:020}", i64::MAX.saturating_sub(alert.id)),
        &page,
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
