//! `rampart login --server URL`: the client side of the device flow (`rampart_web::ssh_login`).
//! It sends the public half of the user's key, prints the portal link and the code, polls until
//! the user approves or denies it there, and writes the certificate as `KEY-cert.pub` beside
//! the key, where OpenSSH looks for it. Nothing secret leaves this machine: only the public key.

use crate::cli::LoginArgs;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The largest public key file read.
const MAX_PUBLIC_KEY_BYTES: u64 = 16 * 1024;
/// The largest answer read from the server.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// The longest wait for the approval (the server forgets the request after 10 minutes).
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

pub fn run(args: &LoginArgs) -> anyhow::Result<()> {
    let key = match &args.key {
        Some(key) => key.clone(),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set: give --key")?;
            PathBuf::from(home).join(".ssh/id_ed25519")
        }
    };
    let public_path = with_suffix(&key, ".pub");
    let public = read_public_key(&public_path)?;
    let base = args.server.trim_end_matches('/').to_owned();
    if !base.starts_with("https://") && !base.starts_with("http://") {
        bail!("--server {base:?} is not an http(s) URL");
    }
    let agent = agent(args.ca_file.as_deref())?;
    let (status, started) = post(
        &agent,
        &format!("{base}/api/v1/ssh-login"),
        &json!({ "public_key": public }),
    )?;
    if status != 201 {
        bail!("the server refused the login: {}", message(&started));
    }
    let device_code = started
        .get("device_code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let user_code = started
        .get("user_code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let path = started
        .get("verification_path")
        .and_then(Value::as_str)
        .unwrap_or("/ssh");
    let interval = Duration::from_secs(
        started
            .get("interval")
            .and_then(Value::as_u64)
            .unwrap_or(2)
            .clamp(1, 10),
    );
    println!("Open {base}{path} in the browser where you are signed in to Rampart,");
    println!("check the code {user_code} and approve it.");
    println!("Waiting for the approval...");
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        if Instant::now() > deadline {
            bail!("the login was not approved in time; run rampart login again");
        }
        std::thread::sleep(interval);
        let (status, answer) = post(
            &agent,
            &format!("{base}/api/v1/ssh-login/poll"),
            &json!({ "device_code": device_code }),
        )?;
        match status {
            202 => continue,
            200 => {
                let certificate = answer
                    .get("certificate")
                    .and_then(Value::as_str)
                    .context("the server's answer holds no certificate")?;
                let cert_path = with_suffix(&key, "-cert.pub");
                write_replacing(&cert_path, &format!("{}\n", certificate.trim_end()))?;
                println!(
                    "Approved for {}: certificate written to {}",
                    answer
                        .get("principal")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                    cert_path.display()
                );
                return Ok(());
            }
            403 => bail!("the login was denied in the portal"),
            404 => bail!("the login expired or is unknown to the server; run rampart login again"),
            _ => bail!("the server answered {status}: {}", message(&answer)),
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

fn read_public_key(path: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_PUBLIC_KEY_BYTES {
        bail!(
            "{} is larger than {MAX_PUBLIC_KEY_BYTES} bytes",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = rampart_store::ssh_ca::parse_subject_key(&text)
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    Ok(key.to_openssh()?)
}

fn agent(ca_file: Option<&Path>) -> anyhow::Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let cert = ureq::tls::Certificate::from_pem(&pem)
            .map_err(|err| anyhow::anyhow!("{}: not a PEM certificate: {err}", path.display()))?;
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    cert,
                ])))
                .build(),
        );
    }
    Ok(config.build().into())
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let mut response = agent
        .post(url)
        .send_json(body)
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .with_context(|| format!("cannot read the answer from {url}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn message(answer: &Value) -> String {
    answer
        .get("error")
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| answer.to_string(), str::to_owned)
}

/// Writes `content` to `path` through a temporary sibling and a rename (a certificate is public:
/// mode 0644, like the `.pub` it sits beside).
fn write_replacing(path: &Path, content: &str) -> anyhow::Result<()> {
    let temporary = with_suffix(path, ".tmp");
    std::fs::write(&temporary, content)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}
