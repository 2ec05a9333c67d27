//! Access requests end to end through a real `rampart serve` and `sshd`: a user without a grant
//! asks over the API, a configured approver approves, the user connects with stock `ssh`, and
//! the grant's end ends the live session. Nobody approves their own request, someone who is not
//! an approver of it cannot decide it, and every step reaches the webhook sink.

use super::ssh::{Lab, text};
use serde_json::{Value, json};
use std::time::Duration;

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

#[test]
fn an_approved_request_is_a_grant_that_ends_the_live_session_and_nobody_approves_their_own() {
    let (webhook_port, bodies) = super::evidence::webhook_receiver();
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/events");
    let Some(lab) = Lab::start_with_env(&[
        ("RAMPART_REQUESTS_APPROVERS", "leads@env=prod"),
        ("RAMPART_REQUESTS_MAX_DURATION", "1h"),
        ("RAMPART_WEBHOOK_URL", &webhook_url),
    ]) else {
        return;
    };
    let r = &lab.r;
    // Alice has no standing grant; web-01 is a production asset; bob leads production, carol
    // is an ordinary user, adam an administrator.
    let standing = r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    r.ok(&["grant", "remove", &standing]);
    r.ok(&["asset", "set", "web-01", "--label", "env=prod"]);
    for user in ["bob", "carol"] {
        r.ok(&["user", "add", user]);
    }
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    r.ok(&["group", "add", "leads"]);
    r.ok(&["group", "member", "add", "leads", "bob"]);
    let (alice, bob, carol, adam) = (
        token(&lab, "alice"),
        token(&lab, "bob"),
        token(&lab, "carol"),
        token(&lab, "adam"),
    );
    let out = lab.ssh(&lab.direct(), "echo before", b"");
    assert!(
        !out.status.success(),
        "alice reached web-01 without a grant"
    );

    // Asking: longer than requests.max_duration is refused; a reason is required.
    let (status, answer) = call(
        &lab,
        &alice,
        "POST",
        "/api/v1/requests",
        Some(json!({ "asset": "web-01", "duration": "2h", "reason": "too long" })),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("at most 1h"), "{answer}");
    let (status, _) = call(
        &lab,
        &alice,
        "POST",
        "/api/v1/requests",
        Some(json!({ "asset": "web-01", "duration": "10m", "reason": "  " })),
    );
    assert_eq!(status, 400);
    let (status, asked) = call(
        &lab,
        &alice,
        "POST",
        "/api/v1/requests",
        Some(json!({
            "asset": "web-01",
            "accounts": [lab.login],
            "duration": "12s",
            "reason": "INC-42: look at the web server",
        })),
    );
    assert_eq!(status, 201, "{asked}");
    assert_eq!(asked["state"], "pending");
    let id = asked["id"].as_str().unwrap().to_owned();

    // Approvers hear of it through the webhook.
    let heard = loop {
        let body = bodies
            .recv_timeout(Duration::from_secs(30))
            .expect("a webhook call within 30 s");
        if body.contains("access_requested") {
            break body;
        }
    };
    assert!(heard.contains("INC-42: look at the web server"), "{heard}");

    // Alice cannot approve her own request; neither could she as an administrator.
    let (status, answer) = call(
        &lab,
        &alice,
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(json!({})),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(answer.to_string().contains("their own request"), "{answer}");
    // Carol is no approver: she does not even see it.
    let (status, listed) = call(&lab, &carol, "GET", "/api/v1/requests", None);
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    let (status, _) = call(
        &lab,
        &carol,
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(json!({})),
    );
    assert_eq!(status, 404);
    // Bob, a lead of env=prod, sees it as his to decide.
    let (_, listed) = call(&lab, &bob, "GET", "/api/v1/requests?state=pending", None);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["can_decide"], true);
    assert_eq!(listed[0]["mine"], false);
    let (_, mine) = call(&lab, &alice, "GET", "/api/v1/requests", None);
    assert_eq!(mine[0]["mine"], true);
    assert_eq!(mine[0]["can_decide"], false);
    // Only the standing grant the lab began with (removed above) was ever added.
    assert_eq!(lab.events("grant_added").len(), 1);

    let (status, approved) = call(
        &lab,
        &bob,
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(json!({ "note": "ok for the incident" })),
    );
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decided_by"], "user:bob");
    let grant = approved["grant"].as_str().unwrap().to_owned();
    assert!(approved["valid_until"].is_string());
    // Decided once only, and the grant is alice's, for web-01, ending on its own.
    let (status, _) = call(
        &lab,
        &adam,
        "POST",
        &format!("/api/v1/requests/{id}/deny"),
        Some(json!({})),
    );
    assert_eq!(status, 400);
    let grants = r.json(&["grant", "list"]);
    let made = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant.as_str())
        .unwrap();
    assert!(made["valid_until"].is_string(), "{made}");
    let decided = lab.events("access_request_decided");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["event"]["decision"], "approved");
    assert_eq!(decided[0]["event"]["grant"], grant.as_str());
    assert_eq!(decided[0]["actor"]["name"], "bob");

    // Alice connects now; when the grant ends, her live session ends with it.
    let out = lab.ssh(&lab.direct(), "echo approved-access", b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "approved-access");
    let child = lab
        .ssh_command(&lab.direct())
        .arg("sleep 120; echo never")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!text(&out.stdout).contains("never"));
    assert!(
        text(&out.stderr).contains("access revoked"),
        "{}",
        text(&out.stderr)
    );
    let out = lab.ssh(&lab.direct(), "echo after", b"");
    assert!(
        !out.status.success(),
        "the expired grant still lets alice in"
    );

    // The operator decides from the CLI; a denial keeps the note.
    r.ok(&[
        "request",
        "create",
        "--user",
        "carol",
        "--asset",
        "web-01",
        "--duration",
        "30m",
        "--reason",
        "curious",
    ]);
    let pending = r.json(&["request", "list", "--state", "pending"]);
    let carols = pending[0]["id"].as_str().unwrap();
    let denied = r.json(&["request", "deny", &carols[..24], "--note", "no need"]);
    assert_eq!(denied["state"], "denied");
    assert_eq!(denied["note"], "no need");
    assert!(denied["grant"].is_null());
    // And the report counts both.
    let report = r.json(&["report", "--format", "json"]);
    let count = |key: &str| {
        report["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["key"] == key)
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count("access_requests"), 2);
    assert_eq!(count("requests_approved"), 1);
    assert_eq!(count("requests_denied"), 1);
}
