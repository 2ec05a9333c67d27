//! Several `rampart serve` nodes on one PostgreSQL (issue 19): a real cluster of three
//! processes on loopback, each with its own data directory and the cluster's keys, sharing a
//! PostgreSQL the testkit starts. A session on node A is listed and killed through node B's
//! API and watched live through node C (relayed from A); node A killed with SIGKILL mid-session is declared lost by another node, which ends
//! its session as "node lost"; the audit chain stays whole; with recordings in a bucket that
//! enforces Object Lock (SeaweedFS), the lost session's recording is sealed from what reached
//! the bucket and verifies, incomplete, against the chain; a node with a different audit key,
//! or a second process with a running node's name, is refused at start.

use super::BIN;
use super::recordings_s3::Seaweed;
use super::ssh::{Lab, text};
use rampart_testkit::{HttpClient, Rampart, Server};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A node's configuration: the shared store, its name, and quick heartbeats (a node silent for
/// 3 s is lost).
fn node_config(dir: &Path, name: &str, url: &str) -> PathBuf {
    let path = dir.join(format!("node-{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"{url}\"\n\n[node]\nname = \"{name}\"\nheartbeat_interval = \"1s\"\nlost_after = \"3s\"\n"
        ),
    )
    .unwrap();
    path
}

/// A `rampart` for node `name` (its own data directory) on the shared store.
fn node(name: &str, url: &str) -> Rampart {
    node_with(name, url, |_| String::new())
}

/// [`node`] with more configuration (`extra` is given the node's scratch directory).
fn node_with(name: &str, url: &str, extra: impl Fn(&Path) -> String) -> Rampart {
    let base = Rampart::without_init(BIN);
    let config = node_config(base.scratch(), name, url);
    let more = extra(base.scratch());
    if !more.is_empty() {
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push('\n');
        text.push_str(&more);
        std::fs::write(&config, text).unwrap();
    }
    let config = config.to_str().unwrap().to_owned();
    base.with_args(&["--config", &config])
}

/// Gives a new node the cluster's keys, as the README says an operator does: the data
/// directory's `keys/` copied from a node of the cluster.
fn copy_keys(from: &Rampart, to: &Rampart) {
    let keys = to.data_dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for entry in std::fs::read_dir(from.data_dir().join("keys")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), keys.join(entry.file_name())).unwrap();
        }
    }
}

/// Polls `check` every 200 ms for at most `within`; returns its last answer.
fn wait_for<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Session `id` as `r` shows it once it has ended (within `within`).
fn ended_session(r: &Rampart, id: &str, within: Duration) -> Value {
    wait_for(within, || {
        let session = r.json(&["session", "show", id]);
        session["ended_at"].is_string().then_some(session)
    })
    .unwrap_or_else(|| panic!("session {id} never ended"))
}

/// An exec session through node A that prints `started` and then waits: returns once it has
/// started.
fn long_session(lab: &Lab) -> Child {
    session_running(lab, "echo started; sleep 120")
}

/// An exec session through node A running `command`, once it has printed `started`.
fn session_running(lab: &Lab, command: &str) -> Child {
    let mut child = lab
        .ssh_command(&lab.direct())
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    child
}

fn api(client: &HttpClient, token: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let bearer = format!("Bearer {token}");
    let response = client.request(method, path, &[("authorization", &bearer)], body);
    assert!(
        (200..300).contains(&response.status),
        "{method} {path}: {} {}",
        response.status,
        response.text()
    );
    response.json()
}

