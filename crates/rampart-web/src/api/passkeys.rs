//! The caller's own passkeys (issue 20): list, register (a ceremony of two requests: the
//! options, then the browser's answer with a name), remove. Registering and removing change
//! the user's credentials, so only from a browser session, with the second factor when the
//! user has one (TOTP or a passkey); each is audited and ends the user's sessions (A11).

use crate::WebState;
use crate::auth::source_of;
use crate::error::{ApiError, ApiResult, Body};
use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use rampart_auth::PasskeyError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Instant;

use super::Caller_;

fn passkey_error(err: PasskeyError) -> ApiError {
    match err {
        PasskeyError::Off => ApiError::not_found("passkeys are not configured"),
        PasskeyError::Refused(reason) => {
            tracing::info!(%reason, "passkey registration refused");
            ApiError::bad_request("the passkey was not accepted: start again")
        }
        PasskeyError::Store(err) => err.into(),
    }
}

/// `GET /api/v1/me/passkeys`: the caller's passkeys (names and times, never keys).
pub async fn my_passkeys(
    State(state): State<WebState>,
    Extension(caller): Caller_,
) -> ApiResult<Json<Value>> {
    let passkeys = state.store.passkeys(&caller.user.name).await?;
    Ok(Json(json!(passkeys)))
}

/// `POST /api/v1/me/passkeys/start`: the options for `navigator.credentials.create`; the
/// ceremony waits for the caller (5 minutes, one at a time).
pub async fn my_passkey_start(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    // A browser session, with the second factor if the user has one.
    super::self_service::self_service(&caller)?;
    let (options, registration) = state
        .authenticator
        .start_passkey_registration(&caller.user)
        .await
        .map_err(passkey_error)?;
    let source = source_of(&state, &headers, peer);
    if !state.passkey_ceremonies.start_registration(
        caller.user.name.clone(),
        registration,
        source,
        Instant::now(),
    ) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_registrations",
            "too many passkey registrations are waiting: try again in a few minutes",
        ));
    }
    Ok(Json(json!({ "options": options })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistrationAnswer {
    /// What the user calls it ("laptop", "YubiKey 5").
    name: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, as JSON.
    credential: Value,
}

/// `POST /api/v1/me/passkeys`: the browser's answer to the caller's waiting registration; the
/// passkey is stored under its name (the user's sessions end: log in again).
pub async fn my_passkey_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(answer): Body<PasskeyRegistrationAnswer>,
) -> ApiResult<Json<Value>> {
    // A browser session, with the second factor if the user has one.
    super::self_service::self_service(&caller)?;
    let registration = state
        .passkey_ceremonies
        .take_registration(&caller.user.name, Instant::now())
        .ok_or_else(|| ApiError::bad_request("no passkey registration is waiting: start again"))?;
    let passkey = state
        .authenticator
        .finish_passkey_registration(
            &caller.actor(),
            &caller.user.name,
            &answer.name,
            &registration,
            &answer.credential,
        )
        .await
        .map_err(passkey_error)?;
    Ok(Json(json!({
        "passkey": passkey,
        "message": format!("passkey \"{}\" added: log in again", passkey.name),
    })))
}

/// `DELETE /api/v1/me/passkeys/{id}`: removes one of the caller's passkeys (another user's is
/// not found; the user's sessions end).
pub async fn my_passkey_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    // A browser session, with the second factor if the user has one.
    super::self_service::self_service(&caller)?;
    let id = super::uuid("passkey", &id)?;
    state
        .store
        .remove_passkey(&caller.actor(), &caller.user.name, id)
        .await?;
    Ok(Json(json!({
        "removed": true,
        "message": "passkey removed: log in again",
    })))
}
