//! Single sign-on against a real OpenID provider (issue 20): panva's `oidc-provider` from npm
//! (`tests/browser/oidc_provider.mjs`) on 127.0.0.1 over HTTPS with a CA of the test's, and the
//! real browser flow in headless Chromium (`tests/browser/oidc.mjs`): the user is created with
//! the role and groups the group map gives; ID tokens tampered with, for another audience,
//! expired, with a replayed nonce or signed by an unpublished key are each refused; a key the
//! provider rotates in is found; groups the provider no longer lists are taken away; and a
//! provider-side disable ends the user's live SSH session (with a certificate from the portal)
//! and their browser session. A user who enrolled TOTP after their first sign-in is asked for the
//! code after the provider at the next one.

use rampart_testkit::{Rampart, SshTarget, current_user, free_port, require_tool, ssh_keygen};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "rampart-test";
const CLIENT_SECRET: &str = "oidc-client-secret-canary-5b7d0e";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, idp.pem, idp.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Rampart test IdP CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "idp.key",
            "-out",
            "idp.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("idp.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "idp.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "idp.pem",
            "-days",
            "2",
            "-extfile",
            "idp.ext",
        ],
    );
    (dir.join("ca.pem"), dir.join("idp.pem"), dir.join("idp.key"))
}

/// The provider's process; killed at the end.
struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_idp(node: &Path, cert: &Path, key: &Path, redirect: &str) -> Idp {
    let mut child = Command::new(node)
        .arg("oidc_provider.mjs")
        .current_dir(browser_dir())
        .env("CERT", cert)
        .env("KEY", key)
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", redirect)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = loop {
        let line = lines
            .next()
            .expect("the provider printed no issuer")
            .unwrap();
        if let Some(issuer) = line.strip_prefix("issuer: ") {
            break issuer.to_owned();
        }
    };
    // Keep reading its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Idp { child, issuer }
}

