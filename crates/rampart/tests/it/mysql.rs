//! The MySQL/MariaDB front end to end: a real MariaDB (mariadb-install-db into a temporary
//! directory, on a loopback port), the real `mariadb` client and mysql-connector-python
//! (prepared statements) through Rampart with a personal database token.

use crate::db_common::{free_port, live_session, queries_until, text, verified_eventually};
use rampart_testkit::{Rampart, Server, files_containing, skip_or_fail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The target account's password: it must never reach the user.
const CANARY: &str = "my-canary-3f9a1c55-never-shown";

/// A MariaDB server of the test's own, on a loopback port.
pub(crate) struct Mariadb {
    child: Child,
    pub(crate) port: u16,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_mariadb() -> Option<Mariadb> {
    start_mariadb_with(None)
}

/// With `tls`: that certificate, and TCP logins only inside TLS (`require_secure_transport`).
pub(crate) fn start_mariadb_with(tls: Option<&crate::db_common::TestCert>) -> Option<Mariadb> {
    rampart_testkit::require_tool("mariadb")?;
    // The server is in /usr/sbin, which a test's PATH may lack.
    let sbin = PathBuf::from("/usr/sbin/mariadbd");
    let mariadbd = if sbin.exists() {
        sbin
    } else {
        rampart_testkit::require_tool("mariadbd")?
    };
    rampart_testkit::require_tool("mariadb-install-db")?;
    let dir = tempfile::Builder::new()
        .prefix("rampart-my")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("sock");
    // A temporary directory of its own: in the shared /tmp another process's clean-up once
    // removed the bootstrap's internal temporary table mid-install.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let root = nix::unistd::geteuid().is_root();
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let init = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--user={user}"))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .output()
        .unwrap();
    assert!(init.status.success(), "mariadb-install-db: {}", text(&init));
    let port = free_port();
    let mut command = Command::new(mariadbd);
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!(
            "--log-error={}",
            dir.path().join("err.log").display()
        ))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--skip-name-resolve",
        ]);
    if root {
        command.arg("--user=root");
    }
    if let Some(cert) = tls {
        command
            .arg(format!("--ssl-cert={}", cert.cert.display()))
            .arg(format!("--ssl-key={}", cert.key.display()))
            .arg("--require-secure-transport=ON");
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = Mariadb {
        child,
        port,
        socket,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !db.direct("select 1").status.success() {
        assert!(Instant::now() < deadline, "MariaDB did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let setup = db.direct(&format!(
        "create database appdb; \
         create user 'app'@'127.0.0.1' identified by '{CANARY}'; \
         grant all on *.* to 'app'@'127.0.0.1'"
    ));
    assert!(setup.status.success(), "{}", text(&setup));
    Some(db)
}

impl Mariadb {
    /// A query straight to the server as root over its Unix socket, for checks.
    pub(crate) fn direct(&self, sql: &str) -> Output {
        Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .unwrap()
    }
}

/// Rampart with alice, the asset my-01 (its mysql endpoint), the vaulted `app` account and a
/// `mysql:connect` grant; serving with the MySQL listener on.
pub(crate) fn rampart_with(db: &Mariadb, env: &[(&str, &str)]) -> (Rampart, Server, u16) {
    crate::db_common::rampart_for_database("mysql", "my-01", db.port, "app", CANARY, env)
}

pub(crate) fn token(r: &Rampart, ttl: &str) -> String {
    r.ok(&["db", "token", "create", "--user", "alice", "--ttl", ttl])
        .trim()
        .to_owned()
}

/// The `mariadb` client through Rampart (`ssl`: with `--ssl`, else `--skip-ssl`).
pub(crate) fn mariadb(port: u16, password: &str, ssl: bool, sql: &str) -> Output {
    Command::new("mariadb")
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &port.to_string()])
        .args(["-u", "alice@my-01", "-N", "-B", "--connect-timeout=30"])
        .arg(if ssl { "--ssl" } else { "--skip-ssl" })
        .args(["-e", sql, "appdb"])
        .env("MYSQL_PWD", password)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The venv's Python with mysql-connector-python (`.ci/run` installs it), if there is one.
