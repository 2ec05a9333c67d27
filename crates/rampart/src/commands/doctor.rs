//! `rampart doctor`: checks the deployment (configuration, files, keys, evidence, disk, clock)
//! and prints a checklist with a fix for each finding. Exits non-zero when anything needs
//! attention, so it can gate a deployment script.
//!
//! The decisions are small pure functions over facts (`exposure`, `certificate`, `mode`, ...),
//! unit-tested below; gathering the facts is the rest.

use crate::config::{Config, HttpTls};
use crate::output::print_json;
use anyhow::bail;
use rampart_store::{MasterKeySource, Store};
use serde::Serialize;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

const DAY: u64 = 24 * 60 * 60;
/// A certificate expiring sooner than this is a warning.
const CERT_WARN: Duration = Duration::from_secs(30 * DAY);
/// A vault master key older than this should be rotated.
const KEY_AGE_WARN: Duration = Duration::from_secs(365 * DAY);
/// A sink further behind than this many events is lagging.
const SINK_LAG_WARN: i64 = 1000;
/// The clock may be this far behind the newest audit event before it counts as wrong.
const CLOCK_SLACK: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

pub async fn run(config: &Config, store: &Store, json: bool) -> anyhow::Result<()> {
    let mut findings = Vec::new();
    let now = SystemTime::now();
    let exposed = [
        ("ssh.listen", Some(config.ssh_listen)),
        ("http.listen", Some(config.http_listen)),
        ("metrics.listen", config.ops.metrics_listen),
    ];
    let has_allow_list = !config.auth.global.allow_from.is_empty();
    for (key, addr) in exposed {
        if let Some(addr) = addr {
            findings.push(exposure(key, addr, has_allow_list));
        }
    }
    let production = !config.http_listen.ip().is_loopback();
    findings.push(certificate_check(config, store, production, now));
    findings.extend(file_modes(config, store));
    findings.push(vault_key_age(config, store, now));
    findings.extend(vault_state(store).await);
    findings.extend(evidence(config, store).await);
    findings.push(sinks(store).await);
    findings.push(rotations(store).await);
    findings.push(disk_space(&store.data_dir().recordings_dir()));
    findings.push(clock(store, now).await);

    let problems = findings.iter().filter(|f| f.status != Status::Ok).count();
    if json {
        print_json(&findings)?;
    } else {
        println!("rampart doctor: {}", store.data_dir().root().display());
        for finding in &findings {
            let mark = match finding.status {
                Status::Ok => "[ok]  ",
                Status::Warn => "[WARN]",
                Status::Fail => "[FAIL]",
            };
            println!("{mark} {}: {}", finding.check, finding.detail);
            if let Some(fix) = &finding.fix {
                println!("       fix: {fix}");
            }
        }
    }
    if problems > 0 {
        bail!("{problems} finding(s) need attention");
    }
    if !json {
        println!("no findings");
    }
    Ok(())
}

/// A listener reachable from other hosts needs an allow-list (the metrics listener has no
/// authentication at all).
fn exposure(key: &'static str, addr: SocketAddr, has_allow_list: bool) -> Finding {
    if addr.ip().is_loopback() {
        return Finding::ok("listeners", format!("{key} {addr} is loopback only"));
    }
    if key == "metrics.listen" {
        return Finding::warn(
            "listeners",
            format!("{key} {addr} serves /metrics without authentication to other hosts"),
            "bind metrics.listen to loopback or a monitoring-only interface, and allow only the \
             monitoring system in the firewall (or remove it and scrape /metrics over HTTPS with \
             an auditor's API token)",
        );
    }
    if has_allow_list {
        return Finding::ok(
            "listeners",
            format!("{key} {addr} is reachable from other hosts, within auth.allow_from"),
        );
    }
    Finding::warn(
        "listeners",
        format!(
            "{key} {addr} is reachable from other hosts{} and auth.allow_from is empty: anyone \
             who reaches the port may try to log in",
            if addr.ip().is_unspecified() {
                " (every interface)"
            } else {
                ""
            }
        ),
        "set auth.allow_from to the networks your users come from (e.g. [\"10.0.0.0/8\"]) and \
         restrict the port in the firewall",
    )
}

