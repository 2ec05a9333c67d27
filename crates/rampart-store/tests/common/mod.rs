//! What the store tests share: the backend a test runs on, and the macro that runs a test body
//! once on SQLite and once on PostgreSQL (a real server, started once per test binary by
//! `rampart_testkit::pg`, with a fresh database per test).

use rampart_store::{DatabaseUrl, MasterKeySource, StoreOptions};
use std::cell::Cell;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

thread_local! {
    // The tests run on tokio's current-thread runtime: every task of a test is on its thread.
    static BACKEND: Cell<Db> = const { Cell::new(Db::Sqlite) };
    static DATABASE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `body` on `db`: on PostgreSQL with a database of its own; `false` when PostgreSQL is
/// not installed (skipped, or failed under `RAMPART_REQUIRE_TOOLS=1`).
pub fn select(db: Db) -> bool {
    BACKEND.with(|cell| cell.set(db));
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => match rampart_testkit::pg::fresh_database() {
            Some(url) => Some(url),
            None => return false,
        },
    };
    DATABASE.with(|cell| *cell.borrow_mut() = url);
    true
}

/// The backend the running test is on.
#[allow(dead_code, reason = "not every test binary asks")]
pub fn backend() -> Db {
    BACKEND.with(Cell::get)
}

/// The running test's PostgreSQL database, if it runs on PostgreSQL.
#[allow(dead_code, reason = "not every test binary asks")]
pub fn database_url() -> Option<String> {
    DATABASE.with(|cell| cell.borrow().clone())
}

/// Store options for a data directory at `data_dir`, on the running test's backend (one
/// database per test: every store a test opens shares it, as nodes would).
pub fn options(data_dir: impl Into<PathBuf>) -> StoreOptions {
    StoreOptions {
        data_dir: data_dir.into(),
        master_key: MasterKeySource::DataDir,
        database: DATABASE.with(|cell| {
            cell.borrow()
                .as_deref()
                .map(|url| DatabaseUrl::parse(url).unwrap())
        }),
    }
}

/// `on_both_backends!(name, ...)`: each `async fn name()` runs as the tests `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    assert!($crate::common::select($crate::common::Db::Sqlite));
                    super::$name().await;
                }

                #[tokio::test]
                async fn postgres() {
                    if $crate::common::select($crate::common::Db::Postgres) {
                        super::$name().await;
                    }
                }
            }
        )*
    };
}
