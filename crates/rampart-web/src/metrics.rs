//! `/metrics` in the Prometheus text format (version 0.0.4): on the HTTPS listener for auditors
//! and administrators (a browser session or an API token), and on its own plain-HTTP listener
//! when `metrics.listen` is set (no authentication there: bind it where only the monitoring
//! system reaches it).
//!
//! Written by hand rather than with a metrics crate: a few gauges and counters read at scrape
//! time from the store and this process, with no histograms to maintain; the text format is
//! small and stable, and `tests/it/operations.rs` checks the output with the reference parser
//! (Python's `prometheus_client`).
//!
//! Where each figure comes from:
//! - the store (every process on the data directory): live sessions by kind and door, and
//!   counters summed from the audit log, read forward from where the last scrape stopped
//!   (logins, failures, locks, refusals, denials, bytes of ended sessions, every event kind);
//!   sink progress against the log's head; the newest signed head; a probe query's latency;
//! - this process: its recorders (writers open, time the relay waited for them), HTTP requests;
//! - the certificate file: its expiry and whether it is self-signed.

use crate::WebState;
use crate::cert_facts;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rampart_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Audit events read per query while catching up.
const BATCH: u32 = 10_000;
/// At most this many events are read in one scrape; a longer log is caught up over several.
const MAX_EVENTS_PER_SCRAPE: usize = 1_000_000;
/// Connections the separate metrics listener serves at once.
const LISTENER_CONNECTIONS: usize = 16;

/// The node's metrics: what is counted in this process, and the audit log's tally.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The HTTPS certificate, when the listener serves TLS.
    certificate: Option<PathBuf>,
    tally: tokio::sync::Mutex<AuditTally>,
    /// HTTP responses by status class (`2xx` ... `5xx`), index 0 = 1xx.
    http_responses: [AtomicU64; 5],
}

/// Counters summed from the audit log up to `seq`.
#[derive(Debug, Default)]
struct AuditTally {
    seq: i64,
    by_kind: BTreeMap<String, u64>,
    bytes_from_client: u64,
    bytes_to_client: u64,
}

impl Metrics {
    pub fn new(certificate: Option<PathBuf>) -> Self {
        Self {
            certificate,
            ..Self::default()
        }
    }

