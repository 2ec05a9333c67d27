//! Self-service: a user changes their own password (the current one checked, counted like a
//! login) and adds their own SSH keys, in the portal (real headless Chromium) and over the API;
//! an API token cannot; the change ends the user's other web sessions (A11).

use crate::ssh::Lab;
use crate::ssh_certificates::Portal;
use rampart_testkit::{require_tool, ssh_keygen};
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_user_changes_their_password_and_adds_a_key_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    lab.r.ok(&["user", "add", "carol"]);
    lab.r
        .ok_with_stdin(&["user", "password", "carol"], b"carol-password-1");
    let (carol_key, carol_pub) = ssh_keygen(lab.r.scratch(), "carol", "ed25519", "");
    let _ = carol_key;
    let public = std::fs::read_to_string(&carol_pub).unwrap();
    let fingerprint = text(
        &Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&carol_pub)
            .output()
            .unwrap()
            .stdout,
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_owned();
    let artifacts = crate::browser::artifacts_dir().join("account");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new(node)
        .arg("account.mjs")
        .current_dir(&browser_dir)
        .env("RAMPART_URL", format!("https://{}", lab.server.http))
        .env("LOGIN_USER", "carol")
        .env("OLD_PASSWORD", "carol-password-1")
        .env("NEW_PASSWORD", "carol-password-2")
        .env("PUBLIC_KEY", public.trim())
        .env("FINGERPRINT", &fingerprint)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("self-service done in the browser"),
        "account.mjs failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let carol = lab.r.json(&["user", "show", "carol"]);
    assert_eq!(
        carol["keys"][0]["fingerprint"],
        fingerprint.as_str(),
        "{carol}"
    );
    let changed = lab.events("user_password_changed");
    assert!(
        changed.iter().any(|e| e["actor"]["name"] == "carol"),
        "changed by carol herself: {changed:?}"
    );
}

#[test]
fn a_password_change_needs_the_current_password_and_ends_other_sessions() {
    let Some(lab) = Lab::start() else { return };
    let first = Portal::login(&lab, "alice", "alice-password-1");
    let second = Portal::login_only(&lab, "alice", "alice-password-1");
    let wrong = first.call(
        "POST",
        "/api/v1/me/password",
        Some(
            &json!({ "current_password": "alice-password-9", "new_password": "alice-password-2" }),
        ),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert!(
        lab.events("login_failed")
            .iter()
            .any(|e| e["event"]["method"] == "web-password"),
        "a wrong current password counts as a failed login"
    );
    assert_eq!(
        second.call("GET", "/api/v1/me", None).status,
        200,
        "nothing changed yet"
    );
    let changed = first.call(
        "POST",
        "/api/v1/me/password",
        Some(
            &json!({ "current_password": "alice-password-1", "new_password": "alice-password-2" }),
        ),
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(second.call("GET", "/api/v1/me", None).status, 401, "A11");
    assert_eq!(first.call("GET", "/api/v1/me", None).status, 401, "A11");
    Portal::login_only(&lab, "alice", "alice-password-2");

    // An API token changes no credential.
    let token = lab
        .r
        .ok(&["token", "create", "--user", "alice", "--scope", "write"])
        .trim()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let refused = lab.server.client().request(
        "POST",
        "/api/v1/me/password",
        &[("authorization", &bearer)],
        Some(
            &json!({ "current_password": "alice-password-2", "new_password": "alice-password-3" }),
        ),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
}

#[test]
fn a_user_enrols_their_own_second_factor_and_then_needs_it() {
    let Some(lab) = Lab::start() else { return };
    let alice = Portal::login(&lab, "alice", "alice-password-1");
    let started = alice.call("POST", "/api/v1/me/totp", Some(&json!({})));
    assert_eq!(started.status, 200, "{}", started.text());
    let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with("otpauth://totp/Rampart:alice?secret="),
        "{uri}"
    );
    // A wrong code stores nothing, and the enrolment has to start again.
    let wrong = alice.call(
        "POST",
        "/api/v1/me/totp/confirm",
        Some(&json!({ "code": "000000" })),
    );
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    assert_eq!(
        lab.r.json(&["user", "show", "alice"])["mfa_enrolled"],
        false
    );
    let started = alice.call("POST", "/api/v1/me/totp", Some(&json!({})));
    let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
    let code = rampart_testkit::totp_code(&uri, rampart_testkit::unix_now());
    let confirmed = alice.call(
        "POST",
        "/api/v1/me/totp/confirm",
        Some(&json!({ "code": code })),
    );
    assert_eq!(confirmed.status, 200, "{}", confirmed.text());
    assert_eq!(lab.r.json(&["user", "show", "alice"])["mfa_enrolled"], true);
    // The session that enrolled ends; a password alone no longer logs in.
    assert_eq!(alice.call("GET", "/api/v1/me", None).status, 401, "A11");
    let client = lab.server.client();
    let without = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({ "username": "alice", "password": "alice-password-1" })),
    );
    assert_eq!(without.status, 401, "{}", without.text());
    // No administrator saw the secret: it is in no audit event.
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let events = lab.r.ok(&["audit", "list", "--limit", "100000"]);
    assert!(!events.contains(secret));
    let enrolled = lab.events("mfa_enrolled");
    assert!(
        enrolled.iter().any(|e| e["actor"]["name"] == "alice"),
        "{enrolled:?}"
    );
}

