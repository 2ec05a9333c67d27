//! The data directory as a whole: one server per directory, no directory created by accident,
//! and a damaged database refused at start.

use super::BIN;
use super::auth::{ALICE_PASSWORD, password_login};
use super::ssh::{Lab, text};
use rampart_testkit::{Rampart, require_tool};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs a `rampart serve` that must be refused: returns its stderr once it exits with failure.
/// One that is still running after 60 s started, which is a failure (it is killed first).
fn refused_serve(r: &Rampart) -> String {
    let mut child = r
        .command(&[
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--ssh-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stdout = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            panic!("the second serve was not refused; it printed:\n{stdout}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "refused serve exited with {status}");
    stderr
}

/// An interactive `ssh -tt` whose output is collected as it arrives.
struct Shell {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Shell {
    fn open(lab: &Lab) -> Self {
        let mut child = lab
            .ssh_command(&lab.direct())
            .arg("-tt")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, output }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn wait_for(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = text(&self.output.lock().unwrap());
            if seen.contains(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the session never showed {expected:?}; it shows:\n{seen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_second_serve_on_the_same_data_directory_is_refused_and_the_live_session_continues_and_verifies()
 {
    let Some(lab) = Lab::start() else { return };
    let mut shell = Shell::open(&lab);
    shell.type_line("echo before-$((40+2))");
    shell.wait_for("before-42");
    let manifests_before = manifests(&lab.r.data_dir().join("recordings"));

    let stderr = refused_serve(&lab.r);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("in use by another rampart serve"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("(PID {})", lab.server.pid())),
        "the holder's PID {} is named: {stderr}",
        lab.server.pid()
    );
    // It did nothing: the live session is still live and its recording was not sealed.
    let live = lab.r.json(&["session", "list", "--live"]);
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
    assert_eq!(
        manifests(&lab.r.data_dir().join("recordings")),
        manifests_before,
        "the refused server changed the live recording's manifest"
    );

    shell.type_line("echo after-$((50+5))");
    shell.wait_for("after-55");
    shell.type_line("exit");
    assert!(shell.child.wait().unwrap().success());
    let sessions = lab.sessions();
    assert_eq!(sessions.len(), 1);
    assert_ne!(
        sessions[0]["end_reason"],
        "node restarted during the session"
    );
    let out = lab.r.run(&["audit", "verify"]);
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("incomplete"), "{report}");
}

/// A clean stop (SIGTERM) ends the sessions still open through their guards, before the node
/// signs its final chain head: each record says why, each recording is sealed complete, and
/// nothing is left for the next start to close as a crash.
#[test]
fn a_clean_stop_ends_open_sessions_with_their_reason_and_sealed_recordings() {
    let Some(mut lab) = Lab::start() else { return };
    let mut shell = Shell::open(&lab);
    shell.type_line("echo open-$((60+1))");
    shell.wait_for("open-61");
    let pid = lab.server.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // The server exits by itself (a zombie until reaped), then is reaped.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.server.kill();
    let _ = shell.child.kill();
    let _ = shell.child.wait();
    let sessions = lab.r.json(&["session", "list"]);
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(sessions[0]["ended_at"].is_string(), "{sessions:?}");
    assert_eq!(sessions[0]["end_reason"], "the node is shutting down");
    let out = lab.r.run(&["audit", "verify"]);
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("incomplete"), "{report}");
}

/// The manifests in a recordings directory, by name.
fn manifests(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "manifest"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn administration_commands_without_a_data_directory_fail_and_create_nothing() {
    let r = Rampart::without_init(BIN);
    let dir = r.data_dir();
    let commands: [&[&str]; 9] = [
        &["user", "list"],
        &["user", "add", "bob"],
        &["asset", "list"],
        &["grant", "list"],
        &["session", "list"],
        &["vault", "status"],
        &["audit", "list"],
        &["audit", "verify"],
        &["token", "list"],
    ];
    let expected = format!("error: no data directory at {}", dir.display());
    for args in commands {
        let out = r.run(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.starts_with(&expected), "{args:?}: {stderr}");
        assert!(stderr.contains("rampart init"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }

    // An empty folder is no data directory either, and stays empty.
    std::fs::create_dir(&dir).unwrap();
    let out = r.run(&["user", "list"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).starts_with(&expected), "{out:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();

    // Run in an empty folder with the default data directory, as an operator in the wrong place.
    let folder = r.scratch().join("elsewhere");
    std::fs::create_dir(&folder).unwrap();
    let out = Command::new(BIN)
        .args(["user", "list"])
        .current_dir(&folder)
        .env_remove("RAMPART_DATA_DIR")
        .env_remove("RAMPART_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("error: no data directory at ./rampart-data"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);

    // `rampart init` creates one, once; then the commands work.
    let created = r.ok(&["init"]);
    assert!(created.contains("created the data directory"), "{created}");
    assert!(dir.join("rampart.db").is_file());
    assert!(r.ok(&["user", "list"]).contains("no users yet"));
    let again = r.run(&["init"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("a data directory already exists"),
        "{again:?}"
    );
}

#[test]
fn a_damaged_database_page_refuses_the_start_and_says_how_to_restore() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let r = Rampart::new(BIN);
    for n in 0..60 {
        r.ok(&["user", "add", &format!("user-{n:03}")]);
    }
    let server = r.serve();
    assert!(server.terminate().0.success());
    let db = r.data_dir().join("rampart.db");
    let sqlite = |sql: &str| {
        let out = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
        assert!(out.status.success(), "{sql}: {out:?}");
        text(&out.stdout).trim().to_owned()
    };
    // Everything is in the main file, so the page written below is what SQLite reads.
    sqlite("PRAGMA wal_checkpoint(TRUNCATE)");
    assert_eq!(sqlite("PRAGMA quick_check"), "ok");
    let page_size: u64 = sqlite("PRAGMA page_size").parse().unwrap();
    let page_count: u64 = sqlite("PRAGMA page_count").parse().unwrap();
    // A leaf page of the audit log near the middle of the file (pages are numbered from 1).
    let pages: Vec<u64> = sqlite(
        "SELECT pageno FROM dbstat WHERE name = 'audit_events' AND pagetype = 'leaf' ORDER BY pageno",
    )
    .lines()
    .map(|l| l.parse().unwrap())
    .collect();
    let page = *pages
        .iter()
        .min_by_key(|p| p.abs_diff(page_count / 2))
        .expect("the audit log spans several pages");
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start((page - 1) * page_size)).unwrap();
    file.write_all(&vec![0xa5; usize::try_from(page_size).unwrap()])
        .unwrap();
    file.sync_all().unwrap();
    drop(file);
    let check = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA quick_check")
        .output()
        .unwrap();
    assert!(
        text(&check.stdout).contains(&format!("Page {page}")),
        "the garbage in page {page} is damage SQLite's quick check finds: {check:?}"
    );

    let stderr = refused_serve(&r);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(&format!("the database {} is damaged", db.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("restore it from your last backup")
            && stderr.contains("Backup and restore"),
        "{stderr}"
    );
    // An administration command that reads the damaged page gives the same advice.
    let out = r.run(&["audit", "list", "--limit", "100000"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("restore it from your last backup"),
        "{out:?}"
    );
}

#[test]
fn a_store_error_during_a_password_check_refuses_the_login_without_counting_toward_lockout() {
    if require_tool("sqlite3").is_none() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    let set_password = || {
        lab.r.ok_with_stdin(
            &["user", "password", "alice"],
            format!("{ALICE_PASSWORD}\n").as_bytes(),
        );
    };
    set_password();
    // A stored hash the store cannot read back as text: every password check of alice's fails
    // inside the store, while looking her up still works.
    let db = lab.r.data_dir().join("rampart.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(".timeout 10000")
        .arg("UPDATE users SET password_hash = X'00ff' WHERE name = 'alice'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // More attempts with her right password than the lockout threshold (5), over SSH and web.
    let client = lab.server.client();
    let web_login = || {
        client.request(
            "POST",
            "/api/v1/login",
            &[],
            Some(&serde_json::json!({ "username": "alice", "password": ALICE_PASSWORD })),
        )
    };
    for _ in 0..6 {
        let out = password_login(&lab, &lab.direct(), ALICE_PASSWORD, "127.0.0.1");
        assert_eq!(out.status.code(), Some(255), "{out:?}");
        let answer = web_login();
        assert_eq!(answer.status, 500, "an internal failure: {}", answer.text());
    }

    // Repaired, she logs in at once: nothing was counted, nobody is locked.
    set_password();
    let alice = lab.r.json(&["user", "show", "alice"]);
    assert!(alice["locked_until"].is_null(), "{alice}");
    let ok = password_login(&lab, &lab.direct(), ALICE_PASSWORD, "127.0.0.1");
    assert_eq!(text(&ok.stdout), "in\n", "{}", text(&ok.stderr));
    assert_eq!(web_login().status, 200);
    let events = lab.r.json(&["audit", "list", "--limit", "1000"]);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"login_failed") && !kinds.contains(&"login_locked"),
        "{kinds:?}"
    );
}

/// The peak resident memory of process `pid` (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

/// An API token for `user` with `scope`: the `Authorization` header value.
fn bearer(r: &Rampart, user: &str, scope: &str) -> String {
    let created = r.json(&["token", "create", "--user", user, "--scope", scope]);
    format!("Bearer {}", created["secret"].as_str().unwrap())
}

#[test]
fn a_recording_download_is_streamed_not_read_into_the_servers_memory() {
    let Some(lab) = Lab::start() else { return };
    // A live session: its recording is not sealed yet, so the download cannot verify it first
    // (a sealed one is verified against its chain anchor, and padding would be refused).
    let mut live = lab
        .ssh_command(&lab.direct())
        .arg("echo recorded; exec sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 9];
    live.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"recorded\n");
    let session = lab.r.json(&["session", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // 200 MiB of output after what was recorded so far.
    let cast = lab
        .r
        .data_dir()
        .join("recordings")
        .join(format!("{session}.cast"));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&cast)
        .unwrap();
    let line = format!("[1.0, \"o\", \"{}\"]\n", "x".repeat(1000));
    let block = line.repeat(1024);
    for _ in 0..200 {
        file.write_all(block.as_bytes()).unwrap();
    }
    drop(file);
    let size = std::fs::metadata(&cast).unwrap().len();
    let token = bearer(&lab.r, "alice", "read");

    let before = peak_kib(lab.server.pid());
    let answer = lab.server.client().request(
        "GET",
        &format!("/api/v1/sessions/{session}/recording"),
        &[("authorization", &token)],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    // A command's cast is merged with its raw streams as it is sent (events re-written), so
    // the download is not the file byte for byte: every padding event must arrive.
    let padding = "x".repeat(1000);
    let arrived = answer
        .body
        .split(|b| *b == b'\n')
        .filter(|line| line.windows(padding.len()).any(|w| w == padding.as_bytes()))
        .count();
    assert_eq!(arrived, 200 * 1024, "the whole recording arrives");
    let grown = peak_kib(lab.server.pid()).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "the server's peak memory grew by {grown} KiB for a {size}-byte download"
    );
    let _ = live.kill();
    let _ = live.wait();
}

#[test]
fn every_api_list_is_paged_with_a_limit_and_a_cursor() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "admin", "--role", "admin"]);
    for n in 0..7 {
        r.ok(&["user", "add", &format!("user-{n}")]);
        r.ok(&["group", "add", &format!("group-{n}")]);
        r.ok(&["asset", "add", &format!("asset-{n}"), "--host", "127.0.0.1"]);
    }
    let token = bearer(&r, "admin", "admin");
    let server = r.serve();
    let client = server.client();
    let get = |path: &str| {
        let answer = client.request("GET", path, &[("authorization", &token)], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        answer
    };
    // Follows the cursor with pages of 3; returns every item's `field`, in order.
    let walk = |path: &str, field: &str| -> Vec<String> {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let separator = if path.contains('?') { '&' } else { '?' };
            let page = get(&format!(
                "{path}{separator}limit=3{}",
                cursor
                    .as_deref()
                    .map(|c| format!("&cursor={c}"))
                    .unwrap_or_default()
            ));
            let items = page.json();
            let items = items.as_array().unwrap();
            assert!(items.len() <= 3, "{path}: a page of {}", items.len());
            seen.extend(items.iter().map(|i| i[field].to_string()));
            match page.header("x-next-cursor") {
                Some(next) => cursor = Some(next.to_owned()),
                None => return seen,
            }
        }
        panic!("{path}: the cursor never ends");
    };
    for (path, field, at_least) in [
        ("/api/v1/users", "name", 8),
        ("/api/v1/groups", "name", 7),
        ("/api/v1/assets", "name", 7),
        ("/api/v1/audit/events", "seq", 22),
        ("/api/v1/tokens", "id", 1),
    ] {
        let all = walk(path, field);
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            all.len(),
            "{path}: an item came twice: {all:?}"
        );
        assert!(all.len() >= at_least, "{path}: {all:?}");
        // One request without a limit holds them all here (the default page is 500).
        let whole = get(path).json();
        assert_eq!(whole.as_array().unwrap().len(), all.len(), "{path}");
    }
    // The export comes in pages too, oldest first, each audited.
    let first = get("/api/v1/audit/export?limit=5");
    assert_eq!(first.text().lines().count(), 5);
    let next = first.header("x-next-cursor").unwrap().to_owned();
    let second = get(&format!("/api/v1/audit/export?limit=5&cursor={next}"));
    let seq = |text: &str| -> i64 {
        serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()["seq"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(seq(&second.text()), next.parse::<i64>().unwrap() + 1);
    // A limit beyond the most is cut to it; 0 is refused.
    let zero = client.request(
        "GET",
        "/api/v1/users?limit=0",
        &[("authorization", &token)],
        None,
    );
    assert_eq!(zero.status, 400);
}