fn python_with_connector() -> Option<PathBuf> {
    let venv = std::env::var_os("RAMPART_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/rampart-venv"))
        })?;
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import mysql.connector"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        skip_or_fail(
            "mysql-connector-python not found in the venv (PyPI mysql-connector-python, see .ci/run)",
        );
        return None;
    }
    Some(python)
}

const CONNECTOR_SCRIPT: &str = r#"
import sys, mysql.connector
conn = mysql.connector.connect(host="127.0.0.1", port=int(sys.argv[1]), user="alice@my-01",
    password=sys.argv[2], database="appdb", ssl_disabled=False, connection_timeout=30)
cur = conn.cursor(prepared=True)
cur.execute("insert into notes values (?, ?)", (7, "prepared hello"))
conn.commit()
cur.execute("select body from notes where id = ?", (7,))
print("ROWS", cur.fetchall())
cur.close()
conn.close()
"#;

#[test]
fn mariadb_and_a_python_driver_through_rampart_are_logged_per_statement_without_the_password() {
    let Some(db) = start_mariadb() else { return };
    let (r, server, port) = rampart_with(&db, &[]);
    let token = token(&r, "1h");

    let out = mariadb(
        port,
        &token,
        true,
        "select 41 + 1 as answer; create table notes (id int, body text); \
         insert into notes values (1, 'hello')",
    );
    let mut shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("42"), "{shown}");
    // The statements really ran on the target, as the vaulted account.
    let direct = db.direct("select body from appdb.notes");
    assert_eq!(String::from_utf8_lossy(&direct.stdout).trim(), "hello");

    // A multi-statement query (one COM_QUERY) is one record with each result.
    let out = mariadb(
        port,
        &token,
        true,
        "delimiter //\nselect current_user(); select count(*) from notes//",
    );
    shown.push_str(&text(&out));
    assert!(out.status.success(), "{shown}");
    assert!(text(&out).contains("app@127.0.0.1"), "{}", text(&out));

    let records = queries_until(&r, &["--user", "alice"], 4);
    let insert = records
        .iter()
        .find(|q| q["record"]["statement"] == "insert into notes values (1, 'hello')")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(insert["record"]["status"][0], "OK, 1 row affected");
    assert_eq!(insert["target"], "app@my-01");
    let multi = records
        .iter()
        .find(|q| q["record"]["statement"] == "select current_user(); select count(*) from notes")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(
        multi["record"]["status"],
        serde_json::json!(["1 row", "1 row"])
    );
    let table = r.ok(&["audit", "queries", "--asset", "my-01"]);
    assert!(table.contains("select 41 + 1 as answer"), "{table}");

    // An error is recorded with the target's message; the user sees it too.
    let out = mariadb(port, &token, true, "select * from no_such_table");
    assert!(!out.status.success());
    assert!(text(&out).contains("no_such_table"), "{}", text(&out));
    let failed = queries_until(&r, &["--grep", "no_such_table"], 1);
    assert!(
        failed[0]["record"]["error"]
            .as_str()
            .unwrap()
            .contains("1146"),
        "{failed:?}"
    );

    // A password set through Rampart is masked in the record.
    let out = mariadb(
        port,
        &token,
        true,
        "create user 'temp'@'localhost' identified by 'temp-secret-77'",
    );
    assert!(out.status.success(), "{}", text(&out));
    let created = queries_until(&r, &["--grep", "create user"], 1);
    let statement = created[0]["record"]["statement"].as_str().unwrap();
    assert!(
        statement.contains("'***'") && !statement.contains("temp-secret-77"),
        "{statement}"
    );

    // mysql-connector-python with prepared statements (caching_sha2 full authentication in
    // TLS): the bound parameters are recorded.
    if let Some(python) = python_with_connector() {
        let out = Command::new(python)
            .args(["-c", CONNECTOR_SCRIPT, &port.to_string(), &token])
            .output()
            .unwrap();
        shown.push_str(&text(&out));
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("prepared hello"), "{}", text(&out));
        let executed = queries_until(&r, &["--grep", "^insert into notes values \\(\\?"], 1);
        assert_eq!(executed[0]["record"]["kind"], "execute", "{executed:?}");
        assert_eq!(
            executed[0]["record"]["params"],
            serde_json::json!(["7", "prepared hello"])
        );
    }

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
fn wrong_expired_and_revoked_tokens_and_plain_connections_are_refused_alike_by_the_mysql_front() {
    let Some(db) = start_mariadb() else { return };
    let (r, _server, port) = rampart_with(&db, &[("RAMPART_AUTH_LOCKOUT_THRESHOLD", "6")]);
    let refused = "Access denied for user 'alice@my-01' (using password: YES)";
    let wrong = mariadb(port, "rampartdb_not-a-token", true, "select 1");
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains(refused), "{}", text(&wrong));

    let good = token(&r, "1h");
    let ok = mariadb(port, &good, true, "select 1");
    assert!(ok.status.success(), "{}", text(&ok));
    let listed = r.json(&["db", "token", "list", "--user", "alice"]);
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    r.ok(&["db", "token", "revoke", &id]);
    let revoked = mariadb(port, &good, true, "select 1");
    assert!(!revoked.status.success());
    assert!(text(&revoked).contains(refused), "{}", text(&revoked));

    let short = token(&r, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let expired = mariadb(port, &short, true, "select 1");
    assert!(!expired.status.success());
    assert!(text(&expired).contains(refused), "{}", text(&expired));

    // TLS is required by default.
    let fresh = token(&r, "1h");
    let plain = mariadb(port, &fresh, false, "select 1");
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("Rampart requires TLS"),
        "{}",
        text(&plain)
    );
    assert!(mariadb(port, &fresh, true, "select 1").status.success());
}

