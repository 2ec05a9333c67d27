//! Authentication over the real SSH path: TOTP through keyboard-interactive after the public key,
//! with a stock OpenSSH client answering through SSH_ASKPASS, and a russh client for what
//! OpenSSH will not do (open a channel with the second factor pending, change user name).

use crate::mfa::wrong_code;
use crate::policy::{only_grant, remove_grants};
use crate::ssh::{Lab, text};
use rampart_testkit::{totp_code, unix_now};
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

/// An OpenSSH client that answers the second-factor prompt with whatever `code` holds.
struct MfaClient {
    config: PathBuf,
    askpass: PathBuf,
    code: PathBuf,
}

impl MfaClient {
    fn new(lab: &Lab) -> Self {
        let dir = lab.r.scratch();
        let code = dir.join("code");
        let askpass = dir.join("askpass.sh");
        std::fs::write(&askpass, format!("#!/bin/sh\ncat {}\n", code.display())).unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Not BatchMode: that turns keyboard-interactive off.
        let config = dir.join("ssh_config_mfa");
        std::fs::write(
            &config,
            format!(
                "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  \
                 IdentityFile {}\n  IdentitiesOnly yes\n  PreferredAuthentications publickey,keyboard-interactive\n  \
                 KbdInteractiveAuthentication yes\n  PasswordAuthentication no\n  NumberOfPasswordPrompts 1\n",
                dir.join("alice").display()
            ),
        )
        .unwrap();
        Self {
            config,
            askpass,
            code,
        }
    }

    fn ssh(&self, lab: &Lab, code: &str, command: &str) -> Output {
        std::fs::write(&self.code, format!("{code}\n")).unwrap();
        Command::new("ssh")
            .arg("-F")
            .arg(&self.config)
            .args(["-p", &lab.port()])
            .arg(format!("{}@127.0.0.1", lab.direct()))
            .arg(command)
            .env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Enrolls alice and returns her otpauth URI.
fn enroll_alice(lab: &Lab) -> String {
    crate::mfa::enroll_by_link(&lab.r, &lab.server, "alice", ALICE_PASSWORD)
}

#[test]
fn totp_is_asked_after_the_key_and_a_code_works_once() {
    let Some(lab) = Lab::start() else { return };
    let client = MfaClient::new(&lab);
    // A grant that requires a second factor denies a key-only login, with the reason.
    only_grant(&lab, &["--require-mfa"]);
    let denied = lab.ssh(&lab.direct(), "true", b"");
    assert!(
        text(&denied.stderr).contains("requires a login with a second factor"),
        "{}",
        text(&denied.stderr)
    );

    let uri = enroll_alice(&lab);
    // The key alone is no longer enough: BatchMode cannot answer the prompt.
    let key_only = lab.ssh(&lab.direct(), "echo no", b"");
    assert_eq!(key_only.status.code(), Some(255));
    assert!(
        text(&key_only.stderr).contains("Permission denied"),
        "{}",
        text(&key_only.stderr)
    );

    // The code the app shows now gets in, once. (The enrolment used this step's code already
    // if it was typed in the same 30 seconds: take the next step's code then, which the
    // server accepts as clock skew.)
    let mut code = totp_code(&uri, unix_now());
    let mut out = client.ssh(&lab, &code, "echo in");
    if !out.status.success() {
        code = totp_code(&uri, unix_now() + 30);
        out = client.ssh(&lab, &code, "echo in");
    }
    assert_eq!(text(&out.stdout), "in\n", "{}", text(&out.stderr));
    let logins = lab.events("login_succeeded");
    assert_eq!(logins.last().unwrap()["event"]["method"], "publickey+totp");

    // The same code again is a replay: refused.
    let replay = client.ssh(&lab, &code, "echo replay");
    assert_ne!(replay.status.code(), Some(0));
    assert!(!text(&replay.stdout).contains("replay"));
    // A wrong code is refused the same way.
    let wrong = client.ssh(&lab, &wrong_code(&uri).unwrap(), "echo wrong");
    assert_ne!(wrong.status.code(), Some(0));
    assert!(!text(&wrong.stdout).contains("wrong"));
    assert_eq!(text(&replay.stderr), text(&wrong.stderr));
}

struct TrustAll;

impl client::Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[test]
fn a_pending_second_factor_opens_nothing_and_cannot_switch_user() {
    let Some(lab) = Lab::start() else { return };
    let uri = enroll_alice(&lab);
    lab.r.ok(&["user", "add", "bob"]);
    let key_path = lab.r.scratch().join("alice");
    let port = lab.server.ssh.port();
    let user = lab.direct();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let key = Arc::new(russh::keys::load_secret_key(&key_path, None).unwrap());
        let config = Arc::new(client::Config::default());
        let connect = || client::connect(config.clone(), ("127.0.0.1", port), TrustAll);

        // A7: first factor done, second pending: no channel of any kind.
        let mut handle = connect().await.unwrap();
        let auth = handle
            .authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(key.clone(), None))
            .await
            .unwrap();
        assert!(
            matches!(
                auth,
                russh::client::AuthResult::Failure {
                    partial_success: true,
                    ..
                }
            ),
            "{auth:?}"
        );
        assert!(
            handle.channel_open_session().await.is_err(),
            "a session channel opened with MFA pending"
        );

        // A6: the second factor for another user name after alice's key: refused, even with
        // alice's valid code.
        let mut handle = connect().await.unwrap();
        let auth = handle
            .authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(key.clone(), None))
            .await
            .unwrap();
        assert!(!auth.success());
        let reply = handle
            .authenticate_keyboard_interactive_start("bob", None)
            .await
            .unwrap();
        assert!(
            matches!(
                reply,
                russh::client::KeyboardInteractiveAuthResponse::Failure { .. }
            ),
            "{reply:?}"
        );
        let code = totp_code(&uri, unix_now() + 30);
        let reply = handle
            .authenticate_keyboard_interactive_start(user.clone(), None)
            .await
            .unwrap();
        // The pending state was dropped by the switch: alice's name starts from scratch too.
        assert!(
            matches!(
                reply,
                russh::client::KeyboardInteractiveAuthResponse::Failure { .. }
            ),
            "{reply:?} ({code})"
        );
        assert!(handle.channel_open_session().await.is_err());
    });
}

