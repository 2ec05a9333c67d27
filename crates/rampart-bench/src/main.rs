//! `rampart-bench`: measures Rampart beside direct OpenSSH and an OpenSSH jump host, on
//! loopback, in one run, and reports medians, ranges and ratios against the goals of
//! `shared/design/performance.md`. Timings are reported, never asserted.
//!
//! Run with `cargo run --release -p rampart-bench` (it builds the release `rampart` first if it
//! is missing). Needs OpenSSH's `ssh`, `sshd` and `ssh-keygen`; the database cases
//! (`databases.rs`) PostgreSQL, `pgbench`, `redis-server` and `redis-benchmark`; the desktop
//! case (`desktop.rs`) `Xvfb`, `x11vnc`, `xterm` and `xsetroot` (skipped in the full run
//! without them).
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a measuring tool: a failed step ends the run with its message"
)]

mod cluster;
mod databases;
mod desktop;
mod domain_hop;
mod efficiency;
mod history;
mod load;

use anyhow::{Context, bail};
use clap::Parser;
use rampart_testkit::{Rampart, SshTarget, current_user, resident_kib, ssh_keygen};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Rampart beside direct OpenSSH and an OpenSSH jump host, as ratios")]
struct Args {
    /// Timed runs per case and path (after one warm-up)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// MiB moved per bulk transfer
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Keystroke round trips per echo measurement
    #[arg(long, default_value_t = 1000)]
    echoes: usize,
    /// Concurrent interactive sessions for the memory measurement (0 to skip; up to 10000)
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Also write the results as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seconds per pgbench run in the database cases
    #[arg(long, default_value_t = 10)]
    db_seconds: u64,
    /// Run only the database cases (pgbench -S, redis-benchmark; direct against Rampart)
    #[arg(long)]
    databases_only: bool,
    /// Seconds of session per screen in the desktop case
    #[arg(long, default_value_t = 30)]
    desktop_seconds: u64,
    /// Run only the desktop case: a recorded VNC session through the desktop WebSocket on an
    /// idle and on a busy screen (recording bytes, Rampart's CPU per minute, its memory)
    #[arg(long)]
    desktop_only: bool,
    /// Run only the concurrency case (`--sessions` interactive sessions: memory per session and
    /// a fresh login while they are open); no transfers, echoes, gateway or database cases
    #[arg(long)]
    sessions_only: bool,
    /// Run only the cluster case: one, two and three `rampart serve` nodes on one PostgreSQL,
    /// `--sessions` sessions spread over them each time (logins per second, memory)
    #[arg(long)]
    cluster_only: bool,
    /// Run only the bulk transfers (upload and download, both ciphers, every path): no
    /// connect, echo, sessions, gateway, database or desktop case (for A/B runs of the relay)
    #[arg(long)]
    transfers_only: bool,
    /// A few minutes instead of an hour: 64 MiB transfers, one timed run, 200 keystrokes,
    /// 200 sessions, 3 s database runs, 10 s desktop sessions (for a regression check, not for
    /// published figures)
    #[arg(long)]
    quick: bool,
    /// The history file this run's ratios are appended to and compared with (JSON lines)
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench-history.jsonl"))]
    history: PathBuf,
    /// Neither read nor append the history file
    #[arg(long)]
    no_history: bool,
}

impl Args {
    /// `--quick` lowers every size to its quick value.
    fn quickened(mut self) -> Self {
        if self.quick {
            self.runs = 1;
            self.size_mib = self.size_mib.min(64);
            self.echoes = self.echoes.min(200);
            self.sessions = self.sessions.min(200);
            self.db_seconds = self.db_seconds.min(3);
            self.desktop_seconds = self.desktop_seconds.min(10);
        }
        self
    }
}

/// The ways to the same target: the three compared, and Rampart with recording off (a grant with
/// `--no-recording` on a second asset naming the same sshd), which shows what recording costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path3 {
    Direct,
    Jump,
    Rampart,
    Unrecorded,
}

const PATHS: [Path3; 4] = [
    Path3::Direct,
    Path3::Jump,
    Path3::Rampart,
    Path3::Unrecorded,
];

impl Path3 {
    fn name(self) -> &'static str {
        match self {
            Path3::Direct => "direct",
            Path3::Jump => "jump host",
            Path3::Rampart => "rampart",
            Path3::Unrecorded => "rampart, recording off",
        }
    }
}

