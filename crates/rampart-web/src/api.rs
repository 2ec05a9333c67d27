//! The REST API's handlers. Each one runs after the route's guard (see `auth::guard`), so the
//! caller is authenticated and their role and token scope reach the route; what is left here
//! is object-level: a user sees only their own sessions, recordings, commands and tokens, and
//! another user's object by id is `404` (B2).
//!
//! Business logic stays in the store and in `rampart-core` (the policy, login rules), which the
//! CLI calls too; handlers parse, check visibility, call, and shape the answer.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::{self, Order, PageQuery};
use crate::{WebState, now};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_core::access::TokenScope;
use rampart_core::audit::AuditEvent;
use rampart_core::login_rules::{LoginRules, parse_cidr_list};
use rampart_core::policy;
use rampart_core::schedule::Schedule;
use rampart_core::time_arg::{format_rfc3339, parse_duration, parse_rfc3339};
use rampart_core::{AccountRef, Action, ActionSet, Label, Name, Role, SecretKind, SecretString};
use rampart_store::ssh_keys::{parse_public_keys, single_host_key};
use rampart_store::{CommandFilter, GrantInput, NewAccountSecret, NewAsset};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

type Caller_ = Extension<Caller>;

/// The largest recording the API hands out in one response.
const MAX_RECORDING_BYTES: u64 = 512 * 1024 * 1024;

fn name(what: &str, text: &str) -> ApiResult<Name> {
    Ok(Name::parse(what, text)?)
}

fn uuid(what: &str, text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::bad_request(format!("invalid {what} id {text:?}")))
}

fn time_param(what: &str, text: &Option<String>) -> ApiResult<Option<OffsetDateTime>> {
    Ok(text
        .as_deref()
        .map(|t| parse_rfc3339(what, t))
        .transpose()?)
}

fn created<T: serde::Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

// ---- me ----

