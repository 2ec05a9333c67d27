//! The target side: which account a request resolves to, and the SSH connection to it made with
//! the vaulted credential.
//!
//! INVARIANT: no credential is sent before the target's host key is trusted: pinned and equal,
//! or (pin on first use) pinned by this very connection in the store, first writer wins, before
//! the handshake goes on. Concurrent first connections therefore agree on one key: the loser of
//! the race compares with the key the winner committed.

use crate::login::TargetSpec;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{
    AccountRef, Action, Asset, ExposeSecret, Name, Protocol, SecretKind, SecretString, User,
};
use rampart_session::authorize::{SessionRules, Snapshot};
use rampart_session::dial::{DialError, Dialer, Route};
use rampart_store::Store;
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long the SSH handshake with a target may take, once the dialer has a stream.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// An account a user may use, with the grant that allows it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub asset: Asset,
    pub account: Name,
    pub grant: Uuid,
    pub rules: SessionRules,
    /// The requested actions this account is allowed for (at least one).
    pub actions: Vec<Action>,
}

impl Resolved {
    pub fn account_ref(&self) -> AccountRef {
        AccountRef {
            login: self.account.clone(),
            asset: self.asset.name.clone(),
        }
    }
}

/// Why a request goes nowhere: shown to the user as one line, and audited.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub target: String,
    pub message: String,
}

/// The actions of a request in words: `shell`, `sftp_read or sftp_write`.
fn either(actions: &[Action]) -> String {
    let words: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    words.join(" or ")
}

/// Resolves what the user named to exactly one account and checks the policy there for each of
/// `actions`: the session is allowed if that one account allows at least one of them, and may
/// then do only what it allows ([`Resolved::actions`]). A session never mixes accounts: for
/// `user@ASSET` the account is the one account on the asset that allows any of the actions.
pub async fn resolve(
    store: &Store,
    user: &User,
    spec: &TargetSpec,
    actions: &[Action],
    now: OffsetDateTime,
    mfa: bool,
) -> Result<Resolved, Refusal> {
    let wanted = either(actions);
    let internal = |target: String| Refusal {
        target,
        message: "internal error looking up the target; the administrators can see it in the log"
            .into(),
    };
    let (asset_name, login) = match spec {
        TargetSpec::Menu => {
            return Err(Refusal {
                target: "-".into(),
                message: "name a target: ssh USER@ACCOUNT@ASSET@bastion (or USER@ASSET@bastion)"
                    .into(),
            });
        }
        TargetSpec::Asset(asset) => (asset.clone(), None),
        TargetSpec::Account(account) => (account.asset.clone(), Some(account.login.clone())),
    };
    let snapshot = Snapshot::for_user(store, &user.name).await.map_err(|err| {
        tracing::error!(error = %err, "cannot load the policy facts");
        internal(asset_name.to_string())
    })?;
    let Some(asset) = snapshot.asset(&asset_name) else {
        return Err(Refusal {
            target: asset_name.to_string(),
            message: format!("unknown asset {asset_name}"),
        });
    };
    let Some(access) = snapshot.as_user(&user.name, mfa, now) else {
        return Err(Refusal {
            target: asset_name.to_string(),
            message: format!(
                "{} may not use {asset_name}: the user was removed",
                user.name
            ),
        });
    };
    let login = match login {
        Some(login) if snapshot.logins_on(&asset.name).any(|l| *l == login) => login,
        Some(login) => {
            return Err(Refusal {
                target: format!("{login}@{asset_name}"),
                message: format!("unknown account {login}@{asset_name}"),
            });
        }
        None => {
            let allowed = access.allowed_logins(asset, actions);
            match allowed.as_slice() {
                [login] => (*login).clone(),
                [] => {
                    return Err(Refusal {
                        target: asset_name.to_string(),
                        message: format!(
                            "{} may not use any account on {asset_name} for {wanted}",
                            user.name
                        ),
                    });
                }
                several => {
                    let names: Vec<String> = several.iter().map(|l| l.to_string()).collect();
                    return Err(Refusal {
                        target: asset_name.to_string(),
                        message: format!(
                            "{} may use several accounts on {asset_name} ({}): name one, as in ssh {}@{}@{asset_name}@bastion",
                            user.name,
                            names.join(", "),
                            user.name,
                            names.first().map(String::as_str).unwrap_or("ACCOUNT"),
                        ),
                    });
                }
            }
        }
    };
    let target = format!("{login}@{asset_name}");
    match access.decide_any(asset, &login, actions) {
        Ok(allowed) => Ok(Resolved {
            asset: asset.clone(),
            account: login,
            grant: allowed.grant,
            rules: allowed.rules,
            actions: allowed.actions,
        }),
        Err(reason) => Err(Refusal {
            message: format!("{} may not use {target} for {wanted}: {reason}", user.name),
            target,
        }),
    }
}

