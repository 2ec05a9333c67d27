//! Access policy over the real SSH path: time windows, `grant explain`, and enforcement for the
//! whole life of a session (expiry, revocation, kill, idle and duration limits).

use crate::ssh::{Lab, text};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Removes every grant.
pub(crate) fn remove_grants(lab: &Lab) {
    for grant in lab.r.json(&["grant", "list"]).as_array().unwrap() {
        lab.r
            .ok(&["grant", "remove", grant["id"].as_str().unwrap()]);
    }
}

/// Replaces alice's grants with one grant on web-01 with `extra` flags.
pub(crate) fn only_grant(lab: &Lab, extra: &[&str]) -> String {
    remove_grants(lab);
    let mut args = vec!["grant", "add", "--user", "alice", "--asset", "web-01"];
    args.extend_from_slice(extra);
    lab.r.json(&args)["id"].as_str().unwrap().to_owned()
}

/// Starts `ssh alice@...@web-01 COMMAND` in the background, stderr captured.
fn spawn(lab: &Lab, command: &str) -> Child {
    lab.ssh_command(&lab.direct())
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The id of the one live session, once it exists.
fn live_session(lab: &Lab) -> String {
    for _ in 0..300 {
        let live = lab.r.json(&["session", "list", "--live"]);
        if let Some(session) = live.as_array().unwrap().first() {
            return session["id"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no live session appeared");
}

/// Waits for the client to end; a client still running after a minute fails the test (the
/// session was not ended).
fn ended(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "the session was not ended: {}",
                text(&child.wait_with_output().unwrap().stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

/// The end reason of the one session.
fn end_reason(lab: &Lab) -> String {
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sessions[0]["end_reason"].as_str().unwrap().to_owned()
}

#[test]
fn a_grant_that_expires_mid_session_ends_it() {
    let Some(lab) = Lab::start() else { return };
    let until = OffsetDateTime::now_utc() + Duration::from_secs(5);
    only_grant(&lab, &["--until", &rfc3339(until)]);
    let child = spawn(&lab, "echo started; sleep 120");
    live_session(&lab);
    let out = ended(child);
    let stderr = text(&out.stderr);
    assert!(
        OffsetDateTime::now_utc() >= until,
        "ended before the grant expired"
    );
    assert!(
        stderr.contains(
            "rampart: session ended: access revoked: the grant is not valid now (expired"
        ),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "started\n");
    assert!(end_reason(&lab).starts_with("access revoked: the grant is not valid now"));
    // And a new session is refused with the same reason.
    let again = lab.ssh(&lab.direct(), "true", b"");
    assert_ne!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("the grant is not valid now"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn removing_the_grant_or_killing_the_session_ends_it_with_the_reason() {
    let Some(lab) = Lab::start() else { return };
    let grant = only_grant(&lab, &[]);
    let child = spawn(&lab, "sleep 120");
    live_session(&lab);
    lab.r.ok(&["grant", "remove", &grant]);
    let stderr = text(&ended(child).stderr);
    assert!(
        stderr.contains("rampart: session ended: access revoked: no grant allows it"),
        "{stderr}"
    );

    only_grant(&lab, &[]);
    let child = spawn(&lab, "sleep 120");
    let id = live_session(&lab);
    let said = lab
        .r
        .ok(&["session", "kill", &id, "--reason", "maintenance window"]);
    assert!(said.contains(&format!("ended session {id}")), "{said}");
    let stderr = text(&ended(child).stderr);
    assert!(stderr.contains("maintenance window"), "{stderr}");
    let kills = lab.events("session_kill_requested");
    assert_eq!(kills.len(), 1);
    assert_eq!(kills[0]["event"]["reason"], "maintenance window");
    let session = lab.r.json(&["session", "show", &id]);
    assert!(
        session["end_reason"]
            .as_str()
            .unwrap()
            .contains("maintenance window")
    );
    // Killing an ended session is an error that says so.
    let again = lab.r.run(&["session", "kill", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("live session"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn disabling_the_user_ends_sessions_and_refuses_new_channels_on_an_open_connection() {
    let Some(lab) = Lab::start() else { return };
    let control = lab.r.scratch().join("control.sock");
    let master = lab
        .ssh_command(&lab.direct())
        .args(["-M", "-S"])
        .arg(&control)
        .args(["-o", "ControlPersist=no"])
        .arg("sleep 120")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    live_session(&lab);
    // A second channel over the same connection works while alice is enabled.
    let second = lab
        .ssh_command(&lab.direct())
        .arg("-S")
        .arg(&control)
        .arg("echo second")
        .output()
        .unwrap();
    assert_eq!(text(&second.stdout), "second\n", "{}", text(&second.stderr));

    lab.r.ok(&["user", "disable", "alice"]);
    let refused = lab
        .ssh_command(&lab.direct())
        .arg("-S")
        .arg(&control)
        .arg("echo third")
        .output()
        .unwrap();
    assert!(
        !text(&refused.stdout).contains("third"),
        "a revoked connection ran a command"
    );
    let stderr = text(&ended(master).stderr);
    assert!(stderr.contains("the user was disabled"), "{stderr}");
}

#[test]
fn a_credential_change_ends_the_users_live_sessions() {
    let Some(lab) = Lab::start() else { return };
    let child = spawn(&lab, "sleep 120");
    live_session(&lab);
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"a brand new password 42\n");
    let stderr = text(&ended(child).stderr);
    assert!(
        stderr.contains("the user's credentials changed; log in again"),
        "{stderr}"
    );
    // Logging in again works (the key still belongs to alice).
    let again = lab.ssh(&lab.direct(), "echo again", b"");
    assert_eq!(text(&again.stdout), "again\n", "{}", text(&again.stderr));
}

#[test]
fn idle_and_duration_limits_warn_then_end_the_session() {
    let Some(lab) = Lab::start() else { return };
    // Warnings come a quarter of a short limit before it (checked every second).
    only_grant(&lab, &["--idle-timeout", "8s"]);
    let stderr = text(&ended(spawn(&lab, "sleep 120")).stderr);
    assert!(stderr.contains("rampart: this session ends in"), "{stderr}");
    assert!(
        stderr.contains("(idle timeout); type something to stay connected"),
        "{stderr}"
    );
    assert!(
        stderr.contains("session ended: idle timeout of 8s reached"),
        "{stderr}"
    );

    only_grant(&lab, &["--max-duration", "8s"]);
    let stderr = text(&ended(spawn(&lab, "while true; do echo busy; sleep 0.5; done")).stderr);
    assert!(stderr.contains("(maximum session duration)"), "{stderr}");
    assert!(
        stderr.contains("session ended: maximum session duration of 8s reached"),
        "{stderr}"
    );
}

#[test]
fn time_windows_deny_with_the_reason_and_explain_agrees_with_the_gateway() {
    let Some(lab) = Lab::start() else { return };
    // A window on another day of the week than today (UTC).
    let tomorrow = (OffsetDateTime::now_utc() + Duration::from_secs(86_400)).weekday();
    let day = &format!("{tomorrow}")[..3];
    let schedule = format!("{day} 00:00-23:59 UTC");
    only_grant(&lab, &["--schedule", &schedule, "--actions", "exec"]);
    let denied = lab.ssh(&lab.direct(), "true", b"");
    let stderr = text(&denied.stderr);
    assert_eq!(denied.status.code(), Some(1), "{stderr}");
    let reason = format!("the grant applies only {schedule}");
    assert!(stderr.contains(&reason), "{stderr}");
    let explained = lab.r.json(&[
        "grant",
        "explain",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--account",
        &lab.login,
        "--action",
        "exec",
    ]);
    assert_eq!(explained[0]["decision"], "deny");
    assert_eq!(explained[0]["reason"], reason.as_str());
    let denial = lab.events("access_denied");
    assert!(
        denial.last().unwrap()["event"]["reason"]
            .as_str()
            .unwrap()
            .contains(&reason)
    );

    // Add a grant valid now: both the gateway and explain allow, and name the same grant.
    let daily = lab.r.json(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--actions",
        "exec",
        "--schedule",
        "daily 00:00-24:00 Europe/Berlin",
    ]);
    let allowed = lab.ssh(&lab.direct(), "echo ok", b"");
    assert_eq!(text(&allowed.stdout), "ok\n", "{}", text(&allowed.stderr));
    let explained = lab.r.json(&[
        "grant", "explain", "--user", "alice", "--asset", "web-01", "--action", "exec",
    ]);
    assert_eq!(explained[0]["decision"], "allow");
    assert_eq!(explained[0]["grant"], daily["id"]);
    let started = lab.events("session_started");
    assert_eq!(started.last().unwrap()["event"]["grant"], daily["id"]);
    // Explain for another action and time says why not, in words.
    let human = lab.r.ok(&[
        "grant", "explain", "--user", "alice", "--asset", "web-01", "--action", "shell",
    ]);
    assert!(human.starts_with("DENY: alice may not use"), "{human}");
    assert!(human.contains("does not allow shell"), "{human}");
}

#[test]
fn a_grant_can_leave_sessions_unrecorded_and_the_verifier_knows_it() {
    let Some(lab) = Lab::start() else { return };
    only_grant(&lab, &["--no-recording"]);
    let out = lab.ssh(&lab.direct(), "echo unrecorded", b"");
    assert_eq!(text(&out.stdout), "unrecorded\n", "{}", text(&out.stderr));
    let sessions = lab.sessions();
    assert_eq!(sessions[0]["recorded"], false);
    let id = sessions[0]["id"].as_str().unwrap();
    let recordings = lab.r.data_dir().join("recordings");
    let cast = recordings.join(format!("{id}.cast"));
    assert!(!cast.exists(), "{} exists", cast.display());
    assert_eq!(
        lab.events("grant_added").last().unwrap()["event"]["recorded"],
        false
    );
    assert_eq!(
        lab.events("session_started").last().unwrap()["event"]["recorded"],
        false
    );
    assert!(lab.r.ok(&["grant", "list"]).contains("not recorded"));
    // The verifier expects no recording for it, but still one for recorded sessions.
    lab.r.ok(&["audit", "verify"]);
    only_grant(&lab, &[]);
    let out = lab.ssh(&lab.direct(), "echo recorded", b"");
    assert_eq!(text(&out.stdout), "recorded\n");
    let recorded = lab.sessions()[0]["id"].as_str().unwrap().to_owned();
    assert!(lab.sessions()[0]["recorded"] == true);
    std::fs::remove_file(recordings.join(format!("{recorded}.cast"))).unwrap();
    let failed = lab.r.run(&["audit", "verify"]);
    assert_ne!(failed.status.code(), Some(0));
    assert!(
        text(&failed.stdout).contains(&format!("FAIL recording {recorded}")),
        "{}",
        text(&failed.stdout)
    );
}

#[test]
fn grant_set_changes_conditions_audits_each_field_and_a_narrowed_grant_ends_the_live_session() {
    let Some(lab) = Lab::start() else { return };
    let grant = only_grant(&lab, &["--actions", "exec,scp"]);
    let prefix = &grant[..13];
    // Bad input changes nothing.
    let before = lab.r.json(&["grant", "list"]);
    let bad = lab
        .r
        .run(&["grant", "set", prefix, "--idle-timeout", "soon"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--idle-timeout"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(lab.r.json(&["grant", "list"]), before);

    let changed = lab.r.json(&[
        "grant",
        "set",
        prefix,
        "--idle-timeout",
        "15m",
        "--require-mfa",
        "false",
        "--until",
        "2099-12-31",
    ]);
    assert_eq!(changed["idle_timeout"], "15m", "{changed}");
    assert!(
        changed["valid_until"]
            .as_str()
            .unwrap()
            .starts_with("2100-01-01"),
        "{changed}"
    );
    let events = lab.events("grant_changed");
    assert_eq!(events.len(), 1, "{events:?}");
    let changes = events[0]["event"]["changes"].as_array().unwrap();
    let fields: Vec<&str> = changes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    // require_mfa was already false: not a change.
    assert_eq!(fields, ["valid_until", "idle_timeout"], "{changes:?}");
    assert_eq!(changes[1]["from"], serde_json::Value::Null);
    assert_eq!(changes[1]["to"], "15m");
    // "" unsets.
    let unset = lab
        .r
        .json(&["grant", "set", prefix, "--idle-timeout", "", "--until", ""]);
    assert_eq!(unset["idle_timeout"], serde_json::Value::Null, "{unset}");
    assert_eq!(unset["valid_until"], serde_json::Value::Null, "{unset}");

    // A live exec session, then the grant no longer allows exec: it ends with the reason.
    let child = spawn(&lab, "sleep 120");
    live_session(&lab);
    lab.r.ok(&["grant", "set", prefix, "--actions", "scp"]);
    let stderr = text(&ended(child).stderr);
    assert!(
        stderr.contains("rampart: session ended: access revoked"),
        "{stderr}"
    );
}
