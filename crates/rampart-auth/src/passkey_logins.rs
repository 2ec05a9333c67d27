//! Passkey logins and registrations through the one [`Authenticator`]: a passkey as the
//! second factor after a portal password, a passwordless portal login with a discoverable
//! passkey (which counts as password and second factor), and a user registering a passkey.
//!
//! INVARIANTS:
//! - Lockout and login rules are checked as for every login, and a refused assertion counts
//!   like a wrong password or code (against the user's password factor when the credential
//!   names a user, else the source only); every refusal is the same [`Refusal::Denied`] (A2).
//! - One challenge is one attempt: the caller takes the ceremony's state out of its store
//!   before calling, so an assertion can never be checked twice (replay).
//! - A passkey removed after its challenge was issued does not log in: the use is recorded
//!   under the write lock and must find the credential.

use crate::authenticator::{
    Attempt, Authenticator, FirstFactor, Front, PendingSecondFactor, Refusal, SecondFactor,
};
use crate::passkeys::{
    DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration, credential_id_text,
    parse_answer, parse_stored,
};
use rampart_core::audit::Actor;
use rampart_core::login_rules::LoginFactor;
use rampart_core::{Name, User};
use rampart_store::{StoreError, StoredPasskey};
use serde_json::Value;
use std::net::IpAddr;
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PublicKeyCredential, RegisterPublicKeyCredential,
};

/// How a passkey is named in the audit log: a passwordless login, and a refused passkey of
/// either ceremony (a passkey after the password succeeds as `web-password+passkey`).
const PASSWORDLESS_METHOD: &str = "web-passkey";

/// Why a passkey could not be registered.
#[derive(Debug)]
pub enum PasskeyError {
    /// No relying party configured.
    Off,
    /// The browser's answer does not check out (wrong challenge, origin, signature, shape).
    Refused(String),
    /// The store said no (a name taken, too many) or could not answer.
    Store(StoreError),
}

impl From<StoreError> for PasskeyError {
    fn from(err: StoreError) -> Self {
        PasskeyError::Store(err)
    }
}

impl Authenticator {
    /// The user's passkeys as webauthn-rs reads them (those that no longer parse left out).
    async fn user_passkeys(
        &self,
        user: &Name,
    ) -> Result<Vec<(StoredPasskey, Passkey)>, StoreError> {
        Ok(self
            .store
            .passkeys(user)
            .await?
            .into_iter()
            .filter_map(|stored| parse_stored(&stored.passkey).map(|passkey| (stored, passkey)))
            .collect())
    }

    /// Starts registering a passkey for `user`: the options for the browser and the state
    /// the caller keeps (once, in memory) until [`Self::finish_passkey_registration`].
    pub async fn start_passkey_registration(
        &self,
        user: &User,
    ) -> Result<(Value, PasskeyRegistration), PasskeyError> {
        let passkeys = self.passkeys().ok_or(PasskeyError::Off)?;
        let handle = self.store.user_handle(&user.name).await?;
        let existing: Vec<Passkey> = self
            .user_passkeys(&user.name)
            .await?
            .into_iter()
            .map(|(_, passkey)| passkey)
            .collect();
        passkeys
            .start_registration(handle, user.name.as_str(), &existing)
            .map_err(PasskeyError::Refused)
    }

    /// Checks the browser's `answer` to a registration started by
    /// [`Self::start_passkey_registration`] and stores the passkey under `name` (with its
    /// `passkey_added` event; the user's sessions end).
    pub async fn finish_passkey_registration(
        &self,
        actor: &Actor,
        user: &Name,
        name: &str,
        state: &PasskeyRegistration,
        answer: &Value,
    ) -> Result<StoredPasskey, PasskeyError> {
        let passkeys = self.passkeys().ok_or(PasskeyError::Off)?;
        rampart_store::passkeys::parse_passkey_name(name)?;
        let answer: RegisterPublicKeyCredential = parse_answer(answer)
            .ok_or_else(|| PasskeyError::Refused("not a WebAuthn registration".into()))?;
        let passkey = passkeys
            .webauthn()
            .finish_passkey_registration(&answer, state)
            .map_err(|err| PasskeyError::Refused(err.to_string()))?;
        let credential_id = credential_id_text(passkey.cred_id().as_ref());
        let text = serde_json::to_string(&passkey)
            .map_err(|err| PasskeyError::Refused(err.to_string()))?;
        Ok(self
            .store
            .add_passkey(actor, user, name, &credential_id, &text)
            .await?)
    }

