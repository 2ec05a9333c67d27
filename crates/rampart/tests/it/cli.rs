//! End-to-end tests of the administration commands and `rampart serve`: the real executable
//! on a temporary data directory, keys made by the real `ssh-keygen`.

use rampart_testkit::{Rampart, files_containing, require_tool, ssh_keygen};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::BIN;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A data directory with one user (alice, with a key), an asset and a password account.
fn populated(r: &Rampart) -> Option<()> {
    require_tool("ssh-keygen")?;
    let (_, alice_pub) = ssh_keygen(r.scratch(), "alice", "ed25519", "");
    r.ok(&["user", "add", "alice", "--key", alice_pub.to_str().unwrap()]);
    r.ok(&["group", "add", "ops"]);
    r.ok(&[
        "asset",
        "add",
        "web-01",
        "--host",
        "127.0.0.1",
        "--label",
        "env=prod",
    ]);
    r.ok_with_stdin(
        &["account", "add", "root@web-01", "--password-stdin"],
        b"s3cret-password\n",
    );
    Some(())
}

#[test]
fn first_start_creates_a_private_data_directory_and_a_second_start_reuses_it() {
    let r = Rampart::new(BIN);
    let dir = r.data_dir();
    assert!(!dir.exists());

    let server = r.serve();
    assert!(
        server.banner.iter().any(|l| l.starts_with("First start")),
        "{:?}",
        server.banner
    );
    assert!(server.tls, "HTTPS is the default");
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(server.get("/readyz").0, 200);
    assert_eq!(server.get("/nowhere").0, 404);
    // Secrets pass through the server's memory: it must never dump core (D3).
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(
        fields[4..6],
        ["0", "0"],
        "soft and hard core limits: {core}"
    );
    let (status, stderr) = server.terminate();
    assert!(
        status.success(),
        "serve exited with {status} after SIGTERM: {stderr}"
    );
    assert!(stderr.contains("SIGTERM received"), "{stderr}");

    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    let key_files = [
        "vault-master.key",
        "ssh_host_ed25519_key",
        "audit_ed25519_key",
    ];
    let mut first_keys = Vec::new();
    for name in key_files {
        let path = dir.join("keys").join(name);
        assert_eq!(mode(&path), 0o600, "{name}");
        first_keys.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(mode(&dir.join("rampart.db")), 0o600);
    // The host key is a real OpenSSH key.
    if require_tool("ssh-keygen").is_some() {
        let out = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dir.join("keys/ssh_host_ed25519_key"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let fingerprint = String::from_utf8(out.stdout).unwrap();
        let fingerprint = fingerprint.split_whitespace().nth(1).unwrap().to_owned();
        let second = r.serve();
        assert!(
            second.banner.iter().any(|l| l.contains(&fingerprint)),
            "banner should show the host key fingerprint {fingerprint}: {:?}",
            second.banner
        );
        assert!(!second.banner.iter().any(|l| l.starts_with("First start")));
        assert!(second.terminate().0.success());
    } else {
        assert!(r.serve().terminate().0.success());
    }
    for (name, before) in key_files.iter().zip(first_keys) {
        assert_eq!(
            std::fs::read(dir.join("keys").join(name)).unwrap(),
            before,
            "{name} changed"
        );
    }
    let events = r.json(&["audit", "list"]);
    let initialized = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "node_initialized")
        .count();
    assert_eq!(initialized, 1, "a second start must not initialise again");
}

#[test]
fn bad_configuration_fails_before_anything_is_created() {
    let r = Rampart::without_init(BIN);
    let config = r.scratch().join("rampart.toml");
    std::fs::write(&config, "[http]\nlisten = \"everywhere\"\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["serve", "--ssh-listen", "nope"],
            "ssh.listen (from flag --ssh-listen)",
        ),
        (
            &["serve", "--log-level", "chatty"],
            "log.level (from flag --log-level)",
        ),
        (
            &["serve", "--config", config.to_str().unwrap()],
            "key http.listen",
        ),
        (
            &["user", "list", "--master-key-file", "/nonexistent/key"],
            "vault.master_key_file",
        ),
    ];
    for (args, expected) in cases {
        let out = r.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(
            !r.data_dir().exists(),
            "{args:?} created the data directory"
        );
    }
    // The port is taken: a clear error naming the key.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = r.run(&[
        "serve",
        "--http-listen",
        &addr,
        "--ssh-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on http.listen {addr}")),
        "{stderr}"
    );
}

