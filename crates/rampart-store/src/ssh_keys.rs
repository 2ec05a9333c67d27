//! Parsing the SSH keys people hand to the CLI: users' public keys and accounts' private keys.

use rampart_core::InvalidInput;
use ssh_key::{HashAlg, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// A user's public key, parsed and fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPublicKey {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub algorithm: String,
    /// `algorithm base64`, without the comment.
    pub public_key: String,
    pub comment: String,
}

/// Parses every key in the text of a `.pub` or `authorized_keys`-style file (one key a line;
/// blank lines and `#` comments are skipped). `source` names the file in errors.
pub fn parse_public_keys(source: &str, text: &str) -> Result<Vec<ParsedPublicKey>, InvalidInput> {
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        keys.push(
            parse_public_key(line)
                .map_err(|why| InvalidInput::new(format!("{source} line {}: {why}", number + 1)))?,
        );
    }
    if keys.is_empty() {
        return Err(InvalidInput::new(format!(
            "{source} holds no SSH public key"
        )));
    }
    Ok(keys)
}

fn parse_public_key(line: &str) -> Result<ParsedPublicKey, String> {
    if line.starts_with("-----BEGIN") {
        return Err("this is a private key; give the public key (the .pub file)".into());
    }
    let mut key = PublicKey::from_openssh(line).map_err(|_| {
        "not an SSH public key (expected e.g. \"ssh-ed25519 AAAA... comment\")".to_owned()
    })?;
    let comment = key.comment().to_string();
    key.set_comment("");
    let public_key = key
        .to_openssh()
        .map_err(|_| "cannot encode the key".to_owned())?
        .trim_end()
        .to_owned();
    Ok(ParsedPublicKey {
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        algorithm: key.algorithm().to_string(),
        public_key,
        comment,
    })
}

/// The one host key in `text`: a `.pub` line, or an `ssh-keyscan` line (host name first).
/// `source` names the text in errors (a file name, "the request").
pub fn single_host_key(source: &str, text: &str) -> Result<String, InvalidInput> {
    let mut keys = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let candidates = [
            Some(line),
            line.split_once(char::is_whitespace)
                .map(|(_, rest)| rest.trim()),
        ];
        if let Some(key) = candidates
            .into_iter()
            .flatten()
            .find(|c| parse_public_keys("host key", c).is_ok())
        {
            keys.push(key.to_owned());
        }
    }
    match keys.as_slice() {
        [key] => Ok(key.clone()),
        [] => Err(InvalidInput::new(format!(
            "{source} holds no SSH public key"
        ))),
        _ => Err(InvalidInput::new(format!(
            "{source} holds {} keys: keep only the one to pin (for example ssh-keyscan -t ed25519 HOST)",
            keys.len()
        ))),
    }
}

/// Checks that `pem` is an unencrypted OpenSSH private key Rampart can use to log in to a target.
pub fn validate_private_key(source: &str, pem: &Zeroizing<String>) -> Result<(), InvalidInput> {
    let key = PrivateKey::from_openssh(pem.as_bytes()).map_err(|_| {
        InvalidInput::new(format!(
            "{source} is not an OpenSSH private key (expected -----BEGIN OPENSSH PRIVATE KEY-----)"
        ))
    })?;
    if key.is_encrypted() {
        return Err(InvalidInput::new(format!(
            "{source} is protected by a passphrase; the vault already encrypts keys, so store it \
             without one (ssh-keygen -p -N '' -f COPY)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

    #[test]
    fn parses_and_fingerprints() {
        let keys = parse_public_keys("alice.pub", &format!("# a comment\n\n{ED25519}\n")).unwrap();
        let [key] = keys.as_slice() else {
            panic!("one key expected")
        };
        assert_eq!(key.algorithm, "ssh-ed25519");
        assert_eq!(key.comment, "alice@laptop");
        assert!(key.fingerprint.starts_with("SHA256:"));
        assert!(!key.public_key.contains("alice@laptop"));
    }

    #[test]
    fn rejects_what_is_not_a_public_key() {
        for bad in [
            "",
            "# only a comment",
            "hello",
            "ssh-ed25519 AAAA",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ] {
            let err = parse_public_keys("k.pub", bad).unwrap_err();
            assert!(err.0.contains("k.pub"), "{err}");
        }
    }
}