pub(crate) const ALICE_PASSWORD: &str = "alice-correct-horse-42";

/// `ssh` with a password answered through SSH_ASKPASS, from source address `from`.
pub(crate) fn password_login(lab: &Lab, user: &str, password: &str, from: &str) -> Output {
    let dir = lab.r.scratch();
    let secret = dir.join("password");
    let askpass = dir.join("askpass-password.sh");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    std::fs::write(&askpass, format!("#!/bin/sh\ncat {}\n", secret.display())).unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            "PreferredAuthentications=password",
        ])
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args(["-b", from, "-p", &lab.port()])
        .arg(format!("{user}@127.0.0.1"))
        .arg("echo in")
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn lockout_per_user_and_per_source_looks_like_any_failure_and_unlock_lifts_it() {
    let Some(lab) = Lab::start() else { return };
    lab.r.ok_with_stdin(
        &["user", "password", "alice"],
        format!("{ALICE_PASSWORD}\n").as_bytes(),
    );
    let alice = lab.direct();
    let ok = password_login(&lab, &alice, ALICE_PASSWORD, "127.0.0.1");
    assert_eq!(text(&ok.stdout), "in\n", "{}", text(&ok.stderr));

    // Five wrong passwords from five addresses: alice is locked, no address is.
    let mut wrong_stderr = String::new();
    for n in 2..7 {
        let out = password_login(&lab, &alice, "wrong-password-123", &format!("127.0.0.{n}"));
        assert_eq!(out.status.code(), Some(255));
        wrong_stderr = text(&out.stderr);
    }
    let locked = password_login(&lab, &alice, ALICE_PASSWORD, "127.0.0.7");
    assert_eq!(locked.status.code(), Some(255), "a locked user got in");
    let unknown = password_login(&lab, "nobody@x", ALICE_PASSWORD, "127.0.0.7");
    // A2: unknown user, wrong password and locked user look the same.
    // (OpenSSH prefixes the message with the login name it used.)
    let answer = |stderr: &str| stderr.split_once(": ").unwrap().1.to_owned();
    assert_eq!(text(&locked.stderr), wrong_stderr);
    assert_eq!(answer(&text(&unknown.stderr)), answer(&wrong_stderr));
    assert!(wrong_stderr.contains("Permission denied"), "{wrong_stderr}");
    let shown = lab.r.json(&["user", "show", "alice"]);
    assert!(shown["locked_until"].is_string(), "{shown}");
    assert_eq!(lab.events("login_locked").len(), 1);

    lab.r.ok(&["user", "unlock", "alice"]);
    let ok = password_login(&lab, &alice, ALICE_PASSWORD, "127.0.0.7");
    assert_eq!(text(&ok.stdout), "in\n", "{}", text(&ok.stderr));
    assert_eq!(lab.events("user_unlocked").len(), 1);

    // Five failures from one address for names that do not exist lock the address.
    for n in 0..5 {
        password_login(&lab, &format!("guess{n}"), "whatever-123456", "127.0.0.8");
    }
    let from_locked = password_login(&lab, &alice, ALICE_PASSWORD, "127.0.0.8");
    assert_eq!(
        from_locked.status.code(),
        Some(255),
        "a locked address got in"
    );
    let elsewhere = password_login(&lab, &alice, ALICE_PASSWORD, "127.0.0.9");
    assert_eq!(
        text(&elsewhere.stdout),
        "in\n",
        "{}",
        text(&elsewhere.stderr)
    );
    // The failures are aggregated: one event per key and window, not one per attempt.
    let failed = lab.events("login_failed").len();
    assert!(
        (1..=7).contains(&failed),
        "{failed} login_failed events for 11 failures"
    );
}

