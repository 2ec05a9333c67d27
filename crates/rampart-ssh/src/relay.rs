//! The relay: one session channel from the user, one to the target, and every byte between them.
//!
//! Both directions run as their own task over window-aware channel halves, so a side that stops
//! reading stalls only its own direction: russh waits for the peer's window before sending, its
//! per-channel queues are bounded, and a full queue stops reading from that TCP connection. No
//! buffer here grows with what the peers send.
//!
//! The recorder attaches at [`Tap`]: every chunk in both directions passes through it.

use crate::live::{LiveSessions, Registration, SessionControl, SessionGrant};
use crate::login::TargetSpec;
use crate::menu::{Menu, MenuItem, MenuOutcome};
use crate::target::{self, Refusal, Resolved, TargetConnection};
use rampart_audit::commands::CommandLog;
use rampart_audit::scp::{ScpCommand, ScpObserver};
use rampart_audit::sftp::{Filtered, SftpDirections, SftpEvent, SftpObserver};
use rampart_audit::{CastHeader, LiveRecorder, Recorder, RecordingError, RecordingOptions, Stream};
use rampart_core::audit::{Actor, AuditEvent, RecordingAnchor};
use rampart_core::{AccountRef, Action, User};
use rampart_session::authorize::Snapshot;
use rampart_store::{NewSession, SessionEnd, Store};
use russh::keys::PrivateKey;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, Pty, Sig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// Target connections of one user connection, one per account, shared by its channels (sftp and
/// scp clients, and ProxyJump sessions, open several).
#[derive(Clone, Default)]
pub struct TargetCache(Arc<Mutex<HashMap<String, Arc<TargetConnection>>>>);

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
    /// requests itself, see `requests`).
    pub env: crate::requests::SharedEnvironment,
    /// How long the target has to answer the session (connect, channel, start request).
    pub target_answer_timeout: std::time::Duration,
}

/// What the user asked the channel to run.
#[derive(Debug, Clone)]
enum Start {
    Shell,
    Exec(Vec<u8>),
    /// A command that parses strictly as legacy scp; the target runs it rebuilt from this.
    Scp(ScpCommand),
    Subsystem(String),
}

impl Start {
    /// Classes a command: the scp action only for a plain legacy scp transfer, anything else is
    /// a command (`exec`), however it starts.
    fn command(command: Vec<u8>) -> Self {
        match ScpCommand::parse(&command) {
            Ok(scp) => Start::Scp(scp),
            Err(_) => Start::Exec(command),
        }
    }

    /// The actions the policy must allow, and the session kind recorded.
    fn actions(&self) -> Result<(Vec<Action>, &'static str), String> {
        match self {
            Start::Shell => Ok((vec![Action::Shell], "shell")),
            Start::Scp(_) => Ok((vec![Action::Scp], "scp")),
            Start::Exec(_) => Ok((vec![Action::Exec], "exec")),
            // Either direction opens the subsystem; the SFTP filter keeps the session to the
            // directions its account allows.
            Start::Subsystem(name) if name == "sftp" => {
                Ok((vec![Action::SftpRead, Action::SftpWrite], "sftp"))
            }
            Start::Subsystem(name) => Err(format!(
                "the {name} subsystem is not available through Rampart"
            )),
        }
    }
}

/// Why a command that starts like scp was not taken as a transfer, for its refusal.
fn scp_lookalike(start: &Start) -> Option<String> {
    match start {
        Start::Exec(command) if command.starts_with(b"scp") => {
            ScpCommand::parse(command).err().map(|err| err.to_string())
        }
        _ => None,
    }
}

/// The pseudo-terminal the user asked for, replayed on the target.
#[derive(Debug, Clone)]
struct PtyRequest {
    term: String,
    cols: u32,
    rows: u32,
    pix_width: u32,
    pix_height: u32,
    modes: Vec<(Pty, u32)>,
}

impl PtyRequest {
    fn resize(&mut self, cols: u32, rows: u32, pix_width: u32, pix_height: u32) {
        (self.cols, self.rows, self.pix_width, self.pix_height) =
            (cols, rows, pix_width, pix_height);
    }
}

/// Environment variables passed to the target; anything else could change how the target's
/// shell behaves (LD_PRELOAD, BASH_ENV) and is refused.
fn env_allowed(name: &str) -> bool {
    matches!(name, "LANG" | "LANGUAGE" | "TZ") || name.starts_with("LC_")
}