#[test]
fn an_invited_user_sets_their_own_password_and_second_factor_once() {
    let Some(lab) = Lab::start() else { return };
    lab.r.ok(&["user", "add", "dave"]);
    let invite = lab.r.json(&["user", "invite", "dave", "--ttl", "1h"]);
    let path = invite["path"].as_str().unwrap().to_owned();
    let token = path.strip_prefix("/invite?token=").unwrap().to_owned();
    assert!(token.starts_with("rampartinv_"), "{path}");
    let client = lab.server.client();
    let page = client.request("GET", &path, &[], None);
    assert_eq!(page.status, 200);
    let started = client.request("POST", &format!("/api/v1/invites/{token}/start"), &[], None);
    assert_eq!(started.status, 200, "{}", started.text());
    assert_eq!(started.json()["user"], "dave");
    let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
    let code = rampart_testkit::totp_code(&uri, rampart_testkit::unix_now());
    // A short password is refused and leaves the link usable.
    let short = client.request(
        "POST",
        &format!("/api/v1/invites/{token}"),
        &[],
        Some(&json!({ "password": "short", "code": code })),
    );
    assert_eq!(short.status, 400, "{}", short.text());
    let accepted = client.request(
        "POST",
        &format!("/api/v1/invites/{token}"),
        &[],
        Some(&json!({ "password": "dave-password-1", "code": code })),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let dave = lab.r.json(&["user", "show", "dave"]);
    assert_eq!(dave["mfa_enrolled"], true, "{dave}");
    assert_eq!(dave["has_password"], true, "{dave}");
    // Dave logs in with both; the link works once.
    let later = rampart_testkit::unix_now() + 30;
    let login = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({
            "username": "dave",
            "password": "dave-password-1",
            "totp": rampart_testkit::totp_code(&uri, later),
        })),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let again = client.request("POST", &format!("/api/v1/invites/{token}/start"), &[], None);
    assert_eq!(again.status, 404, "{}", again.text());
    let kinds: Vec<String> = ["invite_created", "invite_used"]
        .iter()
        .map(|k| format!("{k}:{}", lab.events(k).len()))
        .collect();
    assert_eq!(kinds, ["invite_created:1", "invite_used:1"]);
    // The token itself is in no audit event.
    let events = lab.r.ok(&["audit", "list", "--limit", "100000"]);
    assert!(!events.contains(&token));
}

#[test]
fn an_invited_user_enrols_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    lab.r.ok(&["user", "add", "erin"]);
    let invite = lab.r.json(&["user", "invite", "erin"]);
    let url = format!(
        "https://{}{}",
        lab.server.http,
        invite["path"].as_str().unwrap()
    );
    let artifacts = crate::browser::artifacts_dir().join("invite");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new(node)
        .arg("invite.mjs")
        .current_dir(&browser_dir)
        .env("INVITE_URL", &url)
        .env("LOGIN_USER", "erin")
        .env("NEW_PASSWORD", "erin-password-1")
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("invite used in the browser"),
        "invite.mjs failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let erin = lab.r.json(&["user", "show", "erin"]);
    assert_eq!(erin["mfa_enrolled"], true, "{erin}");
    assert_eq!(erin["has_password"], true, "{erin}");
}

/// Issue 20's self-service list includes tokens: on the Account page in Chromium a user makes
/// an API token of their own (shown once), it works against the API, and revoking it there
/// ends it. (Database tokens are made on the Databases page: `redis.rs`, `browser.rs`.)
#[test]
fn a_user_makes_uses_and_revokes_their_own_api_token_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    lab.r.ok(&["user", "add", "carol"]);
    lab.r
        .ok_with_stdin(&["user", "password", "carol"], b"carol-password-1");
    let artifacts = crate::browser::artifacts_dir().join("account-tokens");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new(node)
        .arg("account_tokens.mjs")
        .current_dir(&browser_dir)
        .env("RAMPART_URL", format!("https://{}", lab.server.http))
        .env("LOGIN_USER", "carol")
        .env("PASSWORD", "carol-password-1")
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success()
            && text(&out.stdout).contains("API token made, used and revoked in the browser"),
        "account_tokens.mjs failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let by_carol = |kind: &str| {
        lab.events(kind)
            .iter()
            .filter(|e| e["actor"]["name"] == "carol" && e["event"]["user"] == "carol")
            .count()
    };
    assert_eq!(by_carol("api_token_created"), 1);
    assert_eq!(by_carol("api_token_revoked"), 1);
}