/// Why the connection to a target failed, in words fit for the user.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target} is unreachable ({why})")]
    Unreachable { target: String, why: String },
    #[error(
        "the host key of {asset} has changed (pinned {expected}, presented {presented}); \
         nothing was sent. If the host was reinstalled, an administrator can pin the new key \
         with `rampart asset hostkey {asset} --key-file FILE`"
    )]
    HostKeyChanged {
        asset: String,
        expected: String,
        presented: String,
    },
    #[error(
        "the host key of {asset} is not pinned, and this node connects only to pinned targets \
         (ssh.target_host_keys = \"require-pinned\"); nothing was sent. An administrator can \
         check the key with `rampart asset hostkey {asset} --scan` and pin it"
    )]
    HostKeyNotPinned { asset: String },
    #[error("target {target} refused Rampart's credential for {account}")]
    CredentialRefused { target: String, account: String },
    #[error(
        "the credential for {account} cannot be used; the administrators can see why in the log"
    )]
    Credential { account: String },
    #[error("the connection to {target} failed ({why})")]
    Protocol { target: String, why: String },
    #[error("{asset} has no {protocol} endpoint")]
    NoEndpoint { asset: String, protocol: Protocol },
    /// No route to the target (a network domain's gateways all failed, or it has none).
    #[error("{0}")]
    Route(String),
}

impl From<DialError> for TargetError {
    fn from(err: DialError) -> Self {
        match err {
            DialError::NoEndpoint { asset, protocol } => {
                TargetError::NoEndpoint { asset, protocol }
            }
            DialError::Unreachable { target, why } => TargetError::Unreachable { target, why },
            other => TargetError::Route(other.to_string()),
        }
    }
}

/// How this node reaches targets: its one dialer and its host key rule.
#[derive(Debug, Clone)]
pub struct Reach {
    pub dialer: Dialer,
    pub host_keys: TargetHostKeys,
}

/// What to do with a target whose host key is not pinned yet (`ssh.target_host_keys`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetHostKeys {
    /// Trust the key the first connection sees, pinning it before any credential is sent.
    #[default]
    PinOnFirstUse,
    /// Refuse the target until an administrator pins its key (`rampart asset hostkey`).
    RequirePinned,
}

impl From<TargetHostKeys> for rampart_session::gateway::HostKeyPolicy {
    fn from(keys: TargetHostKeys) -> Self {
        match keys {
            TargetHostKeys::PinOnFirstUse => Self::PinOnFirstUse,
            TargetHostKeys::RequirePinned => Self::RequirePinned,
        }
    }
}

impl TargetHostKeys {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHostKeys::PinOnFirstUse => "pin-on-first-use",
            TargetHostKeys::RequirePinned => "require-pinned",
        }
    }
}

impl fmt::Display for TargetHostKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetHostKeys {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pin-on-first-use" => Ok(TargetHostKeys::PinOnFirstUse),
            "require-pinned" => Ok(TargetHostKeys::RequirePinned),
            other => Err(format!(
                "{other:?} is not one of pin-on-first-use, require-pinned"
            )),
        }
    }
}