struct Lab {
    _rampart: Rampart,
    server: rampart_testkit::Server,
    target: SshTarget,
    jump: SshTarget,
    login: String,
    config: PathBuf,
    key: PathBuf,
    /// An auditor's API token, to read the recorder's wait from `/metrics`.
    auditor: String,
}

impl Lab {
    /// `ssh` arguments reaching the target through `path`, with extra options.
    fn ssh(&self, path: Path3, options: &[&str]) -> Command {
        let mut command = Command::new("ssh");
        command.arg("-F").arg(&self.config).args(options);
        match path {
            Path3::Direct => {
                command
                    .args(["-p", &self.target.port.to_string()])
                    .arg(format!("{}@127.0.0.1", self.login));
            }
            Path3::Jump => {
                // Not `-J`: options given on the command line (the cipher) do not reach the
                // jump hop's own connection, which would then negotiate OpenSSH's default and
                // handicap the baseline. A proxy command passes the same options to both hops.
                let mut hop = vec![
                    "ssh".to_owned(),
                    "-F".to_owned(),
                    self.config.display().to_string(),
                ];
                // All but a terminal request, which is for the target's session only.
                hop.extend(
                    options
                        .iter()
                        .filter(|option| !option.starts_with("-t"))
                        .map(|option| (*option).to_owned()),
                );
                hop.extend([
                    "-W".to_owned(),
                    "%h:%p".to_owned(),
                    "-p".to_owned(),
                    self.jump.port.to_string(),
                    format!("{}@127.0.0.1", self.login),
                ]);
                let hop: Vec<String> = hop.iter().map(|word| shell_quote(word)).collect();
                command
                    .arg("-o")
                    .arg(format!("ProxyCommand={}", hop.join(" ")))
                    .args(["-p", &self.target.port.to_string()])
                    .arg(format!("{}@127.0.0.1", self.login));
            }
            Path3::Rampart => {
                command
                    .args(["-p", &self.server.ssh.port().to_string()])
                    .arg(format!("alice@{}@web-01@127.0.0.1", self.login));
            }
            Path3::Unrecorded => {
                command
                    .args(["-p", &self.server.ssh.port().to_string()])
                    .arg(format!("alice@{}@web-02@127.0.0.1", self.login));
            }
        }
        command
    }
}

/// One word for `sh -c` (OpenSSH runs a proxy command through the shell).
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:=@/%+".contains(c))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn rampart_binary() -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe()?;
    let binary = here.with_file_name("rampart");
    if !binary.exists() {
        eprintln!("building the release rampart binary first...");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "rampart"])
            .status()?;
        if !status.success() || !binary.exists() {
            bail!("cannot build {}", binary.display());
        }
    }
    Ok(binary)
}

fn setup() -> anyhow::Result<Lab> {
    for tool in ["ssh", "sshd", "ssh-keygen"] {
        if rampart_testkit::require_tool(tool).is_none() {
            bail!("{tool} is not installed (Debian: openssh-client, openssh-server)");
        }
    }
    let binary = rampart_binary()?;
    let rampart = Rampart::new(binary.to_str().context("binary path")?);
    let dir = rampart.scratch().to_path_buf();
    let (key, public) = ssh_keygen(&dir, "bench", "ed25519", "");
    // One key for everything: the benchmark measures transport, not authentication policy.
    let load_config = "MaxStartups 20000\nMaxSessions 100\n";
    let target = SshTarget::start_with(&public, load_config).context("sshd")?;
    let jump = SshTarget::start_with(&public, load_config).context("sshd")?;
    let login = current_user();
    rampart.ok(&["user", "add", "alice", "--key", public.to_str().unwrap()]);
    rampart.ok(&[
        "asset",
        "add",
        "web-01",
        "--host",
        "127.0.0.1",
        "--port",
        &target.port.to_string(),
    ]);
    rampart.ok(&[
        "account",
        "add",
        &format!("{login}@web-01"),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    rampart.ok(&["grant", "add", "--user", "alice", "--asset", "web-01"]);
    rampart.ok(&[
        "asset",
        "add",
        "web-02",
        "--host",
        "127.0.0.1",
        "--port",
        &target.port.to_string(),
    ]);
    rampart.ok(&[
        "account",
        "add",
        &format!("{login}@web-02"),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    rampart.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "web-02",
        "--no-recording",
    ]);
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  \
             LogLevel ERROR\n  IdentityFile {}\n  IdentitiesOnly yes\n  ControlMaster no\n",
            key.display()
        ),
    )?;
    // The load client opens 64 logins at once from one address: more than the default
    // per-source cap on unauthenticated connections, which is for attackers, not benchmarks.
    let server = rampart.serve_with_env(&[
        ("RAMPART_SSH_MAX_STARTUPS", "256"),
        ("RAMPART_SSH_PER_SOURCE_MAX_STARTUPS", "256"),
    ]);
    rampart.ok(&["user", "add", "bench-auditor", "--role", "auditor"]);
    let auditor = rampart
        .ok(&[
            "token",
            "create",
            "--user",
            "bench-auditor",
            "--scope",
            "read",
        ])
        .trim()
        .to_owned();
    Ok(Lab {
        _rampart: rampart,
        server,
        target,
        jump,
        login,
        config,
        key,
        auditor,
    })
}

