//! Web approval at SSH login with stock OpenSSH: keyboard-interactive shows a one-time link; the
//! user approves it in the portal (real headless Chromium) and the login completes; a denial,
//! no answer in time, or an answer by another user refuses it.

use crate::ssh::Lab;
use crate::ssh_certificates::Portal;
use rampart_testkit::require_tool;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Rampart with web approval on (answers within `timeout`), and alice's portal password.
fn lab(timeout: &str) -> Option<Lab> {
    let lab = Lab::start_with_env(&[
        ("RAMPART_AUTH_SSH_WEB_APPROVAL", "true"),
        ("RAMPART_AUTH_SSH_WEB_APPROVAL_TIMEOUT", timeout),
    ])?;
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    Some(lab)
}

/// `ssh alice@LOGIN@web-01 'echo approved'` by keyboard-interactive only (no key), waiting; and
/// the approval link it printed.
fn waiting_ssh(lab: &Lab) -> (Child, String, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "PreferredAuthentications=keyboard-interactive"])
        .args(["-o", "PubkeyAuthentication=no", "-o", "LogLevel=INFO"])
        .args(["-p", &lab.port()])
        .arg(format!("{}@127.0.0.1", lab.direct()))
        .arg("echo approved")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut printed = String::new();
    let link = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ssh printed no approval link: {printed}"
        );
        printed.push_str(&line);
        if let Some(at) = line.find("https://") {
            let link: String = line[at..].split_whitespace().next().unwrap().to_owned();
            break link;
        }
    };
    assert!(
        link.starts_with(&format!("https://{}/ssh?approve=", lab.server.http)),
        "{link}"
    );
    (child, link, stderr)
}

fn finish(child: Child, mut stderr: BufReader<std::process::ChildStderr>) -> Output {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stderr = rest.into_bytes();
    out
}

fn approval_id(link: &str) -> &str {
    link.split("approve=").nth(1).unwrap()
}

#[test]
fn an_ssh_login_completes_after_approval_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let Some(lab) = lab("20s") else { return };
    let (child, link, stderr) = waiting_ssh(&lab);
    let artifacts = crate::browser::artifacts_dir().join("ssh-approval");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let browser = Command::new(node)
        .arg("ssh_approval.mjs")
        .current_dir(&browser_dir)
        .env("RAMPART_URL", format!("https://{}", lab.server.http))
        .env("APPROVAL_URL", &link)
        .env("LOGIN_USER", "alice")
        .env("LOGIN_PASSWORD", "alice-password-1")
        .env("EXPECT_LOGIN", lab.direct())
        .env("ANSWER", "approve")
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        browser.status.success() && text(&browser.stdout).contains("approved in the browser"),
        "ssh_approval.mjs failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        text(&browser.stdout),
        text(&browser.stderr)
    );
    let out = finish(child, stderr);
    assert_eq!(text(&out.stdout), "approved\n", "{}", text(&out.stderr));
    let logins = lab.events("login_succeeded");
    assert!(
        logins
            .iter()
            .any(|e| e["event"]["user"] == "alice" && e["event"]["method"] == "web-approval"),
        "{logins:?}"
    );
}

#[test]
fn an_ssh_login_is_refused_on_deny_on_timeout_and_when_another_user_answers() {
    let Some(lab) = lab("4s") else { return };
    lab.r.ok(&["user", "add", "bob"]);
    let alice = Portal::login(&lab, "alice", "alice-password-1");
    let bob = Portal::login(&lab, "bob", "bob-password-1");

    // Denied by alice.
    let (child, link, stderr) = waiting_ssh(&lab);
    let path = format!("/api/v1/me/ssh-approvals/{}", approval_id(&link));
    let shown = alice.call("GET", &path, None);
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["login"], lab.direct());
    let denied = alice.call("POST", &path, Some(&json!({ "approve": false })));
    assert_eq!(denied.status, 200, "{}", denied.text());
    let out = finish(child, stderr);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );

    // Bob can neither see nor approve alice's login; unanswered, it times out.
    let (child, link, stderr) = waiting_ssh(&lab);
    let path = format!("/api/v1/me/ssh-approvals/{}", approval_id(&link));
    assert_eq!(bob.call("GET", &path, None).status, 404);
    assert_eq!(
        bob.call("POST", &path, Some(&json!({ "approve": true })))
            .status,
        404
    );
    let out = finish(child, stderr);
    assert!(!out.status.success(), "approved by nobody");
    assert_eq!(text(&out.stdout), "");
    // Too late now.
    assert_eq!(
        alice
            .call("POST", &path, Some(&json!({ "approve": true })))
            .status,
        404
    );
    let failed = lab.events("login_failed");
    assert!(
        failed
            .iter()
            .any(|e| e["event"]["method"] == "web-approval"),
        "{failed:?}"
    );
    assert!(
        !lab.events("login_succeeded")
            .iter()
            .any(|e| e["event"]["method"] == "web-approval")
    );
}
