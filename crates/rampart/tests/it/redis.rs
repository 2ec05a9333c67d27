//! The Redis front end to end: a real `redis-server` (an ACL user with a password, on a
//! loopback port of the test's own) and real `redis-cli` through Rampart with a personal
//! database token.

use rampart_testkit::{Rampart, Server, files_containing, free_port};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The target user's password: it must never reach the user.
const CANARY: &str = "redis-canary-9c4e1f20-never-shown";

/// A redis-server of the test's own.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_redis() -> Option<Redis> {
    start_redis_with(None)
}

/// With `tls`: TLS only (no plain port), with that certificate; clients need no certificate.
pub(crate) fn start_redis_with(tls: Option<&crate::db_common::TestCert>) -> Option<Redis> {
    let server = rampart_testkit::require_tool("redis-server")?;
    rampart_testkit::require_tool("redis-cli")?;
    let dir = tempfile::Builder::new()
        .prefix("rampart-redis")
        .tempdir()
        .unwrap();
    let port = free_port();
    let config = dir.path().join("redis.conf");
    let ports = match tls {
        None => format!("port {port}\n"),
        Some(cert) => format!(
            "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-auth-clients no\n",
            cert.cert.display(),
            cert.key.display()
        ),
    };
    std::fs::write(
        &config,
        format!(
            "{ports}bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n\
             user default off\nuser app on >{CANARY} ~* &* +@all\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = Command::new(server)
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let redis = Redis {
        child,
        port,
        tls: tls.is_some(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while redis.direct(&["PING"]).trim() != "PONG" {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(redis)
}

impl Redis {
    /// A command straight to the server as its ACL user, for checks.
    pub(crate) fn direct(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.tls {
            command.args(["--tls", "--insecure"]);
        }
        let out = command
            .args(["--user", "app", "--no-auth-warning"])
            .env("REDISCLI_AUTH", CANARY)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Rampart with alice, the asset redis-01 (its redis endpoint), the vaulted `app` account and a
/// `redis:connect` grant; serving with the Redis listener on (plus `env`).
pub(crate) fn rampart_for(redis: &Redis, env: &[(&str, &str)]) -> (Rampart, Server, u16) {
    crate::db_common::rampart_for_database("redis", "redis-01", redis.port, "app", CANARY, env)
}

pub(crate) fn token(r: &Rampart) -> String {
    r.ok(&["db", "token", "create", "--user", "alice", "--ttl", "1h"])
        .trim()
        .to_owned()
}

/// `redis-cli` through Rampart as alice@redis-01 (plain, on loopback, unless `tls`).
pub(crate) fn cli(port: u16, token: &str, tls: bool) -> Command {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if tls {
        command.args(["--tls", "--insecure"]);
    }
    command
        .args(["--user", "alice@redis-01", "--no-auth-warning"])
        .env("REDISCLI_AUTH", token);
    command
}

pub(crate) fn run(mut command: Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The query log as `audit queries --json` prints it, once it has `expected` records.
fn queries_until(r: &Rampart, args: &[&str], expected: usize) -> Vec<Value> {
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

fn statement(record: &Value) -> &str {
    record["record"]["statement"].as_str().unwrap_or("")
}

/// A RESP command.
fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out
}

#[test]
fn redis_cli_through_rampart_runs_commands_pipelines_transactions_and_pubsub_logged_without_the_password()
 {
    let Some(redis) = start_redis() else { return };
    let (r, server, port) = rampart_for(&redis, &[("RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK", "true")]);
    let token = token(&r);
    let mut shown = String::new();

    // Commands, one session each.
    let mut set = cli(port, &token, false);
    set.args(["SET", "greeting", "hello world"]);
    let out = run(set, "");
    shown.push_str(&text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "OK",
        "{}",
        text(&out)
    );
    assert_eq!(redis.direct(&["GET", "greeting"]).trim(), "hello world");
    // RESP3 (redis-cli sends HELLO 3 after its AUTH).
    let mut hash = cli(port, &token, false);
    hash.args(["-3", "HSET", "h", "f", "v"]);
    let out = run(hash, "");
    shown.push_str(&text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "{}",
        text(&out)
    );

    // A pipeline: 300 commands in one write, every reply counted.
    let mut pipe = String::new();
    for n in 0..300 {
        pipe.push_str(&resp(&["SET", &format!("key:{n}"), &n.to_string()]));
    }
    let mut mass = cli(port, &token, false);
    mass.arg("--pipe");
    let out = run(mass, &pipe);
    shown.push_str(&text(&out));
    assert!(
        text(&out).contains("errors: 0, replies: 300"),
        "{}",
        text(&out)
    );
    assert_eq!(redis.direct(&["GET", "key:299"]).trim(), "299");

    // A transaction, and a denied command in one session: the session goes on.
    let out = run(
        cli(port, &token, false),
        "MULTI\nINCR counter\nINCR counter\nEXEC\nSET after 1\nFLUSHALL\nGET after\n",
    );
    let said = text(&out);
    shown.push_str(&said);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines.get(..5).unwrap_or_default(),
        ["OK", "QUEUED", "QUEUED", "1", "2"],
        "{said}"
    );
    assert!(
        said.contains("ERR Rampart refused FLUSHALL"),
        "the denied command gets an error: {said}"
    );
    assert_eq!(lines.last(), Some(&"1"), "the session went on: {said}");
    assert_eq!(
        redis.direct(&["GET", "key:1"]).trim(),
        "1",
        "nothing was flushed"
    );

    // Pub/sub: a subscriber through Rampart gets a message published through Rampart.
    let mut subscriber = cli(port, &token, false)
        .args(["SUBSCRIBE", "news"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let mut heard = Vec::new();
    // The confirmation: subscribe, news, 1.
    while heard.len() < 3 {
        heard.push(lines.next().unwrap().unwrap());
    }
    assert_eq!(heard, ["subscribe", "news", "1"]);
    let mut publish = cli(port, &token, false);
    publish.args(["PUBLISH", "news", "extra"]);
    let out = run(publish, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "{}",
        text(&out)
    );
    heard.clear();
    while heard.len() < 3 {
        heard.push(lines.next().unwrap().unwrap());
    }
    assert_eq!(heard, ["message", "news", "extra"]);
    let _ = subscriber.kill();
    let _ = subscriber.wait();

    // Every command is one record with its result; the denied one is on record as blocked.
    let records = queries_until(&r, &["--user", "alice", "--grep", "^PUBLISH"], 1);
    assert_eq!(records[0]["record"]["status"][0], "integer 1");
    let records = queries_until(&r, &["--asset", "redis-01"], 300 + 12);
    let set = records
        .iter()
        .find(|q| statement(q) == "SET greeting \"hello world\"")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(set["record"]["status"][0], "OK");
    assert_eq!(set["target"], "app@redis-01");
    let flush = records.iter().find(|q| statement(q) == "FLUSHALL").unwrap();
    assert_eq!(flush["record"]["kind"], "blocked");
    let exec = records.iter().find(|q| statement(q) == "EXEC").unwrap();
    assert_eq!(exec["record"]["status"][0], "2 elements");
    assert!(records.iter().any(|q| statement(q) == "SUBSCRIBE news"));
    assert!(records.iter().any(|q| statement(q) == "SET key:299 299"));
    assert!(records.iter().all(|q| !statement(q).starts_with("AUTH")));

    // The sessions' recordings are sealed and verify, with the commands in them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let verify = r.run(&["audit", "verify"]);
        if verify.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&verify));
        std::thread::sleep(Duration::from_millis(300));
    }
    let recordings = r.data_dir().join("recordings");
    assert!(!files_containing(&recordings, b"hello world").is_empty());

    // The target's password is nowhere the user or the node's files show it.
    let (_, stderr) = server.terminate();
    assert!(!shown.contains(CANARY) && !stderr.contains(CANARY));
    assert!(files_containing(&r.data_dir(), CANARY.as_bytes()).is_empty());
}

#[test]
fn wrong_and_revoked_tokens_are_refused_alike_and_tls_is_required_by_default() {
    let Some(redis) = start_redis() else { return };
    let (r, _server, port) = rampart_for(&redis, &[]);
    let refused = "WRONGPASS invalid username-password pair or user is disabled";

    let mut ping = cli(port, "rampartdb_not-a-token", true);
    ping.arg("PING");
    let wrong = run(ping, "");
    assert!(text(&wrong).contains(refused), "{}", text(&wrong));

    // TLS (recognised by its first byte) with a good token.
    let good = token(&r);
    let mut ping = cli(port, &good, true);
    ping.arg("PING");
    let out = run(ping, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PONG",
        "{}",
        text(&out)
    );

    let listed = r.json(&["db", "token", "list", "--user", "alice"]);
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    r.ok(&["db", "token", "revoke", &id]);
    let mut ping = cli(port, &good, true);
    ping.arg("PING");
    let revoked = run(ping, "");
    assert!(text(&revoked).contains(refused), "{}", text(&revoked));
    assert_eq!(text(&revoked), text(&wrong), "both failures read the same");

    // Plain connections are refused unless configured (and then only from loopback).
    let fresh = token(&r);
    let mut ping = cli(port, &fresh, false);
    ping.arg("PING");
    let plain = run(ping, "");
    assert!(
        text(&plain).contains("Rampart requires TLS"),
        "{}",
        text(&plain)
    );
}

/// A raw client, plain on loopback.
struct Raw(TcpStream);

impl Raw {
    fn login(port: u16, token: &str) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
            .write_all(resp(&["AUTH", "alice@redis-01", token]).as_bytes())
            .unwrap();
        let mut ok = [0u8; 5];
        stream.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        Raw(stream)
    }

    /// Everything until the connection closes.
    fn rest(&mut self) -> String {
        let mut all = Vec::new();
        let _ = self.0.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    }
}

#[test]
fn malformed_and_oversized_commands_and_a_kill_end_the_session_with_an_error() {
    let Some(redis) = start_redis() else { return };
    let (r, _server, port) = rampart_for(
        &redis,
        &[
            ("RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK", "true"),
            ("RAMPART_REDIS_LOGIN_GRACE_TIME", "2s"),
        ],
    );
    let token = token(&r);

    // A bulk string claiming 100 GB is refused before anything is kept for it.
    let mut raw = Raw::login(port, &token);
    raw.0.write_all(b"*1\r\n$100000000000\r\n").unwrap();
    let said = raw.rest();
    assert!(
        said.starts_with("-ERR Rampart ended the session: protocol violation: a value larger than"),
        "{said:?}"
    );

    // Inline commands and other types are not relayed.
    let mut raw = Raw::login(port, &token);
    raw.0.write_all(b"PING\r\n").unwrap();
    let said = raw.rest();
    assert!(said.contains("protocol violation"), "{said:?}");

    // Before login, commands are answered NOAUTH; a stalled login is closed after the grace time.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stalled.write_all(resp(&["GET", "k"]).as_bytes()).unwrap();
    let said = Raw(stalled).rest();
    assert!(
        said.starts_with("-NOAUTH Authentication required"),
        "{said:?}"
    );

    // HELLO 3 AUTH logs in too: the answer is the target's own HELLO map (RESP3).
    let mut hello = TcpStream::connect(("127.0.0.1", port)).unwrap();
    hello
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    hello
        .write_all(resp(&["HELLO", "3", "AUTH", "alice@redis-01", &token]).as_bytes())
        .unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("proto\r\n:3\r\n") {
        assert_eq!(
            hello.read(&mut byte).unwrap(),
            1,
            "{:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    assert_eq!(
        seen.first(),
        Some(&b'%'),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );
    drop(hello);

    // A kill ends a live session with an error to the client.
    let mut raw = Raw::login(port, &token);
    raw.0.write_all(resp(&["PING"]).as_bytes()).unwrap();
    let mut pong = [0u8; 7];
    raw.0.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    // (Once the HELLO session above has ended, this one is the only live session.)
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        let live = r.json(&["session", "list", "--live"]);
        if live.as_array().is_some_and(|l| l.len() == 1) {
            break live;
        }
        assert!(Instant::now() < deadline, "{live}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = live[0]["id"].as_str().unwrap().to_owned();
    r.ok(&["session", "kill", &id, "--reason", "maintenance window"]);
    let said = raw.rest();
    assert!(
        said.starts_with("-ERR Rampart ended the session:") && said.contains("maintenance window"),
        "{said:?}"
    );
}

/// The node writes every database session's statement rows in one queue (group commit). When
/// a batch cannot be written, every session with statements in it ends with the reason (fail
/// closed), a new session's first statement ends it the same way, and once the database takes
/// writes again new sessions work.
#[test]
fn statement_rows_that_cannot_be_written_end_every_session_they_belong_to() {
    if rampart_testkit::require_tool("sqlite3").is_none() {
        return;
    }
    let Some(redis) = start_redis() else { return };
    let (r, _server, port) = rampart_for(&redis, &[("RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK", "true")]);
    let token = token(&r);
    let ping = |raw: &mut Raw| {
        raw.0.write_all(resp(&["PING"]).as_bytes()).unwrap();
        let mut pong = [0u8; 7];
        raw.0.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
    };
    let mut first = Raw::login(port, &token);
    let mut second = Raw::login(port, &token);
    ping(&mut first);
    ping(&mut second);
    queries_until(&r, &["--user", "alice"], 2);

    let sqlite = |sql: &str| {
        let db = r.data_dir().join("rampart.db");
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(".timeout 30000")
            .arg(sql)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {out:?}");
    };
    sqlite(
        "CREATE TRIGGER refuse_commands BEFORE INSERT ON commands \
         BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END;",
    );
    // Each session's next statement is marked in its recording and answered; its row cannot
    // be written, so the session ends with the reason.
    for raw in [&mut first, &mut second] {
        raw.0.write_all(resp(&["PING"]).as_bytes()).unwrap();
        let said = raw.rest();
        assert!(said.starts_with("+PONG\r\n"), "{said:?}");
        assert!(
            said.contains("-ERR Rampart ended the session: the query log cannot be written"),
            "{said:?}"
        );
    }
    let mut third = Raw::login(port, &token);
    third.0.write_all(resp(&["PING"]).as_bytes()).unwrap();
    let said = third.rest();
    assert!(said.contains("the query log cannot be written"), "{said:?}");

    sqlite("DROP TRIGGER refuse_commands;");
    let mut fourth = Raw::login(port, &token);
    ping(&mut fourth);
    queries_until(&r, &["--user", "alice"], 3);
}

#[test]
fn a_database_token_minted_through_the_api_works_with_redis_cli_and_the_query_log_is_in_the_api() {
    let Some(redis) = start_redis() else { return };
    let (r, server, port) = rampart_for(&redis, &[("RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK", "true")]);
    r.ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    r.ok(&["user", "add", "bob"]);
    let client = server.client();

    // alice logs in to the API (no second factor enrolled) and mints a token, shown once.
    let login = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&serde_json::json!({ "username": "alice", "password": "alice-password-1" })),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = format!(
        "rampart_session={}",
        login
            .header("set-cookie")
            .unwrap()
            .strip_prefix("rampart_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
    );
    let csrf = login.json()["csrf_token"].as_str().unwrap().to_owned();
    let as_alice = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let minted = client.request(
        "POST",
        "/api/v1/db-tokens",
        &as_alice,
        Some(&serde_json::json!({ "ttl": "1h" })),
    );
    assert_eq!(minted.status, 201, "{}", minted.text());
    let secret = minted.json()["secret"].as_str().unwrap().to_owned();
    let listed = client.request("GET", "/api/v1/db-tokens", &as_alice, None);
    assert!(
        !listed.text().contains(&secret),
        "shown once: {}",
        listed.text()
    );
    assert_eq!(listed.json().as_array().unwrap().len(), 1);

    let mut set = cli(port, &secret, false);
    set.args(["SET", "via-portal", "yes"]);
    let out = run(set, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "OK",
        "{}",
        text(&out)
    );

    // The query log in the API: filtered, and one session's statements as its timeline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let found = client
            .request(
                "GET",
                "/api/v1/queries?asset=redis-01&grep=^SET",
                &as_alice,
                None,
            )
            .json();
        if found.as_array().is_some_and(|a| !a.is_empty()) || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        found[0]["record"]["statement"], "SET via-portal yes",
        "{found}"
    );
    assert_eq!(found[0]["record"]["status"][0], "OK");
    let session = found[0]["session"].as_str().unwrap();
    let timeline = client
        .request(
            "GET",
            &format!("/api/v1/queries?session={session}"),
            &as_alice,
            None,
        )
        .json();
    assert_eq!(timeline.as_array().unwrap().len(), 1, "{timeline}");

    // bob (who has a second factor) sees none of alice's statements.
    crate::mfa::enroll_by_link(&r, &server, "bob", "bob-password-1");
    let bob_token = r
        .ok(&["token", "create", "--user", "bob", "--scope", "write"])
        .trim()
        .to_owned();
    let as_bob = format!("Bearer {bob_token}");
    let bobs = client
        .request(
            "GET",
            "/api/v1/queries?user=alice",
            &[("authorization", as_bob.as_str())],
            None,
        )
        .json();
    assert_eq!(bobs, serde_json::json!([]));

    // A user with a second factor must have logged in with it: an API token is not enough.
    let refused = client.request(
        "POST",
        "/api/v1/db-tokens",
        &[("authorization", as_bob.as_str())],
        Some(&serde_json::json!({})),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("second factor"),
        "{}",
        refused.text()
    );
}

/// Whether `password` logs `app` in, straight to the server with stock redis-cli.
fn app_password_works(redis: &Redis, password: &str) -> bool {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .args(["--user", "app", "--no-auth-warning", "PING"])
        .env("REDISCLI_AUTH", password)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

#[test]
fn a_redis_acl_users_password_rotates_by_acl_setuser_and_rampart_logs_in_with_the_new_one() {
    const NEW: &str = "redis-rotated-canary-4d1e9b.X";
    let Some(redis) = start_redis() else {
        return;
    };
    let (r, server, port) = rampart_for(&redis, &[]);
    assert!(app_password_works(&redis, CANARY));
    assert!(!app_password_works(&redis, NEW));
    let password_file = r.scratch().join("next-password");
    std::fs::write(&password_file, format!("{NEW}\n")).unwrap();
    let out = r
        .command(&["account", "rotate", "app@redis-01"])
        .env("RAMPART_TEST_ROTATION_PASSWORD_FILE", &password_file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("committed"), "{said}");
    assert!(!said.contains(NEW) && !said.contains(CANARY), "{said}");

    // The old password stops working on the server, the new one works, and Rampart's session
    // logs in with it (the vault holds it).
    assert!(!app_password_works(&redis, CANARY));
    assert!(app_password_works(&redis, NEW));
    let out = run(cli(port, &token(&r), true), "PING\n");
    assert!(text(&out).contains("PONG"), "{}", text(&out));
    let events = r.ok(&[
        "audit",
        "list",
        "--kind",
        "account_rotation_changed",
        "--json",
    ]);
    assert!(events.contains("committed"), "{events}");
    assert!(!events.contains(NEW));
    drop(server);
    assert!(files_containing(&r.data_dir(), NEW.as_bytes()).is_empty());
}
