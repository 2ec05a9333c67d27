//! Rampart's persistence: the data directory, the store (SQLite, embedded, or PostgreSQL) and
//! the vault.
//!
//! Callers see [`Store`] and the domain types of `rampart-core`, never SQL types: both backends
//! sit behind the same methods (sqlx's `Any` driver; the SQL is written for both, and the few
//! statements that differ ask [`Backend`]). Every change is made in one write transaction
//! together with its audit event: a change without its event cannot be committed.
//!
//! Several processes (the server and CLI commands, on one node or several) may use the same
//! database at once: initialisation runs under a file lock, SQLite runs in WAL mode with a busy
//! timeout, and every write transaction takes the database's write lock up front (SQLite's
//! `BEGIN IMMEDIATE`; on PostgreSQL a transaction-scoped advisory lock), so writers are
//! serialized and the audit chain never forks.
#![forbid(unsafe_code)]

mod access_requests;
mod accounts;
mod agents;
mod alerts;
mod assets;
pub mod audit_log;
mod backup;
mod breakglass;
mod cascade;
mod command_approvals;
mod command_rules;
mod commands;
mod data_dir;
mod db_tokens;
mod detectors;
mod domains;
mod grants;
mod groups;
mod ids;
mod invites;
mod ldap_users;
mod login_controls;
pub mod metrics;
mod mfa;
mod migrations;
pub mod nodes;
#[doc(hidden)]
pub use migrations::create_at_version as create_database_at_version;
pub mod node_keys;
mod oidc;
pub mod passkeys;
pub mod passwords;
mod policy_facts;
mod rotation_policies;
mod rotations;
mod rows;
mod sessions;
pub mod ssh_ca;
mod ssh_certificates;
pub mod ssh_keys;
mod telnet;
mod users;
pub mod vault;
mod web_auth;

pub use access_requests::{AccessRequest, Decision, NewAccessRequest, RequestFilter};
pub use accounts::{NewAccountSecret, RotationReport, VaultStatus};
pub use agents::{AGENT_TOKEN_PREFIX, Agent, AgentToken, Enrolment, MAX_AGENT_TOKEN_TTL};
pub use alerts::Alert;
pub use assets::{AssetChange, EndpointChange, NewAsset};
pub use audit_log::{AuditFilter, AuditRecord, AuditSeal, ChainProblem, SinkStatus};
pub use backup::{
    BACKUP_MANIFEST, BackupFile, BackupManifest, Progress, read_backup_manifest, restore_backup,
};
pub use breakglass::{
    BREAKGLASS_APPROVALS, BreakglassKit, BreakglassRequest, KitCustodian, MAX_BREAKGLASS_SECONDS,
};
pub use cascade::Cascade;
pub use command_approvals::{ApprovalOutcome, CommandApproval, NewCommandApproval};
pub use command_rules::NewCommandRule;
pub use commands::{CommandFilter, NewCommand};
pub use data_dir::{DataDir, ServeLock, write_new_secret_file};
pub use db_tokens::{DB_TOKEN_PREFIX, DbToken, KUBE_TOKEN_PREFIX, TokenKind};
pub use domains::{Domain, DomainDetail, Gateway, NewGateway};
pub use grants::{GrantChange, GrantChangeInput, GrantInput, NewGrant};
pub use ids::{IdKind, MIN_ID_PREFIX};
pub use invites::{INVITE_TOKEN_PREFIX, MAX_INVITE_TTL};
pub use ldap_users::{DirectorySnapshot, DirectoryUser, SyncSummary};
pub use login_controls::{LoginAttempt, UserLock};
pub use mfa::{SecondFactorsRemoved, TotpCheck, new_totp_secret};
pub use oidc::{MAX_REFRESH_TOKEN_BYTES, OidcIdentity};
pub use passkeys::StoredPasskey;
pub use passwords::StoredPasswordHash;
pub use policy_facts::PolicyFacts;
pub use rotation_policies::{LabelSchedule, SessionToRotate};
pub use rotations::{
    InFlightRotation, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, RotationRecord, RotationSettings,
    RotationSettingsChange, RotationState, Severity,
};
pub use rows::Named;
pub use sessions::{NewSession, SessionEnd, SessionFilter, new_session_id};
pub use telnet::TelnetLoginSettings;
pub use vault::{KeyId, MasterKeySource, VaultError};
pub use web_auth::{API_TOKEN_PREFIX, ApiToken, WebSession, secret_hash};

use rampart_core::InvalidInput;
use rampart_core::audit::{Actor, AuditEvent};
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};
use std::path::PathBuf;
use std::time::Duration;
use vault::Vault;

