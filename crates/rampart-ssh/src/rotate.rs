//! The SSH side of credential rotation (issue 17): try a login with a given secret, and change
//! an account's password on the target, either through a privileged rotation account
//! (`chpasswd`, through `sudo -n` unless it is root) or as the account itself (`passwd` through a
//! pty, answering its prompts). Every connection goes through the node's dialer, so assets in a
//! network domain rotate too.
//!
//! INVARIANT: a secret travels only inside the SSH connection: as the authentication request,
//! on a command's standard input, or typed at a prompt. The command lines are fixed strings; no
//! secret is ever in a command line, an environment variable, a message or a log line.

use crate::target::{TargetConnection, TargetError, TargetHostKeys, connect_with_secret};
use rampart_core::audit::Actor;
use rampart_core::{Asset, ExposeSecret, Name, SecretKind, SecretString};
use rampart_session::dial::Dialer;
use rampart_store::Store;
use russh::ChannelMsg;
use std::sync::Arc;
use std::time::Duration;

/// How long a password change may take on the target.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most output kept from a password-changing command (prompts, messages).
const MAX_OUTPUT: usize = 4096;

/// Where the node reaches targets from, and how it trusts their host keys.
#[derive(Debug, Clone)]
pub struct RotationReach {
    pub dialer: Dialer,
    pub store: Arc<Store>,
    pub host_keys: TargetHostKeys,
    pub actor: Actor,
}

/// What a login attempt with a secret showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCheck {
    Works,
    /// The target refused the secret.
    Refused,
    /// No answer about the secret (unreachable, host key, protocol): the reason, without secret.
    Unknown(String),
}

/// A login with a known secret: the account (or the rotation account) and its secret.
#[derive(Debug)]
pub struct Login {
    pub login: Name,
    pub kind: SecretKind,
    pub secret: SecretString,
}

async fn connect(
    reach: &RotationReach,
    asset: &Asset,
    login: &Login,
) -> Result<TargetConnection, TargetError> {
    connect_with_secret(
        &reach.dialer,
        &reach.store,
        asset,
        &login.login,
        login.kind,
        login.secret.clone(),
        &reach.actor,
        reach.host_keys,
    )
    .await
}

/// Logs in as `login` with its secret, then disconnects.
pub async fn check_login(reach: &RotationReach, asset: &Asset, login: &Login) -> LoginCheck {
    match connect(reach, asset, login).await {
        Ok(connection) => {
            let _ = connection
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            LoginCheck::Works
        }
        Err(TargetError::CredentialRefused { .. }) => LoginCheck::Refused,
        Err(other) => LoginCheck::Unknown(other.to_string()),
    }
}

/// Changes `account`'s password on `asset` to `new`: through `via` (a privileged account on the
/// same asset, with `chpasswd`), or as the account itself with its `old` password (`passwd` in
/// a pty). The error says which step failed, never a secret.
pub async fn change_password(
    reach: &RotationReach,
    asset: &Asset,
    account: &Name,
    old: &SecretString,
    new: &SecretString,
    via: Option<&Login>,
) -> Result<(), String> {
    let work = async {
        match via {
            Some(via) => change_through(reach, asset, account, new, via).await,
            None => change_as_itself(reach, asset, account, old, new).await,
        }
    };
    tokio::time::timeout(CHANGE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("the target did not finish changing the password in time".into()))
}

async fn change_through(
    reach: &RotationReach,
    asset: &Asset,
    account: &Name,
    new: &SecretString,
    via: &Login,
) -> Result<(), String> {
    let connection = connect(reach, asset, via)
        .await
        .map_err(|err| format!("rotation account {}: {err}", via.login))?;
    let channel = connection
        .handle
        .channel_open_session()
        .await
        .map_err(|err| format!("cannot open a channel as {}: {err}", via.login))?;
    // Fixed command lines; the password goes on standard input as `login:password`.
    let command = if via.login.as_str() == "root" {
        "chpasswd"
    } else {
        "sudo -n chpasswd"
    };
    channel
        .exec(true, command)
        .await
        .map_err(|err| format!("cannot run {command}: {err}"))?;
    let line = zeroize::Zeroizing::new(format!("{account}:{}\n", new.expose_secret()));
    channel
        .data(line.as_bytes())
        .await
        .map_err(|err| format!("cannot write to {command}: {err}"))?;
    drop(line);
    channel
        .eof()
        .await
        .map_err(|err| format!("cannot write to {command}: {err}"))?;
    let (status, output) = finish(channel).await;
    let _ = connection
        .handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    match status {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "{command} as {} exited with status {code}{}",
            via.login,
            said(&output, &[new])
        )),
        None => Err(format!("{command} as {} ended without a status", via.login)),
    }
}

async fn change_as_itself(
    reach: &RotationReach,
    asset: &Asset,
    account: &Name,
    old: &SecretString,
    new: &SecretString,
) -> Result<(), String> {
    let login = Login {
        login: account.clone(),
        kind: SecretKind::Password,
        secret: old.clone(),
    };
    let connection = connect(reach, asset, &login)
        .await
        .map_err(|err| err.to_string())?;
    let mut channel = connection
        .handle
        .channel_open_session()
        .await
        .map_err(|err| format!("cannot open a channel: {err}"))?;
    channel
        .request_pty(false, "dumb", 80, 24, 0, 0, &[])
        .await
        .map_err(|err| format!("cannot get a terminal: {err}"))?;
    channel
        .exec(true, "LC_ALL=C passwd")
        .await
        .map_err(|err| format!("cannot run passwd: {err}"))?;
    // passwd asks for the current password, then the new one twice.
    let answers = [old, new, new];
    let mut answered = 0usize;
    let mut pending = Vec::new();
    let mut output = Vec::new();
    let mut status = None;
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                keep(&mut output, &data);
                keep(&mut pending, &data);
                let text = String::from_utf8_lossy(&pending).to_ascii_lowercase();
                if text.trim_end().ends_with("password:") {
                    let Some(answer) = answers.get(answered) else {
                        break;
                    };
                    answered += 1;
                    pending.clear();
                    let line = zeroize::Zeroizing::new(format!("{}\n", answer.expose_secret()));
                    channel
                        .data(line.as_bytes())
                        .await
                        .map_err(|err| format!("cannot answer passwd: {err}"))?;
                }
            }
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = connection
        .handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    match status {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "passwd exited with status {code}{}",
            said(&output, &[old, new])
        )),
        None => Err("passwd ended without a status".into()),
    }
}

/// Waits for the command's end: its exit status and (bounded) output.
async fn finish(mut channel: russh::Channel<russh::client::Msg>) -> (Option<u32>, Vec<u8>) {
    let mut output = Vec::new();
    let mut status = None;
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                keep(&mut output, &data);
            }
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    (status, output)
}

fn keep(into: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_OUTPUT.saturating_sub(into.len());
    into.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
}

/// The target's last words for an error message: its last non-empty line, dropped entirely if
/// it holds any of the secrets (a target that echoes input).
fn said(output: &[u8], secrets: &[&SecretString]) -> String {
    let text = String::from_utf8_lossy(output);
    if secrets
        .iter()
        .any(|secret| text.contains(secret.expose_secret()))
    {
        return String::new();
    }
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    let printable: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    if printable.is_empty() {
        String::new()
    } else {
        format!(": {printable}")
    }
}
