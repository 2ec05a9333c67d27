//! Dial-out agents with real network isolation: Rampart, the agent's site, the target and the
//! client each in their own network namespace, no default route anywhere. Rampart cannot reach
//! the target's network; the agent (the real `rampart` binary in agent mode) connects *out* to
//! Rampart's agent listener, and nothing listens at its site.
//!
//! ```text
//!  client 10.78.1.2 --- 10.78.1.1 rampart 10.78.2.1 --- 10.78.2.2 agent 10.78.3.1 --- 10.78.3.2 target
//!                                  (agent.listen 10.78.2.1:2223)
//! ```
//!
//! Needs root and iproute2 (CI runs as root); skipped elsewhere (failed under
//! RAMPART_REQUIRE_TOOLS=1). Every connection is made inside a namespace.

use crate::BIN;
use rampart_testkit::netns::{Netns, in_netns};
use rampart_testkit::{Rampart, SshTarget, current_user, require_tool, skip_or_fail, ssh_keygen};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "10.78.3.2";
const BASTION: &str = "10.78.1.1";
const AGENT_LISTEN: &str = "10.78.2.1:2223";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| text(&out.stdout).trim() == "0")
}

struct Lab {
    net: Netns,
    r: Rampart,
    client_config: PathBuf,
    login: String,
    _target: SshTarget,
}

impl Lab {
    fn ssh(&self, port: u16, asset: &str, command: &str) -> Output {
        let mut ssh = Command::new("ssh");
        ssh.arg("-F")
            .arg(&self.client_config)
            .args(["-p", &port.to_string()])
            .arg(format!("alice@{}@{asset}@{BASTION}", self.login))
            .arg(command);
        in_netns(&self.net.name("c"), &ssh).output().unwrap()
    }