pub async fn me(Extension(caller): Caller_) -> Json<Value> {
    Json(json!({
        "user": caller.user,
        "via": if caller.session.is_some() { "session" } else { "token" },
        "scope": caller.token.as_ref().map(|t| t.scope),
        "mfa": caller.session.as_ref().map(|s| s.mfa).unwrap_or(false),
        "csrf_token": caller.csrf_token,
        "session_expires_at": caller.session.as_ref().map(|s| format_rfc3339(s.expires_at)),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    action: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn one_action(text: &str) -> ApiResult<Action> {
    match ActionSet::parse(text)?
        .iter()
        .collect::<Vec<Action>>()
        .as_slice()
    {
        [action] => Ok(*action),
        _ => Err(ApiError::bad_request(
            "action takes one action, such as shell or sftp_read",
        )),
    }
}

/// The accounts the caller may use now for `action` (default shell), as the SSH menu shows.
pub async fn my_accounts(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<ActionQuery>,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let action = one_action(query.action.as_deref().unwrap_or("shell"))?;
    let store = &state.store;
    let assets = store.list_assets().await?;
    let mut pairs = Vec::new();
    for account in store.list_accounts(None).await? {
        if let Some(asset) = assets.iter().find(|a| a.name == account.asset) {
            pairs.push((asset.clone(), account.login));
        }
    }
    let grants = store.list_grants().await?;
    let mfa = caller.session.as_ref().is_some_and(|s| s.mfa);
    let allowed = policy::allowed_accounts(&caller.user, &pairs, action, now(), mfa, &grants);
    let list: Vec<Value> = allowed
        .into_iter()
        .map(|(asset, login)| {
            json!({
                "account": format!("{login}@{}", asset.name),
                "login": login,
                "asset": asset.name,
                "host": asset.host,
                "port": asset.endpoint(rampart_core::Protocol::Ssh).map(|e| e.port),
                "endpoints": asset.endpoints,
                "labels": asset.labels,
            })
        })
        .collect();
    let key = |item: &Value| item["account"].as_str().unwrap_or_default().to_owned();
    let (page, next) =
        paging::in_memory(list, key, Order::Ascending, limit, query.cursor.as_deref());
    Ok(paging::respond(&page, next))
}

// ---- tokens ----

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

// ---- sessions, recordings, commands ----

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
async fn visible_session(
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

fn audit_key(state: &WebState) -> ApiResult<rampart_audit::PublicKey> {
    let text = rampart_store::node_keys::public_key_of(&state.store.data_dir().audit_key_path())
        .map_err(ApiError::from)?;
    rampart_audit::public_key_from_openssh(&text).map_err(|err| {
        tracing::error!(error = %err, "the audit key is unreadable");
        ApiError::internal()
    })
}

pub async fn recording_get(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let session = visible_session(&state, &caller, &id).await?;
    let dir = state.store.data_dir().recordings_dir();
    if !rampart_audit::has_recording(&dir, session.id) {
        return Err(ApiError::not_found(format!(
            "session {} has no recording",
            session.id
        )));
    }
    let unreadable = |err: std::io::Error| {
        tracing::error!(error = %err, "cannot read a recording");
        ApiError::internal()
    };
    // A command's raw streams are merged into the cast: count them too (escaped, they grow).
    // A failed look is an error, never "size 0" under the cap; only a missing raw file is 0.
    let mut size = 0u64;
    for (path, required) in [
        (rampart_audit::recording::cast_path(&dir, session.id), true),
        (rampart_audit::recording::raw_path(&dir, session.id), false),
    ] {
        match tokio::fs::metadata(&path).await {
            Ok(meta) => size = size.saturating_add(meta.len()),
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(unreadable(err)),
        }
    }
    if size > MAX_RECORDING_BYTES {
        return Err(ApiError::bad_request(
            "the recording is too large to download here: use rampart recording export",
        ));
    }
    // Reading evidence is itself evidence (E5), recorded before anything is sent.
    let event = AuditEvent::RecordingExported {
        session: session.id.to_string(),
        file: format!("api download from {}", caller.source),
    };
    state.store.record_event(&caller.actor(), &event).await?;
    let mut response = crate::download::stream_cast(dir, session.id).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-asciicast"),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}.cast\"", session.id))
    {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub async fn recording_verify(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let session = visible_session(&state, &caller, &id).await?;
    let dir = state.store.data_dir().recordings_dir();
    if !rampart_audit::has_recording(&dir, session.id) {
        return Err(ApiError::not_found(format!(
            "session {} has no recording",
            session.id
        )));
    }
    let key = audit_key(&state)?;
    Ok(Json(
        match rampart_audit::verify_recording(&dir, session.id, &key) {
            Ok(report) => json!({
                "session": session.id,
                "verified": true,
                "complete": report.complete,
                "chunks": report.chunks,
                "bytes": report.length,
                "capped": report.capped(),
                "detail": report.describe(),
            }),
            Err(_) if session.is_live() => json!({
                "session": session.id,
                "verified": false,
                "live": true,
                "problem": "live: sealed when the session ends",
            }),
            Err(problem) => json!({
                "session": session.id,
                "verified": false,
                "problem": match problem {
                    rampart_audit::RecordingProblem::Missing(_) => "part of the recording is missing".to_owned(),
                    other => other.to_string(),
                },
            }),
        },
    ))
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

// ---- audit ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many events, the newest (default 100).
    limit: Option<u32>,
    /// Only events of this kind (`login_failed`, ...).
    kind: Option<String>,
    /// Only events by this actor (`user:alice`, `system`, `cli:...`).
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Only events whose JSON contains this text.
    contains: Option<String>,
    /// Where to continue (older events): the `X-Next-Cursor` of the previous page.
    cursor: Option<String>,
}

/// A sequence number given as a cursor.
fn seq_cursor(cursor: Option<&str>) -> ApiResult<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))
        })
        .transpose()
}

pub async fn audit_events(
    State(state): State<WebState>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, 100)?;
    let before = seq_cursor(query.cursor.as_deref())?;
    let filter = rampart_store::AuditFilter {
        kind: query.kind,
        actor: query.actor,
        contains: query.contains,
        since: time_param("since", &query.since)?,
        until: time_param("until", &query.until)?,
    };
    let page = state
        .store
        .audit_events_page(&filter, before, limit)
        .await?;
    Ok(paging::respond(&page.items, page.next))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// At most this many events, the oldest first (default and most: 10 000).
    limit: Option<u32>,
    /// Where to continue: the `X-Next-Cursor` of the previous page.
    cursor: Option<String>,
}

