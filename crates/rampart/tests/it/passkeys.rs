//! Passkeys (issue 20) in real headless Chromium with a DevTools virtual authenticator
//! (`tests/browser/passkeys.mjs`): registration on the Account page, password then passkey,
//! passwordless, removal, replayed and tampered assertions, a user without a passkey, a grant
//! that requires a second factor; then what the audit log says about it. The portal is reached as `https://localhost:PORT`:
//! WebAuthn needs a domain name, and `localhost` is the default relying party.

use rampart_testkit::{Rampart, require_tool};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn events(r: &Rampart, kind: &str) -> Vec<Value> {
    let events = r.json(&["audit", "list", "--limit", "100000"]);
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn passkeys_register_log_in_with_and_without_password_and_removed_ones_fail_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let r = Rampart::new(crate::BIN);
    r.ok(&["user", "add", "dave"]);
    r.ok_with_stdin(&["user", "password", "dave"], b"dave-password-1");
    // A grant that requires a second factor: a passkey login satisfies it, a password alone not.
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    r.ok_with_stdin(
        &["account", "add", "root@web-01", "--password-stdin"],
        b"target-password-1",
    );
    r.ok(&[
        "grant",
        "add",
        "--user",
        "dave",
        "--asset",
        "web-01",
        "--require-mfa",
    ]);
    r.ok(&["user", "add", "erin"]);
    r.ok_with_stdin(&["user", "password", "erin"], b"erin-password-1");
    let server = r.serve();
    let artifacts = crate::browser::artifacts_dir().join("passkeys");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new(node)
        .arg("passkeys.mjs")
        .current_dir(&browser_dir)
        .env(
            "RAMPART_URL",
            format!("https://localhost:{}", server.http.port()),
        )
        .env("LOGIN_USER", "dave")
        .env("PASSWORD", "dave-password-1")
        .env("PLAIN_USER", "erin")
        .env("PLAIN_PASSWORD", "erin-password-1")
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("passkeys done in the browser"),
        "passkeys.mjs failed (screenshots in {}):\n{}\n{}",
        artifacts.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let added: Vec<_> = events(&r, "passkey_added")
        .iter()
        .map(|e| (e["event"]["name"].clone(), e["actor"]["name"].clone()))
        .collect();
    assert_eq!(
        added,
        [
            (Value::from("laptop"), Value::from("dave")),
            (Value::from("security key"), Value::from("dave"))
        ],
        "each registration audited, by dave"
    );
    let removed = events(&r, "passkey_removed");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["event"]["name"], "security key");
    let methods: Vec<String> = events(&r, "login_succeeded")
        .iter()
        .filter(|e| e["event"]["user"] == "dave")
        .map(|e| e["event"]["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        methods.iter().any(|m| m == "web-password+passkey"),
        "password then passkey: {methods:?}"
    );
    assert!(
        methods.iter().any(|m| m == "web-passkey"),
        "passwordless: {methods:?}"
    );
    let failed = events(&r, "login_failed");
    assert!(
        failed.iter().any(|e| e["event"]["method"] == "web-passkey"),
        "refused passkeys count as failed logins: {failed:?}"
    );
    let erin: Vec<String> = events(&r, "login_succeeded")
        .iter()
        .filter(|e| e["event"]["user"] == "erin")
        .map(|e| e["event"]["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(erin, ["web-password"], "erin logged in by password alone");

    // A passkey is a second factor wherever the portal asks for one: dave (a passkey, no TOTP)
    // cannot mint a database token with an API token, which carries no second factor, and the
    // user list says what he has.
    let listed = r.json(&["user", "show", "dave"]);
    assert_eq!(listed["passkeys"], true, "{listed}");
    assert_eq!(listed["mfa_enrolled"], false, "{listed}");
    let token = r
        .ok(&["token", "create", "--user", "dave", "--scope", "write"])
        .trim()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let answer = server.client().request(
        "POST",
        "/api/v1/db-tokens",
        &[("authorization", &bearer)],
        Some(&serde_json::json!({})),
    );
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(
        answer
            .text()
            .contains("needs a login with your second factor"),
        "{}",
        answer.text()
    );

    // Dave lost his laptop: the administrator's reset removes his passkey (he has no TOTP), so a
    // second reset finds nothing left to remove.
    let said = r.ok(&["user", "mfa", "reset", "dave"]);
    assert_eq!(
        said.trim(),
        "removed the second factors of user dave (1 passkey): they must enroll again"
    );
    let resets = events(&r, "mfa_reset");
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0]["event"]["user"], "dave");
    assert_eq!(resets[0]["event"]["passkeys"], 1);
    assert_eq!(r.json(&["user", "show", "dave"])["passkeys"], false);
    let again = r.run(&["user", "mfa", "reset", "dave"]);
    let stderr = text(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("second factor of user dave not found"),
        "{stderr}"
    );
}
