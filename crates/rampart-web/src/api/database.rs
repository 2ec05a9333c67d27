//! Database access: personal database tokens (the password of `psql` and `redis-cli` through
//! Rampart; shown once) and the query log of database sessions. Users see their own only.

use crate::WebState;
use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::{self, Order};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::ExposeSecret;
use rampart_core::time_arg::parse_duration;
use rampart_session::database::{QueryEntry, query_log};
use rampart_store::CommandFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

use super::{Caller_, created, name, time_param, uuid};

/// A token's life when none is asked for.
const DEFAULT_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbTokenListQuery {
    user: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn db_tokens_list(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<DbTokenListQuery>,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let filter = match (&query.user, caller.rights.sees_everyone()) {
        (Some(user), true) => Some(name("user", user)?),
        (None, true) => None,
        // Users list their own tokens, whatever they ask for.
        (_, false) => Some(caller.user.name.clone()),
    };
    let tokens = state.store.db_tokens(filter.as_ref()).await?;
    let key = |token: &rampart_store::DbToken| token.id.to_string();
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
pub struct DbTokenCreate {
    /// How long it lives (`8h` when absent, at most `30d`).
    ttl: Option<String>,
}

/// Mints the caller's own database token. A user with a second factor must have logged in
/// with it (a browser session that used TOTP); an API token carries no second factor.
pub async fn db_tokens_create(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<DbTokenCreate>,
) -> ApiResult<Response> {
    let ttl = match &body.ttl {
        Some(text) => parse_duration("ttl", text)?,
        None => DEFAULT_TTL,
    };
    let second_factor = caller.session.as_ref().is_some_and(|s| s.mfa);
    if caller.user.has_second_factor() && !second_factor {
        return Err(ApiError::forbidden(
            "a database token needs a login with your second factor: log in to the portal with your TOTP code or passkey",
        ));
    }
    let (token, secret) = state
        .store
        .create_db_token(&caller.actor(), &caller.user.name, ttl)
        .await?;
    Ok(created(
        json!({ "token": token, "secret": secret.expose_secret() }),
    ))
}

pub async fn db_tokens_revoke(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid("database token", &id)?;
    let mine = state
        .store
        .db_tokens(Some(&caller.user.name))
        .await?
        .iter()
        .any(|t| t.id == id);
    if !mine && !caller.rights.is_admin() {
        return Err(ApiError::not_found(format!(
            "database token {id} not found"
        )));
    }
    let token = state.store.revoke_db_token(&caller.actor(), id).await?;
    Ok(Json(json!(token)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogQuery {
    user: Option<String>,
    asset: Option<String>,
    /// One database session: its statements as a timeline.
    session: Option<String>,
    /// RFC 3339.
    since: Option<String>,
    /// A regular expression the statement must match.
    grep: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The statements and commands of database sessions, oldest first.
pub async fn queries(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<QueryLogQuery>,
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
    let session = query
        .session
        .as_deref()
        .map(|id| uuid("session", id))
        .transpose()?;
    let filter = CommandFilter {
        user,
        asset: query.asset,
        since: time_param("since", &query.since)?,
    };
    let keep = |statement: &str| pattern.as_ref().is_none_or(|re| re.is_match(statement));
    let entries = query_log(&state.store, &filter, session, &keep).await?;
    let key = |entry: &QueryEntry| {
        let seq = entry.record.get("seq").and_then(Value::as_u64).unwrap_or(0);
        format!(
            "{:024}-{}-{seq:012}",
            entry.at.unix_timestamp_nanos(),
            entry.session
        )
    };
    let (page, next) = paging::in_memory(
        entries,
        key,
        Order::Ascending,
        limit,
        query.cursor.as_deref(),
    );
    Ok(paging::respond(&page, next))
}
