//! The web portal in real headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/browser/`): log in with password and TOTP, open a browser terminal to a real
//! sshd and see a command's output, replay that session, and as an administrator add a grant
//! through the UI and see it take effect. Every page is checked on what it shows (readable
//! labels and audit sentences, no raw JSON), destructive buttons ask first, lists page, and the
//! layout holds at 420 px and in dark mode. Screenshots of every step are kept as artifacts.

use crate::ssh::Lab;
use rampart_testkit::{files_containing, require_tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser test's directory (`package.json`, `portal.mjs`, and `node_modules` after
/// `npm ci`, which `.ci/run` does).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `playwright-core` installed, or a skip with the reason (a failure under
/// `RAMPART_REQUIRE_TOOLS=1`), like a missing tool.
pub(crate) fn require_playwright() -> bool {
    let installed = browser_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file();
    if !installed {
        rampart_testkit::skip_or_fail(&format!(
            "playwright-core is not installed (run `npm ci` in {})",
            browser_dir().display()
        ));
    }
    installed
}

/// Where the screenshots go: `$RAMPART_BROWSER_ARTIFACTS`, or `browser-artifacts/` in the
/// cargo target directory.
pub(crate) fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAMPART_BROWSER_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    // The test binary lives in TARGET/debug/deps.
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("browser-artifacts")
}

#[test]
fn the_portal_in_chromium_login_terminal_replay_and_a_grant() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    if !require_playwright() {
        return;
    }
    let Some(lab) = Lab::start() else { return };
    let r = &lab.r;
    // Alice: password and a TOTP second factor.
    let uri = crate::mfa::enroll_by_link(r, &lab.server, "alice", "alice-password-1");
    let used_until = rampart_testkit::unix_now();
    let secret = uri
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap()
        .to_owned();
    // An administrator, and a second asset (the same sshd) alice has no grant for yet.
    r.ok(&["user", "add", "adam", "--role", "admin"]);
    r.ok_with_stdin(&["user", "password", "adam"], b"adam-password-1");
    r.ok(&[
        "asset",
        "add",
        "web-02",
        "--host",
        "127.0.0.1",
        "--port",
        &lab.target.port.to_string(),
        "--label",
        "env=test",
        "--label",
        "team=web",
    ]);
    // A grant by labels (its target shows as the labels, never as `[object Object]`).
    r.ok(&["group", "add", "ops"]);
    r.ok(&["grant", "add", "--group", "ops", "--label", "env=test"]);
    let target_key = r.scratch().join("target");
    r.ok(&[
        "account",
        "add",
        &format!("{}@web-02", lab.login),
        "--key-file",
        target_key.to_str().unwrap(),
    ]);

    // A network domain with a gateway nothing answers for (a closed port): the domains page
    // shows it, and its Test button names the failing step.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    r.ok(&["domain", "add", "dc-east"]);
    r.ok_with_stdin(
        &[
            "gateway",
            "add",
            "gw-east-1",
            "--domain",
            "dc-east",
            "--host",
            "127.0.0.1",
            "--port",
            &closed.to_string(),
            "--account",
            "jump",
            "--password-stdin",
        ],
        b"gateway-password\n",
    );

    const CANARY: &str = "canary-portal-secret-3b9d41";
    const KILL_REASON: &str = "browser test: ended by the auditor";
    let artifacts = artifacts_dir();
    let _ = std::fs::remove_dir_all(&artifacts);
    let output = Command::new(node)
        .arg("portal.mjs")
        .current_dir(browser_dir())
        .env("RAMPART_URL", format!("https://{}", lab.server.http))
        .env("ALICE_PASSWORD", "alice-password-1")
        .env("ALICE_TOTP_SECRET", &secret)
        .env("TOTP_USED_UNTIL", used_until.to_string())
        .env("ADMIN_USER", "adam")
        .env("ADMIN_PASSWORD", "adam-password-1")
        .env("GRANTED", format!("{}@web-01", lab.login))
        .env("NOT_YET_GRANTED", format!("{}@web-02", lab.login))
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .env("CANARY", CANARY)
        .env("KILL_REASON", KILL_REASON)
        .env("SSH_PORT", lab.port())
        .env("GATEWAY_PORT", closed.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("browser test screenshots: {}", artifacts.display());
    assert!(
        output.status.success() && stdout.contains("all steps passed"),
        "portal.mjs failed (screenshots in {}):\n{stdout}\n{stderr}",
        artifacts.display()
    );
    // What the browser did went through the SSH path: four recorded sessions of alice (one
    // killed with the auditor's reason, one ended by her logout), the commands in the command log, the grant and
    // the new account in the audit log.
    let sessions = lab.sessions();
    let web: Vec<_> = sessions
        .iter()
        .filter(|s| s["user"] == "alice" && s["recorded"] == true)
        .collect();
    assert_eq!(web.len(), 4, "{sessions:?}");
    assert!(
        web.iter()
            .any(|s| s["end_reason"].as_str().unwrap_or("").contains(KILL_REASON)),
        "{sessions:?}"
    );
    let commands = r
        .json(&["audit", "commands", "--user", "alice"])
        .to_string();
    assert!(commands.contains("hello-$((6*7))"), "{commands}");
    assert!(!lab.events("grant_added").is_empty());
    assert!(!lab.events("account_secret_replaced").is_empty());
    // D1: the secret typed into the portal is nowhere in clear in the data directory (logs
    // included); the vault holds it encrypted.
    assert!(files_containing(&r.data_dir(), CANARY.as_bytes()).is_empty());
    let screenshots = std::fs::read_dir(&artifacts).unwrap().count();
    assert!(screenshots >= 8, "{screenshots} screenshots");
}
