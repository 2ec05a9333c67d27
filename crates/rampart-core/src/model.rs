//! The records Rampart keeps: users, groups, assets, accounts, grants and sessions.
//!
//! These are plain values as the store returns them. None of them holds a secret: an account's
//! secret stays in the vault and is only ever revealed, as a [`crate::SecretString`], to the
//! code that connects to the target.

use crate::action::ActionSet;
use crate::login_rules::LoginRules;
use crate::name::{InvalidInput, Label, Name};
use crate::schedule::Schedule;
use crate::target::{Endpoint, SessionKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// What a user may do with Rampart itself (not on targets: that is what grants are for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users, assets, accounts and grants.
    Admin,
    /// Reads the audit trail and recordings; changes nothing.
    Auditor,
    /// Reaches the targets their grants allow.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        match text {
            "admin" => Ok(Role::Admin),
            "auditor" => Ok(Role::Auditor),
            "user" => Ok(Role::User),
            other => Err(InvalidInput::new(format!(
                "unknown role {other:?}: expected admin, auditor or user"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a user's identity is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserSource {
    /// Created here by an administrator or an invite.
    #[default]
    Local,
    /// Kept by the LDAP directory sync: no local password (a login binds to the directory);
    /// keys, mapped groups, role and status follow the directory.
    Ldap,
}

impl UserSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Local => "local",
            UserSource::Ldap => "ldap",
        }
    }
}

impl fmt::Display for UserSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person with their own identity.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub name: Name,
    pub role: Role,
    pub disabled: bool,
    /// Whether a password (Argon2id hash) is set; the hash itself never leaves the store.
    pub has_password: bool,
    /// Grows with every change to the user's keys, password, second factor or status; live
    /// sessions remember the epoch they started in.
    pub auth_epoch: i64,
    /// Whether a TOTP second factor is enrolled; the secret itself never leaves the store.
    pub mfa_enrolled: bool,
    /// Whether the user has registered a passkey (WebAuthn), a second factor of the portal.
    pub passkeys: bool,
    pub keys: Vec<UserKey>,
    pub groups: Vec<Name>,
    /// Where from and when the user may log in, on top of the node's `[auth]` rules.
    pub login_rules: LoginRules,
    /// Where the user's identity is kept (`local`, `ldap`).
    pub source: UserSource,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl User {
    /// Whether the user has a second factor of any kind (TOTP or a passkey): what the portal
    /// asks of a session before it mints credentials or changes the user's own.
    pub fn has_second_factor(&self) -> bool {
        self.mfa_enrolled || self.passkeys
    }
}

/// One SSH public key of a user.
#[derive(Debug, Clone, Serialize)]
pub struct UserKey {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub algorithm: String,
    pub comment: String,
    /// The key in `authorized_keys` form, without the comment.
    pub public_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: Uuid,
    pub name: Name,
    pub members: Vec<Name>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A target host and the protocols it speaks (see [`crate::target`]).
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    pub id: Uuid,
    pub name: Name,
    /// DNS name or IP address, shared by every endpoint.
    pub host: String,
    /// The network domain the asset is reached through; none: dialled directly.
    pub domain: Option<Name>,
    /// One or more, ordered by protocol; at most one per protocol and one per port.
    pub endpoints: Vec<Endpoint>,
    pub labels: Vec<Label>,
    /// The pinned SSH host key (`authorized_keys` form), once known: the identity of the ssh
    /// endpoint (TLS endpoints carry their own).
    pub host_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The kind of secret the vault holds for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    Password,
    PrivateKey,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::PrivateKey => "private_key",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `login@asset`: how people name an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRef {
    pub login: Name,
    pub asset: Name,
}

impl AccountRef {
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let (login, asset) = text.split_once('@').ok_or_else(|| {
            InvalidInput::new(format!(
                "invalid account {text:?}: expected ACCOUNT@ASSET, for example root@web-01"
            ))
        })?;
        Ok(Self {
            login: Name::parse("account", login)?,
            asset: Name::parse("asset", asset)?,
        })
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.login, self.asset)
    }
}

/// A login on an asset whose secret lives in the vault.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: Uuid,
    pub login: Name,
    pub asset: Name,
    pub secret_kind: SecretKind,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSubject {
    User(Name),
    Group(Name),
}

impl fmt::Display for GrantSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantSubject::User(name) => write!(f, "user:{name}"),
            GrantSubject::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// Which assets a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantTarget {
    Asset(Name),
    /// Every asset that carries all of these labels.
    Labels(Vec<Label>),
}

impl fmt::Display for GrantTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantTarget::Asset(name) => write!(f, "asset:{name}"),
            GrantTarget::Labels(labels) => {
                let words: Vec<String> = labels.iter().map(Label::to_string).collect();
                write!(f, "label:{}", words.join(","))
            }
        }
    }
}

/// Who may use which accounts on which assets, for what, and when.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub id: Uuid,
    pub subject: GrantSubject,
    pub target: GrantTarget,
    /// Account logins the grant covers; empty means every account on the covered assets.
    pub accounts: Vec<Name>,
    pub actions: ActionSet,
    /// Kubernetes namespaces the grant's Kubernetes actions are limited to; empty means every
    /// namespace (and cluster-wide requests). See [`crate::policy::KubeScope`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Weekly windows the grant applies in (`Mon-Fri 08:00-18:00 Europe/Berlin`); none = always.
    pub schedule: Option<Schedule>,
    /// Whether the session's login must have used a second factor.
    pub require_mfa: bool,
    /// Ends sessions without user input for this long (the global default applies when unset).
    #[serde(with = "crate::time_arg::duration_text")]
    pub idle_timeout: Option<Duration>,
    /// Ends sessions this long after they start (the global default applies when unset).
    #[serde(with = "crate::time_arg::duration_text")]
    pub max_duration: Option<Duration>,
    /// Whether shell and exec sessions are recorded (asciicast). Off only by an explicit choice
    /// that the audit trail shows; sessions, commands and file transfers are logged either way.
    pub record: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One use of a grant, from connect to disconnect. Names are copied in when the session starts,
/// so the record stays true when the user, asset or account is later renamed or removed.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub id: Uuid,
    pub user: String,
    pub asset: String,
    pub account: String,
    pub kind: SessionKind,
    pub source_addr: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub exit_status: Option<i64>,
    pub end_reason: Option<String>,
    /// Whether shell and exec sessions were to be recorded (a grant can say not).
    pub recorded: bool,
    /// The cap on each direction of a command's recording (`recording.exec_cap` when it
    /// started); `None`: recorded in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_cap: Option<u64>,
    /// How the session reached its target: `direct`, `gateway NAME`; `None` until connected.
    #[serde(default)]
    pub route: Option<String>,
    /// An exec session's command as the user sent it (bounded, control characters escaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The break-glass request whose emergency grant allowed the session (issue 17): every
    /// list shows such a session as `break-glass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakglass: Option<String>,
    /// The cluster node that carries (or carried) it (issue 19); `None` for sessions from
    /// before nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Session {
    pub fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_refs() {
        let account = AccountRef::parse("root@web-01").unwrap();
        assert_eq!(account.login.as_str(), "root");
        assert_eq!(account.asset.as_str(), "web-01");
        assert_eq!(account.to_string(), "root@web-01");
        for bad in ["root", "@web", "root@", "a@b@c", "ro ot@web"] {
            assert!(AccountRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles() {
        for role in [Role::Admin, Role::Auditor, Role::User] {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("root").is_err());
    }
}

/// One command typed in an interactive shell.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRecord {
    pub session: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub user: String,
    pub asset: String,
    pub account: String,
    pub command: String,
}