/// Seconds for one run of `command` with its output discarded.
fn timed(mut command: Command, stdin: Stdio) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = command
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            command,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed().as_secs_f64())
}

fn zeros(size_mib: u64) -> anyhow::Result<Stdio> {
    let child = Command::new("head")
        .args(["-c", &format!("{}", size_mib * 1024 * 1024), "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()?;
    Ok(Stdio::from(child.stdout.context("head's output")?))
}

/// Fresh logins timed while the sessions are open (the "median of 20 tries").
const LOAD_LOGINS: usize = 20;
/// Keystrokes timed with and without the sessions open.
const LOAD_ECHOES: usize = 200;
/// How long Rampart's CPU is watched while the sessions sit idle.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

/// What is measured while the concurrency case's sessions are open.
struct UnderLoad {
    login_ms: f64,
    echo_us: f64,
    /// Rampart's CPU over [`IDLE_WINDOW`], as a share of one core.
    idle_cpu_share: f64,
}

fn under_load(lab: &Lab) -> anyhow::Result<UnderLoad> {
    let pid = lab.server.pid();
    let before = efficiency::process_cpu_seconds(pid)?;
    let watched = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let idle_cpu_share =
        (efficiency::process_cpu_seconds(pid)? - before) / watched.elapsed().as_secs_f64();
    let mut logins = Vec::with_capacity(LOAD_LOGINS);
    for _ in 0..LOAD_LOGINS {
        let mut command = lab.ssh(Path3::Rampart, &[]);
        command.arg("true");
        logins.push(timed(command, Stdio::null())? * 1000.0);
    }
    Ok(UnderLoad {
        login_ms: stats(&logins).median,
        echo_us: stats(&echo_micros(lab, LOAD_ECHOES)?).median,
        idle_cpu_share,
    })
}

/// Keystroke round trips through Rampart, in microseconds.
fn echo_micros(lab: &Lab, count: usize) -> anyhow::Result<Vec<f64>> {
    Ok(echo_round_trips(lab, Path3::Rampart, count)?
        .iter()
        .map(|t| t * 1e6)
        .collect())
}

/// Round-trip times of single keystrokes through a remote pty running `cat`, in seconds.
fn echo_round_trips(lab: &Lab, path: Path3, count: usize) -> anyhow::Result<Vec<f64>> {
    let mut child = lab
        .ssh(path, &["-tt"])
        .arg("stty raw -echo; echo ready; exec cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        stdout.read_exact(&mut byte)?;
        seen.push(byte[0]);
    }
    // Skip the rest of the line.
    loop {
        stdout.read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            break;
        }
    }
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let sent = b'a' + (i % 26) as u8;
        let start = Instant::now();
        stdin.write_all(&[sent])?;
        stdin.flush()?;
        loop {
            stdout.read_exact(&mut byte)?;
            if byte[0] == sent {
                break;
            }
        }
        times.push(start.elapsed().as_secs_f64());
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    Ok(times)
}

#[derive(Debug, Clone)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    p99: f64,
}

fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        p99: at(0.99),
    }
}

/// One row of the report.
struct Row {
    case: String,
    unit: &'static str,
    /// Higher is better (throughput) or lower is better (time).
    higher_is_better: bool,
    per_path: Vec<(Path3, Stats)>,
    /// Transfers: what the path cost in CPU, medians per path.
    cpu_per_gib: Vec<(Path3, Cpu)>,
    /// Recorded transfers: how long the relay waited for the recorder, medians.
    recorder: Option<RecorderWait>,
}

impl Row {
    fn stat(&self, path: Path3) -> &Stats {
        &self.per_path.iter().find(|(p, _)| *p == path).unwrap().1
    }

    /// Rampart over `other`, oriented so that above 1 means Rampart is better.
    fn ratio(&self, other: Path3) -> f64 {
        self.ratio_of(Path3::Rampart, other)
    }

