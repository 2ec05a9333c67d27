//! What a report says, read from the hash-chained audit log only (the tables are caches and are
//! never evidence): one pass over the period's events, typed, into counts and bounded tables.

use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::time_arg::{format_rfc3339, parse_rfc3339};
use rampart_store::{AuditFilter, AuditRecord, Store};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use time::OffsetDateTime;

/// Rows each table of a report shows at most; the counts are always exact.
pub const MAX_ROWS: usize = 2_000;
/// Events read from the store at a time.
const PAGE: u32 = 1_000;

/// Account logins a report calls privileged (with sessions that ran a privilege-escalation
/// command). Compared without case.
pub const PRIVILEGED_LOGINS: &[&str] = &[
    "root",
    "administrator",
    "admin",
    "postgres",
    "sa",
    "sys",
    "system",
    "oracle",
    "enable",
];

/// The period `[from, to)`.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub from: String,
    pub to: String,
    /// The first day and the last (inclusive) day, for titles.
    pub from_date: String,
    pub to_date: String,
}

impl Period {
    pub fn new(from: OffsetDateTime, to: OffsetDateTime) -> Self {
        let utc = |at: OffsetDateTime| at.to_offset(time::UtcOffset::UTC);
        Self {
            from: format_rfc3339(from),
            to: format_rfc3339(to),
            from_date: utc(from).date().to_string(),
            to_date: utc(to - time::Duration::SECOND).date().to_string(),
        }
    }
}

/// One line of the summary: what was counted, how many, and the controls it supports.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryLine {
    pub key: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub controls: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    pub session: String,
    pub started: String,
    pub ended: Option<String>,
    /// Seconds; None while the session was open at the end of the period.
    pub duration_secs: Option<i64>,
    pub user: String,
    pub target: String,
    pub asset: String,
    pub kind: String,
    pub source: String,
    pub recorded: bool,
    pub end_reason: Option<String>,
    pub privileged: bool,
    pub command: Option<String>,
}

/// A failed, refused or locked login, or an access refused by policy.
#[derive(Debug, Clone, Serialize)]
pub struct LoginRow {
    pub at: String,
    pub kind: String,
    pub login: String,
    pub source: String,
    pub detail: String,
}

/// A command a rule denied or flagged, or an alert.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRow {
    pub at: String,
    pub action: String,
    pub user: String,
    pub target: String,
    pub what: String,
    pub rule: String,
    pub session: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransferRow {
    pub at: String,
    pub user: String,
    pub target: String,
    pub direction: String,
    pub path: String,
    pub bytes: u64,
    pub session: String,
}

/// A change to who may do what: grants, roles, groups, users.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub detail: String,
}

/// A step of an access request: asked, approved, denied, cancelled.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    pub at: String,
    pub request: String,
    pub user: String,
    pub step: String,
    /// Who took the step (the requester asks; an approver decides).
    pub by: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RotationRow {
    pub at: String,
    pub account: String,
    pub state: String,
    pub severity: String,
    pub reason: String,
}

/// One verification check, as `rampart audit verify` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub item: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub verified: bool,
    /// The checks of the whole chain and seals, and of the recordings of the period's sessions.
    pub checks: Vec<Check>,
}

/// A count by name, largest first (charts).
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    pub name: String,
    pub count: u64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub period: Period,
    pub generated_at: String,
    /// Events of the period read (first and last sequence numbers).
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub summary: Vec<SummaryLine>,
    pub sessions_per_day: Vec<Tally>,
    pub top_users: Vec<Tally>,
    pub top_assets: Vec<Tally>,
    pub sessions: Vec<SessionRow>,
    pub logins: Vec<LoginRow>,
    pub commands: Vec<CommandRow>,
    pub transfers: Vec<TransferRow>,
    /// Bytes of every file transferred in the period.
    pub transfer_bytes: u64,
    pub changes: Vec<ChangeRow>,
    pub rotations: Vec<RotationRow>,
    pub requests: Vec<RequestRow>,
    pub verification: Verification,
}

