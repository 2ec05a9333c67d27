//! Kubernetes access: the caller's own kubeconfig for a Kubernetes asset through Rampart's
//! Kubernetes listener, with a fresh personal token (shown once, in the kubeconfig).

use crate::WebState;
use crate::error::{ApiError, ApiResult, Body};
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use rampart_core::time_arg::parse_duration;
use rampart_core::{ExposeSecret, Protocol};
use rampart_kube::api::ClusterRef;
use rampart_kube::kubeconfig::{KubeconfigInput, render};
use rampart_store::TokenKind;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

use super::{Caller_, created};

/// A kubeconfig token's life when none is asked for.
const DEFAULT_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeConfigCreate {
    /// `ASSET` or `ACCOUNT@ASSET`.
    asset: String,
    /// How long the token lives (`8h` when absent, at most `30d`).
    ttl: Option<String>,
    namespace: Option<String>,
}

/// Mints the caller's own kubeconfig. As for a database token, a user with a second factor
/// must have logged in with it.
pub async fn kube_config_create(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<KubeConfigCreate>,
) -> ApiResult<Response> {
    let Some(kube) = &state.settings.kube else {
        return Err(ApiError::not_found(
            "the Kubernetes listener is off (kube.listen)",
        ));
    };
    let cluster = ClusterRef::parse(&body.asset).map_err(ApiError::bad_request)?;
    let ttl = match &body.ttl {
        Some(text) => parse_duration("ttl", text)?,
        None => DEFAULT_TTL,
    };
    if let Some(namespace) = &body.namespace
        && rampart_core::Name::parse("namespace", namespace).is_err()
    {
        return Err(ApiError::bad_request(format!(
            "invalid namespace {namespace:?}"
        )));
    }
    let second_factor = caller.session.as_ref().is_some_and(|s| s.mfa);
    if caller.user.has_second_factor() && !second_factor {
        return Err(ApiError::forbidden(
            "a kubeconfig needs a login with your second factor: log in to the portal with your TOTP code or passkey",
        ));
    }
    let asset = state.store.asset(&cluster.asset).await?;
    if asset.endpoint(Protocol::Kubernetes).is_none() {
        return Err(ApiError::bad_request(format!(
            "asset {} has no kubernetes endpoint",
            asset.name
        )));
    }
    let (token, secret) = state
        .store
        .create_token(
            &caller.actor(),
            &caller.user.name,
            ttl,
            TokenKind::Kubernetes,
        )
        .await?;
    let kubeconfig = render(&KubeconfigInput {
        server: &kube.server,
        cluster: &cluster.target(),
        user: caller.user.name.as_str(),
        ca_pem: &kube.ca_pem,
        token: secret.expose_secret(),
        namespace: body.namespace.as_deref(),
    });
    Ok(created(json!({ "token": token, "kubeconfig": kubeconfig })))
}
