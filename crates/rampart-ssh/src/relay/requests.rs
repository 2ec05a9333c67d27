//! The requests a session channel gets before it starts something (pty, environment, then
//! shell, exec or subsystem): what is kept of them, within bounds, to replay on the target.

use rampart_audit::scp::ScpCommand;
use rampart_core::{Action, SessionKind};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, Pty};

/// What the user asked the channel to run.
#[derive(Debug, Clone)]
pub(super) enum Start {
    Shell,
    Exec(Vec<u8>),
    /// A command that parses strictly as legacy scp; the target runs it rebuilt from this.
    Scp(ScpCommand),
    Subsystem(String),
}

impl Start {
    /// Classes a command: the scp action only for a plain legacy scp transfer, anything else is
    /// a command (`exec`), however it starts.
    pub(super) fn command(command: Vec<u8>) -> Self {
        match ScpCommand::parse(&command) {
            Ok(scp) => Start::Scp(scp),
            Err(_) => Start::Exec(command),
        }
    }

    /// The actions the policy must allow, and the session kind recorded.
    pub(super) fn actions(&self) -> Result<(Vec<Action>, SessionKind), String> {
        match self {
            Start::Shell => Ok((vec![Action::Shell], SessionKind::Shell)),
            Start::Scp(_) => Ok((vec![Action::Scp], SessionKind::Scp)),
            Start::Exec(_) => Ok((vec![Action::Exec], SessionKind::Exec)),
            // Either direction opens the subsystem; the SFTP filter keeps the session to the
            // directions its account allows.
            Start::Subsystem(name) if name == "sftp" => {
                Ok((vec![Action::SftpRead, Action::SftpWrite], SessionKind::Sftp))
            }
            Start::Subsystem(name) => Err(format!(
                "the {name} subsystem is not available through Rampart"
            )),
        }
    }
}

/// Why a command that starts like scp was not taken as a transfer, for its refusal.
pub(super) fn scp_lookalike(start: &Start) -> Option<String> {
    match start {
        Start::Exec(command) if command.starts_with(b"scp") => {
            ScpCommand::parse(command).err().map(|err| err.to_string())
        }
        _ => None,
    }
}

/// The pseudo-terminal the user asked for, replayed on the target.
#[derive(Debug, Clone)]
pub(super) struct PtyRequest {
    pub(super) term: String,
    pub(super) cols: u32,
    pub(super) rows: u32,
    pub(super) pix_width: u32,
    pub(super) pix_height: u32,
    pub(super) modes: Vec<(Pty, u32)>,
}

impl PtyRequest {
    pub(super) fn resize(&mut self, cols: u32, rows: u32, pix_width: u32, pix_height: u32) {
        (self.cols, self.rows, self.pix_width, self.pix_height) =
            (cols, rows, pix_width, pix_height);
    }
}

/// Environment variables passed to the target; anything else could change how the target's
/// shell behaves (LD_PRELOAD, BASH_ENV) and is refused.
pub(super) fn env_allowed(name: &str) -> bool {
    matches!(name, "LANG" | "LANGUAGE" | "TZ") || name.starts_with("LC_")
}

/// What one session keeps of the environment a client sends before it starts: the requests
/// come before anything is authorized, so their number and size are bounded. Beyond the bounds
/// a request is refused like a forbidden name.
pub(super) const MAX_ENV_VARIABLES: usize = 32;
pub(super) const MAX_ENV_NAME_BYTES: usize = 64;
pub(super) const MAX_ENV_VALUE_BYTES: usize = 1024;

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

/// What the channel asked for before it started something.
pub(super) struct Requested {
    pub start: Start,
    pub want_reply: bool,
    pub pty: Option<PtyRequest>,
    pub env: Vec<(String, String)>,
}

/// Takes note of the channel's requests until it asks to start something; `None` if it closes
/// first. The connection's handler has answered them already (pty, env, X11, agent), in order
/// (see `crate::requests`); the environment it kept is taken from `kept` at the start request.
pub(super) async fn collect(
    channel: &mut Channel<Msg>,
    kept: &crate::requests::SharedEnvironment,
) -> Option<Requested> {
    let mut pty = None;
    // Requests before the channel starts something: remembered and replayed on the target.
    let (start, want_reply) = loop {
        let message = channel.wait().await?;
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
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => {}
        }
    };
    let Ok(env) = kept.lock().map(|mut kept| std::mem::take(&mut *kept)) else {
        tracing::error!("the environment of a channel is unreadable (poisoned lock)");
        return None;
    };
    Some(Requested {
        start,
        want_reply,
        pty,
        env,
    })
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
