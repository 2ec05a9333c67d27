//! Network domains with their gateways (priority order, health, never their secrets) and
//! assets: list, show, create, remove, and a gateway's step-by-step test.

use crate::WebState;
use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::{Protocol, SecretKind, SecretString, parse_host};
use rampart_session::gateway::step_report;
use rampart_store::ssh_keys::single_host_key;
use rampart_store::{NewAccountSecret, NewGateway};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, paged};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainAdd {
    name: String,
}

pub async fn domain_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<DomainAdd>,
) -> ApiResult<Response> {
    let added = state
        .store
        .add_domain(&caller.actor(), &name("domain", &body.name)?)
        .await?;
    Ok(created(added))
}

/// Removes an empty domain; one holding assets, gateways or agents is refused, naming them.
pub async fn domain_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(domain): Path<String>,
) -> ApiResult<Json<Value>> {
    let domain = name("domain", &domain)?;
    state.store.remove_domain(&caller.actor(), &domain).await?;
    Ok(Json(json!({ "removed": domain })))
}

pub async fn gateways_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let gateways = state.store.list_gateways(None).await?;
    paged(gateways, |g| g.name.to_string(), &query)
}

pub async fn gateway_show(
    State(state): State<WebState>,
    Path(gateway): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.store.gateway(&name("gateway", &gateway)?).await?
    )))
}

/// A new SSH-hop gateway: exactly one of `password` or `private_key`; `host_key` pins its key
/// now instead of on first use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayAdd {
    name: String,
    domain: String,
    host: String,
    port: Option<u16>,
    login: String,
    password: Option<String>,
    private_key: Option<String>,
    priority: Option<u32>,
    host_key: Option<String>,
}

pub async fn gateway_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<GatewayAdd>,
) -> ApiResult<Response> {
    let secret = match (body.password, body.private_key) {
        (Some(password), None) => NewAccountSecret {
            kind: SecretKind::Password,
            value: SecretString::from(password),
        },
        (None, Some(key)) => NewAccountSecret {
            kind: SecretKind::PrivateKey,
            value: SecretString::from(key),
        },
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of password or private_key",
            ));
        }
    };
    let host_key = body
        .host_key
        .as_deref()
        .map(|key| single_host_key("host_key", key))
        .transpose()?;
    let actor = caller.actor();
    let added = state
        .store
        .add_gateway(
            &actor,
            &NewGateway {
                name: name("gateway", &body.name)?,
                domain: name("domain", &body.domain)?,
                host: parse_host(&body.host)?,
                port: body.port.unwrap_or(22),
                login: name("login", &body.login)?,
                priority: body.priority,
                secret,
            },
        )
        .await?;
    let added = match host_key {
        Some(key) => {
            state
                .store
                .pin_gateway_host_key(&actor, &added.name, &key, "administrator", true)
                .await?;
            state.store.gateway(&added.name).await?
        }
        None => added,
    };
    Ok(created(added))
}

pub async fn gateway_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(gateway): Path<String>,
) -> ApiResult<Json<Value>> {
    let gateway = name("gateway", &gateway)?;
    state
        .store
        .remove_gateway(&caller.actor(), &gateway)
        .await?;
    Ok(Json(json!({ "removed": gateway })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTest {
    /// Also reach this asset's ssh endpoint (or its first endpoint) through the gateway.
    asset: Option<String>,
}

/// `gateway test` from the portal: each step and, on failure, the one line naming it.
pub async fn gateway_test(
    State(state): State<WebState>,
    Path(gateway): Path<String>,
    Body(body): Body<GatewayTest>,
) -> ApiResult<Json<Value>> {
    let g = state.store.gateway(&name("gateway", &gateway)?).await?;
    let hops = state
        .gateway
        .as_ref()
        .and_then(|gateway| gateway.dialer().hops())
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "gateway tests need the node's SSH gateway",
            )
        })?;
    let target = match &body.asset {
        Some(asset) => {
            let record = state.store.asset(&name("asset", asset)?).await?;
            let endpoint = record
                .endpoint(Protocol::Ssh)
                .or_else(|| record.endpoints.first())
                .ok_or_else(|| ApiError::bad_request(format!("{asset} has no endpoint")))?;
            Some((record.host.clone(), endpoint.port))
        }
        None => None,
    };
    let outcome = hops
        .test(
            &g,
            target.as_ref().map(|(host, port)| (host.as_str(), *port)),
        )
        .await;
    let steps = step_report(&outcome, target.is_some());
    Ok(Json(json!({
        "gateway": g.name,
        "ok": outcome.is_ok(),
        "steps": steps
            .iter()
            .map(|(step, result)| json!({ "step": step, "result": result }))
            .collect::<Vec<_>>(),
        "error": outcome.err().map(|err| format!("gateway {}: {err}", g.name)),
    })))
}
