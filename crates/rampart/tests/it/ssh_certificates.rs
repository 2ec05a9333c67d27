//! SSH certificates end to end with stock OpenSSH: the host certificate every ProxyJump hop
//! presents (one `@cert-authority` line trusts every asset), and users' certificates signed by
//! the node's user CA.

use crate::ssh::Lab;
use rampart_testkit::{HttpClient, HttpResponse, ssh_keygen};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An OpenSSH client configuration that checks host keys strictly against `known_hosts` only,
/// and never asks.
fn strict_client_config(dir: &Path, name: &str, identity: &Path, known_hosts: &str) -> PathBuf {
    let known_hosts_file = dir.join(format!("{name}.known_hosts"));
    std::fs::write(&known_hosts_file, known_hosts).unwrap();
    let config = dir.join(format!("{name}.ssh_config"));
    std::fs::write(
        &config,
        format!(
            "Host *\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             BatchMode yes\n  LogLevel ERROR\n  IdentityFile {}\n  IdentitiesOnly yes\n  ConnectTimeout 30\n",
            known_hosts_file.display(),
            identity.display()
        ),
    )
    .unwrap();
    config
}

/// The bastion's own host key as a `known_hosts` line for `[127.0.0.1]:PORT`.
fn bastion_known_hosts_line(lab: &Lab) -> String {
    let key =
        std::fs::read_to_string(lab.r.data_dir().join("keys/ssh_host_ed25519_key.pub")).unwrap();
    format!("[127.0.0.1]:{} {}\n", lab.port(), key.trim())
}

/// `ssh -J alice@bastion -p PORT LOGIN@HOST 'echo hop'` with `config`.
fn jump(lab: &Lab, config: &Path, host: &str) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .arg("-J")
        .arg(format!("alice@127.0.0.1:{}", lab.port()))
        .args(["-p", &lab.target.port.to_string()])
        .arg(format!("{}@{host}", lab.login))
        .arg("echo hop")
        .output()
        .unwrap()
}

#[test]
fn proxyjump_with_only_the_host_ca_line_in_known_hosts_connects_without_a_prompt() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    let ca_line = lab.r.ok(&["ca", "show", "--host"]).trim().to_owned();
    assert!(
        ca_line.starts_with("@cert-authority * ssh-ed25519 AAAA"),
        "{ca_line}"
    );
    assert!(
        lab.server.banner.iter().any(|line| line.trim() == ca_line),
        "serve prints the line: {:?}",
        lab.server.banner
    );
    let config = strict_client_config(
        dir,
        "ca",
        &dir.join("alice"),
        &format!("{}{ca_line}\n", bastion_known_hosts_line(&lab)),
    );
    // By asset name, and by the asset's address: both are principals of the hop's certificate.
    for host in ["web-01", "127.0.0.1"] {
        let out = jump(&lab, &config, host);
        assert_eq!(
            text(&out.stdout),
            "hop\n",
            "jump to {host}: {}",
            text(&out.stderr)
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

#[test]
fn a_proxyjump_hop_is_refused_when_known_hosts_trusts_another_host_ca() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    let (_, foreign_pub) = ssh_keygen(dir, "foreign-ca", "ed25519", "");
    let foreign = std::fs::read_to_string(foreign_pub).unwrap();
    let config = strict_client_config(
        dir,
        "foreign",
        &dir.join("alice"),
        &format!(
            "{}@cert-authority * {}\n",
            bastion_known_hosts_line(&lab),
            foreign.trim()
        ),
    );
    let out = jump(&lab, &config, "web-01");
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("Host key verification failed"),
        "{}",
        text(&out.stderr)
    );
}

/// A browser session of one user, over the API.
pub(crate) struct Portal {
    client: HttpClient,
    cookie: String,
    csrf: String,
}

impl Portal {
    pub(crate) fn login(lab: &Lab, user: &str, password: &str) -> Self {
        lab.r
            .ok_with_stdin(&["user", "password", user], password.as_bytes());
        Self::login_only(lab, user, password)
    }

