//! Credential rotation (issue 17): the one place that drives an account's rotation through its
//! written state machine, resumes rotations a dead process left, and runs the schedule.
//!
//! A rotation: a new secret is generated and sealed in the vault as *pending*
//! (`Store::begin_rotation`) before anything changes on the target; the target is told to change
//! it (state *applied*); a fresh login with the new secret decides: it works -> *committed* (the
//! pending secret becomes the account's secret); it does not and the old one still works ->
//! *failed* (pending discarded, alert); neither works -> *unknown* (both kept, alert). A target
//! that cannot be reached for the check leaves the rotation in flight, to resume later. Resume
//! (at `serve` start, or `account rotate` on an account with a rotation a dead process left)
//! runs the same decision: pending first, then old.
//!
//! INVARIANT: one rotation per account at a time (the store's unique index across processes,
//! `busy` within one), and the account's own secret changes only at commit, so new sessions use
//! the old secret until then.
//! INVARIANT: no secret in an error, an event or a log line: reasons come from
//! `rampart_ssh::rotate`, which never puts one in.

pub mod kits;
pub mod password;

use rampart_core::audit::Actor;
use rampart_core::{AccountRef, Asset, Protocol, SecretKind};
use rampart_ssh::rotate::{Login, LoginCheck, RotationReach, change_password, check_login};
use rampart_store::{InFlightRotation, NewAccountSecret, RotationState, Severity, Store};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Test-only failpoint (debug builds): `RAMPART_TEST_ROTATION_HALT=pending|applied` makes the
/// process stop (hang, to be killed) right after the rotation reached that state.
const HALT_ENV: &str = "RAMPART_TEST_ROTATION_HALT";

/// Why a rotation did not run or did not finish; never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Store(#[from] rampart_store::StoreError),
    #[error("{0}")]
    Unsupported(String),
    #[error("a rotation of {account} is in progress in process {pid}")]
    Busy { account: String, pid: u32 },
    #[error(transparent)]
    Random(#[from] password::NoRandomness),
}

/// What a rotation (or its resume) ended with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub account: String,
    pub rotation: String,
    pub state: RotationState,
    pub reason: String,
}

/// The rotation engine: one per process.
#[derive(Debug, Clone)]
pub struct Rotator {
    reach: RotationReach,
    busy: Arc<Mutex<HashSet<String>>>,
}

/// Holds an account for this process's one rotation of it.
struct Held {
    busy: Arc<Mutex<HashSet<String>>>,
    account: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(&self.account);
        }
    }
}

fn store_of(reach: &RotationReach) -> &Arc<Store> {
    &reach.store
}

/// Whether process `pid` is alive on this node (the store is a local SQLite file: every
/// process using it runs here).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// The new password: generated, except that a debug build (the tests') takes it from the file
/// `RAMPART_TEST_ROTATION_PASSWORD_FILE` names, so a test can look for it everywhere it must
/// not be.
fn new_password(
    length: u32,
    policy: &rampart_core::password_policy::PasswordPolicy,
) -> Result<rampart_core::SecretString, RotateError> {
    if cfg!(debug_assertions)
        && let Ok(path) = std::env::var("RAMPART_TEST_ROTATION_PASSWORD_FILE")
    {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|err| {
            RotateError::Unsupported(format!("cannot read the test password file: {err}"))
        })?);
        return Ok(rampart_core::SecretString::from(text.trim_end().to_owned()));
    }
    Ok(password::generate_with(length, policy)?)
}

