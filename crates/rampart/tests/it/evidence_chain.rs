//! Evidence that cannot be removed quietly: recordings anchored in the hash chain, signed chain
//! heads that must cover the log, external anchors, and SIEM delivery with no gap.
//!
//! Every tampering case runs on its own copy of a real data directory, after real SSH sessions
//! through a real server that was stopped cleanly.

use super::BIN;
use super::ssh::{Lab, text};
use rampart_testkit::{Rampart, require_tool};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server signs every second in these tests: `audit verify` then allows 3 × 1 s + 5 s.
const SEAL_INTERVAL: &str = "1s";
const ALLOWED_LAG: Duration = Duration::from_secs(8);

fn sql(db: &Path, statement: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(out.status.success(), "{statement}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn sql_json(db: &Path, query: &str) -> Vec<Value> {
    let out = Command::new("sqlite3")
        .arg("-json")
        .arg(db)
        .arg(query)
        .output()
        .unwrap();
    assert!(out.status.success(), "{query}: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    if stdout.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Recomputes the hash chain from event `from` on, exactly as the store computes it
/// (`rampart_store::audit_log::chain_hash`), and writes it back: what an attacker with the
/// database does after editing an event.
pub(crate) fn recompute_chain(db: &Path, from: i64) {
    let rows = sql_json(
        db,
        "SELECT seq, at, actor, event, prev_hash, hash FROM audit_events ORDER BY seq",
    );
    let mut previous = rampart_store::audit_log::GENESIS_HASH.to_owned();
    let mut script = String::from("BEGIN;\n");
    for row in rows {
        let seq = row["seq"].as_i64().unwrap();
        if seq < from {
            previous = row["hash"].as_str().unwrap().to_owned();
            continue;
        }
        let hash = rampart_store::audit_log::chain_hash(
            &previous,
            seq,
            row["at"].as_str().unwrap(),
            row["actor"].as_str().unwrap(),
            row["event"].as_str().unwrap(),
        );
        script.push_str(&format!(
            "UPDATE audit_events SET prev_hash = {}, hash = {} WHERE seq = {seq};\n",
            quote(&previous),
            quote(&hash)
        ));
        previous = hash;
    }
    script.push_str("COMMIT;\n");
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// A copy of a data directory, with its own `rampart` commands.
struct Copy {
    r: Rampart,
}

impl Copy {
    fn of(data_dir: &Path) -> Self {
        let r = Rampart::new(BIN);
        let out = Command::new("cp")
            .arg("-a")
            .arg(data_dir)
            .arg(r.data_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        Self { r }
    }

    fn db(&self) -> PathBuf {
        self.r.data_dir().join("rampart.db")
    }

    /// Removes every file of a recording (the asciicast, the manifest and, for a command, its
    /// raw streams).
    fn remove_recording(&self, id: &str) {
        for extension in ["cast", "manifest", "raw"] {
            let path = self.recording(id, extension);
            if path.exists() {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    fn recording(&self, id: &str, extension: &str) -> PathBuf {
        self.r
            .data_dir()
            .join("recordings")
            .join(format!("{id}.{extension}"))
    }

    /// `rampart audit verify ARGS`: (success, stdout + stderr).
    fn verify(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["audit", "verify"];
        all.extend_from_slice(args);
        let out = self.r.run(&all);
        (out.status.success(), text(&out.stdout) + &text(&out.stderr))
    }

    /// Verify must fail and its report contain every one of `needles`.
    fn verify_fails_naming(&self, args: &[&str], needles: &[&str]) -> String {
        let (ok, report) = self.verify(args);
        assert!(!ok, "verify passed:\n{report}");
        for needle in needles {
            assert!(report.contains(needle), "{report}\nshould say {needle:?}");
        }
        report
    }
}

/// A real data directory: three recorded sessions through a real server that signs every
/// second, stopped cleanly; an anchor exported after the stop.
struct Evidence {
    r: Rampart,
    /// The exec sessions, oldest first.
    sessions: Vec<String>,
    /// The head after the first two sessions (signed by the running server before the third).
    head_before_third: i64,
    /// The anchor file exported after the clean stop.
    anchor: PathBuf,
    stopped: Instant,
}

fn head_seq(r: &Rampart) -> i64 {
    r.json(&["audit", "list", "--limit", "1"])[0]["seq"]
        .as_i64()
        .unwrap()
}

fn evidence() -> Option<Evidence> {
    require_tool("sqlite3")?;
    let lab = Lab::start_with_env(&[("RAMPART_AUDIT_SEAL_INTERVAL", SEAL_INTERVAL)])?;
    for word in ["first", "second"] {
        let out = lab.ssh(&lab.direct(), &format!("echo {word}"), b"");
        assert_eq!(
            text(&out.stdout),
            format!("{word}\n"),
            "{}",
            text(&out.stderr)
        );
    }
    lab.sessions();
    // The running server signs the head within its interval.
    let head_before_third = head_seq(&lab.r);
    wait_until("the running server signs the head", || {
        let anchor: Value = serde_json::from_str(&lab.r.ok(&["audit", "anchor"])).unwrap();
        anchor["seq"].as_i64().unwrap() >= head_before_third
    });
    let out = lab.ssh(&lab.direct(), "echo third", b"");
    assert_eq!(text(&out.stdout), "third\n");
    let mut sessions: Vec<String> = lab
        .sessions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    sessions.reverse();
    assert_eq!(sessions.len(), 3);
    let Lab { r, server, .. } = lab;
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    let stopped = Instant::now();
    let anchor = r.scratch().join("anchor.jsonl");
    r.ok(&["audit", "anchor", "--out", anchor.to_str().unwrap()]);
    Some(Evidence {
        r,
        sessions,
        head_before_third,
        anchor,
        stopped,
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Rewrites the stored JSON of event `seq` with `edit` (the chain is recomputed by the caller).
pub(crate) fn edit_event(db: &Path, seq: i64, edit: impl FnOnce(&mut Value)) {
    let rows = sql_json(
        db,
        &format!("SELECT event FROM audit_events WHERE seq = {seq}"),
    );
    let mut event: Value = serde_json::from_str(rows[0]["event"].as_str().unwrap()).unwrap();
    edit(&mut event);
    sql(
        db,
        &format!(
            "UPDATE audit_events SET event = {} WHERE seq = {seq}",
            quote(&event.to_string())
        ),
    );
}

/// The sequence number of the `kind` event of `session`.
pub(crate) fn event_of(db: &Path, kind: &str, session: &str) -> i64 {
    let rows = sql_json(
        db,
        &format!(
            "SELECT seq FROM audit_events WHERE kind = '{kind}' AND instr(event, '{session}') > 0"
        ),
    );
    rows[0]["seq"].as_i64().unwrap()
}

/// Serves `body` to every GET on a loopback port until the test ends.
fn serve_file(body: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/anchors.jsonl")
}

#[test]
fn removing_replacing_or_shortening_evidence_fails_verify_whatever_the_tables_say() {
    let Some(evidence) = evidence() else { return };
    let data = evidence.r.data_dir();
    let [first, second, third] = [0, 1, 2].map(|i| evidence.sessions[i].clone());
    let anchor = evidence.anchor.to_str().unwrap().to_owned();

    // Untouched, everything verifies, and each recording is the one its session_ended holds.
    let copy = Copy::of(&data);
    let (ok, report) = copy.verify(&["--anchor", &anchor]);
    assert!(ok, "{report}");
    for id in [&first, &second, &third] {
        assert!(
            report.contains(&format!("ok   recording {id}: "))
                && report.contains("anchored at event"),
            "{report}"
        );
    }
    assert!(
        report.contains("by a process that stopped cleanly"),
        "{report}"
    );
    let ended = sql_json(
        &copy.db(),
        &format!(
            "SELECT event FROM audit_events WHERE seq = {}",
            event_of(&copy.db(), "session_ended", &first)
        ),
    );
    let ended: Value = serde_json::from_str(ended[0]["event"].as_str().unwrap()).unwrap();
    assert_eq!(ended["recording"]["id"], first.as_str());
    let manifest = std::fs::read(copy.recording(&first, "manifest")).unwrap();
    let out = Command::new("sha256sum")
        .arg(copy.recording(&first, "manifest"))
        .output()
        .unwrap();
    assert!(!manifest.is_empty());
    assert_eq!(
        ended["recording"]["manifest_sha256"].as_str().unwrap(),
        text(&out.stdout).split_whitespace().next().unwrap()
    );

    // A recording deleted, and its sessions row edited to say there was none, or deleted.
    for edit in [
        format!("UPDATE sessions SET recorded = 0 WHERE id = '{first}'"),
        format!("UPDATE sessions SET kind = 'scp' WHERE id = '{first}'"),
        format!("DELETE FROM sessions WHERE id = '{first}'"),
    ] {
        let copy = Copy::of(&data);
        copy.remove_recording(&first);
        sql(&copy.db(), &edit);
        copy.verify_fails_naming(&[], &[&format!("FAIL recording {first}: "), "is missing"]);
    }

    // A recording replaced by another session's: copied, and re-sealed with the node's own
    // audit key for the right session id (what root on the node can do).
    let copy = Copy::of(&data);
    copy.remove_recording(&first);
    for extension in ["cast", "manifest", "raw"] {
        if copy.recording(&second, extension).exists() {
            std::fs::copy(
                copy.recording(&second, extension),
                copy.recording(&first, extension),
            )
            .unwrap();
        }
    }
    copy.verify_fails_naming(&[], &[&format!("FAIL recording {first}: "), "swapped"]);
    let copy = Copy::of(&data);
    let recordings = copy.r.data_dir().join("recordings");
    let (header, events) =
        rampart_audit::read_cast(&recordings, uuid::Uuid::parse_str(&second).unwrap()).unwrap();
    let first_id = uuid::Uuid::parse_str(&first).unwrap();
    copy.remove_recording(&first);
    let mut forged = rampart_audit::Recorder::create(&recordings, first_id, &header).unwrap();
    for (_, code, data) in &events {
        if code == "o" {
            forged.output(data.as_bytes()).unwrap();
        }
    }
    let key =
        rampart_audit::read_private_key(&copy.r.data_dir().join("keys/audit_ed25519_key")).unwrap();
    forged.seal(&key).unwrap();
    if let Err(problem) = rampart_audit::verify_recording(&recordings, first_id, key.public_key()) {
        panic!("the forged recording must be validly sealed by the node's key: {problem}");
    }
    copy.verify_fails_naming(
        &[],
        &[
            &format!("FAIL recording {first}: is not the recording the chain holds"),
            "replaced or edited",
        ],
    );

    // The signed heads deleted, events edited to say the first session was not recorded, its
    // recording deleted, and the chain recomputed: the chain checks out, the coverage does not.
    let copy = Copy::of(&data);
    let db = copy.db();
    let started = event_of(&db, "session_started", &first);
    let ended = event_of(&db, "session_ended", &first);
    edit_event(&db, started, |e| e["recorded"] = Value::Bool(false));
    edit_event(&db, ended, |e| {
        e.as_object_mut().unwrap().remove("recording");
    });
    copy.remove_recording(&first);
    sql(&db, "DELETE FROM audit_seals");
    recompute_chain(&db, started);
    let report = copy.verify_fails_naming(
        &["--anchor", &anchor],
        &[
            "FAIL audit chain coverage: the server stopped cleanly at event",
            "signed heads were deleted",
            "FAIL external anchor",
            "the log was rewritten",
        ],
    );
    assert!(
        report.contains("ok   audit chain: "),
        "the chain was recomputed right: {report}"
    );
    assert!(!report.contains(&format!("recording {first}")), "{report}");

    // What follows needs the last running signature to be older than the allowed lag.
    std::thread::sleep(
        (ALLOWED_LAG + Duration::from_secs(2)).saturating_sub(evidence.stopped.elapsed()),
    );

    // The same, with the server_stopped events removed too: once the events are older than the
    // allowed lag, no signed head covers them.
    let stops = sql(
        &db,
        "SELECT group_concat(seq) FROM audit_events WHERE kind = 'server_stopped'",
    );
    sql(
        &db,
        &format!("DELETE FROM audit_events WHERE seq IN ({})", stops.trim()),
    );
    sql(
        &db,
        "CREATE TEMP TABLE renumber AS SELECT seq AS old, ROW_NUMBER() OVER (ORDER BY seq) AS new FROM audit_events; UPDATE audit_events SET seq = -(SELECT new FROM renumber WHERE old = seq); UPDATE audit_events SET seq = -seq;",
    );
    recompute_chain(&db, 1);
    let report = copy.verify_fails_naming(
        &[],
        &["FAIL audit chain coverage: no signed head covers the log"],
    );
    assert!(
        report.contains("ok   audit chain: "),
        "the chain was recomputed right: {report}"
    );
    // The same, with every event dated in the future: such events are never "younger than the
    // allowed lag".
    sql(&db, "UPDATE audit_events SET at = '2099-01-01T00:00:00Z'");
    recompute_chain(&db, 1);
    copy.verify_fails_naming(
        &[],
        &[
            "FAIL audit chain coverage: event 1 is not covered by a signed head and is dated \
             2099-01-01T00:00:00Z, in the future",
        ],
    );

    // The tail of the log deleted with the signed heads that cover it: the third session and the
    // stop. The newest head left was signed by a server that was running.
    let copy = Copy::of(&data);
    let cut = evidence.head_before_third;
    sql(
        &copy.db(),
        &format!(
            "DELETE FROM audit_events WHERE seq > {cut}; DELETE FROM audit_seals WHERE seq > {cut}"
        ),
    );
    copy.verify_fails_naming(
        &[],
        &[&format!(
            "FAIL audit chain coverage: the newest signed head (event {cut}) was signed by a running server"
        )],
    );
    let shorter = format!("the log is shorter than an external anchor: it ends at event {cut}");
    copy.verify_fails_naming(&["--anchor", &anchor], &[&shorter]);
    let url = serve_file(std::fs::read_to_string(&evidence.anchor).unwrap());
    copy.verify_fails_naming(
        &["--anchor", &url],
        &[&format!("FAIL external anchor {url}: "), &shorter],
    );

    // Everything signed, then the events of the last seconds dropped by their time (with the
    // heads that cover them): the newest head left is again a running server's.
    let copy = Copy::of(&data);
    let db = copy.db();
    let last_at = sql(
        &db,
        "SELECT at FROM audit_events WHERE kind = 'session_ended' ORDER BY seq DESC LIMIT 1",
    );
    sql(
        &db,
        &format!(
            "DELETE FROM audit_events WHERE at > {}; DELETE FROM audit_seals WHERE seq > (SELECT MAX(seq) FROM audit_events)",
            quote(last_at.trim())
        ),
    );
    let left = head_seq(&copy.r);
    assert!(left < head_seq(&evidence.r), "events were dropped");
    copy.verify_fails_naming(&[], &["FAIL audit chain coverage: ", "were deleted"]);
    copy.verify_fails_naming(
        &["--anchor", &anchor],
        &[&format!(
            "the log is shorter than an external anchor: it ends at event {left}"
        )],
    );
}

/// How long the webhook receiver of the SIEM test is down.
const OUTAGE: Duration = Duration::from_secs(30);

/// A webhook receiver that can be down (it answers 503 and keeps nothing) or up (200, and
/// keeps each body).
struct Receiver {
    port: u16,
    down: Arc<AtomicBool>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (is_down, kept) = (down.clone(), bodies.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                if is_down.load(Ordering::SeqCst) {
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
                    );
                    continue;
                }
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        Self { port, down, bodies }
    }

    fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn a_webhook_down_for_30_seconds_then_up_receives_every_event_with_no_gap_in_sequence() {
    let r = Rampart::new(BIN);
    let receiver = Receiver::start();
    let url = format!("http://127.0.0.1:{}/events", receiver.port);
    let server = r.serve_with_env(&[
        ("RAMPART_WEBHOOK_URL", &url),
        ("RAMPART_AUDIT_SEAL_INTERVAL", SEAL_INTERVAL),
    ]);
    let audit_events = |bodies: &[Value]| -> Vec<Value> {
        bodies
            .iter()
            .filter(|b| b["kind"] != "audit_head_signed")
            .cloned()
            .collect()
    };
    wait_until("server_started reaches the receiver", || {
        audit_events(&receiver.received())
            .iter()
            .any(|e| e["kind"] == "server_started")
    });

    // The receiver goes down for 30 s (the outage; the forwarder's backoff reaches its
    // 30 s cap meanwhile, so it is back within about a second of the receiver); events keep
    // happening all along; the forwarder sees the failures.
    receiver.down.store(true, Ordering::SeqCst);
    let outage = Instant::now();
    let mut users = Vec::new();
    for i in 0..6 {
        let name = format!("outage-{i}");
        r.ok(&["user", "add", &name]);
        users.push(name);
        std::thread::sleep(Duration::from_secs(4));
    }
    wait_until("the sink has failed a few times", || {
        r.json(&["audit", "sinks"])[0]["failed"].as_u64().unwrap() >= 3
    });
    std::thread::sleep(OUTAGE.saturating_sub(outage.elapsed()));
    receiver.down.store(false, Ordering::SeqCst);
    r.ok(&["user", "add", "after-outage"]);
    let head = head_seq(&r);
    wait_until("every event reaches the receiver", || {
        audit_events(&receiver.received())
            .iter()
            .any(|e| e["seq"].as_i64() == Some(head))
    });
    let received = receiver.received();
    assert!(server.terminate().0.success());

    // Every event after the sink's start arrived, each with its seq; duplicates are allowed
    // (at least once), gaps are not.
    let mut seqs: Vec<i64> = audit_events(&received)
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..=head).collect::<Vec<_>>(),
        "no gap in sequence numbers"
    );
    for user in users.iter().chain([&"after-outage".to_owned()]) {
        assert!(
            audit_events(&received)
                .iter()
                .any(|e| e["kind"] == "user_added" && e["event"]["user"] == user.as_str()),
            "{user} reached the receiver"
        );
    }
    let status = &r.json(&["audit", "sinks"])[0];
    assert_eq!(status["delivered_seq"].as_i64(), Some(head));

    // The signed heads reached it too: a copy outside the node, good as an anchor.
    let heads: Vec<&Value> = received
        .iter()
        .filter(|b| b["kind"] == "audit_head_signed")
        .collect();
    assert!(!heads.is_empty(), "{received:?}");
    let file = r.scratch().join("siem-heads.jsonl");
    std::fs::write(
        &file,
        heads.iter().map(|h| format!("{h}\n")).collect::<String>(),
    )
    .unwrap();
    let report = r.ok(&["audit", "verify", "--anchor", file.to_str().unwrap()]);
    assert!(report.contains("ok   external anchor"), "{report}");
}

#[test]
fn a_crash_is_reported_until_the_next_start_records_it_and_anchors_the_cut_recording() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let env = [("RAMPART_AUDIT_SEAL_INTERVAL", SEAL_INTERVAL)];
    let Some(mut lab) = Lab::start_with_env(&env) else {
        return;
    };
    let mut child = lab
        .ssh_command(&lab.direct())
        .arg("-tt")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo started\n").unwrap();
    let mut live = Vec::new();
    wait_until("the session is live", || {
        live = lab
            .r
            .json(&["session", "list", "--live"])
            .as_array()
            .unwrap()
            .clone();
        !live.is_empty()
    });
    let id = live[0]["id"].as_str().unwrap().to_owned();
    lab.server.kill();
    let killed = Instant::now();
    let _ = child.kill();
    let _ = child.wait();

    // Before the next start: the log's tail is not signed by a server that stopped cleanly,
    // and the session is unfinished, not failed.
    std::thread::sleep((ALLOWED_LAG + Duration::from_secs(2)).saturating_sub(killed.elapsed()));
    let copy = Copy::of(&lab.r.data_dir());
    let report = copy.verify_fails_naming(
        &[],
        &["FAIL audit chain coverage: ", "the node stopped uncleanly"],
    );
    assert!(
        report.contains(&format!("ok   recording {id}: live or unfinished")),
        "{report}"
    );

    // The next start records the unclean stop, signs the head, seals the cut recording and
    // anchors it in the session's end.
    lab.server = lab.r.serve_with_env(&env);
    let unclean = lab.events("unclean_stop_detected");
    assert_eq!(unclean.len(), 1, "{unclean:?}");
    let ended: Vec<Value> = lab
        .events("session_ended")
        .into_iter()
        .filter(|e| e["event"]["session"] == id.as_str())
        .collect();
    assert_eq!(
        ended[0]["event"]["recording"]["complete"], false,
        "{ended:?}"
    );
    assert_eq!(ended[0]["event"]["recording"]["id"], id.as_str());
    let out = lab.r.run(&["audit", "verify"]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.contains(&format!("ok   recording {id}: "))
            && report.contains("sealed as incomplete")
            && report.contains("anchored at event"),
        "{report}"
    );
}

/// Replaces session `victim`'s recording by `donor`'s output, re-sealed with the node's own
/// audit key under `victim`'s id: valid on its own, not the recording the chain holds.
fn forge_recording(data_dir: &Path, victim: &str, donor: &str) {
    let recordings = data_dir.join("recordings");
    let (header, events) =
        rampart_audit::read_cast(&recordings, uuid::Uuid::parse_str(donor).unwrap()).unwrap();
    let victim = uuid::Uuid::parse_str(victim).unwrap();
    for extension in ["cast", "manifest", "raw"] {
        let path = recordings.join(format!("{victim}.{extension}"));
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
    let mut forged = rampart_audit::Recorder::create(&recordings, victim, &header).unwrap();
    for (_, code, data) in &events {
        if code == "o" {
            forged.output(data.as_bytes()).unwrap();
        }
    }
    let key = rampart_audit::read_private_key(&data_dir.join("keys/audit_ed25519_key")).unwrap();
    forged.seal(&key).unwrap();
    rampart_audit::verify_recording(&recordings, victim, key.public_key())
        .expect("the forged recording is validly sealed by the node's key");
}

#[test]
fn a_recording_swapped_for_another_sessions_is_refused_by_replay_export_and_the_api() {
    let Some(lab) = Lab::start() else { return };
    for word in ["victim", "donor"] {
        let out = lab.ssh(&lab.direct(), &format!("echo {word}"), b"");
        assert_eq!(text(&out.stdout), format!("{word}\n"));
    }
    let sessions = lab.sessions();
    let id_of = |word: &str| {
        let bytes = word.len() + 1;
        sessions
            .iter()
            .find(|s| s["bytes_to_client"] == bytes)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (victim, donor) = (id_of("victim"), id_of("donor"));
    forge_recording(&lab.r.data_dir(), &victim, &donor);
    let swapped = "is not the recording the chain holds";

    // Replay and export refuse it and say why; the donor's own recording still plays.
    let replay = lab.r.run(&["replay", &victim, "--no-wait"]);
    assert!(!replay.status.success());
    assert!(
        text(&replay.stderr).contains(swapped),
        "{}",
        text(&replay.stderr)
    );
    assert!(!text(&replay.stdout).contains("donor"));
    let file = lab.r.scratch().join("victim.cast");
    let export = lab
        .r
        .run(&["recording", "export", &victim, "-o", file.to_str().unwrap()]);
    assert!(!export.status.success());
    assert!(
        text(&export.stderr).contains(swapped),
        "{}",
        text(&export.stderr)
    );
    assert!(!file.exists());
    assert!(lab.r.ok(&["replay", &donor, "--no-wait"]).contains("donor"));

    // The API's verification reports it.
    lab.r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    let token = lab
        .r
        .ok(&["token", "create", "--user", "audrey", "--scope", "read"])
        .trim()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let client = lab.server.client();
    let verification = |id: &str| {
        let answer = client.request(
            "GET",
            &format!("/api/v1/sessions/{id}/recording/verification"),
            &[("authorization", &bearer)],
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    };
    let report = verification(&victim);
    assert_eq!(report["verified"], false, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains(swapped),
        "{report}"
    );
    assert_eq!(verification(&donor)["verified"], true);

    // The raw download refuses it too, rather than hand out another session's recording as
    // this one's; the donor's own downloads as before.
    let download = |id: &str| {
        client.request(
            "GET",
            &format!("/api/v1/sessions/{id}/recording"),
            &[("authorization", &bearer)],
            None,
        )
    };
    let refused = download(&victim);
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(refused.text().contains(swapped), "{}", refused.text());
    assert!(!refused.text().contains("donor"), "{}", refused.text());
    let served = download(&donor);
    assert_eq!(served.status, 200, "{}", served.text());
    assert!(served.text().contains("donor"), "{}", served.text());
}