/// The HTTPS certificate's expiry, and self-signed certificates on a listener other hosts use.
fn certificate(
    facts: Option<rampart_web::cert_facts::CertFacts>,
    path: &Path,
    production: bool,
    now_unix: i64,
) -> Finding {
    let Some(facts) = facts else {
        return Finding::fail(
            "tls certificate",
            format!("{} cannot be read as a PEM certificate", path.display()),
            "point http.tls_cert at the PEM certificate chain (leaf first)",
        );
    };
    let left = facts.not_after_unix - now_unix;
    let days = left.div_euclid(i64::try_from(DAY).unwrap_or(i64::MAX));
    if left <= 0 {
        return Finding::fail(
            "tls certificate",
            format!("{} expired {} day(s) ago", path.display(), -days),
            "install a renewed certificate (http.tls_cert, http.tls_key) and restart rampart",
        );
    }
    if u64::try_from(left).is_ok_and(|left| left < CERT_WARN.as_secs()) {
        return Finding::warn(
            "tls certificate",
            format!("{} expires in {days} day(s)", path.display()),
            "renew it before then (http.tls_cert, http.tls_key) and restart rampart",
        );
    }
    if facts.self_signed && production {
        return Finding::warn(
            "tls certificate",
            format!(
                "{} is self-signed while http.listen is reachable from other hosts: browsers \
                 warn, and users learn to click through warnings",
                path.display()
            ),
            "set http.tls_cert and http.tls_key to a certificate from your CA",
        );
    }
    Finding::ok(
        "tls certificate",
        format!(
            "{} expires in {days} day(s){}",
            path.display(),
            if facts.self_signed {
                " (self-signed, loopback only)"
            } else {
                ""
            }
        ),
    )
}

fn certificate_check(config: &Config, store: &Store, production: bool, now: SystemTime) -> Finding {
    let path = match &config.http.tls {
        HttpTls::Off => {
            return Finding::ok(
                "tls certificate",
                "http.tls is off (loopback, behind a TLS proxy): check the proxy's certificate",
            );
        }
        HttpTls::SelfSigned => store
            .data_dir()
            .keys_dir()
            .join(rampart_web::tls::GENERATED_CERT_FILE),
        HttpTls::Files { cert, .. } => cert.clone(),
    };
    if matches!(config.http.tls, HttpTls::SelfSigned) && !path.exists() {
        return Finding::ok(
            "tls certificate",
            "none yet: the first `rampart serve` generates a self-signed one",
        );
    }
    certificate(
        rampart_web::cert_facts::leaf_of_pem_file(&path),
        &path,
        production,
        unix(now),
    )
}

/// Secret files: only their owner may read them.
fn mode(path: &Path, wanted: u32) -> Option<Finding> {
    let meta = std::fs::metadata(path).ok()?;
    let actual = meta.permissions().mode() & 0o777;
    if actual & !wanted == 0 {
        return None;
    }
    Some(Finding::fail(
        "file modes",
        format!(
            "{} has mode {actual:04o}: other users can {}",
            path.display(),
            if meta.is_dir() { "look in" } else { "read it" }
        ),
        format!("chmod {wanted:o} {}", path.display()),
    ))
}