/// The controls each section supports.
pub mod controls {
    pub const ACCESS: &str =
        "SOC 2 CC6.1, CC6.2, CC6.3 · ISO 27001 A.5.15, A.5.18, A.8.2 · PCI DSS 7.2, 10.2.1";
    pub const PRIVILEGED: &str = "SOC 2 CC6.3 · ISO 27001 A.8.2, A.8.18 · PCI DSS 7.2.2, 10.2.1.2";
    pub const LOGINS: &str =
        "SOC 2 CC6.1, CC7.2 · ISO 27001 A.8.5, A.5.17 · PCI DSS 8.3.4, 10.2.1.4";
    pub const COMMANDS: &str = "SOC 2 CC7.2, CC7.3 · ISO 27001 A.8.16 · PCI DSS 10.2.1.2, 10.4.1";
    pub const TRANSFERS: &str = "SOC 2 CC6.7 · ISO 27001 A.5.14, A.8.12 · PCI DSS 10.2.1";
    pub const CHANGES: &str =
        "SOC 2 CC6.2, CC6.3, CC8.1 · ISO 27001 A.5.18 · PCI DSS 7.2.4, 8.2.4, 10.2.1.5";
    pub const REQUESTS: &str =
        "SOC 2 CC6.2, CC6.3 · ISO 27001 A.5.15, A.5.18 · PCI DSS 7.2.1, 7.2.4";
    pub const ROTATIONS: &str = "SOC 2 CC6.1 · ISO 27001 A.5.17 · PCI DSS 8.3.9, 8.6.3";
    pub const VERIFICATION: &str = "SOC 2 CC7.2, CC4.1 · ISO 27001 A.8.15 · PCI DSS 10.3, 10.5";
}

/// The asset a session target (`login@asset`) names.
fn asset_of(target: &str) -> &str {
    target.rsplit_once('@').map_or(target, |(_, asset)| asset)
}

fn login_of(target: &str) -> &str {
    target.split_once('@').map_or("", |(login, _)| login)
}

fn is_privileged_login(login: &str) -> bool {
    PRIVILEGED_LOGINS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(login))
}

fn actor_name(actor: &Actor) -> String {
    actor.to_string()
}

/// A table that keeps its first [`MAX_ROWS`] rows and counts every one.
#[derive(Debug)]
struct Bounded<T> {
    rows: Vec<T>,
    count: u64,
}

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            count: 0,
        }
    }
}

impl<T> Bounded<T> {
    fn push(&mut self, row: T) {
        self.count += 1;
        if self.rows.len() < MAX_ROWS {
            self.rows.push(row);
        }
    }
}

/// Everything one pass over the events collects.
#[derive(Debug, Default)]
struct Collector {
    events: u64,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
    /// Sessions started in the period, by id, in start order.
    sessions: Vec<SessionRow>,
    by_id: HashMap<String, usize>,
    /// Sessions that ran a privilege-escalation command (an alert says so).
    escalated: HashSet<String>,
    failed: u64,
    locked: u64,
    refused: u64,
    denied: u64,
    logins: Bounded<LoginRow>,
    commands_denied: u64,
    commands_warned: u64,
    alerts: u64,
    commands: Bounded<CommandRow>,
    transfers: Bounded<TransferRow>,
    transfer_bytes: u64,
    changes: Bounded<ChangeRow>,
    grant_changes: u64,
    rotations: Bounded<RotationRow>,
    requests: Bounded<RequestRow>,
    requests_made: u64,
    requests_approved: u64,
    requests_denied: u64,
    rotations_committed: u64,
    rotations_failed: u64,
}

