//! Break-glass kits (issue 17) against a real sshd: a kit sealed for three custodians (SSH
//! ed25519 and rsa keys made by the real `ssh-keygen`) with threshold 2 opens with any two of
//! their shares and with nothing less, holds no secret in clear, needs no data directory to
//! open, and is sealed again after its account rotates, while the old kit's password stops
//! working on the target (checked with the stock `ssh` client, not through Rampart).

use crate::BIN;
use crate::rotation::{NEW, OLD, RotationLab};
use rampart_testkit::{files_containing, output_with_input, ssh_keygen};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Three custodians' key pairs: alice (ed25519), bob (rsa), carol (ed25519).
struct Custodians {
    keys: Vec<PathBuf>,
    publics: Vec<PathBuf>,
}

impl Custodians {
    fn make(dir: &Path) -> Self {
        let dir = dir.join("custodians");
        std::fs::create_dir_all(&dir).unwrap();
        let mut keys = Vec::new();
        let mut publics = Vec::new();
        for (name, kind) in [("alice", "ed25519"), ("bob", "rsa"), ("carol", "ed25519")] {
            let (key, public) = ssh_keygen(&dir, name, kind, "");
            keys.push(key);
            publics.push(public);
        }
        Self { keys, publics }
    }

    fn list(&self) -> String {
        self.publics
            .iter()
            .map(|p| p.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `rampart ARGS` with no configuration, no data directory and no RAMPART_* variables, run in
/// an empty directory: what a custodian has when Rampart is down.
fn offline(args: &[&str], cwd: &Path) -> Output {
    std::fs::create_dir_all(cwd).unwrap();
    output_with_input(
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    )
}

fn seal(lab: &RotationLab, custodians: &Custodians, kit: &Path) -> String {
    lab.lab.r.ok(&[
        "breakglass",
        "seal",
        "--accounts",
        &lab.account(),
        "--custodians",
        &custodians.list(),
        "--threshold",
        "2",
        "--out",
        kit.to_str().unwrap(),
    ])
}

/// Each custodian decrypts their own share, separately, into a file.
fn shares(kit: &Path, custodians: &Custodians, dir: &Path) -> Vec<PathBuf> {
    custodians
        .keys
        .iter()
        .map(|key| {
            let out = dir.join(format!(
                "share-{}",
                key.file_name().unwrap().to_str().unwrap()
            ));
            let said = offline(
                &[
                    "breakglass",
                    "share",
                    kit.to_str().unwrap(),
                    "--identity",
                    key.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
                dir,
            );
            assert!(said.status.success(), "{}", text(&said.stderr));
            out
        })
        .collect()
}

fn open(kit: &Path, shares: &[&Path], cwd: &Path) -> Output {
    let mut args = vec!["breakglass", "open", kit.to_str().unwrap()];
    args.extend(shares.iter().map(|p| p.to_str().unwrap()));
    offline(&args, cwd)
}

/// Whether the stock OpenSSH client logs `user` in to the lab's sshd with `password` (typed by
/// an askpass program reading a file: never in argv or the environment).
fn stock_ssh_password_works(lab: &RotationLab, password: &str) -> bool {
    let dir = lab.lab.r.scratch().join("askpass");
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("password");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    let askpass = dir.join("askpass.sh");
    std::fs::write(&askpass, format!("#!/bin/sh\ncat '{}'\n", secret.display())).unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = output_with_input(
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=30",
                "-p",
                &lab.lab.target.port.to_string(),
                &format!("{}@127.0.0.1", lab.user.name),
                "id -un",
            ])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let _ = std::fs::remove_file(&secret);
    text(&out.stdout).trim() == lab.user.name
}

#[test]
fn a_kit_opens_with_any_two_of_three_custodians_shares_and_not_with_one() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    let dir = lab.lab.r.scratch().join("breakglass");
    std::fs::create_dir_all(&dir).unwrap();
    let custodians = Custodians::make(&dir);
    let kit = dir.join("kit.json");
    let said = seal(&lab, &custodians, &kit);
    assert!(
        said.contains("any 2 of 3 custodians (alice, bob, carol)"),
        "{said}"
    );

    // The kit holds no secret in clear (the canary is the account's vaulted password) ...
    assert!(files_containing(&dir, OLD.as_bytes()).is_empty());
    // ... and neither do the shares, each decrypted by its custodian alone, with no data
    // directory (they run in an empty directory with no RAMPART_* variables).
    let custody = dir.join("custody");
    let shares = shares(&kit, &custodians, &custody);
    assert!(files_containing(&dir, OLD.as_bytes()).is_empty());

    // Any two shares open it: the password is printed (the canary is findable where it is
    // in clear, so the searches above could fail).
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let out = open(&kit, &[&shares[a], &shares[b]], &custody);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(OLD), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains(&lab.account()));
    }
    // So do two custodians' private keys given directly.
    let out = offline(
        &[
            "breakglass",
            "open",
            kit.to_str().unwrap(),
            "--identity",
            custodians.keys[2].to_str().unwrap(),
            "--identity",
            custodians.keys[1].to_str().unwrap(),
        ],
        &custody,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(OLD));

