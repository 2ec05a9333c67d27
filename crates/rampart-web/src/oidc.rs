//! Portal sign-in through the node's OpenID Connect provider (`[oidc]`): the browser's side of
//! the authorization code flow.
//!
//! - `GET /api/v1/oidc/start?next=PATH`: a fresh state, nonce and PKCE verifier wait in memory
//!   ([`OidcLogins`]); the browser gets a binding cookie (`rampart_oidc`, `SameSite=Lax` so it
//!   comes back with the provider's redirect) and is sent to the provider.
//! - `GET /api/v1/oidc/callback?code&state`: the waiting request is taken (once: a replayed
//!   callback finds nothing) and must belong to this browser's binding cookie (no login CSRF);
//!   the code is exchanged and the ID token verified against the request's nonce; the user is
//!   provisioned ([`rampart_oidc::provision`]) and logs in through the one authenticator
//!   (`Credential::IdentityProvider`: lockout, login rules, disabled users refused, TOTP asked
//!   unless the provider's `amr` counts as the second factor). Then the browser session starts as
//!   after a password login.
//! - `POST /api/v1/oidc/second-factor`: the TOTP code of a sign-in that needs one; the first
//!   factor waits in memory behind a second cookie (`rampart_oidc_2fa`) for 5 minutes.
//!
//! Every refusal sends the browser to `/login?oidc_error=refused` with one message: the reason
//! (expired token, wrong audience, nonce, ...) goes to the log, never to the page.

use crate::WebState;
use crate::auth::{COOKIE_NAME, LoginResponse, csrf_token, source_of};
use crate::error::{ApiError, ApiResult, Body};
use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_auth::{Attempt, Credential, FirstFactor, Front, PendingSecondFactor, SecondFactor};
use rampart_core::{ExposeSecret, Name, SecretString, User};
use rampart_oidc::provision::provision;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BINDING_COOKIE: &str = "rampart_oidc";
const SECOND_FACTOR_COOKIE: &str = "rampart_oidc_2fa";
/// How long an authorization request waits for the provider's answer.
pub const SIGN_IN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How long a sign-in waits for its TOTP code.
pub const SECOND_FACTOR_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Sign-ins waiting at once, in all and per source address.
const MAX_WAITING: usize = 1024;
const MAX_WAITING_PER_SOURCE: usize = 32;

#[derive(Debug)]
struct Waiting {
    binding: [u8; 32],
    nonce: String,
    verifier: SecretString,
    next: String,
    source: IpAddr,
    created: Instant,
}

#[derive(Debug)]
struct WaitingCode {
    pending: PendingSecondFactor,
    user: Name,
    refresh_token: Option<SecretString>,
    next: String,
    source: IpAddr,
    created: Instant,
}

/// Sign-ins between the redirect to the provider and the browser session, in memory (a
/// restart forgets them; the person signs in again). Bounded in all and per source address.
#[derive(Debug, Default)]
pub struct OidcLogins {
    by_state: Mutex<HashMap<String, Waiting>>,
    codes: Mutex<HashMap<[u8; 32], WaitingCode>>,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl OidcLogins {
    fn add(&self, state: String, waiting: Waiting) -> bool {
        let Ok(mut map) = self.by_state.lock() else {
            return false;
        };
        map.retain(|_, w| w.created.elapsed() < SIGN_IN_LIFETIME);
        let from_source = map.values().filter(|w| w.source == waiting.source).count();
        if map.len() >= MAX_WAITING || from_source >= MAX_WAITING_PER_SOURCE {
            return false;
        }
        map.insert(state, waiting);
        true
    }

    /// Takes the request `state` names (once), if it is this browser's and not expired.
    fn take(&self, state: &str, binding: &str) -> Option<Waiting> {
        let mut map = self.by_state.lock().ok()?;
        let waiting = map.remove(state)?;
        (waiting.created.elapsed() < SIGN_IN_LIFETIME && waiting.binding == digest(binding))
            .then_some(waiting)
    }

    fn add_code(&self, key: &str, waiting: WaitingCode) -> bool {
        let Ok(mut map) = self.codes.lock() else {
            return false;
        };
        map.retain(|_, w| w.created.elapsed() < SECOND_FACTOR_LIFETIME);
        let from_source = map.values().filter(|w| w.source == waiting.source).count();
        if map.len() >= MAX_WAITING || from_source >= MAX_WAITING_PER_SOURCE {
            return false;
        }
        map.insert(digest(key), waiting);
        true
    }

    fn take_code(&self, key: &str) -> Option<WaitingCode> {
        let mut map = self.codes.lock().ok()?;
        let waiting = map.remove(&digest(key))?;
        (waiting.created.elapsed() < SECOND_FACTOR_LIFETIME).then_some(waiting)
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

fn set_cookie(
    name: &str,
    value: &str,
    same_site: &str,
    max_age: u64,
    secure: bool,
) -> ApiResult<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly{secure}; SameSite={same_site}; Path=/api/v1/oidc; Max-Age={max_age}"
    ))
    .map_err(|_| ApiError::internal())
}

