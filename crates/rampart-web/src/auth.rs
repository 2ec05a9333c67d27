//! Who is calling: browser sessions behind a cookie, API tokens behind `Authorization: Bearer`,
//! the login that starts a browser session, and the guard every route passes through.
//!
//! INVARIANTS:
//! - A login is checked by the same authenticator as an SSH login (`rampart-auth`): lockout and
//!   login rules first, then the password, then the TOTP code if the user has one. Every denial
//!   answers the same status and body (A2); there is no half-logged-in state (A7): the code is
//!   part of the one login request. A user with a passkey who sends no code gets a passkey
//!   challenge (202, `passkey_login`), which grants nothing until its answer is accepted.
//! - A browser session stores the user's `auth_epoch`: any credential or status change ends it
//!   (A11). It also ends when idle too long, at its absolute lifetime, and at a request from a
//!   source the global and the user's login rules refuse (G6).
//! - A state-changing request authenticated by cookie must carry `X-CSRF-Token` equal to the
//!   session's CSRF token (B8), derived from the cookie so nothing more is stored.
//! - A token is usable only while unrevoked, unexpired, its user enabled, and from a source
//!   the global and the user's login rules admit; its scope narrows the user's role.

use crate::error::{ApiError, ApiResult, Body};
use crate::{WebState, now};
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_auth::{Attempt, Credential, FirstFactor, Front, SecondFactor};
use rampart_core::access::{Access, Refusal, Rights};
use rampart_core::audit::Actor;
use rampart_core::login_rules::{check_login, client_address};
use rampart_core::{ExposeSecret, Name, SecretString, User};
use rampart_store::{ApiToken, ErrorKind, WebSession};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use time::OffsetDateTime;

pub const COOKIE_NAME: &str = "rampart_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session's last use is written at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(15);

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub rights: Rights,
    pub session: Option<WebSession>,
    pub token: Option<ApiToken>,
    /// The CSRF token of the browser session, if the request came with its cookie.
    pub csrf_token: Option<String>,
    pub source: IpAddr,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::User {
            name: self.user.name.to_string(),
        }
    }

    /// Whether `user` is the caller themselves.
    pub fn is(&self, user: &str) -> bool {
        self.user.name.as_str() == user
    }
}

/// The CSRF token of a browser session: derived from its cookie, so it needs no storage and a
/// cross-site page, which cannot read the cookie, cannot compute it.
pub fn csrf_token(cookie: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"rampart-csrf:")
        .chain_update(cookie.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME).then(|| value.to_owned())
        })
}

/// The client address, believing `X-Forwarded-For` only from configured proxies (A1), across
/// every line of the header. A line that is not text makes the chain unreadable: the peer.
pub fn source_of(state: &WebState, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    let lines: Option<Vec<&str>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.to_str().ok())
        .collect();
    let trusted = &state.settings.auth.trusted_proxies;
    match lines {
        Some(lines) => client_address(peer.ip(), &lines, trusted),
        None => peer.ip().to_canonical(),
    }
}

fn older_than(at: OffsetDateTime, now: OffsetDateTime, age: Duration) -> bool {
    time::Duration::try_from(age)
        .ok()
        .and_then(|age| at.checked_add(age))
        .is_none_or(|end| end <= now)
}

