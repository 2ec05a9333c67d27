//! Authorization: one [`Snapshot`] of the policy facts, and the only caller of the policy
//! (`rampart_core::policy`).
//!
//! A front (the SSH menu and targets, port forwards, live enforcement, the API, `grant
//! explain`) loads one snapshot from the store (users with their groups, assets, accounts and
//! grants, read in one transaction), takes the user's view of it ([`Snapshot::as_user`]: who,
//! with or without a second factor, at what time) and asks that view. It never loads the
//! facts itself and never calls the policy directly, so every front answers the same question
//! from the same facts the same way.
//!
//! Live enforcement asks again every second for every live session: it keeps one snapshot for
//! everyone ([`Snapshot::for_everyone`]) and reloads it only when the store's change counter
//! moved past [`Snapshot::version`].

use rampart_core::policy::{self, AccessRequest};
use rampart_core::{Account, Action, Asset, Grant, Name, User};
use rampart_store::{PolicyFacts, Store, StoreError};
use std::collections::HashMap;
use time::OffsetDateTime;

pub use rampart_core::policy::{
    Decision, DenyReason, Explanation, GrantVerdict, SessionAllow, SessionRules,
};

/// The policy facts as the store held them at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    facts: PolicyFacts,
    users: HashMap<Name, usize>,
    assets: HashMap<Name, usize>,
}

impl Snapshot {
    /// The facts a request by `user` needs: that user (with their groups, as the store has them
    /// now, not as they logged in), every asset, account and grant.
    pub async fn for_user(store: &Store, user: &Name) -> Result<Self, StoreError> {
        Ok(Self::from_facts(store.policy_facts(Some(user)).await?))
    }

    /// The facts for every user, for live enforcement.
    pub async fn for_everyone(store: &Store) -> Result<Self, StoreError> {
        Ok(Self::from_facts(store.policy_facts(None).await?))
    }

    /// A snapshot of facts read elsewhere (tests build them by hand).
    pub fn from_facts(facts: PolicyFacts) -> Self {
        let users = facts
            .users
            .iter()
            .enumerate()
            .map(|(i, user)| (user.name.clone(), i))
            .collect();
        let assets = facts
            .assets
            .iter()
            .enumerate()
            .map(|(i, asset)| (asset.name.clone(), i))
            .collect();
        Self {
            facts,
            users,
            assets,
        }
    }

    /// The store's change counter when the facts were read: while
    /// [`Store::facts_version`](rampart_store::Store::facts_version) returns the same, the facts
    /// are the same, so a holder reloads only after a change.
    pub fn version(&self) -> Option<i64> {
        self.facts.version
    }

    pub fn user(&self, name: &Name) -> Option<&User> {
        self.users.get(name).and_then(|&i| self.facts.users.get(i))
    }

    /// The earliest instant after `at` at which a decision by these facts may change by the
    /// clock alone: a grant starts or ends, a grant's schedule or a user's login hours open or
    /// close. `None`: no decision changes until the facts do.
    pub fn unchanged_before(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        let grants = self
            .facts
            .grants
            .iter()
            .filter_map(|grant| policy::unchanged_before(grant, at));
        let users = self
            .facts
            .users
            .iter()
            .filter_map(|user| user.login_rules.unchanged_before(at));
        grants.chain(users).min()
    }

    /// Every asset, by name.
    pub fn assets(&self) -> &[Asset] {
        &self.facts.assets
    }

    pub fn asset(&self, name: &Name) -> Option<&Asset> {
        self.assets
            .get(name)
            .and_then(|&i| self.facts.assets.get(i))
    }

    /// The logins of the accounts on `asset`, in order.
    pub fn logins_on<'a>(&'a self, asset: &'a Name) -> impl Iterator<Item = &'a Name> + 'a {
        self.facts
            .accounts
            .iter()
            .filter(move |account| account.asset == *asset)
            .map(|account| &account.login)
    }

    /// Every grant, in creation order (an explanation's verdicts follow this order).
    pub fn grants(&self) -> &[Grant] {
        &self.facts.grants
    }

    /// Every account with its asset, by asset then login.
    fn accounts(&self) -> impl Iterator<Item = (&Asset, &Name)> {
        self.facts
            .accounts
            .iter()
            .filter_map(|account: &Account| Some((self.asset(&account.asset)?, &account.login)))
    }

    /// `user`'s view: what they may do at `at`, having logged in with a second factor (`mfa`) or
    /// not. `None` if the user is not in the snapshot (removed): such a user may do nothing.
    pub fn as_user(&self, user: &Name, mfa: bool, at: OffsetDateTime) -> Option<Access<'_>> {
        Some(Access {
            snapshot: self,
            user: self.user(user)?,
            mfa,
            at,
        })
    }
}