/// Who caused an error, so callers can answer "your input" or "our fault" correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request names something missing, duplicated or malformed.
    Client,
    /// Storage, file system or key trouble on this node.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {name} not found")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name} already exists")]
    AlreadyExists { what: &'static str, name: String },
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    #[error("data directory: {0}")]
    DataDir(String),
    #[error(
        "no data directory at {}: create one with `rampart init` (or `rampart serve`, which \
         creates it on first start), or point --data-dir at the existing one",
        .0.display()
    )]
    NoDataDir(PathBuf),
    #[error(
        "the data directory {} is in use by another rampart serve ({}): one server per data \
         directory; stop that one first or use another --data-dir",
        path.display(),
        pid.map_or_else(|| "PID unknown".to_owned(), |pid| format!("PID {pid}"))
    )]
    InUse { path: PathBuf, pid: Option<u32> },
    #[error("the database {} is damaged ({detail}); {RESTORE_HINT}", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("database: {0}")]
    Database(DatabaseError),
    #[error(
        "the database {} was written by a newer rampart (schema {found}; this binary knows up \
         to {known}): migrations are one-way, so this version will not touch it; run the newer \
         rampart, or restore the backup taken before the upgrade",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database migration: {0}")]
    Migration(DatabaseError),
    #[error("database holds a corrupt value in {0}")]
    Corrupt(String),
    #[error("no randomness from the operating system: {0}")]
    Randomness(String),
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("a password check could not run: {0}")]
    PasswordCheck(String),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::Invalid(_) => ErrorKind::Client,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn not_found(what: &'static str, name: impl std::fmt::Display) -> Self {
        StoreError::NotFound {
            what,
            name: name.to_string(),
        }
    }

    pub(crate) fn already_exists(what: &'static str, name: impl std::fmt::Display) -> Self {
        StoreError::AlreadyExists {
            what,
            name: name.to_string(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid(InvalidInput::new(message))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A failure of the database itself, as the store describes it: what the database said, and
/// whether it says the file is damaged. The database library's own error types stay inside the
/// store (another backend will have others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseError {
    message: String,
    damaged: bool,
}

impl DatabaseError {
    /// Whether the database file is damaged (SQLite's SQLITE_CORRUPT or SQLITE_NOTADB): restore
    /// it from a backup.
    pub fn is_damage(&self) -> bool {
        self.damaged
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An administration command does not run the full integrity check `serve` runs at
        // start; a damaged page it meets still tells the operator what to do.
        if self.damaged {
            write!(
                f,
                "{}: the database file is damaged; {RESTORE_HINT}",
                self.message
            )
        } else {
            f.write_str(&self.message)
        }
    }
}

impl From<sqlx::Error> for DatabaseError {
    fn from(err: sqlx::Error) -> Self {
        Self {
            damaged: is_damage(&err),
            message: err.to_string(),
        }
    }
}

#[doc(hidden)]
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(err.into())
    }
}

#[doc(hidden)]
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        let damaged = match &err {
            sqlx::migrate::MigrateError::Execute(inner)
            | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => is_damage(inner),
            _ => false,
        };
        StoreError::Migration(DatabaseError {
            message: err.to_string(),
            damaged,
        })
    }
}

/// What an operator does about a damaged database (README, "Backup and restore").
const RESTORE_HINT: &str = "stop every rampart process, move the data directory aside and \
    restore it from your last backup (README: \"Backup and restore\")";

/// SQLite's result codes for a damaged file: SQLITE_CORRUPT and SQLITE_NOTADB (extended codes
/// keep the primary code in their low byte).
fn is_damage(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.code()
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| matches!(code & 0xff, 11 | 26))
}

/// Where the store lives and where its master key comes from.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub master_key: MasterKeySource,
    /// The shared database (`store.url`): `None` is the data directory's own SQLite file.
    pub database: Option<DatabaseUrl>,
}

