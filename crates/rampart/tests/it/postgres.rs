//! The PostgreSQL front end to end: a real PostgreSQL (initdb into a temporary directory, run as
//! the unprivileged `rampart-target` user when the tests run as root), real `psql` and
//! `pgbench` through Rampart with a personal database token.

use crate::db_common::{free_port, live_session, queries_until, text, verified_eventually};
use rampart_testkit::{
    Rampart, Server, files_containing, require_password_target_user, skip_or_fail,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The target role's password: it must never reach the user.
const CANARY: &str = "pg-canary-5b1d0e77-never-shown";

/// A PostgreSQL server of the test's own, on a loopback port.
pub(crate) struct Postgres {
    child: Child,
    pub(crate) port: u16,
    bin: PathBuf,
    sockets: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let _ = self.child.wait();
    }
}

fn postgres_bin() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .find(|bin| bin.join("initdb").exists() && bin.join("postgres").exists());
    if found.is_none() {
        skip_or_fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (Debian package postgresql)",
        );
    }
    found
}

/// Runs `program` as the unprivileged target user when we are root (PostgreSQL refuses root).
fn as_db_user(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("rampart-target")
            .unwrap()
            .unwrap();
        let mut command = Command::new("setpriv");
        command.args([
            &format!("--reuid={}", user.uid),
            &format!("--regid={}", user.gid),
            "--clear-groups",
            "--",
        ]);
        command.arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub(crate) fn start_postgres() -> Option<Postgres> {
    start_postgres_with(None)
}

/// With `tls`: TLS on with that certificate, and TCP logins only inside TLS (`hostssl`).
pub(crate) fn start_postgres_with(tls: Option<&crate::db_common::TestCert>) -> Option<Postgres> {
    rampart_testkit::require_tool("psql")?;
    rampart_testkit::require_tool("pgbench")?;
    let bin = postgres_bin()?;
    if nix::unistd::geteuid().is_root() && !require_password_target_user() {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("rampart-pg")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let sockets = dir.path().join("sock");
    std::fs::create_dir(&sockets).unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, CANARY).unwrap();
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("rampart-target")
            .unwrap()
            .unwrap();
        for path in [dir.path(), &sockets, &pwfile] {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .unwrap();
        }
    }
    let init = as_db_user(&bin.join("initdb"))
        .args(["-D"])
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=md5",
            "--pwfile",
        ])
        .arg(&pwfile)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut tls_args = Vec::new();
    if let Some(cert) = tls {
        let (cert_file, key_file) = (data.join("server.crt"), data.join("server.key"));
        std::fs::copy(&cert.cert, &cert_file).unwrap();
        std::fs::copy(&cert.key, &key_file).unwrap();
        std::fs::set_permissions(
            &key_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("rampart-target")
                .unwrap()
                .unwrap();
            for path in [&cert_file, &key_file] {
                std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .unwrap();
            }
        }
        // Over TCP only inside TLS: a plain connection finds no pg_hba.conf line.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 md5\n",
        )
        .unwrap();
        tls_args = vec!["-c".to_owned(), "ssl=on".to_owned()];
    }
    let port = free_port();
    let child = as_db_user(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&sockets)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ])
        .args(&tls_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pg = Postgres {
        child,
        port,
        bin,
        sockets,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(pg.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .output()
            .unwrap();
        if ready.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(pg)
}

impl Postgres {
    /// A query straight to the server over its Unix socket (trusted local login), for checks.
    pub(crate) fn direct(&self, sql: &str) -> String {
        let out = as_db_user(&self.bin.join("psql"))
            .arg("-h")
            .arg(&self.sockets)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-c",
                sql,
                "postgres",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Rampart with alice, the asset pg-01 (its postgres endpoint), the vaulted `postgres` account
/// and a `postgres:connect` grant; serving with the PostgreSQL listener on.
pub(crate) fn rampart_for(pg: &Postgres) -> (Rampart, Server, u16) {
    rampart_with(pg, &[])
}

pub(crate) fn rampart_with(pg: &Postgres, env: &[(&str, &str)]) -> (Rampart, Server, u16) {
    crate::db_common::rampart_for_database("postgres", "pg-01", pg.port, "postgres", CANARY, env)
}

pub(crate) fn token(r: &Rampart, ttl: &str) -> String {
    r.ok(&["db", "token", "create", "--user", "alice", "--ttl", ttl])
        .trim()
        .to_owned()
}

pub(crate) fn psql(port: u16, password: &str, sslmode: &str, sql: &[&str]) -> Output {
    let mut command = Command::new("psql");
    command
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice@pg-01 dbname=postgres sslmode={sslmode}"
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "30");
    for statement in sql {
        command.args(["-c", statement]);
    }
    command.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn psql_through_rampart_runs_queries_logged_per_statement_in_verified_evidence_without_the_password()
 {
    let Some(pg) = start_postgres() else { return };
    let (r, server, port) = rampart_for(&pg);
    let token = token(&r, "1h");

    let out = psql(
        port,
        &token,
        "require",
        &[
            "select 41 + 1 as answer",
            "create table notes (id int, body text)",
            "insert into notes values (1, 'hello')",
        ],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("42"), "{shown}");
    assert!(shown.contains("INSERT 0 1"), "{shown}");
    // The table exists on the target: the statements really ran there.
    assert_eq!(pg.direct("select body from notes").trim(), "hello");

    // Each statement is one record with its result.
    let records = queries_until(&r, &["--user", "alice"], 3);
    let statements: Vec<&str> = records
        .iter()
        .map(|q| q["record"]["statement"].as_str().unwrap())
        .collect();
    assert!(
        statements.contains(&"select 41 + 1 as answer"),
        "{records:?}"
    );
    let insert = records
        .iter()
        .find(|q| q["record"]["statement"] == "insert into notes values (1, 'hello')")
        .unwrap();
    assert_eq!(insert["record"]["status"][0], "INSERT 0 1");
    assert_eq!(insert["target"], "postgres@pg-01");
    let grep = r.json(&["audit", "queries", "--grep", "^create"]);
    assert_eq!(grep.as_array().unwrap().len(), 1, "{grep}");
    let table = r.ok(&["audit", "queries", "--asset", "pg-01"]);
    assert!(
        table.contains("select 41 + 1 as answer") && table.contains("SELECT 1"),
        "{table}"
    );

    // A failing statement is recorded with its error; the user sees the database's error.
    let out = psql(port, &token, "require", &["select * from no_such_table"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no_such_table"), "{}", text(&out));
    let failed = queries_until(&r, &["--grep", "no_such_table"], 1);
    assert!(
        failed[0]["record"]["error"]
            .as_str()
            .unwrap()
            .contains("42P01"),
        "{failed:?}"
    );

    // A second account whose role has an md5 password: named in the user name
    // (USER@ACCOUNT@ASSET), Rampart logs in with md5.
    pg.direct("set password_encryption = 'md5'; create role legacy login password 'legacy-pw-31f'");
    assert!(
        pg.direct("select rolpassword from pg_authid where rolname = 'legacy'")
            .starts_with("md5")
    );
    r.ok_with_stdin(
        &["account", "add", "legacy@pg-01", "--password-stdin"],
        b"legacy-pw-31f",
    );
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "pg-01",
        "--account",
        "legacy",
        "--actions",
        "postgres:connect",
    ]);
    let mut as_legacy = Command::new("psql");
    let out = as_legacy
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice@legacy@pg-01 dbname=postgres sslmode=require"
        ))
        .args(["-X", "-A", "-t", "-c", "select current_user"])
        .env("PGPASSWORD", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "legacy");

    // The session's recording is sealed and verifies, with the statements in it.
    verified_eventually(&r);
    let recordings = r.data_dir().join("recordings");
    assert!(!files_containing(&recordings, b"select 41 + 1 as answer").is_empty());

    // The target's password is nowhere the user or the node's files show it.
    let (_, stderr) = server.terminate();
    assert!(!shown.contains(CANARY) && !stderr.contains(CANARY));
    assert!(files_containing(&r.data_dir(), CANARY.as_bytes()).is_empty());
}

#[test]
fn wrong_expired_and_revoked_tokens_and_plain_connections_are_refused_alike() {
    let Some(pg) = start_postgres() else { return };
    let (r, _server, port) = rampart_with(&pg, &[("RAMPART_AUTH_LOCKOUT_THRESHOLD", "6")]);
    let refused = "password authentication failed for user \"alice@pg-01\"";

    let wrong = psql(port, "rampartdb_not-a-token", "require", &["select 1"]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains(refused), "{}", text(&wrong));

    let good = token(&r, "1h");
    assert!(psql(port, &good, "require", &["select 1"]).status.success());
    let listed = r.json(&["db", "token", "list", "--user", "alice"]);
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    r.ok(&["db", "token", "revoke", &id]);
    let revoked = psql(port, &good, "require", &["select 1"]);
    assert!(!revoked.status.success());
    assert!(text(&revoked).contains(refused), "{}", text(&revoked));

    let short = token(&r, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let expired = psql(port, &short, "require", &["select 1"]);
    assert!(!expired.status.success());
    assert!(text(&expired).contains(refused), "{}", text(&expired));

    // TLS is required by default.
    let fresh = token(&r, "1h");
    let plain = psql(port, &fresh, "disable", &["select 1"]);
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("Rampart requires TLS"),
        "{}",
        text(&plain)
    );
    assert!(
        psql(port, &fresh, "require", &["select 1"])
            .status
            .success()
    );
}

#[test]
fn pgbench_prepared_statements_and_a_cancelled_query_work_through_rampart() {
    let Some(pg) = start_postgres() else { return };
    let (r, _server, port) = rampart_for(&pg);
    let token = token(&r, "1h");
    let pgbench = |args: &[&str]| {
        Command::new("pgbench")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "alice@pg-01",
            ])
            .args(args)
            .arg("postgres")
            .env("PGPASSWORD", &token)
            .env("PGSSLMODE", "require")
            .output()
            .unwrap()
    };
    let init = pgbench(&["-i", "-q"]);
    assert!(init.status.success(), "{}", text(&init));
    // -S in the simple query protocol, then prepared (extended protocol).
    let run = pgbench(&["-S", "-M", "simple", "-t", "50", "-n"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("50/50"), "{}", text(&run));
    let run = pgbench(&["-S", "-M", "prepared", "-t", "50", "-n"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("50/50"), "{}", text(&run));
    // Simple queries are recorded with their text, prepared executions with their bound
    // parameter.
    let records = queries_until(&r, &["--grep", "pgbench_accounts WHERE aid"], 100);
    let kind = |record: &&serde_json::Value| record["record"]["kind"].clone();
    let simple: Vec<_> = records.iter().filter(|r| kind(r) == "query").collect();
    let executes: Vec<_> = records.iter().filter(|r| kind(r) == "execute").collect();
    assert!(simple.len() >= 50, "{}", simple.len());
    assert!(executes.len() >= 50, "{}", executes.len());
    assert_eq!(executes[0]["record"]["params"].as_array().unwrap().len(), 1);

    // A long query cancelled with Ctrl-C (SIGINT to psql): the cancel request reaches the
    // right backend through Rampart's key mapping.
    let mut long = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice@pg-01 dbname=postgres sslmode=require"
        ))
        .args(["-X", "-c", "select pg_sleep(600)"])
        .env("PGPASSWORD", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pg
        .direct("select count(*) from pg_stat_activity where query = 'select pg_sleep(600)' and state = 'active'")
        .trim()
        .eq("1")
    {
        assert!(Instant::now() < deadline, "the query never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(long.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while long.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the cancelled query did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = long.wait_with_output().unwrap();
    assert!(
        text(&out).contains("canceling statement due to user request"),
        "{}",
        text(&out)
    );
}

/// A raw protocol client on a plain loopback connection (allowed by configuration here).
struct Raw(std::net::TcpStream);

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Raw(stream)
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.0.write_all(bytes);
    }

    fn message(&mut self, tag: u8, body: &[u8]) {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        self.send(&out);
    }

    fn startup(&mut self, user: &str) {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for (k, v) in [("user", user), ("database", "postgres")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        self.send(&out);
    }

    /// Everything until the server closes the connection (or the read timeout).
    fn rest(&mut self) -> String {
        use std::io::Read;
        let mut all = Vec::new();
        let _ = self.0.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    }

    /// Logs in with `token` and reads until the first ReadyForQuery.
    fn login(&mut self, token: &str) {
        use std::io::Read;
        self.startup("alice@pg-01");
        let mut password = token.as_bytes().to_vec();
        password.push(0);
        self.message(b'p', &password);
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        // ReadyForQuery ('Z', length 5, status 'I') ends the login.
        while !seen.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
            assert_eq!(
                self.0.read(&mut byte).unwrap(),
                1,
                "closed during login: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.push(byte[0]);
        }
    }
}

#[test]
fn messages_rampart_does_not_understand_oversized_ones_and_stalled_logins_end_the_connection() {
    let Some(pg) = start_postgres() else { return };
    let (r, _server, port) = rampart_with(
        &pg,
        &[
            ("RAMPART_POSTGRES_ALLOW_PLAIN_LOOPBACK", "true"),
            ("RAMPART_POSTGRES_LOGIN_GRACE_TIME", "2s"),
        ],
    );
    let token = token(&r, "1h");

    // A FunctionCall ('F') is not relayed: the session ends with an error naming it.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    raw.message(b'F', &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    let answer = raw.rest();
    assert!(
        answer.contains("does not relay the client message 'F'"),
        "{answer:?}"
    );

    // A message claiming 1 GiB is refused before anything is allocated for it.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    raw.send(&[b'Q', 0x40, 0, 0, 0]);
    let answer = raw.rest();
    assert!(answer.contains("invalid length"), "{answer:?}");

    // A startup packet of absurd length ends the connection at once.
    let mut raw = Raw::connect(port);
    raw.send(&[0x7f, 0xff, 0xff, 0xff]);
    assert!(raw.rest().contains("invalid startup packet length"));

    // A client that never finishes logging in is closed after the grace time.
    let mut stalled = Raw::connect(port);
    stalled.send(&[0, 0, 0]);
    // Closed by Rampart (end of stream), not by the test's 60 s read timeout.
    let mut rest = Vec::new();
    let closed = std::io::Read::read_to_end(&mut stalled.0, &mut rest);
    assert!(
        closed.is_ok(),
        "the stalled login was never closed: {closed:?}"
    );

    // Live enforcement: a killed session ends with an error the client reads.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    let id = live_session(&r, "postgres");
    r.ok(&[
        "session",
        "kill",
        &id,
        "--reason",
        "stopped by the DBA on duty",
    ]);
    let answer = raw.rest();
    assert!(
        answer.contains("terminating connection: ")
            && answer.contains("stopped by the DBA on duty"),
        "{answer:?}"
    );
}

#[test]
fn psql_copy_moves_rows_both_ways_through_rampart_and_each_copy_is_one_record() {
    let Some(pg) = start_postgres() else { return };
    let (r, _server, port) = rampart_for(&pg);
    let token = token(&r, "1h");
    let dir = tempfile::tempdir().unwrap();
    let (rows_in, rows_out) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
    std::fs::write(&rows_in, "1,first\n2,second\n").unwrap();
    let copy_in = format!("\\copy items from '{}' csv", rows_in.display());
    let copy_out = format!("\\copy items to '{}' csv", rows_out.display());
    let out = psql(
        port,
        &token,
        "require",
        &[
            "create table items (id int, name text)",
            &copy_in,
            &copy_out,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // In: the rows are on the target. Out: the file holds what the target sent.
    assert_eq!(pg.direct("select count(*) from items").trim(), "2");
    assert_eq!(
        std::fs::read_to_string(&rows_out).unwrap(),
        "1,first\n2,second\n"
    );
    let copies = queries_until(&r, &["--grep", "(?i)^copy"], 2);
    let statements: Vec<String> = copies
        .iter()
        .map(|q| q["record"]["statement"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(
        statements.iter().any(|s| s.contains("from stdin")),
        "{copies:?}"
    );
    assert!(
        statements.iter().any(|s| s.contains("to stdout")),
        "{copies:?}"
    );
}

/// Under a grant without recording a statement's row is its only evidence: it is committed
/// (through the node's statement writer, with other sessions' rows) before the answer is
/// passed back, and every statement is in the query log.
#[test]
fn without_a_recording_every_statement_is_logged_before_its_answer() {
    let Some(pg) = start_postgres() else { return };
    let (r, _server, port) = rampart_for(&pg);
    let grants = r.json(&["grant", "list"]);
    let id = grants[0]["id"].as_str().unwrap().to_owned();
    r.ok(&["grant", "set", "--recording", "false", &id]);
    let token = token(&r, "1h");

    let out = psql(
        port,
        &token,
        "require",
        &["select 6 * 7 as answer", "select 'unrecorded' as word"],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("42") && shown.contains("unrecorded"),
        "{shown}"
    );
    let records = queries_until(&r, &["--user", "alice"], 2);
    let statements: Vec<&str> = records
        .iter()
        .map(|q| q["record"]["statement"].as_str().unwrap())
        .collect();
    assert!(
        statements.contains(&"select 6 * 7 as answer")
            && statements.contains(&"select 'unrecorded' as word"),
        "{records:?}"
    );
}
