//! The SSH gateway end to end: stock OpenSSH clients (`ssh`, `scp`, `sftp`, `rsync`) through a
//! real `rampart serve` to a real `sshd`, all on loopback.

use super::BIN;
use rampart_testkit::{
    PASSWORD_TARGET_PASSWORD, PASSWORD_TARGET_USER, Rampart, Server, SshTarget, current_user,
    files_containing, output_with_input, require_password_target_user, require_tool, resident_kib,
    ssh_keygen,
};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Rampart with one user (alice), one asset (web-01, a real sshd) and one key account on it,
/// granted to alice; plus an OpenSSH client configuration that trusts whatever it meets.
pub(crate) struct Lab {
    pub(crate) r: Rampart,
    pub(crate) server: Server,
    pub(crate) target: SshTarget,
    /// The target account: the local user the test runs as.
    pub(crate) login: String,
    pub(crate) client_config: PathBuf,
}

/// Registers the asset `asset` at 127.0.0.1:`port` and its account `login@asset`, which logs in
/// with `key` (vaulted).
pub(crate) fn add_loopback_target(r: &Rampart, asset: &str, port: u16, login: &str, key: &Path) {
    let port = port.to_string();
    r.ok(&[
        "asset",
        "add",
        asset,
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]);
    let account = format!("{login}@{asset}");
    let key = key.to_str().unwrap();
    r.ok(&["account", "add", &account, "--key-file", key]);
}

impl Lab {
    pub(crate) fn start() -> Option<Self> {
        Self::start_with_env(&[])
    }

    /// The lab with extra environment for `rampart serve` (configuration).
    pub(crate) fn start_with_env(env: &[(&str, &str)]) -> Option<Self> {
        Self::start_with_env_and_nofile(env, None)
    }