fn see_other(location: &str) -> ApiResult<Response> {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(location).map_err(|_| ApiError::internal())?,
    );
    Ok(response)
}

/// A path on this site to return to; anything else is the home page.
fn same_site_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.len() <= 2048
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn not_configured() -> ApiError {
    ApiError::not_found("single sign-on is not configured on this node ([oidc])")
}

/// The refusal every failed sign-in ends in: back to the login page with one message.
fn refused(reason: &dyn std::fmt::Display) -> ApiResult<Response> {
    tracing::warn!(reason = %reason, "single sign-on refused");
    see_other("/login?oidc_error=refused")
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /api/v1/oidc/start`: to the provider.
pub async fn start(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<StartQuery>,
) -> ApiResult<Response> {
    let provider = state.oidc.as_ref().ok_or_else(not_configured)?;
    let request = match provider.authorization_request().await {
        Ok(request) => request,
        Err(err) => {
            tracing::error!(error = %err, "cannot start a single sign-on");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                "the identity provider cannot be reached; try again later",
            ));
        }
    };
    let binding = rampart_oidc::provider::random_token().map_err(|_| ApiError::internal())?;
    let waiting = Waiting {
        binding: digest(&binding),
        nonce: request.nonce,
        verifier: request.verifier,
        next: same_site_path(query.next.as_deref()),
        source: source_of(&state, &headers, peer),
        created: Instant::now(),
    };
    if !state.oidc_logins.add(request.state, waiting) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sign_ins",
            "too many sign-ins are waiting; try again in a few minutes",
        ));
    }
    let mut response = see_other(&request.url)?;
    response.headers_mut().insert(
        SET_COOKIE,
        set_cookie(
            BINDING_COOKIE,
            &binding,
            "Lax",
            SIGN_IN_LIFETIME.as_secs(),
            state.settings.secure_cookies,
        )?,
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /api/v1/oidc/callback`: the provider's answer.
pub async fn callback(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let provider = state.oidc.as_ref().ok_or_else(not_configured)?;
    let source = source_of(&state, &headers, peer);
    let binding = cookie(&headers, BINDING_COOKIE).unwrap_or_default();
    let Some(waiting) = query
        .state
        .as_deref()
        .and_then(|key| state.oidc_logins.take(key, &binding))
    else {
        return refused(
            &"no sign-in of this browser waits for this state (expired, replayed or from another browser)",
        );
    };
    if let Some(error) = &query.error {
        let error: String = error
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        return refused(&format!("the provider answered {error}"));
    }
    let Some(code) = query.code.as_deref().filter(|code| code.len() <= 4096) else {
        return refused(&"the provider's answer has no code");
    };
    let signed_in = match provider
        .sign_in(code, &waiting.verifier, &waiting.nonce)
        .await
    {
        Ok(signed_in) => signed_in,
        Err(err) => return refused(&err),
    };
    let settings = provider.settings();
    let user = match provision(&state.store, settings, &signed_in.claims).await {
        Ok(user) => user,
        Err(err) => return refused(&err),
    };
    let mfa = settings.counts_as_mfa && signed_in.claims.amr.iter().any(|m| m == "mfa");
    let attempt = Attempt {
        front: Front::Web,
        login: user.name.as_str(),
        user: Some(&user.name),
        source,
    };
    let login = match state
        .authenticator
        .first_factor(&attempt, Credential::IdentityProvider { mfa })
        .await
    {
        FirstFactor::Authenticated(login) => login,
        FirstFactor::SecondFactorNeeded(pending) => {
            let key = rampart_oidc::provider::random_token().map_err(|_| ApiError::internal())?;
            let waiting_code = WaitingCode {
                pending,
                user: user.name.clone(),
                refresh_token: signed_in.refresh_token,
                next: waiting.next.clone(),
                source,
                created: Instant::now(),
            };
            if !state.oidc_logins.add_code(&key, waiting_code) {
                return refused(&"too many sign-ins wait for their code");
            }
            let mut response = see_other(&format!(
                "/login?oidc=code&next={}",
                encode_component(&waiting.next)
            ))?;
            response.headers_mut().insert(
                SET_COOKIE,
                set_cookie(
                    SECOND_FACTOR_COOKIE,
                    &key,
                    "Strict",
                    SECOND_FACTOR_LIFETIME.as_secs(),
                    state.settings.secure_cookies,
                )?,
            );
            return Ok(response);
        }
        FirstFactor::Refused(refusal) => {
            return refused(&format!(
                "the authenticator refused user {} ({refusal:?})",
                user.name
            ));
        }
    };
    let (_, cookie) = start_session(
        &state,
        &login.user,
        source,
        login.mfa,
        &login.method,
        signed_in.refresh_token.as_ref(),
    )
    .await?;
    let mut response = see_other(&waiting.next)?;
    response.headers_mut().append(SET_COOKIE, cookie);
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(BINDING_COOKIE, "", "Lax", 0, state.settings.secure_cookies)?,
    );
    Ok(response)
}

