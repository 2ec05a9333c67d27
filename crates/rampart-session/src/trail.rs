//! The audit trail of what the observers find: commands into the command log, file transfers
//! and changes and refused SFTP requests as audit events. A write that fails ends the session
//! (fail closed).

use crate::observe::Finding;
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

    /// Writes commands and file operations to the audit trail; an error ends the session (fail
    /// closed).
    pub(crate) async fn log(&self, findings: Vec<Finding>) -> Result<(), String> {
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
