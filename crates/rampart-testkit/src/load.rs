//! A light SSH load client on russh: thousands of interactive sessions (pty and shell) from one
//! process, where as many OpenSSH clients would cost more than the gateway they load. Used by
//! the correctness-at-scale test and by `rampart-bench`'s memory measurement.

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

struct TrustAll;

impl client::Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true) // loopback, against the server under test
    }
}

/// One open interactive session.
#[allow(missing_debug_implementations, reason = "russh's handle has no Debug")]
pub struct LoadSession {
    handle: client::Handle<TrustAll>,
    channel: russh::Channel<client::Msg>,
}

/// Logins in flight at once while opening (the server's per-source cap on unauthenticated
/// connections must allow this many).
pub const OPENING_AT_ONCE: usize = 64;

/// How long one session may take to open, or to echo its token, on a loaded machine.
const STEP_DEADLINE: Duration = Duration::from_secs(120);

#[allow(
    missing_debug_implementations,
    reason = "russh's key has no useful Debug"
)]
pub struct LoadClient {
    runtime: tokio::runtime::Runtime,
    config: Arc<client::Config>,
    key: Arc<PrivateKey>,
}

impl LoadClient {
    /// A client that logs in with the OpenSSH private key in `key` (no passphrase).
    pub fn new(key: &Path) -> Result<Self, LoadError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let pem = std::fs::read_to_string(key)?;
        let key = Arc::new(PrivateKey::from_openssh(pem.as_bytes())?);
        let config = Arc::new(client::Config {
            nodelay: true,
            inactivity_timeout: None,
            ..client::Config::default()
        });
        Ok(Self {
            runtime,
            config,
            key,
        })
    }

    /// Opens `count` interactive sessions (pty 80 x 24, shell) as `user` at `address`,
    /// [`OPENING_AT_ONCE`] at a time: the sessions that opened, and how many did not.
    pub fn open(&self, address: SocketAddr, user: &str, count: usize) -> (Vec<LoadSession>, usize) {
        self.runtime.block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
            let mut tasks = Vec::with_capacity(count);
            for _ in 0..count {
                let (config, key, user, limit) = (
                    self.config.clone(),
                    self.key.clone(),
                    user.to_owned(),
                    limit.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    tokio::time::timeout(STEP_DEADLINE, open_one(config, key, address, user)).await
                }));
            }
            let mut sessions = Vec::with_capacity(count);
            let mut errors = 0;
            for task in tasks {
                match task.await {
                    Ok(Ok(Ok(session))) => sessions.push(session),
                    _ => errors += 1,
                }
            }
            (sessions, errors)
        })
    }

    /// Types `echo TOKEN` into every session at once, where session `i`'s token is
    /// `{prefix}-{i}-` followed by a shell calculation (so only the command's output, not the
    /// terminal's echo of the typing, shows `{prefix}-{i}-42`). Returns, per session, the tokens
    /// it showed: a session that works shows exactly its own, `[i]`.
    pub fn echo_tokens(
        &self,
        sessions: Vec<LoadSession>,
        prefix: &str,
    ) -> (Vec<LoadSession>, Vec<Vec<usize>>) {
        self.runtime.block_on(async {
            let mut tasks = Vec::with_capacity(sessions.len());
            for (index, mut session) in sessions.into_iter().enumerate() {
                let prefix = prefix.to_owned();
                tasks.push(tokio::spawn(async move {
                    let seen = tokio::time::timeout(
                        STEP_DEADLINE,
                        echo_one(&mut session.channel, &prefix, index),
                    )
                    .await
                    .unwrap_or_default();
                    (session, seen)
                }));
            }
            let mut sessions = Vec::with_capacity(tasks.len());
            let mut seen = Vec::with_capacity(tasks.len());
            for task in tasks {
                if let Ok((session, tokens)) = task.await {
                    sessions.push(session);
                    seen.push(tokens);
                }
            }
            (sessions, seen)
        })
    }

    /// Ends every session the way a client does: `exit` typed into the shell, the channel
    /// closed, the connection disconnected.
    pub fn close(&self, sessions: Vec<LoadSession>) {
        self.runtime.block_on(async {
            let mut tasks = Vec::with_capacity(sessions.len());
            for session in sessions {
                tasks.push(tokio::spawn(async move {
                    let close = async {
                        let _ = session.channel.data_bytes(&b"exit\n"[..]).await;
                        let _ = session.channel.close().await;
                        let _ = session
                            .handle
                            .disconnect(russh::Disconnect::ByApplication, "", "")
                            .await;
                    };
                    // A session that does not close in time is dropped (its socket closes).
                    let _ = tokio::time::timeout(STEP_DEADLINE, close).await;
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
    }
}

async fn open_one(
    config: Arc<client::Config>,
    key: Arc<PrivateKey>,
    address: SocketAddr,
    user: String,
) -> Result<LoadSession, LoadError> {
    let mut handle = client::connect(config, address, TrustAll).await?;
    let auth = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None))
        .await?;
    if !auth.success() {
        return Err("authentication refused".into());
    }
    let channel = handle.channel_open_session().await?;
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await?;
    let mut channel = channel;
    channel.request_shell(true).await?;
    // A person types once the prompt shows (typed ahead, the line is not at a prompt).
    let mut shown = Vec::new();
    while !is_prompt(&shown) {
        match channel.wait().await {
            Some(russh::ChannelMsg::Data { data }) => shown.extend_from_slice(&data),
            Some(_) => {}
            None => return Err("the shell ended before its prompt".into()),
        }
    }
    Ok(LoadSession { handle, channel })
}

/// Whether the output so far ends with a shell prompt (`$ ` or `# `).
fn is_prompt(shown: &[u8]) -> bool {
    shown.ends_with(b"$ ") || shown.ends_with(b"# ")
}

/// Types one `echo` and reads until its output shows; returns every token shown until then.
async fn echo_one(
    channel: &mut russh::Channel<client::Msg>,
    prefix: &str,
    index: usize,
) -> Vec<usize> {
    if channel
        .data_bytes(format!("echo {prefix}-{index}-$((6*7))\n").into_bytes())
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut shown = Vec::new();
    loop {
        let tokens = tokens_in(&String::from_utf8_lossy(&shown), prefix);
        if tokens.contains(&index) {
            return tokens;
        }
        match channel.wait().await {
            Some(russh::ChannelMsg::Data { data }) => shown.extend_from_slice(&data),
            Some(_) => {}
            None => return tokens,
        }
    }
}

/// The indices `i` of every `{prefix}-{i}-42` in `text`.
fn tokens_in(text: &str, prefix: &str) -> Vec<usize> {
    let marker = format!("{prefix}-");
    text.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = text.get(at + marker.len()..)?;
            let (number, tail) = rest.split_once('-')?;
            tail.starts_with("42").then(|| number.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prompt_ends_the_output() {
        assert!(super::is_prompt(b"Last login: today\r\nbash-5.2$ "));
        assert!(super::is_prompt(b"root@web:~# "));
        assert!(!super::is_prompt(b"Last login: today\r\n"));
    }

    #[test]
    fn tokens_are_read_from_output_not_from_the_typed_command() {
        let text = "$ echo tok-7-$((6*7))\r\ntok-7-42\r\n$ tok-17-42 tok-x-42";
        assert_eq!(super::tokens_in(text, "tok"), [7, 17]);
    }
}
