//! Names of users, groups, assets and accounts, and asset labels.
//!
//! Names travel inside SSH user names (`alice@root@web-01`), file names and terminal menus, so
//! they are restricted to a small, unambiguous alphabet: no `@`, no whitespace, no control or
//! shell characters.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Input a person typed that Rampart does not accept; the message names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl InvalidInput {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

const NAME_MAX_LEN: usize = 64;

/// A validated name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Parses `value` as the name of a `what` ("user", "asset", ...), which the error names.
    pub fn parse(what: &str, value: &str) -> Result<Self, InvalidInput> {
        let first_ok = value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let all_ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if value.is_empty() || value.len() > NAME_MAX_LEN || !first_ok || !all_ok {
            return Err(InvalidInput::new(format!(
                "invalid {what} name {value:?}: use 1 to {NAME_MAX_LEN} characters from \
                 A-Z a-z 0-9 . _ -, starting with a letter or digit"
            )));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the address of an asset: a DNS name or an IP address (IPv6 without brackets).
pub fn parse_host(text: &str) -> Result<String, InvalidInput> {
    let is_ip = text.parse::<std::net::IpAddr>().is_ok();
    let is_dns_name = !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && !part.starts_with('-')
                && !part.ends_with('-')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if is_ip || is_dns_name {
        Ok(text.to_owned())
    } else {
        Err(InvalidInput::new(format!(
            "invalid host {text:?}: expected a DNS name or an IP address"
        )))
    }
}

/// An asset label, `KEY=VALUE` (for example `env=prod`); grants can select assets by label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let bad = |why: &str| InvalidInput::new(format!("invalid label {text:?}: {why}"));
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key_ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.len() <= NAME_MAX_LEN
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(bad(
                "the key must start with a letter and use A-Z a-z 0-9 . _ - / (at most 64)",
            ));
        }
        let value_ok = !value.is_empty()
            && value.len() <= 128
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':'));
        if !value_ok {
            return Err(bad(
                "the value must be 1 to 128 characters from A-Z a-z 0-9 . _ - / :",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_name(input: &str, ok: bool) {
        assert_eq!(Name::parse("user", input).is_ok(), ok, "name {input:?}");
    }

    #[test]
    fn names() {
        for good in ["alice", "web-01", "a", "db.prod_2", "0day"] {
            check_name(good, true);
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "-x",
            ".x",
            "root@web",
            "a b",
            "a/b",
            "é",
            "a\n",
            "a;rm",
            long.as_str(),
        ] {
            check_name(bad, false);
        }
    }

    #[test]
    fn hosts() {
        for good in [
            "10.0.0.5",
            "::1",
            "web-01.example.com",
            "localhost",
            "fe80::1",
        ] {
            assert!(parse_host(good).is_ok(), "{good:?}");
        }
        for bad in [
            "", "a b", "-web", "web_01", "host:22", "[::1]", "a..b", "x;reboot",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels() {
        let label = Label::parse("env=prod").unwrap();
        assert_eq!((label.key.as_str(), label.value.as_str()), ("env", "prod"));
        assert_eq!(label.to_string(), "env=prod");
        assert!(Label::parse("team/owner=ops:blue").is_ok());
        for bad in [
            "env", "=prod", "env=", "1env=x", "env=a b", "env=x;y", "e v=x",
        ] {
            assert!(Label::parse(bad).is_err(), "label {bad:?}");
        }
    }
}
