//! Session recordings and the verifier, end to end: real sessions through Rampart, a
//! third-party asciicast player, tampering with real files, `kill -9`, a full disk.

use super::ssh::{Lab, Terminal, text};
use rampart_testkit::{output_with_input, require_tool};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs an interactive shell through Rampart, typing `input`.
fn shell(lab: &Lab, input: &str) -> String {
    let out = output_with_input(lab.ssh_command(&lab.direct()).arg("-tt"), input.as_bytes());
    text(&out.stdout)
}

fn session_of_kind(lab: &Lab, kind: &str) -> String {
    let sessions = lab.sessions();
    let session = sessions
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} session: {sessions:?}"));
    session["id"].as_str().unwrap().to_owned()
}

fn recording(lab: &Lab, id: &str, extension: &str) -> PathBuf {
    lab.r
        .data_dir()
        .join("recordings")
        .join(format!("{id}.{extension}"))
}

/// `rampart audit verify`: (success, stdout + stderr).
fn verify(lab: &Lab) -> (bool, String) {
    lab.sessions();
    let out = lab.r.run(&["audit", "verify"]);
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn sessions_are_recorded_replayable_in_asciinema_and_verify() {
    let Some(lab) = Lab::start() else { return };
    let typed = shell(&lab, "echo rec-$((20+3))\nexit\n");
    assert!(typed.contains("rec-23"), "{typed}");
    let out = lab.ssh(&lab.direct(), "echo exec-out; exit 2", b"");
    assert_eq!(out.status.code(), Some(2));

    let (ok, report) = verify(&lab);
    assert!(ok, "{report}");
    assert!(report.contains("ok   audit chain"), "{report}");
    assert_eq!(report.matches("sealed").count(), 2, "{report}");

    // The shell recording: a third-party player accepts the export and shows the session.
    let id = session_of_kind(&lab, "shell");
    let exported = lab.r.scratch().join("shell.cast");
    lab.r
        .ok(&["recording", "export", &id, "-o", exported.to_str().unwrap()]);
    if require_tool("asciinema").is_some() && require_tool("script").is_some() {
        let out = Command::new("script")
            .arg("-qec")
            .arg(format!("asciinema cat {}", exported.display()))
            .arg("/dev/null")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "asciinema rejects the recording: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("rec-23"),
            "{}",
            text(&out.stdout)
        );
    }
    let cast = std::fs::read_to_string(&exported).unwrap();
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let codes: Vec<String> = cast
        .lines()
        .skip(1)
        .map(|line| {
            serde_json::from_str::<(f64, String, String)>(line)
                .unwrap()
                .1
        })
        .collect();
    assert!(
        codes.contains(&"i".to_owned()) && codes.contains(&"o".to_owned()),
        "{codes:?}"
    );
    let replay = lab.r.ok(&["replay", &id, "--no-wait"]);
    assert!(replay.contains("rec-23"), "{replay}");

    // The exec recording holds the command, its output and its exit status.
    let exec =
        std::fs::read_to_string(recording(&lab, &session_of_kind(&lab, "exec"), "cast")).unwrap();
    assert!(
        exec.lines()
            .next()
            .unwrap()
            .contains("echo exec-out; exit 2"),
        "{exec}"
    );
    assert!(
        exec.contains("exec-out") && exec.contains("exit status 2"),
        "{exec}"
    );

    // Looking at evidence is itself evidence.
    assert_eq!(lab.events("recording_viewed").len(), 1);
    assert_eq!(lab.events("recording_exported").len(), 1);
}