/// A `postgres://` URL of the shared database. It may hold a password: it is shown only
/// redacted (`Debug`, `Display`, errors).
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// Accepts `postgres://` and `postgresql://` URLs (the only shared database so far).
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err(InvalidInput::new(format!(
                "invalid store.url {}: expected postgres://USER@HOST/DATABASE",
                redact_url(text)
            )));
        }
        Ok(Self(SecretString::from(text.to_owned())))
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.0.expose_secret())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:secret@host/...` as `scheme://user:***@host/...`; a `password=` query
/// parameter is redacted too. Text without a scheme is not shown at all.
fn redact_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Which database the store speaks to: the few statements that differ between the two ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The key of the PostgreSQL advisory lock every write transaction takes (any fixed number
/// works; this one is "rampart" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x72_61_6d_70_61_72_74;

/// One page of a listing: at most the asked number of items, and the cursor that continues
/// after them when the page was full (the next page may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// `read` rows were read for a page of `limit`; `last` is the key of the last one read.
    pub(crate) fn new(items: Vec<T>, read: usize, limit: u32, last: Option<impl ToString>) -> Self {
        let full = u32::try_from(read).is_ok_and(|read| read >= limit) && limit > 0;
        Self {
            items,
            next: last.filter(|_| full).map(|key| key.to_string()),
        }
    }
}

/// What opening the store had to create: the server tells a first-time operator about it.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub created_data_dir: bool,
    pub generated_master_key: bool,
    pub generated_node_keys: Vec<String>,
    pub initialized_database: bool,
    /// Permission bits of the data directory if they let other users in.
    pub loose_permissions: Option<u32>,
}

/// The handle every component uses to read and change Rampart's state.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    vault: Vault,
    data_dir: DataDir,
    /// The cluster node this store serves for (`serve` only): its sessions carry the name.
    node: std::sync::OnceLock<String>,
}

impl Store {
    /// Opens an existing data directory and brings its schema up to date; a missing one is
    /// [`StoreError::NoDataDir`] and nothing is created (the administration commands).
    pub async fn open_existing(options: &StoreOptions) -> Result<(Self, OpenReport)> {
        Self::open_with(options, false, false).await
    }

    /// Opens the data directory, creating it, its keys and its database if missing
    /// (`rampart init`).
    pub async fn create_or_open(options: &StoreOptions) -> Result<(Self, OpenReport)> {
        Self::open_with(options, true, false).await
    }

    /// Opens the data directory for the server that holds its [`ServeLock`], creating it on
    /// first start. Before the schema is touched, SQLite's quick check reads every page: a
    /// damaged database is [`StoreError::Damaged`] and is not served.
    pub async fn open_for_serving(
        options: &StoreOptions,
        _held: &ServeLock,
    ) -> Result<(Self, OpenReport)> {
        Self::open_with(options, true, true).await
    }

    async fn open_with(
        options: &StoreOptions,
        create: bool,
        check_integrity: bool,
    ) -> Result<(Self, OpenReport)> {
        let (data_dir, created_data_dir) =
            DataDir::prepare(&options.data_dir, create, options.database.is_some())?;
        let _lock = data_dir.lock()?;
        let mut report = OpenReport {
            created_data_dir,
            loose_permissions: data_dir.loose_permissions(),
            generated_node_keys: node_keys::ensure_node_keys(&data_dir)?,
            ..OpenReport::default()
        };
        let (vault, generated_master_key) =
            Vault::load(options.master_key.clone(), data_dir.clone())?;
        report.generated_master_key = generated_master_key;

        sqlx::any::install_default_drivers();
        let (pool, backend) = match &options.database {
            None => {
                let pool = sqlite_pool(&data_dir, create).await?;
                if check_integrity && !created_data_dir {
                    quick_check(&pool, &data_dir).await?;
                }
                (pool, Backend::Sqlite)
            }
            Some(url) => (postgres_pool(url).await?, Backend::Postgres),
        };
        let location = match &options.database {
            None => data_dir.database_path(),
            Some(url) => PathBuf::from(url.redacted()),
        };
        migrations::refuse_newer(&pool, backend, &location).await?;
        migrations::run(&pool, backend).await?;
        if backend == Backend::Sqlite {
            data_dir.restrict_database_files()?;
        }
        let store = Self {
            pool,
            backend,
            vault,
            data_dir,
            node: std::sync::OnceLock::new(),
        };
        report.initialized_database = store.initialize_vault_state().await?;
        Ok((store, report))
    }

