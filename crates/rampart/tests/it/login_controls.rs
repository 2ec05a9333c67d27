//! Login rules and lockout end to end: `rampart user set`, `user unlock`, `user show`, and the
//! `[auth]` configuration, through the real executable.

use rampart_testkit::{Rampart, require_tool};
use serde_json::{Value, json};
use std::process::Command;

use super::BIN;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn events_of_kind(r: &Rampart, kind: &str) -> Vec<Value> {
    r.json(&["audit", "list", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["event"].clone())
        .collect()
}

#[test]
fn login_rules_are_set_kept_cleared_and_shown() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    assert_eq!(
        r.json(&["user", "show", "alice"])["login_rules"],
        json!({ "allow_from": [], "deny_from": [], "hours": null })
    );
    let out = r.ok(&[
        "user",
        "set",
        "alice",
        "--allow-from",
        "10.0.0.0/8, 2001:db8::/32",
        "--deny-from",
        "10.66.0.0/16",
        "--login-hours",
        "Mon-Fri 08:00-18:00 Europe/Berlin",
    ]);
    assert_eq!(
        out.trim(),
        "set the login rules of user alice: allow from 10.0.0.0/8,2001:db8::/32, deny from \
         10.66.0.0/16, login hours Mon-Fri 08:00-18:00 Europe/Berlin"
    );
    let alice = r.json(&["user", "show", "alice"]);
    assert_eq!(
        alice["login_rules"],
        json!({
            "allow_from": ["10.0.0.0/8", "2001:db8::/32"],
            "deny_from": ["10.66.0.0/16"],
            "hours": "Mon-Fri 08:00-18:00 Europe/Berlin",
        })
    );
    assert_eq!(alice["locked_until"], Value::Null);
    let shown = r.ok(&["user", "show", "alice"]);
    for line in [
        "allow from:  10.0.0.0/8,2001:db8::/32",
        "deny from:   10.66.0.0/16",
        "login hours: Mon-Fri 08:00-18:00 Europe/Berlin",
        "lock:        not locked",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }

    // A flag left out keeps its rule; an empty value removes it.
    r.ok(&["user", "set", "alice", "--allow-from", ""]);
    let rules = r.json(&["user", "show", "alice"])["login_rules"].clone();
    assert_eq!(rules["allow_from"], json!([]));
    assert_eq!(rules["deny_from"], json!(["10.66.0.0/16"]));
    assert_eq!(rules["hours"], "Mon-Fri 08:00-18:00 Europe/Berlin");
    let updated = r.json(&[
        "user",
        "set",
        "alice",
        "--login-hours",
        "",
        "--deny-from",
        "",
    ]);
    assert_eq!(
        updated["login_rules"],
        json!({ "allow_from": [], "deny_from": [], "hours": null })
    );
    // An address alone is one host; the mapped IPv6 form is the IPv4 address.
    r.ok(&[
        "user",
        "set",
        "alice",
        "--allow-from",
        "192.0.2.7,::ffff:198.51.100.9",
    ]);
    assert_eq!(
        r.json(&["user", "list"])[0]["login_rules"]["allow_from"],
        json!(["192.0.2.7/32", "198.51.100.9/32"])
    );

    let changes = events_of_kind(&r, "user_login_rules_changed");
    assert_eq!(changes.len(), 4);
    assert_eq!(
        changes[0],
        json!({
            "event": "user_login_rules_changed",
            "user": "alice",
            "allow_from": "10.0.0.0/8,2001:db8::/32",
            "deny_from": "10.66.0.0/16",
            "login_hours": "Mon-Fri 08:00-18:00 Europe/Berlin",
        })
    );
    assert_eq!(changes[2]["login_hours"], Value::Null);
}

