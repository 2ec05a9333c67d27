//! Network namespaces for tests of real network isolation (`ip netns` and veth pairs), created
//! by the test and removed when dropped. Needs root and `iproute2`.
//!
//! Every namespace gets only its loopback and the links the test makes: no default route, so
//! an address is reachable only where a link or a route says so.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`, panicking with its error output when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `inner` run inside namespace `ns` (`ip netns exec NS ...`), with the same arguments and
/// environment changes.
pub fn in_netns(ns: &str, inner: &Command) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (name, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        command.current_dir(dir);
    }
    command
}

/// A set of namespaces with unique names, removed (with their links) on drop.
#[derive(Debug)]
pub struct Netns {
    prefix: String,
    names: Vec<String>,
}

impl Netns {
    /// Namespaces named `PREFIX-ROLE` for each of `roles`, each with its loopback up.
    pub fn new(roles: &[&str]) -> Self {
        let prefix = format!(
            "rt{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut netns = Self {
            prefix,
            names: Vec::new(),
        };
        for role in roles {
            let name = netns.name(role);
            ip(&["netns", "add", &name]);
            netns.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"]);
        }
        netns
    }

    /// The namespace's full name for `role`.
    pub fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Links `a` and `b` with a veth pair: `a` gets `a_addr` and `b` gets `b_addr` (both
    /// `ADDRESS/PREFIX`), interfaces named `to-B` and `to-A` in each.
    pub fn link(&self, a: &str, a_addr: &str, b: &str, b_addr: &str) {
        let (ns_a, ns_b) = (self.name(a), self.name(b));
        let (if_a, if_b) = (format!("to-{b}"), format!("to-{a}"));
        ip(&[
            "link", "add", &if_a, "netns", &ns_a, "type", "veth", "peer", "name", &if_b, "netns",
            &ns_b,
        ]);
        for (ns, iface, addr) in [(&ns_a, &if_a, a_addr), (&ns_b, &if_b, b_addr)] {
            ip(&["-n", ns, "addr", "add", addr, "dev", iface]);
            ip(&["-n", ns, "link", "set", iface, "up"]);
        }
    }

    /// Adds `address` (`ADDRESS/PREFIX`) to `role`'s loopback.
    pub fn add_loopback_address(&self, role: &str, address: &str) {
        ip(&["-n", &self.name(role), "addr", "add", address, "dev", "lo"]);
    }

    /// Routes `destination` from `role` through `via`.
    pub fn route(&self, role: &str, destination: &str, via: &str) {
        ip(&[
            "-n",
            &self.name(role),
            "route",
            "add",
            destination,
            "via",
            via,
        ]);
    }

    /// Whether a TCP connection from `role` to `host:port` succeeds (made inside `role`).
    pub fn can_connect(&self, role: &str, host: &str, port: u16) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name(role),
                "timeout",
                "10",
                "bash",
                "-c",
            ])
            .arg(format!("exec 3<>/dev/tcp/{host}/{port}"))
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Kills every process in `role`'s namespace (a host going down: its connections end).
    pub fn kill_all(&self, role: &str) {
        kill_all(&self.name(role));
    }
}

fn kill_all(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            kill_all(name);
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
