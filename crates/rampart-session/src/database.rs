//! What every database front (PostgreSQL, Redis, ...) does the same way, in one place: who the
//! client names in its user name (`USER@ASSET`, `USER@ACCOUNT@ASSET`), the authorization of a
//! database session through [`crate::authorize`] (denials audited), the audited login, the
//! vaulted password for the target login (its use on record first), and bounded texts for
//! the query log.

use crate::authorize::Snapshot;
use crate::lifecycle::{Authorized, Source};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::policy::Decision;
use rampart_core::{
    Action, Asset, CommandRecord, Name, SecretKind, SecretString, SessionKind, User,
};
use rampart_store::{CommandFilter, Store, StoreError};
use std::collections::HashMap;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

/// A client or target byte stream (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Who the client is and what it wants, from its user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLogin {
    pub user: Name,
    pub account: Option<Name>,
    pub asset: Name,
}

impl DbLogin {
    /// Parses `alice@pg-01` (the one account alice may use there) or `alice@dbuser@pg-01`.
    pub fn parse(login: &str) -> Result<Self, String> {
        let parts: Vec<&str> = login.split('@').collect();
        let name = |what: &str, text: &str| {
            Name::parse(what, text).map_err(|_| format!("invalid {what} in user name {login:?}"))
        };
        match parts.as_slice() {
            [user, asset] => Ok(Self {
                user: name("user", user)?,
                account: None,
                asset: name("asset", asset)?,
            }),
            [user, account, asset] => Ok(Self {
                user: name("user", user)?,
                account: Some(name("account", account)?),
                asset: name("asset", asset)?,
            }),
            _ => Err(
                "the user name must be USER@ASSET or USER@ACCOUNT@ASSET (e.g. alice@pg-01)"
                    .to_owned(),
            ),
        }
    }

    /// `account@asset`, or `asset` when no account was named (for a denial's record).
    pub fn target(&self) -> String {
        match &self.account {
            Some(account) => format!("{account}@{}", self.asset),
            None => self.asset.to_string(),
        }
    }
}

/// `text`, cut to `max` bytes at a character boundary, with how much was cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes)",
        text.get(..end).unwrap_or(""),
        text.len() - end
    )
}

/// Records a login the authenticator accepted (`login_succeeded`); an error means the login
/// must be refused (fail closed).
pub async fn record_login(
    store: &Store,
    user: &User,
    method: &str,
    source: &Source,
) -> Result<(), String> {
    let event = AuditEvent::LoginSucceeded {
        user: user.name.to_string(),
        method: method.to_owned(),
        source: source.text.clone(),
    };
    store
        .record_event(&actor(user), &event)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "cannot record a login; refusing it");
            "Rampart cannot record the login".to_owned()
        })
}

fn actor(user: &User) -> Actor {
    Actor::User {
        name: user.name.to_string(),
    }
}

/// Decides which account the client gets on the asset for `action`, through the policy. A
/// denial is audited (`access_denied`) and its line returned for the client.
pub async fn authorize(
    store: &Store,
    user: &User,
    mfa: bool,
    login: &DbLogin,
    source: &Source,
    action: Action,
) -> Result<Authorized, String> {
    let decided = decide(store, user, mfa, login, source, action).await;
    if let Err(reason) = &decided {
        let event = AuditEvent::AccessDenied {
            user: user.name.to_string(),
            target: login.target(),
            action: format!("{}:{action}", action.protocol()),
            reason: reason.clone(),
            source: source.text.clone(),
        };
        if let Err(err) = store.record_event(&actor(user), &event).await {
            tracing::error!(error = %err, "cannot record a denied connection");
        }
    }
    decided
}

