//! [`Authenticator`]: one login, in one order, for every front.

use crate::hashing::{PasswordChecks, too_long};
use rampart_core::login_rules::{AuthSettings, LoginFactor, check_login};
use rampart_core::{Name, SecretString, User, UserSource};
use rampart_store::ssh_ca::Certificate;
use rampart_store::{ErrorKind, LoginAttempt, Store, TokenKind, TotpCheck};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::passkeys::Passkeys;

/// Wrong codes accepted after one first factor before the second factor is refused outright.
pub const MAX_FAILED_CODES: u32 = 3;

/// The front a login came through. It only names the method in the audit log (`password`,
/// `web-password`, ...): the rules are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    Ssh,
    Web,
    /// A database client (psql) through a database listener.
    Database,
    /// A Kubernetes client (kubectl) through the Kubernetes listener.
    Kubernetes,
}

impl Front {
    fn first_factor_method(self, factor: LoginFactor) -> &'static str {
        match (self, factor) {
            (Front::Ssh, LoginFactor::Password) => "password",
            (Front::Ssh, LoginFactor::PublicKey) => "publickey",
            (Front::Web, LoginFactor::Password) => "web-password",
            (Front::Web, LoginFactor::PublicKey) => "web-publickey",
            (Front::Database, LoginFactor::Password) => "db-token",
            (Front::Database, LoginFactor::PublicKey) => "db-publickey",
            (Front::Kubernetes, LoginFactor::Password) => "kube-token",
            (Front::Kubernetes, LoginFactor::PublicKey) => "kube-publickey",
        }
    }

    fn second_factor_method(self) -> &'static str {
        match self {
            Front::Ssh => "totp",
            Front::Web => "web-totp",
            Front::Database => "db-totp",
            Front::Kubernetes => "kube-totp",
        }
    }
}

/// What a client presented as its first factor.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Password(&'a SecretString),
    /// A public key whose signature the front has verified (A4, A5: an offer is no credential),
    /// by its SHA-256 fingerprint as `ssh-keygen -l` prints it.
    VerifiedKey {
        fingerprint: &'a str,
    },
    /// A personal database token (`rampart db token`). It counts as a password for lockout and
    /// stands for a whole login: no second factor follows, and the login has `mfa: false`.
    DatabaseToken(&'a SecretString),
    /// An OpenSSH user certificate whose key's signature the front has verified. It logs in
    /// only if `rampart_store::ssh_ca::check_user_certificate` accepts it for the user against
    /// the node's user CA and the store says it was issued here and still stands. Counted as a
    /// public key for lockout.
    Certificate(&'a Certificate),
    /// A web approval at SSH login: the user answered the login's one-time link in the portal
    /// (`approved`), from a browser session that used the second factor (`mfa`) or not. The
    /// front checked that the approver is the user the login names. Counted like a key (source
    /// only) when not approved; a whole login when approved (the portal login was its factors).
    WebApproval {
        approved: bool,
        mfa: bool,
    },
    /// A personal Kubernetes token (the bearer token of a kubeconfig from `rampart kube
    /// config`): like a database token, a whole login without a second factor.
    KubernetesToken(&'a SecretString),
    /// A sign-in at the node's OpenID Connect provider: the web front verified the ID token
    /// (signature, issuer, audience, expiry, nonce) and provisioned the user it names. `mfa`:
    /// the provider says several factors were used and `[oidc] counts_as_mfa` trusts it; else
    /// a user with TOTP is asked for a code as after a password. Counted as a password for
    /// lockout: a user locked or refused by the rules cannot sign in this way either.
    IdentityProvider {
        mfa: bool,
    },
}

impl Credential<'_> {
    fn factor(&self) -> LoginFactor {
        match self {
            Credential::Password(_)
            | Credential::DatabaseToken(_)
            | Credential::KubernetesToken(_)
            | Credential::IdentityProvider { .. } => LoginFactor::Password,
            Credential::VerifiedKey { .. }
            | Credential::Certificate(_)
            | Credential::WebApproval { .. } => LoginFactor::PublicKey,
        }
    }
}

/// One login attempt as a front saw it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub front: Front,
    /// The login as the client sent it (attacker-controlled; the audit log keeps it cut and
    /// cleaned). For SSH it may carry the target (`alice@web-01`).
    pub login: &'a str,
    /// The user the login names, if it is a well-formed name (whether or not the user exists).
    pub user: Option<&'a Name>,
    /// The client's address (behind trusted proxies: the address they name, A1).
    pub source: IpAddr,
}

