//! The login to the target database with the vaulted password: SCRAM-SHA-256 (RFC 5802/7677,
//! without channel binding), md5, or cleartext when the server asks for it.
//!
//! Why not `postgres-protocol`: it is not in this workspace's dependency tree, and the two
//! exchanges are ~100 lines over `hmac`, `pbkdf2`, `sha2` and `md-5`, which already are.
//!
//! INVARIANT: the password never leaves this module except inside the target's authentication
//! messages; errors name the step, never the password or what was derived from it.

use crate::wire::{Message, WireError, read_message, write_message};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes};
use hmac::{KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The largest authentication message accepted from a target.
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

fn err(text: &str) -> WireError {
    WireError(format!("target login: {text}"))
}

/// Answers the target's authentication requests until `AuthenticationOk`. The startup message
/// was sent already. Returns the target's error line if it refused.
pub async fn login(
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    user: &str,
    password: &str,
) -> Result<(), WireError> {
    let mut scram: Option<Scram> = None;
    loop {
        let Message { tag, mut body } = read_message(io, MAX_AUTH_MESSAGE).await?;
        match tag {
            b'E' => {
                return Err(WireError(format!(
                    "the target refused the login: {}",
                    crate::wire::error_summary(&body)
                )));
            }
            b'R' => {}
            _ => return Err(err("unexpected message during authentication")),
        }
        if body.remaining() < 4 {
            return Err(err("short authentication request"));
        }
        match body.get_u32() {
            0 => return Ok(()),
            3 => {
                let mut answer = Zeroizing::new(password.as_bytes().to_vec());
                answer.push(0);
                write_message(io, b'p', &answer).await?;
            }
            5 => {
                if body.remaining() < 4 {
                    return Err(err("short md5 salt"));
                }
                let salt = body.split_to(4);
                let answer = md5_answer(user, password, &salt);
                write_message(io, b'p', answer.as_bytes()).await?;
            }
            10 => {
                let mechanisms = body.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256");
                if !mechanisms {
                    return Err(err("the target offers no SCRAM-SHA-256"));
                }
                let client = Scram::new()?;
                let first = client.client_first();
                let mut out = Vec::new();
                out.extend_from_slice(b"SCRAM-SHA-256\0");
                out.extend_from_slice(&i32::try_from(first.len()).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(first.as_bytes());
                write_message(io, b'p', &out).await?;
                scram = Some(client);
            }
            11 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| err("SCRAM continue before start"))?;
                let final_message = client.client_final(&body, password)?;
                write_message(io, b'p', final_message.as_bytes()).await?;
            }
            12 => {
                let client = scram
                    .as_ref()
                    .ok_or_else(|| err("SCRAM final before start"))?;
                client.check_server_final(&body)?;
            }
            _ => {
                return Err(err(
                    "the target asks for an authentication method Rampart does not support",
                ));
            }
        }
    }
}

/// `md5` + hex(md5(hex(md5(password + user)) + salt)).
fn md5_answer(user: &str, password: &str, salt: &[u8]) -> String {
    let mut inner = Md5::new();
    inner.update(password.as_bytes());
    inner.update(user.as_bytes());
    let inner = hex(&inner.finalize());
    let mut outer = Md5::new();
    outer.update(inner.as_bytes());
    outer.update(salt);
    let mut answer = String::from("md5");
    answer.push_str(&hex(&outer.finalize()));
    answer.push('\0');
    answer
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One SCRAM-SHA-256 exchange.
struct Scram {
    nonce: String,
    /// `client-first-message-bare , server-first-message , client-final-message-without-proof`.
    auth_message: String,
    server_signature: Option<Vec<u8>>,
}

impl Scram {
    fn new() -> Result<Self, WireError> {
        let mut raw = [0u8; 18];
        getrandom::fill(&mut raw).map_err(|_| err("no randomness"))?;
        Ok(Self {
            nonce: STANDARD.encode(raw),
            auth_message: String::new(),
            server_signature: None,
        })
    }

    fn client_first(&self) -> String {
        // The user name is taken from the startup message (PostgreSQL ignores this one).
        format!("n,,n=,r={}", self.nonce)
    }

    fn client_final(&mut self, server_first: &Bytes, password: &str) -> Result<String, WireError> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| err("SCRAM message not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            if let Some(v) = part.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = part.strip_prefix("s=") {
                salt = Some(STANDARD.decode(v).map_err(|_| err("bad SCRAM salt"))?);
            } else if let Some(v) = part.strip_prefix("i=") {
                iterations = Some(v.parse::<u32>().map_err(|_| err("bad SCRAM iterations"))?);
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(err("incomplete SCRAM challenge"));
        };
        if !nonce.starts_with(&self.nonce) || !(1..=1_000_000).contains(&iterations) {
            return Err(err("invalid SCRAM challenge"));
        }
        let mut salted = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, salted.as_mut());
        let client_key = hmac(salted.as_ref(), b"Client Key")?;
        let stored_key = Sha256::digest(&client_key);
        let server_key = hmac(salted.as_ref(), b"Server Key")?;
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("n=,r={},{server_first},{without_proof}", self.nonce);
        let signature = hmac(&stored_key, self.auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        self.server_signature = Some(hmac(&server_key, self.auth_message.as_bytes())?);
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    fn check_server_final(&self, body: &Bytes) -> Result<(), WireError> {
        let text = std::str::from_utf8(body).map_err(|_| err("SCRAM message not UTF-8"))?;
        let verifier = text
            .strip_prefix("v=")
            .and_then(|v| STANDARD.decode(v.trim_end_matches('\0')).ok())
            .ok_or_else(|| err("the target's SCRAM answer carries no signature"))?;
        match &self.server_signature {
            Some(expected) if *expected == verifier => Ok(()),
            _ => Err(err(
                "the target's SCRAM signature is wrong (not the vaulted server?)",
            )),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| err("HMAC key"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`
/// (`SCRAM-SHA-256$ITERATIONS:SALT$STORED_KEY:SERVER_KEY`, as its `pg_authid` holds it), with a
/// fresh random salt: `ALTER USER ... PASSWORD` with it sets the password without the password
/// itself ever reaching the server (or its statement log). The same derivation as the login's.
pub fn scram_verifier(password: &str) -> Result<Zeroizing<String>, WireError> {
    const ITERATIONS: u32 = 4096;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| err("no randomness for the SCRAM salt"))?;
    let mut salted = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, ITERATIONS, salted.as_mut());
    let client_key = Zeroizing::new(hmac(salted.as_ref(), b"Client Key")?);
    let stored_key = Sha256::digest(client_key.as_slice());
    let server_key = hmac(salted.as_ref(), b"Server Key")?;
    Ok(Zeroizing::new(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )))
}
