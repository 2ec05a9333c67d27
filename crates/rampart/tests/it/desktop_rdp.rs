//! RDP desktops through Rampart in real headless Chromium (issue 22): Xvfb with a known root
//! colour and an xterm, FreeRDP's shadow server sharing it on loopback with NLA only (its SAM
//! file holds the NT hash of `CANARY`, the password vaulted in Rampart), and the endpoint's
//! certificate pinned in Rampart. The browser logs in, connects (Rampart is the RDP client:
//! TLS, CredSSP, the active stage), reads canvas pixels, types a command into the remote xterm
//! and sees its effect; the session is killed from the CLI and the page shows why; the
//! recording verifies, replays, and stops verifying after a byte is flipped; the vaulted
//! password is nowhere in the data directory. A paste without `rdp:clipboard` is refused on
//! the page and audited with its size. A hostile server that answers the connection request
//! with garbage ends its session cleanly, and the node lives on.

use super::BIN;
use crate::db_common::{text, verified_eventually};
use crate::desktop_vnc::{
    KILL_REASON, Processes, SCREEN, browser_ready, free_port, run_browser, sessions, wait_until,
    x_display,
};
use rampart_testkit::{Rampart, Server, files_containing, require_tool};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const CANARY: &str = "rdp-canary-51c9";
const LOGIN: &str = "alice";
/// Typed into the remote xterm (no shifted characters: keys go as scancodes, and Playwright's
/// `type` presses no Shift); it turns the root window blue.
const COLOUR_COMMAND: &str = "xsetroot -solid blue";
const BLUE: &str = "0,0,255";

/// Xvfb and an xterm shared by `freerdp-shadow-cli` on a loopback port, NLA only, with the
/// NT hash of `CANARY` for `alice` in its SAM file; its certificate's fingerprint to pin.
struct RdpDesktop {
    port: u16,
    fingerprint: String,
    _processes: Processes,
    _dir: tempfile::TempDir,
}

/// The NT hash (MD4 of the UTF-16LE password) that a SAM file holds, by `openssl`.
fn nt_hash(password: &str) -> String {
    let utf16: Vec<u8> = password
        .encode_utf16()
        .flat_map(|unit| unit.to_le_bytes())
        .collect();
    let mut child = Command::new("openssl")
        .args(["dgst", "-r", "-provider", "legacy", "-provider", "default"])
        .arg("-md4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&utf16).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

impl RdpDesktop {
    fn start() -> Option<Self> {
        let tools = ["Xvfb", "xterm", "xsetroot", "freerdp-shadow-cli", "openssl"];
        let found: Vec<PathBuf> = tools.iter().filter_map(|t| require_tool(t)).collect();
        if found.len() != tools.len() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut processes = Processes::default();
        let display = x_display(&mut processes);
        let sam = dir.path().join("sam");
        std::fs::write(
            &sam,
            format!(
                "{LOGIN}::aad3b435b51404eeaad3b435b51404ee:{}:::\n",
                nt_hash(CANARY)
            ),
        )
        .unwrap();
        // The shadow server keeps its generated certificate under $HOME.
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let port = free_port();
        processes.0.push(
            Command::new("freerdp-shadow-cli")
                .arg(format!("/port:{port}"))
                .args(["/bind-address:127.0.0.1", "/sec:nla", "-auth"])
                .arg(format!("/sam-file:{}", sam.display()))
                .env("DISPLAY", &display)
                .env("HOME", &home)
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("shadow.log")).unwrap(),
                ))
                .spawn()
                .unwrap(),
        );
        wait_until("freerdp-shadow-cli", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let cert = home.join(".config/freerdp/shadow/shadow.crt");
        wait_until("the shadow server's certificate", || cert.exists());
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        // `sha256 Fingerprint=AB:CD:...`
        let printed = String::from_utf8(out.stdout).unwrap();
        let hex = printed.trim().rsplit('=').next().unwrap().replace(':', "");
        Some(Self {
            port,
            fingerprint: format!("SHA256:{}", hex.to_lowercase()),
            _processes: processes,
            _dir: dir,
        })
    }
}

