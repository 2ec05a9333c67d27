//! Helpers for Rampart's integration tests: a `rampart` binary bound to a temporary data
//! directory, a running `rampart serve`, and the external tools tests use.
//!
//! External tools (OpenSSH and, later, database servers and browsers) are looked up on the
//! `PATH`. A test that lacks one prints why and returns early, unless `RAMPART_REQUIRE_TOOLS=1`
//! (set by CI), in which case it fails: in CI every test runs.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed step is a failed test"
)]

pub mod desktop;
pub mod load;
pub mod netns;
pub mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Environment variables that would change which data directory or key a command uses, or
/// which settings it runs with.
const RAMPART_VARIABLES: &[&str] = &[
    "RAMPART_CONFIG",
    "RAMPART_DATA_DIR",
    "RAMPART_MASTER_KEY",
    "RAMPART_MASTER_KEY_FILE",
    "RAMPART_STORE_URL",
    "RAMPART_SSH_LISTEN",
    "RAMPART_HTTP_LISTEN",
    "RAMPART_LOG",
    "RAMPART_AUTH_ALLOW_FROM",
    "RAMPART_AUTH_DENY_FROM",
    "RAMPART_AUTH_LOGIN_HOURS",
    "RAMPART_AUTH_TRUSTED_PROXIES",
    "RAMPART_AUTH_LOCKOUT_THRESHOLD",
    "RAMPART_AUTH_LOCKOUT_WINDOW",
    "RAMPART_AUTH_LOCKOUT_DURATION",
    "RAMPART_AUTH_REQUIRE_MFA",
    "RAMPART_SESSION_IDLE_TIMEOUT",
    "RAMPART_SESSION_MAX_DURATION",
    "RAMPART_SSH_LOGIN_GRACE_TIME",
    "RAMPART_SSH_MAX_STARTUPS",
    "RAMPART_SSH_PER_SOURCE_MAX_STARTUPS",
    "RAMPART_POSTGRES_LISTEN",
    "RAMPART_POSTGRES_ALLOW_PLAIN_LOOPBACK",
    "RAMPART_POSTGRES_LOGIN_GRACE_TIME",
    "RAMPART_WEBAUTHN_RP_ID",
    "RAMPART_WEBAUTHN_RP_ORIGIN",
];

/// A free TCP port on loopback (free now; the caller binds it soon after). A server that needs
/// several takes them from [`free_ports`]: two picked one after the other can be the same port.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` free loopback ports, all different: each is held until all are picked (picked one at a
/// time and released at once, two could be the same port, and the server then fails to bind
/// one; this once failed a CI run).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    held.each_ref()
        .map(|listener| listener.local_addr().unwrap().port())
}

/// A test cannot run here: under `RAMPART_REQUIRE_TOOLS=1` (CI) this is a failure; otherwise it
/// prints `skipped: REASON` and, when `RAMPART_SKIP_LOG` names a file, appends the reason there so
/// that `.ci/run` can count skips (cargo's own summary cannot tell a skip from a pass).
pub fn skip_or_fail(reason: &str) {
    let message = format!("skipped: {reason}");
    if std::env::var("RAMPART_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{message}; RAMPART_REQUIRE_TOOLS=1 makes this a failure");
    }
    eprintln!("{message}");
    if let Some(log) = std::env::var_os("RAMPART_SKIP_LOG") {
        use std::io::Write as _;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut file| writeln!(file, "{reason}"));
        if let Err(error) = appended {
            eprintln!("cannot write RAMPART_SKIP_LOG: {error}");
        }
    }
}

/// Finds an external tool, or explains why the test cannot run. Returns `None` to skip, and
/// panics instead when `RAMPART_REQUIRE_TOOLS=1`.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        skip_or_fail(&format!(
            "{name} is not installed (Debian: see README, 'System packages')"
        ));
    }
    found
}

/// The local user account (and its password) that `.ci/run` creates for password-target tests.
pub const PASSWORD_TARGET_USER: &str = "rampart-target";
pub const PASSWORD_TARGET_PASSWORD: &str = "rampart-target-password-7c1e";

