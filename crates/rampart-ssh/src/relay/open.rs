//! Starting a session: authorize (`target::resolve`), start it through the session core with
//! the observers this kind of session needs (recording, record and live registration, or a
//! refusal), then connect, open the matching channel on the target and replay the user's
//! requests there, or, for a Telnet device, log in there (`super::telnet`): [`TargetSide`] is
//! that choice. A failure after the start ends the session through its guard.

use super::SessionContext;
use super::requests::{PtyRequest, Start, scp_lookalike};
use super::telnet::{self, TelnetTarget};
use crate::login::TargetSpec;
use crate::target::{self, Refusal, Resolved, TargetConnection};
use rampart_audit::CastHeader;
use rampart_audit::sftp::SftpDirections;
use rampart_core::Action;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::rules::RuleSet;
use rampart_session::command_control::{self, ApprovalSettings, ShellRules};
use rampart_session::observe::Observer;
use rampart_session::observers::{CommandObserver, FileObserver};
use rampart_session::{RecordingPlan, SessionGuard, StartRequest};
use russh::{Channel, ChannelMsg};
use std::sync::Arc;
use time::OffsetDateTime;

/// A target ready to relay, with its started session.
pub(super) struct Opened {
    pub(super) target: TargetSide,
    pub(super) guard: SessionGuard,
}

/// The target of a session: where a shell's bytes go is chosen here, per the asset's
/// protocol, and nowhere else.
pub(super) enum TargetSide {
    /// A channel on an SSH target, with what it sent before it answered the start request.
    Ssh {
        channel: Channel<russh::client::Msg>,
        early: Vec<ChannelMsg>,
    },
    /// A Telnet device, logged in.
    Telnet(TelnetTarget),
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
    // A Telnet device carries an interactive shell and nothing else.
    let over_telnet = telnet::is_telnet_asset(&resolved.asset);
    if over_telnet && !matches!(start, Start::Shell) {
        return Err(format!(
            "{} is reached over Telnet: only an interactive shell goes there (ssh -t {}@{account}@BASTION)",
            resolved.asset.name, context.user.name
        ));
    }