/// What the host key check decided, for the error after a refused handshake.
#[derive(Debug, Clone)]
enum HostKeyVerdict {
    Trusted,
    /// A different key is pinned (perhaps by a concurrent first connection a moment ago).
    Changed {
        expected: PublicKey,
    },
    /// Nothing is pinned and the node requires a pinned key.
    NotPinned,
    /// The key could not be pinned or compared (the store failed): refused, fail closed.
    Unverified,
}

/// The target's host key check: compares with the pinned key, or pins the first key seen, in
/// the store, before the handshake goes on; remembers what was shown and what was decided.
pub struct PinningHandler {
    store: Arc<Store>,
    actor: Actor,
    asset: Name,
    pinned: Option<PublicKey>,
    policy: TargetHostKeys,
    presented: Arc<Mutex<Option<(PublicKey, HostKeyVerdict)>>>,
}

impl PinningHandler {
    async fn verdict(&self, key: &PublicKey) -> HostKeyVerdict {
        match (&self.pinned, self.policy) {
            (Some(pinned), _) if pinned.key_data() == key.key_data() => HostKeyVerdict::Trusted,
            (Some(pinned), _) => HostKeyVerdict::Changed {
                expected: pinned.clone(),
            },
            (None, TargetHostKeys::RequirePinned) => HostKeyVerdict::NotPinned,
            (None, TargetHostKeys::PinOnFirstUse) => self.pin_first(key).await,
        }
    }

    /// Pins `key` unless a key was pinned meanwhile (one write transaction, first writer wins);
    /// then whatever is pinned decides.
    async fn pin_first(&self, key: &PublicKey) -> HostKeyVerdict {
        let Ok(text) = key.to_openssh() else {
            return HostKeyVerdict::Unverified;
        };
        let pinned = self
            .store
            .pin_asset_host_key(&self.actor, &self.asset, &text, "first connection", false)
            .await;
        match pinned {
            Ok(true) => return HostKeyVerdict::Trusted,
            Ok(false) => {}
            Err(err) => {
                tracing::error!(asset = %self.asset, error = %err, "cannot pin the host key");
                return HostKeyVerdict::Unverified;
            }
        }
        // Another connection pinned a key first: compare with the committed one.
        let committed = match self.store.asset(&self.asset).await {
            Ok(asset) => asset.host_key,
            Err(err) => {
                tracing::error!(asset = %self.asset, error = %err, "cannot read the pinned host key");
                return HostKeyVerdict::Unverified;
            }
        };
        match committed.map(|text| PublicKey::from_openssh(&text)) {
            Some(Ok(committed)) if committed.key_data() == key.key_data() => {
                HostKeyVerdict::Trusted
            }
            Some(Ok(committed)) => HostKeyVerdict::Changed {
                expected: committed,
            },
            // Cleared again in between, or unreadable: do not guess.
            None | Some(Err(_)) => HostKeyVerdict::Unverified,
        }
    }
}

impl client::Handler for PinningHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        // Boxed: russh's session task holds the handler's future it awaits for as long as the
        // connection lives, and this one reads the store.
        let verdict = Box::pin(self.verdict(key)).await;
        let trusted = matches!(verdict, HostKeyVerdict::Trusted);
        if let Ok(mut presented) = self.presented.lock() {
            *presented = Some((key.clone(), verdict));
        }
        // INVARIANT: returning false here ends the handshake before any credential is sent.
        Ok(trusted)
    }
}

/// An authenticated SSH connection to a target.
pub struct TargetConnection {
    pub handle: client::Handle<PinningHandler>,
    /// How the connection reached the target (`direct`, `gateway NAME`).
    pub route: Route,
}

/// One configuration for every target connection (each connection would otherwise hold a copy).
fn client_config() -> Arc<client::Config> {
    static CONFIG: std::sync::OnceLock<Arc<client::Config>> = std::sync::OnceLock::new();
    CONFIG.get_or_init(new_client_config).clone()
}