fn halt_after(state: &str) {
    // Debug builds (the tests') only: a release build never halts on an environment variable.
    if cfg!(debug_assertions) && std::env::var(HALT_ENV).is_ok_and(|wanted| wanted == state) {
        tracing::warn!(state, "test failpoint: halting the rotation here");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

impl Rotator {
    pub fn new(reach: RotationReach) -> Self {
        Self {
            reach,
            busy: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The same engine (one rotation per account still holds across both) acting for `actor`:
    /// the API's caller.
    pub fn acting_for(&self, actor: Actor) -> Self {
        let mut reach = self.reach.clone();
        reach.actor = actor;
        Self {
            reach,
            busy: self.busy.clone(),
        }
    }

    fn store(&self) -> &Arc<Store> {
        store_of(&self.reach)
    }

    fn actor(&self) -> &Actor {
        &self.reach.actor
    }

    /// How the database modules reach a target: the node's dialer, and the store and actor
    /// that audit a TLS certificate that is not the pinned one.
    fn database_reach(&self) -> rampart_session::target_tls::Reach<'_> {
        rampart_session::target_tls::Reach {
            dialer: &self.reach.dialer,
            store: self.store(),
            actor: self.actor(),
        }
    }

    fn hold(&self, account: &AccountRef) -> Result<Held, RotateError> {
        let key = account.to_string();
        let mut busy = self
            .busy
            .lock()
            .map_err(|_| RotateError::Unsupported("the rotation registry is poisoned".into()))?;
        if !busy.insert(key.clone()) {
            return Err(RotateError::Busy {
                account: key,
                pid: std::process::id(),
            });
        }
        Ok(Held {
            busy: self.busy.clone(),
            account: key,
        })
    }

    /// Rotates `account` now; an unfinished rotation of it that a dead process left is
    /// resumed instead of starting a new one.
    pub async fn rotate(&self, account: &AccountRef) -> Result<Outcome, RotateError> {
        let _held = self.hold(account)?;
        if let Some(in_flight) = self.store().rotation_in_flight(account).await? {
            return self.resume_held(in_flight).await;
        }
        let asset = self.store().asset(&account.asset).await?;
        let kind = self.store().reveal_account_secret(account).await?.0;
        self.check_supported(&asset, kind)?;
        let settings = self.store().rotation_settings(account).await?;
        let secret = match kind {
            SecretKind::Password => NewAccountSecret {
                kind: SecretKind::Password,
                value: new_password(
                    settings.password_length,
                    &self.store().asset_password_policy(&account.asset).await?,
                )?,
            },
            SecretKind::PrivateKey => NewAccountSecret {
                kind: SecretKind::PrivateKey,
                value: rampart_ssh::rotate::new_key_pair(&format!("rampart {account}"))
                    .map_err(RotateError::Unsupported)?
                    .0,
            },
        };
        let rotation = self
            .store()
            .begin_rotation(self.actor(), account, &secret)
            .await?;
        drop(secret);
        halt_after("pending");
        let applied = self.apply(&asset, &rotation, &settings).await;
        if applied.is_ok() {
            self.store()
                .set_rotation_state(
                    self.actor(),
                    &rotation,
                    RotationState::Applied,
                    Severity::Info,
                    "the target accepted the new secret",
                )
                .await?;
            halt_after("applied");
        }
        self.settle(&asset, &rotation, applied.err()).await
    }

    fn check_supported(&self, asset: &Asset, kind: SecretKind) -> Result<(), RotateError> {
        let protocol = target_protocol(asset)?;
        if kind == SecretKind::PrivateKey && protocol != Protocol::Ssh {
            return Err(RotateError::Unsupported(format!(
                "{} has no ssh endpoint: key accounts rotate over SSH only",
                asset.name
            )));
        }
        Ok(())
    }

    /// A fresh login as `login` with `secret`, over the asset's protocol.
    async fn check(&self, asset: &Asset, login: &Login) -> LoginCheck {
        let reach = self.database_reach();
        let (name, secret) = (&login.login, &login.secret);
        // The database modules answer whether the login worked, or why they cannot tell.
        let answer = match target_protocol(asset) {
            Ok(Protocol::Postgres) => {
                rampart_postgres::rotate::check_login(&reach, asset, name, secret).await
            }
            Ok(Protocol::Redis) => {
                rampart_redis::rotate::check_login(&reach, asset, name, secret).await
            }
            Ok(Protocol::Mysql) => {
                rampart_mysql::rotate::check_login(&reach, asset, name, secret).await
            }
            Ok(_) => return check_login(&self.reach, asset, login).await,
            Err(err) => return LoginCheck::Unknown(err.to_string()),
        };
        match answer {
            Ok(true) => LoginCheck::Works,
            Ok(false) => LoginCheck::Refused,
            Err(why) => LoginCheck::Unknown(why),
        }
    }

    /// Changes the password on the target: through the rotation account, or as the account.
    async fn apply(
        &self,
        asset: &Asset,
        rotation: &InFlightRotation,
        settings: &rampart_store::RotationSettings,
    ) -> Result<(), String> {
        let account = &rotation.account;
        let reveal = |err: rampart_store::StoreError| format!("cannot read a secret: {err}");
        let old = self
            .store()
            .reveal_account_secret(account)
            .await
            .map_err(reveal)?
            .1;
        let new = self
            .store()
            .reveal_pending_secret(&rotation.id)
            .await
            .map_err(reveal)?;
        let via = match &settings.via_login {
            Some(via) => {
                let via_ref = AccountRef::parse(&format!("{via}@{}", account.asset))
                    .map_err(|err| err.to_string())?;
                let (kind, secret) = self
                    .store()
                    .reveal_account_secret(&via_ref)
                    .await
                    .map_err(reveal)?;
                Some(Login {
                    login: via_ref.login,
                    kind,
                    secret,
                })
            }
            None => None,
        };
        if rotation.secret_kind == SecretKind::PrivateKey {
            // Add the new key beside the old one, logged in with the old one; the old one goes
            // once the new one has logged in (`settle`).
            let public = rampart_ssh::rotate::public_line(&new)?;
            let old_login = Login {
                login: account.login.clone(),
                kind: SecretKind::PrivateKey,
                secret: old,
            };
            return rampart_ssh::rotate::add_authorized_key(
                &self.reach,
                asset,
                &old_login,
                &public,
            )
            .await;
        }
        if target_protocol(asset).map_err(|err| err.to_string())? == Protocol::Redis {
            // As the user itself (when its ACL allows `ACL SETUSER`) or the rotation account.
            let (login, secret) = match &via {
                Some(via) => (&via.login, &via.secret),
                None => (&account.login, &old),
            };
            return rampart_redis::rotate::change_password(
                &self.database_reach(),
                asset,
                &account.login,
                &new,
                (login, secret),
            )
            .await;
        }
        if target_protocol(asset).map_err(|err| err.to_string())? == Protocol::Mysql {
            // As the user itself (its own password) or the rotation account (`ALTER USER`).
            return rampart_mysql::rotate::change_password(
                &self.database_reach(),
                asset,
                &account.login,
                &old,
                &new,
                via.as_ref().map(|via| (&via.login, &via.secret)),
            )
            .await;
        }
        if target_protocol(asset).map_err(|err| err.to_string())? == Protocol::Postgres {
            // As the role itself (a role may set its own password) or the rotation account.
            let (login, secret) = match &via {
                Some(via) => (&via.login, &via.secret),
                None => (&account.login, &old),
            };
            return rampart_postgres::rotate::change_password(
                &self.database_reach(),
                asset,
                &account.login,
                &new,
                (login, secret),
            )
            .await;
        }
        change_password(&self.reach, asset, &account.login, &old, &new, via.as_ref()).await
    }

    /// Decides a rotation by fresh logins: pending first, then old.
    async fn settle(
        &self,
        asset: &Asset,
        rotation: &InFlightRotation,
        apply_error: Option<String>,
    ) -> Result<Outcome, RotateError> {
        let account = &rotation.account;
        let (_, old) = self.store().reveal_account_secret(account).await?;
        let new = self.store().reveal_pending_secret(&rotation.id).await?;
        let login = |secret| Login {
            login: account.login.clone(),
            kind: rotation.secret_kind,
            secret,
        };
        let new_check = self.check(asset, &login(new)).await;
        let (state, severity, reason) = match new_check {
            LoginCheck::Works => (
                RotationState::Committed,
                Severity::Info,
                match &apply_error {
                    None => "a fresh login with the new secret worked".to_owned(),
                    Some(err) => format!(
                        "a fresh login with the new secret worked (the change reported: {err})"
                    ),
                },
            ),
            new_check => {
                let old_check = self.check(asset, &login(old)).await;
                let why = apply_error.clone().unwrap_or_else(|| match &new_check {
                    LoginCheck::Unknown(err) => {
                        format!("the new secret could not be checked: {err}")
                    }
                    _ => "the target refused the new secret".to_owned(),
                });
                match (&new_check, old_check) {
                    (_, LoginCheck::Works) => (
                        RotationState::Failed,
                        Severity::Alert,
                        format!("{why}; the old secret still works and is kept"),
                    ),
                    (LoginCheck::Refused, LoginCheck::Refused) => (
                        RotationState::Unknown,
                        Severity::Alert,
                        format!("{why}; the old secret is refused too: both are kept"),
                    ),
                    (_, old_check) => {
                        // The target did not answer about one of them: nothing is decided.
                        let unanswered = match (&new_check, &old_check) {
                            (LoginCheck::Unknown(err), _) | (_, LoginCheck::Unknown(err)) => {
                                err.clone()
                            }
                            _ => "no answer".to_owned(),
                        };
                        let reason = format!(
                            "{why}; cannot tell which secret works ({unanswered}); the rotation \
                             stays in flight and is resumed later"
                        );
                        self.store()
                            .record_event(
                                self.actor(),
                                &rampart_core::audit::AuditEvent::AccountRotationChanged {
                                    account: account.to_string(),
                                    rotation: rotation.id.clone(),
                                    state: "stalled".into(),
                                    severity: "alert".into(),
                                    reason: reason.clone(),
                                },
                            )
                            .await?;
                        return Ok(Outcome {
                            account: account.to_string(),
                            rotation: rotation.id.clone(),
                            state: rotation.state,
                            reason,
                        });
                    }
                }
            }
        };
        match state {
            RotationState::Committed => {
                let mut reason = reason;
                if rotation.secret_kind == SecretKind::PrivateKey {
                    // The new key works: the old one is removed from authorized_keys, logged in
                    // with the new one. If that fails, the new key is still committed (it works)
                    // and a person is told the old one is still accepted.
                    let (_, old) = self.store().reveal_account_secret(account).await?;
                    let new = self.store().reveal_pending_secret(&rotation.id).await?;
                    let removed = match rampart_ssh::rotate::public_line(&old) {
                        Ok(old_public) => {
                            rampart_ssh::rotate::remove_authorized_key(
                                &self.reach,
                                asset,
                                &login(new),
                                &old_public,
                            )
                            .await
                        }
                        Err(err) => Err(err),
                    };
                    match removed {
                        Ok(()) => reason.push_str("; the old key was removed from authorized_keys"),
                        Err(err) => {
                            reason.push_str(&format!(
                                "; the old key could not be removed and may still be accepted ({err})"
                            ));
                            self.store()
                                .record_event(
                                    self.actor(),
                                    &rampart_core::audit::AuditEvent::AccountRotationChanged {
                                        account: account.to_string(),
                                        rotation: rotation.id.clone(),
                                        state: "old_key_kept".into(),
                                        severity: "alert".into(),
                                        reason: err,
                                    },
                                )
                                .await?;
                        }
                    }
                }
                if target_protocol(asset).ok() == Some(Protocol::Mysql) {
                    // MySQL 8 kept the old password as a secondary one (sessions went on
                    // using it until now): it is dropped. If that fails, the new password is
                    // still committed (it works) and a person is told the old one still is.
                    self.discard_old_mysql_password(asset, rotation, &mut reason)
                        .await?;
                }
                self.store()
                    .commit_rotation(self.actor(), rotation, &reason)
                    .await?;
                // A break-glass kit holding the old secret is sealed again with the new one.
                kits::reseal_after_rotation(self.store(), self.actor(), account).await;
                return Ok(Outcome {
                    account: account.to_string(),
                    rotation: rotation.id.clone(),
                    state,
                    reason,
                });
            }
            other => {
                self.store()
                    .set_rotation_state(self.actor(), rotation, other, severity, &reason)
                    .await?;
            }
        }
        Ok(Outcome {
            account: account.to_string(),
            rotation: rotation.id.clone(),
            state,
            reason,
        })
    }

    /// `DISCARD OLD PASSWORD` after a MySQL 8 rotation; a failure is an alert in the reason
    /// and an `old_password_kept` event, never a reason not to commit.
    async fn discard_old_mysql_password(
        &self,
        asset: &Asset,
        rotation: &InFlightRotation,
        reason: &mut String,
    ) -> Result<(), RotateError> {
        let account = &rotation.account;
        let new = self.store().reveal_pending_secret(&rotation.id).await?;
        let settings = self.store().rotation_settings(account).await?;
        let via = match &settings.via_login {
            Some(via) => {
                let via_ref = AccountRef::parse(&format!("{via}@{}", account.asset))
                    .map_err(|err| RotateError::Unsupported(err.to_string()))?;
                let secret = self.store().reveal_account_secret(&via_ref).await?.1;
                Some((via_ref.login, secret))
            }
            None => None,
        };
        let discarded = rampart_mysql::rotate::discard_old_password(
            &self.database_reach(),
            asset,
            &account.login,
            &new,
            via.as_ref().map(|(login, secret)| (login, secret)),
        )
        .await;
        match discarded {
            Ok(false) => {}
            Ok(true) => reason.push_str("; the retained old password was discarded"),
            Err(err) => {
                reason.push_str(&format!(
                    "; the retained old password could not be discarded and may still be \
                     accepted ({err})"
                ));
                self.store()
                    .record_event(
                        self.actor(),
                        &rampart_core::audit::AuditEvent::AccountRotationChanged {
                            account: account.to_string(),
                            rotation: rotation.id.clone(),
                            state: "old_password_kept".into(),
                            severity: "alert".into(),
                            reason: err,
                        },
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn resume_held(&self, rotation: InFlightRotation) -> Result<Outcome, RotateError> {
        if rotation.owner_pid != std::process::id() && alive(rotation.owner_pid) {
            return Err(RotateError::Busy {
                account: rotation.account.to_string(),
                pid: rotation.owner_pid,
            });
        }
        if !self.store().claim_rotation(self.actor(), &rotation).await? {
            return Err(RotateError::Busy {
                account: rotation.account.to_string(),
                pid: rotation.owner_pid,
            });
        }
        let asset = self.store().asset(&rotation.account.asset).await?;
        self.settle(&asset, &rotation, None).await
    }

    /// Resumes every rotation whose process is gone (at `serve` start). Each outcome or error
    /// is logged; errors do not stop the others.
    pub async fn resume_all(&self) -> Vec<Result<Outcome, RotateError>> {
        let in_flight = match self.store().rotations_in_flight().await {
            Ok(list) => list,
            Err(err) => return vec![Err(err.into())],
        };
        let mut outcomes = Vec::new();
        for rotation in in_flight {
            if alive(rotation.owner_pid) && rotation.owner_pid != std::process::id() {
                continue;
            }
            let Ok(_held) = self.hold(&rotation.account) else {
                continue;
            };
            let outcome = self.resume_held(rotation).await;
            log_outcome(&outcome);
            outcomes.push(outcome);
        }
        outcomes
    }

    /// The schedule: every `tick`, rotates the accounts whose interval has passed, until
    /// `shutdown` resolves. A failure is logged and audited by the rotation; the loop goes on.
    pub async fn run_schedule(&self, tick: Duration, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = interval.tick() => {}
            }
            let due = match self
                .store()
                .rotations_due(time::OffsetDateTime::now_utc())
                .await
            {
                Ok(due) => due,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read which accounts are due for rotation");
                    continue;
                }
            };
            for account in due {
                let outcome = self.rotate(&account).await;
                log_outcome(&outcome);
            }
        }
    }
}

impl Rotator {
    /// Rotates the account of every session that ended and whose end rotates it, every
    /// `tick` until `shutdown`: break-glass sessions (issue 17: emergency access ends in
    /// rotation) and sessions of accounts set to rotate after every session. This is the one
    /// end-of-session rotation hook. The sessions of one account that ended by the same tick
    /// are covered by one rotation; each session's outcome is recorded once (a rotation that
    /// does not commit raised its own alert). An account busy rotating elsewhere is tried
    /// again at the next tick.
    pub async fn run_session_end_rotations(
        &self,
        tick: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = interval.tick() => {}
            }
            let ended = match self.store().sessions_to_rotate().await {
                Ok(ended) => ended,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read ended sessions to rotate after");
                    continue;
                }
            };
            let mut accounts: Vec<AccountRef> = Vec::new();
            for session in &ended {
                if !accounts.contains(&session.account) {
                    accounts.push(session.account.clone());
                }
            }
            for account in accounts {
                let outcome = self.rotate(&account).await;
                log_outcome(&outcome);
                let state = match &outcome {
                    Ok(done) => done.state.as_str().to_owned(),
                    Err(RotateError::Busy { .. }) => continue,
                    Err(err) => format!("not rotated: {err}"),
                };
                for session in ended.iter().filter(|s| s.account == account) {
                    if let Err(err) = self
                        .store()
                        .record_session_end_rotation(self.actor(), session, &state)
                        .await
                    {
                        tracing::error!(error = %err, "cannot record an end-of-session rotation");
                    }
                }
            }
        }
    }
}

/// Which protocol an account of `asset` rotates over: the first endpoint the asset has of
/// ssh, postgres, mysql, redis.
fn target_protocol(asset: &Asset) -> Result<Protocol, RotateError> {
    [
        Protocol::Ssh,
        Protocol::Postgres,
        Protocol::Mysql,
        Protocol::Redis,
    ]
    .into_iter()
    .find(|protocol| asset.endpoint(*protocol).is_some())
    .ok_or_else(|| {
        RotateError::Unsupported(format!(
            "{} has no ssh, postgres, mysql or redis endpoint: only SSH, PostgreSQL, \
             MySQL/MariaDB and Redis credentials rotate",
            asset.name
        ))
    })
}

fn log_outcome(outcome: &Result<Outcome, RotateError>) {
    match outcome {
        Ok(done) if done.state == RotationState::Committed => {
            tracing::info!(account = %done.account, rotation = %done.rotation, "rotation committed");
        }
        Ok(done) => tracing::warn!(
            account = %done.account,
            rotation = %done.rotation,
            state = done.state.as_str(),
            reason = %done.reason,
            "rotation did not commit"
        ),
        Err(err) => tracing::error!(error = %err, "rotation failed"),
    }
}
