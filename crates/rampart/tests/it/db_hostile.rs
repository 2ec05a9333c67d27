//! Hostile and unlucky clients of the database fronts, with real servers and clients: the
//! lockout of the one authenticator (the same as SSH's and the web's) seen through `psql`,
//! `mariadb` and `redis-cli`; a flood of connections that never log in, bounded by the
//! listeners' cap; and a client that stops reading a big result, which neither grows Rampart's
//! memory nor keeps its session from being killed.

use crate::db_common::{live_session, text};
use rampart_testkit::{Rampart, Server, resident_kib};
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bad tokens before the user is locked (`auth.lockout_threshold`).
const THRESHOLD: &str = "3";

/// What a locked-out user sees: a good token, which worked before, is refused with the very
/// line a wrong token gets; the lock is audited. `login` answers whether the client got in,
/// and what it showed.
fn lockout_refuses_a_good_token_alike(
    r: &Rampart,
    refused: &str,
    login: impl Fn(&str) -> (bool, String),
) {
    let good = r
        .ok(&["db", "token", "create", "--user", "alice", "--ttl", "1h"])
        .trim()
        .to_owned();
    let (ok, shown) = login(&good);
    assert!(ok, "{shown}");
    for _ in 0..3 {
        let (ok, shown) = login("rampartdb_not-a-token");
        assert!(!ok && shown.contains(refused), "{shown}");
    }
    let (ok, shown) = login(&good);
    assert!(!ok, "a locked-out user got in: {shown}");
    assert!(shown.contains(refused), "{shown}");
    let events = r.ok(&["audit", "list", "--kind", "login_locked", "--json"]);
    assert!(events.contains("login_locked"), "{events}");
}

fn shown(out: &Output) -> (bool, String) {
    (out.status.success(), text(out))
}

#[test]
fn a_user_locked_out_by_bad_tokens_is_refused_alike_by_psql_mariadb_and_redis_cli() {
    let lockout = [("RAMPART_AUTH_LOCKOUT_THRESHOLD", THRESHOLD)];
    if let Some(pg) = crate::postgres::start_postgres() {
        let (r, _server, port) = crate::postgres::rampart_with(&pg, &lockout);
        let refused = "password authentication failed for user \"alice@pg-01\"";
        lockout_refuses_a_good_token_alike(&r, refused, |token| {
            shown(&crate::postgres::psql(
                port,
                token,
                "require",
                &["select 1"],
            ))
        });
    }
    if let Some(db) = crate::mysql::start_mariadb() {
        let (r, _server, port) = crate::mysql::rampart_with(&db, &lockout);
        let refused = "Access denied for user 'alice@my-01' (using password: YES)";
        lockout_refuses_a_good_token_alike(&r, refused, |token| {
            shown(&crate::mysql::mariadb(port, token, true, "select 1"))
        });
    }
    if let Some(redis) = crate::redis::start_redis() {
        let (r, _server, port) = crate::redis::rampart_for(&redis, &lockout);
        let refused = "WRONGPASS invalid username-password pair or user is disabled";
        lockout_refuses_a_good_token_alike(&r, refused, |token| {
            let out = crate::redis::run(crate::redis::cli(port, token, true), "PING\n");
            let shown = text(&out);
            (shown.contains("PONG"), shown)
        });
    }
}

/// The cap on connections not logged in, per database listener (`max_unauthenticated`).
const PRE_AUTH_CAP: usize = 256;

