//! The `[webauthn]` section: the relying party of passkeys (issue 20). WebAuthn needs a domain
//! name, never an IP address, and the browser must reach the portal by that name. Without the
//! section the relying party is `localhost` and the origin the HTTP listener's port on it
//! (`https://localhost:PORT`): right for a portal reached on this machine; any other
//! deployment sets `rp_id` (and `rp_origin` when the portal is not `https://RP_ID:PORT`).

use super::{ConfigError, Sourced, pick};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebauthnSection {
    rp_id: Option<String>,
    rp_origin: Option<String>,
}

/// The relying party as configured; the listener's port fills in what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// The relying party ID (a domain name); `localhost` by default.
    pub rp_id: Option<String>,
    /// The portal's origin (`https://NAME[:PORT]`); by default the relying party's name with
    /// the HTTP listener's scheme and port.
    pub rp_origin: Option<String>,
}

impl WebauthnConfig {
    /// The relying party for a portal listening on `port` (`tls`: HTTPS).
    pub fn passkeys(&self, port: u16, tls: bool) -> Result<rampart_auth::Passkeys, String> {
        let rp_id = self.rp_id.clone().unwrap_or_else(|| "localhost".to_owned());
        let origin = self.rp_origin.clone().unwrap_or_else(|| {
            let scheme = if tls { "https" } else { "http" };
            format!("{scheme}://{rp_id}:{port}")
        });
        rampart_auth::Passkeys::new(&rp_id, &origin)
    }
}

pub(super) fn webauthn_config(
    section: &WebauthnSection,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<WebauthnConfig, ConfigError> {
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    let rp_id = get(
        "webauthn.rp_id",
        "RAMPART_WEBAUTHN_RP_ID",
        section.rp_id.clone(),
    );
    let rp_origin = get(
        "webauthn.rp_origin",
        "RAMPART_WEBAUTHN_RP_ORIGIN",
        section.rp_origin.clone(),
    );
    let config = WebauthnConfig {
        rp_id: rp_id.as_ref().map(|s| s.value.clone()),
        rp_origin: rp_origin.as_ref().map(|s| s.value.clone()),
    };
    // Checked now with any port, so a bad value stops the start before anything is bound.
    if let Err(reason) = config.passkeys(443, true) {
        let Sourced { value, source } = rp_origin.or(rp_id).unwrap_or(Sourced {
            value: String::new(),
            source: "default".into(),
        });
        let key = if config.rp_origin.is_some() {
            "webauthn.rp_origin"
        } else {
            "webauthn.rp_id"
        };
        return Err(ConfigError(format!(
            "{key} (from {source}): {value:?}: {reason}"
        )));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<WebauthnConfig, ConfigError> {
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        webauthn_config(&WebauthnSection::default(), &lookup, "rampart.toml")
    }

    #[test]
    fn the_relying_party_defaults_to_localhost_on_the_listeners_port() {
        let config = load(&[]).unwrap();
        let passkeys = config.passkeys(8443, true).unwrap();
        assert_eq!(passkeys.rp_id(), "localhost");
        assert_eq!(passkeys.rp_origin(), "https://localhost:8443");
        let named = load(&[("RAMPART_WEBAUTHN_RP_ID", "bastion.example.com")]).unwrap();
        assert_eq!(
            named.passkeys(443, true).unwrap().rp_origin(),
            "https://bastion.example.com:443"
        );
    }

    #[test]
    fn an_address_as_relying_party_is_refused_with_the_reason() {
        let err = load(&[("RAMPART_WEBAUTHN_RP_ID", "10.0.0.5")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("webauthn.rp_id"), "{err}");
        assert!(err.contains("not a domain name"), "{err}");
        let err = load(&[
            ("RAMPART_WEBAUTHN_RP_ID", "example.com"),
            ("RAMPART_WEBAUTHN_RP_ORIGIN", "https://other.org"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("webauthn.rp_origin"), "{err}");
    }
}
