//! Forwarding audit events to a SIEM: syslog (RFC 5424 over UDP, or over TCP with octet-counting
//! framing per RFC 6587) and a webhook (one JSON POST per event).
//!
//! Delivery reads from the audit log, which is the queue: the caller hands over a bounded batch
//! and moves its progress only past what the sink acknowledged (a webhook's 2xx, a TCP write, a
//! UDP send), retrying with backoff for as long as the sink is down; a sink that is down never
//! blocks sessions and never loses the local record. Every event carries its sequence number,
//! so a receiver drops the duplicates that at-least-once delivery implies.

use bytes::Bytes;
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Syslog over UDP: keep each datagram well under common limits.
const MAX_DATAGRAM: usize = 8 * 1024;

/// One event, as it is sent: the stored JSON record and the fields syslog needs.
#[derive(Debug, Clone)]
pub struct SinkEvent {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    /// The whole record (seq, at, actor, kind, event, hashes) as JSON.
    pub json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum Sink {
    Syslog {
        transport: SyslogTransport,
        address: SocketAddr,
        hostname: String,
    },
    Webhook {
        address: SocketAddr,
        host: String,
        path: String,
    },
}

impl Sink {
    /// A stable name, under which its progress is kept.
    pub fn name(&self) -> String {
        match self {
            Sink::Syslog {
                transport: SyslogTransport::Udp,
                address,
                ..
            } => format!("syslog+udp://{address}"),
            Sink::Syslog {
                transport: SyslogTransport::Tcp,
                address,
                ..
            } => format!("syslog+tcp://{address}"),
            Sink::Webhook { host, path, .. } => format!("webhook http://{host}{path}"),
        }
    }

    /// Delivers a batch in order. On failure, says how many of the first events were
    /// acknowledged before it.
    pub async fn deliver(&self, events: &[SinkEvent]) -> Result<(), DeliveryError> {
        let mut delivered = 0;
        self.deliver_counting(events, &mut delivered)
            .await
            .map_err(|message| DeliveryError { delivered, message })
    }

    async fn deliver_counting(
        &self,
        events: &[SinkEvent],
        delivered: &mut usize,
    ) -> Result<(), String> {
        match self {
            Sink::Syslog {
                transport: SyslogTransport::Udp,
                address,
                hostname,
            } => {
                let bind = if address.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(bind).await.map_err(|err| err.to_string())?;
                for event in events {
                    let mut line = rfc5424(event, hostname).into_bytes();
                    line.truncate(MAX_DATAGRAM);
                    socket
                        .send_to(&line, address)
                        .await
                        .map_err(|err| err.to_string())?;
                    *delivered += 1;
                }
                Ok(())
            }
            Sink::Syslog {
                transport: SyslogTransport::Tcp,
                address,
                hostname,
            } => {
                let mut stream = connect(*address).await?;
                for event in events {
                    let line = rfc5424(event, hostname);
                    let framed = format!("{} {line}", line.len());
                    stream
                        .write_all(framed.as_bytes())
                        .await
                        .map_err(|err| err.to_string())?;
                }
                stream.flush().await.map_err(|err| err.to_string())?;
                *delivered = events.len();
                Ok(())
            }
            Sink::Webhook {
                address,
                host,
                path,
            } => {
                for event in events {
                    post(*address, host, path, event.seq, event.json.clone()).await?;
                    *delivered += 1;
                }
                Ok(())
            }
        }
    }
}

/// A batch that was not delivered whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// How many of the batch's first events the sink acknowledged.
    pub delivered: usize,
    pub message: String,
}

async fn connect(address: SocketAddr) -> Result<TcpStream, String> {
    match tokio::time::timeout(TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(format!("cannot connect to {address}: {err}")),
        Err(_) => Err(format!("cannot connect to {address}: timed out")),
    }
}

/// One JSON POST, with the event's sequence number also in `X-Rampart-Seq`; any answer but 2xx
/// is a failure.
async fn post(
    address: SocketAddr,
    host: &str,
    path: &str,
    seq: i64,
    body: String,
) -> Result<(), String> {
    let stream = connect(address).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
        .await
        .map_err(|err| err.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "rampart")
        .header("x-rampart-seq", seq.to_string())
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| err.to_string())?;
    let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| "the webhook did not answer in time".to_owned())?
        .map_err(|err| err.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", response.status()))
    }
}

/// Facility 13 (log audit); an alert's own severity (`critical` 2, `warning` 4), notice (5) for
/// denials and failures, informational (6) otherwise.
fn priority(event: &SinkEvent) -> u8 {
    let kind = event.kind.as_str();
    let severity = if kind == "alert_raised" {
        let record: serde_json::Value = serde_json::from_str(&event.json).unwrap_or_default();
        match record.pointer("/event/severity").and_then(|v| v.as_str()) {
            Some("critical") => 2,
            Some("warning") => 4,
            _ => 5,
        }
    } else if kind.contains("denied") || kind.contains("failed") || kind.contains("rejected") {
        5
    } else {
        6
    };
    13 * 8 + severity
}

/// Escapes a structured-data parameter value (RFC 5424 section 6.3.3).
fn sd_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// Formats one event as an RFC 5424 message: the event kind as MSGID, its sequence number and
/// hash chain position as structured data, the JSON record as the message.
pub fn rfc5424(event: &SinkEvent, hostname: &str) -> String {
    let msgid: String = event
        .kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    format!(
        "<{}>1 {} {} rampart {} {} [rampart@32473 seq=\"{}\"] {}",
        priority(event),
        event.at,
        if host.is_empty() {
            "-".to_owned()
        } else {
            host
        },
        std::process::id(),
        if msgid.is_empty() {
            "-".to_owned()
        } else {
            msgid
        },
        sd_escape(&event.seq.to_string()),
        event.json
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_lines() {
        let event = SinkEvent {
            seq: 7,
            at: "2026-11-23T10:00:00.5Z".into(),
            kind: "access_denied".into(),
            json: r#"{"seq":7}"#.into(),
        };
        let line = rfc5424(&event, "bastion one");
        assert!(
            line.starts_with("<109>1 2026-11-23T10:00:00.5Z bastionone rampart "),
            "{line}"
        );
        assert!(
            line.ends_with(r#" access_denied [rampart@32473 seq="7"] {"seq":7}"#),
            "{line}"
        );
        assert_eq!(sd_escape(r#"a"b]c\"#), r#"a\"b\]c\\"#);
        let fine = SinkEvent {
            kind: "user_added".into(),
            ..event
        };
        assert!(rfc5424(&fine, "h").starts_with("<110>1 "));
        // Alerts carry their own severity: critical (2), warning (4).
        for (severity, pri) in [("critical", "<106>"), ("warning", "<108>")] {
            let alert = SinkEvent {
                seq: 8,
                at: "2026-11-23T10:00:01Z".into(),
                kind: "alert_raised".into(),
                json: format!(
                    r#"{{"seq":8,"event":{{"event":"alert_raised","severity":"{severity}"}}}}"#
                ),
            };
            assert!(
                rfc5424(&alert, "h").starts_with(&format!("{pri}1 ")),
                "{severity}"
            );
        }
    }
}