/// Records the sign-in (its refresh token) and starts the browser session: its body and cookie.
async fn start_session(
    state: &WebState,
    user: &User,
    source: IpAddr,
    mfa: bool,
    method: &str,
    refresh_token: Option<&SecretString>,
) -> ApiResult<(LoginResponse, HeaderValue)> {
    state
        .store
        .record_oidc_login(&user.name, refresh_token)
        .await?;
    let (session, secret) = state
        .store
        .start_web_session(
            user,
            &source.to_string(),
            mfa,
            method,
            state.settings.session_lifetime,
        )
        .await?;
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; HttpOnly{secure}; SameSite=Strict; Path=/; Max-Age={}",
        secret.expose_secret(),
        state.settings.session_lifetime.as_secs()
    ))
    .map_err(|_| ApiError::internal())?;
    let body = LoginResponse {
        user: user.name.to_string(),
        role: user.role.to_string(),
        csrf_token: csrf_token(secret.expose_secret()),
        expires_at: session.expires_at,
    };
    Ok((body, cookie))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorRequest {
    pub code: String,
}

/// `POST /api/v1/oidc/second-factor`: the TOTP code after a sign-in at the provider.
pub async fn second_factor(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(request): Body<SecondFactorRequest>,
) -> ApiResult<Response> {
    if state.oidc.is_none() {
        return Err(not_configured());
    }
    let failed = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "login failed: check the code, or sign in again",
        )
    };
    let source = source_of(&state, &headers, peer);
    let key = cookie(&headers, SECOND_FACTOR_COOKIE).ok_or_else(failed)?;
    let waiting = state.oidc_logins.take_code(&key).ok_or_else(failed)?;
    let attempt = Attempt {
        front: Front::Web,
        login: waiting.user.as_str(),
        user: Some(&waiting.user),
        source,
    };
    let login = match state
        .authenticator
        .second_factor(waiting.pending, &attempt, &request.code)
        .await
    {
        SecondFactor::Authenticated(login) => login,
        SecondFactor::Retry(pending) => {
            let again = WaitingCode {
                pending,
                user: waiting.user,
                refresh_token: waiting.refresh_token,
                next: waiting.next,
                source: waiting.source,
                created: waiting.created,
            };
            state.oidc_logins.add_code(&key, again);
            return Err(failed());
        }
        SecondFactor::Refused(_) => return Err(failed()),
    };
    let (body, cookie) = start_session(
        &state,
        &login.user,
        source,
        login.mfa,
        &login.method,
        waiting.refresh_token.as_ref(),
    )
    .await?;
    let mut response = Json(body).into_response();
    response.headers_mut().append(SET_COOKIE, cookie);
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(
            SECOND_FACTOR_COOKIE,
            "",
            "Strict",
            0,
            state.settings.secure_cookies,
        )?,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_returned_to() {
        for (next, expected) in [
            (Some("/ssh?code=AB"), "/ssh?code=AB"),
            (Some("//evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\\evil"), "/"),
            (Some("/a b"), "/"),
            (None, "/"),
        ] {
            assert_eq!(same_site_path(next), expected);
        }
        assert_eq!(encode_component("/ssh?code=A&b"), "/ssh%3Fcode%3DA%26b");
    }
}
