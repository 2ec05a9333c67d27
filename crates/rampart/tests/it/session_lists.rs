//! The session and audit lists as an operator uses them: the command of an exec session, ids
//! by a unique prefix, filters and pages.

use crate::ssh::{Lab, text};

#[test]
fn an_exec_sessions_command_shows_in_the_lists_with_control_characters_escaped() {
    let Some(lab) = Lab::start() else { return };
    let out = lab.ssh(
        &lab.direct(),
        "echo listed-$((40+2))\necho second-line-of-a-longer-command",
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("listed-42"));
    let session = &lab.sessions()[0];
    // The newline is shown as `\n`, so a list stays one line per session.
    let listed = "echo listed-$((40+2))\\necho second-line-of-a-longer-command";
    assert_eq!(session["command"], listed, "{session}");
    assert_eq!(session["kind"], "exec");
    let table = lab.r.ok(&["session", "list"]);
    assert!(table.contains("COMMAND"), "{table}");
    // The table shows the first 40 characters.
    assert!(
        table.contains("echo listed-$((40+2))\\necho second-line-…"),
        "{table}"
    );
    // `session show` by the first eight characters of the id.
    let id = session["id"].as_str().unwrap();
    let shown = lab.r.ok(&["session", "show", &id[..8]]);
    assert!(shown.contains("command:"), "{shown}");
    assert!(shown.contains(listed), "{shown}");
    assert!(shown.contains(id), "{shown}");
    // The chained start event carries it too.
    let started = lab.events("session_started");
    assert_eq!(started[0]["event"]["command"], listed, "{started:?}");
    // The API's list, as the portal reads it.
    let token = lab
        .r
        .ok(&["token", "create", "--user", "alice", "--scope", "read"])
        .trim()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let response = lab.server.client().request(
        "GET",
        "/api/v1/sessions",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()[0]["command"], listed);
}

#[test]
fn session_and_audit_lists_filter_and_page_and_ids_take_a_unique_prefix() {
    let Some(lab) = Lab::start() else { return };
    for n in 0..3 {
        let out = lab.ssh(&lab.direct(), &format!("echo page-{n}"), b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let all = lab.sessions();
    assert_eq!(all.len(), 3);

    // A page of two, then the rest with the cursor the first page names on standard error.
    let first = lab.r.run(&["session", "list", "--limit", "2", "--json"]);
    assert!(first.status.success());
    let first_page: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first_page.as_array().unwrap().len(), 2);
    let hint = text(&first.stderr);
    let cursor = hint
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cursor named: {hint:?}"));
    let second = lab.r.run(&[
        "session", "list", "--limit", "2", "--cursor", cursor, "--json",
    ]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let second_page: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second_page.as_array().unwrap().len(), 1);
    assert!(
        !text(&second.stderr).contains("--cursor"),
        "{}",
        text(&second.stderr)
    );
    let mut seen: Vec<_> = first_page
        .as_array()
        .unwrap()
        .iter()
        .chain(second_page.as_array().unwrap())
        .map(|s| s["id"].clone())
        .collect();
    seen.dedup();
    assert_eq!(seen.len(), 3);

    // Filters: nobody's sessions, and none before today.
    assert!(
        lab.r
            .ok(&["session", "list", "--user", "nobody"])
            .contains("no sessions yet")
    );
    assert_eq!(
        lab.r
            .json(&["session", "list", "--user", "alice", "--asset", "web-01"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        lab.r
            .ok(&["session", "list", "--until", "2020-01-01"])
            .contains("no sessions yet")
    );
    let bad = lab.r.run(&["session", "list", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("2026-12-31"),
        "{}",
        text(&bad.stderr)
    );

    // Ids by prefix: a unique prefix works, a shared one names the candidates, garbage is
    // refused with the accepted forms.
    let id = all[0]["id"].as_str().unwrap();
    let shown = lab.r.json(&["session", "show", &id[..13]]);
    assert_eq!(shown["id"], id);
    // Time-ordered ids of sessions seconds apart share their first characters.
    let shared = lab.r.run(&["session", "show", &id[..4]]);
    assert!(!shared.status.success());
    let message = text(&shared.stderr);
    assert!(message.contains("more than one session id"), "{message}");
    let garbage = lab.r.run(&["session", "show", "zz%"]);
    assert!(!garbage.status.success());
    assert!(
        text(&garbage.stderr).contains("first 4 or more characters"),
        "{}",
        text(&garbage.stderr)
    );

    // The audit list filters by kind and pages the same way.
    let started = lab.r.run(&[
        "audit",
        "list",
        "--kind",
        "session_started",
        "--limit",
        "2",
        "--json",
    ]);
    assert!(started.status.success());
    let events: serde_json::Value = serde_json::from_slice(&started.stdout).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["kind"] == "session_started"));
    assert!(
        text(&started.stderr).contains("--cursor"),
        "{}",
        text(&started.stderr)
    );
}
