//! The provider as the node talks to it: discovery, the authorization request, the code and
//! refresh grants, and its keys.
//!
//! INVARIANTS:
//! - Every answer is bounded ([`MAX_ANSWER_BYTES`]) and every request has a deadline
//!   ([`REQUEST_TIMEOUT`]); redirects are not followed. Requests run on tokio's blocking pool.
//! - The discovery document's `issuer` must be the configured issuer, and every endpoint it
//!   names must be HTTPS (plain HTTP only to a loopback address), or nothing is used.
//! - Secrets (the client secret, codes, tokens) never appear in errors or logs: errors carry the
//!   provider's `error` code and a cut description at most.

use crate::jwt::{self, Claims, Expected, JwkSet, TokenError};
use crate::settings::OidcSettings;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rampart_core::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// The largest answer read from the provider.
pub const MAX_ANSWER_BYTES: u64 = 256 * 1024;
/// Each request to the provider must complete within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The discovery document is read again after this long.
pub const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// While a key id stays unknown after fetching the keys, they are not fetched again for it
/// sooner than this (a key the provider has just rotated in is found at the first fetch).
pub const JWKS_MISS_INTERVAL: Duration = Duration::from_secs(30);

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or gave an answer that is not what the protocol says.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused a grant (`invalid_grant`: an expired or revoked code or refresh
    /// token, a user it no longer knows).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    /// The ID token did not pass a check.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// The provider's discovery document: what the node uses of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// One authorization request's secrets: sent (challenge, state, nonce) and kept (verifier).
#[derive(Debug)]
pub struct AuthorizationRequest {
    /// Where to send the browser.
    pub url: String,
    pub state: String,
    pub nonce: String,
    /// PKCE's code verifier (RFC 7636), kept until the code comes back.
    pub verifier: SecretString,
}

/// What a code grant gave.
#[derive(Debug)]
pub struct SignedIn {
    pub claims: Claims,
    pub refresh_token: Option<SecretString>,
}

/// What a refresh grant said about the user.
#[derive(Debug)]
pub enum Refreshed {
    /// The provider still gives tokens; it may have rotated the refresh token.
    Valid { rotated: Option<SecretString> },
    /// The provider refused the grant: the user may no longer get tokens.
    Refused(String),
}

#[derive(Debug, Default)]
struct Keys {
    set: JwkSet,
    fetched: bool,
    /// When a fetch last left a token's key id unknown.
    last_miss: Option<Instant>,
}

/// The node's provider. Cloning shares its caches.
#[derive(Debug, Clone)]
pub struct Provider {
    settings: Arc<OidcSettings>,
    agent: ureq::Agent,
    metadata: Arc<Mutex<Option<(Metadata, Instant)>>>,
    keys: Arc<Mutex<Keys>>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// Characters escaped in a query component and in `application/x-www-form-urlencoded`
/// credentials: everything but unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// 32 random bytes, base64url.
pub fn random_token() -> Result<String, ProviderError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| ProviderError::Unavailable("no randomness from the system".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// PKCE's S256 challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `url` may carry the node's secrets: HTTPS, or plain HTTP to a loopback address.
pub fn url_allowed(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return false;
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

fn cut(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Provider {
    /// A provider for `settings`; nothing is fetched until the first use.
    pub fn new(settings: OidcSettings) -> Result<Self, ProviderError> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT));
        if let Some(pem) = &settings.ca_pem {
            let cert = ureq::tls::Certificate::from_pem(pem)
                .map_err(|err| ProviderError::Unavailable(format!("oidc.ca_file: {err}")))?
                .to_owned();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
                    .build(),
            );
        }
        Ok(Self {
            settings: Arc::new(settings),
            agent: config.build().into(),
            metadata: Arc::default(),
            keys: Arc::default(),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The discovery document, fetched at first use and again after [`METADATA_LIFETIME`].
    pub async fn metadata(&self) -> Result<Metadata, ProviderError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, at)) = cached.as_ref()
            && at.elapsed() < METADATA_LIFETIME
        {
            return Ok(metadata.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let metadata: Metadata = self.get_json(url).await?;
        if metadata.issuer != self.settings.issuer {
            return Err(ProviderError::Unavailable(format!(
                "the discovery document names the issuer {:?}, not the configured {:?}",
                cut(&metadata.issuer),
                self.settings.issuer
            )));
        }
        for (what, url) in [
            ("authorization_endpoint", &metadata.authorization_endpoint),
            ("token_endpoint", &metadata.token_endpoint),
            ("jwks_uri", &metadata.jwks_uri),
        ] {
            if !url_allowed(url) {
                return Err(ProviderError::Unavailable(format!(
                    "the discovery document's {what} is not HTTPS"
                )));
            }
        }
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// A new authorization request (code flow with PKCE S256, a fresh state and nonce).
    pub async fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        let metadata = self.metadata().await?;
        let state = random_token()?;
        let nonce = random_token()?;
        let verifier = random_token()?;
        let mut scopes: Vec<&str> = vec!["openid"];
        scopes.extend(
            self.settings
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|scope| *scope != "openid"),
        );
        let separator = if metadata.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
            metadata.authorization_endpoint,
            encode(&self.settings.client_id),
            encode(&self.settings.redirect_url),
            encode(&scopes.join(" ")),
            state,
            nonce,
            code_challenge(&verifier),
        );
        Ok(AuthorizationRequest {
            url,
            state,
            nonce,
            verifier: SecretString::from(verifier),
        })
    }

    /// Exchanges the code for tokens and verifies the ID token against `nonce`.
    pub async fn sign_in(
        &self,
        code: &str,
        verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignedIn, ProviderError> {
        let metadata = self.metadata().await?;
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.settings.redirect_url.clone()),
            ("code_verifier", verifier.expose_secret().to_owned()),
        ];
        let answer = match self.token_request(metadata.token_endpoint, form).await? {
            Ok(answer) => answer,
            Err(refused) => return Err(ProviderError::Refused(refused)),
        };
        let id_token = answer
            .id_token
            .ok_or_else(|| ProviderError::Unavailable("the token answer has no ID token".into()))?;
        let claims = self.verify_id_token(&id_token, Some(nonce)).await?;
        Ok(SignedIn {
            claims,
            refresh_token: answer.refresh_token.map(SecretString::from),
        })
    }

    /// Uses a refresh token: whether the provider still gives this user tokens. What matters is
    /// whether the grant is accepted; a rotated refresh token is returned to be kept (the old
    /// one no longer works at providers that rotate). An ID token in the answer is not used.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<Refreshed, ProviderError> {
        let metadata = self.metadata().await?;
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
        ];
        match self.token_request(metadata.token_endpoint, form).await? {
            Ok(answer) => Ok(Refreshed::Valid {
                rotated: answer.refresh_token.map(SecretString::from),
            }),
            Err(refused) => Ok(Refreshed::Refused(refused)),
        }
    }

    /// Verifies an ID token with the provider's keys, fetching them again when the token names
    /// a key id the node does not have (the provider rotated its keys).
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Claims, ProviderError> {
        let kid = jwt::key_id(token)?;
        let mut keys = self.keys.lock().await;
        let unknown = kid.as_deref().is_some_and(|kid| !keys.set.has_kid(kid));
        let may_refetch = keys
            .last_miss
            .is_none_or(|at| at.elapsed() >= JWKS_MISS_INTERVAL);
        if !keys.fetched || (unknown && may_refetch) {
            let metadata = self.metadata().await?;
            let set: JwkSet = self.get_json(metadata.jwks_uri).await?;
            keys.set = set;
            keys.fetched = true;
            let still_unknown = kid.as_deref().is_some_and(|kid| !keys.set.has_kid(kid));
            keys.last_miss = still_unknown.then(Instant::now);
        }
        let expected = Expected {
            issuer: &self.settings.issuer,
            client_id: &self.settings.client_id,
            nonce,
            now: now_unix(),
        };
        Ok(jwt::verify(token, &keys.set, &expected)?)
    }

    async fn get_json<T: DeserializeOwned + Send + 'static>(
        &self,
        url: String,
    ) -> Result<T, ProviderError> {
        if !url_allowed(&url) {
            return Err(ProviderError::Unavailable(format!(
                "{} is not HTTPS",
                cut(&url)
            )));
        }
        let agent = self.agent.clone();
        blocking(move || {
            let mut response = agent
                .get(&url)
                .header("Accept", "application/json")
                .call()
                .map_err(|err| unreachable(&url, &err))?;
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_vec()
                .map_err(|err| unreachable(&url, &err))?;
            if status != 200 {
                return Err(ProviderError::Unavailable(format!(
                    "{} answered {status}",
                    cut(&url)
                )));
            }
            serde_json::from_slice(&body).map_err(|_| {
                ProviderError::Unavailable(format!("{} answered no usable JSON", cut(&url)))
            })
        })
        .await
    }

    /// A token endpoint request with the client's credentials (`client_secret_basic`): the
    /// answer, or the provider's refusal (a 4xx with an OAuth error).
    async fn token_request(
        &self,
        url: String,
        form: Vec<(&'static str, String)>,
    ) -> Result<Result<TokenAnswer, String>, ProviderError> {
        let agent = self.agent.clone();
        let credentials = STANDARD.encode(format!(
            "{}:{}",
            encode(&self.settings.client_id),
            encode(self.settings.client_secret.expose_secret())
        ));
        let authorization = SecretString::from(format!("Basic {credentials}"));
        blocking(move || {
            let mut response = agent
                .post(&url)
                .header("Authorization", authorization.expose_secret())
                .header("Accept", "application/json")
                .send_form(form.iter().map(|(name, value)| (*name, value.as_str())))
                .map_err(|err| unreachable(&url, &err))?;
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_vec()
                .map_err(|err| unreachable(&url, &err))?;
            match status {
                200 => serde_json::from_slice(&body).map(Ok).map_err(|_| {
                    ProviderError::Unavailable("the token endpoint answered no usable JSON".into())
                }),
                400 | 401 => {
                    let error: ErrorAnswer = serde_json::from_slice(&body).unwrap_or(ErrorAnswer {
                        error: None,
                        error_description: None,
                    });
                    match error.error.as_deref() {
                        // The grant itself was refused; anything else (a bad client secret,
                        // a malformed request) is the node's or the provider's fault.
                        Some("invalid_grant") => Ok(Err(format!(
                            "invalid_grant: {}",
                            cut(error.error_description.as_deref().unwrap_or(""))
                        ))),
                        other => Err(ProviderError::Unavailable(format!(
                            "the token endpoint answered {status} {}",
                            cut(other.unwrap_or("without an OAuth error"))
                        ))),
                    }
                }
                other => Err(ProviderError::Unavailable(format!(
                    "the token endpoint answered {other}"
                ))),
            }
        })
        .await
    }
}

fn unreachable(url: &str, err: &ureq::Error) -> ProviderError {
    ProviderError::Unavailable(format!("{}: {}", cut(url), cut(&err.to_string())))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProviderError> + Send + 'static,
) -> Result<T, ProviderError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ProviderError::Unavailable("a request to the provider was lost".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_may_carry_secrets() {
        for (url, allowed) in [
            ("https://idp.example.com/token", true),
            ("http://127.0.0.1:8080/token", true),
            ("http://[::1]:8080/token", true),
            ("http://localhost/token", true),
            ("http://idp.example.com/token", false),
            ("http://10.0.0.1/token", false),
            ("ftp://idp.example.com/", false),
            ("not a url", false),
        ] {
            assert_eq!(url_allowed(url), allowed, "{url}");
        }
    }

    #[test]
    fn pkce_challenge_is_rfc_7636_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(random_token().unwrap(), random_token().unwrap());
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
