//! Grants and `explain`.

use crate::error::{ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use crate::{WebState, now};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_store::{GrantChangeInput, GrantInput};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, one_action, paged, time_param, uuid};

pub async fn grants_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let grants = state.store.list_grants().await?;
    paged(grants, |grant| grant.id.to_string(), &query)
}

pub async fn grant_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<GrantInput>,
) -> ApiResult<Response> {
    let grant = body.parse()?;
    Ok(created(
        state.store.add_grant(&caller.actor(), &grant).await?,
    ))
}

pub async fn grant_change(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    Body(body): Body<GrantChangeInput>,
) -> ApiResult<Json<Value>> {
    let id = uuid("grant", &id)?;
    let change = body.parse()?;
    let grant = state
        .store
        .change_grant(&caller.actor(), id, &change)
        .await?;
    Ok(Json(json!(grant)))
}

pub async fn grant_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid("grant", &id)?;
    state.store.remove_grant(&caller.actor(), id).await?;
    Ok(Json(json!({ "removed": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    user: String,
    asset: String,
    account: Option<String>,
    action: Option<String>,
    at: Option<String>,
    mfa: Option<bool>,
    from: Option<std::net::IpAddr>,
    namespace: Option<String>,
}

/// The same question `rampart grant explain` asks, answered by the same function.
pub async fn grant_explain(
    State(state): State<WebState>,
    Query(query): Query<ExplainParams>,
) -> ApiResult<Json<Vec<rampart_session::explain::AccessReport>>> {
    let question = rampart_session::explain::ExplainQuery {
        user: name("user", &query.user)?,
        asset: name("asset", &query.asset)?,
        account: query
            .account
            .as_deref()
            .map(|login| name("account", login))
            .transpose()?,
        action: one_action(query.action.as_deref().unwrap_or("shell"))?,
        at: time_param("at", &query.at)?.unwrap_or_else(now),
        mfa: query.mfa,
        from: query.from,
        namespace: query.namespace,
    };
    let reports = rampart_session::explain::explain_access(
        &state.store,
        &question,
        &state.settings.auth.global,
    )
    .await?;
    Ok(Json(reports))
}
