//! `rampart audit verify` and `rampart audit anchor`: the evidence checked against the hash
//! chain, never against the tables that merely cache it.
//!
//! - The chain: every event's hash recomputed from its stored text.
//! - The signed heads: each one the audit key's and matching the chain; the log covered up to a
//!   bounded lag (`seals::allowed_lag` of the seal interval the chain's `server_started` holds),
//!   and a running server's newest signature no older than that lag.
//! - External anchors (`--anchor FILE|URL`): signed heads kept outside the node; an anchor's
//!   event must exist with the same hash, so a log shortened below it is reported.
//! - Recordings: walking the chain, every session `session_started` says was recorded must have
//!   its recording, verifying, with exactly the manifest hash its `session_ended` event holds.
//!   The `sessions` table is not read.

use super::recordings::{audit_public_key, session_id};
use crate::output::print_json;
use crate::seals::{self, ANCHOR_KIND, Anchor};
use anyhow::{Context, bail};
use rampart_audit::{ChainHead, HeadSignature, PublicKey, has_recording, verify_recording};
use rampart_core::audit::{AuditEvent, RecordingAnchor};
use rampart_core::time_arg::parse_rfc3339;
use rampart_store::{AuditRecord, AuditSeal, Store};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;
use time::OffsetDateTime;

/// The largest anchor file or answer read.
const MAX_ANCHOR_BYTES: u64 = 16 * 1024 * 1024;

pub struct Options {
    pub only: Option<String>,
    pub anchors: Vec<String>,
    /// The node's configured interval; the chain's own `server_started` wins when it has one.
    pub seal_interval: Duration,
    /// With `recording.store = "s3"`: the bucket, where ended sessions' recordings are read
    /// from (the local copy is only the node's write-ahead copy).
    pub bucket: Option<rampart_s3::S3Settings>,
}

