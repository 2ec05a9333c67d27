//! Native RDP clients through Rampart (issue 22): FreeRDP's `xfreerdp`, on an Xvfb display of
//! its own, connects to Rampart's RDP listener (`rdp.listen`) with TLS security, the node's
//! certificate pinned by its SHA-256 fingerprint (`/cert:fingerprint:`), as `alice#vnc@desk`
//! with a database token read from stdin (`/from-stdin:force`, never argv). The target is
//! desktop_vnc's: Xvfb with a known root colour and an xterm, x11vnc with the vaulted VNC
//! password (the canary); the RDP client's scancodes reach it as keysyms.
//!
//! What a person sees is checked on the screens themselves (`xwd`): the client's window shows
//! the target's root colour; keys typed into the client (`xdotool`) run a command in the
//! remote xterm that changes the TARGET's root colour, and the client shows that too. A kill
//! from the CLI ends the client (it exits); the session is recorded as every desktop session
//! is, and `audit verify` passes; the canary and the token are nowhere. A wrong token is
//! refused and audited (`login_failed`); a grant without `vnc:connect` is refused and audited
//! (`access_denied`), and neither opens a session. A client that breaks the protocol is
//! closed and the node lives on.

use crate::db_common::{live_session, text, verified_eventually};
use crate::desktop_common::{
    CANARY, IN_XTERM, KILL_REASON, PROBE, assert_keys_recorded_without_which, clipboard_transfers,
    killed_session, recorded_with_key_frame, sessions,
};
use crate::desktop_common::{TEST_SCREEN, free_port};
use crate::desktop_rdp::{
    COLOUR_COMMAND, XRDP_PASSWORD, Xrdp, rampart_with_rdp_desk, sha256_fingerprint, xrdp_desk,
};
use crate::desktop_vnc::{Desktop, copy_on_target, x_clipboard};
use crate::login_controls::events_of_kind;
use crate::native_vnc::{
    bob_without_connect, close, exited_within, rampart_with_native_listener, refusals_on_record,
    screen_pixel, serve_native_listener, token, viewer_display, window_named,
    window_resize_reaches_the_xvnc_target, xdotool,
};
use rampart_testkit::desktop::{self, Processes, wait_until};
use rampart_testkit::{Rampart, Server, files_containing, require_tool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The root colour of the target (`desktop::ROOT_COLOUR`), and the one the typed command sets.
const ROOT: [u8; 3] = [0x12, 0xab, 0x34];
const PURPLE: [u8; 3] = [0xa0, 0x20, 0xf0];
/// Copied on the client's display, pasted on the target's; and the other way (Latin-1: the
/// VNC target's clipboard).
const COPIED_IN_CLIENT: &str = "copied-in-the-rdp-client-41c7";
const COPIED_ON_TARGET: &str = "copied-on-the-target-for-rdp-9e02";

fn tools_ready() -> bool {
    [
        "Xvfb", "x11vnc", "xterm", "xsetroot", "xfreerdp", "xdotool", "xwd", "openssl",
    ]
    .iter()
    .all(|tool| require_tool(tool).is_some())
}

fn rampart_with_rdp_listener(desktop_port: u16, actions: &str) -> (Rampart, Server, u16) {
    rampart_with_native_listener(desktop_port, actions, "RDP", "rdp")
}

/// `xfreerdp` on `display` to Rampart's RDP listener, pinning `cert`, logging in as `user`
/// with `password` from stdin, with the `extra` options; its output goes to `log`. No dialog
/// may wait for a person.
fn xfreerdp(
    display: &str,
    home: &Path,
    cert: &Path,
    port: u16,
    (user, password): (&str, &str),
    log: &Path,
    extra: &[&str],
) -> Child {
    let mut child = Command::new("xfreerdp")
        .arg(format!("/v:127.0.0.1:{port}"))
        .args(extra)
        .args([
            "/sec:tls",
            "/bpp:32",
            "+clipboard",
            "/auto-reconnect-max-retries:0",
        ])
        .arg(format!(
            "/cert:fingerprint:sha256:{}",
            sha256_fingerprint(cert)
        ))
        .arg(format!("/u:{user}"))
        .arg("/from-stdin:force")
        .env("DISPLAY", display)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(log).unwrap(),
        ))
        .spawn()
        .unwrap();
    // It asks for the password only (the user name is given); stdin stays open while the
    // client runs.
    let stdin = child.stdin.as_mut().unwrap();
    let _ = writeln!(stdin, "{password}");
    let _ = stdin.flush();
    child
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// `xfreerdp` as `user` on `display`, once its window shows the target's root colour where
/// no window covers it: the client, its window, the window's position and the client's log.
fn client_showing_root(
    display: &str,
    home: &Path,
    cert: &Path,
    port: u16,
    user: &str,
    token: &str,
    extra: &[&str],
) -> (Child, String, (u16, u16), PathBuf) {
    let log = home.join("xfreerdp.log");
    let client = xfreerdp(display, home, cert, port, (user, token), &log, extra);
    let (window, wx, wy) = window_named(display, "FreeRDP");
    let probe = (wx + PROBE.0, wy + PROBE.1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !close(screen_pixel(display, probe), ROOT) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        close(screen_pixel(display, probe), ROOT),
        "the client shows {:?} where the target's root colour is; client: {}",
        screen_pixel(display, probe),
        log_text(&log)
    );
    (client, window, (wx, wy), log)
}

