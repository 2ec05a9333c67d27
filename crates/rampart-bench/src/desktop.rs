//! The desktop case (issue 22): what a recorded VNC desktop session costs. A real desktop
//! (`Xvfb` at [`SCREEN`] with an `xterm`, shared by `x11vnc` on loopback with a VNC password
//! from a file), `rampart serve` with that password vaulted, and a session opened the way the
//! portal's desktop page opens it: a browser login (`POST /api/v1/login`), then the desktop
//! WebSocket (`/api/v1/desktop?account=vnc@ASSET`), whose frames this program reads as fast as
//! they come (as the page does; it sends no input). After a fixed time the session is killed
//! from the CLI and its recording sealed.
//!
//! Two screens, one session each: *idle* (the xterm shows a shell prompt and nothing changes)
//! and *busy* (the xterm, 100x40 characters, prints a line every 50 ms: a scrolling log).
//! Reported per minute of session: the sealed recording's bytes (its `.raw`, `.cast` and
//! `.manifest` files), the desktop stream's bytes to the browser, Rampart's CPU seconds (user
//! and system time from `/proc/PID/stat`, from the session's `ready` to its end, so neither the
//! login nor the seal is in it) and x11vnc's beside it; Rampart's resident memory before the
//! session and at most while it is open. Figures are reported, never asserted.

use crate::efficiency;
use anyhow::{Context, bail};
use rampart_testkit::desktop::{self, Processes, Screen};
use rampart_testkit::{Rampart, Server, resident_kib};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The remote screen: a common laptop size.
const SCREEN: (u16, u16) = (1280, 800);
const VNC_PASSWORD: &str = "bench-vnc-password";
const USER_PASSWORD: &str = "bench-user-password";
const TOOLS: [&str; 4] = ["Xvfb", "x11vnc", "xterm", "xsetroot"];
/// A line of a scrolling log every 50 ms.
const BUSY_LOOP: &str = "i=0; while :; do i=$((i+1)); \
    echo \"$i $(date +%T.%N) GET /api/v1/items?page=$i 200 0.004s the quick brown fox\"; \
    sleep 0.05; done";

/// Whether the tools the case needs are on the `PATH` (without failing the run).
pub fn tools_present() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    TOOLS
        .iter()
        .all(|tool| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// One screen's session.
struct Case {
    name: &'static str,
    what: &'static str,
    asset: &'static str,
    command: &'static [&'static str],
    port: u16,
}

/// One session's figures.
struct Measured {
    seconds: f64,
    recording_bytes: u64,
    stream_bytes: u64,
    frames: u64,
    rampart_cpu: f64,
    x11vnc_cpu: f64,
    rss_before_kib: u64,
    rss_with_kib: u64,
    end_reason: String,
}

impl Measured {
    fn per_minute(&self, value: f64) -> f64 {
        value * 60.0 / self.seconds
    }
}

/// The browser session's cookie (`rampart_session=...`), as the portal's login gets it.
fn login(server: &Server) -> anyhow::Result<String> {
    let client = server.client();
    let answer = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({ "username": "alice", "password": USER_PASSWORD })),
    );
    if answer.status != 200 {
        bail!("login: {} {}", answer.status, answer.text());
    }
    Ok(answer
        .header("set-cookie")
        .and_then(|cookie| cookie.split(';').next())
        .context("the login set no cookie")?
        .to_owned())
}