#[derive(Debug, Serialize)]
pub(crate) struct VerifyLine {
    pub(crate) item: String,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

impl VerifyLine {
    fn ok(item: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            item: item.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(item: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            item: item.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// `rampart audit anchor`: the newest signed head as one JSON line.
pub async fn anchor(store: &Store, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(seal) = store.last_audit_seal().await? else {
        bail!(
            "the audit log has no signed head yet: the server signs it every audit.seal_interval"
        );
    };
    let line = serde_json::to_string(&Anchor::of(&seal))? + "\n";
    match out {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            file.write_all(line.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "appended the head signed at event {} to {}",
                seal.seq,
                path.display()
            );
        }
        None => std::io::stdout().lock().write_all(line.as_bytes())?,
    }
    Ok(())
}

/// Checks the chain, its signed heads, external anchors and the recordings; prints one line per
/// item; fails if anything fails.
pub async fn verify(store: &Store, json: bool, options: &Options) -> anyhow::Result<()> {
    let lines = collect(store, options).await?;
    let failures = lines.iter().filter(|l| !l.ok).count();
    if json {
        print_json(&lines)?;
    } else {
        for line in &lines {
            println!(
                "{} {}: {}",
                if line.ok { "ok  " } else { "FAIL" },
                line.item,
                line.detail
            );
        }
    }
    if failures > 0 {
        bail!("{failures} item(s) failed verification");
    }
    if !json {
        println!("everything verifies");
    }
    Ok(())
}

/// Every check's line (`rampart doctor` summarises them).
pub(crate) async fn collect(store: &Store, options: &Options) -> anyhow::Result<Vec<VerifyLine>> {
    let key = audit_public_key(store)?;
    let now = OffsetDateTime::now_utc();
    let mut lines = Vec::new();
    match store.verify_audit_chain().await? {
        Ok(count) => lines.push(VerifyLine::ok("audit chain", format!("{count} events"))),
        Err(problem) => lines.push(VerifyLine::fail("audit chain", problem.to_string())),
    }
    let records = store.all_audit_events().await?;
    let chain = ChainFacts::walk(&records);
    let lag = seals::allowed_lag(chain.seal_interval.unwrap_or(options.seal_interval));
    let seal_rows = store.audit_seals().await?;
    lines.extend(verify_seals(&key, &seal_rows, &records, lag, now));
    for source in &options.anchors {
        lines.push(verify_anchor_source(source, &key, &records).await);
    }
    let only = match options.only.as_deref() {
        Some(text) => Some(session_id(store, text).await?),
        None => None,
    };
    let bucket = match &options.bucket {
        Some(settings) => Some(rampart_s3::Client::new(settings.clone())?),
        None => None,
    };
    lines.extend(verify_recordings(
        store,
        &key,
        &chain,
        only,
        bucket.as_ref(),
    ));
    Ok(lines)
}

/// One session as the chain tells it.
#[derive(Debug, Default)]
struct ChainSession {
    started_seq: i64,
    recorded: bool,
    kind: String,
    ended: Option<Ended>,
    failure: Option<String>,
    /// The `retention_applied` event that removed it.
    retention: Option<Retention>,
}

/// A `retention_applied` event naming a session.
#[derive(Debug)]
struct Retention {
    seq: i64,
    /// The cutoff: sessions that ended before it.
    before: String,
    /// The recordings the event names (empty in events older than that field).
    recordings: Vec<RecordingAnchor>,
}

#[derive(Debug)]
struct Ended {
    seq: i64,
    at: String,
    recording: Option<RecordingAnchor>,
}

/// What the chain says about sessions and the seal interval.
#[derive(Debug, Default)]
struct ChainFacts {
    /// By session id; ordered by id, which is time-ordered.
    sessions: BTreeMap<String, ChainSession>,
    seal_interval: Option<Duration>,
}

impl ChainFacts {
    fn walk(records: &[AuditRecord]) -> Self {
        let mut facts = Self::default();
        for record in records {
            // An event this version does not know is not about recordings.
            let Ok(event) = serde_json::from_value::<AuditEvent>(record.event.clone()) else {
                continue;
            };
            match event {
                AuditEvent::SessionStarted {
                    session,
                    kind,
                    recorded,
                    ..
                } => {
                    facts.sessions.insert(
                        session,
                        ChainSession {
                            started_seq: record.seq,
                            recorded,
                            kind,
                            ..ChainSession::default()
                        },
                    );
                }
                AuditEvent::SessionEnded {
                    session, recording, ..
                } => {
                    if let Some(s) = facts.sessions.get_mut(&session) {
                        s.ended = Some(Ended {
                            seq: record.seq,
                            at: record.at.clone(),
                            recording,
                        });
                    }
                }
                AuditEvent::RecordingFailed { session, reason } => {
                    if let Some(s) = facts.sessions.get_mut(&session) {
                        s.failure = Some(reason);
                    }
                }
                AuditEvent::RetentionApplied {
                    before,
                    sessions,
                    recordings,
                    ..
                } => {
                    for session in sessions {
                        if let Some(s) = facts.sessions.get_mut(&session) {
                            s.retention = Some(Retention {
                                seq: record.seq,
                                before: before.clone(),
                                recordings: recordings.clone(),
                            });
                        }
                    }
                }
                AuditEvent::ServerStarted { settings, .. } => {
                    facts.seal_interval = settings
                        .get(seals::INTERVAL_SETTING)
                        .and_then(serde_json::Value::as_u64)
                        .map(Duration::from_secs);
                }
                _ => {}
            }
        }
        facts
    }
}

/// How long ago `at` was. `None` (never "young") when it is unreadable or dated more than
/// `skew` in the future: an unsigned event dated ahead would otherwise stay "younger than the
/// lag" for ever, and a log with its signed heads removed would pass.
fn age(now: OffsetDateTime, at: &str, skew: Duration) -> Option<Duration> {
    let at = parse_rfc3339("time", at).ok()?;
    match Duration::try_from(now - at) {
        Ok(ago) => Some(ago),
        Err(_) => Duration::try_from(at - now)
            .is_ok_and(|ahead| ahead <= skew)
            .then_some(Duration::ZERO),
    }
}

/// The signed heads: each valid and matching the chain, and together covering the log up to
/// `lag`.
fn verify_seals(
    key: &PublicKey,
    seals: &[AuditSeal],
    records: &[AuditRecord],
    lag: Duration,
    now: OffsetDateTime,
) -> Vec<VerifyLine> {
    let item = "audit chain signatures";
    let hashes: HashMap<i64, &str> = records.iter().map(|r| (r.seq, r.hash.as_str())).collect();
    let head = records.last().map_or(0, |r| r.seq);
    let mut lines = Vec::new();
    let mut problem = None;
    for seal in seals {
        let signed = ChainHead {
            seq: seal.seq,
            hash: &seal.hash,
            signed_at: &seal.sealed_at,
            state: &seal.state,
        };
        if rampart_audit::check_chain_head(key, &signed, &seal.signature) == HeadSignature::Invalid
        {
            problem = Some(format!(
                "the signature over event {} is not valid (forged or altered)",
                seal.seq
            ));
            break;
        }
        match hashes.get(&seal.seq) {
            Some(hash) if *hash == seal.hash => {}
            Some(_) => {
                problem = Some(format!(
                    "event {} no longer matches its signed hash: the chain was rewritten",
                    seal.seq
                ));
                break;
            }
            None if seal.seq > head => {
                problem = Some(format!(
                    "the chain was signed up to event {} but ends at {head}: events were deleted",
                    seal.seq
                ));
                break;
            }
            None => {
                problem = Some(format!(
                    "signed event {} is missing: events were deleted",
                    seal.seq
                ));
                break;
            }
        }
    }
    let newest = seals.last();
    lines.push(match (problem, newest) {
        (Some(problem), _) => VerifyLine::fail(item, problem),
        (None, Some(newest)) => VerifyLine::ok(
            item,
            format!(
                "{} signature(s), signed up to event {}",
                seals.len(),
                newest.seq
            ),
        ),
        (None, None) => VerifyLine::ok(item, "no signed head"),
    });
    lines.push(verify_coverage(seals, records, lag, now));
    lines
}

/// Whether the signed heads cover the log up to the allowed lag.
fn verify_coverage(
    seals: &[AuditSeal],
    records: &[AuditRecord],
    lag: Duration,
    now: OffsetDateTime,
) -> VerifyLine {
    let item = "audit chain coverage";
    let lag_text = format!("{}s", lag.as_secs());
    let Some(last) = records.last() else {
        return VerifyLine::ok(item, "the log is empty");
    };
    let newest = seals.last();
    // A clean stop signs its `server_stopped` event at once, and that head stays: one missing
    // means signed heads were deleted, however recent.
    if let Some(stop) = records
        .iter()
        .filter(|r| r.kind == "server_stopped")
        .find(|r| !seals.iter().any(|seal| seal.seq == r.seq))
    {
        return VerifyLine::fail(
            item,
            format!(
                "the server stopped cleanly at event {} and signed the head there, but that \
                 signed head is gone: signed heads were deleted",
                stop.seq
            ),
        );
    }
    let signed_up_to = newest.map_or(0, |seal| seal.seq);
    let first_unsigned = records.iter().find(|r| r.seq > signed_up_to);
    if let Some(first) = first_unsigned {
        let Some(first_age) = age(now, &first.at, lag) else {
            return VerifyLine::fail(
                item,
                format!(
                    "event {} is not covered by a signed head and is dated {}, in the future                      (or unreadably): its time was edited and the chain recomputed, or the                      clock is wrong",
                    first.seq, first.at
                ),
            );
        };
        let old = first_age > lag;
        if old {
            let detail = match newest {
                None => format!(
                    "no signed head covers the log (events {}..{}), and its first event is older \
                     than {lag_text}: the signed heads were deleted, or nothing ever signed it",
                    first.seq, last.seq
                ),
                Some(seal) => format!(
                    "events {}..{} are not covered by a signed head (the newest covers event {}), \
                     and event {} is older than {lag_text}: the node stopped uncleanly and has \
                     not started again (its next start signs them and records it), or the signed \
                     heads covering them were deleted",
                    first.seq, last.seq, seal.seq, first.seq
                ),
            };
            return VerifyLine::fail(item, detail);
        }
    }
    let Some(seal) = newest else {
        return VerifyLine::ok(
            item,
            format!("not signed yet; every event is younger than {lag_text}"),
        );
    };
    if seal.state == seals::FINAL {
        return VerifyLine::ok(
            item,
            format!(
                "signed up to event {} by a process that stopped cleanly{}",
                seal.seq,
                if first_unsigned.is_some() {
                    format!("; later events are younger than {lag_text}")
                } else {
                    String::new()
                }
            ),
        );
    }
    let signed_ago = age(now, &seal.sealed_at, lag);
    if signed_ago.is_none_or(|a| a > lag) {
        return VerifyLine::fail(
            item,
            format!(
                "the newest signed head (event {}) was signed by a running server at {}, more \
                 than {lag_text} ago, and no final head follows: the node stopped uncleanly and \
                 has not started again, or the events after it were deleted with their signed \
                 heads",
                seal.seq, seal.sealed_at
            ),
        );
    }
    VerifyLine::ok(
        item,
        format!(
            "signed up to event {} by the running server {}s ago{}",
            seal.seq,
            signed_ago.map_or(0, |a| a.as_secs()),
            if first_unsigned.is_some() {
                format!("; later events are younger than {lag_text}")
            } else {
                String::new()
            }
        ),
    )
}

/// Reads anchors from a file or an http(s) URL.
async fn read_anchor_source(source: &str) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let url = source.to_owned();
        return tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let mut response = agent
                .get(&url)
                .call()
                .with_context(|| format!("cannot fetch {url}"))?;
            response
                .body_mut()
                .with_config()
                .limit(MAX_ANCHOR_BYTES)
                .read_to_string()
                .with_context(|| format!("cannot read the answer from {url}"))
        })
        .await?;
    }
    let path = std::path::Path::new(source);
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {source}"))?;
    if meta.len() > MAX_ANCHOR_BYTES {
        bail!("{source} is larger than {MAX_ANCHOR_BYTES} bytes");
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {source}"))
}