    /// Retries a session until it prints `expected` (the agent may still be connecting).
    fn ssh_until(&self, port: u16, expected: &str) -> Output {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.ssh(port, "web-01", &format!("echo {expected}"));
            if text(&out.stdout) == format!("{expected}\n") || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn agent(&self, token_file: &Path, state: &Path) -> Child {
        let inner = self.r.command(&[
            "agent",
            "--server",
            AGENT_LISTEN,
            "--token-file",
            token_file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--allow",
            &format!("{TARGET}:22"),
            "--max-backoff",
            "1s",
        ]);
        in_netns(&self.net.name("a"), &inner)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn last_session(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sessions = self.r.json(&["session", "list"]);
            let last = sessions
                .as_array()
                .unwrap()
                .iter()
                .max_by_key(|s| s["id"].as_str().unwrap().to_owned())
                .cloned()
                .unwrap();
            if last["ended_at"].is_string() || Instant::now() > deadline {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn audit_has(&self, event: &str, needle: &str) -> bool {
        let audit = self.r.json(&["audit", "list", "--limit", "1000"]);
        audit.as_array().unwrap().iter().any(|e| {
            let e = e.to_string();
            e.contains(event) && e.contains(needle)
        })
    }
}

/// Waits for a child to exit (bounded), returning its status and standard error.
fn wait_exit(mut child: Child, within: Duration) -> (Option<std::process::ExitStatus>, String) {
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    (status, stderr)
}

#[test]
fn an_enrolled_agent_carries_sessions_reconnects_after_a_restart_and_revocation_ends_it() {
    if !is_root() {
        skip_or_fail("network namespaces need root");
        return;
    }
    for tool in ["ip", "ssh", "sshd", "ssh-keygen", "bash", "timeout"] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    let r = Rampart::new(BIN);
    let dir = r.scratch().to_path_buf();
    let (_, alice_pub) = ssh_keygen(&dir, "alice", "ed25519", "");
    let (target_key, target_pub) = ssh_keygen(&dir, "target", "ed25519", "");
    let net = Netns::new(&["r", "c", "a", "t"]);
    net.link("c", "10.78.1.2/24", "r", "10.78.1.1/24");
    net.link("r", "10.78.2.1/24", "a", "10.78.2.2/24");
    net.link("a", "10.78.3.1/24", "t", "10.78.3.2/24");
    let Some(target) = SshTarget::start_in_netns(&target_pub, &net.name("t"), TARGET) else {
        return;
    };
    let client_config = dir.join("ssh_config");
    std::fs::write(
        &client_config,
        format!(
            "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  \
             LogLevel ERROR\n  IdentityFile {}\n  IdentitiesOnly yes\n  ConnectTimeout 30\n",
            dir.join("alice").display()
        ),
    )
    .unwrap();
    let lab = Lab {
        net,
        r,
        client_config,
        login: current_user(),
        _target: target,
    };
    let r = &lab.r;
    let login = lab.login.as_str();

    // The layout: only the agent's site reaches the target; Rampart's namespace does not.
    assert!(
        lab.net.can_connect("a", TARGET, 22),
        "target up behind the agent"
    );
    assert!(
        !lab.net.can_connect("r", TARGET, 22),
        "Rampart's namespace must not reach the target directly"
    );

    r.ok(&["user", "add", "alice", "--key", alice_pub.to_str().unwrap()]);
    r.ok(&["domain", "add", "factory"]);
    for (asset, port) in [("web-01", "22"), ("side", "2222")] {
        r.ok(&[
            "asset", "add", asset, "--host", TARGET, "--port", port, "--domain", "factory",
        ]);
        r.ok(&[
            "account",
            "add",
            &format!("{login}@{asset}"),
            "--key-file",
            target_key.to_str().unwrap(),
        ]);
        r.ok(&["grant", "add", "--user", "alice", "--asset", asset]);
    }
    let created = r.json(&[
        "agent",
        "token",
        "create",
        "--domain",
        "factory",
        "--name",
        "factory-7",
    ]);
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("rampartagent_"), "{created}");
    let token_file = dir.join("agent.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    // Only the token's hash is kept.
    assert!(
        rampart_testkit::files_containing(
            &r.data_dir(),
            token.split('.').next().unwrap().as_bytes()
        )
        .is_empty(),
        "the token is in the data directory in clear"
    );

    let env = [("RAMPART_AGENT_LISTEN", AGENT_LISTEN)];
    let mut server = r.serve_in_netns_with_env(&lab.net.name("r"), &format!("{BASTION}:0"), &env);
    let port = server.ssh.port();
    let state = dir.join("agent-state");
    let agent = lab.agent(&token_file, &state);

    // Enrolled and connected: a session to the target goes through the agent.
    let out = lab.ssh_until(port, "through-the-agent");
    assert_eq!(
        text(&out.stdout),
        "through-the-agent\n",
        "{}",
        text(&out.stderr)
    );
    let session = lab.last_session();
    assert_eq!(session["route"], "agent factory-7", "{session}");
    let shown = r.ok(&["session", "show", session["id"].as_str().unwrap()]);
    assert!(shown.contains("agent factory-7"), "{shown}");
    let agents = r.json(&["agent", "list"]);
    assert_eq!(agents[0]["name"], "factory-7", "{agents}");
    assert_eq!(agents[0]["domain"], "factory", "{agents}");
    assert!(agents[0]["revoked_at"].is_null(), "{agents}");
    assert!(lab.audit_has("agent_enrolled", "factory-7"));
    assert!(lab.audit_has("agent_connected", "factory-7"));

    // The agent's own --allow list (only TARGET:22) refuses another port, whatever Rampart asks.
    let out = lab.ssh(port, "side", "echo never");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("agent factory-7: cannot reach 10.78.3.2:2222 through it (the agent's --allow list does not permit it)"),
        "{err}"
    );

    // Rampart restarts: the agent reconnects by itself and sessions work again.
    server.kill();
    drop(server);
    let server = r.serve_in_netns_with_env(&lab.net.name("r"), &format!("{BASTION}:0"), &env);
    let port = server.ssh.port();
    let out = lab.ssh_until(port, "after-restart");
    assert_eq!(
        text(&out.stdout),
        "after-restart\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(lab.last_session()["route"], "agent factory-7");

    // Revocation ends the live stream, and the agent is refused from then on.
    let mut long_cmd = Command::new("ssh");
    long_cmd
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-p", &port.to_string()])
        .arg(format!("alice@{login}@web-01@{BASTION}"))
        .arg("echo started; sleep 120");
    let mut long = in_netns(&lab.net.name("c"), &long_cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut started = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(long.stdout.as_mut().unwrap()),
        &mut started,
    )
    .unwrap();
    assert_eq!(started, "started\n");
    r.ok(&["agent", "revoke", "factory-7"]);
    let (ended, _) = wait_exit(long, Duration::from_secs(60));
    assert!(
        ended.is_some_and(|status| !status.success()),
        "the live session through the revoked agent ended"
    );
    let cut = lab.last_session();
    assert_eq!(cut["route"], "agent factory-7");
    assert!(cut["ended_at"].is_string(), "{cut}");
    let (status, agent_err) = wait_exit(agent, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the revoked agent stops: {agent_err}"
    );
    assert!(
        agent_err.contains("identity is not accepted (revoked"),
        "{agent_err}"
    );
    let out = lab.ssh(port, "web-01", "echo never");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("network domain factory"), "{err}");
    assert!(lab.audit_has("agent_revoked", "factory-7"));
    assert!(lab.audit_has("agent_disconnected", "revoked"));

    // The token was used: a second enrolment with it is refused.
    let second = lab.agent(&token_file, &dir.join("second-state"));
    let (status, second_err) = wait_exit(second, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "{second_err}");
    assert!(
        second_err.contains("the enrolment token was refused"),
        "{second_err}"
    );
    assert_eq!(r.json(&["agent", "list"]).as_array().unwrap().len(), 1);
    drop(server);
}