impl Collector {
    fn add(&mut self, record: &AuditRecord) {
        self.events += 1;
        self.first_seq.get_or_insert(record.seq);
        self.last_seq = Some(record.seq);
        // Events of kinds this build does not know (a newer node's) are counted, not read.
        let Ok(event) = serde_json::from_value::<AuditEvent>(record.event.clone()) else {
            return;
        };
        let at = record.at.clone();
        match event {
            AuditEvent::SessionStarted {
                session,
                user,
                target,
                kind,
                source,
                recorded,
                command,
                ..
            } => {
                let asset = asset_of(&target).to_owned();
                let privileged = is_privileged_login(login_of(&target));
                self.by_id.insert(session.clone(), self.sessions.len());
                self.sessions.push(SessionRow {
                    session,
                    started: at,
                    ended: None,
                    duration_secs: None,
                    user,
                    target,
                    asset,
                    kind,
                    source,
                    recorded,
                    end_reason: None,
                    privileged,
                    command,
                });
            }
            AuditEvent::SessionEnded {
                session, reason, ..
            } => {
                if let Some(row) = self
                    .by_id
                    .get(&session)
                    .and_then(|&i| self.sessions.get_mut(i))
                {
                    let seconds = |text: &str| {
                        parse_rfc3339("time", text)
                            .ok()
                            .map(OffsetDateTime::unix_timestamp)
                    };
                    row.duration_secs = match (seconds(&row.started), seconds(&at)) {
                        (Some(start), Some(end)) => Some((end - start).max(0)),
                        _ => None,
                    };
                    row.ended = Some(at);
                    row.end_reason = Some(reason);
                }
            }
            AuditEvent::LoginFailed {
                login,
                source,
                method,
                failures,
            } => {
                self.failed += 1;
                self.logins.push(LoginRow {
                    at,
                    kind: "failed".into(),
                    login,
                    source,
                    detail: format!("{method}; {failures} failure(s) in the window so far"),
                });
            }
            AuditEvent::LoginLocked {
                key,
                until,
                failures,
            } => {
                self.locked += 1;
                self.logins.push(LoginRow {
                    at,
                    kind: "locked".into(),
                    login: key,
                    source: String::new(),
                    detail: format!("{failures} failures; locked until {until}"),
                });
            }
            AuditEvent::LoginRefused {
                login,
                source,
                method,
                reason,
            } => {
                self.refused += 1;
                self.logins.push(LoginRow {
                    at,
                    kind: "refused".into(),
                    login,
                    source,
                    detail: format!("{method}: {reason}"),
                });
            }
            AuditEvent::AccessDenied {
                user,
                target,
                action,
                reason,
                source,
            } => {
                self.denied += 1;
                self.logins.push(LoginRow {
                    at,
                    kind: "access denied".into(),
                    login: user,
                    source,
                    detail: format!("{action} on {target}: {reason}"),
                });
            }
            AuditEvent::CommandRuleMatched {
                session,
                user,
                target,
                line,
                rule,
                action,
                ..
            } => {
                match action.as_str() {
                    "deny" => self.commands_denied += 1,
                    "warn" => self.commands_warned += 1,
                    _ => return,
                }
                self.commands.push(CommandRow {
                    at,
                    action,
                    user,
                    target,
                    what: line,
                    rule,
                    session,
                });
            }
            AuditEvent::AlertRaised {
                alert,
                severity,
                user,
                session,
                target,
                detail,
            } => {
                self.alerts += 1;
                if alert == "privilege_escalation"
                    && let Some(session) = &session
                {
                    self.escalated.insert(session.clone());
                }
                // A command rule's alert is already the rule's row.
                if alert != "command_rule" {
                    self.commands.push(CommandRow {
                        at,
                        action: format!("alert ({severity})"),
                        user,
                        target: target.unwrap_or_default(),
                        what: detail,
                        rule: alert,
                        session,
                    });
                }
            }
            AuditEvent::FileTransferred {
                session,
                user,
                target,
                path,
                direction,
                bytes,
                ..
            } => {
                self.transfer_bytes = self.transfer_bytes.saturating_add(bytes);
                self.transfers.push(TransferRow {
                    at,
                    user,
                    target,
                    direction,
                    path,
                    bytes,
                    session,
                });
            }
            AuditEvent::GrantAdded {
                grant,
                subject,
                target,
                actions,
                ..
            } => {
                self.grant_changes += 1;
                self.change(
                    record,
                    "grant added",
                    format!("{grant}: {subject} may {actions} on {target}"),
                );
            }
            AuditEvent::GrantChanged { grant, changes } => {
                self.grant_changes += 1;
                let what = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {} -> {}",
                            c.field,
                            c.from.as_deref().unwrap_or("-"),
                            c.to.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.change(record, "grant changed", format!("{grant}: {what}"));
            }
            AuditEvent::GrantRemoved { grant } => {
                self.grant_changes += 1;
                self.change(record, "grant removed", grant);
            }
            AuditEvent::UserRoleChanged { .. }
            | AuditEvent::GroupMemberAdded { .. }
            | AuditEvent::GroupMemberRemoved { .. }
            | AuditEvent::UserAdded { .. }
            | AuditEvent::UserRemoved { .. }
            | AuditEvent::UserDisabled { .. }
            | AuditEvent::UserEnabled { .. } => {
                let detail = summary_of(&record.event);
                self.change(record, record.kind.replace('_', " ").as_str(), detail);
            }
            AuditEvent::AccessRequested {
                request,
                user,
                target,
                duration,
                reason,
                ..
            } => {
                self.requests_made += 1;
                self.requests.push(RequestRow {
                    at,
                    request,
                    user,
                    step: "asked".into(),
                    by: actor_name(&record.actor),
                    detail: format!("{target} for {duration}: {reason}"),
                });
            }
            AuditEvent::AccessRequestDecided {
                request,
                user,
                decision,
                note,
                grant,
                valid_until,
            } => {
                match decision.as_str() {
                    "approved" => self.requests_approved += 1,
                    "denied" => self.requests_denied += 1,
                    _ => {}
                }
                let mut detail = Vec::new();
                if let Some(grant) = grant {
                    detail.push(format!("grant {grant}"));
                }
                if let Some(until) = valid_until {
                    detail.push(format!("until {until}"));
                }
                if let Some(note) = note {
                    detail.push(note);
                }
                self.requests.push(RequestRow {
                    at,
                    request,
                    user,
                    step: decision,
                    by: actor_name(&record.actor),
                    detail: detail.join("; "),
                });
            }
            AuditEvent::AccountRotationChanged {
                account,
                state,
                severity,
                reason,
                ..
            } => {
                match state.as_str() {
                    "committed" => self.rotations_committed += 1,
                    "failed" | "unknown" => self.rotations_failed += 1,
                    _ => {}
                }
                self.rotations.push(RotationRow {
                    at,
                    account,
                    state,
                    severity,
                    reason,
                });
            }
            _ => {}
        }
    }

