//! Real desktops for the desktop tests and the benchmark's desktop case: `Xvfb` on a free
//! display with a known root colour and an `xterm` running a given command, shared by `x11vnc`
//! on a loopback port with a VNC password read from a file (never from argv); or TigerVNC's
//! `Xvnc` (an X server and a VNC server in one, which resizes its desktop when a client asks)
//! on such a display and port, with the same root colour and xterm.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The root window's colour (`xsetroot -solid`), as the canvas and the video show it.
pub const ROOT_COLOUR: &str = "#12ab34";

/// Processes killed (newest first) when dropped, however the test or the run ends.
#[derive(Debug, Default)]
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub use crate::free_port;

/// Waits up to 30 seconds for `ready`; panics naming `what` after that.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What runs on the display: its size, and the xterm's geometry (`COLSxROWS+X+Y`) and command.
#[derive(Debug, Clone)]
pub struct Screen<'a> {
    pub size: (u16, u16),
    pub xterm_geometry: &'a str,
    pub xterm_command: &'a [&'a str],
}

/// Whether X display `n` is taken: its lock names a live process (or, without a lock, its
/// socket exists). A lock naming a dead process is what an Xvfb killed by [`Processes`]
/// (SIGKILL) leaves behind; the X server takes such a display over (it removes the stale lock
/// and socket), so it is free. Counting it taken once filled every display of a machine that
/// had run the tests a few hundred times, and each desktop test then failed.
fn display_taken(n: u32) -> bool {
    match std::fs::read_to_string(format!("/tmp/.X{n}-lock")) {
        Ok(pid) => pid
            .trim()
            .parse::<u32>()
            .map_or(true, |pid| Path::new(&format!("/proc/{pid}")).exists()),
        Err(_) => Path::new(&format!("/tmp/.X11-unix/X{n}")).exists(),
    }
}

/// Xvfb on a free display of `screen.size` with the root colour [`ROOT_COLOUR`] and an xterm
/// running `screen.xterm_command`; the processes go to `processes`. Returns the display.
pub fn x_display(processes: &mut Processes, screen: &Screen<'_>) -> String {
    let (width, height) = screen.size;
    x_server(processes, screen, |display| {
        let mut xvfb = Command::new("Xvfb");
        xvfb.arg(display)
            .args(["-screen", "0", &format!("{width}x{height}x24")])
            // Without -noreset the server resets when its last client leaves
            // (xsetroot below), and the root colour with it.
            .args(["-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        xvfb
    })
}

/// TigerVNC's `Xvnc` on a free display of `screen.size` (root colour and xterm as
/// [`x_display`]), its VNC server on loopback `port` taking VNC authentication with
/// `password` (made into its password file in `dir` by `vncpasswd -f`, from stdin: never in
/// argv); its standard error goes to `dir`'s `xvnc.log`. Returns the display once the port
/// accepts connections.
pub fn xvnc(
    processes: &mut Processes,
    screen: &Screen<'_>,
    port: u16,
    password: &str,
    dir: &Path,
) -> String {
    let password_file = dir.join("xvnc-password");
    let mut vncpasswd = Command::new("vncpasswd")
        .arg("-f")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(std::fs::File::create(&password_file).unwrap()))
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut vncpasswd.stdin.take().unwrap(),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    assert!(vncpasswd.wait().unwrap().success(), "vncpasswd -f failed");
    let log = dir.join("xvnc.log");
    let (width, height) = screen.size;
    let display = x_server(processes, screen, |display| {
        let mut xvnc = Command::new("Xvnc");
        xvnc.arg(display)
            .args(["-geometry", &format!("{width}x{height}"), "-depth", "24"])
            .args(["-rfbport", &port.to_string(), "-localhost"])
            .args(["-interface", "127.0.0.1", "-nolisten", "tcp", "-noreset"])
            .args(["-SecurityTypes", "VncAuth", "-rfbauth"])
            .arg(&password_file)
            .args(["-AlwaysShared"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        xvnc
    });
    wait_until("Xvnc", || TcpStream::connect(("127.0.0.1", port)).is_ok());
    display
}

/// An X server (`server`'s command for a display `:N`) on a free display, with the root colour
/// [`ROOT_COLOUR`] and an xterm as `screen` says; the processes go to `processes`.
fn x_server(
    processes: &mut Processes,
    screen: &Screen<'_>,
    server: impl Fn(&str) -> Command,
) -> String {
    let display = (40..400)
        .find_map(|n| {
            let socket = format!("/tmp/.X11-unix/X{n}");
            if display_taken(n) {
                return None;
            }
            let mut child = server(&format!(":{n}")).spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let lock = format!("/tmp/.X{n}-lock");
            while Instant::now() < deadline {
                // The display is ours only if our server holds its lock: two tests starting at
                // once may both try `n`, and the loser must not take the winner's socket for
                // its own (both would then type into one xterm).
                let locked_by = std::fs::read_to_string(&lock)
                    .ok()
                    .and_then(|pid| pid.trim().parse::<u32>().ok());
                if Path::new(&socket).exists() && locked_by == Some(child.id()) {
                    processes.0.push(child);
                    return Some(format!(":{n}"));
                }
                if child.try_wait().unwrap().is_some() {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        })
        .expect("no free X display");
    let root = Command::new("xsetroot")
        .args(["-display", &display, "-solid", ROOT_COLOUR])
        .output()
        .unwrap();
    assert!(
        root.status.success(),
        "xsetroot: {}",
        String::from_utf8_lossy(&root.stderr)
    );
    processes.0.push(
        Command::new("xterm")
            .args(["-display", &display, "-geometry", screen.xterm_geometry])
            .arg("-e")
            .args(screen.xterm_command)
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    display
}

/// `x11vnc` sharing `display` on loopback `port` with the VNC password in `password_file`,
/// plus `extra` arguments (`-quiet`, `-ssl FILE`...); its standard error goes to `log`. Returns once it accepts
/// connections.
pub fn x11vnc(
    processes: &mut Processes,
    display: &str,
    port: u16,
    password_file: &Path,
    extra: &[&str],
    log: &Path,
) {
    processes.0.push(
        Command::new("x11vnc")
            .args(["-display", display, "-rfbport", &port.to_string()])
            .args(["-localhost", "-forever", "-shared", "-noshm", "-noxdamage"])
            .arg("-passwdfile")
            .arg(password_file)
            .args(extra)
            // Without a window manager x11vnc waits 45 s after a client connects (in case a
            // display manager is still running) before it makes the window it owns selections
            // with: until then a paste reaches no X clipboard.
            .env("X11VNC_AVOID_WINDOWS", "never")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap(),
    );
    wait_until("x11vnc", || TcpStream::connect(("127.0.0.1", port)).is_ok());
}
