//! What the desktop tests (VNC, VeNCrypt, RDP) share: the test display, the page's driver
//! (`tests/browser/desktop.mjs` in headless Chromium) and the sessions as the CLI lists them.

use rampart_testkit::desktop;
pub(crate) use rampart_testkit::desktop::{Processes, free_port, wait_until};
use rampart_testkit::{Rampart, Server, require_tool};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The VNC desktops' password, vaulted in Rampart: never on the page nor in a file of the data
/// directory (the page's default canary).
pub(crate) const CANARY: &str = "vnc-canary-7f3a";
/// The reason the tests kill a session with, which the page must show.
pub(crate) const KILL_REASON: &str = "desktop test: ended by the auditor";
/// The screen, and an xterm in its top-left corner; the probe point lies outside the xterm.
pub(crate) const SCREEN: (u16, u16) = (800, 600);
pub(crate) const PROBE: (u16, u16) = (700, 500);
pub(crate) const IN_XTERM: (u16, u16) = (100, 60);

/// The tests' screen: [`SCREEN`], an xterm running a shell in its top-left corner.
pub(crate) const TEST_SCREEN: desktop::Screen<'static> = desktop::Screen {
    size: SCREEN,
    xterm_geometry: "60x12+0+0",
    xterm_command: &["/bin/sh"],
};

/// The test's display (Xvfb): [`TEST_SCREEN`].
pub(crate) fn x_display(processes: &mut Processes) -> String {
    desktop::x_display(processes, &TEST_SCREEN)
}

/// `node` and `chromium`, with Playwright installed; `None` (skipped, or failed under
/// `RAMPART_REQUIRE_TOOLS=1`) otherwise.
pub(crate) fn browser_ready() -> Option<(PathBuf, PathBuf)> {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return None;
    };
    crate::browser::require_playwright().then_some((node, chromium))
}

/// `node desktop.mjs` with the test's settings; `on_ready` runs once the page printed `READY`.
pub(crate) fn run_browser(
    server: &Server,
    extra: &[(&str, String)],
    on_ready: impl FnOnce(&str),
) -> (bool, String) {
    let mut on_ready = Some(on_ready);
    run_browser_lines(server, extra, |line| {
        if let Some(id) = line.strip_prefix("READY ")
            && let Some(ready) = on_ready.take()
        {
            ready(id.trim());
        }
    })
}

/// `node desktop.mjs` with the test's settings; `on_line` runs for each line the page prints,
/// as it prints it.
pub(crate) fn run_browser_lines(
    server: &Server,
    extra: &[(&str, String)],
    mut on_line: impl FnMut(&str),
) -> (bool, String) {
    let (node, chromium) = browser_ready().unwrap();
    let artifacts = crate::browser::artifacts_dir().join("desktop");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut command = Command::new(node);
    command
        .arg("desktop.mjs")
        .current_dir(&browser_dir)
        .env("RAMPART_URL", format!("https://{}", server.http))
        .env("LOGIN_USER", "alice")
        .env("PASSWORD", "alice-password-1")
        .env("ACCOUNT", "vnc@desk")
        .env("PROBE_X", PROBE.0.to_string())
        .env("PROBE_Y", PROBE.1.to_string())
        .env("XTERM_X", IN_XTERM.0.to_string())
        .env("XTERM_Y", IN_XTERM.1.to_string())
        .env("KILL_REASON", KILL_REASON)
        .env("CANARY", CANARY)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in extra {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        out.push_str(&line);
        out.push('\n');
        on_line(&line);
    }
    let status = child.wait().unwrap();
    out.push_str(&errors.join().unwrap());
    eprintln!("desktop screenshots: {}", artifacts.display());
    (status.success(), out)
}

/// The sessions as `session list` shows them, once all have ended (or after 30 seconds).
pub(crate) fn sessions(r: &Rampart) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = r.json(&["session", "list", "--limit", "1000"]);
        let list = list.as_array().unwrap().clone();
        if list.iter().all(|s| s["ended_at"].is_string()) || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The session of `kind` (`vnc`, `rdp`) once it ended: it must have been killed with
/// [`KILL_REASON`].
pub(crate) fn killed_session(r: &Rampart, kind: &str) -> Value {
    let list = sessions(r);
    let session = list
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} session: {list:?}"))
        .clone();
    assert!(
        session["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains(KILL_REASON),
        "{session}"
    );
    session
}

/// The `clipboard_transfer` audit events, oldest first.
pub(crate) fn clipboard_transfers(r: &Rampart) -> Vec<Value> {
    let audit = r.json(&["audit", "list", "--limit", "1000"]);
    let mut transfers: Vec<Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "clipboard_transfer")
        .map(|e| e["event"].clone())
        .collect();
    transfers.reverse();
    transfers
}

/// `xclip` (set up for its display and selection) started to own the clipboard with `text`,
/// which it reads from its stdin, closed after it: it serves the text until it is stopped.
pub(crate) fn xclip_owning(mut xclip: Command, text: &str) -> std::process::Child {
    let mut child = xclip
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Dropping stdin closes it: xclip then owns the selection.
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    child
}

/// The desktop session `id`'s recording (its raw stream) as text, once it is checked to hold a
/// key frame of the 800x600 screen.
pub(crate) fn recorded_with_key_frame(r: &Rampart, id: &str) -> String {
    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let bytes = std::fs::read(&raw).unwrap();
    assert!(
        bytes.windows(5).any(|w| w == [b'K', 3, 32, 2, 88]),
        "no key frame of the 800x600 screen in the recording"
    );
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Checks that a desktop recording (as text) holds key presses, recorded as "a key went
/// down" only: neither the keysym nor the browser's key code (the default: keys can be
/// passwords).
pub(crate) fn assert_keys_recorded_without_which(recorded: &str) {
    assert!(
        recorded.contains(r#"{"t":"key","down":true}"#),
        "no key events recorded"
    );
    assert!(
        !recorded.contains("keysym") && !recorded.contains("KeyX"),
        "which key was typed was recorded"
    );
}
