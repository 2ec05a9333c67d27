//! Password logins cannot stall relayed sessions: Argon2id runs off the async worker threads,
//! behind a limit sized to the cores (issue 12 item 1, issue 14 item 4).
//!
//! The server runs with one async worker thread (`TOKIO_WORKER_THREADS=1`) and slow password
//! hashes (`RAMPART_TEST_ARGON2_PASSES`), so that a check made on that thread would hold every
//! session for seconds. The tests assert on ordering and counts only: what an open session and
//! a key login got done after the passwords were sent and before the first of them was answered.

use crate::availability::Shell;
use crate::ssh::Lab;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Argon2id passes for the test's hashes: a check takes seconds instead of tens of
/// milliseconds (about 3 s on a 2-core test machine, where a key login takes well under one).
const SLOW_PASSES: &str = "40";
const BOB_PASSWORD: &str = "bob-password-1234";
/// Echoes an open session must complete while the first password check runs. A check on the
/// only async worker thread lets none (or one, between two checks) through.
const MIN_ECHOES: usize = 5;

/// The lab, with one async worker thread and slow hashes, and bob, whose password hash is slow.
fn slow_hashing_lab() -> Option<Lab> {
    let lab = Lab::start_with_env(&[
        ("TOKIO_WORKER_THREADS", "1"),
        (rampart_store::passwords::PASSES_ENV, SLOW_PASSES),
    ])?;
    lab.r.ok(&["user", "add", "bob"]);
    let out = rampart_testkit::output_with_input(
        lab.r
            .command(&["user", "password", "bob"])
            .env(rampart_store::passwords::PASSES_ENV, SLOW_PASSES),
        BOB_PASSWORD.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(lab)
}

/// Types one key at a time into `shell`, each after the echo of the one before, until `stop`;
/// returns how many echoes came back before `stop` was set.
fn echo_until(shell: &mut Shell, stop: &AtomicBool) -> usize {
    const KEY: char = '%';
    let count = |shell: &Shell| shell.text().matches(KEY).count();
    let mut echoed = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    'typing: while !stop.load(Ordering::SeqCst) {
        let before = count(shell);
        shell.type_text("%");
        loop {
            if count(shell) > before {
                if !stop.load(Ordering::SeqCst) {
                    echoed += 1;
                }
                continue 'typing;
            }
            if stop.load(Ordering::SeqCst) {
                break 'typing;
            }
            assert!(Instant::now() < deadline, "no echo and no answer");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Clear the typed line.
    shell.type_text("\x15");
    echoed
}

/// A russh client that trusts any host key.
struct Client;

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A connection through key exchange and a refused `none` attempt: all that is left of a
/// password login is sending the password. From 127.0.0.4, so that the unauthenticated
/// connections do not count against the key login's address.
async fn ready_for_a_password(server: SocketAddr) -> russh::client::Handle<Client> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.4:0".parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let config = Arc::new(russh::client::Config::default());
    let mut handle = russh::client::connect_stream(config, stream, Client)
        .await
        .unwrap();
    let none = handle.authenticate_none("bob").await.unwrap();
    assert!(!none.success());
    handle
}

/// What happened while `logins` password logins for bob (with `password`) were in flight:
/// started at once on connections that had everything else done, until the first answer.
struct InFlight {
    /// Echoes the open session completed before the first answer.
    echoes: usize,
    /// Whether a key login, started with the passwords, finished before the first answer.
    key_login_first: bool,
    /// Whether the first answer accepted the password.
    first_accepted: bool,
}

fn passwords_in_flight(lab: &Lab, shell: &mut Shell, logins: usize, password: &str) -> InFlight {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = lab.server.ssh;
    let mut handles = runtime.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..logins {
            handles.push(ready_for_a_password(server).await);
        }
        handles
    });
    let answered = Arc::new(AtomicBool::new(false));
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    for mut handle in handles.drain(..) {
        let answered = answered.clone();
        let first = first_tx.clone();
        let password = password.to_owned();
        runtime.spawn(async move {
            let result = handle.authenticate_password("bob", password).await;
            let accepted = matches!(result, Ok(ref r) if r.success());
            if !answered.swap(true, Ordering::SeqCst) {
                let _ = first.send(accepted);
            }
            // Keep the connection until the runtime goes.
            std::future::pending::<()>().await;
        });
    }
    // The passwords are on their way: a key login, and the open session's echo.
    let key_login_first = std::thread::scope(|scope| {
        let key_login = scope.spawn(|| {
            let out = lab.ssh(&lab.direct(), "echo key-login", b"");
            let first = !answered.load(Ordering::SeqCst);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "key-login\n",
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            first
        });
        let echoes = echo_until(shell, &answered);
        (key_login.join().unwrap(), echoes)
    });
    let first_accepted = first_rx.recv_timeout(Duration::from_secs(120)).unwrap();
    runtime.shutdown_timeout(Duration::from_secs(5));
    eprintln!(
        "{logins} password logins in flight: {} echoes, key login first: {}",
        key_login_first.1, key_login_first.0
    );
    InFlight {
        echoes: key_login_first.1,
        key_login_first: key_login_first.0,
        first_accepted,
    }
}

#[test]
fn four_password_logins_in_flight_hold_an_open_sessions_echo_no_more_than_a_key_login() {
    let Some(lab) = slow_hashing_lab() else {
        return;
    };
    let mut shell = Shell::open(&lab);
    shell.echoes(41);
    let seen = passwords_in_flight(&lab, &mut shell, 4, BOB_PASSWORD);
    assert!(seen.first_accepted, "bob's password logs him in");
    assert!(
        seen.key_login_first,
        "a key login started with four password logins finished before any of them"
    );
    assert!(
        seen.echoes >= MIN_ECHOES,
        "the open session echoed {} keys while the first password was checked",
        seen.echoes
    );
}

#[test]
fn ten_wrong_passwords_at_once_do_not_stop_an_open_sessions_output() {
    let Some(lab) = slow_hashing_lab() else {
        return;
    };
    let mut shell = Shell::open(&lab);
    shell.echoes(41);
    let seen = passwords_in_flight(&lab, &mut shell, 10, "not-bobs-password-4711");
    assert!(!seen.first_accepted);
    assert!(
        seen.echoes >= MIN_ECHOES,
        "the open session echoed {} keys while the first wrong password was checked",
        seen.echoes
    );
}
