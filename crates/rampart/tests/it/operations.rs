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

    // The same as one tar archive (mode 0600), restored alike.
    let archive = r.scratch().join("backup.tar");
    r.ok(&["backup", "--to", archive.to_str().unwrap()]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let from_archive = Rampart::without_init(BIN);
    let out = from_archive.run(&["restore", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        from_archive.json(&["user", "list"]),
        r.json(&["user", "list"])
    );
    assert_eq!(
        std::fs::read_dir(from_archive.scratch()).unwrap().count(),
        1,
        "only the restored data directory is left beside it"
    );

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

/// Parses a Prometheus exposition with the reference parser (Python's `prometheus_client`):
/// `name{label="v",...}` -> value, labels sorted. `None` when the parser is missing.
fn parse_exposition(
    dir: &std::path::Path,
    exposition: &str,
) -> Option<std::collections::BTreeMap<String, f64>> {
    // Debian's python3-prometheus-client is for the system Python; a python3 earlier on PATH
    // (pyenv and the like) may not have it.
    let Some(python) = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import prometheus_client"])
            .output()
            .is_ok_and(|out| out.status.success())
    }) else {
        rampart_testkit::skip_or_fail(
            "python3 with prometheus_client (python3-prometheus-client) is not installed",
        );
        return None;
    };
    let path = dir.join("metrics.txt");
    std::fs::write(&path, exposition).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the reference parser refuses the exposition: {}\n{exposition}",
        text(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// `GET /metrics` over plain HTTP from the separate metrics listener.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

#[test]
fn metrics_count_real_activity_need_an_auditor_and_every_request_has_an_access_record() {
    let Some(lab) = Lab::start_with_env(&[("RAMPART_METRICS_LISTEN", "127.0.0.1:0")]) else {
        return;
    };
    let addr = lab
        .server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("metrics: listening on http://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics line: {:?}", lab.server.banner))
        .to_owned();
    let dir = lab.r.scratch().to_path_buf();
    let Some(before) = parse_exposition(&dir, &scrape(&addr)) else {
        return;
    };
    let value =
        |m: &std::collections::BTreeMap<String, f64>, key: &str| m.get(key).copied().unwrap_or(0.0);
    assert_eq!(value(&before, "rampart_build_info{version=\"0.1.0\"}"), 1.0);
    assert!(
        before.contains_key("rampart_store_probe_seconds"),
        "{before:?}"
    );
    let expiry = value(&before, "rampart_tls_certificate_expiry_timestamp_seconds");
    assert!(
        expiry > rampart_testkit::unix_now() as f64,
        "the certificate's expiry: {before:?}"
    );
    assert_eq!(value(&before, "rampart_tls_certificate_self_signed"), 1.0);

    // Activity: a session with output, a denial, a failed login.
    let out = lab.ssh(&lab.direct(), "head -c 50000 /dev/zero | tr '\\0' x", b"");
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 50000);
    lab.r
        .ok_with_stdin(&["asset", "add", "db-01", "--host", "127.0.0.1"], b"");
    lab.r.ok_with_stdin(
        &["account", "add", "root@db-01", "--password-stdin"],
        b"pw\n",
    );
    assert!(!lab.ssh("alice@root@db-01", "true", b"").status.success());
    let wrong = serde_json::json!({ "username": "alice", "password": "not-her-password" });
    let refused = lab
        .server
        .client()
        .request("POST", "/api/v1/login", &[], Some(&wrong));
    assert_eq!(refused.status, 401);
    // A live session shows while it runs.
    let mut live = lab
        .ssh_command(&lab.direct())
        .arg("sleep 5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut during = None;
    wait_until("the live session in the metrics", || {
        let m = parse_exposition(&dir, &scrape(&addr)).unwrap();
        let found = value(&m, "rampart_sessions_live{kind=\"exec\",via=\"ssh\"}") == 1.0;
        during = Some(m);
        found
    });
    assert!(live.wait().unwrap().success());
    lab.sessions();
    let after = parse_exposition(&dir, &scrape(&addr)).unwrap();
    let grew = |key: &str, by: f64| {
        let (b, a) = (value(&before, key), value(&after, key));
        assert!(a >= b + by, "{key}: {b} -> {a}\n{after:?}");
    };
    grew("rampart_logins_total{result=\"succeeded\"}", 3.0);
    grew("rampart_logins_total{result=\"failed\"}", 1.0);
    grew("rampart_access_denied_total", 1.0);
    grew(
        "rampart_relayed_bytes_total{direction=\"to_client\"}",
        50000.0,
    );
    grew("rampart_audit_events_total{kind=\"session_ended\"}", 2.0);
    grew("rampart_recorder_wait_seconds_count", 1.0);
    assert_eq!(
        value(&after, "rampart_sessions_live{kind=\"exec\",via=\"ssh\"}"),
        0.0
    );
    assert!(value(&after, "rampart_audit_head_seq") > value(&before, "rampart_audit_head_seq"));

    // On the HTTPS listener, /metrics is for auditors and administrators.
    lab.r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    lab.r.ok(&["user", "add", "ulysses"]);
    let token = |user: &str| {
        lab.r
            .json(&["token", "create", "--user", user, "--scope", "read"])["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let client = lab.server.client();
    assert_eq!(client.request("GET", "/metrics", &[], None).status, 401);
    let bearer = format!("Bearer {}", token("ulysses"));
    assert_eq!(
        client
            .request("GET", "/metrics", &[("authorization", &bearer)], None)
            .status,
        403
    );
    let bearer = format!("Bearer {}", token("audrey"));
    let response = client.request("GET", "/metrics", &[("authorization", &bearer)], None);
    assert_eq!(response.status, 200);
    let https = parse_exposition(&dir, &response.text()).unwrap();
    assert!(
        value(&https, "rampart_http_responses_total{code=\"4xx\"}") >= 2.0,
        "{https:?}"
    );

    // Every connection and request has its structured access record, in logs/access.log.
    let path = lab.r.data_dir().join("logs/access.log");
    let mut records = Vec::new();
    wait_until("the access records", || {
        records = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["fields"].clone())
            .collect();
        records.iter().filter(|r| r["protocol"] == "ssh").count() >= 3
    });
    let ssh = records
        .iter()
        .find(|r| r["protocol"] == "ssh" && r["user"] == "alice")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(ssh["source"], "127.0.0.1");
    assert_eq!(ssh["result"], "closed");
    assert!(ssh["duration_ms"].is_u64());
    let forbidden = records
        .iter()
        .find(|r| r["path"] == "/metrics" && r["user"] == "ulysses")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(forbidden["status"], 403);
    assert_eq!(forbidden["method"], "GET");
    let failed_login = records
        .iter()
        .find(|r| r["path"] == "/api/v1/login")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(failed_login["status"], 401);
    assert_eq!(failed_login["user"], "-");
    // And only there: the general log holds no access records.
    let general = std::fs::read_to_string(lab.r.data_dir().join("logs/rampart.log")).unwrap();
    assert!(!general.contains("rampart::access"), "{general}");
}

/// How a case breaks a fresh deployment: files to change, and environment for `rampart doctor`.
type Break = fn(&Rampart) -> Vec<(&'static str, String)>;

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A certificate from the real `openssl`, valid for `days`; returns (cert, key) paths.
fn openssl_cert(r: &Rampart, name: &str, days: &str) -> (String, String) {
    let cert = r.scratch().join(format!("{name}.pem"));
    let key = r.scratch().join(format!("{name}.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", days, "-subj", "/CN=rampart.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    chmod(&key, 0o600);
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn doctor_finds_each_problem_of_a_broken_deployment_and_says_how_to_fix_it() {
    let have_openssl = rampart_testkit::require_tool("openssl").is_some();
    let have_sqlite = rampart_testkit::require_tool("sqlite3").is_some();
    let cases: Vec<(&str, Break, Option<&str>)> = vec![
        ("a sound deployment", |_| vec![], None),
        (
            "ssh.listen on every interface without an allow-list",
            |_| vec![("RAMPART_SSH_LISTEN", "0.0.0.0:2222".into())],
            Some(
                "[WARN] listeners: ssh.listen 0.0.0.0:2222 is reachable from other hosts (every interface) and auth.allow_from is empty",
            ),
        ),
        (
            "metrics on another interface (no authentication there)",
            |_| vec![("RAMPART_METRICS_LISTEN", "0.0.0.0:9187".into())],
            Some(
                "[WARN] listeners: metrics.listen 0.0.0.0:9187 serves /metrics without authentication",
            ),
        ),
        (
            "a secret key readable by others",
            |r| {
                chmod(&r.data_dir().join("keys/audit_ed25519_key"), 0o644);
                vec![]
            },
            Some(
                "keys/audit_ed25519_key has mode 0644: other users can read it\n       fix: chmod 600 ",
            ),
        ),
        (
            "a data directory others can look into",
            |r| {
                chmod(&r.data_dir(), 0o755);
                vec![]
            },
            Some("has mode 0755: other users can look in\n       fix: chmod 700 "),
        ),
        (
            "a vault master key two years old",
            |r| {
                let file = std::fs::File::options()
                    .write(true)
                    .open(r.data_dir().join("keys/vault-master.key"))
                    .unwrap();
                let old = std::time::SystemTime::now() - Duration::from_secs(730 * 86_400);
                file.set_modified(old).unwrap();
                vec![]
            },
            Some(
                "[WARN] vault key age: the vault master key (data directory) is 730 day(s) old\n       fix: rotate it: `rampart vault rotate-key`",
            ),
        ),
        (
            "an interrupted key rotation",
            |r| {
                let next = r.data_dir().join("keys/vault-master.key.next");
                r.ok(&["vault", "generate-key", next.to_str().unwrap()]);
                vec![]
            },
            Some("[WARN] vault rotation: a master key rotation did not finish"),
        ),
    ];
    let mut cases = cases;
    if have_sqlite {
        cases.push((
            "an audit event rewritten in the database",
            |r| {
                let out = std::process::Command::new("sqlite3")
                    .arg(r.data_dir().join("rampart.db"))
                    .arg("UPDATE audit_events SET event = replace(event, 'alice', 'mallory')")
                    .output()
                    .unwrap();
                assert!(out.status.success());
                vec![]
            },
            Some("[FAIL] audit evidence: audit chain:"),
        ));
    }
    if have_openssl {
        cases.push((
            "a certificate that expires in ten days",
            |r| {
                let (cert, key) = openssl_cert(r, "soon", "10");
                vec![
                    ("RAMPART_HTTP_TLS_CERT", cert),
                    ("RAMPART_HTTP_TLS_KEY", key),
                ]
            },
            Some("[WARN] tls certificate: "),
        ));
        cases.push((
            "a self-signed certificate on a listener other hosts use",
            |r| {
                let (cert, key) = openssl_cert(r, "selfsigned", "400");
                vec![
                    ("RAMPART_HTTP_TLS_CERT", cert),
                    ("RAMPART_HTTP_TLS_KEY", key),
                    ("RAMPART_HTTP_LISTEN", "0.0.0.0:8443".into()),
                    ("RAMPART_AUTH_ALLOW_FROM", "10.0.0.0/8".into()),
                ]
            },
            Some("selfsigned.pem is self-signed while http.listen is reachable from other hosts"),
        ));
    }
    for (what, break_it, expected) in cases {
        let r = Rampart::new(BIN);
        r.ok(&["user", "add", "alice"]);
        let env = break_it(&r);
        let mut command = r.command(&["doctor"]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let out = output_with_input(&mut command, b"");
        let report = text(&out.stdout);
        // The free space is the test machine's: when it is short, that finding comes on top.
        let disk_short = !report.contains("[ok]   disk space:");
        match expected {
            None if disk_short => {
                let others = report
                    .lines()
                    .filter(|l| l.starts_with("[WARN]") || l.starts_with("[FAIL]"))
                    .filter(|l| !l.contains("] disk space:"))
                    .count();
                assert_eq!(others, 0, "{what}: {report}");
            }
            None => {
                assert!(
                    out.status.success(),
                    "{what}: {report}{}",
                    text(&out.stderr)
                );
                assert!(report.contains("no findings"), "{what}: {report}");
                assert!(
                    !report.contains("[WARN]") && !report.contains("[FAIL]"),
                    "{what}: {report}"
                );
            }
            Some(expected) => {
                assert!(!out.status.success(), "{what}: doctor passed:\n{report}");
                assert!(
                    report.contains(expected),
                    "{what}: {expected:?} not in\n{report}"
                );
                assert!(
                    text(&out.stderr).contains("need attention"),
                    "{what}: {}",
                    text(&out.stderr)
                );
                // Every finding comes with its fix.
                let findings = report
                    .lines()
                    .filter(|l| l.starts_with("[WARN]") || l.starts_with("[FAIL]"))
                    .count();
                assert_eq!(
                    report.matches("       fix: ").count(),
                    findings,
                    "{what}: {report}"
                );
            }
        }
    }
}

#[test]
fn the_debian_package_holds_a_hardened_unit_that_systemd_accepts() {
    for tool in ["dpkg-deb", "dpkg", "du"] {
        if rampart_testkit::require_tool(tool).is_none() {
            return;
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(root.join("packaging/build-deb.sh"))
        .arg(BIN)
        .arg(scratch.path())
        // The test binary is large and unoptimised: no time spent compressing it.
        .env("RAMPART_DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deb = text(&out.stdout).trim().to_owned();

    let info = std::process::Command::new("dpkg-deb")
        .args(["-I", &deb])
        .output()
        .unwrap();
    let info = text(&info.stdout);
    for field in [
        "Package: rampart",
        "Version: 0.1.0",
        "Depends: libc6, adduser",
        "Section: admin",
    ] {
        assert!(info.contains(field), "{field} not in\n{info}");
    }
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        assert!(info.contains(script), "{script} not in\n{info}");
    }
    let contents = std::process::Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .unwrap();
    let contents = text(&contents.stdout);
    for (path, mode) in [
        ("./usr/bin/rampart", "-rwxr-xr-x root/root"),
        (
            "./lib/systemd/system/rampart.service",
            "-rw-r--r-- root/root",
        ),
        ("./etc/rampart/rampart.toml", "-rw-r----- root/root"),
        ("./usr/share/doc/rampart/copyright", "-rw-r--r-- root/root"),
    ] {
        assert!(
            contents
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{path} ({mode}) not in\n{contents}"
        );
    }

    let tree = scratch.path().join("tree");
    let out = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(out.status.success());
    let unit = std::fs::read_to_string(tree.join("lib/systemd/system/rampart.service")).unwrap();
    for line in [
        "User=rampart",
        "ExecStart=/usr/bin/rampart --config /etc/rampart/rampart.toml serve",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/rampart",
        "CapabilityBoundingSet=\n",
        "AmbientCapabilities=\n",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "LimitCORE=0",
    ] {
        assert!(unit.contains(line), "{line:?} not in the unit");
    }
    // The packaged configuration is one this binary accepts.
    let config = tree.join("etc/rampart/rampart.toml");
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--data-dir"])
        .arg(scratch.path().join("data"))
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    if rampart_testkit::require_tool("systemd-analyze").is_none() {
        return;
    }
    // systemd checks every directive (an unknown or misspelt one is reported); the binary path
    // is the extracted one, since this test does not install the package.
    let local = scratch.path().join("rampart.service");
    let binary = tree.join("usr/bin/rampart");
    std::fs::write(
        &local,
        unit.replace("/usr/bin/rampart", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).trim(),
        "",
        "systemd-analyze verify complains"
    );
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&local)
        .output()
        .unwrap();
    let report = text(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for rampart.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in\n{report}{}", text(&out.stderr)));
    assert!(
        exposure <= 2.0,
        "systemd rates the unit's exposure {exposure}:\n{report}"
    );
}