    fn change(&mut self, record: &AuditRecord, kind: &str, detail: String) {
        self.changes.push(ChangeRow {
            at: record.at.clone(),
            actor: actor_name(&record.actor),
            kind: kind.to_owned(),
            detail,
        });
    }
}

/// An event's fields other than its name, as `key=value` text.
fn summary_of(event: &serde_json::Value) -> String {
    let Some(map) = event.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(key, _)| key.as_str() != "event")
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn tallies(counts: BTreeMap<String, u64>, top: usize) -> Vec<Tally> {
    let mut all: Vec<Tally> = counts
        .into_iter()
        .map(|(name, count)| Tally { name, count })
        .collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    all.truncate(top);
    all
}

/// Reads the period's events and builds the report (`verification` from the verifier).
pub async fn gather(
    store: &Store,
    from: OffsetDateTime,
    to: OffsetDateTime,
    verification: Verification,
    now: OffsetDateTime,
) -> anyhow::Result<Report> {
    let filter = AuditFilter {
        since: Some(from),
        until: Some(to),
        ..AuditFilter::default()
    };
    let mut collector = Collector::default();
    let mut after = 0;
    loop {
        let page = store.audit_export_page(&filter, after, PAGE).await?;
        for record in &page.items {
            collector.add(record);
        }
        match page.next.as_deref().map(str::parse::<i64>) {
            Some(Ok(next)) if next > after => after = next,
            _ => break,
        }
    }
    Ok(finish(collector, from, to, verification, now))
}