    /// The lab with `rampart serve` limited to `nofile` file descriptors (under `prlimit`).
    pub(crate) fn start_with_env_and_nofile(
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Option<Self> {
        Self::start_on(Rampart::new(BIN), env, nofile)
    }

    /// The lab on a given `rampart` (one with a configuration file, say).
    pub(crate) fn start_on(r: Rampart, env: &[(&str, &str)], nofile: Option<u64>) -> Option<Self> {
        Self::start_with_target(r, env, nofile, SshTarget::start)
    }

    /// The lab whose target sshd `start_target` starts (given the key it must accept).
    pub(crate) fn start_with_target(
        r: Rampart,
        env: &[(&str, &str)],
        nofile: Option<u64>,
        start_target: impl FnOnce(&Path) -> Option<SshTarget>,
    ) -> Option<Self> {
        for tool in ["ssh", "scp", "sftp", "ssh-keygen"] {
            require_tool(tool)?;
        }
        let dir = r.scratch().to_path_buf();
        let (alice_key, alice_pub) = ssh_keygen(&dir, "alice", "ed25519", "");
        let (target_key, target_pub) = ssh_keygen(&dir, "target", "ed25519", "");
        let target = start_target(&target_pub)?;
        let login = current_user();
        r.ok(&["user", "add", "alice", "--key", alice_pub.to_str().unwrap()]);
        crate::ssh::add_loopback_target(&r, "web-01", target.port, &login, &target_key);
        r.ok(&["grant", "add", "--user", "alice", "--asset", "web-01"]);
        let client_config = dir.join("ssh_config");
        std::fs::write(
            &client_config,
            format!(
                "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  \
                 LogLevel ERROR\n  IdentityFile {}\n  IdentitiesOnly yes\n  ConnectTimeout 30\n",
                alice_key.display()
            ),
        )
        .unwrap();
        let server = r.serve_with_env_and_nofile(env, nofile);
        Some(Self {
            r,
            server,
            target,
            login,
            client_config,
        })
    }

    pub(crate) fn port(&self) -> String {
        self.server.ssh.port().to_string()
    }

    /// `alice@LOGIN@web-01`, the direct-target user name.
    pub(crate) fn direct(&self) -> String {
        format!("alice@{}@web-01", self.login)
    }

    pub(crate) fn ssh_command(&self, user: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-F")
            .arg(&self.client_config)
            .args(["-p", &self.port()])
            .arg(format!("{user}@127.0.0.1"));
        command
    }

    /// Runs `ssh USER@bastion COMMAND` with `stdin`.
    pub(crate) fn ssh(&self, user: &str, command: &str, stdin: &[u8]) -> Output {
        output_with_input(self.ssh_command(user).arg(command), stdin)
    }

    /// The sessions, once none is live any more: a client can exit a moment before Rampart
    /// has written the end of its session.
    pub(crate) fn sessions(&self) -> Vec<Value> {
        let mut sessions = Vec::new();
        for _ in 0..150 {
            sessions = self
                .r
                .json(&["session", "list", "--limit", "1000"])
                .as_array()
                .unwrap()
                .clone();
            if sessions.iter().all(|s| s["ended_at"].is_string()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sessions
    }

    pub(crate) fn events(&self, kind: &str) -> Vec<Value> {
        let events = self.r.json(&["audit", "list", "--limit", "100000"]);
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256_of_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn exec_returns_output_stderr_and_exit_status_and_is_recorded() {
    let Some(lab) = Lab::start() else { return };
    let out = lab.ssh(&lab.direct(), "echo out; echo err >&2; exit 7", b"");
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(7));

    // `alice@web-01` works when alice has exactly one account there.
    let out = lab.ssh("alice@web-01", "echo one", b"");
    assert_eq!(text(&out.stdout), "one\n", "{}", text(&out.stderr));

    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 2);
    let first = sessions.iter().find(|s| s["exit_status"] == 7).unwrap();
    assert_eq!(first["user"], "alice");
    assert_eq!(first["asset"], "web-01");
    assert_eq!(first["kind"], "exec");
    assert_eq!(first["bytes_to_client"], 8, "out\\n and err\\n");
    assert!(first["ended_at"].is_string());
    assert_eq!(lab.events("session_started").len(), 2);
    assert_eq!(lab.events("session_ended").len(), 2);
    // Each use of the vaulted key is on record (the key itself never is).
    let used = lab.events("secret_used");
    assert_eq!(used.len(), 2, "{used:?}");
    assert_eq!(used[0]["event"]["account"], format!("{}@web-01", lab.login));
    let started = lab.events("server_started");
    assert_eq!(started.len(), 1);
    assert!(started[0]["event"]["settings"]["retention_days"] == 365);

    // The first connection pinned the target's host key, and said so.
    let asset = lab.r.json(&["asset", "show", "web-01"]);
    let pinned = asset["host_key"].as_str().unwrap();
    let real = std::fs::read_to_string(lab.target.host_key_file()).unwrap();
    assert!(real.starts_with(pinned), "pinned {pinned}, real {real}");
    assert_eq!(lab.events("host_key_pinned").len(), 1);
}

#[test]
fn a_gigabyte_passes_byte_exact_both_ways() {
    let Some(lab) = Lab::start() else { return };
    require_tool("sha256sum").unwrap();
    let dir = lab.r.scratch();
    let source = dir.join("gigabyte");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 1073741824 /dev/urandom > {}",
            source.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let expected = sha256_of_file(&source);

    // Upload through stdin.
    let uploaded = dir.join("uploaded");
    let out = lab
        .ssh_command(&lab.direct())
        .arg(format!("cat > {}", uploaded.display()))
        .stdin(std::fs::File::open(&source).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256_of_file(&uploaded), expected);
    std::fs::remove_file(&uploaded).unwrap();

    // Download through stdout.
    let downloaded = dir.join("downloaded");
    let out = lab
        .ssh_command(&lab.direct())
        .arg(format!("cat {}", source.display()))
        .stdout(std::fs::File::create(&downloaded).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256_of_file(&downloaded), expected);
    let session = lab
        .sessions()
        .into_iter()
        .find(|s| s["bytes_to_client"] == 1_073_741_824_u64);
    assert!(session.is_some(), "the download session counts every byte");
}

/// Both legs renegotiate their keys many times during the transfers (the user's `ssh` with
/// `RekeyLimit`, so Rampart's server side answers; the target's sshd with `RekeyLimit`, so
/// Rampart's client side answers), and every byte still arrives unchanged.
#[test]
fn both_legs_rekey_mid_transfer_and_the_bytes_stay_exact() {
    let Some(lab) = Lab::start_with_target(Rampart::new(BIN), &[], None, |key| {
        SshTarget::start_logging_with(key, "RekeyLimit 256K\n")
    }) else {
        return;
    };
    require_tool("sha256sum").unwrap();
    let dir = lab.r.scratch();
    let source = dir.join("eight-mib");
    let content: Vec<u8> = (0..2_097_152u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    std::fs::write(&source, &content).unwrap();
    let expected = sha256_of_file(&source);
    let rekeying = |command: String| {
        let mut ssh = Command::new("ssh");
        ssh.arg("-F")
            .arg(&lab.client_config)
            .args(["-o", "LogLevel=DEBUG1", "-o", "RekeyLimit=256K"])
            .args(["-p", &lab.port()])
            .arg(format!("{}@127.0.0.1", lab.direct()))
            .arg(command);
        ssh
    };

    let uploaded = dir.join("uploaded");
    let up = rekeying(format!("cat > {}", uploaded.display()))
        .stdin(std::fs::File::open(&source).unwrap())
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert_eq!(sha256_of_file(&uploaded), expected);

    let downloaded = dir.join("downloaded");
    let down = rekeying(format!("cat {}", source.display()))
        .stdout(std::fs::File::create(&downloaded).unwrap())
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert_eq!(sha256_of_file(&downloaded), expected);

    // The user's leg: each connection's client saw new keys again and again (the first kex
    // and at least three renegotiations for 8 MiB at 256 KiB).
    for (what, out) in [("upload", &up), ("download", &down)] {
        let kexes = text(&out.stderr)
            .matches("SSH2_MSG_NEWKEYS received")
            .count();
        assert!(
            kexes >= 4,
            "{what}: {kexes} key exchanges on the user's leg"
        );
    }
    // The target's leg: sshd renegotiated with Rampart's client as often.
    let kexes = lab
        .target
        .log()
        .matches("SSH2_MSG_NEWKEYS received")
        .count();
    assert!(kexes >= 8, "{kexes} key exchanges on the target's leg");
}

#[test]
fn scp_sftp_and_rsync_transfer_files() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    let original = dir.join("original");
    let content: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&original, &content).unwrap();
    let remote = |name: &str| format!("{}@127.0.0.1:{}", lab.direct(), dir.join(name).display());
    let scp = |args: &[&str]| {
        let out = Command::new("scp")
            .arg("-F")
            .arg(&lab.client_config)
            .args(["-P", &lab.port()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "scp {args:?}: {}", text(&out.stderr));
    };
    // OpenSSH 9 scp (SFTP underneath) and legacy scp, both directions.
    scp(&[original.to_str().unwrap(), &remote("sftp-up")]);
    scp(&[&remote("sftp-up"), dir.join("sftp-down").to_str().unwrap()]);
    scp(&["-O", original.to_str().unwrap(), &remote("legacy-up")]);
    scp(&[
        "-O",
        &remote("legacy-up"),
        dir.join("legacy-down").to_str().unwrap(),
    ]);
    for name in ["sftp-up", "sftp-down", "legacy-up", "legacy-down"] {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), content, "{name}");
    }
    let kinds: Vec<String> = lab
        .sessions()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"sftp".to_owned()) && kinds.contains(&"scp".to_owned()),
        "{kinds:?}"
    );

    // sftp: ls, mkdir, put, rename, get, rm.
    let work = dir.join("sftp-dir");
    let batch = format!(
        "mkdir {work}\nput {orig} {work}/a\nrename {work}/a {work}/b\nls {work}\nget {work}/b {got}\nrm {work}/b\nrmdir {work}\n",
        work = work.display(),
        orig = original.display(),
        got = dir.join("sftp-got").display()
    );
    let out = output_with_input(
        Command::new("sftp")
            .arg("-F")
            .arg(&lab.client_config)
            .args(["-P", &lab.port(), "-b", "-"])
            .arg(format!("{}@127.0.0.1", lab.direct())),
        batch.as_bytes(),
    );
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("/b"),
        "ls shows the renamed file: {}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read(dir.join("sftp-got")).unwrap(), content);
    assert!(!work.exists());

    // Every file moved and every change is evidence, with the SHA-256 of what moved.
    lab.sessions();
    let digest = sha256_of_file(&original);
    let transfers = lab.events("file_transferred");
    let uploaded = format!("{}/a", work.display());
    let downloaded = format!("{}/b", work.display());
    let moved = |path: &str, direction: &str| {
        transfers.iter().any(|e| {
            e["event"]["path"] == path
                && e["event"]["direction"] == direction
                && e["event"]["bytes"] == content.len() as u64
                && e["event"]["sha256"] == digest.as_str()
        })
    };
    assert!(moved(&uploaded, "upload"), "{transfers:?}");
    assert!(moved(&downloaded, "download"), "{transfers:?}");
    assert!(
        moved(dir.join("sftp-up").to_str().unwrap(), "upload"),
        "scp over SFTP too: {transfers:?}"
    );
    let legacy = dir.join("legacy-up");
    assert!(
        moved(legacy.to_str().unwrap(), "upload"),
        "legacy scp up: {transfers:?}"
    );
    assert!(
        moved(legacy.to_str().unwrap(), "download"),
        "legacy scp down: {transfers:?}"
    );
    let changes = lab.events("file_changed");
    let changed = |operation: &str, path: &str| {
        changes.iter().any(|e| {
            e["event"]["operation"] == operation
                && e["event"]["path"] == path
                && e["event"]["succeeded"] == true
        })
    };
    assert!(changed("mkdir", work.to_str().unwrap()), "{changes:?}");
    assert!(changed("rename", &uploaded), "{changes:?}");
    assert!(changed("remove", &downloaded), "{changes:?}");
    assert!(changed("rmdir", work.to_str().unwrap()), "{changes:?}");

    if require_tool("rsync").is_some() {
        let out = Command::new("rsync")
            .args(["-a", "-e"])
            .arg(format!(
                "ssh -F {} -p {}",
                lab.client_config.display(),
                lab.port()
            ))
            .arg(&original)
            .arg(remote("rsync-dir/"))
            .output()
            .unwrap();
        assert!(out.status.success(), "rsync: {}", text(&out.stderr));
        assert_eq!(
            std::fs::read(dir.join("rsync-dir/original")).unwrap(),
            content
        );
    }
}

