//! Command control end to end: rules added with `rampart rule add`, a stock OpenSSH client
//! through `rampart serve` to a real `sshd`. Exec commands are refused before they reach the
//! target; a refused shell line is never run there, and the session goes on.

use super::ssh::{Lab, Terminal};
use rampart_testkit::require_tool;
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn grant_id(lab: &Lab) -> String {
    lab.r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn add_rule(lab: &Lab, grant: &str, matcher: &str, action: &str) -> String {
    lab.r.json(&[
        "rule", "add", "--grant", grant, "--match", matcher, "--action", action,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn exec_rules_refuse_dangerous_commands_even_when_joined_and_allow_lists_allow_only_theirs() {
    let Some(lab) = Lab::start() else { return };
    let grant = grant_id(&lab);
    let deny_rm = add_rule(&lab, &grant, "prefix:rm -rf", "deny");
    let victim = lab.r.scratch().join("victim");
    std::fs::create_dir_all(victim.join("inside")).unwrap();

    // `rm -rf /` is refused with one clear line and a failing status.
    let out = lab.ssh(&lab.direct(), "rm -rf /", b"");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rampart: command refused by rule #10 deny prefix:rm -rf: rm -rf /"),
        "{stderr}"
    );
    // Joined to an innocent command, it is still found and refused: nothing of the line runs.
    for line in [
        format!("ls; rm -rf {}", victim.display()),
        format!("true && /bin/rm -rf {}", victim.display()),
        format!("echo $(rm -rf {})", victim.display()),
        format!("sh -c 'rm -rf {}'", victim.display()),
    ] {
        let out = lab.ssh(&lab.direct(), &line, b"");
        assert!(!out.status.success(), "{line}");
        assert!(
            text(&out.stderr).contains("command refused by rule"),
            "{line}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).is_empty(),
            "{line} ran: {}",
            text(&out.stdout)
        );
        assert!(victim.join("inside").exists(), "{line} reached the target");
    }
    // A refused exec never became a session; each refusal is audited with its rule and raises a
    // critical alert.
    assert!(lab.sessions().is_empty());
    let matched = lab.events("command_rule_matched");
    assert_eq!(matched.len(), 5, "{matched:?}");
    let root = matched
        .iter()
        .find(|e| e["event"]["line"] == "rm -rf /")
        .unwrap();
    assert_eq!(root["event"]["rule"], "#10 deny prefix:rm -rf");
    assert_eq!(root["event"]["action"], "deny");
    assert_eq!(root["event"]["command"], "rm -rf /");
    assert_eq!(root["event"]["rule_id"], deny_rm.as_str());
    assert!(root["event"]["session"].is_null());
    assert!(matched.iter().all(|e| e["event"]["action"] == "deny"));
    let alerts = lab.r.json(&["alert", "list"]);
    assert_eq!(alerts.as_array().unwrap().len(), 5, "{alerts}");
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["event"]["severity"] == "critical")
    );

    // An allow-list: echo and nothing else (positions restart after the last rule left).
    lab.r.ok(&["rule", "remove", &deny_rm]);
    add_rule(&lab, &grant, "prefix:echo", "allow");
    add_rule(&lab, &grant, "any", "deny");
    let out = lab.ssh(&lab.direct(), "echo allowed-$((6*7))", b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "allowed-42");
    let marker = lab.r.scratch().join("marker");
    for line in [
        format!("touch {}", marker.display()),
        format!("echo hi; touch {}", marker.display()),
        format!("echo `touch {}`", marker.display()),
    ] {
        let out = lab.ssh(&lab.direct(), &line, b"");
        assert!(!out.status.success(), "{line}");
        assert!(
            text(&out.stderr).contains("by rule #20 deny any"),
            "{line}: {}",
            text(&out.stderr)
        );
        assert!(!marker.exists(), "{line} reached the target");
    }
    // The allowed command ran as a session, its match audited with that session.
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1);
    let allowed: Vec<_> = lab
        .events("command_rule_matched")
        .into_iter()
        .filter(|e| e["event"]["action"] == "allow" && !e["event"]["session"].is_null())
        .collect();
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert_eq!(allowed[0]["event"]["session"], sessions[0]["id"]);
    assert_eq!(allowed[0]["event"]["rule"], "#10 allow prefix:echo");
}

