//! What every database front shares: the login syntax (`USER@ASSET`, `USER@ACCOUNT@ASSET`),
//! the authorization of a database connection, the vaulted password's use (on record first),
//! the per-statement [`QueryRecord`] with its bounds and secret masking, and the query log read
//! back ([`query_log`]) for the CLI and the API. The wire protocols stay in their fronts
//! (`rampart-postgres`, `rampart-mysql`, `rampart-redis`).

use crate::authorize::Snapshot;
use crate::lifecycle::{Authorized, Source};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::policy::KubeScope;
use rampart_core::target::Protocol;
use rampart_core::{
    Action, Asset, CommandRecord, Name, SecretKind, SecretString, SessionKind, User,
};
use rampart_store::{CommandFilter, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

/// A client or target byte stream (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Who the client is and what they want, from the user name a database client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLogin {
    pub user: Name,
    pub account: Option<Name>,
    pub asset: Name,
}

impl DbLogin {
    /// Parses `alice@pg-01` (the one account the user may use there) or `alice@dbuser@pg-01`.
    /// Every stock client passes such a user name through unchanged.
    pub fn parse(login: &str) -> Result<DbLogin, String> {
        let parts: Vec<&str> = login.split('@').collect();
        let name = |what: &str, text: &str| {
            Name::parse(what, text).map_err(|_| format!("invalid {what} in user name {login:?}"))
        };
        match parts.as_slice() {
            [user, asset] => Ok(DbLogin {
                user: name("user", user)?,
                account: None,
                asset: name("asset", asset)?,
            }),
            [user, account, asset] => Ok(DbLogin {
                user: name("user", user)?,
                account: Some(name("account", account)?),
                asset: name("asset", asset)?,
            }),
            _ => Err(
                "the user name must be USER@ASSET or USER@ACCOUNT@ASSET (e.g. alice@db-01)"
                    .to_owned(),
            ),
        }
    }

    /// `ACCOUNT@ASSET` or `ASSET`, for an audit line.
    pub fn target(&self) -> String {
        match &self.account {
            Some(account) => format!("{account}@{}", self.asset),
            None => self.asset.to_string(),
        }
    }
}

/// Puts a database login on record (`login_succeeded`). Fail closed: a login that cannot be
/// recorded is refused with the returned line.
pub async fn record_login(
    store: &Store,
    user: &Name,
    method: &str,
    source: std::net::IpAddr,
) -> Result<(), String> {
    let event = AuditEvent::LoginSucceeded {
        user: user.to_string(),
        method: method.to_owned(),
        source: source.to_string(),
    };
    let actor = Actor::User {
        name: user.to_string(),
    };
    store.record_event(&actor, &event).await.map_err(|err| {
        tracing::error!(error = %err, "cannot record a login; refusing it");
        "Rampart cannot record the login".to_owned()
    })
}

/// Decides which account the client gets on the asset for `protocol` and what it may do there,
/// through the policy: the protocol's full action (`postgres:connect`) or its read-only one
/// (`postgres:read`); `Authorized::actions` says which were allowed (both when both are). A
/// denial is audited (`access_denied`) and its reason returned.
pub async fn authorize(
    store: &Store,
    user: &User,
    mfa: bool,
    login: &DbLogin,
    source: &Source,
    protocol: Protocol,
) -> Result<Authorized, String> {
    match Action::database_pair(protocol) {
        Some((full, read)) => authorize_any(store, user, mfa, login, source, &[full, read]).await,
        None => Err(format!("{protocol} has no database sessions")),
    }
}

/// Decides, as [`authorize`] does, for a request that any one of `actions` allows (the
/// Kubernetes front asks for the one action each API request needs). A denial is audited
/// (`access_denied`, naming the first action) and its reason returned.
pub async fn authorize_any(
    store: &Store,
    user: &User,
    mfa: bool,
    login: &DbLogin,
    source: &Source,
    actions: &[Action],
) -> Result<Authorized, String> {
    authorize_in(store, user, mfa, login, source, actions, None).await
}

/// [`authorize_any`] for a Kubernetes request that reaches `scope`: only grants whose
/// namespaces allow the scope count (`KubeScope::allowed_by`); a refusal because of them says
/// which namespaces the grants allow.
pub async fn authorize_kube(
    store: &Store,
    user: &User,
    login: &DbLogin,
    source: &Source,
    action: Action,
    scope: KubeScope<'_>,
) -> Result<Authorized, String> {
    authorize_in(store, user, false, login, source, &[action], Some(scope)).await
}

