//! What the database front tests share: ports, output, the query log, live sessions and the
//! verifier, as a person sees them through the CLI.

use crate::BIN;
use rampart_testkit::{Rampart, Server};
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

pub use rampart_testkit::free_port;

/// A client's stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The query log as `audit queries --json` prints it, once it has `expected` records.
pub fn queries_until(r: &Rampart, args: &[&str], expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = vec!["audit", "queries"];
        all.extend_from_slice(args);
        let found = r.json(&all).as_array().cloned().unwrap_or_default();
        if found.len() >= expected || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The id of the live session of `kind` (`postgres`, `mysql`), once `session list` shows it.
pub fn live_session(r: &Rampart, kind: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sessions = r.json(&["session", "list"]);
        let live = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind && s["ended_at"].is_null())
            .map(|s| s["id"].as_str().unwrap().to_owned());
        if let Some(id) = live {
            return id;
        }
        assert!(Instant::now() < deadline, "{sessions}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `audit verify` passes (recordings are sealed when their sessions end).
pub fn verified_eventually(r: &Rampart) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let verify = r.run(&["audit", "verify"]);
        if verify.status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "{}", text(&verify));
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Rampart with alice, the asset `asset` (its `protocol` endpoint on `target_port`), the vaulted
/// `account` (password `password`) and a `PROTOCOL:connect` grant on it; serving with that
/// protocol's listener on (plus `env`). Also returns the listener's port, from the banner.
pub fn rampart_for_database(
    protocol: &str,
    asset: &str,
    target_port: u16,
    account: &str,
    password: &str,
    env: &[(&str, &str)],
) -> (Rampart, Server, u16) {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&[
        "asset",
        "add",
        asset,
        "--host",
        "127.0.0.1",
        "--endpoint",
        &format!("{protocol}:{target_port}"),
    ]);
    r.ok_with_stdin(
        &[
            "account",
            "add",
            &format!("{account}@{asset}"),
            "--password-stdin",
        ],
        password.as_bytes(),
    );
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        asset,
        "--account",
        account,
        "--actions",
        &format!("{protocol}:connect"),
    ]);
    let listen = format!("RAMPART_{}_LISTEN", protocol.to_uppercase());
    let mut env = env.to_vec();
    env.push((&listen, "127.0.0.1:0"));
    let server = r.serve_with_env(&env);
    let banner = format!("{protocol}: listening on ");
    let port = server
        .banner
        .iter()
        .find_map(|line| line.strip_prefix(banner.as_str()))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("the banner names the {protocol} listener"))
        .port();
    (r, server, port)
}

/// The venv's Python (`.ci/run` installs the drivers there) if it can import `module`.
pub fn venv_python(module: &str) -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("RAMPART_VENV")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| std::path::PathBuf::from(home).join(".cache/rampart-venv"))
        })?;
    let python = venv.join("bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        rampart_testkit::skip_or_fail(&format!(
            "Python module {module} not found in the venv (PyPI, see .ci/run)"
        ));
        return None;
    }
    Some(python)
}

/// A self-signed certificate and its key, made by the `openssl` CLI for a test's database
/// server, with the fingerprint Rampart pins (`SHA256:...`).
pub struct TestCert {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub fingerprint: String,
    _dir: tempfile::TempDir,
}

/// A new self-signed certificate for 127.0.0.1 (`None`: no `openssl`, skipped or failed).
pub fn test_cert() -> Option<TestCert> {
    let openssl = rampart_testkit::require_tool("openssl")?;
    let dir = tempfile::Builder::new()
        .prefix("rampart-cert")
        .tempdir()
        .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new(&openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let shown = std::process::Command::new(&openssl)
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&shown.stdout).into_owned();
    let hex = line.trim().rsplit('=').next().unwrap().replace(':', "");
    assert_eq!(hex.len(), 64, "{line}");
    Some(TestCert {
        cert,
        key,
        fingerprint: format!("SHA256:{}", hex.to_ascii_lowercase()),
        _dir: dir,
    })
}

/// The `tls_certificate_rejected` events of the audit log.
pub fn tls_rejections(r: &Rampart) -> Vec<Value> {
    r.json(&["audit", "list", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tls_certificate_rejected")
        .map(|e| e["event"].clone())
        .collect()
}

/// Pins `fingerprint` on `asset`'s `protocol` endpoint.
pub(crate) fn pin(r: &Rampart, asset: &str, protocol: &str, fingerprint: &str) {
    r.ok(&[
        "asset",
        "endpoint",
        "set",
        asset,
        protocol,
        "--tls-fingerprint",
        fingerprint,
    ]);
}