/// alice's client showing the target through the RDP listener, with what it runs on.
struct Viewing {
    r: Rampart,
    server: Option<Server>,
    token: String,
    display: String,
    _home: tempfile::TempDir,
    log: PathBuf,
    client: Child,
    window: String,
    origin: (u16, u16),
    _processes: Processes,
    desktop: Desktop,
}

/// The target's desktop, Rampart granting alice `actions` there with the RDP listener on, and
/// alice's client once it shows the target; `None` when a tool is missing.
fn viewing(actions: &str) -> Option<Viewing> {
    if !tools_ready() {
        return None;
    }
    let desktop = Desktop::start()?;
    let (r, server, port) = rampart_with_rdp_listener(desktop.port, actions);
    let cert = server.cert.clone().expect("the node's certificate");
    let token = token(&r, "alice");
    let mut processes = Processes::default();
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();
    let (client, window, origin, log) = client_showing_root(
        &display,
        home.path(),
        &cert,
        port,
        "alice#vnc@desk",
        &token,
        &[],
    );
    Some(Viewing {
        r,
        server: Some(server),
        token,
        display,
        _home: home,
        log,
        client,
        window,
        origin,
        _processes: processes,
        desktop,
    })
}

/// The whole path with a real RDP client: it shows the target's screen, types into the
/// remote xterm (the command runs on the TARGET), is ended by a kill, and the session is
/// recorded and verifies, with the vaulted password and the token nowhere.
#[test]
fn native_rdp_xfreerdp_shows_types_is_killed_and_is_recorded() {
    let Some(mut v) = viewing("vnc:connect") else {
        return;
    };
    let server = v.server.take().unwrap();
    let (wx, wy) = v.origin;
    let probe = (wx + PROBE.0, wy + PROBE.1);
    let id = live_session(&v.r, "vnc");
    let listed = v.r.json(&["session", "list"]);
    let session = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap()
        .clone();
    // Through the RDP front, as the session's source says.
    assert!(session.to_string().contains("127.0.0.1 (rdp)"), "{session}");

    // Typed into the client: the remote xterm runs it, the TARGET's root turns purple, and
    // the client shows it.
    xdotool(&v.display, &["windowfocus", "--sync", &v.window]);
    let in_xterm = ((wx + IN_XTERM.0).to_string(), (wy + IN_XTERM.1).to_string());
    xdotool(&v.display, &["mousemove", &in_xterm.0, &in_xterm.1]);
    xdotool(&v.display, &["click", "1"]);
    std::thread::sleep(Duration::from_secs(1));
    xdotool(
        &v.display,
        &["type", "--delay", "50", "xsetroot -solid purple"],
    );
    xdotool(&v.display, &["key", "Return"]);
    wait_until("the target's root to turn purple", || {
        close(screen_pixel(&v.desktop.display, PROBE), PURPLE)
    });
    wait_until("the client to show the purple root", || {
        close(screen_pixel(&v.display, probe), PURPLE)
    });

    // A kill ends the client's connection: the client exits.
    v.r.ok(&["session", "kill", &id, "--reason", KILL_REASON]);
    assert!(
        exited_within(&mut v.client, Duration::from_secs(30)),
        "the client still runs after the kill; {}",
        log_text(&v.log)
    );
    let session = killed_session(&v.r, "vnc");
    assert_eq!(session["id"], id.as_str(), "{session}");
    assert_eq!(session["recorded"], true, "{session}");

    // Recorded as every desktop session: a key frame of the 800x600 screen, keys as "a key"
    // only, and the chain and recording verify.
    let recorded = recorded_with_key_frame(&v.r, &id);
    assert_keys_recorded_without_which(&recorded);
    verified_eventually(&v.r);

    let logins = events_of_kind(&v.r, "login_succeeded");
    assert!(
        logins
            .iter()
            .any(|e| e["user"] == "alice" && e["method"] == "db-token"),
        "{logins:?}"
    );

    // The vaulted VNC password and the token: in no file of the data directory, the
    // server's output or the client's log.
    let found = files_containing(&v.r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the VNC password is in {found:?}");
    let found = files_containing(&v.r.data_dir(), v.token.as_bytes());
    assert!(found.is_empty(), "the token is in {found:?}");
    let log = log_text(&v.log);
    assert!(!log.contains(CANARY) && !log.contains(&v.token), "{log}");
    let (_, stderr) = server.terminate();
    assert!(!stderr.contains(CANARY) && !stderr.contains(&v.token));
}

/// An RDP target (the xrdp desktop of desktop_rdp: TLS, the vaulted password of a local
/// account): the client's scancodes go to it as scancodes. The client shows the session's
/// root colour, a command typed into the session's xterm turns it blue, and a kill ends the
/// client; the session is an `rdp` one, through the RDP front.
#[test]
fn native_rdp_xfreerdp_reaches_an_rdp_target_by_scancode() {
    if !tools_ready() {
        return;
    }
    let Some(xrdp) = Xrdp::start() else {
        return;
    };
    let r = rampart_with_rdp_desk(&xrdp_desk(&xrdp, "rdp:connect"));
    let (server, port) = serve_native_listener(&r, "RDP", "rdp");
    let cert = server.cert.clone().expect("the node's certificate");
    let token = token(&r, "alice");
    let mut processes = Processes::default();
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();
    let (mut client, window, (wx, wy), log) = client_showing_root(
        &display,
        home.path(),
        &cert,
        port,
        "alice#xdesk",
        &token,
        &[],
    );
    let probe = (wx + PROBE.0, wy + PROBE.1);
    let id = live_session(&r, "rdp");
    let listed = r.json(&["session", "list"]).to_string();
    assert!(listed.contains("127.0.0.1 (rdp)"), "{listed}");

    xdotool(&display, &["windowfocus", "--sync", &window]);
    let in_xterm = ((wx + IN_XTERM.0).to_string(), (wy + IN_XTERM.1).to_string());
    xdotool(&display, &["mousemove", &in_xterm.0, &in_xterm.1]);
    xdotool(&display, &["click", "1"]);
    std::thread::sleep(Duration::from_secs(1));
    xdotool(&display, &["type", "--delay", "50", COLOUR_COMMAND]);
    xdotool(&display, &["key", "Return"]);
    wait_until("the client to show the blue root", || {
        close(screen_pixel(&display, probe), [0, 0, 255])
    });

    r.ok(&["session", "kill", &id, "--reason", KILL_REASON]);
    let exited = exited_within(&mut client, Duration::from_secs(30));
    if !exited {
        let _ = client.kill();
        let _ = client.wait();
    }
    assert!(
        exited,
        "the client still runs after the kill; {}",
        log_text(&log)
    );
    let session = killed_session(&r, "rdp");
    assert_eq!(session["id"], id.as_str(), "{session}");
    verified_eventually(&r);
    let found = files_containing(&r.data_dir(), XRDP_PASSWORD.as_bytes());
    assert!(found.is_empty(), "the vaulted password is in {found:?}");
    let found = files_containing(&r.data_dir(), token.as_bytes());
    assert!(
        found.is_empty(),
        "the token is in {found:?}; {}",
        xrdp.logs()
    );
    drop(server);
    drop(processes);
    drop(xrdp);
}

/// A wrong token and a grant without `vnc:connect` are refused (the client exits), each
/// audited, and neither opens a session.
#[test]
fn native_rdp_refuses_a_wrong_token_and_a_grant_without_connect() {
    if !tools_ready() {
        return;
    }
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let (r, server, port) = rampart_with_rdp_listener(desktop.port, "vnc:connect");
    let bob_token = bob_without_connect(&r);
    let cert = server.cert.clone().expect("the node's certificate");
    let mut processes = Processes::default();
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();

    let run = |user: &str, password: &str, name: &str| -> String {
        let log = home.path().join(name);
        let mut client = xfreerdp(
            &display,
            home.path(),
            &cert,
            port,
            (user, password),
            &log,
            &[],
        );
        let exited = exited_within(&mut client, Duration::from_secs(30));
        if !exited {
            let _ = client.kill();
            let _ = client.wait();
        }
        assert!(exited, "the refused client still runs; {}", log_text(&log));
        log_text(&log)
    };

    let wrong = run("alice#vnc@desk", "rampartdb_not-a-token", "wrong.log");
    let no_grant = run("bob#vnc@desk", &bob_token, "no-grant.log");
    // The client is told "access denied" (RDP has no place for the reason: the log has it).
    for said in [&wrong, &no_grant] {
        assert!(
            said.contains("ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES"),
            "{said}"
        );
    }
    refusals_on_record(&r, &format!("{wrong}\n{no_grant}"));
    drop(server);
    drop(processes);
    drop(desktop);
}

/// A client of our own (Python's `socket` and `ssl`): X.224 asking for TLS, the TLS
/// handshake (the node's certificate checked), then `HOSTILE` (hex). It prints `CLOSED` once
/// Rampart closed the connection. With `PLAIN` set, the bytes go before any negotiation.
const HOSTILE_CLIENT: &str = r#"
import os, socket, ssl
conn = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
hostile = bytes.fromhex(os.environ["HOSTILE"])
if os.environ.get("ASK"):
    # An X.224 Connection Request for the protocols ASK says (0: standard RDP security,
    # 2: NLA only), then what the negotiation answers: its type and code.
    conn.sendall(bytes.fromhex("030000130ee00000000000010008000%s000000" % os.environ["ASK"]))
    answer = b""
    while len(answer) < 19:
        chunk = conn.recv(19 - len(answer))
        if not chunk:
            raise SystemExit("closed after " + answer.hex())
        answer += chunk
    print("NEGOTIATION", answer[11], answer[15], flush=True)
    raise SystemExit
if not os.environ.get("PLAIN"):
    conn.sendall(bytes.fromhex("030000130ee000000000000100080001000000"))
    confirm = conn.recv(19)
    assert confirm[:2] == b"\x03\x00" and confirm[11] == 2 and confirm[15] == 1, confirm.hex()
    context = ssl.create_default_context(cafile=os.environ["CA"])
    context.check_hostname = False
    conn = context.wrap_socket(conn)
    print("TLS", flush=True)
conn.sendall(hostile)
try:
    while conn.recv(65536):
        pass
except OSError:
    pass
print("CLOSED", flush=True)
"#;

/// Clients that break RDP (no X.224 at all; after TLS, an MCS Connect Initial that is not
/// one) are closed, clients that want standard RDP security or NLA are refused in the
/// negotiation, no session opens, and the node lives on without a panic.
#[test]
fn native_rdp_a_hostile_client_is_closed_and_the_node_lives_on() {
    let tools = ["Xvfb", "x11vnc", "xterm", "xsetroot", "python3"];
    if !tools.iter().all(|tool| require_tool(tool).is_some()) {
        return;
    }
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let (r, server, port) = rampart_with_rdp_listener(desktop.port, "vnc:connect");
    let ca = server.cert.clone().expect("the node's certificate");
    let cases = [
        ("474554202f20485454502f312e310d0a0d0a", true),
        ("0300000c02f080ffffffffff", false),
    ];
    for (hostile, plain) in cases {
        let mut command = Command::new("python3");
        command
            .args(["-c", HOSTILE_CLIENT])
            .env("PORT", port.to_string())
            .env("CA", &ca)
            .env("HOSTILE", hostile);
        if plain {
            command.env("PLAIN", "1");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = text(&out);
        assert!(
            out.status.success() && said.contains("CLOSED") && (plain || said.contains("TLS")),
            "{hostile}: {said}"
        );
    }
    // Nothing but TLS is agreed: a client asking for standard RDP security only, or NLA only,
    // gets the negotiation's failure (type 3), "SSL required by server" (1).
    for ask in ["0", "2"] {
        let out = Command::new("python3")
            .args(["-c", HOSTILE_CLIENT])
            .env("PORT", port.to_string())
            .env("CA", &ca)
            .env("HOSTILE", "")
            .env("ASK", ask)
            .output()
            .unwrap();
        let said = text(&out);
        assert!(
            out.status.success() && said.contains("NEGOTIATION 3 1"),
            "asking for {ask}: {said}"
        );
    }
    assert!(sessions(&r).is_empty(), "a hostile client opened a session");
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    verified_eventually(&r);
    let logs = files_containing(&r.data_dir().join("logs"), b"panicked");
    assert!(logs.is_empty(), "a panic in {logs:?}");
    drop(server);
    drop(desktop);
}

/// The clipboard through the RDP front, with `vnc:clipboard`: a text copied on the client's
/// display reaches the target's clipboard (xfreerdp announces it on the CLIPRDR channel,
/// Rampart fetches it and the session passes it), and a text copied on the target reaches the
/// client's (Rampart announces it, and `xclip -o` on the client's display makes xfreerdp fetch
/// it); each transfer is audited with its size, in its direction.
#[test]
fn native_rdp_clipboard_crosses_both_ways_with_vnc_clipboard_and_each_transfer_is_audited() {
    let Some(v) = viewing("vnc:connect,vnc:clipboard") else {
        return;
    };
    let id = live_session(&v.r, "vnc");
    let mut owners = Processes::default();

    copy_on_target(&mut owners, &v.display, COPIED_IN_CLIENT);
    wait_until("the client's copy on the target's clipboard", || {
        x_clipboard(&v.desktop.display).is_ok_and(|held| held == COPIED_IN_CLIENT)
    });
    copy_on_target(&mut owners, &v.desktop.display, COPIED_ON_TARGET);
    // As an X application pastes it: UTF-8 (what xfreerdp offers for Unicode text).
    let pasted = || {
        let out = Command::new("xclip")
            .args(["-display", &v.display, "-o", "-selection", "clipboard"])
            .args(["-target", "UTF8_STRING"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until("the target's copy on the client's clipboard", || {
        pasted() == COPIED_ON_TARGET
    });

    let transfers = clipboard_transfers(&v.r);
    for (direction, text) in [
        ("to_target", COPIED_IN_CLIENT),
        ("to_user", COPIED_ON_TARGET),
    ] {
        assert!(
            transfers.iter().any(|e| e["direction"] == direction
                && e["allowed"] == true
                && e["bytes"] == text.len()
                && e["session"] == id.as_str()),
            "no {direction} transfer of {} bytes: {transfers:?}; client: {}",
            text.len(),
            log_text(&v.log)
        );
    }
    drop(owners);
}

/// A client window resized by its user (`xdotool windowsize`, as a drag of its corner would)
/// resizes an Xvnc target: xfreerdp with `/dynamic-resolution` sends the window's size on the
/// Display Control channel Rampart offers; the target's own X screen (as `xrandr` reads it)
/// becomes that size, the client is reactivated at it and shows the target's desktop to its
/// window's bottom-right corner, which the first 800x600 picture left empty. The request is
/// recorded as input metadata, and the killed session verifies.
#[test]
fn native_rdp_a_resized_client_window_resizes_an_xvnc_desktop() {
    let tools = ["Xvnc", "vncpasswd", "xrandr"];
    if !tools_ready() || tools.iter().any(|tool| require_tool(tool).is_none()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::default();
    let port = free_port();
    let target = desktop::xvnc(&mut processes, &TEST_SCREEN, port, CANARY, dir.path());
    let (r, server, listener) = rampart_with_rdp_listener(port, "vnc:connect");
    let cert = server.cert.clone().expect("the node's certificate");
    let token = token(&r, "alice");
    let display = viewer_display(&mut processes);
    let home = tempfile::tempdir().unwrap();
    let dynamic = ["/dynamic-resolution"];
    let (mut client, window, (wx, wy), log) = client_showing_root(
        &display,
        home.path(),
        &cert,
        listener,
        "alice#vnc@desk",
        &token,
        &dynamic,
    );
    let said = || log_text(&log);
    window_resize_reaches_the_xvnc_target(
        &r,
        &target,
        &display,
        &window,
        (wx, wy),
        &mut client,
        &said,
    );
    drop(server);
}
