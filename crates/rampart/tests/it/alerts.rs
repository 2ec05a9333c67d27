//! Alerts end to end: the portal's alerts page in real headless Chromium
//! (`tests/browser/alerts.mjs`), against a real `rampart serve` in front of a real sshd.

use crate::ssh::{Lab, text};
use rampart_testkit::require_tool;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `rampart alert list` until `done` holds (up to 60 s).
pub(crate) fn wait_for_alerts(lab: &Lab, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = lab.r.json(&["alert", "list"]);
        let alerts = alerts.as_array().cloned().unwrap_or_default();
        if done(&alerts) || Instant::now() > deadline {
            return alerts;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_alerts_page_in_chromium_shows_links_and_acknowledges_alerts() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    let r = &lab.r;
    r.ok(&["user", "add", "erin", "--role", "auditor"]);
    r.ok_with_stdin(&["user", "password", "erin"], b"erin-password-1");
    let grant = r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    r.ok(&[
        "rule",
        "add",
        "--grant",
        &grant,
        "--match",
        "prefix:rm -rf",
        "--action",
        "deny",
    ]);
    // A session running sudo (the privilege-escalation detector: a warning naming the
    // session), and an exec refused by a deny rule (critical, before any session).
    let out = lab.ssh(&lab.direct(), "sudo -n true; echo done", b"");
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stderr));
    let out = lab.ssh(&lab.direct(), "rm -rf /nonexistent-rampart", b"");
    assert!(!out.status.success());
    let alerts = wait_for_alerts(&lab, |alerts| alerts.len() >= 2);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let session = lab.sessions()[0]["id"].as_str().unwrap().to_owned();

    let artifacts = crate::browser::artifacts_dir().join("alerts");
    let output = Command::new(node)
        .arg("alerts.mjs")
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
        .env("RAMPART_URL", format!("https://{}", lab.server.http))
        .env("LOGIN_USER", "erin")
        .env("LOGIN_PASSWORD", "erin-password-1")
        .env("SESSION", &session)
        .env("TARGET", format!("{}@web-01", lab.login))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("the alerts page passed"),
        "alerts.mjs failed (screenshots in {}):\n{stdout}\n{stderr}",
        artifacts.display()
    );
    // The button went through the API: the sudo alert is acknowledged by erin, the other open.
    let alerts = r.json(&["alert", "list"]);
    let alerts = alerts.as_array().unwrap();
    let sudo = alerts
        .iter()
        .find(|a| a["event"]["alert"] == "privilege_escalation")
        .unwrap();
    assert_eq!(sudo["acknowledged_by"], "user:erin", "{sudo}");
    let refused = alerts
        .iter()
        .find(|a| a["event"]["alert"] == "command_rule")
        .unwrap();
    assert!(refused["acknowledged_by"].is_null(), "{refused}");
}

/// Every message a UDP syslog receiver gets, collected by a thread.
fn syslog_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}", socket.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        let mut datagram = vec![0u8; 65536];
        while let Ok(n) = socket.recv(&mut datagram) {
            let message = String::from_utf8_lossy(&datagram[..n]).into_owned();
            keep.lock().unwrap().push(message);
        }
    });
    (url, received)
}

/// `ssh` from the loopback address `from` (`-b`), as alice to `target`.
fn ssh_from(lab: &Lab, from: &str, target: &str, command: &str) -> std::process::Output {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-p", &lab.port(), "-b", from])
        .arg(format!("{target}@127.0.0.1"))
        .arg(command)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh from {from} to {target}: {}",
        text(&out.stderr)
    );
    out
}

/// Business hours that exclude now: one hour, three hours from now (UTC, every day).
fn hours_excluding_now() -> String {
    let hour = (rampart_testkit::unix_now() / 3600) % 24;
    format!(
        "Mon-Sun {:02}:00-{:02}:00 UTC",
        (hour + 3) % 24,
        (hour + 4) % 24
    )
}

