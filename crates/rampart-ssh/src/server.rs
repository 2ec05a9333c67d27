//! The user side: Rampart as an SSH server. Authenticates people with their own keys (or their
//! password, where one is set), then hands every channel to the relay.

use crate::admission::PreAuthSlot;
use crate::forward;
use crate::live::LiveSessions;
use crate::login::{LoginName, TargetSpec};
use crate::relay::{self, Evidence, SessionContext, TargetCache};
use crate::target::{Reach, TargetHostKeys};
use crate::web_approval::{Answer, WebApprovals};
use rampart_auth::{
    Attempt, Authenticator, Credential, FirstFactor, Front, Login, PendingSecondFactor, Refusal,
    SecondFactor,
};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::login_rules::check_login;
use rampart_core::{AccountRef, Asset, Name, SecretString, User};
use rampart_session::dial::Dialer;
use rampart_store::Store;
use russh::keys::{Certificate, HashAlg, PrivateKey};
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet, SshId};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The server's SSH settings: the node's host key (and host certificates for it, on a ProxyJump
/// hop: `host_cert`), modern key exchange only (with the strict key exchange extension against
/// Terrapin), and TCP_NODELAY for interactive latency.
pub fn config(host_key: PrivateKey, certificates: Vec<Certificate>) -> server::Config {
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
        certificates,
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
#[derive(Debug)]
struct PendingMfa {
    second_factor: PendingSecondFactor,
    target: TargetSpec,
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
    auth: Authenticator,
    /// A direct connection's place among the unauthenticated ones, until it authenticates.
    unauthenticated: Option<PreAuthSlot>,
    target_host_keys: TargetHostKeys,
    /// The environment of session channels that have not started yet (answered here).
    pending_env: crate::requests::PendingEnvironments,
    target_answer_timeout: crate::TargetAnswerTimeout,
    /// Who authenticated, for the access record written when the connection ends.
    access_user: Arc<std::sync::OnceLock<String>>,
    dialer: Dialer,
    /// Certifies the host key of ProxyJump hops (outer connections only).
    host_certifier: Option<Arc<crate::host_cert::HostCertifier>>,
    /// Web approval at login, when on (outer connections only), with the portal's address.
    web_approvals: Option<(Arc<WebApprovals>, Arc<str>)>,
    /// This connection's web approval request, once shown: its id, where the answer arrives,
    /// and the login name it is for.
    approval: Option<(String, tokio::sync::watch::Receiver<Option<Answer>>, String)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let (Some((id, ..)), Some((approvals, _))) = (self.approval.take(), &self.web_approvals)
        {
            approvals.forget(&id);
        }
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
        auth: Authenticator,
        reach: Reach,
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
            target_host_keys: reach.host_keys,
            dialer: reach.dialer,
            pending_env: crate::requests::PendingEnvironments::default(),
            target_answer_timeout: crate::TargetAnswerTimeout::default(),
            access_user: Arc::default(),
            host_certifier: None,
            web_approvals: None,
            approval: None,
        }
    }

    /// Offers web approval at login on this connection.
    pub(crate) fn web_approvals(
        mut self,
        approvals: Option<(Arc<WebApprovals>, Arc<str>)>,
    ) -> Self {
        self.web_approvals = approvals;
        self
    }

    /// Presents host certificates on this connection's ProxyJump hops.
    pub(crate) fn host_certifier(
        mut self,
        certifier: Arc<crate::host_cert::HostCertifier>,
    ) -> Self {
        self.host_certifier = Some(certifier);
        self
    }

    /// How long targets have to answer this connection's sessions.
    pub(crate) fn target_answer_timeout(mut self, timeout: crate::TargetAnswerTimeout) -> Self {
        self.target_answer_timeout = timeout;
        self
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
                    && check_login(
                        &self.auth.settings().global,
                        &user.login_rules,
                        self.peer.ip(),
                        now,
                    )
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

    /// The authenticator's view of an attempt with `login`, and the target the login name asks
    /// for (`None` when the name does not parse: such a login still costs what any other does).
    fn attempt<'a>(&self, login: &'a str, parsed: Option<&'a LoginName>) -> Attempt<'a> {
        Attempt {
            front: Front::Ssh,
            login,
            user: parsed.map(|name| &name.user),
            source: self.peer.ip(),
        }
    }

    /// Admits the user (authenticated here, or elsewhere for an inherited connection).
    async fn accept(&mut self, user: User, target: TargetSpec, method: &str, mfa: bool) -> Auth {
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
        self.identity = Some(Identity { user, target, mfa });
        Auth::Accept
    }

    /// A login the authenticator completed.
    async fn logged_in(&mut self, login: Login, target: TargetSpec) -> Auth {
        self.accept(login.user, target, &login.method, login.mfa)
            .await
    }

    /// A first factor for `login`: the authenticator decides; this maps its answer onto SSH's.
    async fn first_factor(&mut self, login: &str, credential: Credential<'_>) -> Auth {
        // Credentials mean nothing on a connection whose user authenticated elsewhere.
        if self.inherited.is_some() {
            return Auth::reject();
        }
        let parsed = LoginName::parse(login).ok();
        let attempt = self.attempt(login, parsed.as_ref());
        let outcome = self.auth.first_factor(&attempt, credential).await;
        match (outcome, parsed) {
            (FirstFactor::Authenticated(login), Some(parsed)) => {
                self.logged_in(login, parsed.target).await
            }
            (FirstFactor::SecondFactorNeeded(second_factor), Some(parsed)) => {
                self.pending_mfa = Some(PendingMfa {
                    second_factor,
                    target: parsed.target,
                });
                Self::ask_for_code()
            }
            _ => Auth::reject(),
        }
    }

    /// Web approval at login (keyboard-interactive as a first factor, when it is on). The first
    /// round shows the one-time link (no prompt: OpenSSH answers at once); the answer to it
    /// waits here for the user's answer in the portal, at most the configured time. Only the
    /// user the login names can answer; a denial or no answer is a failed login.
    async fn web_approval(&mut self, login: &str, answering: bool) -> Auth {
        let Some((approvals, portal)) = self.web_approvals.clone() else {
            return Auth::reject();
        };
        if self.inherited.is_some() {
            return Auth::reject();
        }
        let parsed = LoginName::parse(login).ok();
        if !answering {
            if let Some((id, ..)) = self.approval.take() {
                approvals.forget(&id);
            }
            let Some(user) = parsed.as_ref().map(|p| p.user.clone()) else {
                return Auth::reject();
            };
            let Some((id, receiver)) = approvals.request(user, login, self.peer.ip()) else {
                return Auth::reject();
            };
            let instructions = format!(
                "Open {portal}/ssh?approve={id} in the browser where you are signed in to Rampart \
                 and approve this login (within {} s).",
                approvals.timeout().as_secs()
            );
            self.approval = Some((id, receiver, login.to_owned()));
            return Auth::Partial {
                name: Cow::Borrowed("Rampart web approval"),
                instructions: Cow::Owned(instructions),
                prompts: Cow::Borrowed(&[]),
            };
        }
        let Some((id, receiver, asked_for)) = self.approval.take() else {
            return Auth::reject();
        };
        if asked_for != login {
            approvals.forget(&id);
            return Auth::reject();
        }
        let answer = crate::web_approval::wait(receiver, approvals.timeout()).await;
        approvals.forget(&id);
        let credential = match answer {
            Some(Answer::Approved { mfa }) => Credential::WebApproval {
                approved: true,
                mfa,
            },
            Some(Answer::Denied) | None => Credential::WebApproval {
                approved: false,
                mfa: false,
            },
        };
        self.first_factor(login, credential).await
    }

    /// Partial success: only keyboard-interactive (the TOTP code) may follow.
    fn ask_for_code() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: true,
        }
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
                crate::disconnect::Disconnect::arc(session.handle()),
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
        Ok(Box::pin(self.accept(inherited.user, target, inherited.via, inherited.mfa)).await)
    }

    async fn auth_publickey_offered(
        &mut self,
        login: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // An offer is not a credential (A4): it only tells the client whether to sign.
        if self.inherited.is_some() {
            return Ok(Auth::reject());
        }
        let parsed = LoginName::parse(login).ok();
        let fingerprint = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        let attempt = self.attempt(login, parsed.as_ref());
        Ok(
            if Box::pin(self.auth.key_offer_acceptable(&attempt, &fingerprint)).await {
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
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let credential = Credential::VerifiedKey {
            fingerprint: &fingerprint,
        };
        Ok(Box::pin(self.first_factor(login, credential)).await)
    }

    async fn auth_openssh_certificate(
        &mut self,
        login: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        // russh calls this only after the certificate's key signed (A5) and the certificate's
        // own signature and window checked out; whose CA, which principal, issued here: the
        // authenticator decides.
        Ok(Box::pin(self.first_factor(login, Credential::Certificate(certificate))).await)
    }

    async fn auth_password(&mut self, login: &str, password: &str) -> Result<Auth, Self::Error> {
        let password = SecretString::from(password.to_owned());
        Ok(Box::pin(self.first_factor(login, Credential::Password(&password))).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        login: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        // As the second step of a login, for the very name the first factor was for; else,
        // when it is on, as a web approval.
        let Some(pending) = self.pending_mfa.take() else {
            return Ok(Box::pin(self.web_approval(login, response.is_some())).await);
        };
        if !pending.second_factor.is_for(login) {
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
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let parsed = LoginName::parse(login).ok();
        let attempt = self.attempt(login, parsed.as_ref());
        let PendingMfa {
            second_factor,
            target,
        } = pending;
        match Box::pin(self.auth.second_factor(second_factor, &attempt, &code)).await {
            SecondFactor::Authenticated(login) => Ok(Box::pin(self.logged_in(login, target)).await),
            SecondFactor::Retry(second_factor) => {
                self.pending_mfa = Some(PendingMfa {
                    second_factor,
                    target,
                });
                Ok(Self::ask_for_code())
            }
            SecondFactor::Refused(Refusal::Denied | Refusal::Unavailable) => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Boxed, as every handler call that awaits more than a field: russh's session task
        // holds the future of whichever call it awaits, so its size is the largest of them.
        Box::pin(self.open_session(channel, reply, session.handle())).await
    }

    // Requests before a channel starts are answered here, as they arrive (see `requests`): the
    // relay only takes note of them.

    async fn pty_request(
        &mut self,
        channel: russh::ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: russh::ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self
            .pending_env
            .request(channel, variable_name, variable_value)
        {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    /// X11 forwarding is never relayed.
    async fn x11_request(
        &mut self,
        channel: russh::ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: russh::ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending_env.done(channel);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: russh::ChannelId,
        _data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending_env.done(channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: russh::ChannelId,
        _name: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending_env.done(channel);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: russh::ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending_env.done(channel);
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
        Box::pin(self.direct_tcpip(channel, host, port, reply)).await
    }
}

impl Connection {
    /// A session channel: opened for a logged-in user, then relayed (see [`relay`]).
    async fn open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        handle: russh::server::Handle,
    ) -> Result<(), russh::Error> {
        let Some(identity) = Box::pin(self.current_identity()).await else {
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
            handle,
            targets: self.targets.clone(),
            live: self.live.clone(),
            mfa: identity.mfa,
            target_host_keys: self.target_host_keys,
            env: self.pending_env.opened(channel.id()),
            target_answer_timeout: self.target_answer_timeout.0,
            dialer: self.dialer.clone(),
        };
        tokio::spawn(relay::session_channel(context, channel));
        Ok(())
    }

    /// A `direct-tcpip` channel: a ProxyJump to an asset's SSH endpoint, or a port forward.
    async fn direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        reply: ChannelOpenHandle,
    ) -> Result<(), russh::Error> {
        let Some(identity) = Box::pin(self.current_identity()).await else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // A jump to an asset's SSH port: terminate the inner SSH connection here, so it is
        // authorized and relayed like any other session (never blind TCP forwarding).
        let asset = match self.inherited {
            Some(_) => None,
            None => match find_jump_asset(&self.store, host, port).await {
                Ok(asset) => asset,
                Err(err) => {
                    // Our failure: refused as such, never taken for "not an asset" (which
                    // would treat a jump as a port forward).
                    tracing::error!(error = %err, %host, port, "cannot look up the assets for a jump; refusing the channel");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    return Ok(());
                }
            },
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
            Reach {
                dialer: self.dialer.clone(),
                host_keys: self.target_host_keys,
            },
        )
        .target_answer_timeout(self.target_answer_timeout);
        // The hop presents the node's host key certified for this asset, when it can.
        let config = match &self.host_certifier {
            Some(certifier) => certifier.jump_config(&asset),
            None => self.config.clone(),
        };
        inner.inherited = Some(Inherited {
            user: identity.user,
            mfa: identity.mfa,
            via: "proxyjump",
            target: InheritedTarget::Asset(asset),
        });
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
            (None, Some(port)) => {
                let now = time::OffsetDateTime::now_utc();
                forward::authorize(&self.store, &identity.user, host, port, now, identity.mfa).await
            }
        };
        let allowed = match decision {
            Ok(allowed) => allowed,
            Err(reason) => {
                let event = AuditEvent::AccessDenied {
                    user: user.name.to_string(),
                    target: format!("{host}:{port}"),
                    action: rampart_core::Action::PortForward.to_string(),
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
        let source = rampart_session::Source {
            text: self.source(),
            ip: self.peer.ip(),
        };
        let authorized = allowed.authorized(identity.user.clone(), identity.mfa, source);
        let core = rampart_session::SessionCore::new(
            self.store.clone(),
            self.evidence.clone(),
            self.live.clone(),
        );
        let Ok(guard) = forward::start(&core, authorized, port).await else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(forward::carry(
            self.dialer.clone(),
            self.store.clone(),
            channel,
            allowed.asset.clone(),
            port,
            guard,
        ));
        Ok(())
    }
}

/// The asset a `direct-tcpip` request names, if it is the asset's ssh endpoint: by asset name
/// (`ssh -J bastion root@web-01`, where port 22 means the ssh endpoint wherever it listens) or
/// by its address and the endpoint's port (`ssh -J bastion -p 2222 root@10.0.0.5`); see
/// [`rampart_core::target::find_jump_target`]. `Err` when the store cannot answer.
async fn find_jump_asset(
    store: &Store,
    host: &str,
    port: u32,
) -> Result<Option<Asset>, rampart_store::StoreError> {
    let assets = store.list_assets().await?;
    Ok(rampart_core::target::find_jump_target(&assets, host, port).cloned())
}
