//! VNC desktops through Rampart in real headless Chromium (issue 22): Xvfb with a known root
//! colour and an xterm, x11vnc with a VNC password on loopback, `rampart serve` with that
//! password vaulted. The browser logs in, connects, reads canvas pixels, types a command into
//! the remote xterm and sees its effect; the session is killed from the CLI and the page shows
//! why; the recording verifies and stops verifying after a byte is flipped; the vaulted
//! password is nowhere in the data directory. A hostile RFB server (a thread of this test)
//! sending an update larger than its screen ends its session cleanly, and the node lives on.
//! The clipboard both ways (read and set on the target's display with `xclip`): with
//! `vnc:clipboard` a paste in the page reaches the target's X clipboard and a text copied
//! there reaches the page and the browser's clipboard; without it both are refused; every
//! transfer is audited with its size, never its text.

use super::BIN;
use crate::db_common::{text, verified_eventually};
use crate::desktop_common::{
    CANARY, KILL_REASON, Processes, SCREEN, assert_keys_recorded_without_which, browser_ready,
    clipboard_transfers, free_port, killed_session, run_browser, run_browser_lines, sessions,
    wait_until, x_display, xclip_owning,
};
use rampart_testkit::{Rampart, Server, desktop, files_containing, require_tool};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Xvfb on a free display with the root colour `#12ab34`, an xterm, and x11vnc on a loopback
/// port with the password `CANARY` (from a file, never in argv).
pub(crate) struct Desktop {
    pub(crate) port: u16,
    pub(crate) display: String,
    processes: Processes,
    _dir: tempfile::TempDir,
}

impl Desktop {
    pub(crate) fn start() -> Option<Self> {
        let tools = ["Xvfb", "x11vnc", "xterm", "xsetroot"];
        let found: Vec<PathBuf> = tools.iter().filter_map(|t| require_tool(t)).collect();
        if found.len() != tools.len() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut processes = Processes::default();
        let display = x_display(&mut processes);
        let password = dir.path().join("vnc-password");
        std::fs::write(&password, format!("{CANARY}\n")).unwrap();
        let port = free_port();
        desktop::x11vnc(
            &mut processes,
            &display,
            port,
            &password,
            &["-quiet"],
            &dir.path().join("x11vnc.log"),
        );
        Some(Self {
            port,
            display,
            processes,
            _dir: dir,
        })
    }
}

/// Rampart with alice (password `alice-password-1`) and the desktop `desk` on `port` (with
/// `pin`, its certificate pinned: VeNCrypt), the account `vnc@desk` with `CANARY` vaulted, and
/// a `vnc:connect` grant.
pub(crate) fn rampart_for_desktop(port: u16, pin: Option<&str>) -> (Rampart, Server) {
    rampart_for_desktop_granting(port, pin, "vnc:connect")
}

/// [`rampart_for_desktop`] with a grant of `actions` (comma-separated).
pub(crate) fn rampart_for_desktop_granting(
    port: u16,
    pin: Option<&str>,
    actions: &str,
) -> (Rampart, Server) {
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
        &format!("vnc:{port}"),
    ]);
    if let Some(fingerprint) = pin {
        crate::db_common::pin(&r, "desk", "vnc", fingerprint);
    }
    r.ok_with_stdin(
        &["account", "add", "vnc@desk", "--password-stdin"],
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
        actions,
    ]);
    let server = r.serve();
    (r, server)
}

