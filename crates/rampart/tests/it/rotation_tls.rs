//! Credential rotation of database accounts whose targets take logins over TCP only inside
//! TLS (real MariaDB, PostgreSQL and redis-server with a self-signed certificate): with the
//! certificate pinned on the asset's endpoint, rotation reaches the target over TLS as the
//! sessions do (`rampart_session::target_tls`, the one decision) and commits; with another
//! certificate pinned it sends nothing, does not commit, and audits the rejection.

use crate::db_common::{TestCert, pin, test_cert, tls_rejections};
use rampart_testkit::{Rampart, output_with_input};
use std::process::{Command, Stdio};

const NEW: &str = "tls-rotated-canary-8c2f71.Q";
const NEXT: &str = "tls-rotated-again-5e0a93.W";

/// `account rotate ACCOUNT` with `new` as the next password: whether it succeeded, and what it
/// said.
fn rotate(r: &Rampart, account: &str, new: &str) -> (bool, String) {
    let password_file = r.scratch().join("next-password");
    std::fs::write(&password_file, format!("{new}\n")).unwrap();
    let out = output_with_input(
        r.command(&["account", "rotate", account])
            .env("RAMPART_TEST_ROTATION_PASSWORD_FILE", &password_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        b"",
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Rotates `account` with the right pin (committed, the new password works on the target), then
/// with another certificate pinned (not committed, rejection audited, nothing changed).
fn rotates_over_pinned_tls_only(
    r: &Rampart,
    asset: &str,
    protocol: &str,
    account: &str,
    certs: (&TestCert, &TestCert),
    works: impl Fn(&str) -> bool,
) {
    let (cert, other) = certs;
    assert!(!works(NEW), "the new password works before the rotation");
    pin(r, asset, protocol, &cert.fingerprint);
    let (ok, said) = rotate(r, account, NEW);
    assert!(ok && said.contains("committed"), "{said}");
    assert!(
        works(NEW),
        "the new password does not work after the rotation"
    );
    assert!(tls_rejections(r).is_empty());

    pin(r, asset, protocol, &other.fingerprint);
    let (ok, said) = rotate(r, account, NEXT);
    assert!(!ok, "{said}");
    assert!(said.contains("is not the pinned one"), "{said}");
    assert!(
        works(NEW),
        "the password changed through a swapped certificate"
    );
    assert!(!works(NEXT));
    let rejected = tls_rejections(r);
    assert!(!rejected.is_empty());
    assert!(
        rejected
            .iter()
            .all(|e| e["presented"] == cert.fingerprint.as_str()
                && e["expected"] == other.fingerprint.as_str()),
        "{rejected:?}"
    );
    for secret in [NEW, NEXT] {
        assert!(!said.contains(secret));
    }
}

#[test]
fn a_mariadb_password_rotates_over_tls_with_the_pinned_certificate_and_not_with_another() {
    let Some(cert) = test_cert() else { return };
    let Some(other) = test_cert() else { return };
    let Some(db) = crate::mysql::start_mariadb_with(Some(&cert)) else {
        return;
    };
    let (r, _server, _port) = crate::mysql::rampart_with(&db, &[]);
    let works = |password: &str| {
        Command::new("mariadb")
            .arg("--no-defaults")
            .args(["-h", "127.0.0.1", "-P", &db.port.to_string(), "-u", "app"])
            .args([
                "-N",
                "-B",
                "--connect-timeout=30",
                "--ssl",
                "-e",
                "select 1",
            ])
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    };
    rotates_over_pinned_tls_only(&r, "my-01", "mysql", "app@my-01", (&cert, &other), works);
}

#[test]
fn a_postgres_password_rotates_over_tls_with_the_pinned_certificate_and_not_with_another() {
    let Some(cert) = test_cert() else { return };
    let Some(other) = test_cert() else { return };
    let Some(pg) = crate::postgres::start_postgres_with(Some(&cert)) else {
        return;
    };
    let (r, _server, _port) = crate::postgres::rampart_for(&pg);
    let works = |password: &str| {
        Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
                pg.port
            ))
            .args(["-X", "-A", "-t", "-c", "select 1"])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "30")
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    };
    rotates_over_pinned_tls_only(
        &r,
        "pg-01",
        "postgres",
        "postgres@pg-01",
        (&cert, &other),
        works,
    );
}

#[test]
fn a_redis_password_rotates_over_tls_with_the_pinned_certificate_and_not_with_another() {
    let Some(cert) = test_cert() else { return };
    let Some(other) = test_cert() else { return };
    let Some(redis) = crate::redis::start_redis_with(Some(&cert)) else {
        return;
    };
    let (r, _server, _port) = crate::redis::rampart_for(&redis, &[]);
    let works = |password: &str| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
            .args(["--tls", "--insecure", "--user", "app", "--no-auth-warning"])
            .arg("PING")
            .env("REDISCLI_AUTH", password)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "PONG"
    };
    rotates_over_pinned_tls_only(
        &r,
        "redis-01",
        "redis",
        "app@redis-01",
        (&cert, &other),
        works,
    );
}
