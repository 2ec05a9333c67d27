//! The login security tests A1, A2, A6, A7 and A8 (`shared/design/security-tests.md`) at the
//! authenticator's own level, against a real store in a temporary directory. The SSH and web
//! fronts only map these outcomes to their wire answers (their end-to-end tests are in
//! `crates/rampart/tests/it`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use rampart_auth::{
    Attempt, Authenticator, Credential, FirstFactor, Front, MAX_FAILED_CODES, PendingSecondFactor,
    Refusal, SecondFactor,
};
use rampart_core::audit::Actor;
use rampart_core::login_rules::{AuthSettings, LockoutPolicy, LoginRules, parse_cidr_list};
use rampart_core::{Name, Role, SecretString, mfa};
use rampart_store::ssh_keys::parse_public_keys;
use rampart_store::{MasterKeySource, Store, StoreOptions};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7GPKXDKO0bfqhmayk/bzmQcV6eTC9LRIvO5QUSk9KF alice";
const ALICE_PASSWORD: &str = "alice-password-1";
const BOB_PASSWORD: &str = "bob-password-12";

struct Lab {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    alice_key: String,
}

impl Lab {
    /// A store with alice (key and password) and bob (password).
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::create_or_open(&StoreOptions {
            data_dir: dir.path().join("data"),
            master_key: MasterKeySource::DataDir,
            database: None,
        })
        .await
        .unwrap();
        let keys = parse_public_keys("test", ALICE_KEY).unwrap();
        let alice_key = keys[0].fingerprint.clone();
        store
            .add_user(&Actor::System, &name("alice"), Role::User, &keys)
            .await
            .unwrap();
        store
            .set_user_password(&Actor::System, &name("alice"), &secret(ALICE_PASSWORD))
            .await
            .unwrap();
        store
            .add_user(&Actor::System, &name("bob"), Role::User, &[])
            .await
            .unwrap();
        store
            .set_user_password(&Actor::System, &name("bob"), &secret(BOB_PASSWORD))
            .await
            .unwrap();
        Self {
            _dir: dir,
            store: Arc::new(store),
            alice_key,
        }
    }

    fn authenticator(&self, settings: AuthSettings) -> Authenticator {
        Authenticator::new(self.store.clone(), settings)
    }

    /// Enrolls a TOTP second factor for `user`; returns its secret.
    async fn enroll(&self, user: &str) -> Vec<u8> {
        let secret = rampart_store::new_totp_secret().unwrap();
        self.store
            .enroll_totp(&Actor::System, &name(user), &secret, false, None)
            .await
            .unwrap();
        secret.to_vec()
    }

    async fn rules(&self, user: &str, allow: &str, deny: &str) {
        let rules = LoginRules {
            allow_from: parse_cidr_list("allow_from", allow).unwrap(),
            deny_from: parse_cidr_list("deny_from", deny).unwrap(),
            hours: None,
        };
        self.store
            .set_user_login_rules(&Actor::System, &name(user), &rules)
            .await
            .unwrap();
    }

    /// The kinds of the audit events written so far.
    async fn audit_kinds(&self) -> Vec<String> {
        self.store
            .audit_events_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|record| record.kind)
            .collect()
    }
}

fn name(text: &str) -> Name {
    Name::parse("user", text).unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn code_now(secret: &[u8]) -> String {
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    mfa::code_at(secret, now)
}

fn lockout(threshold: u32) -> AuthSettings {
    AuthSettings {
        lockout: LockoutPolicy {
            threshold,
            window: Duration::from_secs(600),
            lock_for: Duration::from_secs(900),
        },
        ..AuthSettings::default()
    }
}

/// An attempt with `login` from `source` through `front`; the user part is what a front parses.
struct Try {
    front: Front,
    login: String,
    user: Option<Name>,
    source: IpAddr,
}

impl Try {
    fn new(front: Front, login: &str, source: &str) -> Self {
        let user = login
            .split('@')
            .next()
            .and_then(|u| Name::parse("user", u).ok());
        Self {
            front,
            login: login.to_owned(),
            user,
            source: ip(source),
        }
    }

    fn attempt(&self) -> Attempt<'_> {
        Attempt {
            front: self.front,
            login: &self.login,
            user: self.user.as_ref(),
            source: self.source,
        }
    }

    async fn password(&self, auth: &Authenticator, password: &str) -> FirstFactor {
        let password = secret(password);
        auth.first_factor(&self.attempt(), Credential::Password(&password))
            .await
    }

    async fn key(&self, auth: &Authenticator, fingerprint: &str) -> FirstFactor {
        auth.first_factor(&self.attempt(), Credential::VerifiedKey { fingerprint })
            .await
    }

    async fn code(
        &self,
        auth: &Authenticator,
        pending: PendingSecondFactor,
        code: &str,
    ) -> SecondFactor {
        auth.second_factor(pending, &self.attempt(), code).await
    }
}

