//! The TOTP second factor end to end: `rampart user mfa ...` run as a person would, reading the
//! URI it shows and answering with the code an authenticator app computes from it.

use rampart_testkit::{Rampart, files_containing, totp_code, totp_secret, unix_now};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ExitStatus, Stdio};

use super::BIN;

/// What one run of `rampart user mfa enroll` showed and did.
#[derive(Debug)]
pub(crate) struct Enrolment {
    /// The otpauth:// URI it showed, if it got that far.
    pub(crate) uri: Option<String>,
    stdout: String,
    stderr: String,
    pub(crate) status: ExitStatus,
}

/// Runs `rampart ARGS` (an enrolment), reads standard output up to the URI, then writes
/// `answer(uri)` and a newline to standard input, or closes it unanswered on `None`.
pub(crate) fn enroll(
    r: &Rampart,
    args: &[&str],
    answer: impl FnOnce(&str) -> Option<String>,
) -> Enrolment {
    let mut child = r
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut shown = String::new();
    let mut uri = None;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        shown.push_str(&line);
        let line = line.trim_end();
        if line.starts_with("otpauth://") {
            uri = Some(line.to_owned());
        } else if line.starts_with('{') {
            let json: Value = serde_json::from_str(line).unwrap();
            uri = json["otpauth_uri"].as_str().map(str::to_owned);
        }
        if let Some(uri) = &uri {
            if let Some(code) = answer(uri) {
                writeln!(stdin, "{code}").unwrap();
            }
            break;
        }
    }
    drop(stdin);
    stdout.read_to_string(&mut shown).unwrap();
    let output = child.wait_with_output().unwrap();
    Enrolment {
        uri,
        stdout: shown,
        stderr: String::from_utf8(output.stderr).unwrap(),
        status: output.status,
    }
}

/// Answers with the code the app shows now.
pub(crate) fn right_code(uri: &str) -> Option<String> {
    Some(totp_code(uri, unix_now()))
}

/// A six-digit code that matches none of the steps the command could accept, even if a step
/// boundary passes while it runs.
pub(crate) fn wrong_code(uri: &str) -> Option<String> {
    let now = unix_now();
    let near: Vec<String> = [now - 30, now, now + 30, now + 60]
        .iter()
        .map(|at| totp_code(uri, *at))
        .collect();
    (0..).map(|n| format!("{n:06}")).find(|c| !near.contains(c))
}

fn secret_of(uri: &str) -> String {
    uri.split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap()
        .to_owned()
}

fn mfa_events(r: &Rampart) -> Vec<(String, String)> {
    r.json(&["audit", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("mfa_"))
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["event"]["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn auth_epoch(r: &Rampart, user: &str) -> i64 {
    r.json(&["user", "show", user])["auth_epoch"]
        .as_i64()
        .unwrap()
}

#[test]
fn enrolling_with_a_code_from_the_app_stores_the_second_factor() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    r.ok(&["user", "add", "bob"]);
    let epoch = auth_epoch(&r, "alice");

    let run = enroll(&r, &["user", "mfa", "enroll", "alice"], right_code);
    assert!(run.status.success(), "{run:?}");
    let uri = run.uri.clone().unwrap();
    assert!(uri.starts_with("otpauth://totp/Rampart:alice?"), "{uri}");
    assert!(uri.contains("issuer=Rampart"), "{uri}");
    let secret = secret_of(&uri);
    // The QR code (Unicode half blocks), the URI on a line of its own, then the result.
    assert!(
        run.stdout.contains('█') && run.stdout.contains('▀'),
        "{run:?}"
    );
    assert!(run.stdout.lines().any(|line| line == uri), "{run:?}");
    assert_eq!(
        run.stdout.lines().last(),
        Some("enrolled a TOTP second factor for user alice")
    );
    assert!(
        run.stderr.contains("Code from the authenticator app: "),
        "{run:?}"
    );

    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], true);
    assert_eq!(r.json(&["user", "show", "bob"])["mfa_enrolled"], false);
    assert!(auth_epoch(&r, "alice") > epoch);
    let show = r.ok(&["user", "show", "alice"]);
    assert!(
        show.lines()
            .any(|l| l.split_whitespace().eq(["mfa:", "totp"])),
        "{show}"
    );
    let show = r.ok(&["user", "show", "bob"]);
    assert!(
        show.lines()
            .any(|l| l.split_whitespace().eq(["mfa:", "not", "enrolled"])),
        "{show}"
    );
    let list = r.ok(&["user", "list"]);
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    let mfa_column = header.iter().position(|h| *h == "MFA").unwrap();
    let column = |user: &str| {
        let row = list.lines().find(|l| l.starts_with(user)).unwrap();
        row.split_whitespace().nth(mfa_column).unwrap().to_owned()
    };
    assert_eq!(
        (column("alice"), column("bob")),
        ("totp".into(), "-".into())
    );
    assert_eq!(
        mfa_events(&r),
        [("mfa_enrolled".to_owned(), "alice".to_owned())]
    );
    assert_eq!(r.json(&["vault", "status"])["secrets"], 1);

    // The secret was shown once and is stored sealed: it is in no file of the data directory,
    // and in no later output.
    let raw = totp_secret(&uri);
    assert_eq!(raw.len(), 20);
    for needle in [secret.as_bytes(), raw.as_slice()] {
        let hits = files_containing(&r.data_dir(), needle);
        assert!(hits.is_empty(), "secret in clear in {hits:?}");
    }
    assert!(!r.snapshot().to_string().contains(&secret));
    // The search would find it: here is a file that holds it in clear.
    let shown = r.scratch().join("shown-uri.txt");
    std::fs::write(&shown, &uri).unwrap();
    assert_eq!(files_containing(r.scratch(), secret.as_bytes()), [shown]);
}

