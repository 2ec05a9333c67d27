//! The schema migrations, embedded in the binary and applied at start, one list per backend
//! with the same numbers (`migrations/sqlite/`, `migrations/postgres/`).
//!
//! Built by hand from `include_str!` rather than with `sqlx::migrate!`: the macro needs sqlx's
//! proc-macro crates, which compile a second copy of SQLite for the host. Two processes opening
//! the data directory at once are serialized by the data directory lock; nodes migrating one
//! PostgreSQL database at once, by sqlx's advisory lock on it.

use crate::Backend;
use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// PostgreSQL's migrations: its 1 is the schema SQLite's 1 to 34 build, so those are empty here
/// (a database that has them applied has the same numbers on either backend).
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_initial.sql")),
    (
        35,
        include_str!("../migrations/postgres/0035_fixed_width_times.sql"),
    ),
    (36, include_str!("../migrations/postgres/0036_nodes.sql")),
    (
        37,
        include_str!("../migrations/postgres/0037_rdp_security.sql"),
    ),
];

/// What a PostgreSQL migration that SQLite needed and PostgreSQL's migration 1 already covers
/// runs.
const ALREADY_IN_THE_INITIAL_SCHEMA: &str = "SELECT 1";

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "commands",
        include_str!("../migrations/sqlite/0002_commands.sql"),
    ),
    (
        3,
        "audit seals",
        include_str!("../migrations/sqlite/0003_audit_seals.sql"),
    ),
    (
        4,
        "sinks",
        include_str!("../migrations/sqlite/0004_sinks.sql"),
    ),
    (
        5,
        "auth epoch",
        include_str!("../migrations/sqlite/0005_auth_epoch.sql"),
    ),
    (6, "mfa", include_str!("../migrations/sqlite/0006_mfa.sql")),
    (
        8,
        "policy",
        include_str!("../migrations/sqlite/0008_policy.sql"),
    ),
    (
        7,
        "login controls",
        include_str!("../migrations/sqlite/0007_login_controls.sql"),
    ),
    (
        9,
        "web auth",
        include_str!("../migrations/sqlite/0009_web_auth.sql"),
    ),
    (
        10,
        "token epoch",
        include_str!("../migrations/sqlite/0010_token_epoch.sql"),
    ),
    (
        11,
        "recording cap",
        include_str!("../migrations/sqlite/0011_recording_cap.sql"),
    ),
    (
        12,
        "audit seal state",
        include_str!("../migrations/sqlite/0012_audit_seal_state.sql"),
    ),
    (
        13,
        "lockout per factor",
        include_str!("../migrations/sqlite/0013_lockout_per_factor.sql"),
    ),
    (
        14,
        "asset endpoints",
        include_str!("../migrations/sqlite/0014_asset_endpoints.sql"),
    ),
    (
        15,
        "database tokens",
        include_str!("../migrations/sqlite/0015_db_tokens.sql"),
    ),
    (
        16,
        "domains",
        include_str!("../migrations/sqlite/0016_domains.sql"),
    ),
    (
        17,
        "session command",
        include_str!("../migrations/sqlite/0017_session_command.sql"),
    ),
    (
        18,
        "agents",
        include_str!("../migrations/sqlite/0018_agents.sql"),
    ),
    (
        19,
        "credential rotation",
        include_str!("../migrations/sqlite/0019_rotation.sql"),
    ),
    (
        20,
        "command rules",
        include_str!("../migrations/sqlite/0020_command_rules.sql"),
    ),
    (
        21,
        "telnet login",
        include_str!("../migrations/sqlite/0021_telnet_login.sql"),
    ),
    (
        22,
        "kubernetes tokens",
        include_str!("../migrations/sqlite/0022_kube_tokens.sql"),
    ),
    (
        24,
        "detectors",
        include_str!("../migrations/sqlite/0024_detectors.sql"),
    ),
    (
        25,
        "break-glass kits",
        include_str!("../migrations/sqlite/0025_breakglass.sql"),
    ),
    (
        26,
        "ssh user certificates and invites",
        include_str!("../migrations/sqlite/0026_ssh_certificates.sql"),
    ),
    (
        27,
        "access requests",
        include_str!("../migrations/sqlite/0027_access_requests.sql"),
    ),
    (
        28,
        "command approvals",
        include_str!("../migrations/sqlite/0028_command_approvals.sql"),
    ),
    (
        29,
        "grant namespaces",
        include_str!("../migrations/sqlite/0029_grant_namespaces.sql"),
    ),
    (
        31,
        "rotation policies",
        include_str!("../migrations/sqlite/0031_rotation_policies.sql"),
    ),
    (
        32,
        "oidc identities",
        include_str!("../migrations/sqlite/0032_oidc_identities.sql"),
    ),
    (
        33,
        "ldap users",
        include_str!("../migrations/sqlite/0033_ldap_users.sql"),
    ),
    (
        34,
        "passkeys",
        include_str!("../migrations/sqlite/0034_passkeys.sql"),
    ),
    (
        35,
        "fixed-width times",
        include_str!("../migrations/sqlite/0035_fixed_width_times.sql"),
    ),
    (
        36,
        "cluster nodes",
        include_str!("../migrations/sqlite/0036_nodes.sql"),
    ),
    (
        37,
        "rdp security",
        include_str!("../migrations/sqlite/0037_rdp_security.sql"),
    ),
];

pub(crate) async fn run(
    pool: &AnyPool,
    backend: Backend,
) -> Result<(), sqlx::migrate::MigrateError> {
    migrator(backend, i64::MAX).run(pool).await
}

/// The migrations up to `last`, exactly as the store applies them (same descriptions and
/// checksums, so a later open takes over from there).
fn migrator(backend: Backend, last: i64) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .filter(|(version, _, _)| *version <= last)
        .map(|(version, description, sqlite)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => POSTGRES_MIGRATIONS
                    .iter()
                    .find(|(number, _)| number == version)
                    .map_or(&ALREADY_IN_THE_INITIAL_SCHEMA, |(_, sql)| sql),
            };
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Creates the database file `path` with the schema as migrations 1 to `last` left it: for
/// tests of upgrades from older data directories (the store never opens a database this way).
#[doc(hidden)]
pub async fn create_at_version(path: &std::path::Path, last: i64) -> crate::Result<()> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    migrator(Backend::Sqlite, last).run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// The newest migration this binary knows.
pub(crate) fn known_version() -> i64 {
    MIGRATIONS
        .iter()
        .map(|(version, _, _)| *version)
        .max()
        .unwrap_or(0)
}

/// The newest migration applied to the database (0 for a new one).
pub(crate) async fn applied_version(pool: &AnyPool, backend: Backend) -> Result<i64, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT CAST(COUNT(*) AS BIGINT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let tables: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
    if tables == 0 {
        return Ok(0);
    }
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?;
    Ok(newest.unwrap_or(0))
}

/// Migrations are one-way: a database a newer version has migrated may hold what this version
/// cannot read or would damage, so it is refused before anything is written.
pub(crate) async fn refuse_newer(
    pool: &AnyPool,
    backend: Backend,
    path: &std::path::Path,
) -> Result<(), crate::StoreError> {
    let found = applied_version(pool, backend).await?;
    let known = known_version();
    if found > known {
        return Err(crate::StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    Ok(())
}