#[test]
fn bad_rules_get_one_clear_line_and_change_nothing() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["user", "set", "alice", "--deny-from", "10.66.0.0/16"]);
    let before = r.snapshot();
    let before_alice = r.json(&["user", "show", "alice"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--allow-from", "10.0.0.300"],
            "--allow-from: invalid address \"10.0.0.300\"",
        ),
        (
            &["--allow-from", "10.0.0.0/33"],
            "--allow-from: invalid network \"10.0.0.0/33\"",
        ),
        (
            &["--deny-from", "10.0.0.1/8"],
            "host bits are set (did you mean 10.0.0.0/8?)",
        ),
        (&["--deny-from", "10.0.0.0/8,,192.0.2.1"], "empty entry"),
        (
            &["--allow-from", "example.com"],
            "invalid address \"example.com\"",
        ),
        (
            &["--login-hours", "Mon-Fri 8:00-18:00"],
            "--login-hours: invalid schedule",
        ),
        (
            &["--login-hours", "Mon-Fri 08:00-18:00 Mars/Olympus"],
            "unknown time zone \"Mars/Olympus\"",
        ),
        // A good value beside a bad one changes nothing either.
        (
            &["--allow-from", "10.0.0.0/8", "--login-hours", "weekdays"],
            "invalid schedule",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["user", "set", "alice"];
        args.extend_from_slice(flags);
        let out = r.run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should contain {expected:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    }
    for (args, expected) in [
        (
            vec!["user", "set", "nobody", "--allow-from", "10.0.0.0/8"],
            "user nobody not found",
        ),
        (vec!["user", "unlock", "nobody"], "user nobody not found"),
    ] {
        let out = r.run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim(), format!("error: {expected}"));
    }
    // No rule flag at all is a usage error.
    let out = r.run(&["user", "set", "alice"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--allow-from"),
        "{}",
        text(&out.stderr)
    );

    assert_eq!(r.snapshot(), before);
    assert_eq!(r.json(&["user", "show", "alice"]), before_alice);
}

#[test]
fn a_locked_user_is_shown_and_unlock_lifts_the_lock_with_an_audit_event() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["user", "add", "bob"]);
    // Failed logins come from the gateway; here the counters are written as it would write them.
    let db = r.data_dir().join("rampart.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "INSERT INTO login_failures (key, failures, window_start, locked_until) VALUES \
             ('password:user:alice', 5, '2026-06-01T12:00:00Z', '2999-01-01T00:00:00Z'), \
             ('publickey:user:alice', 5, '2026-06-01T12:00:00Z', '2998-01-01T00:00:00Z'), \
             ('password:user:bob', 5, '2026-06-01T12:00:00Z', '2026-06-01T12:15:00Z'), \
             ('password:source:192.0.2.1', 5, '2026-06-01T12:00:00Z', '2999-01-01T00:00:00Z')",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    assert!(r.ok(&["user", "show", "alice"]).contains(
        "lock:        password logins locked until 2999-01-01T00:00:00Z; \
         publickey logins locked until 2998-01-01T00:00:00Z"
    ));
    let shown = r.json(&["user", "show", "alice"]);
    assert_eq!(shown["locked_until"], "2999-01-01T00:00:00Z");
    assert_eq!(
        shown["locks"],
        json!([
            { "factor": "password", "until": "2999-01-01T00:00:00Z" },
            { "factor": "publickey", "until": "2998-01-01T00:00:00Z" },
        ])
    );
    // A lock that has ended is no lock.
    assert_eq!(
        r.json(&["user", "show", "bob"])["locked_until"],
        Value::Null
    );

    assert_eq!(
        r.ok(&["user", "unlock", "alice"]).trim(),
        "unlocked user alice"
    );
    assert!(
        r.ok(&["user", "show", "alice"])
            .contains("lock:        not locked")
    );
    assert_eq!(
        r.json(&["user", "unlock", "alice"]),
        json!({ "user": "alice", "unlocked": true })
    );
    let unlocked = events_of_kind(&r, "user_unlocked");
    assert_eq!(unlocked.len(), 2);
    assert_eq!(unlocked[0]["user"], "alice");
    let events = r.json(&["audit", "list"]);
    let last = events.as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "user_unlocked");
    assert_eq!(last["actor"]["type"], "local_cli");

    // The source's lock is not the user's to lift.
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT key FROM login_failures ORDER BY key")
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "password:source:192.0.2.1\npassword:user:bob\n"
    );
    assert!(r.ok(&["audit", "verify"]).contains("everything verifies"));
}

