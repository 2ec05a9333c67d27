//! The `[oidc]` settings as the node uses them, and the group map's one decision.

use rampart_core::{Name, Role, SecretString};
use std::collections::BTreeSet;
use std::time::Duration;

/// What a provider group gives in Rampart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupTarget {
    /// Membership of this Rampart group (created on first use).
    Group(Name),
    /// This role (the highest of all mapped roles wins; `user` when none).
    Role(Role),
}

impl GroupTarget {
    /// `role:admin`, `role:auditor`, `role:user`, or a group name.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix("role:") {
            Some(role) => Role::parse(role)
                .map(Self::Role)
                .map_err(|err| err.to_string()),
            None => Name::parse("group", text)
                .map(Self::Group)
                .map_err(|err| err.to_string()),
        }
    }
}

/// The node's OpenID Connect provider and what its sign-ins give.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider's discovery document and ID tokens name it.
    pub issuer: String,
    pub client_id: String,
    /// Read from `client_secret_file`; never logged.
    pub client_secret: SecretString,
    /// This node's callback, registered at the provider (`https://HOST/api/v1/oidc/callback`).
    pub redirect_url: String,
    /// Scopes asked for; `openid` is always among them.
    pub scopes: Vec<String>,
    /// The claim that names the Rampart user (`preferred_username` by default).
    pub username_claim: String,
    /// The claim that lists the user's groups (`groups` by default).
    pub groups_claim: String,
    /// Provider group -> what it gives, in the configuration's order.
    pub group_map: Vec<(String, GroupTarget)>,
    /// Whether a sign-in the provider says used several factors (`amr` contains `mfa`) counts
    /// as the second factor; otherwise a user with TOTP is asked for a code as well.
    pub counts_as_mfa: bool,
    /// PEM certificates trusted for the provider's HTTPS instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// How often a user's refresh token is used to ask the provider whether they may still
    /// get tokens.
    pub recheck_interval: Duration,
    /// The button's text: "Sign in with {display_name}".
    pub display_name: String,
}

/// The default scopes: `offline_access` for the refresh token the periodic check uses.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// What a user's provider groups give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub role: Role,
    /// The Rampart groups they belong to now.
    pub groups: BTreeSet<Name>,
    /// Every Rampart group the map can give: membership of these follows the provider (given
    /// and taken away); other groups are left as the administrator set them.
    pub managed: BTreeSet<Name>,
}

fn rank(role: Role) -> u8 {
    match role {
        Role::User => 0,
        Role::Auditor => 1,
        Role::Admin => 2,
    }
}

impl OidcSettings {
    /// The role and groups the provider's `groups` give.
    pub fn map_groups(&self, groups: &[String]) -> Mapped {
        let mut mapped = Mapped {
            role: Role::User,
            groups: BTreeSet::new(),
            managed: BTreeSet::new(),
        };
        for (provider_group, target) in &self.group_map {
            let member = groups.iter().any(|group| group == provider_group);
            match target {
                GroupTarget::Group(name) => {
                    mapped.managed.insert(name.clone());
                    if member {
                        mapped.groups.insert(name.clone());
                    }
                }
                GroupTarget::Role(role) if member && rank(*role) > rank(mapped.role) => {
                    mapped.role = *role;
                }
                GroupTarget::Role(_) => {}
            }
        }
        mapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_role_wins_and_only_mapped_groups_are_managed() {
        let target = |text: &str| GroupTarget::parse(text).unwrap();
        let settings = OidcSettings {
            issuer: "https://idp.test".into(),
            client_id: "rampart".into(),
            client_secret: SecretString::from("s".to_owned()),
            redirect_url: "https://rampart.test/api/v1/oidc/callback".into(),
            scopes: vec!["openid".into()],
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            group_map: vec![
                ("idp-ops".into(), target("ops")),
                ("idp-dba".into(), target("dba")),
                ("idp-audit".into(), target("role:auditor")),
                ("idp-admins".into(), target("role:admin")),
            ],
            counts_as_mfa: false,
            ca_pem: None,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
            display_name: "IdP".into(),
        };
        let name = |text: &str| Name::parse("group", text).unwrap();
        let mapped = settings.map_groups(&["idp-ops".into(), "idp-audit".into(), "x".into()]);
        assert_eq!(mapped.role, Role::Auditor);
        assert_eq!(mapped.groups, BTreeSet::from([name("ops")]));
        assert_eq!(mapped.managed, BTreeSet::from([name("ops"), name("dba")]));
        let mapped = settings.map_groups(&["idp-admins".into(), "idp-audit".into()]);
        assert_eq!(mapped.role, Role::Admin);
        assert!(mapped.groups.is_empty());
        assert_eq!(settings.map_groups(&[]).role, Role::User);
        assert!(GroupTarget::parse("role:root").is_err());
        assert!(GroupTarget::parse("bad name!").is_err());
    }
}