#[test]
fn a_refused_shell_line_is_not_run_on_the_target_and_the_session_goes_on() {
    let Some(lab) = Lab::start() else { return };
    if require_tool("tmux").is_none() {
        return;
    }
    let grant = grant_id(&lab);
    add_rule(&lab, &grant, "prefix:touch", "deny");
    add_rule(&lab, &grant, "list:privilege-escalation", "warn");
    let marker = lab.r.scratch().join("interactive-marker");
    let command = format!(
        "ssh -F {} -p {} -tt {}@127.0.0.1",
        lab.client_config.display(),
        lab.port(),
        lab.direct()
    );
    let terminal = Terminal::start(&command);
    let prompt = |screen: &str| {
        screen
            .lines()
            .filter(|l| l.trim_end().ends_with(['#', '$']))
            .count()
    };
    terminal.wait_until("a prompt", |s| prompt(s) >= 1);
    // Typed key by key, then Enter.
    terminal.keys(&[&format!("touch {}", marker.display())]);
    terminal.wait_for("interactive-marker");
    terminal.keys(&["Enter"]);
    terminal.wait_for("command refused by rule #10 deny prefix:touch");
    // Joined to an allowed command and sent in one piece, as a paste.
    terminal.keys(&[&format!("echo first; touch {}", marker.display()), "Enter"]);
    terminal.wait_until("a second refusal", |s| {
        s.matches("command refused by rule").count() >= 2
    });
    // The session goes on: the next line runs.
    terminal.keys(&["echo still-$((6*7))", "Enter"]);
    terminal.wait_for("still-42");
    // A privilege escalation runs (a warn rule) and raises alerts.
    terminal.keys(&["sudo -n true; echo escalated-$((6*7))", "Enter"]);
    terminal.wait_for("escalated-42");
    terminal.keys(&["exit", "Enter"]);
    for _ in 0..300 {
        if !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!marker.exists(), "a refused line ran on the target");
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1);
    let denied: Vec<_> = lab
        .events("command_rule_matched")
        .into_iter()
        .filter(|e| e["event"]["action"] == "deny")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|e| e["event"]["session"] == sessions[0]["id"])
    );
    assert!(
        denied
            .iter()
            .all(|e| e["event"]["rule"] == "#10 deny prefix:touch")
    );
    let pasted = format!("echo first; touch {}", marker.display());
    assert!(
        denied.iter().any(|e| e["event"]["line"] == pasted.as_str()),
        "{denied:?}"
    );
    // The refused lines never ran, so the command log has only what did.
    let commands = lab.r.json(&["audit", "commands", "--user", "alice"]);
    let ran: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["command"].as_str())
        .collect();
    assert!(ran.iter().any(|c| c.contains("still-")), "{commands}");
    let alerts = lab.r.json(&["alert", "list"]);
    let details: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["event"]["detail"].as_str())
        .collect();
    assert!(
        details.contains(&"privilege escalation command: sudo -n true"),
        "{details:?}"
    );
    assert!(
        details
            .contains(&"command flagged by rule #20 warn list:privilege-escalation: sudo -n true"),
        "{details:?}"
    );
    assert!(!ran.iter().any(|c| c.contains("touch")), "{commands}");
}

/// Keys typed before the shell has printed anything (type-ahead, as a script or a paste at
/// connect would send them) are judged like any line: a refused one does not run, and the
/// command log does not take another line for it.
#[test]
fn a_refused_line_typed_before_the_first_prompt_does_not_run() {
    let Some(lab) = Lab::start() else { return };
    if require_tool("tmux").is_none() {
        return;
    }
    let grant = grant_id(&lab);
    add_rule(&lab, &grant, "prefix:touch", "deny");
    let marker = lab.r.scratch().join("typeahead-marker");
    let command = format!(
        "ssh -F {} -p {} -tt {}@127.0.0.1",
        lab.client_config.display(),
        lab.port(),
        lab.direct()
    );
    let terminal = Terminal::start(&command);
    // At once, before any prompt.
    terminal.keys(&[&format!("touch {}", marker.display()), "Enter"]);
    terminal.wait_for("command refused by rule #10 deny prefix:touch");
    terminal.wait_until("a prompt", |s| {
        s.lines().any(|l| l.trim_end().ends_with(['#', '$']))
    });
    terminal.keys(&["echo typed-$((6*7))", "Enter"]);
    terminal.wait_for("typed-42");
    terminal.keys(&["exit", "Enter"]);
    for _ in 0..300 {
        if !terminal.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !marker.exists(),
        "a refused line typed ahead ran on the target"
    );
    let denied = lab.events("command_rule_matched");
    assert!(
        denied.iter().any(|e| e["event"]["action"] == "deny"
            && e["event"]["line"]
                .as_str()
                .is_some_and(|l| l.contains("typeahead-marker"))),
        "{denied:?}"
    );
    let commands = lab.r.json(&["audit", "commands", "--user", "alice"]);
    let ran: Vec<&str> = commands
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["command"].as_str())
        .collect();
    assert!(ran.contains(&"echo typed-$((6*7))"), "{commands}");
    assert!(!ran.iter().any(|c| c.contains("touch")), "{commands}");
}

