//! LDAP (issue 20) against a real OpenLDAP `slapd` that the test configures in a temporary
//! directory: its own CA and server certificate (made with `openssl`), StartTLS and LDAPS on
//! loopback ports, the openssh-lpk schema from `tests/ldap/`, entries loaded with `slapadd` and
//! changed mid-test with `ldapmodify`. Rampart talks to it through `[ldap]` in its configuration
//! file: `rampart ldap sync` and the periodic sync of `rampart serve`, logins by bind (portal API
//! and SSH password) and by the directory's SSH keys with stock `ssh`.

use super::BIN;
use crate::ssh::text;
use rampart_testkit::{
    Rampart, Server, SshTarget, current_user, free_ports, require_tool, ssh_keygen,
};
use serde_json::{Value, json};
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SUFFIX: &str = "dc=example,dc=org";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PASSWORD: &str = "slapd-admin-password-51b2";
const ALICE_PASSWORD: &str = "alice-directory-password-9d4e";
const BOB_PASSWORD: &str = "bob-directory-password-03aa";
/// Who may log in: people not marked as gone (`employeeType: disabled`).
const USER_FILTER: &str =
    "(&(objectClass=inetOrgPerson)(uid={username})(!(employeeType=disabled)))";

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

fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A CA (`NAME-ca.pem`) and, signed by it, a certificate for 127.0.0.1 and localhost
/// (`NAME.pem`, `NAME.key`); returns the CA's path.
fn make_ca_and_server_cert(dir: &Path, name: &str) -> PathBuf {
    let path = |file: &str| dir.join(format!("{name}{file}"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(path("-ca.key"))
            .arg("-out")
            .arg(path("-ca.pem"))
            .args(["-days", "2", "-subj", &format!("/CN={name} test CA")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    run_ok(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(path(".key"))
            .arg("-out")
            .arg(path(".csr"))
            .args(["-subj", "/CN=localhost"]),
    );
    std::fs::write(
        path(".ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(path(".csr"))
            .arg("-CA")
            .arg(path("-ca.pem"))
            .arg("-CAkey")
            .arg(path("-ca.key"))
            .arg("-out")
            .arg(path(".pem"))
            .arg("-extfile")
            .arg(path(".ext")),
    );
    path("-ca.pem")
}

/// A real `slapd` on two loopback ports (StartTLS on `ldap://`, and `ldaps://`).
struct Slapd {
    child: Child,
    dir: PathBuf,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    pub ca: PathBuf,
    admin_password_file: PathBuf,
}

impl Slapd {
    /// Configures and starts slapd in `dir` with `entries` (LDIF) under `dc=example,dc=org`.
    fn start(dir: &Path, entries: &str) -> Option<Self> {
        for tool in ["slapd", "slapadd", "ldapmodify", "openssl"] {
            require_tool(tool)?;
        }
        let dir = dir.join("slapd");
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let ca = make_ca_and_server_cert(&dir, "server");
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldap/openssh-lpk.schema");
        let d = dir.display();
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include {schema}\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             TLSCACertificateFile {ca}\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {d}/db\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by users read by * none\n",
            schema = schema.display(),
            ca = ca.display(),
        );
        std::fs::write(dir.join("slapd.conf"), config).unwrap();
        let base = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n{entries}"
        );
        std::fs::write(dir.join("data.ldif"), base).unwrap();
        run_ok(
            Command::new("slapadd")
                .arg("-f")
                .arg(dir.join("slapd.conf"))
                .arg("-l")
                .arg(dir.join("data.ldif")),
        );
        let admin_password_file = dir.join("admin-password");
        std::fs::write(&admin_password_file, ADMIN_PASSWORD).unwrap();
        std::fs::set_permissions(&admin_password_file, std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let [ldap_port, ldaps_port] = free_ports();
        let child = Command::new("slapd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
            ))
            // In the foreground, logging nothing: a debug level keeps slapd from detaching.
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let slapd = Self {
            child,
            dir,
            ldap_port,
            ldaps_port,
            ca,
            admin_password_file,
        };
        eventually("slapd listens", || {
            TcpStream::connect(("127.0.0.1", ldap_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", ldaps_port)).is_ok()
        });
        Some(slapd)
    }

    fn start_tls_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// Changes the directory as its administrator (`ldapmodify` over StartTLS).
    fn modify(&self, ldif: &str) {
        let file = self.dir.join("change.ldif");
        std::fs::write(&file, ldif).unwrap();
        run_ok(
            Command::new("ldapmodify")
                .args([
                    "-x",
                    "-ZZ",
                    "-H",
                    &self.start_tls_url(),
                    "-D",
                    ADMIN_DN,
                    "-y",
                ])
                .arg(&self.admin_password_file)
                .arg("-f")
                .arg(&file)
                .env("LDAPTLS_CACERT", &self.ca),
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn person(uid: &str, password: &str, extra: &str) -> String {
    let mut ldif = format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: ldapPublicKey\n\
         uid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {password}\n"
    );
    if !extra.is_empty() {
        ldif.push_str(extra);
        ldif.push('\n');
    }
    ldif.push('\n');
    ldif
}

fn group(cn: &str, members: &[&str]) -> String {
    let mut ldif = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for member in members {
        ldif.push_str(&format!("member: uid={member},ou=people,{SUFFIX}\n"));
    }
    ldif.push('\n');
    ldif
}

/// Rampart configured for `slapd` by `rampart.toml` (StartTLS, the test's CA, the admin as the
/// service account), with `sync_interval`.
fn rampart_for(slapd: &Slapd, sync_interval: &str) -> Rampart {
    let scratch = &slapd.dir;
    let password_file = scratch.join("ldap-bind-password");
    std::fs::write(&password_file, format!("{ADMIN_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = scratch.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[ldap]\nurl = \"{url}\"\nstart_tls = true\nca_file = \"{ca}\"\n\
             bind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{password}\"\n\
             user_base = \"ou=people,{SUFFIX}\"\nuser_filter = \"{USER_FILTER}\"\n\
             group_base = \"ou=groups,{SUFFIX}\"\nsync_interval = \"{sync_interval}\"\n\n\
             [ldap.group_map]\nops = \"ops\"\n\"cn=auditors,ou=groups,{SUFFIX}\" = \"role:auditor\"\n",
            url = slapd.start_tls_url(),
            ca = slapd.ca.display(),
            password = password_file.display(),
        ),
    )
    .unwrap();
    Rampart::new(BIN).with_args(&["--config", config.to_str().unwrap()])
}

/// `rampart ldap sync` with `env` (overrides of `[ldap]` keys).
fn ldap_sync(r: &Rampart, env: &[(&str, &str)]) -> Output {
    r.command(&["ldap", "sync"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn user(r: &Rampart, name: &str) -> Value {
    r.json(&["user", "show", name])
}

fn fingerprint_of(public_key: &Path) -> String {
    let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg(public_key));
    out.split_whitespace().nth(1).unwrap().to_owned()
}

/// An asset `web-01` (a real sshd accepting `target_pub`) with the test's own account on it.
fn add_target(r: &Rampart) -> (SshTarget, String) {
    let dir = r.scratch().to_path_buf();
    let (target_key, target_pub) = ssh_keygen(&dir, "target", "ed25519", "");
    let target = SshTarget::start(&target_pub).unwrap();
    let login = current_user();
    crate::ssh::add_loopback_target(r, "web-01", target.port, &login, &target_key);
    (target, login)
}

fn ssh_with_key(server: &Server, key: &Path, user: &str, command: &str) -> Command {
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args([
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .arg("-i")
    .arg(key)
    .args(["-p", &server.ssh.port().to_string()])
    .arg(format!("{user}@127.0.0.1"))
    .arg(command)
    .stdin(Stdio::null());
    ssh
}

/// Stock `ssh` logging in by password (askpass), running `echo in`.
fn ssh_with_password(server: &Server, dir: &Path, user: &str, password: &str) -> Output {
    let secret = dir.join("ssh-password");
    let askpass = dir.join("askpass.sh");
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
        .args(["-p", &server.ssh.port().to_string()])
        .arg(format!("{user}@127.0.0.1"))
        .arg("echo in")
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn web_login(server: &Server, user: &str, password: &str) -> (u16, String) {
    let body = json!({ "username": user, "password": password });
    let response = server
        .client()
        .request("POST", "/api/v1/login", &[], Some(&body));
    (response.status, response.text())
}

fn events(r: &Rampart, kind: &str) -> Vec<Value> {
    r.json(&["audit", "list", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// `rampart ldap sync` over StartTLS and over LDAPS creates the directory's users with their
/// SSH keys, mapped groups and role (a local user of the same name is left alone, a directory
/// that cannot be trusted changes nothing); they log in to the portal and over SSH by a bind
/// with their directory password (a wrong or empty one is refused like any failure), with stock
/// `ssh` by the key from the directory, and a later sync follows the directory's key and group
/// changes.
#[test]
fn directory_users_are_synced_with_keys_groups_and_role_and_log_in_by_bind() {
    for tool in ["ssh", "ssh-keygen", "openssl"] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    let keys = tempfile::tempdir().unwrap();
    let (alice_key, alice_pub) = ssh_keygen(keys.path(), "alice", "ed25519", "");
    let (alice_key2, alice_pub2) = ssh_keygen(keys.path(), "alice2", "ed25519", "");
    let (_, dave_pub) = ssh_keygen(keys.path(), "dave", "ed25519", "");
    let alice_line = std::fs::read_to_string(&alice_pub).unwrap();
    let entries = [
        person(
            "alice",
            ALICE_PASSWORD,
            &format!("sshPublicKey: {}", alice_line.trim()),
        ),
        person("bob", BOB_PASSWORD, ""),
        person("carol", "carol-pass-0000", "employeeType: disabled"),
        person("dave", "dave-pass-0000", ""),
        // groupOfNames needs a member: `nobody` stays when alice leaves.
        group("ops", &["alice", "nobody"]),
        group("auditors", &["bob"]),
        group("unmapped", &["alice", "bob"]),
    ]
    .concat();
    let Some(slapd) = Slapd::start(keys.path(), &entries) else {
        return;
    };
    let r = rampart_for(&slapd, "off");
    r.ok(&["user", "add", "dave", "--key", dave_pub.to_str().unwrap()]);

    // A directory whose certificate the configured CA did not sign: refused, nothing changed.
    let other_ca = make_ca_and_server_cert(keys.path(), "other");
    let untrusted = ldap_sync(&r, &[("RAMPART_LDAP_CA_FILE", other_ca.to_str().unwrap())]);
    assert!(!untrusted.status.success());
    let stderr = text(&untrusted.stderr);
    assert!(
        stderr.contains("LDAP sync failed; nothing was changed"),
        "{stderr}"
    );
    assert_eq!(r.json(&["user", "list"]).as_array().unwrap().len(), 1);

    // Over LDAPS.
    let synced = ldap_sync(
        &r,
        &[
            ("RAMPART_LDAP_URL", &slapd.ldaps_url()),
            ("RAMPART_LDAP_START_TLS", "false"),
        ],
    );
    assert!(synced.status.success(), "{}", text(&synced.stderr));
    let summary = text(&synced.stdout);
    assert!(
        summary.starts_with("LDAP sync: 2 created (alice, bob), 0 updated, 0 disabled"),
        "{summary}"
    );
    assert!(
        summary.contains("skipped dave: a local user has this name"),
        "{summary}"
    );

    let alice = user(&r, "alice");
    assert_eq!(alice["source"], "ldap");
    assert_eq!(alice["has_password"], false);
    assert_eq!(alice["role"], "user");
    assert_eq!(alice["groups"], json!(["ops"]));
    assert_eq!(alice["keys"][0]["fingerprint"], fingerprint_of(&alice_pub));
    assert_eq!(alice["keys"].as_array().unwrap().len(), 1);
    let bob = user(&r, "bob");
    assert_eq!(bob["role"], "auditor");
    assert_eq!(bob["groups"], json!([]));
    assert_eq!(user(&r, "dave")["source"], "local");
    let carol = r.run(&["user", "show", "carol"]);
    assert!(
        !carol.status.success(),
        "a user the filter excludes is not created"
    );
    // A directory user's password is the directory's.
    let changed = r.run_with_stdin(&["user", "password", "alice"], b"local-password-123\n");
    assert!(!changed.status.success());
    assert!(
        text(&changed.stderr).contains("password is kept by the LDAP directory"),
        "{}",
        text(&changed.stderr)
    );

    let (_target, login) = add_target(&r);
    r.ok(&["grant", "add", "--group", "ops", "--asset", "web-01"]);
    let server = r.serve();

    // Stock ssh with the key from the directory reaches the target.
    let out = ssh_with_key(
        &server,
        &alice_key,
        &format!("alice@{login}@web-01"),
        "echo via-directory-key",
    )
    .output()
    .unwrap();
    assert_eq!(
        text(&out.stdout),
        "via-directory-key\n",
        "{}",
        text(&out.stderr)
    );

    // Password logins bind to the directory (StartTLS), SSH and portal alike.
    let out = ssh_with_password(
        &server,
        r.scratch(),
        &format!("alice@{login}@web-01"),
        ALICE_PASSWORD,
    );
    assert_eq!(text(&out.stdout), "in\n", "{}", text(&out.stderr));
    let out = ssh_with_password(
        &server,
        r.scratch(),
        &format!("alice@{login}@web-01"),
        "wrong-password-1",
    );
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stdout), "");

    let (status, _) = web_login(&server, "alice", ALICE_PASSWORD);
    assert_eq!(status, 200);
    let (status, _) = web_login(&server, "bob", BOB_PASSWORD);
    assert_eq!(status, 200);
    let unknown = web_login(&server, "nobody", "whatever-password");
    assert_eq!(unknown.0, 401);
    // The second factor still applies: bob enrols his own TOTP on the Account page's API
    // (a browser session from his directory password); then the password alone is refused.
    let client = server.client();
    let session = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({ "username": "bob", "password": BOB_PASSWORD })),
    );
    assert_eq!(session.status, 200, "{}", session.text());
    let cookie = format!(
        "rampart_session={}",
        session
            .header("set-cookie")
            .unwrap()
            .strip_prefix("rampart_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
    );
    let csrf = session.json()["csrf_token"].as_str().unwrap().to_owned();
    let as_bob = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let started = client.request("POST", "/api/v1/me/totp", &as_bob, Some(&json!({})));
    assert_eq!(started.status, 200, "{}", started.text());
    let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
    let code = rampart_testkit::totp_code(&uri, rampart_testkit::unix_now());
    let confirmed = client.request(
        "POST",
        "/api/v1/me/totp/confirm",
        &as_bob,
        Some(&json!({ "code": code })),
    );
    assert_eq!(confirmed.status, 200, "{}", confirmed.text());
    assert_eq!(user(&r, "bob")["mfa_enrolled"], true);
    assert_eq!(web_login(&server, "bob", BOB_PASSWORD), unknown);
    // Wait for a step the enrolment did not use, then log in with its code.
    let step_start = (rampart_testkit::unix_now() / 30 + 1) * 30;
    std::thread::sleep(Duration::from_secs(
        step_start.saturating_sub(rampart_testkit::unix_now()),
    ));
    let later = rampart_testkit::totp_code(&uri, rampart_testkit::unix_now());
    let with_code = client.request(
        "POST",
        "/api/v1/login",
        &[],
        Some(&json!({ "username": "bob", "password": BOB_PASSWORD, "totp": later })),
    );
    assert_eq!(with_code.status, 200, "{}", with_code.text());

    for (name, password) in [
        ("alice", "wrong-password-2"),
        ("alice", ""),
        ("carol", "carol-pass-0000"),
        ("dave", "dave-pass-0000"),
        ("alice", "*"),
    ] {
        let refused = web_login(&server, name, password);
        assert_eq!(
            refused, unknown,
            "{name} with {password:?}: the same answer as any failure"
        );
    }
    // Failures count as every failure does (lockout, the audit log).
    let failed = events(&r, "login_failed");
    assert!(
        failed
            .iter()
            .any(|e| e["event"]["login"] == "alice" && e["event"]["method"] == "web-password"),
        "{failed:?}"
    );

    // The directory changes: alice has another key, leaves ops and joins the auditors.
    let alice_line2 = std::fs::read_to_string(&alice_pub2).unwrap();
    slapd.modify(&format!(
        "dn: uid=alice,ou=people,{SUFFIX}\nchangetype: modify\nreplace: sshPublicKey\nsshPublicKey: {}\n\n\
         dn: cn=ops,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=alice,ou=people,{SUFFIX}\n\n\
         dn: cn=auditors,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=alice,ou=people,{SUFFIX}\n",
        alice_line2.trim()
    ));
    let synced = ldap_sync(&r, &[]);
    assert!(synced.status.success(), "{}", text(&synced.stderr));
    assert!(
        text(&synced.stdout).starts_with("LDAP sync: 0 created, 1 updated (alice), 0 disabled"),
        "{}",
        text(&synced.stdout)
    );
    let alice = user(&r, "alice");
    assert_eq!(alice["groups"], json!([]));
    assert_eq!(alice["role"], "auditor");
    assert_eq!(alice["keys"].as_array().unwrap().len(), 1);
    assert_eq!(alice["keys"][0]["fingerprint"], fingerprint_of(&alice_pub2));
    let old_key = ssh_with_key(&server, &alice_key, "alice", "true")
        .output()
        .unwrap();
    assert_eq!(
        old_key.status.code(),
        Some(255),
        "the key the directory dropped is refused"
    );
    // The new key logs in, and no grant reaches web-01 any more (ops was the grant).
    let out = ssh_with_key(
        &server,
        &alice_key2,
        &format!("alice@{login}@web-01"),
        "echo no",
    )
    .output()
    .unwrap();
    assert_eq!(text(&out.stdout), "");
    assert!(!out.status.success(), "{}", text(&out.stderr));
    let synced_events = events(&r, "directory_synced");
    assert_eq!(synced_events.len(), 2, "{synced_events:?}");
}

/// A user disabled in the directory (no longer matched by the user filter) is disabled at the
/// next periodic sync of `rampart serve`: their live SSH session ends with the reason shown,
/// new logins are refused; listed again, they are enabled again at the following sync.
#[test]
fn a_user_disabled_in_the_directory_loses_a_live_ssh_session_at_the_next_sync() {
    for tool in ["ssh", "ssh-keygen"] {
        if require_tool(tool).is_none() {
            return;
        }
    }
    let keys = tempfile::tempdir().unwrap();
    let (alice_key, alice_pub) = ssh_keygen(keys.path(), "alice", "ed25519", "");
    let alice_line = std::fs::read_to_string(&alice_pub).unwrap();
    let entries = [
        person(
            "alice",
            ALICE_PASSWORD,
            &format!("sshPublicKey: {}", alice_line.trim()),
        ),
        group("ops", &["alice"]),
    ]
    .concat();
    let Some(slapd) = Slapd::start(keys.path(), &entries) else {
        return;
    };
    let r = rampart_for(&slapd, "2s");
    let (_target, login) = add_target(&r);
    r.ok(&["group", "add", "ops"]);
    r.ok(&["grant", "add", "--group", "ops", "--asset", "web-01"]);
    let server = r.serve();
    eventually("the server's sync creates alice", || {
        r.run(&["user", "show", "alice"]).status.success()
    });

    let mut session = ssh_with_key(
        &server,
        &alice_key,
        &format!("alice@{login}@web-01"),
        "echo started; sleep 120",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    eventually("alice's session is live", || {
        r.json(&["session", "list", "--live"])
            .as_array()
            .unwrap()
            .len()
            == 1
    });

    slapd.modify(&format!(
        "dn: uid=alice,ou=people,{SUFFIX}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n"
    ));
    let mut status = None;
    eventually("alice's live session ends", || {
        status = session.try_wait().unwrap();
        status.is_some()
    });
    let mut stderr = String::new();
    session
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("rampart: session ended") && stderr.contains("the user was disabled"),
        "{stderr}"
    );
    assert_eq!(user(&r, "alice")["disabled"], true);
    let disabled = events(&r, "user_disabled");
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(
        disabled[0]["actor"]["type"], "system",
        "the server's sync disabled her"
    );
    let refused = ssh_with_key(
        &server,
        &alice_key,
        &format!("alice@{login}@web-01"),
        "echo in",
    )
    .output()
    .unwrap();
    assert_eq!(refused.status.code(), Some(255));
    assert_eq!(text(&refused.stdout), "");
    assert_eq!(web_login(&server, "alice", ALICE_PASSWORD).0, 401);

    // Listed again: enabled again by the sync that disabled her.
    slapd.modify(&format!(
        "dn: uid=alice,ou=people,{SUFFIX}\nchangetype: modify\ndelete: employeeType\n"
    ));
    eventually("alice is enabled again", || {
        user(&r, "alice")["disabled"] == false
    });
    let out = ssh_with_key(
        &server,
        &alice_key,
        &format!("alice@{login}@web-01"),
        "echo back",
    )
    .output()
    .unwrap();
    assert_eq!(text(&out.stdout), "back\n", "{}", text(&out.stderr));
}
