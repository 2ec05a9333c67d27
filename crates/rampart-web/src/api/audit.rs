//! The audit log: pages of events and recorded exports (E5).

use crate::WebState;
use crate::error::{ApiError, ApiResult, Query};
use crate::paging::{self};
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use rampart_core::audit::AuditEvent;
use rampart_core::time_arg::format_rfc3339;
use serde::Deserialize;

use super::{Caller_, time_param};

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

/// The chain head and each SIEM sink's progress (as `rampart audit sinks` shows it).
pub async fn audit_sinks(
    State(state): State<WebState>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let head = state.store.audit_head().await?.map_or(0, |(seq, _)| seq);
    let sinks = state.store.sink_statuses().await?;
    Ok(axum::Json(
        serde_json::json!({ "head": head, "sinks": sinks }),
    ))
}
