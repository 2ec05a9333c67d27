//! The network-domain case: a domain asset reached through an SSH-hop gateway. Rampart (client
//! to Rampart, Rampart through the gateway's shared connection to the target) beside OpenSSH's
//! double jump (client through a bastion sshd and the gateway sshd to the target, `ProxyCommand
//! ssh -W` on each hop) and a direct connection, all on loopback, in one run, with the same
//! cipher (AES-128-GCM) on every hop. Goal: Rampart's throughput at least 1.3x the double jump's.
//! Timings are reported, never asserted.

use super::{stats, timed, zeros};
use anyhow::Context;
use rampart_testkit::{Rampart, SshTarget, current_user, ssh_keygen};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CIPHER: &str = "aes128-gcm@openssh.com";

#[derive(Debug, Clone, Copy)]
enum Way {
    Direct,
    DoubleJump,
    Rampart,
}

const WAYS: [Way; 3] = [Way::Direct, Way::DoubleJump, Way::Rampart];

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::DoubleJump => "ssh double jump",
            Way::Rampart => "rampart via gateway",
        }
    }
}

struct Lab {
    _rampart: Rampart,
    server: rampart_testkit::Server,
    _target: SshTarget,
    _gateway: SshTarget,
    _bastion: SshTarget,
    login: String,
    config: PathBuf,
}

impl Lab {
    fn ssh(&self, way: Way) -> Command {
        let mut command = Command::new("ssh");
        command.arg("-F").arg(&self.config);
        match way {
            Way::Direct => command.arg("bench-direct"),
            Way::DoubleJump => command.arg("bench-double-jump"),
            Way::Rampart => command
                .args(["-p", &self.server.ssh.port().to_string()])
                .arg(format!("alice@{}@web-domain@127.0.0.1", self.login)),
        };
        command
    }
}

fn setup(binary: &str) -> anyhow::Result<Lab> {
    let rampart = Rampart::new(binary);
    let dir = rampart.scratch().to_path_buf();
    let (key, public) = ssh_keygen(&dir, "bench", "ed25519", "");
    let target = SshTarget::start(&public).context("target sshd")?;
    let gateway = SshTarget::start(&public).context("gateway sshd")?;
    let bastion = SshTarget::start(&public).context("bastion sshd")?;
    let login = current_user();
    let key_arg = key.to_str().context("key path")?;
    rampart.ok(&[
        "user",
        "add",
        "alice",
        "--key",
        public.to_str().context("key")?,
    ]);
    rampart.ok(&["domain", "add", "bench"]);
    rampart.ok(&[
        "gateway",
        "add",
        "gw-bench",
        "--domain",
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        &gateway.port.to_string(),
        "--account",
        &login,
        "--key-file",
        key_arg,
    ]);
    rampart.ok(&[
        "asset",
        "add",
        "web-domain",
        "--host",
        "127.0.0.1",
        "--port",
        &target.port.to_string(),
        "--domain",
        "bench",
    ]);
    rampart.ok(&[
        "account",
        "add",
        &format!("{login}@web-domain"),
        "--key-file",
        key_arg,
    ]);
    rampart.ok(&["grant", "add", "--user", "alice", "--asset", "web-domain"]);
    let config = dir.join("ssh_config_domain");
    let f = config.display();
    std::fs::write(
        &config,
        format!(
            "Host bench-bastion\n  HostName 127.0.0.1\n  Port {bastion}\n\
             Host bench-gateway\n  HostName 127.0.0.1\n  Port {gw}\n  ProxyCommand ssh -F {f} -W %h:%p bench-bastion\n\
             Host bench-double-jump\n  HostName 127.0.0.1\n  Port {target}\n  ProxyCommand ssh -F {f} -W %h:%p bench-gateway\n\
             Host bench-direct\n  HostName 127.0.0.1\n  Port {target}\n\
             Host *\n  User {login}\n  Ciphers {CIPHER}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  \
             BatchMode yes\n  LogLevel ERROR\n  IdentityFile {}\n  IdentitiesOnly yes\n  ControlMaster no\n",
            key.display(),
            bastion = bastion.port,
            gw = gateway.port,
            target = target.port,
        ),
    )?;
    let server = rampart.serve();
    Ok(Lab {
        _rampart: rampart,
        server,
        _target: target,
        _gateway: gateway,
        _bastion: bastion,
        login,
        config,
    })
}

