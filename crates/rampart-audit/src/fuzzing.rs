//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), also replayed over the committed
//! corpus by this crate's tests on stable. Each takes arbitrary bytes, must never panic, and
//! keeps the library's own bounds. Not for other use.

use crate::scp::{ScpCommand, ScpObserver};
use crate::sftp::SftpObserver;

/// Splits `data` into pieces whose sizes the bytes themselves choose, so one input exercises
/// how a parser handles a stream cut at every place.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&size, tail)) = rest.split_first() {
        let take = usize::from(size % 64).max(1).min(tail.len());
        let (piece, after) = tail.split_at(take);
        out.push(piece);
        rest = after;
    }
    out
}

/// The SFTP observer, both directions: pieces alternate between client and server.
pub fn sftp(data: &[u8]) {
    let mut observer = SftpObserver::new();
    for (n, piece) in pieces(data).into_iter().enumerate() {
        let result = if n % 2 == 0 {
            observer.client(piece)
        } else {
            observer.server(piece)
        };
        if result.is_err() {
            return; // a stream it cannot follow ends the session
        }
    }
    let _ = observer.finish();
}

/// The scp command line (the first line) and the protocol stream after it.
pub fn scp(data: &[u8]) {
    let (command, stream) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (
            data.get(..end).unwrap_or_default(),
            data.get(end + 1..).unwrap_or_default(),
        ),
        None => (data, &[][..]),
    };
    let Ok(command) = ScpCommand::parse(command) else {
        return;
    };
    let mut observer = ScpObserver::new(command);
    for piece in pieces(stream) {
        if observer.feed(piece).is_err() {
            return;
        }
    }
}

/// A fixed audit key: the verifier checks seals against it (nothing fuzzed is ever signed).
const AUDIT_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFUZZFUZZFUZZFUZZFUZZFUZZFUZZFUZZFUZZFUZZFUZZ fuzz";

/// The verifier over a recording an attacker with disk access wrote: the manifest, a NUL
/// byte, then the cast file. Written to a private temporary directory and verified.
pub fn recording(data: &[u8]) {
    let (manifest, cast) = match data.iter().position(|&b| b == 0) {
        Some(end) => (
            data.get(..end).unwrap_or_default(),
            data.get(end + 1..).unwrap_or_default(),
        ),
        None => (data, &[][..]),
    };
    let Ok(key) = crate::public_key_from_openssh(AUDIT_PUBLIC_KEY) else {
        return;
    };
    let Ok(dir) = private_temp_dir() else {
        return;
    };
    let session = uuid::Uuid::nil();
    let written = std::fs::write(crate::recording::manifest_path(&dir, session), manifest)
        .and_then(|()| std::fs::write(crate::recording::cast_path(&dir, session), cast));
    if written.is_ok() {
        let _ = crate::verify_recording(&dir, session, &key);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn private_temp_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    /// Every committed corpus file and every crash the fuzzers found, replayed (CI, stable).
    pub(crate) fn replay(target: &str, entry: fn(&[u8])) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut count = 0;
        for dir in [
            root.join("corpus").join(target),
            root.join("artifacts").join(target),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for file in entries {
                let path = file.unwrap().path();
                entry(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for fuzz target {target}");
    }

    #[test]
    fn the_sftp_corpus_replays() {
        replay("sftp", super::sftp);
    }

    #[test]
    fn the_scp_corpus_replays() {
        replay("scp", super::scp);
    }

    #[test]
    fn the_recording_corpus_replays() {
        replay("recording", super::recording);
    }
}