/// The nodes that say they lead the cluster.
fn leaders(r: &Rampart) -> Vec<String> {
    r.json(&["node", "list"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["leader"] == true)
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

fn node_states(r: &Rampart) -> Vec<(String, String)> {
    r.json(&["node", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

struct Cluster {
    lab: Lab,
    b: Rampart,
    b_server: Server,
    _c: Rampart,
    c_server: Server,
}

fn cluster() -> Option<Cluster> {
    let url = rampart_testkit::pg::fresh_database()?;
    let a = node("a", &url);
    a.ok(&["init"]);
    let lab = Lab::start_on(a, &[], None)?;
    let b = node("b", &url);
    copy_keys(&lab.r, &b);
    let b_server = b.serve();
    let c = node("c", &url);
    copy_keys(&lab.r, &c);
    let c_server = c.serve();
    Some(Cluster {
        lab,
        b,
        b_server,
        _c: c,
        c_server,
    })
}

#[test]
fn a_session_on_node_a_is_listed_and_killed_through_node_b_and_a_killed_node_is_declared_lost() {
    let Some(Cluster {
        mut lab,
        b,
        b_server,
        _c: _c_node,
        c_server,
    }) = cluster()
    else {
        return;
    };
    let mut states = node_states(&b);
    states.sort();
    assert_eq!(
        states,
        [("a", "up"), ("b", "up"), ("c", "up")].map(|(n, s)| (n.to_owned(), s.to_owned())),
    );
    // One node leads (it runs the work that must run once: sinks, retention, rotation...).
    let leader = wait_for(Duration::from_secs(10), || {
        let now = leaders(&b);
        (now.len() == 1).then_some(now)
    });
    assert!(leader.is_some(), "exactly one leader: {:?}", leaders(&b));
    lab.r.ok(&["user", "add", "audrey", "--role", "auditor"]);
    lab.r
        .ok_with_stdin(&["user", "password", "audrey"], b"audrey-password-1");
    let token = lab
        .r
        .ok(&["token", "create", "--user", "audrey", "--scope", "write"])
        .trim()
        .to_owned();
    let through_b = b_server.client();

    // Eight writers through the three nodes' APIs at once: one chain, no fork, no gap.
    lab.r.ok(&["user", "add", "root", "--role", "admin"]);
    let admin = lab
        .r
        .ok(&["token", "create", "--user", "root", "--scope", "admin"])
        .trim()
        .to_owned();
    let nodes = [lab.server.client(), b_server.client(), c_server.client()];
    std::thread::scope(|scope| {
        for writer in 0..8 {
            let (client, admin) = (&nodes[writer % 3], &admin);
            scope.spawn(move || {
                for n in 0..5 {
                    let body = json!({"name": format!("w{writer}-{n}"), "role": "user"});
                    api(client, admin, "POST", "/api/v1/users", Some(&body));
                }
            });
        }
    });
    let added = lab.events("user_added");
    assert_eq!(
        added
            .iter()
            .filter(|e| e["event"]["user"]
                .as_str()
                .is_some_and(|u| u.starts_with('w')))
            .count(),
        40,
        "{added:?}"
    );
    let verify = b.run(&["audit", "verify"]);
    let report = text(&verify.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.contains("audit chain") && l.starts_with("ok")),
        "{report}"
    );

    // A session carried by node A, seen and killed through node B, watched through node C.
    let mut first = session_running(
        &lab,
        "echo started; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done",
    );
    let live = api(
        &through_b,
        &token,
        "GET",
        "/api/v1/sessions?live=true",
        None,
    );
    let live = live.as_array().unwrap();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        live[0]["node"], "a",
        "the session carries its node: {live:?}"
    );
    let id = live[0]["id"].as_str().unwrap().to_owned();
    let through_c = c_server.client();
    let cookie = through_c.login_cookie("audrey", "audrey-password-1");
    let (answer, mut watching) = through_c.websocket(
        &format!("/api/v1/sessions/{id}/watch"),
        &[("cookie", &cookie), ("origin", through_c.origin())],
    );
    assert_eq!(answer.status, 101, "{}", answer.text());
    assert!(
        watching.read_until("tick-"),
        "node C relays what node A's session prints"
    );
    let watched = lab.events("session_watched");
    assert_eq!(watched.len(), 1, "{watched:?}");
    assert_eq!(watched[0]["event"]["session"], id.as_str());
    api(
        &through_b,
        &token,
        "POST",
        &format!("/api/v1/sessions/{id}/kill"),
        Some(&json!({"reason": "asked on node b"})),
    );
    let exited = wait_for(Duration::from_secs(20), || first.try_wait().unwrap());
    assert!(exited.is_some(), "node A ended the session node B killed");
    let ended = ended_session(&lab.r, &id, Duration::from_secs(10));
    assert!(
        ended["end_reason"]
            .as_str()
            .unwrap()
            .contains("asked on node b"),
        "{ended}"
    );

    // Node A dies mid-session (SIGKILL): another node declares it lost and ends its session.
    let mut second = long_session(&lab);
    let second_id = lab.r.json(&["session", "list", "--live"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started_events = lab.events("session_started").len();
    lab.server.kill();
    let _ = second.kill();
    let _ = second.wait();
    let lost = wait_for(Duration::from_secs(30), || {
        node_states(&b)
            .contains(&("a".to_owned(), "lost".to_owned()))
            .then_some(())
    });
    assert!(
        lost.is_some(),
        "node a was never declared lost: {:?}",
        node_states(&b)
    );
    let ended = ended_session(&b, &second_id, Duration::from_secs(15));
    assert_eq!(ended["end_reason"], "node lost", "{ended}");
    // Whoever led before, one of the nodes still up leads now.
    let leader = wait_for(Duration::from_secs(15), || {
        let now = leaders(&b);
        (now.len() == 1 && now[0] != "a").then_some(now)
    });
    assert!(leader.is_some(), "one of b and c leads: {:?}", leaders(&b));
    let events = b.json(&["audit", "list", "--limit", "100000"]);
    let events = events.as_array().unwrap();
    let declared: Vec<&Value> = events.iter().filter(|e| e["kind"] == "node_lost").collect();
    assert_eq!(
        declared.len(),
        1,
        "one node declares the loss: {declared:?}"
    );
    assert_eq!(declared[0]["event"]["node"], "a");
    assert!(
        ["b", "c"].contains(&declared[0]["event"]["declared_by"].as_str().unwrap()),
        "{declared:?}"
    );
    assert_eq!(declared[0]["event"]["sessions"], json!([second_id]));
    // Nothing acknowledged before the kill is missing: both sessions' starts are on record,
    // and the chain verifies whole.
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "session_started")
            .count(),
        started_events
    );
    let verify = b.run(&["audit", "verify"]);
    let report = text(&verify.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.contains("audit chain") && l.starts_with("ok")),
        "{report}{}",
        text(&verify.stderr)
    );
}

#[test]
fn a_node_with_another_audit_key_or_a_running_nodes_name_is_refused_at_start() {
    let Some(url) = rampart_testkit::pg::fresh_database() else {
        return;
    };
    let a = node("a", &url);
    a.ok(&["init"]);
    let _a_server = a.serve();
    // The cluster's vault key, but an audit key of its own (generated at its start).
    let stranger = node("b", &url);
    copy_keys(&a, &stranger);
    for name in ["audit_ed25519_key", "audit_ed25519_key.pub"] {
        let _ = std::fs::remove_file(stranger.data_dir().join("keys").join(name));
    }
    let out = stranger.run(&[
        "serve",
        "--http-listen",
        "127.0.0.1:0",
        "--ssh-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("audit public key") && stderr.contains("differs from the cluster's"),
        "{stderr}"
    );
    // Only the cluster's audit key opens a node's relay of a live session: a request signed
    // with the stranger's own key is refused before the session is even looked up, one signed
    // with the cluster's key is answered (no such live session here).
    let path = "/api/v1/cluster/sessions/01890000-0000-7000-8000-000000000000/stream";
    let ask = |signer: &Rampart| {
        let key = rampart_audit::read_private_key(
            &signer.data_dir().join("keys").join("audit_ed25519_key"),
        )
        .unwrap();
        let time = rampart_testkit::unix_now().to_string();
        let message = format!("rampart-node-relay-v1\nGET\n{path}\nb\n{time}");
        let signature = rampart_audit::sign_node_request(&key, &message).unwrap();
        let mut base64 = std::process::Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut base64.stdin.take().unwrap(), signature.as_bytes()).unwrap();
        let encoded = text(&base64.wait_with_output().unwrap().stdout);
        _a_server
            .client()
            .request(
                "GET",
                path,
                &[
                    ("x-rampart-node", "b"),
                    ("x-rampart-node-time", &time),
                    ("x-rampart-node-signature", &encoded),
                ],
                None,
            )
            .status
    };
    assert_eq!(ask(&stranger), 403, "a foreign key's signature is refused");
    assert_eq!(ask(&a), 404, "the cluster key's signature is accepted");

    // The cluster's keys, but the name of node a, which is running.
    let twin = node("a", &url);
    copy_keys(&a, &twin);
    let out = twin.run(&[
        "serve",
        "--http-listen",
        "127.0.0.1:0",
        "--ssh-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("node name a is in use by a running rampart serve"),
        "{stderr}"
    );
}

#[test]
fn a_lost_nodes_recording_is_sealed_from_the_bucket_and_verifies_up_to_its_last_uploaded_chunk() {
    let Some(url) = rampart_testkit::pg::fresh_database() else {
        return;
    };
    let Some(seaweed) = Seaweed::start() else {
        return;
    };
    let bucket = seaweed.bucket("cluster-recordings", true);
    let s3 = |dir: &Path| seaweed.config_text(dir, "cluster-recordings", true);
    let a = node_with("a", &url, s3);
    a.ok(&["init"]);
    let Some(mut lab) = Lab::start_on(a, &[], None) else {
        return;
    };
    let b = node_with("b", &url, s3);
    copy_keys(&lab.r, &b);
    let _b_server = b.serve();
    // Output for a while, then quiet: the first chunks are sealed and uploaded while it lives.
    let mut session = lab
        .ssh_command(&lab.direct())
        .arg("echo started; for i in $(seq 1 40); do echo line-$i; sleep 0.05; done; sleep 120")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(session.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("line-40") {
        assert!(reader.read_line(&mut seen).unwrap() > 0, "{seen}");
    }
    let id = lab.r.json(&["session", "list", "--live"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_chunk = format!("recordings/{id}/chunk-000000.cast");
    let uploaded = wait_for(Duration::from_secs(30), || {
        bucket.exists(&first_chunk).unwrap().then_some(())
    });
    assert!(
        uploaded.is_some(),
        "no chunk of the live session reached the bucket"
    );
    lab.server.kill();
    let _ = session.kill();
    let _ = session.wait();
    let ended = ended_session(&b, &id, Duration::from_secs(30));
    assert_eq!(ended["end_reason"], "node lost", "{ended}");
    // Node b sealed it from the bucket: the manifest is there now, and the chain anchors it.
    assert!(bucket.exists(&format!("recordings/{id}/manifest")).unwrap());
    let verify = b.run(&["audit", "verify", "--session", &id]);
    let report = text(&verify.stdout);
    let line = report
        .lines()
        .find(|l| l.contains(&format!("recording {id}")))
        .unwrap_or_else(|| panic!("{report}{}", text(&verify.stderr)));
    assert!(line.starts_with("ok"), "{report}");
    assert!(line.contains("incomplete"), "{line}");
    // Node b has no copy of its own: the export reads the bucket, and holds what was uploaded.
    let exported = b.scratch().join("lost.cast");
    b.ok(&["recording", "export", &id, "-o", exported.to_str().unwrap()]);
    let cast = std::fs::read_to_string(&exported).unwrap();
    assert!(cast.contains("started"), "{cast}");
}
