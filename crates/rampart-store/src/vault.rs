//! The vault: envelope encryption of account secrets under a master key.
//!
//! Each secret is sealed with XChaCha20-Poly1305 under the active master key, with a fresh random
//! 192-bit nonce. The associated data names the row the secret belongs to, so a ciphertext copied
//! into another row fails to open. A sealed secret (the envelope) is
//! `version (1) | key id (8) | nonce (24) | ciphertext and tag`: the key id says which master key
//! opens it, so keys can be rotated while old envelopes remain readable until re-sealed.
//!
//! INVARIANT: plaintext exists only in zeroizing buffers, and only between `open` and the caller
//! using it; this module never logs, formats or returns a secret inside an error.

use crate::StoreError;
use crate::data_dir::{DataDir, hex, io_error, write_new_secret_file};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use zeroize::Zeroizing;

const ENVELOPE_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const MASTER_KEY_LEN: usize = 32;

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `keys/vault-master.key` in the data directory, generated on first start (the default).
    DataDir,
    /// A file the operator provides (for example on a separate mount); it holds the key in base64.
    File(PathBuf),
    /// The key itself in base64, from the environment (`RAMPART_MASTER_KEY`).
    Inline(SecretString),
}

impl MasterKeySource {
    pub fn describe(&self) -> String {
        match self {
            MasterKeySource::DataDir => "data directory".to_owned(),
            MasterKeySource::File(path) => format!("file {}", path.display()),
            MasterKeySource::Inline(_) => "environment (RAMPART_MASTER_KEY)".to_owned(),
        }
    }
}

/// Names a master key; derived from the key by a one-way hash, so it reveals nothing of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of(key: &[u8; MASTER_KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"rampart vault key id v1\0")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(digest.get(..KEY_ID_LEN).unwrap_or(&[0; KEY_ID_LEN]));
        Self(id)
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != KEY_ID_LEN * 2 {
            return None;
        }
        let mut id = [0u8; KEY_ID_LEN];
        for (slot, pair) in id.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *slot = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// What went wrong opening or sealing a secret. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "a secret is sealed with vault key {0}, which this node does not have \
         (wrong master key supplied, or keys/vault-master.key lost?)"
    )]
    KeyUnavailable(KeyId),
    #[error("a secret does not decrypt: it was altered or moved from another record")]
    Tampered,
    #[error("a stored secret is malformed")]
    Malformed,
    #[error("master key: {0}")]
    MasterKey(String),
}

struct MasterKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

impl MasterKey {
    fn from_bytes(bytes: &[u8; MASTER_KEY_LEN]) -> Self {
        Self {
            id: KeyId::of(bytes),
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// Parses the base64 form kept in key files and the environment.
    fn from_base64(what: &str, text: &str) -> Result<Self, VaultError> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| VaultError::MasterKey(format!("{what} is not base64")))?,
        );
        let key: Zeroizing<[u8; MASTER_KEY_LEN]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                VaultError::MasterKey(format!(
                    "{what} must hold {MASTER_KEY_LEN} bytes in base64 (got {})",
                    bytes.len()
                ))
            })?);
        Ok(Self::from_bytes(&key))
    }

    fn read_file(path: &Path) -> Result<Self, StoreError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|err| io_error(path, "cannot read", &err))?,
        );
        Ok(Self::from_base64(&path.display().to_string(), &text)?)
    }
}

/// Generates a new random master key in base64, the form key files hold.
pub fn generate_master_key_base64() -> Result<Zeroizing<String>, VaultError> {
    let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    getrandom::fill(key.as_mut())
        .map_err(|err| VaultError::MasterKey(format!("no randomness from the OS: {err}")))?;
    Ok(Zeroizing::new(format!("{}\n", BASE64.encode(key.as_ref()))))
}

/// Writes a new random master key to `path` (mode 0600), for operators who supply the key from
/// outside the data directory. Refuses to overwrite an existing file.
pub fn write_new_master_key_file(path: &Path) -> Result<(), StoreError> {
    let key = generate_master_key_base64()?;
    write_new_secret_file(path, key.as_bytes())
}