#[test]
fn proxyjump_terminates_the_inner_connection_and_records_it() {
    let Some(lab) = Lab::start() else { return };
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&lab.client_config)
        .arg("-J")
        .arg(format!("alice@127.0.0.1:{}", lab.port()))
        .args(["-p", &lab.target.port.to_string()])
        .arg(format!("{}@web-01", lab.login))
        .arg("echo jumped; exit 3")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "jumped\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3));
    let sessions = lab.sessions();
    let [session] = sessions.as_slice() else {
        panic!("one session: {sessions:?}")
    };
    assert_eq!(session["user"], "alice");
    assert_eq!(session["kind"], "exec");
    assert!(
        session["source_addr"]
            .as_str()
            .unwrap()
            .contains("proxyjump")
    );
    assert_eq!(session["exit_status"], 3);
}

#[test]
fn an_interactive_shell_gets_a_terminal() {
    let Some(lab) = Lab::start() else { return };
    let out = output_with_input(
        lab.ssh_command(&lab.direct()).arg("-tt"),
        b"tty; echo \"sum=$((40+2))\"; exit 5\n",
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    assert!(stdout.contains("sum=42"), "{stdout}");
    assert_eq!(out.status.code(), Some(5));
    assert!(lab.sessions().iter().any(|s| s["kind"] == "shell"));
}

#[test]
fn every_refusal_is_one_clear_line_a_failing_status_and_an_audit_event() {
    let Some(lab) = Lab::start() else { return };
    let r = &lab.r;
    // Another asset alice has no grant for, one whose grant starts later, one that is down,
    // and an account whose key the target does not accept.
    r.ok(&[
        "asset",
        "add",
        "db-01",
        "--host",
        "127.0.0.1",
        "--port",
        &lab.target.port.to_string(),
    ]);
    r.ok(&[
        "asset",
        "add",
        "later",
        "--host",
        "127.0.0.1",
        "--port",
        &lab.target.port.to_string(),
    ]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    r.ok(&[
        "asset",
        "add",
        "down",
        "--host",
        "127.0.0.1",
        "--port",
        &closed.to_string(),
    ]);
    let (wrong_key, _) = ssh_keygen(r.scratch(), "wrong", "ed25519", "");
    for asset in ["db-01", "later", "down"] {
        r.ok(&[
            "account",
            "add",
            &format!("{}@{asset}", lab.login),
            "--key-file",
            wrong_key.to_str().unwrap(),
        ]);
    }
    r.ok(&[
        "account",
        "add",
        "nobody@web-01",
        "--key-file",
        wrong_key.to_str().unwrap(),
    ]);
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "later",
        "--from",
        "2099-01-01T00:00:00Z",
    ]);
    r.ok(&["grant", "add", "--user", "alice", "--asset", "down"]);
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--actions",
        "shell",
    ]);

    let login = &lab.login;
    let cases = [
        (format!("alice@{login}@nohost"), "unknown asset nohost"),
        (
            "alice@ghost@web-01".to_owned(),
            "unknown account ghost@web-01",
        ),
        (format!("alice@{login}@db-01"), "may not use"),
        (
            format!("alice@{login}@later"),
            "not valid now (valid from 2099-01-01T00:00:00Z)",
        ),
        (format!("alice@{login}@down"), "unreachable"),
        (
            "alice@nobody@web-01".to_owned(),
            "refused Rampart's credential for nobody@web-01",
        ),
        ("alice".to_owned(), "name a target"),
    ];
    for (user, expected) in &cases {
        let out = lab.ssh(user, "true", b"");
        let stderr = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{user} should fail");
        assert!(
            stderr.contains(expected),
            "{user}: {stderr:?} should mention {expected:?}"
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{user}: one line: {stderr:?}"
        );
        assert!(stderr.starts_with("rampart: "), "{stderr:?}");
        assert!(!stderr.contains("BEGIN OPENSSH"), "no credential in errors");
    }
    // Grants combine: web-01 allows exec through the first grant even though a later grant
    // allows only a shell.
    assert!(lab.ssh(&lab.direct(), "true", b"").status.success());
    let denied = lab.events("access_denied");
    assert!(denied.len() >= 4, "{denied:?}");
    assert!(!lab.events("target_connection_failed").is_empty());

    // A user with no key that matches is refused at authentication.
    let out = lab.ssh(&format!("bob@{login}@web-01"), "true", b"");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_key_offered_without_a_signature_or_belonging_to_someone_else_is_no_credential() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    // A4: the client knows alice's public key but not the private key, so it can only offer it.
    let offer_only = dir.join("offer-only");
    std::fs::create_dir(&offer_only).unwrap();
    std::fs::copy(dir.join("alice.pub"), offer_only.join("id.pub")).unwrap();
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ])
        .args(["-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-o"])
        .arg(format!("IdentityFile={}", offer_only.join("id").display()))
        .args(["-p", &lab.port()])
        .arg(format!("{}@127.0.0.1", lab.direct()))
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    // A5: bob signs with his own key while asking to be alice: he stays bob, and bob has no
    // access; logging in as himself he is bob.
    let (bob_key, bob_pub) = ssh_keygen(dir, "bob", "ed25519", "");
    lab.r
        .ok(&["user", "add", "bob", "--key", bob_pub.to_str().unwrap()]);
    let as_bob = |user: &str| {
        Command::new("ssh")
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
            ])
            .args(["-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i"])
            .arg(&bob_key)
            .args(["-p", &lab.port()])
            .arg(format!("{user}@127.0.0.1"))
            .arg("true")
            .output()
            .unwrap()
    };
    assert_eq!(
        as_bob(&lab.direct()).status.code(),
        Some(255),
        "bob's key is not alice's"
    );
    let out = as_bob(&format!("bob@{}@web-01", lab.login));
    assert!(
        text(&out.stderr).contains("bob may not use"),
        "{}",
        text(&out.stderr)
    );
    let logins = lab.events("login_succeeded");
    assert!(
        logins.iter().all(|e| e["event"]["user"] != "alice"),
        "alice never logged in: {logins:?}"
    );
    // A disabled user cannot log in at all.
    lab.r.ok(&["user", "disable", "alice"]);
    assert_eq!(lab.ssh(&lab.direct(), "true", b"").status.code(), Some(255));
}