/// Whether the password-target account exists; explains or fails like [`require_tool`].
pub fn require_password_target_user() -> bool {
    let exists = nix::unistd::User::from_name(PASSWORD_TARGET_USER)
        .ok()
        .flatten()
        .is_some();
    if !exists {
        skip_or_fail(&format!(
            "local user {PASSWORD_TARGET_USER} does not exist (.ci/run creates it with its test password)"
        ));
    }
    exists
}

/// A `rampart` binary pointed at its own temporary data directory.
#[derive(Debug)]
pub struct Rampart {
    bin: PathBuf,
    tmp: tempfile::TempDir,
    extra: Vec<String>,
    auto_init: bool,
}

impl Rampart {
    /// `bin` is the test crate's `env!("CARGO_BIN_EXE_rampart")`. The first administration
    /// command on the still missing data directory runs `rampart init` before it, as an operator
    /// would (only `serve` and `init` create one).
    pub fn new(bin: &str) -> Self {
        Self {
            bin: PathBuf::from(bin),
            tmp: tempfile::tempdir().unwrap(),
            extra: Vec::new(),
            auto_init: true,
        }
    }

    /// Like [`Rampart::new`], but never runs `rampart init` by itself.
    pub fn without_init(bin: &str) -> Self {
        Self {
            auto_init: false,
            ..Self::new(bin)
        }
    }

    /// Adds arguments to every later command (for example `--master-key-file FILE`).
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// A scratch directory beside the data directory, for key files and the like.
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let creates = matches!(args.first(), Some(&"serve" | &"init"))
            || args.starts_with(&["vault", "generate-key"]);
        if self.auto_init && !creates && !self.data_dir().join("rampart.db").exists() {
            let output = output_with_input(&mut self.command(&["init"]), b"");
            assert!(
                output.status.success(),
                "rampart init failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra);
        for name in RAMPART_VARIABLES {
            command.env_remove(name);
        }
        command
    }

    /// Runs a command with `stdin` as its standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        output_with_input(&mut self.command(args), stdin)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, b"")
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stdin(args, b"")
    }