fn finish(
    c: Collector,
    from: OffsetDateTime,
    to: OffsetDateTime,
    verification: Verification,
    now: OffsetDateTime,
) -> Report {
    let mut sessions = c.sessions;
    for row in &mut sessions {
        if c.escalated.contains(&row.session) {
            row.privileged = true;
        }
    }
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    // Every day of the period, so a quiet day shows as zero.
    let mut day = from.to_offset(time::UtcOffset::UTC).date();
    let last = (to - time::Duration::SECOND)
        .to_offset(time::UtcOffset::UTC)
        .date();
    let mut days = 0;
    while day <= last && days < 400 {
        per_day.insert(day.to_string(), 0);
        days += 1;
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    let mut users: BTreeMap<String, u64> = BTreeMap::new();
    let mut assets: BTreeMap<String, u64> = BTreeMap::new();
    for row in &sessions {
        if let Some(date) = row.started.get(..10) {
            *per_day.entry(date.to_owned()).or_default() += 1;
        }
        *users.entry(row.user.clone()).or_default() += 1;
        *assets.entry(row.asset.clone()).or_default() += 1;
    }
    let session_count = sessions.len() as u64;
    let privileged = sessions.iter().filter(|s| s.privileged).count() as u64;
    let user_count = users.len() as u64;
    let asset_count = assets.len() as u64;
    let failed_checks = verification.checks.iter().filter(|c| !c.ok).count() as u64;
    let line = |key, label, count, controls| SummaryLine {
        key,
        label,
        count,
        controls,
    };
    let summary = vec![
        line(
            "sessions",
            "Sessions started",
            session_count,
            controls::ACCESS,
        ),
        line(
            "users",
            "People who connected",
            user_count,
            controls::ACCESS,
        ),
        line("assets", "Assets reached", asset_count, controls::ACCESS),
        line(
            "privileged_sessions",
            "Privileged sessions",
            privileged,
            controls::PRIVILEGED,
        ),
        line(
            "failed_logins",
            "Failed-login events",
            c.failed,
            controls::LOGINS,
        ),
        line("lockouts", "Lockouts", c.locked, controls::LOGINS),
        line(
            "refused_logins",
            "Logins refused by login rules",
            c.refused,
            controls::LOGINS,
        ),
        line(
            "access_denied",
            "Access refused by policy",
            c.denied,
            controls::LOGINS,
        ),
        line(
            "commands_denied",
            "Commands denied",
            c.commands_denied,
            controls::COMMANDS,
        ),
        line(
            "commands_flagged",
            "Commands flagged (warn)",
            c.commands_warned,
            controls::COMMANDS,
        ),
        line("alerts", "Alerts raised", c.alerts, controls::COMMANDS),
        line(
            "file_transfers",
            "Files transferred",
            c.transfers.count,
            controls::TRANSFERS,
        ),
        line(
            "grant_changes",
            "Grants added, changed or removed",
            c.grant_changes,
            controls::CHANGES,
        ),
        line(
            "access_requests",
            "Access requests made",
            c.requests_made,
            controls::REQUESTS,
        ),
        line(
            "requests_approved",
            "Access requests approved",
            c.requests_approved,
            controls::REQUESTS,
        ),
        line(
            "requests_denied",
            "Access requests denied",
            c.requests_denied,
            controls::REQUESTS,
        ),
        line(
            "rotations_committed",
            "Credential rotations completed",
            c.rotations_committed,
            controls::ROTATIONS,
        ),
        line(
            "rotations_failed",
            "Credential rotations failed",
            c.rotations_failed,
            controls::ROTATIONS,
        ),
        line(
            "verification_failures",
            "Verification failures",
            failed_checks,
            controls::VERIFICATION,
        ),
    ];
    let mut shown = sessions;
    shown.truncate(MAX_ROWS);
    Report {
        period: Period::new(from, to),
        generated_at: format_rfc3339(now),
        events: c.events,
        first_seq: c.first_seq,
        last_seq: c.last_seq,
        summary,
        sessions_per_day: per_day
            .into_iter()
            .map(|(name, count)| Tally { name, count })
            .collect(),
        top_users: tallies(users, 10),
        top_assets: tallies(assets, 10),
        sessions: shown,
        logins: c.logins.rows,
        commands: c.commands.rows,
        transfers: c.transfers.rows,
        transfer_bytes: c.transfer_bytes,
        changes: c.changes.rows,
        rotations: c.rotations.rows,
        requests: c.requests.rows,
        verification,
    }
}

impl Report {
    /// Sets the verification section and its summary line.
    pub fn set_verification(&mut self, verification: Verification) {
        let failed = verification.checks.iter().filter(|c| !c.ok).count() as u64;
        for line in &mut self.summary {
            if line.key == "verification_failures" {
                line.count = failed;
            }
        }
        self.verification = verification;
    }

    /// The summary's count for `key` (0 if there is no such line).
    pub fn count(&self, key: &str) -> u64 {
        self.summary
            .iter()
            .find(|line| line.key == key)
            .map_or(0, |line| line.count)
    }

    /// Whether a table was cut at [`MAX_ROWS`] (its summary count is larger).
    pub fn truncated(&self, shown: usize, key: &str) -> bool {
        self.count(key) > shown as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_logins_and_assets_are_read_from_the_target() {
        assert_eq!(asset_of("root@web-01"), "web-01");
        assert_eq!(login_of("root@web-01"), "root");
        assert!(is_privileged_login("Administrator"));
        assert!(!is_privileged_login("deploy"));
    }
}
