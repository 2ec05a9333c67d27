//! A store that cannot answer is an internal failure, refused and logged: never taken for a
//! "no" that changes what happens next.

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