fn new_client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32768,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(crate::CIPHERS),
            ..russh::Preferred::default()
        },
        ..client::Config::default()
    })
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Connects to `resolved`'s asset over a stream from the node's `dialer` and logs in with the
/// vaulted credential of its account, once its host key is trusted (`host_keys` says what to do
/// while none is pinned).
pub async fn connect_with(
    dialer: &Dialer,
    store: &Arc<Store>,
    resolved: &Resolved,
    actor: &Actor,
    host_keys: TargetHostKeys,
) -> Result<TargetConnection, TargetError> {
    let (handle, route, target) =
        handshake(dialer, store, &resolved.asset, actor, host_keys).await?;
    let account = resolved.account_ref().to_string();
    let credential_error = |err: rampart_store::StoreError| {
        tracing::error!(account = %account, error = %err, "cannot reveal the account's secret");
        TargetError::Credential {
            account: account.clone(),
        }
    };
    // Fail closed: a secret is only used when its use is on record.
    let used = AuditEvent::SecretUsed {
        account: account.clone(),
        for_user: match actor {
            Actor::User { name } => name.clone(),
            other => other.to_string(),
        },
    };
    if let Err(err) = store.record_event(actor, &used).await {
        tracing::error!(error = %err, "cannot record the use of a secret; not using it");
        return Err(TargetError::Credential {
            account: account.clone(),
        });
    }
    let (kind, secret) = store
        .reveal_account_secret(&resolved.account_ref())
        .await
        .map_err(credential_error)?;
    authenticate(
        handle,
        route,
        target,
        &resolved.account,
        account.clone(),
        kind,
        secret,
    )
    .await
}

/// Connects to `asset` and logs in as `login` with `secret` (not the vaulted one): credential
/// rotation tries a pending or an old secret with it. The caller records the use.
#[expect(
    clippy::too_many_arguments,
    reason = "one connection's facts, passed once"
)]
pub async fn connect_with_secret(
    dialer: &Dialer,
    store: &Arc<Store>,
    asset: &Asset,
    login: &Name,
    kind: SecretKind,
    secret: SecretString,
    actor: &Actor,
    host_keys: TargetHostKeys,
) -> Result<TargetConnection, TargetError> {
    let (handle, route, target) = handshake(dialer, store, asset, actor, host_keys).await?;
    let account = format!("{login}@{}", asset.name);
    authenticate(handle, route, target, login, account, kind, secret).await
}

/// Dials the asset and runs the SSH handshake up to a trusted host key.
async fn handshake(
    dialer: &Dialer,
    store: &Arc<Store>,
    asset: &Asset,
    actor: &Actor,
    host_keys: TargetHostKeys,
) -> Result<(client::Handle<PinningHandler>, Route, String), TargetError> {
    let dialed = dialer
        .dial(asset, Protocol::Ssh)
        .await
        .map_err(TargetError::from)?;
    let target = dialed.target.clone();
    let route = dialed.route.clone();
    let pinned = match &asset.host_key {
        Some(text) => Some(
            PublicKey::from_openssh(text).map_err(|_| TargetError::Protocol {
                target: target.clone(),
                why: "the pinned host key is unreadable".into(),
            })?,
        ),
        None => None,
    };
    let presented = Arc::new(Mutex::new(None));
    let handler = PinningHandler {
        store: store.clone(),
        actor: actor.clone(),
        asset: asset.name.clone(),
        pinned,
        policy: host_keys,
        presented: presented.clone(),
    };
    let connecting = client::connect_stream(client_config(), dialed.stream, handler);
    let handle = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Err(_) => {
            return Err(TargetError::Unreachable {
                target,
                why: "timed out".into(),
            });
        }
        Ok(Err(err)) => {
            let checked = presented.lock().ok().and_then(|p| p.clone());
            match checked {
                Some((shown, HostKeyVerdict::Changed { expected })) => {
                    let event = AuditEvent::HostKeyRejected {
                        asset: asset.name.to_string(),
                        expected: fingerprint(&expected),
                        presented: fingerprint(&shown),
                    };
                    if let Err(err) = store.record_event(actor, &event).await {
                        tracing::error!(error = %err, "cannot record host key rejection");
                    }
                    return Err(TargetError::HostKeyChanged {
                        asset: asset.name.to_string(),
                        expected: fingerprint(&expected),
                        presented: fingerprint(&shown),
                    });
                }
                Some((_, HostKeyVerdict::NotPinned)) => {
                    return Err(TargetError::HostKeyNotPinned {
                        asset: asset.name.to_string(),
                    });
                }
                Some((_, HostKeyVerdict::Unverified)) => {
                    return Err(TargetError::Protocol {
                        target,
                        why: "its host key could not be checked".into(),
                    });
                }
                Some((_, HostKeyVerdict::Trusted)) | None => {}
            }
            return Err(match err {
                russh::Error::IO(io) => TargetError::Unreachable {
                    target,
                    why: io.kind().to_string(),
                },
                other => TargetError::Protocol {
                    target,
                    why: other.to_string(),
                },
            });
        }
        Ok(Ok(handle)) => handle,
    };
    Ok((handle, route, target))
}

