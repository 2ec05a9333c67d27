//! Generated passwords: a length and character classes (by default lower, upper, digits,
//! symbols; an asset's `PasswordPolicy` may choose fewer and exclude characters), each class
//! present at least once, every character drawn uniformly from the OS CSPRNG by rejection
//! sampling. The alphabets are `rampart_core::password_policy`'s.

use rampart_core::SecretString;
use rampart_core::password_policy::PasswordPolicy;
use zeroize::Zeroizing;

/// The OS gave no randomness.
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct NoRandomness(String);

/// A new password of `length` characters (at least 4) with every class present.
pub fn generate(length: u32) -> Result<SecretString, NoRandomness> {
    generate_with(length, &PasswordPolicy::default())
}

/// A new password under `policy`: its length when it sets one, else `length`; every class of
/// the policy present; no excluded character.
pub fn generate_with(length: u32, policy: &PasswordPolicy) -> Result<SecretString, NoRandomness> {
    let classes: Vec<Vec<u8>> = policy
        .classes
        .iter()
        .map(|class| policy.alphabet(*class))
        .filter(|alphabet| !alphabet.is_empty())
        .collect();
    let alphabet: Vec<u8> = classes.concat();
    if alphabet.is_empty() {
        return Err(NoRandomness(
            "the password policy leaves no character".into(),
        ));
    }
    let wanted = policy.length.unwrap_or(length);
    let length = usize::try_from(wanted.max(4))
        .unwrap_or(24)
        .max(classes.len());
    loop {
        let mut password = Zeroizing::new(String::with_capacity(length));
        while password.len() < length {
            let index = uniform(alphabet.len())?;
            if let Some(&c) = alphabet.get(index) {
                password.push(char::from(c));
            }
        }
        let has = |class: &Vec<u8>| password.bytes().any(|c| class.contains(&c));
        if classes.iter().all(has) {
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
    use rampart_core::password_policy::CharClass;

    #[test]
    fn a_policy_sets_the_length_the_classes_and_the_excluded_characters() {
        let policy = PasswordPolicy::parse(Some(10), "lower,digits", "abcdefgh234").unwrap();
        for _ in 0..50 {
            let password = generate_with(24, &policy).unwrap();
            let text = password.expose_secret();
            assert_eq!(text.len(), 10);
            assert!(text.bytes().any(|c| c.is_ascii_lowercase()), "{text}");
            assert!(text.bytes().any(|c| c.is_ascii_digit()), "{text}");
            assert!(
                text.bytes()
                    .all(|c| (c.is_ascii_lowercase() || c.is_ascii_digit())
                        && !b"abcdefgh234".contains(&c)),
                "{text}"
            );
        }
        // Without a length of its own, the account's length.
        let policy = PasswordPolicy::parse(None, "upper", "").unwrap();
        assert_eq!(
            generate_with(30, &policy).unwrap().expose_secret().len(),
            30
        );
    }

    #[test]
    fn a_generated_password_has_the_length_and_every_class_and_no_separator() {
        for length in [12, 24, 64] {
            let password = generate(length).unwrap();
            let text = password.expose_secret();
            assert_eq!(text.len(), length as usize);
            for class in CharClass::ALL {
                let class = class.alphabet();
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
