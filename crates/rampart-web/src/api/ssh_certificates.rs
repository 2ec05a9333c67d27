//! SSH user certificates for the caller: signed at once from the portal (paste a key, download
//! the certificate), or by approving a `rampart login` request (`crate::ssh_login`). Either way
//! the key is signed by the node's user CA for the caller, for `auth.ssh_cert_ttl`, and only for
//! a browser session that used the second factor when the user has one (an API token cannot
//! mint certificates).

use crate::WebState;
use crate::auth::source_of;
use crate::error::{ApiError, ApiResult, Body, Path};
use crate::ssh_login::{Outcome, SshLoginError, normalize_user_code};
use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_core::time_arg::format_rfc3339;
use rampart_store::ssh_ca::{HashAlg, PublicKey, parse_subject_key};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Instant;

use super::Caller_;

/// Who may have a certificate signed: a browser session, with the second factor if the user
/// has one enrolled.
fn may_sign(caller: &crate::auth::Caller) -> ApiResult<()> {
    let Some(session) = &caller.session else {
        return Err(ApiError::forbidden(
            "SSH certificates are issued to a browser session only, not to an API token",
        ));
    };
    if caller.user.has_second_factor() && !session.mfa {
        return Err(ApiError::forbidden(
            "an SSH certificate needs a login with your second factor: log in to the portal with your TOTP code",
        ));
    }
    Ok(())
}

/// A certificate just signed, as the answers show it.
struct Signed {
    certificate: String,
    serial: String,
    fingerprint: String,
    valid_before: String,
}

/// Signs `key` for the caller.
async fn sign_for(
    state: &WebState,
    caller: &crate::auth::Caller,
    key: &PublicKey,
    via: &str,
) -> ApiResult<Signed> {
    let certificate = state
        .store
        .issue_ssh_certificate(
            &caller.actor(),
            &caller.user.name,
            key,
            state.settings.ssh_cert_ttl,
            via,
        )
        .await?;
    let text = certificate.to_openssh().map_err(|err| {
        tracing::error!(error = %err, "cannot encode a certificate");
        ApiError::internal()
    })?;
    let valid_before = time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(certificate.valid_before()).unwrap_or(i64::MAX),
    )
    .map(format_rfc3339)
    .unwrap_or_default();
    Ok(Signed {
        certificate: text.trim_end().to_owned(),
        serial: certificate.serial().to_string(),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        valid_before,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// One SSH public key (a `.pub` line).
    public_key: String,
}

/// Signs the caller's own public key: the portal's "SSH certificate" page.
pub async fn ssh_certificate_create(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<SignRequest>,
) -> ApiResult<Response> {
    may_sign(&caller)?;
    let key = parse_subject_key(&body.public_key)?;
    let signed = sign_for(&state, &caller, &key, "portal").await?;
    let answer = json!({
        "certificate": signed.certificate,
        "principal": caller.user.name,
        "serial": signed.serial,
        "fingerprint": signed.fingerprint,
        "valid_before": signed.valid_before,
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn login_error(err: SshLoginError) -> ApiError {
    match err {
        SshLoginError::Busy => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", err.to_string())
        }
        SshLoginError::Unknown => ApiError::not_found(err.to_string()),
        SshLoginError::Randomness => {
            tracing::error!("no randomness for an SSH login request");
            ApiError::internal()
        }
    }
}

/// `rampart login` starts: the key to certify; answers the device code (to poll with) and the
/// user code with the page where the user approves it.
pub async fn ssh_login_start(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<SignRequest>,
) -> ApiResult<Response> {
    let key = parse_subject_key(&body.public_key)?;
    let text = key
        .to_openssh()
        .map_err(|_| ApiError::bad_request("cannot encode the public key"))?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let source = source_of(&state, &headers, peer);
    let started = state
        .ssh_logins
        .start(text, fingerprint, source, Instant::now())
        .map_err(login_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_path": format!("/ssh?code={}", started.user_code),
            "expires_in": crate::ssh_login::REQUEST_LIFETIME.as_secs(),
            "interval": 2,
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    device_code: String,
}

/// `rampart login` polls: `202` while the user has not answered, the certificate once approved
/// (handed out once), `403 denied` when denied, `404` when unknown or expired.
pub async fn ssh_login_poll(
    State(state): State<WebState>,
    Body(body): Body<PollRequest>,
) -> ApiResult<Response> {
    match state
        .ssh_logins
        .poll(body.device_code.trim(), Instant::now())
        .map_err(login_error)?
    {
        Outcome::Pending => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "status": "pending" }))).into_response())
        }
        Outcome::Approved { user, certificate } => Ok(Json(json!({
            "status": "approved",
            "principal": user,
            "certificate": certificate,
        }))
        .into_response()),
        Outcome::Denied => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "denied",
            "the login was denied in the portal",
        )),
    }
}

/// The request waiting under a user code, for the approval page (its key's fingerprint and
/// where it came from).
pub async fn ssh_login_show(
    State(state): State<WebState>,
    Extension(_caller): Caller_,
    Path(code): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let pending = state
        .ssh_logins
        .pending(&normalize_user_code(&code), Instant::now())
        .map_err(login_error)?;
    Ok(Json(json!({
        "user_code": normalize_user_code(&code),
        "public_key": pending.public_key,
        "fingerprint": pending.fingerprint,
        "source": pending.source.to_string(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    approve: bool,
}

/// The caller approves (the key is signed for them) or denies the request under a user code.
pub async fn ssh_login_answer(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(code): Path<String>,
    Body(body): Body<AnswerRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let code = normalize_user_code(&code);
    let now = Instant::now();
    if !body.approve {
        state
            .ssh_logins
            .answer(&code, None, now)
            .map_err(login_error)?;
        return Ok(Json(json!({ "approved": false })));
    }
    may_sign(&caller)?;
    let pending = state.ssh_logins.pending(&code, now).map_err(login_error)?;
    let key = parse_subject_key(&pending.public_key)?;
    let signed = sign_for(&state, &caller, &key, "rampart login").await?;
    state
        .ssh_logins
        .answer(
            &code,
            Some((caller.user.name.clone(), signed.certificate)),
            now,
        )
        .map_err(login_error)?;
    Ok(Json(json!({
        "approved": true,
        "principal": caller.user.name,
        "fingerprint": signed.fingerprint,
        "valid_before": signed.valid_before,
    })))
}