/// Resolves the caller of a request from its token or cookie; `mutates` requires the CSRF
/// header on cookie-authenticated requests.
pub async fn authenticate(
    state: &WebState,
    headers: &HeaderMap,
    peer: SocketAddr,
    mutates: bool,
) -> ApiResult<Caller> {
    let source = source_of(state, headers, peer);
    let at = now();
    let store = &state.store;
    if let Some(value) = headers.get(AUTHORIZATION) {
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        let token = store
            .api_token_by_secret(secret)
            .await?
            .filter(|token| token.is_active(at))
            .ok_or_else(ApiError::unauthenticated)?;
        let user = store
            .user(&token.user)
            .await
            .map_err(|_| ApiError::unauthenticated())?;
        if user.disabled {
            return Err(ApiError::unauthenticated());
        }
        if let Err(denied) = check_login(&state.settings.auth.global, &user.login_rules, source, at)
        {
            tracing::info!(user = %user.name, token = %token.id, reason = %denied, "api token refused by the login rules");
            return Err(ApiError::unauthenticated());
        }
        if token
            .last_used_at
            .is_none_or(|last| older_than(last, at, TOUCH_EVERY))
        {
            store.touch_api_token(token.id, at).await?;
        }
        return Ok(Caller {
            rights: Rights {
                role: user.role,
                scope: Some(token.scope),
            },
            user,
            session: None,
            token: Some(token),
            csrf_token: None,
            source,
        });
    }
    let cookie = cookie_value(headers).ok_or_else(ApiError::unauthenticated)?;
    let session = store
        .web_session(&cookie)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    // Only a user that is really gone ends the session; a store that cannot answer is our
    // failure, refused as such and not recorded as "user removed".
    let user = match store.user(&session.user).await {
        Ok(user) => Some(user),
        Err(err) if err.kind() == ErrorKind::Client => None,
        Err(err) => return Err(err.into()),
    };
    let ended = match &user {
        None => Some("user removed"),
        Some(user) if user.disabled => Some("user disabled"),
        Some(user) if user.auth_epoch != session.auth_epoch => Some("credentials changed"),
        Some(_) if session.expires_at <= at => Some("lifetime reached"),
        Some(_) if older_than(session.last_seen_at, at, state.settings.session_idle) => {
            Some("idle timeout")
        }
        // The login rules hold for the whole session, as for a token: a rule added since the
        // login, or a request from elsewhere, ends it (G6).
        Some(user) => match check_login(&state.settings.auth.global, &user.login_rules, source, at)
        {
            Ok(()) => None,
            Err(denied) => {
                tracing::info!(user = %user.name, reason = %denied, "browser session ended by the login rules");
                Some("refused by the login rules")
            }
        },
    };
    let (Some(user), None) = (user, ended) else {
        store
            .end_web_session(&session, ended.unwrap_or("ended"))
            .await?;
        return Err(ApiError::unauthenticated());
    };
    let csrf = csrf_token(&cookie);
    if mutates {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if !same(presented, &csrf) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a change made with a browser session needs the X-CSRF-Token header from the login",
            ));
        }
    }
    if older_than(session.last_seen_at, at, TOUCH_EVERY) {
        store.touch_web_session(session.id, at).await?;
    }
    Ok(Caller {
        rights: Rights {
            role: user.role,
            scope: None,
        },
        user,
        session: Some(session),
        token: None,
        csrf_token: Some(csrf),
        source,
    })
}

/// What a route's guard knows: the state and the route's declared access.
#[derive(Debug, Clone)]
pub struct Guard {
    pub state: WebState,
    pub access: Access,
}