impl<'a> Attempt<'a> {
    /// The attempt as the store counts and audits it.
    fn record(
        &self,
        user: Option<&'a User>,
        factor: LoginFactor,
        method: &'a str,
    ) -> LoginAttempt<'a> {
        LoginAttempt {
            login: self.login,
            user: user.map(|u| &u.name),
            source: self.source,
            factor,
            method,
        }
    }
}

/// A completed login.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: User,
    /// The first factor it used.
    pub factor: LoginFactor,
    /// Whether a second factor was checked.
    pub mfa: bool,
    /// How, for the audit log: `password`, `publickey+totp`, `web-password`, ...
    pub method: String,
}

/// A first factor that passed for a user with a second factor enrolled. It grants nothing (A7):
/// only [`Authenticator::second_factor`] turns it into a [`Login`], for the same login name
/// through the same front (A6).
#[derive(Debug)]
pub struct PendingSecondFactor {
    pub(crate) front: Front,
    login: String,
    pub(crate) user: User,
    pub(crate) factor: LoginFactor,
    /// How the first factor is named in the audit log (`password`, `db-password`).
    pub(crate) first_method: &'static str,
    failed_codes: u32,
    /// Whether the user has a passkey that may complete this login (a portal password login).
    passkeys: bool,
}

impl PendingSecondFactor {
    /// Whether `login` is the very login name the first factor was for.
    pub fn is_for(&self, login: &str) -> bool {
        self.login == login
    }

    /// The login name the first factor was for.
    pub fn login(&self) -> &str {
        &self.login
    }

    /// Whether a passkey may complete it ([`Authenticator::passkey_challenge`]).
    pub fn passkey_possible(&self) -> bool {
        self.passkeys
    }
}

/// Why a login did not happen. The client sees the same answer for every [`Refusal::Denied`]:
/// unknown user, locked, refused by the rules, disabled, wrong credential (A2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    /// The store could not answer: our failure, refused as such and counted toward nobody's
    /// lockout.
    Unavailable,
}

/// What a first factor led to.
#[derive(Debug)]
pub enum FirstFactor {
    Authenticated(Login),
    SecondFactorNeeded(PendingSecondFactor),
    Refused(Refusal),
}

/// What a second factor led to.
#[derive(Debug)]
pub enum SecondFactor {
    Authenticated(Login),
    /// A wrong code, counted; another may follow (at most [`MAX_FAILED_CODES`] in all).
    Retry(PendingSecondFactor),
    Refused(Refusal),
}

/// A directory that checks its users' passwords (LDAP: a bind as the user's entry). The
/// authenticator asks it for users whose source is the directory, after lockout and the login
/// rules and before the second factor, so everything else about a login stays the same.
pub trait PasswordDirectory: Send + Sync + std::fmt::Debug {
    /// Whether `password` is `user`'s in the directory now (the directory's filter still
    /// lists them). `Err` when the directory cannot answer: refused, never counted as a guess.
    fn check_password<'a>(
        &'a self,
        user: &'a Name,
        password: &'a SecretString,
    ) -> Pin<Box<dyn Future<Output = Result<bool, DirectoryUnavailable>> + Send + 'a>>;
}

/// The directory did not answer (connection, TLS or the service bind failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryUnavailable;

/// The one authenticator every front calls: source rules and lockout, then the first factor,
/// then the second factor. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub(crate) store: Arc<Store>,
    settings: Arc<AuthSettings>,
    checks: PasswordChecks,
    /// Checks directory users' passwords; without it, they cannot log in by password.
    directory: Option<Arc<dyn PasswordDirectory>>,
    /// The WebAuthn relying party; without it, no passkey ceremony (a portal user who has
    /// passkeys still needs a second factor: TOTP, if they have it).
    passkeys: Option<Passkeys>,
}

