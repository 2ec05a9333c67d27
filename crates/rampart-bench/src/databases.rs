//! The database cases (issue 16): `pgbench -S` in the simple and the prepared protocol, and
//! `redis-benchmark` GET/SET, each straight to the server and through Rampart, in one run, on
//! loopback. Goal: Rampart at least 0.9x direct for `pgbench -S`. Both ways are plain TCP (the
//! Rampart listeners allow plain loopback here), so the ratio is Rampart's relay and query log,
//! not TLS. Timings are reported, never asserted.
//!
//! A third way is the fair baseline, as the OpenSSH jump host is for SSH: `socat` relaying the
//! same TCP connections and doing nothing else (no parsing, no recording). On a small machine
//! where the client, the server and the relay share the cores, no relay reaches the direct
//! figure; Rampart / socat says what Rampart's own work (parsing, recording, the query log)
//! costs beyond relaying.
//!
//! PostgreSQL runs as the `rampart-target` user when the bench runs as root (as in the tests).

use anyhow::{Context, bail};
use rampart_testkit::Rampart;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-db-password";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn as_db_user(program: &Path) -> anyhow::Result<Command> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(Command::new(program));
    }
    let user = nix::unistd::User::from_name("rampart-target")?
        .context("user rampart-target (PostgreSQL refuses root); .ci/run creates it")?;
    let mut command = Command::new("setpriv");
    command.args([
        &format!("--reuid={}", user.uid),
        &format!("--regid={}", user.gid),
        "--clear-groups",
        "--",
    ]);
    command.arg(program);
    Ok(command)
}