#[test]
fn forwarding_needs_a_grant_and_agent_and_x11_are_never_relayed() {
    let Some(lab) = Lab::start() else { return };
    // -L to a port that is not an asset's SSH port: the channel is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.local_addr().unwrap().port();
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut forward, mut stream) = local_forward(&lab, local, other);
    let mut buffer = [0u8; 1];
    let read = std::io::Read::read(&mut stream, &mut buffer);
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the forward must not connect"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "nothing reached the forwarded port"
    );
    forward.kill().unwrap();
    forward.wait().unwrap();
    assert!(
        lab.events("access_denied")
            .iter()
            .any(|e| e["event"]["action"] == "port_forward")
    );

    // With a grant that allows port_forward, the same forward carries data, as a session.
    lab.r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--actions",
        "port_forward",
    ]);
    listener.set_nonblocking(false).unwrap();
    let echo = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        let mut buffer = [0u8; 4];
        std::io::Read::read_exact(&mut peer, &mut buffer).unwrap();
        peer.write_all(b"pong").unwrap();
        buffer
    });
    let (mut forward, mut stream) = local_forward(&lab, local, other);
    stream.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut reply).unwrap();
    assert_eq!(&reply, b"pong");
    assert_eq!(&echo.join().unwrap(), b"ping");
    drop(stream);
    forward.kill().unwrap();
    forward.wait().unwrap();
    let kind = format!("port_forward:{other}");
    assert!(
        lab.sessions().iter().any(|s| s["kind"] == kind.as_str()),
        "{:?}",
        lab.sessions()
    );

    // -R: the remote forward request is refused.
    let out = lab
        .ssh_command(&lab.direct())
        .args(["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22"])
        .arg("true")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "remote forwarding must fail");

    // -A and -X: the target sees no agent and no display.
    let out = lab
        .ssh_command(&lab.direct())
        .args(["-A", "-X"])
        .arg("echo agent=${SSH_AUTH_SOCK:-none} display=${DISPLAY:-none}")
        .env("SSH_AUTH_SOCK", lab.r.scratch().join("no-agent"))
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "agent=none display=none\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_changed_target_host_key_is_refused_before_any_credential_is_sent() {
    let Some(mut lab) = Lab::start() else { return };
    assert!(
        lab.ssh(&lab.direct(), "true", b"").status.success(),
        "first connection pins the key"
    );
    lab.target.change_host_key();
    let out = lab.ssh(&lab.direct(), "touch should-not-exist", b"");
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("host key of web-01 has changed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rampart asset hostkey web-01"),
        "says what to do: {stderr}"
    );
    assert_eq!(lab.events("host_key_rejected").len(), 1);
    // The administrator checks and pins the new key: connections work again.
    lab.r.ok(&[
        "asset",
        "hostkey",
        "web-01",
        "--key-file",
        lab.target.host_key_file().to_str().unwrap(),
    ]);
    let out = lab.ssh(&lab.direct(), "echo ok", b"");
    assert_eq!(text(&out.stdout), "ok\n", "{}", text(&out.stderr));
}

