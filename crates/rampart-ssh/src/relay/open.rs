//! Starting a session: authorize, record, register, then open the matching channel on the
//! target and replay the user's requests there.

use super::SessionContext;
use super::requests::{PtyRequest, Start, scp_lookalike};
use super::tap::{FileObserver, Tap};
use crate::live::SessionGrant;
use crate::login::TargetSpec;
use crate::target::{self, Refusal, Resolved, TargetConnection};
use rampart_audit::commands::CommandLog;
use rampart_audit::scp::ScpObserver;
use rampart_audit::sftp::{SftpDirections, SftpObserver};
use rampart_audit::{CastHeader, LiveRecorder, Recorder, RecordingOptions};
use rampart_core::Action;
use rampart_core::audit::{Actor, AuditEvent, RecordingAnchor};
use rampart_store::{NewSession, SessionEnd};
use russh::{Channel, ChannelMsg};
use std::sync::Arc;
use time::OffsetDateTime;

/// A target channel ready to relay, with its session record and recorder.
pub(super) struct Opened {
    pub(super) account: rampart_core::AccountRef,
    pub(super) channel: Channel<russh::client::Msg>,
    pub(super) session_id: uuid::Uuid,
    pub(super) early: Vec<ChannelMsg>,
    pub(super) tap: Arc<Tap>,
    /// What the session was allowed as, for live enforcement.
    pub(super) grant: SessionGrant,
}

/// Authorizes the request, records the session and opens the matching channel on the target.
/// Every failure comes back as the one line the user sees.
pub(super) async fn open_target_channel(
    context: &SessionContext,
    spec: &TargetSpec,
    start: &Start,
    pty: Option<&PtyRequest>,
    env: &[(String, String)],
) -> Result<Opened, String> {
    let actor = Actor::User {
        name: context.user.name.to_string(),
    };
    let (actions, kind) = start.actions()?;
    let now = OffsetDateTime::now_utc();
    // One account for the whole session, allowed for at least one of the actions (an SFTP
    // session then keeps to the directions that account allows).
    let resolved = match target::resolve(
        &context.store,
        &context.user,
        spec,
        &actions,
        now,
        context.mfa,
    )
    .await
    {
        Ok(resolved) => resolved,
        Err(Refusal { target, message }) => {
            let message = match scp_lookalike(start) {
                Some(why) => format!("{message} ({why})"),
                None => message,
            };
            let words: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
            let event = AuditEvent::AccessDenied {
                user: context.user.name.to_string(),
                target,
                action: words.join(","),
                reason: message.clone(),
                source: context.source.clone(),
            };
            if let Err(err) = context.store.record_event(&actor, &event).await {
                tracing::error!(error = %err, "cannot record a denial");
            }
            return Err(message);
        }
    };
    let account = resolved.account_ref().to_string();

    // Terminal sessions and commands are recorded; file transfers and forwards are logged as
    // sessions. The recording is created first: a session that cannot be recorded is refused
    // before it exists.
    let session_id = rampart_store::new_session_id();
    let refused = "the session cannot be recorded, so it is refused".to_owned();
    let recorder = match start {
        Start::Shell | Start::Exec(_) if resolved.rules.record => {
            let command = match start {
                Start::Exec(command) => Some(String::from_utf8_lossy(command).into_owned()),
                _ => None,
            };
            let (width, height) = pty.map_or((80, 24), |p| (p.cols, p.rows));
            let title = format!("{} as {account}", context.user.name);
            let header =
                CastHeader::new(width, height, pty.map(|p| p.term.as_str()), command, title);
            // A command's input and output are kept byte for byte, in full unless the
            // deployment set a cap.
            let options = RecordingOptions {
                raw_streams: matches!(start, Start::Exec(_)),
                cap: context.evidence.recording.exec_cap,
            };
            match Recorder::create_with(&context.evidence.dir, session_id, &header, options) {
                Ok(recorder) => Some(recorder),
                Err(err) => {
                    tracing::error!(error = %err, "cannot create a recording; refusing the session");
                    let event = AuditEvent::RecordingFailed {
                        session: session_id.to_string(),
                        reason: err.to_string(),
                    };
                    if let Err(record) = context.store.record_event(&actor, &event).await {
                        tracing::error!(error = %record, "cannot record a recording failure");
                    }
                    return Err(refused);
                }
            }
        }
        _ => None,
    };
    // Fail closed: no session starts without its record either.
    let session = NewSession {
        id: session_id,
        user: context.user.name.to_string(),
        asset: resolved.asset.name.to_string(),
        account: resolved.account.to_string(),
        kind: kind.to_owned(),
        source_addr: context.source.clone(),
        grant: resolved.grant,
        recorded: recorder.is_some(),
        recording_cap: match start {
            Start::Exec(_) if recorder.is_some() => context.evidence.recording.exec_cap,
            _ => None,
        },
    };
    if let Err(err) = context.store.start_session(&session).await {
        tracing::error!(error = %err, "cannot record a session start; refusing it");
        if let Some(recorder) = recorder {
            recorder.discard();
        }
        return Err(refused);
    }
    let fail = |why: String, recording: Option<RecordingAnchor>| async {
        let end = SessionEnd {
            reason: why.clone(),
            recording,
            ..SessionEnd::default()
        };
        if let Err(err) = context.store.end_session(session_id, &end).await {
            tracing::error!(error = %err, "cannot record a failed session");
        }
        why
    };
    // The writer thread starts once the session exists.
    let recorder = match recorder
        .map(|recorder| LiveRecorder::start(recorder, context.evidence.recording.sync_interval))
    {
        Some(Err(err)) => {
            tracing::error!(error = %err, "cannot start a recording's writer; refusing the session");
            return Err(fail(refused, None).await);
        }
        Some(Ok(live)) => Some(live),
        None => None,
    };
    let commands = match (start, pty) {
        (Start::Shell, Some(pty)) => Some(CommandLog::new(pty.cols, pty.rows)),
        _ => None,
    };
    let files = match start {
        Start::Subsystem(name) if name == "sftp" => {
            // The directions the one account of the session allows; the rest is refused.
            let directions = SftpDirections {
                read: resolved.actions.contains(&Action::SftpRead),
                write: resolved.actions.contains(&Action::SftpWrite),
            };
            Some(FileObserver::Sftp(SftpObserver::with_directions(
                directions,
            )))
        }
        Start::Scp(command) => Some(FileObserver::Scp(ScpObserver::new(command.clone()))),
        _ => None,
    };
    let tap = Arc::new(Tap::new(recorder, commands, files));
    // From here on a failure also seals what was recorded (the header, at least).
    let fail_recorded = |why: String| {
        let tap = tap.clone();
        let key = context.evidence.key.clone();
        async move {
            let recording = tap.finish(&key, None).await.unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot seal the recording of a failed session");
                None
            });
            fail(why, recording).await
        }
    };

    let connection = match target_connection(context, &resolved, &account, &actor).await {
        Ok(connection) => connection,
        Err(err) => {
            let event = AuditEvent::TargetConnectionFailed {
                session: session_id.to_string(),
                target: account.clone(),
                reason: err.to_string(),
            };
            if let Err(record) = context.store.record_event(&actor, &event).await {
                tracing::error!(error = %record, "cannot record a failed target connection");
            }
            return Err(fail_recorded(err.to_string()).await);
        }
    };
    let opening = tokio::time::timeout(
        TARGET_ANSWER_TIMEOUT,
        connection.handle.channel_open_session(),
    )
    .await
    .unwrap_or(Err(russh::Error::ConnectionTimeout));
    let channel = match opening {
        Ok(channel) => channel,
        Err(err) => {
            return Err(fail_recorded(format!(
                "the target {account} refused a new session ({err})"
            ))
            .await);
        }
    };
    let mut channel = channel;
    // Meanwhile the user's messages wait in the channel's bounded queue: the target gets a
    // deadline to answer, not forever.
    let answered =
        tokio::time::timeout(TARGET_ANSWER_TIMEOUT, replay(&mut channel, start, pty, env))
            .await
            .unwrap_or_else(|_| Err(ReplayError::Timeout));
    match answered {
        Ok(Some(early)) => Ok(Opened {
            account: resolved.account_ref(),
            channel,
            session_id,
            early,
            tap,
            grant: SessionGrant {
                user: context.user.name.clone(),
                auth_epoch: context.user.auth_epoch,
                mfa: context.mfa,
                asset: resolved.asset.name.clone(),
                account: resolved.account.clone(),
                actions: resolved.actions.clone(),
                interactive: matches!(start, Start::Shell),
                idle_timeout: resolved.rules.idle_timeout,
                max_duration: resolved.rules.max_duration,
                source: context.source_ip,
            },
        }),
        Ok(None) => Err(fail_recorded(format!("the target {account} refused the request")).await),
        Err(err) => Err(fail_recorded(format!("the target {account} failed ({err})")).await),
    }
}

