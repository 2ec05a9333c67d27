//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), also replayed over the committed
//! corpus by this crate's tests on stable. Each takes arbitrary bytes and must never panic.
//! Not for other use.

use crate::login::{LoginPatterns, LoginScript, Step};
use crate::protocol::{MAX_SUBNEGOTIATION, Telnet};

/// A device's bytes through the protocol and the login script: the first byte chooses the size
/// of the pieces they arrive in, the second whether the user resizes between pieces.
pub fn telnet(data: &[u8]) {
    let (head, input) = data.split_at(data.len().min(2));
    let piece = usize::from(head.first().copied().unwrap_or(0) % 64) + 1;
    let resize = head.get(1).is_some_and(|b| b % 2 == 1);
    let mut telnet = Telnet::new(Some("xterm"), 80, 24);
    let _ = telnet.start();
    let Ok(patterns) = LoginPatterns::new(None, None, None, None) else {
        return;
    };
    let mut script = LoginScript::new(patterns, b"secret");
    for (n, chunk) in input.chunks(piece).enumerate() {
        let received = telnet.receive(chunk);
        // Data never grows: the device's commands only ever shrink it.
        assert!(received.data.len() <= chunk.len());
        // Answers are bounded by what was asked: at most a terminal type or a window size per
        // command byte, never a flood.
        assert!(received.reply.len() <= chunk.len() * (MAX_SUBNEGOTIATION + 16));
        // The password never comes back out of the login script.
        match script.output(&received.data) {
            Step::LoggedIn(shown) => assert!(!shown.windows(6).any(|w| w == b"secret")),
            Step::Failed(line) => assert!(!line.contains("secret")),
            _ => {}
        }
        if resize {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let _ = telnet.resize(n, u32::MAX - n);
        }
        let _ = telnet.encode(chunk);
    }
}

#[cfg(test)]
mod tests {
    fn replay(target: &str, entry: fn(&[u8])) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut count = 0;
        for dir in [
            root.join("corpus").join(target),
            root.join("artifacts").join(target),
        ] {
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            for file in files {
                entry(&std::fs::read(file.unwrap().path()).unwrap());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for fuzz target {target}");
    }

    #[test]
    fn pseudo_random_devices_never_break_the_invariants() {
        // A fixed linear congruential generator: the same 500 inputs on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..500 {
            let len = usize::try_from(state % 300).unwrap();
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    // Bias towards the bytes that matter: IAC, commands, CR, NUL, prompts.
                    match (state >> 33) % 8 {
                        0 => 255,
                        1 => [240, 250, 251, 252, 253, 254]
                            [usize::try_from((state >> 40) % 6).unwrap()],
                        2 => [b'\r', 0, b'\n', b':', b'$']
                            [usize::try_from((state >> 40) % 5).unwrap()],
                        _ => u8::try_from((state >> 48) & 0xff).unwrap(),
                    }
                })
                .collect();
            super::telnet(&input);
        }
    }

    #[test]
    fn the_telnet_corpus_replays() {
        replay("telnet", super::telnet);
    }
}
