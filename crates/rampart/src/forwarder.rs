//! Forwards the audit log to the configured SIEM sinks, one task per sink: at least once, in
//! order, with no gap.
//!
//! The audit log is the queue: each task reads the events after the last one its sink
//! acknowledged, in batches of at most [`BATCH`], and moves its progress only past what the sink
//! acknowledged. A failure is retried with exponential backoff (up to [`MAX_BACKOFF`]) for as
//! long as the outage lasts; each failed attempt is counted. Progress is kept in the store, so
//! a restart skips nothing (and may repeat what was sent but not acknowledged: receivers drop
//! duplicates by `seq`). Each newly signed chain head is sent too (kind `audit_head_signed`),
//! after the events it covers, so a copy of it lives outside the node.

use crate::config::{AuditConfig, SyslogTransport};
use crate::seals::{ANCHOR_KIND, Anchor};
use rampart_audit::sinks::{self, Sink, SinkEvent};
use rampart_store::{AuditRecord, AuditSeal, SinkStatus, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: u32 = 100;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts while a sink is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a task that has caught up looks for new events.
const POLL: Duration = Duration::from_millis(500);

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

/// An audit event as a sink receives it. A record that cannot be serialized is a defect: it is
/// logged, and the sink still gets the event's identity (seq, kind, hashes) and the error, never
/// an empty record.
fn sink_event(record: &AuditRecord) -> SinkEvent {
    let json = serde_json::to_string(record).unwrap_or_else(|err| {
        tracing::error!(seq = record.seq, error = %err, "defect: cannot serialize an audit event for the SIEM; sending its identity and the error");
        serde_json::json!({
            "seq": record.seq,
            "at": record.at,
            "kind": record.kind,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
            "serialization_error": err.to_string(),
        })
        .to_string()
    });
    SinkEvent {
        seq: record.seq,
        at: record.at.clone(),
        kind: record.kind.clone(),
        json,
    }
}

/// A signed chain head as a sink receives it.
fn head_event(seal: &AuditSeal) -> SinkEvent {
    let anchor = Anchor::of(seal);
    let json = serde_json::to_string(&anchor).unwrap_or_else(|err| {
        tracing::error!(seq = seal.seq, error = %err, "defect: cannot serialize a signed head for the SIEM");
        serde_json::json!({ "kind": ANCHOR_KIND, "seq": seal.seq, "hash": seal.hash, "serialization_error": err.to_string() }).to_string()
    });
    SinkEvent {
        seq: seal.seq,
        at: seal.sealed_at.clone(),
        kind: ANCHOR_KIND.to_owned(),
        json,
    }
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
    let mut backoff = FIRST_BACKOFF;
    // The newest signed head this task delivered (sent again after a restart: at least once).
    let mut head_sent = 0i64;
    loop {
        // The newest head whose events the sink has, if not sent yet; then the next events.
        let head = match store.audit_seal_at_or_before(status.delivered_seq).await {
            Ok(head) => head.filter(|seal| seal.seq > head_sent),
            Err(err) => {
                tracing::error!(sink = %name, error = %err, "cannot read the signed heads");
                None
            }
        };
        let batch = match store.audit_events_after(status.delivered_seq, BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(sink = %name, error = %err, "cannot read the audit log");
                if wait(&mut stop, POLL).await {
                    return;
                }
                continue;
            }
        };
        if batch.is_empty() && head.is_none() {
            if wait(&mut stop, POLL).await {
                return;
            }
            continue;
        }
        let mut outbox: Vec<SinkEvent> = head.iter().map(head_event).collect();
        let events_from = outbox.len();
        outbox.extend(batch.iter().map(sink_event));
        let outcome = sink.deliver(&outbox).await;
        let acknowledged = match &outcome {
            Ok(()) => outbox.len(),
            Err(failure) => failure.delivered,
        };
        if let Some(seal) = &head
            && acknowledged > 0
        {
            head_sent = seal.seq;
        }
        // Progress moves past acknowledged events only.
        if let Some(last) = outbox
            .get(events_from..acknowledged.max(events_from))
            .and_then(<[SinkEvent]>::last)
        {
            status.delivered_seq = last.seq;
        }
        let failed = match outcome {
            Ok(()) => {
                status.last_error = None;
                backoff = FIRST_BACKOFF;
                None
            }
            Err(failure) => {
                status.failed += 1;
                tracing::warn!(sink = %name, error = %failure.message, delivered_up_to = status.delivered_seq, retry_in = ?backoff, "could not deliver audit events; retrying");
                status.last_error = Some(failure.message);
                Some(backoff)
            }
        };
        if let Err(err) = store.save_sink_status(&status).await {
            tracing::error!(sink = %name, error = %err, "cannot save the sink's progress");
        }
        if let Some(delay) = failed {
            if wait(&mut stop, delay).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Sleeps for `delay`; true if `stop` changed meanwhile.
async fn wait(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop.changed() => true,
    }
}
