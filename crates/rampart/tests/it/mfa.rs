//! The TOTP second factor end to end, as issue 20's self-service asks: an administrator's
//! `rampart user mfa enroll` only sends a one-time enrolment link; the user opens it (the invite
//! API the portal's /invite page calls), answers with the code an authenticator app computes
//! from the URI shown to them, and no administrator ever sees the secret. `reset` removes it.

use rampart_testkit::{Rampart, Server, files_containing, totp_code, totp_secret, unix_now};
use serde_json::{Value, json};

use super::BIN;

/// Answers with the code the app shows now.
pub(crate) fn right_code(uri: &str) -> Option<String> {
    Some(totp_code(uri, unix_now()))
}

/// A six-digit code that matches none of the steps the server could accept, even if a step
/// boundary passes meanwhile.
pub(crate) fn wrong_code(uri: &str) -> Option<String> {
    let now = unix_now();
    let near: Vec<String> = [now - 30, now, now + 30, now + 60]
        .iter()
        .map(|at| totp_code(uri, *at))
        .collect();
    (0..).map(|n| format!("{n:06}")).find(|c| !near.contains(c))
}

/// The token of the link `rampart user mfa enroll` or `user invite` printed (text or JSON).
fn link_token(printed: &str) -> String {
    let start = printed.find("/invite?token=").expect("a link") + "/invite?token=".len();
    printed[start..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap()
        .to_owned()
}

/// The user's side of an enrolment link on `server`: open it (the URI their app reads), then
/// set `password` and answer with `answer(uri)`. Returns the URI and the answer's response.
fn use_link(
    server: &Server,
    token: &str,
    password: &str,
    answer: impl FnOnce(&str) -> Option<String>,
) -> (String, rampart_testkit::HttpResponse) {
    // A client per request: a kept-alive connection may be closed by the server meanwhile.
    let started =
        server
            .client()
            .request("POST", &format!("/api/v1/invites/{token}/start"), &[], None);
    assert_eq!(started.status, 200, "{}", started.text());
    let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
    let code = answer(&uri).unwrap_or_default();
    let body = json!({ "password": password, "code": code });
    let accepted = server.client().request(
        "POST",
        &format!("/api/v1/invites/{token}"),
        &[],
        Some(&body),
    );
    (uri, accepted)
}

/// Enrols `user`'s TOTP the way it is done now: the administrator sends a link (`rampart user
/// mfa enroll`), the user uses it on `server` with `password` and a code from their app.
/// Returns the otpauth URI the user's app holds.
pub(crate) fn enroll_by_link(r: &Rampart, server: &Server, user: &str, password: &str) -> String {
    let link = r.json(&["user", "mfa", "enroll", user, "--replace"]);
    let token = link_token(link["path"].as_str().unwrap());
    let (uri, accepted) = use_link(server, &token, password, right_code);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    uri
}

fn secret_of(uri: &str) -> String {
    uri.split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap()
        .to_owned()
}

fn mfa_events(r: &Rampart) -> Vec<(String, String)> {
    r.json(&["audit", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("mfa_"))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["event"]["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn auth_epoch(r: &Rampart, user: &str) -> i64 {
    r.json(&["user", "show", user])["auth_epoch"]
        .as_i64()
        .unwrap()
}

/// The administrator's command prints a one-time link and nothing secret; the user's own
/// enrolment through it stores the factor, sealed; the secret is in no administrator's output,
/// no file of the data directory and no later output.
#[test]
fn an_administrator_sends_a_link_and_the_user_enrols_a_totp_no_administrator_sees() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["user", "add", "bob"]);
    let epoch = auth_epoch(&r, "alice");

    let sent = r.run(&["user", "mfa", "enroll", "alice"]);
    assert!(sent.status.success(), "{sent:?}");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&sent.stdout),
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        shown.starts_with("enrolment link for alice (works once, until "),
        "{shown}"
    );
    assert!(shown.contains("which no administrator sees"), "{shown}");
    assert!(
        !shown.contains("otpauth") && !shown.contains("secret="),
        "{shown}"
    );
    // Nothing is enrolled until the user answers.
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], false);
    assert_eq!(r.json(&["vault", "status"])["secrets"], 0);

    let server = r.serve();
    let token = link_token(&shown);
    // A wrong code stores nothing and leaves the link usable.
    let (_, refused) = use_link(&server, &token, "alice-password-1", wrong_code);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], false);
    let (uri, accepted) = use_link(&server, &token, "alice-password-1", right_code);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert!(uri.starts_with("otpauth://totp/Rampart:alice?"), "{uri}");
    // Used once.
    let again =
        server
            .client()
            .request("POST", &format!("/api/v1/invites/{token}/start"), &[], None);
    assert_eq!(again.status, 404);

    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], true);
    assert_eq!(r.json(&["user", "show", "bob"])["mfa_enrolled"], false);
    assert!(auth_epoch(&r, "alice") > epoch);
    let list = r.ok(&["user", "list"]);
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    let mfa_column = header.iter().position(|h| *h == "MFA").unwrap();
    let column = |user: &str| {
        let row = list.lines().find(|l| l.starts_with(user)).unwrap();
        row.split_whitespace().nth(mfa_column).unwrap().to_owned()
    };
    assert_eq!(
        (column("alice"), column("bob")),
        ("totp".into(), "-".into())
    );
    assert_eq!(
        mfa_events(&r),
        [("mfa_enrolled".to_owned(), "alice".to_owned())]
    );
    assert_eq!(r.json(&["vault", "status"])["secrets"], 1);

    // The secret is in no administrator's output, no file of the data directory and no later
    // output.
    let secret = secret_of(&uri);
    let raw = totp_secret(&uri);
    assert_eq!(raw.len(), 20);
    assert!(!shown.contains(&secret));
    for needle in [secret.as_bytes(), raw.as_slice()] {
        let hits = files_containing(&r.data_dir(), needle);
        assert!(hits.is_empty(), "secret in clear in {hits:?}");
    }
    assert!(!r.snapshot().to_string().contains(&secret));
    // The search would find it: here is a file that holds it in clear.
    let clear = r.scratch().join("shown-uri.txt");
    std::fs::write(&clear, &uri).unwrap();
    assert_eq!(files_containing(r.scratch(), secret.as_bytes()), [clear]);
}