#[test]
fn a_stalled_target_or_a_client_that_never_reads_does_not_stall_other_sessions() {
    let Some(lab) = Lab::start() else { return };
    // A "target" that accepts TCP and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    lab.r.ok(&[
        "asset",
        "add",
        "silent",
        "--host",
        "127.0.0.1",
        "--port",
        &silent_port.to_string(),
    ]);
    let (key, _) = ssh_keygen(lab.r.scratch(), "silent", "ed25519", "");
    lab.r.ok(&[
        "account",
        "add",
        &format!("{}@silent", lab.login),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "silent"]);
    let mut stuck = lab
        .ssh_command(&format!("alice@{}@silent", lab.login))
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // A client that asks for endless output and never reads it.
    let mut flood = lab
        .ssh_command(&lab.direct())
        .arg("yes flooding-the-relay")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // Meanwhile another session works.
    let out = lab.ssh(&lab.direct(), "echo still-fine", b"");
    assert_eq!(text(&out.stdout), "still-fine\n", "{}", text(&out.stderr));
    // And the flood is held back by flow control instead of piling up in Rampart.
    let rss = resident_kib(lab.server.pid());
    assert!(
        rss < 256 * 1024,
        "rampart holds {rss} KiB while a client does not read"
    );
    flood.kill().unwrap();
    flood.wait().unwrap();
    stuck.kill().unwrap();
    stuck.wait().unwrap();
    drop(silent);
}

