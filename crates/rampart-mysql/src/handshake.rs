//! The connection phase: Rampart's greeting to the client, the client's answer (and its TLS
//! request), the target's greeting and Rampart's answer to it, and the two scrambles Rampart
//! computes for the target login (`mysql_native_password`, `caching_sha2_password`).
//!
//! INVARIANT: the vaulted password never leaves [`native_scramble`] and [`sha2_scramble`]
//! except as their results; errors never name it.

use crate::wire::{WireError, caps, lenenc_bytes, nul_string, put_lenenc_int, wire};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// What Rampart tells clients it is, before it knows the target (clients print it; `select
/// version()` shows the target's). 5.7: clients then pick settings every MySQL and MariaDB
/// server knows (an 8.0 makes drivers ask for the `utf8mb4_0900_ai_ci` collation MariaDB lacks).
pub const SERVER_VERSION: &str = "5.7.0-rampart";
/// utf8mb4_general_ci: a collation MySQL and MariaDB both know.
pub const DEFAULT_COLLATION: u8 = 45;

/// The capabilities Rampart offers clients: protocol 4.1, pluggable authentication, multiple
/// statements and results, classic EOF packets. Not compression, `LOAD DATA LOCAL`, session
/// tracking, connection attributes or query attributes (their packets are not relayed).
pub const OFFERED: u32 = caps::LONG_PASSWORD
    | caps::FOUND_ROWS
    | caps::LONG_FLAG
    | caps::CONNECT_WITH_DB
    | caps::IGNORE_SPACE
    | caps::PROTOCOL_41
    | caps::INTERACTIVE
    | caps::TRANSACTIONS
    | caps::SECURE_CONNECTION
    | caps::MULTI_STATEMENTS
    | caps::MULTI_RESULTS
    | caps::PS_MULTI_RESULTS
    | caps::PLUGIN_AUTH
    | caps::PLUGIN_AUTH_LENENC_DATA;

/// Capabilities a client must have.
pub const REQUIRED: u32 = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH;

/// Rampart's greeting (HandshakeV10) offering `caching_sha2_password` with `scramble`.
pub fn greeting(connection_id: u32, scramble: &[u8; 20], tls: bool) -> Vec<u8> {
    let offered = OFFERED | if tls { caps::SSL } else { 0 };
    let mut out = BytesMut::new();
    out.put_u8(10);
    out.put_slice(SERVER_VERSION.as_bytes());
    out.put_u8(0);
    out.put_u32_le(connection_id);
    let (first, second) = scramble.split_at(8);
    out.put_slice(first);
    out.put_u8(0);
    out.put_u16_le((offered & 0xFFFF) as u16);
    out.put_u8(DEFAULT_COLLATION);
    out.put_u16_le(crate::wire::STATUS_AUTOCOMMIT);
    out.put_u16_le((offered >> 16) as u16);
    out.put_u8(21);
    out.put_slice(&[0; 10]);
    out.put_slice(second);
    out.put_u8(0);
    out.put_slice(b"caching_sha2_password\0");
    out.to_vec()
}

/// The client's answer to the greeting (HandshakeResponse41), or its TLS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub caps: u32,
    pub collation: u8,
    pub user: String,
    /// The client's first authentication data (its scramble: Rampart does not use it).
    pub auth_len: usize,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

/// Is this the 32-byte SSLRequest (capabilities with `SSL`, no user name)?
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && payload
            .first_chunk::<4>()
            .is_some_and(|c| u32::from_le_bytes(*c) & caps::SSL != 0)
}

pub fn parse_client_hello(payload: &Bytes) -> Result<ClientHello, WireError> {
    let bad = || wire("malformed handshake response");
    let mut body = payload.clone();
    if body.remaining() < 32 {
        return Err(bad());
    }
    let client_caps = body.get_u32_le();
    if client_caps & REQUIRED != REQUIRED {
        return Err(wire(
            "this client is too old: Rampart needs protocol 4.1 with pluggable authentication",
        ));
    }
    let _max_packet = body.get_u32_le();
    let collation = body.get_u8();
    body.advance(23);
    if !body.contains(&0) {
        return Err(bad());
    }
    let user = nul_string(&mut body);
    let auth_len = if client_caps & caps::PLUGIN_AUTH_LENENC_DATA != 0 {
        lenenc_bytes(&mut body).ok_or_else(bad)?.len()
    } else {
        let len = usize::from(*body.first().ok_or_else(bad)?);
        if body.remaining() < 1 + len {
            return Err(bad());
        }
        body.advance(1 + len);
        len
    };
    let database = if client_caps & caps::CONNECT_WITH_DB != 0 && body.has_remaining() {
        Some(nul_string(&mut body)).filter(|db| !db.is_empty())
    } else {
        None
    };
    let plugin = body.has_remaining().then(|| nul_string(&mut body));
    Ok(ClientHello {
        caps: client_caps & OFFERED,
        collation,
        user,
        auth_len,
        database,
        plugin,
    })
}

/// The target's greeting, as far as the login needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGreeting {
    /// The server's version string (`8.0.36`, `10.11.6-MariaDB-...`): rotation asks it whether
    /// the server keeps a retained (dual) password.
    pub version: String,
    pub caps: u32,
    pub scramble: Vec<u8>,
    pub plugin: String,
}

