//! Assets, their endpoints (the protocols they speak) and their pinned host keys.

use crate::WebState;
use crate::error::{ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::target::parse_port;
use rampart_core::{Endpoint, Label, Protocol};
use rampart_store::ssh_keys::single_host_key;
use rampart_store::{AssetChange, EndpointChange, NewAsset};
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
    /// The ssh endpoint's port (22 when neither this nor `endpoints` is given).
    port: Option<u16>,
    /// Other endpoints.
    #[serde(default)]
    endpoints: Vec<EndpointBody>,
    domain: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

/// An endpoint in a request: `{"protocol": "postgres", "port": 5432}`; without a port, the
/// protocol's usual one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    protocol: String,
    port: Option<u16>,
}

impl EndpointBody {
    fn parse(&self) -> Result<Endpoint, rampart_core::InvalidInput> {
        match self.port {
            Some(port) => Ok(Endpoint::new(
                Protocol::parse(&self.protocol)?,
                parse_port(&port.to_string())?,
            )),
            None => Endpoint::parse(&self.protocol),
        }
    }
}

pub async fn asset_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<AssetAdd>,
) -> ApiResult<Response> {
    let mut endpoints: Vec<Endpoint> = body
        .endpoints
        .iter()
        .map(EndpointBody::parse)
        .collect::<Result<_, _>>()?;
    if body.port.is_some() || endpoints.is_empty() {
        endpoints.insert(0, Endpoint::new(Protocol::Ssh, body.port.unwrap_or(22)));
    }
    let asset = NewAsset {
        name: name("asset", &body.name)?,
        host: rampart_core::parse_host(&body.host)?,
        domain: body
            .domain
            .as_deref()
            .map(|d| name("domain", d))
            .transpose()?,
        endpoints,
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

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSet {
    host: Option<String>,
    /// A domain name, or `null` to take the asset out of its domain.
    #[serde(default, deserialize_with = "present")]
    domain: Option<Option<String>>,
    /// The asset's whole new set of labels (`["env=prod"]`; `[]` removes them all).
    labels: Option<Vec<String>>,
}

pub async fn asset_set(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
    Body(body): Body<AssetSet>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let change = AssetChange {
        host: body
            .host
            .as_deref()
            .map(rampart_core::parse_host)
            .transpose()?,
        domain: match body.domain {
            Some(Some(domain)) => Some(Some(name("domain", &domain)?)),
            Some(None) => Some(None),
            None => None,
        },
        labels: body
            .labels
            .map(|labels| {
                labels
                    .iter()
                    .map(|l| rampart_core::Label::parse(l))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?,
    };
    Ok(Json(json!(
        state
            .store
            .set_asset(&caller.actor(), &asset, &change)
            .await?
    )))
}

pub async fn asset_endpoint_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
    Body(body): Body<EndpointBody>,
) -> ApiResult<Response> {
    let asset = name("asset", &asset)?;
    let endpoint = body.parse()?;
    Ok(created(
        state
            .store
            .add_asset_endpoint(&caller.actor(), &asset, &endpoint)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSet {
    port: Option<u16>,
    /// `SHA256:` and 64 hex digits, or `null` to forget the pinned fingerprint.
    #[serde(default, deserialize_with = "present")]
    tls_fingerprint: Option<Option<String>>,
    /// RDP endpoints: `nla` (the default) or `tls` (TLS without NLA, for xrdp).
    rdp_security: Option<String>,
}

pub async fn asset_endpoint_set(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path((asset, protocol)): Path<(String, String)>,
    Body(body): Body<EndpointSet>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let protocol = Protocol::parse(&protocol)?;
    let change = EndpointChange {
        port: body.port.map(|p| parse_port(&p.to_string())).transpose()?,
        tls_fingerprint: body.tls_fingerprint,
        rdp_security: body.rdp_security,
    };
    Ok(Json(json!(
        state
            .store
            .set_asset_endpoint(&caller.actor(), &asset, protocol, &change)
            .await?
    )))
}

pub async fn asset_endpoint_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path((asset, protocol)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let protocol = Protocol::parse(&protocol)?;
    Ok(Json(json!(
        state
            .store
            .remove_asset_endpoint(&caller.actor(), &asset, protocol)
            .await?
    )))
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
