//! Running Rampart in production: backups during activity and restores, the upgrade guard.

use super::BIN;
use super::ssh::{Lab, text};
use rampart_testkit::{Rampart, output_with_input};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Polls `check` until it holds, for up to 60 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_backup_taken_during_a_live_session_restores_verifies_and_opens_the_vault() {
    let Some(lab) = Lab::start() else { return };
    // Activity before the backup: a finished, recorded session.
    let out = output_with_input(
        lab.ssh_command(&lab.direct()).arg("-tt"),
        b"echo before-$((40+2))\nexit\n",
    );
    assert!(text(&out.stdout).contains("before-42"));
    lab.sessions();
    // Activity during the backup: a session live while it is taken.
    let mut live = lab
        .ssh_command(&lab.direct())
        .arg("echo during-start; sleep 4; echo during-end")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("a live session", || {
        lab.r
            .json(&["session", "list", "--live"])
            .as_array()
            .unwrap()
            .len()
            == 1
    });

    let backup = lab.r.scratch().join("backup-1");
    let out = lab.r.run(&["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("backed up"), "{stdout}");
    assert!(stdout.contains("holds the vault master key"), "{stdout}");
    assert!(
        text(&out.stderr).contains("backup: keys and recordings:"),
        "progress: {}",
        text(&out.stderr)
    );
    assert!(backup.join("backup.json").is_file());
    assert!(live.wait().unwrap().success());
    assert_eq!(lab.events("backup_made").len(), 1, "the backup is audited");

    // A backup never overwrites: the same directory again is refused.
    let again = lab.r.run(&["backup", "--to", backup.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    // Restore refuses a data directory that holds anything.
    let refused = lab.r.run(&["restore", backup.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("is not empty"),
        "{}",
        text(&refused.stderr)
    );

    let restored = Rampart::without_init(BIN);
    let out = restored.run(&["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("the vault opens (1 secret(s))"),
        "{}",
        text(&out.stdout)
    );
    let verify = restored.run(&["audit", "verify"]);
    let report = text(&verify.stdout) + &text(&verify.stderr);
    assert!(verify.status.success(), "{report}");
    assert!(
        report.contains("sealed"),
        "the finished session's recording verifies: {report}"
    );
    assert!(
        report.contains("live or unfinished"),
        "the live session was copied: {report}"
    );
    let vault = restored.json(&["vault", "status"]);
    assert_eq!(vault["secrets"], 1);
    assert_eq!(vault["unreadable"].as_array().unwrap().len(), 0);
    assert_eq!(
        restored.json(&["user", "list"]),
        lab.r.json(&["user", "list"]),
        "the restored node has the same users"
    );

    // The operator's next step: serving the restored node records the unclean snapshot and
    // seals the interrupted recording; everything still verifies.
    let server = restored.serve();
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    let verify = restored.run(&["audit", "verify"]);
    let report = text(&verify.stdout) + &text(&verify.stderr);
    assert!(verify.status.success(), "{report}");
    assert!(!report.contains("live or unfinished"), "{report}");
    assert_eq!(
        restored
            .json(&["audit", "list", "--limit", "1000"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "unclean_stop_detected")
            .count(),
        1
    );
}

#[test]
fn a_damaged_or_incomplete_backup_is_refused_and_leaves_nothing_behind() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    let backup = r.scratch().join("backup");
    r.ok(&[
        "backup",
        "--to",
        backup.to_str().unwrap(),
        "--without-master-key",
    ]);
    assert!(!backup.join("keys/vault-master.key").exists());

    // Without the master key kept apart, the restored vault cannot open: refused.
    let target = Rampart::without_init(BIN);
    let out = target.run(&["restore", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        !target.data_dir().exists(),
        "a failed restore leaves nothing"
    );
    assert!(
        std::fs::read_dir(target.scratch()).unwrap().count() == 0,
        "no partial directory is left"
    );
    // With it, the restore works.
    let key = r.data_dir().join("keys/vault-master.key");
    let with_key =
        Rampart::without_init(BIN).with_args(&["--master-key-file", key.to_str().unwrap()]);
    with_key.ok(&["restore", backup.to_str().unwrap()]);
    assert_eq!(with_key.json(&["user", "list"]), r.json(&["user", "list"]));

    // A changed byte anywhere is found.
    let db = backup.join("rampart.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&db, bytes).unwrap();
    let target =
        Rampart::without_init(BIN).with_args(&["--master-key-file", key.to_str().unwrap()]);
    let out = target.run(&["restore", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rampart.db does not match its SHA-256"),
        "{}",
        text(&out.stderr)
    );
    assert!(!target.data_dir().exists());
}

#[test]
fn a_database_from_a_newer_version_is_refused_with_a_clear_message() {
    let Some(sqlite3) = rampart_testkit::require_tool("sqlite3") else {
        return;
    };
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    let before = r.snapshot();
    let out = std::process::Command::new(sqlite3)
        .arg(r.data_dir().join("rampart.db"))
        .arg(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &["user", "list"][..],
        &[
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--ssh-listen",
            "127.0.0.1:0",
        ],
    ] {
        let out = r.run(args);
        assert!(!out.status.success(), "{args:?} ran on a newer database");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("written by a newer rampart (schema 9999")
                && stderr.contains("migrations are one-way"),
            "{args:?}: {stderr}"
        );
    }
    let out = std::process::Command::new("sqlite3")
        .arg(r.data_dir().join("rampart.db"))
        .arg("DELETE FROM _sqlx_migrations WHERE version = 9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(r.snapshot(), before, "nothing was changed");
}