/// Whether Rampart closed `stream` (reads what is there; a greeting is not a close).
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Floods `port` with connections that never log in: Rampart holds at most the cap of them
/// (the rest are closed at once, while the held ones wait for a login grace time far away);
/// once the flood goes, `real_client` gets in.
fn a_flood_is_bounded_and_a_real_client_gets_in_after(
    port: u16,
    real_client: impl Fn() -> (bool, String),
) {
    let flood = PRE_AUTH_CAP + 44;
    let mut streams: Vec<TcpStream> = (0..flood)
        .map(|_| {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            stream
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut closed_count = 0;
    while closed_count < flood - PRE_AUTH_CAP {
        assert!(
            Instant::now() < deadline,
            "only {closed_count} of {flood} flood connections were closed"
        );
        closed_count = streams.iter_mut().map(closed).filter(|c| *c).count();
    }
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, shown) = real_client();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{shown}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_flood_of_connections_that_never_log_in_is_bounded_on_each_database_listener() {
    let grace = [
        ("RAMPART_POSTGRES_LOGIN_GRACE_TIME", "10m"),
        ("RAMPART_MYSQL_LOGIN_GRACE_TIME", "10m"),
        ("RAMPART_REDIS_LOGIN_GRACE_TIME", "10m"),
    ];
    if let Some(pg) = crate::postgres::start_postgres() {
        let (r, _server, port) = crate::postgres::rampart_with(&pg, &grace);
        let token = crate::postgres::token(&r, "1h");
        a_flood_is_bounded_and_a_real_client_gets_in_after(port, || {
            shown(&crate::postgres::psql(
                port,
                &token,
                "require",
                &["select 1"],
            ))
        });
    }
    if let Some(db) = crate::mysql::start_mariadb() {
        let (r, _server, port) = crate::mysql::rampart_with(&db, &grace);
        let token = crate::mysql::token(&r, "1h");
        a_flood_is_bounded_and_a_real_client_gets_in_after(port, || {
            shown(&crate::mysql::mariadb(port, &token, true, "select 1"))
        });
    }
    if let Some(redis) = crate::redis::start_redis() {
        let (r, _server, port) = crate::redis::rampart_for(&redis, &grace);
        let token = crate::redis::token(&r);
        a_flood_is_bounded_and_a_real_client_gets_in_after(port, || {
            let out = crate::redis::run(crate::redis::cli(port, &token, true), "PING\n");
            let shown = text(&out);
            (shown.contains("PONG"), shown)
        });
    }
}

/// Waits until session `id` has ended; returns its end reason.
fn ended(r: &Rampart, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sessions = r.json(&["session", "list"]);
        let found = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id && !s["ended_at"].is_null())
            .cloned();
        if let Some(session) = found {
            return session.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "session {id} did not end: {sessions}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A client that asks for a result far bigger than memory allows and then stops reading
/// (stopped with SIGSTOP): Rampart's resident memory stays bounded while the target could
/// go on sending, and `session kill` still ends the session.
fn a_client_that_stops_reading(r: &Rampart, server: &Server, kind: &str, mut client: Command) {
    let baseline = resident_kib(server.pid());
    let mut child = client
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = live_session(r, kind);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // The result is 2 GB; unbounded buffering would pass this bound within a few samples.
    let bound_kib = baseline + 128 * 1024;
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(resident_kib(server.pid()));
        assert!(
            peak < bound_kib,
            "rampart grew from {baseline} KiB to {peak} KiB behind a client that stopped reading"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    r.ok(&["session", "kill", &id, "--reason", "result too big"]);
    let session = ended(r, &id);
    assert!(session.contains("result too big"), "{session}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_client_that_stops_reading_a_big_result_keeps_rampart_bounded_and_its_session_killable() {
    let big = "select repeat('x', 1000) from generate_series(1, 2000000)";
    if let Some(pg) = crate::postgres::start_postgres() {
        let (r, server, port) = crate::postgres::rampart_with(&pg, &[]);
        let token = crate::postgres::token(&r, "1h");
        let mut psql = Command::new("psql");
        psql.arg(format!(
            "host=127.0.0.1 port={port} user=alice@pg-01 dbname=postgres sslmode=require"
        ))
        .args(["-X", "-A", "-t", "-c", big])
        .env("PGPASSWORD", &token);
        a_client_that_stops_reading(&r, &server, "postgres", psql);
    }
    if let Some(db) = crate::mysql::start_mariadb() {
        let (r, server, port) = crate::mysql::rampart_with(&db, &[]);
        let token = crate::mysql::token(&r, "1h");
        let mut mariadb = Command::new("mariadb");
        mariadb
            .arg("--no-defaults")
            .args(["-h", "127.0.0.1", "-P", &port.to_string()])
            .args(["-u", "alice@my-01", "-N", "-B", "--ssl", "--quick"])
            .args([
                "-e",
                "select repeat('x', 1000) from seq_1_to_2000000",
                "appdb",
            ])
            .env("MYSQL_PWD", &token);
        a_client_that_stops_reading(&r, &server, "mysql", mariadb);
    }
}