    /// Counts one HTTP response (the access log calls this).
    pub fn count_response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(counter) = self.http_responses.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The whole exposition.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        let mut out = Exposition::default();
        out.family(
            "rampart_build_info",
            "gauge",
            "The running rampart's version",
        );
        out.sample(
            "rampart_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );

        let latency = store.probe_latency().await?;
        out.family(
            "rampart_store_probe_seconds",
            "gauge",
            "Time a trivial query took at this scrape (connection wait included)",
        );
        out.sample_f64("rampart_store_probe_seconds", &[], latency.as_secs_f64());

        out.family(
            "rampart_sessions_live",
            "gauge",
            "Sessions open now, by kind and by door (ssh, or web for browser terminals)",
        );
        for live in store.live_session_counts().await? {
            out.sample(
                "rampart_sessions_live",
                &[("kind", &live.kind), ("via", &live.via)],
                live.count,
            );
        }

        let head = self.catch_up(store).await?;
        {
            let tally = self.tally.lock().await;
            let count = |kind: &str| tally.by_kind.get(kind).copied().unwrap_or(0);
            out.family(
                "rampart_logins_total",
                "counter",
                "Logins by result, from the audit log: failed counts one per key and window, as \
                 the log records them (a storm is bounded), locked counts each lock",
            );
            for (result, kind) in [
                ("succeeded", "login_succeeded"),
                ("failed", "login_failed"),
                ("locked", "login_locked"),
                ("refused", "login_refused"),
            ] {
                out.sample("rampart_logins_total", &[("result", result)], count(kind));
            }
            out.family(
                "rampart_access_denied_total",
                "counter",
                "Sessions the policy refused",
            );
            out.sample("rampart_access_denied_total", &[], count("access_denied"));
            out.family(
                "rampart_target_connection_failures_total",
                "counter",
                "Sessions whose target could not be reached or refused the vaulted credential",
            );
            out.sample(
                "rampart_target_connection_failures_total",
                &[],
                count("target_connection_failed"),
            );
            out.family(
                "rampart_relayed_bytes_total",
                "counter",
                "Bytes relayed by sessions that have ended, by direction",
            );
            out.sample(
                "rampart_relayed_bytes_total",
                &[("direction", "from_client")],
                tally.bytes_from_client,
            );
            out.sample(
                "rampart_relayed_bytes_total",
                &[("direction", "to_client")],
                tally.bytes_to_client,
            );
            out.family(
                "rampart_audit_events_total",
                "counter",
                "Audit events by kind",
            );
            for (kind, n) in &tally.by_kind {
                out.sample("rampart_audit_events_total", &[("kind", kind)], *n);
            }
        }

        out.family(
            "rampart_audit_head_seq",
            "gauge",
            "Sequence number of the newest audit event",
        );
        out.sample("rampart_audit_head_seq", &[], nonnegative(head));
        out.family(
            "rampart_audit_sink_lag_events",
            "gauge",
            "Audit events not yet delivered to each SIEM sink",
        );
        let sinks = store.sink_statuses().await?;
        for sink in &sinks {
            out.sample(
                "rampart_audit_sink_lag_events",
                &[("sink", &sink.sink)],
                nonnegative(head - sink.delivered_seq),
            );
        }
        out.family(
            "rampart_audit_sink_failures_total",
            "counter",
            "Failed delivery attempts to each SIEM sink (each retried)",
        );
        for sink in &sinks {
            out.sample(
                "rampart_audit_sink_failures_total",
                &[("sink", &sink.sink)],
                sink.failed,
            );
        }
        if let Some(seal) = store.last_audit_seal().await? {
            let at = rampart_core::time_arg::parse_rfc3339("time", &seal.sealed_at)
                .map(|at| at.unix_timestamp())
                .unwrap_or(0);
            out.family(
                "rampart_audit_last_signed_timestamp_seconds",
                "gauge",
                "When the audit chain head was last signed (a running server signs every \
                 audit.seal_interval)",
            );
            out.sample_i64("rampart_audit_last_signed_timestamp_seconds", &[], at);
            out.family(
                "rampart_audit_unsigned_events",
                "gauge",
                "Audit events after the newest signed head",
            );
            out.sample(
                "rampart_audit_unsigned_events",
                &[],
                nonnegative(head - seal.seq),
            );
        }

        let recorders = rampart_audit::live::recorder_stats();
        out.family(
            "rampart_recorders_open",
            "gauge",
            "Recordings being written by this process",
        );
        out.sample("rampart_recorders_open", &[], recorders.open);
        out.family(
            "rampart_recorder_wait_seconds",
            "summary",
            "Time the relay waited for the recorder to write what it handed over (recorder lag)",
        );
        out.sample_f64(
            "rampart_recorder_wait_seconds_sum",
            &[],
            Duration::from_micros(recorders.handoff_wait_micros).as_secs_f64(),
        );
        out.sample(
            "rampart_recorder_wait_seconds_count",
            &[],
            recorders.handoffs,
        );
        out.family(
            "rampart_recorder_jobs_total",
            "counter",
            "Write jobs the recording writers took",
        );
        out.sample("rampart_recorder_jobs_total", &[], recorders.write_jobs);
        out.family(
            "rampart_recorder_seconds_total",
            "counter",
            "Where the recording writers' jobs spent their time: waiting in a writer's queue, \
             being written (write(2)), hashed after the answer, and the answer's way back to the relay",
        );
        for (stage, micros) in [
            ("queued", recorders.queued_micros),
            ("write", recorders.write_micros),
            ("hash", recorders.hash_micros),
            ("answer", recorders.answer_micros),
        ] {
            out.sample_f64(
                "rampart_recorder_seconds_total",
                &[("stage", stage)],
                Duration::from_micros(micros).as_secs_f64(),
            );
        }

        out.family(
            "rampart_http_responses_total",
            "counter",
            "HTTP responses of this process by status class",
        );
        for (index, counter) in self.http_responses.iter().enumerate() {
            let class = format!("{}xx", index + 1);
            out.sample(
                "rampart_http_responses_total",
                &[("code", &class)],
                counter.load(Ordering::Relaxed),
            );
        }

        if let Some(facts) = self
            .certificate
            .as_deref()
            .and_then(cert_facts::leaf_of_pem_file)
        {
            out.family(
                "rampart_tls_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the HTTPS certificate expires (notAfter)",
            );
            out.sample_i64(
                "rampart_tls_certificate_expiry_timestamp_seconds",
                &[],
                facts.not_after_unix,
            );
            out.family(
                "rampart_tls_certificate_self_signed",
                "gauge",
                "1 if the HTTPS certificate is self-signed (browsers warn; use your CA's in production)",
            );
            out.sample(
                "rampart_tls_certificate_self_signed",
                &[],
                u64::from(facts.self_signed),
            );
        }
        Ok(out.text)
    }

