//! Native VNC clients through Rampart (issue 22): TigerVNC's `vncviewer`, on an Xvfb display
//! of its own, connects to Rampart's VNC listener (`vnc.listen`) with VeNCrypt X509Plain,
//! trusting the node's certificate (`-X509CA`), as `alice@vnc@desk` with a database token given
//! through `VNC_USERNAME`/`VNC_PASSWORD` (never argv). The target is desktop_vnc's: Xvfb with a
//! known root colour and an xterm, x11vnc with the vaulted VNC password (the canary).
//!
//! What a person sees is checked on the screens themselves (`xwd`): the viewer's window shows
//! the target's root colour; keys typed into the viewer (`xdotool`) run a command in the remote
//! xterm that changes the TARGET's root colour, and the viewer shows that too; a text copied
//! on the viewer's display reaches the target's clipboard (`vnc:clipboard`). A kill from the
//! CLI ends the viewer's connection (the viewer exits); the session is recorded as a browser
//! desktop session is, and `audit verify` passes; the canary is nowhere. A wrong token is
//! refused with the failure reason the viewer shows and audited (`login_failed`); a grant
//! without `vnc:connect` is refused and audited (`access_denied`), and neither opens a session.

use crate::db_common::{live_session, text, verified_eventually};
use crate::desktop_common::{
    CANARY, IN_XTERM, KILL_REASON, PROBE, SCREEN, TEST_SCREEN, assert_keys_recorded_without_which,
    clipboard_transfers, free_port, killed_session, recorded_with_key_frame, sessions,
};
use crate::desktop_vnc::{Desktop, copy_on_target, rampart_for_desktop_granting, x_clipboard};
use crate::desktop_xvnc::{x_screen_becomes, x_screen_size};
use crate::login_controls::events_of_kind;
use rampart_testkit::desktop::{self, Processes, wait_until};
use rampart_testkit::{Rampart, Server, files_containing, require_tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The viewer's display: larger than the target's 800x600, so its window fits.
const VIEWER_SCREEN: (u16, u16) = (1024, 768);
/// The root colour of the target (`desktop::ROOT_COLOUR`), and the one the typed command sets.
const ROOT: [u8; 3] = [0x12, 0xab, 0x34];
const PURPLE: [u8; 3] = [0xa0, 0x20, 0xf0];
/// Copied on the viewer's display, pasted on the target's (Latin-1: RFB's clipboard).
const COPIED_IN_VIEWER: &str = "copied-in-the-native-viewer-5d1a";

fn tools_ready() -> bool {
    [
        "Xvfb",
        "x11vnc",
        "xterm",
        "xsetroot",
        "vncviewer",
        "xdotool",
        "xwd",
        "xclip",
    ]
    .iter()
    .all(|tool| require_tool(tool).is_some())
}

/// Rampart as desktop_vnc sets it up (alice, `desk`, `vnc@desk` with the canary vaulted, a
/// grant of `actions`), served again with the native VNC listener on; its port.
fn rampart_with_vnc_listener(desktop_port: u16, actions: &str) -> (Rampart, Server, u16) {
    rampart_with_native_listener(desktop_port, actions, "VNC", "vnc")
}

/// [`rampart_with_vnc_listener`] for the native listener `name` (`vnc`, `rdp`), turned on by
/// `RAMPART_{ENV}_LISTEN`; its port, from the banner.
pub(crate) fn rampart_with_native_listener(
    desktop_port: u16,
    actions: &str,
    env: &str,
    name: &str,
) -> (Rampart, Server, u16) {
    let (r, first) = rampart_for_desktop_granting(desktop_port, None, actions);
    let (status, _) = first.terminate();
    assert!(status.success(), "{status}");
    let (server, port) = serve_native_listener(&r, env, name);
    (r, server, port)
}

/// `rampart serve` with the native listener `name` on (`RAMPART_{ENV}_LISTEN`); its port,
/// from the banner.
pub(crate) fn serve_native_listener(r: &Rampart, env: &str, name: &str) -> (Server, u16) {
    let server = r.serve_with_env(&[(&format!("RAMPART_{env}_LISTEN"), "127.0.0.1:0")]);
    let prefix = format!("{name}: listening on ");
    let port = server
        .banner
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("the banner names the {name} listener: {:?}", server.banner))
        .port();
    (server, port)
}

