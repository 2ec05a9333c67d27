//! VNC desktops over VeNCrypt (issue 22): x11vnc with `-ssl` (a certificate of the test's
//! own; VeNCrypt with the X509 subtypes only: `-vencrypt nodh:only -anontls never`) and a VNC
//! password, on loopback. With the certificate pinned on the endpoint, the session's pixels
//! reach Chromium's canvas through TLS (x11vnc says VeNCrypt X509Vnc was used). An endpoint
//! without a pin, or pinned to another certificate, is refused after the TLS handshake and
//! before x11vnc sends its VNC challenge, so before the password could be sent, and the
//! refusal names the fingerprint (driven through the desktop WebSocket directly, without a
//! browser). A pinned endpoint whose server does not offer VeNCrypt is refused.

use crate::db_common::{pin, text, tls_rejections};
use crate::desktop_common::{
    CANARY, KILL_REASON, Processes, browser_ready, free_port, run_browser, x_display,
};
use crate::desktop_vnc::rampart_for_desktop;
use rampart_testkit::{Server, desktop, files_containing, require_tool};
use std::path::PathBuf;
use std::process::Command;

/// x11vnc (not quiet: its log says what was negotiated) on a display of the VNC test's kind;
/// with `tls`, VeNCrypt with X509 subtypes only, with a fresh RSA certificate whose
/// fingerprint is `fingerprint`.
struct VencryptDesktop {
    port: u16,
    fingerprint: String,
    log: PathBuf,
    _processes: Processes,
    _dir: tempfile::TempDir,
}

impl VencryptDesktop {
    fn start(tls: bool) -> Option<Self> {
        let tools = ["Xvfb", "x11vnc", "xterm", "xsetroot", "openssl"];
        let found: Vec<PathBuf> = tools.iter().filter_map(|t| require_tool(t)).collect();
        if found.len() != tools.len() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (key, cert, pem) = (
            dir.path().join("key.pem"),
            dir.path().join("cert.pem"),
            dir.path().join("server.pem"),
        );
        // x11vnc's TLS wants an RSA key.
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=desk"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", text(&made));
        let mut both = std::fs::read(&key).unwrap();
        both.extend(std::fs::read(&cert).unwrap());
        std::fs::write(&pem, both).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let printed = String::from_utf8(out.stdout).unwrap();
        let hex = printed.trim().rsplit('=').next().unwrap().replace(':', "");

