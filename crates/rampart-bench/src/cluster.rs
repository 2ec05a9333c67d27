//! The cluster case (issue 19): one PostgreSQL (the testkit's, on a Unix socket), and one, two
//! and three `rampart serve` nodes on it, all on this machine. Each step opens `--sessions`
//! interactive sessions spread evenly over the nodes running (logins at once, as the load
//! client opens them), and reports logins per second, what failed, and the nodes' memory.
//! On one machine the nodes share its cores: this shows what a node costs and that the
//! shared store keeps up, not how a cluster on several machines scales.

use anyhow::{Context, anyhow, bail};
use rampart_testkit::load::LoadClient;
use rampart_testkit::{Rampart, Server, SshTarget, current_user, ssh_keygen};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

/// One step's figures.
struct Step {
    nodes: usize,
    open: usize,
    errors: usize,
    seconds: f64,
    rss_before_kib: u64,
    rss_with_kib: u64,
}

fn node(binary: &str, name: &str, url: &str) -> anyhow::Result<Rampart> {
    let rampart = Rampart::without_init(binary);
    let config = rampart.scratch().join("rampart.toml");
    std::fs::write(
        &config,
        format!("[store]\nurl = \"{url}\"\n\n[node]\nname = \"{name}\"\n"),
    )?;
    let config = config.to_str().context("config path")?.to_owned();
    Ok(rampart.with_args(&["--config", &config]))
}

/// The cluster's keys, copied from the first node as an operator does.
fn copy_keys(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn serve(rampart: &Rampart) -> Server {
    // The load client opens many logins at once from one address.
    rampart.serve_with_env(&[
        ("RAMPART_SSH_MAX_STARTUPS", "256"),
        ("RAMPART_SSH_PER_SOURCE_MAX_STARTUPS", "256"),
    ])
}

/// Runs the case with `sessions` sessions per step; prints a table and returns the figures.
pub fn run(binary: &str, sessions: usize) -> anyhow::Result<Value> {
    for tool in ["ssh", "sshd", "ssh-keygen", "initdb"] {
        if rampart_testkit::require_tool(tool).is_none() {
            bail!("{tool} is not installed (Debian: openssh-client, openssh-server, postgresql)");
        }
    }
    let url = rampart_testkit::pg::fresh_database()
        .ok_or_else(|| anyhow!("no PostgreSQL for the cluster case"))?;
    let first = node(binary, "bench-1", &url)?;
    first.ok(&["init"]);
    let dir = first.scratch().to_path_buf();
    let (key, public) = ssh_keygen(&dir, "bench", "ed25519", "");
    let target =
        SshTarget::start_with(&public, "MaxStartups 20000\nMaxSessions 100\n").context("sshd")?;
    let login = current_user();
    first.ok(&[
        "user",
        "add",
        "alice",
        "--key",
        public.to_str().context("key")?,
    ]);
    first.ok(&[
        "asset",
        "add",
        "web-01",
        "--host",
        "127.0.0.1",
        "--port",
        &target.port.to_string(),
    ]);
    first.ok(&[
        "account",
        "add",
        &format!("{login}@web-01"),
        "--key-file",
        key.to_str().context("key")?,
    ]);
    first.ok(&["grant", "add", "--user", "alice", "--asset", "web-01"]);
    let user = format!("alice@{login}@web-01");
    let keys = first.data_dir().join("keys");
    let mut nodes = vec![first];
    for name in ["bench-2", "bench-3"] {
        let next = node(binary, name, &url)?;
        copy_keys(&keys, &next.data_dir().join("keys"))?;
        nodes.push(next);
    }
    let mut steps = Vec::new();
    for running in 1..=nodes.len() {
        // Fresh processes each step, so each step's memory is its own.
        let processes: Vec<Server> = nodes.iter().take(running).map(serve).collect();
        let servers: Vec<&Server> = processes.iter().collect();
        eprintln!("cluster: {sessions} sessions over {running} node(s)...");
        let rss = |servers: &[&Server]| -> u64 {
            servers
                .iter()
                .map(|s| rampart_testkit::resident_kib(s.pid()))
                .sum()
        };
        let rss_before_kib = rss(&servers);
        let clients = servers
            .iter()
            .map(|_| LoadClient::new(&key).map_err(|err| anyhow!("the load client: {err}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let started = Instant::now();
        let opened: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .zip(&clients)
                .enumerate()
                .map(|(index, (server, client))| {
                    // Spread evenly; the first nodes take the remainder.
                    let share = sessions / running + usize::from(index < sessions % running);
                    let (address, user) = (server.ssh, user.as_str());
                    scope.spawn(move || client.open(address, user, share))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| (Vec::new(), 0)))
                .collect()
        });
        let seconds = started.elapsed().as_secs_f64();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let rss_with_kib = rss(&servers);
        let open = opened.iter().map(|(s, _)| s.len()).sum();
        let errors = opened.iter().map(|(_, e)| e).sum();
        for (client, (sessions, _)) in clients.iter().zip(opened) {
            client.close(sessions);
        }
        drop(servers);
        for server in processes {
            let _ = server.terminate();
        }
        steps.push(Step {
            nodes: running,
            open,
            errors,
            seconds,
            rss_before_kib,
            rss_with_kib,
        });
    }
    println!();
    println!("cluster on one PostgreSQL, this machine ({sessions} sessions a step):");
    println!("| nodes | open | failed | logins/s | memory of the nodes | per session |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for step in &steps {
        let rate = step.open as f64 / step.seconds.max(f64::EPSILON);
        let per_session =
            step.rss_with_kib.saturating_sub(step.rss_before_kib) as f64 / step.open.max(1) as f64;
        println!(
            "| {} | {} | {} | {rate:.0} | {:.0} MiB | {per_session:.0} KiB |",
            step.nodes,
            step.open,
            step.errors,
            step.rss_with_kib as f64 / 1024.0
        );
        rows.push(json!({
            "nodes": step.nodes,
            "open": step.open,
            "failed": step.errors,
            "seconds": step.seconds,
            "logins_per_second": rate,
            "rss_kib": step.rss_with_kib,
            "per_session_kib": per_session,
        }));
    }
    Ok(json!({ "sessions": sessions, "steps": rows }))
}
