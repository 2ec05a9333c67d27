//! SSH certificates end to end with stock OpenSSH: the host certificate every ProxyJump hop
//! presents (one `@cert-authority` line trusts every asset), and users' certificates signed by
//! the node's user CA.

use crate::ssh::Lab;
use rampart_testkit::ssh_keygen;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
