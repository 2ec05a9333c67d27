//! A store that cannot answer is an internal failure, refused and logged: never taken for a
//! "no" that changes what happens next.

use crate::auth::{ALICE_PASSWORD, password_login};
use crate::ssh::{Lab, text};
use rampart_testkit::require_tool;
use std::process::Command;

#[test]
fn a_store_error_during_a_jump_is_refused_as_internal_not_taken_for_a_port_forward() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    // An asset row the store cannot read back: listing the assets fails inside the store,
    // while web-01 itself still reads.
    lab.r
        .ok(&["asset", "add", "broken-01", "--host", "127.0.0.9"]);
    let db = lab.r.data_dir().join("rampart.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(".timeout 10000")
        .arg("UPDATE assets SET created_at = 'not a time' WHERE name = 'broken-01'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let jump = Command::new("ssh")
        .arg("-F")
        .arg(&lab.client_config)
        .arg("-J")
        .arg(format!("alice@127.0.0.1:{}", lab.port()))
        .args(["-p", &lab.target.port.to_string()])
        .arg(format!("{}@web-01", lab.login))
        .arg("echo jumped")
        .output()
        .unwrap();
    assert_ne!(jump.status.code(), Some(0), "{}", text(&jump.stderr));
    assert!(!text(&jump.stdout).contains("jumped"));
    // Not recorded as a refused port forward (the jump was never one).
    let refusals = lab.events("access_denied");
    assert!(
        refusals
            .iter()
            .all(|e| e["event"]["action"] != "port_forward"),
        "{refusals:?}"
    );
    // The administrators see the store's failure in the log.
    let (_, log) = lab.server.terminate();
    assert!(
        log.contains("cannot look up the assets for a jump"),
        "{log}"
    );
}

#[test]
fn a_damaged_password_hash_refuses_the_login_as_internal_without_counting_toward_lockout() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    let set_password = || {
        lab.r.ok_with_stdin(
            &["user", "password", "alice"],
            format!("{ALICE_PASSWORD}\n").as_bytes(),
        );
    };
    set_password();
    // Text that is no password hash at all: the store reads it, the check cannot use it.
    let db = lab.r.data_dir().join("rampart.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(".timeout 10000")
        .arg("UPDATE users SET password_hash = 'not-a-phc-string' WHERE name = 'alice'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // More attempts with her right password than the lockout threshold (5), over SSH and web.
    let client = lab.server.client();
    for _ in 0..6 {
        let out = password_login(&lab, &lab.direct(), ALICE_PASSWORD, "127.0.0.1");
        assert_eq!(out.status.code(), Some(255), "{out:?}");
        let answer = client.request(
            "POST",
            "/api/v1/login",
            &[],
            Some(&serde_json::json!({ "username": "alice", "password": ALICE_PASSWORD })),
        );
        assert_eq!(answer.status, 500, "an internal failure: {}", answer.text());
    }
    // Nothing was counted: repaired, she logs in at once.
    let alice = lab.r.json(&["user", "show", "alice"]);
    assert!(alice["locked_until"].is_null(), "{alice}");
    set_password();
    let ok = password_login(&lab, &lab.direct(), ALICE_PASSWORD, "127.0.0.1");
    assert_eq!(text(&ok.stdout), "in\n", "{}", text(&ok.stderr));
}
