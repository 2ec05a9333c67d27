//! A desktop that follows the browser's window (issue 22): TigerVNC's `Xvnc` as the VNC
//! target (it takes ExtendedDesktopSize's SetDesktopSize), with the known root colour and an
//! xterm, VNC authentication with the vaulted password on loopback, in real headless Chromium.
//! The view asks for its size at the start and again after the window changes; the target's
//! own X screen (as `xrandr` reads it on its display) and the canvas the user sees both take
//! that size; of sizes sent faster than Rampart passes them on, the latest wins; the session,
//! killed, replays and its recording verifies.

use crate::db_common::verified_eventually;
use crate::desktop_common::{
    CANARY, KILL_REASON, Processes, SCREEN, TEST_SCREEN, browser_ready, free_port, killed_session,
    run_browser_lines,
};
use crate::desktop_vnc::rampart_for_desktop;
use rampart_testkit::{desktop, require_tool};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The window the page is resized to once connected (the test's first is 1100x800).
const RESIZED_WINDOW: (u16, u16) = (960, 640);
/// The last of three sizes the page then sends at once.
const LATEST_OF_A_BURST: (u16, u16) = (880, 560);

/// The screen size of X display `display` (`current W x H` in `xrandr`'s first line).
pub(crate) fn x_screen_size(display: &str) -> Option<(u16, u16)> {
    let mut xrandr = Command::new("xrandr");
    xrandr.args(["-display", display]);
    xrandr_size(xrandr)
}

/// The screen size `xrandr` (the command, set for its display) prints in its first line:
/// `current W x H`.
pub(crate) fn xrandr_size(mut xrandr: Command) -> Option<(u16, u16)> {
    let out = xrandr.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let current = text.split("current ").nth(1)?.split(',').next()?;
    let (width, height) = current.split_once(" x ")?;
    Some((width.trim().parse().ok()?, height.trim().parse().ok()?))
}

/// The X screen's size once it is `want`, or the last seen after 30 seconds.
pub(crate) fn x_screen_becomes(display: &str, want: (u16, u16)) -> Option<(u16, u16)> {
    size_becomes(|| x_screen_size(display), want)
}

/// The size `read` sees once it is `want`, or the last seen after 30 seconds.
pub(crate) fn size_becomes(
    read: impl Fn() -> Option<(u16, u16)>,
    want: (u16, u16),
) -> Option<(u16, u16)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = read();
        if seen == Some(want) || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The user connects in a 1100x800 window to an Xvnc desktop of 800x600: the desktop becomes
/// the view's size (the target's X screen and the canvas), the window then becomes 960x640
/// and both follow again; three sizes sent at once (faster than the one a second Rampart
/// passes on) end at the last, kept until its turn; the view keeps drawing, typing still
/// works, the kill's reason shows, the replay (which resizes with it) verifies, and so does
/// the audit chain; the recording has the requests as input metadata.
#[test]
fn a_browser_window_resize_resizes_an_xvnc_desktop() {
    if browser_ready().is_none() {
        return;
    }
    let tools = ["Xvnc", "vncpasswd", "xterm", "xsetroot", "xrandr"];
    let found: Vec<PathBuf> = tools.iter().filter_map(|t| require_tool(t)).collect();
    if found.len() != tools.len() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::default();
    let port = free_port();
    let display = desktop::xvnc(&mut processes, &TEST_SCREEN, port, CANARY, dir.path());
    assert_eq!(x_screen_size(&display), Some(SCREEN));
    let (r, server) = rampart_for_desktop(port, None);

    // (what the canvas showed, what the target's screen became)
    let mut sizes = Vec::new();
    let resize_to = format!("{}x{}", RESIZED_WINDOW.0, RESIZED_WINDOW.1);
    let latest = format!("{}x{}", LATEST_OF_A_BURST.0, LATEST_OF_A_BURST.1);
    let settings = [("RESIZE_TO", resize_to), ("RESIZE_LATEST", latest)];
    let (ok, out) = run_browser_lines(&server, &settings, |line| {
        if let Some(size) = line.strip_prefix("CANVAS ") {
            let mut sides = size.split_whitespace().map(|v| v.parse::<u16>().unwrap());
            let canvas = (sides.next().unwrap(), sides.next().unwrap());
            sizes.push((canvas, x_screen_becomes(&display, canvas)));
        }
        if let Some(id) = line.strip_prefix("READY ") {
            r.ok(&["session", "kill", id.trim(), "--reason", KILL_REASON]);
        }
    });
    assert!(ok && out.contains("desktop steps passed"), "{out}");
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
        "the target's screen at the start"
    );
    assert_eq!(
        second_target,
        Some(second),
        "the target's screen after the resize"
    );
    assert_eq!(third, LATEST_OF_A_BURST);
    assert_eq!(
        third_target,
        Some(third),
        "the target's screen after the burst"
    );
    // Real changes: the 1100x800 window's view is wider than the 800x600 desktop the target
    // started with, and the 960x640 window's is smaller than that.
    assert!(first.0 > SCREEN.0 && first != second, "{sizes:?}");
    assert!(
        second.0 <= RESIZED_WINDOW.0 && second.1 < RESIZED_WINDOW.1,
        "{sizes:?}"
    );

    let session = killed_session(&r, "vnc");
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