/// What one user may do at one time, by one snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    snapshot: &'a Snapshot,
    user: &'a User,
    mfa: bool,
    at: OffsetDateTime,
}

impl<'a> Access<'a> {
    /// The user as the snapshot holds them.
    pub fn user(&self) -> &'a User {
        self.user
    }

    fn request<'r>(&self, asset: &'r Asset, account: &'r Name, action: Action) -> AccessRequest<'r>
    where
        'a: 'r,
    {
        AccessRequest {
            user: self.user,
            asset,
            account,
            action,
            at: self.at,
            mfa: self.mfa,
        }
    }

    /// May the user use `account` on `asset` for `action`?
    pub fn decide(&self, asset: &Asset, account: &Name, action: Action) -> Decision {
        policy::decide(
            &self.request(asset, account, action),
            &self.snapshot.facts.grants,
        )
    }

    /// A session that may use any of `actions` (an SFTP session reads, writes or both): allowed
    /// if one is, and then for those only; denied with the reason of the first.
    pub fn decide_any(
        &self,
        asset: &Asset,
        account: &Name,
        actions: &[Action],
    ) -> Result<SessionAllow, DenyReason> {
        // The request's own action is ignored by `decide_any`.
        let request = self.request(asset, account, Action::Shell);
        policy::decide_any(&request, actions, &self.snapshot.facts.grants)
    }

    /// [`Self::decide_any`] among the grants `keep` accepts only (a Kubernetes request: the
    /// grants whose namespaces include the request's).
    pub fn decide_any_among(
        &self,
        asset: &Asset,
        account: &Name,
        actions: &[Action],
        keep: &dyn Fn(&rampart_core::Grant) -> bool,
    ) -> Result<SessionAllow, DenyReason> {
        let request = self.request(asset, account, Action::Shell);
        let grants: Vec<rampart_core::Grant> = self
            .snapshot
            .facts
            .grants
            .iter()
            .filter(|grant| keep(grant))
            .cloned()
            .collect();
        policy::decide_any(&request, actions, &grants)
    }

    /// The grants that allow `action` on the account now, in grant order (for messages).
    pub fn allowing_grants(
        &self,
        asset: &Asset,
        account: &Name,
        action: Action,
    ) -> Vec<&rampart_core::Grant> {
        let explained = self.explain(asset, account, action);
        self.snapshot
            .facts
            .grants
            .iter()
            .filter(|grant| {
                explained.grants.iter().any(|(id, verdict)| {
                    *id == grant.id && *verdict == policy::GrantVerdict::Allows
                })
            })
            .collect()
    }

    /// The decision with every grant's verdict, in grant order.
    pub fn explain(&self, asset: &Asset, account: &Name, action: Action) -> Explanation {
        policy::explain(
            &self.request(asset, account, action),
            &self.snapshot.facts.grants,
        )
    }

    /// Every account (with its asset) the user may use for `action`, by asset then login.
    pub fn allowed_accounts(&self, action: Action) -> Vec<(&'a Asset, &'a Name)> {
        policy::allowed_accounts(
            self.user,
            self.snapshot.accounts(),
            action,
            self.at,
            self.mfa,
            &self.snapshot.facts.grants,
        )
    }

    /// The logins on `asset` the user may use for at least one of `actions`, in order.
    pub fn allowed_logins(&self, asset: &'a Asset, actions: &[Action]) -> Vec<&'a Name> {
        self.snapshot
            .logins_on(&asset.name)
            .filter(|login| self.decide_any(asset, login, actions).is_ok())
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rampart_core::audit::Actor;
    use rampart_core::policy::AccessRequest;
    use rampart_core::{AccountRef, Label, Role, SecretKind, SecretString};
    use rampart_store::{
        GrantInput, MasterKeySource, NewAccountSecret, NewAsset, ServeLock, StoreOptions,
    };
    use std::time::Duration;

    pub(crate) fn name(text: &str) -> Name {
        Name::parse("test", text).unwrap()
    }

    /// A real store in a temporary directory.
    pub(crate) async fn store(dir: &tempfile::TempDir) -> Store {
        let data = dir.path().join("data");
        let lock = ServeLock::acquire(&data).unwrap();
        let (store, _) = Store::open_for_serving(
            &StoreOptions {
                data_dir: data,
                master_key: MasterKeySource::DataDir,
                database: None,
            },
            &lock,
        )
        .await
        .unwrap();
        store
    }

    async fn asset(store: &Store, asset: &str, labels: &[&str], logins: &[&str]) {
        store
            .add_asset(
                &Actor::System,
                &NewAsset::ssh(
                    name(asset),
                    format!("{asset}.example.test"),
                    22,
                    labels.iter().map(|l| Label::parse(l).unwrap()).collect(),
                ),
            )
            .await
            .unwrap();
        for login in logins {
            store
                .add_account(
                    &Actor::System,
                    &AccountRef {
                        login: name(login),
                        asset: name(asset),
                    },
                    &NewAccountSecret {
                        kind: SecretKind::Password,
                        value: SecretString::from("secret".to_owned()),
                    },
                )
                .await
                .unwrap();
        }
    }

    async fn grant(store: &Store, input: GrantInput) -> uuid::Uuid {
        store
            .add_grant(&Actor::System, &input.parse().unwrap())
            .await
            .unwrap()
            .id
    }

    fn for_user(user: &str) -> GrantInput {
        GrantInput {
            user: Some(user.into()),
            ..GrantInput::default()
        }
    }

    /// alice (in group ops), bob, carol (disabled); web-01 and web-02 labelled env=prod,
    /// db-01 not; grants of every kind the policy knows.
    pub(crate) async fn estate(store: &Store) {
        for user in ["alice", "bob", "carol"] {
            store
                .add_user(&Actor::System, &name(user), Role::User, &[])
                .await
                .unwrap();
        }
        store.add_group(&Actor::System, &name("ops")).await.unwrap();
        store
            .add_group_member(&Actor::System, &name("ops"), &name("alice"))
            .await
            .unwrap();
        store
            .set_user_disabled(&Actor::System, &name("carol"), true)
            .await
            .unwrap();
        asset(store, "web-01", &["env=prod"], &["deploy", "root"]).await;
        asset(store, "web-02", &["env=prod"], &["root"]).await;
        asset(store, "db-01", &[], &["postgres", "root"]).await;
        let grants = [
            // ops: a shell on every prod asset, idle 10m.
            GrantInput {
                group: Some("ops".into()),
                labels: vec!["env=prod".into()],
                actions: Some("shell".into()),
                idle_timeout: Some("10m".into()),
                ..GrantInput::default()
            },
            // alice: shell and exec on web-01 as root, at most 1h, not recorded.
            GrantInput {
                asset: Some("web-01".into()),
                accounts: vec!["root".into()],
                actions: Some("shell,exec".into()),
                max_duration: Some("1h".into()),
                no_recording: true,
                ..for_user("alice")
            },
            // alice: read files on db-01 as postgres.
            GrantInput {
                asset: Some("db-01".into()),
                accounts: vec!["postgres".into()],
                actions: Some("sftp_read".into()),
                ..for_user("alice")
            },
            // bob: write files (and forward ports) on db-01, with a second factor.
            GrantInput {
                asset: Some("db-01".into()),
                actions: Some("sftp_write,port_forward".into()),
                require_mfa: true,
                ..for_user("bob")
            },
            // bob: web-02, but only from 2090 to 2091.
            GrantInput {
                asset: Some("web-02".into()),
                from: Some("2090-01-01T00:00:00Z".into()),
                until: Some("2091-01-01T00:00:00Z".into()),
                ..for_user("bob")
            },
            // carol: everything on db-01 (she is disabled).
            GrantInput {
                asset: Some("db-01".into()),
                ..for_user("carol")
            },
        ];
        for input in grants {
            grant(store, input).await;
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The snapshot answers every question exactly as the policy did on facts loaded the old
    /// way (each list on its own, then filtered), for every user, account, action and factor.
    #[tokio::test]
    async fn the_snapshot_decides_as_the_policy_on_separately_loaded_facts() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let (users, assets, accounts, grants) = (
            store.list_users().await.unwrap(),
            store.list_assets().await.unwrap(),
            store.list_accounts(None).await.unwrap(),
            store.list_grants().await.unwrap(),
        );
        let at = now();
        let mut asked = 0;
        for user in &users {
            let snapshot = Snapshot::for_user(&store, &user.name).await.unwrap();
            for mfa in [false, true] {
                let access = snapshot.as_user(&user.name, mfa, at).unwrap();
                for account in &accounts {
                    let asset = assets.iter().find(|a| a.name == account.asset).unwrap();
                    for action in Action::ALL {
                        let request = AccessRequest {
                            user,
                            asset,
                            account: &account.login,
                            action,
                            at,
                            mfa,
                        };
                        assert_eq!(
                            access.decide(asset, &account.login, action),
                            policy::decide(&request, &grants),
                            "{} {}@{} {action} mfa={mfa}",
                            user.name,
                            account.login,
                            asset.name
                        );
                        assert_eq!(
                            access.explain(asset, &account.login, action),
                            policy::explain(&request, &grants)
                        );
                        asked += 1;
                    }
                }
                let pairs: Vec<(Asset, Name)> = accounts
                    .iter()
                    .map(|a| {
                        let asset = assets.iter().find(|s| s.name == a.asset).unwrap();
                        (asset.clone(), a.login.clone())
                    })
                    .collect();
                for action in Action::ALL {
                    let old: Vec<(&Asset, &Name)> = policy::allowed_accounts(
                        user,
                        pairs.iter().map(|(asset, login)| (asset, login)),
                        action,
                        at,
                        mfa,
                        &grants,
                    );
                    let new = access.allowed_accounts(action);
                    assert_eq!(
                        new.iter()
                            .map(|(a, l)| format!("{l}@{}", a.name))
                            .collect::<Vec<_>>(),
                        old.iter()
                            .map(|(a, l)| format!("{l}@{}", a.name))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
        assert_eq!(asked, 3 * 2 * 5 * Action::ALL.len());
    }

    #[tokio::test]
    async fn allows_and_denies_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let at = now();
        let alice = Snapshot::for_user(&store, &name("alice")).await.unwrap();
        let alice = alice.as_user(&name("alice"), false, at).unwrap();
        let bob_facts = Snapshot::for_user(&store, &name("bob")).await.unwrap();
        let bob = bob_facts.as_user(&name("bob"), false, at).unwrap();
        let bob_mfa = bob_facts.as_user(&name("bob"), true, at).unwrap();
        let carol = Snapshot::for_user(&store, &name("carol")).await.unwrap();
        let carol = carol.as_user(&name("carol"), true, at).unwrap();
        let snapshot = Snapshot::for_everyone(&store).await.unwrap();
        let web1 = snapshot.asset(&name("web-01")).unwrap();
        let web2 = snapshot.asset(&name("web-02")).unwrap();
        let db1 = snapshot.asset(&name("db-01")).unwrap();
        let deny = |decision: Decision| match decision {
            Decision::Deny(reason) => reason,
            Decision::Allow { .. } => panic!("allowed"),
        };

        // Through the group, on a labelled asset, on any account.
        assert!(alice.decide(web2, &name("root"), Action::Shell).is_allow());
        assert!(
            alice
                .decide(web1, &name("deploy"), Action::Shell)
                .is_allow()
        );
        assert_eq!(
            deny(alice.decide(web1, &name("deploy"), Action::Exec)),
            DenyReason::ActionNotAllowed {
                action: Action::Exec
            }
        );
        assert_eq!(
            deny(bob.decide(web1, &name("root"), Action::Shell)),
            DenyReason::NoGrant
        );
        assert_eq!(
            deny(bob.decide(db1, &name("root"), Action::SftpWrite)),
            DenyReason::MfaRequired
        );
        assert!(
            bob_mfa
                .decide(db1, &name("root"), Action::SftpWrite)
                .is_allow()
        );
        let outside = deny(bob.decide(web2, &name("root"), Action::Shell));
        assert!(
            matches!(outside, DenyReason::OutsideValidity { .. }),
            "{outside:?}"
        );
        assert_eq!(
            outside.to_string(),
            "the grant is not valid now (valid from 2090-01-01T00:00:00Z until \
             2091-01-01T00:00:00Z)"
        );
        assert_eq!(
            deny(carol.decide(db1, &name("root"), Action::Shell)),
            DenyReason::UserDisabled
        );
        // A user the snapshot does not hold may do nothing: another user's, or a removed one.
        assert!(bob_facts.as_user(&name("alice"), false, at).is_none());
        store
            .remove_user(&Actor::System, &name("bob"))
            .await
            .unwrap();
        let gone = Snapshot::for_user(&store, &name("bob")).await.unwrap();
        assert!(gone.as_user(&name("bob"), true, at).is_none());
    }

    /// Several allowing grants: the first in creation order is named, the rules are the
    /// strictest of all (shortest limits, recorded if any records).
    #[tokio::test]
    async fn several_grants_give_the_strictest_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let first = store.list_grants().await.unwrap()[0].id;
        let snapshot = Snapshot::for_user(&store, &name("alice")).await.unwrap();
        let alice = snapshot.as_user(&name("alice"), false, now()).unwrap();
        let web1 = snapshot.asset(&name("web-01")).unwrap();
        let Decision::Allow { grant, rules } = alice.decide(web1, &name("root"), Action::Shell)
        else {
            panic!("denied");
        };
        assert_eq!(grant, first);
        assert_eq!(rules.idle_timeout.shortest, Some(Duration::from_secs(600)));
        assert_eq!(rules.max_duration.shortest, Some(Duration::from_secs(3600)));
        // Each grant leaves one limit unset, so the node's defaults apply too.
        assert!(rules.max_duration.default_applies);
        assert!(rules.idle_timeout.default_applies);
        assert!(
            rules.record,
            "one grant records, so the session is recorded"
        );
        // Exec is allowed by the unrecorded grant alone: not recorded.
        let Decision::Allow { rules, .. } = alice.decide(web1, &name("root"), Action::Exec) else {
            panic!("denied");
        };
        assert!(!rules.record);
    }

    /// An SFTP session asks for reading or writing: allowed for the directions granted, denied
    /// with the first direction's reason, and a session on an asset resolves to the one account
    /// that allows either.
    #[tokio::test]
    async fn sftp_is_allowed_in_either_direction_granted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let sftp = [Action::SftpRead, Action::SftpWrite];
        let at = now();
        let snapshot = Snapshot::for_everyone(&store).await.unwrap();
        let db1 = snapshot.asset(&name("db-01")).unwrap();
        let alice = snapshot.as_user(&name("alice"), false, at).unwrap();
        let allowed = alice.decide_any(db1, &name("postgres"), &sftp).unwrap();
        assert_eq!(allowed.actions, vec![Action::SftpRead]);
        let bob = snapshot.as_user(&name("bob"), true, at).unwrap();
        let allowed = bob.decide_any(db1, &name("postgres"), &sftp).unwrap();
        assert_eq!(allowed.actions, vec![Action::SftpWrite]);
        assert_eq!(
            alice.decide_any(db1, &name("root"), &sftp).unwrap_err(),
            DenyReason::NoGrant,
            "her grant names another account"
        );
        let bob_without = snapshot.as_user(&name("bob"), false, at).unwrap();
        assert_eq!(
            bob_without
                .decide_any(db1, &name("root"), &sftp)
                .unwrap_err(),
            DenyReason::ActionNotAllowed {
                action: Action::SftpRead
            },
            "the first direction's reason"
        );
        assert_eq!(alice.allowed_logins(db1, &sftp), vec![&name("postgres")]);
        assert_eq!(
            bob.allowed_logins(db1, &sftp),
            vec![&name("postgres"), &name("root")]
        );
        let web1 = snapshot.asset(&name("web-01")).unwrap();
        assert_eq!(
            alice.allowed_logins(web1, &[Action::Shell]),
            vec![&name("deploy"), &name("root")]
        );
        let shells: Vec<String> = alice
            .allowed_accounts(Action::Shell)
            .iter()
            .map(|(asset, login)| format!("{login}@{}", asset.name))
            .collect();
        assert_eq!(shells, ["deploy@web-01", "root@web-01", "root@web-02"]);
    }

    /// The snapshot knows when the store has changed since it was read, by one query.
    #[tokio::test]
    async fn the_version_moves_with_every_change_to_the_facts() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let snapshot = Snapshot::for_everyone(&store).await.unwrap();
        assert!(snapshot.version().is_some());
        assert_eq!(store.facts_version().await.unwrap(), snapshot.version());
        grant(
            &store,
            GrantInput {
                asset: Some("web-01".into()),
                ..for_user("bob")
            },
        )
        .await;
        assert_ne!(store.facts_version().await.unwrap(), snapshot.version());
        let fresh = Snapshot::for_everyone(&store).await.unwrap();
        assert_eq!(store.facts_version().await.unwrap(), fresh.version());
        let bob = fresh.as_user(&name("bob"), false, now()).unwrap();
        let web1 = fresh.asset(&name("web-01")).unwrap();
        assert!(bob.decide(web1, &name("root"), Action::Shell).is_allow());
    }
}