/// The log against the signed heads in one external source.
async fn verify_anchor_source(
    source: &str,
    key: &PublicKey,
    records: &[AuditRecord],
) -> VerifyLine {
    let item = format!("external anchor {source}");
    let text = match read_anchor_source(source).await {
        Ok(text) => text,
        Err(err) => return VerifyLine::fail(item, format!("{err:#}")),
    };
    // JSON lines; lines that are not signed heads (other SIEM records) are skipped.
    let anchors: Vec<Anchor> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Anchor>(line.trim()).ok())
        .filter(|a| a.kind.is_empty() || a.kind == ANCHOR_KIND)
        .collect();
    let Some(newest) = anchors.iter().max_by_key(|a| a.seq) else {
        return VerifyLine::fail(item, "holds no signed head");
    };
    let hashes: HashMap<i64, &str> = records.iter().map(|r| (r.seq, r.hash.as_str())).collect();
    let head = records.last().map_or(0, |r| r.seq);
    for anchor in &anchors {
        if rampart_audit::check_chain_head(key, &anchor.head(), &anchor.signature)
            != HeadSignature::Valid
        {
            return VerifyLine::fail(
                item,
                format!(
                    "the head for event {} is not signed by this node's audit key",
                    anchor.seq
                ),
            );
        }
        match hashes.get(&anchor.seq) {
            Some(hash) if *hash == anchor.hash => {}
            Some(_) => {
                return VerifyLine::fail(
                    item,
                    format!(
                        "event {} differs from the head signed at {}: the log was rewritten",
                        anchor.seq, anchor.signed_at
                    ),
                );
            }
            None if anchor.seq > head => {
                return VerifyLine::fail(
                    item,
                    format!(
                        "the log is shorter than an external anchor: it ends at event {head}, \
                         but the head signed at {} holds event {}: at least {} event(s) were \
                         removed from the end",
                        anchor.signed_at,
                        anchor.seq,
                        anchor.seq - head
                    ),
                );
            }
            None => {
                return VerifyLine::fail(
                    item,
                    format!(
                        "event {} of the head signed at {} is missing: events were deleted",
                        anchor.seq, anchor.signed_at
                    ),
                );
            }
        }
    }
    VerifyLine::ok(
        item,
        format!(
            "{} signed head(s), up to event {} (signed at {}), match the log",
            anchors.len(),
            newest.seq,
            newest.signed_at
        ),
    )
}

