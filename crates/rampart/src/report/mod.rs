//! Compliance reports (`rampart report`, `GET /api/v1/reports`, the portal's `/reports`): who
//! accessed what and for how long, failed and refused logins, denied and flagged commands, file
//! transfers, grant changes, credential rotations, and the verification of the audit trail, each
//! section naming the controls it supports (SOC 2, ISO 27001, PCI DSS).
//!
//! Everything is read from the hash-chained audit log (`facts`) and from the verifier of
//! `rampart audit verify`; the forms (`html`, `csv_out`, `pdf`, JSON) render the same facts.
//! Making a report is an audit event (`report_generated`).

mod csv_out;
pub mod facts;
mod html;
mod pdf;

use crate::commands::verify;
use rampart_core::audit::AuditEvent;
use rampart_core::time_arg::format_rfc3339;
use rampart_store::Store;
use rampart_web::reports::{ReportError, ReportFormat, ReportFuture, ReportMaker, ReportRequest};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Makes reports for the API and the portal, as the CLI does.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub store: Arc<Store>,
    pub seal_interval: Duration,
}

impl ReportMaker for Reporter {
    fn make(&self, request: ReportRequest) -> ReportFuture<'_> {
        Box::pin(async move {
            make(&self.store, self.seal_interval, &request)
                .await
                .map_err(|err| match err {
                    MakeError::Pdf(pdf::PdfError::NoChromium) => {
                        ReportError::Unavailable(pdf::PdfError::NoChromium.to_string())
                    }
                    MakeError::Pdf(err) => {
                        tracing::error!(error = %err, "cannot print a report");
                        ReportError::Failed
                    }
                    MakeError::Other(err) => {
                        tracing::error!(error = %format!("{err:#}"), "cannot make a report");
                        ReportError::Failed
                    }
                })
        })
    }
}

#[derive(Debug)]
pub enum MakeError {
    Pdf(pdf::PdfError),
    Other(anyhow::Error),
}

impl std::fmt::Display for MakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MakeError::Pdf(err) => write!(f, "{err}"),
            MakeError::Other(err) => write!(f, "{err:#}"),
        }
    }
}

impl From<anyhow::Error> for MakeError {
    fn from(err: anyhow::Error) -> Self {
        MakeError::Other(err)
    }
}

/// The facts of the period `[from, to)` with the verification of the trail.
pub async fn build(
    store: &Store,
    seal_interval: Duration,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<facts::Report> {
    let now = OffsetDateTime::now_utc();
    let mut report = facts::gather(
        store,
        from,
        to,
        facts::Verification {
            verified: false,
            checks: Vec::new(),
        },
        now,
    )
    .await?;
    let options = verify::Options {
        only: None,
        anchors: Vec::new(),
        seal_interval,
        // Reports check the node's own copies (a report is made inside the server too).
        bucket: None,
    };
    let lines = verify::collect(store, &options).await?;
    let verified = lines.iter().all(|line| line.ok);
    let period_sessions: HashSet<&str> =
        report.sessions.iter().map(|s| s.session.as_str()).collect();
    // Every failure, every check of the chain and its heads, and the recordings of this
    // period's sessions (the others belong to other periods' reports).
    let checks = lines
        .into_iter()
        .filter(|line| {
            !line.ok
                || line
                    .item
                    .strip_prefix("recording ")
                    .is_none_or(|id| period_sessions.contains(id))
        })
        .map(|line| facts::Check {
            item: line.item,
            ok: line.ok,
            detail: line.detail,
        })
        .collect();
    report.set_verification(facts::Verification { verified, checks });
    Ok(report)
}

/// Makes one report in its form, and records that it was made.
pub async fn make(
    store: &Store,
    seal_interval: Duration,
    request: &ReportRequest,
) -> Result<Vec<u8>, MakeError> {
    let report = build(store, seal_interval, request.from, request.to).await?;
    let bytes = match request.format {
        ReportFormat::Json => serde_json::to_vec_pretty(&report).map_err(anyhow::Error::from)?,
        ReportFormat::Html => html::render(&report).into_bytes(),
        ReportFormat::Csv => csv_out::render(&report)?,
        ReportFormat::Pdf => pdf::print(&html::render(&report))
            .await
            .map_err(MakeError::Pdf)?,
    };
    store
        .record_event(
            &request.actor,
            &AuditEvent::ReportGenerated {
                from: format_rfc3339(request.from),
                to: format_rfc3339(request.to),
                format: request.format.as_str().to_owned(),
                via: request.via.clone(),
            },
        )
        .await
        .map_err(anyhow::Error::from)?;
    Ok(bytes)
}