    pub fn ok_with_stdin(&self, args: &[&str], stdin: &[u8]) -> String {
        let output = self.run_with_stdin(args, stdin);
        assert!(
            output.status.success(),
            "rampart {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command with `--json` that must succeed; returns the parsed output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Everything the administration commands can see, for "nothing changed" checks.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "users": self.json(&["user", "list"]),
            "groups": self.json(&["group", "list"]),
            "assets": self.json(&["asset", "list"]),
            "accounts": self.json(&["account", "list"]),
            "grants": self.json(&["grant", "list"]),
            "audit": self.json(&["audit", "list", "--limit", "100000"]),
        })
    }

    /// Starts `rampart serve` on loopback with the HTTP listener on a free port.
    pub fn serve(&self) -> Server {
        self.serve_with_env(&[])
    }

    /// Starts `rampart serve` with extra environment variables (`RAMPART_*` settings).
    pub fn serve_with_env(&self, env: &[(&str, &str)]) -> Server {
        self.serve_with_env_and_nofile(env, None)
    }

    /// Starts `rampart serve` with extra environment and, with `nofile`, under `prlimit` with
    /// that file descriptor limit (soft and hard).
    pub fn serve_with_env_and_nofile(&self, env: &[(&str, &str)], nofile: Option<u64>) -> Server {
        let args = [
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--ssh-listen",
            "127.0.0.1:0",
        ];
        let mut command = match nofile {
            None => self.command(&args),
            Some(limit) => {
                let inner = self.command(&args);
                let mut wrapped = Command::new("prlimit");
                wrapped
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(inner.get_program())
                    .args(inner.get_args());
                for name in RAMPART_VARIABLES {
                    wrapped.env_remove(name);
                }
                wrapped
            }
        };
        command.envs(env.iter().copied());
        self.spawn_serve(command)
    }

    /// Starts `rampart serve ARGS...` (they must name both listeners, e.g. an HTTP port the
    /// test chose, and may add `--config FILE`) with extra environment variables.
    pub fn serve_with_args(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let mut command = self.command(&all);
        command.envs(env.iter().copied());
        self.spawn_serve(command)
    }

    /// Starts `rampart serve` inside network namespace `ns` (see [`netns`]), its SSH listener
    /// on `ssh_listen` (an address of the namespace) and HTTP on the namespace's loopback.
    pub fn serve_in_netns(&self, ns: &str, ssh_listen: &str) -> Server {
        self.serve_in_netns_with_env(ns, ssh_listen, &[])
    }

    /// [`Self::serve_in_netns`] with extra environment variables (`RAMPART_*` settings).
    pub fn serve_in_netns_with_env(
        &self,
        ns: &str,
        ssh_listen: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let mut inner = self.command(&[
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--ssh-listen",
            ssh_listen,
        ]);
        inner.envs(env.iter().copied());
        self.spawn_serve(netns::in_netns(ns, &inner))
    }

    fn spawn_serve(&self, mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Both pipes are drained for the server's whole life: a full pipe would block the
        // server's next log line, and with it a runtime thread.
        let stderr = ServerOutput::drain(child.stderr.take().unwrap(), None);
        let (lines_tx, lines_rx) = mpsc::channel();
        let stdout = ServerOutput::drain(child.stdout.take().unwrap(), Some(lines_tx));
        let mut banner = Vec::new();
        let mut ssh = None;
        loop {
            match lines_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let address = |prefix: &str| {
                        line.strip_prefix(prefix)
                            .and_then(|rest| rest.split_whitespace().next())
                            .and_then(|addr| addr.parse::<SocketAddr>().ok())
                    };
                    ssh = ssh.or(address("ssh: listening on "));
                    let https = address("http: listening on https://");
                    let http = https.or_else(|| address("http: listening on http://"));
                    banner.push(line);
                    if let (Some(http), Some(ssh)) = (http, ssh) {
                        let tls = https.is_some();
                        return Server {
                            child,
                            stderr,
                            _stdout: stdout,
                            http,
                            ssh,
                            banner,
                            tls,
                            cert: tls.then(|| self.data_dir().join("keys").join("web-cert.pem")),
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = stderr.finish();
                    panic!("rampart serve did not start; stdout: {banner:?}; stderr: {stderr}");
                }
            }
        }
    }
}

/// One output pipe of a server, read to its end by a thread: lines go to `lines` while anyone
/// listens, and the newest [`ServerOutput::KEEP`] bytes are kept.
#[derive(Debug)]
struct ServerOutput {
    kept: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerOutput {
    const KEEP: usize = 4 << 20;

    fn drain(pipe: impl Read + Send + 'static, lines: Option<mpsc::Sender<String>>) -> Self {
        let kept = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let sink = kept.clone();
        let reader = std::thread::spawn(move || {
            let mut lines = lines;
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                {
                    let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                    sink.extend(line.as_bytes());
                    sink.push_back(b'\n');
                    let excess = sink.len().saturating_sub(Self::KEEP);
                    sink.drain(..excess);
                }
                if let Some(tx) = &lines
                    && tx.send(line).is_err()
                {
                    lines = None;
                }
            }
        });
        Self {
            kept,
            reader: Some(reader),
        }
    }

    fn empty() -> Self {
        Self {
            kept: std::sync::Arc::default(),
            reader: None,
        }
    }

    /// What was kept so far.
    fn snapshot(&self) -> String {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&kept.iter().copied().collect::<Vec<u8>>()).into_owned()
    }

    /// Everything kept, once the pipe has ended (the process exited). A child of the server
    /// that still holds the pipe open is waited for at most ten seconds.
    fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !reader.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        self.snapshot()
    }
}

