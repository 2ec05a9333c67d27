//! RDP desktops through Rampart in real headless Chromium (issue 22): Xvfb with a known root
//! colour and an xterm, FreeRDP's shadow server sharing it on loopback with NLA only (its SAM
//! file holds the NT hash of `CANARY`, the password vaulted in Rampart), and the endpoint's
//! certificate pinned in Rampart. The browser logs in, connects (Rampart is the RDP client:
//! TLS, CredSSP, the active stage), reads canvas pixels, types a command into the remote xterm
//! and sees its effect; the session is killed from the CLI and the page shows why; the
//! recording verifies, replays, and stops verifying after a byte is flipped; the vaulted
//! password is nowhere in the data directory. A paste without `rdp:clipboard` is refused on
//! the page and audited with its size. A hostile server that answers the connection request
//! with garbage ends its session cleanly, and the node lives on. A real xrdp 0.9 (TLS without
//! NLA, the endpoint set so) logs in a local account with its vaulted password, draws its
//! session, and passes the clipboard both ways with `rdp:clipboard` (its `xrdp-chansrv`
//! bridges RDP's clipboard channel to the session's X clipboard, read and set with `xclip`);
//! the same endpoint on NLA is refused naming what the server requires. The xrdp desktop
//! follows the browser's window: xrdp opens Display Control on its dynamic channels, Rampart
//! asks for the view's size, and xrdp resizes its session's X screen (read with `xrandr`) and
//! reactivates the connection at that size, which the canvas takes.

use super::BIN;
use crate::db_common::{text, verified_eventually};
use crate::desktop_common::{
    KILL_REASON, Processes, SCREEN, assert_keys_recorded_without_which, browser_ready,
    clipboard_transfers, free_port, killed_session, run_browser, run_browser_lines, sessions,
    wait_until, x_display, xclip_owning,
};
use crate::desktop_xvnc::{size_becomes, xrandr_size};
use rampart_testkit::{Rampart, Server, files_containing, free_ports, require_tool};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const CANARY: &str = "rdp-canary-51c9";
const LOGIN: &str = "alice";
/// Typed into the remote xterm (no shifted characters: keys go as scancodes, and Playwright's
/// `type` presses no Shift); it turns the root window blue.
pub(crate) const COLOUR_COMMAND: &str = "xsetroot -solid blue";
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
    let r = rampart_with_rdp_desk(&RdpDesk {
        asset: "desk",
        port,
        settings: pin
            .map(|pin| vec!["--tls-fingerprint", pin])
            .unwrap_or_default(),
        login: LOGIN,
        password: CANARY,
        actions: "rdp:connect",
    });
    let server = r.serve();
    (r, server)
}

/// An RDP desktop as [`rampart_with_rdp_desk`] sets it up.
pub(crate) struct RdpDesk<'a> {
    asset: &'a str,
    port: u16,
    /// Its endpoint's settings (`asset endpoint set ASSET rdp ...`), if any.
    settings: Vec<&'a str>,
    /// The account vaulted there, and its password.
    login: &'a str,
    password: &'a str,
    /// alice's grant on it.
    actions: &'a str,
}

/// The xrdp desk as an asset: `xdesk` over TLS without NLA, xrdp's certificate pinned, the
/// local account's password vaulted, alice granted `actions`.
pub(crate) fn xrdp_desk<'a>(xrdp: &'a Xrdp, actions: &'a str) -> RdpDesk<'a> {
    RdpDesk {
        asset: "xdesk",
        port: xrdp.port,
        settings: vec![
            "--tls-fingerprint",
            &xrdp.fingerprint,
            "--rdp-security",
            "tls",
        ],
        login: XRDP_USER,
        password: XRDP_PASSWORD,
        actions,
    }
}

