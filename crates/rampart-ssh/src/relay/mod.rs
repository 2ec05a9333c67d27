//! The relay: one session channel from the user, one to the target, and every byte between them.
//!
//! Both directions run as their own task over window-aware channel halves, so a side that stops
//! reading stalls only its own direction: russh waits for the peer's window before sending, its
//! per-channel queues are bounded, and a full queue stops reading from that TCP connection. No
//! buffer here grows with what the peers send.
//!
//! One file per job: `requests` (what the channel asks for before it starts), `choose` (the
//! menu), `open` (authorize, record, connect, replay), `pump` (the bytes both ways), `tap`
//! (where the recorder and the protocol observers attach). This file only dispatches.

mod choose;
mod open;
mod pump;
mod requests;
mod target_side;
mod telnet;

use crate::live::LiveSessions;
use crate::login::TargetSpec;
use crate::target::{self, TargetConnection};
use choose::run_menu;
use open::{Opened, TargetSide, open_target_channel};
use rampart_core::User;
use rampart_store::Store;
use requests::{Requested, Start};
use russh::Channel;
use russh::server::{Handle, Msg};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Target connections of one user connection, one per account, shared by its channels (sftp and
/// scp clients, and ProxyJump sessions, open several). Each account has its own slot, so a
/// target that is slow to answer delays only the channels for that account.
#[derive(Clone, Default)]
pub struct TargetCache(Arc<Mutex<HashMap<String, TargetSlot>>>);

/// One account's connection, once made.
type TargetSlot = Arc<Mutex<Option<Arc<TargetConnection>>>>;

/// Everything a session channel needs from its connection.
pub struct SessionContext {
    pub store: Arc<Store>,
    pub evidence: Evidence,
    pub user: User,
    pub target: TargetSpec,
    pub source: String,
    /// The address the user logged in from, for the login rules live enforcement re-checks.
    pub source_ip: std::net::IpAddr,
    pub handle: Handle,
    pub targets: TargetCache,
    pub live: Arc<LiveSessions>,
    /// Whether the login used a second factor (grants may require it).
    pub mfa: bool,
    /// What to do with a target whose host key is not pinned yet.
    pub target_host_keys: target::TargetHostKeys,
    /// The environment the connection's handler kept for this channel (it answers `env`
    /// requests itself, see `crate::requests`).
    pub env: crate::requests::SharedEnvironment,
    /// How long the target has to answer the session (connect, channel, start request).
    pub target_answer_timeout: std::time::Duration,
    /// The node's dialer (routes through network domains' gateways).
    pub dialer: rampart_session::dial::Dialer,
}

pub use rampart_session::Evidence;
pub(crate) use requests::remember_env;

impl SessionContext {
    /// The node's session core, for this channel.
    fn core(&self) -> rampart_session::SessionCore {
        rampart_session::SessionCore::new(
            self.store.clone(),
            self.evidence.clone(),
            self.live.clone(),
        )
    }

    /// What the policy allowed, as the session core takes it.
    fn authorized(&self, resolved: &target::Resolved) -> rampart_session::Authorized {
        rampart_session::Authorized {
            user: self.user.clone(),
            mfa: self.mfa,
            source: rampart_session::Source {
                text: self.source.clone(),
                ip: self.source_ip,
            },
            asset: resolved.asset.clone(),
            account: resolved.account.clone(),
            grant: resolved.grant,
            rules: resolved.rules,
            actions: resolved.actions.clone(),
            kube_namespace: None,
        }
    }
}

/// Serves one session channel from the user until either side closes it.
pub async fn session_channel(context: SessionContext, mut channel: Channel<Msg>) {
    let id = channel.id();
    let handle = context.handle.clone();
    let Some(Requested {
        start,
        want_reply,
        mut pty,
        env,
    }) = requests::collect(&mut channel, &context.env).await
    else {
        let _ = channel.close().await;
        return;
    };

    // A bare `ssh alice@bastion` with a terminal gets the menu of what alice may use now.
    let mut target_spec = context.target.clone();
    let mut want_reply = want_reply;
    if target_spec == TargetSpec::Menu
        && let (Start::Shell, Some(pty)) = (&start, pty.as_mut())
    {
        if want_reply {
            let _ = handle.channel_success(id).await;
            want_reply = false;
        }
        match Box::pin(run_menu(&context, &mut channel, pty)).await {
            Some(chosen) => target_spec = TargetSpec::Account(chosen),
            None => {
                let _ = channel.exit_status(0).await;
                let _ = channel.eof().await;
                let _ = channel.close().await;
                return;
            }
        }
    }
    // Meanwhile what the user sends is read (bounded) and handled first once the session runs:
    // left in the channel's queue, it would stop the whole connection (russh stops reading it
    // when one channel's queue is full) until the target answered.
    // Boxed, as the menu and the end: the task lives as long as the session, and an inline
    // future would keep the largest of them (the target's login) allocated all along.
    let opening = Box::pin(open_target_channel(
        &context,
        &target_spec,
        &start,
        pty.as_ref(),
        &env,
    ));
    let (opened, pending) = read_while(&mut channel, opening).await;
    let Opened { target, mut guard } = match opened {
        Ok(opened) => opened,
        Err(message) => {
            // The request itself succeeded: the user gets a clear line and a failing status.
            if want_reply {
                let _ = handle.channel_success(id).await;
            }
            let line = format!("rampart: {message}\r\n");
            let _ = channel.extended_data_bytes(1, line.into_bytes()).await;
            let _ = channel.exit_status(1).await;
            let _ = channel.eof().await;
            let _ = channel.close().await;
            return;
        }
    };
    if want_reply {
        let _ = handle.channel_success(id).await;
    }
    let Some(control) = guard.take_control() else {
        return;
    };
    // The pump only moves bytes and reacts; the guard ends the session (seal, record) once.
    let (reason, exit_status) = match target {
        TargetSide::Ssh {
            channel: target_channel,
            early,
        } => {
            let (from_target, to_target) = target_channel.split();
            pump::pump(
                channel,
                from_target,
                to_target,
                pending,
                early,
                &handle,
                guard.tap(),
                control,
            )
            .await
        }
        TargetSide::Telnet(device) => {
            // What the device showed after the password goes first, recorded like the rest.
            let early = match device.shown {
                shown if shown.is_empty() => Vec::new(),
                shown => vec![russh::ChannelMsg::Data { data: shown.into() }],
            };
            let (from_target, to_target) = telnet::halves(device.connection);
            pump::pump(
                channel,
                from_target,
                to_target,
                pending,
                early,
                &handle,
                guard.tap(),
                control,
            )
            .await
        }
    };
    Box::pin(guard.end(reason, exit_status)).await;
}

/// At most this much of what the user sends before the session starts is read and kept (the
/// rest waits in russh's bounded channel queue, as before).
const PENDING_BYTES: usize = 1024 * 1024;
const PENDING_MESSAGES: usize = 1024;

/// Runs `work` while reading the user's channel into a bounded buffer; returns its outcome and
/// what was read, in order (a channel that ended reads as a `Close`).
async fn read_while<T>(
    channel: &mut Channel<Msg>,
    work: impl std::future::Future<Output = T>,
) -> (T, Vec<russh::ChannelMsg>) {
    let mut pending = Vec::new();
    let mut bytes = 0usize;
    let mut reading = true;
    tokio::pin!(work);
    loop {
        tokio::select! {
            outcome = &mut work => return (outcome, pending),
            message = channel.wait(), if reading => {
                let message = message.unwrap_or(russh::ChannelMsg::Close);
                match &message {
                    russh::ChannelMsg::Data { data }
                    | russh::ChannelMsg::ExtendedData { data, .. } => bytes += data.len(),
                    russh::ChannelMsg::Close => reading = false,
                    _ => {}
                }
                pending.push(message);
                if bytes >= PENDING_BYTES || pending.len() >= PENDING_MESSAGES {
                    reading = false;
                }
            }
        }
    }
}
