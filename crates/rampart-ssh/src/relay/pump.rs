//! Moving the bytes: both directions of one started session, each its own task over
//! window-aware channel halves, so a side that stops reading stalls only its own direction:
//! russh waits for the peer's window before sending, its per-channel queues are bounded, and a
//! full queue stops reading from that TCP connection. No buffer here grows with what the peers
//! send. Every chunk passes through the [`Tap`] before it is forwarded.

use super::target_side::{TargetReader, TargetWriter};
use crate::live::SessionControl;
use rampart_audit::Stream;
use rampart_session::SessionTap;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, Sig};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The end reason of a session whose target connection was lost (the target, or the gateway or
/// agent carrying it, went away without closing the session).
const TARGET_LOST: &str = "the connection to the target was lost";

/// The end reason of a session whose user went away: their client died, their connection or
/// WebSocket closed, or they closed the channel while the target was still running.
pub(crate) const CLIENT_DISCONNECTED: &str = "client disconnected";

/// How long a session whose user left waits for the target to answer the hang-up.
pub(super) const TARGET_HANG_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves at `deadline` (never without one).
pub(super) async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How the user-to-target direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserSide {
    /// The user's channel or connection is gone.
    Left,
    /// Ended for another reason (a stop, a failed recording, the target refusing data).
    Stayed,
}

/// Read ahead at most this much data a peer has already sent, to record it in one hand-off to
/// the recording's writer (one per batch, not per packet: cheap under load).
pub(super) const READ_AHEAD_BYTES: usize = 512 * 1024;
pub(super) const READ_AHEAD_MESSAGES: usize = 64;

/// Messages taken from a channel ahead of the one being handled. The data at the front was
/// recorded with the message before it (`recorded` of them), so it is forwarded without being
/// recorded twice; everything is still forwarded in order, each piece only once recorded.
#[derive(Default)]
pub(super) struct ReadAhead {
    pub(super) queue: std::collections::VecDeque<ChannelMsg>,
    pub(super) recorded: usize,
    pub(super) closed: bool,
}

impl ReadAhead {
    /// The next message read ahead, and whether it is already recorded.
    pub(super) fn pop(&mut self) -> Option<(ChannelMsg, bool)> {
        let message = self.queue.pop_front()?;
        let recorded = self.recorded > 0;
        self.recorded = self.recorded.saturating_sub(1);
        Some((message, recorded))
    }

    /// Whether the channel has ended and nothing read ahead is left.
    pub(super) fn done(&self) -> bool {
        self.closed && self.queue.is_empty()
    }

    /// The data messages right behind the one being handled (reading, without waiting, what
    /// `from` already holds if nothing is queued), marked as recorded with it: (data, is
    /// extended data).
    pub(super) async fn data_behind(
        &mut self,
        from: &mut impl TargetReader,
    ) -> Vec<(bytes::Bytes, bool)> {
        if self.queue.is_empty() && !self.closed {
            let mut bytes = 0usize;
            while bytes < READ_AHEAD_BYTES && self.queue.len() < READ_AHEAD_MESSAGES {
                // Polls once: a message that is there, or nothing (`wait` is cancel-safe).
                match poll_once(from.wait()).await {
                    Ok(Some(message)) => {
                        let size = match &message {
                            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                                Some(data.len())
                            }
                            _ => None,
                        };
                        self.queue.push_back(message);
                        match size {
                            Some(size) => bytes += size,
                            None => break,
                        }
                    }
                    Ok(None) => {
                        self.closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let behind: Vec<(bytes::Bytes, bool)> = self
            .queue
            .iter()
            .skip(self.recorded)
            .map_while(|message| match message {
                ChannelMsg::Data { data } => Some((data.clone(), false)),
                ChannelMsg::ExtendedData { data, .. } => Some((data.clone(), true)),
                _ => None,
            })
            .collect();
        self.recorded += behind.len();
        behind
    }
}

/// Polls `future` exactly once: its output if it is ready now, else `Err(())` (the future is
/// dropped, so it must be cancel-safe). Not `tokio::time::timeout(ZERO, ..)`: the timer rounds a
/// deadline of "now" up to its next millisecond tick, so a miss cost up to a millisecond per
/// read-ahead, which a keystroke's round trip paid on both sides.
async fn poll_once<F: std::future::Future>(future: F) -> Result<F::Output, ()> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|context| {
        std::task::Poll::Ready(match future.as_mut().poll(context) {
            std::task::Poll::Ready(output) => Ok(output),
            std::task::Poll::Pending => Err(()),
        })
    })
    .await
}

/// The data messages right behind `first` from the user: those already held (read before the
/// session started), or else what the channel already holds, without waiting (up to
/// [`READ_AHEAD_BYTES`] and [`READ_AHEAD_MESSAGES`]). The first other message read stays held,
/// to be handled next, in order.
async fn user_data_behind(
    first: bytes::Bytes,
    held: &mut std::collections::VecDeque<ChannelMsg>,
    from: &mut russh::ChannelReadHalf,
) -> Vec<bytes::Bytes> {
    let mut bytes = first.len();
    let mut batch = vec![first];
    while bytes < READ_AHEAD_BYTES && batch.len() < READ_AHEAD_MESSAGES {
        let next = match held.pop_front() {
            Some(message) => message,
            // Nothing held (all of it came before what the channel holds): polls once, a
            // message that is there or nothing (`wait` is cancel-safe).
            None => match poll_once(from.wait()).await {
                Ok(Some(message)) => message,
                // The channel ended: the next wait says so again.
                Ok(None) | Err(_) => break,
            },
        };
        match next {
            ChannelMsg::Data { data } => {
                bytes += data.len();
                batch.push(data);
            }
            other => {
                held.push_front(other);
                break;
            }
        }
    }
    batch
}

/// Moves bytes and channel events both ways until the channel is done; returns the totals.
/// `pending` is what the user sent before the session started, `early` what the target did.
/// The target is an SSH channel's halves or a Telnet connection's (`target_side`).
#[expect(
    clippy::too_many_arguments,
    reason = "one session's two sides and its controls, passed once"
)]
pub(super) async fn pump(
    user: Channel<Msg>,
    mut from_target: impl TargetReader,
    to_target: impl TargetWriter,
    pending: Vec<ChannelMsg>,
    early: Vec<ChannelMsg>,
    handle: &Handle,
    tap: SessionTap,
    control: SessionControl,
) -> (String, Option<i64>) {
    let SessionControl {
        stop: mut stop_downstream,
        mut notices,
    } = control;
    let mut stop_upstream = stop_downstream.clone();
    let live = tap.live().clone();
    let user_id = user.id();
    let (mut from_user, to_user) = user.split();

    // User to target. A failure to record ends the session and is kept for its end reason.
    let upstream_tap = tap.clone();
    let upstream_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let failure = upstream_failure.clone();
    let upstream_live = live.clone();
    // Replies Rampart gives the client itself (refused SFTP requests), put into the stream to
    // the client between two of the target's packets.
    let (replies, mut replies_to_send) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    // Set once the target's command has exited, so a user leaving afterwards
    // does not signal a finished command.
    let target_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let target_done_upstream = target_done.clone();
    let mut upstream = tokio::spawn(async move {
        let mut user_side = UserSide::Stayed;
        // What the user sent before the session started (read while the target was opened),
        // then messages read ahead behind a batch of data: handled first, in order.
        let mut held: std::collections::VecDeque<ChannelMsg> = pending.into();
        // A shell line held for an approver (`rampart_session::approval`): its approval is
        // read every tick until decided; meanwhile the user's keys go through the observers
        // (recorded) and are discarded, and a stop or the user leaving still ends the session.
        let mut awaiting_approval = false;
        let mut approval_poll = tokio::time::interval(rampart_session::approval::POLL_INTERVAL);
        approval_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = match held.pop_front() {
                Some(message) => Some(message),
                None => tokio::select! {
                    message = from_user.wait() => message,
                    _ = crate::live::stopped_watch(&mut stop_upstream) => break,
                    _ = approval_poll.tick(), if awaiting_approval => {
                        let decided = match upstream_tap.approval_outcome().await {
                            Ok(decided) => decided,
                            Err(err) => {
                                tracing::error!(error = %err, "cannot follow an approval; ending the session");
                                if let Ok(mut slot) = failure.lock() {
                                    *slot = Some(err);
                                }
                                break;
                            }
                        };
                        let Some((to_send, line)) = decided else {
                            continue;
                        };
                        awaiting_approval = false;
                        if replies.send(format!("\r\n{line}\r\n").into_bytes()).await.is_err()
                            || to_target.data_bytes(to_send.into()).await.is_err()
                        {
                            break;
                        }
                        continue;
                    }
                },
            };
            let Some(message) = message else {
                // The user's connection is gone (their client died or the socket closed).
                user_side = UserSide::Left;
                break;
            };
            if matches!(
                message,
                ChannelMsg::Data { .. } | ChannelMsg::WindowChange { .. }
            ) {
                upstream_live.touch();
            }
            let sent = match message {
                ChannelMsg::Data { data } => {
                    // With what the user has already sent behind it: observed (recorded) in
                    // one hand-off, then each chunk forwarded in order as its verdict says.
                    let batch = user_data_behind(data, &mut held, &mut from_user).await;
                    let verdicts = match upstream_tap.clients_sent(&batch).await {
                        Ok(verdicts) => verdicts,
                        Err(err) => {
                            tracing::error!(error = %err, "recording failed; ending the session");
                            if let Ok(mut slot) = failure.lock() {
                                *slot = Some(err);
                            }
                            break;
                        }
                    };
                    let mut sent = Ok(());
                    for (data, verdict) in batch.into_iter().zip(verdicts) {
                        if !verdict.replies.is_empty()
                            && replies.send(verdict.replies).await.is_err()
                        {
                            sent = Err(russh::Error::SendError);
                            break;
                        }
                        sent = match verdict.forward {
                            None => to_target.data_bytes(data).await,
                            Some(passed) if passed.is_empty() => Ok(()),
                            Some(passed) => to_target.data_bytes(passed.into()).await,
                        };
                        if sent.is_err() {
                            break;
                        }
                        if let Some(hold) = verdict.hold {
                            match upstream_tap.hold(&hold).await {
                                Ok(line) => {
                                    awaiting_approval = true;
                                    approval_poll.reset();
                                    if replies
                                        .send(format!("\r\n{line}\r\n").into_bytes())
                                        .await
                                        .is_err()
                                    {
                                        sent = Err(russh::Error::SendError);
                                        break;
                                    }
                                }
                                Err(err) => {
                                    tracing::error!(error = %err, "cannot hold a line; ending the session");
                                    if let Ok(mut slot) = failure.lock() {
                                        *slot = Some(err);
                                    }
                                    sent = Err(russh::Error::SendError);
                                    break;
                                }
                            }
                        }
                    }
                    sent
                }
                ChannelMsg::Eof => to_target.eof().await,
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    if let Err(err) = upstream_tap.resized(col_width, row_height).await {
                        tracing::error!(error = %err, "recording failed; ending the session");
                        if let Ok(mut slot) = failure.lock() {
                            *slot = Some(err);
                        }
                        break;
                    }
                    to_target
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await
                }
                ChannelMsg::Signal { signal } => to_target.signal(signal).await,
                ChannelMsg::Close => {
                    user_side = UserSide::Left;
                    break;
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        if user_side == UserSide::Left && !target_done_upstream.load(Ordering::Relaxed) {
            // Nobody is there any more: hang up what runs on the target, as a terminal's hang-up
            // would (OpenSSH signals the command's process group), so it does not run on alone.
            let _ = to_target.signal(Sig::HUP).await;
            let _ = to_target.eof().await;
        }
        let _ = to_target.close().await;
        user_side
    });

    // Target to user, until the target closes the channel.
    let mut exit_status = None;
    let mut reason = "target closed the channel".to_owned();
    let mut target_lost = false;
    let mut stopped = false;
    let mut upstream_done = false;
    let mut user_left: Option<tokio::time::Instant> = None;
    let mut early = early.into_iter();
    let mut ahead = ReadAhead::default();
    loop {
        let next = match early.next() {
            Some(message) => Some((message, false)),
            None => ahead.pop(),
        };
        let (message, already_recorded) = match next {
            Some(next) => next,
            None if ahead.done() => {
                target_lost = exit_status.is_none();
                break;
            }
            None => tokio::select! {
                message = from_target.wait() => match message {
                    Some(message) => (message, false),
                    None => {
                        // Ended without a close or an exit status: the connection to the
                        // target (or the gateway or agent carrying it) is gone.
                        target_lost = exit_status.is_none();
                        break;
                    }
                },
                user_side = &mut upstream, if !upstream_done => {
                    upstream_done = true;
                    // The user went away before the target finished: the session ends now,
                    // instead of running on until an idle limit. The upstream task has sent the
                    // hang-up and the close; the target's answer (or a short wait) confirms it
                    // got them before the connection is dropped.
                    if matches!(user_side, Ok(UserSide::Left)) && exit_status.is_none() {
                        user_left =
                            Some(tokio::time::Instant::now() + TARGET_HANG_UP_WAIT);
                    }
                    continue;
                }
                () = until(user_left), if user_left.is_some() => break,
                why = crate::live::stopped_watch(&mut stop_downstream) => {
                    // Live enforcement ended it: the user sees why, and so does the recording.
                    let line = format!("rampart: session ended: {why}");
                    tap.notice(&line).await;
                    let _ = to_user
                        .extended_data_bytes(1, format!("\r\n{line}\r\n").into_bytes())
                        .await;
                    reason = why;
                    stopped = true;
                    break;
                }
                Some(line) = notices.recv() => {
                    tap.notice(&line).await;
                    let _ = to_user
                        .extended_data_bytes(1, format!("\r\n{line}\r\n").into_bytes())
                        .await;
                    continue;
                }
                Some(reply) = replies_to_send.recv(), if tap.may_interject() => {
                    if to_user.data_bytes(reply).await.is_err() {
                        reason = "user went away".to_owned();
                        break;
                    }
                    continue;
                }
            },
        };
        if !live.interactive() {
            live.touch();
        }
        if matches!(
            message,
            ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }
        ) {
            target_done.store(true, Ordering::Relaxed);
        }
        let first = match &message {
            ChannelMsg::Data { data } => Some((data.clone(), false)),
            ChannelMsg::ExtendedData { data, .. } => Some((data.clone(), true)),
            _ => None,
        };
        let recorded = match first {
            Some(first) if !already_recorded => {
                let mut batch = vec![first];
                // Nothing is read ahead of what the target sent before the session started.
                if early.len() == 0 {
                    batch.extend(ahead.data_behind(&mut from_target).await);
                }
                let batch: Vec<(Stream, bytes::Bytes)> = batch
                    .into_iter()
                    .map(|(data, stderr)| {
                        let stream = if stderr {
                            Stream::ErrorOutput
                        } else {
                            Stream::Output
                        };
                        (stream, data)
                    })
                    .collect();
                tap.target_sent(&batch).await
            }
            _ => Ok(()),
        };
        if let Err(err) = recorded {
            // Fail closed: what cannot be recorded is not shown, and the session ends.
            tracing::error!(error = %err, "recording failed; ending the session");
            reason = format!("recording failed: {err}");
            let line = "\r\nrampart: the session recording failed, so the session is ended\r\n";
            let _ = to_user
                .extended_data_bytes(1, line.as_bytes().to_vec())
                .await;
            break;
        }
        if let ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } = &message {
            live.shown(data);
        }
        let sent = match message {
            ChannelMsg::Data { data } => to_user.data_bytes(data).await,
            ChannelMsg::ExtendedData { data, ext } => to_user.extended_data_bytes(ext, data).await,
            ChannelMsg::Eof => to_user.eof().await,
            ChannelMsg::ExitStatus {
                exit_status: status,
            } => {
                exit_status = Some(i64::from(status));
                to_user.exit_status(status).await
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                reason = format!("killed by signal {}", signal_text(&signal_name));
                let _ = handle
                    .exit_signal_request(user_id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
                Ok(())
            }
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            reason = CLIENT_DISCONNECTED.to_owned();
            break;
        }
    }
    // A stop that raced the target's close (the upstream half closes the target when it sees
    // the stop, and the close may be read first): the stop is why the session ended.
    let raced = if stopped {
        None
    } else {
        stop_downstream.borrow().clone()
    };
    if let Some(why) = raced {
        let line = format!("rampart: session ended: {why}");
        tap.notice(&line).await;
        let _ = to_user
            .extended_data_bytes(1, format!("\r\n{line}\r\n").into_bytes())
            .await;
        reason = why;
        stopped = true;
    }
    if target_lost && !stopped {
        // The user sees why, and so do the recording and the session's end reason.
        let line = format!("rampart: session ended: {TARGET_LOST}");
        tap.notice(&line).await;
        let _ = to_user
            .extended_data_bytes(1, format!("\r\n{line}\r\n").into_bytes())
            .await;
        reason = TARGET_LOST.to_owned();
    }
    let _ = to_user.close().await;
    if stopped && !upstream_done {
        // Let the upstream task see the stop too and close the target's channel.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), &mut upstream).await;
    }
    if !upstream_done {
        upstream.abort();
    }
    if user_left.is_some() {
        reason = CLIENT_DISCONNECTED.to_owned();
    }
    if let Some(failure) = upstream_failure
        .lock()
        .ok()
        .and_then(|mut slot| slot.take())
    {
        reason = if rampart_session::approval::is_approval_failure(&failure) {
            failure
        } else {
            format!("recording failed: {failure}")
        };
    }
    (reason, exit_status)
}

pub(super) fn signal_text(signal: &Sig) -> String {
    format!("{signal:?}")
}