/// A running `rampart serve`; killed on drop if still running.
#[derive(Debug)]
pub struct Server {
    child: Child,
    stderr: ServerOutput,
    _stdout: ServerOutput,
    pub http: SocketAddr,
    pub ssh: SocketAddr,
    /// The lines printed before the server was listening.
    pub banner: Vec<String>,
    /// Whether the HTTP listener serves HTTPS.
    pub tls: bool,
    /// The self-signed certificate the HTTPS listener presents (trusted by [`Server::client`]).
    pub cert: Option<PathBuf>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A GET over the server's HTTP(S); returns the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let response = self.client().request("GET", path, &[], None);
        (response.status, response.text())
    }

    /// An HTTP(S) client for this server, trusting only its own certificate.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.http, self.cert.as_deref())
    }

    /// Kills the server outright (SIGKILL), as a crash or `kill -9` would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        let stderr = std::mem::replace(&mut self.stderr, ServerOutput::empty()).finish();
        (status, stderr)
    }

    /// What the server has written to standard error so far (its newest 4 MiB).
    pub fn stderr(&self) -> String {
        self.stderr.snapshot()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said last: a panic or an error there is
        // often the reason.
        if std::thread::panicking() {
            let stderr = self.stderr.snapshot();
            let mut start = stderr.len().saturating_sub(16 * 1024);
            while !stderr.is_char_boundary(start) {
                start += 1;
            }
            let tail = &stderr[start..];
            eprintln!("--- the last lines of rampart serve's standard error ---\n{tail}");
        }
    }
}

/// Generates a key pair with the real `ssh-keygen`; returns (private, public) paths.
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            &format!("{name}@test"),
            "-f",
        ])
        .arg(&private)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed");
    let public = private.with_extension("pub");
    (private, public)
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path);
            }
        }
    }
    hits
}

/// Runs `command` with `input` on its standard input (written from a thread, so a command that
/// answers before it has read everything cannot deadlock the test) and collects its output.
pub fn output_with_input(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// The code an authenticator app that scanned `otpauth_uri` shows at `at_unix`, computed the
/// way an app would: from the URI's base32 `secret` and its parameters (SHA1, 6 digits, 30 s,
/// which are the only ones Rampart issues and apps reliably support).
pub fn totp_code(otpauth_uri: &str, at_unix: u64) -> String {
    let query = otpauth_uri
        .strip_prefix("otpauth://totp/")
        .and_then(|rest| rest.split_once('?'))
        .map(|(_, query)| query)
        .unwrap_or_else(|| panic!("not an otpauth://totp/ URI: {otpauth_uri}"));
    let parameter = |key: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    };
    for (key, expected) in [("algorithm", "SHA1"), ("digits", "6"), ("period", "30")] {
        if let Some(value) = parameter(key) {
            assert_eq!(value, expected, "{key} in {otpauth_uri}");
        }
    }
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_secret(otpauth_uri))
        .build()
        .unwrap()
        .generate(at_unix)
        .to_string()
}

/// The raw secret in an otpauth URI (its `secret` parameter, base32-decoded): what a canary
/// search for the secret in clear looks for, besides the base32 text.
pub fn totp_secret(otpauth_uri: &str) -> Vec<u8> {
    let secret = otpauth_uri
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {otpauth_uri}"));
    totp_rs::Secret::try_from_base32(secret)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// Seconds since 1970, as an authenticator app's clock reads them.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The name of the user running the tests (the account key-based targets log in as).
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap()
}

/// A real OpenSSH `sshd` on a loopback port, with its own host key and configuration; it lets
/// in the holders of the keys in `authorized_keys` and local users with their password.
#[derive(Debug)]
pub struct SshTarget {
    child: Child,
    dir: tempfile::TempDir,
    extra_config: String,
    /// Where sshd logs at `DEBUG3`, for tests that must see what reached it.
    log: Option<PathBuf>,
    /// In a network namespace: (namespace, listen address); else on loopback.
    place: Option<(String, String)>,
    pub port: u16,
}

impl SshTarget {
    /// The listening `sshd`'s process id (each connection is served by a child of it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `sshd`; `None` (after saying why) when it is not installed.
    pub fn start(authorized_key: &Path) -> Option<Self> {
        Self::start_with(authorized_key, "")
    }

