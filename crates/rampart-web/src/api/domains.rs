//! Network domains with their gateways (priority order, never their secrets) and assets.

use crate::WebState;
use crate::error::{ApiResult, Path, Query};
use crate::paging::PageQuery;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::{name, paged};

pub async fn domains_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let domains = state.store.list_domains().await?;
    paged(domains, |d| d.domain.name.to_string(), &query)
}

pub async fn domain_show(
    State(state): State<WebState>,
    Path(domain): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.store.domain(&name("domain", &domain)?).await?
    )))
}
