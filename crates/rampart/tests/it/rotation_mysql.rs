//! MySQL/MariaDB credential rotation against a real MariaDB (issue 17): the user's password is
//! changed on the server through the dialer (as the user itself, or by `ALTER USER` through a
//! rotation account), proven by a fresh login, and committed; a rotation account that cannot
//! log in leaves the old password in place and working. The new password comes from
//! `RAMPART_TEST_ROTATION_PASSWORD_FILE` (debug builds), so it can be searched for everywhere.

use crate::mysql::{Mariadb, mariadb, start_mariadb, token};
use crate::rotation::{NEW, OLD};
use rampart_testkit::{Rampart, Server, files_containing, output_with_input};
use serde_json::Value;
use std::process::{Command, Stdio};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `password` logs `user` in on the MariaDB server directly.
fn works_directly(db: &Mariadb, user: &str, password: &str) -> bool {
    Command::new("mariadb")
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &db.port.to_string(), "-u", user])
        .args([
            "-N",
            "-B",
            "--connect-timeout=30",
            "--skip-ssl",
            "-e",
            "select 1",
        ])
        .env("MYSQL_PWD", password)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .status
        .success()
}

/// A server user `user`@127.0.0.1 with `password`, allowed to read appdb (nothing else).
fn create_user(db: &Mariadb, user: &str, password: &str) {
    let out = db.direct(&format!(
        "create user '{user}'@'127.0.0.1' identified by '{password}'; \
         grant select on appdb.* to '{user}'@'127.0.0.1'"
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Rampart serving the MySQL front with `user@my-01` vaulted (password `OLD`) and granted to
/// alice, and the next rotation's password file holding `NEW`.
fn rampart_for(
    db: &Mariadb,
    user: &str,
    password_file: &std::path::Path,
) -> (Rampart, Server, u16) {
    std::fs::write(password_file, format!("{NEW}\n")).unwrap();
    crate::db_common::rampart_for_database(
        "mysql",
        "my-01",
        db.port,
        user,
        OLD,
        &[(
            "RAMPART_TEST_ROTATION_PASSWORD_FILE",
            password_file.to_str().unwrap(),
        )],
    )
}

fn rotate(r: &Rampart, account: &str, password_file: &std::path::Path) -> (bool, String) {
    let out = output_with_input(
        r.command(&["account", "rotate", account])
            .env("RAMPART_TEST_ROTATION_PASSWORD_FILE", password_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

fn rotation_events(r: &Rampart, account: &str) -> Vec<Value> {
    let events = r.json(&["audit", "list", "--limit", "100000"]);
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "account_rotation_changed" && e["event"]["account"] == account)
        .cloned()
        .collect()
}

fn states(r: &Rampart, account: &str) -> Vec<String> {
    rotation_events(r, account)
        .iter()
        .map(|e| e["event"]["state"].as_str().unwrap_or_default().to_owned())
        .filter(|state| state != "settings")
        .collect()
}

/// Whether alice's session through Rampart logs in on the target as `user`.
fn rampart_logs_in(r: &Rampart, port: u16, user: &str) -> bool {
    let out = mariadb(port, &token(r, "1h"), true, "select current_user()");
    out.status.success() && text(&out.stdout).contains(&format!("{user}@127.0.0.1"))
}

/// No secret in what the CLI said, the audit log, the history, serve's log or the data
/// directory's files.
fn assert_no_secret_anywhere(
    r: Rampart,
    server: Server,
    account: &str,
    said: &str,
    canary_dir: &std::path::Path,
    secrets: &[&str],
) {
    let audit = r.ok(&["audit", "list", "--limit", "100000", "--json"]);
    let history = r.ok(&["account", "history", account, "--json"]);
    let (_, log) = server.terminate();
    // The canary search can fail: the new password is in clear where the test put it.
    assert!(!files_containing(canary_dir, NEW.as_bytes()).is_empty());
    for secret in secrets {
        assert!(!said.contains(secret), "a secret in the CLI's output");
        assert!(!audit.contains(secret), "a secret in the audit log");
        assert!(!history.contains(secret), "a secret in the history");
        assert!(!log.contains(secret), "a secret in serve's log");
        assert!(
            files_containing(&r.data_dir(), secret.as_bytes()).is_empty(),
            "a secret in clear in the data directory"
        );
    }
}

#[test]
fn a_mariadb_user_changes_its_own_password_and_rampart_logs_in_with_the_new_one() {
    let Some(db) = start_mariadb() else { return };
    create_user(&db, "rot", OLD);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("next-password");
    let (r, server, port) = rampart_for(&db, "rot", &password_file);
    // Before: the old password works, the new one does not (so the checks below can fail).
    assert!(works_directly(&db, "rot", OLD));
    assert!(!works_directly(&db, "rot", NEW));
    assert!(rampart_logs_in(&r, port, "rot"));

    let (ok, said) = rotate(&r, "rot@my-01", &password_file);
    assert!(ok, "{said}");
    assert!(said.contains("committed"), "{said}");

    // After: the old password is refused, the new one works, Rampart's sessions use it.
    assert!(!works_directly(&db, "rot", OLD));
    assert!(works_directly(&db, "rot", NEW));
    assert!(rampart_logs_in(&r, port, "rot"));
    assert_eq!(states(&r, "rot@my-01"), ["pending", "applied", "committed"]);
    let status = r.json(&["vault", "status"]);
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    let history = r.json(&["account", "history", "rot@my-01"]);
    assert_eq!(history["rotations"][0]["state"], "committed", "{history}");
    assert_no_secret_anywhere(r, server, "rot@my-01", &said, dir.path(), &[OLD, NEW]);
}

#[test]
fn a_mariadb_rotation_account_that_cannot_log_in_leaves_the_old_password_working_and_a_good_one_alters_the_user()
 {
    let Some(db) = start_mariadb() else { return };
    create_user(&db, "rot2", OLD);
    // The rotation account may alter users (CREATE USER); its vaulted password is wrong first.
    let out = db.direct(
        "create user 'rotator'@'127.0.0.1' identified by 'rotator-pw-5d1e'; \
         grant create user on *.* to 'rotator'@'127.0.0.1'",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("next-password");
    let (r, server, port) = rampart_for(&db, "rot2", &password_file);
    r.ok_with_stdin(
        &["account", "add", "rotator@my-01", "--password-stdin"],
        b"not-the-rotator-password\n",
    );
    r.ok(&["account", "set", "rot2@my-01", "--rotate-via", "rotator"]);

    let (ok, failed_said) = rotate(&r, "rot2@my-01", &password_file);
    assert!(!ok, "{failed_said}");
    assert!(failed_said.contains("did not commit"), "{failed_said}");
    assert!(failed_said.contains("login as rotator"), "{failed_said}");
    // Nothing changed on the target: the old password works there and through Rampart.
    assert!(works_directly(&db, "rot2", OLD));
    assert!(!works_directly(&db, "rot2", NEW));
    assert!(rampart_logs_in(&r, port, "rot2"));
    assert_eq!(states(&r, "rot2@my-01"), ["pending", "failed"]);
    let failed = rotation_events(&r, "rot2@my-01").last().cloned().unwrap();
    assert_eq!(failed["event"]["severity"], "alert", "{failed}");
    assert!(
        failed.to_string().contains("the old secret still works"),
        "{failed}"
    );

    // With the rotation account's right password, ALTER USER 'rot2'@'127.0.0.1' as rotator.
    r.ok(&["account", "remove", "rotator@my-01"]);
    r.ok_with_stdin(
        &["account", "add", "rotator@my-01", "--password-stdin"],
        b"rotator-pw-5d1e\n",
    );
    let (ok, said) = rotate(&r, "rot2@my-01", &password_file);
    assert!(ok, "{said}");
    assert!(!works_directly(&db, "rot2", OLD));
    assert!(works_directly(&db, "rot2", NEW));
    assert!(rampart_logs_in(&r, port, "rot2"));
    assert_eq!(
        states(&r, "rot2@my-01"),
        ["pending", "failed", "pending", "applied", "committed"]
    );
    let said = format!("{failed_said}{said}");
    assert_no_secret_anywhere(
        r,
        server,
        "rot2@my-01",
        &said,
        dir.path(),
        &[OLD, NEW, "rotator-pw-5d1e", "not-the-rotator-password"],
    );
}

#[test]
fn an_account_set_to_rotate_after_every_session_is_rotated_by_the_server_when_a_session_ends() {
    let Some(db) = start_mariadb() else { return };
    create_user(&db, "rot3", OLD);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("next-password");
    std::fs::write(&password_file, format!("{NEW}\n")).unwrap();
    // The server looks for ended sessions every second.
    let (r, server, port) = crate::db_common::rampart_for_database(
        "mysql",
        "my-01",
        db.port,
        "rot3",
        OLD,
        &[
            (
                "RAMPART_TEST_ROTATION_PASSWORD_FILE",
                password_file.to_str().unwrap(),
            ),
            ("RAMPART_TEST_ROTATION_TICK_SECONDS", "1"),
        ],
    );
    // A session before the setting is not rotated for.
    assert!(rampart_logs_in(&r, port, "rot3"));
    r.ok(&[
        "account",
        "set",
        "rot3@my-01",
        "--rotate-after-sessions",
        "true",
    ]);
    let history = r.ok(&["account", "history", "rot3@my-01"]);
    assert!(
        history.contains("after every session  yes") || history.contains("yes, since"),
        "{history}"
    );
    assert!(works_directly(&db, "rot3", OLD));

    // A session after it: when it ends, the server rotates the account.
    assert!(rampart_logs_in(&r, port, "rot3"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rotated = loop {
        let events = r.json(&["audit", "list", "--limit", "100000"]);
        let rotated: Vec<Value> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "session_account_rotated")
            .cloned()
            .collect();
        if !rotated.is_empty() {
            break rotated;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation after the session"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(rotated[0]["event"]["account"], "rot3@my-01", "{rotated:?}");
    assert_eq!(rotated[0]["event"]["state"], "committed", "{rotated:?}");
    assert!(!works_directly(&db, "rot3", OLD));
    assert!(works_directly(&db, "rot3", NEW));
    // The rotation is the server's, on record in the history.
    let history = r.json(&["account", "history", "rot3@my-01"]);
    assert_eq!(history["rotations"][0]["state"], "committed", "{history}");
    assert_eq!(history["rotations"][0]["started_by"], "system", "{history}");
    // Exactly one rotation for the one session after the setting (the earlier one is not
    // rotated for).
    let sessions_rotated_for: Vec<_> = rotated
        .iter()
        .map(|e| e["event"]["session"].clone())
        .collect();
    assert_eq!(sessions_rotated_for.len(), 1, "{rotated:?}");
    assert_no_secret_anywhere(r, server, "rot3@my-01", "", dir.path(), &[OLD, NEW]);
}

#[test]
fn an_administrator_rotates_an_account_in_the_portal_and_sees_the_history_row() {
    let (Some(node), Some(chromium)) = (
        rampart_testkit::require_tool("node"),
        rampart_testkit::require_tool("chromium"),
    ) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let Some(db) = start_mariadb() else { return };
    create_user(&db, "rot4", OLD);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("next-password");
    let (r, server, _) = rampart_for(&db, "rot4", &password_file);
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    r.ok_with_stdin(&["user", "password", "adam"], b"adam-password-1");
    let artifacts = crate::browser::artifacts_dir().join("rotation");
    let _ = std::fs::remove_dir_all(&artifacts);
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let output = Command::new(node)
        .arg("rotation.mjs")
        .current_dir(browser_dir)
        .env("RAMPART_URL", format!("https://{}", server.http))
        .env("ADMIN_USER", "adam")
        .env("ADMIN_PASSWORD", "adam-password-1")
        .env("ACCOUNT", "rot4@my-01")
        .env("SECRETS", format!("{OLD},{NEW}"))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("rotation done in the browser"),
        "rotation.mjs failed (screenshots in {}):\n{stdout}\n{}",
        artifacts.display(),
        text(&output.stderr)
    );
    // The click really rotated it on the target, as adam.
    assert!(!works_directly(&db, "rot4", OLD));
    assert!(works_directly(&db, "rot4", NEW));
    let committed = rotation_events(&r, "rot4@my-01").last().cloned().unwrap();
    assert_eq!(committed["event"]["state"], "committed", "{committed}");
    assert_eq!(committed["actor"]["name"], "adam", "{committed}");
    assert_no_secret_anywhere(r, server, "rot4@my-01", "", dir.path(), &[OLD, NEW]);
}

#[test]
fn an_asset_password_policy_shapes_generated_passwords_and_a_server_rejecting_them_keeps_the_old_one()
 {
    let Some(db) = start_mariadb() else { return };
    create_user(&db, "rot5", OLD);
    // The server's own password policy: upper and lower case, a digit and a symbol, 8 long.
    let out = db.direct("install soname 'simple_password_check'");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Generated passwords this time (no test password file).
    let (r, server, port) =
        crate::db_common::rampart_for_database("mysql", "my-01", db.port, "rot5", OLD, &[]);
    r.ok(&[
        "rotation",
        "policy",
        "my-01",
        "--length",
        "16",
        "--classes",
        "lower,digits",
    ]);
    let shown = r.ok(&["rotation", "show-policy", "my-01"]);
    assert!(
        shown.contains("length: 16, classes: lower,digits"),
        "{shown}"
    );
    let out = output_with_input(
        r.command(&["account", "rotate", "rot5@my-01"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    // Lower case and digits only: the server refuses it, the old password stays and works.
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("1819"), "{said}");
    assert!(works_directly(&db, "rot5", OLD));
    assert!(rampart_logs_in(&r, port, "rot5"));
    assert_eq!(states(&r, "rot5@my-01"), ["pending", "failed"]);

    // Every class: accepted; the old password stops working and Rampart logs in with the new.
    r.ok(&["rotation", "policy", "my-01", "--length", "20"]);
    let out = output_with_input(
        r.command(&["account", "rotate", "rot5@my-01"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!works_directly(&db, "rot5", OLD));
    assert!(rampart_logs_in(&r, port, "rot5"));
    let events = r.json(&["audit", "list", "--limit", "100000"]);
    let policies = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rotation_policy_changed")
        .count();
    assert_eq!(policies, 2, "{events}");
    let (_, log) = server.terminate();
    assert!(!log.contains(OLD));
}