/// One warm-up, then `runs` timed runs of each way, interleaved.
fn measure(
    runs: usize,
    mut run: impl FnMut(Way) -> anyhow::Result<f64>,
) -> anyhow::Result<Vec<(Way, Vec<f64>)>> {
    for way in WAYS {
        run(way)?;
    }
    let mut values: Vec<(Way, Vec<f64>)> = WAYS.iter().map(|w| (*w, Vec::new())).collect();
    for _ in 0..runs {
        for (way, list) in &mut values {
            list.push(run(*way)?);
        }
    }
    Ok(values)
}

/// Runs the case and prints its table; returns its JSON.
pub fn run(binary: &str, runs: usize, size_mib: u64) -> anyhow::Result<Value> {
    let lab = setup(binary)?;
    let mib = size_mib as f64;
    let mut rows = Vec::new();
    eprintln!("domain: upload {size_mib} MiB through a gateway...");
    let upload = measure(runs, |way| {
        let mut command = lab.ssh(way);
        command.args(["-c", CIPHER]).arg("cat > /dev/null");
        Ok(mib / timed(command, zeros(size_mib)?)?)
    })?;
    rows.push((format!("upload {size_mib} MiB"), "MiB/s", true, upload));
    eprintln!("domain: download {size_mib} MiB through a gateway...");
    let download = measure(runs, |way| {
        let mut command = lab.ssh(way);
        command
            .args(["-c", CIPHER])
            .arg(format!("head -c {} /dev/zero", size_mib * 1024 * 1024));
        Ok(mib / timed(command, Stdio::null())?)
    })?;
    rows.push((format!("download {size_mib} MiB"), "MiB/s", true, download));
    eprintln!("domain: connect and run true through a gateway...");
    let connect = measure(runs.max(5), |way| {
        let mut command = lab.ssh(way);
        command.arg("true");
        Ok(timed(command, Stdio::null())? * 1000.0)
    })?;
    rows.push(("connect + true".to_owned(), "ms", false, connect));

    println!();
    println!("network domain (SSH-hop gateway, {CIPHER} on every hop), medians:");
    println!(
        "  {:<22} {:>12} {:>16} {:>20} {:>22}",
        "case", "direct", "ssh double jump", "rampart via gateway", "rampart / double jump"
    );
    let mut report = Vec::new();
    for (case, unit, higher_is_better, values) in &rows {
        let medians: Vec<f64> = values.iter().map(|(_, v)| stats(v).median).collect();
        let (direct, jump, rampart) = (medians[0], medians[1], medians[2]);
        let ratio = if *higher_is_better {
            rampart / jump
        } else {
            jump / rampart
        };
        let goal = if *higher_is_better {
            format!(
                " (goal >= 1.3x: {})",
                if ratio >= 1.3 { "met" } else { "NOT met" }
            )
        } else {
            String::new()
        };
        println!(
            "  {case:<22} {direct:>9.1} {unit:<2} {jump:>13.1} {unit:<2} {rampart:>17.1} {unit:<2} {ratio:>8.2}x{goal}"
        );
        report.push(json!({
            "case": case,
            "unit": unit,
            "paths": values.iter().map(|(way, v)| {
                let s = stats(v);
                json!({"path": way.name(), "median": s.median, "min": s.min, "max": s.max})
            }).collect::<Vec<_>>(),
            "rampart_vs_double_jump": ratio,
        }));
    }
    Ok(json!(report))
}