    /// Starts `sshd` with extra configuration lines (for example `MaxStartups` for load tests).
    pub fn start_with(authorized_key: &Path, extra_config: &str) -> Option<Self> {
        Self::start_inner(authorized_key, extra_config, false)
    }

    /// Starts `sshd` logging every step at `DEBUG3` to a file ([`SshTarget::log`]), so a test
    /// can prove what a client did or did not send (for example: no authentication attempt).
    pub fn start_logging(authorized_key: &Path) -> Option<Self> {
        Self::start_logging_with(authorized_key, "")
    }

    /// [`SshTarget::start_logging`] with extra configuration lines.
    pub fn start_logging_with(authorized_key: &Path, extra_config: &str) -> Option<Self> {
        Self::start_inner(authorized_key, extra_config, true)
    }

    /// Starts `sshd` inside network namespace `ns`, listening on `address` port 22 (see
    /// [`netns`]); it is checked from inside the namespace, never from this one.
    pub fn start_in_netns(authorized_key: &Path, ns: &str, address: &str) -> Option<Self> {
        Self::start_placed(
            authorized_key,
            "",
            false,
            Some((ns.to_owned(), address.to_owned())),
        )
    }

    fn start_inner(authorized_key: &Path, extra_config: &str, log: bool) -> Option<Self> {
        Self::start_placed(authorized_key, extra_config, log, None)
    }

    fn start_placed(
        authorized_key: &Path,
        extra_config: &str,
        log: bool,
        place: Option<(String, String)>,
    ) -> Option<Self> {
        let sshd = require_tool("sshd")?;
        require_tool("ssh-keygen")?;
        // sshd insists on its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        ssh_keygen(dir.path(), "host_key", "ed25519", "");
        std::fs::copy(authorized_key, dir.path().join("authorized_keys")).unwrap();
        let log = log.then(|| dir.path().join("sshd.log"));
        let mut target = Self {
            child: Command::new("true").spawn().unwrap(),
            dir,
            extra_config: extra_config.to_owned(),
            log,
            port: if place.is_some() { 22 } else { 0 },
            place,
        };
        target.child.wait().unwrap();
        target.restart(&sshd);
        Some(target)
    }