impl Authenticator {
    pub fn new(store: Arc<Store>, settings: AuthSettings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            checks: PasswordChecks::default(),
            directory: None,
            passkeys: None,
        }
    }

    /// The same authenticator, with passkey ceremonies for the relying party `passkeys`.
    pub fn with_passkeys(mut self, passkeys: Option<Passkeys>) -> Self {
        self.passkeys = passkeys;
        self
    }

    /// The relying party passkeys are made for, if configured.
    pub fn passkeys(&self) -> Option<&Passkeys> {
        self.passkeys.as_ref()
    }

    /// The same authenticator, checking directory users' passwords with `directory`.
    pub fn with_directory(mut self, directory: Option<Arc<dyn PasswordDirectory>>) -> Self {
        self.directory = directory;
        self
    }

    /// The login rules, lockout policy and trusted proxies it applies.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// How many Argon2id checks it has run, real or spent for equal cost (metrics and tests).
    pub fn password_checks(&self) -> u64 {
        self.checks.count()
    }

    /// Whether an SSH client offering the public key `fingerprint` (without a signature yet)
    /// should be told to sign with it. An offer is not a credential (A4): nothing is counted,
    /// and only the signature that follows can log in.
    pub async fn key_offer_acceptable(&self, attempt: &Attempt<'_>, fingerprint: &str) -> bool {
        let Ok(user) = self.lookup(attempt.user).await else {
            return false;
        };
        let mut usable = user
            .as_ref()
            .is_some_and(|user| !user.disabled && has_key(user, fingerprint));
        if let Some(user) = user.as_ref().filter(|user| !usable && !user.disabled) {
            // The key of a certificate issued here to this user: the offer cannot say whether
            // the certificate comes with it, and only the signed certificate logs in.
            usable = match self
                .store
                .has_ssh_certificate_for_key(&user.name, fingerprint)
                .await
            {
                Ok(has) => has,
                Err(err) => {
                    tracing::error!(error = %err, "cannot look up SSH certificates; refusing an offer");
                    false
                }
            };
        }
        let method = attempt.front.first_factor_method(LoginFactor::PublicKey);
        usable
            && self
                .admitted(attempt, user.as_ref(), LoginFactor::PublicKey, method)
                .await
    }

    /// Source rules and lockout, then the first factor; then done, or on to the second factor
    /// for users who have one. A password attempt costs one Argon2id check whatever the outcome.
    pub async fn first_factor(
        &self,
        attempt: &Attempt<'_>,
        credential: Credential<'_>,
    ) -> FirstFactor {
        let factor = credential.factor();
        let method = match credential {
            // A database login by password (and code), not by token.
            Credential::Password(_) if attempt.front == Front::Database => "db-password",
            Credential::WebApproval { .. } => "web-approval",
            Credential::IdentityProvider { .. } => "oidc",
            _ => attempt.front.first_factor_method(factor),
        };
        let user = match self.lookup(attempt.user).await {
            Ok(user) => user,
            Err(refusal) => return FirstFactor::Refused(refusal),
        };
        if !self.admitted(attempt, user.as_ref(), factor, method).await {
            if matches!(credential, Credential::Password(_)) {
                // Locked or refused looks and costs like wrong (A2).
                self.checks.burn().await;
            }
            return FirstFactor::Refused(Refusal::Denied);
        }
        let verified = match credential {
            Credential::Password(password) => {
                match self.check_password(user.as_ref(), password).await {
                    Ok(matches) => matches,
                    Err(refusal) => return FirstFactor::Refused(refusal),
                }
            }
            Credential::VerifiedKey { fingerprint } => user
                .as_ref()
                .is_some_and(|user| !user.disabled && has_key(user, fingerprint)),
            Credential::DatabaseToken(token) => {
                match self
                    .check_db_token(user.as_ref(), token, TokenKind::Database)
                    .await
                {
                    Ok(matches) => matches,
                    Err(refusal) => return FirstFactor::Refused(refusal),
                }
            }
            Credential::KubernetesToken(token) => {
                match self
                    .check_db_token(user.as_ref(), token, TokenKind::Kubernetes)
                    .await
                {
                    Ok(matches) => matches,
                    Err(refusal) => return FirstFactor::Refused(refusal),
                }
            }
            Credential::Certificate(certificate) => {
                match self.check_certificate(user.as_ref(), certificate).await {
                    Ok(matches) => matches,
                    Err(refusal) => return FirstFactor::Refused(refusal),
                }
            }
            Credential::WebApproval { approved, .. } => {
                approved && user.as_ref().is_some_and(|user| !user.disabled)
            }
            Credential::IdentityProvider { .. } => user.as_ref().is_some_and(|user| !user.disabled),
        };
        let user = match user {
            Some(user) if verified => user,
            Some(user) if self.certified_key_alone(&user, credential).await => {
                // The key of a certificate issued here, signed without its certificate: OpenSSH
                // tries the plain key before its certificate, and the offer could not tell them
                // apart (see `key_offer_acceptable`). Refused, not counted: the holder of the
                // key is no guesser, and counting would lock every certificate user's source.
                tracing::debug!(user = %user.name, "a certified key without its certificate; refused uncounted");
                return FirstFactor::Refused(Refusal::Denied);
            }
            user => {
                // A key that is not the user's is no guess at their key (keys cannot be
                // guessed): it counts for the source only, so nobody can lock a user's key
                // logins by signing with keys of their own. A password counts for both.
                let guessed = match factor {
                    LoginFactor::Password => user.as_ref(),
                    LoginFactor::PublicKey => None,
                };
                self.failed(attempt, guessed, factor, method).await;
                return FirstFactor::Refused(Refusal::Denied);
            }
        };
        if let Credential::WebApproval { mfa, .. } = credential {
            // The portal login that approved was the factors: with TOTP if the user has it.
            if !mfa && (user.has_second_factor() || self.settings.require_mfa) {
                self.failed(attempt, None, factor, method).await;
                return FirstFactor::Refused(Refusal::Denied);
            }
            return FirstFactor::Authenticated(
                self.succeeded(user, factor, mfa, method.to_owned()).await,
            );
        }
        if let Credential::IdentityProvider { mfa: true } = credential {
            return FirstFactor::Authenticated(
                self.succeeded(user, factor, true, method.to_owned()).await,
            );
        }
        if matches!(
            credential,
            Credential::DatabaseToken(_) | Credential::KubernetesToken(_)
        ) {
            return FirstFactor::Authenticated(
                self.succeeded(user, factor, false, method.to_owned()).await,
            );
        }
        // A portal password login may be completed by a passkey instead of a TOTP code: a
        // user with a passkey has a second factor there (and only there: SSH and database
        // logins cannot do a WebAuthn ceremony).
        let passkeys = user.passkeys
            && attempt.front == Front::Web
            && matches!(credential, Credential::Password(_));
        if !user.mfa_enrolled && !passkeys {
            if self.settings.require_mfa {
                // Mandatory second factor and none enrolled: no login (enroll first).
                tracing::info!(user = %user.name, "login refused: a second factor is required and none is enrolled");
                self.failed(attempt, Some(&user), factor, method).await;
                return FirstFactor::Refused(Refusal::Denied);
            }
            return FirstFactor::Authenticated(
                self.succeeded(user, factor, false, method.to_owned()).await,
            );
        }
        FirstFactor::SecondFactorNeeded(PendingSecondFactor {
            front: attempt.front,
            login: attempt.login.to_owned(),
            user,
            factor,
            first_method: method,
            failed_codes: 0,
            passkeys,
        })
    }

    /// The TOTP `code` that completes `pending`. A different login name or front starts from
    /// scratch (A6); lockout and rules are checked again; a code is accepted once (A7); a wrong
    /// code counts against the first factor it followed.
    pub async fn second_factor(
        &self,
        mut pending: PendingSecondFactor,
        attempt: &Attempt<'_>,
        code: &str,
    ) -> SecondFactor {
        if !pending.is_for(attempt.login) || pending.front != attempt.front {
            return SecondFactor::Refused(Refusal::Denied);
        }
        let method = attempt.front.second_factor_method();
        if !self
            .admitted(attempt, Some(&pending.user), pending.factor, method)
            .await
        {
            return SecondFactor::Refused(Refusal::Denied);
        }
        let at_unix = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        match self
            .store
            .check_totp(&pending.user.name, code.trim(), at_unix)
            .await
        {
            Ok(TotpCheck::Accepted) => {
                let first = pending.first_method;
                let login = self
                    .succeeded(pending.user, pending.factor, true, format!("{first}+totp"))
                    .await;
                SecondFactor::Authenticated(login)
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot check a TOTP code; refusing a login");
                SecondFactor::Refused(Refusal::Unavailable)
            }
            Ok(other) => {
                tracing::info!(user = %pending.user.name, result = ?other, "second factor refused");
                self.failed(attempt, Some(&pending.user), pending.factor, method)
                    .await;
                pending.failed_codes += 1;
                if pending.failed_codes < MAX_FAILED_CODES {
                    SecondFactor::Retry(pending)
                } else {
                    SecondFactor::Refused(Refusal::Denied)
                }
            }
        }
    }

    /// A database client's password field: a personal database token (`rampartdb_...`), or
    /// `PASSWORD:CODE` (the user's password and a TOTP code) for a user who has both. Either
    /// goes through the same lockout, login rules and counters as every login; a password
    /// login without a code, or by a user without a second factor, is refused (a database
    /// login by password always has both factors). Any other text is checked as a token, so
    /// it fails and counts like a wrong one.
    pub async fn database_login(
        &self,
        attempt: &Attempt<'_>,
        secret: &SecretString,
    ) -> Result<Login, Refusal> {
        let text = rampart_core::ExposeSecret::expose_secret(secret);
        let split = (!text.starts_with(rampart_store::DB_TOKEN_PREFIX))
            .then(|| text.rsplit_once(':'))
            .flatten()
            .filter(|(password, code)| {
                !password.is_empty() && code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
            });
        let Some((password, code)) = split else {
            return match self
                .first_factor(attempt, Credential::DatabaseToken(secret))
                .await
            {
                FirstFactor::Authenticated(login) => Ok(login),
                FirstFactor::SecondFactorNeeded(_) => Err(Refusal::Denied),
                FirstFactor::Refused(refusal) => Err(refusal),
            };
        };
        let password = SecretString::from(password.to_owned());
        match self
            .first_factor(attempt, Credential::Password(&password))
            .await
        {
            FirstFactor::SecondFactorNeeded(pending) => {
                match self.second_factor(pending, attempt, code).await {
                    SecondFactor::Authenticated(login) => Ok(login),
                    SecondFactor::Retry(_) => Err(Refusal::Denied),
                    SecondFactor::Refused(refusal) => Err(refusal),
                }
            }
            // The right password of a user without a second factor: not enough here.
            FirstFactor::Authenticated(login) => {
                tracing::info!(user = %login.user.name, "database login by password refused: the user has no second factor");
                Err(Refusal::Denied)
            }
            FirstFactor::Refused(refusal) => Err(refusal),
        }
    }

    /// The user `name` names if they exist (enabled or not). `Err` when the store cannot answer.
    pub(crate) async fn lookup(&self, name: Option<&Name>) -> Result<Option<User>, Refusal> {
        let Some(name) = name else {
            return Ok(None);
        };
        match self.store.user(name).await {
            Ok(user) => Ok(Some(user)),
            Err(err) if err.kind() == ErrorKind::Client => Ok(None),
            Err(err) => {
                tracing::error!(error = %err, "cannot look up a user; refusing a login");
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Whether an attempt with `factor` for `user` from the attempt's address may be checked at
    /// all: that factor not locked out, and admitted by the global and the user's login rules.
    /// Rule refusals are audited (bounded) and lock nothing, since no credential was tried.
    pub(crate) async fn admitted(
        &self,
        attempt: &Attempt<'_>,
        user: Option<&User>,
        factor: LoginFactor,
        method: &str,
    ) -> bool {
        let source = attempt.source;
        let login = attempt.login;
        let now = OffsetDateTime::now_utc();
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
        if let Err(denied) = check_login(&self.settings.global, &rules, source, now) {
            tracing::info!(%login, reason = %denied, "login refused by the login rules");
            let record = attempt.record(user, factor, method);
            let recorded = self
                .store
                .record_login_refused(&record, &denied.to_string(), &self.settings.lockout, now)
                .await;
            if let Err(err) = recorded {
                tracing::error!(error = %err, "cannot record a refused login");
            }
            return false;
        }
        true
    }

    /// Whether `password` is `user`'s. Everything that is not a check of a real hash spends the
    /// same work. `Err` when the store cannot answer (not counted as a wrong password).
    async fn check_password(
        &self,
        user: Option<&User>,
        password: &SecretString,
    ) -> Result<bool, Refusal> {
        let directory_user = |user: &User| user.source == UserSource::Ldap;
        let Some(user) =
            user.filter(|user| !user.disabled && (user.has_password || directory_user(user)))
        else {
            self.checks.burn().await;
            return Ok(false);
        };
        if too_long(password) {
            self.checks.burn().await;
            return Ok(false);
        }
        if directory_user(user) {
            // The directory's password, never a local one. One Argon2id check is spent as for
            // every password attempt (A2: same cost and count), then the directory binds.
            self.checks.burn().await;
            let Some(directory) = &self.directory else {
                tracing::info!(user = %user.name, "a directory user's password login with no directory configured");
                return Ok(false);
            };
            return directory
                .check_password(&user.name, password)
                .await
                .map_err(|DirectoryUnavailable| {
                    tracing::error!(user = %user.name, "the directory cannot answer; refusing a login");
                    Refusal::Unavailable
                });
        }
        match self.store.user_password_hash(&user.name).await {
            Ok(Some(hash)) => self.checks.verify(password, hash).await.map_err(|err| {
                tracing::error!(error = %err.0, "cannot check a password; refusing a login");
                Refusal::Unavailable
            }),
            Ok(None) => {
                self.checks.burn().await;
                Ok(false)
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot read a password hash; refusing a login");
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Whether `credential` is a plain key (signed) that has a certificate issued here to `user`.
    async fn certified_key_alone(&self, user: &User, credential: Credential<'_>) -> bool {
        let Credential::VerifiedKey { fingerprint } = credential else {
            return false;
        };
        !user.disabled
            && self
                .store
                .has_ssh_certificate_for_key(&user.name, fingerprint)
                .await
                .unwrap_or(false)
    }

    /// Whether `certificate` logs in `user` (an enabled user): the user CA's judgement
    /// (`check_user_certificate`: this CA, a user certificate, its window, the user among its
    /// principals, no critical option) and the store's (issued here, still standing). `Err`
    /// when the CA key or the store cannot answer (not counted as a guess).
    async fn check_certificate(
        &self,
        user: Option<&User>,
        certificate: &Certificate,
    ) -> Result<bool, Refusal> {
        use rampart_store::ssh_ca::{CaKind, CertificateAuthority, check_user_certificate};
        let Some(user) = user.filter(|user| !user.disabled) else {
            return Ok(false);
        };
        let ca =
            CertificateAuthority::load(self.store.data_dir(), CaKind::User).map_err(|err| {
                tracing::error!(error = %err, "cannot read the user CA; refusing a login");
                Refusal::Unavailable
            })?;
        let judged = check_user_certificate(
            certificate,
            &ca.public_key(),
            user.name.as_str(),
            std::time::SystemTime::now(),
        );
        if let Err(refusal) = judged {
            tracing::info!(user = %user.name, reason = %refusal, "SSH certificate refused");
            return Ok(false);
        }
        let fingerprint = rampart_store::ssh_ca::PublicKey::from(certificate.public_key().clone())
            .fingerprint(rampart_store::ssh_ca::HashAlg::Sha256)
            .to_string();
        let stands = self
            .store
            .ssh_certificate_stands(&user.name, certificate.serial(), &fingerprint)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "cannot look up an SSH certificate; refusing a login");
                Refusal::Unavailable
            })?;
        if !stands {
            tracing::info!(user = %user.name, "SSH certificate refused: not issued here, or issued before the user's credentials changed");
        }
        Ok(stands)
    }

    /// Whether `token` is an active database token of `user` (an enabled user). `Err` when the
    /// store cannot answer (not counted as a guess).
    async fn check_db_token(
        &self,
        user: Option<&User>,
        token: &SecretString,
        kind: TokenKind,
    ) -> Result<bool, Refusal> {
        let Some(user) = user.filter(|user| !user.disabled) else {
            return Ok(false);
        };
        if too_long(token) {
            return Ok(false);
        }
        self.store
            .check_token(
                &user.name,
                rampart_core::ExposeSecret::expose_secret(token),
                kind,
            )
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "cannot check a database token; refusing a login");
                Refusal::Unavailable
            })
    }

    /// Counts a failed attempt against `factor` (the store keeps the audit trail bounded under a
    /// storm, E6). `user` is the user whose factor was guessed, if any.
    pub(crate) async fn failed(
        &self,
        attempt: &Attempt<'_>,
        user: Option<&User>,
        factor: LoginFactor,
        method: &str,
    ) {
        let record = attempt.record(user, factor, method);
        let counted = self
            .store
            .record_login_failure_detecting(
                &record,
                &self.settings.lockout,
                self.settings.failure_burst.as_ref(),
                OffsetDateTime::now_utc(),
            )
            .await;
        if let Err(err) = counted {
            tracing::error!(error = %err, "cannot count a failed login");
        }
    }

    /// A login that passed every step: the user's failure count for its factor starts again.
    /// The front records the login itself (`login_succeeded`) with what it opens.
    pub(crate) async fn succeeded(
        &self,
        user: User,
        factor: LoginFactor,
        mfa: bool,
        method: String,
    ) -> Login {
        if let Err(err) = self.store.record_login_success(&user.name, factor).await {
            tracing::error!(error = %err, "cannot reset a user's failed-login count");
        }
        Login {
            user,
            factor,
            mfa,
            method,
        }
    }
}

fn has_key(user: &User, fingerprint: &str) -> bool {
    user.keys.iter().any(|key| key.fingerprint == fingerprint)
}