fn is_denied(outcome: &FirstFactor) -> bool {
    matches!(outcome, FirstFactor::Refused(Refusal::Denied))
}

fn logged_in_as(outcome: &FirstFactor) -> Option<&str> {
    match outcome {
        FirstFactor::Authenticated(login) => Some(login.user.name.as_str()),
        _ => None,
    }
}

fn pending(outcome: FirstFactor) -> PendingSecondFactor {
    match outcome {
        FirstFactor::SecondFactorNeeded(pending) => pending,
        other => panic!("expected a pending second factor, got {other:?}"),
    }
}

#[tokio::test]
async fn a1_failures_through_every_front_and_from_rotating_sources_share_one_lock() {
    let lab = Lab::new().await;
    let auth = lab.authenticator(lockout(3));
    // Guesses at alice's password through SSH and the web, each from another address (what
    // rotating X-Forwarded-For amounts to once the front has picked the source).
    let guesses = [
        Try::new(Front::Ssh, "alice", "192.0.2.1"),
        Try::new(Front::Web, "alice", "192.0.2.2"),
        Try::new(Front::Ssh, "alice@web-01", "192.0.2.3"),
    ];
    for guess in &guesses {
        assert!(is_denied(&guess.password(&auth, "wrong-password-1").await));
    }
    // The user's password is locked through both fronts and from any address, correct or not.
    for front in [Front::Ssh, Front::Web] {
        let fresh = Try::new(front, "alice", "198.51.100.7");
        assert!(is_denied(&fresh.password(&auth, ALICE_PASSWORD).await));
    }
    // Another authenticator over the same store (another listener) sees the same lock.
    let other_listener = lab.authenticator(lockout(3));
    let fresh = Try::new(Front::Web, "alice", "198.51.100.8");
    assert!(is_denied(
        &fresh.password(&other_listener, ALICE_PASSWORD).await
    ));
    // The lock is on the password only: alice's key still logs her in.
    let key = Try::new(Front::Ssh, "alice", "198.51.100.9");
    assert_eq!(
        logged_in_as(&key.key(&auth, &lab.alice_key).await),
        Some("alice")
    );

    // One address guessing many names (unknown ones too) locks the address for everyone.
    for login in ["carol", "dave", "nobody"] {
        let guess = Try::new(Front::Web, login, "203.0.113.5");
        assert!(is_denied(&guess.password(&auth, "guess-guess-1").await));
    }
    let bob_there = Try::new(Front::Ssh, "bob", "203.0.113.5");
    assert!(is_denied(&bob_there.password(&auth, BOB_PASSWORD).await));
    let bob_elsewhere = Try::new(Front::Ssh, "bob", "203.0.113.6");
    assert_eq!(
        logged_in_as(&bob_elsewhere.password(&auth, BOB_PASSWORD).await),
        Some("bob")
    );

    let kinds = lab.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "login_failed"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| *k == "login_locked").count() >= 2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a2_unknown_wrong_locked_disabled_and_refused_get_one_answer_for_one_check() {
    let lab = Lab::new().await;
    let auth = lab.authenticator(lockout(3));
    lab.store
        .add_user(&Actor::System, &name("keyonly"), Role::User, &[])
        .await
        .unwrap();
    lab.store
        .add_user(&Actor::System, &name("gone"), Role::User, &[])
        .await
        .unwrap();
    lab.store
        .set_user_password(&Actor::System, &name("gone"), &secret("gone-password-1"))
        .await
        .unwrap();
    lab.store
        .set_user_disabled(&Actor::System, &name("gone"), true)
        .await
        .unwrap();
    lab.rules("bob", "10.9.0.0/16", "").await;
    // Lock alice's password, and the source 192.0.2.50 with it.
    for _ in 0..3 {
        let guess = Try::new(Front::Web, "alice", "192.0.2.50");
        assert!(is_denied(&guess.password(&auth, "wrong-password-1").await));
    }

    let long = "x".repeat(5000);
    // Each case from its own address (where the case allows), so that no case is refused by
    // the source lock the cases before it built up.
    let cases: Vec<(&str, Try, &str)> = vec![
        (
            "unknown user",
            Try::new(Front::Web, "nobody", "192.0.2.1"),
            "some-password-1",
        ),
        (
            "malformed name",
            Try::new(Front::Ssh, "a b@@c", "192.0.2.2"),
            "some-password-1",
        ),
        (
            "wrong password",
            Try::new(Front::Ssh, "bob", "10.9.0.1"),
            "wrong-password-1",
        ),
        (
            "no password set",
            Try::new(Front::Web, "keyonly", "192.0.2.3"),
            "some-password-1",
        ),
        (
            "disabled user",
            Try::new(Front::Web, "gone", "192.0.2.4"),
            "gone-password-1",
        ),
        (
            "locked user",
            Try::new(Front::Ssh, "alice", "192.0.2.5"),
            ALICE_PASSWORD,
        ),
        (
            "locked source",
            Try::new(Front::Web, "bob", "192.0.2.50"),
            BOB_PASSWORD,
        ),
        (
            "refused by the rules",
            Try::new(Front::Ssh, "bob", "192.0.2.6"),
            BOB_PASSWORD,
        ),
        (
            "over-long password",
            Try::new(Front::Web, "bob", "10.9.0.2"),
            &long,
        ),
    ];
    for (case, attempt, password) in &cases {
        let before = auth.password_checks();
        let outcome = attempt.password(&auth, password).await;
        assert!(is_denied(&outcome), "{case}: {outcome:?}");
        assert_eq!(
            auth.password_checks() - before,
            1,
            "{case}: one Argon2id check, like any other attempt"
        );
    }
    // The control: a right password costs the same one check.
    let before = auth.password_checks();
    let bob = Try::new(Front::Web, "bob", "10.9.0.1");
    assert_eq!(
        logged_in_as(&bob.password(&auth, BOB_PASSWORD).await),
        Some("bob")
    );
    assert_eq!(auth.password_checks() - before, 1);
}