/// The whole path: the portal's Connect opens the desktop, the canvas shows the root colour,
/// typing into the remote xterm changes it, a kill from the CLI ends the view with its reason
/// shown, the recording (screen updates with key frames, input metadata) verifies and fails
/// after a byte is flipped (and is then not exported), exports as an MP4 video showing the
/// desktop, and the VNC password is in no file of the data directory nor in the video.
#[test]
fn a_vnc_desktop_in_chromium_draws_types_is_killed_with_a_reason_and_its_recording_verifies() {
    if browser_ready().is_none() {
        return;
    }
    let Some(ffmpeg) = require_tool("ffmpeg") else {
        return;
    };
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let (r, server) = rampart_for_desktop(desktop.port, None);
    let (ok, out) = run_browser(&server, &[], |id| {
        r.ok(&["session", "kill", id, "--reason", KILL_REASON]);
    });
    assert!(ok && out.contains("desktop steps passed"), "{out}");

    let session = killed_session(&r, "vnc");
    assert_eq!(session["recorded"], true, "{session}");
    let id = session["id"].as_str().unwrap();

    // The recording: the desktop stream with at least one key frame, and input as metadata
    // (pointer positions, "a key"), never which key.
    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let bytes = std::fs::read(&raw).unwrap();
    assert!(
        bytes.windows(5).any(|w| w == [b'K', 3, 32, 2, 88]),
        "no key frame of the 800x600 screen in the recording"
    );
    let recorded = String::from_utf8_lossy(&bytes);
    assert!(
        recorded.contains(r#"{"t":"pointer","#),
        "no pointer events recorded"
    );
    assert_keys_recorded_without_which(&recorded);

    // Sealed and anchored: `audit verify` passes, and fails once a byte of it changes.
    verified_eventually(&r);
    let mut flipped = bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&raw, &flipped).unwrap();
    let verify = r.run(&["audit", "verify"]);
    assert!(!verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains(id), "{}", text(&verify));
    // Nor is a recording that does not verify exported as video.
    let video_dir = tempfile::tempdir().unwrap();
    let video = video_dir.path().join("desktop.mp4");
    let refused = r.run(&["recording", "export", id, "-o", video.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("does not verify"),
        "{}",
        text(&refused)
    );
    assert!(
        !video.exists(),
        "a video was written from a tampered recording"
    );
    std::fs::write(&raw, &bytes).unwrap();

    // Exported as video (ffmpeg): the last frame shows the desktop's root colour where no
    // window covers it.
    let exported = r.ok(&["recording", "export", id, "-o", video.to_str().unwrap()]);
    assert!(exported.contains("frames at 10 per second"), "{exported}");
    let pixel = last_video_frame_pixel(&ffmpeg, &video, (700, 500));
    let root = [0x12, 0xab, 0x34];
    assert!(
        pixel
            .iter()
            .zip(root)
            .all(|(got, want)| got.abs_diff(want) <= 24),
        "the video's last frame shows {pixel:?} where the root colour {root:?} is"
    );
    assert!(
        !std::fs::read(&video)
            .unwrap()
            .windows(CANARY.len())
            .any(|w| w == CANARY.as_bytes()),
        "the VNC password is in the video"
    );
    // A terminal format for a desktop session is refused with the reason.
    let cast = video_dir.path().join("desktop.cast");
    let wrong = r.run(&["recording", "export", id, "-o", cast.to_str().unwrap()]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains(".mp4, .mkv or .webm"),
        "{}",
        text(&wrong)
    );

    // The vaulted VNC password: nowhere in clear (logs, recordings, database).
    let found = files_containing(&r.data_dir(), CANARY.as_bytes());
    assert!(found.is_empty(), "the VNC password is in {found:?}");
    drop(server);
}

/// The colour of one pixel of a video's last frame, decoded by ffmpeg.
fn last_video_frame_pixel(ffmpeg: &Path, video: &Path, (x, y): (usize, usize)) -> [u8; 3] {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-sseof", "-1", "-i"])
        .arg(video)
        .args([
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let at = (y * usize::from(SCREEN.0) + x) * 3;
    assert!(
        out.stdout.len() >= at + 3,
        "a frame of {} bytes",
        out.stdout.len()
    );
    [out.stdout[at], out.stdout[at + 1], out.stdout[at + 2]]
}

/// A hostile RFB server: a proper handshake (security None, a 64x64 screen), then a
/// FramebufferUpdate with a Raw rectangle of 65535x65535 pixels (16 GiB announced).
fn hostile_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 12];
        let _ = stream.write_all(b"RFB 003.008\n");
        let _ = stream.read_exact(&mut buf);
        let _ = stream.write_all(&[1, 1]);
        let _ = stream.read_exact(&mut buf[..1]);
        let _ = stream.write_all(&0u32.to_be_bytes());
        let _ = stream.read_exact(&mut buf[..1]);
        let mut init = Vec::new();
        init.extend_from_slice(&64u16.to_be_bytes());
        init.extend_from_slice(&64u16.to_be_bytes());
        init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        init.extend_from_slice(&7u32.to_be_bytes());
        init.extend_from_slice(b"hostile");
        let _ = stream.write_all(&init);
        // SetPixelFormat (20), SetEncodings (4 + 4n), FramebufferUpdateRequest (10).
        let mut opening = [0u8; 20 + 16 + 10];
        let _ = stream.read_exact(&mut opening);
        let mut update = vec![0u8, 0, 0, 1];
        for v in [0u16, 0, 65535, 65535] {
            update.extend_from_slice(&v.to_be_bytes());
        }
        update.extend_from_slice(&0i32.to_be_bytes());
        let _ = stream.write_all(&update);
        // Pixels would follow; Rampart must not wait for (or allocate) them.
        let _ = stream.write_all(&[0x55; 4096]);
        let mut rest = [0u8; 256];
        while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    });
    (port, handle)
}