/// What one session keeps of the environment a client sends before it starts: the requests
/// come before anything is authorized, so their number and size are bounded. Beyond the bounds
/// a request is refused like a forbidden name.
const MAX_ENV_VARIABLES: usize = 32;
const MAX_ENV_NAME_BYTES: usize = 64;
const MAX_ENV_VALUE_BYTES: usize = 1024;

/// Keeps an allowed variable if it fits the bounds (a name sent again replaces its value).
/// Returns whether it was kept.
pub(crate) fn remember_env(env: &mut Vec<(String, String)>, name: String, value: String) -> bool {
    if !env_allowed(&name) || name.len() > MAX_ENV_NAME_BYTES || value.len() > MAX_ENV_VALUE_BYTES {
        return false;
    }
    if let Some(slot) = env.iter_mut().find(|(known, _)| *known == name) {
        slot.1 = value;
        return true;
    }
    if env.len() >= MAX_ENV_VARIABLES {
        return false;
    }
    env.push((name, value));
    true
}

/// Where recordings go, the key that seals them, and how they are written.
#[derive(Clone)]
pub struct Evidence {
    pub dir: PathBuf,
    pub key: Arc<PrivateKey>,
    pub recording: crate::RecordingSettings,
}

/// The attachment point for recording: sees every chunk of a session, both ways, and hands it
/// to the recording's writer; the chunk is passed on only once the writer has written it, so
/// nothing reaches the other side unrecorded. Any failure (a write, the writer, a poisoned
/// observer lock) is an error that ends the session.
struct Tap {
    from_client: AtomicU64,
    to_client: AtomicU64,
    recorder: Option<LiveRecorder>,
    /// Interactive shells only: the commands the user runs, read from the screen.
    commands: std::sync::Mutex<Option<CommandLog>>,
    /// File transfers (SFTP, legacy scp): the files moved and changed.
    files: std::sync::Mutex<Option<FileObserver>>,
}

/// Watches the file transfer protocol of a session.
enum FileObserver {
    Sftp(SftpObserver),
    Scp(ScpObserver),
}

impl FileObserver {
    /// What the client sent, filtered (SFTP sessions keep to their directions).
    fn client(&mut self, data: &[u8]) -> Result<Filtered, String> {
        let events = match self {
            FileObserver::Sftp(sftp) => return sftp.filter_client(data).map_err(|e| e.to_string()),
            FileObserver::Scp(scp) if scp.upload() => scp.feed(data).map_err(|e| e.to_string())?,
            FileObserver::Scp(_) => Vec::new(),
        };
        Ok(Filtered {
            events,
            ..Filtered::default()
        })
    }

    /// Whether Rampart may put a reply of its own into the stream to the client now.
    fn between_packets(&self) -> bool {
        match self {
            FileObserver::Sftp(sftp) => sftp.server_between_packets(),
            FileObserver::Scp(_) => true,
        }
    }

    fn target(&mut self, data: &[u8]) -> Result<Vec<SftpEvent>, String> {
        match self {
            FileObserver::Sftp(sftp) => sftp.server(data).map_err(|err| err.to_string()),
            FileObserver::Scp(scp) if !scp.upload() => {
                scp.feed(data).map_err(|err| err.to_string())
            }
            FileObserver::Scp(_) => Ok(Vec::new()),
        }
    }
}

/// Evidence the tap extracts besides the recording.
enum Observed {
    Command(String),
    File(SftpEvent),
}

impl Tap {
    fn new(
        recorder: Option<LiveRecorder>,
        commands: Option<CommandLog>,
        files: Option<FileObserver>,
    ) -> Self {
        Self {
            from_client: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            recorder,
            commands: std::sync::Mutex::new(commands),
            files: std::sync::Mutex::new(files),
        }
    }

    /// Hands `parts` to the writer in one go; returns once they are in the file.
    async fn record(&self, parts: Vec<(Stream, bytes::Bytes)>) -> Result<(), String> {
        match &self.recorder {
            Some(recorder) => recorder.streams(parts).await.map_err(|err| err.to_string()),
            None => Ok(()),
        }
    }