#[test]
fn administration_commands_work_and_print_tables_or_json() {
    let r = Rampart::new(BIN);
    if populated(&r).is_none() {
        return;
    }
    let (_, second_pub) = ssh_keygen(r.scratch(), "alice2", "rsa", "");
    r.ok(&["user", "add", "bob", "--role", "auditor"]);
    r.ok(&["user", "key", "add", "bob", second_pub.to_str().unwrap()]);
    r.ok(&["group", "member", "add", "ops", "alice"]);
    r.ok_with_stdin(&["user", "password", "alice"], b"a long enough password\n");

    let alice = r.json(&["user", "show", "alice"]);
    assert_eq!(alice["role"], "user");
    assert_eq!(alice["has_password"], true);
    assert_eq!(alice["groups"], serde_json::json!(["ops"]));
    let fingerprint = alice["keys"][0]["fingerprint"].as_str().unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"));
    assert!(alice.to_string().contains("ssh-ed25519 AAAA"));
    assert!(
        !alice.to_string().contains("argon2"),
        "no password hash in output"
    );

    let table = r.ok(&["user", "list"]);
    assert!(table.lines().next().unwrap().starts_with("NAME"));
    assert!(table.contains("alice") && table.contains("bob") && table.contains("auditor"));

    r.ok(&["user", "disable", "bob"]);
    assert_eq!(r.json(&["user", "show", "bob"])["disabled"], true);
    r.ok(&["user", "enable", "bob"]);
    assert_eq!(r.json(&["user", "show", "bob"])["disabled"], false);
    r.ok(&["user", "key", "remove", "alice", &fingerprint]);
    assert_eq!(
        r.json(&["user", "show", "alice"])["keys"],
        serde_json::json!([])
    );

    let (key, _) = ssh_keygen(r.scratch(), "deploy", "ed25519", "");
    r.ok(&[
        "account",
        "add",
        "deploy@web-01",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let accounts = r.json(&["account", "list", "--asset", "web-01"]);
    let kinds: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["secret_kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["private_key", "password"]);

    let grant = r.json(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--account",
        "root",
        "--until",
        "2099-12-31T23:59:59Z",
    ]);
    // Without --actions: shell, exec and file transfer, never port forwarding.
    assert_eq!(
        grant["actions"],
        serde_json::json!(["shell", "exec", "scp", "sftp_read", "sftp_write"])
    );
    let by_label = r.json(&[
        "grant",
        "add",
        "--group",
        "ops",
        "--label",
        "env=prod",
        "--actions",
        "shell,port_forward",
    ]);
    assert_eq!(by_label["target"]["labels"][0]["key"], "env");
    assert_eq!(r.json(&["grant", "list"]).as_array().unwrap().len(), 2);
    r.ok(&["grant", "remove", by_label["id"].as_str().unwrap()]);
    assert_eq!(r.json(&["grant", "list"]).as_array().unwrap().len(), 1);

    assert_eq!(
        r.json(&["session", "list", "--live"]),
        serde_json::json!([])
    );
    assert!(r.ok(&["session", "list"]).contains("no sessions yet"));

    r.ok(&["account", "remove", "deploy@web-01"]);
    r.ok(&["user", "remove", "alice", "--yes"]);
    assert_eq!(
        r.json(&["grant", "list"]),
        serde_json::json!([]),
        "alice's grant went with her"
    );
    let removed = r.json(&["asset", "remove", "web-01", "--yes"]);
    assert_eq!(removed["accounts_removed"], 1);

    // Every change above is in the audit log, chained.
    let events = r.json(&["audit", "list", "--limit", "1000"]);
    let events = events.as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for expected in [
        "user_added",
        "user_key_added",
        "group_member_added",
        "user_password_changed",
        "user_disabled",
        "user_enabled",
        "user_key_removed",
        "account_added",
        "grant_added",
        "grant_removed",
        "account_removed",
        "user_removed",
        "asset_removed",
    ] {
        assert!(kinds.contains(&expected), "missing {expected} in {kinds:?}");
    }
    assert_chained(events);
}

fn assert_chained(events: &[Value]) {
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "chain broken at {}",
            pair[1]["seq"]
        );
        assert_eq!(
            pair[1]["seq"].as_i64().unwrap(),
            pair[0]["seq"].as_i64().unwrap() + 1
        );
    }
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let r = Rampart::new(BIN);
    if populated(&r).is_none() {
        return;
    }
    let s = r.scratch();
    let (alice_private, alice_pub) = (s.join("alice"), s.join("alice.pub"));
    let (encrypted, _) = ssh_keygen(s, "locked", "ed25519", "a passphrase");
    std::fs::write(s.join("garbage.pub"), "this is not a key\n").unwrap();
    let garbage = s.join("garbage.pub");
    let [alice_private, alice_pub, encrypted, garbage] =
        [&alice_private, &alice_pub, &encrypted, &garbage].map(|p| p.to_str().unwrap().to_owned());
    let unknown_id = "01900000-0000-7000-8000-000000000000";

    let cases: Vec<(Vec<&str>, &[u8], &str)> = vec![
        (vec!["user", "add", "bad name"], b"", "invalid user name"),
        (
            vec!["user", "add", "alice"],
            b"",
            "user alice already exists",
        ),
        (
            vec!["user", "add", "bob", "--key", "/nonexistent.pub"],
            b"",
            "cannot read /nonexistent.pub",
        ),
        (
            vec!["user", "add", "bob", "--key", &garbage],
            b"",
            "not an SSH public key",
        ),
        (
            vec!["user", "add", "bob", "--key", &alice_private],
            b"",
            "this is a private key",
        ),
        (
            vec!["user", "add", "bob", "--key", &alice_pub],
            b"",
            "already belongs to user alice",
        ),
        (vec!["user", "show", "nobody"], b"", "user nobody not found"),
        (
            vec!["user", "disable", "nobody"],
            b"",
            "user nobody not found",
        ),
        (
            vec!["user", "remove", "nobody"],
            b"",
            "user nobody not found",
        ),
        (
            vec!["user", "key", "remove", "alice", "SHA256:nope"],
            b"",
            "key SHA256:nope of user alice not found",
        ),
        (
            vec!["user", "password", "alice"],
            b"short\n",
            "password too short",
        ),
        (
            vec!["user", "password", "alice"],
            b"",
            "standard input is empty",
        ),
        (vec!["group", "add", "ops"], b"", "group ops already exists"),
        (
            vec!["group", "member", "add", "nogroup", "alice"],
            b"",
            "group nogroup not found",
        ),
        (
            vec!["group", "member", "add", "ops", "nobody"],
            b"",
            "user nobody not found",
        ),
        (
            vec!["asset", "add", "web-01", "--host", "10.0.0.9"],
            b"",
            "asset web-01 already exists",
        ),
        (
            vec!["asset", "add", "x", "--host", "bad host"],
            b"",
            "invalid host",
        ),
        (
            vec!["asset", "add", "x", "--host", "h", "--port", "0"],
            b"",
            "invalid port 0",
        ),
        (
            vec!["asset", "add", "x", "--host", "h", "--port", "70000"],
            b"",
            "invalid value '70000'",
        ),
        (
            vec!["asset", "add", "x", "--host", "h", "--label", "env"],
            b"",
            "invalid label",
        ),
        (
            vec![
                "asset", "add", "x", "--host", "h", "--label", "a=1", "--label", "a=2",
            ],
            b"",
            "given twice",
        ),
        (
            vec!["asset", "show", "nohost"],
            b"",
            "asset nohost not found",
        ),
        (
            vec!["asset", "remove", "nohost"],
            b"",
            "asset nohost not found",
        ),
        (
            vec!["account", "add", "root@nohost", "--password-stdin"],
            b"pw\n",
            "asset nohost not found",
        ),
        (
            vec!["account", "add", "root@web-01", "--password-stdin"],
            b"pw\n",
            "account root@web-01 already exists",
        ),
        (
            vec!["account", "add", "rootweb01", "--password-stdin"],
            b"pw\n",
            "expected ACCOUNT@ASSET",
        ),
        (
            vec!["account", "add", "x@web-01", "--password-stdin"],
            b"",
            "standard input is empty",
        ),
        (
            vec!["account", "add", "x@web-01", "--key-file", &garbage],
            b"",
            "not an OpenSSH private key",
        ),
        (
            vec!["account", "add", "x@web-01", "--key-file", &alice_pub],
            b"",
            "not an OpenSSH private key",
        ),
        (
            vec!["account", "add", "x@web-01", "--key-file", &encrypted],
            b"",
            "protected by a passphrase",
        ),
        (vec!["account", "add", "x@web-01"], b"", "--password-stdin"),
        (
            vec!["account", "list", "--asset", "nohost"],
            b"",
            "asset nohost not found",
        ),
        (
            vec!["account", "remove", "nobody@web-01"],
            b"",
            "account nobody@web-01 not found",
        ),
        (
            vec!["grant", "add", "--user", "nobody", "--asset", "web-01"],
            b"",
            "user nobody not found",
        ),
        (
            vec!["grant", "add", "--group", "nogroup", "--asset", "web-01"],
            b"",
            "group nogroup not found",
        ),
        (
            vec!["grant", "add", "--user", "alice", "--asset", "nohost"],
            b"",
            "asset nohost not found",
        ),
        (
            vec![
                "grant",
                "add",
                "--user",
                "alice",
                "--asset",
                "web-01",
                "--account",
                "nobody",
            ],
            b"",
            "account nobody@web-01 not found",
        ),
        (
            vec![
                "grant", "add", "--user", "alice", "--asset", "web-01", "--until", "tomorrow",
            ],
            b"",
            "invalid --until time \"tomorrow\"",
        ),
        (
            vec![
                "grant",
                "add",
                "--user",
                "alice",
                "--asset",
                "web-01",
                "--until",
                "2020-01-01T00:00:00Z",
            ],
            b"",
            "already in the past",
        ),
        (
            vec![
                "grant",
                "add",
                "--user",
                "alice",
                "--asset",
                "web-01",
                "--from",
                "2030-01-02T00:00:00Z",
                "--until",
                "2030-01-01T00:00:00Z",
            ],
            b"",
            "is not after --from",
        ),
        (
            vec![
                "grant",
                "add",
                "--user",
                "alice",
                "--asset",
                "web-01",
                "--actions",
                "shell,root",
            ],
            b"",
            "unknown action \"root\"",
        ),
        (
            vec!["grant", "add", "--user", "alice", "--label", "prod"],
            b"",
            "invalid label",
        ),
        (vec!["grant", "add", "--asset", "web-01"], b"", "--user"),
        (vec!["grant", "add", "--user", "alice"], b"", "--asset"),
        (
            vec!["grant", "remove", "not-an-id"],
            b"",
            "invalid grant id",
        ),
        (vec!["grant", "remove", unknown_id], b"", "not found"),
        (vec!["session", "show", "xyz"], b"", "invalid session id"),
        (vec!["session", "show", unknown_id], b"", "not found"),
    ];
    let before = r.snapshot();
    for (args, stdin, expected) in &cases {
        let out = r.run_with_stdin(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        if !expected.starts_with("--") && !expected.starts_with("invalid value") {
            // Our own errors are one line; clap's usage errors add a usage hint.
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
        }
    }
    assert_eq!(r.snapshot(), before, "a failed command changed the store");
}

#[test]
fn canary_secrets_never_reach_disk_logs_or_output_in_clear() {
    let r = Rampart::new(BIN);
    if require_tool("ssh-keygen").is_none() {
        return;
    }
    const CANARY: &str = "canary-7f3e9c1d-password-b24a";
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    let server = r.serve();
    let mut outputs = server.banner.join("\n");
    outputs += &r.ok_with_stdin(
        &["account", "add", "root@web-01", "--password-stdin"],
        format!("{CANARY}\n").as_bytes(),
    );
    let (key, _) = ssh_keygen(r.scratch(), "target", "ed25519", "");
    let pem = std::fs::read_to_string(&key).unwrap();
    // The middle line of the private key is as secret as the password.
    let key_canary = pem.lines().nth(2).unwrap().to_owned();
    outputs += &r.ok(&[
        "account",
        "add",
        "deploy@web-01",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    for args in [
        &["account", "list", "--json"][..],
        &["account", "list"],
        &["asset", "show", "web-01", "--json"],
        &["audit", "list", "--json"],
        &["vault", "status", "--json"],
        &["vault", "rotate-key", "--json"],
        &["vault", "status"],
    ] {
        outputs += &r.ok(args);
    }
    outputs += &server.get("/readyz").1;
    let (status, stderr) = server.terminate();
    assert!(status.success());
    outputs += &stderr;

    for canary in [CANARY, key_canary.as_str()] {
        assert!(!outputs.contains(canary), "a command printed a secret");
        let hits = files_containing(&r.data_dir(), canary.as_bytes());
        assert!(hits.is_empty(), "secret in clear in {hits:?}");
    }
    // The test would notice a leak: the canary is findable where it is in clear.
    assert_eq!(
        files_containing(r.scratch(), key_canary.as_bytes()),
        vec![key]
    );
    assert_eq!(r.json(&["vault", "status"])["secrets"], 2);
}

#[test]
fn vault_key_rotation_keeps_every_secret_readable_under_the_new_key_only() {
    let r = Rampart::new(BIN);
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    for login in ["root", "admin", "backup"] {
        r.ok_with_stdin(
            &[
                "account",
                "add",
                &format!("{login}@web-01"),
                "--password-stdin",
            ],
            b"pw-for-test\n",
        );
    }
    let key_path = r.data_dir().join("keys/vault-master.key");
    let old_key = std::fs::read(&key_path).unwrap();
    let before = r.json(&["vault", "status"]);
    let old_id = before["active_key_id"].as_str().unwrap().to_owned();
    assert_eq!(before["secrets_by_key"][&old_id], 3);

    let report = r.json(&["vault", "rotate-key"]);
    assert_eq!(report["secrets_reencrypted"], 3);
    assert_eq!(report["old_key_ids"], serde_json::json!([old_id]));
    let new_id = report["new_key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);

    let after = r.json(&["vault", "status"]);
    assert_eq!(after["active_key_id"], new_id.as_str());
    assert_eq!(after["keys_held"], serde_json::json!([new_id]));
    assert_eq!(
        after["secrets_by_key"],
        serde_json::json!({ new_id.clone(): 3 })
    );
    assert_eq!(after["unreadable"], serde_json::json!([]));
    assert_ne!(std::fs::read(&key_path).unwrap(), old_key);
    assert_eq!(mode(&key_path), 0o600);
    assert!(!r.data_dir().join("keys/vault-master.key.next").exists());

    // Put the old key back: nothing opens any more, and the store refuses to start with it.
    std::fs::write(&key_path, &old_key).unwrap();
    let out = r.run(&["vault", "status"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("vault key {new_id}")), "{stderr}");
}

#[test]
fn an_external_master_key_is_used_and_rotated_with_a_new_key_file() {
    let r = Rampart::new(BIN);
    let old = r.scratch().join("old.key");
    let new = r.scratch().join("new.key");
    r.ok(&["vault", "generate-key", old.to_str().unwrap()]);
    r.ok(&["vault", "generate-key", new.to_str().unwrap()]);
    assert_eq!(mode(&old), 0o600);
    let refuses = r.run(&["vault", "generate-key", old.to_str().unwrap()]);
    assert!(
        !refuses.status.success(),
        "generate-key must not overwrite a key"
    );

    let with_old = ["--master-key-file", old.to_str().unwrap()];
    let with_new = ["--master-key-file", new.to_str().unwrap()];
    let run = |extra: &[&str], args: &[&str]| r.run(&[args, extra].concat());
    assert!(run(&with_old, &["init"]).status.success());
    assert!(
        run(&with_old, &["asset", "add", "db", "--host", "127.0.0.1"])
            .status
            .success()
    );
    let out = r.run_with_stdin(
        &[
            &["account", "add", "postgres@db", "--password-stdin"][..],
            &with_old,
        ]
        .concat(),
        b"pg-secret\n",
    );
    assert!(out.status.success());
    assert!(
        !r.data_dir().join("keys/vault-master.key").exists(),
        "no key of its own when one is supplied"
    );

    let out = run(&with_old, &["vault", "rotate-key"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-key-file"));
    assert!(
        !run(&with_new, &["vault", "status"]).status.success(),
        "the new key is not in use yet"
    );

    let out = run(
        &with_old,
        &[
            "vault",
            "rotate-key",
            "--new-key-file",
            new.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("now configure the new key"));
    assert!(run(&with_new, &["vault", "status"]).status.success());
    let out = run(&with_old, &["vault", "status"]);
    assert!(
        !out.status.success(),
        "the old key must no longer open the vault"
    );
}

#[test]
fn concurrent_processes_share_one_data_directory_safely() {
    let r = Rampart::new(BIN);
    let server = r.serve();
    let children: Vec<_> = (0..8)
        .map(|i| {
            r.command(&["user", "add", &format!("user{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(r.json(&["user", "list"]).as_array().unwrap().len(), 8);
    let events = r.json(&["audit", "list", "--limit", "1000"]);
    let events = events.as_array().unwrap();
    assert_eq!(
        events.len(),
        10,
        "node_initialized, server_started and 8 user_added"
    );
    assert_chained(events);
    assert!(server.terminate().0.success());
}

#[test]
fn audit_export_writes_jsonl_and_csv_and_is_itself_audited() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    let before = r
        .json(&["audit", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .len();

    let jsonl = r.ok(&["audit", "export", "--format", "jsonl"]);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), before);
    assert!(
        lines
            .iter()
            .any(|e| e["kind"] == "user_added" && e["event"]["user"] == "alice")
    );

    let file = r.scratch().join("audit.csv");
    r.ok(&[
        "audit",
        "export",
        "--format",
        "csv",
        "-o",
        file.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(
        csv.starts_with("seq,at,actor,kind,event,prev_hash,hash\n"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count(),
        before + 2,
        "header + events, including the first export"
    );
    assert!(csv.contains("asset_added"));

    let future = r.ok(&["audit", "export", "--since", "2099-01-01T00:00:00Z"]);
    assert_eq!(future, "");
    let exports = r.json(&["audit", "list", "--limit", "1000"]);
    let exports: Vec<&Value> = exports
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "audit_exported")
        .collect();
    assert_eq!(exports.len(), 3);
    let out = r.run(&["audit", "export", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --since time"));
    let out = r.run(&["audit", "export", "-o", file.to_str().unwrap()]);
    assert!(!out.status.success(), "never overwrites a file");
}

#[test]
fn removals_that_take_grants_or_accounts_along_need_yes_off_a_terminal_and_groups_can_be_left_and_removed()
 {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "bob"]);
    r.ok(&["user", "add", "carol"]);
    r.ok(&["group", "add", "ops"]);
    r.ok(&["group", "member", "add", "ops", "bob"]);
    r.ok(&["group", "member", "add", "ops", "carol"]);
    r.ok(&["asset", "add", "db-01", "--host", "127.0.0.1"]);
    r.ok_with_stdin(
        &["account", "add", "app@db-01", "--password-stdin"],
        b"a-password",
    );
    r.ok(&["grant", "add", "--group", "ops", "--asset", "db-01"]);
    r.ok(&["grant", "add", "--user", "bob", "--asset", "db-01"]);
    let before = r.snapshot();

    // Not on a terminal (the test's pipes): refused, saying what would go, and nothing changes.
    for (args, goes) in [
        (
            vec!["asset", "remove", "db-01"],
            "asset db-01 also removes 1 account and 2 grants",
        ),
        (
            vec!["user", "remove", "bob"],
            "user bob also removes 1 grant",
        ),
        (
            vec!["group", "remove", "ops"],
            "group ops also removes 1 grant",
        ),
    ] {
        let out = r.run(&args);
        assert!(!out.status.success(), "{args:?}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(goes), "{args:?}: {message}");
        assert!(message.contains("--yes"), "{message}");
    }
    assert_eq!(r.snapshot(), before, "a refused removal changed something");
    // Nothing along: no confirmation needed.
    r.ok(&["user", "remove", "carol"]);

    // Leaving a group, then removing it with its grant.
    let group = r.json(&["group", "member", "remove", "ops", "bob"]);
    assert_eq!(group["members"], serde_json::json!([]), "{group}");
    let again = r.run(&["group", "member", "remove", "ops", "bob"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found"));
    let removed = r.json(&["group", "remove", "ops", "--yes"]);
    assert_eq!(removed["grants_removed"], 1, "{removed}");
    assert_eq!(r.json(&["group", "list"]), serde_json::json!([]));
    let grants = r.json(&["grant", "list"]);
    assert_eq!(
        grants.as_array().unwrap().len(),
        1,
        "bob's own grant stays: {grants}"
    );
    let kinds: Vec<String> = r
        .json(&["audit", "list", "--limit", "5"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"group_member_removed".to_owned()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"group_removed".to_owned()), "{kinds:?}");
}

#[test]
fn user_set_role_changes_the_role_once_and_audits_it() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "dana"]);
    let changed = r.json(&["user", "set", "dana", "--role", "auditor"]);
    assert_eq!(changed["role"], "auditor", "{changed}");
    // The same role again changes and records nothing.
    r.ok(&["user", "set", "dana", "--role", "auditor"]);
    let events = r.json(&["audit", "list", "--kind", "user_role_changed"]);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"]["from"], "user");
    assert_eq!(events[0]["event"]["to"], "auditor");
    let nothing = r.run(&["user", "set", "dana"]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("--role"));
    let wrong = r.run(&["user", "set", "dana", "--role", "root"]);
    assert!(!wrong.status.success());
    assert_eq!(r.json(&["user", "show", "dana"])["role"], "auditor");
}

#[test]
fn asset_set_changes_labels_and_the_change_is_audited() {
    let r = Rampart::new(BIN);
    r.ok(&[
        "asset",
        "add",
        "db-02",
        "--host",
        "127.0.0.1",
        "--label",
        "env=test",
        "--label",
        "team=db",
    ]);
    let changed = r.json(&[
        "asset",
        "set",
        "db-02",
        "--label",
        "env=prod",
        "--label",
        "tier=1",
        "--remove-label",
        "team",
    ]);
    let labels: Vec<String> = changed["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}={}",
                l["key"].as_str().unwrap(),
                l["value"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(labels, ["env=prod", "tier=1"], "{changed}");
    let event = &r.json(&["audit", "list", "--kind", "asset_changed", "--limit", "1"])[0];
    assert_eq!(event["event"]["labels"], "env=prod,tier=1", "{event}");
    // A key the asset does not have is refused, and nothing changes.
    let missing = r.run(&["asset", "set", "db-02", "--remove-label", "team"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no label \"team\""));
    assert_eq!(
        r.json(&["asset", "show", "db-02"])["labels"],
        changed["labels"]
    );
}
