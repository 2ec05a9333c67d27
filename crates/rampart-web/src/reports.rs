//! Compliance reports over the API (`GET /api/v1/reports`) and the portal's `/reports` page.
//!
//! The report is made by the binary (it needs the whole verifier of `rampart audit verify`),
//! through [`ReportMaker`]; this module only parses the request, asks, and serves the result.
//! An HTML report is a self-contained page (inline style and SVG, no script) served with a
//! policy that allows nothing else.

use crate::WebState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::{Extension, http::StatusCode};
use rampart_core::audit::Actor;
use rampart_core::time_arg::{DayEdge, parse_time_or_date};
use std::future::Future;
use std::pin::Pin;
use time::OffsetDateTime;

/// The policy an HTML report is served with: its own inline style and images, nothing else.
pub const REPORT_CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'";

/// The forms a report comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Csv,
    Pdf,
    Json,
}

impl ReportFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "html" => Some(Self::Html),
            "csv" => Some(Self::Csv),
            "pdf" => Some(Self::Pdf),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Html => "html",
            Self::Csv => "csv",
            Self::Pdf => "pdf",
            Self::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Pdf => "application/pdf",
            Self::Json => "application/json",
        }
    }
}

/// One report to make: the period `[from, to)`, the form, and who asked (the report is audited).
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub format: ReportFormat,
    pub actor: Actor,
    /// Where the request came from, for the audit event.
    pub via: String,
}

/// Why a report could not be made.
#[derive(Debug, Clone)]
pub enum ReportError {
    /// The request is wrong (a period that ends before it starts, ...).
    Invalid(String),
    /// This node cannot make that form (a PDF without Chromium).
    Unavailable(String),
    /// Something broke; logged by the maker.
    Failed,
}

pub type ReportFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, ReportError>> + Send + 'a>>;

/// Makes reports; the binary's implementation reads the audit log and runs the verifier.
pub trait ReportMaker: Send + Sync + std::fmt::Debug {
    fn make(&self, request: ReportRequest) -> ReportFuture<'_>;
}

#[derive(Debug, serde::Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// The days a report covers when the request names no start.
pub const DEFAULT_DAYS: i64 = 30;

/// `from`/`to` as a request gives them: RFC 3339 or a date (`to` a date means through that day);
/// without `to`, now; without `from`, [`DEFAULT_DAYS`] before `to`.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), String> {
    let to = match to {
        Some(text) => parse_time_or_date("to", text, DayEdge::End).map_err(|e| e.to_string())?,
        None => now,
    };
    let from = match from {
        Some(text) => {
            parse_time_or_date("from", text, DayEdge::Start).map_err(|e| e.to_string())?
        }
        None => to - time::Duration::days(DEFAULT_DAYS),
    };
    if from >= to {
        return Err("the period is empty: from must be before to".to_owned());
    }
    Ok((from, to))
}

pub async fn report(
    State(state): State<WebState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ReportQuery>,
) -> ApiResult<Response> {
    let format = match query.format.as_deref() {
        None => ReportFormat::Json,
        Some(text) => ReportFormat::parse(text)
            .ok_or_else(|| ApiError::bad_request("format is html, csv, pdf or json"))?,
    };
    let (from, to) = period(query.from.as_deref(), query.to.as_deref(), crate::now())
        .map_err(ApiError::bad_request)?;
    let Some(maker) = state.reports.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this listener makes no reports",
        ));
    };
    let request = ReportRequest {
        from,
        to,
        format,
        actor: caller.actor(),
        via: format!("api from {}", caller.source),
    };
    let bytes = maker.make(request).await.map_err(|err| match err {
        ReportError::Invalid(message) => ApiError::bad_request(message),
        ReportError::Unavailable(message) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
        ReportError::Failed => ApiError::internal(),
    })?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if format == ReportFormat::Html {
        headers.insert(
            axum::http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(REPORT_CONTENT_SECURITY_POLICY),
        );
    }
    if matches!(format, ReportFormat::Csv | ReportFormat::Pdf) {
        let name = format!(
            "attachment; filename=\"rampart-report-{}-{}.{}\"",
            from.date(),
            (to - time::Duration::SECOND).date(),
            format.as_str()
        );
        if let Ok(value) = HeaderValue::from_str(&name) {
            headers.insert(CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_defaults_to_the_last_thirty_days_and_dates_cover_whole_days() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let (from, to) = period(None, None, now).unwrap();
        assert_eq!(to, now);
        assert_eq!(to - from, time::Duration::days(30));
        let (from, to) = period(Some("2026-11-01"), Some("2026-11-30"), now).unwrap();
        assert_eq!(
            rampart_core::time_arg::format_rfc3339(from),
            "2026-11-01T00:00:00Z"
        );
        assert_eq!(
            rampart_core::time_arg::format_rfc3339(to),
            "2026-12-01T00:00:00Z"
        );
        assert!(
            period(Some("2026-12-01"), Some("2026-11-30"), now)
                .unwrap_err()
                .contains("empty")
        );
        assert!(period(Some("yesterday"), None, now).is_err());
    }
}
