//! Assets and their pinned host keys.

use crate::WebState;
use crate::error::{ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::Label;
use rampart_store::NewAsset;
use rampart_store::ssh_keys::single_host_key;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, paged};

pub async fn assets_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let assets = state.store.list_assets().await?;
    paged(assets, |asset| asset.name.to_string(), &query)
}

pub async fn asset_show(
    State(state): State<WebState>,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.store.asset(&name("asset", &asset)?).await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetAdd {
    name: String,
    host: String,
    port: Option<u16>,
    #[serde(default)]
    labels: Vec<String>,
}

pub async fn asset_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<AssetAdd>,
) -> ApiResult<Response> {
    let asset = NewAsset {
        name: name("asset", &body.name)?,
        host: rampart_core::parse_host(&body.host)?,
        port: body.port.unwrap_or(22),
        labels: body
            .labels
            .iter()
            .map(|l| Label::parse(l))
            .collect::<Result<_, _>>()?,
    };
    Ok(created(
        state.store.add_asset(&caller.actor(), &asset).await?,
    ))
}

pub async fn asset_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let (accounts, grants) = state.store.remove_asset(&caller.actor(), &asset).await?;
    Ok(Json(
        json!({ "removed": asset, "accounts_removed": accounts, "grants_removed": grants }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyPin {
    /// A `.pub` line or an `ssh-keyscan` line.
    key: String,
}

pub async fn asset_host_key_pin(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
    Body(body): Body<HostKeyPin>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let key = single_host_key("key", &body.key)?;
    state
        .store
        .pin_asset_host_key(&caller.actor(), &asset, &key, "set by administrator", true)
        .await?;
    Ok(Json(json!(state.store.asset(&asset).await?)))
}

pub async fn asset_host_key_clear(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    state
        .store
        .clear_asset_host_key(&caller.actor(), &asset)
        .await?;
    Ok(Json(json!(state.store.asset(&asset).await?)))
}
