//! Credential rotation against a real sshd (issue 17): a throwaway local user whose password
//! Rampart rotates through the lab's root key account (`chpasswd`) or as itself (`passwd`).
//! The new password comes from a file the test writes (`RAMPART_TEST_ROTATION_PASSWORD_FILE`,
//! honoured by debug builds only), so the test can check that it works on the target and that
//! it shows up nowhere else.

use crate::ssh::Lab;
use rampart_testkit::{SshTarget, files_containing, output_with_input, skip_or_fail, ssh_keygen};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A local user that exists for one test and is removed after it (even when it fails).
pub(crate) struct TestUser {
    pub(crate) name: String,
}

impl TestUser {
    /// `None` (after saying why) when the test cannot create users (not root, no useradd).
    fn create(password: &str) -> Option<Self> {
        Self::create_with(password, "--no-create-home")
    }

    fn create_with(password: &str, home: &str) -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if !nix::unistd::getuid().is_root() || rampart_testkit::require_tool("useradd").is_none() {
            skip_or_fail("rotation tests create a local user: they need root and useradd");
            return None;
        }
        let name = format!(
            "rrot{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("useradd")
            .args([home, "--shell", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        let user = Self { name };
        user.set_password(password);
        Some(user)
    }

    fn set_password(&self, password: &str) {
        let out = output_with_input(
            Command::new("chpasswd").stderr(Stdio::piped()),
            format!("{}:{password}\n", self.name).as_bytes(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) const OLD: &str = "old-rotation-canary-3f9a1c";
pub(crate) const NEW: &str = "New-rotation-canary-77b2e.Q";

/// The lab, a throwaway user with password `OLD` vaulted as `USER@web-01` and rotated through
/// root, and a second asset (web-02, the same sshd) to try passwords directly through Rampart.
pub(crate) struct RotationLab {
    pub(crate) lab: Lab,
    pub(crate) user: TestUser,
    pub(crate) password_file: std::path::PathBuf,
}

impl RotationLab {
    pub(crate) fn start() -> Option<Self> {
        let lab = Lab::start()?;
        let user = TestUser::create(OLD)?;
        let account = format!("{}@web-01", user.name);
        lab.r.ok_with_stdin(
            &["account", "add", &account, "--password-stdin"],
            format!("{OLD}\n").as_bytes(),
        );
        lab.r.ok(&[
            "account",
            "set",
            &account,
            "--rotate-via",
            &lab.login,
            "--password-length",
            "20",
        ]);
        let port = lab.target.port.to_string();
        lab.r.ok(&[
            "asset",
            "add",
            "web-02",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ]);
        lab.r
            .ok(&["grant", "add", "--user", "alice", "--asset", "web-02"]);
        let password_file = lab.r.scratch().join("next-password");
        std::fs::write(&password_file, format!("{NEW}\n")).unwrap();
        Some(Self {
            lab,
            user,
            password_file,
        })
    }

    pub(crate) fn account(&self) -> String {
        format!("{}@web-01", self.user.name)
    }

    /// Whether `password` logs the user in on the target (through Rampart's web-02 account).
    fn password_works(&self, password: &str) -> bool {
        let account = format!("{}@web-02", self.user.name);
        let _ = self.lab.r.run(&["account", "remove", &account]);
        self.lab.r.ok_with_stdin(
            &["account", "add", &account, "--password-stdin"],
            format!("{password}\n").as_bytes(),
        );
        let out = self.lab.ssh(&format!("alice@{account}"), "id -un", b"");
        text(&out.stdout).trim() == self.user.name
    }

    /// Whether Rampart's own vaulted secret (web-01) logs the user in.
    pub(crate) fn rampart_logs_in(&self) -> bool {
        let out = self
            .lab
            .ssh(&format!("alice@{}", self.account()), "id -un", b"");
        text(&out.stdout).trim() == self.user.name
    }

    pub(crate) fn rotate_command(&self) -> Command {
        let mut command = self.lab.r.command(&["account", "rotate", &self.account()]);
        command.env("RAMPART_TEST_ROTATION_PASSWORD_FILE", &self.password_file);
        command
    }

    fn rotation_events(&self) -> Vec<Value> {
        self.lab
            .events("account_rotation_changed")
            .into_iter()
            .filter(|e| e.to_string().contains(&self.user.name))
            .collect()
    }

    fn states(&self) -> Vec<String> {
        self.rotation_events()
            .iter()
            .map(|e| e["event"]["state"].as_str().unwrap_or_default().to_owned())
            .filter(|state| state != "settings")
            .collect()
    }

    fn history(&self) -> Value {
        self.lab.r.json(&["account", "history", &self.account()])
    }

    /// No secret in the audit log, the data directory's files, the history or `serve`'s log.
    fn assert_no_secret_anywhere(self, secrets: &[&str]) {
        let audit = self
            .lab
            .r
            .ok(&["audit", "list", "--limit", "100000", "--json"]);
        let history = self.history().to_string();
        let data_dir = self.lab.r.data_dir();
        let RotationLab { lab, user, .. } = self;
        let Lab { r, server, .. } = lab;
        let (_, log) = server.terminate();
        for secret in secrets {
            assert!(!audit.contains(secret), "a secret in the audit log");
            assert!(!history.contains(secret), "a secret in the history");
            assert!(!log.contains(secret), "a secret in serve's log");
            assert!(
                files_containing(&data_dir, secret.as_bytes()).is_empty(),
                "a secret in clear in the data directory"
            );
        }
        drop((r, user));
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_rotated_ssh_password_replaces_the_old_one_on_the_target_and_in_the_vault() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    // Before: the old password works and the new one does not (so the checks below can fail).
    assert!(lab.password_works(OLD));
    assert!(!lab.password_works(NEW));
    assert!(lab.rampart_logs_in());

    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("committed"), "{said}");
    assert!(!said.contains(NEW) && !said.contains(OLD));

    // After: the old password stops working, the new one works, Rampart logs in with it.
    assert!(!lab.password_works(OLD));
    assert!(lab.password_works(NEW));
    assert!(lab.rampart_logs_in());
    let status = lab.lab.r.json(&["vault", "status"]);
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    assert_eq!(lab.states(), ["pending", "applied", "committed"]);
    let history = lab.history();
    assert_eq!(history["rotations"][0]["state"], "committed", "{history}");
    assert_eq!(history["settings"]["status"], "ok");
    lab.assert_no_secret_anywhere(&[OLD, NEW]);
}

#[test]
fn a_rotation_killed_after_the_target_changed_is_committed_at_the_next_start() {
    let Some(mut lab) = RotationLab::start() else {
        return;
    };
    let mut rotating = lab
        .rotate_command()
        .env("RAMPART_TEST_ROTATION_HALT", "applied")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the rotation to be applied", || {
        lab.states().iter().any(|s| s == "applied")
    });
    rotating.kill().unwrap(); // SIGKILL: kill -9
    rotating.wait().unwrap();
    // Changed on the target, not committed: the vault still holds the old password, so Rampart
    // cannot log in until the rotation is resumed.
    assert!(lab.password_works(NEW));
    assert!(!lab.rampart_logs_in());
    let history = lab.history();
    assert_eq!(history["rotations"][0]["state"], "applied", "{history}");

    // Restart: serve resumes the rotation (the pending password works: committed).
    lab.lab.server.kill();
    lab.lab.server = lab.lab.r.serve();
    wait_until("the rotation to be resumed and committed", || {
        lab.states().iter().any(|s| s == "committed")
    });
    assert!(lab.rampart_logs_in());
    assert_eq!(lab.states(), ["pending", "applied", "resumed", "committed"]);
    let status = lab.lab.r.json(&["vault", "status"]);
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    lab.assert_no_secret_anywhere(&[OLD, NEW]);
}

#[test]
fn a_rotation_killed_before_the_change_keeps_the_old_password_and_discards_the_pending_one() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    let mut rotating = lab
        .rotate_command()
        .env("RAMPART_TEST_ROTATION_HALT", "pending")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the rotation to be pending", || {
        lab.states().iter().any(|s| s == "pending")
    });
    rotating.kill().unwrap();
    rotating.wait().unwrap();
    // A rotation in flight, its pending secret sealed in the vault (vault status opens it).
    let status = lab.lab.r.json(&["vault", "status"]);
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    // The lab's root key, the user's password, and the pending password.
    assert_eq!(status["secrets"], 3, "{status}");

