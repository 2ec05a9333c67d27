//! Recordings that hold everything the user saw and sent: commands after a megabyte of padding,
//! a deployment's cap that still hashes the rest, `kill -9` in the middle of output, a disk that
//! fills up during a session. Each compares what the real client received with what the
//! recording holds, as an auditor reads it (`rampart recording export`).

use super::evidence::SmallDisk;
use super::ssh::{Lab, text};
use rampart_testkit::require_tool;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The recording of `id` as an auditor exports it: (input, output) text, in order.
fn exported(lab: &Lab, id: &str, force: bool) -> (String, String) {
    let (input, output, _) = exported_file(lab, id, force);
    (input, output)
}

/// [`exported`], and the exported file.
fn exported_file(lab: &Lab, id: &str, force: bool) -> (String, String, std::path::PathBuf) {
    let file = lab.r.scratch().join(format!("{id}-{}.cast", rand_suffix()));
    let mut args = vec!["recording", "export", id, "-o", file.to_str().unwrap()];
    if force {
        args.push("--force");
    }
    let out = lab.r.run(&args);
    assert!(
        out.status.success(),
        "export failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let cast = std::fs::read_to_string(&file).unwrap();
    let (mut input, mut output) = (String::new(), String::new());
    for line in cast.lines().skip(1) {
        let (_, code, data): (f64, String, String) = serde_json::from_str(line).unwrap();
        match code.as_str() {
            "i" => input.push_str(&data),
            "o" => output.push_str(&data),
            _ => {}
        }
    }
    (input, output, file)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn only_session(lab: &Lab, kind: &str) -> serde_json::Value {
    let sessions = lab.sessions();
    let found: Vec<_> = sessions.iter().filter(|s| s["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{sessions:?}");
    found[0].clone()
}

/// 1.1 MB of comment lines, then a command.
fn padded_script() -> Vec<u8> {
    let mut script = Vec::new();
    let line = format!("# {}\n", "padding ".repeat(12));
    while script.len() < 1_100_000 {
        script.extend_from_slice(line.as_bytes());
    }
    script.extend_from_slice(b"echo HIDDEN\n");
    script
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_command_after_a_megabyte_of_padding_is_in_the_recording() {
    let Some(lab) = Lab::start() else { return };
    let script = padded_script();
    let out = lab.ssh(&lab.direct(), "bash -s", &script);
    assert_eq!(text(&out.stdout), "HIDDEN\n", "{}", text(&out.stderr));

    let session = only_session(&lab, "exec");
    let id = session["id"].as_str().unwrap();
    assert!(session.get("recording_cap").is_none(), "{session}");
    let (input, output, file) = exported_file(&lab, id, false);
    assert!(
        input.as_bytes() == &script[..],
        "the whole input is recorded: {} of {} bytes",
        input.len(),
        script.len()
    );
    assert!(input.ends_with("echo HIDDEN\n"));
    assert_eq!(output, "HIDDEN\n");
    // A third-party player accepts the command's export too.
    if require_tool("asciinema").is_some() && require_tool("script").is_some() {
        let out = Command::new("script")
            .arg("-qec")
            .arg(format!("asciinema cat {}", file.display()))
            .arg("/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("HIDDEN"),
            "{}",
            text(&out.stdout)
        );
    }
    let replay = lab.r.ok(&["replay", id, "--no-wait"]);
    assert!(replay.contains("HIDDEN"), "{replay}");

    let report = lab.r.run(&["audit", "verify", "--session", id]);
    let report_text = text(&report.stdout);
    assert!(report.status.success(), "{report_text}");
    assert!(!report_text.contains("capped"), "{report_text}");
}

#[test]
fn a_capped_command_recording_says_so_and_still_hashes_everything() {
    let Some(lab) = Lab::start_with_env(&[("RAMPART_RECORDING_EXEC_CAP", "64KiB")]) else {
        return;
    };
    let script = padded_script();
    let out = lab.ssh(&lab.direct(), "bash -s", &script);
    assert_eq!(text(&out.stdout), "HIDDEN\n", "{}", text(&out.stderr));

    let session = only_session(&lab, "exec");
    let id = session["id"].as_str().unwrap();
    // The session record states the cap, and so does the chained session_started event.
    assert_eq!(session["recording_cap"], 65536, "{session}");
    let started = lab.events("session_started");
    assert_eq!(started[0]["event"]["recording_cap"], 65536, "{started:?}");

    // The recording keeps the cap's worth, and says where it stopped.
    let (input, _) = exported(&lab, id, false);
    assert_eq!(input.len(), 65536);
    let cast = lab
        .r
        .data_dir()
        .join("recordings")
        .join(format!("{id}.cast"));
    assert!(
        std::fs::read_to_string(cast)
            .unwrap()
            .contains("recording capped at 65536 bytes of input"),
    );

    // `audit verify` reports it capped, with the SHA-256 of the whole input, tail included.
    let report = lab.r.run(&["audit", "verify", "--session", id]);
    let report_text = text(&report.stdout);
    assert!(report.status.success(), "{report_text}");
    assert!(
        report_text.contains("capped at 65536 bytes each way"),
        "{report_text}"
    );
    assert!(
        report_text.contains(&format!(
            "input {} bytes, SHA-256 {}",
            script.len(),
            sha256_hex(&script)
        )),
        "{report_text}"
    );
    assert!(
        report_text.contains(&format!(
            "output 7 bytes, SHA-256 {}",
            sha256_hex(b"HIDDEN\n")
        )),
        "{report_text}"
    );
}

/// Collects a child's output on a thread, so the test can look at it while it runs.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    });
    seen
}

fn wait_for(what: &str, seen: &Arc<Mutex<Vec<u8>>>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text(&seen.lock().unwrap()).contains(needle) {
        assert!(Instant::now() < deadline, "{what} never showed {needle:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_keeps_every_byte_the_client_had_received() {
    let Some(mut lab) = Lab::start() else { return };
    // A command and an interactive shell, each with about 11 KiB of recent output (less than a
    // chunk), still running when the node dies.
    let mut exec = lab
        .ssh_command(&lab.direct())
        .arg("seq 1 2500; echo EXEC-DONE; exec sleep 300")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exec_seen = collect(exec.stdout.take().unwrap());
    let mut shell = lab
        .ssh_command(&lab.direct())
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let shell_seen = collect(shell.stdout.take().unwrap());
    let mut shell_input = shell.stdin.take().unwrap();
    shell_input
        .write_all(b"seq 1 2500; echo SHELL-$((40+2))-DONE\n")
        .unwrap();
    wait_for("the command", &exec_seen, "EXEC-DONE\n");
    wait_for("the shell", &shell_seen, "SHELL-42-DONE");

    lab.server.kill();
    let _ = exec.wait();
    let _ = shell.kill();
    let _ = shell.wait();
    let exec_received = text(&exec_seen.lock().unwrap());
    let shell_received = text(&shell_seen.lock().unwrap());
    lab.server = lab.r.serve();
    // The restarted node seals the interrupted recordings, then ends the sessions' records.
    let sessions = lab.sessions();
    assert!(
        sessions
            .iter()
            .all(|s| s["end_reason"] == "node restarted during the session"),
        "{sessions:?}"
    );

    let report = lab.r.run(&["audit", "verify"]);
    let report_text = text(&report.stdout);
    assert!(report.status.success(), "{report_text}");
    assert_eq!(
        report_text.matches("sealed as incomplete").count(),
        2,
        "{report_text}"
    );
    let exec_id = only_session(&lab, "exec")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shell_id = only_session(&lab, "shell")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, exec_recorded) = exported(&lab, &exec_id, false);
    assert!(
        exec_recorded.starts_with(&exec_received),
        "the command's recording lacks output the client had: recorded {} bytes, received {}",
        exec_recorded.len(),
        exec_received.len()
    );
    let (_, shell_recorded) = exported(&lab, &shell_id, false);
    assert!(
        shell_recorded.starts_with(&shell_received),
        "the shell's recording lacks output the client had: recorded {} bytes, received {}",
        shell_recorded.len(),
        shell_received.len()
    );
}

/// A lab whose recordings go to a 5 MB disk, for a session to fill up.
fn lab_with_a_small_disk() -> Option<(Lab, SmallDisk)> {
    let lab = Lab::start()?;
    let dir = lab.r.data_dir().join("recordings");
    let disk = SmallDisk::mount(&dir, "5m")?;
    Some((lab, disk))
}

/// The recording (input, output) of the one command session, which ended because its recording
/// failed: read as it is (the full disk kept it from being sealed).
fn recording_of_the_failed_exec(lab: &Lab) -> (String, String) {
    let session = only_session(lab, "exec");
    assert!(
        session["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("recording failed"),
        "{session}"
    );
    exported(lab, session["id"].as_str().unwrap(), true)
}

#[test]
fn with_the_disk_full_no_byte_reaches_the_client_that_is_not_in_the_recording() {
    let Some((lab, _disk)) = lab_with_a_small_disk() else {
        return;
    };
    // About 21 MB of output: the 5 MB disk fills up during the session.
    let out = lab.ssh(&lab.direct(), "seq 1 3000000", b"");
    let received = text(&out.stdout);
    assert!(
        text(&out.stderr).contains("the session recording failed, so the session is ended"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !received.is_empty() && !received.ends_with("\n3000000\n"),
        "the disk filled up before the end: {} bytes received",
        received.len()
    );
    let (_, recorded) = recording_of_the_failed_exec(&lab);
    assert!(
        recorded.starts_with(&received),
        "the client received output the recording does not hold: recorded {} bytes, received {}",
        recorded.len(),
        received.len()
    );
}

#[test]
fn with_the_disk_full_no_uploaded_byte_reaches_the_target_that_is_not_in_the_recording() {
    let Some((lab, _disk)) = lab_with_a_small_disk() else {
        return;
    };
    // About 21 MB sent to a command's input (an upload): the 5 MB disk fills up during the
    // session. What the target received is what its `cat` wrote to the file.
    let mut input = Vec::new();
    for line in 1..=3_000_000u32 {
        input.extend_from_slice(format!("{line}\n").as_bytes());
    }
    let uploaded = lab.r.scratch().join(format!("uploaded-{}", rand_suffix()));
    let command = format!("cat > {}", uploaded.display());
    let _ = lab.ssh(&lab.direct(), &command, &input);
    let (recorded, _) = recording_of_the_failed_exec(&lab);
    let received = std::fs::read(&uploaded).unwrap_or_default();
    assert!(
        received.len() < input.len(),
        "the disk filled up before the end: the target received all {} bytes",
        received.len()
    );
    assert!(
        recorded.as_bytes().starts_with(&received),
        "the target received input the recording does not hold: recorded {} bytes, received {}",
        recorded.len(),
        received.len()
    );
}
