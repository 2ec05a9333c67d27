//! The offline break-glass kit (issue 17): the current secrets of some accounts, sealed so that
//! any THRESHOLD of the named custodians together can open them, with nothing else: no running
//! Rampart, no data directory, only this binary, the kit file and the custodians' keys.
//!
//! A kit is one JSON file. A random 32-byte data key encrypts the secrets (XChaCha20-Poly1305,
//! the vault's AEAD; the associated data is the kit's header, so editing the threshold, the
//! accounts or the kit id makes it unopenable). The data key is split with Shamir's secret
//! sharing (`blahaj`, over GF(256)) into one share per custodian, and each share is encrypted to
//! that custodian's SSH (ed25519/rsa) or age public key with `age`. No cryptography is written
//! here: this module only lays those parts out and checks what comes back.
//!
//! Opening: each custodian decrypts their own share with their key (`extract_share`: on their
//! own machine, separately), and any THRESHOLD shares open the kit (`open`). A share names its
//! kit and its custodian, so shares of another kit, or twice the same custodian, are refused
//! before any arithmetic.
//!
//! INVARIANT: the kit file holds no secret in clear: secrets only inside the AEAD ciphertext,
//! shares only inside age ciphertexts. Secrets in memory are `Zeroizing`.

mod identity;

pub use identity::{Identities, load_identities};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::str::FromStr;
use zeroize::Zeroizing;

/// What `format` says in a kit file.
pub const KIT_FORMAT: &str = "rampart-breakglass-kit";
/// What `format` says in a share file.
pub const SHARE_FORMAT: &str = "rampart-breakglass-share";
const VERSION: u32 = 1;
/// A kit file is never larger than this (read bounded).
pub const MAX_KIT_BYTES: u64 = 8 * 1024 * 1024;
/// A share or key file is never larger than this.
pub const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;
/// At most this many custodians (Shamir over GF(256) allows 255; a kit needs far fewer).
pub const MAX_CUSTODIANS: usize = 64;
const DATA_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Why a kit could not be sealed, read or opened. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what} is not a break-glass {kind}: {why}")]
    Malformed {
        what: String,
        kind: &'static str,
        why: String,
    },
    #[error("cannot read {path}: {why}")]
    Read { path: String, why: String },
    #[error("none of the given keys opens a share of this kit")]
    NoShareForIdentity,
    #[error("the share of {custodian} belongs to another kit ({share_kit}, not {kit})")]
    WrongKit {
        custodian: String,
        share_kit: String,
        kit: String,
    },
    #[error("{have} share(s) given; this kit needs {need} custodians' shares to open")]
    NotEnoughShares { have: usize, need: usize },
    #[error("the shares do not open this kit (a share or the kit was altered)")]
    WontOpen,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

type Result<T> = std::result::Result<T, KitError>;

/// A custodian: a name and the public key their share is encrypted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Custodian {
    pub name: String,
    /// An OpenSSH public key line (`ssh-ed25519 ...`, `ssh-rsa ...`) or an age recipient
    /// (`age1...`).
    pub recipient: String,
}

