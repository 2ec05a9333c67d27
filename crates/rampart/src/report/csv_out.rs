//! The report as one CSV table for spreadsheets: a `section` column says what each row is;
//! the summary comes first (`measure`, `count`), then every table's rows.

use super::facts::Report;

const HEADINGS: [&str; 8] = [
    "section", "at", "user", "target", "what", "detail", "count", "controls",
];

pub fn render(report: &Report) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADINGS)?;
    let mut row = |cells: [&str; 8]| w.write_record(cells);
    for line in &report.summary {
        row([
            "summary",
            &report.period.from,
            "",
            "",
            line.label,
            line.key,
            &line.count.to_string(),
            line.controls,
        ])?;
    }
    for s in &report.sessions {
        let duration = s.duration_secs.map(|d| d.to_string()).unwrap_or_default();
        let section = if s.privileged {
            "privileged session"
        } else {
            "session"
        };
        row([
            section,
            &s.started,
            &s.user,
            &s.target,
            &s.kind,
            &format!(
                "session {} from {}; ended {}; recorded {}",
                s.session,
                s.source,
                s.end_reason.as_deref().unwrap_or("(open at period end)"),
                s.recorded
            ),
            &duration,
            "",
        ])?;
    }
    for l in &report.logins {
        row([
            "login", &l.at, &l.login, "", &l.kind, &l.detail, "", &l.source,
        ])?;
    }
    for c in &report.commands {
        row([
            "command", &c.at, &c.user, &c.target, &c.action, &c.what, "", &c.rule,
        ])?;
    }
    for t in &report.transfers {
        row([
            "file transfer",
            &t.at,
            &t.user,
            &t.target,
            &t.direction,
            &t.path,
            &t.bytes.to_string(),
            "",
        ])?;
    }
    for c in &report.changes {
        row(["change", &c.at, &c.actor, "", &c.kind, &c.detail, "", ""])?;
    }
    for r in &report.requests {
        row([
            "access request",
            &r.at,
            &r.user,
            &r.request,
            &r.step,
            &r.detail,
            "",
            &r.by,
        ])?;
    }
    for r in &report.rotations {
        row([
            "rotation",
            &r.at,
            "",
            &r.account,
            &r.state,
            &r.reason,
            "",
            &r.severity,
        ])?;
    }
    for c in &report.verification.checks {
        row([
            "verification",
            &report.generated_at,
            "",
            "",
            if c.ok { "ok" } else { "FAIL" },
            &format!("{}: {}", c.item, c.detail),
            "",
            "",
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}