async fn decide(
    store: &Store,
    user: &User,
    mfa: bool,
    login: &DbLogin,
    source: &Source,
    action: Action,
) -> Result<Authorized, String> {
    let snapshot = Snapshot::for_user(store, &user.name)
        .await
        .map_err(|_| "internal error looking up the target".to_owned())?;
    let now = OffsetDateTime::now_utc();
    let access = snapshot
        .as_user(&user.name, mfa, now)
        .ok_or_else(|| format!("{} may not connect: the user was removed", user.name))?;
    let asset: &Asset = snapshot
        .asset(&login.asset)
        .ok_or_else(|| format!("{} is not an asset", login.asset))?;
    let qualified = format!("{}:{action}", action.protocol());
    let account: Name = match &login.account {
        Some(account) => account.clone(),
        None => {
            let allowed = access.allowed_logins(asset, &[action]);
            match allowed.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(format!(
                        "{} may not connect to {}: no grant allows {qualified} there",
                        user.name, asset.name
                    ));
                }
                _ => {
                    return Err(format!(
                        "{} has several accounts on {}: name one (USER@ACCOUNT@{})",
                        user.name, asset.name, asset.name
                    ));
                }
            }
        }
    };
    match access.decide(asset, &account, action) {
        Decision::Allow { grant, rules } => Ok(Authorized {
            user: user.clone(),
            mfa,
            source: source.clone(),
            asset: asset.clone(),
            account,
            grant,
            rules,
            actions: vec![action],
        }),
        Decision::Deny(why) => Err(format!(
            "{} may not connect to {account}@{}: {why}",
            user.name, asset.name
        )),
    }
}

/// The account's vaulted password for the target login. Its use is recorded first
/// (`secret_used`); no record, no password (fail closed). The error is a line for the client.
pub async fn vaulted_password(
    store: &Store,
    authorized: &Authorized,
) -> Result<SecretString, String> {
    let account = authorized.account_ref();
    let used = AuditEvent::SecretUsed {
        account: account.to_string(),
        for_user: authorized.user.name.to_string(),
    };
    let credential = || format!("cannot use the credential of {account}");
    if let Err(err) = store.record_event(&actor(&authorized.user), &used).await {
        tracing::error!(error = %err, "cannot record the use of a secret; not using it");
        return Err(credential());
    }
    let (kind, secret) = store.reveal_account_secret(&account).await.map_err(|err| {
        tracing::error!(%account, error = %err, "cannot reveal the account's secret");
        credential()
    })?;
    if kind != SecretKind::Password {
        return Err(format!(
            "{account} has no password in the vault (a database login needs one)"
        ));
    }
    Ok(secret)
}

/// One statement or command of a database session's query log, as the CLI and the API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub session: Uuid,
    pub user: String,
    /// `account@asset`.
    pub target: String,
    /// The front's record: `seq`, `kind`, `statement`, `status`, `error` (and `params`).
    pub record: serde_json::Value,
}

impl QueryEntry {
    pub fn statement(&self) -> &str {
        self.record
            .get("statement")
            .and_then(|s| s.as_str())
            .unwrap_or("")
    }
}

/// The query log: the command log's records of database sessions only (a shell line that
/// looks like one does not count), oldest first, those whose statement `keep` accepts.
pub async fn query_log(
    store: &Store,
    filter: &CommandFilter,
    session: Option<Uuid>,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<QueryEntry>, StoreError> {
    let mut kinds: HashMap<Uuid, bool> = HashMap::new();
    let mut entries = Vec::new();
    for command in store.commands(filter).await? {
        if session.is_some_and(|id| id != command.session) {
            continue;
        }
        let is_database = match kinds.get(&command.session) {
            Some(known) => *known,
            None => {
                let known = store
                    .session(command.session)
                    .await
                    .is_ok_and(|s| matches!(s.kind, SessionKind::Postgres | SessionKind::Redis));
                kinds.insert(command.session, known);
                known
            }
        };
        if !is_database {
            continue;
        }
        let CommandRecord {
            session,
            at,
            user,
            asset,
            account,
            command,
        } = command;
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&command) else {
            continue;
        };
        let entry = QueryEntry {
            at,
            session,
            user,
            target: format!("{account}@{asset}"),
            record,
        };
        if keep(entry.statement()) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_refuses_others() {
        let one = DbLogin::parse("alice@pg-01").unwrap();
        assert_eq!(
            (one.user.as_str(), one.account, one.asset.as_str()),
            ("alice", None, "pg-01")
        );
        let two = DbLogin::parse("alice@app@pg-01").unwrap();
        assert_eq!(two.account.unwrap().as_str(), "app");
        for bad in ["alice", "a@b@c@d", "@pg-01", "alice@"] {
            assert!(DbLogin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounded_cuts_at_a_character_boundary_and_counts_the_rest() {
        assert_eq!(bounded("short", 16), "short");
        assert_eq!(bounded("ééé", 3), "é… (4 more bytes)");
    }
}