/// The events between `since` and `until`, one page at a time (oldest first), as JSON lines
/// or CSV; each page's export is recorded first (E5).
pub async fn audit_export(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Query(query): Query<ExportQuery>,
) -> ApiResult<Response> {
    let format = query.format.as_deref().unwrap_or("jsonl");
    if format != "jsonl" && format != "csv" {
        return Err(ApiError::bad_request("format is jsonl or csv"));
    }
    let since = time_param("since", &query.since)?;
    let until = time_param("until", &query.until)?;
    let limit = paging::limit(query.limit, paging::MAX_LIMIT)?;
    let after = seq_cursor(query.cursor.as_deref())?.unwrap_or(0);
    let filter = rampart_store::AuditFilter {
        since,
        until,
        ..rampart_store::AuditFilter::default()
    };
    let page = state.store.audit_export_page(&filter, after, limit).await?;
    let events = page.items;
    let record = AuditEvent::AuditExported {
        since: since.map(format_rfc3339),
        until: until.map(format_rfc3339),
        events: events.len() as u64,
        file: format!(
            "api download ({format}) from {}{}",
            caller.source,
            if after > 0 {
                format!(", after event {after}")
            } else {
                String::new()
            }
        ),
    };
    state.store.record_event(&caller.actor(), &record).await?;
    let bad = |err: &dyn std::fmt::Display| {
        tracing::error!(error = %err, "cannot write the audit export");
        ApiError::internal()
    };
    let (content_type, body) = if format == "csv" {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record(["seq", "at", "actor", "kind", "event", "prev_hash", "hash"])
            .map_err(|e| bad(&e))?;
        for e in &events {
            writer
                .write_record([
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.to_string(),
                    e.kind.clone(),
                    e.event.to_string(),
                    e.prev_hash.clone(),
                    e.hash.clone(),
                ])
                .map_err(|e| bad(&e))?;
        }
        ("text/csv", writer.into_inner().map_err(|e| bad(&e))?)
    } else {
        let mut out = Vec::new();
        for e in &events {
            serde_json::to_writer(&mut out, e).map_err(|e| bad(&e))?;
            out.push(b'\n');
        }
        ("application/jsonl", out)
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(value) = page.next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        response.headers_mut().insert(paging::NEXT_CURSOR, value);
    }
    Ok(response)
}

// ---- users ----

pub async fn users_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let users = state.store.list_users().await?;
    let key = |user: &rampart_core::User| user.name.to_string();
    paged(users, key, &query)
}

/// One page of a list the store returns whole, by name (or id) ascending.
fn paged<T: serde::Serialize>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    query: &PageQuery,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let (page, next) =
        paging::in_memory(items, key, Order::Ascending, limit, query.cursor.as_deref());
    Ok(paging::respond(&page, next))
}

pub async fn user_show(
    State(state): State<WebState>,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state.store.user(&name("user", &user)?).await?;
    let locks = state.store.user_locks(&user.name, now()).await?;
    let mut value = json!(user);
    if let Some(map) = value.as_object_mut() {
        let locked_until = locks.iter().map(|lock| lock.until).max();
        map.insert(
            "locked_until".into(),
            json!(locked_until.map(format_rfc3339)),
        );
        let by_factor: Vec<Value> = locks
            .iter()
            .map(|lock| json!({ "factor": lock.factor.as_str(), "until": format_rfc3339(lock.until) }))
            .collect();
        map.insert("locks".into(), json!(by_factor));
    }
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAdd {
    name: String,
    role: Option<String>,
    /// SSH public keys, one `authorized_keys` line each.
    #[serde(default)]
    keys: Vec<String>,
}

pub async fn user_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<UserAdd>,
) -> ApiResult<Response> {
    let user = name("user", &body.name)?;
    let role = Role::parse(body.role.as_deref().unwrap_or("user"))?;
    let mut keys = Vec::new();
    for line in &body.keys {
        keys.extend(parse_public_keys("key", line)?);
    }
    let added = state
        .store
        .add_user(&caller.actor(), &user, role, &keys)
        .await?;
    Ok(created(added))
}

pub async fn user_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    let grants_removed = state.store.remove_user(&caller.actor(), &user).await?;
    Ok(Json(
        json!({ "removed": user, "grants_removed": grants_removed }),
    ))
}

pub async fn user_disable(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .set_user_disabled(&caller.actor(), &name("user", &user)?, true)
        .await?;
    Ok(Json(json!(user)))
}