/// Waits for the recording of `session` to be sealed (its manifest's last line); returns the
/// bytes of its files.
fn sealed_recording_bytes(recordings: &Path, session: &str) -> anyhow::Result<u64> {
    let manifest = recordings.join(format!("{session}.manifest"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&manifest)
        .unwrap_or_default()
        .contains(r#""type":"seal""#)
    {
        if Instant::now() > deadline {
            bail!("the recording of {session} was not sealed within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut bytes = 0;
    for extension in ["raw", "cast", "manifest"] {
        let file: PathBuf = recordings.join(format!("{session}.{extension}"));
        if let Ok(meta) = std::fs::metadata(&file) {
            bytes += meta.len();
        }
    }
    Ok(bytes)
}

fn measure(
    rampart: &Rampart,
    server: &Server,
    cookie: &str,
    case: &Case,
    seconds: u64,
) -> anyhow::Result<Measured> {
    let dir = tempfile::Builder::new()
        .prefix("rampart-bench-desktop")
        .tempdir()?;
    let mut processes = Processes::default();
    let display = desktop::x_display(
        &mut processes,
        &Screen {
            size: SCREEN,
            xterm_geometry: "100x40+0+0",
            xterm_command: case.command,
        },
    );
    let password = dir.path().join("vnc-password");
    std::fs::write(&password, format!("{VNC_PASSWORD}\n"))?;
    desktop::x11vnc(
        &mut processes,
        &display,
        case.port,
        &password,
        &["-quiet"],
        &dir.path().join("x11vnc.log"),
    );
    let x11vnc = processes.0.last().context("x11vnc")?.id();
    // The xterm draws its first screen.
    std::thread::sleep(Duration::from_secs(2));

    let pid = server.pid();
    let rss_before_kib = resident_kib(pid);
    let client = server.client();
    let (answer, mut socket) = client.websocket(
        &format!("/api/v1/desktop?account=vnc@{}", case.asset),
        &[("cookie", cookie), ("origin", client.origin())],
    );
    if answer.status != 101 {
        bail!("the desktop WebSocket: {} {}", answer.status, answer.text());
    }
    // An idle screen sends nothing for a long while: wait for frames until the session ends.
    socket.set_read_timeout(None);
    let session = loop {
        let Some((opcode, payload)) = socket.receive() else {
            bail!("the desktop WebSocket closed before the session was ready");
        };
        if opcode != 0x1 {
            continue;
        }
        let message: Value = serde_json::from_slice(&payload)?;
        match message["type"].as_str() {
            Some("ready") => {
                break message["session"]
                    .as_str()
                    .context("ready names no session")?
                    .to_owned();
            }
            Some("end") => bail!("the desktop did not open: {}", message["reason"]),
            _ => {}
        }
    };
    let started = Instant::now();
    let cpu_before = efficiency::process_cpu_seconds(pid)?;
    let x11vnc_before = efficiency::process_cpu_seconds(x11vnc)?;
    let reader = std::thread::spawn(move || {
        let (mut bytes, mut frames, mut reason) = (0u64, 0u64, String::new());
        while let Some((opcode, payload)) = socket.receive() {
            match opcode {
                0x2 => {
                    bytes += payload.len() as u64;
                    frames += 1;
                }
                0x1 => {
                    if let Ok(message) = serde_json::from_slice::<Value>(&payload)
                        && message["type"] == "end"
                    {
                        reason = message["reason"].as_str().unwrap_or_default().to_owned();
                    }
                }
                0x8 => break,
                _ => {}
            }
        }
        (bytes, frames, reason)
    });
    let mut rss_with_kib = resident_kib(pid);
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        std::thread::sleep(
            Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now())),
        );
        rss_with_kib = rss_with_kib.max(resident_kib(pid));
    }
    let rampart_cpu = efficiency::process_cpu_seconds(pid)? - cpu_before;
    let x11vnc_cpu = efficiency::process_cpu_seconds(x11vnc)? - x11vnc_before;
    let elapsed = started.elapsed().as_secs_f64();
    rampart.ok(&[
        "session",
        "kill",
        &session,
        "--reason",
        "benchmark: the measured time is over",
    ]);
    let (stream_bytes, frames, end_reason) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the WebSocket reader panicked"))?;
    let recording_bytes = sealed_recording_bytes(&rampart.data_dir().join("recordings"), &session)?;
    drop(processes);
    Ok(Measured {
        seconds: elapsed,
        recording_bytes,
        stream_bytes,
        frames,
        rampart_cpu,
        x11vnc_cpu,
        rss_before_kib,
        rss_with_kib,
        end_reason,
    })
}

/// Runs the case with Rampart's binary `binary`, `seconds` of session per screen; prints a
/// table and returns it as JSON.
pub fn run(binary: &str, seconds: u64) -> anyhow::Result<Value> {
    for tool in TOOLS {
        if rampart_testkit::require_tool(tool).is_none() {
            bail!("{tool} is not installed (Debian: xvfb, x11vnc, xterm, x11-xserver-utils)");
        }
    }
    // Both x11vnc servers run at once: ports picked together, so never the same one.
    let [idle_port, busy_port] = rampart_testkit::free_ports();
    let cases = [
        Case {
            name: "idle",
            what: "a shell prompt, nothing changes",
            asset: "desk-idle",
            command: &["/bin/sh"],
            port: idle_port,
        },
        Case {
            name: "busy",
            what: "a line printed every 50 ms, scrolling",
            asset: "desk-busy",
            command: &["/bin/sh", "-c", BUSY_LOOP],
            port: busy_port,
        },
    ];
    let rampart = Rampart::new(binary);
    rampart.ok(&["user", "add", "alice"]);
    rampart.ok_with_stdin(&["user", "password", "alice"], USER_PASSWORD.as_bytes());
    for case in &cases {
        rampart.ok(&[
            "asset",
            "add",
            case.asset,
            "--host",
            "127.0.0.1",
            "--endpoint",
            &format!("vnc:{}", case.port),
        ]);
        rampart.ok_with_stdin(
            &[
                "account",
                "add",
                &format!("vnc@{}", case.asset),
                "--password-stdin",
            ],
            VNC_PASSWORD.as_bytes(),
        );
        rampart.ok(&[
            "grant",
            "add",
            "--user",
            "alice",
            "--asset",
            case.asset,
            "--actions",
            "vnc:connect",
        ]);
    }
    let server = rampart.serve();
    let cookie = login(&server)?;
    let mut results = Vec::new();
    for case in &cases {
        eprintln!(
            "desktop, {} screen ({}), {seconds} s of session...",
            case.name, case.what
        );
        let measured = measure(&rampart, &server, &cookie, case, seconds)?;
        if !measured.end_reason.contains("benchmark") {
            eprintln!(
                "  the session ended otherwise than by the kill: {}",
                measured.end_reason
            );
        }
        results.push((case, measured));
    }
    println!();
    println!(
        "desktop (VNC, {}x{}, recorded; per minute of session; Rampart's CPU and memory)",
        SCREEN.0, SCREEN.1
    );
    println!(
        "| screen | session | recording | stream to the browser | rampart CPU | x11vnc CPU | rampart RSS before / with the session |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut report = Vec::new();
    for (case, m) in &results {
        let mib = |bytes: u64| m.per_minute(bytes as f64) / (1024.0 * 1024.0);
        println!(
            "| {} ({}) | {:.0} s, {} frames | {:.2} MiB/min | {:.2} MiB/min | {:.2} s/min | {:.2} s/min | {:.1} / {:.1} MiB |",
            case.name,
            case.what,
            m.seconds,
            m.frames,
            mib(m.recording_bytes),
            mib(m.stream_bytes),
            m.per_minute(m.rampart_cpu),
            m.per_minute(m.x11vnc_cpu),
            m.rss_before_kib as f64 / 1024.0,
            m.rss_with_kib as f64 / 1024.0,
        );
        report.push(json!({
            "screen": case.name, "what": case.what,
            "width": SCREEN.0, "height": SCREEN.1,
            "seconds": m.seconds, "frames": m.frames,
            "recording_bytes": m.recording_bytes,
            "recording_bytes_per_minute": m.per_minute(m.recording_bytes as f64),
            "stream_bytes": m.stream_bytes,
            "stream_bytes_per_minute": m.per_minute(m.stream_bytes as f64),
            "rampart_cpu_seconds": m.rampart_cpu,
            "rampart_cpu_seconds_per_minute": m.per_minute(m.rampart_cpu),
            "x11vnc_cpu_seconds_per_minute": m.per_minute(m.x11vnc_cpu),
            "rampart_rss_before_kib": m.rss_before_kib,
            "rampart_rss_with_session_kib": m.rss_with_kib,
            "end_reason": m.end_reason,
        }));
    }
    drop(server);
    Ok(Value::Array(report))
}