    // `account rotate` again resumes it: nothing changed on the target, so the pending
    // password is discarded and the old one kept, with an alert.
    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    assert!(!out.status.success());
    assert!(lab.password_works(OLD));
    assert!(lab.rampart_logs_in());
    assert_eq!(lab.states(), ["pending", "resumed", "failed"]);
    let failed = lab.rotation_events().last().cloned().unwrap();
    assert!(failed.to_string().contains("\"alert\""), "{failed}");
    // A new rotation can start afterwards, and commits.
    let out = output_with_input(lab.rotate_command().stdout(Stdio::piped()), b"");
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(lab.password_works(NEW));
    lab.assert_no_secret_anywhere(&[OLD, NEW]);
}

#[test]
fn a_failing_rotation_account_leaves_the_old_password_working_with_an_alert() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    // The rotation account's vaulted password is wrong: the change cannot happen.
    lab.lab.r.ok_with_stdin(
        &["account", "add", "daemon@web-01", "--password-stdin"],
        b"not-daemons-password\n",
    );
    lab.lab
        .r
        .ok(&["account", "set", &lab.account(), "--rotate-via", "daemon"]);
    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("did not commit"), "{said}");
    assert!(said.contains("rotation account daemon"), "{said}");
    assert!(lab.password_works(OLD));
    assert!(lab.rampart_logs_in());
    assert_eq!(lab.states(), ["pending", "failed"]);
    let failed = lab.rotation_events().last().cloned().unwrap();
    assert!(failed.to_string().contains("\"alert\""), "{failed}");
    assert!(
        failed.to_string().contains("the old secret still works"),
        "{failed}"
    );
    lab.assert_no_secret_anywhere(&[OLD, NEW, "not-daemons-password"]);
}