    /// Records input; returns what passes to the target (`None`: all of it, unchanged), what
    /// Rampart answers itself, and the file operations it completed or refused.
    async fn client_sent(&self, data: &bytes::Bytes) -> Result<(Filtered, Vec<Observed>), String> {
        self.from_client
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        with_slot(&self.commands, |log| log.input(data))?;
        // One chunk at a time: what passes to the target is decided per chunk (SFTP
        // directions), so nothing is read ahead on this side.
        self.record(vec![(Stream::Input, data.clone())]).await?;
        let mut filtered = with_slot(&self.files, |files| files.client(data))?
            .transpose()?
            .unwrap_or_default();
        let observed = std::mem::take(&mut filtered.events)
            .into_iter()
            .map(Observed::File)
            .collect();
        Ok((filtered, observed))
    }

    /// Whether a reply of Rampart's may go to the client now without breaking a packet.
    fn between_packets(&self) -> bool {
        // A failed observer ends the session anyway; until then, hold the reply back.
        with_slot(&self.files, |files| files.between_packets())
            .map(|between| between.unwrap_or(true))
            .unwrap_or(false)
    }

    /// Records output (a batch of chunks, in order; `true`: extended data, stderr); returns
    /// the commands and file operations it completed (commands are also marked in the
    /// recording).
    async fn target_sent(&self, batch: &[(bytes::Bytes, bool)]) -> Result<Vec<Observed>, String> {
        let mut parts = Vec::with_capacity(batch.len());
        for (data, stderr) in batch {
            self.to_client
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let stream = if *stderr {
                Stream::ErrorOutput
            } else {
                Stream::Output
            };
            parts.push((stream, data.clone()));
        }
        self.record(parts).await?;
        let mut observed = Vec::new();
        for (data, _) in batch {
            observed.extend(self.observe_output(data).await?);
        }
        Ok(observed)
    }

    /// The file operations or commands one chunk of output completed.
    async fn observe_output(&self, data: &bytes::Bytes) -> Result<Vec<Observed>, String> {
        if let Some(files) = with_slot(&self.files, |files| files.target(data))? {
            return Ok(files?.into_iter().map(Observed::File).collect());
        }
        let commands = with_slot(&self.commands, |log| log.output(data))?.unwrap_or_default();
        if let Some(recorder) = &self.recorder {
            for command in &commands {
                recorder
                    .marker(command)
                    .await
                    .map_err(|err| err.to_string())?;
            }
        }
        Ok(commands.into_iter().map(Observed::Command).collect())
    }

    /// Files still open when the session ends.
    fn finish_files(&self) -> Result<Vec<Observed>, String> {
        let events = with_slot(&self.files, |files| match files {
            FileObserver::Sftp(sftp) => sftp.finish(),
            FileObserver::Scp(_) => Vec::new(),
        })?;
        Ok(events
            .unwrap_or_default()
            .into_iter()
            .map(Observed::File)
            .collect())
    }

    /// Marks a line Rampart showed the user (a warning, why the session ended).
    async fn notice(&self, line: &str) {
        if let Some(recorder) = &self.recorder
            && let Err(err) = recorder.marker(line).await
        {
            tracing::warn!(error = %err, "cannot mark a notice in a recording");
        }
    }

    async fn resized(&self, cols: u32, rows: u32) -> Result<(), String> {
        if let Some(recorder) = &self.recorder {
            recorder
                .resize(cols, rows)
                .await
                .map_err(|err| err.to_string())?;
        }
        with_slot(&self.commands, |log| log.resize(cols, rows))?;
        Ok(())
    }

    /// Seals the recording, with the exit status as the last marker; returns it as the chain
    /// anchors it (`None`: the session was not recorded).
    async fn finish(
        &self,
        key: &Arc<PrivateKey>,
        exit_status: Option<i64>,
    ) -> Result<Option<RecordingAnchor>, RecordingError> {
        let Some(recorder) = &self.recorder else {
            return Ok(None);
        };
        if let Some(status) = exit_status {
            recorder.marker(&format!("exit status {status}")).await?;
        }
        recorder
            .seal(key.clone())
            .await
            .map(|sealed| Some(sealed.anchor()))
    }
}