    /// Logs in with the password the user has.
    pub(crate) fn login_only(lab: &Lab, user: &str, password: &str) -> Self {
        let client = lab.server.client();
        let response = client.request(
            "POST",
            "/api/v1/login",
            &[],
            Some(&json!({ "username": user, "password": password })),
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let cookie = response
            .header("set-cookie")
            .unwrap()
            .strip_prefix("rampart_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .to_owned();
        let csrf = response.json()["csrf_token"].as_str().unwrap().to_owned();
        Self {
            client,
            cookie,
            csrf,
        }
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
        let cookie = format!("rampart_session={}", self.cookie);
        self.client.request(
            method,
            path,
            &[("cookie", &cookie), ("x-csrf-token", &self.csrf)],
            body,
        )
    }
}

/// `ssh alice@LOGIN@web-01 'echo cert'` with only `identity` (and its `-cert.pub`, which ssh
/// loads beside it), trusting whatever host it meets.
fn ssh_with(lab: &Lab, identity: &Path) -> Output {
    Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-i")
        .arg(identity)
        .args(["-p", &lab.port()])
        .arg(format!("alice@{}@web-01@127.0.0.1", lab.login))
        .arg("echo cert")
        .output()
        .unwrap()
}

/// Runs `rampart login` against the lab's server for `key`, answering its request in the portal
/// as `portal` (approve or deny); returns the command's output.
fn rampart_login(lab: &Lab, key: &Path, portal: &Portal, approve: bool) -> Output {
    let url = format!("https://{}", lab.server.http);
    let mut child = Command::new(super::BIN)
        .args(["login", "--server", &url, "--key"])
        .arg(key)
        .arg("--ca-file")
        .arg(lab.server.cert.as_ref().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let code = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "rampart login printed no code: {printed}"
        );
        printed.push_str(&line);
        if let Some(rest) = line.strip_prefix("check the code ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        printed.contains(&format!("{url}/ssh?code={code}")),
        "{printed}"
    );
    let shown = portal.call("GET", &format!("/api/v1/me/ssh-logins/{code}"), None);
    assert_eq!(shown.status, 200, "{}", shown.text());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(
        public.starts_with(shown.json()["public_key"].as_str().unwrap()),
        "the portal shows the key that asked"
    );
    let answered = portal.call(
        "POST",
        &format!("/api/v1/me/ssh-logins/{code}"),
        Some(&json!({ "approve": approve })),
    );
    assert_eq!(answered.status, 200, "{}", answered.text());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stdout = format!("{printed}{rest}").into_bytes();
    out
}

#[test]
fn a_certificate_from_rampart_login_reaches_a_target_with_stock_ssh() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    // A key Rampart has never seen: only its certificate can log in.
    let (laptop, _) = ssh_keygen(dir, "laptop", "ed25519", "");
    let refused = ssh_with(&lab, &laptop);
    assert!(!refused.status.success(), "the bare key is not alice's");
    let portal = Portal::login(&lab, "alice", "alice-password-1");
    let out = rampart_login(&lab, &laptop, &portal, true);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let cert_path = dir.join("laptop-cert.pub");
    assert!(
        text(&out.stdout).contains(&format!("certificate written to {}", cert_path.display())),
        "{}",
        text(&out.stdout)
    );
    let inspected = Command::new("ssh-keygen")
        .arg("-Lf")
        .arg(&cert_path)
        .output()
        .unwrap();
    let inspected = text(&inspected.stdout);
    assert!(inspected.contains("user certificate"), "{inspected}");
    assert!(
        inspected.contains("Principals: \n                alice\n"),
        "{inspected}"
    );
    let out = ssh_with(&lab, &laptop);
    assert_eq!(text(&out.stdout), "cert\n", "{}", text(&out.stderr));
    let issued = lab.events("ssh_certificate_issued");
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["event"]["via"], "rampart login", "{issued:?}");
    let logins = lab.events("login_succeeded");
    assert!(
        logins
            .iter()
            .any(|e| e["event"]["user"] == "alice" && e["event"]["method"] == "publickey"),
        "{logins:?}"
    );
}

#[test]
fn a_denied_rampart_login_gets_no_certificate() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    let (laptop, _) = ssh_keygen(dir, "laptop", "ed25519", "");
    let portal = Portal::login(&lab, "alice", "alice-password-1");
    let out = rampart_login(&lab, &laptop, &portal, false);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("error: the login was denied in the portal"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("laptop-cert.pub").exists());
    assert!(lab.events("ssh_certificate_issued").is_empty());
}

/// Re-signs `key` with `ca` (a private key file) as ssh-keygen would, with the given serial,
/// principals and validity, into KEY-cert.pub.
fn sign_with_ssh_keygen(ca: &Path, key: &Path, serial: &str, principals: &str, validity: &str) {
    let out = Command::new("ssh-keygen")
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .args(["-I", "test", "-z", serial, "-n", principals, "-V", validity])
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -s: {}", text(&out.stderr));
}