/// The cached connection for this account, or a new one.
pub(super) async fn target_connection(
    context: &SessionContext,
    resolved: &Resolved,
    account: &str,
    actor: &Actor,
) -> Result<Arc<TargetConnection>, target::TargetError> {
    let mut cache = context.targets.0.lock().await;
    if let Some(existing) = cache.get(account)
        && !existing.handle.is_closed()
    {
        return Ok(existing.clone());
    }
    let connection =
        Arc::new(target::connect(&context.store, resolved, actor, context.target_host_keys).await?);
    cache.insert(account.to_owned(), connection.clone());
    Ok(connection)
}

/// How long the target has to answer the start request.
pub(super) const TARGET_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// What the target may send before it answers the start request, kept to pass on after.
pub(super) const MAX_EARLY_MESSAGES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("no answer within {} s", TARGET_ANSWER_TIMEOUT.as_secs())]
    Timeout,
    #[error("more than {MAX_EARLY_MESSAGES} messages before it answered the request")]
    TooEarly,
}

/// Replays the user's requests on the target channel and waits for the answer to the start
/// request. Returns `None` if the target refused it, else whatever the target sent meanwhile.
pub(super) async fn replay(
    channel: &mut Channel<russh::client::Msg>,
    start: &Start,
    pty: Option<&PtyRequest>,
    env: &[(String, String)],
) -> Result<Option<Vec<ChannelMsg>>, ReplayError> {
    if let Some(pty) = pty {
        channel
            .request_pty(
                false,
                &pty.term,
                pty.cols,
                pty.rows,
                pty.pix_width,
                pty.pix_height,
                &pty.modes,
            )
            .await?;
    }
    for (name, value) in env {
        channel
            .set_env(false, name.as_str(), value.as_str())
            .await?;
    }
    match start {
        Start::Shell => channel.request_shell(true).await?,
        Start::Exec(command) => channel.exec(true, command.clone()).await?,
        // Nothing the user typed reaches the target's shell beyond the quoted path.
        Start::Scp(command) => channel.exec(true, command.command()).await?,
        Start::Subsystem(name) => channel.request_subsystem(true, name.as_str()).await?,
    }
    let mut early = Vec::new();
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => return Ok(Some(early)),
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => return Ok(None),
            Some(ChannelMsg::WindowAdjusted { .. }) => {}
            Some(_) if early.len() >= MAX_EARLY_MESSAGES => return Err(ReplayError::TooEarly),
            Some(other) => early.push(other),
        }
    }
}