#[test]
fn the_verifier_names_every_kind_of_tampering() {
    let Some(lab) = Lab::start() else { return };
    if require_tool("sqlite3").is_none() {
        return;
    }
    shell(
        &lab,
        &format!("seq 1 30000\necho {}\nexit\n", "x".repeat(100)),
    );
    let id = session_of_kind(&lab, "shell");
    let cast = recording(&lab, &id, "cast");
    let original = std::fs::read(&cast).unwrap();
    assert!(
        original.len() > 128 * 1024,
        "the recording spans several chunks"
    );

    let expect_failure = |mutate: &dyn Fn(&Path), message: &str| {
        mutate(&cast);
        let (ok, report) = verify(&lab);
        assert!(!ok, "verify passed after: {message}");
        assert!(report.contains(message), "{report} should say {message:?}");
        std::fs::write(&cast, &original).unwrap();
        assert!(verify(&lab).0, "restored");
    };
    expect_failure(
        &|path| {
            let mut bytes = std::fs::read(path).unwrap();
            bytes[100_000] ^= 0x20;
            std::fs::write(path, bytes).unwrap();
        },
        "was altered: its SHA-256 does not match",
    );
    expect_failure(
        &|path| {
            let bytes = std::fs::read(path).unwrap();
            std::fs::write(path, &bytes[..bytes.len() - 7]).unwrap();
        },
        "truncated",
    );
    expect_failure(
        &|path| {
            let mut bytes = std::fs::read(path).unwrap();
            bytes.extend_from_slice(b"[99.0, \"o\", \"rm -rf /\"]\n");
            std::fs::write(path, bytes).unwrap();
        },
        "after its last recorded chunk",
    );

    // A dropped chunk: its manifest line removed.
    let manifest = recording(&lab, &id, "manifest");
    let lines: Vec<String> = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let without: Vec<&String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(
        &manifest,
        without.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (ok, report) = verify(&lab);
    assert!(
        !ok && report.contains("missing or out of order"),
        "{report}"
    );
    std::fs::write(
        &manifest,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    assert!(verify(&lab).0);

    // The audit log: an altered event, then a deleted one.
    let db = lab.r.data_dir().join("rampart.db");
    let sql = |statement: &str| {
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(statement)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    sql("UPDATE audit_events SET event = replace(event, 'alice', 'mallory') WHERE seq = 2");
    let (ok, report) = verify(&lab);
    assert!(
        !ok && report.contains("audit event 2 was altered"),
        "{report}"
    );
    sql("DELETE FROM audit_events WHERE seq = 2");
    let (ok, report) = verify(&lab);
    assert!(!ok && report.contains("missing before event 3"), "{report}");
}

#[test]
fn kill_9_mid_session_leaves_a_recording_that_is_sealed_at_restart_and_verifies() {
    let Some(mut lab) = Lab::start() else { return };
    let mut child = lab
        .ssh_command(&lab.direct())
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"seq 1 40000\n").unwrap();
    // Wait until at least one full chunk reached the disk.
    let dir = lab.r.data_dir().join("recordings");
    let mut cast = None;
    for _ in 0..300 {
        cast = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "cast")
                    && std::fs::metadata(p).unwrap().len() > 70_000
            });
        if cast.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cast = cast.expect("the recording grows while the session runs");

    lab.server.kill();
    let _ = child.kill();
    let _ = child.wait();
    lab.server = lab.r.serve();

    let (ok, report) = verify(&lab);
    assert!(ok, "{report}");
    assert!(report.contains("sealed as incomplete"), "{report}");
    let text = std::fs::read_to_string(&cast).unwrap();
    // The first full chunk (64 KiB of output events) holds at least the first thousands lines.
    assert!(
        text.contains("1000"),
        "what was written before the crash is kept"
    );
    let session = &lab.sessions()[0];
    assert_eq!(session["end_reason"], "node restarted during the session");
}

