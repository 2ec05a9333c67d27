//! The verifier reads a recording as it checks it: its memory does not follow the size of the
//! files (or of the chunks a tampered manifest claims). Its own test binary, so the process's
//! peak memory (VmHWM) is this test's alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use rampart_audit::RecordingProblem;
use rampart_audit::recording::{cast_path, manifest_path};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMyW5aXKfKySiHzoZpecjyhLoxnAVs5QJx0LoTataubc test";

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

#[test]
fn verifying_a_large_recording_does_not_read_it_into_memory() {
    const SIZE: u64 = 128 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let session = uuid::Uuid::now_v7();
    // A sparse cast file (no disk used) and a manifest claiming one chunk of all of it.
    std::fs::File::create(cast_path(dir.path(), session))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let manifest = format!(
        "{{\"type\":\"start\",\"session\":\"{session}\",\"format\":\"rampart-recording-v1\"}}\n\
         {{\"type\":\"chunk\",\"index\":0,\"offset\":0,\"length\":{SIZE},\"sha256\":\"{}\",\"chain\":\"{}\"}}\n",
        "0".repeat(64),
        "0".repeat(64)
    );
    std::fs::write(manifest_path(dir.path(), session), manifest).unwrap();
    let key = rampart_audit::public_key_from_openssh(KEY).unwrap();

    let before = peak_kib();
    let problem = rampart_audit::verify_recording(dir.path(), session, &key).unwrap_err();
    let grown = peak_kib().saturating_sub(before);
    assert_eq!(
        problem,
        RecordingProblem::ChunkAltered {
            index: 0,
            offset: 0,
            end: SIZE
        }
    );
    assert!(
        grown < 16 * 1024,
        "verifying a {SIZE}-byte recording grew the peak memory by {grown} KiB"
    );
}

#[test]
fn a_manifest_line_longer_than_any_real_one_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let session = uuid::Uuid::now_v7();
    std::fs::write(cast_path(dir.path(), session), b"").unwrap();
    let mut line = vec![b' '; 1024 * 1024];
    line.push(b'\n');
    std::fs::write(manifest_path(dir.path(), session), line).unwrap();
    let key = rampart_audit::public_key_from_openssh(KEY).unwrap();
    assert_eq!(
        rampart_audit::verify_recording(dir.path(), session, &key).unwrap_err(),
        RecordingProblem::ManifestCorrupt(1)
    );
}
