//! Portal logins with a passkey (issue 20): the passkey that completes a password login (its
//! challenge is `POST /api/v1/login`'s 202 answer when no TOTP code came with the password),
//! and the passwordless login (`POST /api/v1/login/passkey/start`). Both are answered at
//! `POST /api/v1/login/passkey`. The challenge waits in memory (`PasskeyCeremonies`) and is
//! taken by the first answer, right or wrong; every refusal is the login's one 401 (A2). What a
//! waiting login grants: nothing (A7), until the authenticator accepts the passkey.

use crate::WebState;
use crate::auth::{login_failed, open_browser_session, refused, source_of};
use crate::error::{ApiError, ApiResult, Body};
use crate::passkey_ceremonies::PasskeyLogin;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_auth::{Attempt, FirstFactor, Front, PendingSecondFactor, SecondFactor};
use rampart_core::Name;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_logins",
        "too many passkey logins are waiting: try again in a few minutes",
    )
}

/// The 202 answer of a password login that a passkey may complete: the login's id and the
/// options for `navigator.credentials.get`.
pub(crate) async fn second_factor_challenge(
    state: &WebState,
    pending: PendingSecondFactor,
    source: IpAddr,
) -> ApiResult<Response> {
    let challenge = state
        .authenticator
        .passkey_challenge(&pending)
        .await
        .map_err(refused)?;
    let Some((options, passkey_state)) = challenge else {
        // No passkey can answer (none configured): the login needed a code.
        return Err(login_failed());
    };
    let login = PasskeyLogin::SecondFactor {
        pending: Box::new(pending),
        state: passkey_state,
    };
    let id = state
        .passkey_ceremonies
        .start_login(login, source, Instant::now())
        .ok_or_else(too_many)?;
    let body = json!({
        "second_factor": "passkey",
        "login_id": id,
        "options": options,
        "message": "confirm with your passkey, or give the code from your authenticator app",
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /api/v1/login/passkey/start`: a passwordless login's challenge.
pub async fn passwordless_start(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let source = source_of(&state, &headers, peer);
    if state.authenticator.passkeys().is_none() {
        return Err(ApiError::not_found("passkeys are not configured"));
    }
    let (options, passkey_state) = state
        .authenticator
        .passwordless_challenge()
        .map_err(refused)?;
    let id = state
        .passkey_ceremonies
        .start_login(
            PasskeyLogin::Passwordless(passkey_state),
            source,
            Instant::now(),
        )
        .ok_or_else(too_many)?;
    Ok(Json(json!({ "login_id": id, "options": options })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyAnswer {
    login_id: String,
    /// The `PublicKeyCredential` the browser returned, as JSON (base64url fields).
    credential: Value,
}

/// `POST /api/v1/login/passkey`: the passkey's answer to a waiting login; the browser session
/// on success, the login's one 401 otherwise (the challenge is used up either way).
pub async fn passkey_finish(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(answer): Body<PasskeyAnswer>,
) -> ApiResult<Response> {
    let source = source_of(&state, &headers, peer);
    let waiting = state
        .passkey_ceremonies
        .take_login(&answer.login_id, Instant::now())
        .ok_or_else(login_failed)?;
    let authenticator = &state.authenticator;
    let login = match waiting {
        PasskeyLogin::SecondFactor {
            pending,
            state: passkey_state,
        } => {
            let login_name = pending.login().to_owned();
            let name = Name::parse("user", &login_name).ok();
            let attempt = Attempt {
                front: Front::Web,
                login: &login_name,
                user: name.as_ref(),
                source,
            };
            match authenticator
                .second_factor_passkey(*pending, &attempt, &passkey_state, &answer.credential)
                .await
            {
                SecondFactor::Authenticated(login) => login,
                SecondFactor::Retry(_) => return Err(login_failed()),
                SecondFactor::Refused(refusal) => return Err(refused(refusal)),
            }
        }
        PasskeyLogin::Passwordless(passkey_state) => {
            match authenticator
                .passkey_login(source, passkey_state, &answer.credential)
                .await
            {
                FirstFactor::Authenticated(login) => login,
                FirstFactor::SecondFactorNeeded(_) => return Err(login_failed()),
                FirstFactor::Refused(refusal) => return Err(refused(refusal)),
            }
        }
    };
    open_browser_session(&state, login, source).await
}
