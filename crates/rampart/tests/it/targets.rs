//! The target model end to end: assets with several endpoints through the CLI, and ProxyJump and
//! `ssh -L` requests matched to assets through their endpoints, with real OpenSSH.

use super::BIN;
use crate::ssh::Lab;
use rampart_testkit::{Rampart, current_user};
use serde_json::Value;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn endpoints(asset: &Value) -> Vec<String> {
    asset["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["protocol"].as_str().unwrap(), e["port"]))
        .collect()
}

#[test]
fn asset_endpoints_are_added_changed_listed_and_removed_from_the_cli() {
    let r = Rampart::new(BIN);
    // The old form keeps working: --port is the ssh endpoint.
    let added = r.ok(&[
        "asset", "add", "web-01", "--host", "10.0.0.5", "--port", "22",
    ]);
    assert!(
        added.contains("added asset web-01 (10.0.0.5: ssh:22)"),
        "{added}"
    );
    assert_eq!(endpoints(&r.json(&["asset", "show", "web-01"])), ["ssh:22"]);

    let out = r.ok(&["asset", "endpoint", "add", "web-01", "postgres", "5432"]);
    assert!(
        out.contains("added the postgres endpoint of web-01 on port 5432"),
        "{out}"
    );
    // Without a port, the protocol's usual one.
    r.ok(&["asset", "endpoint", "add", "web-01", "redis"]);
    let shown = r.json(&["asset", "show", "web-01"]);
    assert_eq!(endpoints(&shown), ["ssh:22", "postgres:5432", "redis:6379"]);

    let list = r.ok(&["asset", "list"]);
    assert!(list.contains("ENDPOINTS"), "{list}");
    assert!(list.contains("ssh:22,postgres:5432,redis:6379"), "{list}");
    let show = r.ok(&["asset", "show", "web-01"]);
    assert!(show.contains("ssh:22,postgres:5432,redis:6379"), "{show}");
    let table = r.ok(&["asset", "endpoint", "list", "web-01"]);
    assert!(table.contains("10.0.0.5:5432"), "{table}");

    let fingerprint = "ab".repeat(32);
    r.ok(&[
        "asset",
        "endpoint",
        "set",
        "web-01",
        "postgres",
        "--port",
        "5433",
        "--tls-fingerprint",
        &fingerprint,
    ]);
    let shown = r.json(&["asset", "show", "web-01"]);
    assert_eq!(endpoints(&shown), ["ssh:22", "postgres:5433", "redis:6379"]);
    assert_eq!(
        shown["endpoints"][1]["tls_fingerprint"],
        format!("SHA256:{fingerprint}")
    );
    let table = r.ok(&["asset", "endpoint", "list", "web-01"]);
    assert!(
        table.contains(&format!("certificate SHA256:{fingerprint}")),
        "{table}"
    );

    r.ok(&["asset", "endpoint", "remove", "web-01", "redis"]);
    r.ok(&["domain", "add", "dc-2"]);
    let moved = r.json(&[
        "asset", "set", "web-01", "--host", "10.0.0.6", "--domain", "dc-2",
    ]);
    assert_eq!(moved["host"], "10.0.0.6");
    assert_eq!(moved["domain"], "dc-2");
    assert_eq!(endpoints(&moved), ["ssh:22", "postgres:5433"]);
    let out = r.ok(&["asset", "set", "web-01", "--no-domain"]);
    assert!(out.contains("dialled directly"), "{out}");

    // An asset without ssh: only the endpoints given.
    r.ok(&[
        "asset",
        "add",
        "db-01",
        "--host",
        "db.internal",
        "--endpoint",
        "postgres",
        "--endpoint",
        "tcp:8080",
    ]);
    assert_eq!(
        endpoints(&r.json(&["asset", "show", "db-01"])),
        ["postgres:5432", "tcp:8080"]
    );

    let kinds: Vec<String> = r
        .json(&["audit", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "asset_endpoint_added",
        "asset_endpoint_changed",
        "asset_endpoint_removed",
        "asset_changed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
}

#[test]
fn bad_endpoint_input_gets_one_clear_line_and_changes_nothing() {
    let r = Rampart::new(BIN);
    r.ok(&["asset", "add", "web-01", "--host", "10.0.0.5"]);
    r.ok(&["asset", "endpoint", "add", "web-01", "postgres", "5432"]);
    let fingerprint = "ab".repeat(32);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["asset", "endpoint", "add", "web-01", "ftp", "21"],
            "unknown protocol \"ftp\": expected one of ssh, postgres",
        ),
        (
            vec!["asset", "endpoint", "add", "web-01", "mysql", "0"],
            "invalid port \"0\": expected 1 to 65535",
        ),
        (
            vec!["asset", "endpoint", "add", "web-01", "mysql", "http"],
            "invalid port \"http\"",
        ),
        (
            vec!["asset", "endpoint", "add", "web-01", "tcp"],
            "endpoint \"tcp\" needs a port",
        ),
        (
            vec!["asset", "endpoint", "add", "web-01", "postgres", "5433"],
            "web-01 already has a postgres endpoint (postgres:5432)",
        ),
        (
            vec!["asset", "endpoint", "add", "web-01", "redis", "22"],
            "port 22 of web-01 is already its ssh endpoint",
        ),
        (
            vec!["asset", "endpoint", "add", "nohost", "redis", "6379"],
            "asset nohost not found",
        ),
        (
            vec!["asset", "endpoint", "remove", "web-01", "mysql"],
            "web-01 has no mysql endpoint",
        ),
        (
            vec![
                "asset", "endpoint", "set", "web-01", "ssh", "--port", "5432",
            ],
            "port 5432 of web-01 is already its postgres endpoint",
        ),
        (
            vec![
                "asset",
                "endpoint",
                "set",
                "web-01",
                "ssh",
                "--tls-fingerprint",
                &fingerprint,
            ],
            "ssh endpoints have no TLS certificate to pin",
        ),
        (
            vec![
                "asset",
                "endpoint",
                "set",
                "web-01",
                "postgres",
                "--tls-fingerprint",
                "SHA256:abc",
            ],
            "invalid certificate fingerprint",
        ),
        (
            vec!["asset", "endpoint", "set", "web-01", "postgres"],
            "--port",
        ),
        (
            vec!["asset", "set", "web-01", "--host", "bad host"],
            "invalid host",
        ),
        (
            vec!["asset", "set", "web-01", "--domain", "bad domain"],
            "invalid domain",
        ),
        (vec!["asset", "set", "web-01"], "--host"),
        (
            vec![
                "asset",
                "add",
                "x",
                "--host",
                "h",
                "--endpoint",
                "ssh:2222",
                "--port",
                "22",
            ],
            "protocol ssh given twice",
        ),
        (
            vec![
                "asset",
                "add",
                "x",
                "--host",
                "h",
                "--endpoint",
                "redis:22",
                "--port",
                "22",
            ],
            "port 22 given for both ssh and redis",
        ),
        (
            vec![
                "asset",
                "add",
                "x",
                "--host",
                "h",
                "--endpoint",
                "postgres:99999",
            ],
            "invalid port \"99999\"",
        ),
    ];
    // The last endpoint cannot go.
    r.ok(&["asset", "add", "one", "--host", "10.0.0.7"]);
    let before = r.snapshot();
    let mut all = cases;
    all.push((
        vec!["asset", "endpoint", "remove", "one", "ssh"],
        "ssh is the last endpoint of one",
    ));
    for (args, expected) in &all {
        let out = r.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
        if !expected.starts_with("--") {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
        }
    }
    assert_eq!(r.snapshot(), before, "a failed command changed the store");
}

#[test]
fn proxyjump_by_asset_name_on_port_22_reaches_the_ssh_endpoint_wherever_it_listens() {
    let Some(lab) = Lab::start() else { return };
    // An asset on the same address without ssh, listed before web-01.
    lab.r.ok(&[
        "asset",
        "add",
        "a-db",
        "--host",
        "127.0.0.1",
        "--endpoint",
        "postgres:5432",
    ]);
    // No -p: the hop asks for web-01:22, and web-01's ssh endpoint is elsewhere.
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&lab.client_config)
        .arg("-J")
        .arg(format!("alice@127.0.0.1:{}", lab.port()))
        .arg(format!("{}@web-01", lab.login))
        .arg("echo by-name")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "by-name\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // By address, the exact ssh port: the asset at that address that speaks ssh there.
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&lab.client_config)
        .arg("-J")
        .arg(format!("alice@127.0.0.1:{}", lab.port()))
        .args(["-p", &lab.target.port.to_string()])
        .arg(format!("{}@127.0.0.1", lab.login))
        .arg("echo by-address")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "by-address\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A session to the asset without ssh: one clear line, nothing dialled.
    lab.r.ok_with_stdin(
        &[
            "account",
            "add",
            &format!("{}@a-db", lab.login),
            "--password-stdin",
        ],
        b"unused-password\n",
    );
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "a-db"]);
    let out = lab.ssh(&format!("alice@{}@a-db", lab.login), "true", b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a-db has no ssh endpoint"), "{stderr}");

    let sessions: Vec<Value> = lab
        .sessions()
        .into_iter()
        .filter(|s| s["asset"] == "web-01")
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for session in &sessions {
        assert_eq!(session["kind"], "exec");
        assert!(
            session["source_addr"]
                .as_str()
                .unwrap()
                .contains("proxyjump")
        );
    }
}

