//! Compliance reports (`rampart report`, `GET /api/v1/reports`) after real activity through a
//! real `rampart serve` and `sshd`: every number is checked against the audit log itself, the
//! HTML and CSV say the same, the PDF is Chromium's print of the HTML (read back with poppler),
//! and a broken recording turns the report's verification section to a failure.

use super::ssh::{Lab, text};
use rampart_testkit::require_tool;
use serde_json::Value;
use std::collections::HashSet;
use std::process::Command;

/// The audit log's events of kind `kind` (all of them: the period is today).
fn count(events: &[Value], kind: &str) -> u64 {
    events.iter().filter(|e| e["kind"] == kind).count() as u64
}

fn summary(report: &Value, key: &str) -> u64 {
    report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["key"] == key)
        .unwrap_or_else(|| panic!("no summary line {key}: {report}"))["count"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_report_counts_exactly_what_the_audit_log_holds_in_html_csv_json_and_pdf() {
    let (Some(_), Some(_), Some(_)) = (
        require_tool("chromium"),
        require_tool("pdftotext"),
        require_tool("pdftoppm"),
    ) else {
        return;
    };
    let Some(lab) = Lab::start() else { return };
    let r = &lab.r;
    let dir = r.scratch().to_path_buf();

    // Known activity: two exec sessions (one ran sudo: privilege escalation), a refused
    // command, an scp upload, a failed login, a grant changed and one added.
    let grant = r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = lab.ssh(&lab.direct(), "echo report-one", b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lab.ssh(&lab.direct(), "sudo -n true; echo report-two", b"");
    assert!(
        text(&out.stdout).contains("report-two"),
        "{}",
        text(&out.stderr)
    );
    r.ok(&[
        "rule",
        "add",
        "--grant",
        &grant,
        "--match",
        "prefix:rm -rf",
        "--action",
        "deny",
    ]);
    let out = lab.ssh(&lab.direct(), "rm -rf /nothing-here", b"");
    assert!(!out.status.success());
    let upload = dir.join("upload.bin");
    std::fs::write(&upload, vec![7u8; 12_345]).unwrap();
    let out = Command::new("scp")
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-O", "-P", &lab.port()])
        .arg(&upload)
        .arg(format!(
            "{}@127.0.0.1:{}",
            lab.direct(),
            dir.join("uploaded.bin").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "scp: {}", text(&out.stderr));
    r.ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    let failed = lab.server.client().request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&serde_json::json!({ "username": "alice", "password": "wrong-password" })),
    );
    assert_eq!(failed.status, 401, "{}", failed.text());
    r.ok(&["grant", "set", &grant, "--max-duration", "2h"]);
    r.ok(&["user", "add", "bob"]);
    r.ok(&["grant", "add", "--user", "bob", "--asset", "web-01"]);
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 3, "{sessions:?}");

    // The report of today, as JSON, against the audit log read independently.
    let report = r.json(&["report", "--format", "json"]);
    let events = r.json(&["audit", "list", "--limit", "100000"]);
    let events = events.as_array().unwrap();
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "session_started")
        .collect();
    assert_eq!(summary(&report, "sessions"), started.len() as u64);
    assert_eq!(summary(&report, "sessions"), 3);
    let users: HashSet<&str> = started
        .iter()
        .map(|e| e["event"]["user"].as_str().unwrap())
        .collect();
    assert_eq!(summary(&report, "users"), users.len() as u64);
    assert_eq!(summary(&report, "assets"), 1);
    // Privileged: as root (the test's own account when it runs as root) or with sudo.
    let escalated: HashSet<&str> = events
        .iter()
        .filter(|e| e["kind"] == "alert_raised" && e["event"]["alert"] == "privilege_escalation")
        .filter_map(|e| e["event"]["session"].as_str())
        .collect();
    assert_eq!(escalated.len(), 1, "the sudo session raised no alert");
    let privileged = started
        .iter()
        .filter(|e| {
            e["event"]["target"].as_str().unwrap().starts_with("root@")
                || escalated.contains(e["event"]["session"].as_str().unwrap())
        })
        .count() as u64;
    assert_eq!(summary(&report, "privileged_sessions"), privileged);
    assert_eq!(
        summary(&report, "failed_logins"),
        count(events, "login_failed")
    );
    assert!(summary(&report, "failed_logins") >= 1);
    assert_eq!(
        summary(&report, "access_denied"),
        count(events, "access_denied")
    );
    let denied = events
        .iter()
        .filter(|e| e["kind"] == "command_rule_matched" && e["event"]["action"] == "deny")
        .count() as u64;
    assert_eq!(summary(&report, "commands_denied"), denied);
    assert_eq!(denied, 1);
    assert_eq!(summary(&report, "alerts"), count(events, "alert_raised"));
    assert_eq!(
        summary(&report, "file_transfers"),
        count(events, "file_transferred")
    );
    assert_eq!(summary(&report, "file_transfers"), 1);
    assert_eq!(report["transfer_bytes"], 12_345);
    let grant_changes = count(events, "grant_added")
        + count(events, "grant_changed")
        + count(events, "grant_removed");
    assert_eq!(summary(&report, "grant_changes"), grant_changes);
    assert_eq!(summary(&report, "verification_failures"), 0);
    assert_eq!(report["verification"]["verified"], true);
    // The verification section checks the period's recordings: the two exec sessions (scp is
    // evidenced by its file events, not a recording).
    let recording_checks = report["verification"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["item"].as_str().unwrap().starts_with("recording "))
        .count();
    assert_eq!(recording_checks, 2, "{}", report["verification"]);
    // Durations and ends come from the chain.
    for session in report["sessions"].as_array().unwrap() {
        assert!(session["ended"].is_string(), "{session}");
        assert!(session["duration_secs"].as_i64().unwrap() >= 0);
    }
    // Each report made is itself in the audit log.
    let generated = r.json(&["audit", "list", "--kind", "report_generated"]);
    assert_eq!(generated.as_array().unwrap().len(), 1);
    assert_eq!(generated[0]["event"]["format"], "json");
    assert_eq!(generated[0]["event"]["via"], "cli");

    // HTML: the sections a person reads, each naming its controls, and the charts.
    let html_path = dir.join("report.html");
    r.ok(&[
        "report",
        "--format",
        "html",
        "--out",
        html_path.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    for part in [
        "Rampart access report",
        "The audit trail verifies.",
        "Who accessed which assets, when, and for how long",
        "Privileged sessions",
        "Failed and refused logins",
        "Denied and flagged commands, and alerts",
        "rm -rf /nothing-here",
        "File transfers",
        "uploaded.bin",
        "Grants, roles and memberships added, changed and removed",
        "max_duration",
        "Credential rotations",
        "Verification of the audit trail",
        "Supports SOC 2 CC6.1",
        "ISO 27001 A.8.15",
        "PCI DSS 10.3",
        "<svg",
        "Sessions per day",
    ] {
        assert!(html.contains(part), "the HTML report lacks {part:?}");
    }
    assert!(!html.contains("<script"), "the report must hold no script");

    // CSV: one row per session, and the same summary counts.
    let csv = r.ok(&["report", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let sessions_in_csv = rows
        .iter()
        .filter(|row| &row[0] == "session" || &row[0] == "privileged session")
        .count();
    assert_eq!(sessions_in_csv, 3);
    let csv_count = rows
        .iter()
        .find(|row| &row[0] == "summary" && &row[5] == "commands_denied")
        .unwrap();
    assert_eq!(&csv_count[6], "1");

    // PDF: Chromium's print of the same page; page 1 reads as the HTML and renders to a picture.
    let pdf = dir.join("report.pdf");
    let out = r.run(&["report", "--format", "pdf", "--out", pdf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wrote the pdf report"));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    let pdf_text = Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    let pdf_text = text(&pdf_text.stdout);
    for part in [
        "Rampart access report",
        "Sessions started",
        "The audit trail verifies.",
        "Verification of the audit trail",
    ] {
        assert!(
            pdf_text.contains(part),
            "the PDF lacks {part:?}:\n{pdf_text}"
        );
    }
    let png = dir.join("page");
    let out = Command::new("pdftoppm")
        .args(["-png", "-f", "1", "-l", "1", "-r", "50", "-singlefile"])
        .arg(&pdf)
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let picture = std::fs::read(dir.join("page.png")).unwrap();
    assert!(picture.starts_with(b"\x89PNG"));
    assert!(
        picture.len() > 5_000,
        "page 1 is blank: {} bytes",
        picture.len()
    );
    if let Ok(keep) = std::env::var("RAMPART_REPORT_ARTIFACTS") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(dir.join("page.png"), format!("{keep}/report-page-1.png")).unwrap();
        std::fs::copy(&pdf, format!("{keep}/report.pdf")).unwrap();
    }

    // The API: the same JSON for an auditor's token; a user's token is refused.
    r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    let auditor = r
        .ok(&["token", "create", "--user", "audrey", "--scope", "read"])
        .trim()
        .to_owned();
    let client = lab.server.client();
    let bearer = format!("Bearer {auditor}");
    let answer = client.request(
        "GET",
        "/api/v1/reports?format=json",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(summary(&answer.json(), "sessions"), 3);
    let answer = client.request(
        "GET",
        "/api/v1/reports?format=html",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(answer.text().contains("Rampart access report"));
    let answer = client.request(
        "GET",
        "/api/v1/reports?from=2026-12-01&to=2026-11-01",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("the period is empty"),
        "{}",
        answer.text()
    );
    let user = r
        .ok(&["token", "create", "--user", "alice", "--scope", "read"])
        .trim()
        .to_owned();
    let answer = client.request(
        "GET",
        "/api/v1/reports",
        &[("authorization", &format!("Bearer {user}"))],
        None,
    );
    assert_eq!(answer.status, 403);
    let generated = r.json(&["audit", "list", "--kind", "report_generated"]);
    assert!(
        generated
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"]["name"] == "audrey"
                && e["event"]["via"].as_str().unwrap().starts_with("api from ")),
        "{generated}"
    );

    // A recording removed behind Rampart's back: the report no longer says the trail verifies.
    let victim = sessions.iter().find(|s| s["kind"] == "exec").unwrap()["id"]
        .as_str()
        .unwrap();
    let recordings = r.data_dir().join("recordings");
    let mut removed = false;
    for entry in std::fs::read_dir(&recordings).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(victim)
        {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
            removed = true;
        }
    }
    assert!(
        removed,
        "no recording of {victim} in {}",
        recordings.display()
    );
    let report = r.json(&["report", "--format", "json"]);
    assert_eq!(report["verification"]["verified"], false);
    assert!(summary(&report, "verification_failures") >= 1);
    let html = r.ok(&["report"]);
    assert!(html.contains("The audit trail does NOT verify"));
    assert!(html.contains(&format!("recording {victim}")));
}