/// Rampart with alice (password `alice-password-1`) and the desktop `desk` with an RDP
/// endpoint on `port` (its certificate pinned when `pin` is given): the account `alice@desk`
/// with `CANARY` vaulted, and an `rdp:connect` grant.
fn rampart_for_rdp(port: u16, pin: Option<&str>) -> (Rampart, Server) {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    r.ok(&[
        "asset",
        "add",
        "desk",
        "--host",
        "127.0.0.1",
        "--endpoint",
        &format!("rdp:{port}"),
    ]);
    if let Some(pin) = pin {
        r.ok(&[
            "asset",
            "endpoint",
            "set",
            "desk",
            "rdp",
            "--tls-fingerprint",
            pin,
        ]);
    }
    r.ok_with_stdin(
        &[
            "account",
            "add",
            &format!("{LOGIN}@desk"),
            "--password-stdin",
        ],
        format!("{CANARY}\n").as_bytes(),
    );
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        "desk",
        "--actions",
        "rdp:connect",
    ]);
    let server = r.serve();
    (r, server)
}

fn rdp_browser_env() -> Vec<(&'static str, String)> {
    vec![
        ("ACCOUNT", format!("{LOGIN}@desk")),
        ("TABLE", "#rdp-desktops".to_owned()),
        ("CANARY", CANARY.to_owned()),
        ("COLOUR_COMMAND", COLOUR_COMMAND.to_owned()),
        ("COLOUR_RGB", BLUE.to_owned()),
    ]
}

