//! Shells on Telnet devices: which assets are reached over Telnet, the login there with the
//! vaulted password, and the adapter that lets the pump treat the connection like an SSH
//! target channel (see `target_side`). The protocol itself is `rampart-telnet`'s.
//!
//! An asset's shell goes over Telnet when it has a `telnet` endpoint and no `ssh` endpoint;
//! only an interactive shell does (Telnet has no commands, subsystems or forwards).

use super::SessionContext;
use super::requests::PtyRequest;
use super::target_side::{TargetReader, TargetWriter};
use crate::target::Resolved;
use bytes::Bytes;
use rampart_core::{Asset, Protocol};
use rampart_session::Authorized;
use rampart_telnet::{Connection, Input, Login, LoginPatterns};
use russh::{ChannelMsg, Sig};
use std::future::Future;
use tokio::sync::mpsc;

/// Whether `asset`'s shell is reached over Telnet.
pub(super) fn is_telnet_asset(asset: &Asset) -> bool {
    let has = |protocol| asset.endpoints.iter().any(|e| e.protocol == protocol);
    has(Protocol::Telnet) && !has(Protocol::Ssh)
}

/// A Telnet device logged in, with what it showed after the password.
pub(super) struct TelnetTarget {
    pub(super) connection: Connection,
    pub(super) shown: Vec<u8>,
}

/// Why a Telnet target could not be opened: the line the user sees and the reason recorded.
pub(super) struct TelnetFailure {
    pub(super) message: String,
    /// Whether it is worth a `target_connection_failed` event (the device or the route
    /// failed, not Rampart's own bookkeeping).
    pub(super) target_failed: bool,
}

/// Dials the asset's Telnet endpoint through the node's dialer, records the route, and logs in
/// as the account with its vaulted password (its use audited first).
pub(super) async fn open(
    context: &SessionContext,
    resolved: &Resolved,
    authorized: &Authorized,
    session: uuid::Uuid,
    pty: Option<&PtyRequest>,
) -> Result<TelnetTarget, TelnetFailure> {
    let account = resolved.account_ref().to_string();
    let device = |message: String| TelnetFailure {
        message,
        target_failed: true,
    };
    let ours = |message: String| TelnetFailure {
        message,
        target_failed: false,
    };
    // The asset's login settings (`rampart asset telnet`), each unset one the default.
    let asset = &resolved.asset.name;
    let settings = context
        .store
        .telnet_login_settings(asset)
        .await
        .map_err(|err| {
            tracing::error!(%asset, error = %err, "cannot read the Telnet login settings");
            ours(format!("cannot read the Telnet login settings of {asset}"))
        })?;
    let patterns = LoginPatterns::new(
        settings.login_prompt.as_deref(),
        settings.password_prompt.as_deref(),
        settings.success.as_deref(),
        settings.failure.as_deref(),
    )
    .map_err(|err| {
        ours(format!(
            "the Telnet login settings of {asset} are invalid ({err})"
        ))
    })?;
    let timeout = settings
        .timeout_seconds
        .map_or(context.target_answer_timeout, |seconds| {
            std::time::Duration::from_secs(u64::from(seconds))
        });
    let dialed = context
        .dialer
        .dial(&resolved.asset, Protocol::Telnet)
        .await
        .map_err(|err| device(err.to_string()))?;
    context
        .store
        .set_session_route(session, &dialed.route.to_string())
        .await
        .map_err(|err| ours(format!("cannot record the session's route ({err})")))?;
    let password = rampart_session::database::vaulted_password(&context.store, authorized)
        .await
        .map_err(ours)?;
    let terminal = rampart_telnet::Terminal {
        term: pty.map(|p| p.term.clone()),
        columns: pty.map_or(80, |p| p.cols),
        rows: pty.map_or(24, |p| p.rows),
    };
    let login = Login {
        name: resolved.account.to_string(),
        password,
        patterns,
        timeout,
    };
    let (connection, shown) = rampart_telnet::connect(dialed.stream, terminal, login)
        .await
        .map_err(|err| {
            if err.is_refused_credential() {
                device(format!(
                    "target {} refused Rampart's credential for {account} ({err})",
                    resolved.asset.name
                ))
            } else {
                device(format!("the Telnet login to {account} failed: {err}"))
            }
        })?;
    Ok(TelnetTarget { connection, shown })
}

/// The device's side, as the pump reads it: its data, then an end of file and a close when
/// the device closes the connection (Telnet has no exit status), or nothing (the connection was
/// lost) after an error.
pub(super) struct TelnetReader {
    output: mpsc::Receiver<Result<Bytes, String>>,
    ended: Option<ChannelMsg>,
    done: bool,
}

/// The user's side towards the device.
pub(super) struct TelnetWriter {
    input: mpsc::Sender<Input>,
}

/// Splits a connection into the pump's halves.
pub(super) fn halves(connection: Connection) -> (TelnetReader, TelnetWriter) {
    (
        TelnetReader {
            output: connection.output,
            ended: None,
            done: false,
        },
        TelnetWriter {
            input: connection.input,
        },
    )
}

impl TargetReader for TelnetReader {
    // Cancel-safe: `recv` is, and nothing else awaits.
    async fn wait(&mut self) -> Option<ChannelMsg> {
        if let Some(message) = self.ended.take() {
            return Some(message);
        }
        if self.done {
            return None;
        }
        match self.output.recv().await {
            Some(Ok(data)) => Some(ChannelMsg::Data { data }),
            Some(Err(why)) => {
                tracing::info!(error = %why, "the Telnet connection failed");
                self.done = true;
                None
            }
            None => {
                self.done = true;
                self.ended = Some(ChannelMsg::Close);
                Some(ChannelMsg::Eof)
            }
        }
    }
}

impl TelnetWriter {
    async fn send(&self, input: Input) -> Result<(), russh::Error> {
        self.input
            .send(input)
            .await
            .map_err(|_| russh::Error::SendError)
    }
}

impl TargetWriter for TelnetWriter {
    fn data_bytes(&self, data: Bytes) -> impl Future<Output = Result<(), russh::Error>> + Send {
        self.send(Input::Data(data))
    }

    fn eof(&self) -> impl Future<Output = Result<(), russh::Error>> + Send {
        // Telnet has no half-close; the device ends the session.
        std::future::ready(Ok(()))
    }

    fn window_change(
        &self,
        columns: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
    ) -> impl Future<Output = Result<(), russh::Error>> + Send {
        self.send(Input::Resize { columns, rows })
    }

    async fn signal(&self, signal: Sig) -> Result<(), russh::Error> {
        match signal {
            // The user hung up: the connection closes, as a terminal's hang-up would.
            Sig::HUP => self.send(Input::Close).await,
            _ => Ok(()),
        }
    }

    fn close(&self) -> impl Future<Output = Result<(), russh::Error>> + Send {
        self.send(Input::Close)
    }
}