#[test]
fn a_forward_to_a_shared_address_reaches_the_asset_with_an_endpoint_on_that_port() {
    let Some(lab) = Lab::start() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // zz-db shares web-01's address and declares this port; only it allows port_forward.
    lab.r.ok(&[
        "asset",
        "add",
        "zz-db",
        "--host",
        "127.0.0.1",
        "--endpoint",
        &format!("postgres:{port}"),
    ]);
    let login = current_user();
    lab.r.ok_with_stdin(
        &[
            "account",
            "add",
            &format!("{login}@zz-db"),
            "--password-stdin",
        ],
        b"unused-password\n",
    );
    lab.r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "zz-db",
        "--actions",
        "port_forward",
    ]);
    let echo = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        let mut buffer = [0u8; 4];
        peer.read_exact(&mut buffer).unwrap();
        peer.write_all(b"pong").unwrap();
        buffer
    });
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut forward = lab
        .ssh_command(&lab.direct())
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("{local}:127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..300 {
        if let Ok(connected) = std::net::TcpStream::connect(("127.0.0.1", local)) {
            stream = Some(connected);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stream = stream.expect("ssh -L listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong");
    assert_eq!(&echo.join().unwrap(), b"ping");
    drop(stream);
    forward.kill().unwrap();
    forward.wait().unwrap();
    let kind = format!("port_forward:{port}");
    let sessions = lab.sessions();
    let forwarded: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["kind"] == kind.as_str())
        .collect();
    assert_eq!(forwarded.len(), 1, "{sessions:?}");
    assert_eq!(forwarded[0]["asset"], "zz-db");
}

