//! Forwards the audit log to the configured SIEM sinks, one task per sink.
//!
//! The audit log is the queue: each task reads the events after its last delivered one, in
//! batches of at most [`BATCH`], retries a failing batch a few times, then counts it as
//! undelivered and goes on. Progress is kept in the store, so a restart neither repeats nor skips.

use crate::config::{AuditConfig, SyslogTransport};
use rampart_audit::sinks::{self, Sink, SinkEvent};
use rampart_store::{SinkStatus, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: u32 = 100;
const ATTEMPTS: u32 = 3;

/// The sinks the configuration names.
pub fn sinks(config: &AuditConfig) -> Vec<Sink> {
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut sinks = Vec::new();
    if let Some(syslog) = &config.syslog {
        let transport = match syslog.transport {
            SyslogTransport::Udp => sinks::SyslogTransport::Udp,
            SyslogTransport::Tcp => sinks::SyslogTransport::Tcp,
        };
        sinks.push(Sink::Syslog {
            transport,
            address: syslog.address,
            hostname,
        });
    }
    if let Some(webhook) = &config.webhook {
        sinks.push(Sink::Webhook {
            address: webhook.address,
            host: webhook.host.clone(),
            path: webhook.path.clone(),
        });
    }
    sinks
}

/// Runs one sink from its saved progress `status` until `stop` turns true.
pub async fn run(
    store: Arc<Store>,
    sink: Sink,
    mut status: SinkStatus,
    mut stop: watch::Receiver<bool>,
) {
    let name = sink.name();
    tracing::info!(sink = %name, from = status.delivered_seq, "forwarding audit events");
    loop {
        let batch = match store.audit_events_after(status.delivered_seq, BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(sink = %name, error = %err, "cannot read the audit log");
                Vec::new()
            }
        };
        let Some(last) = batch.last().map(|e| e.seq) else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                _ = stop.changed() => return,
            }
        };
        let events: Vec<SinkEvent> = batch
            .iter()
            .map(|record| SinkEvent {
                seq: record.seq,
                at: record.at.clone(),
                kind: record.kind.clone(),
                json: serde_json::to_string(record).unwrap_or_default(),
            })
            .collect();
        let mut outcome = Err(String::new());
        for attempt in 0..ATTEMPTS {
            outcome = sink.deliver(&events).await;
            if outcome.is_ok() {
                break;
            }
            let backoff = Duration::from_millis(500 << attempt);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
        }
        status.delivered_seq = last;
        match outcome {
            Ok(()) => status.last_error = None,
            Err(err) => {
                status.failed += events.len() as u64;
                tracing::warn!(sink = %name, error = %err, undelivered = status.failed, "could not deliver audit events");
                status.last_error = Some(err);
            }
        }
        if let Err(err) = store.save_sink_status(&status).await {
            tracing::error!(sink = %name, error = %err, "cannot save the sink's progress");
        }
    }
}
