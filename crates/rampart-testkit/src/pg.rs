//! A real PostgreSQL for tests: one server per test binary (`initdb` into a temporary
//! directory, listening only on a Unix socket there), and a fresh database per test.
//!
//! The server runs under a small shell that stops it (and removes its directory) when the test
//! binary's end of a pipe closes, so it never outlives the tests, even after a crash. As root
//! it runs as the unprivileged `rampart-target` user (PostgreSQL refuses root).

use crate::{require_password_target_user, skip_or_fail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The port only names the socket file: the server listens on no TCP address.
const PORT: u16 = 5432;

/// The per-binary server.
#[derive(Debug)]
pub struct TestPostgres {
    sockets: PathBuf,
    bin: PathBuf,
    // The shell holding the server; its stdin closing (at exit) stops the server.
    _keeper: Mutex<Child>,
}

static SERVER: OnceLock<Option<TestPostgres>> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// The server of this test binary, started on first use; `None` (after `skip_or_fail`) when
/// PostgreSQL is not installed.
pub fn server() -> Option<&'static TestPostgres> {
    SERVER.get_or_init(start).as_ref()
}

/// A new empty database on this binary's server, as a `postgres://` URL over the Unix socket
/// (trusted local login, no password). `None` when PostgreSQL is missing (see `skip_or_fail`).
pub fn fresh_database() -> Option<String> {
    let server = server()?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    server.psql(&format!("CREATE DATABASE {name}"));
    Some(server.url(&name))
}

impl TestPostgres {
    /// The URL of database `name` over this server's socket.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}&port={PORT}",
            self.sockets.display()
        )
    }

    /// Runs one SQL statement as the superuser (`psql`) in the `postgres` database, panicking on failure; returns its
    /// unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Like [`TestPostgres::psql`], in database `database`.
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.sockets)
            .args(["-p", &PORT.to_string(), "-U", "postgres", "-X", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql, database])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn binaries() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .find(|bin| bin.join("initdb").exists() && bin.join("postgres").exists());
    if found.is_none() {
        skip_or_fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (Debian package postgresql)",
        );
    }
    found
}

/// `program` as the unprivileged user when we are root.
fn as_db_user(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name(crate::PASSWORD_TARGET_USER)
            .unwrap()
            .unwrap();
        let mut command = Command::new("setpriv");
        command.args([
            &format!("--reuid={}", user.uid),
            &format!("--regid={}", user.gid),
            "--clear-groups",
            "--",
        ]);
        command.arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start() -> Option<TestPostgres> {
    let bin = binaries()?;
    if nix::unistd::geteuid().is_root() && !require_password_target_user() {
        return None;
    }
    // Kept: the keeper shell removes it once the server has stopped.
    let dir = tempfile::Builder::new()
        .prefix("rampart-store-pg")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    let sockets = dir.join("sock");
    std::fs::create_dir(&sockets).unwrap();
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name(crate::PASSWORD_TARGET_USER)
            .unwrap()
            .unwrap();
        for path in [&dir, &sockets] {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .unwrap();
        }
    }
    // C collation: text sorts by bytes, as on SQLite.
    let init = as_db_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--locale=C", "-E", "UTF8"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let script = r#"postgres="$1"; data="$2"; sockets="$3"; port="$4"; dir="$5"
"$postgres" -D "$data" -k "$sockets" -p "$port" -c listen_addresses= -c fsync=off \
    -c max_connections=200 >"$dir/server.log" 2>&1 &
pid=$!
read -r _ignored
kill -QUIT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir""#;
    let keeper = as_db_user(Path::new("/bin/sh"))
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(bin.join("postgres"))
        .arg(&data)
        .arg(&sockets)
        .arg(PORT.to_string())
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = TestPostgres {
        sockets,
        bin,
        _keeper: Mutex::new(keeper),
    };
    // Ready when it answers (not timed: a server that never starts fails after its log says why).
    for _ in 0..600 {
        let ready = Command::new(server.bin.join("pg_isready"))
            .arg("-h")
            .arg(&server.sockets)
            .args(["-p", &PORT.to_string()])
            .output()
            .unwrap();
        if ready.status.success() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    panic!("PostgreSQL did not start: {log}");
}
