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

/// A new ed25519 key pair for a key account: the private key in OpenSSH form (for the vault)
/// and its public line (for `authorized_keys`). From the OS CSPRNG.
pub fn new_key_pair(comment: &str) -> Result<(SecretString, String), String> {
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|err| format!("no randomness: {err}"))?;
    let pair = Ed25519Keypair::from_seed(&seed);
    let key = russh::keys::PrivateKey::new(KeypairData::Ed25519(pair), comment)
        .map_err(|err| format!("cannot make a key: {err}"))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|err| format!("cannot encode a key: {err}"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|err| format!("cannot encode a key: {err}"))?;
    Ok((SecretString::from(private.as_str().to_owned()), public))
}

/// The public line of a private key in OpenSSH form.
pub fn public_line(private: &SecretString) -> Result<String, String> {
    let key = russh::keys::PrivateKey::from_openssh(private.expose_secret().as_bytes())
        .map_err(|_| "the vaulted private key does not parse".to_owned())?;
    key.public_key()
        .to_openssh()
        .map_err(|err| format!("cannot encode a key: {err}"))
}

/// Runs a fixed `command` as `login` with `input` on its standard input; its exit status 0 is
/// success. Public keys only travel this way (they are no secret).
async fn run_with_input(
    reach: &RotationReach,
    asset: &Asset,
    login: &Login,
    command: &str,
    input: &[u8],
) -> Result<(), String> {
    let connection = connect(reach, asset, login)
        .await
        .map_err(|err| err.to_string())?;
    let channel = connection
        .handle
        .channel_open_session()
        .await
        .map_err(|err| format!("cannot open a channel: {err}"))?;
    channel
        .exec(true, command)
        .await
        .map_err(|err| format!("cannot run a command: {err}"))?;
    channel
        .data(input)
        .await
        .map_err(|err| format!("cannot write to the command: {err}"))?;
    channel
        .eof()
        .await
        .map_err(|err| format!("cannot write to the command: {err}"))?;
    let (status, output) = finish(channel).await;
    let _ = connection
        .handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    match status {
        Some(0) => Ok(()),
        Some(code) => Err(format!("exited with status {code}{}", said(&output, &[]))),
        None => Err("ended without a status".into()),
    }
}

/// Adds `public` to the account's `~/.ssh/authorized_keys`, logged in with its current key.
pub async fn add_authorized_key(
    reach: &RotationReach,
    asset: &Asset,
    login: &Login,
    public: &str,
) -> Result<(), String> {
    let line = format!("{public}\n");
    let work = run_with_input(
        reach,
        asset,
        login,
        "umask 077 && mkdir -p ~/.ssh && cat >> ~/.ssh/authorized_keys",
        line.as_bytes(),
    );
    tokio::time::timeout(CHANGE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("the target did not add the key in time".into()))
        .map_err(|err| format!("adding the new key: {err}"))
}

/// Removes every `authorized_keys` line holding `public`'s key, logged in with the new key.
pub async fn remove_authorized_key(
    reach: &RotationReach,
    asset: &Asset,
    login: &Login,
    public: &str,
) -> Result<(), String> {
    // Only the key's base64 blob is matched: it identifies the key whatever the comment.
    let blob = public.split_whitespace().nth(1).unwrap_or_default();
    let line = format!("{blob}\n");
    let work = run_with_input(
        reach,
        asset,
        login,
        "f=~/.ssh/authorized_keys; k=$(cat) && [ -n \"$k\" ] && \
         { grep -vF -- \"$k\" \"$f\" > \"$f.rampart\"; mv \"$f.rampart\" \"$f\"; }",
        line.as_bytes(),
    );
    tokio::time::timeout(CHANGE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("the target did not remove the key in time".into()))
        .map_err(|err| format!("removing the old key: {err}"))
}
