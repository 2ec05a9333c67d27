//! Self-service for the caller's own credentials: change their password (the current one
//! checked by the authenticator, counted like a login), and add or remove their own SSH keys.
//! Only from a browser session, with the second factor when the user has one: an API token
//! cannot change the credentials behind it. A password change or a removed key ends the user's
//! web sessions and tokens (`auth_epoch`, A11): the portal asks to log in again.

use crate::WebState;
use crate::auth::{Caller, source_of};
use crate::error::{ApiError, ApiResult, Body};
use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use rampart_auth::{Attempt, Credential, FirstFactor, Front};
use rampart_core::SecretString;
use rampart_store::ssh_keys::parse_public_keys;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

use super::Caller_;

/// Changing one's own credentials (password, keys, TOTP, passkeys, tokens): a browser session,
/// with the second factor if the user has one (TOTP or a passkey).
pub(super) fn self_service(caller: &Caller) -> ApiResult<()> {
    let Some(session) = &caller.session else {
        return Err(ApiError::forbidden(
            "your own credentials are changed from a browser session only, not with an API token",
        ));
    };
    if caller.user.has_second_factor() && !session.mfa {
        return Err(ApiError::forbidden(
            "changing your credentials needs a portal login with your second factor",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password once the current one checks out (lockout and Argon2id as for
/// a login: a wrong one is a failed login).
pub async fn my_password(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<PasswordChange>,
) -> ApiResult<Json<Value>> {
    self_service(&caller)?;
    let current = SecretString::from(body.current_password);
    let new = SecretString::from(body.new_password);
    let attempt = Attempt {
        front: Front::Web,
        login: caller.user.name.as_str(),
        user: Some(&caller.user.name),
        source: source_of(&state, &headers, peer),
    };
    match state
        .authenticator
        .first_factor(&attempt, Credential::Password(&current))
        .await
    {
        FirstFactor::Authenticated(_) | FirstFactor::SecondFactorNeeded(_) => {}
        FirstFactor::Refused(_) => {
            return Err(ApiError::forbidden("the current password is not right"));
        }
    }
    state
        .store
        .set_user_password(&caller.actor(), &caller.user.name, &new)
        .await?;
    Ok(Json(json!({
        "changed": true,
        "message": "password changed: log in again with the new one",
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyKeyAdd {
    public_key: String,
}

/// Adds SSH public keys (a `.pub` or `authorized_keys` text) to the caller.
pub async fn my_key_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<MyKeyAdd>,
) -> ApiResult<Json<Value>> {
    self_service(&caller)?;
    let keys = parse_public_keys("public_key", &body.public_key)?;
    let mut updated = None;
    for key in &keys {
        updated = Some(
            state
                .store
                .add_user_key(&caller.actor(), &caller.user.name, key)
                .await?,
        );
    }
    updated
        .map(|u| Json(json!(u)))
        .ok_or_else(|| ApiError::bad_request("public_key holds no key"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyKeyRemove {
    fingerprint: String,
}

/// Removes one of the caller's SSH keys by fingerprint (ends their web sessions: A11).
pub async fn my_key_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<MyKeyRemove>,
) -> ApiResult<Json<Value>> {
    self_service(&caller)?;
    let user = state
        .store
        .remove_user_key(&caller.actor(), &caller.user.name, &body.fingerprint)
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpStart {
    /// Replace the second factor the caller has (required when they have one).
    #[serde(default)]
    replace: bool,
}

/// Starts enrolling (or replacing) the caller's own TOTP second factor: a new secret, shown to
/// the caller only as an `otpauth://` URI, stored once confirmed with a code.
pub async fn my_totp_start(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<TotpStart>,
) -> ApiResult<Json<Value>> {
    self_service(&caller)?;
    if caller.user.mfa_enrolled && !body.replace {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            "you already have a second factor: ask to replace it (the old one stops working)",
        ));
    }
    let secret = rampart_store::new_totp_secret()?;
    let uri = zeroize::Zeroizing::new(rampart_core::mfa::otpauth_uri(
        &secret,
        caller.user.name.as_str(),
        "Rampart",
    ));
    if !state
        .pending_totp
        .start(caller.user.name.clone(), secret, std::time::Instant::now())
    {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "too many enrolments in progress; try again in a few minutes",
        ));
    }
    Ok(Json(json!({
        "otpauth_uri": uri.as_str(),
        "replaces": caller.user.mfa_enrolled,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    code: String,
}

/// Confirms the caller's pending TOTP secret with a code from their app and stores it (the old
/// one, if any, stops working; the user's web sessions end: log in again with the new codes).
pub async fn my_totp_confirm(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<TotpConfirm>,
) -> ApiResult<Json<Value>> {
    self_service(&caller)?;
    let Some(secret) = state
        .pending_totp
        .take(&caller.user.name, std::time::Instant::now())
    else {
        return Err(ApiError::not_found(
            "no enrolment of yours is in progress (or it expired): start again",
        ));
    };
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    let Some(step) = rampart_core::mfa::verify(&secret, body.code.trim(), now) else {
        return Err(ApiError::bad_request(
            "the code does not match: nothing was stored (check the app's clock, then start again)",
        ));
    };
    state
        .store
        .enroll_totp(
            &caller.actor(),
            &caller.user.name,
            &secret,
            caller.user.mfa_enrolled,
            Some(step),
        )
        .await?;
    Ok(Json(json!({
        "enrolled": true,
        "message": "second factor enrolled: log in again with a code from your app",
    })))
}
