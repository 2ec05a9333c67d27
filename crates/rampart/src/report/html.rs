//! The report as one self-contained HTML page: inline style, charts as inline SVG, no script,
//! laid out for the screen and for print (the PDF is this page printed by Chromium).

use super::facts::{MAX_ROWS, Report, Tally, controls};
use rampart_web::portal::escape;
use std::fmt::Write as _;

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Arial, sans-serif; color: #1b1f24; margin: 2em; font-size: 11pt; }
h1 { font-size: 20pt; margin-bottom: 0.2em; }
h2 { font-size: 14pt; margin-top: 1.6em; border-bottom: 2px solid #2f5d8a; padding-bottom: 0.2em; }
p.controls { color: #2f5d8a; font-size: 9pt; margin: 0.2em 0 0.6em; }
p.meta { color: #555; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: 0.4em 0; }
th, td { border: 1px solid #c9d1d9; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; font-weight: bold; }
.fail { color: #cf222e; font-weight: bold; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
.charts figure { margin: 0; }
figcaption { font-size: 9pt; color: #555; }
code { font-size: 9pt; word-break: break-all; }
@media print { body { margin: 0; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
";

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!(
        "Rampart access report, {} to {}",
        report.period.from_date, report.period.to_date
    );
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">Period [{}, {}) · generated {} · audit events {} in the period{} · every number below is read from the hash-chained audit log.</p>",
        escape(&report.period.from),
        escape(&report.period.to),
        escape(&report.generated_at),
        report.events,
        match (report.first_seq, report.last_seq) {
            (Some(first), Some(last)) => format!(" (#{first} to #{last})"),
            _ => String::new(),
        }
    );
    let verdict = if report.verification.verified {
        "<span class=\"ok\">The audit trail verifies.</span>"
    } else {
        "<span class=\"fail\">The audit trail does NOT verify: see the last section.</span>"
    };
    let _ = writeln!(out, "<p>{verdict}</p>");

    out.push_str("<h2>Summary</h2>\n<table><thead><tr><th>Measure</th><th>Count</th><th>Controls</th></tr></thead><tbody>\n");
    for line in &report.summary {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(line.label),
            line.count,
            escape(line.controls)
        );
    }
    out.push_str("</tbody></table>\n<div class=\"charts\">\n");
    out.push_str(&day_chart(&report.sessions_per_day));
    out.push_str(&bar_chart("Top users by sessions", &report.top_users));
    out.push_str(&bar_chart("Top assets by sessions", &report.top_assets));
    out.push_str("</div>\n");

    section(
        &mut out,
        "Who accessed which assets, when, and for how long",
        controls::ACCESS,
        "Sessions started in the period, in order.",
    );
    table(
        &mut out,
        &[
            "Started", "User", "Target", "Kind", "Duration", "Ended", "Recorded", "Source",
        ],
        report.sessions.iter().map(|s| {
            vec![
                s.started.clone(),
                s.user.clone(),
                s.target.clone(),
                match &s.command {
                    Some(command) => format!("{} ({command})", s.kind),
                    None => s.kind.clone(),
                },
                s.duration_secs
                    .map_or_else(|| "open at period end".to_owned(), duration),
                s.end_reason.clone().unwrap_or_default(),
                if s.recorded { "yes" } else { "no" }.to_owned(),
                s.source.clone(),
            ]
        }),
        report.truncated(report.sessions.len(), "sessions"),
    );

    section(
        &mut out,
        "Privileged sessions",
        controls::PRIVILEGED,
        &format!(
            "Sessions as {} or that ran a privilege-escalation command.",
            super::facts::PRIVILEGED_LOGINS.join(", ")
        ),
    );
    table(
        &mut out,
        &["Started", "User", "Target", "Kind", "Duration", "Session"],
        report.sessions.iter().filter(|s| s.privileged).map(|s| {
            vec![
                s.started.clone(),
                s.user.clone(),
                s.target.clone(),
                s.kind.clone(),
                s.duration_secs
                    .map_or_else(|| "open at period end".to_owned(), duration),
                s.session.clone(),
            ]
        }),
        false,
    );

    section(
        &mut out,
        "Failed and refused logins",
        controls::LOGINS,
        "A burst of failures within one lockout window is one event; a lockout gives the count.",
    );
    table(
        &mut out,
        &["At", "What", "Login", "Source", "Detail"],
        report.logins.iter().map(|l| {
            vec![
                l.at.clone(),
                l.kind.clone(),
                l.login.clone(),
                l.source.clone(),
                l.detail.clone(),
            ]
        }),
        report.logins.len() >= MAX_ROWS,
    );

    section(
        &mut out,
        "Denied and flagged commands, and alerts",
        controls::COMMANDS,
        "Commands a rule denied or flagged, and every alert raised.",
    );
    table(
        &mut out,
        &[
            "At",
            "Action",
            "User",
            "Target",
            "Command or detail",
            "Rule",
        ],
        report.commands.iter().map(|c| {
            vec![
                c.at.clone(),
                c.action.clone(),
                c.user.clone(),
                c.target.clone(),
                c.what.clone(),
                c.rule.clone(),
            ]
        }),
        report.commands.len() >= MAX_ROWS,
    );

    section(
        &mut out,
        "File transfers",
        controls::TRANSFERS,
        &format!(
            "Files sent or received through scp and SFTP: {} bytes in all.",
            report.transfer_bytes
        ),
    );
    table(
        &mut out,
        &["At", "User", "Target", "Direction", "Path", "Bytes"],
        report.transfers.iter().map(|t| {
            vec![
                t.at.clone(),
                t.user.clone(),
                t.target.clone(),
                t.direction.clone(),
                t.path.clone(),
                t.bytes.to_string(),
            ]
        }),
        report.truncated(report.transfers.len(), "file_transfers"),
    );

    section(
        &mut out,
        "Grants, roles and memberships added, changed and removed",
        controls::CHANGES,
        "Every change to who may reach what.",
    );
    table(
        &mut out,
        &["At", "By", "Change", "Detail"],
        report.changes.iter().map(|c| {
            vec![
                c.at.clone(),
                c.actor.clone(),
                c.kind.clone(),
                c.detail.clone(),
            ]
        }),
        report.changes.len() >= MAX_ROWS,
    );

    section(
        &mut out,
        "Access requests and approvals",
        controls::REQUESTS,
        "Time-bound access asked for, and who approved or denied it (an approval is a grant that ends on its own).",
    );
    table(
        &mut out,
        &["At", "Request", "User", "Step", "By", "Detail"],
        report.requests.iter().map(|r| {
            vec![
                r.at.clone(),
                r.request.clone(),
                r.user.clone(),
                r.step.clone(),
                r.by.clone(),
                r.detail.clone(),
            ]
        }),
        report.requests.len() >= MAX_ROWS,
    );

    section(
        &mut out,
        "Credential rotations",
        controls::ROTATIONS,
        "Every step of every rotation of a vaulted credential (never the secret).",
    );
    table(
        &mut out,
        &["At", "Account", "State", "Severity", "Reason"],
        report.rotations.iter().map(|r| {
            vec![
                r.at.clone(),
                r.account.clone(),
                r.state.clone(),
                r.severity.clone(),
                r.reason.clone(),
            ]
        }),
        report.rotations.len() >= MAX_ROWS,
    );

    section(
        &mut out,
        "Verification of the audit trail",
        controls::VERIFICATION,
        "The checks of `rampart audit verify`: the whole hash chain and its signed heads, and the recordings of this period's sessions against the manifests the chain holds.",
    );
    let _ = writeln!(out, "<p>{verdict}</p>");
    table(
        &mut out,
        &["Result", "Item", "Detail"],
        report.verification.checks.iter().map(|c| {
            vec![
                if c.ok { "ok" } else { "FAIL" }.to_owned(),
                c.item.clone(),
                c.detail.clone(),
            ]
        }),
        false,
    );
    out.push_str("</body>\n</html>\n");
    out
}

fn section(out: &mut String, title: &str, controls: &str, note: &str) {
    let _ = writeln!(
        out,
        "<h2>{}</h2>\n<p class=\"controls\">Supports {}</p>\n<p>{}</p>",
        escape(title),
        escape(controls),
        escape(note)
    );
}

fn table(
    out: &mut String,
    headings: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
    truncated: bool,
) {
    out.push_str("<table><thead><tr>");
    for heading in headings {
        let _ = write!(out, "<th>{}</th>", escape(heading));
    }
    out.push_str("</tr></thead><tbody>\n");
    let mut any = false;
    for row in rows {
        any = true;
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    if !any {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"{}\">None in this period.</td></tr>",
            headings.len()
        );
    }
    out.push_str("</tbody></table>\n");
    if truncated {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Only the first {MAX_ROWS} rows are shown; the summary counts them all, and `rampart audit export` lists every event.</p>"
        );
    }
}

fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

const CHART_WIDTH: u64 = 420;
const CHART_HEIGHT: u64 = 160;

/// Sessions per day as columns.
fn day_chart(days: &[Tally]) -> String {
    let max = days.iter().map(|d| d.count).max().unwrap_or(0).max(1);
    let n = days.len().max(1) as u64;
    let slot = (CHART_WIDTH - 40) / n;
    let bar = slot.saturating_sub(2).max(1);
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{}\" role=\"img\" aria-label=\"Sessions per day\">",
        CHART_HEIGHT + 30
    );
    let _ = write!(
        svg,
        "<line x1=\"30\" y1=\"{CHART_HEIGHT}\" x2=\"{CHART_WIDTH}\" y2=\"{CHART_HEIGHT}\" stroke=\"#888\"/><text x=\"0\" y=\"12\" font-size=\"10\">{max}</text><text x=\"0\" y=\"{CHART_HEIGHT}\" font-size=\"10\">0</text>"
    );
    for (i, day) in days.iter().enumerate() {
        let height = day.count * (CHART_HEIGHT - 10) / max;
        let x = 32 + i as u64 * slot;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{height}\" fill=\"#2f5d8a\"><title>{}: {}</title></rect>",
            CHART_HEIGHT - height,
            escape(&day.name),
            day.count
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            "<text x=\"30\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            CHART_HEIGHT + 14,
            escape(&first.name),
            CHART_WIDTH,
            CHART_HEIGHT + 14,
            escape(&last.name)
        );
    }
    svg.push_str("</svg><figcaption>Sessions per day</figcaption></figure>\n");
    svg
}

/// A horizontal bar per name.
fn bar_chart(caption: &str, tallies: &[Tally]) -> String {
    let max = tallies.iter().map(|t| t.count).max().unwrap_or(0).max(1);
    let row = 16u64;
    let height = (tallies.len() as u64).max(1) * row + 4;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        escape(caption)
    );
    if tallies.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"12\" font-size=\"10\">no sessions</text>"
        );
    }
    for (i, tally) in tallies.iter().enumerate() {
        let y = i as u64 * row;
        let width = tally.count * (CHART_WIDTH - 160) / max;
        let name: String = tally.name.chars().take(20).collect();
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"10\">{}</text><rect x=\"120\" y=\"{}\" width=\"{}\" height=\"12\" fill=\"#4c8c4a\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">{}</text>",
            y + 11,
            escape(&name),
            y + 1,
            width.max(1),
            124 + width,
            y + 11,
            tally.count
        );
    }
    let _ = writeln!(
        svg,
        "</svg><figcaption>{}</figcaption></figure>",
        escape(caption)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m 05s");
        assert_eq!(duration(3725), "1h 02m 05s");
    }
}