/// The master keys this process holds. One of them is the primary key of the configured source;
/// others are there while a rotation is in progress.
pub struct Vault {
    source: MasterKeySource,
    data_dir: DataDir,
    keys: RwLock<Vec<MasterKey>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.source.describe())
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Vault {
    /// Loads the master key(s), generating the data directory's key on first start.
    /// Returns the vault and whether a key was generated.
    pub(crate) fn load(
        source: MasterKeySource,
        data_dir: DataDir,
    ) -> Result<(Self, bool), StoreError> {
        let mut generated = false;
        if matches!(source, MasterKeySource::DataDir) && !data_dir.master_key_path().exists() {
            let key = generate_master_key_base64()?;
            write_new_secret_file(&data_dir.master_key_path(), key.as_bytes())?;
            generated = true;
        }
        let vault = Self {
            keys: RwLock::new(read_keys(&source, &data_dir)?),
            source,
            data_dir,
        };
        Ok((vault, generated))
    }

    pub fn source(&self) -> &MasterKeySource {
        &self.source
    }

    /// The id of the configured source's own key (not of a pending rotation's).
    pub fn primary_key_id(&self) -> Option<KeyId> {
        self.keys.read().ok()?.first().map(|key| key.id)
    }

    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys
            .read()
            .map(|keys| keys.iter().map(|key| key.id).collect())
            .unwrap_or_default()
    }

    pub fn has_key(&self, id: KeyId) -> bool {
        self.key_ids().contains(&id)
    }

    /// Re-reads the keys from their source: another process may have rotated them.
    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        let fresh = read_keys(&self.source, &self.data_dir)?;
        if let Ok(mut keys) = self.keys.write() {
            *keys = fresh;
        }
        Ok(())
    }

    pub(crate) fn add_key(&self, key_base64: &str) -> Result<KeyId, VaultError> {
        let key = MasterKey::from_base64("new master key", key_base64)?;
        let id = key.id;
        let mut keys = self
            .keys
            .write()
            .map_err(|_| VaultError::MasterKey("key list poisoned".into()))?;
        if !keys.iter().any(|k| k.id == id) {
            keys.push(key);
        }
        Ok(id)
    }

    /// Runs `use_key` with master key `id`, re-reading the keys first if this process does not
    /// hold it (another process may have rotated them since).
    fn with_key<T>(
        &self,
        id: KeyId,
        use_key: impl FnOnce(&MasterKey) -> Result<T, VaultError>,
    ) -> Result<T, StoreError> {
        if !self.has_key(id) {
            self.reload()?;
        }
        let keys = self
            .keys
            .read()
            .map_err(|_| VaultError::MasterKey("key list poisoned".into()))?;
        let key = keys
            .iter()
            .find(|key| key.id == id)
            .ok_or(VaultError::KeyUnavailable(id))?;
        Ok(use_key(key)?)
    }

    /// Seals `plaintext` under key `key_id`, bound to `aad` (which names the owning record).
    pub(crate) fn seal(
        &self,
        key_id: KeyId,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|err| VaultError::MasterKey(format!("no randomness from the OS: {err}")))?;
        let ciphertext = self.with_key(key_id, |key| {
            key.cipher
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: plaintext,
                        aad,
                    },
                )
                .map_err(|_| VaultError::Malformed)
        })?;
        let mut envelope = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        envelope.push(ENVELOPE_VERSION);
        envelope.extend_from_slice(&key_id.0);
        envelope.extend_from_slice(&nonce);
        envelope.extend_from_slice(&ciphertext);
        Ok(envelope)
    }

    /// Opens an envelope sealed for the record that `aad` names.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let parts = Envelope::parse(envelope)?;
        let plaintext = self.with_key(parts.key_id, |key| {
            let payload = Payload {
                msg: parts.ciphertext,
                aad,
            };
            key.cipher
                .decrypt(&XNonce::from(parts.nonce), payload)
                .map_err(|_| VaultError::Tampered)
        })?;
        Ok(Zeroizing::new(plaintext))
    }
}