/// Every recording the chain says was made.
fn verify_recordings(
    store: &Store,
    key: &PublicKey,
    chain: &ChainFacts,
    only: Option<uuid::Uuid>,
    bucket: Option<&rampart_s3::Client>,
) -> Vec<VerifyLine> {
    let dir = store.data_dir().recordings_dir();
    let mut lines = Vec::new();
    if let Some(only) = only
        && !chain.sessions.contains_key(&only.to_string())
    {
        lines.push(VerifyLine::fail(
            format!("recording {only}"),
            "the audit chain has no session with this id",
        ));
    }
    for (id, session) in &chain.sessions {
        let Ok(uuid) = uuid::Uuid::parse_str(id) else {
            continue;
        };
        if only.is_some_and(|only| only != uuid) {
            continue;
        }
        let anchored = session.ended.as_ref().and_then(|e| e.recording.as_ref());
        let expected = (session.recorded
            && rampart_core::SessionKind::parse(&session.kind)
                .is_ok_and(rampart_core::SessionKind::is_recorded))
            || anchored.is_some();
        if !expected && !has_recording(&dir, uuid) {
            continue;
        }
        let item = format!("recording {id}");
        // An ended session's recording is read from the bucket when there is one; a live
        // one is still being copied, and one removed by retention is judged by the chain.
        let fetched = match bucket {
            Some(bucket) if session.ended.is_some() && session.retention.is_none() => {
                match fetch_from_bucket(bucket, uuid) {
                    Ok(fetched) => Some(fetched),
                    Err(detail) => {
                        lines.push(VerifyLine::fail(item, detail));
                        continue;
                    }
                }
            }
            _ => None,
        };
        let dir = fetched
            .as_ref()
            .map_or(dir.as_path(), |fetched| fetched.path());
        lines.push(match check_recording(dir, key, uuid, session, expected) {
            Ok(detail) => VerifyLine::ok(item, detail),
            Err(detail) => VerifyLine::fail(item, detail),
        });
    }
    lines
}

