//! A custodian's private keys, to decrypt their share: OpenSSH private keys (ed25519 or rsa;
//! a passphrase-protected one asks for its passphrase on the terminal) or age identity files.

use crate::{KitError, MAX_SMALL_FILE_BYTES, read_bounded};
use std::io::Read;
use zeroize::Zeroizing;

/// Keys that may decrypt a share.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Asks for an SSH key's passphrase on the terminal (never from an argument or the
/// environment).
#[derive(Debug, Clone, Copy)]
struct TerminalPrompt;

impl age::Callbacks for TerminalPrompt {
    fn display_message(&self, message: &str) {
        eprintln!("{message}");
    }

    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        None
    }

    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }

    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        rpassword::prompt_password(format!("{description}: "))
            .ok()
            .map(age::secrecy::SecretString::from)
    }
}

impl Identities {
    /// One age identity (tests, and callers that hold one already).
    pub fn from_age(identity: age::x25519::Identity) -> Self {
        Self {
            keys: vec![Box::new(identity)],
        }
    }

    /// Decrypts an age ciphertext with whichever key fits; `None` when none does.
    pub(crate) fn decrypt(
        &self,
        ciphertext: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KitError> {
        let decryptor =
            age::Decryptor::new_buffered(ciphertext).map_err(|err| KitError::Malformed {
                what: "a share".into(),
                kind: "share",
                why: err.to_string(),
            })?;
        let reader = match decryptor.decrypt(self.keys.iter().map(|key| key.as_ref() as _)) {
            Ok(reader) => reader,
            Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
            Err(age::DecryptError::KeyDecryptionFailed) => {
                return Err(KitError::Invalid(
                    "the key's passphrase was not given or is wrong".into(),
                ));
            }
            Err(err) => {
                return Err(KitError::Malformed {
                    what: "a share".into(),
                    kind: "share",
                    why: err.to_string(),
                });
            }
        };
        let mut plain = Zeroizing::new(Vec::new());
        reader
            .take(MAX_SMALL_FILE_BYTES)
            .read_to_end(&mut plain)
            .map_err(|err| KitError::Malformed {
                what: "a share".into(),
                kind: "share",
                why: err.to_string(),
            })?;
        Ok(Some(plain))
    }
}

/// Reads the private keys in `paths`: each an OpenSSH private key or an age identity file.
pub fn load_identities(paths: &[std::path::PathBuf]) -> Result<Identities, KitError> {
    let mut keys: Vec<Box<dyn age::Identity>> = Vec::new();
    for path in paths {
        let bytes = read_bounded(path, MAX_SMALL_FILE_BYTES)?;
        let name = path.display().to_string();
        let invalid = |why: String| KitError::Invalid(format!("{name}: {why}"));
        if bytes.windows(10).any(|w| w == b"-----BEGIN") {
            let identity = age::ssh::Identity::from_buffer(&bytes[..], Some(name.clone()))
                .map_err(|err| invalid(format!("not an SSH private key: {err}")))?;
            if let age::ssh::Identity::Unsupported(_) = identity {
                return Err(invalid(
                    "unsupported SSH private key: use an ed25519 or rsa key".into(),
                ));
            }
            keys.push(Box::new(identity.with_callbacks(TerminalPrompt)));
        } else {
            let file = age::IdentityFile::from_buffer(&bytes[..])
                .map_err(|err| invalid(format!("not an age identity file: {err}")))?
                .with_callbacks(TerminalPrompt);
            let identities = file
                .into_identities()
                .map_err(|err| invalid(format!("not an age identity file: {err}")))?;
            if identities.is_empty() {
                return Err(invalid("holds no key".into()));
            }
            keys.extend(identities);
        }
    }
    if keys.is_empty() {
        return Err(KitError::Invalid("no key given (--identity FILE)".into()));
    }
    Ok(Identities { keys })
}