/// `rampart serve` on `web_port` signing in through `idp` (the client's secret in a file, the
/// provider's CA `ca`), with `extra` lines in its `[oidc]` section.
fn serve_with_oidc(
    r: &Rampart,
    idp: &Idp,
    ca: &Path,
    web_port: u16,
    extra: &str,
) -> rampart_testkit::Server {
    let dir = r.scratch();
    let secret_file = dir.join("oidc-client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let config = dir.join("rampart.toml");
    let redirect = format!("https://127.0.0.1:{web_port}/api/v1/oidc/callback");
    std::fs::write(
        &config,
        format!(
            r#"[oidc]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret}"
redirect_url = "{redirect}"
scopes = ["openid", "profile", "email", "groups", "offline_access"]
ca_file = "{ca}"
display_name = "Test IdP"
{extra}
"#,
            issuer = idp.issuer,
            secret = secret_file.display(),
            ca = ca.display(),
        ),
    )
    .unwrap();
    r.serve_with_args(
        &[
            "--http-listen",
            &format!("127.0.0.1:{web_port}"),
            "--ssh-listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    )
}

#[test]
fn oidc_sign_in_in_chromium_maps_groups_refuses_bad_tokens_and_a_provider_disable_ends_sessions() {
    let tools = ["node", "chromium", "openssl", "ssh", "ssh-keygen", "curl"].map(require_tool);
    let [
        Some(node),
        Some(chromium),
        Some(_),
        Some(_),
        Some(_),
        Some(_),
    ] = tools
    else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let r = Rampart::new(super::BIN);
    let dir = r.scratch().to_path_buf();
    let (ca, idp_cert, idp_key) = certificates(&dir);
    let web_port = free_port();
    let redirect = format!("https://127.0.0.1:{web_port}/api/v1/oidc/callback");
    let idp = start_idp(&node, &idp_cert, &idp_key, &redirect);

    // A target the provider's group idp-ops reaches through the Rampart group ops.
    let (target_key, target_pub) = ssh_keygen(&dir, "target", "ed25519", "");
    let Some(target) = SshTarget::start(&target_pub) else {
        return;
    };
    let login = current_user();
    crate::ssh::add_loopback_target(&r, "web-01", target.port, &login, &target_key);
    r.ok(&["group", "add", "ops"]);
    r.ok(&["grant", "add", "--group", "ops", "--asset", "web-01"]);

    let server = serve_with_oidc(
        &r,
        &idp,
        &ca,
        web_port,
        r#"group_map = { "idp-ops" = "ops", "idp-dba" = "dba", "idp-dev" = "dev", "idp-admins" = "role:admin" }
recheck_interval = "2s""#,
    );

    // The browser flow, step by step. A refused step leaves no session; the key the provider
    // rotates in is fetched at the first token that names it (before the unpublished key's
    // miss holds fetching back).
    let steps = json!([
        {"user": "carol", "groups": ["idp-ops", "idp-dba", "idp-admins"], "expect": "signed-in", "whoami": "carol (admin)"},
        {"user": "carol", "mode": "tamper", "expect": "refused"},
        {"user": "carol", "mode": "wrong-aud", "expect": "refused"},
        {"user": "carol", "mode": "expired", "expect": "refused"},
        {"user": "carol", "mode": "replay-nonce", "expect": "refused"},
        {"user": "carol", "mode": "rotate", "expect": "signed-in", "whoami": "carol (admin)"},
        {"user": "carol", "mode": "foreign-key", "expect": "refused"},
        {"user": "carol", "groups": ["idp-ops", "idp-dev"], "expect": "signed-in", "whoami": "carol (user)"},
    ]);
    let artifacts = crate::browser::artifacts_dir().join("oidc");
    let browser = Command::new(&node)
        .arg("oidc.mjs")
        .current_dir(browser_dir())
        .env("RAMPART_URL", format!("https://{}", server.http))
        .env("IDP_URL", &idp.issuer)
        .env("STEPS", steps.to_string())
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .output()
        .unwrap();
    let printed = text(&browser.stdout);
    let log_path = r.data_dir().join("logs/rampart.log");
    assert!(
        browser.status.success(),
        "oidc.mjs failed (screenshots in {}):\n{printed}\n{}\nrampart's log:\n{}",
        artifacts.display(),
        text(&browser.stderr),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let cookie = printed
        .lines()
        .find_map(|line| line.strip_prefix("cookie: "))
        .unwrap()
        .to_owned();

    // Each refusal for its own reason, in the node's log (the page says only "refused").
    let log = std::fs::read_to_string(&log_path).unwrap();
    for reason in [
        "the ID token's signature does not verify",
        "the ID token is not for this client (audience)",
        "the ID token has expired",
        "the ID token's nonce is not this login's",
        "no key of the provider matches the ID token's key id",
    ] {
        assert!(
            log.contains(reason),
            "no refusal for {reason:?} in the log:\n{log}"
        );
    }
    assert!(
        !log.contains(CLIENT_SECRET),
        "the client secret is in the log"
    );

    // The user as the provider's groups made them at the last sign-in: dba taken away.
    let client = server.client();
    let session = format!("rampart_session={cookie}");
    let me = client.request("GET", "/api/v1/me", &[("cookie", &session)], None);
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["user"]["role"], "user", "{me}");
    assert_eq!(me["user"]["groups"], json!(["dev", "ops"]), "{me}");
    assert_eq!(me["user"]["has_password"], false, "{me}");
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let users = r.json(&["user", "list"]);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["carol"], "only the signed-in user was created");

    // An SSH certificate from the portal, and a live session with it.
    let (laptop, laptop_pub) = ssh_keygen(&dir, "laptop", "ed25519", "");
    let signed = client.request(
        "POST",
        "/api/v1/me/ssh-certificate",
        &[("cookie", &session), ("x-csrf-token", &csrf)],
        Some(&json!({ "public_key": std::fs::read_to_string(&laptop_pub).unwrap() })),
    );
    assert_eq!(signed.status, 201, "{}", signed.text());
    std::fs::write(
        dir.join("laptop-cert.pub"),
        format!("{}\n", signed.json()["certificate"].as_str().unwrap()),
    )
    .unwrap();
    let mut ssh = Command::new("ssh")
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
        .arg(&laptop)
        .args(["-p", &server.ssh.port().to_string()])
        .arg(format!("carol@{login}@web-01@127.0.0.1"))
        .arg("echo started; sleep 300")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(ssh.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n", "the certificate session did not start");

    // Disabled at the provider: its refresh grant now fails.
    let disabled = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(&ca)
        .args(["-X", "POST", "-d", r#"{"disabled": true}"#])
        .arg(format!("{}/test/users/carol", idp.issuer))
        .output()
        .unwrap();
    assert!(disabled.status.success(), "{}", text(&disabled.stderr));

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = ssh.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = ssh.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.is_some(),
        "the live SSH session outlived the provider-side disable"
    );
    let me = client.request("GET", "/api/v1/me", &[("cookie", &session)], None);
    assert_eq!(
        me.status, 401,
        "the browser session outlived the provider-side disable"
    );
    let carol = r.json(&["user", "list"]);
    assert_eq!(carol[0]["disabled"], true, "{carol}");
}

/// Signs in through the provider with `steps` in Chromium; what `oidc.mjs` printed.
fn sign_in(
    node: &Path,
    chromium: &Path,
    server: &rampart_testkit::Server,
    idp: &Idp,
    ca: &Path,
    steps: &serde_json::Value,
    artifacts: &Path,
) -> String {
    let browser = Command::new(node)
        .arg("oidc.mjs")
        .current_dir(browser_dir())
        .env("RAMPART_URL", format!("https://{}", server.http))
        .env("IDP_URL", &idp.issuer)
        .env("STEPS", steps.to_string())
        .env("ARTIFACTS", artifacts)
        .env("CHROMIUM", chromium)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .output()
        .unwrap();
    let printed = text(&browser.stdout);
    assert!(
        browser.status.success(),
        "oidc.mjs failed (screenshots in {}):\n{printed}\n{}",
        artifacts.display(),
        text(&browser.stderr),
    );
    printed
}

/// A user who signed in through the provider and then enrolled TOTP on the Account page is
/// asked for the code after the provider at the next sign-in (the provider's sign-in does not
/// count as the second factor here), and gets no session before it.
#[test]
fn an_oidc_user_with_totp_is_asked_for_the_code_after_the_provider() {
    let tools = ["node", "chromium", "openssl"].map(require_tool);
    let [Some(node), Some(chromium), Some(_)] = tools else {
        return;
    };
    if !crate::browser::require_playwright() {
        return;
    }
    let r = Rampart::new(super::BIN);
    let dir = r.scratch().to_path_buf();
    let (ca, idp_cert, idp_key) = certificates(&dir);
    let web_port = free_port();
    let redirect = format!("https://127.0.0.1:{web_port}/api/v1/oidc/callback");
    let idp = start_idp(&node, &idp_cert, &idp_key, &redirect);
    let server = serve_with_oidc(&r, &idp, &ca, web_port, "");
    let artifacts = crate::browser::artifacts_dir().join("oidc-totp");
    let first = sign_in(
        &node,
        &chromium,
        &server,
        &idp,
        &ca,
        &json!([{"user": "dora", "groups": [], "expect": "signed-in", "whoami": "dora"}]),
        &artifacts,
    );
    let cookie = first
        .lines()
        .find_map(|line| line.strip_prefix("cookie: "))
        .unwrap()
        .to_owned();

    // Dora enrols TOTP herself on the Account page's API, with the code her app shows.
    let client = server.client();
    let session = format!("rampart_session={cookie}");
    let me = client.request("GET", "/api/v1/me", &[("cookie", &session)], None);
    let csrf = me.json()["csrf_token"].as_str().unwrap().to_owned();
    let headers = [
        ("cookie", session.as_str()),
        ("x-csrf-token", csrf.as_str()),
    ];
    let started = client.request("POST", "/api/v1/me/totp", &headers, Some(&json!({})));
    assert_eq!(started.status, 200, "{}", started.text());
    let uri = started.json()["otpauth_uri"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = rampart_testkit::totp_code(&uri, now);
    let confirmed = client.request(
        "POST",
        "/api/v1/me/totp/confirm",
        &headers,
        Some(&json!({ "code": code })),
    );
    assert_eq!(confirmed.status, 200, "{}", confirmed.text());

    let second = sign_in(
        &node,
        &chromium,
        &server,
        &idp,
        &ca,
        &json!([{"user": "dora", "expect": "code", "whoami": "dora", "totp_uri": uri}]),
        &artifacts,
    );
    assert!(second.contains("signed in as dora"), "{second}");
    let methods: Vec<String> = r
        .json(&["audit", "list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "login_succeeded")
        .map(|e| e["event"]["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(methods, ["oidc", "oidc+totp"], "{methods:?}");
}
