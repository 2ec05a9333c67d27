//! TLS from Rampart to database targets, with the target's certificate pinned on the asset's
//! endpoint (`asset endpoint set ASSET PROTOCOL --tls-fingerprint SHA256:...`): real
//! PostgreSQL, MariaDB and redis-server that accept logins over TCP only inside TLS, with a
//! self-signed certificate the test makes. Without a pin Rampart connects in plain TCP (refused
//! by these servers); with the right pin the user's statements run through TLS; with another
//! pin the connection is refused before the login, with a clear line and an audit event.

use crate::db_common::{TestCert, pin, test_cert, text, tls_rejections};
use rampart_testkit::Rampart;
use std::process::Output;

/// What a swapped certificate shows: the refusal line and one audit event naming both.
fn assert_refused_as_not_pinned(r: &Rampart, out: &Output, server: &TestCert, other: &TestCert) {
    let shown = text(out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("is not the pinned one"), "{shown}");
    let rejected = tls_rejections(r);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["expected"], other.fingerprint.as_str());
    assert_eq!(rejected[0]["presented"], server.fingerprint.as_str());
}

#[test]
fn a_postgres_target_is_reached_over_tls_with_its_pinned_certificate_and_a_swapped_one_is_refused()
{
    let Some(cert) = test_cert() else { return };
    let Some(other) = test_cert() else { return };
    let Some(pg) = crate::postgres::start_postgres_with(Some(&cert)) else {
        return;
    };
    let (r, _server, port) = crate::postgres::rampart_for(&pg);
    let token = crate::postgres::token(&r, "1h");
    let in_tls = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

    // Not pinned: plain TCP to the target, which takes TCP logins only inside TLS.
    let plain = crate::postgres::psql(port, &token, "require", &[in_tls]);
    assert!(!plain.status.success(), "{}", text(&plain));

    pin(&r, "pg-01", "postgres", &cert.fingerprint);
    let out = crate::postgres::psql(port, &token, "require", &[in_tls]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
    assert!(tls_rejections(&r).is_empty());

    // Another certificate pinned: refused before the login, audited.
    pin(&r, "pg-01", "postgres", &other.fingerprint);
    let out = crate::postgres::psql(port, &token, "require", &["select 1"]);
    assert_refused_as_not_pinned(&r, &out, &cert, &other);
}

#[test]
fn a_mariadb_target_is_reached_over_tls_with_its_pinned_certificate_and_a_swapped_one_is_refused() {
    let Some(cert) = test_cert() else { return };
    let Some(other) = test_cert() else { return };
    let Some(db) = crate::mysql::start_mariadb_with(Some(&cert)) else {
        return;
    };
    let (r, _server, port) = crate::mysql::rampart_with(&db, &[]);
    let token = crate::mysql::token(&r, "1h");
    let cipher = "show session status like 'Ssl_cipher'";

    let plain = crate::mysql::mariadb(port, &token, true, cipher);
    assert!(!plain.status.success(), "{}", text(&plain));

    pin(&r, "my-01", "mysql", &cert.fingerprint);
    let out = crate::mysql::mariadb(port, &token, true, cipher);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let value = shown.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        !value.is_empty(),
        "no TLS cipher on the target side: {shown}"
    );

    // Refused before the login, with Rampart's line in the client, and audited.
    pin(&r, "my-01", "mysql", &other.fingerprint);
    let out = crate::mysql::mariadb(port, &token, true, "select 1");
    assert_refused_as_not_pinned(&r, &out, &cert, &other);
}

#[test]
fn a_redis_target_is_reached_over_tls_with_its_pinned_certificate_and_a_swapped_one_is_refused() {
    let Some(cert) = test_cert() else { return };
    let Some(other) = test_cert() else { return };
    let Some(redis) = crate::redis::start_redis_with(Some(&cert)) else {
        return;
    };
    let (r, _server, port) = crate::redis::rampart_for(&redis, &[]);
    let token = crate::redis::token(&r);

    // The target has no plain port: without a pin nothing works.
    let plain = crate::redis::run(crate::redis::cli(port, &token, true), "SET k v\n");
    assert!(
        !crate::redis::text(&plain).contains("OK"),
        "{}",
        crate::redis::text(&plain)
    );

    pin(&r, "redis-01", "redis", &cert.fingerprint);
    let out = crate::redis::run(crate::redis::cli(port, &token, true), "SET k v\nGET k\n");
    let shown = crate::redis::text(&out);
    assert!(shown.contains("OK") && shown.contains('v'), "{shown}");
    assert_eq!(redis.direct(&["GET", "k"]).trim(), "v");

    pin(&r, "redis-01", "redis", &other.fingerprint);
    let out = crate::redis::run(crate::redis::cli(port, &token, true), "GET k\n");
    let shown = crate::redis::text(&out);
    assert!(shown.contains("is not the pinned one"), "{shown}");
    // redis-cli tries a lost connection again: one event per attempt, none let through.
    let rejected = tls_rejections(&r);
    assert!(!rejected.is_empty());
    assert!(
        rejected
            .iter()
            .all(|e| e["presented"] == cert.fingerprint.as_str()
                && e["expected"] == other.fingerprint.as_str()),
        "{rejected:?}"
    );
}