#[tokio::test]
async fn a6_a_second_factor_completes_only_the_login_name_and_front_it_followed() {
    let lab = Lab::new().await;
    let auth = lab.authenticator(AuthSettings::default());
    let alice_secret = lab.enroll("alice").await;
    let bob_secret = lab.enroll("bob").await;

    // Alice's first factor, then bob (with bob's own valid code) tries to finish it.
    let alice = Try::new(Front::Ssh, "alice", "192.0.2.1");
    let waiting = pending(alice.key(&auth, &lab.alice_key).await);
    assert!(waiting.is_for("alice") && !waiting.is_for("bob"));
    let bob = Try::new(Front::Ssh, "bob", "192.0.2.1");
    let outcome = bob.code(&auth, waiting, &code_now(&bob_secret)).await;
    assert!(matches!(outcome, SecondFactor::Refused(Refusal::Denied)));

    // Another target in the name is another login too.
    let waiting = pending(alice.key(&auth, &lab.alice_key).await);
    let elsewhere = Try::new(Front::Ssh, "alice@web-01", "192.0.2.1");
    let outcome = elsewhere
        .code(&auth, waiting, &code_now(&alice_secret))
        .await;
    assert!(matches!(outcome, SecondFactor::Refused(Refusal::Denied)));

    // Another front too.
    let waiting = pending(alice.key(&auth, &lab.alice_key).await);
    let web = Try::new(Front::Web, "alice", "192.0.2.1");
    let outcome = web.code(&auth, waiting, &code_now(&alice_secret)).await;
    assert!(matches!(outcome, SecondFactor::Refused(Refusal::Denied)));

    // Bob's password inside alice's web login starts bob's login from scratch: bob's first
    // factor, bob's second factor; alice's code does not complete it.
    let web_bob = Try::new(Front::Web, "bob", "192.0.2.1");
    let waiting = pending(web_bob.password(&auth, BOB_PASSWORD).await);
    let outcome = web_bob.code(&auth, waiting, &code_now(&alice_secret)).await;
    assert!(matches!(outcome, SecondFactor::Retry(_)), "{outcome:?}");

    // The very same login name and front completes it (the refusals above used no code up).
    let waiting = pending(alice.key(&auth, &lab.alice_key).await);
    match alice.code(&auth, waiting, &code_now(&alice_secret)).await {
        SecondFactor::Authenticated(login) => {
            assert_eq!(login.user.name.as_str(), "alice");
            assert!(login.mfa);
            assert_eq!(login.method, "publickey+totp");
        }
        other => panic!("alice's own code: {other:?}"),
    }
}