#[test]
fn bad_auth_configuration_stops_serve_naming_the_key() {
    let r = Rampart::new(BIN);
    let config = r.scratch().join("rampart.toml");
    std::fs::write(
        &config,
        "[auth]\nallow_from = [\"10.0.0.0/8\", \"10.0.0.300\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // Arguments, environment, what the one line of error must say.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["serve", "--config", config],
            vec![],
            "key auth.allow_from): invalid address \"10.0.0.300\"",
        ),
        (
            vec!["serve"],
            vec![("RAMPART_AUTH_DENY_FROM", "10.0.0.0/8,nowhere")],
            "auth.deny_from (from environment RAMPART_AUTH_DENY_FROM)",
        ),
        (
            vec!["serve"],
            vec![("RAMPART_AUTH_LOGIN_HOURS", "office hours")],
            "auth.login_hours (from environment RAMPART_AUTH_LOGIN_HOURS): invalid schedule",
        ),
        (
            vec!["serve"],
            vec![("RAMPART_AUTH_TRUSTED_PROXIES", "::/0")],
            "auth.trusted_proxies (from environment RAMPART_AUTH_TRUSTED_PROXIES)",
        ),
        (
            vec!["serve"],
            vec![("RAMPART_AUTH_LOCKOUT_THRESHOLD", "-1")],
            "auth.lockout_threshold",
        ),
        (
            vec!["serve"],
            vec![("RAMPART_AUTH_LOCKOUT_WINDOW", "10 minutes")],
            "auth.lockout_window",
        ),
        (
            vec!["serve"],
            vec![("RAMPART_AUTH_LOCKOUT_DURATION", "0s")],
            "auth.lockout_duration",
        ),
    ];
    for (args, env, expected) in cases {
        let out = r.command(&args).envs(env.iter().copied()).output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?} {env:?}: {stderr:?} should mention {expected:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(
            !r.data_dir().exists(),
            "{args:?} created the data directory"
        );
    }
    // An unknown key in [auth] is refused too.
    std::fs::write(
        r.scratch().join("typo.toml"),
        "[auth]\nallow = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let typo = r.scratch().join("typo.toml");
    let out = r.run(&["serve", "--config", typo.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown field `allow`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_records_the_auth_settings_it_runs_with() {
    let r = Rampart::new(BIN);
    let config = r.scratch().join("rampart.toml");
    std::fs::write(
        &config,
        "[auth]\nallow_from = [\"127.0.0.0/8\", \"::1\"]\nlogin_hours = \"daily 00:00-24:00\"\n\
         trusted_proxies = [\"127.0.0.1\"]\nlockout_threshold = 7\nlockout_window = \"5m\"\n",
    )
    .unwrap();
    let r = r.with_args(&["--config", config.to_str().unwrap()]);
    let (status, stderr) = r
        .serve_with_env(&[("RAMPART_AUTH_LOCKOUT_DURATION", "1h")])
        .terminate();
    assert!(status.success(), "{stderr}");
    let started = events_of_kind(&r, "server_started");
    assert_eq!(
        started[0]["settings"]["auth"],
        json!({
            "allow_from": "127.0.0.0/8,::1/128",
            "deny_from": "",
            "login_hours": "daily 00:00-24:00 UTC",
            "trusted_proxies": "127.0.0.1/32",
            "require_mfa": false,
            "lockout_threshold": 7,
            "lockout_window": "5m",
            "lockout_duration": "1h",
        })
    );
}
