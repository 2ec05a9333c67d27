//! Moving the bytes: both directions of one started session, each its own task over
//! window-aware channel halves, so a side that stops reading stalls only its own direction:
//! russh waits for the peer's window before sending, its per-channel queues are bounded, and a
//! full queue stops reading from that TCP connection. No buffer here grows with what the peers
//! send. Every chunk passes through the [`SessionTap`] before it is forwarded, and is forwarded
//! only once it is recorded; in both directions at most two batches are read ahead
//! ([`ReadAhead`]).

use super::target_side::{TargetReader, TargetWriter};
use crate::live::SessionControl;
use rampart_audit::Stream;
use rampart_session::SessionTap;
use rampart_session::observe::{ClientVerdict, Written};
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

/// One direction's data and how a batch of it is handed to the observers: the target's output
/// is recorded (nothing to judge), the user's input is judged (a [`ClientVerdict`] per chunk)
/// and recorded. Both are handed over the same way ([`ReadAhead`], [`record`]).
pub(super) trait Direction {
    /// What the observers say of each chunk, acted on once its batch is recorded.
    type Verdict: Send;

    /// The data a message of this direction carries (with whether it is extended data), or
    /// none for every other message.
    fn data(message: &ChannelMsg) -> Option<(bytes::Bytes, bool)>;

    /// Hands `batch` to the observers: resolves once they have it, with a verdict per chunk
    /// and the write to wait for before any of them is forwarded.
    fn hand_over(
        tap: &SessionTap,
        batch: Vec<(bytes::Bytes, bool)>,
    ) -> impl Future<Output = Result<(Vec<Self::Verdict>, Written), String>> + Send;
}

/// The target's output to the user (downloads).
#[derive(Default)]
pub(super) struct FromTarget;

impl Direction for FromTarget {
    type Verdict = ();

    fn data(message: &ChannelMsg) -> Option<(bytes::Bytes, bool)> {
        match message {
            ChannelMsg::Data { data } => Some((data.clone(), false)),
            ChannelMsg::ExtendedData { data, .. } => Some((data.clone(), true)),
            _ => None,
        }
    }

    async fn hand_over(
        tap: &SessionTap,
        batch: Vec<(bytes::Bytes, bool)>,
    ) -> Result<(Vec<()>, Written), String> {
        let count = batch.len();
        let written = tap.target_handed(&streams(batch)).await?;
        Ok((vec![(); count], written))
    }
}

/// The user's input to the target (uploads, exec stdin, a shell's keys). A client's extended
/// data is not input: it is neither recorded nor forwarded.
#[derive(Default)]
pub(super) struct FromUser;

impl Direction for FromUser {
    type Verdict = ClientVerdict;

    fn data(message: &ChannelMsg) -> Option<(bytes::Bytes, bool)> {
        match message {
            ChannelMsg::Data { data } => Some((data.clone(), false)),
            _ => None,
        }
    }

    async fn hand_over(
        tap: &SessionTap,
        batch: Vec<(bytes::Bytes, bool)>,
    ) -> Result<(Vec<ClientVerdict>, Written), String> {
        let batch: Vec<bytes::Bytes> = batch.into_iter().map(|(data, _)| data).collect();
        tap.clients_handed(&batch).await
    }
}

/// Messages taken from a channel ahead of the one being handled. The data at the front was
/// handed to the observers already, in batches (`handed`): each batch's messages are forwarded
/// only once its write is done, so they are not recorded twice, and everything is still
/// forwarded in order, each piece only once recorded.
///
/// At most two batches are read ahead at a time: the one being recorded and the one handed over
/// behind it (see [`record`]), each at most [`READ_AHEAD_BYTES`].
pub(super) struct ReadAhead<D: Direction> {
    queue: std::collections::VecDeque<ChannelMsg>,
    /// The batches of data messages at the queue's front handed over already, oldest first:
    /// the verdicts of their messages still queued, and the write to wait for before the first
    /// of them is forwarded (none once taken, or when the batch is the one being handled).
    handed: std::collections::VecDeque<(std::collections::VecDeque<D::Verdict>, Option<Written>)>,
    closed: bool,
}

