//! ID tokens: a compact JWS checked against the provider's JSON Web Key Set, then its claims
//! against what this login expects. Pure: bytes, keys and the time in, claims or a refusal out.
//!
//! INVARIANTS:
//! - Only asymmetric algorithms are accepted (`RS256`, `PS256`, `ES256`, `EdDSA`); `none` and
//!   the HMAC family are refused, so a token cannot be signed with the client secret or not at
//!   all. The key must be of the algorithm's type, and its `alg`, when the set names one, must be
//!   the token's.
//! - Every claim check passes or the token is refused: issuer equal to the configured issuer,
//!   the client among the audiences (and the authorized party when several), not expired,
//!   issued not in the future, and the nonce of this login when one was sent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A token longer than this is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock difference tolerated between the provider and this node.
pub const LEEWAY_SECONDS: i64 = 60;

/// Why an ID token was refused. The messages name the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the ID token's algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key of the provider matches the ID token's key id")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token was issued by another issuer")]
    Issuer,
    #[error("the ID token is not for this client (audience)")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is issued in the future")]
    IssuedInFuture,
    #[error("the ID token's nonce is not this login's")]
    Nonce,
}

/// The provider's keys (`jwks_uri`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JwkSet {
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

/// One key of the set; only what verification reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    #[serde(rename = "use")]
    pub usage: Option<String>,
    pub crv: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

impl JwkSet {
    /// Whether the set has a key with this id.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Ps256,
    Es256,
    EdDsa,
}

impl Algorithm {
    fn parse(name: &str) -> Result<Self, TokenError> {
        match name {
            "RS256" => Ok(Self::Rs256),
            "PS256" => Ok(Self::Ps256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(TokenError::Algorithm(other.chars().take(16).collect())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    fn key_type(self) -> &'static str {
        match self {
            Self::Rs256 | Self::Ps256 => "RSA",
            Self::Es256 => "EC",
            Self::EdDsa => "OKP",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// The header's key id, read without verifying anything (to decide whether to fetch the keys
/// again when the provider has rotated them).
pub fn key_id(token: &str) -> Result<Option<String>, TokenError> {
    let (header, _, _) = split(token)?;
    Ok(decode_header(header)?.kid)
}

/// What this login expects of its ID token.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent with the authorization request; `None` for a token from a refresh grant.
    pub nonce: Option<&'a str>,
    /// Seconds since 1970.
    pub now: i64,
}

/// The claims of a verified ID token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub issuer: String,
    pub subject: String,
    /// Authentication methods (`amr`), if the provider says.
    pub amr: Vec<String>,
    /// Every claim, for the configured user-name and groups claims.
    pub all: Map<String, Value>,
}

impl Claims {
    /// A text claim.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(Value::as_str)
    }

    /// A list of texts (a single text counts as a list of one); anything else is none.
    pub fn texts(&self, name: &str) -> Vec<String> {
        match self.all.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }
}

/// Verifies `token`'s signature with `keys` and its claims against `expected`.
pub fn verify(token: &str, keys: &JwkSet, expected: &Expected<'_>) -> Result<Claims, TokenError> {
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    let header = decode_header(header_b64)?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed(
            "critical header parameters are not understood",
        ));
    }
    let algorithm = Algorithm::parse(&header.alg)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let signed = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(TokenError::Malformed("token is cut"))?;
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|key| key.kty == algorithm.key_type())
        .filter(|key| key.usage.as_deref().is_none_or(|usage| usage == "sig"))
        .filter(|key| key.alg.as_deref().is_none_or(|alg| alg == algorithm.name()))
        .filter(|key| match (&header.kid, &key.kid) {
            (Some(wanted), Some(kid)) => wanted == kid,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    // Without a key id, the set must leave no choice.
    let key = match (header.kid.is_some(), candidates.as_slice()) {
        (_, [one]) => *one,
        (true, [first, ..]) => *first,
        _ => return Err(TokenError::UnknownKey),
    };
    check_signature(algorithm, key, signed.as_bytes(), &signature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let all: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("payload is not a JSON object"))?;
    check_claims(all, expected)
}

fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("token is too long"));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(TokenError::Malformed("not a compact JWS of three parts")),
    }
}