/// After alice's wrong token (as `alice@vnc@desk`) and bob's connection without
/// `vnc:connect`: both refusals are on record (`login_failed`, `access_denied`), no session
/// was opened and the vaulted password is in no file. `said`: what the clients logged.
pub(crate) fn refusals_on_record(r: &Rampart, said: &str) {
    let failed = events_of_kind(r, "login_failed");
    assert!(
        failed
            .iter()
            .any(|e| e["login"] == "alice@vnc@desk" && e["method"] == "db-token"),
        "{failed:?}; clients: {said}"
    );
    let denied = events_of_kind(r, "access_denied");
    assert!(
        denied
            .iter()
            .any(|e| e["user"] == "bob" && e["action"] == "vnc:connect"),
        "{denied:?}; clients: {said}"
    );
    let list = r.json(&["session", "list"]);
    assert!(
        list.as_array().unwrap().iter().all(|s| s["kind"] != "vnc"),
        "a refused client opened a session: {list}"
    );
    let found = files_containing(&r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the VNC password is in {found:?}");
}

/// bob, who may use the clipboard on `desk` but not connect; his token.
pub(crate) fn bob_without_connect(r: &Rampart) -> String {
    r.ok(&["user", "add", "bob"]);
    r.ok(&[
        "grant",
        "add",
        "--user",
        "bob",
        "--asset",
        "desk",
        "--actions",
        "vnc:clipboard",
    ]);
    token(r, "bob")
}

pub(crate) fn token(r: &Rampart, user: &str) -> String {
    r.ok(&["db", "token", "create", "--user", user, "--ttl", "1h"])
        .trim()
        .to_owned()
}

/// An Xvfb display for the viewer, its root black (so only the viewer can show the target's
/// colour on it).
pub(crate) fn viewer_display(processes: &mut Processes) -> String {
    let display = desktop::x_display(
        processes,
        &desktop::Screen {
            size: VIEWER_SCREEN,
            xterm_geometry: "10x2+900+700",
            xterm_command: &["/bin/sh"],
        },
    );
    let black = Command::new("xsetroot")
        .args(["-display", &display, "-solid", "#000000"])
        .output()
        .unwrap();
    assert!(black.status.success(), "{}", text(&black));
    display
}

/// `vncviewer` on `display` to Rampart's VNC listener, trusting `ca`, logging in as `user`
/// with `password` from the environment; its output goes to `log`. No dialog may wait for a
/// person: errors end it.
fn vncviewer(
    display: &str,
    home: &Path,
    ca: &Path,
    port: u16,
    user: &str,
    password: &str,
    log: &Path,
) -> Child {
    Command::new("vncviewer")
        .args(["-SecurityTypes", "VeNCrypt,X509Plain", "-X509CA"])
        .arg(ca)
        .args(["-AlertOnFatalError=0", "-ReconnectOnError=0"])
        .arg(format!("127.0.0.1::{port}"))
        .env("DISPLAY", display)
        .env("HOME", home)
        .env("VNC_USERNAME", user)
        .env("VNC_PASSWORD", password)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(log).unwrap(),
        ))
        .spawn()
        .unwrap()
}

/// The colour of one pixel of `display`'s screen, read with `xwd` (a ZPixmap of 32 bits).
pub(crate) fn screen_pixel(display: &str, (x, y): (u16, u16)) -> [u8; 3] {
    let out = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let d = out.stdout;
    let field = |i: usize| u32::from_be_bytes(d[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let (header, byte_order, bits, stride, colours) =
        (field(0), field(7), field(11), field(12), field(19));
    assert_eq!(bits, 32, "xwd's bits per pixel");
    let at = header + colours * 12 + usize::from(y) * stride + usize::from(x) * 4;
    let raw: [u8; 4] = d[at..at + 4].try_into().unwrap();
    let v = if byte_order == 0 {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    };
    let channel = |mask: usize| ((v as usize & mask) >> mask.trailing_zeros()) as u8;
    [channel(field(14)), channel(field(15)), channel(field(16))]
}

pub(crate) fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 8)
}

/// The viewer's window on `display`: its id and the position of its top-left corner.
fn viewer_window(display: &str) -> (String, u16, u16) {
    window_named(display, "TigerVNC")
}