    /// (Re)starts sshd on a free port, or on its old port after a key change.
    fn restart(&mut self, sshd: &Path) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.port == 0 {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            self.port = probe.local_addr().unwrap().port();
        }
        let dir = self.dir.path();
        // Sessions get an empty home: the machine's own shell start-up files (version managers
        // and the like) are no part of what the tests measure.
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = format!(
            "Port {port}\nListenAddress {listen}\nHostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nPidFile none\nSubsystem sftp internal-sftp\n\
             X11Forwarding yes\nAllowAgentForwarding yes\nLogLevel {level}\nSetEnv HOME={dir}/home\n{extra}\n",
            port = self.port,
            listen = self
                .place
                .as_ref()
                .map_or("127.0.0.1", |(_, addr)| addr.as_str()),
            dir = dir.display(),
            level = if self.log.is_some() {
                "DEBUG3"
            } else {
                "ERROR"
            },
            extra = self.extra_config
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let mut command = match &self.place {
            Some((ns, _)) => {
                let mut wrapped = Command::new("ip");
                wrapped.args(["netns", "exec", ns]).arg(sshd);
                wrapped
            }
            None => Command::new(sshd),
        };
        command.arg("-D");
        match &self.log {
            Some(log) => command.arg("-E").arg(log),
            None => command.arg("-e"),
        };
        self.child = command
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            let listening = match &self.place {
                // Asked inside the namespace, without connecting.
                Some((ns, _)) => Command::new("ip")
                    .args(["netns", "exec", ns, "ss", "-Hltn"])
                    .arg(format!("sport = :{}", self.port))
                    .output()
                    .is_ok_and(|out| !out.stdout.is_empty()),
                None => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if listening {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd did not start on port {}", self.port);
    }

    /// Starts sshd again (after its namespace's processes were killed, say).
    pub fn start_again(&mut self) {
        let sshd = require_tool("sshd").unwrap();
        self.restart(&sshd);
    }

    /// What sshd has logged so far (empty unless started with [`SshTarget::start_logging`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// The host key's public half, as `rampart asset hostkey` takes it.
    pub fn host_key_file(&self) -> PathBuf {
        self.dir.path().join("host_key.pub")
    }

    /// Replaces the host key (as a reinstalled host would) and restarts on the same port.
    pub fn change_host_key(&mut self) {
        for name in ["host_key", "host_key.pub"] {
            std::fs::remove_file(self.dir.path().join(name)).unwrap();
        }
        ssh_keygen(self.dir.path(), "host_key", "ed25519", "");
        let sshd = require_tool("sshd").unwrap();
        // The old port must be free again before the new sshd binds it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        self.restart(&sshd);
    }
}

impl Drop for SshTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the resident memory (VmRSS, in KiB) of a process.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

/// A small HTTP(S) client for API tests (ureq with rustls and ring). With a certificate it
/// trusts that certificate only, so the test also checks what the server presents.
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    base: String,
    addr: SocketAddr,
    cert: Option<Vec<u8>>,
}

/// A connection's stream, TCP or TLS; `Send`, so a reader thread can own a WebSocket.
trait ReadWrite: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> ReadWrite for T {}

/// One answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an API error answer.
    pub fn error_code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.pointer("/error/code")?.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl HttpClient {
    pub fn new(addr: SocketAddr, cert: Option<&Path>) -> Self {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // Idle connections are dropped before the server's 10 s keep-alive header timeout
            // closes them: ureq's default (15 s) would send a request, non-idempotent ones
            // without a retry, on a connection the server is closing.
            .max_idle_age(Duration::from_secs(5))
            .timeout_global(Some(Duration::from_secs(60)));
        if let Some(cert) = cert {
            let pem = std::fs::read(cert).unwrap();
            let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                        cert,
                    ])))
                    .build(),
            );
        }
        let scheme = if cert.is_some() { "https" } else { "http" };
        Self {
            agent: config.build().into(),
            base: format!("{scheme}://{addr}"),
            addr,
            cert: cert.map(|cert| std::fs::read(cert).unwrap()),
        }
    }

    /// Logs in as the portal does (`POST /api/v1/login` with a password) and returns the
    /// session's cookie (`rampart_session=...`) for later requests. Panics unless the login
    /// answers 200 with a cookie.
    pub fn login_cookie(&self, username: &str, password: &str) -> String {
        let login = self.request(
            "POST",
            "/api/v1/login",
            &[],
            Some(&serde_json::json!({ "username": username, "password": password })),
        );
        assert_eq!(login.status, 200, "{}", login.text());
        login
            .header("set-cookie")
            .and_then(|cookie| cookie.split(';').next())
            .expect("the login set no cookie")
            .to_owned()
    }

    /// The origin a browser on this server's pages sends (`https://127.0.0.1:PORT`).
    pub fn origin(&self) -> &str {
        &self.base
    }

    /// Starts a WebSocket handshake on `path` with `headers` (plus the upgrade headers) and
    /// returns the answer's status and body (empty for `101`), then closes the connection.
    pub fn websocket_handshake(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.websocket(path, headers).0
    }

    /// Like [`HttpClient::websocket_handshake`], but keeps the connection: with `101` it is an
    /// open WebSocket.
    pub fn websocket(&self, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, WebSocket) {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            self.addr
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut connection = self.raw();
        connection.send(request.as_bytes());
        let response = connection
            .read_response()
            .unwrap_or_else(|| panic!("no HTTP answer to a WebSocket handshake on {path}"));
        (
            response,
            WebSocket {
                stream: connection.stream,
                tcp: connection.tcp,
            },
        )
    }

    /// A connection of its own (TLS if the server has a certificate) on which a test writes
    /// requests byte by byte, for what a well-behaved client library never does.
    pub fn raw(&self) -> RawHttp {
        let tcp = std::net::TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let handle = tcp.try_clone().unwrap();
        let stream: Box<dyn ReadWrite> = match &self.cert {
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                    roots.add(cert.unwrap()).unwrap();
                }
                let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::from(self.addr.ip());
                let connection =
                    rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
                Box::new(rustls::StreamOwned::new(connection, tcp))
            }
            None => Box::new(tcp),
        };
        RawHttp {
            stream,
            tcp: handle,
        }
    }

    /// Sends `method path` with `headers` and an optional JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> HttpResponse {
        let send = || {
            let mut builder = ureq::http::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base));
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            match body {
                Some(body) => {
                    let request = builder
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(body).unwrap())
                        .unwrap();
                    self.agent.run(request)
                }
                None => self.agent.run(builder.body(()).unwrap()),
            }
        };
        // A server may close a kept-alive connection whenever it is idle (RFC 9112, 9.6), and
        // the close can cross a request sent on it. Browsers then send the request again on a
        // new connection; so does this client, once, when no byte of an answer came back.
        let result = match send() {
            Err(ureq::Error::Io(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                eprintln!("{method} {path}: {err} before any answer; sending it again");
                send()
            }
            result => result,
        };
        let mut response = result.unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        HttpResponse {
            status,
            headers,
            body,
        }
    }
}