/// The readable parts of a sealed secret.
struct Envelope<'a> {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, VaultError> {
        let (version, rest) = bytes.split_first().ok_or(VaultError::Malformed)?;
        if *version != ENVELOPE_VERSION {
            return Err(VaultError::Malformed);
        }
        let (key_id, rest) = rest
            .split_at_checked(KEY_ID_LEN)
            .ok_or(VaultError::Malformed)?;
        let (nonce, ciphertext) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(VaultError::Malformed)?;
        Ok(Self {
            key_id: KeyId(key_id.try_into().map_err(|_| VaultError::Malformed)?),
            nonce: nonce.try_into().map_err(|_| VaultError::Malformed)?,
            ciphertext,
        })
    }
}

/// Which master key sealed an envelope.
pub fn envelope_key_id(envelope: &[u8]) -> Result<KeyId, VaultError> {
    Envelope::parse(envelope).map(|parts| parts.key_id)
}

/// The path of the key a rotation of the data directory's key is moving to.
pub(crate) fn pending_key_path(data_dir: &DataDir) -> PathBuf {
    data_dir.keys_dir().join("vault-master.key.next")
}

fn read_keys(source: &MasterKeySource, data_dir: &DataDir) -> Result<Vec<MasterKey>, StoreError> {
    let mut keys = vec![match source {
        MasterKeySource::DataDir => MasterKey::read_file(&data_dir.master_key_path())?,
        MasterKeySource::File(path) => MasterKey::read_file(path)?,
        MasterKeySource::Inline(text) => {
            MasterKey::from_base64("RAMPART_MASTER_KEY", text.expose_secret())?
        }
    }];
    // A rotation that was interrupted after re-sealing: its new key must stay usable.
    let pending = pending_key_path(data_dir);
    if matches!(source, MasterKeySource::DataDir) && pending.exists() {
        keys.push(MasterKey::read_file(&pending)?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> (tempfile::TempDir, Vault) {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = DataDir::prepare(&tmp.path().join("data"), true, false).unwrap();
        let (vault, generated) = Vault::load(MasterKeySource::DataDir, dir).unwrap();
        assert!(generated);
        (tmp, vault)
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let (_tmp, vault) = vault();
        let id = vault.primary_key_id().unwrap();
        let envelope = vault.seal(id, b"row-1", b"hunter2").unwrap();
        assert_eq!(envelope_key_id(&envelope).unwrap(), id);
        assert_eq!(
            vault.open(b"row-1", &envelope).unwrap().as_slice(),
            b"hunter2"
        );
        // The same envelope under another row's associated data does not open.
        assert!(matches!(
            vault.open(b"row-2", &envelope),
            Err(StoreError::Vault(VaultError::Tampered))
        ));
        // Every flipped bit is detected.
        for index in 0..envelope.len() {
            let mut bad = envelope.clone();
            if let Some(byte) = bad.get_mut(index) {
                *byte ^= 0x01;
            }
            assert!(vault.open(b"row-1", &bad).is_err(), "flip at {index}");
        }
        for short in 0..(1 + KEY_ID_LEN + NONCE_LEN) {
            assert!(
                vault
                    .open(b"row-1", envelope.get(..short).unwrap())
                    .is_err()
            );
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let (_tmp, vault) = vault();
        let id = vault.primary_key_id().unwrap();
        let a = vault.seal(id, b"r", b"same").unwrap();
        let b = vault.seal(id, b"r", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn master_key_parsing() {
        assert!(MasterKey::from_base64("k", "not base64!").is_err());
        assert!(MasterKey::from_base64("k", &BASE64.encode([0u8; 16])).is_err());
        let key = generate_master_key_base64().unwrap();
        let a = MasterKey::from_base64("k", &key).unwrap();
        let b = MasterKey::from_base64("k", &key).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(KeyId::parse(&a.id.to_string()), Some(a.id));
        assert_eq!(KeyId::parse("xyz"), None);
    }
}
