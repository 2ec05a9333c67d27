//! Passkeys (WebAuthn, issue 20): the relying party and the ceremonies' checks, on webauthn-rs.
//!
//! The ceremonies' state (the challenge and what it expects) is the caller's to keep between
//! the two requests of a ceremony, in memory, once: webauthn-rs's state types are not
//! serializable here, so a challenge cannot outlive the process or be used twice when the
//! caller takes it out of its map. What a login decides (lockout, rules, counting, the second
//! factor) stays in [`crate::Authenticator`]; this module only speaks WebAuthn.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use webauthn_rs::prelude::{Passkey, Url, Webauthn, WebauthnBuilder};

pub use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration,
};

/// A JSON document from a browser longer than this is refused before parsing.
pub const MAX_CEREMONY_JSON_BYTES: usize = 64 * 1024;

/// The relying party passkeys are made for: its ID (a domain name) and the portal's origin.
#[derive(Clone)]
pub struct Passkeys {
    webauthn: Arc<Webauthn>,
    rp_id: String,
    rp_origin: String,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("rp_id", &self.rp_id)
            .field("rp_origin", &self.rp_origin)
            .finish_non_exhaustive()
    }
}

impl Passkeys {
    /// The relying party `rp_id` (a domain name such as `localhost` or `bastion.example.com`,
    /// never an address: browsers refuse WebAuthn on an IP address) for the portal at
    /// `rp_origin` (`https://NAME[:PORT]`, whose host is `rp_id` or under it).
    pub fn new(rp_id: &str, rp_origin: &str) -> Result<Self, String> {
        if rp_id.is_empty() || rp_id.parse::<IpAddr>().is_ok() || rp_id.starts_with('[') {
            return Err(format!(
                "{rp_id:?} is not a domain name: WebAuthn needs one (such as localhost), and \
                 the portal must be reached by that name"
            ));
        }
        let origin = Url::parse(rp_origin)
            .map_err(|err| format!("{rp_origin:?} is not an origin URL: {err}"))?;
        if !matches!(origin.scheme(), "https" | "http") || origin.path() != "/" {
            return Err(format!(
                "{rp_origin:?} is not an origin: give https://NAME[:PORT] only"
            ));
        }
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .and_then(|builder| builder.rp_name("Rampart").build())
            .map_err(|err| {
                format!("{rp_origin:?} does not belong to the relying party {rp_id:?}: {err}")
            })?;
        Ok(Self {
            webauthn: Arc::new(webauthn),
            rp_id: rp_id.to_owned(),
            rp_origin: rp_origin.trim_end_matches('/').to_owned(),
        })
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    pub fn rp_origin(&self) -> &str {
        &self.rp_origin
    }

    pub(crate) fn webauthn(&self) -> &Webauthn {
        &self.webauthn
    }

    /// Starts registering a passkey for the user `handle` (never changes) named `user`,
    /// excluding the credentials they have. Asks for a discoverable credential where the
    /// authenticator can make one, so it also serves the passwordless login.
    pub(crate) fn start_registration(
        &self,
        handle: uuid::Uuid,
        user: &str,
        existing: &[Passkey],
    ) -> Result<(Value, PasskeyRegistration), String> {
        let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(handle, user, user, Some(exclude))
            .map_err(|err| err.to_string())?;
        let mut options = serde_json::to_value(&options).map_err(|err| err.to_string())?;
        // The browser's hint only (the server's check does not depend on it): a discoverable
        // credential where the authenticator can keep one.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), Value::from("preferred"));
        }
        Ok((options, state))
    }
}

/// The challenge of a passwordless login (any discoverable passkey registered here may answer
/// it), for a button's modal request rather than the form's autofill (conditional) one: the
/// options for the browser and the state to keep once.
pub fn discoverable_challenge(
    passkeys: &Passkeys,
) -> Result<(Value, DiscoverableAuthentication), String> {
    let (mut options, state) = passkeys
        .webauthn
        .start_discoverable_authentication()
        .map_err(|err| err.to_string())?;
    options.mediation = None;
    let options = serde_json::to_value(&options).map_err(|err| err.to_string())?;
    Ok((options, state))
}

/// A credential id as the browser and the store write it: base64url without padding.
pub(crate) fn credential_id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// A stored passkey, or `None` (logged) if it no longer parses.
pub(crate) fn parse_stored(text: &str) -> Option<Passkey> {
    match serde_json::from_str(text) {
        Ok(passkey) => Some(passkey),
        Err(err) => {
            tracing::error!(error = %err, "a stored passkey does not parse; ignored");
            None
        }
    }
}

/// The browser's JSON for a ceremony's answer, parsed into `T`; `None` when too large or not
/// that shape.
pub(crate) fn parse_answer<T: serde::de::DeserializeOwned>(answer: &Value) -> Option<T> {
    let size = serde_json::to_vec(answer)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CEREMONY_JSON_BYTES {
        return None;
    }
    serde_json::from_value(answer.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relying_party_needs_a_domain_name_and_its_origin() {
        assert!(Passkeys::new("localhost", "https://localhost:8443").is_ok());
        assert!(Passkeys::new("example.com", "https://bastion.example.com").is_ok());
        let address = Passkeys::new("127.0.0.1", "https://127.0.0.1:8443").unwrap_err();
        assert!(address.contains("not a domain name"), "{address}");
        assert!(Passkeys::new("::1", "https://[::1]:8443").is_err());
        assert!(Passkeys::new("example.com", "https://other.org").is_err());
        assert!(Passkeys::new("localhost", "not a url").is_err());
        assert!(Passkeys::new("localhost", "https://localhost:8443/portal").is_err());
    }
}