pub async fn user_enable(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .set_user_disabled(&caller.actor(), &name("user", &user)?, false)
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAdd {
    public_key: String,
}

pub async fn user_key_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<KeyAdd>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    state.store.user(&user).await?;
    let keys = parse_public_keys("public_key", &body.public_key)?;
    let mut updated = None;
    for key in &keys {
        updated = Some(
            state
                .store
                .add_user_key(&caller.actor(), &user, key)
                .await?,
        );
    }
    updated
        .map(|u| Json(json!(u)))
        .ok_or_else(|| ApiError::bad_request("public_key holds no key"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRemove {
    fingerprint: String,
}

pub async fn user_key_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<KeyRemove>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .remove_user_key(&caller.actor(), &name("user", &user)?, &body.fingerprint)
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSet {
    password: String,
}

pub async fn user_password(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<PasswordSet>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    let password = SecretString::from(body.password);
    {
        use rampart_core::ExposeSecret;
        if password.expose_secret().is_empty() || password.expose_secret().len() > 1024 {
            return Err(ApiError::bad_request(
                "the password must be 1 to 1024 bytes",
            ));
        }
    }
    state
        .store
        .set_user_password(&caller.actor(), &user, &password)
        .await?;
    Ok(Json(json!({ "user": user, "password": "set" })))
}

pub async fn user_mfa_reset(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    state.store.reset_totp(&caller.actor(), &user).await?;
    Ok(Json(json!({ "user": user, "mfa": "not enrolled" })))
}

pub async fn user_unlock(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    state.store.unlock_user(&caller.actor(), &user).await?;
    Ok(Json(json!({ "user": user, "locked": false })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRulesSet {
    /// Comma-separated networks; absent keeps the rule, "" removes it.
    allow_from: Option<String>,
    deny_from: Option<String>,
    /// Weekly windows such as "Mon-Fri 08:00-18:00 Europe/Berlin"; "" removes the rule.
    login_hours: Option<String>,
}

pub async fn user_login_rules(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<LoginRulesSet>,
) -> ApiResult<Json<Value>> {
    let user = state.store.user(&name("user", &user)?).await?;
    let mut rules: LoginRules = user.login_rules.clone();
    if let Some(text) = &body.allow_from {
        rules.allow_from = parse_cidr_list("allow_from", text)?;
    }
    if let Some(text) = &body.deny_from {
        rules.deny_from = parse_cidr_list("deny_from", text)?;
    }
    if let Some(text) = &body.login_hours {
        rules.hours = if text.trim().is_empty() {
            None
        } else {
            Some(Schedule::parse(text)?)
        };
    }
    let user = state
        .store
        .set_user_login_rules(&caller.actor(), &user.name, &rules)
        .await?;
    Ok(Json(json!(user)))
}

// ---- groups ----

pub async fn groups_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let groups = state.store.list_groups().await?;
    paged(groups, |group| group.name.to_string(), &query)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    name: String,
}

pub async fn group_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<NameBody>,
) -> ApiResult<Response> {
    let group = state
        .store
        .add_group(&caller.actor(), &name("group", &body.name)?)
        .await?;
    Ok(created(group))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    user: String,
}

pub async fn group_member_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(group): Path<String>,
    Body(body): Body<MemberAdd>,
) -> ApiResult<Json<Value>> {
    let group = state
        .store
        .add_group_member(
            &caller.actor(),
            &name("group", &group)?,
            &name("user", &body.user)?,
        )
        .await?;
    Ok(Json(json!(group)))
}

// ---- assets ----

pub async fn assets_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let assets = state.store.list_assets().await?;
    paged(assets, |asset| asset.name.to_string(), &query)
}

pub async fn asset_show(
    State(state): State<WebState>,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.store.asset(&name("asset", &asset)?).await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetAdd {
    name: String,
    host: String,
    port: Option<u16>,
    #[serde(default)]
    labels: Vec<String>,
}

pub async fn asset_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<AssetAdd>,
) -> ApiResult<Response> {
    let asset = NewAsset::ssh(
        name("asset", &body.name)?,
        rampart_core::parse_host(&body.host)?,
        body.port.unwrap_or(22),
        body.labels
            .iter()
            .map(|l| Label::parse(l))
            .collect::<Result<_, _>>()?,
    );
    Ok(created(
        state.store.add_asset(&caller.actor(), &asset).await?,
    ))
}

pub async fn asset_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let (accounts, grants) = state.store.remove_asset(&caller.actor(), &asset).await?;
    Ok(Json(
        json!({ "removed": asset, "accounts_removed": accounts, "grants_removed": grants }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyPin {
    /// A `.pub` line or an `ssh-keyscan` line.
    key: String,
}

pub async fn asset_host_key_pin(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
    Body(body): Body<HostKeyPin>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    let key = single_host_key("key", &body.key)?;
    state
        .store
        .pin_asset_host_key(&caller.actor(), &asset, &key, "set by administrator", true)
        .await?;
    Ok(Json(json!(state.store.asset(&asset).await?)))
}

pub async fn asset_host_key_clear(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    let asset = name("asset", &asset)?;
    state
        .store
        .clear_asset_host_key(&caller.actor(), &asset)
        .await?;
    Ok(Json(json!(state.store.asset(&asset).await?)))
}

// ---- accounts ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    asset: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn accounts_list(
    State(state): State<WebState>,
    Query(query): Query<AccountQuery>,
) -> ApiResult<Response> {
    let asset = query.asset.map(|a| name("asset", &a)).transpose()?;
    let accounts = state.store.list_accounts(asset.as_ref()).await?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    paged(
        accounts,
        |account| format!("{}/{}", account.asset, account.login),
        &page,
    )
}

/// The secret of an account: exactly one of a password or an OpenSSH private key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    password: Option<String>,
    private_key: Option<String>,
}

impl SecretBody {
    fn into_secret(self) -> ApiResult<NewAccountSecret> {
        match (self.password, self.private_key) {
            (Some(password), None) => Ok(NewAccountSecret {
                kind: SecretKind::Password,
                value: SecretString::from(password),
            }),
            (None, Some(key)) => Ok(NewAccountSecret {
                kind: SecretKind::PrivateKey,
                value: SecretString::from(key),
            }),
            _ => Err(ApiError::bad_request(
                "give exactly one of password or private_key",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountAdd {
    /// LOGIN@ASSET.
    account: String,
    password: Option<String>,
    private_key: Option<String>,
}

pub async fn account_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<AccountAdd>,
) -> ApiResult<Response> {
    let account = AccountRef::parse(&body.account)?;
    let secret = SecretBody {
        password: body.password,
        private_key: body.private_key,
    }
    .into_secret()?;
    let added = state
        .store
        .add_account(&caller.actor(), &account, &secret)
        .await?;
    Ok(created(added))
}

pub async fn account_secret(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(account): Path<String>,
    Body(body): Body<SecretBody>,
) -> ApiResult<Json<Value>> {
    let account = AccountRef::parse(&account)?;
    let secret = body.into_secret()?;
    let replaced = state
        .store
        .replace_account_secret(&caller.actor(), &account, &secret)
        .await?;
    Ok(Json(json!(replaced)))
}

pub async fn account_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = AccountRef::parse(&account)?;
    state
        .store
        .remove_account(&caller.actor(), &account)
        .await?;
    Ok(Json(json!({ "removed": account.to_string() })))
}

// ---- grants ----

pub async fn grants_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let grants = state.store.list_grants().await?;
    paged(grants, |grant| grant.id.to_string(), &query)
}

pub async fn grant_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<GrantInput>,
) -> ApiResult<Response> {
    let grant = body.parse()?;
    Ok(created(
        state.store.add_grant(&caller.actor(), &grant).await?,
    ))
}

pub async fn grant_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid("grant", &id)?;
    state.store.remove_grant(&caller.actor(), id).await?;
    Ok(Json(json!({ "removed": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    user: String,
    asset: String,
    account: Option<String>,
    action: Option<String>,
    at: Option<String>,
    mfa: Option<bool>,
    from: Option<std::net::IpAddr>,
}

/// The same question `rampart grant explain` asks, answered by the same function.
pub async fn grant_explain(
    State(state): State<WebState>,
    Query(query): Query<ExplainParams>,
) -> ApiResult<Json<Vec<rampart_store::AccessReport>>> {
    let question = rampart_store::ExplainQuery {
        user: name("user", &query.user)?,
        asset: name("asset", &query.asset)?,
        account: query
            .account
            .as_deref()
            .map(|login| name("account", login))
            .transpose()?,
        action: one_action(query.action.as_deref().unwrap_or("shell"))?,
        at: time_param("at", &query.at)?.unwrap_or_else(now),
        mfa: query.mfa,
        from: query.from,
    };
    let reports = state
        .store
        .explain_access(&question, &state.settings.auth.global)
        .await?;
    Ok(Json(reports))
}