/// A hand-written client over a plain loopback connection (allowed in this test).
struct Raw(TcpStream);

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Raw(stream)
    }

    fn packet(&mut self, seq: u8, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut frame = len.to_le_bytes()[..3].to_vec();
        frame.push(seq);
        frame.extend_from_slice(payload);
        self.0.write_all(&frame).unwrap();
    }

    fn read_packet(&mut self) -> Vec<u8> {
        let mut header = [0u8; 4];
        self.0.read_exact(&mut header).unwrap();
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut payload = vec![0u8; len];
        self.0.read_exact(&mut payload).unwrap();
        payload
    }

    /// Greeting, handshake response (no TLS), the clear-password switch, the token, OK.
    fn login(&mut self, token: &str) {
        let greeting = self.read_packet();
        assert_eq!(greeting[0], 10);
        let caps: u32 = 0x0008_0000 | 0x8000 | 0x200 | 0x1 | 0x0002_0000;
        let mut hello = caps.to_le_bytes().to_vec();
        hello.extend_from_slice(&(1u32 << 24).to_le_bytes());
        hello.push(45);
        hello.extend_from_slice(&[0; 23]);
        hello.extend_from_slice(b"alice@my-01\0");
        hello.push(0);
        hello.extend_from_slice(b"mysql_native_password\0");
        self.packet(1, &hello);
        let switch = self.read_packet();
        assert!(
            switch.starts_with(b"\xfemysql_clear_password\0"),
            "{switch:?}"
        );
        let mut password = token.as_bytes().to_vec();
        password.push(0);
        self.packet(3, &password);
        let ok = self.read_packet();
        assert_eq!(ok[0], 0, "{}", String::from_utf8_lossy(&ok));
    }

    /// Everything until Rampart closes the connection, as text.
    fn rest(&mut self) -> String {
        let mut rest = Vec::new();
        let _ = self.0.read_to_end(&mut rest);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[test]
fn mysql_commands_rampart_does_not_relay_bad_packets_and_live_kills_end_the_session_with_an_error()
{
    let Some(db) = start_mariadb() else { return };
    let (r, _server, port) = rampart_with(
        &db,
        &[
            ("RAMPART_MYSQL_ALLOW_PLAIN_LOOPBACK", "true"),
            ("RAMPART_MYSQL_LOGIN_GRACE_TIME", "2s"),
        ],
    );
    let token = token(&r, "1h");

    // COM_CHANGE_USER would change who is logged in on the target: not relayed.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    raw.packet(0, b"\x11root\0\0");
    let answer = raw.rest();
    assert!(
        answer.contains("does not relay COM_CHANGE_USER"),
        "{answer:?}"
    );

    // A query packet claiming 16 MiB (a continued packet) is refused before it is read.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    raw.0.write_all(&[0xff, 0xff, 0xff, 0, 0x03]).unwrap();
    let answer = raw.rest();
    assert!(answer.contains("16 MiB"), "{answer:?}");

    // A truncated prepared-statement execution ends the session with an error.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    raw.packet(0, b"\x16select ?");
    // The prepare answer: OK, one parameter definition, EOF.
    let prepared = raw.read_packet();
    assert_eq!(prepared[0], 0);
    raw.read_packet();
    raw.read_packet();
    let id = &prepared[1..5];
    let mut execute = vec![0x17];
    execute.extend_from_slice(id);
    execute.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0x08]);
    raw.packet(0, &execute);
    let answer = raw.rest();
    assert!(answer.contains("malformed COM_STMT_EXECUTE"), "{answer:?}");

    // An oversized or truncated login packet gets a clear error.
    let mut raw = Raw::connect(port);
    raw.read_packet();
    raw.0.write_all(&[0xa0, 0x86, 0x01, 1]).unwrap();
    assert!(raw.rest().contains("over the limit"));
    let mut raw = Raw::connect(port);
    raw.read_packet();
    raw.packet(1, &[0x0f, 0xa2, 0x0a, 0, 0, 0, 0, 1, 45]);
    assert!(raw.rest().contains("malformed handshake response"));

    // A client that never finishes logging in is closed after the grace time.
    let mut stalled = Raw::connect(port);
    stalled.0.write_all(&[0, 0]).unwrap();
    let mut rest = Vec::new();
    let closed = stalled.0.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the stalled login was never closed: {closed:?}"
    );

    // Live enforcement: a killed session ends with an error packet the client reads.
    let mut raw = Raw::connect(port);
    raw.login(&token);
    let id = live_session(&r, "mysql");
    r.ok(&[
        "session",
        "kill",
        &id,
        "--reason",
        "stopped by the DBA on duty",
    ]);
    let answer = raw.rest();
    assert!(
        answer.contains("Connection was killed by Rampart")
            && answer.contains("stopped by the DBA on duty"),
        "{answer:?}"
    );
}