    // One share gives nothing: refused with one clear line and no secret, whichever share;
    // the same share twice counts once.
    for share in &shares {
        let out = open(&kit, &[share], &custody);
        assert!(!out.status.success());
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!said.contains(OLD), "{said}");
        assert!(said.contains("this kit needs 2"), "{said}");
    }
    let out = open(&kit, &[&shares[0], &shares[0]], &custody);
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains(OLD));
    // A key that is no custodian's opens no share.
    let (stranger, _) = ssh_keygen(&dir, "mallory", "ed25519", "");
    let out = offline(
        &[
            "breakglass",
            "share",
            kit.to_str().unwrap(),
            "--identity",
            stranger.to_str().unwrap(),
        ],
        &custody,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("none of the given keys opens a share"),
        "{}",
        text(&out.stderr)
    );

    // Sealing is an audit event naming the custodians, never the secret.
    let sealed = lab.lab.events("breakglass_kit_sealed");
    assert_eq!(sealed.len(), 1, "{sealed:?}");
    assert_eq!(sealed[0]["event"]["threshold"], 2);
    assert!(!sealed[0].to_string().contains(OLD));
    let listed = lab.lab.r.ok(&["breakglass", "list"]);
    assert!(listed.contains("2 of alice, bob, carol"), "{listed}");
}

#[test]
fn after_a_rotation_the_kit_is_sealed_again_and_the_old_kits_password_no_longer_logs_in() {
    let Some(lab) = RotationLab::start() else {
        return;
    };
    let dir = lab.lab.r.scratch().join("breakglass");
    std::fs::create_dir_all(&dir).unwrap();
    let custodians = Custodians::make(&dir);
    let kit = dir.join("kit.json");
    seal(&lab, &custodians, &kit);
    let old_kit = dir.join("old-kit.json");
    std::fs::copy(&kit, &old_kit).unwrap();
    let custody = dir.join("custody-old");
    let old_shares = shares(&old_kit, &custodians, &custody);
    assert!(stock_ssh_password_works(&lab, OLD));
    assert!(!stock_ssh_password_works(&lab, NEW));

    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The kit file was replaced by a new kit holding the new password ...
    let new_kit = std::fs::read_to_string(&kit).unwrap();
    assert!(
        new_kit != std::fs::read_to_string(&old_kit).unwrap(),
        "the kit was not sealed again after the rotation"
    );
    assert!(!new_kit.contains(NEW) && !new_kit.contains(OLD));
    let new_custody = dir.join("custody-new");
    let new_shares = shares(&kit, &custodians, &new_custody);
    let out = open(&kit, &[&new_shares[0], &new_shares[2]], &new_custody);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(NEW), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains(OLD));
    // ... and the old kit's shares do not open it.
    let out = open(&kit, &[&old_shares[0], &old_shares[1]], &new_custody);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("another kit"),
        "{}",
        text(&out.stderr)
    );

    // The old kit still opens, but its password no longer logs in on the real sshd; the new
    // kit's does.
    let out = open(&old_kit, &[&old_shares[0], &old_shares[1]], &custody);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains(OLD));
    assert!(!stock_ssh_password_works(&lab, OLD));
    assert!(stock_ssh_password_works(&lab, NEW));

    let sealed = lab.lab.events("breakglass_kit_sealed");
    assert_eq!(sealed.len(), 2, "{sealed:?}");
    let reason = sealed[1]["event"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!("resealed after the rotation of {}", lab.account())
    );
    assert!(lab.rampart_logs_in());
}