impl Custodian {
    /// A custodian from a public key file: the name is the file's stem (`alice.pub` -> alice).
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = read_bounded(path, MAX_SMALL_FILE_BYTES)?;
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let recipient = String::from_utf8_lossy(&text)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .unwrap_or_default()
            .to_owned();
        Self::new(&name, &recipient).map_err(|err| match err {
            KitError::Invalid(why) => KitError::Invalid(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    /// A custodian from a name and a public key, both checked.
    pub fn new(name: &str, recipient: &str) -> Result<Self> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_name {
            return Err(KitError::Invalid(format!(
                "invalid custodian name {name:?}: letters, digits, '.', '_' and '-' only"
            )));
        }
        let custodian = Self {
            name: name.to_owned(),
            recipient: recipient.trim().to_owned(),
        };
        custodian.encryptor()?;
        Ok(custodian)
    }

    fn encryptor(&self) -> Result<Box<dyn age::Recipient + Send>> {
        let text = self.recipient.as_str();
        if text.starts_with("age1") {
            let recipient = age::x25519::Recipient::from_str(text).map_err(|why| {
                KitError::Invalid(format!(
                    "custodian {}: not an age recipient: {why}",
                    self.name
                ))
            })?;
            return Ok(Box::new(recipient));
        }
        match age::ssh::Recipient::from_str(text) {
            Ok(recipient) => Ok(Box::new(recipient)),
            Err(age::ssh::ParseRecipientKeyError::Unsupported(kind)) => {
                Err(KitError::Invalid(format!(
                    "custodian {}: unsupported key type {kind}: use an ed25519 or rsa SSH key, \
                     or an age key",
                    self.name
                )))
            }
            Err(_) => Err(KitError::Invalid(format!(
                "custodian {}: expected an OpenSSH public key line (ssh-ed25519 or ssh-rsa) or \
                 an age recipient (age1...)",
                self.name
            ))),
        }
    }

    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let recipient = self.encryptor()?;
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient.as_ref() as _))
            .map_err(|err| KitError::Encrypt(err.to_string()))?;
        let mut out = Vec::with_capacity(plaintext.len() + 512);
        let mut writer = encryptor
            .wrap_output(&mut out)
            .map_err(|err| KitError::Encrypt(err.to_string()))?;
        std::io::Write::write_all(&mut writer, plaintext)
            .map_err(|err| KitError::Encrypt(err.to_string()))?;
        writer
            .finish()
            .map_err(|err| KitError::Encrypt(err.to_string()))?;
        Ok(out)
    }
}

/// Where an account lives, as the kit shows it in clear (no secret): enough to reach it with
/// stock tools when Rampart is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitAccount {
    /// `login@asset`.
    pub account: String,
    pub login: String,
    pub host: String,
    /// `protocol:port` of each endpoint (`ssh:22`, `postgres:5432`).
    pub endpoints: Vec<String>,
    /// The pinned SSH host key of the target, when there is one (to check it by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
}

/// One account's secret, as sealed into and opened from a kit.
#[derive(Clone, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct KitSecret {
    #[zeroize(skip)]
    pub account: String,
    /// `password` or `private_key`.
    #[zeroize(skip)]
    pub kind: String,
    pub secret: String,
}

impl std::fmt::Debug for KitSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KitSecret")
            .field("account", &self.account)
            .field("kind", &self.kind)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The kit's header: bound to its secrets as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitHeader {
    pub format: String,
    pub version: u32,
    /// A random id, new at each sealing.
    pub kit: String,
    /// RFC 3339 UTC.
    pub sealed_at: String,
    pub threshold: u8,
    pub accounts: Vec<KitAccount>,
    /// The custodians' names, in share order.
    pub custodians: Vec<String>,
}

/// A custodian's encrypted share, in the kit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedShare {
    pub custodian: String,
    pub recipient: String,
    /// base64 of the age ciphertext of the share file.
    pub share: String,
}

/// A kit file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kit {
    #[serde(flatten)]
    pub header: KitHeader,
    pub shares: Vec<SealedShare>,
    /// base64 of nonce || XChaCha20-Poly1305 ciphertext of the secrets.
    pub secrets: String,
}

/// A custodian's decrypted share: what `breakglass share` prints and `breakglass open` reads.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct Share {
    #[zeroize(skip)]
    pub format: String,
    #[zeroize(skip)]
    pub kit: String,
    #[zeroize(skip)]
    pub custodian: String,
    #[zeroize(skip)]
    pub threshold: u8,
    /// base64 of the Shamir share (x coordinate, then one byte per byte of the data key).
    share: String,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("kit", &self.kit)
            .field("custodian", &self.custodian)
            .finish_non_exhaustive()
    }
}

impl Share {
    /// The share as a file's text (one JSON line).
    pub fn to_text(&self) -> Result<Zeroizing<String>> {
        serde_json::to_string(self)
            .map(|text| Zeroizing::new(text + "\n"))
            .map_err(|err| KitError::Encrypt(err.to_string()))
    }

    /// A share file's text.
    pub fn parse(what: &str, text: &[u8]) -> Result<Self> {
        let share: Share = serde_json::from_slice(text).map_err(|err| KitError::Malformed {
            what: what.to_owned(),
            kind: "share",
            why: err.to_string(),
        })?;
        if share.format != SHARE_FORMAT {
            return Err(KitError::Malformed {
                what: what.to_owned(),
                kind: "share",
                why: format!("format {:?}", share.format),
            });
        }
        Ok(share)
    }
}

