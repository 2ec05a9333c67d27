//! Generated-password policies (issue 17): which characters a rotation's new password is drawn
//! from and how long it is, per asset where the target needs it. Pure: the drawing itself (the
//! OS CSPRNG) is `rampart-rotate`'s.
//!
//! The four classes leave out what breaks transport or parsing on targets: `:` (the `chpasswd`
//! separator), quotes, backslash, whitespace and `$`, and characters easily misread (`l`, `I`,
//! `O`, `0`, `1`).

use crate::InvalidInput;
use serde::Serialize;

/// A class of characters a generated password holds at least one of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CharClass {
    Lower,
    Upper,
    Digits,
    Symbols,
}

impl CharClass {
    pub const ALL: [CharClass; 4] = [
        CharClass::Lower,
        CharClass::Upper,
        CharClass::Digits,
        CharClass::Symbols,
    ];

    pub fn alphabet(self) -> &'static [u8] {
        match self {
            CharClass::Lower => b"abcdefghijkmnopqrstuvwxyz",
            CharClass::Upper => b"ABCDEFGHJKLMNPQRSTUVWXYZ",
            CharClass::Digits => b"23456789",
            CharClass::Symbols => b"-_.,+=!@#%^*()[]{}~",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CharClass::Lower => "lower",
            CharClass::Upper => "upper",
            CharClass::Digits => "digits",
            CharClass::Symbols => "symbols",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        CharClass::ALL
            .into_iter()
            .find(|class| class.as_str() == text)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "invalid character class {text:?}: expected lower, upper, digits or symbols"
                ))
            })
    }
}

/// Generated passwords are at least this long under an asset's policy, and at most this long.
pub const MIN_POLICY_LENGTH: u32 = 8;
pub const MAX_POLICY_LENGTH: u32 = 128;
/// Excluded characters, at most.
const MAX_EXCLUDED: usize = 64;

/// How an asset's generated passwords look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordPolicy {
    /// The length (none: the account's own password length).
    pub length: Option<u32>,
    /// The classes drawn from, each present at least once.
    pub classes: Vec<CharClass>,
    /// Characters never used.
    pub excluded: String,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: None,
            classes: CharClass::ALL.to_vec(),
            excluded: String::new(),
        }
    }
}

impl PasswordPolicy {
    /// A policy from its parts: `classes` a comma list (empty: all four), `excluded` printable
    /// ASCII; each class must keep a character after the exclusions.
    pub fn parse(length: Option<u32>, classes: &str, excluded: &str) -> Result<Self, InvalidInput> {
        if let Some(length) = length
            && !(MIN_POLICY_LENGTH..=MAX_POLICY_LENGTH).contains(&length)
        {
            return Err(InvalidInput::new(format!(
                "invalid password length {length}: expected {MIN_POLICY_LENGTH} to \
                 {MAX_POLICY_LENGTH}"
            )));
        }
        let mut parsed = Vec::new();
        for text in classes.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let class = CharClass::parse(text)?;
            if !parsed.contains(&class) {
                parsed.push(class);
            }
        }
        if parsed.is_empty() {
            parsed = CharClass::ALL.to_vec();
        }
        if excluded.len() > MAX_EXCLUDED || !excluded.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(InvalidInput::new(format!(
                "invalid excluded characters: expected at most {MAX_EXCLUDED} printable ASCII \
                 characters"
            )));
        }
        let policy = Self {
            length,
            classes: parsed,
            excluded: excluded.to_owned(),
        };
        for class in &policy.classes {
            if policy.alphabet(*class).is_empty() {
                return Err(InvalidInput::new(format!(
                    "the excluded characters leave nothing of the class {}",
                    class.as_str()
                )));
            }
        }
        Ok(policy)
    }

    /// The characters of `class` this policy draws from.
    pub fn alphabet(&self, class: CharClass) -> Vec<u8> {
        class
            .alphabet()
            .iter()
            .copied()
            .filter(|c| !self.excluded.as_bytes().contains(c))
            .collect()
    }

    /// The classes as stored and shown: `lower,upper,digits`.
    pub fn classes_text(&self) -> String {
        self.classes
            .iter()
            .map(|class| class.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One line for an audit event or a listing (never a secret: a policy holds none).
    pub fn summary(&self) -> String {
        format!(
            "length: {}, classes: {}, excluded: {}",
            self.length
                .map_or_else(|| "the account's".to_owned(), |l| l.to_string()),
            self.classes_text(),
            if self.excluded.is_empty() {
                "none"
            } else {
                &self.excluded
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_parsed_and_bad_ones_are_refused_with_the_reason() {
        let policy = PasswordPolicy::parse(Some(16), "lower,digits,lower", "abc").unwrap();
        assert_eq!(policy.classes, [CharClass::Lower, CharClass::Digits]);
        assert!(!policy.alphabet(CharClass::Lower).contains(&b'a'));
        assert_eq!(
            policy.summary(),
            "length: 16, classes: lower,digits, excluded: abc"
        );
        assert_eq!(
            PasswordPolicy::parse(None, "", "").unwrap(),
            PasswordPolicy::default()
        );
        for (length, classes, excluded, why) in [
            (Some(7), "", "", "length"),
            (Some(129), "", "", "length"),
            (None, "lower,emoji", "", "character class"),
            (None, "digits", "23456789", "nothing of the class digits"),
            (None, "", "a b", "excluded"),
        ] {
            let err = PasswordPolicy::parse(length, classes, excluded).unwrap_err();
            assert!(err.0.contains(why), "{}", err.0);
        }
    }
}