/// Logs in on an established connection with `secret`; a refusal is `CredentialRefused`.
async fn authenticate(
    mut handle: client::Handle<PinningHandler>,
    route: Route,
    target: String,
    login: &Name,
    account: String,
    kind: SecretKind,
    secret: SecretString,
) -> Result<TargetConnection, TargetError> {
    let login = login.as_str();
    let protocol = |err: russh::Error| TargetError::Protocol {
        target: target.clone(),
        why: err.to_string(),
    };
    let result =
        match kind {
            SecretKind::Password => handle
                .authenticate_password(login, secret.expose_secret())
                .await
                .map_err(protocol)?,
            SecretKind::PrivateKey => {
                let key = PrivateKey::from_openssh(secret.expose_secret().as_bytes()).map_err(|_| {
                tracing::error!(account = %account, "the vaulted private key does not parse");
                TargetError::Credential { account: account.clone() }
            })?;
                let hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(protocol)?
                    .flatten();
                handle
                    .authenticate_publickey(login, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                    .await
                    .map_err(protocol)?
            }
        };
    drop(secret);
    if !result.success() {
        return Err(TargetError::CredentialRefused { target, account });
    }
    Ok(TargetConnection { handle, route })
}

/// A target's SSH host key as `rampart asset hostkey --scan` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedHostKey {
    /// `ssh-ed25519 AAAA...`, as `rampart asset hostkey --key-file` takes it.
    pub openssh: String,
    /// `SHA256:...`, as `ssh-keygen -lf` shows it.
    pub fingerprint: String,
}

/// Reads the host key a target presents, and nothing more: the handshake is ended at the key,
/// so no credential (not even a user name) is sent.
pub async fn scan_host_key(dialer: &Dialer, asset: &Asset) -> Result<ScannedHostKey, TargetError> {
    struct Scanner(Arc<Mutex<Option<PublicKey>>>);

    impl client::Handler for Scanner {
        type Error = russh::Error;

        async fn check_server_key(
            &mut self,
            key: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            if let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key
                && let Ok(mut seen) = self.0.lock()
            {
                *seen = Some(key.clone());
            }
            Ok(false)
        }
    }

    let dialed = dialer
        .dial(asset, Protocol::Ssh)
        .await
        .map_err(TargetError::from)?;
    let target = dialed.target.clone();
    let seen = Arc::new(Mutex::new(None));
    let connecting = client::connect_stream(client_config(), dialed.stream, Scanner(seen.clone()));
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await;
    let key = seen.lock().ok().and_then(|seen| seen.clone());
    match (key, outcome) {
        (Some(key), _) => Ok(ScannedHostKey {
            openssh: key.to_openssh().map_err(|err| TargetError::Protocol {
                target: target.clone(),
                why: err.to_string(),
            })?,
            fingerprint: fingerprint(&key),
        }),
        (None, Err(_)) => Err(TargetError::Unreachable {
            target,
            why: "timed out".into(),
        }),
        (None, Ok(Err(russh::Error::IO(io)))) => Err(TargetError::Unreachable {
            target,
            why: io.kind().to_string(),
        }),
        (None, Ok(Err(other))) => Err(TargetError::Protocol {
            target,
            why: other.to_string(),
        }),
        (None, Ok(Ok(_))) => Err(TargetError::Protocol {
            target,
            why: "no host key was presented".into(),
        }),
    }
}