/// The whole path over RDP: Connect opens the desktop, the canvas shows the root colour,
/// typing into the remote xterm changes it, a kill from the CLI ends the view with its reason,
/// the recording (the same desktop stream as VNC's, with key frames) verifies, replays, and
/// fails after a byte is flipped, and the vaulted password is in no file of the data
/// directory.
#[test]
fn an_rdp_desktop_in_chromium_logs_in_with_nla_draws_types_is_killed_and_its_recording_verifies() {
    if browser_ready().is_none() {
        return;
    }
    let Some(desktop) = RdpDesktop::start() else {
        return;
    };
    let (r, server) = rampart_for_rdp(desktop.port, Some(&desktop.fingerprint));
    let (ok, out) = run_browser(&server, &rdp_browser_env(), |id| {
        r.ok(&["session", "kill", id, "--reason", KILL_REASON]);
    });
    assert!(ok && out.contains("desktop steps passed"), "{out}");

    let list = sessions(&r);
    let session = list
        .iter()
        .find(|s| s["kind"] == "rdp")
        .unwrap_or_else(|| panic!("no rdp session: {list:?}"));
    assert!(
        session["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains(KILL_REASON),
        "{session}"
    );
    assert_eq!(session["recorded"], true, "{session}");
    let id = session["id"].as_str().unwrap();

    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let bytes = std::fs::read(&raw).unwrap();
    let [w1, w2] = SCREEN.0.to_be_bytes();
    let [h1, h2] = SCREEN.1.to_be_bytes();
    assert!(
        bytes.windows(5).any(|w| w == [b'K', w1, w2, h1, h2]),
        "no key frame of the whole screen in the recording"
    );
    let recorded = String::from_utf8_lossy(&bytes);
    assert!(
        recorded.contains(r#"{"t":"key","down":true}"#),
        "no key events recorded"
    );
    assert!(
        !recorded.contains("keysym") && !recorded.contains("KeyX"),
        "which key was typed was recorded"
    );

    verified_eventually(&r);
    let mut flipped = bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&raw, &flipped).unwrap();
    let verify = r.run(&["audit", "verify"]);
    assert!(!verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains(id), "{}", text(&verify));
    std::fs::write(&raw, &bytes).unwrap();

    let found = files_containing(&r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the vaulted RDP password is in {found:?}");
    drop(server);
}

/// Without `rdp:clipboard` a paste into the canvas does not reach the desktop: the page says
/// which grant is missing, and the refusal is a `clipboard_transfer` audit event with the
/// paste's size and no text. (The other direction, and the clipboard with the grant, need a
/// server with a clipboard channel: FreeRDP's shadow server has none.)
#[test]
fn a_paste_into_an_rdp_desktop_without_rdp_clipboard_is_refused_on_the_page_and_audited_with_its_size()
 {
    if browser_ready().is_none() {
        return;
    }
    let Some(desktop) = RdpDesktop::start() else {
        return;
    };
    let (r, server) = rampart_for_rdp(desktop.port, Some(&desktop.fingerprint));
    let pasted = "pasted-without-a-grant-7d1e";
    let mut env = rdp_browser_env();
    env.push(("PASTE_TEXT", pasted.to_owned()));
    env.push((
        "PASTE_NOTICE",
        "your grant does not allow the clipboard here (rdp:clipboard)".to_owned(),
    ));
    let (ok, out) = run_browser(&server, &env, |id| {
        r.ok(&["session", "kill", id, "--reason", KILL_REASON]);
    });
    assert!(ok && out.contains("desktop steps passed"), "{out}");

    let audit = r.json(&["audit", "list", "--limit", "1000"]);
    let transfers: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "clipboard_transfer")
        .collect();
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    let event = &transfers[0]["event"];
    assert_eq!(event["direction"], "to_target", "{event}");
    assert_eq!(event["allowed"], false, "{event}");
    assert_eq!(event["bytes"], pasted.len(), "{event}");
    assert_eq!(event["account"], format!("{LOGIN}@desk"), "{event}");
    assert!(
        !audit.to_string().contains(pasted),
        "the pasted text is in the audit"
    );
    let list = sessions(&r);
    let id = list.iter().find(|s| s["kind"] == "rdp").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let recorded = std::fs::read(&raw).unwrap();
    assert!(
        !recorded
            .windows(pasted.len())
            .any(|w| w == pasted.as_bytes()),
        "the pasted text is in the recording"
    );
    drop(server);
}

/// Without a pinned certificate nothing of the credential is sent: the page shows that the
/// certificate is not pinned and the fingerprint the server presented, to check and pin.
#[test]
fn an_rdp_endpoint_without_a_pinned_certificate_is_refused_naming_its_fingerprint() {
    if browser_ready().is_none() {
        return;
    }
    let Some(desktop) = RdpDesktop::start() else {
        return;
    };
    let (r, server) = rampart_for_rdp(desktop.port, None);
    let mut env = rdp_browser_env();
    env.push(("EXPECT_END", desktop.fingerprint.clone()));
    let (ok, out) = run_browser(&server, &env, |_| {});
    assert!(ok && out.contains("desktop ended as expected"), "{out}");
    assert!(out.contains("not pinned"), "{out}");
    let list = sessions(&r);
    let session = list.iter().find(|s| s["kind"] == "rdp").unwrap();
    assert!(
        session["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not pinned"),
        "{session}"
    );
    drop(server);
}

/// A hostile RDP server: it reads the connection request, then answers with garbage (a TPKT
/// header announcing more than it sends, then bytes that are no X.224), and keeps the
/// connection open.
fn hostile_rdp_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = [0u8; 512];
        let _ = stream.read(&mut request);
        let mut garbage = vec![3u8, 0, 0, 40, 0xff, 0xd0, 0x13, 0x37];
        garbage.extend(std::iter::repeat_n(0x5a, 32));
        let _ = stream.write_all(&garbage);
        let mut rest = [0u8; 256];
        while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    });
    (port, handle)
}

/// A server that answers the RDP connection request with garbage ends the session with a
/// reason shown in the browser, without a panic: the node still serves and the chain
/// verifies.
#[test]
fn a_hostile_rdp_server_sending_garbage_ends_the_session_cleanly() {
    if browser_ready().is_none() {
        return;
    }
    let (port, hostile) = hostile_rdp_server();
    let (r, server) = rampart_for_rdp(port, Some(&format!("SHA256:{}", "ab".repeat(32))));
    let mut env = rdp_browser_env();
    env.push(("EXPECT_END", "RDP with 127.0.0.1".to_owned()));
    let (ok, out) = run_browser(&server, &env, |_| {});
    assert!(ok && out.contains("desktop ended as expected"), "{out}");
    hostile.join().unwrap();

    let list = sessions(&r);
    let session = list.iter().find(|s| s["kind"] == "rdp").unwrap();
    assert!(
        session["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("RDP with 127.0.0.1"),
        "{session}"
    );
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    verified_eventually(&r);
    let logs = files_containing(&r.data_dir().join("logs"), b"panicked");
    assert!(logs.is_empty(), "a panic in {logs:?}");
}