impl<D: Direction> Default for ReadAhead<D> {
    fn default() -> Self {
        Self::after(Vec::new())
    }
}

/// What [`ReadAhead::pop`] gives: the message, its verdict if it was handed to the observers
/// already, and the write to wait for before forwarding it (with the first message of a batch
/// handed over ahead).
pub(super) type Ahead<V> = (ChannelMsg, Option<V>, Option<Written>);

impl<D: Direction> ReadAhead<D> {
    /// Starting with `held`: messages read before, to be handled first, in order.
    pub(super) fn after(held: Vec<ChannelMsg>) -> Self {
        Self {
            queue: held.into(),
            handed: std::collections::VecDeque::new(),
            closed: false,
        }
    }

    /// The next message read ahead.
    pub(super) fn pop(&mut self) -> Option<Ahead<D::Verdict>> {
        let message = self.queue.pop_front()?;
        let Some((verdicts, written)) = self.handed.front_mut() else {
            return Some((message, None, None));
        };
        let written = written.take();
        let verdict = verdicts.pop_front();
        if verdicts.is_empty() {
            self.handed.pop_front();
        }
        Some((message, verdict, written))
    }

    /// Whether the channel has ended and nothing read ahead is left.
    pub(super) fn done(&self) -> bool {
        self.closed && self.queue.is_empty()
    }

