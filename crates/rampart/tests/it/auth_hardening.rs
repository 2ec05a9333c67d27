//! Issue 11's authentication holes, each with a test that failed before its fix: lockout used as a
//! weapon against a stronger factor (item 7), target host-key trust (item 4), login rules that
//! reach live sessions and refusals that are audited (item 5), `X-Forwarded-For` across header
//! lines (item 6) and the open redirect after login (item 8, in headless Chromium).

use super::BIN;
use crate::auth::password_login;
use crate::ssh::{Lab, text};
use rampart_testkit::{HttpClient, HttpResponse, Rampart, SshTarget, require_tool};
use serde_json::{Value, json};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Polls `condition` every 200 ms for up to a minute (a loaded 2-core machine is slow).
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within a minute");
}

/// `ssh` as alice (key only) from source address `from`, running `command`.
fn key_login(lab: &Lab, user: &str, from: &str, command: &str) -> Output {
    lab.ssh_command(user)
        .args(["-b", from])
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A web login through the API with the given `X-Forwarded-For` header lines.
fn web_login(
    client: &HttpClient,
    forwarded_for: &[&str],
    user: &str,
    password: &str,
) -> HttpResponse {
    let headers: Vec<(&str, &str)> = forwarded_for
        .iter()
        .map(|line| ("x-forwarded-for", *line))
        .collect();
    let body = json!({ "username": user, "password": password });
    client.request("POST", "/api/v1/login", &headers, Some(&body))
}

fn set_password(r: &Rampart, user: &str, password: &str) {
    r.ok_with_stdin(
        &["user", "password", user],
        format!("{password}\n").as_bytes(),
    );
}

/// The `login_locked` events' keys.
fn locked_keys(lab_events: &[Value]) -> Vec<String> {
    lab_events
        .iter()
        .map(|e| e["event"]["key"].as_str().unwrap().to_owned())
        .collect()
}

fn events_of_kind(r: &Rampart, kind: &str) -> Vec<Value> {
    r.json(&["audit", "list", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

// ---- item 7: lockout as a weapon ----

/// Five wrong passwords from five addresses (over SSH, and over the web through a trusted proxy)
/// lock the password of a user who logs in with a key, an administrator too; their key login
/// keeps working, from anywhere, the guessing addresses included.
#[test]
fn password_guesses_from_five_addresses_never_lock_a_key_login() {
    let Some(lab) = Lab::start_with_env(&[("RAMPART_AUTH_TRUSTED_PROXIES", "127.0.0.1/32")]) else {
        return;
    };
    let alice = lab.direct();
    for n in 2..7 {
        let out = password_login(&lab, &alice, "wrong-password-123", &format!("127.0.0.{n}"));
        assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    }
    // Her key still logs her in, from her own address and from a guessing one.
    for from in ["127.0.0.1", "127.0.0.3"] {
        let out = key_login(&lab, &alice, from, "echo in");
        assert_eq!(
            text(&out.stdout),
            "in\n",
            "alice's key from {from}: {}",
            text(&out.stderr)
        );
    }

    // The guesses did lock something: alice's password, and nothing else.
    assert_eq!(
        locked_keys(&lab.events("login_locked")),
        ["password:user:alice"]
    );
    let shown = lab.r.json(&["user", "show", "alice"]);
    assert_eq!(shown["locks"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["locks"][0]["factor"], "password", "{shown}");
    assert!(
        lab.r
            .ok(&["user", "show", "alice"])
            .contains("password logins locked until"),
    );

    // An administrator whose password is guessed over the web, from five forwarded addresses.
    let dir = lab.r.scratch();
    let (adam_key, adam_pub) = rampart_testkit::ssh_keygen(dir, "adam", "ed25519", "");
    lab.r.ok(&[
        "user",
        "add",
        "adam",
        "--role",
        "admin",
        "--key",
        adam_pub.to_str().unwrap(),
    ]);
    set_password(&lab.r, "adam", "adam-right-password");
    lab.r
        .ok(&["grant", "add", "--user", "adam", "--asset", "web-01"]);
    let client = lab.server.client();
    for n in 1..=5 {
        let from = format!("198.51.100.{n}");
        let answer = web_login(&client, &[&from], "adam", "wrong-password");
        assert_eq!(answer.status, 401);
    }
    // His password is locked (even the right one is refused now)...
    let right = web_login(&client, &["198.51.100.50"], "adam", "adam-right-password");
    assert_eq!(right.status, 401, "a locked password got in");
    assert!(locked_keys(&lab.events("login_locked")).contains(&"password:user:adam".to_owned()));
    // ...his key is not.
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&lab.client_config)
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(&adam_key)
        .args(["-p", &lab.port()])
        .arg(format!("adam@{}@web-01@127.0.0.1", lab.login))
        .arg("echo admin in")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "admin in\n",
        "adam's key: {}",
        text(&out.stderr)
    );
    // And an administrator can lift the password lock.
    lab.r.ok(&["user", "unlock", "adam"]);
    let right = web_login(&client, &["198.51.100.51"], "adam", "adam-right-password");
    assert_eq!(right.status, 200, "{}", right.text());
}

// ---- item 6: X-Forwarded-For across header lines ----

/// A client sends its own `X-Forwarded-For` line; the trusted proxy adds a second line with the
/// address it saw. The lockout counts the proxy's address, not the client's claim.
#[test]
fn with_two_forwarded_for_lines_the_lockout_counts_the_address_the_proxy_saw() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "erin"]);
    set_password(&r, "erin", "erin-right-password");
    // The test client is the trusted proxy.
    let server = r.serve_with_env(&[("RAMPART_AUTH_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let client = server.client();
    for n in 0..5 {
        let answer = web_login(
            &client,
            &["203.0.113.9", "198.51.100.7"],
            &format!("ghost{n}"),
            "whatever",
        );
        assert_eq!(answer.status, 401);
    }
    // The address the proxy saw is locked: even erin's right password is refused from there...
    let from_seen = web_login(&client, &["198.51.100.7"], "erin", "erin-right-password");
    assert_eq!(from_seen.status, 401, "the guessing address was not locked");
    // ...while the address the client claimed was never counted.
    let from_claimed = web_login(&client, &["203.0.113.9"], "erin", "erin-right-password");
    assert_eq!(from_claimed.status, 200, "{}", from_claimed.text());
    let locked: Vec<String> = events_of_kind(&r, "login_locked")
        .iter()
        .map(|e| e["event"]["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(locked, ["password:source:198.51.100.7"]);
    let failed = events_of_kind(&r, "login_failed");
    assert_eq!(failed[0]["event"]["source"], "198.51.100.7");
}

// ---- item 5: login rules reach live sessions; refusals are audited ----

/// A long command over SSH from `from`, running until it is ended.
fn long_session(lab: &Lab, from: &str) -> Child {
    lab.ssh_command(&lab.direct())
        .args(["-b", from])
        .arg("echo started; sleep 120")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn live_sessions(lab: &Lab) -> Vec<Value> {
    lab.r
        .json(&["session", "list", "--live"])
        .as_array()
        .unwrap()
        .clone()
}

/// Adding `--deny-from` for the address of a live SSH session ends that session within seconds
/// (with the reason, audited), leaves the user's session from another address running, and a
/// new login from the denied address is refused and audited as `login_refused`.
#[test]
fn deny_from_for_a_live_sessions_address_ends_it_and_refusals_are_audited() {
    let Some(lab) = Lab::start() else { return };
    let mut denied = long_session(&lab, "127.0.0.3");
    let mut allowed = long_session(&lab, "127.0.0.4");
    eventually("two live sessions", || live_sessions(&lab).len() == 2);

    lab.r
        .ok(&["user", "set", "alice", "--deny-from", "127.0.0.3"]);
    let mut status = None;
    eventually("the session from the denied address ends", || {
        status = denied.try_wait().unwrap();
        status.is_some()
    });
    let mut stderr = String::new();
    denied
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("rampart: session ended: refused by the login rules"),
        "{stderr}"
    );
    // The other session is still live: only what the new rules refuse ends.
    eventually("one live session left", || live_sessions(&lab).len() == 1);
    assert!(
        allowed.try_wait().unwrap().is_none(),
        "the allowed session ended"
    );
    let live = live_sessions(&lab);
    assert!(
        live[0]["source_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.4:"),
        "{live:?}"
    );
    let ended: Vec<Value> = lab
        .events("session_ended")
        .into_iter()
        .filter(|e| {
            e["event"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("login rules"))
        })
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0]["event"]["reason"]
            .as_str()
            .unwrap()
            .contains("deny_from"),
        "{ended:?}"
    );
    allowed.kill().unwrap();
    allowed.wait().unwrap();

    // A new login from the denied address: refused, and on the audit record with the rule.
    let refused = key_login(&lab, &lab.direct(), "127.0.0.3", "echo in");
    assert_eq!(refused.status.code(), Some(255));
    let refusals = lab.events("login_refused");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["event"]["login"], lab.direct());
    assert_eq!(refusals[0]["event"]["source"], "127.0.0.3");
    assert!(
        refusals[0]["event"]["reason"]
            .as_str()
            .unwrap()
            .contains("deny_from"),
        "{refusals:?}"
    );
    // It locked nothing: no credential was tried.
    assert!(lab.events("login_locked").is_empty());
    assert!(
        lab.r
            .ok(&["audit", "verify"])
            .contains("everything verifies")
    );
}

/// A browser session's requests pass the login rules too (as API tokens' do): a rule that
/// refuses the session's address ends it.
#[test]
fn a_browser_session_ends_when_the_login_rules_refuse_its_address() {
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "erin"]);
    set_password(&r, "erin", "erin-right-password");
    let server = r.serve_with_env(&[("RAMPART_AUTH_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let client = server.client();
    let login = web_login(&client, &["198.51.100.7"], "erin", "erin-right-password");
    assert_eq!(login.status, 200, "{}", login.text());
    let set_cookie = login.header("set-cookie").unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let me = |from: &str| {
        client.request(
            "GET",
            "/api/v1/me/accounts",
            &[("cookie", &cookie), ("x-forwarded-for", from)],
            None,
        )
    };
    assert_eq!(me("198.51.100.7").status, 200);
    r.ok(&["user", "set", "erin", "--deny-from", "198.51.100.0/24"]);
    assert_eq!(me("198.51.100.7").status, 401);
    // Ended, not only refused once: lifting the rule does not bring it back.
    r.ok(&["user", "set", "erin", "--deny-from", ""]);
    assert_eq!(me("198.51.100.7").status, 401);
    let ended = events_of_kind(&r, "web_session_ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0]["event"]
            .to_string()
            .contains("refused by the login rules"),
        "{ended:?}"
    );
    // And a web login the rules refuse is audited as well.
    r.ok(&["user", "set", "erin", "--allow-from", "10.0.0.0/8"]);
    let refused = web_login(&client, &["198.51.100.8"], "erin", "erin-right-password");
    assert_eq!(refused.status, 401);
    let refusals = events_of_kind(&r, "login_refused");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["event"]["method"], "web-password");
    assert_eq!(refusals[0]["event"]["source"], "198.51.100.8");
}

// ---- item 4: target host keys ----

/// Adds asset NAME at `port` with the lab's key account on it, granted to alice.
fn add_target(lab: &Lab, name: &str, port: u16) {
    let target_key = lab.r.scratch().join("target");
    crate::ssh::add_loopback_target(&lab.r, name, port, &lab.login, &target_key);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", name]);
}

/// `ssh-keygen -lf`'s fingerprint of a public key file.
fn fingerprint_of(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// Whether an sshd log shows any authentication attempt (a user name or credential received).
fn saw_authentication(log: &str) -> bool {
    ["userauth-request", "Accepted ", "Failed ", "Postponed "]
        .iter()
        .any(|mark| log.contains(mark))
}

/// With `ssh.target_host_keys = "require-pinned"`, a target whose key is not pinned is refused
/// before anything is sent: its sshd (logging at DEBUG3) sees a connection and no
/// authentication attempt. `asset hostkey --scan` shows the fingerprint `ssh-keygen -lf` shows,
/// pins nothing by itself, and pins with `--pin` only the fingerprint confirmed.
#[test]
fn require_pinned_refuses_an_unpinned_target_before_any_credential_and_scan_pins_what_was_confirmed()
 {
    let Some(lab) = Lab::start_with_env(&[("RAMPART_SSH_TARGET_HOST_KEYS", "require-pinned")])
    else {
        return;
    };
    let target_pub = lab.r.scratch().join("target.pub");
    let Some(target) = SshTarget::start_logging(&target_pub) else {
        return;
    };
    add_target(&lab, "web-09", target.port);
    let user = format!("alice@{}@web-09", lab.login);
    let refused = lab.ssh(&user, "echo in", b"");
    assert_ne!(refused.status.code(), Some(0));
    assert!(!text(&refused.stdout).contains("in"));
    assert!(
        text(&refused.stderr).contains("the host key of web-09 is not pinned"),
        "{}",
        text(&refused.stderr)
    );
    let log = target.log();
    assert!(log.contains("Connection from 127.0.0.1"), "{log}");
    assert!(
        !saw_authentication(&log),
        "the target saw an authentication attempt:\n{log}"
    );
    assert!(
        lab.events("secret_used").is_empty(),
        "the vaulted key was taken out"
    );
    assert!(lab.r.json(&["asset", "show", "web-09"])["host_key"].is_null());

    // --scan shows the real fingerprint and pins nothing.
    let expected = fingerprint_of(&target.host_key_file());
    let scanned = lab.r.ok(&["asset", "hostkey", "web-09", "--scan"]);
    assert!(scanned.contains(&expected), "{scanned}");
    assert!(scanned.contains("nothing pinned yet"), "{scanned}");
    let scanned = lab.r.json(&["asset", "hostkey", "web-09", "--scan"]);
    assert_eq!(scanned["fingerprint"], expected);
    assert!(lab.r.json(&["asset", "show", "web-09"])["host_key"].is_null());
    assert!(!saw_authentication(&target.log()));
    // --pin with another fingerprint pins nothing.
    let wrong = lab.r.run(&[
        "asset",
        "hostkey",
        "web-09",
        "--scan",
        "--pin",
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("nothing was pinned"),
        "{}",
        text(&wrong.stderr)
    );
    assert!(lab.r.json(&["asset", "show", "web-09"])["host_key"].is_null());
    // The confirmed fingerprint pins the key, and the target is reached.
    lab.r
        .ok(&["asset", "hostkey", "web-09", "--scan", "--pin", &expected]);
    let pinned = lab.r.json(&["asset", "show", "web-09"]);
    let real = std::fs::read_to_string(target.host_key_file()).unwrap();
    assert!(
        real.starts_with(pinned["host_key"].as_str().unwrap()),
        "{pinned}"
    );
    let out = lab.ssh(&user, "echo in", b"");
    assert_eq!(text(&out.stdout), "in\n", "{}", text(&out.stderr));
}

/// Accepts two connections, and only once both are in, carries the first to `backends[0]` and
/// the second to `backends[1]`: two first connections to one asset, overlapping for sure, that
/// meet two different hosts (one of them an impostor).
fn two_way_proxy(backends: [u16; 2]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut accepted = Vec::new();
        while accepted.len() < 2 && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => accepted.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        for (client, backend) in accepted.into_iter().zip(backends) {
            client.set_nonblocking(false).unwrap();
            let server = TcpStream::connect(("127.0.0.1", backend)).unwrap();
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    port
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// Runs `ssh USER@bastion 'echo in'` twice at once; returns both outputs.
fn twice_at_once(lab: &Lab, user: &str) -> [Output; 2] {
    let spawn = || {
        lab.ssh_command(user)
            .arg("echo in")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ]
}

/// Two simultaneous first connections to a target agree on one host key. To the same host both
/// succeed and one key is pinned; when the second meets another host (a man in the middle), the
/// key is pinned by the first to check, and the other host is refused before it receives any
/// authentication attempt.
#[test]
fn two_simultaneous_first_connections_pin_one_key_before_any_credential_is_sent() {
    let Some(lab) = Lab::start() else { return };
    // The same host twice: both in, one pin.
    let both = twice_at_once(&lab, &lab.direct());
    for out in &both {
        assert_eq!(text(&out.stdout), "in\n", "{}", text(&out.stderr));
    }
    assert_eq!(lab.events("host_key_pinned").len(), 1);

    // Two hosts behind one address, reached at the same moment.
    let target_pub = lab.r.scratch().join("target.pub");
    let (Some(real), Some(impostor)) = (
        SshTarget::start_logging(&target_pub),
        SshTarget::start_logging(&target_pub),
    ) else {
        return;
    };
    let proxy = two_way_proxy([real.port, impostor.port]);
    add_target(&lab, "web-race", proxy);
    let user = format!("alice@{}@web-race", lab.login);
    let outputs = twice_at_once(&lab, &user);
    let succeeded: Vec<&Output> = outputs
        .iter()
        .filter(|out| text(&out.stdout) == "in\n")
        .collect();
    assert_eq!(
        succeeded.len(),
        1,
        "{:?}",
        outputs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    let refused = outputs
        .iter()
        .find(|out| text(&out.stdout) != "in\n")
        .unwrap();
    assert!(
        text(&refused.stderr).contains("the host key of web-race has changed"),
        "{}",
        text(&refused.stderr)
    );
    let pins: Vec<Value> = lab
        .events("host_key_pinned")
        .into_iter()
        .filter(|e| e["event"]["asset"] == "web-race")
        .collect();
    assert_eq!(pins.len(), 1, "{pins:?}");
    // The host whose key was pinned got the login; the other saw no authentication attempt.
    let pinned = lab.r.json(&["asset", "show", "web-race"])["host_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (winner, loser) = if std::fs::read_to_string(real.host_key_file())
        .unwrap()
        .starts_with(&pinned)
    {
        (&real, &impostor)
    } else {
        (&impostor, &real)
    };
    assert!(
        std::fs::read_to_string(winner.host_key_file())
            .unwrap()
            .starts_with(&pinned)
    );
    assert!(
        winner.log().contains("Accepted publickey"),
        "{}",
        winner.log()
    );
    let log = loser.log();
    assert!(log.contains("Connection from 127.0.0.1"), "{log}");
    assert!(
        !saw_authentication(&log),
        "the other host saw an authentication attempt:\n{log}"
    );
    assert_eq!(lab.events("host_key_rejected").len(), 1);
}

// ---- item 8: open redirect after login ----

/// After logging in, `next=` values a browser would read as another site (`/\evil.example`,
/// `/%09/evil.example/`, `//evil.example`, ...) land on the portal's home page, in real headless
/// Chromium (`tests/browser/redirect.mjs`); a path on the site is still honoured.
#[test]
fn login_redirects_stay_on_the_site_in_chromium() {
    let (Some(node), Some(chromium)) = (require_tool("node"), require_tool("chromium")) else {
        return;
    };
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !crate::browser::require_playwright() {
        return;
    }
    let r = Rampart::new(BIN);
    r.ok(&["user", "add", "erin"]);
    set_password(&r, "erin", "erin-right-password");
    let server = r.serve();
    let artifacts = crate::browser::artifacts_dir().join("redirect");
    let output = Command::new(node)
        .arg("redirect.mjs")
        .current_dir(&browser_dir)
        .env("RAMPART_URL", format!("https://{}", server.http))
        .env("LOGIN_USER", "erin")
        .env("LOGIN_PASSWORD", "erin-right-password")
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("all redirects stayed on the site"),
        "redirect.mjs failed (screenshots in {}):\n{stdout}\n{stderr}",
        artifacts.display()
    );
}