/// A recording read back from the bucket into a temporary directory.
fn fetch_from_bucket(
    bucket: &rampart_s3::Client,
    session: uuid::Uuid,
) -> Result<tempfile::TempDir, String> {
    let dir =
        tempfile::tempdir().map_err(|err| format!("cannot make a temporary directory: {err}"))?;
    match rampart_s3::fetch(bucket, session, dir.path()) {
        Ok(()) => Ok(dir),
        Err(rampart_s3::FetchError::Missing(_)) => Err(format!(
            "missing from the bucket {} (no object {})",
            bucket.settings().bucket,
            bucket.key(&rampart_s3::manifest_name(session))
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// One session's recording against what the chain holds.
fn check_recording(
    dir: &std::path::Path,
    key: &PublicKey,
    uuid: uuid::Uuid,
    session: &ChainSession,
    expected: bool,
) -> Result<String, String> {
    let started = session.started_seq;
    if let Some(Retention {
        seq,
        before,
        recordings,
    }) = &session.retention
    {
        let ended_at = session.ended.as_ref().map(|e| e.at.as_str());
        let cutoff = parse_rfc3339("time", before).ok();
        let ended = ended_at.and_then(|at| parse_rfc3339("time", at).ok());
        // The event names each recording it removed as the chain anchored it (events from
        // before that field name none).
        let anchored = session.ended.as_ref().and_then(|e| e.recording.as_ref());
        let named = recordings.iter().find(|r| r.id == uuid.to_string());
        if !recordings.is_empty()
            && let Some(anchor) = anchored
            && named.is_none_or(|named| named.manifest_sha256 != anchor.manifest_sha256)
        {
            return Err(format!(
                "removed by retention (event {seq}), but that event does not name the recording \
                 the chain anchored for it (manifest SHA-256 {}): the retention record was \
                 edited",
                anchor.manifest_sha256
            ));
        }
        return match (ended, cutoff) {
            (Some(ended), Some(cutoff)) if ended < cutoff => Ok(format!(
                "removed by retention (event {seq}, sessions that ended before {before}{})",
                named.map_or_else(String::new, |named| format!(
                    "; manifest SHA-256 {}",
                    named.manifest_sha256
                ))
            )),
            _ => Err(format!(
                "removed by retention (event {seq}, cutoff {before}), but the chain says the \
                 session ended at {}, after the cutoff: the session records were edited to \
                 make it look old",
                ended_at.unwrap_or("(never)")
            )),
        };
    }
    let Some(ended) = &session.ended else {
        // Live, or the node stopped during it and has not started again.
        return if has_recording(dir, uuid) {
            Ok(
                "live or unfinished: sealed when the session ends (or at the node's next start)"
                    .to_owned(),
            )
        } else {
            Err(format!(
                "missing, although the chain says the session (event {started}) is recorded \
                 and has not ended"
            ))
        };
    };
    let report = verify_recording(dir, uuid, key).map_err(|problem| problem.to_string())?;
    let Some(anchor) = &ended.recording else {
        let why = match &session.failure {
            Some(reason) => format!(" (the recording failed: {reason})"),
            None => String::new(),
        };
        if !expected {
            return Ok(format!(
                "{} chunks, {} bytes; the chain requires no recording for this session",
                report.chunks, report.length
            ));
        }
        return Err(format!(
            "the chain says the session was recorded (event {started}), but its end (event {}) \
             holds no recording hash{why}",
            ended.seq
        ));
    };
    let chain = rampart_core::audit::ChainRecording::Ended {
        event: ended.seq,
        recording: Some(anchor.clone()),
    };
    rampart_audit::check_anchor(&report, &chain).map_err(|problem| problem.to_string())?;
    Ok(format!(
        "{}, anchored at event {}",
        report.describe(),
        ended.seq
    ))
}