#[test]
fn an_account_without_a_rotation_account_changes_its_own_password_with_passwd() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    if rampart_testkit::require_tool("passwd").is_none() {
        return;
    }
    lab.lab
        .r
        .ok(&["account", "set", &lab.account(), "--rotate-via", "self"]);
    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(!lab.password_works(OLD));
    assert!(lab.password_works(NEW));
    assert!(lab.rampart_logs_in());
    assert_eq!(lab.states(), ["pending", "applied", "committed"]);
    lab.assert_no_secret_anywhere(&[OLD, NEW]);
}

/// Whether `password` logs `role` in on the PostgreSQL server directly (over TCP, md5/SCRAM).
fn postgres_password_works(port: u16, role: &str, password: &str) -> bool {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user={role} dbname=postgres sslmode=disable"
        ))
        .args(["-X", "-A", "-t", "-c", "select 1"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "30")
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_postgres_role_password_rotates_by_alter_user_without_the_password_reaching_the_server() {
    let Some(pg) = crate::postgres::start_postgres() else {
        return;
    };
    pg.direct(&format!("CREATE ROLE app LOGIN PASSWORD '{OLD}'"));
    assert!(postgres_password_works(pg.port, "app", OLD));
    assert!(!postgres_password_works(pg.port, "app", NEW));
    let r = rampart_testkit::Rampart::new(crate::BIN);
    r.ok(&[
        "asset",
        "add",
        "pg-01",
        "--host",
        "127.0.0.1",
        "--endpoint",
        &format!("postgres:{}", pg.port),
    ]);
    r.ok_with_stdin(
        &["account", "add", "app@pg-01", "--password-stdin"],
        format!("{OLD}\n").as_bytes(),
    );
    let password_file = r.scratch().join("next-password");
    std::fs::write(&password_file, format!("{NEW}\n")).unwrap();
    let out = output_with_input(
        r.command(&["account", "rotate", "app@pg-01"])
            .env("RAMPART_TEST_ROTATION_PASSWORD_FILE", &password_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(!postgres_password_works(pg.port, "app", OLD));
    assert!(postgres_password_works(pg.port, "app", NEW));
    // The server stores a SCRAM verifier, which is all it was sent.
    let stored = pg.direct("select rolpassword from pg_authid where rolname = 'app'");
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    let status = r.json(&["vault", "status"]);
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    let history = r.json(&["account", "history", "app@pg-01"]);
    assert_eq!(history["rotations"][0]["state"], "committed", "{history}");
    let audit = r.ok(&["audit", "list", "--limit", "100000", "--json"]);
    for secret in [OLD, NEW] {
        assert!(!said.contains(secret) && !audit.contains(secret));
        assert!(!history.to_string().contains(secret));
        assert!(files_containing(&r.data_dir(), secret.as_bytes()).is_empty());
    }
}

#[test]
fn an_administrator_rotates_through_the_api_and_reads_the_history_without_secrets() {
    let Some(mut lab) = RotationLab::start() else {
        return;
    };
    lab.lab.server.kill();
    lab.lab.server = lab.lab.r.serve_with_env(&[(
        "RAMPART_TEST_ROTATION_PASSWORD_FILE",
        lab.password_file.to_str().unwrap(),
    )]);
    lab.lab.r.ok(&["user", "add", "adam", "--role", "admin"]);
    let token = lab
        .lab
        .r
        .ok(&["token", "create", "--user", "adam", "--scope", "admin"])
        .trim()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let client = lab.lab.server.client();
    let path = format!("/api/v1/accounts/{}/rotations", lab.account());
    let rotated = client.request("POST", &path, &[("authorization", &bearer)], None);
    let body = rotated.text();
    assert_eq!(rotated.status, 200, "{body}");
    assert!(body.contains("committed"), "{body}");
    assert!(lab.password_works(NEW));
    assert!(lab.rampart_logs_in());
    let history = client.request("GET", &path, &[("authorization", &bearer)], None);
    assert_eq!(history.status, 200);
    let history = history.json();
    assert_eq!(history["rotations"][0]["state"], "committed", "{history}");
    // The rotation is on record as the administrator's.
    let committed = lab.rotation_events().last().cloned().unwrap();
    assert_eq!(committed["actor"]["name"], "adam", "{committed}");
    for secret in [OLD, NEW] {
        assert!(!body.contains(secret) && !history.to_string().contains(secret));
    }
    lab.assert_no_secret_anywhere(&[OLD, NEW]);
}

#[test]
fn a_rotated_ssh_key_is_added_proven_and_the_old_key_removed_from_authorized_keys() {
    let Some(lab) = Lab::start() else {
        return;
    };
    let Some(user) = TestUser::create_with(OLD, "--create-home") else {
        return;
    };
    let dir = lab.r.scratch().to_path_buf();
    let (old_key, old_pub) = ssh_keygen(&dir, "rot-old", "ed25519", "");
    let home = nix::unistd::User::from_name(&user.name)
        .unwrap()
        .unwrap()
        .dir;
    let authorized = home.join(".ssh/authorized_keys");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::copy(&old_pub, &authorized).unwrap();
    let owner = Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.name)])
        .arg(home.join(".ssh"))
        .status()
        .unwrap();
    assert!(owner.success());
    // Its own sshd: the test users' keys are in their home, as on a real host.
    let Some(target) = SshTarget::start_with(
        &old_pub,
        &format!(
            "Match User {}\n  AuthorizedKeysFile .ssh/authorized_keys\n  SetEnv HOME={}\n",
            user.name,
            home.display()
        ),
    ) else {
        return;
    };
    let port = target.port.to_string();
    lab.r.ok(&[
        "asset",
        "add",
        "web-03",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "web-03"]);
    let account = format!("{}@web-03", user.name);
    lab.r.ok(&[
        "account",
        "add",
        &account,
        "--key-file",
        old_key.to_str().unwrap(),
    ]);
    let old_key_works = || {
        Command::new("ssh")
            .args(["-i", old_key.to_str().unwrap()])
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "LogLevel=ERROR", "-p", &port])
            .arg(format!("{}@127.0.0.1", user.name))
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    };
    let rampart_logs_in = || {
        let out = lab.ssh(&format!("alice@{account}"), "id -un", b"");
        text(&out.stdout).trim() == user.name
    };
    assert!(old_key_works());
    assert!(rampart_logs_in());

    let out = output_with_input(
        lab.r
            .command(&["account", "rotate", &account])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("the old key was removed"), "{said}");
    assert!(!old_key_works());
    assert!(rampart_logs_in());
    let keys = std::fs::read_to_string(&authorized).unwrap();
    let old_blob = std::fs::read_to_string(&old_pub).unwrap();
    let old_blob = old_blob.split_whitespace().nth(1).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(
        !keys.contains(old_blob) && keys.starts_with("ssh-ed25519 "),
        "{keys}"
    );
    let status = lab.r.json(&["vault", "status"]);
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    // No private key material anywhere: not the old key's (its third line is the key's own,
    // the first two are the same for every such key), and no new private key block.
    let old_private = std::fs::read_to_string(&old_key).unwrap();
    let old_body = old_private.lines().nth(2).unwrap();
    assert!(old_body.len() > 40);
    let audit = lab.r.ok(&["audit", "list", "--limit", "100000", "--json"]);
    let history = lab.r.ok(&["account", "history", &account, "--json"]);
    for text in [&audit, &history, &said] {
        assert!(!text.contains(old_body) && !text.contains("PRIVATE KEY"));
    }
    assert!(files_containing(&lab.r.data_dir(), old_body.as_bytes()).is_empty());
}