    /// Which database this store speaks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.data_dir
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the connection pool, checkpointing the write-ahead log.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Starts a write transaction holding the database's write lock from the first statement,
    /// so that reads inside it are never invalidated by another writer: SQLite's `BEGIN
    /// IMMEDIATE`; on PostgreSQL one advisory lock every writer of every node takes, held until
    /// the transaction ends. INVARIANT: writes are serialized, so the audit chain's head read by
    /// `audit_log::append` is the head it extends (no fork, no gap).
    async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// On a new database, records which master key seals secrets; on an existing one, checks that
    /// this node holds that key. Returns whether the database was new.
    async fn initialize_vault_state(&self) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let active: Option<String> =
            sqlx::query_scalar("SELECT active_key_id FROM vault_state WHERE singleton = 1")
                .fetch_optional(&mut *tx)
                .await?;
        match active {
            Some(text) => {
                let id =
                    KeyId::parse(&text).ok_or_else(|| StoreError::Corrupt("vault_state".into()))?;
                tx.rollback().await?;
                if !self.vault.has_key(id) {
                    self.vault.reload()?;
                }
                if !self.vault.has_key(id) {
                    return Err(VaultError::KeyUnavailable(id).into());
                }
                Ok(false)
            }
            None => {
                let id = self
                    .vault
                    .primary_key_id()
                    .ok_or_else(|| StoreError::DataDir("no vault master key".into()))?;
                sqlx::query("INSERT INTO vault_state (singleton, active_key_id) VALUES (1, $1)")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                let event = AuditEvent::NodeInitialized {
                    data_dir: self.data_dir.root().display().to_string(),
                };
                audit_log::append(&mut tx, &Actor::System, &event).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    }
}

/// SQLite's `quick_check`: every page of every table and index is read and its structure
/// checked (not the index contents against the tables, which is `integrity_check` and much
/// slower). Any answer other than `ok` is damage.
async fn quick_check(pool: &AnyPool, data_dir: &DataDir) -> Result<()> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
        .fetch_all(pool)
        .await
        .map_err(|err| damaged_or(data_dir, err))?;
    if problems.iter().all(|line| line == "ok") {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: data_dir.database_path(),
        detail: format!("quick_check: {}", problems.join("; ")),
    })
}

fn damaged_or(data_dir: &DataDir, err: sqlx::Error) -> StoreError {
    if is_damage(&err) {
        StoreError::Damaged {
            path: data_dir.database_path(),
            detail: err.to_string(),
        }
    } else {
        StoreError::Database(err.into())
    }
}

/// The data directory's SQLite database: WAL, a busy timeout, foreign keys, and `FULL`
/// synchronous (a committed audit event survives a power cut, not only a process crash).
async fn sqlite_pool(data_dir: &DataDir, create: bool) -> Result<AnyPool> {
    let url = SqliteConnectOptions::new()
        .filename(data_dir.database_path())
        .create_if_missing(create)
        .to_url_lossy();
    let options = AnyConnectOptions::from_url(&url).map_err(|err| damaged_or(data_dir, err))?;
    AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|err| damaged_or(data_dir, err))
}

/// The shared PostgreSQL database. A failure to connect names the URL without its password.
async fn postgres_pool(url: &DatabaseUrl) -> Result<AnyPool> {
    let hide = |err: sqlx::Error| {
        // sqlx's messages do not repeat the URL, but a configuration error may quote it.
        let text = err
            .to_string()
            .replace(url.0.expose_secret(), &url.redacted());
        StoreError::Database(DatabaseError {
            message: format!("cannot use the database {}: {text}", url.redacted()),
            damaged: false,
        })
    };
    let options: AnyConnectOptions = url.0.expose_secret().parse().map_err(hide)?;
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(15))
        .connect_with(options)
        .await
        .map_err(hide)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_shows_itself_only_without_its_password() {
        for (url, shown) in [
            (
                "postgres://rampart:pw-canary@db.internal:5432/rampart",
                "postgres://rampart:***@db.internal:5432/rampart",
            ),
            (
                "postgresql://db/rampart?user=r&password=pw-canary&sslmode=require",
                "postgresql://db/rampart?user=r&password=***&sslmode=require",
            ),
            (
                "postgres://rampart@localhost/x?host=/run/postgresql",
                "postgres://rampart@localhost/x?host=/run/postgresql",
            ),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert!(!format!("{parsed:?}").contains("pw-canary"));
        }
        let err = DatabaseUrl::parse("mysql://u:pw-canary@db/x").unwrap_err();
        assert!(!err.to_string().contains("pw-canary"), "{err}");
        assert!(DatabaseUrl::parse("pw-canary").is_err());
    }

    #[test]
    fn database_errors_reach_callers_as_store_types_with_their_message() {
        let err = StoreError::from(sqlx::Error::RowNotFound);
        let StoreError::Database(database) = &err else {
            panic!("{err:?}");
        };
        assert!(!database.is_damage());
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            err.to_string(),
            format!("database: {}", sqlx::Error::RowNotFound)
        );
        let migration = StoreError::from(sqlx::migrate::MigrateError::VersionMissing(3));
        assert!(
            matches!(migration, StoreError::Migration(_)),
            "{migration:?}"
        );
        assert!(migration.to_string().starts_with("database migration: "));
    }
}
