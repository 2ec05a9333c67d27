//! The Kubernetes front end to end. These are PROTOCOL-CONTRACT tests, not cluster tests: no
//! real API server can run here, so `tests/kube/fake_apiserver.py` stands in for one. It speaks
//! real HTTPS, discovery, pods, a Secret, a watch and exec over WebSocket with the real
//! v5/v4.channel.k8s.io framing, and logs every header it receives. The clients are real: the
//! machine's `kubectl` and the `kubernetes` Python client, through Rampart's Kubernetes
//! listener with a kubeconfig from `rampart kube config`. What this proves is that Rampart
//! keeps the API's contract and its own rules (identity, impersonation, policy, records,
//! secrets); what it cannot prove is how a real cluster's RBAC answers impersonation.

use crate::BIN;
use crate::db_common::{live_session, queries_until, text, verified_eventually};
use rampart_testkit::{Rampart, Server, files_containing};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The vaulted service-account token: it must never reach the user.
const SA_CANARY: &str = "sa-token-canary-4b1d7e02-never-shown";
/// A Secret's value in the fake cluster: never in a record or a recording.
const SECRET_CANARY: &str = "secret-value-canary-77aa0c";
/// A value a user puts into a Secret they create: never in a record.
const CREATED_CANARY: &str = "created-secret-canary-31f9";

/// The fake API server (a Python process of the test's own).
pub(crate) struct FakeApiServer {
    child: Child,
    pub(crate) port: u16,
    fingerprint: String,
    log: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakeApiServer {
    /// Every request it received: method, path, query and headers.
    pub(crate) fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube/fake_apiserver.py")
}

pub(crate) fn start_fake() -> Option<FakeApiServer> {
    start_fake_preferring(None)
}

/// `preference`: `prefer-v4` makes the fake choose v4.channel.k8s.io when offered both.
fn start_fake_preferring(preference: Option<&str>) -> Option<FakeApiServer> {
    let python = rampart_testkit::require_tool("python3")?;
    let openssl = rampart_testkit::require_tool("openssl")?;
    let dir = tempfile::Builder::new()
        .prefix("rampart-kube")
        .tempdir()
        .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=fake-apiserver",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let log = dir.path().join("requests.jsonl");
    let mut child = Command::new(python)
        .arg(script())
        .args([&cert, &key])
        .arg(SA_CANARY)
        .arg(&log)
        .arg(SECRET_CANARY)
        .args(preference)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("READY"), "fake API server: {line}");
    let port = words.next().unwrap().parse().unwrap();
    let fingerprint = words.next().unwrap().to_owned();
    Some(FakeApiServer {
        child,
        port,
        fingerprint,
        log,
        dir,
    })
}