/// Rampart (not serving yet) with alice (password `alice-password-1`) and `desk`: its RDP
/// endpoint, the account with its password vaulted, and alice's grant.
pub(crate) fn rampart_with_rdp_desk(desk: &RdpDesk) -> Rampart {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok_with_stdin(&["user", "password", "alice"], b"alice-password-1");
    let endpoint = format!("rdp:{}", desk.port);
    r.ok(&[
        "asset",
        "add",
        desk.asset,
        "--host",
        "127.0.0.1",
        "--endpoint",
        &endpoint,
    ]);
    if !desk.settings.is_empty() {
        let mut set = vec!["asset", "endpoint", "set", desk.asset, "rdp"];
        set.extend(&desk.settings);
        r.ok(&set);
    }
    let account = format!("{}@{}", desk.login, desk.asset);
    r.ok_with_stdin(
        &["account", "add", &account, "--password-stdin"],
        format!("{}\n", desk.password).as_bytes(),
    );
    r.ok(&[
        "grant",
        "add",
        "--user",
        "alice",
        "--asset",
        desk.asset,
        "--actions",
        desk.actions,
    ]);
    r
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

    let session = killed_session(&r, "rdp");
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
    assert_keys_recorded_without_which(&recorded);

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
/// server with a clipboard channel: FreeRDP's shadow server has none; the xrdp test below has
/// them.)
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

    let transfers = clipboard_transfers(&r);
    assert_eq!(transfers.len(), 1, "{transfers:?}");
    let event = &transfers[0];
    assert_eq!(event["direction"], "to_target", "{event}");
    assert_eq!(event["allowed"], false, "{event}");
    assert_eq!(event["bytes"], pasted.len(), "{event}");
    assert_eq!(event["account"], format!("{LOGIN}@desk"), "{event}");
    let audit = r.json(&["audit", "list", "--limit", "1000"]);
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

/// The local account the xrdp session logs in as (`.ci/run` creates it), and its password,
/// vaulted in Rampart: the canary of the xrdp test.
const XRDP_USER: &str = rampart_testkit::PASSWORD_TARGET_USER;
pub(crate) const XRDP_PASSWORD: &str = rampart_testkit::PASSWORD_TARGET_PASSWORD;
/// What the session's xterm prints first, in its text colour [`XRDP_TEXT`].
const XRDP_MARKER: &str = "xrdp-session-marker-5e2a";
const XRDP_TEXT: (&str, &str) = ("#ff8000", "255,128,0");

/// xrdp 0.9 and its session manager on loopback with their own configuration in a temp dir:
/// TLS only (xrdp 0.9 has no NLA) with a certificate made here, the logon from the Client Info
/// PDU (`autorun`), the dynamic channels on (`drdynvc`: Display Control, for resizes),
/// sessions on TigerVNC's `Xvnc` whose start script paints the root
/// [`desktop::ROOT_COLOUR`], notes its display, and runs an xterm printing [`XRDP_MARKER`].
/// Dropped, it ends the session's processes (the session manager's descendants, which log in
/// as [`XRDP_USER`]), then the servers, and removes what the session left behind.
pub(crate) struct Xrdp {
    pub(crate) port: u16,
    pub(crate) fingerprint: String,
    dir: tempfile::TempDir,
    sesman: u32,
    processes: Processes,
}

impl Xrdp {
    pub(crate) fn start() -> Option<Self> {
        let tools = [
            "xrdp",
            "xrdp-sesman",
            "Xvnc",
            "xterm",
            "xsetroot",
            "xclip",
            "openssl",
            "unshare",
        ];
        let found: Vec<PathBuf> = tools.iter().filter_map(|t| require_tool(t)).collect();
        if found.len() != tools.len() || !rampart_testkit::require_password_target_user() {
            return None;
        }
        if !nix::unistd::geteuid().is_root() {
            rampart_testkit::skip_or_fail(
                "the xrdp test runs xrdp-sesman, which logs users in: it needs root",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        // The session (XRDP_USER) runs the start script and notes its display in `session/`.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let session = path.join("session");
        std::fs::create_dir(&session).unwrap();
        let user = nix::unistd::User::from_name(XRDP_USER).unwrap().unwrap();
        nix::unistd::chown(&session, Some(user.uid), Some(user.gid)).unwrap();
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=rampart-xrdp-test", "-keyout"])
            .arg(path.join("key.pem"))
            .arg("-out")
            .arg(path.join("cert.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let fingerprint = certificate_fingerprint(&path.join("cert.pem"));

        let start = path.join("startwm.sh");
        std::fs::write(
            &start,
            format!(
                "#!/bin/sh\n\
                 echo \"$DISPLAY ${{XAUTHORITY:-$HOME/.Xauthority}}\" > {session}/display\n\
                 xsetroot -solid '{root}'\n\
                 exec xterm -geometry 60x12+0+0 -fg '{fg}' -bg white -e sh -c 'echo {XRDP_MARKER}; exec /bin/sh'\n",
                session = session.display(),
                root = rampart_testkit::desktop::ROOT_COLOUR,
                fg = XRDP_TEXT.0,
            ),
        )
        .unwrap();
        std::fs::set_permissions(&start, std::fs::Permissions::from_mode(0o755)).unwrap();

        // xrdp finds its session manager's port in /etc/xrdp/sesman.ini, always: it runs in a
        // mount namespace of its own where the test's sesman.ini is bound over that file, so
        // the session manager can listen on a free port.
        let [sesman_port, port] = free_ports();
        let sesman_ini = path.join("sesman.ini");
        std::fs::write(
            &sesman_ini,
            format!(
                "[Globals]\nListenAddress=127.0.0.1\nListenPort={sesman_port}\n\
                 EnableUserWindowManager=false\nUserWindowManager=startwm.sh\n\
                 DefaultWindowManager={start}\nReconnectScript=/bin/true\n\
                 [Security]\nAllowRootLogin=false\nMaxLoginRetry=1\nAlwaysGroupCheck=false\n\
                 RestrictOutboundClipboard=none\nRestrictInboundClipboard=none\n\
                 [Sessions]\nX11DisplayOffset=600\nMaxSessions=4\nKillDisconnected=false\n\
                 DisconnectedTimeLimit=0\nIdleTimeLimit=0\nPolicy=Default\n\
                 [Logging]\nLogFile={log}\nLogLevel=DEBUG\nEnableSyslog=false\n\
                 [Xvnc]\nparam=Xvnc\nparam=-bs\nparam=-nolisten\nparam=tcp\nparam=-localhost\n\
                 param=-dpi\nparam=96\n\
                 [Chansrv]\nFuseMountName=thinclient_drives\nFileUmask=077\nEnableFuseMount=false\n\
                 [ChansrvLogging]\nLogLevel=DEBUG\nEnableSyslog=false\nEnableConsole=false\n\
                 [SessionVariables]\n",
                start = start.display(),
                log = path.join("sesman.log").display(),
            ),
        )
        .unwrap();
        let xrdp_ini = path.join("xrdp.ini");
        std::fs::write(
            &xrdp_ini,
            format!(
                "[Globals]\nini_version=1\nfork=false\nport=tcp://127.0.0.1:{port}\n\
                 tcp_nodelay=true\nsecurity_layer=tls\ncrypt_level=high\n\
                 certificate={cert}\nkey_file={key}\nssl_protocols=TLSv1.2, TLSv1.3\n\
                 autorun=Xvnc\nallow_channels=true\nallow_multimon=false\nbitmap_cache=true\n\
                 bitmap_compression=true\nbulk_compression=false\nmax_bpp=32\nnew_cursors=true\n\
                 use_fastpath=both\nhidelogwindow=true\nrequire_credentials=true\n\
                 [Logging]\nLogFile={log}\nLogLevel=DEBUG\nEnableSyslog=false\n\
                 [Channels]\nrdpdr=false\nrdpsnd=false\ndrdynvc=true\ncliprdr=true\nrail=false\n\
                 xrdpvr=false\ntcutils=false\n\
                 [Xvnc]\nname=Xvnc\nlib=libvnc.so\nusername=ask\npassword=ask\nip=127.0.0.1\n\
                 port=-1\n",
                cert = path.join("cert.pem").display(),
                key = path.join("key.pem").display(),
                log = path.join("xrdp.log").display(),
            ),
        )
        .unwrap();

        let mut processes = Processes::default();
        let log = |name: &str| Stdio::from(std::fs::File::create(path.join(name)).unwrap());
        let sesman = Command::new("xrdp-sesman")
            .arg("--nodaemon")
            .arg("--config")
            .arg(&sesman_ini)
            .stdout(log("sesman.out"))
            .stderr(log("sesman.err"))
            .spawn()
            .unwrap();
        let sesman_pid = sesman.id();
        processes.0.push(sesman);
        // xrdp 0.9 built with IPv6 turns 127.0.0.1 into ::1, both listening and connecting.
        wait_until("xrdp-sesman", || {
            TcpStream::connect(("::1", sesman_port)).is_ok()
                || TcpStream::connect(("127.0.0.1", sesman_port)).is_ok()
        });
        processes.0.push(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$1" /etc/xrdp/sesman.ini && exec xrdp --nodaemon --config "$2""#)
                .arg("sh")
                .arg(&sesman_ini)
                .arg(&xrdp_ini)
                .stdout(log("xrdp.out"))
                .stderr(log("xrdp.err"))
                .spawn()
                .unwrap(),
        );
        wait_until("xrdp", || TcpStream::connect(("127.0.0.1", port)).is_ok());
        Some(Self {
            port,
            fingerprint,
            dir,
            sesman: sesman_pid,
            processes,
        })
    }

    /// The session's `DISPLAY` and `XAUTHORITY`, once its start script ran.
    fn session_display(&self) -> Option<(String, String)> {
        let noted = std::fs::read_to_string(self.dir.path().join("session/display")).ok()?;
        let (display, xauthority) = noted.trim().split_once(' ')?;
        Some((display.to_owned(), xauthority.to_owned()))
    }

    /// `xclip` on the session's display, as root with the session's X cookie.
    fn xclip(&self, args: &[&str]) -> Command {
        let (display, xauthority) = self
            .session_display()
            .expect("the xrdp session's start script did not run");
        let mut command = Command::new("xclip");
        command
            .args(["-selection", "clipboard"])
            .args(args)
            .env("DISPLAY", display)
            .env("XAUTHORITY", xauthority);
        command
    }

    /// The text on the session's clipboard, polled until it is `expected` or 30 seconds
    /// passed; returns the last text read.
    fn clipboard_eventually(&self, expected: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            // Each read is bounded: `xclip -o` waits for the selection's owner (xrdp-chansrv,
            // which asks Rampart over CLIPRDR) without a timeout of its own, and once hung
            // there for the whole CI run; a read that takes too long is stopped and retried.
            let mut child = self
                .xclip(&["-o"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let read_by = std::time::Instant::now() + Duration::from_secs(3);
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < read_by {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let got = String::from_utf8_lossy(&out.stdout).into_owned();
            if got == expected || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Puts `text` on the session's clipboard: `xclip` stays to serve it until the test ends.
    fn copy_on_the_desktop(&mut self, text: &str) {
        let child = xclip_owning(self.xclip(&["-i", "-quiet"]), text);
        self.processes.0.push(child);
    }

    /// xrdp's log lines about its dynamic channels and resizes, for a failure's message.
    fn resize_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("xrdp.log")).unwrap_or_default();
        // From the dynamic channel's start on.
        log.lines()
            .skip_while(|line| !line.contains("Enabling channel"))
            .filter(|line| !line.contains("keyboard"))
            .take(400)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What xrdp and its session manager logged, for a failure's message.
    pub(crate) fn logs(&self) -> String {
        ["xrdp.log", "xrdp.err", "sesman.log", "sesman.err"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name}\n{}\n", tail.join("\n"))
            })
            .collect()
    }
}

/// The SHA-256 fingerprint of a PEM certificate, as Rampart pins it.
fn certificate_fingerprint(cert: &std::path::Path) -> String {
    format!("SHA256:{}", sha256_fingerprint(cert).replace(':', ""))
}

/// The SHA-256 fingerprint of a PEM certificate as `openssl` prints it, in lower case
/// (`ab:cd:...`: what FreeRDP's `/cert:fingerprint:sha256:` takes).
pub(crate) fn sha256_fingerprint(cert: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // `sha256 Fingerprint=AB:CD:...`
    let printed = String::from_utf8(out.stdout).unwrap();
    printed.trim().rsplit('=').next().unwrap().to_lowercase()
}

/// Every process descending from `pid`, each parent before its children.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`: COMM may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(parent) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.push((child, parent));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Xrdp {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        // The session: its X server, start script, xterm and channel server, all descending
        // from the session manager. Asked to end first (the X server removes its socket and
        // lock), then killed.
        let display = self.session_display().map(|(display, _)| display);
        let session = descendants(self.sesman);
        for pid in &session {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline
            && session
                .iter()
                .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in descendants(self.sesman).into_iter().chain(session) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        // Then xclip, xrdp and the session manager (the `Processes` they are in).
        drop(std::mem::take(&mut self.processes));
        // What a killed session may leave: the X server's socket and lock, and the VNC
        // password file the session manager wrote for it.
        // `:600.0`: the display's number is 600.
        let number = display
            .as_deref()
            .and_then(|d| d.strip_prefix(':'))
            .and_then(|d| d.split('.').next());
        if let Some(number) = number {
            let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{number}"));
            let _ = std::fs::remove_file(format!("/tmp/.X{number}-lock"));
            if let Ok(Some(user)) = nix::unistd::User::from_name(XRDP_USER)
                && let Ok(entries) = std::fs::read_dir(user.dir.join(".vnc"))
            {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with("sesman_") && name.ends_with(&format!(":{number}")) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
    }
}

/// An xrdp desktop (TLS without NLA, the endpoint set so) through Rampart in Chromium, with
/// `rdp:clipboard`: Rampart checks the pinned certificate, then logs in with the vaulted
/// password of a local account in the Client Info PDU; the session's desktop and its xterm's
/// marker text reach the canvas, typing reaches the xterm; a paste in the browser reaches the
/// session's X clipboard, and a text copied there reaches the browser, each a
/// `clipboard_transfer` audit event with its size and no text; the session is killed from the
/// CLI and its recording verifies; the password is nowhere in the page, the data directory
/// (logs, recordings, audit) or the recording. The same endpoint set back to NLA is refused
/// before anything is sent, the refusal naming what the server requires and what the endpoint
/// allows.
#[test]
fn an_xrdp_desktop_logs_in_over_pinned_tls_without_nla_and_passes_the_clipboard_both_ways() {
    if browser_ready().is_none() {
        return;
    }
    let Some(mut xrdp) = Xrdp::start() else {
        return;
    };
    let r = rampart_with_rdp_desk(&xrdp_desk(&xrdp, "rdp:connect,rdp:clipboard"));
    let account = format!("{XRDP_USER}@xdesk");
    let server = r.serve();

    let pasted = "pasted-into-xrdp-4c8d";
    let copied = "copied-on-the-xrdp-desktop-91af";
    let env = vec![
        ("ACCOUNT", account.clone()),
        ("TABLE", "#rdp-desktops".to_owned()),
        ("CANARY", XRDP_PASSWORD.to_owned()),
        ("COLOUR_COMMAND", COLOUR_COMMAND.to_owned()),
        ("COLOUR_RGB", BLUE.to_owned()),
        ("TEXT_RGB", XRDP_TEXT.1.to_owned()),
        ("PASTE_TEXT", pasted.to_owned()),
        ("COPY_TEXT", copied.to_owned()),
    ];
    let mut on_the_desktop = None;
    let (ok, out) = run_browser_lines(&server, &env, |line| {
        if line == "PASTED" {
            on_the_desktop = Some(xrdp.clipboard_eventually(pasted));
            xrdp.copy_on_the_desktop(copied);
        } else if let Some(id) = line.strip_prefix("READY ") {
            r.ok(&["session", "kill", id.trim(), "--reason", KILL_REASON]);
        }
    });
    assert!(
        ok && out.contains("desktop steps passed"),
        "{out}\n{}",
        xrdp.logs()
    );
    assert!(out.contains("marker text drawn"), "{out}");
    assert_eq!(on_the_desktop.as_deref(), Some(pasted), "{}", xrdp.logs());

    // The login went as TLS and the Client Info PDU, as xrdp saw it.
    let xrdp_log = std::fs::read_to_string(xrdp.dir.path().join("xrdp.log")).unwrap();
    assert!(
        xrdp_log.contains("TLS connection established"),
        "{}",
        xrdp.logs()
    );

    let session = killed_session(&r, "rdp");
    let id = session["id"].as_str().unwrap();

    let transfers = clipboard_transfers(&r);
    let passed = |direction: &str, bytes: usize| {
        transfers.iter().any(|e| {
            e["direction"] == direction
                && e["allowed"] == true
                && e["bytes"] == bytes
                && e["account"] == account.as_str()
        })
    };
    assert!(passed("to_target", pasted.len()), "{transfers:?}");
    assert!(passed("to_user", copied.len()), "{transfers:?}");
    let audit_text = r.json(&["audit", "list", "--limit", "1000"]).to_string();
    assert!(!audit_text.contains(pasted) && !audit_text.contains(copied));
    assert!(!audit_text.contains(XRDP_PASSWORD));

    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let recorded = std::fs::read(&raw).unwrap();
    for secret in [pasted, copied, XRDP_PASSWORD] {
        assert!(
            !recorded
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{secret} is in the recording"
        );
    }
    verified_eventually(&r);
    let found = files_containing(&r.data_dir(), XRDP_PASSWORD.as_bytes());
    assert!(found.is_empty(), "the vaulted password is in {found:?}");

    // The same server with the endpoint back on NLA: refused at the negotiation, before TLS.
    r.ok(&[
        "asset",
        "endpoint",
        "set",
        "xdesk",
        "rdp",
        "--rdp-security",
        "nla",
    ]);
    let mut env = rdp_browser_env();
    env[0] = ("ACCOUNT", account.clone());
    env.push(("EXPECT_END", "requires TLS without NLA".to_owned()));
    let (ok, out) = run_browser(&server, &env, |_| {});
    assert!(ok && out.contains("desktop ended as expected"), "{out}");
    assert!(out.contains("allows NLA (CredSSP) only"), "{out}");
    drop(server);
}

/// The xrdp session's X screen size, read with `xrandr` on its display with its X cookie.
fn xrdp_screen_size(xrdp: &Xrdp) -> Option<(u16, u16)> {
    let (display, xauthority) = xrdp.session_display()?;
    let mut xrandr = Command::new("xrandr");
    xrandr.env("DISPLAY", display).env("XAUTHORITY", xauthority);
    xrandr_size(xrandr)
}

/// An xrdp desktop follows the browser's window (issue 22): the user connects in a 1100x800
/// window to an xrdp session that starts at Rampart's 1280x800; Rampart asks for the view's
/// size over Display Control (MS-RDPEDISP) once xrdp opened it, xrdp resizes its session's X
/// screen (as `xrandr` reads it there) and reactivates the connection at the new size, and the
/// canvas the user sees takes it (the width even, as Display Control wants); the window then
/// becomes 960x640 and both follow again; of three sizes sent at once, the latest wins. The
/// view keeps drawing (the root colour, typing into the xterm), the session is killed, its
/// recording has each request as input metadata and verifies.
#[test]
fn a_browser_window_resize_resizes_an_xrdp_desktop() {
    if browser_ready().is_none() {
        return;
    }
    if require_tool("xrandr").is_none() {
        return;
    }
    let Some(xrdp) = Xrdp::start() else {
        return;
    };
    let r = rampart_with_rdp_desk(&xrdp_desk(&xrdp, "rdp:connect"));
    let account = format!("{XRDP_USER}@xdesk");
    let server = r.serve();
    let resized: (u16, u16) = (960, 640);
    let latest: (u16, u16) = (880, 560);
    let env = vec![
        ("ACCOUNT", account),
        ("TABLE", "#rdp-desktops".to_owned()),
        ("CANARY", XRDP_PASSWORD.to_owned()),
        ("COLOUR_COMMAND", COLOUR_COMMAND.to_owned()),
        ("COLOUR_RGB", BLUE.to_owned()),
        ("RESIZE_TO", format!("{}x{}", resized.0, resized.1)),
        ("RESIZE_LATEST", format!("{}x{}", latest.0, latest.1)),
        ("RESIZE_EVEN", "1".to_owned()),
    ];
    // (what the canvas showed, what the session's X screen became)
    let mut sizes = Vec::new();
    let (ok, out) = run_browser_lines(&server, &env, |line| {
        if let Some(size) = line.strip_prefix("CANVAS ") {
            let mut sides = size.split_whitespace().map(|v| v.parse::<u16>().unwrap());
            let canvas = (sides.next().unwrap(), sides.next().unwrap());
            sizes.push((canvas, size_becomes(|| xrdp_screen_size(&xrdp), canvas)));
        } else if let Some(id) = line.strip_prefix("READY ") {
            r.ok(&["session", "kill", id.trim(), "--reason", KILL_REASON]);
        }
    });
    assert!(
        ok && out.contains("desktop steps passed"),
        "{out}\n{}\n--- xrdp's resize lines\n{}",
        xrdp.logs(),
        xrdp.resize_log()
    );
    let [
        (first, first_target),
        (second, second_target),
        (third, third_target),
    ] = sizes[..]
    else {
        panic!("the page printed {} canvas sizes: {out}", sizes.len());
    };
    assert_eq!(
        first_target,
        Some(first),
        "the session's screen at the start"
    );
    assert_eq!(
        second_target,
        Some(second),
        "the session's screen after the resize"
    );
    assert_eq!(third, latest);
    assert_eq!(
        third_target,
        Some(third),
        "the session's screen after the burst"
    );
    // Real changes: the 1100x800 window's view is smaller than the 1280x800 desktop the
    // session started with, and the 960x640 window's is smaller again.
    assert!(
        first.0 < 1280 && first.1 < 800 && first != second,
        "{sizes:?}"
    );
    assert!(second.0 <= resized.0 && second.1 < resized.1, "{sizes:?}");

    let session = killed_session(&r, "rdp");
    let id = session["id"].as_str().unwrap();
    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let recorded = String::from_utf8_lossy(&std::fs::read(&raw).unwrap()).into_owned();
    for (width, height) in [first, second, third] {
        let request = format!(r#"{{"t":"resize","w":{width},"h":{height}}}"#);
        assert!(recorded.contains(&request), "{request} is not recorded");
    }
    verified_eventually(&r);
    drop(server);
}