#[test]
fn source_rules_admit_or_refuse_a_valid_key() {
    let Some(lab) = Lab::start() else { return };
    let from = |address: &str| {
        lab.ssh_command(&lab.direct())
            .args(["-b", address])
            .arg("echo in")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    lab.r.ok(&[
        "user",
        "set",
        "alice",
        "--allow-from",
        "127.0.0.5/32,127.0.1.0/24",
    ]);
    assert_eq!(from("127.0.0.1").status.code(), Some(255));
    assert_eq!(text(&from("127.0.0.5").stdout), "in\n");
    assert_eq!(text(&from("127.0.1.9").stdout), "in\n");
    lab.r
        .ok(&["user", "set", "alice", "--deny-from", "127.0.1.9"]);
    assert_eq!(
        from("127.0.1.9").status.code(),
        Some(255),
        "deny beats allow"
    );
    assert_eq!(text(&from("127.0.1.8").stdout), "in\n");
    // grant explain says the same for the same address.
    let explain = |from: &str| {
        lab.r.json(&[
            "grant", "explain", "--user", "alice", "--asset", "web-01", "--action", "exec",
            "--from", from,
        ])[0]
            .clone()
    };
    assert_eq!(explain("127.0.1.8")["decision"], "allow");
    let denied = explain("127.0.1.9");
    assert_eq!(denied["decision"], "deny");
    assert!(
        denied["reason"].as_str().unwrap().contains("deny_from"),
        "{denied}"
    );
    lab.r.ok(&[
        "user",
        "set",
        "alice",
        "--allow-from",
        "",
        "--deny-from",
        "",
    ]);
    assert_eq!(text(&from("127.0.0.1").stdout), "in\n");
}

/// A policy to test: its name, how to put it in place, and how to lift it.
type Policy<'a> = (&'static str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);