#[test]
fn a_password_account_logs_in_with_the_vaulted_password_which_never_shows() {
    let Some(lab) = Lab::start() else { return };
    if !require_password_target_user() {
        return;
    }
    let account = format!("{PASSWORD_TARGET_USER}@web-01");
    lab.r.ok_with_stdin(
        &["account", "add", &account, "--password-stdin"],
        format!("{PASSWORD_TARGET_PASSWORD}\n").as_bytes(),
    );
    let out = lab.ssh(&format!("alice@{account}"), "id -un; env", b"");
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{PASSWORD_TARGET_USER}\n")),
        "{stdout} {}",
        text(&out.stderr)
    );
    // The password is used, never shown: not in the target's environment, the output, the
    // audit log, the logs or any file of the data directory.
    assert!(!stdout.contains(PASSWORD_TARGET_PASSWORD));
    assert!(!text(&out.stderr).contains(PASSWORD_TARGET_PASSWORD));
    let audit = lab.r.ok(&["audit", "list", "--limit", "100000", "--json"]);
    assert!(!audit.contains(PASSWORD_TARGET_PASSWORD));
    assert!(files_containing(&lab.r.data_dir(), PASSWORD_TARGET_PASSWORD.as_bytes()).is_empty());

    // A wrong vaulted password: a clear refusal, nothing else.
    lab.r.ok(&["account", "remove", &account]);
    lab.r.ok_with_stdin(
        &["account", "add", &account, "--password-stdin"],
        b"not-the-password\n",
    );
    let out = lab.ssh(&format!("alice@{account}"), "true", b"");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("refused Rampart's credential for {account}")),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"));
}