fn decode_header(header: &str) -> Result<Header, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("header is not a JWS header"))
}

fn part(value: Option<&String>) -> Result<Vec<u8>, TokenError> {
    let value = value.ok_or(TokenError::UnknownKey)?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| TokenError::UnknownKey)
}

fn check_signature(
    algorithm: Algorithm,
    key: &Jwk,
    signed: &[u8],
    signature: &[u8],
) -> Result<(), TokenError> {
    let verified = match algorithm {
        Algorithm::Rs256 | Algorithm::Ps256 => {
            let components = RsaPublicKeyComponents {
                n: part(key.n.as_ref())?,
                e: part(key.e.as_ref())?,
            };
            let parameters = if algorithm == Algorithm::Rs256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            components.verify(parameters, signed, signature)
        }
        Algorithm::Es256 => {
            if key.crv.as_deref() != Some("P-256") {
                return Err(TokenError::UnknownKey);
            }
            let (x, y) = (part(key.x.as_ref())?, part(key.y.as_ref())?);
            if x.len() != 32 || y.len() != 32 {
                return Err(TokenError::UnknownKey);
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, signature)
        }
        Algorithm::EdDsa => {
            if key.crv.as_deref() != Some("Ed25519") {
                return Err(TokenError::UnknownKey);
            }
            UnparsedPublicKey::new(&signature::ED25519, part(key.x.as_ref())?)
                .verify(signed, signature)
        }
    };
    verified.map_err(|_| TokenError::Signature)
}

