//! Database grants and statement rules end to end (issue 16): a read-only grant
//! (`postgres:read`, `mysql:read`, `redis:read`) and command rules (`sql:drop`,
//! `sql:delete-without-where`, `redis:flushall`) through real clients against real servers.
//! A refused statement gets the protocol's own error, the session goes on, nothing reaches the
//! target, and every refusal is in the audit trail.

use crate::db_common::text;
use rampart_testkit::Rampart;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn grant_id(r: &Rampart) -> String {
    r.json(&["grant", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `command_rule_matched` events, once there are at least `expected`.
fn rule_events(r: &Rampart, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events: Vec<Value> = r
            .json(&["audit", "list", "--limit", "1000"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["kind"] == "command_rule_matched")
            .cloned()
            .collect();
        if events.len() >= expected {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{} rule events, expected {expected}",
            events.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn alerts(r: &Rampart) -> String {
    r.json(&["audit", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "alert_raised")
        .map(|event| event.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn with_stdin(mut command: Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// One `psql` session through Rampart reading `script` from standard input (no
/// `ON_ERROR_STOP`: it goes on after an error, as a person's session does).
fn psql_script(port: u16, token: &str, script: &str) -> Output {
    let mut command = Command::new("psql");
    command
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice@pg-01 dbname=postgres sslmode=require"
        ))
        .args(["-X", "-A", "-t"])
        .env("PGPASSWORD", token)
        .env("PGCONNECT_TIMEOUT", "30");
    with_stdin(command, script)
}

#[test]
fn postgres_read_only_grant_refuses_writes_in_protocol_and_the_session_goes_on() {
    let Some(pg) = crate::postgres::start_postgres() else {
        return;
    };
    pg.direct("create table notes (id int, body text)");
    let (r, _server, port) = crate::postgres::rampart_for(&pg);
    r.ok(&["grant", "set", &grant_id(&r), "--actions", "postgres:read"]);
    let token = crate::postgres::token(&r, "1h");
    let out = psql_script(
        port,
        &token,
        "select 'before';\n\
         insert into notes values (1, 'written');\n\
         select 'after';\n\
         set default_transaction_read_only = off;\n\
         show default_transaction_read_only;\n",
    );
    let all = text(&out);
    assert!(
        all.contains(
            "ERROR:  rampart: statement refused: the grant allows reading only (postgres:read)"
        ),
        "{all}"
    );
    // The session went on after the refusal, and stays read-only underneath.
    assert!(all.contains("before") && all.contains("after"), "{all}");
    assert!(all.contains("\non\n") || all.ends_with("on\n"), "{all}");
    assert_eq!(pg.direct("select count(*) from notes").trim(), "0");

    // Prepared statements (psycopg, extended protocol) are checked too.
    if let Some(python) = crate::db_common::venv_python("psycopg") {
        let script = r#"
import sys, psycopg
conn = psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="alice@pg-01",
                       password=sys.argv[2], dbname="postgres", sslmode="require",
                       autocommit=True)
cur = conn.cursor()
cur.execute("select count(*) from notes where id = %s", (1,), prepare=True)
print("read", cur.fetchone()[0])
try:
    cur.execute("insert into notes values (%s, %s)", (2, "prepared"), prepare=True)
    print("inserted")
except psycopg.Error as err:
    print("refused", err.sqlstate, str(err).splitlines()[0])
cur.execute("select 41 + %s", (1,), prepare=True)
print("still", cur.fetchone()[0])
"#;
        let out = Command::new(python)
            .args(["-c", script, &port.to_string(), &token])
            .output()
            .unwrap();
        let all = text(&out);
        assert!(all.contains("read 0"), "{all}");
        assert!(
            all.contains("refused 42501 rampart: statement refused: the grant allows reading only"),
            "{all}"
        );
        assert!(
            all.contains("still 42") && !all.contains("inserted"),
            "{all}"
        );
        assert_eq!(pg.direct("select count(*) from notes").trim(), "0");
    }

    // Each refusal is on record with the statement, and raises an alert.
    let events = rule_events(&r, 2);
    let insert = events
        .iter()
        .find(|event| {
            event["event"]["command"]
                .as_str()
                .unwrap_or("")
                .contains("INSERT INTO notes")
        })
        .expect("the refused INSERT is audited");
    assert_eq!(insert["event"]["rule"], "postgres:read: not a read");
    assert_eq!(insert["event"]["action"], "deny");
    assert!(alerts(&r).contains("INSERT INTO notes"), "{}", alerts(&r));
}

#[test]
fn postgres_rules_block_drop_and_delete_without_where_and_warn_on_truncate() {
    let Some(pg) = crate::postgres::start_postgres() else {
        return;
    };
    pg.direct("create table orders (id int); insert into orders values (1), (2)");
    let (r, _server, port) = crate::postgres::rampart_for(&pg);
    let grant = grant_id(&r);
    for (matcher, action) in [
        ("sql:drop", "deny"),
        ("sql:delete-without-where", "deny"),
        ("sql:truncate", "warn"),
    ] {
        r.ok(&[
            "rule", "add", "--grant", &grant, "--match", matcher, "--action", action,
        ]);
    }
    let token = crate::postgres::token(&r, "1h");
    let out = psql_script(
        port,
        &token,
        "drop table orders;\n\
         delete from orders;\n\
         delete from orders where id = 1;\n\
         select count(*) from orders;\n\
         truncate orders;\n\
         select 'still here';\n",
    );
    let all = text(&out);
    assert!(
        all.contains("ERROR:  rampart: statement refused by rule #10 deny sql:drop"),
        "{all}"
    );
    assert!(
        all.contains(
            "ERROR:  rampart: statement refused by rule #20 deny sql:delete-without-where"
        ),
        "{all}"
    );
    // The DELETE with a WHERE ran (one row left), the TRUNCATE ran with a warning.
    assert!(all.contains("\n1\n"), "{all}");
    assert!(all.contains("still here"), "{all}");
    assert_eq!(
        pg.direct("select count(*) from pg_tables where tablename = 'orders'")
            .trim(),
        "1"
    );
    assert_eq!(pg.direct("select count(*) from orders").trim(), "0");
    let events = rule_events(&r, 3);
    let rules: Vec<&str> = events
        .iter()
        .map(|event| event["event"]["rule"].as_str().unwrap())
        .collect();
    for expected in [
        "#10 deny sql:drop",
        "#20 deny sql:delete-without-where",
        "#30 warn sql:truncate",
    ] {
        assert!(rules.contains(&expected), "{rules:?}");
    }
    assert!(alerts(&r).contains("TRUNCATE"), "{}", alerts(&r));
}

/// One `mariadb` session through Rampart reading `script` (`--force`: it goes on after an
/// error, as a person's session does).
fn mariadb_script(port: u16, token: &str, script: &str) -> Output {
    let mut command = Command::new("mariadb");
    command
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &port.to_string()])
        .args([
            "-u",
            "alice@my-01",
            "-N",
            "-B",
            "--connect-timeout=30",
            "--ssl",
        ])
        .args(["--force", "appdb"])
        .env("MYSQL_PWD", token);
    with_stdin(command, script)
}

#[test]
fn mysql_read_only_grant_and_rules_refuse_with_an_err_packet_and_the_session_goes_on() {
    let Some(db) = crate::mysql::start_mariadb() else {
        return;
    };
    let setup = db.direct(
        "create table appdb.notes (id int, body text); \
         insert into appdb.notes values (1, 'kept'), (2, 'kept')",
    );
    assert!(setup.status.success(), "{}", text(&setup));
    let (r, _server, port) = crate::mysql::rampart_with(&db, &[]);
    let grant = grant_id(&r);
    r.ok(&["grant", "set", &grant, "--actions", "mysql:read"]);
    let token = crate::mysql::token(&r, "1h");
    let out = mariadb_script(
        port,
        &token,
        "select 'before';\n\
         insert into notes values (3, 'written');\n\
         select 'after', count(*) from notes;\n",
    );
    let all = text(&out);
    assert!(
        all.contains("rampart: statement refused: the grant allows reading only (mysql:read)"),
        "{all}"
    );
    assert!(all.contains("before") && all.contains("after\t2"), "{all}");
    let count = db.direct("select count(*) from appdb.notes");
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "2");

    // A full grant with rules: DROP and DELETE without WHERE are refused, the rest runs.
    r.ok(&["grant", "set", &grant, "--actions", "mysql:connect"]);
    for matcher in ["sql:drop", "sql:delete-without-where"] {
        r.ok(&[
            "rule", "add", "--grant", &grant, "--match", matcher, "--action", "deny",
        ]);
    }
    let out = mariadb_script(
        port,
        &token,
        "drop table notes;\n\
         delete from notes;\n\
         delete from notes where id = 1;\n\
         select 'left', count(*) from notes;\n",
    );
    let all = text(&out);
    assert!(
        all.contains("rampart: statement refused by rule #10 deny sql:drop"),
        "{all}"
    );
    assert!(
        all.contains("rampart: statement refused by rule #20 deny sql:delete-without-where"),
        "{all}"
    );
    assert!(all.contains("left\t1"), "{all}");
    let events = rule_events(&r, 3);
    assert!(
        events
            .iter()
            .any(|event| event["event"]["rule"] == "mysql:read: not a read"),
        "{events:?}"
    );
}

#[test]
fn redis_read_only_grant_refuses_set_and_a_deny_rule_refuses_flushall() {
    let Some(redis) = crate::redis::start_redis() else {
        return;
    };
    redis.direct(&["SET", "greeting", "hello"]);
    redis.direct(&["SET", "other", "kept"]);
    let (r, _server, port) = crate::redis::rampart_for(
        &redis,
        &[
            ("RAMPART_REDIS_ALLOW_PLAIN_LOOPBACK", "true"),
            // The node's own deny-list without FLUSHALL: the grant's rule refuses it.
            ("RAMPART_REDIS_DENY_COMMANDS", "SHUTDOWN"),
        ],
    );
    let grant = grant_id(&r);
    r.ok(&["grant", "set", &grant, "--actions", "redis:read"]);
    let token = crate::redis::token(&r);
    let out = crate::redis::run(
        crate::redis::cli(port, &token, false),
        "GET greeting\nSET greeting changed\nGET greeting\n",
    );
    let all = text(&out);
    assert!(
        all.contains("ERR rampart: command refused: the grant allows reading only (redis:read)"),
        "{all}"
    );
    assert_eq!(all.matches("hello").count(), 2, "{all}");
    assert_eq!(redis.direct(&["GET", "greeting"]).trim(), "hello");

    // A full grant with a per-grant deny-list: FLUSHALL refused, the session goes on.
    r.ok(&["grant", "set", &grant, "--actions", "redis:connect"]);
    r.ok(&[
        "rule",
        "add",
        "--grant",
        &grant,
        "--match",
        "redis:flushall",
        "--action",
        "deny",
    ]);
    let out = crate::redis::run(
        crate::redis::cli(port, &token, false),
        "FLUSHALL\nSET greeting changed\nGET greeting\n",
    );
    let all = text(&out);
    assert!(
        all.contains("ERR rampart: statement refused by rule #10 deny redis:flushall"),
        "{all}"
    );
    assert!(all.contains("changed"), "{all}");
    assert_eq!(redis.direct(&["DBSIZE"]).trim(), "2");
    let events = rule_events(&r, 2);
    let rules: Vec<&str> = events
        .iter()
        .map(|event| event["event"]["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"redis:read: not a read"), "{rules:?}");
    assert!(rules.contains(&"#10 deny redis:flushall"), "{rules:?}");
}

/// `psql -c select 1` through Rampart with `password` in the password field.
fn psql_with(port: u16, password: &str) -> Output {
    let mut command = Command::new("psql");
    command
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice@pg-01 dbname=postgres sslmode=require"
        ))
        .args(["-X", "-A", "-t", "-c", "select 'logged in'"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "30");
    command.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn password_and_totp_code_log_in_to_a_database_and_satisfy_a_grant_that_requires_mfa() {
    let Some(pg) = crate::postgres::start_postgres() else {
        return;
    };
    let (r, server, port) = crate::postgres::rampart_for(&pg);
    let uri = crate::mfa::enroll_by_link(&r, &server, "alice", "correct horse:battery");
    let token = crate::postgres::token(&r, "1h");
    r.ok(&["grant", "set", &grant_id(&r), "--require-mfa", "true"]);

    // A token is no second factor: a grant that requires one refuses it.
    let out = psql_with(port, &token);
    assert!(!out.status.success(), "{}", text(&out));
    // The password alone, a wrong code, or a code without the password: refused alike.
    let wrong = crate::mfa::wrong_code(&uri).unwrap();
    for attempt in [
        "correct horse:battery".to_owned(),
        format!("correct horse:battery:{wrong}"),
        format!("wrong:{wrong}"),
    ] {
        let out = psql_with(port, &attempt);
        assert!(
            text(&out).contains("password authentication failed for user \"alice@pg-01\""),
            "{attempt}: {}",
            text(&out)
        );
    }
    // PASSWORD:CODE (the next step's code: enrolment used this one) logs in with both factors.
    let code = rampart_testkit::totp_code(&uri, rampart_testkit::unix_now() + 30);
    let out = psql_with(port, &format!("correct horse:battery:{code}"));
    assert!(
        out.status.success() && text(&out).contains("logged in"),
        "{}",
        text(&out)
    );
    let logins = r.json(&["audit", "list", "--limit", "1000"]);
    assert!(
        logins.as_array().unwrap().iter().any(|event| {
            event["kind"] == "login_succeeded" && event["event"]["method"] == "db-password+totp"
        }),
        "{logins}"
    );
}