fn postgres_bin() -> anyhow::Result<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .find(|bin| bin.join("initdb").exists())
        .context("PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

fn start_postgres(dir: &Path) -> anyhow::Result<(Killed, u16)> {
    let bin = postgres_bin()?;
    let data = dir.join("data");
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, PASSWORD)?;
    if nix::unistd::geteuid().is_root()
        && let Some(user) = nix::unistd::User::from_name("rampart-target")?
    {
        for path in [dir, &pwfile] {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
    }
    let init = as_db_user(&bin.join("initdb"))?
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=md5",
            "--pwfile",
        ])
        .arg(&pwfile)
        .output()?;
    if !init.status.success() {
        bail!("initdb: {}", String::from_utf8_lossy(&init.stderr));
    }
    let port = free_port()?;
    let child = as_db_user(&bin.join("postgres"))?
        .arg("-D")
        .arg(&data)
        .args(["-k", "", "-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Command::new(bin.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .output()?
        .status
        .success()
    {
        if Instant::now() > deadline {
            bail!("PostgreSQL did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((child, port))
}

fn start_redis(dir: &Path) -> anyhow::Result<(Killed, u16)> {
    let port = free_port()?;
    let config = dir.join("redis.conf");
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n\
             user default off\nuser app on >{PASSWORD} ~* &* +@all\n",
            dir.display()
        ),
    )?;
    let child = Killed(
        Command::new("redis-server")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ping = Command::new("redis-cli")
            .args([
                "-p",
                &port.to_string(),
                "--user",
                "app",
                "--no-auth-warning",
            ])
            .args(["-a", PASSWORD, "PING"])
            .output()?;
        if String::from_utf8_lossy(&ping.stdout).trim() == "PONG" {
            break;
        }
        if Instant::now() > deadline {
            bail!("redis-server did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((child, port))
}

/// `socat` relaying a loopback port to `target` (one process per connection, nothing else).
fn start_relay(target: u16) -> anyhow::Result<(Killed, u16)> {
    let port = free_port()?;
    let child = Killed(
        Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("TCP:127.0.0.1:{target},nodelay"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("socat (the relay baseline) is needed: apt-get install socat")?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("socat did not listen");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, port))
}

/// The listener port a protocol's banner line names.
fn listener_port(server: &rampart_testkit::Server, protocol: &str) -> anyhow::Result<u16> {
    let banner = format!("{protocol}: listening on ");
    server
        .banner
        .iter()
        .find_map(|line| line.strip_prefix(banner.as_str()))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .map(|addr| addr.port())
        .with_context(|| format!("the banner names the {protocol} listener"))
}

/// `tps = N` from pgbench's report.
fn pgbench_tps(port: u16, user: &str, password: &str, args: &[&str]) -> anyhow::Result<f64> {
    let out = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-n"])
        .args(args)
        .arg("postgres")
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .context("pgbench printed no tps")
}

/// Requests per second of `redis-benchmark -t test` (`--csv`).
fn redis_rps(port: u16, user: &str, password: &str, test: &str) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--user", user])
        .args([
            "-a", password, "-t", test, "-n", "20000", "-c", "10", "--csv",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|line| {
            line.to_ascii_uppercase()
                .contains(&format!("\"{}\"", test.to_uppercase()))
        })
        .find_map(|line| {
            line.split(',')
                .nth(1)
                .map(|n| n.trim_matches('"'))
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| format!("redis-benchmark {test}: {text}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the database cases with Rampart's binary `binary`, `runs` timed runs per case and way
/// (alternating), `seconds` per pgbench run; prints a table and returns it as JSON.
pub fn run(binary: &str, runs: usize, seconds: u64) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("rampart-bench-db")
        .tempdir()?;
    let pg_dir = dir.path().join("pg");
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&pg_dir)?;
    std::fs::create_dir_all(&redis_dir)?;
    let (_pg, pg_port) = start_postgres(&pg_dir)?;
    let (_redis, redis_port) = start_redis(&redis_dir)?;

    let rampart = Rampart::new(binary);
    rampart.ok(&["user", "add", "alice"]);
    for (asset, endpoint, account) in [
        ("pg-01", format!("postgres:{pg_port}"), "postgres"),
        ("redis-01", format!("redis:{redis_port}"), "app"),
    ] {
        rampart.ok(&[
            "asset",
            "add",
            asset,
            "--host",
            "127.0.0.1",
            "--endpoint",
            &endpoint,
        ]);
        rampart.ok_with_stdin(
            &[
                "account",
                "add",
                &format!("{account}@{asset}"),
                "--password-stdin",
            ],
            PASSWORD.as_bytes(),
        );
    }
    rampart.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "pg-01",
        "--actions",
        "postgres:connect",
    ]);
    rampart.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "redis-01",
        "--actions",
        "redis:connect",
    ]);
    let token = rampart
        .ok(&["db", "token", "create", "--user", "alice", "--ttl", "8h"])
        .trim()
        .to_owned();
    let server = rampart.serve_with_env(&[
        ("RAMPART_POSTGRES_LISTEN", "127.0.0.1:0"),
        ("RAMPART_POSTGRES_ALLOW_PLAIN_LOOPBACK", "true"),
        ("RAMPART_REDIS_LISTEN", "127.0.0.1:0"),
        ("RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK", "true"),
    ]);
    let rampart_pg = listener_port(&server, "postgres")?;
    let rampart_redis = listener_port(&server, "redis")?;
    let (_pg_relay, relay_pg) = start_relay(pg_port)?;
    let (_redis_relay, relay_redis) = start_relay(redis_port)?;

    eprintln!("pgbench -i (direct)...");
    pgbench_tps(pg_port, "postgres", PASSWORD, &["-i", "-q"]).ok();
    let seconds = seconds.to_string();
    let mut rows = Vec::new();
    for mode in ["simple", "prepared"] {
        eprintln!("pgbench -S -M {mode}, {runs} x {seconds} s each way...");
        let (mut direct, mut relayed, mut through) = (Vec::new(), Vec::new(), Vec::new());
        let args = [
            "-S",
            "-M",
            mode,
            "-c",
            "4",
            "-j",
            "2",
            "-T",
            seconds.as_str(),
        ];
        // One warm-up each way, then alternating timed runs.
        pgbench_tps(
            pg_port,
            "postgres",
            PASSWORD,
            &["-S", "-M", mode, "-t", "200"],
        )?;
        pgbench_tps(
            rampart_pg,
            "alice@pg-01",
            &token,
            &["-S", "-M", mode, "-t", "200"],
        )?;
        for _ in 0..runs {
            direct.push(pgbench_tps(pg_port, "postgres", PASSWORD, &args)?);
            relayed.push(pgbench_tps(relay_pg, "postgres", PASSWORD, &args)?);
            through.push(pgbench_tps(rampart_pg, "alice@pg-01", &token, &args)?);
        }
        rows.push((
            format!("pgbench -S -M {mode} (4 clients)"),
            "tps",
            median(direct),
            median(relayed),
            median(through),
        ));
    }
    for test in ["get", "set"] {
        eprintln!("redis-benchmark -t {test}, {runs} runs each way...");
        let (mut direct, mut relayed, mut through) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            direct.push(redis_rps(redis_port, "app", PASSWORD, test)?);
            relayed.push(redis_rps(relay_redis, "app", PASSWORD, test)?);
            through.push(redis_rps(rampart_redis, "alice@redis-01", &token, test)?);
        }
        eprintln!("  direct {direct:?}, socat {relayed:?}, rampart {through:?} requests/s");
        rows.push((
            format!("redis-benchmark {} (10 clients)", test.to_uppercase()),
            "requests/s",
            median(direct),
            median(relayed),
            median(through),
        ));
    }
    println!();
    println!("databases (plain TCP on loopback every way; medians of {runs})");
    println!("| case | direct | socat relay | rampart | rampart / direct | rampart / socat |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut report = Vec::new();
    for (case, unit, direct, relayed, through) in &rows {
        let ratio = through / direct;
        let fair = through / relayed;
        println!(
            "| {case} | {direct:.0} {unit} | {relayed:.0} | {through:.0} | {ratio:.2}x | {fair:.2}x |"
        );
        report.push(json!({
            "case": case, "unit": unit, "direct": direct, "relay": relayed, "rampart": through,
            "rampart_vs_direct": ratio, "rampart_vs_relay": fair,
        }));
    }
    drop(server);
    Ok(Value::Array(report))
}