    /// `path` over `other`, oriented so that above 1 means `path` is better.
    fn ratio_of(&self, path: Path3, other: Path3) -> f64 {
        let (r, o) = (self.stat(path).median, self.stat(other).median);
        if self.higher_is_better { r / o } else { o / r }
    }
}

/// Runs `case` for every path, alternating paths within each round so noise hits all alike.
fn measure<T>(
    runs: usize,
    mut case: impl FnMut(Path3) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<(Path3, Vec<T>)>> {
    for path in PATHS {
        case(path)?; // warm-up
    }
    let mut results: Vec<(Path3, Vec<T>)> = PATHS.iter().map(|p| (*p, Vec::new())).collect();
    for _ in 0..runs {
        for (path, values) in results.iter_mut() {
            values.push(case(*path)?);
        }
    }
    Ok(results)
}

/// How long the relay waited for the recorder during a recorded transfer (Rampart's
/// `rampart_recorder_wait_seconds` summary): seconds per GiB moved, and the hand-offs' size.
#[derive(Debug, Clone, Copy)]
struct RecorderWait {
    seconds_per_gib: f64,
    kib_per_handoff: f64,
    /// Where the writers' time went, seconds per GiB: queued, write(2), hashing, the answer's
    /// way back (none from a binary without these metrics).
    stages: Option<[f64; 4]>,
}

/// What a transfer cost in CPU.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    /// The CPU seconds its path spent per GiB moved (clients, both sshd and Rampart: see
    /// `efficiency`).
    path_per_gib: f64,
    /// Rampart's own share of it (the bastion's cost, what a node of its own would pay).
    rampart_per_gib: f64,
    /// The machine's cores kept busy meanwhile, by anything (`/proc/stat`): at the core count,
    /// the path is bound by CPU.
    busy_cores: f64,
}

/// One transfer's figures.
#[derive(Debug, Clone, Copy)]
struct Moved {
    mib_per_second: f64,
    cpu: Cpu,
    /// What Rampart's recorder held the relay back (zero hand-offs on unrecorded paths).
    recorder: Option<RecorderWait>,
}

/// A transfer row from its samples.
fn transfer_row(case: String, samples: &[(Path3, Vec<Moved>)]) -> Row {
    let median = |values: Vec<f64>| stats(&values).median;
    let recorder = samples
        .iter()
        .find(|(p, _)| *p == Path3::Rampart)
        .and_then(|(_, v)| {
            let waits: Vec<RecorderWait> = v.iter().filter_map(|s| s.recorder).collect();
            (!waits.is_empty()).then(|| RecorderWait {
                seconds_per_gib: median(waits.iter().map(|w| w.seconds_per_gib).collect()),
                kib_per_handoff: median(waits.iter().map(|w| w.kib_per_handoff).collect()),
                stages: waits.iter().all(|w| w.stages.is_some()).then(|| {
                    std::array::from_fn(|stage| {
                        median(
                            waits
                                .iter()
                                .filter_map(|w| w.stages.map(|stages| stages[stage]))
                                .collect(),
                        )
                    })
                }),
            })
        });
    Row {
        case,
        unit: "MiB/s",
        higher_is_better: true,
        per_path: samples
            .iter()
            .map(|(p, v)| {
                (
                    *p,
                    stats(&v.iter().map(|s| s.mib_per_second).collect::<Vec<_>>()),
                )
            })
            .collect(),
        cpu_per_gib: samples
            .iter()
            .map(|(p, v)| {
                let of =
                    |figure: fn(&Cpu) -> f64| median(v.iter().map(|s| figure(&s.cpu)).collect());
                let cpu = Cpu {
                    path_per_gib: of(|cpu| cpu.path_per_gib),
                    rampart_per_gib: of(|cpu| cpu.rampart_per_gib),
                    busy_cores: of(|cpu| cpu.busy_cores),
                };
                (*p, cpu)
            })
            .collect(),
        recorder,
    }
}