        let mut processes = Processes::default();
        let display = x_display(&mut processes);
        let password = dir.path().join("vnc-password");
        std::fs::write(&password, format!("{CANARY}\n")).unwrap();
        let port = free_port();
        let log = dir.path().join("x11vnc.log");
        let pem = pem.to_str().unwrap().to_owned();
        let args: Vec<&str> = if tls {
            vec!["-ssl", &pem, "-vencrypt", "nodh:only", "-anontls", "never"]
        } else {
            Vec::new()
        };
        desktop::x11vnc(&mut processes, &display, port, &password, &args, &log);
        Some(Self {
            port,
            fingerprint: format!("SHA256:{}", hex.to_lowercase()),
            log,
            _processes: processes,
            _dir: dir,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Opens `vnc@desk` through the desktop WebSocket as the portal does (a browser login, the
/// page's origin) and returns the reason of the session's end, which a refused desktop sends
/// at once. x11vnc `-ssl` stops listening for a moment while it hands a connection to its TLS
/// helper process: a connection refused then is tried again.
fn refusal(server: &Server) -> String {
    for _ in 0..20 {
        let reason = open_desktop(server);
        if !reason.contains("unreachable") {
            return reason;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("the VNC server stayed unreachable");
}

fn open_desktop(server: &Server) -> String {
    let client = server.client();
    let cookie = client.login_cookie("alice", "alice-password-1");
    let (answer, mut socket) = client.websocket(
        "/api/v1/desktop?account=vnc@desk",
        &[("cookie", cookie.as_str()), ("origin", client.origin())],
    );
    assert_eq!(answer.status, 101, "{}", answer.text());
    while let Some((opcode, payload)) = socket.receive() {
        if opcode == 0x1 {
            let message: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_ne!(message["type"], "ready", "the desktop opened: {message}");
            if message["type"] == "end" {
                return message["reason"].as_str().unwrap().to_owned();
            }
        }
    }
    panic!("the desktop WebSocket closed without a reason");
}

/// The whole path over TLS: with the certificate pinned, Chromium draws the remote screen,
/// types into it and sees the change, the kill's reason shows; x11vnc negotiated VeNCrypt
/// X509Vnc (the VNC password inside the TLS); the password is in no file.
#[test]
fn a_vencrypt_vnc_desktop_with_its_certificate_pinned_draws_in_chromium_through_tls() {
    if browser_ready().is_none() {
        return;
    }
    let Some(desktop) = VencryptDesktop::start(true) else {
        return;
    };
    let (r, server) = rampart_for_desktop(desktop.port, Some(&desktop.fingerprint));
    let (ok, out) = run_browser(&server, &[], |id| {
        r.ok(&["session", "kill", id, "--reason", KILL_REASON]);
    });
    assert!(ok && out.contains("desktop steps passed"), "{out}");
    let log = desktop.log();
    assert!(log.contains("VENCRYPT mode=261 accepted"), "{log}");
    assert!(log.contains("finish_auth: using auth 'Vnc'"), "{log}");
    let found = files_containing(&r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the VNC password is in {found:?}");
    drop(server);
}

/// Without a pin, and with another certificate pinned, the TLS handshake is where it ends:
/// x11vnc never gets as far as sending its VNC challenge, so no password response can have
/// been sent; the refusals name what the server presented (and the command that pins it), and
/// the wrong certificate is audited.
#[test]
fn a_vencrypt_endpoint_unpinned_or_pinned_to_another_certificate_is_refused_before_the_challenge() {
    let Some(desktop) = VencryptDesktop::start(true) else {
        return;
    };
    let (r, server) = rampart_for_desktop(desktop.port, None);
    let unpinned = refusal(&server);
    assert!(
        unpinned.contains("not pinned") && unpinned.contains(&desktop.fingerprint),
        "{unpinned}"
    );
    assert!(
        unpinned.contains(&format!(
            "rampart asset endpoint set desk vnc --tls-fingerprint {}",
            desktop.fingerprint
        )),
        "{unpinned}"
    );

    let other = format!("SHA256:{}", "ab".repeat(32));
    pin(&r, "desk", "vnc", &other);
    let wrong = refusal(&server);
    assert!(
        wrong.contains("not the pinned one") && wrong.contains(&desktop.fingerprint),
        "{wrong}"
    );
    let rejected = tls_rejections(&r);
    assert!(
        rejected.iter().any(|e| e["protocol"] == "vnc"
            && e["expected"] == other.as_str()
            && e["presented"] == desktop.fingerprint.as_str()),
        "{rejected:?}"
    );

    // Both got as far as VeNCrypt's X509Vnc and its TLS handshake, which Rampart refused (the
    // readiness probe's bare connection fails its handshake too), and no further.
    let log = desktop.log();
    assert_eq!(
        log.matches("client selected sub-type: 261").count(),
        2,
        "{log}"
    );
    assert!(log.matches("SSL_accept() *FATAL").count() >= 2, "{log}");
    assert!(!log.contains("sent challenge"), "{log}");
    assert!(!log.contains("finish_auth"), "{log}");
    let found = files_containing(&r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the VNC password is in {found:?}");
    drop(server);
}

/// A pinned endpoint means VeNCrypt: a server that offers only VNC authentication (TLS
/// taken away, say) is refused without an answer to its security types.
#[test]
fn a_pinned_vnc_endpoint_whose_server_offers_no_vencrypt_is_refused() {
    let Some(desktop) = VencryptDesktop::start(false) else {
        return;
    };
    let (_r, server) = rampart_for_desktop(desktop.port, Some(&desktop.fingerprint));
    let reason = refusal(&server);
    assert!(reason.contains("does not offer VeNCrypt"), "{reason}");
    drop(server);
}