pub fn parse_target_greeting(payload: &Bytes) -> Result<TargetGreeting, WireError> {
    let bad = || wire("the target sent a malformed greeting");
    let mut body = payload.clone();
    match body.first() {
        Some(10) => body.advance(1),
        Some(0xFF) => {
            return Err(wire(format!(
                "the target refused the connection: {}",
                crate::wire::error_summary(payload)
            )));
        }
        _ => return Err(wire("the target does not speak the MySQL protocol 10")),
    }
    let version = nul_string(&mut body);
    if body.remaining() < 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 {
        return Err(bad());
    }
    body.advance(4);
    let mut scramble = body.split_to(8).to_vec();
    body.advance(1);
    let low = u32::from(body.get_u16_le());
    let _collation = body.get_u8();
    let _status = body.get_u16_le();
    let high = u32::from(body.get_u16_le());
    let data_len = usize::from(body.get_u8());
    body.advance(10);
    let rest = data_len.saturating_sub(8).max(13);
    if body.remaining() < rest {
        return Err(bad());
    }
    let part2 = body.split_to(rest);
    scramble.extend(part2.iter().take_while(|b| **b != 0));
    let plugin = nul_string(&mut body);
    Ok(TargetGreeting {
        version,
        caps: low | high << 16,
        scramble,
        plugin,
    })
}

/// Rampart's answer to the target's greeting (HandshakeResponse41).
pub fn target_hello(
    client_caps: u32,
    collation: u8,
    user: &str,
    auth: &[u8],
    database: Option<&str>,
    plugin: &str,
) -> Vec<u8> {
    let mut flags = (client_caps & !caps::SSL & !caps::CONNECT_WITH_DB)
        | caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC_DATA
        | caps::LONG_PASSWORD;
    if database.is_some() {
        flags |= caps::CONNECT_WITH_DB;
    }
    let mut out = BytesMut::new();
    out.put_u32_le(flags);
    out.put_u32_le(crate::wire::MAX_PAYLOAD as u32);
    out.put_u8(collation);
    out.put_slice(&[0; 23]);
    out.put_slice(user.as_bytes());
    out.put_u8(0);
    put_lenenc_int(&mut out, auth.len() as u64);
    out.put_slice(auth);
    if let Some(database) = database {
        out.put_slice(database.as_bytes());
        out.put_u8(0);
    }
    out.put_slice(plugin.as_bytes());
    out.put_u8(0);
    out.to_vec()
}

/// Rampart's SSL request to a target: the first 32 bytes of its handshake response with
/// `CLIENT_SSL` set; TLS follows, then the whole response inside it.
pub fn ssl_request(client_caps: u32, collation: u8) -> Vec<u8> {
    let flags = (client_caps & !caps::CONNECT_WITH_DB)
        | caps::SSL
        | caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC_DATA
        | caps::LONG_PASSWORD;
    let mut out = BytesMut::new();
    out.put_u32_le(flags);
    out.put_u32_le(crate::wire::MAX_PAYLOAD as u32);
    out.put_u8(collation);
    out.put_slice(&[0; 23]);
    out.to_vec()
}

/// `mysql_native_password`: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))).
pub fn native_scramble(password: &str, scramble: &[u8]) -> Vec<u8> {
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(scramble.get(..20).unwrap_or(scramble));
    hasher.update(stage2);
    let mix = hasher.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password` (fast path): SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble).
pub fn sha2_scramble(password: &str, scramble: &[u8]) -> Vec<u8> {
    let stage1 = Sha256::digest(password.as_bytes());
    let stage2 = Sha256::digest(stage1);
    let mut hasher = Sha256::new();
    hasher.update(stage2);
    hasher.update(scramble.get(..20).unwrap_or(scramble));
    let mix = hasher.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn scrambles_match_the_reference_values() {
        // Computed independently with Python's hashlib for password "secret", scramble 1..=20.
        let scramble: Vec<u8> = (1..=20).collect();
        assert_eq!(
            hex(&native_scramble("secret", &scramble)),
            "b32bb3a583e1340c0a1108d58b1be49781ad8c2f"
        );
        assert_eq!(
            hex(&sha2_scramble("secret", &scramble)),
            "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9"
        );
    }

    #[test]
    fn our_greeting_parses_as_a_target_greeting() {
        let scramble: [u8; 20] = *b"abcdefghijklmnopqrst";
        let parsed = parse_target_greeting(&Bytes::from(greeting(7, &scramble, true))).unwrap();
        assert_eq!(parsed.scramble, scramble.to_vec());
        assert_eq!(parsed.plugin, "caching_sha2_password");
        assert_eq!(parsed.caps, OFFERED | caps::SSL);
    }

    #[test]
    fn client_hello_parses_and_short_ones_are_refused() {
        let hello = Bytes::from(target_hello(
            OFFERED,
            45,
            "alice@my-01",
            &[1; 20],
            Some("app"),
            "mysql_native_password",
        ));
        let parsed = parse_client_hello(&hello).unwrap();
        assert_eq!(parsed.user, "alice@my-01");
        assert_eq!(parsed.database.as_deref(), Some("app"));
        assert_eq!(parsed.plugin.as_deref(), Some("mysql_native_password"));
        assert_eq!(parsed.auth_len, 20);
        for cut in [0, 10, 31, 33, hello.len() - 30] {
            let short = hello.slice(..cut);
            assert!(parse_client_hello(&short).is_err(), "{cut}");
        }
    }
}