/// One transfer of `mib` MiB.
fn transfer(lab: &Lab, command: Command, stdin: Stdio, mib: f64) -> anyhow::Result<Moved> {
    let servers = [lab.target.pid(), lab.jump.pid(), lab.server.pid()];
    let before = efficiency::path_cpu_seconds(&servers)?;
    let rampart_before = efficiency::process_cpu_seconds(lab.server.pid())?;
    let waited_before = recorder_wait(lab)?;
    let machine_before = efficiency::machine_cpu_seconds()?;
    let seconds = timed(command, stdin)?;
    let machine = efficiency::machine_cpu_seconds()?;
    // The target's per-connection sshd is reaped (and counted) a moment after the client ends.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let cpu = efficiency::path_cpu_seconds(&servers)? - before;
    let rampart_cpu = efficiency::process_cpu_seconds(lab.server.pid())? - rampart_before;
    let waited = recorder_wait(lab)?;
    let handoffs = waited.handoffs - waited_before.handoffs;
    let gib = mib / 1024.0;
    let recorder = (handoffs > 0.0).then(|| RecorderWait {
        seconds_per_gib: (waited.seconds - waited_before.seconds) / gib,
        stages: waited
            .stages
            .zip(waited_before.stages)
            .map(|(after, before)| {
                std::array::from_fn(|stage| (after[stage] - before[stage]) / gib)
            }),
        kib_per_handoff: mib * 1024.0 / handoffs,
    });
    Ok(Moved {
        mib_per_second: mib / seconds,
        cpu: Cpu {
            path_per_gib: cpu / gib,
            rampart_per_gib: rampart_cpu / gib,
            busy_cores: (machine.0 - machine_before.0) / (machine.1 - machine_before.1) * cores(),
        },
        recorder,
    })
}

/// Rampart's recorder figures so far, from its `/metrics`.
struct RecorderSoFar {
    seconds: f64,
    handoffs: f64,
    /// Seconds queued, writing, hashing, answering (none from an older binary).
    stages: Option<[f64; 4]>,
}