    // Terminal sessions and commands are recorded; file transfers and forwards are logged as
    // sessions. The core creates the recording, the record and the live registration, in that
    // order, before anything is dialled: a session that cannot be recorded is refused before
    // it exists.
    let recording = match start {
        Start::Shell | Start::Exec(_) => {
            let command = match start {
                Start::Exec(command) => Some(String::from_utf8_lossy(command).into_owned()),
                _ => None,
            };
            let (width, height) = pty.map_or((80, 24), |p| (p.cols, p.rows));
            let title = format!("{} as {account}", context.user.name);
            let header =
                CastHeader::new(width, height, pty.map(|p| p.term.as_str()), command, title);
            Some(RecordingPlan {
                header,
                raw_streams: matches!(start, Start::Exec(_)),
            })
        }
        _ => None,
    };
    // Command rules: an exec is checked whole before its session starts, a shell at each Enter.
    let authorized = context.authorized(&resolved);
    let command_rules = match start {
        Start::Shell | Start::Exec(_) => {
            command_control::rules_for(&context.store, &authorized).await?
        }
        _ => RuleSet::default(),
    };
    let mut exec_findings = Vec::new();
    match start {
        Start::Exec(command) if !command_rules.is_empty() => {
            let line = String::from_utf8_lossy(command);
            let decision = command_rules.check(&line);
            exec_findings = command_control::findings(&line, &decision);
            if let Some(refusal) = decision.refusal() {
                command_control::record(&context.store, &authorized, None, &exec_findings).await?;
                return Err(refusal.trim_start_matches("rampart: ").to_owned());
            }
        }
        Start::Shell if pty.is_none() && !command_rules.is_empty() => {
            return Err(format!(
                "command rules apply to {account}: a shell needs a terminal (ssh -t), or run \
                 the command as ssh {account} 'COMMAND'"
            ));
        }
        _ => {}
    }
    let mut inspectors: Vec<Box<dyn Observer>> = Vec::new();
    match (start, pty) {
        (Start::Shell, Some(pty)) => {
            // Lines `approve` rules match wait for an approver (`rules.approval_timeout`).
            let rules = ShellRules::with_approvals(
                command_rules,
                ApprovalSettings {
                    labels: authorized.asset.labels.clone(),
                    timeout: context.live.approval_timeout(),
                },
            );
            inspectors.push(Box::new(CommandObserver::with_shell_rules(
                pty.cols, pty.rows, rules,
            )));
        }
        (Start::Subsystem(name), _) if name == "sftp" => {
            // The directions the one account of the session allows; the rest is refused.
            let directions = SftpDirections {
                read: resolved.actions.contains(&Action::SftpRead),
                write: resolved.actions.contains(&Action::SftpWrite),
            };
            inspectors.push(Box::new(FileObserver::sftp(directions)));
        }
        (Start::Scp(command), _) => inspectors.push(Box::new(FileObserver::scp(command.clone()))),
        _ => {}
    }
    let core = context.core();
    let guard = core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind,
            interactive: matches!(start, Start::Shell),
            command: match start {
                Start::Exec(command) => Some(String::from_utf8_lossy(command).into_owned()),
                Start::Scp(command) => Some(command.command()),
                _ => None,
            },
            recording,
            inspectors,
        })
        .await
        .map_err(|refused| refused.to_string())?;
    if let Err(err) = command_control::record(
        &context.store,
        &authorized,
        Some(guard.id()),
        &exec_findings,
    )
    .await
    {
        return Err(fail_early(guard, err).await);
    }
    if let Start::Exec(command) = start
        && let Some(alert) = command_control::escalation_alert(
            &String::from_utf8_lossy(command),
            &guard.id().to_string(),
            authorized.user.name.as_str(),
            &authorized.account_ref(),
        )
        && let Err(err) = context.store.record_event(&actor, &alert).await
    {
        return Err(fail_early(guard, format!("cannot write the audit trail ({err})")).await);
    }
    if let (Start::Shell | Start::Exec(_), Some(pty)) = (start, pty) {
        // A terminal: its screen is kept for watchers who join late.
        guard.tap().live().terminal(pty.cols, pty.rows);
    }
    // From here on a failure ends the session through its guard: it seals what was recorded
    // (the header, at least) and closes the record with the reason.
    async fn fail(guard: SessionGuard, why: String) -> String {
        guard.end(why.clone(), None).await;
        why
    }

    if over_telnet {
        let opened = telnet::open(context, &resolved, &authorized, guard.id(), pty).await;
        return match opened {
            Ok(target) => Ok(Opened {
                target: TargetSide::Telnet(target),
                guard,
            }),
            Err(failure) => {
                if failure.target_failed {
                    let event = AuditEvent::TargetConnectionFailed {
                        session: guard.id().to_string(),
                        target: account.clone(),
                        reason: failure.message.clone(),
                    };
                    if let Err(record) = context.store.record_event(&actor, &event).await {
                        tracing::error!(error = %record, "cannot record a failed target connection");
                    }
                }
                Err(fail(guard, failure.message).await)
            }
        };
    }

    // One deadline for the target to answer, from connecting to the start request's answer:
    // meanwhile the user's messages wait in the channel's bounded queue.
    let answer_timeout = context.target_answer_timeout;
    let deadline = tokio::time::Instant::now() + answer_timeout;
    let connecting = tokio::time::timeout_at(
        deadline,
        target_connection(context, &resolved, &account, &actor),
    )
    .await
    .unwrap_or_else(|_| {
        Err(target::TargetError::Unreachable {
            target: account.clone(),
            why: ReplayError::Timeout(answer_timeout).to_string(),
        })
    });
    let connection = match connecting {
        Ok(connection) => connection,
        Err(err) => {
            let event = AuditEvent::TargetConnectionFailed {
                session: guard.id().to_string(),
                target: account.clone(),
                reason: err.to_string(),
            };
            if let Err(record) = context.store.record_event(&actor, &event).await {
                tracing::error!(error = %record, "cannot record a failed target connection");
            }
            return Err(fail(guard, err.to_string()).await);
        }
    };
    if let Err(err) = context
        .store
        .set_session_route(guard.id(), &connection.route.to_string())
        .await
    {
        return Err(fail(guard, format!("cannot record the session's route ({err})")).await);
    }
    let opening = tokio::time::timeout_at(deadline, connection.handle.channel_open_session())
        .await
        .unwrap_or(Err(russh::Error::ConnectionTimeout));
    let channel = match opening {
        Ok(channel) => channel,
        Err(err) => {
            return Err(fail(
                guard,
                format!("the target {account} refused a new session ({err})"),
            )
            .await);
        }
    };
    let mut channel = channel;
    // Meanwhile the user's messages wait in the channel's bounded queue: the target gets a
    // deadline to answer, not forever.
    let answered = tokio::time::timeout_at(deadline, replay(&mut channel, start, pty, env))
        .await
        .unwrap_or_else(|_| Err(ReplayError::Timeout(answer_timeout)));
    match answered {
        Ok(Some(early)) => Ok(Opened {
            target: TargetSide::Ssh { channel, early },
            guard,
        }),
        Ok(None) => Err(fail(guard, format!("the target {account} refused the request")).await),
        Err(err) => Err(fail(guard, format!("the target {account} failed ({err})")).await),
    }
}

/// Ends a session that failed before anything was dialled; returns the line the user sees.
async fn fail_early(guard: SessionGuard, why: String) -> String {
    guard.end(why.clone(), None).await;
    why
}

/// The cached connection for this account, or a new one.
pub(super) async fn target_connection(
    context: &SessionContext,
    resolved: &Resolved,
    account: &str,
    actor: &Actor,
) -> Result<Arc<TargetConnection>, target::TargetError> {
    let slot = context
        .targets
        .0
        .lock()
        .await
        .entry(account.to_owned())
        .or_default()
        .clone();
    let mut cached = slot.lock().await;
    if let Some(existing) = cached.as_ref()
        && !existing.handle.is_closed()
    {
        return Ok(existing.clone());
    }
    let connection = Arc::new(
        target::connect_with(
            &context.dialer,
            &context.store,
            resolved,
            actor,
            context.target_host_keys,
        )
        .await?,
    );
    *cached = Some(connection.clone());
    Ok(connection)
}

/// What the target may send before it answers the start request, kept to pass on after.
pub(super) const MAX_EARLY_MESSAGES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
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
