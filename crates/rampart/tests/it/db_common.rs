//! What the database front tests share: ports, output, the query log, live sessions and the
//! verifier, as a person sees them through the CLI.

use rampart_testkit::Rampart;
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