/// A terminal driven through tmux: what a person sees and types.
pub(crate) struct Terminal {
    socket: String,
}

impl Terminal {
    pub(crate) fn start(command: &str) -> Self {
        // One tmux server per terminal: tests run in parallel threads of one process.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("rampart-test-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "80",
                "-y",
                "24",
                command,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        Self { socket }
    }

    pub(crate) fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        text(&out.stdout)
    }

    pub(crate) fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the screen shows `expected` (the screen changes as the remote side answers).
    pub(crate) fn wait_for(&self, expected: &str) -> String {
        let mut screen = String::new();
        for _ in 0..300 {
            screen = self.screen();
            if screen.contains(expected) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the terminal never showed {expected:?}; it shows:\n{screen}");
    }

    /// Waits until `check` accepts the screen.
    pub(crate) fn wait_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut screen = String::new();
        for _ in 0..300 {
            screen = self.screen();
            if check(&screen) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the terminal never showed {what}; it shows:\n{screen}");
    }

    /// Resizes the terminal, as a person resizing their window.
    pub(crate) fn resize(&self, columns: u16, rows: u16) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "resize-window", "-t", "t"])
            .args(["-x", &columns.to_string(), "-y", &rows.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn is_running(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "t"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn the_menu_lists_what_the_user_may_use_filters_and_connects() {
    let Some(lab) = Lab::start() else { return };
    if require_tool("tmux").is_none() {
        return;
    }
    lab.r.ok(&[
        "asset",
        "add",
        "db-01",
        "--host",
        "127.0.0.1",
        "--port",
        &lab.target.port.to_string(),
    ]);
    let (key, _) = ssh_keygen(lab.r.scratch(), "db", "ed25519", "");
    lab.r.ok(&[
        "account",
        "add",
        &format!("{}@db-01", lab.login),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "db-01"]);
    // An asset alice has no grant for never shows.
    lab.r
        .ok(&["asset", "add", "secret-01", "--host", "127.0.0.1"]);
    lab.r.ok(&[
        "account",
        "add",
        "root@secret-01",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let command = format!(
        "ssh -F {} -p {} -tt alice@127.0.0.1",
        lab.client_config.display(),
        lab.port()
    );

    let terminal = Terminal::start(&command);
    let screen = terminal.wait_for("targets for alice");
    assert!(
        screen.contains(&format!("{}@web-01", lab.login)),
        "{screen}"
    );
    assert!(screen.contains(&format!("{}@db-01", lab.login)), "{screen}");
    assert!(!screen.contains("secret-01"), "{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 80));
    // Filter to web, pick it, and use the shell.
    terminal.keys(&["web"]);
    let screen = terminal.wait_for("Filter: web");
    assert!(!screen.contains("db-01"), "{screen}");
    terminal.keys(&["Enter"]);
    terminal.wait_for("Connecting to");
    terminal.keys(&["echo shell-$((6*7))", "Enter"]);
    terminal.wait_for("shell-42");
    terminal.keys(&["exit", "Enter"]);
    for _ in 0..100 {
        if !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!terminal.is_running(), "ssh ends with the shell");
    let sessions = lab.sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s["kind"] == "shell" && s["asset"] == "web-01"),
        "{sessions:?}"
    );

    // q leaves without connecting anywhere.
    let terminal = Terminal::start(&command);
    terminal.wait_for("targets for alice");
    terminal.keys(&["q"]);
    for _ in 0..100 {
        if !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!terminal.is_running(), "q ends the connection");
    assert_eq!(lab.sessions().len(), 1);
}

#[test]
fn the_server_offers_modern_key_exchange_only_with_strict_kex() {
    let Some(lab) = Lab::start() else { return };
    // C3: the Terrapin countermeasure is negotiated with a stock client.
    let out = lab
        .ssh_command(&lab.direct())
        .arg("-vvv")
        .arg("true")
        .output()
        .unwrap();
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("will use strict KEX ordering"),
        "strict kex not negotiated"
    );
    // Legacy finite-field Diffie-Hellman is not offered.
    let out = lab
        .ssh_command(&lab.direct())
        .args(["-o", "KexAlgorithms=diffie-hellman-group14-sha256"])
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
}

/// Starts `ssh -N -L LOCAL:127.0.0.1:REMOTE` through Rampart and connects to its local end.
fn local_forward(lab: &Lab, local: u16, remote: u16) -> (std::process::Child, std::net::TcpStream) {
    let mut forward = lab
        .ssh_command(&lab.direct())
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("{local}:127.0.0.1:{remote}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", local)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            return (forward, stream);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = forward.kill();
    let _ = forward.wait();
    panic!("ssh -L never listened on {local}");
}
