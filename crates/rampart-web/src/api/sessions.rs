//! Sessions and their command logs. A user sees their own only; another's is "not found" (B2).

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::{self};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_store::CommandFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, time_param, uuid};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    #[serde(default)]
    live: bool,
    user: Option<String>,
    asset: Option<String>,
    /// Sessions started at or after this RFC 3339 time.
    since: Option<String>,
    /// Sessions started before this RFC 3339 time.
    until: Option<String>,
    /// At most this many, the newest (default 500).
    limit: Option<u32>,
    /// Where to continue: the `X-Next-Cursor` of the previous page.
    cursor: Option<String>,
}

pub async fn sessions_list(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<SessionQuery>,
) -> ApiResult<Response> {
    // Users see their own sessions only (B2): asking for someone else's finds none.
    let user = match query.user {
        Some(user) if !caller.rights.sees_everyone() && !caller.is(&user) => {
            return Ok(paging::respond::<Value>(&[], None));
        }
        Some(user) => Some(user),
        None if caller.rights.sees_everyone() => None,
        None => Some(caller.user.name.to_string()),
    };
    let filter = rampart_store::SessionFilter {
        live_only: query.live,
        user,
        asset: query.asset,
        since: time_param("since", &query.since)?,
        until: time_param("until", &query.until)?,
    };
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| uuid("cursor", c))
        .transpose()?;
    let page = state
        .store
        .find_sessions_page(&filter, cursor, limit)
        .await?;
    Ok(paging::respond(&page.items, page.next))
}

/// The session `id` if the caller may see it; another user's is "not found" (B2).
pub(super) async fn visible_session(
    state: &WebState,
    caller: &Caller,
    id: &str,
) -> ApiResult<rampart_core::Session> {
    let id = uuid("session", id)?;
    let not_found = || ApiError::not_found(format!("session {id} not found"));
    let session = state.store.session(id).await.map_err(|err| match err {
        rampart_store::StoreError::NotFound { .. } => not_found(),
        other => other.into(),
    })?;
    if caller.rights.sees_everyone() || caller.is(&session.user) {
        Ok(session)
    } else {
        Err(not_found())
    }
}

pub async fn session_show(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(visible_session(&state, &caller, &id).await?)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    reason: Option<String>,
}

pub async fn session_kill(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
    Body(body): Body<KillRequest>,
) -> ApiResult<Response> {
    let session = visible_session(&state, &caller, &id).await?;
    let reason = body
        .reason
        .unwrap_or_else(|| format!("ended by {}", caller.user.name));
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid reason: one line of at most 500 characters",
        ));
    }
    let session = state
        .store
        .request_session_kill(&caller.actor(), session.id, reason)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(session))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandQuery {
    user: Option<String>,
    asset: Option<String>,
    since: Option<String>,
    /// A regular expression the command must match.
    grep: Option<String>,
    /// At most this many, the oldest first (default 500).
    limit: Option<u32>,
    /// Where to continue: the `X-Next-Cursor` of the previous page.
    cursor: Option<String>,
}

pub async fn commands(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<CommandQuery>,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let pattern = query
        .grep
        .as_deref()
        .map(|re| {
            regex::RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .map_err(|_| ApiError::bad_request(format!("invalid grep expression {re:?}")))
        })
        .transpose()?;
    let user = if caller.rights.sees_everyone() {
        query.user
    } else {
        match &query.user {
            Some(user) if !caller.is(user) => return Ok(paging::respond::<Value>(&[], None)),
            _ => Some(caller.user.name.to_string()),
        }
    };
    let filter = CommandFilter {
        user,
        asset: query.asset,
        since: time_param("since", &query.since)?,
    };
    if let Some(cursor) = &query.cursor {
        uuid("cursor", cursor)?;
    }
    let matches =
        |c: &rampart_core::CommandRecord| pattern.as_ref().is_none_or(|re| re.is_match(&c.command));
    let page = state
        .store
        .commands_page(&filter, query.cursor, limit, &matches)
        .await?;
    Ok(paging::respond(&page.items, page.next))
}