/// A8: each credential type (key, password, each with TOTP) against each policy (source allow
/// list, disabled user, grant outside its window, no grant at all, grant requiring MFA): every
/// combination is refused, and the same credential is admitted once the policy allows it.
#[test]
fn every_credential_type_is_refused_by_every_policy() {
    // Refusals count toward lockout; a high threshold keeps this test about the policies.
    let Some(lab) = Lab::start_with_env(&[("RAMPART_AUTH_LOCKOUT_THRESHOLD", "1000")]) else {
        return;
    };
    lab.r.ok_with_stdin(
        &["user", "password", "alice"],
        format!("{ALICE_PASSWORD}\n").as_bytes(),
    );
    let tomorrow =
        (time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(86_400)).weekday();
    let other_day = format!("{} 00:00-23:59 UTC", &format!("{tomorrow}")[..3]);
    let grant = |extra: &[&str]| {
        if extra == ["none"] {
            remove_grants(&lab);
        } else {
            only_grant(&lab, extra);
        }
    };
    let policies: Vec<Policy> = vec![
        (
            "source allow list",
            Box::new(|| {
                drop(
                    lab.r
                        .ok(&["user", "set", "alice", "--allow-from", "10.9.0.0/16"]),
                )
            }),
            Box::new(|| drop(lab.r.ok(&["user", "set", "alice", "--allow-from", ""]))),
        ),
        (
            "disabled user",
            Box::new(|| drop(lab.r.ok(&["user", "disable", "alice"]))),
            Box::new(|| drop(lab.r.ok(&["user", "enable", "alice"]))),
        ),
        (
            "grant outside its window",
            Box::new(|| grant(&["--schedule", &other_day])),
            Box::new(|| grant(&[])),
        ),
        (
            "no grant",
            Box::new(|| grant(&["none"])),
            Box::new(|| grant(&[])),
        ),
    ];
    let client = MfaClient::new(&lab);
    let key = |_: &str| lab.ssh(&lab.direct(), "echo in", b"");
    let password = |_: &str| password_login(&lab, &lab.direct(), ALICE_PASSWORD, "127.0.0.1");
    let check = |what: &str, login: &dyn Fn(&str) -> Output| {
        let admitted = login(what);
        assert_eq!(
            text(&admitted.stdout),
            "in\n",
            "{what} before the policy: {}",
            text(&admitted.stderr)
        );
        for (policy, apply, undo) in &policies {
            apply();
            let refused = login(what);
            assert!(
                !refused.status.success() && !text(&refused.stdout).contains("in"),
                "{what} got through {policy}"
            );
            undo();
        }
    };
    check("key", &key);
    check("password", &password);
    // A grant requiring MFA refuses both first factors alone.
    grant(&["--require-mfa"]);
    assert!(
        !key("key").status.success(),
        "key alone got through a grant requiring MFA"
    );
    assert!(
        !password("password").status.success(),
        "password alone got through a grant requiring MFA"
    );

    // With TOTP enrolled, key + code meets the same login policies (the grant policies do not
    // depend on how the user logged in, and are covered above).
    let uri = enroll_alice(&lab);
    let last_used = std::cell::Cell::new(unix_now() / 30);
    // A code works once: each admitted login takes the next time step, waiting for the clock
    // when the server would call it too far ahead (it accepts one step of skew).
    let key_totp = |consumes: bool| {
        let step = last_used.get() + 1;
        while unix_now() / 30 + 1 < step {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        if consumes {
            last_used.set(step);
        }
        client.ssh(&lab, &totp_code(&uri, step * 30), "echo in")
    };
    grant(&[]);
    let admitted = key_totp(true);
    assert_eq!(text(&admitted.stdout), "in\n", "{}", text(&admitted.stderr));
    for (policy, apply, undo) in policies.iter().take(2) {
        apply();
        let refused = key_totp(false);
        assert!(
            !refused.status.success() && !text(&refused.stdout).contains("in"),
            "key+totp got through {policy}"
        );
        undo();
    }
    // The grant requiring MFA admits key + code.
    grant(&["--require-mfa"]);
    let admitted = key_totp(true);
    assert_eq!(text(&admitted.stdout), "in\n", "{}", text(&admitted.stderr));
}