#[test]
fn the_api_adds_changes_and_removes_endpoints_and_assets_carry_them() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    let token = r
        .ok(&["token", "create", "--user", "adam", "--scope", "admin"])
        .trim()
        .to_owned();
    let server = r.serve();
    let client = server.client();
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    let call = |method: &str, path: &str, body: Option<Value>| {
        client.request(method, path, &headers, body.as_ref())
    };

    // The old body keeps working: port is the ssh endpoint.
    let added = call(
        "POST",
        "/api/v1/assets",
        Some(serde_json::json!({ "name": "web-01", "host": "10.0.0.5", "port": 2222 })),
    );
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(endpoints(&added.json()), ["ssh:2222"]);

    let added = call(
        "POST",
        "/api/v1/assets/web-01/endpoints",
        Some(serde_json::json!({ "protocol": "postgres", "port": 5432 })),
    );
    assert_eq!(added.status, 201, "{}", added.text());
    assert_eq!(endpoints(&added.json()), ["ssh:2222", "postgres:5432"]);

    let refused = call(
        "POST",
        "/api/v1/assets/web-01/endpoints",
        Some(serde_json::json!({ "protocol": "postgres", "port": 5433 })),
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused
            .text()
            .contains("web-01 already has a postgres endpoint"),
        "{}",
        refused.text()
    );
    let refused = call(
        "POST",
        "/api/v1/assets/web-01/endpoints",
        Some(serde_json::json!({ "protocol": "ftp" })),
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("unknown protocol"),
        "{}",
        refused.text()
    );

    let changed = call(
        "PUT",
        "/api/v1/assets/web-01/endpoints/postgres",
        Some(serde_json::json!({ "port": 5433, "tls_fingerprint": "cd".repeat(32) })),
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    let changed = changed.json();
    assert_eq!(endpoints(&changed), ["ssh:2222", "postgres:5433"]);
    assert_eq!(
        changed["endpoints"][1]["tls_fingerprint"],
        format!("SHA256:{}", "cd".repeat(32))
    );

    r.ok(&["domain", "add", "dc-2"]);
    let moved = call(
        "PUT",
        "/api/v1/assets/web-01",
        Some(serde_json::json!({ "domain": "dc-2" })),
    );
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["domain"], "dc-2");
    let domain = call("GET", "/api/v1/domains/dc-2", None);
    assert_eq!(domain.status, 200, "{}", domain.text());
    assert_eq!(domain.json()["assets"], serde_json::json!(["web-01"]));
    assert_eq!(domain.json()["gateways"], serde_json::json!([]));
    let domains = call("GET", "/api/v1/domains", None);
    assert_eq!(domains.json()[0]["name"], "dc-2", "{}", domains.text());
    let back = call(
        "PUT",
        "/api/v1/assets/web-01",
        Some(serde_json::json!({ "domain": null })),
    );
    assert!(back.json()["domain"].is_null(), "{}", back.text());

    let removed = call("DELETE", "/api/v1/assets/web-01/endpoints/ssh", None);
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(endpoints(&removed.json()), ["postgres:5433"]);
    let last = call("DELETE", "/api/v1/assets/web-01/endpoints/postgres", None);
    assert_eq!(last.status, 400, "{}", last.text());
    assert!(last.text().contains("last endpoint"), "{}", last.text());

    let shown = call("GET", "/api/v1/assets/web-01", None).json();
    assert_eq!(endpoints(&shown), ["postgres:5433"]);
    // The CLI sees the same.
    assert_eq!(
        endpoints(&r.json(&["asset", "show", "web-01"])),
        ["postgres:5433"]
    );
}