    /// The challenge for the passkey that completes `pending` (a portal password login of a
    /// user with passkeys): the options for the browser and the state the caller keeps once.
    /// `Ok(None)` when no passkey can (none left, or no relying party configured).
    pub async fn passkey_challenge(
        &self,
        pending: &PendingSecondFactor,
    ) -> Result<Option<(Value, PasskeyAuthentication)>, Refusal> {
        let Some(passkeys) = self.passkeys().filter(|_| pending.passkey_possible()) else {
            return Ok(None);
        };
        let stored = self
            .user_passkeys(&pending.user.name)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "cannot read passkeys; refusing a login");
                Refusal::Unavailable
            })?;
        let credentials: Vec<Passkey> = stored.into_iter().map(|(_, passkey)| passkey).collect();
        if credentials.is_empty() {
            return Ok(None);
        }
        let (options, state) = passkeys
            .webauthn()
            .start_passkey_authentication(&credentials)
            .map_err(|err| {
                tracing::error!(error = %err, "cannot start a passkey challenge");
                Refusal::Unavailable
            })?;
        let options = serde_json::to_value(&options).map_err(|_| Refusal::Unavailable)?;
        Ok(Some((options, state)))
    }

    /// The passkey's `answer` to the challenge of [`Self::passkey_challenge`], completing
    /// `pending`. Lockout and rules are checked again; a refused answer counts against the
    /// first factor, as a wrong code, and ends the login (one answer per challenge).
    pub async fn second_factor_passkey(
        &self,
        pending: PendingSecondFactor,
        attempt: &Attempt<'_>,
        state: &PasskeyAuthentication,
        answer: &Value,
    ) -> SecondFactor {
        if !pending.is_for(attempt.login) || pending.front != attempt.front {
            return SecondFactor::Refused(Refusal::Denied);
        }
        let method = PASSWORDLESS_METHOD;
        if !self
            .admitted(attempt, Some(&pending.user), pending.factor, method)
            .await
        {
            return SecondFactor::Refused(Refusal::Denied);
        }
        let checked = match (self.passkeys(), parse_answer::<PublicKeyCredential>(answer)) {
            (Some(passkeys), Some(answer)) => passkeys
                .webauthn()
                .finish_passkey_authentication(&answer, state)
                .map_err(|err| err.to_string()),
            (None, _) => Err("no relying party configured".into()),
            (_, None) => Err("not a WebAuthn assertion".into()),
        };
        let recorded = match checked {
            Ok(result) => self.record_use(&pending.user.name, &result).await,
            Err(reason) => {
                tracing::info!(user = %pending.user.name, %reason, "passkey refused");
                Ok(false)
            }
        };
        match recorded {
            Ok(true) => {
                let first = pending.first_method;
                SecondFactor::Authenticated(
                    self.succeeded(
                        pending.user,
                        pending.factor,
                        true,
                        format!("{first}+passkey"),
                    )
                    .await,
                )
            }
            Ok(false) => {
                self.failed(attempt, Some(&pending.user), pending.factor, method)
                    .await;
                SecondFactor::Refused(Refusal::Denied)
            }
            Err(refusal) => SecondFactor::Refused(refusal),
        }
    }

    /// The challenge of a passwordless login: any discoverable passkey registered here may
    /// answer it. The state is the caller's to keep once.
    pub fn passwordless_challenge(&self) -> Result<(Value, DiscoverableAuthentication), Refusal> {
        let passkeys = self.passkeys().ok_or(Refusal::Denied)?;
        crate::passkeys::discoverable_challenge(passkeys).map_err(|err| {
            tracing::error!(error = %err, "cannot start a passkey challenge");
            Refusal::Unavailable
        })
    }

    /// A passwordless login from `source`: the passkey's `answer` names its user (the
    /// credential registered here and the user handle it was registered under), then lockout,
    /// rules and the signature are checked. A whole login with `mfa` (something the user has,
    /// unlocked by something they know or are). Counted as a password for lockout.
    pub async fn passkey_login(
        &self,
        source: IpAddr,
        state: DiscoverableAuthentication,
        answer: &Value,
    ) -> FirstFactor {
        let factor = LoginFactor::Password;
        let parsed = parse_answer::<PublicKeyCredential>(answer);
        let named = match (self.passkeys(), parsed.as_ref()) {
            (Some(passkeys), Some(answer)) => passkeys
                .webauthn()
                .identify_discoverable_authentication(answer)
                .ok()
                .map(|(handle, id)| (handle, credential_id_text(id))),
            _ => None,
        };
        let found = match &named {
            Some((_, id)) => match self.store.passkey_by_credential(id).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(error = %err, "cannot look up a passkey; refusing a login");
                    return FirstFactor::Refused(Refusal::Unavailable);
                }
            },
            None => None,
        };
        let (Some(answer), Some((handle, _)), Some((name, user_id, stored))) =
            (parsed.as_ref(), named, found)
        else {
            // Not an assertion, or a credential unknown here: nobody's to count but the source's.
            tracing::info!(%source, "passwordless login refused: unknown passkey");
            let attempt = Attempt {
                front: Front::Web,
                login: "",
                user: None,
                source,
            };
            self.failed(&attempt, None, factor, PASSWORDLESS_METHOD)
                .await;
            return FirstFactor::Refused(Refusal::Denied);
        };
        let login = name.to_string();
        let attempt = Attempt {
            front: Front::Web,
            login: &login,
            user: Some(&name),
            source,
        };
        let user = match self.lookup(Some(&name)).await {
            Ok(user) => user,
            Err(refusal) => return FirstFactor::Refused(refusal),
        };
        if !self
            .admitted(&attempt, user.as_ref(), factor, PASSWORDLESS_METHOD)
            .await
        {
            return FirstFactor::Refused(Refusal::Denied);
        }
        let checked = match (self.passkeys(), parse_stored(&stored.passkey)) {
            (Some(passkeys), Some(passkey)) if handle == user_id => passkeys
                .webauthn()
                .finish_discoverable_authentication_v2(answer, state, &passkey)
                .map_err(|err| err.to_string()),
            (_, _) if handle != user_id => Err("the passkey names another user handle".into()),
            _ => Err("the stored passkey cannot be read".into()),
        };
        let user = user.filter(|user| !user.disabled);
        let recorded = match (checked, &user) {
            (Ok(result), Some(user)) => self.record_use(&user.name, &result).await,
            (Ok(_), None) => Ok(false),
            (Err(reason), _) => {
                tracing::info!(user = %name, %reason, "passwordless login refused");
                Ok(false)
            }
        };
        match (recorded, user) {
            (Ok(true), Some(user)) => FirstFactor::Authenticated(
                self.succeeded(user, factor, true, PASSWORDLESS_METHOD.to_owned())
                    .await,
            ),
            (Err(refusal), _) => FirstFactor::Refused(refusal),
            (_, user) => {
                self.failed(&attempt, user.as_ref(), factor, PASSWORDLESS_METHOD)
                    .await;
                FirstFactor::Refused(Refusal::Denied)
            }
        }
    }

    /// A checked assertion's credential, updated (signature counter, backup flags) and its
    /// use recorded. `Ok(false)` when the user no longer has that passkey.
    async fn record_use(
        &self,
        user: &Name,
        result: &AuthenticationResult,
    ) -> Result<bool, Refusal> {
        let stored = self.user_passkeys(user).await.map_err(|err| {
            tracing::error!(error = %err, "cannot read passkeys; refusing a login");
            Refusal::Unavailable
        })?;
        let Some((stored, mut passkey)) = stored
            .into_iter()
            .find(|(_, passkey)| passkey.cred_id() == result.cred_id())
        else {
            return Ok(false);
        };
        passkey.update_credential(result);
        let text = serde_json::to_string(&passkey).map_err(|_| Refusal::Unavailable)?;
        self.store
            .record_passkey_use(user, &stored.credential_id, &text)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "cannot record a passkey's use; refusing a login");
                Refusal::Unavailable
            })
    }
}
