//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), also replayed over the committed
//! corpus by this crate's tests on stable. Each takes arbitrary bytes, must never panic, and
//! keeps the library's own bounds. Not for other use.

use crate::scp::{ScpCommand, ScpObserver};
use crate::sftp::{SftpDirections, SftpObserver, needs};

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

/// The SFTP observer, both directions: the first byte picks the session's directions (read,
/// write, both), then pieces alternate between client and server. Whatever a one-direction
/// session forwards must be whole requests that direction allows; everything else was answered.
pub fn sftp(data: &[u8]) {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let directions = match choice % 3 {
        0 => SftpDirections {
            read: true,
            write: false,
        },
        1 => SftpDirections {
            read: false,
            write: true,
        },
        _ => SftpDirections::BOTH,
    };
    let mut observer = SftpObserver::with_directions(directions);
    for (n, piece) in pieces(data).into_iter().enumerate() {
        let ok = if n % 2 == 0 {
            match observer.filter_client(piece) {
                Ok(filtered) => {
                    if let Some(forwarded) = &filtered.forward {
                        assert_only_allowed(forwarded, directions);
                    }
                    true
                }
                Err(_) => false,
            }
        } else {
            observer.server(piece).is_ok()
        };
        if !ok {
            return; // a stream it cannot follow ends the session
        }
    }
    let _ = observer.finish();
}

/// Every packet in `forwarded` is whole and needs nothing `directions` lacks.
#[expect(
    clippy::panic,
    reason = "a fuzz target reports a broken invariant by panicking"
)]
fn assert_only_allowed(forwarded: &[u8], directions: SftpDirections) {
    let mut rest = forwarded;
    while !rest.is_empty() {
        let Some((length, body)) = rest.split_first_chunk::<4>() else {
            panic!("a partial packet was forwarded");
        };
        let length = u32::from_be_bytes(*length) as usize;
        let Some((packet, after)) = (body.len() >= length).then(|| body.split_at(length)) else {
            panic!("a partial packet was forwarded");
        };
        let Some((need, operation)) = needs(packet) else {
            panic!("an unparsed packet was forwarded");
        };
        if (need.read && !directions.read) || (need.write && !directions.write) {
            panic!("{operation} was forwarded in a session limited to {directions:?}");
        }
        rest = after;
    }
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