/// Rampart with alice (group `ops`; read, write and exec on the cluster) and bob (read only),
/// the asset `k8s` (its API server pinned), the vaulted service-account token; serving with the
/// Kubernetes listener. Returns the listener's port too.
pub(crate) fn rampart_for_cluster(fake: &FakeApiServer) -> (Rampart, Server, u16) {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["user", "add", "bob"]);
    r.ok(&["group", "add", "ops"]);
    r.ok(&["group", "member", "add", "ops", "alice"]);
    r.ok(&[
        "asset",
        "add",
        "k8s",
        "--host",
        "127.0.0.1",
        "--endpoint",
        &format!("kubernetes:{}", fake.port),
    ]);
    r.ok(&[
        "asset",
        "endpoint",
        "set",
        "k8s",
        "kubernetes",
        "--tls-fingerprint",
        &fake.fingerprint,
    ]);
    r.ok_with_stdin(
        &["account", "add", "rampart-sa@k8s", "--password-stdin"],
        SA_CANARY.as_bytes(),
    );
    for (user, actions) in [
        (
            "alice",
            "kubernetes:read,kubernetes:write,kubernetes:exec,kubernetes:port_forward",
        ),
        ("bob", "kubernetes:read"),
    ] {
        r.ok(&[
            "grant",
            "add",
            "--user",
            user,
            "--asset",
            "k8s",
            "--account",
            "rampart-sa",
            "--actions",
            actions,
        ]);
    }
    let server = r.serve_with_env(&[("RAMPART_KUBE_LISTEN", "127.0.0.1:0")]);
    let port = server
        .banner
        .iter()
        .find_map(|line| line.strip_prefix("kubernetes: listening on "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .expect("the banner names the kubernetes listener")
        .port();
    (r, server, port)
}

/// `rampart kube config` for `user`: the kubeconfig's path.
pub(crate) fn kubeconfig(r: &Rampart, fake: &FakeApiServer, user: &str, port: u16) -> PathBuf {
    let path = fake.dir.path().join(format!("{user}.kubeconfig"));
    r.ok(&[
        "kube",
        "config",
        "--asset",
        "k8s",
        "--user",
        user,
        "--server",
        &format!("https://127.0.0.1:{port}"),
        "-o",
        path.to_str().unwrap(),
    ]);
    path
}

pub(crate) fn kubectl(config: &Path, args: &[&str]) -> Output {
    let kubectl = rampart_testkit::require_tool("kubectl").unwrap();
    Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(config)
        .args(["--request-timeout", "60s"])
        .args(args)
        .env("HOME", config.parent().unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub(crate) fn header<'a>(request: &'a Value, name: &str) -> Vec<&'a str> {
    request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

/// CONTRACT TEST: kubectl get, exec and a created Secret go through Rampart as alice herself
/// (impersonated, with her group), each request recorded, Secret values never stored, the
/// service-account token never shown; bob, read-only, is refused exec and writes.
#[test]
fn kubectl_through_rampart_is_the_person_recorded_and_under_policy() {
    if rampart_testkit::require_tool("kubectl").is_none() {
        return;
    }
    let Some(fake) = start_fake() else { return };
    let (r, server, port) = rampart_for_cluster(&fake);
    let alice = kubeconfig(&r, &fake, "alice", port);
    let written = std::fs::read_to_string(&alice).unwrap();
    assert!(written.contains("rampartkube_"), "{written}");
    assert!(!written.contains(SA_CANARY));

    // kubectl get pods, asking to be someone else: the cluster sees alice, in her group.
    let get = kubectl(
        &alice,
        &[
            "get",
            "pods",
            "--as",
            "admin",
            "--as-group",
            "system:masters",
        ],
    );
    let out = text(&get);
    assert!(get.status.success(), "{out}");
    assert!(out.contains("web-0") && out.contains("Running"), "{out}");

    let exec = kubectl(&alice, &["exec", "web-0", "--", "echo", "hi", "there"]);
    assert!(
        exec.status.success(),
        "{}\n{:?}\n{}",
        text(&exec),
        fake.requests(),
        std::fs::read_to_string(r.data_dir().join("logs/rampart.log")).unwrap_or_default()
    );
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "hi there\n");

    let secret = format!("--from-literal=password={CREATED_CANARY}");
    let created = kubectl(&alice, &["create", "secret", "generic", "app", &secret]);
    assert!(created.status.success(), "{}", text(&created));

    for shown in [&get, &exec, &created] {
        assert!(!text(shown).contains(SA_CANARY));
    }

    // What reached the API server: only Rampart's token, only alice's identity.
    let requests = fake.requests();
    let user_token = written
        .split("rampartkube_")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let http: Vec<&Value> = requests
        .iter()
        .filter(|r| r.get("method").is_some())
        .collect();
    assert!(http.len() >= 4, "{requests:?}");
    for request in &http {
        assert_eq!(
            header(request, "authorization"),
            [format!("Bearer {SA_CANARY}")]
        );
        assert_eq!(header(request, "impersonate-user"), ["alice"], "{request}");
        assert_eq!(header(request, "impersonate-group"), ["ops"], "{request}");
        assert_eq!(
            header(request, "host"),
            [format!("127.0.0.1:{}", fake.port)]
        );
        assert!(!request.to_string().contains(user_token), "{request}");
    }
    assert!(
        http.iter()
            .any(|r| r["path"] == "/api/v1/namespaces/default/pods/web-0/exec")
    );
    assert!(
        requests
            .iter()
            .any(|r| r["exec"] == serde_json::json!(["echo", "hi", "there"]))
    );

    // bob may read, nothing else: exec and a write are refused by Rampart (not forwarded).
    let bob = kubeconfig(&r, &fake, "bob", port);
    let before = fake.requests().len();
    let read = kubectl(&bob, &["get", "pods"]);
    assert!(read.status.success(), "{}", text(&read));
    let denied = kubectl(&bob, &["exec", "web-0", "--", "echo", "nope"]);
    assert!(!denied.status.success());
    assert!(
        text(&denied).contains("kubernetes:exec"),
        "{}",
        text(&denied)
    );
    let denied = kubectl(&bob, &["delete", "pod", "web-0"]);
    assert!(!denied.status.success());
    let out = text(&denied);
    assert!(
        out.contains("Forbidden") && out.contains("kubernetes:write"),
        "{out}"
    );
    assert!(!out.contains(SA_CANARY));
    let after = fake.requests();
    assert!(
        after[before..].iter().all(
            |r| r["path"] != "/api/v1/namespaces/default/pods/web-0/exec"
                && r["method"] != "DELETE"
        ),
        "{after:?}"
    );
    assert!(after[before..].iter().all(|r| r.get("exec").is_none()));

    // The records: each request with its verb, resource, namespace and status.
    let records = queries_until(&r, &["--asset", "k8s"], 6);
    let find = |verb: &str, resource: &str| {
        records
            .iter()
            .find(|q| q["record"]["kind"] == verb && q["record"]["resource"] == resource)
            .unwrap_or_else(|| panic!("no {verb} {resource} record in {records:?}"))
    };
    let list = find("list", "pods");
    assert_eq!(list["user"], "alice");
    assert_eq!(list["record"]["namespace"], "default");
    assert_eq!(list["record"]["status"][0], "200");
    assert!(list["record"]["duration_ms"].is_u64());
    let create = find("create", "secrets");
    let kept = create["record"]["params"][0].as_str().unwrap();
    assert!(
        kept.contains("***") || kept.contains("not kept: a Secret"),
        "{kept}"
    );
    // A refused request is on record as `access_denied` (and in the session's log when the
    // connection already had a session).
    let denials = r
        .json(&["audit", "list", "--kind", "access_denied"])
        .to_string();
    assert!(
        denials.contains("kubernetes:exec") && denials.contains("kubernetes:write"),
        "{denials}"
    );

    // The exec is a recorded session of its own, ended with the command's exit status.
    let sessions = r.json(&["session", "list"]);
    let exec_session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "kubernetes_exec")
        .unwrap_or_else(|| panic!("{sessions}"));
    assert_eq!(exec_session["user"], "alice");

    drop(server);
    verified_eventually(&r);
    // Nothing the user can see, and nothing kept, holds the service-account token or a
    // Secret's value: the data directory (records, recordings, logs, the chain) included.
    for canary in [SA_CANARY, SECRET_CANARY, CREATED_CANARY] {
        let hits = files_containing(&r.data_dir(), canary.as_bytes());
        assert!(hits.is_empty(), "{canary} found in {hits:?}");
    }
    // The search can find what is there: the user's created value reached the fake server.
    assert_eq!(
        files_containing(fake.dir.path(), CREATED_CANARY.as_bytes()).len(),
        1
    );
}