#[test]
fn a_wrong_or_missing_code_stores_nothing_and_says_so_on_one_line() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    let before = r.snapshot();
    type Answer = fn(&str) -> Option<String>;
    let cases: [(&str, Answer, &str); 4] = [
        ("wrong code", wrong_code, "the code does not match"),
        (
            "five digits",
            |_| Some("12345".into()),
            "the code does not match",
        ),
        (
            "letters",
            |_| Some("abcdef".into()),
            "the code does not match",
        ),
        ("no answer", |_| None, "no code on standard input"),
    ];
    for (case, answer, expected) in cases {
        let run = enroll(&r, &["user", "mfa", "enroll", "alice"], answer);
        assert!(run.uri.is_some(), "{case}: {run:?}");
        assert_eq!(run.status.code(), Some(1), "{case}: {run:?}");
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{case}: one error line: {run:?}");
        assert!(errors[0].starts_with("error: "), "{case}: {run:?}");
        assert!(errors[0].contains(expected), "{case}: {run:?}");
        assert!(errors[0].contains("nothing was stored"), "{case}: {run:?}");
        assert!(!run.stdout.contains("enrolled"), "{case}: {run:?}");
        assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], false);
        assert_eq!(r.snapshot(), before, "{case} changed something");
    }

    // An unknown user: refused before any secret is shown.
    let run = enroll(&r, &["user", "mfa", "enroll", "nobody"], right_code);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!((run.uri, run.stdout.as_str()), (None, ""));
    assert_eq!(run.stderr.trim_end(), "error: user nobody not found");
    assert_eq!(r.snapshot(), before);
}

#[test]
fn a_second_enrolment_needs_replace_and_reset_removes_the_factor() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "alice"]);
    let first = enroll(&r, &["user", "mfa", "enroll", "alice"], right_code);
    assert!(first.status.success(), "{first:?}");
    let enrolled_epoch = auth_epoch(&r, "alice");

    // Without --replace: refused before a new secret is shown, and nothing changes.
    let before = r.snapshot();
    let refused = enroll(&r, &["user", "mfa", "enroll", "alice"], right_code);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(
        (refused.uri.as_deref(), refused.stdout.as_str()),
        (None, "")
    );
    assert!(
        refused
            .stderr
            .starts_with("error: user alice already has a second factor: use --replace"),
        "{refused:?}"
    );
    assert_eq!(r.snapshot(), before);

    // With --replace and --json: the URI as one JSON line, then the result.
    let replaced = enroll(
        &r,
        &["user", "mfa", "enroll", "alice", "--replace", "--json"],
        right_code,
    );
    assert!(replaced.status.success(), "{replaced:?}");
    let (first_line, rest) = replaced.stdout.split_once('\n').unwrap();
    let shown: Value = serde_json::from_str(first_line).unwrap();
    assert_eq!(shown["user"], "alice");
    assert_eq!(shown["otpauth_uri"].as_str(), replaced.uri.as_deref());
    assert!(!replaced.stdout.contains('█'), "no QR code with --json");
    let result: Value = serde_json::from_str(rest).unwrap();
    assert_eq!(
        result,
        serde_json::json!({ "user": "alice", "mfa": "totp" })
    );
    assert_ne!(
        secret_of(first.uri.as_deref().unwrap()),
        secret_of(replaced.uri.as_deref().unwrap()),
        "a new secret"
    );
    let replaced_epoch = auth_epoch(&r, "alice");
    assert!(replaced_epoch > enrolled_epoch);
    assert_eq!(r.json(&["vault", "status"])["secrets"], 1);

    let out = r.ok(&["user", "mfa", "reset", "alice"]);
    assert_eq!(
        out.trim_end(),
        "removed the second factor of user alice: they must enroll again"
    );
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], false);
    assert!(auth_epoch(&r, "alice") > replaced_epoch);
    assert_eq!(r.json(&["vault", "status"])["secrets"], 0);
    let again = r.run(&["user", "mfa", "reset", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim_end(),
        "error: second factor of user alice not found"
    );
    let alice = |kind: &str| (kind.to_owned(), "alice".to_owned());
    assert_eq!(
        mfa_events(&r),
        [
            alice("mfa_enrolled"),
            alice("mfa_enrolled"),
            alice("mfa_reset")
        ]
    );

    // After a reset, a plain enrolment works again.
    let after_reset = enroll(&r, &["user", "mfa", "enroll", "alice"], right_code);
    assert!(after_reset.status.success(), "{after_reset:?}");
    assert_eq!(r.json(&["user", "show", "alice"])["mfa_enrolled"], true);
}
