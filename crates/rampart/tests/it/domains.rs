//! Network domains with real network isolation: Rampart, two SSH-hop gateways, the target and
//! the client each in their own network namespace, linked by veth pairs, no default route
//! anywhere. The target's address is routed only from the gateways' namespaces.
//!
//! ```text
//!  client 10.77.1.2 --- 10.77.1.1 rampart 10.77.2.1 --- 10.77.2.2 gw-1 10.77.4.1 --- 10.77.4.2
//!                                         10.77.3.1 --- 10.77.3.2 gw-2 10.77.5.1 --- 10.77.5.2 target
//!                                                                   (target's sshd on 10.77.9.9)
//! ```
//!
//! Needs root and iproute2 (CI runs as root); skipped elsewhere (failed under
//! RAMPART_REQUIRE_TOOLS=1). Nothing here connects from the test's own namespace to a
//! non-loopback address: every connection is made inside a namespace.

use crate::BIN;
use rampart_testkit::netns::{Netns, in_netns};
use rampart_testkit::{Rampart, SshTarget, current_user, require_tool, skip_or_fail, ssh_keygen};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const TARGET: &str = "10.77.9.9";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| text(&out.stdout).trim() == "0")
}

struct Layout {
    net: Netns,
    r: Rampart,
    client_config: PathBuf,
    login: String,
    gw1: SshTarget,
    gw2: SshTarget,
    target: SshTarget,
}

impl Layout {
    fn build(dir: &Path, r: Rampart) -> Option<Self> {
        let net = Netns::new(&["r", "c", "g1", "g2", "t"]);
        net.link("c", "10.77.1.2/24", "r", "10.77.1.1/24");
        net.link("r", "10.77.2.1/24", "g1", "10.77.2.2/24");
        net.link("r", "10.77.3.1/24", "g2", "10.77.3.2/24");
        net.link("g1", "10.77.4.1/24", "t", "10.77.4.2/24");
        net.link("g2", "10.77.5.1/24", "t", "10.77.5.2/24");
        net.add_loopback_address("t", &format!("{TARGET}/32"));
        net.route("g1", &format!("{TARGET}/32"), "10.77.4.2");
        net.route("g2", &format!("{TARGET}/32"), "10.77.5.2");

        let (_, gateway_pub) = ssh_keygen(dir, "gateway", "ed25519", "");
        let (_, target_pub) = ssh_keygen(dir, "target", "ed25519", "");
        let gw1 = SshTarget::start_in_netns(&gateway_pub, &net.name("g1"), "10.77.2.2")?;
        let gw2 = SshTarget::start_in_netns(&gateway_pub, &net.name("g2"), "10.77.3.2")?;
        let target = SshTarget::start_in_netns(&target_pub, &net.name("t"), TARGET)?;
        let alice_key = dir.join("alice");
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
            net,
            r,
            client_config,
            login: current_user(),
            gw1,
            gw2,
            target,
        })
    }

    /// A `rampart` command run inside Rampart's namespace (it connects to gateways).
    fn rampart_in_ns(&self, args: &[&str]) -> Output {
        in_netns(&self.net.name("r"), &self.r.command(args))
            .output()
            .unwrap()
    }

    /// `ssh` from the client's namespace to Rampart.
    fn ssh(&self, port: u16, args: &[&str]) -> Output {
        let mut ssh = Command::new("ssh");
        ssh.arg("-F")
            .arg(&self.client_config)
            .args(["-p", &port.to_string()])
            .args(args);
        in_netns(&self.net.name("c"), &ssh).output().unwrap()
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

    fn last_route(&self) -> String {
        let sessions = self.sessions();
        let last = sessions
            .iter()
            .max_by_key(|s| s["id"].as_str().unwrap().to_owned())
            .unwrap();
        last["route"].as_str().unwrap_or("-").to_owned()
    }
}

