//! What a transfer costs in CPU, and how much memory Rampart held at most: efficiency beside
//! speed. CPU is counted for the processes that move the bytes, whatever else runs on the
//! machine: the `ssh` clients this program starts (and a jump host's `ProxyCommand` ssh under
//! them), the target's and the jump host's `sshd` with the per-connection children they have
//! reaped, and Rampart. A path that moves bytes faster by burning more cores is no better, and
//! another process's load does not count against any path.

use anyhow::Context;

/// User and system seconds of `pid`, with its reaped children (`/proc/PID/stat` fields 14-17).
fn process_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("an unreadable /proc stat line")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime..cstime (fields 14-17) are 11..=14.
    let ticks: u64 = (11..=14)
        .filter_map(|i| fields.get(i))
        .map(|field| field.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// CPU seconds `pid` has spent so far (user and system, with its reaped children).
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    process_seconds(&pid.to_string())
}

/// CPU seconds spent so far by the processes on a transfer's path: this program's reaped
/// children (the ssh clients) and the given server processes (sshd, jump host, Rampart).
pub fn path_cpu_seconds(servers: &[u32]) -> anyhow::Result<f64> {
    let mut seconds = children_seconds()?;
    for pid in servers {
        seconds += process_seconds(&pid.to_string())?;
    }
    Ok(seconds)
}

/// This program's reaped children only (its own time is the measuring, not the path).
fn children_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("an unreadable /proc stat line")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = (13..=14)
        .filter_map(|i| fields.get(i))
        .map(|field| field.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// `USER_HZ`: 100 on every Linux this runs on; `getconf` says otherwise if it differs.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The whole machine's CPU time so far, in seconds summed over its CPUs (`/proc/stat`'s first
/// line): busy (everything but idle and waiting for I/O) and in all. Busy seconds over a
/// transfer's wall time are the cores it kept busy, whoever used them (kernel threads, soft
/// interrupts and other programs included): near the machine's core count, the path is bound by
/// CPU, not by its own latency.
pub fn machine_cpu_seconds() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("/proc/stat has no cpu line")?;
    // user nice system idle iowait irq softirq steal (guest time is counted in user already).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let all: u64 = ticks.iter().sum();
    let idle: u64 = ticks.iter().skip(3).take(2).sum();
    let hz = clock_ticks_per_second();
    Ok(((all - idle) as f64 / hz, all as f64 / hz))
}

/// The resident-memory high-water mark of a process (`VmHWM`), in KiB.
pub fn peak_resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The machine's load average over the last minute, to print beside the figures.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