fn check_claims(all: Map<String, Value>, expected: &Expected<'_>) -> Result<Claims, TokenError> {
    let text = |name: &str| all.get(name).and_then(Value::as_str);
    let number = |name: &str| all.get(name).and_then(Value::as_i64);
    if text("iss") != Some(expected.issuer) {
        return Err(TokenError::Issuer);
    }
    let audiences: Vec<&str> = match all.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenError::Audience);
    }
    // With several audiences, the authorized party must be this client (OIDC Core 3.1.3.7).
    if let Some(azp) = all.get("azp") {
        if azp.as_str() != Some(expected.client_id) {
            return Err(TokenError::Audience);
        }
    } else if audiences.len() > 1 {
        return Err(TokenError::Audience);
    }
    let expires = number("exp").ok_or(TokenError::Malformed("no expiry (exp)"))?;
    if expires.saturating_add(LEEWAY_SECONDS) <= expected.now {
        return Err(TokenError::Expired);
    }
    let issued = number("iat").ok_or(TokenError::Malformed("no issue time (iat)"))?;
    if issued > expected.now.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(nonce) = expected.nonce {
        let presented = text("nonce").unwrap_or("");
        if !same(presented, nonce) {
            return Err(TokenError::Nonce);
        }
    }
    let subject = text("sub")
        .filter(|sub| !sub.is_empty() && sub.len() <= 255)
        .ok_or(TokenError::Malformed("no subject (sub)"))?
        .to_owned();
    let amr = match all.get("amr") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Claims {
        issuer: expected.issuer.to_owned(),
        subject,
        amr,
        all,
    })
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    struct TestKey {
        pair: EcdsaKeyPair,
        kid: &'static str,
    }

    impl TestKey {
        fn new(kid: &'static str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self { pair, kid }
        }

        fn jwk(&self) -> Jwk {
            let point = self.pair.public_key().as_ref();
            Jwk {
                kty: "EC".into(),
                kid: Some(self.kid.into()),
                alg: Some("ES256".into()),
                usage: Some("sig".into()),
                crv: Some("P-256".into()),
                n: None,
                e: None,
                x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
                y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
            }
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self
                .pair
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap();
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        json!({"iss": "https://idp.test", "sub": "alice-1", "aud": "rampart", "exp": NOW + 300,
               "iat": NOW - 5, "nonce": "n-1", "groups": ["ops", "dev"], "amr": ["pwd", "mfa"]})
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://idp.test",
            client_id: "rampart",
            nonce: Some("n-1"),
            now: NOW,
        }
    }

    #[test]
    fn a_good_token_verifies_and_every_bad_one_is_refused_for_its_reason() {
        let key = TestKey::new("k1");
        let other = TestKey::new("k1");
        let keys = JwkSet {
            keys: vec![key.jwk()],
        };
        let header = json!({"alg": "ES256", "kid": "k1"});
        let good = key.sign(&header, &claims());
        let verified = verify(&good, &keys, &expected()).unwrap();
        assert_eq!(verified.subject, "alice-1");
        assert_eq!(verified.texts("groups"), vec!["ops", "dev"]);
        assert_eq!(verified.amr, vec!["pwd", "mfa"]);
        assert_eq!(key_id(&good).unwrap().as_deref(), Some("k1"));

        let with = |change: &dyn Fn(&mut Value)| {
            let mut claims = claims();
            change(&mut claims);
            key.sign(&header, &claims)
        };
        // The payload changed after signing.
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            claims()
                .to_string()
                .replace("alice-1", "admin-1")
                .as_bytes(),
        );
        parts[1] = &forged_payload;
        let tampered = parts.join(".");
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let hmac = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let cases: Vec<(&str, String, TokenError)> = vec![
            ("tampered payload", tampered, TokenError::Signature),
            (
                "another key, same kid",
                other.sign(&header, &claims()),
                TokenError::Signature,
            ),
            (
                "unknown kid",
                key.sign(&json!({"alg": "ES256", "kid": "k2"}), &claims()),
                TokenError::UnknownKey,
            ),
            ("alg none", none, TokenError::Algorithm("none".into())),
            ("alg HS256", hmac, TokenError::Algorithm("HS256".into())),
            (
                "RSA alg on an EC key",
                key.sign(&json!({"alg": "RS256", "kid": "k1"}), &claims()),
                TokenError::UnknownKey,
            ),
            (
                "wrong issuer",
                with(&|c| c["iss"] = json!("https://evil.test")),
                TokenError::Issuer,
            ),
            (
                "wrong audience",
                with(&|c| c["aud"] = json!("someone-else")),
                TokenError::Audience,
            ),
            (
                "audiences without azp",
                with(&|c| c["aud"] = json!(["rampart", "other"])),
                TokenError::Audience,
            ),
            (
                "azp of another client",
                with(&|c| c["azp"] = json!("other")),
                TokenError::Audience,
            ),
            (
                "expired",
                with(&|c| c["exp"] = json!(NOW - LEEWAY_SECONDS - 1)),
                TokenError::Expired,
            ),
            (
                "issued in the future",
                with(&|c| c["iat"] = json!(NOW + LEEWAY_SECONDS + 10)),
                TokenError::IssuedInFuture,
            ),
            (
                "another login's nonce",
                with(&|c| c["nonce"] = json!("n-0")),
                TokenError::Nonce,
            ),
            (
                "no nonce",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("nonce");
                }),
                TokenError::Nonce,
            ),
            (
                "no subject",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
                TokenError::Malformed("no subject (sub)"),
            ),
            (
                "two parts",
                "a.b".to_owned(),
                TokenError::Malformed("not a compact JWS of three parts"),
            ),
        ];
        for (case, token, error) in cases {
            assert_eq!(
                verify(&token, &keys, &expected()).unwrap_err(),
                error,
                "{case}"
            );
        }
        // Several audiences with this client as the authorized party pass.
        let token = with(&|c| {
            c["aud"] = json!(["rampart", "other"]);
            c["azp"] = json!("rampart");
        });
        assert!(verify(&token, &keys, &expected()).is_ok());
        // A refresh grant's token carries no nonce to check.
        let token = with(&|c| {
            c.as_object_mut().unwrap().remove("nonce");
        });
        let refresh = Expected {
            nonce: None,
            ..expected()
        };
        assert!(verify(&token, &keys, &refresh).is_ok());
    }
}