#[test]
fn a_flagged_command_raises_an_alert_in_syslog_and_the_webhook_that_can_be_acknowledged() {
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (webhook_port, bodies) = super::evidence::webhook_receiver();
    let syslog_url = format!("udp://{}", syslog.local_addr().unwrap());
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/events");
    let Some(lab) = Lab::start_with_env(&[
        ("RAMPART_SYSLOG", &syslog_url),
        ("RAMPART_WEBHOOK_URL", &webhook_url),
    ]) else {
        return;
    };
    let grant = grant_id(&lab);
    add_rule(&lab, &grant, "list:privilege-escalation", "warn");
    assert!(
        lab.r
            .json(&["alert", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A warned command runs, and raises a warning.
    let out = lab.ssh(&lab.direct(), "echo flagged; sudo -n true; true", b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "flagged");

    let mut datagram = vec![0u8; 65536];
    let mut received = String::new();
    while !received.contains("alert_raised") {
        let n = syslog
            .recv(&mut datagram)
            .expect("a syslog message within 20 s");
        received = String::from_utf8_lossy(&datagram[..n]).into_owned();
    }
    // Facility 13, severity warning (4).
    assert!(received.starts_with("<108>1 "), "{received}");
    assert!(
        received
            .contains("command flagged by rule #10 warn list:privilege-escalation: sudo -n true"),
        "{received}"
    );
    let body = loop {
        let body = bodies
            .recv_timeout(Duration::from_secs(20))
            .expect("a webhook call within 20 s");
        if body.contains("alert_raised") {
            break body;
        }
    };
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"]["severity"], "warning");
    assert_eq!(event["event"]["user"], "alice");

    // The rule's alert, and the privilege-escalation detector's own.
    let alerts = lab.r.json(&["alert", "list", "--open"]);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let session = &lab.sessions()[0]["id"];
    assert!(alerts.iter().all(|a| a["event"]["session"] == *session));
    let detector = alerts
        .iter()
        .find(|a| a["event"]["alert"] == "privilege_escalation")
        .unwrap();
    assert_eq!(
        detector["event"]["detail"],
        "privilege escalation command: sudo -n true"
    );
    let rule = alerts
        .iter()
        .find(|a| a["event"]["alert"] == "command_rule")
        .unwrap();
    let id = rule["id"].as_i64().unwrap();
    lab.r.ok(&["alert", "ack", &id.to_string()]);
    let open = lab.r.json(&["alert", "list", "--open"]);
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["event"]["alert"], "privilege_escalation");
    let all = lab.r.json(&["alert", "list"]);
    let acknowledged = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap();
    assert!(
        acknowledged["acknowledged_by"]
            .as_str()
            .unwrap()
            .starts_with("cli:")
    );
    // Once only; and an id that is not an alert is refused.
    assert!(
        !lab.r
            .run(&["alert", "ack", &id.to_string()])
            .status
            .success()
    );
    assert!(!lab.r.run(&["alert", "ack", "1"]).status.success());
}

#[test]
fn sudo_raises_a_privilege_escalation_alert_without_any_rule() {
    let Some(lab) = Lab::start() else { return };
    let out = lab.ssh(&lab.direct(), "sudo -n true; echo after", b"");
    assert_eq!(text(&out.stdout).trim(), "after", "{}", text(&out.stderr));
    let out = lab.ssh(&lab.direct(), "echo sudo is only a word here", b"");
    assert!(out.status.success());
    let alerts = lab.r.json(&["alert", "list"]);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["event"]["alert"], "privilege_escalation");
    assert_eq!(alerts[0]["event"]["severity"], "warning");
    assert_eq!(alerts[0]["event"]["user"], "alice");
}