/// The `mariadb` client's whole output shows Rampart's line, never a protocol complaint.
fn assert_shows_rampart_line(out: &Output, line: &str) {
    let shown = text(out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains(line), "{shown}");
    assert!(!shown.to_lowercase().contains("malformed"), "{shown}");
    assert!(!shown.contains("Lost connection"), "{shown}");
    assert!(!shown.contains(CANARY), "{shown}");
}

#[test]
fn a_target_that_refuses_the_vaulted_password_or_is_stopped_shows_rampart_s_line_in_the_mariadb_client()
 {
    let Some(db) = start_mariadb() else { return };
    let (r, _server, port) = rampart_with(&db, &[]);
    let token = token(&r, "1h");
    assert!(mariadb(port, &token, true, "select 1").status.success());

    // The vaulted password no longer works on the target.
    let changed = db.direct("alter user 'app'@'127.0.0.1' identified by 'changed-behind-rampart'");
    assert!(changed.status.success(), "{}", text(&changed));
    let out = mariadb(port, &token, true, "select 1");
    assert_shows_rampart_line(&out, "the target login to app@my-01 failed");
    assert!(
        text(&out).contains("Access denied for user 'app'"),
        "{}",
        text(&out)
    );

    // The target is not running at all.
    let target = format!("target 127.0.0.1:{} is unreachable", db.port);
    drop(db);
    let out = mariadb(port, &token, true, "select 1");
    assert_shows_rampart_line(&out, &target);
}