/// A small tmpfs mounted over a directory (needs root, which CI has); unmounted on drop.
pub(crate) struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    pub(crate) fn mount(dir: &Path, size: &str) -> Option<Self> {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            rampart_testkit::skip_or_fail(&format!(
                "cannot mount a tmpfs to fill up ({})",
                text(&out.stderr).trim()
            ));
            return None;
        }
        Some(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the disk; returns the filler file.
    fn fill(&self) -> PathBuf {
        let filler = self.dir.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_disk_refuses_new_sessions_and_keeps_what_was_recorded() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.data_dir().join("recordings");
    let Some(disk) = SmallDisk::mount(&dir, "512k") else {
        return;
    };
    let out = lab.ssh(&lab.direct(), "echo first", b"");
    assert_eq!(text(&out.stdout), "first\n", "{}", text(&out.stderr));

    // Full: a new session is refused with a clear message, and nothing runs.
    let filler = disk.fill();
    let out = lab.ssh(
        &lab.direct(),
        "echo second; touch /tmp/rampart-should-not-run",
        b"",
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("the session cannot be recorded, so it is refused"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("second"));
    assert!(!lab.events("recording_failed").is_empty());
    assert_eq!(lab.sessions().len(), 1, "a refused session never started");

    // A live session whose recording fails is ended with a message.
    std::fs::remove_file(&filler).unwrap();
    let mut child = lab
        .ssh_command(&lab.direct())
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo started\n").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let filler = disk.fill();
    let _ = stdin.write_all(b"seq 1 200000\n");
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains("the session recording failed, so the session is ended"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&filler).unwrap();
    let sessions = lab.sessions();
    assert!(
        sessions.iter().any(|s| s["end_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("recording failed"))),
        "{sessions:?}"
    );

    // What was recorded before the disk filled up is intact.
    let first = sessions.iter().find(|s| s["kind"] == "exec").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = lab.r.run(&["audit", "verify", "--session", &first]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn the_command_log_follows_editing_history_and_completion() {
    let Some(lab) = Lab::start() else { return };
    if require_tool("tmux").is_none() {
        return;
    }
    let command = format!(
        "ssh -F {} -p {} -tt {}@127.0.0.1",
        lab.client_config.display(),
        lab.port(),
        lab.direct()
    );
    let terminal = Terminal::start(&command);
    let prompt_count = |screen: &str| {
        screen
            .lines()
            .filter(|l| l.trim_end().ends_with(['#', '$']))
            .count()
    };
    let answers = |screen: &str| screen.lines().filter(|l| l.trim() == "42").count();
    terminal.wait_until("a prompt", |s| prompt_count(s) >= 1);
    // A typo fixed with backspace.
    terminal.keys(&["echo $((40+3"]);
    terminal.wait_for("echo $((40+3");
    terminal.keys(&["BSpace", "2))", "Enter"]);
    terminal.wait_until("the answer", |s| answers(s) == 1);
    // History recall.
    terminal.keys(&["Up"]);
    terminal.wait_until("the recalled line", |s| {
        s.matches("echo $((40+2))").count() == 2
    });
    terminal.keys(&["Enter"]);
    terminal.wait_until("the answer again", |s| answers(s) == 2);
    // Tab completion.
    terminal.keys(&["cat /etc/hostnam", "Tab"]);
    terminal.wait_for("cat /etc/hostname");
    terminal.keys(&["Enter"]);
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    terminal.wait_until("the file", |s| {
        s.lines().any(|l| l.trim() == hostname.trim())
    });
    terminal.keys(&["exit", "Enter"]);
    // The session ends; its commands were logged before their echo reached the terminal.
    let mut log = Value::Null;
    for _ in 0..300 {
        log = lab.r.json(&["audit", "commands", "--user", "alice"]);
        if log.as_array().unwrap().len() >= 4 && !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let commands: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "echo $((40+2))",
            "echo $((40+2))",
            "cat /etc/hostname",
            "exit"
        ]
    );
    let first = &log[0];
    assert_eq!(first["asset"], "web-01");
    assert_eq!(first["account"], lab.login.as_str());
    let grep = lab.r.json(&["audit", "commands", "--grep", "^cat "]);
    assert_eq!(grep.as_array().unwrap().len(), 1);
    assert_eq!(lab.events("command_run").len(), 4);
    // Each command is a marker in the recording, which still verifies.
    let id = first["session"].as_str().unwrap();
    let cast = std::fs::read_to_string(recording(&lab, id, "cast")).unwrap();
    assert!(cast.contains(r#""m","cat /etc/hostname""#), "{cast}");
    assert!(verify(&lab).0);
}

#[test]
fn deleting_the_newest_audit_events_is_caught_by_the_signed_chain_head() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let r = rampart_testkit::Rampart::new(super::BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["asset", "add", "web-01", "--host", "127.0.0.1"]);
    // The server signs the chain head when it starts and, after server_stopped, when it stops.
    let (status, _) = r.serve().terminate();
    assert!(status.success());
    let out = r.run(&["audit", "verify"]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("signed up to event 5"), "{report}");

    // Removing the newest event leaves a consistent chain, but not the signed head.
    let db = r.data_dir().join("rampart.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)")
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = r.run(&["audit", "verify"]);
    let report = text(&out.stdout);
    assert!(!out.status.success());
    assert!(report.contains("ok   audit chain: 4 events"), "{report}");
    assert!(
        report.contains("signed up to event 5 but ends at 4: events were deleted"),
        "{report}"
    );
}

/// A webhook receiver: answers 200 to every POST and hands over the bodies.
pub(crate) fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                if tx
                    .send(String::from_utf8_lossy(&body).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    (port, rx)
}

#[test]
fn syslog_and_webhook_sinks_receive_events_and_a_down_sink_is_counted_not_blocking() {
    let r = rampart_testkit::Rampart::new(super::BIN);
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (webhook_port, bodies) = webhook_receiver();
    let syslog_url = format!("udp://{}", syslog.local_addr().unwrap());
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/events");
    let server = r.serve_with_env(&[
        ("RAMPART_SYSLOG", &syslog_url),
        ("RAMPART_WEBHOOK_URL", &webhook_url),
    ]);
    r.ok(&["user", "add", "bob"]);

    let mut datagram = vec![0u8; 65536];
    let mut received = String::new();
    while !received.contains("user_added") {
        let n = syslog
            .recv(&mut datagram)
            .expect("a syslog message within 20 s");
        received = String::from_utf8_lossy(&datagram[..n]).into_owned();
    }
    assert!(received.starts_with("<110>1 "), "{received}");
    assert!(received.contains(r#""user":"bob""#), "{received}");
    let body = loop {
        let body = bodies
            .recv_timeout(Duration::from_secs(20))
            .expect("a webhook call within 20 s");
        if body.contains("user_added") {
            break body;
        }
    };
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"]["user"], "bob");
    assert!(event["hash"].as_str().unwrap().len() == 64);
    assert!(server.terminate().0.success());

    // A sink that is down: nothing blocks, and what was not delivered is counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{closed}/events");
    let server = r.serve_with_env(&[("RAMPART_WEBHOOK_URL", &down)]);
    r.ok(&["user", "add", "carol"]);
    r.ok(&["user", "disable", "carol"]);
    let mut failed = 0;
    for _ in 0..300 {
        let sinks = r.json(&["audit", "sinks"]);
        failed = sinks
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sink"].as_str().unwrap().contains(&closed.to_string()))
            .map_or(0, |s| s["failed"].as_u64().unwrap());
        if failed >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(failed >= 2, "undelivered events are counted");
    assert_eq!(
        r.json(&["user", "show", "carol"])["disabled"],
        true,
        "the local record is whole"
    );
    assert!(server.terminate().0.success());

    // Syslog over TCP, with octet-counting framing.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", tcp.local_addr().unwrap());
    let server = r.serve_with_env(&[("RAMPART_SYSLOG", &url)]);
    r.ok(&["group", "add", "ops"]);
    // The sink connects per batch (the first carries server_started); read every connection
    // until the event shows, within 20 s, or fail instead of hanging.
    tcp.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut frames = Vec::new();
    while !frames.iter().any(|f: &String| f.contains("group_added")) {
        match tcp.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut received = Vec::new();
                std::io::Read::read_to_end(&mut stream, &mut received).unwrap();
                // Octet counting: "LENGTH MESSAGE" frames back to back.
                let mut rest = received.as_slice();
                while !rest.is_empty() {
                    let space = rest.iter().position(|b| *b == b' ').unwrap();
                    let length: usize = String::from_utf8_lossy(&rest[..space]).parse().unwrap();
                    let message = &rest[space + 1..space + 1 + length];
                    frames.push(String::from_utf8_lossy(message).into_owned());
                    rest = &rest[space + 1 + length..];
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no group_added frame: {frames:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err) => panic!("accept: {err}"),
        }
    }
    assert!(
        frames.iter().all(|f| f.starts_with("<110>1 ")),
        "{frames:?}"
    );
    assert!(server.terminate().0.success());
}

/// libfaketime's preload library (Debian's `faketime` package), to run a server whose clock is
/// behind: the only honest way to have sessions the chain says are old.
fn faketime_library() -> Option<&'static str> {
    const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    if Path::new(LIBRARY).exists() {
        Some(LIBRARY)
    } else {
        rampart_testkit::skip_or_fail("libfaketime (package faketime) is not installed");
        None
    }
}

/// `rampart audit retention` with a retention period of one day.
fn retention_of_one_day(lab: &Lab) -> Value {
    let out = lab
        .r
        .command(&["audit", "retention", "--json"])
        .env("RAMPART_RETENTION_DAYS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn retention_removes_what_the_chain_says_is_old_verify_accepts_it_and_nothing_else() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let Some(faketime) = faketime_library() else {
        return;
    };
    // A session two days ago: the server ran with its clock two days behind.
    let Some(lab) = Lab::start_with_env(&[("LD_PRELOAD", faketime), ("FAKETIME", "-2d")]) else {
        return;
    };
    assert!(lab.ssh(&lab.direct(), "echo old", b"").status.success());
    lab.sessions();
    let Lab {
        r,
        server,
        target,
        login,
        client_config,
    } = lab;
    assert!(server.terminate().0.success());
    // And one now.
    let server = r.serve();
    let lab = Lab {
        r,
        server,
        target,
        login,
        client_config,
    };
    assert!(lab.ssh(&lab.direct(), "echo recent", b"").status.success());
    let sessions = lab.sessions();
    let id_of = |bytes: u64| {
        sessions
            .iter()
            .find(|s| s["bytes_to_client"] == bytes)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (old, recent) = (id_of(4), id_of(7));
    // The recent session made to look old in the sessions table: retention goes by the chain.
    let out = Command::new("sqlite3")
        .arg(lab.r.data_dir().join("rampart.db"))
        .arg(format!(
            "UPDATE sessions SET started_at = '2024-01-01T00:00:00Z', ended_at = \
             '2024-01-01T00:01:00Z' WHERE id = '{recent}'"
        ))
        .output()
        .unwrap();
    assert!(out.status.success());

    let report = retention_of_one_day(&lab);
    assert_eq!(report["sessions_removed"], serde_json::json!([old]));
    assert!(!recording(&lab, &old, "cast").exists() && !recording(&lab, &old, "manifest").exists());
    assert!(recording(&lab, &recent, "cast").exists());
    // The chain names what was removed: the session and its recording as the chain anchored it.
    let applied = lab.events("retention_applied");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0]["event"]["sessions"], serde_json::json!([old]));
    let ended = lab
        .events("session_ended")
        .into_iter()
        .find(|e| e["event"]["session"] == old.as_str())
        .unwrap();
    assert_eq!(
        applied[0]["event"]["recordings"],
        serde_json::json!([ended["event"]["recording"]])
    );
    // Legitimate retention verifies.
    let (ok, report) = verify(&lab);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("ok   recording {old}: removed by retention")),
        "{report}"
    );
    // Nothing else is old enough: a second run removes nothing and records nothing.
    assert_eq!(
        retention_of_one_day(&lab)["sessions_removed"],
        serde_json::json!([])
    );
    assert_eq!(lab.events("retention_applied").len(), 1);

    // A deletion that is not retention is named.
    for extension in ["cast", "manifest", "raw"] {
        let path = recording(&lab, &recent, extension);
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (ok, report) = verify(&lab);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!("FAIL recording {recent}: ")) && report.contains("is missing"),
        "{report}"
    );

    // A retention record edited to name another recording than the one the chain anchored
    // (the chain recomputed after the edit) does not pass for legitimate retention.
    let db = lab.r.data_dir().join("rampart.db");
    let seq = crate::evidence_chain::event_of(&db, "retention_applied", &old);
    crate::evidence_chain::edit_event(&db, seq, |event| {
        event["recordings"][0]["manifest_sha256"] = serde_json::json!("0".repeat(64));
    });
    crate::evidence_chain::recompute_chain(&db, seq);
    let (ok, report) = verify(&lab);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!("FAIL recording {old}: removed by retention"))
            && report.contains("does not name the recording the chain anchored"),
        "{report}"
    );
}
