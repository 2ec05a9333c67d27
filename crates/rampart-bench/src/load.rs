//! The concurrency case: thousands of interactive sessions through Rampart from one process
//! (`rampart_testkit::load`, on russh), where as many OpenSSH clients would cost more than the
//! gateway they measure. Each session types an `echo` and must show its own token back.

use anyhow::anyhow;
use rampart_testkit::load::LoadClient;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct LoadResult {
    pub open: usize,
    pub errors: usize,
    /// Sessions that did not show their own token (and only it) back.
    pub echo_failures: usize,
    pub rss_before_kib: u64,
    pub rss_with_kib: u64,
    pub per_session_kib: f64,
    pub open_seconds: f64,
}

/// Opens `count` sessions through Rampart, measures its memory, runs `while_open` (the
/// measurements made under that load), and closes them.
pub fn run<T>(
    key: &Path,
    address: SocketAddr,
    user: &str,
    count: usize,
    rampart_pid: u32,
    while_open: impl FnOnce() -> T,
) -> anyhow::Result<(LoadResult, T)> {
    let client = LoadClient::new(key).map_err(|err| anyhow!("the load client: {err}"))?;
    let rss_before_kib = rampart_testkit::resident_kib(rampart_pid);
    let started = Instant::now();
    let (sessions, errors) = client.open(address, user, count);
    let open_seconds = started.elapsed().as_secs_f64();
    // Type something, as a person would, and check each session answers as itself.
    let (sessions, seen) = client.echo_tokens(sessions, "bench");
    let echo_failures = seen
        .iter()
        .enumerate()
        .filter(|(index, tokens)| tokens.as_slice() != [*index])
        .count();
    // Let the sessions settle (shells idle) before reading memory.
    std::thread::sleep(Duration::from_secs(2));
    let rss_with_kib = rampart_testkit::resident_kib(rampart_pid);
    let under_load = while_open();
    let open = sessions.len();
    client.close(sessions);
    let per_session_kib = if open == 0 {
        0.0
    } else {
        rss_with_kib.saturating_sub(rss_before_kib) as f64 / open as f64
    };
    Ok((
        LoadResult {
            open,
            errors,
            echo_failures,
            rss_before_kib,
            rss_with_kib,
            per_session_kib,
            open_seconds,
        },
        under_load,
    ))
}