/// Rampart's recorder wait so far, from its `/metrics`.
fn recorder_wait(lab: &Lab) -> anyhow::Result<RecorderSoFar> {
    let bearer = format!("Bearer {}", lab.auditor);
    let response =
        lab.server
            .client()
            .request("GET", "/metrics", &[("Authorization", &bearer)], None);
    if response.status != 200 {
        bail!("GET /metrics answered {}", response.status);
    }
    let body = response.text();
    let sample = |name: &str| {
        body.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("/metrics has no {name}"))
    };
    let stage = |stage: &str| {
        sample(&format!(
            "rampart_recorder_seconds_total{{stage=\"{stage}\"}}"
        ))
        .ok()
    };
    let stages = ["queued", "write", "hash", "answer"].map(stage);
    Ok(RecorderSoFar {
        seconds: sample("rampart_recorder_wait_seconds_sum")?,
        handoffs: sample("rampart_recorder_wait_seconds_count")?,
        stages: stages
            .iter()
            .all(Option::is_some)
            .then(|| stages.map(|stage| stage.unwrap_or_default())),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse().quickened();
    if args.sessions > 10_000 {
        bail!("--sessions is at most 10000");
    }
    if args.sessions_only && args.sessions == 0 {
        bail!("--sessions-only needs --sessions above 0");
    }
    if args.cluster_only {
        if args.sessions == 0 {
            bail!("--cluster-only needs --sessions above 0");
        }
        let binary = rampart_binary()?;
        let report = json!({
            "cluster": cluster::run(binary.to_str().context("binary path")?, args.sessions)?,
        });
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
        return Ok(());
    }
    if args.desktop_only {
        let binary = rampart_binary()?;
        let report = json!({
            "desktop": desktop::run(binary.to_str().context("binary path")?, args.desktop_seconds)?,
        });
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
        return Ok(());
    }
    if args.databases_only {
        let binary = rampart_binary()?;
        let report = json!({
            "databases": databases::run(
                binary.to_str().context("binary path")?,
                args.runs,
                args.db_seconds,
            )?,
        });
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
        return Ok(());
    }
    let lab = setup()?;
    let load_at_start = efficiency::load_average();
    if let Some(load) = load_at_start {
        eprintln!("load average at the start: {load:.2} (figures from a busy machine are noisy)");
    }
    eprintln!("rampart serve runs as pid {}", lab.server.pid());
    let mut rows = Vec::new();
    let mib = args.size_mib as f64;

    if !args.sessions_only {
        for cipher in ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"] {
            let short = cipher.split(['-', '@']).next().unwrap_or(cipher);
            let option = format!("Ciphers={cipher}");
            eprintln!("upload {} MiB, {short}...", args.size_mib);
            let upload = measure(args.runs, |path| {
                let mut command = lab.ssh(path, &["-o", &option]);
                command.arg("cat > /dev/null");
                transfer(&lab, command, zeros(args.size_mib)?, mib)
            })?;
            rows.push(transfer_row(
                format!("upload {} MiB ({short})", args.size_mib),
                &upload,
            ));
            eprintln!("download {} MiB, {short}...", args.size_mib);
            let download = measure(args.runs, |path| {
                let mut command = lab.ssh(path, &["-o", &option]);
                command.arg(format!("head -c {} /dev/zero", args.size_mib * 1024 * 1024));
                transfer(&lab, command, Stdio::null(), mib)
            })?;
            rows.push(transfer_row(
                format!("download {} MiB ({short})", args.size_mib),
                &download,
            ));
        }

        if args.transfers_only {
            print_table(&rows);
            print_cpu(&rows);
            print_recorder(&rows);
            let peak = efficiency::peak_resident_kib(lab.server.pid());
            if let Some(peak) = peak {
                println!(
                    "rampart's resident memory high-water mark (VmHWM): {:.1} MiB",
                    peak as f64 / 1024.0
                );
            }
            return Ok(());
        }
        eprintln!("connect and run true...");
        let connect = measure(args.runs.max(5), |path| {
            let mut command = lab.ssh(path, &["-o", "KexAlgorithms=curve25519-sha256"]);
            command.arg("true");
            Ok(timed(command, Stdio::null())? * 1000.0)
        })?;
        rows.push(Row {
            case: "connect + true (x25519)".into(),
            unit: "ms",
            higher_is_better: false,
            per_path: connect.iter().map(|(p, v)| (*p, stats(v))).collect(),
            cpu_per_gib: Vec::new(),
            recorder: None,
        });

        eprintln!("keystroke echo, {} round trips...", args.echoes);
        let mut echo = Vec::new();
        for path in PATHS {
            let times: Vec<f64> = echo_round_trips(&lab, path, args.echoes)?
                .iter()
                .map(|t| t * 1e6)
                .collect();
            echo.push((path, stats(&times)));
        }
        rows.push(Row {
            case: "keystroke echo".into(),
            unit: "µs",
            higher_is_better: false,
            per_path: echo,
            cpu_per_gib: Vec::new(),
            recorder: None,
        });

        print_table(&rows);
        print_cpu(&rows);
        print_recorder(&rows);
    }
    let mut report = json!({
        "rows": rows.iter().map(|r| json!({
            "case": r.case,
            "unit": r.unit,
            "paths": r.per_path.iter().map(|(p, s)| json!({
                "path": p.name(), "median": s.median, "min": s.min, "max": s.max, "p99": s.p99,
            })).collect::<Vec<_>>(),
            "rampart_vs_direct": r.ratio(Path3::Direct),
            "rampart_vs_jump": r.ratio(Path3::Jump),
            "recorded_vs_unrecorded": r.ratio_of(Path3::Rampart, Path3::Unrecorded),
            "cpu_core_seconds_per_gib": r.cpu_per_gib.iter().map(|(p, c)| json!({
                "path": p.name(), "median": c.path_per_gib, "rampart_median": c.rampart_per_gib,
                "machine_busy_cores_median": c.busy_cores,
            })).collect::<Vec<_>>(),
            "recorder_wait": r.recorder.map(|w| json!({
                "seconds_per_gib": w.seconds_per_gib, "kib_per_handoff": w.kib_per_handoff,
                "stages_seconds_per_gib": w.stages.map(|[queued, write, hash, answer]| json!({
                    "queued": queued, "write": write, "hash": hash, "answer": answer,
                })),
            })),
        })).collect::<Vec<_>>(),
        "load_average_at_start": load_at_start,
    });

    if args.sessions > 0 {
        eprintln!(
            "opening {} concurrent interactive sessions through Rampart...",
            args.sessions
        );
        // Without load first, for the comparison the issue asks for: the keystroke echo.
        let echo_idle = stats(&echo_micros(&lab, LOAD_ECHOES)?).median;
        let (result, under_load) = load::run(
            &lab.key,
            lab.server.ssh,
            &format!("alice@{}@web-01", lab.login),
            args.sessions,
            lab.server.pid(),
            || under_load(&lab),
        )?;
        let under_load = under_load?;
        println!();
        println!(
            "concurrency: {} sessions open ({} failed to open, {} did not echo their own token)",
            result.open, result.errors, result.echo_failures
        );
        println!(
            "  rampart memory: {:.1} MiB before, {:.1} MiB with the sessions open: {:.0} KiB per session (goal: at most 96 KiB)",
            result.rss_before_kib as f64 / 1024.0,
            result.rss_with_kib as f64 / 1024.0,
            result.per_session_kib
        );
        println!(
            "  a fresh login (ssh ... true) while they are open: {:.0} ms median of {LOAD_LOGINS} (goal: under 300 ms)",
            under_load.login_ms
        );
        println!(
            "  keystroke echo while they are open: {:.0} us median, {:+.0} us against {:.0} us before (goal: within +100 us)",
            under_load.echo_us,
            under_load.echo_us - echo_idle,
            echo_idle
        );
        println!(
            "  rampart's CPU while they sit idle (live enforcement's tick, timers, keepalives): {:.1}% of one core (goal: under 5%)",
            under_load.idle_cpu_share * 100.0
        );
        println!("  time to open them all: {:.1} s", result.open_seconds);
        report["concurrency"] = json!({
            "sessions": args.sessions, "open": result.open, "errors": result.errors,
            "echo_failures": result.echo_failures,
            "rss_before_kib": result.rss_before_kib, "rss_with_kib": result.rss_with_kib,
            "per_session_kib": result.per_session_kib,
            "fresh_login_ms_median": under_load.login_ms,
            "echo_us_median": under_load.echo_us, "echo_us_median_before": echo_idle,
            "idle_cpu_share_of_one_core": under_load.idle_cpu_share,
            "open_seconds": result.open_seconds,
        });
    }
    report["rampart_rss_kib_at_end"] = json!(resident_kib(lab.server.pid()));
    let peak = efficiency::peak_resident_kib(lab.server.pid());
    report["rampart_peak_rss_kib"] = json!(peak);
    if let Some(peak) = peak {
        println!(
            "rampart's resident memory high-water mark (VmHWM): {:.1} MiB",
            peak as f64 / 1024.0
        );
    }
    if args.sessions_only {
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
        return Ok(());
    }
    // The network-domain case (its own lab: a gateway, a bastion and a target sshd).
    let binary = rampart_binary()?;
    report["domain_gateway"] = domain_hop::run(
        binary.to_str().context("binary path")?,
        args.runs,
        args.size_mib,
    )?;
    report["databases"] = databases::run(
        binary.to_str().context("binary path")?,
        args.runs,
        args.db_seconds,
    )?;
    // About a minute: two sessions of `--desktop-seconds`.
    if desktop::tools_present() {
        report["desktop"] = desktop::run(
            binary.to_str().context("binary path")?,
            args.desktop_seconds,
        )?;
    } else {
        eprintln!("desktop case skipped: Xvfb, x11vnc, xterm or xsetroot is not installed");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    if !args.no_history {
        history::record(&args.history, args.quick, &ratios(&rows))?;
    }
    Ok(())
}

/// The ratios the regression guard follows.
fn ratios(rows: &[Row]) -> Vec<history::Ratio> {
    let mut ratios = Vec::new();
    for row in rows {
        let mut push = |what, value: f64| {
            if value.is_finite() {
                ratios.push(history::Ratio {
                    case: row.case.clone(),
                    what,
                    value,
                });
            }
        };
        push("vs direct", row.ratio(Path3::Direct));
        push("vs jump host", row.ratio(Path3::Jump));
        if row.unit == "MiB/s" {
            push(
                "recorded / unrecorded",
                row.ratio_of(Path3::Rampart, Path3::Unrecorded),
            );
        }
    }
    ratios
}

/// CPU seconds per GiB of each transfer, per path: efficiency beside speed; Rampart's own
/// share; and how many of the machine's cores were busy meanwhile.
fn print_cpu(rows: &[Row]) {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|row| !row.cpu_per_gib.is_empty())
        .collect();
    let path = |cpu: &Cpu| format!("{:.2}", cpu.path_per_gib);
    let with_own = |cpu: &Cpu| format!("{:.2} ({:.2})", cpu.path_per_gib, cpu.rampart_per_gib);
    print_cpu_table(
        &rows,
        "cpu per GiB",
        "CPU seconds of clients, sshd, jump host and Rampart per GiB moved, medians; in brackets Rampart's own",
        [&path, &path, &with_own, &with_own],
    );
    let busy = |cpu: &Cpu| format!("{:.2}", cpu.busy_cores);
    let note = format!(
        "the machine's cores busy during the transfer, by anything, of {}: near that, the path is bound by CPU",
        cores()
    );
    print_cpu_table(&rows, "cores busy", &note, [&busy, &busy, &busy, &busy]);
}