/// Runs `use_value` on what `slot` holds, if anything. A poisoned lock (a panic while an
/// observer held it) is an error: the session ends rather than pass data unobserved.
fn with_slot<T, R>(
    slot: &std::sync::Mutex<Option<T>>,
    use_value: impl FnOnce(&mut T) -> R,
) -> Result<Option<R>, String> {
    let mut guard = slot
        .lock()
        .map_err(|_| "an observer of the session failed (poisoned lock)".to_owned())?;
    Ok(guard.as_mut().map(use_value))
}

/// Serves one session channel from the user until either side closes it.
pub async fn session_channel(context: SessionContext, mut channel: Channel<Msg>) {
    let id = channel.id();
    let handle = context.handle.clone();
    let mut pty = None;
    // Requests before the channel starts something: remembered and replayed on the target. The
    // connection's handler has answered them already (pty, env, X11, agent), in order.
    let (start, want_reply) = loop {
        let Some(message) = channel.wait().await else {
            return;
        };
        match message {
            ChannelMsg::RequestPty {
                want_reply: _,
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
            } => {
                pty = Some(PtyRequest {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: terminal_modes,
                });
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(pty) = pty.as_mut() {
                    pty.resize(col_width, row_height, pix_width, pix_height);
                }
            }
            ChannelMsg::RequestShell { want_reply } => break (Start::Shell, want_reply),
            ChannelMsg::Exec {
                want_reply,
                command,
            } => break (Start::command(command), want_reply),
            ChannelMsg::RequestSubsystem { want_reply, name } => {
                break (Start::Subsystem(name), want_reply);
            }
            // Agent and X11 forwarding are never relayed (the handler refused them).
            ChannelMsg::Eof | ChannelMsg::Close => return,
            _ => {}
        }
    };

    // Everything the handler kept arrived before the start request.
    let kept = context
        .env
        .lock()
        .map(|mut kept| std::mem::take(&mut *kept))
        .map_err(|_| ());
    let env = match kept {
        Ok(env) => env,
        Err(_) => {
            tracing::error!("the environment of a channel is unreadable (poisoned lock)");
            let _ = channel.close().await;
            return;
        }
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
        match run_menu(&context, &mut channel, pty).await {
            Some(chosen) => target_spec = TargetSpec::Account(chosen),
            None => {
                let _ = channel.exit_status(0).await;
                let _ = channel.eof().await;
                let _ = channel.close().await;
                return;
            }
        }
    }
    let opened = open_target_channel(&context, &target_spec, &start, pty.as_ref(), &env).await;
    let Opened {
        account: account_of_session,
        channel: target_channel,
        session_id,
        early,
        tap,
        grant,
    } = match opened {
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
    let info = Arc::new(SessionInfo {
        store: context.store.clone(),
        id: session_id,
        user: context.user.name.to_string(),
        account: account_of_session,
        source: context.source.clone(),
    });
    let (registration, control) = context.live.register(session_id, grant);
    let mut end = pump(
        channel,
        target_channel,
        early,
        &handle,
        tap.clone(),
        info.clone(),
        (&registration, control),
    )
    .await;
    drop(registration);
    match tap.finish_files() {
        Ok(files) => {
            if let Err(err) = info.log(files).await {
                tracing::error!(error = %err, "cannot record the files still open at the end of a session");
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot finish the file observer of a session");
        }
    }
    match tap.finish(&context.evidence.key, end.exit_status).await {
        Ok(recording) => end.recording = recording,
        Err(err) => {
            tracing::error!(session = %session_id, error = %err, "cannot seal a recording");
            end.reason = format!("{}; recording not sealed: {err}", end.reason);
        }
    }
    if end.reason.starts_with("recording failed") || end.reason.contains("recording not sealed") {
        let actor = Actor::User {
            name: context.user.name.to_string(),
        };
        let event = AuditEvent::RecordingFailed {
            session: session_id.to_string(),
            reason: end.reason.clone(),
        };
        if let Err(err) = context.store.record_event(&actor, &event).await {
            tracing::error!(error = %err, "cannot record a recording failure");
        }
    }
    if let Err(err) = context.store.end_session(session_id, &end).await {
        tracing::error!(session = %session_id, error = %err, "cannot record the end of a session");
    }
}

/// Shows the menu of accounts the user may open a shell on now, until they choose one (returned)
/// or leave (`None`). The terminal size follows window changes.
async fn run_menu(
    context: &SessionContext,
    channel: &mut Channel<Msg>,
    pty: &mut PtyRequest,
) -> Option<AccountRef> {
    let choices = shell_choices(context).await;
    let items = choices
        .iter()
        .map(|(account, asset)| MenuItem {
            label: account.to_string(),
            detail: format!("{}:{}", asset.host, asset.port),
        })
        .collect();
    let mut menu = Menu::new(context.user.name.as_str(), items, pty.cols, pty.rows);
    channel.data_bytes(menu.render().into_bytes()).await.ok()?;
    loop {
        let outcome = match channel.wait().await? {
            ChannelMsg::Data { data } => menu.input(&data),
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                pty.resize(col_width, row_height, pix_width, pix_height);
                menu.resize(col_width, row_height);
                MenuOutcome::Pending
            }
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => continue,
        };
        match outcome {
            MenuOutcome::Pending => channel.data_bytes(menu.render().into_bytes()).await.ok()?,
            MenuOutcome::Quit => {
                channel.data_bytes(&b"\x1b[H\x1b[2J"[..]).await.ok()?;
                return None;
            }
            MenuOutcome::Chosen(index) => {
                let (account, _) = choices.into_iter().nth(index)?;
                let line = format!("\x1b[H\x1b[2JConnecting to {account}...\r\n");
                channel.data_bytes(line.into_bytes()).await.ok()?;
                return Some(account);
            }
        }
    }
}

/// The accounts the user may open a shell on now, with their assets, by asset then login.
async fn shell_choices(context: &SessionContext) -> Vec<(AccountRef, rampart_core::Asset)> {
    let Ok(snapshot) = Snapshot::for_user(&context.store, &context.user.name).await else {
        tracing::error!("cannot load the menu's targets");
        return Vec::new();
    };
    let Some(access) = snapshot.as_user(&context.user.name, context.mfa, OffsetDateTime::now_utc())
    else {
        return Vec::new();
    };
    access
        .allowed_accounts(Action::Shell)
        .into_iter()
        .map(|(asset, login)| {
            (
                AccountRef {
                    login: login.clone(),
                    asset: asset.name.clone(),
                },
                asset.clone(),
            )
        })
        .collect()
}

/// What the pump needs to log commands against their session.
struct SessionInfo {
    store: Arc<Store>,
    id: uuid::Uuid,
    user: String,
    account: rampart_core::AccountRef,
    source: String,
}

impl SessionInfo {
    /// Writes commands and file operations to the audit trail; an error ends the session (fail
    /// closed).
    async fn log(&self, observed: Vec<Observed>) -> Result<(), String> {
        let (asset, login) = (self.account.asset.as_str(), self.account.login.as_str());
        let actor = Actor::User {
            name: self.user.clone(),
        };
        for item in observed {
            let written = match item {
                Observed::Command(command) => {
                    self.store
                        .record_command(self.id, &self.user, asset, login, &command)
                        .await
                }
                Observed::File(SftpEvent::Transferred {
                    path,
                    upload,
                    bytes,
                    sha256,
                }) => {
                    let event = AuditEvent::FileTransferred {
                        session: self.id.to_string(),
                        user: self.user.clone(),
                        target: self.account.to_string(),
                        path,
                        direction: if upload { "upload" } else { "download" }.to_owned(),
                        bytes,
                        sha256,
                    };
                    self.store.record_event(&actor, &event).await
                }
                Observed::File(SftpEvent::Changed {
                    operation,
                    path,
                    target,
                    succeeded,
                }) => {
                    let event = AuditEvent::FileChanged {
                        session: self.id.to_string(),
                        user: self.user.clone(),
                        target: self.account.to_string(),
                        operation,
                        path,
                        new_path: target,
                        succeeded,
                    };
                    self.store.record_event(&actor, &event).await
                }
                Observed::File(SftpEvent::Refused {
                    operation,
                    path,
                    read,
                    write,
                }) => {
                    let action = match (read, write) {
                        (true, true) => "sftp_read,sftp_write",
                        (true, false) => "sftp_read",
                        _ => "sftp_write",
                    };
                    let event = AuditEvent::AccessDenied {
                        user: self.user.clone(),
                        target: self.account.to_string(),
                        action: action.to_owned(),
                        reason: format!(
                            "SFTP {operation} {path} refused in session {}: the grant does not \
                             allow {action}",
                            self.id
                        ),
                        source: self.source.clone(),
                    };
                    self.store.record_event(&actor, &event).await
                }
            };
            written.map_err(|err| format!("cannot write the audit trail: {err}"))?;
        }
        Ok(())
    }
}

/// A target channel ready to relay, with its session record and recorder.
struct Opened {
    account: rampart_core::AccountRef,
    channel: Channel<russh::client::Msg>,
    session_id: uuid::Uuid,
    early: Vec<ChannelMsg>,
    tap: Arc<Tap>,
    /// What the session was allowed as, for live enforcement.
    grant: SessionGrant,
}

/// Authorizes the request, records the session and opens the matching channel on the target.
/// Every failure comes back as the one line the user sees.
async fn open_target_channel(
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
    let opening = tokio::time::timeout_at(deadline, connection.handle.channel_open_session())
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
    let answered = tokio::time::timeout_at(deadline, replay(&mut channel, start, pty, env))
        .await
        .unwrap_or_else(|_| Err(ReplayError::Timeout(answer_timeout)));
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
async fn target_connection(
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

/// What the target may send before it answers the start request, kept to pass on after.
const MAX_EARLY_MESSAGES: usize = 64;

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("more than {MAX_EARLY_MESSAGES} messages before it answered the request")]
    TooEarly,
}

/// Replays the user's requests on the target channel and waits for the answer to the start
/// request. Returns `None` if the target refused it, else whatever the target sent meanwhile.
async fn replay(
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

/// The end reason of a session whose user went away: their client died, their connection or
/// WebSocket closed, or they closed the channel while the target was still running.
pub(crate) const CLIENT_DISCONNECTED: &str = "client disconnected";

/// How long a session whose user left waits for the target to answer the hang-up.
const TARGET_HANG_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves at `deadline` (never without one).
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How the user-to-target direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserSide {
    /// The user's channel or connection is gone.
    Left,
    /// Ended for another reason (a stop, a failed recording, the target refusing data).
    Stayed,
}

/// Read ahead at most this much data a peer has already sent, to record it in one hand-off to
/// the recording's writer (one per batch, not per packet: cheap under load).
const READ_AHEAD_BYTES: usize = 512 * 1024;
const READ_AHEAD_MESSAGES: usize = 64;

/// Messages taken from a channel ahead of the one being handled. The data at the front was
/// recorded with the message before it (`recorded` of them), so it is forwarded without being
/// recorded twice; everything is still forwarded in order, each piece only once recorded.
#[derive(Default)]
struct ReadAhead {
    queue: std::collections::VecDeque<ChannelMsg>,
    recorded: usize,
    closed: bool,
}

impl ReadAhead {
    /// The next message read ahead, and whether it is already recorded.
    fn pop(&mut self) -> Option<(ChannelMsg, bool)> {
        let message = self.queue.pop_front()?;
        let recorded = self.recorded > 0;
        self.recorded = self.recorded.saturating_sub(1);
        Some((message, recorded))
    }

    /// Whether the channel has ended and nothing read ahead is left.
    fn done(&self) -> bool {
        self.closed && self.queue.is_empty()
    }

    /// The data messages right behind the one being handled (reading, without waiting, what
    /// `from` already holds if nothing is queued), marked as recorded with it: (data, is
    /// extended data).
    async fn data_behind(
        &mut self,
        from: &mut russh::ChannelReadHalf,
    ) -> Vec<(bytes::Bytes, bool)> {
        if self.queue.is_empty() && !self.closed {
            let mut bytes = 0usize;
            while bytes < READ_AHEAD_BYTES && self.queue.len() < READ_AHEAD_MESSAGES {
                // Polls once: a message that is there, or nothing (`wait` is cancel-safe).
                match tokio::time::timeout(std::time::Duration::ZERO, from.wait()).await {
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

/// Moves bytes and channel events both ways until the channel is done; returns the totals.
async fn pump(
    user: Channel<Msg>,
    target: Channel<russh::client::Msg>,
    early: Vec<ChannelMsg>,
    handle: &Handle,
    tap: Arc<Tap>,
    info: Arc<SessionInfo>,
    (registration, control): (&Registration, SessionControl),
) -> SessionEnd {
    let SessionControl {
        stop: mut stop_downstream,
        mut notices,
    } = control;
    let mut stop_upstream = stop_downstream.clone();
    let live = registration.session.clone();
    let user_id = user.id();
    let (mut from_user, to_user) = user.split();
    let (mut from_target, to_target) = target.split();

    // User to target. A failure to record ends the session and is kept for its end reason.
    let upstream_tap = tap.clone();
    let upstream_info = info.clone();
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
        loop {
            let message = tokio::select! {
                message = from_user.wait() => message,
                _ = crate::forward::stopped_watch(&mut stop_upstream) => break,
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
                    let observed = match upstream_tap.client_sent(&data).await {
                        Ok((filtered, observed)) => {
                            upstream_info.log(observed).await.map(|()| filtered)
                        }
                        Err(err) => Err(err),
                    };
                    let filtered = match observed {
                        Ok(filtered) => filtered,
                        Err(err) => {
                            tracing::error!(error = %err, "recording failed; ending the session");
                            if let Ok(mut slot) = failure.lock() {
                                *slot = Some(err);
                            }
                            break;
                        }
                    };
                    if !filtered.replies.is_empty() && replies.send(filtered.replies).await.is_err()
                    {
                        break;
                    }
                    match filtered.forward {
                        None => to_target.data_bytes(data).await,
                        Some(passed) if passed.is_empty() => Ok(()),
                        Some(passed) => to_target.data_bytes(passed).await,
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
            None if ahead.done() => break,
            None => tokio::select! {
                message = from_target.wait() => match message {
                    Some(message) => (message, false),
                    None => break,
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
                why = crate::forward::stopped_watch(&mut stop_downstream) => {
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
                Some(reply) = replies_to_send.recv(), if tap.between_packets() => {
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
                tap.target_sent(&batch).await
            }
            _ => Ok(Vec::new()),
        };
        let recorded = match recorded {
            Ok(observed) => info.log(observed).await,
            Err(err) => Err(err),
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
        reason = format!("recording failed: {failure}");
    }
    SessionEnd {
        reason,
        bytes_from_client: tap.from_client.load(Ordering::Relaxed),
        bytes_to_client: tap.to_client.load(Ordering::Relaxed),
        exit_status,
        recording: None,
    }
}

fn signal_text(signal: &Sig) -> String {
    format!("{signal:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_observer_lock_is_an_error_not_an_empty_slot() {
        let slot = Arc::new(std::sync::Mutex::new(Some(0u32)));
        assert_eq!(with_slot(&slot, |n| *n + 1), Ok(Some(1)));
        let poisoner = slot.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("an observer panicked");
        })
        .join();
        assert!(slot.is_poisoned());
        assert!(with_slot(&slot, |n| *n + 1).is_err());
    }
}

#[cfg(test)]
mod env_bounds {
    use super::*;

    #[test]
    fn environment_before_a_session_is_bounded_in_count_and_size() {
        let mut env = Vec::new();
        let kept = (0..1000)
            .filter(|n| remember_env(&mut env, format!("LC_FLOOD_{n}"), "x".into()))
            .count();
        assert_eq!(kept, MAX_ENV_VARIABLES);
        assert_eq!(env.len(), MAX_ENV_VARIABLES);
        // A name sent again replaces its value and takes no new room.
        assert!(remember_env(&mut env, "LC_FLOOD_0".into(), "y".into()));
        assert_eq!(env.len(), MAX_ENV_VARIABLES);
        // Too large a value or too long a name is refused, as is a name not allowed at all.
        let mut fresh = Vec::new();
        assert!(!remember_env(
            &mut fresh,
            "LANG".into(),
            "v".repeat(MAX_ENV_VALUE_BYTES + 1)
        ));
        assert!(!remember_env(
            &mut fresh,
            format!("LC_{}", "N".repeat(MAX_ENV_NAME_BYTES)),
            "v".into()
        ));
        assert!(!remember_env(
            &mut fresh,
            "LD_PRELOAD".into(),
            "/tmp/x.so".into()
        ));
        assert!(remember_env(&mut fresh, "LANG".into(), "C.UTF-8".into()));
        assert_eq!(fresh, [("LANG".to_owned(), "C.UTF-8".to_owned())]);
    }
}
