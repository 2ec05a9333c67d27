//! Groups and their members.

use crate::WebState;
use crate::error::{ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, paged};

pub async fn groups_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let groups = state.store.list_groups().await?;
    paged(groups, |group| group.name.to_string(), &query)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    name: String,
}

pub async fn group_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<NameBody>,
) -> ApiResult<Response> {
    let group = state
        .store
        .add_group(&caller.actor(), &name("group", &body.name)?)
        .await?;
    Ok(created(group))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    user: String,
}

pub async fn group_member_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(group): Path<String>,
    Body(body): Body<MemberAdd>,
) -> ApiResult<Json<Value>> {
    let group = state
        .store
        .add_group_member(
            &caller.actor(),
            &name("group", &group)?,
            &name("user", &body.user)?,
        )
        .await?;
    Ok(Json(json!(group)))
}

pub async fn group_member_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path((group, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let group = state
        .store
        .remove_group_member(
            &caller.actor(),
            &name("group", &group)?,
            &name("user", &user)?,
        )
        .await?;
    Ok(Json(json!(group)))
}

pub async fn group_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(group): Path<String>,
) -> ApiResult<Json<Value>> {
    let group = name("group", &group)?;
    let grants_removed = state.store.remove_group(&caller.actor(), &group).await?;
    Ok(Json(
        json!({ "removed": group, "grants_removed": grants_removed }),
    ))
}