fn file_modes(config: &Config, store: &Store) -> Vec<Finding> {
    let dir = store.data_dir();
    let mut paths = vec![
        (dir.root().to_path_buf(), 0o700),
        (dir.keys_dir(), 0o700),
        (dir.recordings_dir(), 0o700),
        (dir.logs_dir(), 0o700),
    ];
    // With `store.url` the database is PostgreSQL's: no file here.
    if config.store_url.is_none() {
        paths.push((dir.database_path(), 0o600));
    }
    if let Ok(entries) = std::fs::read_dir(dir.keys_dir()) {
        // Public keys and the certificate are public; everything else in keys/ is secret.
        let mut keys: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                !name.ends_with(".pub") && name != rampart_web::tls::GENERATED_CERT_FILE
            })
            .collect();
        keys.sort();
        paths.extend(keys.into_iter().map(|p| (p, 0o600)));
    }
    if let MasterKeySource::File(path) = &config.master_key {
        paths.push((path.clone(), 0o600));
    }
    if let HttpTls::Files { key, .. } = &config.http.tls {
        paths.push((key.clone(), 0o600));
    }
    let uid = nix::unistd::getuid().as_raw();
    let mut findings: Vec<Finding> = paths
        .iter()
        .filter_map(|(path, wanted)| mode(path, *wanted))
        .collect();
    if let Ok(meta) = std::fs::metadata(dir.root())
        && meta.uid() != uid
    {
        findings.push(Finding::warn(
            "file modes",
            format!(
                "{} belongs to uid {}, not to the user running this (uid {uid})",
                dir.root().display(),
                meta.uid()
            ),
            "run rampart as the user that owns the data directory (the systemd unit's User=)",
        ));
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            "file modes",
            format!(
                "{} file(s) and directories: owner only",
                paths.iter().filter(|(p, _)| p.exists()).count()
            ),
        ));
    }
    findings
}

fn key_age(age: Option<Duration>, described: &str) -> Finding {
    match age {
        Some(age) if age > KEY_AGE_WARN => Finding::warn(
            "vault key age",
            format!(
                "the vault master key ({described}) is {} day(s) old",
                age.as_secs() / DAY
            ),
            "rotate it: `rampart vault rotate-key` (with --new-key-file when it is supplied by \
             file), then back up the new key",
        ),
        Some(age) => Finding::ok(
            "vault key age",
            format!(
                "the vault master key ({described}) is {} day(s) old",
                age.as_secs() / DAY
            ),
        ),
        None => Finding::ok(
            "vault key age",
            format!("unknown for a key supplied by {described}"),
        ),
    }
}

fn vault_key_age(config: &Config, store: &Store, now: SystemTime) -> Finding {
    let path = match &config.master_key {
        MasterKeySource::DataDir => Some(store.data_dir().master_key_path()),
        MasterKeySource::File(path) => Some(path.clone()),
        _ => None,
    };
    let age = path
        .and_then(|path| std::fs::metadata(path).ok())
        .and_then(|meta| meta.modified().ok())
        .and_then(|modified| now.duration_since(modified).ok());
    key_age(age, &config.master_key_describe())
}

async fn vault_state(store: &Store) -> Vec<Finding> {
    let mut findings = Vec::new();
    let next = store.data_dir().keys_dir().join("vault-master.key.next");
    if next.exists() {
        findings.push(Finding::warn(
            "vault rotation",
            format!(
                "a master key rotation did not finish ({} exists)",
                next.display()
            ),
            "run `rampart vault rotate-key` again: it completes the interrupted rotation",
        ));
    }
    match store.vault_status().await {
        Ok(status) if status.unreadable.is_empty() => findings.push(Finding::ok(
            "vault",
            format!("all {} secret(s) open", status.secrets),
        )),
        Ok(status) => findings.push(Finding::fail(
            "vault",
            format!(
                "{} secret(s) do not open with the keys held: {}",
                status.unreadable.len(),
                status.unreadable.join(", ")
            ),
            "supply the master key they were sealed with (--master-key-file), or replace those \
             secrets (`rampart account add ... ` after `account remove`)",
        )),
        Err(err) => findings.push(Finding::fail(
            "vault",
            format!("cannot check: {err}"),
            "see the error; `rampart vault status` shows the same",
        )),
    }
    findings
}

/// The audit chain, its signatures and every recording, as `rampart audit verify` checks them.
async fn evidence(config: &Config, store: &Store) -> Vec<Finding> {
    let options = super::verify::Options {
        only: None,
        anchors: Vec::new(),
        seal_interval: config.audit.seal_interval,
        bucket: config.recording_store.s3().cloned(),
    };
    match super::verify::collect(store, &options).await {
        Ok(lines) => {
            let failed: Vec<_> = lines.iter().filter(|l| !l.ok).collect();
            let recordings = lines
                .iter()
                .filter(|l| l.item.starts_with("recording "))
                .count();
            if failed.is_empty() {
                vec![Finding::ok(
                    "audit evidence",
                    format!(
                        "the audit chain, its signed heads and {recordings} recording(s) verify"
                    ),
                )]
            } else {
                failed
                    .into_iter()
                    .map(|line| {
                        Finding::fail(
                            "audit evidence",
                            format!("{}: {}", line.item, line.detail),
                            "run `rampart audit verify` for the full report; keep a copy of the \
                             data directory for investigation before changing anything",
                        )
                    })
                    .collect()
            }
        }
        Err(err) => vec![Finding::fail(
            "audit evidence",
            format!("cannot verify: {err:#}"),
            "run `rampart audit verify` for details",
        )],
    }
}