    /// The data messages right behind those handed over (reading, without waiting, what
    /// `from` already holds if nothing else is queued). The caller hands them over as one batch
    /// and says so with [`Self::handed`].
    pub(super) async fn data_behind(
        &mut self,
        from: &mut impl TargetReader,
    ) -> Vec<(bytes::Bytes, bool)> {
        let handed: usize = self.handed.iter().map(|(verdicts, _)| verdicts.len()).sum();
        if self.queue.len() == handed && !self.closed {
            let mut bytes = 0usize;
            while bytes < READ_AHEAD_BYTES && self.queue.len() - handed < READ_AHEAD_MESSAGES {
                // Polls once: a message that is there, or nothing (`wait` is cancel-safe).
                match poll_once(from.wait()).await {
                    Ok(Some(message)) => {
                        let size = D::data(&message).map(|(data, _)| data.len());
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
        // Within the same bounds when the queue held them already (what the user sent before
        // the session started).
        let (mut bytes, mut count) = (0usize, 0usize);
        self.queue
            .iter()
            .skip(handed)
            .map_while(D::data)
            .take_while(|(data, _)| {
                let fits = bytes < READ_AHEAD_BYTES && count < READ_AHEAD_MESSAGES;
                bytes += data.len();
                count += 1;
                fits
            })
            .collect()
    }

    /// The messages [`Self::data_behind`] gave were handed over, with these `verdicts` (one
    /// each); `written` is their write, to wait for before the first of them is forwarded
    /// (none: the caller waits for it itself, before it forwards the message the batch started
    /// with).
    pub(super) fn handed(&mut self, verdicts: Vec<D::Verdict>, written: Option<Written>) {
        if !verdicts.is_empty() {
            self.handed.push_back((verdicts.into(), written));
        }
    }
}

/// The target's data messages as the recording's streams.
fn streams(batch: Vec<(bytes::Bytes, bool)>) -> Vec<(Stream, bytes::Bytes)> {
    batch
        .into_iter()
        .map(|(data, stderr)| {
            let stream = if stderr {
                Stream::ErrorOutput
            } else {
                Stream::Output
            };
            (stream, data)
        })
        .collect()
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

/// Hands a data message not handed over yet to the observers, with the data behind it as one
/// batch and, when `hand_next`, the data behind that as the next batch (so that its write is
/// under way while the relay waits for this one's and forwards it); resolves once the first
/// batch is recorded, with the first message's verdict (the others wait in `ahead` with
/// theirs). Without `read_ahead` the message goes alone.
async fn record<D: Direction>(
    tap: &SessionTap,
    first: (bytes::Bytes, bool),
    read_ahead: bool,
    hand_next: bool,
    ahead: &mut ReadAhead<D>,
    from: &mut impl TargetReader,
) -> Result<D::Verdict, String> {
    let mut batch = vec![first];
    if read_ahead {
        batch.extend(ahead.data_behind(from).await);
    }
    let (verdicts, written) = hand_over::<D>(tap, batch).await?;
    let mut verdicts = verdicts.into_iter();
    let verdict = verdicts
        .next()
        .ok_or_else(|| "the observers gave no verdict on the data".to_owned())?;
    ahead.handed(verdicts.collect(), None);
    if read_ahead && hand_next {
        let next = ahead.data_behind(from).await;
        if !next.is_empty() {
            let (verdicts, written) = hand_over::<D>(tap, next).await?;
            ahead.handed(verdicts, Some(written));
        }
    }
    written.await?;
    Ok(verdict)
}

/// [`Direction::hand_over`], with one verdict for each chunk (else the read-ahead's accounting
/// would take a message handed over for one that is not).
async fn hand_over<D: Direction>(
    tap: &SessionTap,
    batch: Vec<(bytes::Bytes, bool)>,
) -> Result<(Vec<D::Verdict>, Written), String> {
    let count = batch.len();
    let (verdicts, written) = D::hand_over(tap, batch).await?;
    if verdicts.len() != count {
        return Err("the observers gave a verdict on a different number of chunks".to_owned());
    }
    Ok((verdicts, written))
}

/// The verdict of a message popped from a [`ReadAhead`] that was handed over already, once its
/// batch is recorded: the first message of a batch handed over behind the last one waits for
/// its write now (it went on while the last batch was waited for and forwarded); the others
/// were waited for with their batch.
async fn recorded<V>(verdict: V, written: Option<Written>) -> Result<V, String> {
    if let Some(written) = written {
        written.await?;
    }
    Ok(verdict)
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
        let mut ahead = ReadAhead::<FromUser>::after(pending);
        // The batch behind the one being handled is handed over before its write is waited
        // for only in sessions without a shell (exec, scp, sftp: bulk uploads); a shell's keys
        // go one batch at a time, each judged (a line a command rule holds) with the screen
        // as it is once the batch before was forwarded.
        let hand_next = !upstream_live.interactive();
        // A shell line held for an approver (`rampart_session::approval`): its approval is
        // read every tick until decided; meanwhile the user's keys go through the observers
        // (recorded) and are discarded, and a stop or the user leaving still ends the session.
        let mut awaiting_approval = false;
        let mut approval_poll = tokio::time::interval(rampart_session::approval::POLL_INTERVAL);
        approval_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = match ahead.pop() {
                Some(next) => Some(next),
                None if ahead.done() => None,
                None => tokio::select! {
                    message = from_user.wait() => message.map(|message| (message, None, None)),
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
            let Some((message, handed, written)) = message else {
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
                    // one hand-off, then each chunk forwarded in order as its verdict says,
                    // once its batch is recorded.
                    let verdict = match handed {
                        None => {
                            record(
                                &upstream_tap,
                                (data.clone(), false),
                                true,
                                hand_next,
                                &mut ahead,
                                &mut from_user,
                            )
                            .await
                        }
                        Some(verdict) => recorded(verdict, written).await,
                    };
                    let verdict = match verdict {
                        Ok(verdict) => verdict,
                        Err(err) => {
                            tracing::error!(error = %err, "recording failed; ending the session");
                            if let Ok(mut slot) = failure.lock() {
                                *slot = Some(err);
                            }
                            break;
                        }
                    };
                    'chunk: {
                        if !verdict.replies.is_empty()
                            && replies.send(verdict.replies).await.is_err()
                        {
                            break 'chunk Err(russh::Error::SendError);
                        }
                        let sent = match verdict.forward {
                            None => to_target.data_bytes(data).await,
                            Some(passed) if passed.is_empty() => Ok(()),
                            Some(passed) => to_target.data_bytes(passed.into()).await,
                        };
                        let Some(hold) = verdict.hold else {
                            break 'chunk sent;
                        };
                        if sent.is_err() {
                            break 'chunk sent;
                        }
                        match upstream_tap.hold(&hold).await {
                            Ok(line) => {
                                awaiting_approval = true;
                                approval_poll.reset();
                                replies
                                    .send(format!("\r\n{line}\r\n").into_bytes())
                                    .await
                                    .map_err(|_| russh::Error::SendError)
                            }
                            Err(err) => {
                                tracing::error!(error = %err, "cannot hold a line; ending the session");
                                if let Ok(mut slot) = failure.lock() {
                                    *slot = Some(err);
                                }
                                Err(russh::Error::SendError)
                            }
                        }
                    }
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
    let mut ahead = ReadAhead::<FromTarget>::default();
    loop {
        let next = match early.next() {
            Some(message) => Some((message, None, None)),
            None => ahead.pop(),
        };
        let (message, handed, written) = match next {
            Some(next) => next,
            None if ahead.done() => {
                target_lost = exit_status.is_none();
                break;
            }
            None => tokio::select! {
                message = from_target.wait() => match message {
                    Some(message) => (message, None, None),
                    None => {
                        // Ended without a close or an exit status: the connection to the
                        // target (or the gateway or agent carrying it) is gone.
                        target_lost = exit_status.is_none();
                        break;
                    }
                },
                user_side = &mut upstream, if !upstream_done => {
                    upstream_done = true;
                    let failed = upstream_failure.lock().map_or(true, |slot| slot.is_some());
                    if failed {
                        // The user's input could not be recorded (or a held line not followed):
                        // the session ends now, as when the target's output cannot be recorded,
                        // instead of waiting for a target that waits for input that never comes.
                        let line = "\r\nrampart: the session recording failed, so the session is ended\r\n";
                        let _ = to_user
                            .extended_data_bytes(1, line.as_bytes().to_vec())
                            .await;
                        break;
                    }
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
        // Nothing is read ahead of what the target sent before the session started.
        let read_ahead = early.len() == 0;
        let recorded = match (FromTarget::data(&message), handed) {
            (Some(first), None) => {
                record(&tap, first, read_ahead, true, &mut ahead, &mut from_target).await
            }
            // Nothing more is handed over behind a batch handed over ahead, so the queue
            // empties after it and the stop, the notices and Rampart's own replies are looked
            // at between two pairs of batches at least, as they would be without reading ahead.
            (_, Some(())) => recorded((), written).await,
            (None, None) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A target whose messages are all there already.
    struct Ready(std::collections::VecDeque<ChannelMsg>);

    impl TargetReader for Ready {
        fn wait(&mut self) -> impl Future<Output = Option<ChannelMsg>> + Send {
            std::future::ready(self.0.pop_front())
        }
    }

    fn data(text: &'static str) -> ChannelMsg {
        ChannelMsg::Data {
            data: bytes::Bytes::from_static(text.as_bytes()),
        }
    }

    /// `count` data messages of `size` bytes each.
    fn chunks(size: usize, count: usize) -> std::collections::VecDeque<ChannelMsg> {
        let chunk = bytes::Bytes::from(vec![0u8; size]);
        (0..count)
            .map(|_| ChannelMsg::Data {
                data: chunk.clone(),
            })
            .collect()
    }

    fn texts(batch: &[(bytes::Bytes, bool)]) -> Vec<&[u8]> {
        batch.iter().map(|(data, _)| data.as_ref()).collect()
    }

    #[tokio::test]
    async fn a_batch_handed_over_behind_the_last_is_read_after_it_and_waited_for_once() {
        let mut target = Ready([data("one"), data("two"), ChannelMsg::Eof, data("three")].into());
        let mut ahead = ReadAhead::<FromTarget>::default();
        // The batch being recorded: what the target holds up to its first other message.
        let first = ahead.data_behind(&mut target).await;
        assert_eq!(texts(&first), [b"one".as_ref(), b"two"]);
        ahead.handed(vec![(); first.len()], None);
        // Behind it, nothing is handed over past the end of file; what comes after it is read
        // only once the queue holds nothing that is not handed over.
        assert!(ahead.data_behind(&mut target).await.is_empty());
        let written: Written = Box::pin(std::future::ready(Ok(())));
        ahead.handed(Vec::new(), Some(written));
        let popped: Vec<(bool, bool)> = std::iter::from_fn(|| ahead.pop())
            .map(|(_, handed, written)| (handed.is_some(), written.is_some()))
            .collect();
        // "one" and "two" handed over (waited for with their batch), the end of file not.
        assert_eq!(popped, [(true, false), (true, false), (false, false)]);

        // Next round: "three" is read and handed over as the batch behind; its first message
        // carries the write to wait for, once.
        let behind = ahead.data_behind(&mut target).await;
        assert_eq!(texts(&behind), [b"three".as_ref()]);
        let written: Written = Box::pin(std::future::ready(Ok(())));
        ahead.handed(vec![(); behind.len()], Some(written));
        let (message, handed, written) = ahead.pop().unwrap();
        assert!(matches!(message, ChannelMsg::Data { .. }) && handed.is_some());
        assert!(written.unwrap().await.is_ok());
        assert!(ahead.pop().is_none());
        // The target has nothing more and says so.
        assert!(ahead.data_behind(&mut target).await.is_empty());
        assert!(ahead.done());
    }

    #[tokio::test]
    async fn two_batches_at_most_are_read_ahead_each_within_the_limit() {
        let many = READ_AHEAD_BYTES / (64 * 1024) * 3;
        let mut target = Ready(chunks(64 * 1024, many));
        let mut ahead = ReadAhead::<FromTarget>::default();
        let first = ahead.data_behind(&mut target).await;
        let size =
            |batch: &[(bytes::Bytes, bool)]| batch.iter().map(|(d, _)| d.len()).sum::<usize>();
        assert_eq!(size(&first), READ_AHEAD_BYTES);
        ahead.handed(vec![(); first.len()], None);
        let second = ahead.data_behind(&mut target).await;
        assert_eq!(size(&second), READ_AHEAD_BYTES);
        ahead.handed(
            vec![(); second.len()],
            Some(Box::pin(std::future::ready(Ok(())))),
        );
        // Both handed over: nothing more is read until they are taken.
        assert_eq!(ahead.queue.len(), first.len() + second.len());
        assert_eq!(target.0.len(), many - ahead.queue.len());
    }

    /// A verdict as an observer that rewrites the chunk to `text` gives it.
    fn rewritten(text: &str) -> ClientVerdict {
        ClientVerdict {
            forward: Some(text.as_bytes().to_vec()),
            ..ClientVerdict::default()
        }
    }

    fn forwards(popped: Option<Ahead<ClientVerdict>>) -> (Option<Vec<u8>>, bool) {
        let (_, verdict, written) = popped.unwrap();
        (
            verdict.and_then(|verdict| verdict.forward),
            written.is_some(),
        )
    }

    #[tokio::test]
    async fn the_users_input_read_before_the_session_goes_first_and_each_chunk_keeps_its_verdict() {
        // Sent before the session started: handled first, in order, before what the channel
        // holds; the client's extended data is not input and ends the batch.
        let pending = vec![data("a"), data("b")];
        let mut user = Ready(
            [
                data("c"),
                ChannelMsg::ExtendedData {
                    data: bytes::Bytes::from_static(b"x"),
                    ext: 1,
                },
                data("d"),
            ]
            .into(),
        );
        let mut ahead = ReadAhead::<FromUser>::after(pending);
        // The first message is popped and handled; the batch is it and what is behind it.
        let (first, verdict, _) = ahead.pop().unwrap();
        assert!(matches!(first, ChannelMsg::Data { .. }) && verdict.is_none());
        let behind = ahead.data_behind(&mut user).await;
        assert_eq!(texts(&behind), [b"b".as_ref()]);
        ahead.handed(vec![rewritten("B")], None);
        // The batch behind it: the channel is read only now, up to the extended data.
        let next = ahead.data_behind(&mut user).await;
        assert_eq!(texts(&next), [b"c".as_ref()]);
        let written: Written = Box::pin(std::future::ready(Ok(())));
        ahead.handed(vec![rewritten("C")], Some(written));
        // Each chunk comes with its own verdict, in order; the second batch's write is waited
        // for once, with its first message; the extended data was handed over to nobody.
        assert_eq!(forwards(ahead.pop()), (Some(b"B".to_vec()), false));
        assert_eq!(forwards(ahead.pop()), (Some(b"C".to_vec()), true));
        let (extended, verdict, written) = ahead.pop().unwrap();
        assert!(matches!(extended, ChannelMsg::ExtendedData { .. }));
        assert!(verdict.is_none() && written.is_none());
        assert!(ahead.pop().is_none());
        assert_eq!(user.0.len(), 1);
    }

    #[tokio::test]
    async fn the_users_data_is_read_ahead_two_batches_at_most_each_within_the_limit() {
        let many = READ_AHEAD_BYTES / (32 * 1024) * 3;
        let mut user = Ready(chunks(32 * 1024, many));
        let mut ahead = ReadAhead::<FromUser>::default();
        let size =
            |batch: &[(bytes::Bytes, bool)]| batch.iter().map(|(d, _)| d.len()).sum::<usize>();
        let first = ahead.data_behind(&mut user).await;
        assert_eq!(size(&first), READ_AHEAD_BYTES);
        let verdicts = |batch: &[(bytes::Bytes, bool)]| {
            batch.iter().map(|_| ClientVerdict::default()).collect()
        };
        ahead.handed(verdicts(&first), None);
        let second = ahead.data_behind(&mut user).await;
        assert_eq!(size(&second), READ_AHEAD_BYTES);
        ahead.handed(
            verdicts(&second),
            Some(Box::pin(std::future::ready(Ok(())))),
        );
        // Both handed over (`record` hands over no third): nothing more was read.
        assert_eq!(ahead.queue.len(), first.len() + second.len());
        assert_eq!(user.0.len(), many - ahead.queue.len());
        // The first batch's messages come with their verdicts and no write (it is waited for
        // with the message the batch started with); the second's first carries its write.
        for _ in 0..first.len() {
            let (_, verdict, written) = ahead.pop().unwrap();
            assert!(verdict.is_some() && written.is_none());
        }
        let (_, verdict, written) = ahead.pop().unwrap();
        assert!(verdict.is_some() && written.is_some());
    }

    #[tokio::test]
    async fn what_the_user_sent_before_the_session_is_handed_over_within_the_same_bounds() {
        let chunk = 32 * 1024;
        let pending = chunks(chunk, READ_AHEAD_BYTES / chunk * 2);
        let mut ahead = ReadAhead::<FromUser>::after(pending.into());
        let mut user = Ready(std::collections::VecDeque::new());
        let first = ahead.data_behind(&mut user).await;
        assert_eq!(first.len() * chunk, READ_AHEAD_BYTES);
        ahead.handed(
            first.iter().map(|_| ClientVerdict::default()).collect(),
            None,
        );
        let second = ahead.data_behind(&mut user).await;
        assert_eq!(second.len() * chunk, READ_AHEAD_BYTES);
    }
}
