//! The audit trail of what the observers find: commands into the command log, file transfers
//! and changes and refused SFTP requests as audit events. A write that fails ends the session
//! (fail closed). A recorded database session's statements go through its `StatementLog`
//! (batched, off the relay's path: the recording's marker is their evidence before the answer).

use crate::observe::Finding;
use crate::statement_log::StatementLog;
use rampart_audit::sftp::SftpEvent;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::Store;
use std::sync::Arc;

/// Whose session the findings are of: what the audit trail names.
#[derive(Debug)]
pub(crate) struct Trail {
    pub(crate) store: Arc<Store>,
    pub(crate) id: uuid::Uuid,
    pub(crate) user: String,
    pub(crate) account: rampart_core::AccountRef,
    pub(crate) source: String,
    /// A database session's statement rows, written in batches by the node's writer (for an
    /// unrecorded session each is committed before its answer); `None`: every command is
    /// committed before the call returns.
    pub(crate) statements: Option<StatementLog>,
}

impl Trail {
    /// The bulk-transfer detector's alert: this session moved `bytes`, more than `limit`.
    pub(crate) async fn bulk_transfer(&self, limit: u64, bytes: u64) -> Result<(), String> {
        let alert = rampart_core::detectors::bulk_transfer(
            limit,
            &self.user,
            &self.id.to_string(),
            &self.account.to_string(),
            bytes,
        );
        match alert {
            Some(alert) => self
                .store
                .record_event(&Actor::System, &alert.event())
                .await
                .map_err(|err| format!("cannot write the audit trail ({err})")),
            None => Ok(()),
        }
    }

    /// Findings in the target's bytes, whose commands the recording (if any) has just marked:
    /// with a statement log, the commands (up to the first other finding) are queued for it;
    /// the rest goes through [`Self::log`]. Without a recording the queued rows are committed
    /// before this returns (they are the statements' only evidence). An error ends the session
    /// (fail closed).
    pub(crate) async fn log_marked(&self, findings: Vec<Finding>) -> Result<(), String> {
        // Nearly every batch of bytes finds nothing: that path stays small, and the writes are
        // boxed (the relay awaits this for every batch, and would otherwise carry the store
        // writes' state in its long-lived task).
        if findings.is_empty() {
            return self.check();
        }
        Box::pin(self.write_marked(findings)).await
    }

    async fn write_marked(&self, findings: Vec<Finding>) -> Result<(), String> {
        let Some(statements) = &self.statements else {
            return self.log(findings).await;
        };
        statements.check()?;
        let mut rest = Vec::new();
        let mut queued = false;
        for item in findings {
            match item {
                Finding::Command(command) if rest.is_empty() => {
                    statements.push(self.new_command(command)).await?;
                    queued = true;
                }
                other => rest.push(other),
            }
        }
        if queued && statements.committed_before_answer() {
            statements.flush().await?;
        }
        self.log(rest).await
    }

    /// A statement's row for the statement log. (The shell's privilege-escalation detector is
    /// not asked: a statement is not a shell line.)
    fn new_command(&self, command: String) -> rampart_store::NewCommand {
        rampart_store::NewCommand {
            session: self.id,
            at: time::OffsetDateTime::now_utc(),
            user: self.user.clone(),
            asset: self.account.asset.to_string(),
            account: self.account.login.to_string(),
            command,
        }
    }

    /// Waits until the statement log (if any) has written what it holds; an error if it could
    /// not.
    pub(crate) async fn flush(&self) -> Result<(), String> {
        match &self.statements {
            Some(statements) => statements.flush().await,
            None => Ok(()),
        }
    }

    /// Writes commands and file operations to the audit trail; an error ends the session (fail
    /// closed). With a statement log, what it holds is written first (the chain keeps the
    /// session's order).
    pub(crate) async fn log(&self, findings: Vec<Finding>) -> Result<(), String> {
        // Small when there is nothing to write, as `log_marked`.
        if findings.is_empty() {
            return self.check();
        }
        Box::pin(self.write(findings)).await
    }

    /// Whether the statement log (if any) still works; an error ends the session.
    fn check(&self) -> Result<(), String> {
        match &self.statements {
            Some(statements) => statements.check(),
            None => Ok(()),
        }
    }

    async fn write(&self, findings: Vec<Finding>) -> Result<(), String> {
        if let Some(statements) = &self.statements {
            statements.check()?;
            if !findings.is_empty() {
                statements.flush().await?;
            }
        }
        let (asset, login) = (self.account.asset.as_str(), self.account.login.as_str());
        let actor = Actor::User {
            name: self.user.clone(),
        };
        for item in findings {
            let written = match item {
                Finding::Rule(found) => {
                    let mut written = Ok(());
                    for event in found.events(&self.id.to_string(), &self.user, &self.account) {
                        written = self.store.record_event(&actor, &event).await;
                        if written.is_err() {
                            break;
                        }
                    }
                    written
                }
                Finding::Command(command) => {
                    let alert = crate::command_control::escalation_alert(
                        &command,
                        &self.id.to_string(),
                        &self.user,
                        &self.account,
                    );
                    let logged = self
                        .store
                        .record_command(self.id, &self.user, asset, login, &command)
                        .await;
                    match alert {
                        Some(alert) if logged.is_ok() => {
                            self.store.record_event(&actor, &alert).await
                        }
                        _ => logged,
                    }
                }
                Finding::File(SftpEvent::Transferred {
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
                Finding::File(SftpEvent::Changed {
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
                Finding::File(SftpEvent::Refused {
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