    /// Reads the audit events after the tally's position into it; returns the log's head.
    async fn catch_up(&self, store: &Store) -> Result<i64, StoreError> {
        let mut tally = self.tally.lock().await;
        let mut read = 0;
        while read < MAX_EVENTS_PER_SCRAPE {
            let facts = store.audit_facts_after(tally.seq, BATCH).await?;
            let count = facts.len();
            for fact in facts {
                tally.seq = fact.seq;
                *tally.by_kind.entry(fact.kind).or_insert(0) += 1;
                if let Some((from, to)) = fact.bytes {
                    tally.bytes_from_client = tally.bytes_from_client.saturating_add(from);
                    tally.bytes_to_client = tally.bytes_to_client.saturating_add(to);
                }
            }
            read += count;
            if count < BATCH as usize {
                break;
            }
        }
        let head = store.audit_head().await?.map_or(0, |(seq, _)| seq);
        Ok(head.max(tally.seq))
    }
}

fn nonnegative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The text being built.
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.line(name, labels, &value.to_string());
    }

    fn sample_i64(&mut self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.line(name, labels, &value.to_string());
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.line(name, labels, &format!("{value:.6}"));
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics` on the HTTPS listener (the route table gives it auditor access).
pub(crate) async fn serve(State(state): State<WebState>) -> Response {
    respond(&state.metrics, &state.store).await
}

async fn respond(metrics: &Metrics, store: &Store) -> Response {
    match metrics.render(store).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot gather metrics");
            crate::error::ApiError::internal().into_response()
        }
    }
}

/// The separate metrics listener (`metrics.listen`): plain HTTP, `GET /metrics` only, no
/// authentication, a few connections at once, each request within the header and request
/// timeouts of the main listener. Runs until `shutdown`.
pub async fn run_listener(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(LISTENER_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many metrics connections: closing a new one");
            continue;
        };
        let store = store.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let store = store.clone();
                let metrics = metrics.clone();
                async move {
                    let response = if request.method() == hyper::Method::GET
                        && request.uri().path() == "/metrics"
                    {
                        tokio::time::timeout(crate::REQUEST_TIMEOUT, respond(&metrics, &store))
                            .await
                            .unwrap_or_else(|_| StatusCode::REQUEST_TIMEOUT.into_response())
                    } else {
                        StatusCode::NOT_FOUND.into_response()
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(crate::HEADER_TIMEOUT)
                .max_buf_size(16 * 1024);
            let io = TokioIo::new(stream);
            if let Err(err) = builder.serve_connection(io, service).await {
                tracing::debug!(%peer, error = %err, "metrics connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("sink", "a\"b\\c\nd")], 3);
        assert_eq!(out.text, "m{sink=\"a\\\"b\\\\c\\nd\"} 3\n");
    }

    #[test]
    fn responses_are_counted_by_class() {
        let metrics = Metrics::default();
        metrics.count_response(StatusCode::OK);
        metrics.count_response(StatusCode::NOT_FOUND);
        metrics.count_response(StatusCode::NOT_FOUND);
        let counts: Vec<u64> = metrics
            .http_responses
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [0, 1, 0, 2, 0]);
    }
}