/// One table of [`print_cpu`]: a row per transfer, a cell per path (in `PATHS`' order) as
/// `cells` says.
fn print_cpu_table(rows: &[&Row], title: &str, note: &str, cells: [&dyn Fn(&Cpu) -> String; 4]) {
    println!();
    println!(
        "{title:<28} {:>10} {:>10} {:>10} {:>22}   ({note})",
        "direct", "jump host", "rampart", "rampart, no recording"
    );
    for row in rows {
        let [direct, jump, rampart, unrecorded] = std::array::from_fn(|i| {
            row.cpu_per_gib
                .iter()
                .find(|(p, _)| *p == PATHS[i])
                .map_or_else(|| "-".to_owned(), |(_, cpu)| cells[i](cpu))
        });
        println!(
            "{:<28} {direct:>10} {jump:>10} {rampart:>10} {unrecorded:>22}",
            row.case
        );
    }
}

/// The machine's CPU count.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// Where a recorded transfer waits: the relay forwards nothing before it is in the recording,
/// so the time it waits for the recorder's answers is part of what recording costs.
fn print_recorder(rows: &[Row]) {
    let waits: Vec<(&str, RecorderWait)> = rows
        .iter()
        .filter_map(|row| Some((row.case.as_str(), row.recorder?)))
        .collect();
    if waits.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<28} {:>16} {:>16} {:>30}   (Rampart recorded: time the relay waited for the recorder, and the writers' time by stage, s per GiB, medians)",
        "recorder wait", "s per GiB", "KiB per hand-off", "queued / write / hash / answer"
    );
    for (case, wait) in waits {
        let stages = wait.stages.map_or_else(
            || "-".to_owned(),
            |[queued, write, hash, answer]| {
                format!("{queued:.2} / {write:.2} / {hash:.2} / {answer:.2}")
            },
        );
        println!(
            "{case:<28} {:>16.2} {:>16.0} {stages:>30}",
            wait.seconds_per_gib, wait.kib_per_handoff
        );
    }
}