async fn authorize_in(
    store: &Store,
    user: &User,
    mfa: bool,
    login: &DbLogin,
    source: &Source,
    actions: &[Action],
    scope: Option<KubeScope<'_>>,
) -> Result<Authorized, String> {
    let decided = decide(store, user, mfa, login, source, actions, scope).await;
    if let Err(reason) = &decided {
        let event = AuditEvent::AccessDenied {
            user: user.name.to_string(),
            target: login.target(),
            action: actions
                .first()
                .map(|a| format!("{}:{a}", a.protocol()))
                .unwrap_or_default(),
            reason: reason.clone(),
            source: source.text.clone(),
        };
        let actor = Actor::User {
            name: user.name.to_string(),
        };
        if let Err(err) = store.record_event(&actor, &event).await {
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
    actions: &[Action],
    scope: Option<KubeScope<'_>>,
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
    let qualified = actions
        .iter()
        .map(|a| format!("{}:{a}", a.protocol()))
        .collect::<Vec<_>>()
        .join(" or ");
    let account: Name = match &login.account {
        Some(account) => account.clone(),
        None => {
            let allowed = access.allowed_logins(asset, actions);
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
    let decided = match scope {
        None => access.decide_any(asset, &account, actions),
        Some(scope) => {
            let decided =
                access.decide_any_among(asset, &account, actions, &|grant| scope.allowed_by(grant));
            if decided.is_err() && access.decide_any(asset, &account, actions).is_ok() {
                // Allowed but for the namespace limit of every allowing grant: say which.
                let mut namespaces: Vec<&str> = actions
                    .iter()
                    .flat_map(|action| access.allowing_grants(asset, &account, *action))
                    .flat_map(|grant| grant.namespaces.iter().map(String::as_str))
                    .collect();
                namespaces.sort_unstable();
                namespaces.dedup();
                return Err(format!(
                    "{} may not reach {scope} on {account}@{}: the grants allow {qualified} in \
                     the namespaces {} only",
                    user.name,
                    asset.name,
                    namespaces.join(", ")
                ));
            }
            decided
        }
    };
    match decided {
        Ok(allowed) => Ok(Authorized {
            user: user.clone(),
            mfa,
            source: source.clone(),
            asset: asset.clone(),
            account,
            grant: allowed.grant,
            rules: allowed.rules,
            actions: allowed.actions,
            kube_namespace: match scope {
                Some(KubeScope::Namespace(namespace)) => Some(namespace.to_owned()),
                _ => None,
            },
        }),
        Err(why) => Err(format!(
            "{} may not connect to {account}@{}: {why}",
            user.name, asset.name
        )),
    }
}

/// The vaulted password of the session's account, for the target login. Fail closed: it is
/// only revealed once its use is on record (`secret_used`). Errors never name the secret.
pub async fn vaulted_password(
    store: &Store,
    authorized: &Authorized,
) -> Result<SecretString, String> {
    let account = authorized.account_ref();
    let actor = Actor::User {
        name: authorized.user.name.to_string(),
    };
    let used = AuditEvent::SecretUsed {
        account: account.to_string(),
        for_user: authorized.user.name.to_string(),
    };
    let credential = || format!("cannot use the credential of {account}");
    if let Err(err) = store.record_event(&actor, &used).await {
        tracing::error!(error = %err, "cannot record the use of a secret; not using it");
        return Err(credential());
    }
    let (kind, secret) = store.reveal_account_secret(&account).await.map_err(|err| {
        tracing::error!(%account, error = %err, "cannot reveal the account's secret");
        credential()
    })?;
    if kind != SecretKind::Password {
        return Err(format!(
            "{account} has no password in the vault (a password login needs one)"
        ));
    }
    Ok(secret)
}

/// Bytes of a statement's text kept in its record.
pub const MAX_TEXT: usize = 16 * 1024;
/// Bytes of one bound parameter kept, and parameters kept per record.
pub const MAX_PARAM: usize = 256;
pub const MAX_PARAMS: usize = 32;

/// One statement as recorded (the JSON of a `command_run` event of a database session).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueryRecord {
    pub seq: u64,
    /// What the client sent: `query`, `execute`, `parse`, `prepare`, `init_db`, ...
    pub kind: &'static str,
    pub statement: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// The target's status lines (`SELECT 1`, `INSERT 0 5`, `OK, 1 row affected`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<String>,
    /// Rows the target returned, when the front counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// From the statement leaving Rampart to its last answer, when the front measures it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl QueryRecord {
    /// A record of `statement` (the caller bounded it with [`bounded`]; secrets are masked
    /// here) with `params` (bounded too; all masked when the statement sets a password).
    pub fn new(seq: u64, kind: &'static str, statement: &str, mut params: Vec<String>) -> Self {
        let statement = mask_secrets(statement);
        if sets_password(&statement) {
            for param in &mut params {
                *param = "***".to_owned();
            }
        }
        Self {
            seq,
            kind,
            statement,
            params,
            status: Vec::new(),
            rows: None,
            duration_ms: None,
            error: None,
        }
    }

    /// The record as the command log keeps it.
    pub fn to_json(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

/// The records as command-log findings (what a front's observer reports).
pub fn findings(records: impl IntoIterator<Item = QueryRecord>) -> Vec<crate::observe::Finding> {
    records
        .into_iter()
        .filter_map(|record| record.to_json())
        .map(crate::observe::Finding::Command)
        .collect()
}

/// Statements the session ended before they were answered, recorded as such.
pub fn unanswered(records: impl IntoIterator<Item = QueryRecord>) -> Vec<crate::observe::Finding> {
    findings(records.into_iter().map(|mut open| {
        open.error = Some("no answer: the session ended".into());
        open
    }))
}

/// A client's chunk checked unit by unit (PostgreSQL messages, MySQL packets): `check` passes
/// a unit (`None`) or gives the one to send in its place. Returns the bytes to forward when a
/// unit was replaced (`None`: the chunk goes as it came). Units are encoded again only when the
/// session's statements are checked at all (`active`), so an unchecked session copies nothing.
pub fn substitute<U: Clone>(
    units: impl IntoIterator<Item = U>,
    active: bool,
    mut check: impl FnMut(U) -> Result<Option<U>, String>,
    encode: impl Fn(&U, &mut bytes::BytesMut),
) -> Result<Option<Vec<u8>>, String> {
    let mut out = bytes::BytesMut::new();
    let mut rewritten = false;
    for unit in units {
        let sent = active.then(|| unit.clone());
        match check(unit)? {
            Some(instead) => {
                rewritten = true;
                encode(&instead, &mut out);
            }
            None => {
                if let Some(sent) = sent {
                    encode(&sent, &mut out);
                }
            }
        }
    }
    Ok(rewritten.then(|| out.to_vec()))
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

/// Whether a statement sets a password (`ALTER USER ... IDENTIFIED BY`, `SET PASSWORD`,
/// `CREATE ROLE ... PASSWORD`), judged by its words.
fn sets_password(statement: &str) -> bool {
    let lower = statement.to_ascii_lowercase();
    lower.contains("identified") || lower.contains("password")
}

/// The statement with every quoted literal that follows `BY`, `PASSWORD` (also `PASSWORD(`,
/// `PASSWORD =`) replaced by `'***'`, when the statement sets a password. A statement that
/// does not name a password is returned unchanged.
pub fn mask_secrets(statement: &str) -> String {
    if !sets_password(statement) {
        return statement.to_owned();
    }
    let bytes = statement.as_bytes();
    let mut out = String::with_capacity(statement.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !is_word(bytes.get(i - 1).copied().unwrap_or(b' '));
        let keyword = [&b"by"[..], b"password"].into_iter().find(|k| {
            word_start
                && bytes
                    .get(i..i + k.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(k))
                && !bytes.get(i + k.len()).copied().is_some_and(is_word)
        });
        let Some(keyword) = keyword else {
            i += 1;
            continue;
        };
        let mut j = i + keyword.len();
        while bytes
            .get(j)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'=' || *b == b'(')
        {
            j += 1;
        }
        match bytes.get(j) {
            Some(&quote @ (b'\'' | b'"')) => {
                let end = literal_end(bytes, j, quote);
                out.push_str(statement.get(copied..j).unwrap_or(""));
                out.push_str("'***'");
                copied = end;
                i = end;
            }
            _ => i = j.max(i + 1),
        }
    }
    out.push_str(statement.get(copied..).unwrap_or(""));
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The index after the literal opened by `quote` at `start` (doubled quotes and backslash
/// escapes stay inside); the text's end if it is not closed.
fn literal_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut k = start + 1;
    while let Some(&b) = bytes.get(k) {
        if b == b'\\' {
            k += 2;
        } else if b == quote {
            if bytes.get(k + 1) == Some(&quote) {
                k += 2;
            } else {
                return k + 1;
            }
        } else {
            k += 1;
        }
    }
    bytes.len()
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
                let known = store.session(command.session).await.is_ok_and(|s| {
                    matches!(
                        s.kind,
                        SessionKind::Postgres
                            | SessionKind::Mysql
                            | SessionKind::Redis
                            | SessionKind::Kubernetes
                            | SessionKind::KubernetesPortForward
                    )
                });
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
    fn parses_both_login_forms_and_refuses_others() {
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
    fn passwords_in_statements_are_masked_and_other_text_is_kept() {
        let cases = [
            (
                "ALTER USER 'bob'@'%' IDENTIFIED BY 's3cret'",
                "ALTER USER 'bob'@'%' IDENTIFIED BY '***'",
            ),
            (
                "set password for bob = password('it''s')",
                "set password for bob = password('***')",
            ),
            ("SET PASSWORD = 'x\\'y'", "SET PASSWORD = '***'"),
            (
                "create user c identified with mysql_native_password by \"pw\"",
                "create user c identified with mysql_native_password by '***'",
            ),
            (
                "ALTER ROLE app PASSWORD 'pg-pw'",
                "ALTER ROLE app PASSWORD '***'",
            ),
            (
                "select 'by' from t order by 'x'",
                "select 'by' from t order by 'x'",
            ),
            (
                "alter user x password 'unterminated",
                "alter user x password '***'",
            ),
        ];
        for (statement, masked) in cases {
            assert_eq!(mask_secrets(statement), masked, "{statement}");
        }
        let record = QueryRecord::new(
            1,
            "execute",
            "alter user x identified by ?",
            vec!["pw".into()],
        );
        assert_eq!(record.params, vec!["***".to_owned()]);
    }

    #[test]
    fn long_text_is_cut_with_the_rest_counted() {
        let text = "é".repeat(10);
        assert_eq!(bounded(&text, 5), "éé… (16 more bytes)");
    }
}