/// Runs before every handler: authenticates (unless the route is public), checks the role and
/// the token scope against the route's declared access, and hands the handler its [`Caller`].
pub async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    if guard.access == Access::Public {
        return next.run(request).await;
    }
    let mutates = !matches!(*request.method(), Method::GET | Method::HEAD);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let caller = match authenticate(&guard.state, request.headers(), peer, mutates).await {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    crate::access::note_caller(&request, caller.user.name.as_str());
    match caller.rights.allows(guard.access, mutates) {
        Ok(()) => {}
        Err(Refusal::Role) => {
            return ApiError::forbidden(format!("your role ({}) cannot do this", caller.user.role))
                .into_response();
        }
        Err(Refusal::Scope) => {
            return ApiError::forbidden("the API token's scope does not cover this request")
                .into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The code from the authenticator app; required for users with a second factor.
    pub totp: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LoginResponse {
    pub user: String,
    pub role: String,
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The one answer to every failed login (A2).
pub(crate) fn login_failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "login_failed",
        "login failed: check the user name, password and code",
    )
}

/// `POST /api/v1/login`: the password and, for users with a second factor, the code, in one
/// request, checked by the authenticator.
pub async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Body(request): Body<LoginRequest>,
) -> ApiResult<Response> {
    let source = source_of(&state, &headers, peer);
    let password = SecretString::from(request.password);
    let name = Name::parse("user", &request.username).ok();
    let attempt = Attempt {
        front: Front::Web,
        login: &request.username,
        user: name.as_ref(),
        source,
    };
    let authenticator = &state.authenticator;
    let outcome = authenticator
        .first_factor(&attempt, Credential::Password(&password))
        .await;
    let login = match outcome {
        FirstFactor::Authenticated(login) => login,
        FirstFactor::SecondFactorNeeded(pending) => {
            let code = request.totp.as_deref().unwrap_or("").trim();
            if code.is_empty() && pending.passkey_possible() {
                // No code, and a passkey can complete the login: its challenge (202).
                return crate::passkey_login::second_factor_challenge(&state, pending, source)
                    .await;
            }
            match authenticator.second_factor(pending, &attempt, code).await {
                SecondFactor::Authenticated(login) => login,
                // One code per request: a wrong one fails the login.
                SecondFactor::Retry(_) => return Err(login_failed()),
                SecondFactor::Refused(refusal) => return Err(refused(refusal)),
            }
        }
        FirstFactor::Refused(refusal) => return Err(refused(refusal)),
    };
    open_browser_session(&state, login, source).await
}

/// Starts the browser session of a completed `login` from `source`: the cookie, and the CSRF
/// token in the body.
pub(crate) async fn open_browser_session(
    state: &WebState,
    login: rampart_auth::Login,
    source: IpAddr,
) -> ApiResult<Response> {
    let user = login.user;
    let (session, cookie) = state
        .store
        .start_web_session(
            &user,
            &source.to_string(),
            login.mfa,
            &login.method,
            state.settings.session_lifetime,
        )
        .await?;
    let body = LoginResponse {
        user: user.name.to_string(),
        role: user.role.to_string(),
        csrf_token: csrf_token(cookie.expose_secret()),
        expires_at: session.expires_at,
    };
    let cookie_header = session_cookie(
        cookie.expose_secret(),
        state.settings.session_lifetime.as_secs(),
        state.settings.secure_cookies,
    )?;
    let mut response = Json(body).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie_header);
    Ok(response)
}

/// The answer to a refused login: the same for every denial (A2), ours for our failures.
pub(crate) fn refused(refusal: rampart_auth::Refusal) -> ApiError {
    match refusal {
        rampart_auth::Refusal::Denied => login_failed(),
        rampart_auth::Refusal::Unavailable => ApiError::internal(),
    }
}

fn session_cookie(value: &str, max_age: u64, secure: bool) -> ApiResult<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; HttpOnly{secure}; SameSite=Strict; Path=/; Max-Age={max_age}"
    ))
    .map_err(|_| ApiError::internal())
}

/// `POST /api/v1/logout`: ends the browser session and clears the cookie.
pub async fn logout(
    State(state): State<WebState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> ApiResult<Response> {
    let Some(session) = &caller.session else {
        return Err(ApiError::bad_request(
            "logout ends a browser session; revoke an API token with DELETE /api/v1/tokens/{id}",
        ));
    };
    state.store.end_web_session(session, "logged out").await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        session_cookie("", 0, state.settings.secure_cookies)?,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_csrf() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=b; rampart_session=xyz; c=d"),
        );
        assert_eq!(cookie_value(&headers).as_deref(), Some("xyz"));
        assert_ne!(csrf_token("xyz"), csrf_token("xyZ"));
        assert!(same(&csrf_token("xyz"), &csrf_token("xyz")));
        assert!(!same("abc", "abd") && !same("abc", "abcd"));
        let header = session_cookie("v", 60, true).unwrap();
        assert_eq!(
            header.to_str().unwrap(),
            "rampart_session=v; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=60"
        );
    }
}