/// CONTRACT TEST: an old client's SPDY upgrade gets a clear refusal, and a request without a
/// Rampart token never reaches the cluster.
#[test]
fn spdy_and_tokenless_requests_get_clear_refusals() {
    let Some(fake) = start_fake() else { return };
    let Some(curl) = rampart_testkit::require_tool("curl") else {
        return;
    };
    let (r, _server, port) = rampart_for_cluster(&fake);
    let alice = kubeconfig(&r, &fake, "alice", port);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&alice).unwrap()).unwrap();
    let token = config["users"][0]["user"]["token"].as_str().unwrap();
    let url = format!(
        "https://127.0.0.1:{port}/clusters/k8s/api/v1/namespaces/default/pods/web-0/exec?command=id&stdout=true"
    );
    let spdy = Command::new(&curl)
        .args([
            "-sk",
            "-X",
            "POST",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: SPDY/3.1",
        ])
        .args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&spdy.stdout).into_owned();
    assert!(out.ends_with("\n400"), "{out}");
    assert!(out.contains("SPDY") && out.contains("WebSockets"), "{out}");
    let anonymous = Command::new(&curl)
        .args(["-sk", "-w", "\n%{http_code}"])
        .arg(format!(
            "https://127.0.0.1:{port}/clusters/k8s/api/v1/namespaces/default/pods"
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&anonymous.stdout).into_owned();
    assert!(out.ends_with("\n401"), "{out}");
    let forged = Command::new(&curl)
        .args([
            "-sk",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Authorization: Bearer {SA_CANARY}"),
        ])
        .arg(format!(
            "https://127.0.0.1:{port}/clusters/k8s/api/v1/namespaces/default/pods"
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&forged.stdout).into_owned();
    assert!(out.ends_with("\n401") && !out.contains(SA_CANARY), "{out}");
    // A personal database token is no Kubernetes token.
    let db_token = r.ok(&["db", "token", "create", "--user", "alice"]);
    let db = Command::new(&curl)
        .args(["-sk", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {}", db_token.trim()))
        .arg(format!(
            "https://127.0.0.1:{port}/clusters/k8s/api/v1/namespaces/default/pods"
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&db.stdout).into_owned();
    assert!(out.ends_with("\n401"), "{out}");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

/// A Python with the `kubernetes` client: `.ci/run`'s venv, or whatever `python3` has it.
fn python_with_kubernetes() -> Option<PathBuf> {
    let venv = std::env::var_os("RAMPART_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/rampart-venv"))
        });
    let candidates = venv
        .map(|venv| venv.join("bin/python"))
        .into_iter()
        .chain(rampart_testkit::require_tool("python3"));
    for python in candidates {
        let has = Command::new(&python)
            .args(["-c", "import kubernetes"])
            .output()
            .is_ok_and(|out| out.status.success());
        if has {
            return Some(python);
        }
    }
    assert!(
        std::env::var_os("RAMPART_REQUIRE_TOOLS").is_none(),
        "the kubernetes Python client is required (pip install kubernetes==37.0.2)"
    );
    eprintln!("skipping: no Python with the kubernetes client");
    None
}

/// CONTRACT TEST: the official Python client, with a kubeconfig from the API, lists and reads
/// pods and runs an exec (its own WebSocket stream, here with the v4.channel.k8s.io framing)
/// through Rampart, as the person, recorded.
#[test]
fn the_kubernetes_python_client_works_through_rampart() {
    let Some(python) = python_with_kubernetes() else {
        return;
    };
    let Some(fake) = start_fake_preferring(Some("prefer-v4")) else {
        return;
    };
    let (r, server, _port) = rampart_for_cluster(&fake);
    // This kubeconfig comes from the API (`POST /api/v1/kube/config`, alice's own).
    let api_token = r.ok(&["token", "create", "--user", "alice", "--scope", "write"]);
    let bearer = format!("Bearer {}", api_token.trim());
    let response = server.client().request(
        "POST",
        "/api/v1/kube/config",
        &[("authorization", &bearer)],
        Some(&serde_json::json!({ "asset": "k8s", "ttl": "1h" })),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let minted = response.json();
    assert_eq!(minted["token"]["kind"], "kubernetes");
    assert_eq!(minted["token"]["user"], "alice");
    let alice = fake.dir.path().join("alice-api.kubeconfig");
    std::fs::write(&alice, minted["kubeconfig"].as_str().unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube/python_client.py");
    let run = Command::new(python)
        .arg(script)
        .arg(&alice)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let seen: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(seen["pods"], serde_json::json!(["web-0"]));
    assert_eq!(seen["phase"], "Running");
    assert_eq!(seen["exec"], "from python\n");
    assert_eq!(seen["forwarded"], "echo:from-python-forward");
    let requests = fake.requests();
    let exec = requests
        .iter()
        .find(|r| r.get("exec").is_some())
        .unwrap_or_else(|| panic!("{requests:?}"));
    assert_eq!(exec["exec"], serde_json::json!(["echo", "from", "python"]));
    assert_eq!(exec["protocol"], "v4.channel.k8s.io");
    for request in requests.iter().filter(|r| r.get("method").is_some()) {
        assert_eq!(header(request, "impersonate-user"), ["alice"], "{request}");
    }
    let records = queries_until(&r, &["--user", "alice"], 2);
    assert!(
        records
            .iter()
            .any(|q| q["record"]["kind"] == "get" && q["record"]["name"] == "web-0"),
        "{records:?}"
    );
    // The port-forward (v4 channels): its connection on record with the port and bytes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let records = r.json(&["audit", "queries", "--user", "alice"]);
        let closed = records.as_array().unwrap().iter().any(|q| {
            q["record"]["kind"] == "portforward"
                && q["record"]["port"] == 8080
                && q["record"]["status"][0] != "opened"
                && q["record"]["bytes_to_pod"] == 19
                && q["record"]["bytes_from_pod"] == 24
        });
        if closed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{records}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Reads `stream` into a shared buffer on a thread of its own.
pub(crate) fn collect(
    mut stream: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    seen
}

/// Waits (at most a minute) until `what` was seen `times` times.
pub(crate) fn wait_for(seen: &std::sync::Mutex<Vec<u8>>, what: &str, times: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        if text.matches(what).count() >= times {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what:?} in {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// CONTRACT TEST: `kubectl exec -it ... -- sh` (a real terminal, through `script`) is a
/// recorded terminal session with its command log; command rules refuse a shell line at Enter
/// and an exec's argv before anything is dialled, and an argv word is never read as shell.
#[test]
fn kubectl_exec_it_is_a_recorded_terminal_under_command_rules() {
    let Some(kubectl_path) = rampart_testkit::require_tool("kubectl") else {
        return;
    };
    let Some(script) = rampart_testkit::require_tool("script") else {
        return;
    };
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    let grants = r.json(&["grant", "list"]);
    let grant = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g.to_string().contains("alice"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    r.ok(&[
        "rule",
        "add",
        "--grant",
        &grant,
        "--match",
        "prefix:cat",
        "--action",
        "deny",
    ]);
    let alice = kubeconfig(&r, &fake, "alice", port);

    // An exec's argv: `cat` refused before the API server hears of it; a word holding shell
    // syntax is one argument of echo.
    let before = fake.requests().len();
    let refused = kubectl(&alice, &["exec", "web-0", "--", "cat", "/etc/shadow"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("refused by rule"),
        "{}",
        text(&refused)
    );
    assert!(
        fake.requests()[before..]
            .iter()
            .all(|r| r.get("exec").is_none())
    );
    let echo = kubectl(&alice, &["exec", "web-0", "--", "echo", "a; cat b"]);
    assert!(echo.status.success(), "{}", text(&echo));
    assert_eq!(String::from_utf8_lossy(&echo.stdout), "a; cat b\n");

    let (mut child, seen, mut keys) =
        kubectl_at_prompt(&script, &kubectl_path, &alice, "exec -it web-0 -- sh");
    keys.write_all(b"echo hello-tty\r").unwrap();
    wait_for(&seen, "hello-tty", 2);
    keys.write_all(b"cat /etc/shadow\r").unwrap();
    wait_for(&seen, "refused by rule", 1);
    keys.write_all(b"exit\r").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "kubectl did not exit");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let execs: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r.get("tty") == Some(&Value::Bool(true)))
        .collect();
    assert_eq!(execs.len(), 1, "{execs:?}");

    // The terminal session: recorded, its command log holds the line typed, not the refused one.
    let sessions = r.json(&["session", "list"]);
    let shell = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "kubernetes_exec" && s["command"] == "sh")
        .unwrap_or_else(|| panic!("{sessions}"))
        .clone();
    let id = shell["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let replay = loop {
        let replay = r.run(&["replay", id, "--no-wait"]);
        if replay.status.success() || std::time::Instant::now() > deadline {
            break text(&replay);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(replay.contains("hello-tty"), "{replay}");
    let commands = r
        .json(&["audit", "commands", "--user", "alice"])
        .to_string();
    assert!(commands.contains("echo hello-tty"), "{commands}");
    assert!(!commands.contains("cat /etc/shadow"), "{commands}");
    let rules = r
        .json(&["audit", "list", "--kind", "command_rule_matched"])
        .to_string();
    assert!(rules.contains("cat /etc/shadow"), "{rules}");
}

/// CONTRACT TEST: an exec allow-list (`allow prefix:echo`, then `deny any`) applies to the
/// exec's `command` parameters exactly, as argv: an allowed command runs even with shell
/// syntax in one of its words (no shell reads it), anything else, and a shell script hiding
/// another command, is refused before the API server hears of it.
#[test]
fn an_exec_allow_list_applies_to_the_command_parameters_exactly() {
    if rampart_testkit::require_tool("kubectl").is_none() {
        return;
    }
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    let grants = r.json(&["grant", "list"]);
    let grant = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g.to_string().contains("alice"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (pattern, action) in [("prefix:echo", "allow"), ("any", "deny")] {
        r.ok(&[
            "rule", "add", "--grant", &grant, "--match", pattern, "--action", action,
        ]);
    }
    let alice = kubeconfig(&r, &fake, "alice", port);
    let echo = kubectl(&alice, &["exec", "web-0", "--", "echo", "hi; id"]);
    assert!(echo.status.success(), "{}", text(&echo));
    assert_eq!(String::from_utf8_lossy(&echo.stdout), "hi; id\n");
    let before = fake.requests().len();
    for argv in [
        &["id"][..],
        &["sh", "-c", "echo hi; id"],
        &["/bin/echo", "hi"],
    ] {
        let mut args = vec!["exec", "web-0", "--"];
        args.extend_from_slice(argv);
        let refused = kubectl(&alice, &args);
        assert!(!refused.status.success(), "{argv:?}: {}", text(&refused));
        assert!(
            text(&refused).contains("refused by rule"),
            "{argv:?}: {}",
            text(&refused)
        );
    }
    assert!(
        fake.requests()[before..]
            .iter()
            .all(|r| r.get("exec").is_none()),
        "{:?}",
        fake.requests()
    );
}

/// CONTRACT TEST: `kubectl attach -it` (to the container's own shell) is a recorded terminal
/// session like an exec, as alice: what she types and sees is in the replay, her line in the
/// command log.
#[test]
fn kubectl_attach_it_is_a_recorded_terminal_with_its_command_log() {
    let Some(kubectl_path) = rampart_testkit::require_tool("kubectl") else {
        return;
    };
    let Some(script) = rampart_testkit::require_tool("script") else {
        return;
    };
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    let alice = kubeconfig(&r, &fake, "alice", port);
    let (mut child, seen, mut keys) =
        kubectl_at_prompt(&script, &kubectl_path, &alice, "attach -it web-0");
    keys.write_all(b"echo hello-attach\r").unwrap();
    wait_for(&seen, "hello-attach", 2);
    keys.write_all(b"exit\r").unwrap();
    wait_exit(&mut child);

    let attached = fake
        .requests()
        .into_iter()
        .find(|r| r["path"] == "/api/v1/namespaces/default/pods/web-0/attach")
        .unwrap_or_else(|| panic!("{:?}", fake.requests()));
    assert_eq!(header(&attached, "impersonate-user"), ["alice"]);
    let sessions = r.json(&["session", "list"]);
    let id = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "kubernetes_exec" && s["user"] == "alice")
        .unwrap_or_else(|| panic!("{sessions}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let replay = loop {
        let replay = r.run(&["replay", &id, "--no-wait"]);
        if replay.status.success() || std::time::Instant::now() > deadline {
            break text(&replay);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(replay.contains("hello-attach"), "{replay}");
    let commands = r
        .json(&["audit", "commands", "--user", "alice"])
        .to_string();
    assert!(commands.contains("echo hello-attach"), "{commands}");
}

/// Waits (at most a minute) until the client ends.
pub(crate) fn wait_exit(child: &mut Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the client did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// CONTRACT TEST: live enforcement ends Kubernetes streams: a session kill ends an exec
/// stream (kubectl is told why), and revoking the grant ends a running watch.
#[test]
fn live_enforcement_ends_exec_streams_and_watches() {
    let Some(kubectl_path) = rampart_testkit::require_tool("kubectl") else {
        return;
    };
    let Some(script) = rampart_testkit::require_tool("script") else {
        return;
    };
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    let alice = kubeconfig(&r, &fake, "alice", port);

    // An interactive exec, killed by an administrator.
    let (mut shell, seen, _keys) =
        kubectl_at_prompt(&script, &kubectl_path, &alice, "exec -it web-0 -- sh");
    let id = live_session(&r, "kubernetes_exec");
    r.ok(&["session", "kill", &id, "--reason", "incident 4711"]);
    wait_exit(&mut shell);
    wait_for(&seen, "incident 4711", 1);

    // A watch, ended when the grant that allowed it goes.
    let kubectl = rampart_testkit::require_tool("kubectl").unwrap();
    let mut watch = watching_pods(&kubectl, &alice, &[]);
    let watching = live_session(&r, "kubernetes");
    let grants = r.json(&["grant", "list"]);
    let grant = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g.to_string().contains("alice"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    r.ok(&["grant", "remove", &grant]);
    wait_exit(&mut watch);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let session = r.json(&["session", "show", &watching]);
        if !session["ended_at"].is_null() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{session}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// CONTRACT TEST: a Kubernetes asset labelled `kubernetes/namespaces=web:api` is a view of the
/// cluster limited to those namespaces: other namespaces and cluster-wide resource requests are
/// refused by Rampart (audited, never forwarded); its own namespaces and discovery pass.
#[test]
fn a_namespace_view_refuses_other_namespaces() {
    if rampart_testkit::require_tool("kubectl").is_none() {
        return;
    }
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    r.ok(&[
        "asset",
        "set",
        "k8s",
        "--label",
        "kubernetes/namespaces=web:api",
    ]);
    let alice = kubeconfig(&r, &fake, "alice", port);
    let before = fake.requests().len();
    let refused = kubectl(&alice, &["get", "pods", "--namespace", "default"]);
    assert!(!refused.status.success());
    let out = text(&refused);
    assert!(out.contains("allows the namespaces web, api only"), "{out}");
    let everywhere = kubectl(&alice, &["get", "pods", "--all-namespaces"]);
    assert!(!everywhere.status.success(), "{}", text(&everywhere));
    let web = kubectl(&alice, &["get", "pods", "--namespace", "web"]);
    // Forwarded: the fake cluster has no such namespace's pods and says so (404), not Rampart.
    let after = fake.requests();
    assert!(
        after[before..]
            .iter()
            .any(|r| r["path"] == "/api/v1/namespaces/web/pods"),
        "{}\n{after:?}",
        text(&web)
    );
    assert!(
        after[before..].iter().all(|r| {
            let path = r["path"].as_str().unwrap_or("");
            path != "/api/v1/namespaces/default/pods" && path != "/api/v1/pods"
        }),
        "{after:?}"
    );
    let denials = r
        .json(&["audit", "list", "--kind", "access_denied"])
        .to_string();
    assert!(denials.contains("not default"), "{denials}");
}

/// Reads `stream` until `what` has been seen (or the deadline passes).
/// Reads from `stream` (at most a minute) until `what` came.
pub(crate) fn read_until(stream: &mut std::net::TcpStream, what: &str) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(what) {
        let n = stream.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "no {what:?} in {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// `kubectl get pods --watch` with `config` and `extra` arguments, once it has shown the pod.
pub(crate) fn watching_pods(kubectl: &Path, config: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["get", "pods", "--watch", "--output", "name"];
    args.extend(extra);
    let (watch, watched, _errors) = spawn_kubectl(kubectl, config, &args);
    wait_for(&watched, "pod/web-0", 1);
    watch
}

/// A kubectl that runs on with `config`: the child, and what it prints on stdout and stderr.
fn spawn_kubectl(kubectl: &Path, config: &Path, args: &[&str]) -> (Child, Shared, Shared) {
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(config)
        .args(args)
        .env("HOME", config.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = collect(child.stdout.take().unwrap());
    let errors = collect(child.stderr.take().unwrap());
    (child, printed, errors)
}

/// What a reader thread has collected so far.
type Shared = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// `kubectl ARGS` (an `-it` exec or attach) with `config` in a 100 x 30 terminal (through
/// `script`), once the container's shell shows its prompt: kubectl, what the terminal shows,
/// and its keyboard.
pub(crate) fn kubectl_at_prompt(
    script: &Path,
    kubectl: &Path,
    config: &Path,
    args: &str,
) -> (Child, Shared, std::process::ChildStdin) {
    let command = format!(
        "stty cols 100 rows 30; {} --kubeconfig {} {args}",
        kubectl.display(),
        config.display()
    );
    let mut child = Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", config.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = collect(child.stdout.take().unwrap());
    let _errors = collect(child.stderr.take().unwrap());
    let keys = child.stdin.take().unwrap();
    wait_for(&seen, "$ ", 1);
    (child, seen, keys)
}

/// `kubectl port-forward pod/web-0 :8080` with `config`, once it listens: kubectl, its local
/// port, and what it prints on stderr.
pub(crate) fn port_forward(kubectl: &Path, config: &Path) -> (Child, u16, Shared) {
    let args = [
        "port-forward",
        "--address",
        "127.0.0.1",
        "pod/web-0",
        ":8080",
    ];
    let (forward, printed, errors) = spawn_kubectl(kubectl, config, &args);
    wait_for(&printed, "Forwarding from 127.0.0.1:", 1);
    let banner = String::from_utf8_lossy(&printed.lock().unwrap()).into_owned();
    let local: u16 = banner
        .split("Forwarding from 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{banner}"));
    (forward, local, errors)
}

/// CONTRACT TEST: `kubectl port-forward` (kubectl's WebSocket tunnel of SPDY/3.1) goes through
/// Rampart to the pod's port as the person: a local connection reaches the (echoing) port,
/// each connection is on record with its port and the bytes each way, the bytes are in the
/// recording; a grant without `kubernetes:port_forward` is refused before the cluster hears of
/// it; killing the session ends kubectl, which is told why.
#[test]
fn kubectl_port_forward_is_relayed_recorded_and_ended_by_a_kill() {
    if rampart_testkit::require_tool("kubectl").is_none() {
        return;
    }
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    let alice = kubeconfig(&r, &fake, "alice", port);
    let kubectl_path = rampart_testkit::require_tool("kubectl").unwrap();
    let (mut forward, local, errors) = port_forward(&kubectl_path, &alice);

    // One connection: what it sends comes back from the pod's port.
    let mut first = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    first.write_all(b"hello-forward").unwrap();
    let echoed = read_until(&mut first, "echo:hello-forward");
    assert_eq!(echoed, "echo:hello-forward");
    first.shutdown(std::net::Shutdown::Write).unwrap();
    drop(first);

    // What reached the API server: Rampart's token and alice's identity; the data, on port 8080.
    let requests = fake.requests();
    let upgrade = requests
        .iter()
        .find(|r| r["path"] == "/api/v1/namespaces/default/pods/web-0/portforward")
        .unwrap_or_else(|| panic!("{requests:?}"));
    assert_eq!(header(upgrade, "impersonate-user"), ["alice"]);
    assert_eq!(
        header(upgrade, "authorization"),
        [format!("Bearer {SA_CANARY}")]
    );
    assert_eq!(
        header(upgrade, "sec-websocket-protocol"),
        ["SPDY/3.1+portforward.k8s.io"]
    );
    assert!(
        requests
            .iter()
            .any(|r| r["forwarded"] == 8080 && r["data"] == "hello-forward"),
        "{requests:?}"
    );

    // On record: the connection's port and bytes each way, once it closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let closed = loop {
        let records = r.json(&["audit", "queries", "--asset", "k8s"]);
        let closed =
            records.as_array().unwrap().iter().find(|q| {
                q["record"]["kind"] == "portforward" && q["record"]["status"][0] == "closed"
            });
        if let Some(closed) = closed {
            break closed.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{records}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(closed["user"], "alice");
    assert_eq!(closed["record"]["port"], 8080);
    assert_eq!(closed["record"]["bytes_to_pod"], 13);
    assert_eq!(closed["record"]["bytes_from_pod"], 18);
    assert_eq!(closed["record"]["name"], "web-0");
    let id = live_session(&r, "kubernetes_port_forward");

    // A second connection stays open while an administrator kills the session.
    let mut second = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
    second.write_all(b"still-here").unwrap();
    read_until(&mut second, "echo:still-here");
    r.ok(&["session", "kill", &id, "--reason", "incident 5150"]);
    wait_exit(&mut forward);
    wait_for(&errors, "incident 5150", 1);
    let session = r.json(&["session", "show", &id]);
    assert!(session.to_string().contains("incident 5150"), "{session}");
    // The recording holds the forwarded bytes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let replay = loop {
        let replay = r.run(&["replay", &id, "--no-wait"]);
        if replay.status.success() || std::time::Instant::now() > deadline {
            break text(&replay);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        replay.contains("echo:hello-forward") && replay.contains("echo:still-here"),
        "{replay}"
    );

    // bob may only read: his port-forward is refused by Rampart, never forwarded.
    let bob = kubeconfig(&r, &fake, "bob", port);
    let before = fake
        .requests()
        .iter()
        .filter(|r| r["path"] == "/api/v1/namespaces/default/pods/web-0/portforward")
        .count();
    let refused = kubectl(
        &bob,
        &[
            "port-forward",
            "--address",
            "127.0.0.1",
            "pod/web-0",
            ":8080",
        ],
    );
    assert!(!refused.status.success());
    let out = text(&refused);
    assert!(out.contains("kubernetes:port_forward"), "{out}");
    let after = fake
        .requests()
        .iter()
        .filter(|r| r["path"] == "/api/v1/namespaces/default/pods/web-0/portforward")
        .count();
    assert_eq!(before, after);
}

/// CONTRACT TEST: a grant limited to namespaces (`grant add --namespaces`) allows its
/// namespaces only: another namespace, a list across all namespaces and a cluster-scoped
/// resource are refused by Rampart with a clear Forbidden (audited, never forwarded); its own
/// namespace works; `grant list` shows the limit.
#[test]
fn a_grant_limited_to_namespaces_refuses_other_namespaces_and_cluster_wide_lists() {
    if rampart_testkit::require_tool("kubectl").is_none() {
        return;
    }
    let Some(fake) = start_fake() else { return };
    let (r, _server, port) = rampart_for_cluster(&fake);
    r.ok(&["user", "add", "carol"]);
    r.ok(&[
        "grant",
        "add",
        "--user",
        "carol",
        "--asset",
        "k8s",
        "--actions",
        "kubernetes:read,kubernetes:exec",
        "--namespaces",
        "default,api",
    ]);
    let listed = r.ok(&["grant", "list"]);
    assert!(listed.contains("namespaces api,default"), "{listed}");
    let grants = r.json(&["grant", "list"]);
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["namespaces"] == serde_json::json!(["api", "default"])),
        "{grants}"
    );
    let carol = kubeconfig(&r, &fake, "carol", port);
    let before = fake.requests().len();

    let allowed = kubectl(&carol, &["get", "pods", "--namespace", "default"]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(text(&allowed).contains("web-0"), "{}", text(&allowed));
    let exec = kubectl(&carol, &["exec", "web-0", "--", "echo", "in", "default"]);
    assert!(exec.status.success(), "{}", text(&exec));

    let other = kubectl(&carol, &["get", "pods", "--namespace", "kube-system"]);
    assert!(!other.status.success());
    let out = text(&other);
    assert!(
        out.contains("Forbidden")
            && out.contains("the namespace kube-system")
            && out.contains("namespaces api, default only"),
        "{out}"
    );
    let everywhere = kubectl(&carol, &["get", "pods", "--all-namespaces"]);
    assert!(!everywhere.status.success(), "{}", text(&everywhere));
    assert!(
        text(&everywhere).contains("the whole cluster"),
        "{}",
        text(&everywhere)
    );
    let nodes = kubectl(&carol, &["get", "nodes"]);
    assert!(!nodes.status.success(), "{}", text(&nodes));

    // Nothing refused reached the API server.
    let after = fake.requests();
    assert!(
        after[before..].iter().all(|r| {
            let path = r["path"].as_str().unwrap_or("");
            !path.starts_with("/api/v1/namespaces/kube-system")
                && path != "/api/v1/pods"
                && path != "/api/v1/nodes"
        }),
        "{after:?}"
    );
    assert!(
        after[before..]
            .iter()
            .any(|r| r["path"] == "/api/v1/namespaces/default/pods")
    );
    let denials = r
        .json(&["audit", "list", "--kind", "access_denied"])
        .to_string();
    assert!(denials.contains("kube-system"), "{denials}");
    // alice's grant has no namespace limit: the same list across namespaces is hers to make.
    let alice = kubeconfig(&r, &fake, "alice", port);
    let _ = kubectl(&alice, &["get", "pods", "--all-namespaces"]);
    assert!(
        fake.requests().iter().any(|r| r["path"] == "/api/v1/pods"),
        "{:?}",
        fake.requests()
    );
}
