//! Staying available under hostile load, and leaving nothing behind when a client dies: dead
//! SSH clients and closed browser terminals end their sessions and close the target side.

use crate::ssh::Lab;
use rampart_testkit::require_tool;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// Polls `check` every 200 ms until it returns `Some`, for at most a minute (a loaded 2-core
/// machine is slow, never this slow).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Processes whose command line matches `pattern` (`pgrep -f`).
fn processes_matching(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .arg("-f")
        .arg("--")
        .arg(pattern)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The target sshd's per-connection processes (children of the listening sshd).
fn target_connections(lab: &Lab) -> Vec<String> {
    let out = Command::new("pgrep")
        .arg("-P")
        .arg(lab.target.pid().to_string())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The one session of the lab once it is live (no end yet).
fn live_session(lab: &Lab) -> Value {
    eventually("a live session", || {
        let sessions = lab.r.json(&["session", "list"]);
        let sessions = sessions.as_array().unwrap();
        sessions.iter().find(|s| s["ended_at"].is_null()).cloned()
    })
}

/// Waits until session `id` has ended; returns its record.
fn ended_session(lab: &Lab, id: &Value) -> Value {
    eventually("the session to end", || {
        let sessions = lab.r.json(&["session", "list"]);
        sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["id"] == id && s["ended_at"].is_string())
            .cloned()
    })
}

#[test]
fn a_killed_ssh_client_ends_its_session_and_the_command_on_the_target() {
    if require_tool("pgrep").is_none() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    // The command on the target is `sleep` under a unique name (longer than any wait here, so
    // it cannot end on its own while the test looks).
    let marker = format!("rampart-dead-ssh-client-{}", std::process::id());
    let on_target = format!("^{marker} 90");
    let mut client = lab
        .ssh_command(&lab.direct())
        .arg(format!("exec -a {marker} sleep 90"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let session = live_session(&lab);
    eventually("the command running on the target", || {
        (!processes_matching(&on_target).is_empty()).then_some(())
    });
    assert_eq!(target_connections(&lab).len(), 1, "one connection to sshd");

    // The client dies mid-command (kill -9: no goodbye on the wire, only the socket closing).
    client.kill().unwrap();
    client.wait().unwrap();

    let ended = ended_session(&lab, &session["id"]);
    assert_eq!(ended["end_reason"], "client disconnected", "{ended}");
    eventually("the target connection to close", || {
        target_connections(&lab).is_empty().then_some(())
    });
    // The command was sent a hang-up. OpenSSH refuses signals in root's sessions (they run
    // without post-authentication privilege separation), so only another account shows it.
    if lab.login != "root" {
        eventually("the command on the target to end", || {
            processes_matching(&on_target).is_empty().then_some(())
        });
    }
    for pid in processes_matching(&on_target) {
        let _ = Command::new("kill").arg(pid).status();
    }
}

#[test]
fn a_closed_browser_terminal_ends_its_session_and_the_shell_on_the_target() {
    if require_tool("pgrep").is_none() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    let client = lab.server.client();
    let cookie = client.login_cookie("alice", "alice-password-1");
    let path = format!("/api/v1/terminal?account={}@web-01", lab.login);
    let (answer, mut socket) = client.websocket(
        &path,
        &[("cookie", cookie.as_str()), ("origin", client.origin())],
    );
    assert_eq!(answer.status, 101, "{}", answer.text());

    let marker = format!("rampart-closed-terminal-{}", std::process::id());
    let on_target = format!("-c sleep 90; echo {marker}");
    socket.send_binary(format!("sh -c 'sleep 90; echo {marker}'\r").as_bytes());
    let session = live_session(&lab);
    eventually("the command running on the target", || {
        (!processes_matching(&on_target).is_empty()).then_some(())
    });
    assert_eq!(target_connections(&lab).len(), 1, "one connection to sshd");

    // The browser goes away (its tab closed): a close frame, then the connection.
    socket.close();

    let ended = ended_session(&lab, &session["id"]);
    assert_eq!(ended["end_reason"], "client disconnected", "{ended}");
    eventually("the target's shell and connection to go", || {
        (processes_matching(&on_target).is_empty() && target_connections(&lab).is_empty())
            .then_some(())
    });
}

/// An interactive shell through Rampart (`ssh -tt`), with everything it printed so far.
pub(crate) struct Shell {
    child: std::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Shell {
    pub(crate) fn open(lab: &Lab) -> Self {
        let mut child = Command::new("ssh")
            .arg("-tt")
            .arg("-F")
            .arg(&lab.client_config)
            .args(["-p", &lab.port()])
            .arg(format!("{}@127.0.0.1", lab.direct()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = stdout.read(&mut buffer) {
                sink.lock().unwrap().extend_from_slice(&buffer[..read]);
            }
        });
        Self { child, output }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    pub(crate) fn type_text(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Types `echo $((N+1))` and waits for the typed keys to be echoed and for N+1, which only
    /// the shell's answer contains.
    pub(crate) fn echoes(&mut self, n: u32) {
        let typed = format!("echo $(({n}+1))");
        self.type_text(&format!("{typed}\r"));
        let answer = format!("{}\r\n", n + 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if text.contains(&typed) && text.contains(&answer) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the shell did not echo {typed:?} and answer {answer:?}: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to `server` from the loopback address `source` (all of 127/8 is local).
async fn connect_from(source: IpAddr, server: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(source, 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(20), socket.connect(server))
        .await
        .ok()?
        .ok()
}

/// Reads until the peer closes the connection (or `stop` is set); true if it was the peer.
async fn until_closed(stream: &mut TcpStream, stop: &mut watch::Receiver<bool>) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            },
            _ = stop.wait_for(|stop| *stop) => return false,
        }
    }
}

/// A connection that never sends anything, reopened a second after the server closes it,
/// until `stop`.
async fn silent_flooder(source: IpAddr, server: SocketAddr, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Some(mut stream) = connect_from(source, server).await
            && !until_closed(&mut stream, &mut stop).await
        {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sends a client banner and then nothing, stalling the key exchange. Returns whether the
/// server admitted it (sent its banner) and whether the server closed it before `stop`.
async fn stalled_key_exchange(
    source: IpAddr,
    server: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> (bool, bool) {
    let Some(mut stream) = connect_from(source, server).await else {
        return (false, false);
    };
    // A connection the kernel completed while the listen queue was full waits for its banner
    // until the server's SYN-ACK retries run out: it was never admitted.
    let mut banner = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut banner)).await;
    if !matches!(read, Ok(Ok(read)) if read > 0) {
        return (false, true);
    }
    let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.9 stall\r\n").await;
    (true, until_closed(&mut stream, &mut stop).await)
}

#[test]
fn a_pre_authentication_flood_leaves_logins_sessions_and_https_working() {
    if require_tool("prlimit").is_none() {
        return;
    }
    // The process gets 1,024 descriptors, fewer than the flood's 2,200 connections.
    let Some(lab) =
        Lab::start_with_env_and_nofile(&[("RAMPART_SSH_LOGIN_GRACE_TIME", "3s")], Some(1024))
    else {
        return;
    };
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    let mut shell = Shell::open(&lab);
    shell.echoes(41_000);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let server = lab.server.ssh;
    let silent_source: IpAddr = "127.0.0.2".parse().unwrap();
    let stalling_source: IpAddr = "127.0.0.3".parse().unwrap();
    let stalled: Vec<_> = (0..200)
        .map(|_| {
            runtime.spawn(stalled_key_exchange(
                stalling_source,
                server,
                stopped.clone(),
            ))
        })
        .collect();
    for _ in 0..2000 {
        runtime.spawn(silent_flooder(silent_source, server, stopped.clone()));
    }

    // During the flood: a real key login, the open session's echo, and an HTTPS login.
    let out = lab.ssh(&lab.direct(), "echo logged-in-during-the-flood", b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "logged-in-during-the-flood\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    shell.echoes(42_000);
    let login = lab.server.client().request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&serde_json::json!({ "username": "alice", "password": "alice-password-1" })),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    assert_eq!(lab.server.get("/readyz").0, 200);

    // Connections stalled in key exchange are closed by the server (the grace time), not
    // kept until the flood gives up.
    let mut admitted = 0;
    runtime.block_on(async {
        for task in stalled {
            let (was_admitted, closed_by_server) =
                tokio::time::timeout(Duration::from_secs(60), task)
                    .await
                    .expect("a stalled connection still open a minute later")
                    .unwrap();
            assert!(closed_by_server);
            admitted += usize::from(was_admitted);
        }
    });
    assert!(admitted > 0, "some stalled connections were admitted");

    stop.send(true).unwrap();
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// A TLS connection that sends the start of a ClientHello and then nothing (slowloris),
/// reopened a second after the server closes it, until `stop`.
async fn half_open_tls(source: IpAddr, server: SocketAddr, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Some(mut stream) = connect_from(source, server).await {
            // A handshake record of 512 bytes announced, 2 sent.
            let _ = stream
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
                .await;
            if !until_closed(&mut stream, &mut stop).await {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[test]
fn half_open_tls_connections_from_one_address_do_not_keep_others_out() {
    let Some(lab) = Lab::start() else { return };
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    for _ in 0..1100 {
        runtime.spawn(half_open_tls(attacker, lab.server.http, stopped.clone()));
    }
    // Let the flood take what it can (every connection made at least once).
    std::thread::sleep(Duration::from_secs(3));

    // Others (127.0.0.1) are still served: readiness probes and a portal login.
    let client = lab.server.client();
    for _ in 0..5 {
        let response = client.request("GET", "/readyz", &[], None);
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let login = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&serde_json::json!({ "username": "alice", "password": "alice-password-1" })),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    stop.send(true).unwrap();
    runtime.shutdown_timeout(Duration::from_secs(5));
}
