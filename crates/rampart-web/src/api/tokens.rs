//! API tokens: list, issue, revoke. Users see and revoke their own only.

use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::{self, Order};
use crate::{WebState, now};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::access::TokenScope;
use rampart_core::time_arg::{parse_duration, parse_rfc3339};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Caller_, created, name, uuid};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenListQuery {
    user: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn tokens_list(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<TokenListQuery>,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let filter = match (&query.user, caller.rights.sees_everyone()) {
        (Some(user), true) => Some(name("user", user)?),
        (None, true) => None,
        // Users list their own tokens, whatever they ask for.
        (_, false) => Some(caller.user.name.clone()),
    };
    let tokens = state.store.api_tokens(filter.as_ref()).await?;
    let key = |token: &rampart_store::ApiToken| token.id.to_string();
    let (page, next) = paging::in_memory(
        tokens,
        key,
        Order::Descending,
        limit,
        query.cursor.as_deref(),
    );
    Ok(paging::respond(&page, next))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// Whose token; the caller by default. Only administrators issue tokens for others.
    user: Option<String>,
    scope: String,
    /// A duration (`30d`, `12h`) or an RFC 3339 time; no expiry when absent.
    expires: Option<String>,
    #[serde(default)]
    description: String,
}

/// `30d` from now, or an RFC 3339 time.
pub fn expiry(
    text: &str,
    at: OffsetDateTime,
) -> Result<OffsetDateTime, rampart_core::InvalidInput> {
    match parse_duration("expires", text) {
        Ok(duration) => time::Duration::try_from(duration)
            .ok()
            .and_then(|d| at.checked_add(d))
            .ok_or_else(|| rampart_core::InvalidInput::new("expires: too far in the future")),
        Err(_) => parse_rfc3339("expires", text).map_err(|_| {
            rampart_core::InvalidInput::new(format!(
                "invalid expires {text:?}: expected a duration such as 30d or an RFC 3339 time"
            ))
        }),
    }
}

pub async fn tokens_create(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<TokenCreate>,
) -> ApiResult<Response> {
    let user = match &body.user {
        Some(user) => name("user", user)?,
        None => caller.user.name.clone(),
    };
    if user != caller.user.name && !caller.rights.is_admin() {
        return Err(ApiError::forbidden(
            "only administrators issue tokens for other users",
        ));
    }
    let scope = TokenScope::parse(&body.scope)?;
    // A token never carries more than the token (or session) that made it.
    if let Some(own) = caller.token.as_ref().map(|t| t.scope)
        && scope > own
    {
        return Err(ApiError::forbidden(format!(
            "a token with scope {own} cannot issue a token with scope {scope}"
        )));
    }
    let expires_at = body
        .expires
        .as_deref()
        .map(|text| expiry(text, now()))
        .transpose()?;
    let (token, secret) = state
        .store
        .create_api_token(&caller.actor(), &user, scope, &body.description, expires_at)
        .await?;
    use rampart_core::ExposeSecret;
    Ok(created(
        json!({ "token": token, "secret": secret.expose_secret() }),
    ))
}

pub async fn tokens_revoke(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid("token", &id)?;
    let token = state.store.api_token(id).await?;
    if token.user != caller.user.name && !caller.rights.is_admin() {
        return Err(ApiError::not_found(format!("token {id} not found")));
    }
    let token = state.store.revoke_api_token(&caller.actor(), id).await?;
    Ok(Json(json!(token)))
}
