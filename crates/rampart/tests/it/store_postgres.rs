//! The store on PostgreSQL through the binary (issue 19): `store.url` in the configuration
//! selects a real PostgreSQL (started by the testkit in a temporary directory, on a Unix
//! socket); administration and `rampart audit verify` work on it, and a URL's password never
//! reaches an error.

use crate::BIN;
use rampart_testkit::Rampart;

/// A Rampart whose configuration file points the store at `url`.
fn rampart_on(url: &str) -> Rampart {
    let base = Rampart::without_init(BIN);
    let config = base.scratch().join("rampart.toml");
    std::fs::write(&config, format!("[store]\nurl = \"{url}\"\n")).unwrap();
    let config = config.to_str().unwrap().to_owned();
    base.with_args(&["--config", &config])
}

#[test]
fn administration_and_audit_verify_run_on_a_postgres_store_without_an_sqlite_file() {
    let Some(url) = rampart_testkit::pg::fresh_database() else {
        return;
    };
    let r = rampart_on(&url);
    r.ok(&["init"]);
    assert!(
        !r.data_dir().join("rampart.db").exists(),
        "the data directory keeps only the node's keys and files"
    );
    r.ok(&["user", "add", "alice", "--role", "user"]);
    r.ok(&["asset", "add", "web-01", "--host", "10.0.0.5"]);
    let users = r.json(&["user", "list"]);
    assert_eq!(users[0]["name"], "alice", "{users}");
    let verified = r.ok(&["audit", "verify"]);
    assert!(verified.contains("everything verifies"), "{verified}");
    // The events are in PostgreSQL's table, chained in order.
    let server = rampart_testkit::pg::server().unwrap();
    let database = url
        .split_once("localhost/")
        .and_then(|(_, rest)| rest.split_once('?'))
        .map(|(name, _)| name)
        .unwrap();
    let kinds = server.psql_in(
        database,
        "SELECT string_agg(kind, ',' ORDER BY seq) FROM audit_events",
    );
    assert!(
        kinds.contains("user_added") && kinds.contains("asset_added"),
        "{kinds}"
    );
}

#[test]
fn a_store_url_password_never_appears_in_an_error() {
    const CANARY: &str = "pw-canary-4f1d";
    let base = Rampart::without_init(BIN);
    let socket_dir = base.scratch().join("no-server-here");
    let url = format!(
        "postgres://rampart:{CANARY}@localhost/rampart?host={}",
        socket_dir.display()
    );
    let r = rampart_on(&url);
    let out = r.run(&["init"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("rampart:***@localhost"), "{stderr}");
    assert!(!stderr.contains(CANARY), "{stderr}");
    // The canary is findable where it is in clear: the configuration file.
    let config = std::fs::read_to_string(r.scratch().join("rampart.toml")).unwrap();
    assert!(config.contains(CANARY));
}