/// An unknown user gets no link; an enrolled user's second link needs `--replace` (and the old
/// factor works until the new link is used); `reset` removes the factor so the user must enrol
/// again, and a plain link works after it.
#[test]
fn a_second_link_needs_replace_and_reset_removes_the_factor() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    let before = r.snapshot();
    let unknown = r.run(&["user", "mfa", "enroll", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&unknown.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr).trim_end(),
        "error: user nobody not found"
    );
    assert_eq!(r.snapshot(), before);

    let server = r.serve();
    let first = enroll_by_link(&r, &server, "alice", "alice-password-1");
    let enrolled_epoch = auth_epoch(&r, "alice");

    // Without --replace: refused before a link is made, and nothing changes.
    let before = r.snapshot();
    let refused = r.run(&["user", "mfa", "enroll", "alice"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "");
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .starts_with("error: user alice already has a second factor: use --replace"),
        "{refused:?}"
    );
    assert_eq!(r.snapshot(), before);

    // With --replace and --json: the link as JSON; the old factor stands until it is used.
    let link: Value = r.json(&["user", "mfa", "enroll", "alice", "--replace"]);
    assert_eq!(link["user"], "alice");
    assert!(link["expires_at"].is_string());
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], true);
    let token = link_token(link["path"].as_str().unwrap());
    let (replaced, accepted) = use_link(&server, &token, "alice-password-2", right_code);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert_ne!(secret_of(&first), secret_of(&replaced), "a new secret");
    let replaced_epoch = auth_epoch(&r, "alice");
    assert!(replaced_epoch > enrolled_epoch);
    assert_eq!(r.json(&["vault", "status"])["secrets"], 1);

    let out = r.ok(&["user", "mfa", "reset", "alice"]);
    assert_eq!(
        out.trim_end(),
        "removed the second factor of user alice: they must enroll again"
    );
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], false);
    assert!(auth_epoch(&r, "alice") > replaced_epoch);
    assert_eq!(r.json(&["vault", "status"])["secrets"], 0);
    let again = r.run(&["user", "mfa", "reset", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim_end(),
        "error: second factor of user alice not found"
    );
    let alice = |kind: &str| (kind.to_owned(), "alice".to_owned());
    assert_eq!(
        mfa_events(&r),
        [
            alice("mfa_enrolled"),
            alice("mfa_enrolled"),
            alice("mfa_reset")
        ]
    );

    // After a reset, a plain link works again.
    let sent = r.ok(&["user", "mfa", "enroll", "alice"]);
    let (_, accepted) = use_link(&server, &link_token(&sent), "alice-password-3", right_code);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], true);
}