async fn sinks(store: &Store) -> Finding {
    let head = store
        .audit_head()
        .await
        .ok()
        .flatten()
        .map_or(0, |(seq, _)| seq);
    let statuses = match store.sink_statuses().await {
        Ok(statuses) => statuses,
        Err(err) => {
            return Finding::fail(
                "sink delivery",
                format!("cannot read: {err}"),
                "see the error",
            );
        }
    };
    if statuses.is_empty() {
        return Finding::ok(
            "sink delivery",
            "no SIEM sink has delivered yet (audit.syslog, audit.webhook)",
        );
    }
    let lagging: Vec<String> = statuses
        .iter()
        .filter(|s| head - s.delivered_seq > SINK_LAG_WARN)
        .map(|s| {
            format!(
                "{} is {} event(s) behind{}",
                s.sink,
                head - s.delivered_seq,
                s.last_error
                    .as_ref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if lagging.is_empty() {
        return Finding::ok(
            "sink delivery",
            format!("{} sink(s) within {SINK_LAG_WARN} events", statuses.len()),
        );
    }
    Finding::warn(
        "sink delivery",
        lagging.join("; "),
        "check that the SIEM receiver is up and reachable (`rampart audit sinks`); nothing is \
         lost, delivery resumes where it stopped",
    )
}

/// Credential rotations that did not finish: `unknown` ones (neither secret logged in) need a
/// person; `pending`/`applied` ones resume when the server starts or the account rotates.
async fn rotations(store: &Store) -> Finding {
    let in_flight = match store.rotations_in_flight().await {
        Ok(in_flight) => in_flight,
        Err(err) => {
            return Finding::fail("rotations", format!("cannot read: {err}"), "see the error");
        }
    };
    if in_flight.is_empty() {
        return Finding::ok("rotations", "no rotation pending or failed");
    }
    let unknown: Vec<String> = in_flight
        .iter()
        .filter(|r| r.state == rampart_store::RotationState::Unknown)
        .map(|r| r.account.to_string())
        .collect();
    let pending: Vec<String> = in_flight
        .iter()
        .filter(|r| r.state != rampart_store::RotationState::Unknown)
        .map(|r| format!("{} ({})", r.account, r.state.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Finding::fail(
            "rotations",
            format!(
                "neither the old nor the new secret logs in to {} (both are kept in the vault)",
                unknown.join(", ")
            ),
            "check the target account, then `rampart account rotate ACCOUNT` to settle it",
        );
    }
    Finding::warn(
        "rotations",
        format!("unfinished: {}", pending.join(", ")),
        "they resume when `rampart serve` starts; or run `rampart account rotate ACCOUNT`",
    )
}

fn disk(free: u64, total: u64, path: &Path) -> Finding {
    const GIB: u64 = 1024 * 1024 * 1024;
    let percent = free.saturating_mul(100).checked_div(total).unwrap_or(100);
    let detail = format!(
        "{} GiB free of {} GiB ({percent}%) at {}",
        free / GIB,
        total / GIB,
        path.display()
    );
    let fix = "free space or grow the volume; shorten audit.retention_days; a full disk ends \
               recorded sessions (they cannot be recorded)";
    if percent < 2 || free < GIB / 2 {
        Finding::fail("disk space", detail, fix)
    } else if percent < 10 || free < 5 * GIB {
        Finding::warn("disk space", detail, fix)
    } else {
        Finding::ok("disk space", detail)
    }
}

fn disk_space(path: &Path) -> Finding {
    match nix::sys::statvfs::statvfs(path) {
        Ok(stats) => {
            let block = stats.fragment_size();
            disk(
                stats.blocks_available().saturating_mul(block),
                stats.blocks().saturating_mul(block),
                path,
            )
        }
        Err(err) => Finding::fail(
            "disk space",
            format!("cannot read the free space of {}: {err}", path.display()),
            "check the recordings directory",
        ),
    }
}

/// The clock must not be behind the newest audit event (a clock set back makes times in the
/// evidence lie), and should be synchronised.
async fn clock(store: &Store, now: SystemTime) -> Finding {
    let newest = store.last_audit_event_time().await.ok().flatten();
    let synchronised = std::path::Path::new("/run/systemd/timesync/synchronized").exists();
    let now_unix = unix(now);
    if let Some(at) = newest
        && at > now_unix + i64::try_from(CLOCK_SLACK.as_secs()).unwrap_or(0)
    {
        return Finding::fail(
            "clock",
            format!(
                "the clock is {} s behind the newest audit event: it was set back",
                at - now_unix
            ),
            "set the clock right and keep it synchronised (NTP: systemd-timesyncd or chrony)",
        );
    }
    if synchronised {
        Finding::ok(
            "clock",
            "synchronised (systemd-timesyncd), not behind the audit log",
        )
    } else {
        Finding::ok(
            "clock",
            "not behind the audit log (synchronisation not checked: keep NTP running)",
        )
    }
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_web::cert_facts::CertFacts;

    #[test]
    fn exposure_needs_an_allow_list_and_metrics_never_leave_loopback_unnoticed() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let cases = [
            ("ssh.listen", "127.0.0.1:2222", false, Status::Ok),
            ("ssh.listen", "0.0.0.0:22", false, Status::Warn),
            ("ssh.listen", "0.0.0.0:22", true, Status::Ok),
            ("http.listen", "[::]:443", false, Status::Warn),
            ("metrics.listen", "10.0.0.1:9187", true, Status::Warn),
            ("metrics.listen", "127.0.0.1:9187", false, Status::Ok),
        ];
        for (key, listen, allow_list, status) in cases {
            let finding = exposure(key, addr(listen), allow_list);
            assert_eq!(finding.status, status, "{key} {listen} {allow_list}");
            assert_eq!(finding.fix.is_some(), status != Status::Ok);
        }
    }

    #[test]
    fn certificates_expired_expiring_and_self_signed_in_production() {
        let now = 1_800_000_000;
        let path = Path::new("cert.pem");
        let facts = |days: i64, self_signed| {
            Some(CertFacts {
                not_after_unix: now + days * 86_400,
                self_signed,
            })
        };
        let cases = [
            (
                facts(-3, false),
                false,
                Status::Fail,
                "expired 3 day(s) ago",
            ),
            (facts(10, false), true, Status::Warn, "expires in 10 day(s)"),
            (facts(400, true), true, Status::Warn, "self-signed"),
            (facts(400, true), false, Status::Ok, "self-signed, loopback"),
            (facts(400, false), true, Status::Ok, "expires in 400 day(s)"),
            (None, true, Status::Fail, "cannot be read"),
        ];
        for (facts, production, status, text) in cases {
            let finding = certificate(facts, path, production, now);
            assert_eq!(finding.status, status, "{finding:?}");
            assert!(finding.detail.contains(text), "{finding:?}");
        }
    }

    #[test]
    fn disk_and_key_age_thresholds() {
        const GIB: u64 = 1024 * 1024 * 1024;
        let path = Path::new("/r");
        assert_eq!(disk(50 * GIB, 100 * GIB, path).status, Status::Ok);
        assert_eq!(disk(8 * GIB, 100 * GIB, path).status, Status::Warn);
        assert_eq!(disk(GIB / 4, 100 * GIB, path).status, Status::Fail);
        assert_eq!(
            key_age(Some(Duration::from_secs(400 * DAY)), "f").status,
            Status::Warn
        );
        assert_eq!(
            key_age(Some(Duration::from_secs(10 * DAY)), "f").status,
            Status::Ok
        );
    }
}