#[tokio::test]
async fn a7_a_pending_login_gets_nothing_codes_work_once_and_wrong_codes_are_limited() {
    let lab = Lab::new().await;
    let auth = lab.authenticator(lockout(5));
    let secret = lab.enroll("alice").await;
    let alice = Try::new(Front::Web, "alice", "192.0.2.1");

    // A right password alone is not a login.
    let outcome = alice.password(&auth, ALICE_PASSWORD).await;
    assert!(logged_in_as(&outcome).is_none());
    let waiting = pending(outcome);

    // A code logs in once; the same code again (same time step) does not.
    let code = code_now(&secret);
    match alice.code(&auth, waiting, &code).await {
        SecondFactor::Authenticated(login) => assert_eq!(login.method, "web-password+totp"),
        other => panic!("first use of the code: {other:?}"),
    }
    let waiting = pending(alice.password(&auth, ALICE_PASSWORD).await);
    assert!(matches!(
        alice.code(&auth, waiting, &code).await,
        SecondFactor::Retry(_)
    ));

    // Wrong codes: at most MAX_FAILED_CODES per first factor, then it is over.
    let mut waiting = pending(alice.password(&auth, ALICE_PASSWORD).await);
    for tried in 1..=MAX_FAILED_CODES {
        match alice.code(&auth, waiting, "000000").await {
            SecondFactor::Retry(next) if tried < MAX_FAILED_CODES => waiting = next,
            SecondFactor::Refused(Refusal::Denied) if tried == MAX_FAILED_CODES => break,
            other => panic!("wrong code {tried}: {other:?}"),
        }
    }
    // Every wrong code counted against the password (1 replay + 3 wrong = 4 of 5): one more
    // locks it, and then even the right password and a fresh code get nowhere.
    let waiting = pending(alice.password(&auth, ALICE_PASSWORD).await);
    assert!(matches!(
        alice.code(&auth, waiting, "999999").await,
        SecondFactor::Retry(_)
    ));
    assert!(is_denied(&alice.password(&auth, ALICE_PASSWORD).await));
    let kinds = lab.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "login_locked"), "{kinds:?}");
}

#[tokio::test]
async fn a8_every_credential_is_refused_by_every_policy() {
    #[derive(Debug, Clone, Copy)]
    enum Cred {
        Password,
        Key,
        PasswordAndCode,
        KeyAndCode,
    }
    #[derive(Debug, Clone, Copy)]
    enum Policy {
        None,
        GlobalAllowlist,
        GlobalDenylist,
        UserAllowlist,
        UserDenylist,
        MfaRequiredNotEnrolled,
        Disabled,
    }
    let creds = [
        Cred::Password,
        Cred::Key,
        Cred::PasswordAndCode,
        Cred::KeyAndCode,
    ];
    let policies = [
        Policy::None,
        Policy::GlobalAllowlist,
        Policy::GlobalDenylist,
        Policy::UserAllowlist,
        Policy::UserDenylist,
        Policy::MfaRequiredNotEnrolled,
        Policy::Disabled,
    ];
    for cred in creds {
        for policy in policies {
            let with_code = matches!(cred, Cred::PasswordAndCode | Cred::KeyAndCode);
            if with_code && matches!(policy, Policy::MfaRequiredNotEnrolled) {
                continue;
            }
            // A fresh store each time, so one case's counters cannot decide another's.
            let lab = Lab::new().await;
            let mut settings = AuthSettings::default();
            let cidr = |text: &str| parse_cidr_list("rule", text).unwrap();
            match policy {
                Policy::None => {}
                Policy::GlobalAllowlist => settings.global.allow_from = cidr("10.0.0.0/8"),
                Policy::GlobalDenylist => settings.global.deny_from = cidr("192.0.2.0/24"),
                Policy::UserAllowlist => lab.rules("alice", "10.0.0.0/8", "").await,
                Policy::UserDenylist => lab.rules("alice", "", "192.0.2.0/24").await,
                Policy::MfaRequiredNotEnrolled => settings.require_mfa = true,
                Policy::Disabled => {
                    lab.store
                        .set_user_disabled(&Actor::System, &name("alice"), true)
                        .await
                        .unwrap();
                }
            }
            let secret = if with_code {
                Some(lab.enroll("alice").await)
            } else {
                None
            };
            let auth = lab.authenticator(settings);
            let alice = Try::new(Front::Ssh, "alice", "192.0.2.1");
            let first = match cred {
                Cred::Password | Cred::PasswordAndCode => {
                    alice.password(&auth, ALICE_PASSWORD).await
                }
                Cred::Key | Cred::KeyAndCode => alice.key(&auth, &lab.alice_key).await,
            };
            let logged_in = match (first, &secret) {
                (FirstFactor::Authenticated(_), None) => true,
                (FirstFactor::SecondFactorNeeded(waiting), Some(secret)) => matches!(
                    alice.code(&auth, waiting, &code_now(secret)).await,
                    SecondFactor::Authenticated(_)
                ),
                (FirstFactor::Refused(Refusal::Denied), _) => false,
                (other, _) => panic!("{cred:?} under {policy:?}: {other:?}"),
            };
            assert_eq!(
                logged_in,
                matches!(policy, Policy::None),
                "{cred:?} under {policy:?}"
            );
        }
    }
}