/// Reads at most `limit` bytes of `path`; larger files are refused.
pub fn read_bounded(path: &std::path::Path, limit: u64) -> Result<Zeroizing<Vec<u8>>> {
    let error = |why: String| KitError::Read {
        path: path.display().to_string(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|err| error(err.to_string()))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| error(err.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(error(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut bytes).map_err(|err| KitError::Random(err.to_string()))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn aad(header: &KitHeader) -> Result<Vec<u8>> {
    serde_json::to_vec(header).map_err(|err| KitError::Encrypt(err.to_string()))
}

/// What to seal: the accounts (in clear: where they are) and their secrets.
#[derive(Debug)]
pub struct SealRequest<'a> {
    pub accounts: Vec<KitAccount>,
    pub secrets: Vec<KitSecret>,
    pub custodians: &'a [Custodian],
    pub threshold: u8,
    /// RFC 3339 UTC (the caller has the clock).
    pub sealed_at: String,
}

impl Kit {
    /// Seals a new kit.
    pub fn seal(request: SealRequest<'_>) -> Result<Kit> {
        let n = request.custodians.len();
        let threshold = usize::from(request.threshold);
        if n == 0 || n > MAX_CUSTODIANS {
            return Err(KitError::Invalid(format!(
                "a kit needs 1 to {MAX_CUSTODIANS} custodians"
            )));
        }
        if threshold == 0 || threshold > n {
            return Err(KitError::Invalid(format!(
                "the threshold must be 1 to {n} (the number of custodians)"
            )));
        }
        let mut names: Vec<&str> = request.custodians.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != n {
            return Err(KitError::Invalid(
                "two custodians have the same name".into(),
            ));
        }
        if request.secrets.is_empty() {
            return Err(KitError::Invalid("a kit needs at least one account".into()));
        }
        let header = KitHeader {
            format: KIT_FORMAT.into(),
            version: VERSION,
            kit: hex(&random(16)?),
            sealed_at: request.sealed_at,
            threshold: request.threshold,
            accounts: request.accounts,
            custodians: request.custodians.iter().map(|c| c.name.clone()).collect(),
        };
        let data_key = random(DATA_KEY_LEN)?;
        let nonce = random(NONCE_LEN)?;
        let payload = Zeroizing::new(
            serde_json::to_vec(&request.secrets)
                .map_err(|err| KitError::Encrypt(err.to_string()))?,
        );
        let cipher = XChaCha20Poly1305::new_from_slice(&data_key)
            .map_err(|err| KitError::Encrypt(err.to_string()))?;
        let nonce_array: [u8; NONCE_LEN] = nonce
            .as_slice()
            .try_into()
            .map_err(|_| KitError::Encrypt("nonce length".into()))?;
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce_array),
                Payload {
                    msg: &payload,
                    aad: &aad(&header)?,
                },
            )
            .map_err(|_| KitError::Encrypt("the secrets could not be sealed".into()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);

        let dealer = blahaj::Sharks(request.threshold).dealer(&data_key);
        let mut shares = Vec::with_capacity(n);
        for (custodian, point) in request.custodians.iter().zip(dealer) {
            let point = Zeroizing::new(Vec::<u8>::from(&point));
            let share = Share {
                format: SHARE_FORMAT.into(),
                kit: header.kit.clone(),
                custodian: custodian.name.clone(),
                threshold: request.threshold,
                share: BASE64.encode(point.as_slice()),
            };
            let text = share.to_text()?;
            shares.push(SealedShare {
                custodian: custodian.name.clone(),
                recipient: custodian.recipient.clone(),
                share: BASE64.encode(custodian.encrypt(text.as_bytes())?),
            });
        }
        Ok(Kit {
            header,
            shares,
            secrets: BASE64.encode(sealed),
        })
    }

    /// The kit as its file's text.
    pub fn to_text(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map(|text| text + "\n")
            .map_err(|err| KitError::Encrypt(err.to_string()))
    }

    /// A kit file's text.
    pub fn parse(what: &str, text: &[u8]) -> Result<Kit> {
        let malformed = |why: String| KitError::Malformed {
            what: what.to_owned(),
            kind: "kit",
            why,
        };
        let kit: Kit = serde_json::from_slice(text).map_err(|err| malformed(err.to_string()))?;
        if kit.header.format != KIT_FORMAT {
            return Err(malformed(format!("format {:?}", kit.header.format)));
        }
        if kit.header.version != VERSION {
            return Err(malformed(format!(
                "version {} (this rampart reads version {VERSION})",
                kit.header.version
            )));
        }
        if kit.shares.len() != kit.header.custodians.len()
            || kit
                .shares
                .iter()
                .zip(&kit.header.custodians)
                .any(|(share, name)| &share.custodian != name)
        {
            return Err(malformed("the shares do not match the custodians".into()));
        }
        Ok(kit)
    }

    /// Reads a kit file (bounded).
    pub fn read(path: &std::path::Path) -> Result<Kit> {
        let bytes = read_bounded(path, MAX_KIT_BYTES)?;
        Kit::parse(&path.display().to_string(), &bytes)
    }

    /// The share of the custodian whose key is among `identities`: the one that decrypts.
    pub fn extract_share(&self, identities: &Identities) -> Result<Share> {
        for sealed in &self.shares {
            let Ok(ciphertext) = BASE64.decode(&sealed.share) else {
                continue;
            };
            let Some(plain) = identities.decrypt(&ciphertext)? else {
                continue;
            };
            let share = Share::parse(&format!("the share of {}", sealed.custodian), &plain)?;
            if share.kit != self.header.kit || share.custodian != sealed.custodian {
                return Err(KitError::WrongKit {
                    custodian: sealed.custodian.clone(),
                    share_kit: share.kit.clone(),
                    kit: self.header.kit.clone(),
                });
            }
            return Ok(share);
        }
        Err(KitError::NoShareForIdentity)
    }

    /// Opens the kit with custodians' shares: at least the threshold, of distinct custodians
    /// of this kit.
    pub fn open(&self, shares: &[Share]) -> Result<Vec<KitSecret>> {
        let mut points = Vec::with_capacity(shares.len());
        let mut seen: Vec<&str> = Vec::new();
        for share in shares {
            if share.kit != self.header.kit {
                return Err(KitError::WrongKit {
                    custodian: share.custodian.clone(),
                    share_kit: share.kit.clone(),
                    kit: self.header.kit.clone(),
                });
            }
            if !self.header.custodians.contains(&share.custodian) {
                return Err(KitError::Invalid(format!(
                    "{} is not a custodian of this kit",
                    share.custodian
                )));
            }
            if seen.contains(&share.custodian.as_str()) {
                return Err(KitError::Invalid(format!(
                    "two shares of custodian {}: each custodian's share counts once",
                    share.custodian
                )));
            }
            seen.push(&share.custodian);
            let bytes =
                Zeroizing::new(
                    BASE64
                        .decode(&share.share)
                        .map_err(|_| KitError::Malformed {
                            what: format!("the share of {}", share.custodian),
                            kind: "share",
                            why: "not base64".into(),
                        })?,
                );
            let point =
                blahaj::Share::try_from(bytes.as_slice()).map_err(|why| KitError::Malformed {
                    what: format!("the share of {}", share.custodian),
                    kind: "share",
                    why: why.to_owned(),
                })?;
            points.push(point);
        }
        let need = usize::from(self.header.threshold);
        if points.len() < need {
            return Err(KitError::NotEnoughShares {
                have: points.len(),
                need,
            });
        }
        let data_key = Zeroizing::new(
            blahaj::Sharks(self.header.threshold)
                .recover(points.iter())
                .map_err(|_| KitError::WontOpen)?,
        );
        if data_key.len() != DATA_KEY_LEN {
            return Err(KitError::WontOpen);
        }
        let sealed = BASE64
            .decode(&self.secrets)
            .map_err(|_| KitError::WontOpen)?;
        let (nonce, ciphertext) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(KitError::WontOpen)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KitError::WontOpen)?;
        let cipher =
            XChaCha20Poly1305::new_from_slice(&data_key).map_err(|_| KitError::WontOpen)?;
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad(&self.header)?,
                    },
                )
                .map_err(|_| KitError::WontOpen)?,
        );
        serde_json::from_slice(&plain).map_err(|_| KitError::WontOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "kit-canary-5e1f0a";

    fn age_pair() -> (age::x25519::Identity, Custodian, String) {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        (
            identity,
            Custodian::new("c", &recipient).unwrap(),
            recipient,
        )
    }

    fn sealed(n: usize, threshold: u8) -> (Kit, Vec<age::x25519::Identity>) {
        let mut identities = Vec::new();
        let mut custodians = Vec::new();
        for i in 0..n {
            let (identity, _, recipient) = age_pair();
            identities.push(identity);
            custodians.push(Custodian::new(&format!("c{i}"), &recipient).unwrap());
        }
        let kit = Kit::seal(SealRequest {
            accounts: vec![KitAccount {
                account: "root@web-01".into(),
                login: "root".into(),
                host: "10.0.0.1".into(),
                endpoints: vec!["ssh:22".into()],
                host_key: None,
            }],
            secrets: vec![KitSecret {
                account: "root@web-01".into(),
                kind: "password".into(),
                secret: CANARY.into(),
            }],
            custodians: &custodians,
            threshold,
            sealed_at: "2026-11-30T00:00:00Z".into(),
        })
        .unwrap();
        (kit, identities)
    }

    fn share_of(kit: &Kit, identity: &age::x25519::Identity) -> Share {
        kit.extract_share(&Identities::from_age(identity.clone()))
            .unwrap()
    }

    #[test]
    fn any_two_of_three_shares_open_the_kit_and_one_does_not() {
        let (kit, ids) = sealed(3, 2);
        let text = kit.to_text().unwrap();
        assert!(!text.contains(CANARY));
        let kit = Kit::parse("kit", text.as_bytes()).unwrap();
        let shares: Vec<Share> = ids.iter().map(|id| share_of(&kit, id)).collect();
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let two = [
                Share::parse("a", shares[a].to_text().unwrap().as_bytes()).unwrap(),
                Share::parse("b", shares[b].to_text().unwrap().as_bytes()).unwrap(),
            ];
            let secrets = kit.open(&two).unwrap();
            assert_eq!(secrets[0].secret, CANARY);
        }
        let one = [Share::parse("a", shares[0].to_text().unwrap().as_bytes()).unwrap()];
        assert!(matches!(
            kit.open(&one),
            Err(KitError::NotEnoughShares { have: 1, need: 2 })
        ));
        // The same custodian twice is one share.
        let twice = [
            Share::parse("a", shares[0].to_text().unwrap().as_bytes()).unwrap(),
            Share::parse("a", shares[0].to_text().unwrap().as_bytes()).unwrap(),
        ];
        assert!(kit.open(&twice).is_err());
    }

    #[test]
    fn a_kit_edited_to_a_lower_threshold_opens_with_nothing() {
        let (mut kit, ids) = sealed(3, 2);
        let one = share_of(&kit, &ids[0]);
        kit.header.threshold = 1;
        assert!(matches!(kit.open(&[one]), Err(KitError::WontOpen)));
    }

    #[test]
    fn a_share_of_another_kit_is_refused_by_name() {
        let (kit_a, ids_a) = sealed(2, 2);
        let (kit_b, _) = sealed(2, 2);
        let share = share_of(&kit_a, &ids_a[0]);
        assert!(matches!(
            kit_b.open(&[share]),
            Err(KitError::WrongKit { .. })
        ));
        let stranger = age::x25519::Identity::generate();
        assert!(matches!(
            kit_a.extract_share(&Identities::from_age(stranger)),
            Err(KitError::NoShareForIdentity)
        ));
    }

    #[test]
    fn bad_custodian_keys_and_thresholds_are_refused_with_one_clear_line() {
        let (_, custodian, _) = age_pair();
        assert!(Custodian::new("bad name", &custodian.recipient).is_err());
        assert!(Custodian::new("x", "ssh-dss AAAAB3NzaC1kc3M= x").is_err());
        assert!(Custodian::new("x", "not a key").is_err());
        for threshold in [0, 2] {
            let err = Kit::seal(SealRequest {
                accounts: Vec::new(),
                secrets: vec![KitSecret {
                    account: "a@b".into(),
                    kind: "password".into(),
                    secret: "s".into(),
                }],
                custodians: std::slice::from_ref(&custodian),
                threshold,
                sealed_at: String::new(),
            })
            .unwrap_err();
            assert!(err.to_string().contains("threshold"), "{err}");
        }
    }
}