/// Each detector end to end against real OpenSSH and a real sshd: a login from a new loopback
/// address (127.0.0.2, then 127.0.0.3; a second login from 127.0.0.2 is known), a login outside
/// business hours (hours configured to exclude now), a burst of failed logins (per user and per
/// source), an scp of more than the bulk-transfer size, a first session to another asset, and
/// sudo. Every alert reaches a syslog receiver (with the alert's severity) and a webhook
/// receiver, and the alerts API.
#[test]
fn each_detector_raises_its_alert_in_syslog_the_webhook_and_the_api() {
    let (syslog_url, syslog) = syslog_receiver();
    let (webhook_port, bodies) = crate::evidence::webhook_receiver();
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/events");
    let business_hours = hours_excluding_now();
    let Some(lab) = Lab::start_with_env(&[
        ("RAMPART_SYSLOG", &syslog_url),
        ("RAMPART_WEBHOOK_URL", &webhook_url),
        ("RAMPART_ALERTS_NEW_SOURCE_DAYS", "30"),
        ("RAMPART_ALERTS_BUSINESS_HOURS", &business_hours),
        ("RAMPART_ALERTS_FAILED_LOGINS", "3"),
        ("RAMPART_ALERTS_FAILED_LOGINS_WINDOW", "10m"),
        ("RAMPART_ALERTS_BULK_TRANSFER", "1MiB"),
        ("RAMPART_ALERTS_NEW_ASSET", "true"),
    ]) else {
        return;
    };
    let r = &lab.r;
    r.ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    r.ok(&["user", "add", "erin", "--role", "auditor"]);
    let token = r
        .ok(&["token", "create", "--user", "erin", "--scope", "read"])
        .trim()
        .to_owned();
    // A second asset on the same sshd, which alice may use but never has.
    let target_key = r.scratch().join("target");
    crate::ssh::add_loopback_target(r, "web-02", lab.target.port, &lab.login, &target_key);
    r.ok(&["grant", "add", "--user", "alice", "--asset", "web-02"]);
    let web_01 = lab.direct();
    let web_02 = format!("alice@{}@web-02", lab.login);

    // The first login and session teach the detectors alice's address and asset (no alert:
    // nothing to compare with yet); then a new address, the same again, and another.
    ssh_from(&lab, "127.0.0.1", &web_01, "true");
    ssh_from(&lab, "127.0.0.2", &web_01, "true");
    ssh_from(&lab, "127.0.0.2", &web_01, "true");
    ssh_from(&lab, "127.0.0.3", &web_01, "true");
    // A first session to web-02.
    ssh_from(&lab, "127.0.0.1", &web_02, "true");
    // sudo.
    let out = lab.ssh(&web_01, "sudo -n true; echo done", b"");
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stderr));
    // A 2 MiB upload with scp (more than the 1 MiB bulk-transfer size).
    let upload = r.scratch().join("bulk.bin");
    std::fs::write(&upload, vec![0x5au8; 2 << 20]).unwrap();
    let remote = format!(
        "{web_01}@127.0.0.1:{}",
        r.scratch().join("bulk-uploaded.bin").display()
    );
    let out = Command::new("scp")
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-P", &lab.port(), "-O"])
        .arg(&upload)
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "scp: {}", text(&out.stderr));
    // Three wrong passwords for alice from 127.0.0.1: a burst for the user and for the source.
    let client = lab.server.client();
    for _ in 0..3 {
        let body = serde_json::json!({ "username": "alice", "password": "wrong-password" });
        let response = client.request("POST", "/api/v1/login", &[], Some(&body));
        assert_eq!(response.status, 401);
    }

    let count = |alerts: &[Value], name: &str| {
        alerts
            .iter()
            .filter(|a| a["event"]["alert"] == name)
            .count()
    };
    let alerts = wait_for_alerts(&lab, |alerts| {
        count(alerts, "new_source") >= 2
            && count(alerts, "off_hours") >= 7
            && count(alerts, "failed_logins") >= 2
            && count(alerts, "bulk_transfer") >= 1
            && count(alerts, "new_asset") >= 1
            && count(alerts, "privilege_escalation") >= 1
    });
    let details = |name: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a["event"]["alert"] == name)
            .map(|a| a["event"]["detail"].as_str().unwrap().to_owned())
            .collect()
    };
    // 127.0.0.2 once (its second login is known), 127.0.0.3 once, never 127.0.0.1.
    let mut new_sources = details("new_source");
    new_sources.sort();
    assert_eq!(
        new_sources,
        [
            "login of alice from a new address 127.0.0.2",
            "login of alice from a new address 127.0.0.3"
        ],
        "{alerts:?}"
    );
    // Every login was outside the hours (seven with a key).
    let off_hours = details("off_hours");
    assert_eq!(off_hours.len(), 7, "{off_hours:?}");
    assert!(
        off_hours
            .iter()
            .all(|d| d.contains("outside business hours (daily ") && d.contains(" UTC)")),
        "{off_hours:?}"
    );
    let mut bursts = details("failed_logins");
    bursts.sort();
    assert_eq!(
        bursts,
        [
            "3 failed logins from 127.0.0.1 within 10m (the last as alice)",
            "3 failed logins of alice within 10m (the last from 127.0.0.1)"
        ],
        "{alerts:?}"
    );
    let bulk: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["event"]["alert"] == "bulk_transfer")
        .collect();
    assert_eq!(bulk.len(), 1, "{alerts:?}");
    assert!(
        bulk[0]["event"]["detail"]
            .as_str()
            .unwrap()
            .contains("(more than 1048576)"),
        "{bulk:?}"
    );
    let scp_session = lab
        .sessions()
        .into_iter()
        .find(|s| s["kind"] == "scp")
        .unwrap();
    assert_eq!(bulk[0]["event"]["session"], scp_session["id"]);
    // Raised while the session ran, as its bytes passed the size, not when it ended.
    let ended = lab
        .events("session_ended")
        .into_iter()
        .find(|e| e["event"]["session"] == scp_session["id"])
        .unwrap();
    assert!(
        bulk[0]["id"].as_i64().unwrap() < ended["seq"].as_i64().unwrap(),
        "{bulk:?} {ended}"
    );
    assert_eq!(
        details("new_asset"),
        ["first session of alice to asset web-02"]
    );

    // Every alert reached syslog (severity mapped: critical 2 -> <106>, warning 4 -> <108>)
    // and the webhook, and the API lists them all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut webhook = Vec::new();
    loop {
        while let Ok(body) = bodies.try_recv() {
            webhook.push(body);
        }
        let messages = syslog.lock().unwrap().clone();
        let everywhere = alerts.iter().all(|a| {
            let detail = a["event"]["detail"].as_str().unwrap();
            messages.iter().any(|m| m.contains(detail))
                && webhook.iter().any(|b| b.contains(detail))
        });
        if everywhere || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let messages = syslog.lock().unwrap().clone();
    for alert in &alerts {
        let detail = alert["event"]["detail"].as_str().unwrap();
        let message = messages
            .iter()
            .find(|m| m.contains(detail))
            .unwrap_or_else(|| panic!("no syslog message for {detail}"));
        let priority = if alert["event"]["severity"] == "critical" {
            "<106>1 "
        } else {
            "<108>1 "
        };
        assert!(message.starts_with(priority), "{message}");
        assert!(
            webhook.iter().any(|b| b.contains(detail)),
            "no webhook call for {detail}"
        );
    }
    let response = client.request(
        "GET",
        "/api/v1/alerts?open=true",
        &[("authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(response.status, 200);
    let listed = response.json();
    assert_eq!(listed.as_array().unwrap().len(), alerts.len(), "{listed}");
}