#[test]
fn domain_assets_are_reached_only_through_their_gateways_with_failover_and_step_by_step_tests() {
    if !is_root() {
        skip_or_fail("network namespaces need root");
        return;
    }
    for tool in [
        "ip",
        "ss",
        "ssh",
        "scp",
        "sshd",
        "ssh-keygen",
        "bash",
        "timeout",
    ] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    let r = Rampart::new(BIN);
    let dir = r.scratch().to_path_buf();
    let (_, alice_pub) = ssh_keygen(&dir, "alice", "ed25519", "");
    let Some(lab) = Layout::build(&dir, r) else {
        return;
    };
    let r = &lab.r;
    let login = lab.login.as_str();

    // The layout: the target answers from a gateway's namespace, never from Rampart's.
    assert!(
        lab.net.can_connect("g1", TARGET, 22),
        "target up behind gw-1"
    );
    assert!(
        !lab.net.can_connect("r", TARGET, 22),
        "Rampart's namespace must not reach the target directly"
    );

    r.ok(&["user", "add", "alice", "--key", alice_pub.to_str().unwrap()]);
    r.ok(&["domain", "add", "dc-east"]);
    let gateway_key = dir.join("gateway");
    let target_key = dir.join("target");
    for (name, host) in [("gw-1", "10.77.2.2"), ("gw-2", "10.77.3.2")] {
        r.ok(&[
            "gateway",
            "add",
            name,
            "--domain",
            "dc-east",
            "--host",
            host,
            "--account",
            login,
            "--key-file",
            gateway_key.to_str().unwrap(),
        ]);
    }
    r.ok(&[
        "asset", "add", "web-01", "--host", TARGET, "--port", "22", "--domain", "dc-east",
    ]);
    r.ok(&[
        "account",
        "add",
        &format!("{login}@web-01"),
        "--key-file",
        target_key.to_str().unwrap(),
    ]);
    r.ok(&["grant", "add", "--user", "alice", "--asset", "web-01"]);

    // A domain holding assets and gateways is not removed; the refusal names them.
    let refused = r.run(&["domain", "remove", "dc-east"]);
    assert!(!refused.status.success());
    let why = text(&refused.stderr);
    assert!(
        why.contains("assets web-01") && why.contains("gateways gw-1, gw-2"),
        "{why}"
    );
    let shown = r.json(&["domain", "show", "dc-east"]);
    assert_eq!(shown["assets"], serde_json::json!(["web-01"]));
    assert_eq!(shown["gateways"][0]["name"], "gw-1");
    assert_eq!(shown["gateways"][1]["name"], "gw-2");

    // gateway test: every step passes through gw-1, and the asset is reached through it.
    let tested = lab.rampart_in_ns(&["gateway", "test", "gw-1", "--asset", "web-01"]);
    let out = text(&tested.stdout);
    assert!(tested.status.success(), "{out}{}", text(&tested.stderr));
    assert!(
        out.contains("tcp reach: ok")
            && out.contains("host key: ok")
            && out.contains("authentication: ok")
            && out.contains("reach the asset: ok")
            && out.contains("gateway gw-1 works"),
        "{out}"
    );
    // `asset hostkey --scan` reaches a domain's asset through its gateway too.
    let scanned = lab.rampart_in_ns(&["asset", "hostkey", "web-01", "--scan", "--json"]);
    assert!(scanned.status.success(), "{}", text(&scanned.stderr));
    let target_key = std::fs::read_to_string(lab.target.host_key_file()).unwrap();
    let key_body = target_key.split_whitespace().nth(1).unwrap();
    assert!(
        text(&scanned.stdout).contains(key_body),
        "{}",
        text(&scanned.stdout)
    );

    // The first connection pinned gw-1's host key.
    let gw1 = r.json(&["gateway", "show", "gw-1"]);
    let pinned = std::fs::read_to_string(lab.gw1.host_key_file()).unwrap();
    assert!(
        pinned.starts_with(gw1["host_key"].as_str().unwrap()),
        "{gw1}"
    );

    // gateway test, failing steps, each one precise line.
    r.ok(&["domain", "add", "lab"]);
    r.ok(&[
        "asset",
        "add",
        "ghost",
        "--host",
        "10.77.9.10",
        "--port",
        "22",
        "--domain",
        "lab",
    ]);
    r.ok(&[
        "gateway",
        "add",
        "gw-wrong-key",
        "--domain",
        "lab",
        "--host",
        "10.77.2.2",
        "--account",
        login,
        "--key-file",
        gateway_key.to_str().unwrap(),
        "--host-key-file",
        lab.target.host_key_file().to_str().unwrap(),
    ]);
    r.ok_with_stdin(
        &[
            "gateway",
            "add",
            "gw-wrong-password",
            "--domain",
            "lab",
            "--host",
            "10.77.2.2",
            "--account",
            "jump",
            "--password-stdin",
        ],
        b"not-the-password\n",
    );
    let failed = |args: &[&str]| {
        let out = lab.rampart_in_ns(args);
        assert!(!out.status.success(), "{args:?} should fail");
        (text(&out.stdout), text(&out.stderr))
    };
    let (steps, line) = failed(&["gateway", "test", "gw-wrong-key"]);
    assert!(
        steps.contains("tcp reach: ok") && steps.contains("host key: failed"),
        "{steps}"
    );
    assert!(
        line.contains("gateway gw-wrong-key: host key changed"),
        "{line}"
    );
    let (steps, line) = failed(&["gateway", "test", "gw-wrong-password"]);
    assert!(
        steps.contains("host key: ok") && steps.contains("authentication: failed"),
        "{steps}"
    );
    assert!(
        line.contains("gateway gw-wrong-password: authentication refused for user jump"),
        "{line}"
    );
    let (steps, line) = failed(&["gateway", "test", "gw-1", "--asset", "ghost"]);
    assert!(
        steps.contains("authentication: ok") && steps.contains("reach the asset: failed"),
        "{steps}"
    );
    assert!(
        line.contains("gateway gw-1: cannot reach 10.77.9.10:22 through it"),
        "{line}"
    );

    // Sessions through the gateway.
    // Health checks every second, so the test sees a verdict change soon.
    let server = r.serve_in_netns_with_env(
        &lab.net.name("r"),
        "10.77.1.1:0",
        &[("RAMPART_GATEWAY_HEALTH_INTERVAL", "1s")],
    );
    let port = server.ssh.port();
    let bastion = "10.77.1.1";
    let out = lab.ssh(
        port,
        &[
            &format!("alice@{login}@web-01@{bastion}"),
            "echo through-the-gateway; exit 3",
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "through-the-gateway\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(lab.last_route(), "gateway gw-1");
    let sessions = lab.sessions();
    let id = sessions[0]["id"].as_str().unwrap();
    assert_eq!(sessions[0]["exit_status"], 3);
    let shown = r.ok(&["session", "show", id]);
    assert!(shown.contains("gateway gw-1"), "{shown}");

    // scp to the target, through the gateway.
    let upload = dir.join("upload.txt");
    std::fs::write(&upload, b"carried by gw-1\n").unwrap();
    let landed = dir.join("landed.txt");
    let mut scp = Command::new("scp");
    scp.arg("-F")
        .arg(&lab.client_config)
        .args(["-P", &port.to_string()])
        .arg(&upload)
        .arg(format!(
            "alice@{login}@web-01@{bastion}:{}",
            landed.display()
        ));
    let out = in_netns(&lab.net.name("c"), &scp).output().unwrap();
    assert!(out.status.success(), "scp: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&landed).unwrap(), b"carried by gw-1\n");
    assert_eq!(lab.last_route(), "gateway gw-1");

    // sftp back from the target, through the gateway.
    let fetched = dir.join("fetched.txt");
    let batch = dir.join("sftp.batch");
    std::fs::write(
        &batch,
        format!("get {} {}\n", landed.display(), fetched.display()),
    )
    .unwrap();
    let mut sftp = Command::new("sftp");
    sftp.arg("-F")
        .arg(&lab.client_config)
        .args(["-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg(format!("alice@{login}@web-01@{bastion}"));
    let out = in_netns(&lab.net.name("c"), &sftp).output().unwrap();
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&fetched).unwrap(), b"carried by gw-1\n");
    assert_eq!(lab.last_route(), "gateway gw-1");

    // An interactive shell with a terminal, through the gateway, recorded as usual.
    let mut shell = Command::new("ssh");
    shell
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-p", &port.to_string(), "-tt"])
        .arg(format!("alice@{login}@web-01@{bastion}"));
    let out = rampart_testkit::output_with_input(
        &mut in_netns(&lab.net.name("c"), &shell),
        b"echo shell-$((6*7))\nexit\n",
    );
    assert!(
        text(&out.stdout).contains("shell-42"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(lab.last_route(), "gateway gw-1");
    let shells: Vec<Value> = lab
        .sessions()
        .into_iter()
        .filter(|s| s["kind"] == "shell")
        .collect();
    assert_eq!(shells.len(), 1, "{shells:?}");
    assert_eq!(shells[0]["recorded"], true);

    // ProxyJump: the inner connection is terminated by Rampart and dialled through gw-1.
    let out = lab.ssh(
        22,
        &[
            "-J",
            &format!("alice@{bastion}:{port}"),
            &format!("{login}@web-01"),
            "echo jumped",
        ],
    );
    assert_eq!(text(&out.stdout), "jumped\n", "{}", text(&out.stderr));
    assert_eq!(lab.last_route(), "gateway gw-1");

    // ssh -L to another port of the asset (a port_forward grant), carried through gw-1.
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-01",
        "--actions",
        "port_forward",
    ]);
    let mut service = Command::new("ip")
        .args(["netns", "exec", &lab.net.name("t"), "python3", "-c"])
        .arg(format!(
            "import socket\ns=socket.socket()\ns.bind(('{TARGET}',8080))\ns.listen()\n\
             c,_=s.accept()\nd=c.recv(4)\nc.sendall(b'pong' if d==b'ping' else b'nope')\nc.close()"
        ))
        .spawn()
        .unwrap();
    let listening = || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.net.name("t"),
                "ss",
                "-Hltn",
                "sport = :8080",
            ])
            .output()
            .is_ok_and(|out| !out.stdout.is_empty())
    };
    for _ in 0..300 {
        if listening() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(listening(), "the service behind the gateway listens");
    let mut forward_cmd = Command::new("ssh");
    forward_cmd
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-p", &port.to_string()])
        .args([
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            "18080:web-01:8080",
        ])
        .arg(format!("alice@{login}@web-01@{bastion}"));
    let mut forward = in_netns(&lab.net.name("c"), &forward_cmd).spawn().unwrap();
    // Inside the client's namespace: connect to the forward (retrying until ssh listens).
    let reply = Command::new("ip")
        .args(["netns", "exec", &lab.net.name("c"), "python3", "-c"])
        .arg(
            "import socket,time\nfor _ in range(300):\n  try:\n    c=socket.create_connection(('127.0.0.1',18080),timeout=30)\n    break\n  except OSError:\n    time.sleep(0.1)\n\
             c.sendall(b'ping')\nprint(c.recv(4).decode())",
        )
        .output()
        .unwrap();
    assert_eq!(
        text(&reply.stdout).trim(),
        "pong",
        "{}",
        text(&reply.stderr)
    );
    forward.kill().unwrap();
    forward.wait().unwrap();
    let _ = service.kill();
    let _ = service.wait();
    let sessions = lab.sessions();
    let forwarded: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["kind"] == "port_forward:8080")
        .collect();
    assert_eq!(forwarded.len(), 1, "{sessions:?}");
    assert_eq!(forwarded[0]["route"], "gateway gw-1");

    // Failover: gw-1 goes down (its processes and connections end); new sessions use gw-2.
    // A session open through it at that moment ends, and the user sees why.
    let mut long_cmd = Command::new("ssh");
    long_cmd
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-p", &port.to_string()])
        .arg(format!("alice@{login}@web-01@{bastion}"))
        .arg("echo started; sleep 120");
    let mut long = in_netns(&lab.net.name("c"), &long_cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut started = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(long.stdout.as_mut().unwrap()),
        &mut started,
    )
    .unwrap();
    assert_eq!(started, "started\n");
    lab.net.kill_all("g1");
    let ended = long.wait_with_output().unwrap();
    assert!(!ended.status.success(), "the session through gw-1 ended");
    // The user sees why.
    let why = text(&ended.stderr);
    assert!(
        why.contains("rampart: session ended: the connection to the target was lost"),
        "{why}"
    );
    let sessions = lab.sessions();
    let cut = sessions
        .iter()
        .max_by_key(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(cut["route"], "gateway gw-1");
    assert!(cut["ended_at"].is_string(), "{cut}");
    assert_eq!(
        cut["end_reason"], "the connection to the target was lost",
        "{cut}"
    );
    let out = lab.ssh(
        port,
        &[
            &format!("alice@{login}@web-01@{bastion}"),
            "echo via-second",
        ],
    );
    assert_eq!(text(&out.stdout), "via-second\n", "{}", text(&out.stderr));
    assert_eq!(lab.last_route(), "gateway gw-2");
    let audit = r.json(&["audit", "list", "--limit", "1000"]);
    assert!(
        audit.as_array().unwrap().iter().any(|e| {
            let e = e.to_string();
            e.contains("gateway_failed") && e.contains("gw-1") && e.contains("connection lost")
        }),
        "a gateway_failed event for gw-1's lost connection"
    );

    assert!(
        audit.as_array().unwrap().iter().any(|e| {
            let e = e.to_string();
            e.contains("session_ended") && e.contains("the connection to the target was lost")
        }),
        "a session_ended event with the reason"
    );

    // The background health checks: gw-1 is seen failing (status and last error in `gateway
    // show` and `list`, a health change in the audit log), gw-2 healthy.
    let mut gw1 = Value::Null;
    for _ in 0..600 {
        gw1 = r.json(&["gateway", "show", "gw-1"]);
        if gw1["health"] == "failing" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gw1["health"], "failing", "{gw1}");
    assert!(
        gw1["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("10.77.2.2:22")),
        "{gw1}"
    );
    assert!(gw1["health_checked_at"].is_string(), "{gw1}");
    assert_eq!(r.json(&["gateway", "show", "gw-2"])["health"], "ok");
    let listed = r.ok(&["gateway", "list"]);
    assert!(listed.contains("failing: 10.77.2.2:22"), "{listed}");
    let audit = r.json(&["audit", "list", "--limit", "1000"]);
    assert!(
        audit.as_array().unwrap().iter().any(|e| {
            let e = e.to_string();
            e.contains("gateway_health_changed") && e.contains("gw-1") && e.contains("failing")
        }),
        "a gateway_health_changed event for gw-1"
    );

    // Both down: the user's one line names each gateway's reason.
    lab.net.kill_all("g2");
    let out = lab.ssh(
        port,
        &[&format!("alice@{login}@web-01@{bastion}"), "echo never"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("gateway gw-1:") && err.contains("gateway gw-2:"),
        "{err}"
    );
    assert!(!err.contains("no available gateway"), "{err}");
    drop(server);
    let _ = &lab.gw2;
}
