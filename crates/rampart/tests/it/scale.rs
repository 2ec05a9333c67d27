//! Correctness at scale: many concurrent interactive sessions (pty, shell, command log,
//! recording) through one `rampart serve` to a real `sshd`, from the russh load client. Every
//! session opens, answers as itself, closes, and leaves one sealed recording that verifies.
//!
//! `RAMPART_SCALE_SESSIONS` sets how many (200 by default, the CI variant; the 2,000 with
//! `RAMPART_SCALE_SESSIONS=2000`, which `rampart-bench --sessions 2000` also exercises).

use super::BIN;
use rampart_testkit::load::{LoadClient, OPENING_AT_ONCE};
use rampart_testkit::{Rampart, SshTarget, current_user, require_tool, ssh_keygen};
use serde_json::Value;
use std::time::{Duration, Instant};

fn session_count() -> usize {
    std::env::var("RAMPART_SCALE_SESSIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200)
}

#[test]
fn many_concurrent_shell_sessions_all_open_echo_their_own_token_close_and_leave_sealed_recordings()
{
    for tool in ["sshd", "ssh-keygen"] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    let count = session_count();
    let r = Rampart::new(BIN);
    let dir = r.scratch().to_path_buf();
    let (alice_key, alice_pub) = ssh_keygen(&dir, "alice", "ed25519", "");
    let (target_key, target_pub) = ssh_keygen(&dir, "target", "ed25519", "");
    // As many sessions at once as the test opens, and their logins arriving together.
    let Some(target) = SshTarget::start_with(&target_pub, "MaxStartups 20000\nMaxSessions 100\n")
    else {
        return;
    };
    let login = current_user();
    r.ok(&["user", "add", "alice", "--key", alice_pub.to_str().unwrap()]);
    crate::ssh::add_loopback_target(&r, "web-01", target.port, &login, &target_key);
    r.ok(&["grant", "add", "--user", "alice", "--asset", "web-01"]);
    let at_once = (OPENING_AT_ONCE * 2).to_string();
    let server = r.serve_with_env(&[
        ("RAMPART_SSH_MAX_STARTUPS", &at_once),
        ("RAMPART_SSH_PER_SOURCE_MAX_STARTUPS", &at_once),
    ]);

    let client = LoadClient::new(&alice_key).unwrap();
    let (sessions, failed) = client.open(server.ssh, &format!("alice@{login}@web-01"), count);
    assert_eq!(
        (sessions.len(), failed),
        (count, 0),
        "sessions opened, failed"
    );

    let (sessions, seen) = client.echo_tokens(sessions, "scale");
    let wrong: Vec<(usize, &Vec<usize>)> = seen
        .iter()
        .enumerate()
        .filter(|(index, tokens)| tokens.as_slice() != [*index])
        .collect();
    assert_eq!(seen.len(), count);
    assert!(
        wrong.is_empty(),
        "{} sessions did not show their own token (only): {:?}",
        wrong.len(),
        wrong.iter().take(10).collect::<Vec<_>>()
    );
    client.close(sessions);

    // Every session is recorded as ended, with the command it ran in its command log.
    let limit = (count + 10).to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    let sessions = loop {
        let sessions: Vec<Value> = r
            .json(&["session", "list", "--limit", &limit])
            .as_array()
            .unwrap()
            .clone();
        let ended = sessions.iter().all(|s| s["ended_at"].is_string());
        if (sessions.len() == count && ended) || Instant::now() > deadline {
            break sessions;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(sessions.len(), count, "session records");
    let still_open: Vec<&Value> = sessions
        .iter()
        .filter(|s| !s["ended_at"].is_string())
        .collect();
    assert!(
        still_open.is_empty(),
        "sessions never ended: {still_open:?}"
    );
    assert!(
        sessions.iter().all(|s| s["kind"] == "shell"),
        "{:?}",
        sessions.first()
    );
    let commands = r.json(&["audit", "list", "--limit", &(count * 20).to_string()]);
    let logged = commands
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "command_run")
        .filter(|e| e.to_string().contains("echo scale-"))
        .count();
    let others: Vec<&Value> = commands
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "command_run" && !e.to_string().contains("echo scale-"))
        .take(5)
        .collect();
    assert_eq!(
        logged, count,
        "commands in the command log; others: {others:#?}"
    );

    // One recording per session, each sealed (not cut short), and the whole evidence verifies.
    let recordings = r.data_dir().join("recordings");
    let casts = std::fs::read_dir(&recordings)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cast"))
        })
        .count();
    assert_eq!(casts, count, "recordings in {}", recordings.display());
    let out = r.run(&["audit", "verify"]);
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    let sealed = report
        .lines()
        .filter(|line| line.contains("sealed") && !line.contains("incomplete"))
        .count();
    assert_eq!(sealed, count, "sealed recordings in the report:\n{report}");
    drop(server);
}