#[test]
fn when_neither_secret_works_the_account_is_unknown_both_are_kept_and_a_later_resume_settles_it() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    let mut rotating = lab
        .rotate_command()
        .env("RAMPART_TEST_ROTATION_HALT", "applied")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the rotation to be applied", || {
        lab.states().iter().any(|s| s == "applied")
    });
    rotating.kill().unwrap();
    rotating.wait().unwrap();
    // Someone else changes the password meanwhile: neither Rampart secret works any more.
    lab.user.set_password("third-password-nobody-vaulted");
    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("unknown"), "{said}");
    assert_eq!(lab.states(), ["pending", "applied", "resumed", "unknown"]);
    let unknown = lab.rotation_events().last().cloned().unwrap();
    assert!(unknown.to_string().contains("\"alert\""), "{unknown}");
    let history = lab.history();
    assert_eq!(history["settings"]["status"], "unknown", "{history}");
    // Both secrets are still in the vault: the account's and the pending one.
    let status = lab.lab.r.json(&["vault", "status"]);
    assert_eq!(status["secrets"], 3, "{status}");
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status}");
    // `rampart doctor` names the account and says what to do.
    let doctor = lab.lab.r.run(&["doctor"]);
    let report = text(&doctor.stdout);
    assert!(!doctor.status.success(), "{report}");
    assert!(
        report.contains("[FAIL] rotations: neither the old nor the new secret logs in to"),
        "{report}"
    );
    assert!(
        report.contains("rampart account rotate ACCOUNT"),
        "{report}"
    );

    // The target is put back to the pending password: the next resume keeps it.
    lab.user.set_password(NEW);
    let out = output_with_input(lab.rotate_command().stdout(Stdio::piped()), b"");
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(lab.rampart_logs_in());
    assert_eq!(lab.history()["settings"]["status"], "ok");
    lab.assert_no_secret_anywhere(&[OLD, NEW, "third-password-nobody-vaulted"]);
}
