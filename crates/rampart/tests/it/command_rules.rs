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
    // A refused exec never became a session; each refusal is audited with its rule.
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
    assert!(!ran.iter().any(|c| c.contains("touch")), "{commands}");
}
