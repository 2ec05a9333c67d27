//! Reading evidence out stays bounded in memory, however large the evidence: the audit export
//! streams the log a page at a time.

use super::BIN;
use rampart_testkit::{Rampart, require_tool};
use std::process::Command;

/// Runs `rampart ARGS` under GNU time; returns its output and its peak resident set, in KiB.
fn peak_kib(r: &Rampart, args: &[&str]) -> (std::process::Output, u64) {
    let rampart = r.command(args);
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak-kib=%M"])
        .arg(rampart.get_program())
        .args(rampart.get_args())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak = stderr
        .lines()
        .find_map(|line| line.strip_prefix("peak-kib="))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak from time: {stderr}"));
    (output, peak)
}

#[test]
fn the_audit_export_streams_a_large_log_in_bounded_memory() {
    if require_tool("sqlite3").is_none() || require_tool("time").is_none() {
        return;
    }
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    // 12,000 events of 4 KiB each (about 48 MiB of log), added in one statement.
    let db = r.data_dir().join("rampart.db");
    let events = 12_000;
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {events}) \
         INSERT INTO audit_events (seq, at, actor, kind, event, prev_hash, hash) \
         SELECT 1000 + i, '2026-01-01T00:00:00Z', '{{\"type\":\"system\"}}', 'padding', \
         json_object('event', 'padding', 'text', replace(hex(zeroblob(2048)), '00', 'xx')), \
         'p' || i, 'h' || i FROM n"
    );
    let inserted = Command::new("sqlite3").arg(&db).arg(&sql).output().unwrap();
    assert!(inserted.status.success(), "{inserted:?}");

    let file = r.scratch().join("export.jsonl");
    let (output, peak) = peak_kib(&r, &["audit", "export", "-o", file.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    // Everything was written, in order, each line one event.
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 48 << 20, "export of {size} bytes");
    let exported = std::fs::read_to_string(&file).unwrap();
    let padding = exported
        .lines()
        .filter(|l| l.contains("\"padding\""))
        .count();
    assert_eq!(padding, events);
    // The record of the export names every event it wrote.
    let records = r.json(&["audit", "list", "--limit", "5"]);
    let record = records
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "audit_exported")
        .expect("the export is recorded");
    let total = exported.lines().count() as u64;
    assert_eq!(record["event"]["events"].as_u64(), Some(total), "{record}");
    // Far less than the log: a page at a time, not the whole of it.
    assert!(
        peak < 48 * 1024,
        "exporting {size} bytes peaked at {peak} KiB of memory"
    );
}