/// The window on `display` whose name contains `name`: its id and the position of its
/// top-left corner.
pub(crate) fn window_named(display: &str, name: &str) -> (String, u16, u16) {
    let mut found = None;
    wait_until("the viewer's window", || {
        let search = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", name])
            .env("DISPLAY", display)
            .output()
            .unwrap();
        found = String::from_utf8_lossy(&search.stdout)
            .lines()
            .next()
            .map(str::to_owned);
        found.is_some()
    });
    let id = found.unwrap();
    let geometry = Command::new("xdotool")
        .args(["getwindowgeometry", "--shell", &id])
        .env("DISPLAY", display)
        .output()
        .unwrap();
    let geometry = String::from_utf8_lossy(&geometry.stdout).into_owned();
    let value = |key: &str| {
        geometry
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no {key} in {geometry}"))
    };
    (id, value("X="), value("Y="))
}

pub(crate) fn xdotool(display: &str, args: &[&str]) {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .unwrap();
    assert!(out.status.success(), "xdotool {args:?}: {}", text(&out));
}

/// Waits up to `limit` for `child` to exit.
pub(crate) fn exited_within(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The viewer's log with its line wrapping undone (TigerVNC wraps long messages).
fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `vncviewer` as alice@vnc@desk, once it shows the target's desktop (its root colour where
/// no window covers it): the viewer, its window and the window's position.
fn viewer_showing_the_target(
    display: &str,
    home: &Path,
    ca: &Path,
    port: u16,
    token: &str,
    log: &Path,
) -> (Child, String, (u16, u16)) {
    let viewer = vncviewer(display, home, ca, port, "alice@vnc@desk", token, log);
    let (window, wx, wy) = viewer_window(display);
    let probe = (wx + PROBE.0, wy + PROBE.1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !close(screen_pixel(display, probe), ROOT) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        close(screen_pixel(display, probe), ROOT),
        "the viewer shows {:?} where the target's root colour is; viewer: {}",
        screen_pixel(display, probe),
        log_text(log)
    );
    (viewer, window, (wx, wy))
}

/// alice's viewer showing the target through the VNC listener, with what it runs on.
struct Viewing {
    r: Rampart,
    server: Server,
    token: String,
    /// The viewer's display.
    display: String,
    /// The viewer's home, its log in it.
    home: tempfile::TempDir,
    log: PathBuf,
    viewer: Child,
    window: String,
    /// Where the viewer's window shows the target's top-left corner.
    origin: (u16, u16),
    processes: Processes,
    desktop: Desktop,
}

/// The target's desktop, Rampart granting alice `actions` there with the VNC listener on, and
/// alice's viewer once it shows the target; `None` when a tool is missing.
fn viewing(actions: &str) -> Option<Viewing> {
    if !tools_ready() {
        return None;
    }
    let desktop = Desktop::start()?;
    let (r, server, port) = rampart_with_vnc_listener(desktop.port, actions);
    let ca = server.cert.clone().expect("the node's certificate");
    let token = token(&r, "alice");
    let mut processes = Processes::default();
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("vncviewer.log");
    let (viewer, window, origin) =
        viewer_showing_the_target(&display, home.path(), &ca, port, &token, &log);
    Some(Viewing {
        r,
        server,
        token,
        display,
        home,
        log,
        viewer,
        window,
        origin,
        processes,
        desktop,
    })
}

/// The whole path with a real viewer: it shows the target's screen, types into the remote
/// xterm (the command runs on the TARGET), is ended by a kill, and the session is recorded and
/// verifies, with the vaulted password nowhere.
#[test]
fn native_vnc_tigervnc_viewer_shows_types_is_killed_and_is_recorded() {
    let Some(Viewing {
        r,
        server,
        token,
        display,
        home: _home,
        log,
        mut viewer,
        window,
        origin: (wx, wy),
        mut processes,
        desktop,
    }) = viewing("vnc:connect,vnc:clipboard")
    else {
        return;
    };
    let probe = (wx + PROBE.0, wy + PROBE.1);
    let id = live_session(&r, "vnc");
    let listed = r.json(&["session", "list"]);
    let session = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap();
    // Through the VNC front, as the session's source says.
    assert!(session.to_string().contains("127.0.0.1 (vnc)"), "{session}");

    // Typed into the viewer: the remote xterm runs it, the TARGET's root turns purple, and
    // the viewer shows it.
    xdotool(&display, &["windowfocus", "--sync", &window]);
    let in_xterm = ((wx + IN_XTERM.0).to_string(), (wy + IN_XTERM.1).to_string());
    xdotool(&display, &["mousemove", &in_xterm.0, &in_xterm.1]);
    // The pointer's move reaches the target (x11vnc moves its pointer into the xterm, which
    // then has the keyboard: no window manager there) before the keys do.
    xdotool(&display, &["click", "1"]);
    std::thread::sleep(Duration::from_secs(1));
    xdotool(
        &display,
        &["type", "--delay", "50", "xsetroot -solid purple"],
    );
    xdotool(&display, &["key", "Return"]);
    wait_until("the target's root to turn purple", || {
        close(screen_pixel(&desktop.display, PROBE), PURPLE)
    });
    wait_until("the viewer to show the purple root", || {
        close(screen_pixel(&display, probe), PURPLE)
    });

    // With vnc:clipboard, a text copied on the viewer's display (the viewer has the focus)
    // reaches the target's X clipboard, and the transfer is audited with its size.
    copy_on_target(&mut processes, &display, COPIED_IN_VIEWER);
    wait_until("the viewer's copy on the target's clipboard", || {
        x_clipboard(&desktop.display).is_ok_and(|held| held == COPIED_IN_VIEWER)
    });
    let transfers = clipboard_transfers(&r);
    assert!(
        transfers.iter().any(|e| e["direction"] == "to_target"
            && e["allowed"] == true
            && e["bytes"] == COPIED_IN_VIEWER.len()
            && e["session"] == id.as_str()),
        "{transfers:?}"
    );

    // A kill ends the viewer's connection: the viewer exits.
    r.ok(&["session", "kill", &id, "--reason", KILL_REASON]);
    assert!(
        exited_within(&mut viewer, Duration::from_secs(30)),
        "the viewer still runs after the kill; {}",
        log_text(&log)
    );
    let session = killed_session(&r, "vnc");
    assert_eq!(session["id"], id.as_str(), "{session}");
    assert_eq!(session["recorded"], true, "{session}");

    // Recorded as the browser's desktop sessions: the desktop stream with a key frame of the
    // 800x600 screen, keys as "a key" only, and the chain and recording verify.
    let recorded = recorded_with_key_frame(&r, &id);
    assert_keys_recorded_without_which(&recorded);
    verified_eventually(&r);

    // The login is on record as a token login from the VNC front's source.
    let logins = events_of_kind(&r, "login_succeeded");
    assert!(
        logins
            .iter()
            .any(|e| e["user"] == "alice" && e["method"] == "db-token"),
        "{logins:?}"
    );

    // The vaulted VNC password and the token: in no file of the data directory, the server's
    // output or the viewer's log.
    let found = files_containing(&r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the VNC password is in {found:?}");
    let found = files_containing(&r.data_dir(), token.as_bytes());
    assert!(found.is_empty(), "the token is in {found:?}");
    let (_, stderr) = server.terminate();
    assert!(!stderr.contains(CANARY) && !stderr.contains(&token));
    assert!(!log_text(&log).contains(CANARY));
    drop(processes);
    drop(desktop);
}

/// A wrong token and a grant without `vnc:connect` are refused with the reason the viewer
/// shows, each audited, and neither opens a session.
#[test]
fn native_vnc_refuses_a_wrong_token_and_a_grant_without_vnc_connect() {
    if !tools_ready() {
        return;
    }
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let (r, server, port) = rampart_with_vnc_listener(desktop.port, "vnc:connect");
    let bob_token = bob_without_connect(&r);
    let ca = server.cert.clone().expect("the node's certificate");
    let mut processes = Processes::default();
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();

    let run = |user: &str, password: &str, name: &str| -> String {
        let log = home.path().join(name);
        let mut viewer = vncviewer(&display, home.path(), &ca, port, user, password, &log);
        assert!(
            exited_within(&mut viewer, Duration::from_secs(30)),
            "the refused viewer still runs; {}",
            log_text(&log)
        );
        log_text(&log)
    };

    let wrong = run("alice@vnc@desk", "rampartdb_not-a-token", "wrong.log");
    assert!(
        wrong.contains("Authentication failure: Rampart: authentication failed"),
        "{wrong}"
    );
    let no_grant = run("bob@vnc@desk", &bob_token, "no-grant.log");
    assert!(
        no_grant.contains("Authentication failure: bob may not connect to vnc@desk"),
        "{no_grant}"
    );
    refusals_on_record(&r, &format!("{wrong}\n{no_grant}"));
    drop(server);
    drop(processes);
    drop(desktop);
}

/// A viewer of our own (Python's `socket` and `ssl`, the credentials from the environment):
/// the handshake a stock viewer does, ServerInit, then `HOSTILE` (hex) as its next bytes. It
/// prints `SERVERINIT W H` and, once Rampart closed the connection, `CLOSED`.
const HOSTILE_VIEWER: &str = r#"
import os, socket, ssl, struct
conn = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
def rx(n):
    got = b""
    while len(got) < n:
        chunk = conn.recv(n - len(got))
        if not chunk:
            raise SystemExit("closed after %d of %d bytes" % (len(got), n))
        got += chunk
    return got
assert rx(12) == b"RFB 003.008\n"
conn.sendall(b"RFB 003.008\n")
assert rx(2) == b"\x01\x13", "only VeNCrypt"
conn.sendall(b"\x13")
assert rx(2) == b"\x00\x02"
conn.sendall(b"\x00\x02")
assert rx(6) == b"\x00\x01\x00\x00\x01\x06", "only X509Plain"
conn.sendall(struct.pack(">I", 262))
assert rx(1) == b"\x01"
conn = ssl.create_default_context(cafile=os.environ["CA"]).wrap_socket(conn, server_hostname="localhost")
user, password = os.environ["VNC_USERNAME"].encode(), os.environ["VNC_PASSWORD"].encode()
conn.sendall(struct.pack(">II", len(user), len(password)) + user + password)
assert rx(4) == b"\x00\x00\x00\x00", "logged in"
conn.sendall(b"\x01")
width, height = struct.unpack(">HH", rx(4))
rx(16)
rx(struct.unpack(">I", rx(4))[0])
print("SERVERINIT", width, height, flush=True)
conn.sendall(bytes.fromhex(os.environ["HOSTILE"]) + b"a" * 4096)
try:
    while conn.recv(65536):
        pass
except OSError:
    pass
print("CLOSED", flush=True)
"#;

/// A viewer that breaks RFB after logging in (a clipboard text declaring 4 GiB, an unknown
/// message type, a colour-map pixel format) is closed, its session ends with the reason, the
/// node lives on, and nothing it declared was allocated or waited for.
#[test]
fn native_vnc_a_hostile_viewer_is_closed_with_the_reason_and_the_node_lives_on() {
    let tools = ["Xvfb", "x11vnc", "xterm", "xsetroot", "python3"];
    if !tools.iter().all(|tool| require_tool(tool).is_some()) {
        return;
    }
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let (r, server, port) = rampart_with_vnc_listener(desktop.port, "vnc:connect");
    let ca = server.cert.clone().expect("the node's certificate");
    let token = token(&r, "alice");
    let colour_map = "000000000808000000070007000300030600000000";
    let cases = [
        ("06000000ffffffff", "a clipboard text of 4294967295 bytes"),
        ("c8", "unknown message type 200"),
        (&colour_map[..40], "a colour-map pixel format"),
    ];
    for (hostile, reason) in cases {
        let out = Command::new("python3")
            .args(["-c", HOSTILE_VIEWER])
            .env("PORT", port.to_string())
            .env("CA", &ca)
            .env("VNC_USERNAME", "alice@desk")
            .env("VNC_PASSWORD", &token)
            .env("HOSTILE", hostile)
            .output()
            .unwrap();
        let said = text(&out);
        assert!(
            out.status.success() && said.contains("SERVERINIT 800 600") && said.contains("CLOSED"),
            "{hostile}: {said}"
        );
        let list = sessions(&r);
        assert!(
            list.iter().any(|s| s["end_reason"]
                .as_str()
                .is_some_and(|why| why.contains("the viewer sent a malformed message")
                    && why.contains(reason))),
            "{hostile}: no session ended with {reason:?}: {list:?}"
        );
    }
    // The node lives on: it answers, the chain and recordings verify, nothing panicked.
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    verified_eventually(&r);
    let logs = files_containing(&r.data_dir().join("logs"), b"panicked");
    assert!(logs.is_empty(), "a panic in {logs:?}");
    drop(server);
    drop(desktop);
}

/// Without `vnc:clipboard`, a text copied on the viewer's display never reaches the target's
/// clipboard, and the refusal is audited with its size.
#[test]
fn native_vnc_without_vnc_clipboard_a_viewer_copy_is_refused_and_audited() {
    let Some(Viewing {
        r,
        server,
        token: _token,
        display,
        home: _home,
        log: _log,
        viewer: _viewer,
        window,
        origin: _,
        mut processes,
        desktop,
    }) = viewing("vnc:connect")
    else {
        return;
    };
    xdotool(&display, &["windowfocus", "--sync", &window]);
    copy_on_target(&mut processes, &display, COPIED_IN_VIEWER);
    let refused = |e: &serde_json::Value| {
        e["direction"] == "to_target"
            && e["allowed"] == false
            && e["bytes"] == COPIED_IN_VIEWER.len()
    };
    wait_until("the refused copy to be audited", || {
        clipboard_transfers(&r).iter().any(refused)
    });
    // Rampart decided before anything could reach the target: its clipboard never holds it.
    assert!(
        x_clipboard(&desktop.display).map_or(true, |held| !held.contains(COPIED_IN_VIEWER)),
        "the refused copy is on the target's clipboard"
    );
    let audit = r.json(&["audit", "list", "--limit", "1000"]).to_string();
    assert!(
        !audit.contains(COPIED_IN_VIEWER),
        "the clipboard text is in the audit"
    );
    drop(server);
    drop(processes);
    drop(desktop);
}

/// A viewer's window resized by its user (`xdotool windowsize`, as a drag of its corner
/// would) resizes an Xvnc target: TigerVNC's viewer, told by Rampart that it may ask
/// (ExtendedDesktopSize), sends SetDesktopSize; the target's own X screen (as `xrandr` reads
/// it) becomes the window's size, and the viewer shows the target's desktop to its window's
/// bottom-right corner, which an 800x600 picture leaves empty. The request is recorded as
/// input metadata, and the killed session verifies.
#[test]
fn native_vnc_a_resized_viewer_window_resizes_an_xvnc_desktop() {
    let tools = ["Xvnc", "vncpasswd", "xrandr"];
    if !tools_ready() || tools.iter().any(|tool| require_tool(tool).is_none()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::default();
    let port = free_port();
    let target = desktop::xvnc(&mut processes, &TEST_SCREEN, port, CANARY, dir.path());
    assert_eq!(x_screen_size(&target), Some(SCREEN));
    let (r, server, listener) = rampart_with_vnc_listener(port, "vnc:connect");
    let ca = server.cert.clone().expect("the node's certificate");
    let token = token(&r, "alice");
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("vncviewer.log");
    let (mut viewer, window, (wx, wy)) =
        viewer_showing_the_target(&display, home.path(), &ca, listener, &token, &log);
    let said = || log_text(&log);
    window_resize_reaches_the_xvnc_target(
        &r,
        &target,
        &display,
        &window,
        (wx, wy),
        &mut viewer,
        &said,
    );
    drop(server);
}

/// The size a resize test gives a native client's window.
const RESIZED_WINDOW: (u16, u16) = (1000, 700);

/// A native client's `window` (on `display`, its top-left at `origin`) showing the session
/// to the Xvnc `target` is resized to [`RESIZED_WINDOW`]: the target's X screen becomes that
/// size, the client shows the target's root colour in the window's bottom-right corner, a
/// kill ends `client`, and the recording has the request and verifies. `said`: the client's
/// log, for the failures' messages.
pub(crate) fn window_resize_reaches_the_xvnc_target(
    r: &Rampart,
    target: &str,
    display: &str,
    window: &str,
    (wx, wy): (u16, u16),
    client: &mut Child,
    said: &dyn Fn() -> String,
) {
    let id = live_session(r, "vnc");
    let (w, h) = RESIZED_WINDOW;
    xdotool(
        display,
        &[
            "windowsize",
            "--sync",
            window,
            &w.to_string(),
            &h.to_string(),
        ],
    );
    assert_eq!(
        x_screen_becomes(target, RESIZED_WINDOW),
        Some(RESIZED_WINDOW),
        "the target's screen; client: {}",
        said()
    );
    let corner = (wx + w - 10, wy + h - 10);
    wait_until("the client to show the target's root in its corner", || {
        close(screen_pixel(display, corner), ROOT)
    });

    r.ok(&["session", "kill", &id, "--reason", KILL_REASON]);
    assert!(
        exited_within(client, Duration::from_secs(30)),
        "the client still runs after the kill; {}",
        said()
    );
    let recorded = recorded_with_key_frame(r, &id);
    let request = format!(r#"{{"t":"resize","w":{w},"h":{h}}}"#);
    assert!(recorded.contains(&request), "{request} is not recorded");
    verified_eventually(r);
}