#[test]
fn emergency_access_needs_two_distinct_administrators_and_its_sessions_are_marked() {
    let Some(lab) = crate::ssh::Lab::start() else {
        return;
    };
    // alice loses her ordinary grant: only break-glass access can let her in.
    let grants = lab.r.json(&["grant", "list"]);
    for grant in grants.as_array().unwrap() {
        lab.r
            .ok(&["grant", "remove", grant["id"].as_str().unwrap()]);
    }
    let logs_in = || {
        let out = lab.ssh(&lab.direct(), "id -un", b"");
        text(&out.stdout).trim() == lab.login
    };
    assert!(!logs_in());
    lab.r.ok(&["user", "add", "ann", "--role", "admin"]);
    lab.r.ok(&["user", "add", "ben", "--role", "admin"]);
    lab.r.ok(&["user", "add", "carl", "--role", "auditor"]);

    let request = lab.r.json(&[
        "breakglass",
        "grant",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--reason",
        "bastion database down, INC-4711",
        "--for",
        "30m",
    ]);
    let id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(request["state"], "pending");
    // Pending: nothing is given yet.
    assert!(!logs_in());

    // The user cannot approve her own access, nor can a non-administrator; one administrator
    // counts once.
    for (approver, refusal) in [
        ("alice", "alice is not an enabled administrator"),
        ("carl", "carl is not an enabled administrator"),
    ] {
        let out = lab.r.run(&["breakglass", "approve", &id, "--as", approver]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(refusal), "{}", text(&out.stderr));
    }
    lab.r.ok(&["user", "set", "alice", "--role", "admin"]);
    let out = lab.r.run(&["breakglass", "approve", &id, "--as", "alice"]);
    assert!(
        text(&out.stderr).contains("cannot approve it"),
        "{}",
        text(&out.stderr)
    );
    lab.r.ok(&["user", "set", "alice", "--role", "user"]);
    let first = lab.r.ok(&["breakglass", "approve", &id, "--as", "ann"]);
    assert!(first.contains("one more administrator"), "{first}");
    assert!(!logs_in());
    let out = lab.r.run(&["breakglass", "approve", &id, "--as", "ann"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already approved"));
    assert!(!logs_in());

    let second = lab.r.ok(&["breakglass", "approve", &id, "--as", "ben"]);
    assert!(second.contains("approved by ann and ben"), "{second}");
    assert!(logs_in());

    // The session is marked in the list, in `session show`, and in the JSON the API serves.
    let sessions = lab.sessions();
    let marked: Vec<_> = sessions
        .iter()
        .filter(|s| s["breakglass"] == id.as_str())
        .collect();
    assert_eq!(marked.len(), 1, "{sessions:?}");
    let table = lab.r.ok(&["session", "list"]);
    assert!(table.contains("break-glass"), "{table}");
    let shown = lab
        .r
        .ok(&["session", "show", marked[0]["id"].as_str().unwrap()]);
    assert!(shown.contains(&format!("yes (request {id})")), "{shown}");

    // Every step is audited, and two alerts went to every sink (requested, then opened).
    for (kind, count) in [
        ("breakglass_requested", 1),
        ("breakglass_approved", 2),
        ("breakglass_activated", 1),
    ] {
        assert_eq!(lab.events(kind).len(), count, "{kind}");
    }
    let alerts: Vec<_> = lab
        .events("alert_raised")
        .into_iter()
        .filter(|e| e["event"]["alert"] == "breakglass")
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts[1].to_string().contains("INC-4711"));
    let requests = lab.r.ok(&["breakglass", "requests"]);
    assert!(requests.contains("ann, ben"), "{requests}");
}

#[test]
fn an_ended_break_glass_session_has_its_account_rotated_by_the_server() {
    let Some(mut lab) = RotationLab::start() else {
        return;
    };
    // The server rotates on a one-second tick, with the test's next password.
    lab.lab.server.kill();
    let password_file = lab.password_file.to_str().unwrap().to_owned();
    lab.lab.server = lab.lab.r.serve_with_env(&[
        ("RAMPART_TEST_ROTATION_TICK_SECONDS", "1"),
        ("RAMPART_TEST_ROTATION_PASSWORD_FILE", &password_file),
    ]);
    // alice reaches USER@web-01 only through break-glass access.
    let grants = lab.lab.r.json(&["grant", "list"]);
    for grant in grants.as_array().unwrap() {
        if grant.to_string().contains("web-01") {
            lab.lab
                .r
                .ok(&["grant", "remove", grant["id"].as_str().unwrap()]);
        }
    }
    assert!(!lab.rampart_logs_in());
    lab.lab.r.ok(&["user", "add", "ann", "--role", "admin"]);
    lab.lab.r.ok(&["user", "add", "ben", "--role", "admin"]);
    let request = lab.lab.r.json(&[
        "breakglass",
        "grant",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--reason",
        "INC-9",
    ]);
    let id = request["id"].as_str().unwrap();
    lab.lab.r.ok(&["breakglass", "approve", id, "--as", "ann"]);
    lab.lab.r.ok(&["breakglass", "approve", id, "--as", "ben"]);
    assert!(stock_ssh_password_works(&lab, OLD));

    assert!(lab.rampart_logs_in());
    // The session ended: the server rotates its account (the old password stops working on
    // the target, the new one works) and says so in the audit trail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while lab.lab.events("breakglass_account_rotated").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation after the session"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let rotated = lab.lab.events("breakglass_account_rotated");
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(rotated[0]["event"]["state"], "committed", "{rotated:?}");
    assert_eq!(rotated[0]["event"]["account"], lab.account().as_str());
    assert!(!stock_ssh_password_works(&lab, OLD));
    assert!(stock_ssh_password_works(&lab, NEW));
    // Rampart still logs in, with the new password.
    assert!(lab.rampart_logs_in());
}

/// The README's runbook, step by step: seal, Rampart stops, two custodians decrypt their own
/// shares, the kit is opened into files with no data directory, the password logs in to the
/// real sshd with stock ssh, Rampart starts again and the account is rotated.
#[test]
fn the_break_glass_runbook_works_with_rampart_stopped() {
    let Some(mut lab) = RotationLab::start() else {
        return;
    };
    let dir = lab.lab.r.scratch().join("runbook");
    std::fs::create_dir_all(&dir).unwrap();
    let custodians = Custodians::make(&dir);
    let kit = dir.join("prod.kit");
    seal(&lab, &custodians, &kit);

    // The bastion is down.
    lab.lab.server.kill();
    let offline_dir = dir.join("offline");
    let shares = shares(&kit, &custodians, &offline_dir);
    let secrets = offline_dir.join("secrets");
    let out = offline(
        &[
            "breakglass",
            "open",
            kit.to_str().unwrap(),
            shares[0].to_str().unwrap(),
            shares[2].to_str().unwrap(),
            "--out-dir",
            secrets.to_str().unwrap(),
        ],
        &offline_dir,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    // The secret goes to a file, not the terminal; the host and port to reach are printed.
    assert!(!said.contains(OLD), "{said}");
    assert!(
        said.contains(&format!("host 127.0.0.1  ssh:{}", lab.lab.target.port)),
        "{said}"
    );
    let file = secrets.join(lab.account());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&file).unwrap();
    assert_eq!(password.trim_end(), OLD);
    assert!(stock_ssh_password_works(&lab, password.trim_end()));

    // Rampart is back: the account used is rotated, the kit's password stops working.
    lab.lab.server = lab.lab.r.serve();
    let out = output_with_input(
        lab.rotate_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stock_ssh_password_works(&lab, password.trim_end()));
    assert!(lab.rampart_logs_in());
}

#[test]
fn break_glass_access_through_the_api_needs_two_other_administrators_and_shows_no_secret() {
    let r = rampart_testkit::Rampart::new(crate::BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["user", "add", "ann", "--role", "admin"]);
    r.ok(&["user", "add", "ben", "--role", "admin"]);
    r.ok(&["user", "add", "aud", "--role", "auditor"]);
    r.ok(&[
        "asset",
        "add",
        "web-01",
        "--host",
        "127.0.0.1",
        "--port",
        "22",
    ]);
    r.ok_with_stdin(
        &["account", "add", "root@web-01", "--password-stdin"],
        b"bg-api-canary-51c9e0\n",
    );
    let bearer = |user: &str, scope: &str| {
        let token = r.ok(&["token", "create", "--user", user, "--scope", scope]);
        format!("Bearer {}", token.trim())
    };
    let (ann, ben, aud, alice) = (
        bearer("ann", "admin"),
        bearer("ben", "admin"),
        bearer("aud", "read"),
        bearer("alice", "read"),
    );
    let server = r.serve();
    let client = server.client();
    let call = |method: &str, path: &str, who: &str, body: Option<serde_json::Value>| {
        client.request(method, path, &[("authorization", who)], body.as_ref())
    };
    let body = serde_json::json!({
        "user": "alice", "asset": "web-01", "reason": "INC-77 api", "duration": "30m"
    });
    // alice cannot ask for herself through the API (administrators only), ann can.
    assert_eq!(
        call(
            "POST",
            "/api/v1/breakglass/requests",
            &alice,
            Some(body.clone())
        )
        .status,
        403
    );
    let filed = call("POST", "/api/v1/breakglass/requests", &ann, Some(body));
    assert_eq!(filed.status, 201, "{}", filed.text());
    let request = filed.json();
    assert_eq!(request["state"], "pending", "{request}");
    let id = request["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/v1/breakglass/requests/{id}/approve");
    // The first approval leaves it pending; the same administrator twice counts once.
    let first = call("POST", &approve, &ann, None);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["state"], "pending");
    let again = call("POST", &approve, &ann, None);
    assert!(
        again.status >= 400 && again.status < 500,
        "{}",
        again.text()
    );
    assert_eq!(call("POST", &approve, &aud, None).status, 403);
    // A second administrator opens it: a grant, and an alert.
    let second = call("POST", &approve, &ben, None);
    assert_eq!(second.status, 200, "{}", second.text());
    let active = second.json();
    assert_eq!(active["state"], "active", "{active}");
    assert_eq!(
        active["approvals"],
        serde_json::json!(["ann", "ben"]),
        "{active}"
    );
    assert!(active["grant"].is_string(), "{active}");
    // Auditors see the requests and the kits (none sealed here), never a secret.
    let listed = call("GET", "/api/v1/breakglass/requests", &aud, None);
    assert_eq!(listed.status, 200);
    assert!(listed.text().contains("INC-77 api"), "{}", listed.text());
    let kits = call("GET", "/api/v1/breakglass/kits", &aud, None);
    assert_eq!(kits.status, 200);
    assert_eq!(kits.json(), serde_json::json!([]));
    for answer in [listed.text(), kits.text(), active.to_string()] {
        assert!(!answer.contains("bg-api-canary-51c9e0"));
    }
    let alerts = r.json(&["audit", "list", "--limit", "100000"]);
    let raised = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "alert_raised" && e.to_string().contains("INC-77 api"))
        .count();
    assert_eq!(raised, 2, "{alerts}");
    drop(server);
}
