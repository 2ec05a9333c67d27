//! The `approve` command rule end to end: a stock OpenSSH client with a terminal through
//! `rampart serve` to a real `sshd`. A held shell line runs on the target only once an approver
//! approves it (the CLI, the API, or the portal in headless Chromium); a denial (with the
//! approver's note) or the timeout clears it, and the marker file it would create never
//! appears. Nobody approves their own command; an exec an approve rule matches is refused.

use super::ssh::{Lab, Terminal, text};
use rampart_testkit::require_tool;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn token(lab: &Lab, user: &str) -> String {
    lab.r
        .ok(&["token", "create", "--user", user, "--scope", "write"])
        .trim()
        .to_owned()
}

fn call(lab: &Lab, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let answer =
        lab.server
            .client()
            .request(method, path, &[("authorization", &bearer)], body.as_ref());
    let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status, value)
}

/// web-01 is a production asset with an approve rule on `touch`; bob leads production (an
/// approver for it), carol is an ordinary user.
fn setup(lab: &Lab) {
    let r = &lab.r;
    r.ok(&["asset", "set", "web-01", "--label", "env=prod"]);
    for user in ["bob", "carol"] {
        r.ok(&["user", "add", user]);
    }
    r.ok(&["group", "add", "leads"]);
    r.ok(&["group", "member", "add", "leads", "bob"]);
    r.ok(&[
        "rule",
        "add",
        "--label",
        "env=prod",
        "--match",
        "prefix:touch",
        "--action",
        "approve",
    ]);
}

fn shell(lab: &Lab) -> Terminal {
    let command = format!(
        "ssh -F {} -p {} -tt {}@127.0.0.1",
        lab.client_config.display(),
        lab.port(),
        lab.direct()
    );
    let terminal = Terminal::start(&command);
    terminal.wait_until("a prompt", |screen| {
        screen.lines().any(|l| l.trim_end().ends_with(['#', '$']))
    });
    terminal
}

/// The pending approval `rampart approval list` shows for a line containing `needle` (up to
/// 60 s).
fn pending(lab: &Lab, needle: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = lab.r.json(&["approval", "list"]);
        if let Some(found) = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["line"].as_str().unwrap_or("").contains(needle))
        {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no pending approval for {needle}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_file(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Types `line` and Enter; returns the approval it waits for, once the user sees the wait.
fn hold(lab: &Lab, terminal: &Terminal, line: &str, needle: &str, seen_before: usize) -> Value {
    terminal.keys(&[line]);
    terminal.wait_for(needle);
    terminal.keys(&["Enter"]);
    terminal.wait_until("the wait for an approver", |screen| {
        screen.matches("waiting for approval").count() > seen_before
    });
    pending(lab, needle)
}

#[test]
fn a_held_shell_line_runs_only_when_approved_and_is_cleared_when_denied_or_timed_out() {
    if require_tool("tmux").is_none() {
        return;
    }
    let Some(lab) = Lab::start_with_env(&[
        ("RAMPART_REQUESTS_APPROVERS", "leads@env=prod"),
        ("RAMPART_RULES_APPROVAL_TIMEOUT", "15s"),
    ]) else {
        return;
    };
    setup(&lab);
    let (alice, bob, carol) = (
        token(&lab, "alice"),
        token(&lab, "bob"),
        token(&lab, "carol"),
    );
    let dir = lab.r.scratch();
    let (denied, approved, late, exec) = (
        dir.join("denied-marker"),
        dir.join("approved-marker"),
        dir.join("late-marker"),
        dir.join("exec-marker"),
    );

    // An exec cannot wait for an approver: refused, with what to do instead, before any
    // session.
    let out = lab.ssh(&lab.direct(), &format!("touch {}", exec.display()), b"");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "rule #10 approve prefix:touch needs an approver's decision, which only an \
             interactive shell can wait for"
        ),
        "{stderr}"
    );
    assert!(!exec.exists());
    assert!(lab.sessions().is_empty());

    let terminal = shell(&lab);
    // 1. Denied through the API with a note: the user sees who and why; the line never runs.
    let waiting = hold(
        &lab,
        &terminal,
        &format!("touch {}", denied.display()),
        "denied-marker",
        0,
    );
    let id = waiting["id"].as_str().unwrap().to_owned();
    assert_eq!(waiting["requester"], "alice");
    assert_eq!(waiting["rule"], "#10 approve prefix:touch");
    // Keys typed while it waits are discarded: this never reaches the shell.
    terminal.keys(&["echo typed-while-$((6*7))", "Enter"]);
    // Nobody approves their own command; someone who is not an approver of it cannot see it.
    let (status, answer) = call(
        &lab,
        &alice,
        "POST",
        &format!("/api/v1/command-approvals/{id}/approve"),
        None,
    );
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.to_string().contains("their own"),
        "self-approval: {answer}"
    );
    let (status, _) = call(
        &lab,
        &carol,
        "POST",
        &format!("/api/v1/command-approvals/{id}/approve"),
        None,
    );
    assert_eq!(status, 404);
    let (status, listed) = call(&lab, &carol, "GET", "/api/v1/command-approvals", None);
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(&id), "{listed}");
    // The approver sees it, pending, and may decide it.
    let (status, listed) = call(&lab, &bob, "GET", "/api/v1/command-approvals", None);
    assert_eq!(status, 200);
    let seen = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("bob does not see the approval: {listed}"));
    assert_eq!(seen["can_decide"], true);
    let (status, answer) = call(
        &lab,
        &bob,
        "POST",
        &format!("/api/v1/command-approvals/{id}/deny"),
        Some(json!({ "note": "not during the freeze" })),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "denied");
    terminal.wait_for("command denied by bob: not during the freeze");
    // A second decision is refused.
    let (status, _) = call(
        &lab,
        &bob,
        "POST",
        &format!("/api/v1/command-approvals/{id}/approve"),
        None,
    );
    assert_eq!(status, 400);

    // 2. Approved with the CLI: the held Enter goes to the target and the command runs.
    let waiting = hold(
        &lab,
        &terminal,
        &format!("touch {}", approved.display()),
        "approved-marker",
        1,
    );
    assert!(!approved.exists(), "the line ran before it was approved");
    lab.r
        .ok(&["approval", "approve", waiting["id"].as_str().unwrap()]);
    terminal.wait_for("approved by cli:");
    assert!(wait_for_file(&approved), "the approved line did not run");

    // 3. Nobody decides: after rules.approval_timeout the line is cleared.
    hold(
        &lab,
        &terminal,
        &format!("touch {}", late.display()),
        "late-marker",
        2,
    );
    terminal.wait_for("no decision within 15 s");

    // The session goes on.
    terminal.keys(&["echo still-$((6*7))", "Enter"]);
    terminal.wait_for("still-42");
    terminal.keys(&["exit", "Enter"]);
    for _ in 0..300 {
        if !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!denied.exists(), "a denied line ran on the target");
    assert!(!late.exists(), "a line nobody approved ran on the target");

    // The audit trail: each request and its decision, in the session.
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0]["id"];
    let requested = lab.events("command_approval_requested");
    assert_eq!(requested.len(), 3, "{requested:?}");
    assert!(requested.iter().all(|e| e["event"]["session"] == *session));
    assert!(
        requested
            .iter()
            .all(|e| e["event"]["rule"] == "#10 approve prefix:touch")
    );
    let decided = lab.events("command_approval_decided");
    let decisions: Vec<&str> = decided
        .iter()
        .map(|e| e["event"]["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["denied", "approved", "timed_out"],
        "{decided:?}"
    );
    assert_eq!(decided[0]["event"]["note"], "not during the freeze");
    assert_eq!(decided[0]["actor"]["name"], "bob");
    // The command log has what ran, and nothing of what did not.
    let commands = lab.r.json(&["audit", "commands", "--user", "alice"]);
    let ran: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["command"].as_str())
        .collect();
    assert!(
        ran.iter().any(|c| c.contains("approved-marker")),
        "{commands}"
    );
    assert!(ran.iter().any(|c| c.contains("still-")), "{commands}");
    for never in ["denied-marker", "late-marker", "typed-while"] {
        assert!(
            !ran.iter().any(|c| c.contains(never)),
            "{never}: {commands}"
        );
    }
}