/// A target that announces an update larger than its screen ends the session with a clear
/// reason shown in the browser, without a panic: the node still serves, and the recording of
/// what came before verifies.
#[test]
fn a_hostile_vnc_server_sending_an_oversized_update_ends_the_session_cleanly() {
    if browser_ready().is_none() {
        return;
    }
    let (port, hostile) = hostile_server();
    let (r, server) = rampart_for_desktop(port, None);
    let (ok, out) = run_browser(&server, &[("EXPECT_END", "malformed".to_owned())], |_| {});
    assert!(ok && out.contains("desktop ended as expected"), "{out}");
    hostile.join().unwrap();

    let list = sessions(&r);
    let session = list.iter().find(|s| s["kind"] == "vnc").unwrap();
    let reason = session["end_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("malformed") && reason.contains("outside the 64x64 screen"),
        "{session}"
    );
    // The node lives on: it still answers and the chain and recording verify.
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    verified_eventually(&r);
    let logs = files_containing(&r.data_dir().join("logs"), b"panicked");
    assert!(logs.is_empty(), "a panic in {logs:?}");
}

/// Pasted in the browser (an "é": RFB's cut text is Latin-1) and copied on the target (an "é"
/// too: `xclip` hands x11vnc UTF-8).
const PASTED: &str = "pasted-into-the-desktop-caf\u{e9}-4b2c";
const COPIED: &str = "copied-on-the-desktop-caf\u{e9}-9e1f";

