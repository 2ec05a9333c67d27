//! Telnet devices through the SSH front, end to end: a stock OpenSSH client in a real terminal
//! (tmux) through `rampart serve` to Debian's `telnetd` (inetutils) on loopback, which runs the
//! real `/bin/login` for the `rampart-target` account `.ci/run` creates; and a scripted fake
//! device (a TCP server in this test) for unusual prompts, a device that echoes the password, a
//! refused login and a device that never asks.

use super::BIN;
use super::ssh::{Terminal, text};
use rampart_testkit::{
    PASSWORD_TARGET_PASSWORD, PASSWORD_TARGET_USER, Rampart, Server, files_containing,
    output_with_input, require_password_target_user, require_tool, skip_or_fail, ssh_keygen,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Debian's `telnetd` on a loopback port: this thread accepts each connection and runs
/// `telnetd` on it, inetd style (the socket is its standard input and output).
struct Telnetd {
    port: u16,
    stop: Arc<AtomicBool>,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Telnetd {
    fn start() -> Option<Self> {
        let telnetd = require_tool("telnetd")?;
        if !require_password_target_user() {
            return None;
        }
        // telnetd runs /bin/login, which only root may run for another account.
        let uid = Command::new("id").arg("-u").output().unwrap();
        if text(&uid.stdout).trim() != "0" {
            skip_or_fail("telnetd's /bin/login needs root (CI runs as root)");
            return None;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let children = Arc::new(Mutex::new(Vec::new()));
        let (stopping, spawned) = (stop.clone(), children.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let socket: OwnedFd = stream.into();
                        let output = socket.try_clone().unwrap();
                        let child = Command::new(&telnetd)
                            .stdin(Stdio::from(socket))
                            .stdout(Stdio::from(output))
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap();
                        spawned.lock().unwrap().push(child);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Some(Self {
            port,
            stop,
            children,
        })
    }
}

impl Drop for Telnetd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for child in self.children.lock().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Rampart with alice (a key), an OpenSSH client configuration, and whatever assets a test
/// adds.
struct Lab {
    r: Rampart,
    server: Option<Server>,
    client_config: PathBuf,
}

impl Lab {
    fn new() -> Option<Self> {
        for tool in ["ssh", "ssh-keygen", "tmux"] {
            require_tool(tool)?;
        }
        let r = Rampart::new(BIN);
        let dir = r.scratch().to_path_buf();
        let (alice_key, alice_pub) = ssh_keygen(&dir, "alice", "ed25519", "");
        r.ok(&["user", "add", "alice", "--key", alice_pub.to_str().unwrap()]);
        let client_config = dir.join("ssh_config");
        std::fs::write(
            &client_config,
            format!(
                "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  \
                 LogLevel ERROR\n  IdentityFile {}\n  IdentitiesOnly yes\n  ConnectTimeout 30\n",
                alice_key.display()
            ),
        )
        .unwrap();
        Some(Self {
            r,
            server: None,
            client_config,
        })
    }

    /// A Telnet asset on `port` with the account `login` (its password vaulted), granted to
    /// alice.
    fn add_device(&self, asset: &str, port: u16, login: &str, password: &str) {
        self.r.ok(&[
            "asset",
            "add",
            asset,
            "--host",
            "127.0.0.1",
            "--endpoint",
            &format!("telnet:{port}"),
        ]);
        self.r.ok_with_stdin(
            &[
                "account",
                "add",
                &format!("{login}@{asset}"),
                "--password-stdin",
            ],
            format!("{password}\n").as_bytes(),
        );
        self.r
            .ok(&["grant", "add", "--user", "alice", "--asset", asset]);
    }

    fn serve(&mut self) {
        // A short answer timeout: the silent device's login gives up quickly.
        self.server = Some(
            self.r
                .serve_with_env(&[("RAMPART_SSH_TARGET_ANSWER_TIMEOUT", "20s")]),
        );
    }

    fn port(&self) -> String {
        self.server.as_ref().unwrap().ssh.port().to_string()
    }

    /// A terminal running `ssh -tt alice@ACCOUNT@ASSET@bastion`.
    fn terminal(&self, target: &str) -> Terminal {
        Terminal::start(&format!(
            "ssh -F {} -p {} -tt alice@{target}@127.0.0.1",
            self.client_config.display(),
            self.port(),
        ))
    }

    /// `ssh -T alice@ACCOUNT@ASSET@bastion` with nothing to say (a shell without a terminal).
    fn ssh_without_terminal(&self, target: &str) -> std::process::Output {
        output_with_input(
            Command::new("ssh")
                .arg("-F")
                .arg(&self.client_config)
                .args(["-p", &self.port(), "-T"])
                .arg(format!("alice@{target}@127.0.0.1")),
            b"",
        )
    }

    fn sessions(&self) -> Vec<Value> {
        let mut sessions = Vec::new();
        for _ in 0..300 {
            sessions = self
                .r
                .json(&["session", "list"])
                .as_array()
                .unwrap()
                .clone();
            if sessions.iter().all(|s| s["ended_at"].is_string()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sessions
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.r
            .json(&["audit", "list", "--limit", "100000"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    }

    fn wait_until_closed(terminal: &Terminal) {
        for _ in 0..300 {
            if !terminal.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the terminal never closed; it shows:\n{}",
            terminal.screen()
        );
    }
}

fn prompt_lines(screen: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.trim_end().ends_with(['$', '#']))
        .count()
}

#[test]
fn a_shell_on_debian_telnetd_is_logged_in_with_the_vaulted_password_negotiated_and_recorded() {
    let Some(mut lab) = Lab::new() else { return };
    let Some(telnetd) = Telnetd::start() else {
        return;
    };
    lab.add_device(
        "switch-01",
        telnetd.port,
        PASSWORD_TARGET_USER,
        PASSWORD_TARGET_PASSWORD,
    );
    lab.serve();
    let terminal = lab.terminal(&format!("{PASSWORD_TARGET_USER}@switch-01"));
    terminal.wait_until("a shell prompt", |s| prompt_lines(s) >= 1);
    // The shell runs as the vaulted account, on a terminal of the user's size (NAWS) and type
    // (TTYPE).
    terminal.keys(&["echo user=$(id -un) size=$(stty size) term=$TERM", "Enter"]);
    let screen = terminal.wait_for(&format!("user={PASSWORD_TARGET_USER} size=24 80 term="));
    assert!(
        screen.contains("term=screen") || screen.contains("term=tmux"),
        "{screen}"
    );
    // A resize reaches the device (NAWS again).
    terminal.resize(100, 30);
    terminal.keys(&["echo size=$(stty size)", "Enter"]);
    terminal.wait_for("size=30 100");
    // A command with quotes and an expansion, for the command log below.
    terminal.keys(&["printf 'answer-%d\\n' $((6*7))", "Enter"]);
    terminal.wait_for("answer-42");
    // Typed at the next prompt, as a person would: the command log reads a line from where
    // its prompt ended, so keys typed before the prompt is drawn (type-ahead) are a separate,
    // known gap (see the README's command log section), not what this test is about.
    terminal.wait_until("the prompt after answer-42", |s| {
        s.contains("answer-42")
            && s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| prompt_lines(l) == 1)
    });
    terminal.keys(&["exit", "Enter"]);
    Lab::wait_until_closed(&terminal);

    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert!(session["ended_at"].is_string(), "{session}");
    assert_eq!(session["asset"], "switch-01");
    assert_eq!(session["kind"], "shell");
    assert_eq!(session["route"], "direct");
    // The vaulted password was used, on record, and appears nowhere: not in the recording, the
    // logs, the database or on the screen. What the session showed is in the recording.
    assert_eq!(lab.events("secret_used").len(), 1);
    let data = lab.r.data_dir();
    assert!(!files_containing(&data, b"answer-42").is_empty());
    assert_eq!(
        files_containing(&data, PASSWORD_TARGET_PASSWORD.as_bytes()),
        Vec::<PathBuf>::new()
    );
    // The command log has what was typed, as for an SSH shell.
    let commands = lab.r.json(&["audit", "commands", "--user", "alice"]);
    let logged: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["command"].as_str())
        .collect();
    assert!(
        logged.iter().any(|c| c.starts_with("printf 'answer-%d")),
        "{logged:?}"
    );
    assert!(logged.contains(&"exit"), "{logged:?}");
    drop(telnetd);
}

#[test]
fn a_command_rule_refuses_a_line_on_a_telnet_device_and_the_session_goes_on() {
    let Some(mut lab) = Lab::new() else { return };
    let Some(telnetd) = Telnetd::start() else {
        return;
    };
    lab.add_device(
        "switch-02",
        telnetd.port,
        PASSWORD_TARGET_USER,
        PASSWORD_TARGET_PASSWORD,
    );
    let grant = lab.r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    lab.r.ok(&[
        "rule",
        "add",
        "--grant",
        &grant,
        "--match",
        "prefix:touch",
        "--action",
        "deny",
    ]);
    lab.serve();
    let marker = format!("/tmp/rampart-telnet-marker-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let terminal = lab.terminal(&format!("{PASSWORD_TARGET_USER}@switch-02"));
    terminal.wait_until("a shell prompt", |s| prompt_lines(s) >= 1);
    terminal.keys(&[&format!("touch {marker}"), "Enter"]);
    terminal.wait_for("command refused by rule #10 deny prefix:touch");
    terminal.keys(&["echo still-$((6*7))", "Enter"]);
    terminal.wait_for("still-42");
    terminal.keys(&["exit", "Enter"]);
    Lab::wait_until_closed(&terminal);
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a refused line reached the device"
    );
    let denied: Vec<Value> = lab
        .events("command_rule_matched")
        .into_iter()
        .filter(|e| e["event"]["action"] == "deny")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    let sessions = lab.sessions();
    assert_eq!(denied[0]["event"]["session"], sessions[0]["id"]);
    drop(telnetd);
}

#[test]
fn an_approve_rule_holds_a_line_on_a_telnet_device_until_an_approver_decides() {
    let Some(mut lab) = Lab::new() else { return };
    let Some(telnetd) = Telnetd::start() else {
        return;
    };
    lab.add_device(
        "switch-03",
        telnetd.port,
        PASSWORD_TARGET_USER,
        PASSWORD_TARGET_PASSWORD,
    );
    let grant = lab.r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    lab.r.ok(&[
        "rule",
        "add",
        "--grant",
        &grant,
        "--match",
        "prefix:touch",
        "--action",
        "approve",
    ]);
    lab.serve();
    let marker = format!("/tmp/rampart-telnet-approved-{}", std::process::id());
    let denied = format!("/tmp/rampart-telnet-denied-{}", std::process::id());
    for file in [&marker, &denied] {
        let _ = std::fs::remove_file(file);
    }
    let pending = |needle: &str| -> String {
        for _ in 0..300 {
            let listed = lab.r.json(&["approval", "list"]);
            if let Some(found) = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["line"].as_str().unwrap_or("").contains(needle))
            {
                return found["id"].as_str().unwrap().to_owned();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no pending approval for {needle}");
    };
    let terminal = lab.terminal(&format!("{PASSWORD_TARGET_USER}@switch-03"));
    terminal.wait_until("a shell prompt", |s| prompt_lines(s) >= 1);
    // Approved: the held Enter reaches the device and the command runs there.
    terminal.keys(&[&format!("touch {marker}"), "Enter"]);
    terminal.wait_for("waiting for approval");
    assert!(!std::path::Path::new(&marker).exists());
    lab.r
        .ok(&["approval", "approve", &pending("telnet-approved")]);
    terminal.wait_for("approved by cli:");
    let mut ran = false;
    for _ in 0..300 {
        ran = std::path::Path::new(&marker).exists();
        if ran {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ran, "the approved line did not run on the device");
    // Denied: cleared on the device, the user reads the note, the session goes on.
    terminal.keys(&[&format!("touch {denied}"), "Enter"]);
    terminal.wait_until("a second wait", |s| {
        s.matches("waiting for approval").count() >= 2
    });
    lab.r.ok(&[
        "approval",
        "deny",
        &pending("telnet-denied"),
        "--note",
        "not on switches",
    ]);
    terminal.wait_for("not on switches");
    terminal.keys(&["echo still-$((6*7))", "Enter"]);
    terminal.wait_for("still-42");
    terminal.keys(&["exit", "Enter"]);
    Lab::wait_until_closed(&terminal);
    assert!(
        !std::path::Path::new(&denied).exists(),
        "a denied line reached the device"
    );
    let _ = std::fs::remove_file(&marker);
    drop(telnetd);
}

/// What the fake device does with one connection.
#[derive(Clone, Copy)]
enum Script {
    /// `Who goes there? ` / `Secret word: `, echoes the password back (a careless device),
    /// then `READY>` and echoes every line as `you said: LINE`.
    Unusual,
    /// `Username: ` / `Password: ` then `% Authentication failed`.
    Refuses,
    /// Says hello and never asks for anything.
    Silent,
}

/// A scripted Telnet device on loopback; `received` is everything Rampart sent it.
struct FakeDevice {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    /// Connections that ended (Rampart closed them, or the script finished).
    closed: Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeDevice {
    fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (kept, ended) = (received.clone(), closed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (kept, ended) = (kept.clone(), ended.clone());
                std::thread::spawn(move || {
                    serve_fake(stream, script, &kept);
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            port,
            received,
            closed,
        }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

/// Reads until a carriage return (Rampart sends Enter as CR NUL); returns the line without it.
/// With `echo`, each typed character is echoed back and Enter as CR LF, as a device that
/// said WILL ECHO does.
fn read_line(stream: &mut TcpStream, kept: &Mutex<Vec<u8>>, echo: bool) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        kept.lock().unwrap().push(byte[0]);
        match byte[0] {
            b'\r' => {
                if echo {
                    let _ = stream.write_all(b"\r\n");
                }
                return Some(line);
            }
            // Telnet negotiation: skip IAC and the two bytes after it (no subnegotiation is
            // expected from Rampart unasked but NAWS after our DO, which this device never sends).
            255 => {
                let mut rest = [0u8; 2];
                stream.read_exact(&mut rest).ok()?;
                kept.lock().unwrap().extend_from_slice(&rest);
            }
            0 | b'\n' => {}
            other => {
                if echo {
                    let _ = stream.write_all(&[other]);
                }
                line.push(other);
            }
        }
    }
}

fn serve_fake(mut stream: TcpStream, script: Script, kept: &Mutex<Vec<u8>>) {
    // WILL ECHO, WILL SGA: a character-at-a-time device.
    let _ = stream.write_all(&[255, 251, 1, 255, 251, 3]);
    match script {
        Script::Unusual => {
            let _ = stream.write_all(b"\r\nACME Router 9000\r\nWho goes there? ");
            let Some(_name) = read_line(&mut stream, kept, true) else {
                return;
            };
            let _ = stream.write_all(b"\r\nSecret word: ");
            let Some(password) = read_line(&mut stream, kept, false) else {
                return;
            };
            // A careless device: it echoes the password.
            let _ = stream.write_all(&password);
            let _ = stream.write_all(b"\r\nWelcome, operator\r\nREADY>");
            while let Some(line) = read_line(&mut stream, kept, true) {
                if line == b"logout" {
                    return;
                }
                let _ = stream.write_all(b"you said: ");
                let _ = stream.write_all(&line);
                let _ = stream.write_all(b"\r\nREADY>");
            }
        }
        Script::Refuses => {
            let _ = stream.write_all(b"\r\nUser Access Verification\r\n\r\nUsername: ");
            if read_line(&mut stream, kept, true).is_none() {
                return;
            }
            let _ = stream.write_all(b"\r\nPassword: ");
            if read_line(&mut stream, kept, false).is_none() {
                return;
            }
            let _ = stream.write_all(b"\r\n% Authentication failed\r\n\r\nUsername: ");
            std::thread::sleep(Duration::from_secs(5));
        }
        Script::Silent => {
            let _ = stream.write_all(b"hello\r\n");
            std::thread::sleep(Duration::from_secs(30));
        }
    }
}

const FAKE_CANARY: &str = "fake-device-canary-pw-93b1";

#[test]
fn an_unusual_device_logs_in_with_its_own_patterns_and_an_echoed_password_is_never_shown() {
    let Some(mut lab) = Lab::new() else { return };
    let device = FakeDevice::start(Script::Unusual);
    lab.add_device("router-9000", device.port, "operator", FAKE_CANARY);
    // The default patterns do not know this device: its prompts are set on the asset.
    lab.r.ok(&[
        "asset",
        "telnet",
        "router-9000",
        "--login-prompt",
        r"Who goes there\? $",
        "--password-prompt",
        r"Secret word: $",
        "--success",
        r"READY>$",
    ]);
    let shown = lab.r.json(&["asset", "telnet", "router-9000"]);
    assert_eq!(shown["success"], "READY>$");
    assert!(shown["failure"].is_null(), "{shown}");
    assert_eq!(lab.events("telnet_login_changed").len(), 1);
    lab.serve();
    let terminal = lab.terminal("operator@router-9000");
    let screen = terminal.wait_for("READY>");
    assert!(screen.contains("Welcome, operator"), "{screen}");
    terminal.keys(&["show version", "Enter"]);
    terminal.wait_for("you said: show version");
    terminal.keys(&["logout", "Enter"]);
    Lab::wait_until_closed(&terminal);

    // The device got the name and the password, typed as Telnet's Enter (CR NUL).
    let received = device.received();
    let sent = |needle: &[u8]| received.windows(needle.len()).any(|w| w == needle);
    assert!(sent(b"operator\r\0"));
    assert!(sent(format!("{FAKE_CANARY}\r\0").as_bytes()));
    // The echoed password was masked before it was shown or recorded; the banner before the
    // login is not shown at all.
    assert!(!screen.contains(FAKE_CANARY), "{screen}");
    assert!(screen.contains("********"), "{screen}");
    assert!(!screen.contains("ACME Router 9000"), "{screen}");
    let data = lab.r.data_dir();
    assert!(!files_containing(&data, b"Welcome, operator").is_empty());
    assert_eq!(
        files_containing(&data, FAKE_CANARY.as_bytes()),
        Vec::<PathBuf>::new()
    );
    // Without a terminal too (ssh -T, stdin a pipe): the device closing the connection ends
    // the session without an exit status, which OpenSSH's ssh reports as 255.
    let out = output_with_input(
        Command::new("ssh")
            .arg("-F")
            .arg(&lab.client_config)
            .args(["-p", &lab.port(), "-T"])
            .arg("alice@operator@router-9000@127.0.0.1"),
        b"logout\r",
    );
    assert!(
        text(&out.stdout).contains("READY>"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(FAKE_CANARY));
    assert_eq!(
        files_containing(&data, FAKE_CANARY.as_bytes()),
        Vec::<PathBuf>::new()
    );
    // Bad settings are refused with one line and change nothing: patterns that do not compile,
    // a timeout out of range, an asset without a telnet endpoint.
    lab.r
        .ok(&["asset", "add", "web-9000", "--host", "127.0.0.1"]);
    for (args, expected) in [
        (
            &["asset", "telnet", "router-9000", "--success", "(unclosed"][..],
            "invalid success pattern",
        ),
        (
            &["asset", "telnet", "router-9000", "--timeout", "2h"][..],
            "invalid --timeout \"2h\": expected 1s to 1h",
        ),
        (
            &["asset", "telnet", "web-9000", "--timeout", "5s"][..],
            "asset web-9000 has no telnet endpoint",
        ),
    ] {
        let out = lab.r.run(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(lab.events("telnet_login_changed").len(), 1);
    assert_eq!(
        lab.r.json(&["asset", "telnet", "router-9000"])["success"],
        "READY>$"
    );
}

#[test]
fn a_refused_or_unanswered_telnet_login_ends_the_session_with_a_clear_line_and_an_event() {
    let Some(mut lab) = Lab::new() else { return };
    let refusing = FakeDevice::start(Script::Refuses);
    let silent = FakeDevice::start(Script::Silent);
    lab.add_device("switch-refuses", refusing.port, "admin", FAKE_CANARY);
    lab.add_device("switch-silent", silent.port, "admin", FAKE_CANARY);
    lab.r
        .ok(&["asset", "telnet", "switch-silent", "--timeout", "2s"]);
    lab.serve();

    let out = lab.ssh_without_terminal("admin@switch-refuses");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "rampart: target switch-refuses refused Rampart's credential for admin@switch-refuses \
             (the device refused the login: % Authentication failed)"
        ),
        "{stderr}"
    );
    let out = lab.ssh_without_terminal("admin@switch-silent");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the device did not finish the login within 2s"),
        "{stderr}"
    );
    assert!(!stderr.contains(FAKE_CANARY));
    // Only the device that asked got the password.
    let received = refusing.received();
    assert!(
        received
            .windows(FAKE_CANARY.len())
            .any(|w| w == FAKE_CANARY.as_bytes())
    );
    assert!(
        !silent
            .received()
            .windows(FAKE_CANARY.len())
            .any(|w| w == FAKE_CANARY.as_bytes())
    );
    // Each failure is on record: the session ended with the reason, and the target's failure.
    let failed = lab.events("target_connection_failed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .any(|s| s["end_reason"].as_str().unwrap_or("").contains("refused")),
        "{sessions:?}"
    );
    // An exec is not something a Telnet device can do: refused with one line.
    let out = output_with_input(
        Command::new("ssh")
            .arg("-F")
            .arg(&lab.client_config)
            .args(["-p", &lab.port()])
            .arg("alice@admin@switch-refuses@127.0.0.1")
            .arg("uname -a"),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("switch-refuses is reached over Telnet: only an interactive shell"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        files_containing(&lab.r.data_dir(), FAKE_CANARY.as_bytes()),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_telnet_device_chosen_in_the_menu_and_killed_ends_with_the_reason_recorded_and_its_connection_closed()
 {
    let Some(mut lab) = Lab::new() else { return };
    let device = FakeDevice::start(Script::Unusual);
    lab.add_device("router-kill", device.port, "operator", FAKE_CANARY);
    lab.r.ok(&[
        "asset",
        "telnet",
        "router-kill",
        "--login-prompt",
        r"Who goes there\? $",
        "--password-prompt",
        r"Secret word: $",
        "--success",
        r"READY>$",
    ]);
    lab.serve();
    // Through the menu: the device is listed as a Telnet target, and Enter opens it.
    let terminal = Terminal::start(&format!(
        "ssh -F {} -p {} -tt alice@127.0.0.1",
        lab.client_config.display(),
        lab.port(),
    ));
    let menu = terminal.wait_for("targets for alice");
    assert!(menu.contains("operator@router-kill"), "{menu}");
    assert!(
        menu.contains(&format!("127.0.0.1:{} (telnet)", device.port)),
        "{menu}"
    );
    terminal.keys(&["Enter"]);
    terminal.wait_for("READY>");
    let live = lab.r.json(&["session", "list", "--live"]);
    let id = live[0]["id"].as_str().unwrap().to_owned();
    lab.r
        .ok(&["session", "kill", &id, "--reason", "maintenance window"]);
    // The client ends (its last line, the reason, is in the recording: the pane is gone).
    Lab::wait_until_closed(&terminal);
    // The device's side closed too: its script saw the end of the connection.
    for _ in 0..300 {
        if device.closed.load(Ordering::SeqCst) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(device.closed.load(Ordering::SeqCst), 1);
    let sessions = lab.sessions();
    let reason = sessions[0]["end_reason"].as_str().unwrap();
    assert!(reason.ends_with("maintenance window"), "{reason}");
    assert!(
        !files_containing(
            &lab.r.data_dir().join("recordings"),
            format!("session ended: {reason}").as_bytes()
        )
        .is_empty()
    );
}

#[test]
fn a_browser_terminal_reaches_a_telnet_device_through_the_same_path() {
    let Some(mut lab) = Lab::new() else { return };
    let device = FakeDevice::start(Script::Unusual);
    lab.add_device("router-web", device.port, "operator", FAKE_CANARY);
    lab.r.ok(&[
        "asset",
        "telnet",
        "router-web",
        "--login-prompt",
        r"Who goes there\? $",
        "--password-prompt",
        r"Secret word: $",
        "--success",
        r"READY>$",
    ]);
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    lab.serve();
    let client = lab.server.as_ref().unwrap().client();
    let cookie = client.login_cookie("alice", "alice-password-1");
    let (answer, mut socket) = client.websocket(
        "/api/v1/terminal?account=operator@router-web",
        &[("cookie", cookie.as_str()), ("origin", client.origin())],
    );
    assert_eq!(answer.status, 101, "{}", answer.text());
    assert!(socket.read_until("READY>"));
    socket.send_binary(b"show clock\r");
    assert!(socket.read_until("you said: show clock"));
    socket.send_binary(b"logout\r");
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(
        sessions[0]["source_addr"]
            .as_str()
            .unwrap()
            .ends_with("(web)"),
        "{sessions:?}"
    );
    assert_eq!(sessions[0]["asset"], "router-web");
    let commands = lab.r.json(&["audit", "commands", "--user", "alice"]);
    assert!(
        commands
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"] == "show clock"),
        "{commands}"
    );
    assert_eq!(
        files_containing(&lab.r.data_dir(), FAKE_CANARY.as_bytes()),
        Vec::<PathBuf>::new()
    );
}