#[test]
fn a_held_line_is_approved_in_the_portal_in_chromium_and_then_runs() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if require_tool("tmux").is_none() || !crate::browser::require_playwright() {
        return;
    }
    let Some(lab) = Lab::start_with_env(&[("RAMPART_REQUESTS_APPROVERS", "leads@env=prod")]) else {
        return;
    };
    setup(&lab);
    lab.r
        .ok_with_stdin(&["user", "password", "bob"], b"bob-password-1");
    let marker = lab.r.scratch().join("portal-marker");
    let terminal = shell(&lab);
    let waiting = hold(
        &lab,
        &terminal,
        &format!("touch {}", marker.display()),
        "portal-marker",
        0,
    );
    assert!(!marker.exists());

    let artifacts = crate::browser::artifacts_dir().join("approvals");
    let output = Command::new(node)
        .arg("approvals.mjs")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
        .env("RAMPART_URL", format!("https://{}", lab.server.http))
        .env("LOGIN_USER", "bob")
        .env("LOGIN_PASSWORD", "bob-password-1")
        .env("LINE", waiting["line"].as_str().unwrap())
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    terminal.wait_for("approved by bob");
    assert!(wait_for_file(&marker), "the approved line did not run");
    let decided = lab.events("command_approval_decided");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["event"]["decision"], "approved");
    assert_eq!(decided[0]["actor"]["name"], "bob");
}

#[test]
fn a_session_killed_while_its_line_waits_ends_and_the_line_never_runs() {
    if require_tool("tmux").is_none() {
        return;
    }
    let Some(lab) = Lab::start_with_env(&[("RAMPART_REQUESTS_APPROVERS", "leads@env=prod")]) else {
        return;
    };
    setup(&lab);
    let marker = lab.r.scratch().join("killed-marker");
    let terminal = shell(&lab);
    let waiting = hold(
        &lab,
        &terminal,
        &format!("touch {}", marker.display()),
        "killed-marker",
        0,
    );
    let session = waiting["session"].as_str().unwrap().to_owned();
    lab.r.ok(&[
        "session",
        "kill",
        &session,
        "--reason",
        "maintenance window",
    ]);
    for _ in 0..300 {
        if !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!terminal.is_running(), "the session did not end");
    let ended = lab.sessions();
    assert!(
        ended[0]["end_reason"]
            .as_str()
            .unwrap()
            .contains("maintenance window"),
        "{ended:?}"
    );
    let decided = lab.events("command_approval_decided");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["event"]["decision"], "cancelled");
    assert_eq!(decided[0]["event"]["session"], session.as_str());
    // Too late to approve it now.
    let out = lab
        .r
        .run(&["approval", "approve", waiting["id"].as_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already cancelled"),
        "{}",
        text(&out.stderr)
    );
    assert!(!marker.exists(), "a line of a killed session ran");
}