/// The target display's CLIPBOARD's bytes as `xclip -o` reads them (asking for `STRING`, as
/// x11vnc does), or why it could not be read.
fn x_clipboard_bytes(display: &str) -> Result<Vec<u8>, String> {
    let out = Command::new("xclip")
        .args(["-display", display, "-o", "-selection", "clipboard"])
        .args(["-target", "STRING"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(text(&out));
    }
    Ok(out.stdout)
}

/// The target display's CLIPBOARD as an X application reads x11vnc's `STRING`: Latin-1.
pub(crate) fn x_clipboard(display: &str) -> Result<String, String> {
    x_clipboard_bytes(display).map(|bytes| bytes.iter().map(|&b| char::from(b)).collect())
}

/// Puts `text` on the target display's CLIPBOARD: `xclip` in the foreground owns it (as an
/// application that copied would) until the test ends or another owner takes it. `xclip`
/// answers with the bytes it was given (UTF-8), whatever the target asked for.
pub(crate) fn copy_on_target(processes: &mut Processes, display: &str, text: &str) {
    let mut xclip = Command::new("xclip");
    xclip.args(["-display", display, "-quiet", "-selection", "clipboard"]);
    processes.0.push(xclip_owning(xclip, text));
    wait_until("xclip to own the clipboard", || {
        x_clipboard_bytes(display).is_ok_and(|held| held == text.as_bytes())
    });
}

/// The transfers must be exactly one paste (`to_target`) and one copy (`to_user`), each with
/// its size in bytes and `allowed`, and neither text may be in the audit or the recording.
fn assert_clipboard_audited(r: &Rampart, allowed: bool) {
    let transfers = clipboard_transfers(r);
    let pasted: Vec<_> = transfers
        .iter()
        .filter(|e| e["direction"] == "to_target")
        .collect();
    let copied: Vec<_> = transfers
        .iter()
        .filter(|e| e["direction"] == "to_user")
        .collect();
    assert_eq!(
        (pasted.len(), copied.len(), transfers.len()),
        (1, 1, 2),
        "{transfers:?}"
    );
    // Sizes in bytes: the paste as the target got it (Latin-1, one byte a character) or,
    // refused, as the browser sent it (UTF-8); the copy as the server sent it.
    let pasted_bytes = if allowed {
        PASTED.chars().count()
    } else {
        PASTED.len()
    };
    assert_eq!(pasted[0]["bytes"], pasted_bytes, "{transfers:?}");
    assert_eq!(copied[0]["bytes"], COPIED.len(), "{transfers:?}");
    let list = sessions(r);
    let id = list.iter().find(|s| s["kind"] == "vnc").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for event in [pasted[0], copied[0]] {
        assert_eq!(event["allowed"], allowed, "{event}");
        assert_eq!(event["account"], "vnc@desk", "{event}");
        assert_eq!(event["session"], id, "{event}");
    }
    let audit = r.json(&["audit", "list", "--limit", "1000"]).to_string();
    for clip in [
        PASTED,
        COPIED,
        "pasted-into-the-desktop",
        "copied-on-the-desktop",
    ] {
        assert!(
            !audit.contains(clip),
            "the clipboard text {clip} is in the audit"
        );
    }
    let raw = r.data_dir().join("recordings").join(format!("{id}.raw"));
    let recorded = std::fs::read(&raw).unwrap();
    for clip in [
        PASTED,
        COPIED,
        "pasted-into-the-desktop",
        "copied-on-the-desktop",
    ] {
        assert!(
            !recorded.windows(clip.len()).any(|w| w == clip.as_bytes()),
            "the clipboard text {clip} is in the recording"
        );
    }
    verified_eventually(r);
}

/// With `vnc:clipboard`: a paste into the canvas lands on the target's X clipboard (read back
/// with `xclip`, the "é" intact), and a text copied on the target (an `xclip` owning the
/// CLIPBOARD) shows on the page as copied and is on the browser's clipboard, the "é" intact;
/// each transfer is a `clipboard_transfer` audit event with its direction and size, allowed,
/// and neither text is in the audit or the recording.
#[test]
fn with_vnc_clipboard_a_paste_reaches_the_target_clipboard_and_a_target_copy_reaches_the_browser() {
    if browser_ready().is_none() || require_tool("xclip").is_none() {
        return;
    }
    let Some(mut desktop) = Desktop::start() else {
        return;
    };
    let (r, server) = rampart_for_desktop_granting(desktop.port, None, "vnc:connect,vnc:clipboard");
    let env = [
        ("PASTE_TEXT", PASTED.to_owned()),
        ("COPY_TEXT", COPIED.to_owned()),
    ];
    let display = desktop.display.clone();
    let mut problems = Vec::new();
    let (ok, out) = run_browser_lines(&server, &env, |line| {
        if line == "PASTED" {
            // The paste reaches the target's clipboard (x11vnc owns it then).
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut held = x_clipboard(&display);
            while held.as_deref() != Ok(PASTED) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                held = x_clipboard(&display);
            }
            if held.as_deref() != Ok(PASTED) {
                problems.push(format!(
                    "the target's clipboard holds {held:?}, not the paste"
                ));
            }
            copy_on_target(&mut desktop.processes, &display, COPIED);
        } else if let Some(id) = line.strip_prefix("READY ") {
            r.ok(&["session", "kill", id.trim(), "--reason", KILL_REASON]);
        }
    });
    assert!(problems.is_empty(), "{problems:?}\n{out}");
    assert!(ok && out.contains("desktop steps passed"), "{out}");
    assert!(
        out.contains("copied: the desktop's clipboard was copied"),
        "{out}"
    );
    assert_clipboard_audited(&r, true);
    drop(server);
}

