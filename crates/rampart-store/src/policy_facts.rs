//! The facts the policy decides on, read together: `rampart-session`'s `authorize` is their one
//! reader.

use crate::{Result, Store, accounts, assets, grants, users};
use rampart_core::{Account, Asset, Grant, Name, User};

/// Users (with their groups), assets, accounts and grants as one read transaction saw them, so
/// they agree with each other (no grant naming an asset the asset list lacks).
#[derive(Debug, Clone, Default)]
pub struct PolicyFacts {
    /// The audit log's last sequence number in the same transaction. Every change to these facts
    /// is committed with an audit event, so while [`Store::facts_version`] returns the same
    /// number, the facts are the same.
    pub version: Option<i64>,
    /// By name.
    pub users: Vec<User>,
    /// By name.
    pub assets: Vec<Asset>,
    /// By asset, then login.
    pub accounts: Vec<Account>,
    /// In creation order (the policy names the first allowing grant).
    pub grants: Vec<Grant>,
}

impl Store {
    /// The policy facts for one user (`Some`: the facts a request needs) or for every user
    /// (`None`: live enforcement), in one read transaction.
    pub async fn policy_facts(&self, user: Option<&Name>) -> Result<PolicyFacts> {
        // A deferred transaction: SQLite (WAL) reads every statement from one snapshot.
        let mut tx = self.pool.begin().await?;
        let version = crate::audit_log::head_seq(&mut tx).await?;
        let users = users::load_users(&mut tx, user).await?;
        let assets = assets::load_assets(&mut tx, None).await?;
        let accounts = accounts::load_accounts(&mut tx, None, None).await?;
        let grants = grants::load_grants(&mut tx, None).await?;
        tx.commit().await?;
        Ok(PolicyFacts {
            version,
            users,
            assets,
            accounts,
            grants,
        })
    }

    /// The version [`PolicyFacts::version`] would have if read now: one cheap query.
    pub async fn facts_version(&self) -> Result<Option<i64>> {
        let mut conn = self.pool.acquire().await?;
        crate::audit_log::head_seq(&mut conn).await
    }
}
