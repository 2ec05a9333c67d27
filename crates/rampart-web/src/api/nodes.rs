//! The cluster's nodes (issue 19), for auditors and administrators.

use crate::WebState;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::State;

/// Every node that has served this store: state, last heartbeat, live sessions.
pub async fn nodes_list(
    State(state): State<WebState>,
) -> ApiResult<Json<Vec<rampart_store::nodes::Node>>> {
    Ok(Json(state.store.list_nodes().await?))
}