fn goal(row: &Row) -> String {
    let (vs_direct, vs_jump) = (row.ratio(Path3::Direct), row.ratio(Path3::Jump));
    let judge = |ok: bool| if ok { "meets" } else { "misses" };
    if row.unit == "MiB/s" {
        // Commands are recorded in full: what that costs is recorded over unrecorded Rampart.
        let recording = row.ratio_of(Path3::Rampart, Path3::Unrecorded);
        format!(
            "{} >=1.5x jump, {} >=0.9x direct, {} >=0.95x unrecorded",
            judge(vs_jump >= 1.5),
            judge(vs_direct >= 0.9),
            judge(recording >= 0.95)
        )
    } else if row.unit == "ms" {
        format!("{} <=1.3x direct", judge(vs_direct >= 1.0 / 1.3))
    } else {
        let added_median = row.stat(Path3::Rampart).median - row.stat(Path3::Direct).median;
        let added_p99 = row.stat(Path3::Rampart).p99 - row.stat(Path3::Direct).p99;
        format!(
            "{} +{added_median:.0}µs median (<=100), {} +{added_p99:.0}µs p99 (<=500)",
            judge(added_median <= 100.0),
            judge(added_p99 <= 500.0)
        )
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<28} {:>24} {:>24} {:>24} {:>24} {:>9} {:>9} {:>9}  goal",
        "case",
        "direct",
        "jump host",
        "rampart",
        "rampart, no recording",
        "vs direct",
        "vs jump",
        "rec cost"
    );
    for row in rows {
        let cell = |path: Path3| {
            let s = row.stat(path);
            let p99 = if row.unit == "µs" {
                format!(" p99 {:.0}", s.p99)
            } else {
                String::new()
            };
            format!(
                "{:.0} ({:.0}-{:.0}){p99} {}",
                s.median, s.min, s.max, row.unit
            )
        };
        println!(
            "{:<28} {:>24} {:>24} {:>24} {:>24} {:>8.2}x {:>8.2}x {:>8.2}x  {}",
            row.case,
            cell(Path3::Direct),
            cell(Path3::Jump),
            cell(Path3::Rampart),
            cell(Path3::Unrecorded),
            row.ratio(Path3::Direct),
            row.ratio(Path3::Jump),
            row.ratio_of(Path3::Rampart, Path3::Unrecorded),
            goal(row)
        );
    }
    println!(
        "(ratios are oriented so that above 1.00x means Rampart does better; \"rec cost\" is \
         recorded over unrecorded Rampart: commands are recorded in full, byte for byte, so a \
         transfer writes its whole stream to the recording)"
    );
}