#[test]
fn certificates_from_another_ca_for_another_user_or_expired_are_refused_and_counted() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    let (laptop, laptop_pub) = ssh_keygen(dir, "laptop", "ed25519", "");
    let portal = Portal::login(&lab, "alice", "alice-password-1");
    let signed = portal.call(
        "POST",
        "/api/v1/me/ssh-certificate",
        Some(&json!({ "public_key": std::fs::read_to_string(&laptop_pub).unwrap() })),
    );
    assert_eq!(signed.status, 201, "{}", signed.text());
    let signed = signed.json();
    let serial = signed["serial"].as_str().unwrap().to_owned();
    let cert_path = dir.join("laptop-cert.pub");
    std::fs::write(
        &cert_path,
        format!("{}\n", signed["certificate"].as_str().unwrap()),
    )
    .unwrap();
    // The real certificate logs in: what follows differs from it in one thing each.
    let out = ssh_with(&lab, &laptop);
    assert_eq!(text(&out.stdout), "cert\n", "{}", text(&out.stderr));

    let user_ca = lab.r.data_dir().join("keys/user_ca_ed25519_key");
    let (foreign_ca, _) = ssh_keygen(dir, "foreign-ca", "ed25519", "");
    let cases = [
        ("another CA", foreign_ca.as_path(), "alice", "-5m:+1h"),
        ("another principal", user_ca.as_path(), "bob", "-5m:+1h"),
        ("expired", user_ca.as_path(), "alice", "20200101:20200102"),
        ("not yet valid", user_ca.as_path(), "alice", "+1d:+2d"),
    ];
    assert!(
        lab.events("login_failed").is_empty(),
        "{:?}",
        lab.events("login_failed")
    );
    for (what, ca, principals, validity) in cases {
        std::fs::remove_file(&cert_path).unwrap();
        sign_with_ssh_keygen(ca, &laptop, &serial, principals, validity);
        let out = ssh_with(&lab, &laptop);
        assert!(!out.status.success(), "{what}: logged in");
        assert_eq!(text(&out.stdout), "", "{what}");
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{what}: {}",
            text(&out.stderr)
        );
        if what == "another CA" {
            // The authenticator judged it and counted the failure (audit keeps one event per
            // counter and window, so only the first case can show a new one).
            let failed = lab.events("login_failed");
            assert!(
                failed.iter().any(|e| e["event"]["method"] == "publickey"
                    && e["event"]["login"].as_str().unwrap().starts_with("alice")),
                "{what}: counted as a failed login: {failed:?}"
            );
        }
    }
    // And the real one still works (nothing above locked the key).
    std::fs::write(
        &cert_path,
        format!("{}\n", signed["certificate"].as_str().unwrap()),
    )
    .unwrap();
    let out = ssh_with(&lab, &laptop);
    assert_eq!(text(&out.stdout), "cert\n", "{}", text(&out.stderr));
}

#[test]
fn a_password_change_ends_the_certificates_issued_before_it() {
    let Some(lab) = Lab::start() else { return };
    let dir = lab.r.scratch();
    let (laptop, laptop_pub) = ssh_keygen(dir, "laptop", "ed25519", "");
    let portal = Portal::login(&lab, "alice", "alice-password-1");
    let signed = portal.call(
        "POST",
        "/api/v1/me/ssh-certificate",
        Some(&json!({ "public_key": std::fs::read_to_string(&laptop_pub).unwrap() })),
    );
    assert_eq!(signed.status, 201, "{}", signed.text());
    std::fs::write(
        dir.join("laptop-cert.pub"),
        format!("{}\n", signed.json()["certificate"].as_str().unwrap()),
    )
    .unwrap();
    assert_eq!(text(&ssh_with(&lab, &laptop).stdout), "cert\n");
    lab.r
        .ok_with_stdin(&["user", "password", "alice"], b"alice-password-2");
    let out = ssh_with(&lab, &laptop);
    assert!(
        !out.status.success(),
        "a certificate from before the change still logs in"
    );
}

#[test]
fn an_api_token_cannot_have_a_key_signed() {
    let Some(lab) = Lab::start() else { return };
    let token = lab
        .r
        .ok(&["token", "create", "--user", "alice", "--scope", "write"])
        .trim()
        .to_owned();
    let (_, laptop_pub) = ssh_keygen(lab.r.scratch(), "laptop", "ed25519", "");
    let bearer = format!("Bearer {token}");
    let response = lab.server.client().request(
        "POST",
        "/api/v1/me/ssh-certificate",
        &[("authorization", &bearer)],
        Some(&json!({ "public_key": std::fs::read_to_string(&laptop_pub).unwrap() })),
    );
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(lab.events("ssh_certificate_issued").is_empty());
}
