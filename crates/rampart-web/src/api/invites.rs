//! Invites: an administrator makes a one-time enrolment link for a user (`POST
//! /api/v1/users/{name}/invites`, or `rampart user invite`); the user opens it (`/invite?token=`)
//! and sets their own password and TOTP second factor through the public routes below, which
//! need the token and nothing else. The TOTP secret waits in memory for that user
//! (`totp_enrolment`) until the code confirms it.

use crate::WebState;
use crate::error::{ApiError, ApiResult, Body, Path};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_core::time_arg::{format_rfc3339, parse_duration};
use rampart_core::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use super::{Caller_, name};

/// An invite's life when none is asked for.
const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(72 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteCreate {
    ttl: Option<String>,
}

pub async fn invite_create(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<InviteCreate>,
) -> ApiResult<Response> {
    let user = name("user", &user)?;
    let ttl = match &body.ttl {
        Some(text) => parse_duration("ttl", text)?,
        None => DEFAULT_INVITE_TTL,
    };
    let (expires_at, token) = state
        .store
        .create_invite(&caller.actor(), &user, ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user": user,
            "token": token.expose_secret(),
            "path": format!("/invite?token={}", token.expose_secret()),
            "expires_at": format_rfc3339(expires_at),
        })),
    )
        .into_response())
}

/// Starts an invite: who it is for, and a new TOTP secret for their app.
pub async fn invite_start(
    State(state): State<WebState>,
    Path(token): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state.store.invite_user(&token).await?;
    let secret = rampart_store::new_totp_secret()?;
    let uri = zeroize::Zeroizing::new(rampart_core::mfa::otpauth_uri(
        &secret,
        user.as_str(),
        "Rampart",
    ));
    if !state
        .pending_totp
        .start(user.clone(), secret, Instant::now())
    {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many enrolments in progress; try again in a few minutes",
        ));
    }
    Ok(Json(json!({ "user": user, "otpauth_uri": uri.as_str() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteAccept {
    password: String,
    code: String,
}

/// Uses an invite: the new password, and a code from the app for the secret `invite_start`
/// made. The link then stops working.
pub async fn invite_accept(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Body(body): Body<InviteAccept>,
) -> ApiResult<Json<Value>> {
    let password = SecretString::from(body.password);
    rampart_store::passwords::check_new_password(&password)?;
    let user = state.store.invite_user(&token).await?;
    let Some(secret) = state.pending_totp.take(&user, Instant::now()) else {
        return Err(ApiError::not_found(
            "no second factor is being set up for this invite (or it expired): open the link again",
        ));
    };
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    let Some(step) = rampart_core::mfa::verify(&secret, body.code.trim(), now) else {
        return Err(ApiError::bad_request(
            "the code does not match: nothing was stored (check the app's clock, then open the link again)",
        ));
    };
    let user = state
        .store
        .use_invite(&token, &password, &secret, step)
        .await?;
    Ok(Json(json!({
        "user": user,
        "message": "your password and second factor are set: log in",
    })))
}
