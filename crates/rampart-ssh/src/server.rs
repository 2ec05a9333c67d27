//! The user side: Rampart as an SSH server. Authenticates people with their own keys (or their
//! password, where one is set), then hands every channel to the relay.

use crate::admission::PreAuthSlot;
use crate::forward;
use crate::live::{LiveSessions, SessionGrant};
use crate::login::{LoginName, TargetSpec};
use crate::relay::{self, Evidence, SessionContext, TargetCache};
use crate::target::TargetHostKeys;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::login_rules::{AuthSettings, LoginFactor, check_login};
use rampart_core::{AccountRef, Asset, Name, SecretString, User};
use rampart_store::{ErrorKind, LoginAttempt, Store, TotpCheck};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet, SshId};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The server's SSH settings: the node's host key, modern key exchange only (with the strict
/// key exchange extension against Terrapin), and TCP_NODELAY for interactive latency.
pub fn config(host_key: PrivateKey) -> server::Config {
    let preferred = russh::Preferred {
        kex: Cow::Borrowed(&[
            russh::kex::MLKEM768X25519_SHA256,
            russh::kex::CURVE25519,
            russh::kex::CURVE25519_PRE_RFC_8731,
            russh::kex::EXTENSION_SUPPORT_AS_SERVER,
            russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        cipher: Cow::Borrowed(crate::CIPHERS),
        ..russh::Preferred::default()
    };
    server::Config {
        server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-Rampart")),
        methods: MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        ),
        auth_rejection_time: Duration::from_millis(500),
        // OpenSSH probes with "none" first; answering that at once costs nothing.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 6,
        // Idle and duration limits belong to the policy; the transport only drops dead peers.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32768,
        preferred,
        ..server::Config::default()
    }
}

/// Who is connected, once authenticated, and what they asked for.
#[derive(Debug, Clone)]
struct Identity {
    user: User,
    target: TargetSpec,
    /// Whether the login used a second factor.
    mfa: bool,
}

/// A first factor that succeeded for a user with a second factor enrolled: the connection gets
/// nothing until a TOTP code completes it (A7), and only for the same login name (A6).
#[derive(Debug, Clone)]
struct PendingMfa {
    login: String,
    user: User,
    target: TargetSpec,
    method: &'static str,
    /// The first factor the code follows: failed codes count against it.
    factor: LoginFactor,
    attempts: u32,
}

/// A user who authenticated elsewhere, and what they may ask for on this connection.
#[derive(Debug, Clone)]
pub(crate) struct Inherited {
    pub user: User,
    pub mfa: bool,
    /// How they came: "proxyjump", "web". Shown with the source address.
    pub via: &'static str,
    pub target: InheritedTarget,
}

#[derive(Debug, Clone)]
pub(crate) enum InheritedTarget {
    /// ProxyJump: this asset, the account named by the inner user name.
    Asset(Asset),
    /// A browser terminal: exactly this account.
    Account(AccountRef),
}

/// Wrong codes allowed per connection before the second factor is refused outright.
const MFA_ATTEMPTS: u32 = 3;

/// One user's SSH connection (or the inner connection of a ProxyJump).
pub struct Connection {
    store: Arc<Store>,
    evidence: Evidence,
    config: Arc<server::Config>,
    peer: SocketAddr,
    identity: Option<Identity>,
    /// Set when the user authenticated elsewhere: the inner connection of a ProxyJump, or a
    /// browser terminal.
    inherited: Option<Inherited>,
    targets: TargetCache,
    live: Arc<LiveSessions>,
    /// This connection's key in the live registry, once authenticated.
    registered: Option<u64>,
    pending_mfa: Option<PendingMfa>,
    auth: Arc<AuthSettings>,
    /// A direct connection's place among the unauthenticated ones, until it authenticates.
    unauthenticated: Option<PreAuthSlot>,
    target_host_keys: TargetHostKeys,
    /// Who authenticated, for the access record written when the connection ends.
    access_user: Arc<std::sync::OnceLock<String>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(key) = self.registered.take() {
            self.live.forget_connection(key);
        }
    }
}

impl Connection {
    pub fn new(
        store: Arc<Store>,
        evidence: Evidence,
        config: Arc<server::Config>,
        peer: SocketAddr,
        live: Arc<LiveSessions>,
        auth: Arc<AuthSettings>,
        target_host_keys: TargetHostKeys,
    ) -> Self {
        Self {
            store,
            evidence,
            config,
            peer,
            identity: None,
            inherited: None,
            targets: TargetCache::default(),
            live,
            registered: None,
            pending_mfa: None,
            auth,
            unauthenticated: None,
            target_host_keys,
            access_user: Arc::default(),
        }
    }

    /// Filled with the user's name once the connection authenticates (for the access log).
    pub(crate) fn access_user(&self) -> Arc<std::sync::OnceLock<String>> {
        self.access_user.clone()
    }

    /// Counts the connection among the unauthenticated ones (with its login deadline) until it
    /// authenticates.
    pub(crate) fn unauthenticated(mut self, slot: PreAuthSlot) -> Self {
        self.unauthenticated = Some(slot);
        self
    }

    /// Marks the connection as carrying a user authenticated elsewhere.
    pub(crate) fn inherit(mut self, inherited: Inherited) -> Self {
        self.inherited = Some(inherited);
        self
    }

    /// The authenticated identity, if the user is still enabled with the credentials they logged
    /// in with and the login rules still admit them: a revoked user's open connection opens
    /// nothing new (B4, G6).
    async fn current_identity(&self) -> Option<Identity> {
        let identity = self.identity.clone()?;
        let now = time::OffsetDateTime::now_utc();
        match self.store.user(&identity.user.name).await {
            Ok(user)
                if !user.disabled
                    && user.auth_epoch == identity.user.auth_epoch
                    && check_login(&self.auth.global, &user.login_rules, self.peer.ip(), now)
                        .is_ok() =>
            {
                Some(identity)
            }
            Ok(_) | Err(_) => {
                tracing::info!(user = %identity.user.name, "refusing a channel: the user was revoked");
                None
            }
        }
    }

    fn source(&self) -> String {
        match &self.inherited {
            Some(inherited) => format!("{} ({})", self.peer, inherited.via),
            None => self.peer.to_string(),
        }
    }

    /// The user named by `login` if they exist (enabled or not), and the target it names.
    /// The user and target a login name names. `Err` when the store cannot answer: the attempt
    /// is then refused as our failure, never counted toward anyone's lockout.
    async fn lookup(&self, login: &str) -> Result<(Option<User>, Option<TargetSpec>), ()> {
        let Ok(login) = LoginName::parse(login) else {
            return Ok((None, None));
        };
        match self.store.user(&login.user).await {
            Ok(user) => Ok((Some(user), Some(login.target))),
            Err(err) if err.kind() == ErrorKind::Client => Ok((None, Some(login.target))),
            Err(err) => {
                tracing::error!(error = %err, "cannot look up a user; refusing a login");
                Err(())
            }
        }
    }

    /// Whether an attempt with `factor` for `user` from this connection's address may be
    /// checked at all: that factor not locked out, and admitted by the global and the user's
    /// login rules. Refusals look like any other failure to the client (A2); rule refusals are
    /// audited (bounded) and lock nothing, since no credential was tried.
    async fn admitted(
        &self,
        login: &str,
        user: Option<&User>,
        factor: LoginFactor,
        method: &str,
    ) -> bool {
        let source = self.peer.ip();
        let now = time::OffsetDateTime::now_utc();
        match self
            .store
            .login_locked(user.map(|u| &u.name), source, factor, now)
            .await
        {
            Ok(None) => {}
            Ok(Some(until)) => {
                tracing::info!(%login, %source, %factor, %until, "login refused: locked out");
                return false;
            }
            Err(err) => {
                // Fail closed: without the lockout state there is no login.
                tracing::error!(error = %err, "cannot read the lockout state; refusing a login");
                return false;
            }
        }
        let rules = user.map(|u| u.login_rules.clone()).unwrap_or_default();
        if let Err(denied) = check_login(&self.auth.global, &rules, source, now) {
            tracing::info!(%login, reason = %denied, "login refused by the login rules");
            let attempt = self.attempt(login, user, factor, method);
            let recorded = self
                .store
                .record_login_refused(&attempt, &denied.to_string(), &self.auth.lockout, now)
                .await;
            if let Err(err) = recorded {
                tracing::error!(error = %err, "cannot record a refused login");
            }
            return false;
        }
        true
    }

    fn attempt<'a>(
        &self,
        login: &'a str,
        user: Option<&'a User>,
        factor: LoginFactor,
        method: &'a str,
    ) -> LoginAttempt<'a> {
        LoginAttempt {
            login,
            user: user.map(|u| &u.name),
            source: self.peer.ip(),
            factor,
            method,
        }
    }

    /// Counts a failed attempt against `factor` (the store keeps the audit trail bounded under
    /// a storm, E6). `user` is the user whose factor was guessed, if any.
    async fn failed(&self, login: &str, user: Option<&User>, factor: LoginFactor, method: &str) {
        let now = time::OffsetDateTime::now_utc();
        let attempt = self.attempt(login, user, factor, method);
        let counted = self
            .store
            .record_login_failure(&attempt, &self.auth.lockout, now)
            .await;
        if let Err(err) = counted {
            tracing::error!(error = %err, "cannot count a failed login");
        }
    }

    /// Admits the user; `factor` is the first factor they logged in with (`None` when they
    /// authenticated elsewhere).
    async fn accept(
        &mut self,
        user: User,
        target: TargetSpec,
        method: &str,
        factor: Option<LoginFactor>,
        mfa: bool,
    ) -> Auth {
        let event = AuditEvent::LoginSucceeded {
            user: user.name.to_string(),
            method: method.to_owned(),
            source: self.source(),
        };
        // Fail closed: a login that cannot be recorded does not happen.
        if let Err(err) = self
            .store
            .record_event(
                &Actor::User {
                    name: user.name.to_string(),
                },
                &event,
            )
            .await
        {
            tracing::error!(error = %err, "cannot record a login; refusing it");
            return Auth::reject();
        }
        if self.inherited.is_none()
            && let Some(factor) = factor
            && let Err(err) = self.store.record_login_success(&user.name, factor).await
        {
            tracing::error!(error = %err, "cannot reset a user's failed-login count");
        }
        self.identity = Some(Identity { user, target, mfa });
        Auth::Accept
    }

    /// A first factor succeeded: done, or on to the second factor for users who have one.
    async fn first_factor(
        &mut self,
        login: &str,
        user: User,
        target: TargetSpec,
        method: &'static str,
        factor: LoginFactor,
    ) -> Auth {
        if !user.mfa_enrolled {
            if self.auth.require_mfa {
                // Mandatory second factor and none enrolled: no login (enroll first).
                tracing::info!(user = %user.name, "login refused: a second factor is required and none is enrolled");
                self.failed(login, Some(&user), factor, method).await;
                return Auth::reject();
            }
            return self.accept(user, target, method, Some(factor), false).await;
        }
        self.pending_mfa = Some(PendingMfa {
            login: login.to_owned(),
            user,
            target,
            method,
            factor,
            attempts: 0,
        });
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: true,
        }
    }

    fn has_key(user: &User, key: &russh::keys::PublicKey) -> bool {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        user.keys.iter().any(|k| k.fingerprint == fingerprint)
    }
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let Some(slot) = self.unauthenticated.take() {
            slot.authenticated();
        }
        if let Some(identity) = &self.identity {
            let _ = self.access_user.set(identity.user.name.to_string());
            self.registered = Some(self.live.add_connection(
                &identity.user,
                self.peer.ip(),
                session.handle(),
            ));
        }
        Ok(())
    }

    async fn auth_none(&mut self, login: &str) -> Result<Auth, Self::Error> {
        // Only the inner connection of a ProxyJump needs no credential: its user already
        // authenticated on the outer connection, and the inner user name is the account.
        let Some(inherited) = self.inherited.clone() else {
            return Ok(Auth::reject());
        };
        let account = match inherited.target {
            // A jump names the account as the inner user name.
            InheritedTarget::Asset(asset) => match Name::parse("account", login) {
                Ok(login) => AccountRef {
                    login,
                    asset: asset.name,
                },
                Err(_) => return Ok(Auth::reject()),
            },
            InheritedTarget::Account(account) => account,
        };
        let target = TargetSpec::Account(account);
        Ok(self
            .accept(inherited.user, target, inherited.via, None, inherited.mfa)
            .await)
    }

    async fn auth_publickey_offered(
        &mut self,
        login: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // An offer is not a credential (A4): it only tells the client whether to sign.
        let Ok((user, _)) = self.lookup(login).await else {
            return Ok(Auth::reject());
        };
        let usable = match &user {
            Some(user) => !user.disabled && Self::has_key(user, offer.public_key),
            None => false,
        };
        if self.inherited.is_some() || !usable {
            return Ok(Auth::reject());
        }
        Ok(
            if self
                .admitted(login, user.as_ref(), LoginFactor::PublicKey, "publickey")
                .await
            {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        login: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // russh calls this only after the signature verified, for the key that signed (A5).
        let Ok((user, target)) = self.lookup(login).await else {
            return Ok(Auth::reject());
        };
        if self.inherited.is_some() {
            return Ok(Auth::reject());
        }
        if !self
            .admitted(login, user.as_ref(), LoginFactor::PublicKey, "publickey")
            .await
        {
            return Ok(Auth::reject());
        }
        match (user, target) {
            (Some(user), Some(target))
                if !user.disabled && Self::has_key(&user, key.public_key) =>
            {
                Ok(self
                    .first_factor(login, user, target, "publickey", LoginFactor::PublicKey)
                    .await)
            }
            _ => {
                // A key that is not the user's is no guess at their key (keys cannot be
                // guessed): it counts for the source only, so nobody can lock a user's key
                // logins by signing with keys of their own.
                self.failed(login, None, LoginFactor::PublicKey, "publickey")
                    .await;
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_password(&mut self, login: &str, password: &str) -> Result<Auth, Self::Error> {
        // Only users with a password set may use one; everyone else has keys.
        let Ok((user, target)) = self.lookup(login).await else {
            return Ok(Auth::reject());
        };
        if self.inherited.is_some()
            || !self
                .admitted(login, user.as_ref(), LoginFactor::Password, "password")
                .await
        {
            return Ok(Auth::reject());
        }
        let password = SecretString::from(password.to_owned());
        let matches = match &user {
            Some(user) if !user.disabled && user.has_password => {
                match self.store.check_user_password(&user.name, &password).await {
                    Ok(matches) => matches,
                    Err(err) => {
                        // Our failure, not a wrong password: refused, and not counted.
                        tracing::error!(error = %err, "cannot check a password; refusing a login");
                        return Ok(Auth::reject());
                    }
                }
            }
            // Unknown users cost the same Argon2 work as known ones, so timing tells nothing.
            _ => {
                rampart_store::burn_password_check(&password).await;
                false
            }
        };
        match (user, target) {
            (Some(user), Some(target)) if matches => Ok(self
                .first_factor(login, user, target, "password", LoginFactor::Password)
                .await),
            (user, _) => {
                self.failed(login, user.as_ref(), LoginFactor::Password, "password")
                    .await;
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        login: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        // Only as the second step of a login, for the very name the first factor was for.
        let Some(mut pending) = self.pending_mfa.take() else {
            return Ok(Auth::reject());
        };
        if pending.login != login
            || !self
                .admitted(login, Some(&pending.user), pending.factor, "totp")
                .await
        {
            return Ok(Auth::reject());
        }
        let Some(mut response) = response else {
            let prompts: &'static [(Cow<'static, str>, bool)] =
                &[(Cow::Borrowed("Verification code: "), false)];
            self.pending_mfa = Some(pending);
            return Ok(Auth::Partial {
                name: Cow::Borrowed("Rampart second factor"),
                instructions: Cow::Borrowed("Enter the code from your authenticator app."),
                prompts: Cow::Borrowed(prompts),
            });
        };
        let code = response
            .next()
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .unwrap_or_default();
        let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let check = self.store.check_totp(&pending.user.name, &code, now).await;
        match check {
            Ok(TotpCheck::Accepted) => {
                let method = format!("{}+totp", pending.method);
                Ok(self
                    .accept(
                        pending.user,
                        pending.target,
                        &method,
                        Some(pending.factor),
                        true,
                    )
                    .await)
            }
            Err(err) => {
                // Our failure, not a wrong code: refused, and not counted.
                tracing::error!(error = %err, "cannot check a TOTP code; refusing a login");
                Ok(Auth::reject())
            }
            Ok(other) => {
                tracing::info!(user = %pending.user.name, result = ?other, "second factor refused");
                self.failed(login, Some(&pending.user), pending.factor, "totp")
                    .await;
                pending.attempts += 1;
                if pending.attempts < MFA_ATTEMPTS {
                    self.pending_mfa = Some(pending);
                    return Ok(Auth::Reject {
                        proceed_with_methods: Some(MethodSet::from(
                            &[MethodKind::KeyboardInteractive][..],
                        )),
                        partial_success: true,
                    });
                }
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(identity) = self.current_identity().await else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        let context = SessionContext {
            store: self.store.clone(),
            evidence: self.evidence.clone(),
            user: identity.user,
            target: identity.target,
            source: self.source(),
            source_ip: self.peer.ip(),
            handle: session.handle(),
            targets: self.targets.clone(),
            live: self.live.clone(),
            mfa: identity.mfa,
            target_host_keys: self.target_host_keys,
        };
        tokio::spawn(relay::session_channel(context, channel));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(identity) = self.current_identity().await else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // A jump to an asset's SSH port: terminate the inner SSH connection here, so it is
        // authorized and relayed like any other session (never blind TCP forwarding).
        let asset = match self.inherited {
            Some(_) => None,
            None => find_jump_asset(&self.store, host, port).await,
        };
        let Some(asset) = asset else {
            return self.forward(identity, host, port, channel, reply).await;
        };
        reply.accept().await;
        let mut inner = Connection::new(
            self.store.clone(),
            self.evidence.clone(),
            self.config.clone(),
            self.peer,
            self.live.clone(),
            self.auth.clone(),
            self.target_host_keys,
        );
        inner.inherited = Some(Inherited {
            user: identity.user,
            mfa: identity.mfa,
            via: "proxyjump",
            target: InheritedTarget::Asset(asset),
        });
        let config = self.config.clone();
        tokio::spawn(async move {
            match server::run_stream(config, channel.into_stream(), inner).await {
                Ok(session) => {
                    if let Err(err) = session.await {
                        tracing::debug!(error = %err, "proxyjump connection ended with an error");
                    }
                }
                Err(err) => tracing::debug!(error = %err, "proxyjump handshake failed"),
            }
        });
        Ok(())
    }
}

impl Connection {
    /// `ssh -L` to a port that is not an asset's SSH port: allowed only by a `port_forward`
    /// grant, to an asset, and recorded as a session.
    async fn forward(
        &mut self,
        identity: Identity,
        host: &str,
        port: u32,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
    ) -> Result<(), russh::Error> {
        let user = &identity.user;
        let actor = Actor::User {
            name: user.name.to_string(),
        };
        let port_number = u16::try_from(port).ok().filter(|p| *p != 0);
        let decision = match (&self.inherited, port_number) {
            (Some(_), _) => {
                Err("forwarding inside a ProxyJump connection is not allowed".to_owned())
            }
            (None, None) => Err(format!("invalid port {port}")),
            (None, Some(_)) => {
                let now = time::OffsetDateTime::now_utc();
                forward::authorize(&self.store, &identity.user, host, now, identity.mfa).await
            }
        };
        let allowed = match decision {
            Ok(allowed) => allowed,
            Err(reason) => {
                let event = AuditEvent::AccessDenied {
                    user: user.name.to_string(),
                    target: format!("{host}:{port}"),
                    action: "port_forward".into(),
                    reason,
                    source: self.source(),
                };
                if let Err(err) = self.store.record_event(&actor, &event).await {
                    tracing::error!(error = %err, "cannot record a refused forward");
                }
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return Ok(());
            }
        };
        let Some(port) = port_number else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let Some(session) =
            forward::start(&self.store, user, &allowed, u32::from(port), &self.source()).await
        else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        let grant = SessionGrant {
            user: user.name.clone(),
            auth_epoch: user.auth_epoch,
            mfa: identity.mfa,
            asset: allowed.asset.name.clone(),
            account: allowed.account.clone(),
            actions: vec![rampart_core::Action::PortForward],
            interactive: false,
            idle_timeout: allowed.rules.idle_timeout,
            max_duration: allowed.rules.max_duration,
            source: self.peer.ip(),
        };
        let (registration, control) = self.live.register(session, grant);
        tokio::spawn(forward::carry(
            self.store.clone(),
            channel,
            allowed.asset.host.clone(),
            port,
            session,
            registration,
            control,
        ));
        Ok(())
    }
}

/// The asset a `direct-tcpip` request names, if it is the asset's own SSH port: by asset name
/// (`ssh -J bastion root@web-01`) or by its address (`ssh -J bastion root@10.0.0.5`).
async fn find_jump_asset(store: &Store, host: &str, port: u32) -> Option<Asset> {
    let assets = store.list_assets().await.ok()?;
    assets.into_iter().find(|asset| {
        (asset.name.as_str() == host || asset.host == host) && u32::from(asset.port) == port
    })
}