/// Without `vnc:clipboard`: a paste into the canvas is refused on the page naming the missing
/// grant and never reaches the target's X clipboard; a text copied on the target is neither
/// shown on the page nor put on the browser's clipboard, and the page says it was refused with
/// its size and the missing grant (checked once the page shows a screen change the test made
/// after Rampart audited the refusal, so anything sent before it had arrived); both refusals are `clipboard_transfer` audit events with their sizes and no text.
#[test]
fn without_vnc_clipboard_a_paste_and_a_target_copy_are_refused_shown_and_audited_with_their_sizes()
{
    if browser_ready().is_none() || require_tool("xclip").is_none() {
        return;
    }
    let Some(mut desktop) = Desktop::start() else {
        return;
    };
    let (r, server) = rampart_for_desktop(desktop.port, None);
    let env = [
        ("PASTE_TEXT", PASTED.to_owned()),
        (
            "PASTE_NOTICE",
            "your grant does not allow the clipboard here (vnc:clipboard)".to_owned(),
        ),
        ("COPY_TEXT", COPIED.to_owned()),
        ("COPY_REFUSED_RGB", "0,0,255".to_owned()),
        (
            "COPY_REFUSED_NOTICE",
            format!(
                "a text copied on the desktop ({} bytes) was not passed to your clipboard: your \
                 grant does not allow the clipboard here (vnc:clipboard)",
                COPIED.len()
            ),
        ),
    ];
    let display = desktop.display.clone();
    let mut problems = Vec::new();
    let (ok, out) = run_browser_lines(&server, &env, |line| {
        if line == "PASTED" {
            // The refusal is on the page, so Rampart decided: nothing reached the target.
            if let Ok(held) = x_clipboard(&display)
                && held.contains("pasted-into-the-desktop")
            {
                problems.push(format!(
                    "the refused paste is on the target's clipboard: {held}"
                ));
            }
            copy_on_target(&mut desktop.processes, &display, COPIED);
            // x11vnc sends a new selection to its clients at the earliest 15 s after one
            // connected; Rampart audits the refusal when it arrives.
            let deadline = Instant::now() + Duration::from_secs(60);
            let refused = |e: &Value| e["direction"] == "to_user" && e["allowed"] == false;
            while !clipboard_transfers(&r).iter().any(refused) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(300));
            }
            if !clipboard_transfers(&r).iter().any(refused) {
                problems.push("no refused copy was audited".to_owned());
            }
            // A screen change after the refusal: the page waits for it.
            let blue = Command::new("xsetroot")
                .args(["-display", &display, "-solid", "#0000ff"])
                .output()
                .unwrap();
            if !blue.status.success() {
                problems.push(format!("xsetroot: {}", text(&blue)));
            }
        } else if let Some(id) = line.strip_prefix("READY ") {
            r.ok(&["session", "kill", id.trim(), "--reason", KILL_REASON]);
        }
    });
    assert!(problems.is_empty(), "{problems:?}\n{out}");
    assert!(ok && out.contains("desktop steps passed"), "{out}");
    assert!(out.contains("copy not shown"), "{out}");
    // The target's clipboard still holds its own text: the paste never replaced it.
    assert_eq!(
        x_clipboard_bytes(&desktop.display),
        Ok(COPIED.as_bytes().to_vec())
    );
    assert_clipboard_audited(&r, false);
    drop(server);
}
