//! The command line as people meet it (issue 21): shell completion, pipes closed early,
//! `--json` errors, dates and schedules, exports that fail, the kill notice.

use super::BIN;
use super::ssh::{Lab, text};
use rampart_testkit::{Rampart, require_tool};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` with standard output a pipe whose reading end is already closed, as after
/// `| head` has read what it wanted.
fn into_closed_pipe(mut command: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    command.spawn().unwrap().wait_with_output().unwrap()
}

#[test]
fn completion_scripts_are_printed_for_each_shell_and_complete_in_bash() {
    let r = Rampart::without_init(BIN);
    for shell in ["bash", "zsh", "fish"] {
        let script = r.ok(&["completion", shell]);
        assert!(
            script.contains("rampart") && script.len() > 1000,
            "{shell}: {script}"
        );
    }
    let out = r.run(&["completion", "powershell-7"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("possible values: bash"),
        "{}",
        text(&out.stderr)
    );
    if require_tool("bash").is_none() {
        return;
    }
    // The script loads, and completes a subcommand and a flag.
    let script = r.scratch().join("rampart.bash");
    std::fs::write(&script, r.ok(&["completion", "bash"])).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(rampart us); COMP_CWORD=1; COMP_LINE='rampart us'; COMP_POINT=10; \
         _rampart rampart us rampart; echo \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(rampart grant add --req); COMP_CWORD=3; COMP_LINE='rampart grant add --req'; \
         COMP_POINT=23; _rampart rampart --req add; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.first().map(String::as_str), Some("user"), "{lines:?}");
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("--require-mfa"),
        "{lines:?}"
    );
}

#[test]
fn listings_into_a_closed_pipe_end_quietly() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    for args in [
        &["session", "list"][..],
        &["session", "list", "--json"],
        &["audit", "list"],
        &["user", "list"],
        &["completion", "bash"],
    ] {
        let out = into_closed_pipe(r.command(args));
        assert_eq!(text(&out.stderr), "", "{args:?} complained");
        assert_eq!(
            out.status.code(),
            Some(141),
            "{args:?}: as a tool stopped by SIGPIPE"
        );
    }
}

#[test]
fn json_errors_are_json() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    let cases: [(&[&str], &str); 5] = [
        (&["user", "show", "nobody"], "user nobody not found"),
        (&["user", "add", "alice"], "already exists"),
        (
            &[
                "grant", "add", "--user", "alice", "--asset", "x", "--until", "soon",
            ],
            "invalid --until time",
        ),
        (&["user", "frobnicate"], "unrecognized subcommand"),
        (&["session", "show", "not-an-id"], "not-an-id"),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        args.push("--json");
        let out = r.run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        let error: Value = serde_json::from_str(text(&out.stderr).trim())
            .unwrap_or_else(|_| panic!("{args:?}: not JSON: {}", text(&out.stderr)));
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(!message.starts_with("error:"), "{message}");
    }
}

#[test]
fn dates_and_schedules_are_accepted_or_refused_with_the_accepted_forms() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    r.ok_with_stdin(
        &["account", "add", "root@web-01", "--password-stdin"],
        b"pw\n",
    );
    let grant = |extra: &[&str]| {
        let mut args = vec!["grant", "add", "--user", "alice", "--asset", "web-01"];
        args.extend_from_slice(extra);
        r.run(&args)
    };
    // A date alone: the whole day, in UTC (end bounds are exclusive).
    let out = grant(&["--from", "2026-12-01", "--until", "2026-12-31"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let grants = r.json(&["grant", "list"]);
    assert_eq!(grants[0]["valid_from"], "2026-12-01T00:00:00Z", "{grants}");
    assert_eq!(grants[0]["valid_until"], "2027-01-01T00:00:00Z", "{grants}");
    let explain = |at: &str| {
        r.json(&[
            "grant", "explain", "--user", "alice", "--asset", "web-01", "--at", at,
        ])
    };
    assert_eq!(explain("2026-12-31T23:59:59Z")[0]["decision"], "allow");
    assert_eq!(explain("2027-01-01T00:00:00Z")[0]["decision"], "deny");

    let refused: [(&[&str], &[&str], &str); 5] = [
        (
            &["--until", "31/12/2026"],
            &[
                "invalid --until time \"31/12/2026\"",
                "RFC 3339 time such as 2026-12-31T18:00:00Z",
                "a date such as 2026-12-31",
            ],
            "time zone",
        ),
        (
            &["--from", "tomorrow"],
            &["invalid --from time", "a date such as 2026-12-31"],
            "time zone",
        ),
        (
            &["--schedule", "Mon-Fri 8-18"],
            &["bad time \"8\": times are HH:MM on a 24-hour clock, such as 08:00-18:00"],
            "time zone",
        ),
        (
            &["--schedule", "Mon-Fri 8:00-18:00 Europe/Berlin"],
            &["bad time \"8:00\": times are HH:MM"],
            "time zone",
        ),
        (
            &["--schedule", "Mon-Fri 08:00-18:00 Mars/Olympus"],
            &["unknown time zone \"Mars/Olympus\""],
            "bad time",
        ),
    ];
    for (extra, expected, not_expected) in refused {
        let before = r.snapshot();
        let out = grant(extra);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: one line: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{extra:?}: {part:?} not in {stderr}");
        }
        assert!(!stderr.contains(not_expected), "{extra:?}: {stderr}");
        assert_eq!(r.snapshot(), before, "{extra:?} changed something");
    }
}

#[test]
fn replay_into_a_closed_pipe_ends_quietly_a_failed_export_is_not_audited_and_a_kill_is_told_once() {
    let Some(lab) = Lab::start() else { return };
    let out = lab.ssh(&lab.direct(), "seq 1 2000", b"");
    assert!(out.status.success());
    let id = lab.sessions()[0]["id"].as_str().unwrap().to_owned();

    let out = into_closed_pipe(lab.r.command(&["replay", &id, "--no-wait"]));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("replaying session"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "replay complained: {stderr}");
    assert_eq!(out.status.code(), Some(141));

    // An export to a file that exists fails before anything is exported: no export event.
    let existing = lab.r.scratch().join("taken.cast");
    std::fs::write(&existing, "mine").unwrap();
    let out = lab
        .r
        .run(&["recording", "export", &id, "-o", existing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot create"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine");
    assert_eq!(
        lab.events("recording_exported").len(),
        0,
        "a failed export was audited"
    );
    let fresh = lab.r.scratch().join("fresh.cast");
    lab.r
        .ok(&["recording", "export", &id, "-o", fresh.to_str().unwrap()]);
    assert_eq!(lab.events("recording_exported").len(), 1);

    // A kill from the portal with its default reason: the user is told once who ended it.
    lab.r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    let token = lab
        .r
        .json(&["token", "create", "--user", "audrey", "--scope", "write"])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let child = lab
        .ssh_command(&lab.direct())
        .arg("sleep 60")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        let live = lab.r.json(&["session", "list", "--live"]);
        if let Some(id) = live[0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no live session");
        std::thread::sleep(Duration::from_millis(100));
    };
    let bearer = format!("Bearer {token}");
    let response = lab.server.client().request(
        "POST",
        &format!("/api/v1/sessions/{live}/kill"),
        &[("authorization", &bearer)],
        Some(&serde_json::json!({})),
    );
    assert!(response.status < 300, "{}", response.text());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rampart: session ended: ended by audrey"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("ended by").count(), 1, "{stderr}");
    lab.sessions();
    let reason = lab.r.json(&["session", "show", &live])["end_reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reason, "ended by audrey");
}