/// A hand-driven HTTP/1.1 connection (see [`HttpClient::raw`]).
pub struct RawHttp {
    stream: Box<dyn ReadWrite>,
    /// The socket under `stream`, for its timeouts.
    tcp: std::net::TcpStream,
}

impl std::fmt::Debug for RawHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawHttp").finish_non_exhaustive()
    }
}

impl RawHttp {
    /// Writes `bytes` and flushes them.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next answer: its head, then as many body bytes as `Content-Length` says (none for
    /// `101`); `None` if the connection closes before a whole head arrived.
    pub fn read_response(&mut self) -> Option<HttpResponse> {
        let mut received = Vec::new();
        let mut byte = [0u8; 1];
        while !received.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(1) => received.push(byte[0]),
                _ => return None,
            }
        }
        let head = String::from_utf8_lossy(&received).into_owned();
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok())?;
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = Vec::new();
        if status != 101 {
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            body.resize(length, 0);
            self.stream.read_exact(&mut body).ok()?;
        }
        Some(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// The client end of an open WebSocket (RFC 6455), minimal: masked frames out, unfragmented
/// frames in.
pub struct WebSocket {
    stream: Box<dyn ReadWrite>,
    tcp: std::net::TcpStream,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

impl WebSocket {
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | u8::try_from(len).unwrap()),
            len => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x9e];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.write_all(&frame).unwrap();
        self.stream.flush().unwrap();
    }

    /// How long [`WebSocket::receive`] waits for the next bytes (`None`: for ever); 30 seconds
    /// unless changed.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.tcp.set_read_timeout(timeout).unwrap();
    }

    /// Sends a binary frame (terminal input).
    pub fn send_binary(&mut self, payload: &[u8]) {
        self.send_frame(0x2, payload);
    }

    /// The next frame's opcode and payload; `None` once the connection is closed.
    pub fn receive(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).ok()?;
        let length = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                self.stream.read_exact(&mut ext).ok()?;
                u64::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                self.stream.read_exact(&mut ext).ok()?;
                u64::from_be_bytes(ext)
            }
            short => u64::from(short),
        };
        let mut payload = vec![0u8; usize::try_from(length).unwrap()];
        self.stream.read_exact(&mut payload).ok()?;
        Some((head[0] & 0x0f, payload))
    }

    /// Reads frames until the binary output received so far contains `needle`; false if the
    /// socket closed first.
    pub fn read_until(&mut self, needle: &str) -> bool {
        let mut output = Vec::new();
        while let Some((opcode, payload)) = self.receive() {
            if opcode == 0x8 {
                return false;
            }
            if opcode == 0x2 {
                output.extend_from_slice(&payload);
                if String::from_utf8_lossy(&output).contains(needle) {
                    return true;
                }
            }
        }
        false
    }

    /// Closes the WebSocket as a browser closing its tab does: a close frame, then the
    /// connection.
    pub fn close(mut self) {
        self.send_frame(0x8, &1001u16.to_be_bytes());
    }
}
