//! Generated passwords: a length and four character classes (lower, upper, digits, symbols), each
//! present at least once, every character drawn uniformly from the OS CSPRNG by rejection
//! sampling.
//!
//! The symbols leave out what breaks transport or parsing on targets: `:` (the `chpasswd`
//! separator), quotes, backslash, whitespace and `$`.

use rampart_core::SecretString;
use zeroize::Zeroizing;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"-_.,+=!@#%^*()[]{}~";

/// The OS gave no randomness.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct NoRandomness(String);

/// A new password of `length` characters (at least 4) with every class present.
pub fn generate(length: u32) -> Result<SecretString, NoRandomness> {
    let length = usize::try_from(length.max(4)).unwrap_or(24);
    let alphabet: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    loop {
        let mut password = Zeroizing::new(String::with_capacity(length));
        while password.len() < length {
            let index = uniform(alphabet.len())?;
            if let Some(&c) = alphabet.get(index) {
                password.push(char::from(c));
            }
        }
        let has = |class: &[u8]| password.bytes().any(|c| class.contains(&c));
        if has(LOWER) && has(UPPER) && has(DIGITS) && has(SYMBOLS) {
            return Ok(SecretString::from(password.as_str().to_owned()));
        }
    }
}

/// A uniform index below `bound` (at most 256), by rejection of the biased top of the byte range.
fn uniform(bound: usize) -> Result<usize, NoRandomness> {
    let limit = 256 - (256 % bound);
    loop {
        let mut byte = [0u8; 1];
        getrandom::fill(&mut byte).map_err(|err| NoRandomness(err.to_string()))?;
        let [value] = byte;
        let value = usize::from(value);
        if value < limit {
            return Ok(value % bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::ExposeSecret;

    #[test]
    fn a_generated_password_has_the_length_and_every_class_and_no_separator() {
        for length in [12, 24, 64] {
            let password = generate(length).unwrap();
            let text = password.expose_secret();
            assert_eq!(text.len(), length as usize);
            for class in [LOWER, UPPER, DIGITS, SYMBOLS] {
                assert!(text.bytes().any(|c| class.contains(&c)), "{class:?}");
            }
            assert!(!text.contains(':') && !text.contains(' ') && !text.contains('\''));
        }
        assert_ne!(
            generate(24).unwrap().expose_secret(),
            generate(24).unwrap().expose_secret()
        );
    }
}
