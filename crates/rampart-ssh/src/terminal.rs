//! Terminals for users who authenticated elsewhere (the web portal's browser terminal).
//!
//! A browser terminal is an SSH session to this gateway over an in-process pipe: the server side
//! is the same [`Connection`] every SSH user gets, told who the user is, so the terminal takes
//! exactly the path of `ssh alice@root@web-01@bastion`: policy, vault, relay, recording, command
//! log, live enforcement. Nothing here decides anything; it only carries bytes.

use crate::server::{Connection, Inherited, InheritedTarget};
use rampart_core::{AccountRef, User};
use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelMsg};
use std::net::SocketAddr;
use std::sync::Arc;

/// What a browser terminal asks for.
#[derive(Debug, Clone)]
pub struct TerminalRequest {
    /// The user, as the portal authenticated them.
    pub user: User,
    /// Whether their login used a second factor.
    pub mfa: bool,
    /// The browser's address, for the session record.
    pub source: SocketAddr,
    pub account: AccountRef,
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// What the terminal shows or how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalEvent {
    /// Bytes for the screen (stdout and stderr alike, as a terminal shows them).
    Output(Vec<u8>),
    /// The remote shell exited with this status.
    Exit(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("the terminal could not be opened: {0}")]
    Open(String),
}

/// An open browser terminal.
pub struct Terminal {
    channel: Channel<client::Msg>,
    // Keeps the in-process connection alive as long as the terminal.
    _handle: client::Handle<InProcess>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal").finish_non_exhaustive()
    }
}

/// The client side of the pipe: the server is this very process.
struct InProcess;

impl client::Handler for InProcess {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Size of the in-process pipe's buffer each way; SSH's windows bound what is in flight.
const PIPE_BYTES: usize = 256 * 1024;

impl crate::Gateway {
    /// Opens a shell on `request.account` for a user the portal authenticated, through this
    /// gateway's SSH path. A refusal (no grant, target down) still opens: the terminal shows the
    /// `rampart: ...` line and exits with status 1, as it would over SSH.
    pub async fn open_terminal(&self, request: TerminalRequest) -> Result<Terminal, TerminalError> {
        let (client_side, server_side) = tokio::io::duplex(PIPE_BYTES);
        let connection = Connection::new(
            self.store.clone(),
            self.evidence.clone(),
            self.server_config.clone(),
            request.source,
            self.live.clone(),
            self.auth.clone(),
            crate::target::Reach {
                dialer: self.dialer.clone(),
                host_keys: self.target_host_keys,
            },
        )
        .target_answer_timeout(self.target_answer_timeout)
        .inherit(Inherited {
            user: request.user.clone(),
            mfa: request.mfa,
            via: "web",
            target: InheritedTarget::Account(request.account.clone()),
        });
        let config = self.server_config.clone();
        tokio::spawn(async move {
            match russh::server::run_stream(config, server_side, connection).await {
                Ok(session) => {
                    if let Err(err) = session.await {
                        tracing::debug!(error = %err, "browser terminal connection ended with an error");
                    }
                }
                Err(err) => tracing::debug!(error = %err, "browser terminal handshake failed"),
            }
        });
        let open = |err: russh::Error| TerminalError::Open(err.to_string());
        let client_config = Arc::new(client::Config::default());
        let mut handle = client::connect_stream(client_config, client_side, InProcess)
            .await
            .map_err(open)?;
        let auth = handle
            .authenticate_none(request.user.name.to_string())
            .await
            .map_err(open)?;
        if !auth.success() {
            return Err(TerminalError::Open(
                "the user is not allowed to log in".into(),
            ));
        }
        let channel = handle.channel_open_session().await.map_err(open)?;
        channel
            .request_pty(false, &request.term, request.cols, request.rows, 0, 0, &[])
            .await
            .map_err(open)?;
        channel.request_shell(false).await.map_err(open)?;
        Ok(Terminal {
            channel,
            _handle: handle,
        })
    }
}

impl Terminal {
    /// Sends what the user typed (or pasted).
    pub async fn input(&self, data: &[u8]) -> Result<(), TerminalError> {
        self.channel
            .data_bytes(data.to_vec())
            .await
            .map_err(|err| TerminalError::Open(err.to_string()))
    }

    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), TerminalError> {
        self.channel
            .window_change(cols, rows, 0, 0)
            .await
            .map_err(|err| TerminalError::Open(err.to_string()))
    }

    /// The next thing to show, or `None` once the session is over.
    pub async fn next(&mut self) -> Option<TerminalEvent> {
        loop {
            match self.channel.wait().await? {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                    return Some(TerminalEvent::Output(data.to_vec()));
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    return Some(TerminalEvent::Exit(exit_status));
                }
                ChannelMsg::Close => return None,
                _ => {}
            }
        }
    }
}
