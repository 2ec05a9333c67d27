//! The attachment point for recording and the protocol observers ([`Tap`]), and the audit
//! trail of what they find ([`SessionInfo`]).

use rampart_audit::commands::CommandLog;
use rampart_audit::scp::ScpObserver;
use rampart_audit::sftp::{Filtered, SftpEvent, SftpObserver};
use rampart_audit::{LiveRecorder, RecordingError, Stream};
use rampart_core::audit::{Actor, AuditEvent, RecordingAnchor};
use rampart_store::Store;
use russh::keys::PrivateKey;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The attachment point for recording: sees every chunk of a session, both ways, and hands it
/// to the recording's writer; the chunk is passed on only once the writer has written it, so
/// nothing reaches the other side unrecorded. Any failure (a write, the writer, a poisoned
/// observer lock) is an error that ends the session.
pub(super) struct Tap {
    pub(super) from_client: AtomicU64,
    pub(super) to_client: AtomicU64,
    pub(super) recorder: Option<LiveRecorder>,
    /// Interactive shells only: the commands the user runs, read from the screen.
    pub(super) commands: std::sync::Mutex<Option<CommandLog>>,
    /// File transfers (SFTP, legacy scp): the files moved and changed.
    pub(super) files: std::sync::Mutex<Option<FileObserver>>,
}

/// Watches the file transfer protocol of a session.
pub(super) enum FileObserver {
    Sftp(SftpObserver),
    Scp(ScpObserver),
}

impl FileObserver {
    /// What the client sent, filtered (SFTP sessions keep to their directions).
    pub(super) fn client(&mut self, data: &[u8]) -> Result<Filtered, String> {
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
    pub(super) fn between_packets(&self) -> bool {
        match self {
            FileObserver::Sftp(sftp) => sftp.server_between_packets(),
            FileObserver::Scp(_) => true,
        }
    }

    pub(super) fn target(&mut self, data: &[u8]) -> Result<Vec<SftpEvent>, String> {
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
pub(super) enum Observed {
    Command(String),
    File(SftpEvent),
}

impl Tap {
    pub(super) fn new(
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
    pub(super) async fn record(&self, parts: Vec<(Stream, bytes::Bytes)>) -> Result<(), String> {
        match &self.recorder {
            Some(recorder) => recorder.streams(parts).await.map_err(|err| err.to_string()),
            None => Ok(()),
        }
    }

    /// Records input; returns what passes to the target (`None`: all of it, unchanged), what
    /// Rampart answers itself, and the file operations it completed or refused.
    pub(super) async fn client_sent(
        &self,
        data: &bytes::Bytes,
    ) -> Result<(Filtered, Vec<Observed>), String> {
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
    pub(super) fn between_packets(&self) -> bool {
        // A failed observer ends the session anyway; until then, hold the reply back.
        with_slot(&self.files, |files| files.between_packets())
            .map(|between| between.unwrap_or(true))
            .unwrap_or(false)
    }

    /// Records output (a batch of chunks, in order; `true`: extended data, stderr); returns
    /// the commands and file operations it completed (commands are also marked in the
    /// recording).
    pub(super) async fn target_sent(
        &self,
        batch: &[(bytes::Bytes, bool)],
    ) -> Result<Vec<Observed>, String> {
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
    pub(super) async fn observe_output(
        &self,
        data: &bytes::Bytes,
    ) -> Result<Vec<Observed>, String> {
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
    pub(super) fn finish_files(&self) -> Result<Vec<Observed>, String> {
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
    pub(super) async fn notice(&self, line: &str) {
        if let Some(recorder) = &self.recorder
            && let Err(err) = recorder.marker(line).await
        {
            tracing::warn!(error = %err, "cannot mark a notice in a recording");
        }
    }

    pub(super) async fn resized(&self, cols: u32, rows: u32) -> Result<(), String> {
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
    pub(super) async fn finish(
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
pub(super) fn with_slot<T, R>(
    slot: &std::sync::Mutex<Option<T>>,
    use_value: impl FnOnce(&mut T) -> R,
) -> Result<Option<R>, String> {
    let mut guard = slot
        .lock()
        .map_err(|_| "an observer of the session failed (poisoned lock)".to_owned())?;
    Ok(guard.as_mut().map(use_value))
}

/// What the pump needs to log commands against their session.
pub(super) struct SessionInfo {
    pub(super) store: Arc<Store>,
    pub(super) id: uuid::Uuid,
    pub(super) user: String,
    pub(super) account: rampart_core::AccountRef,
    pub(super) source: String,
}

impl SessionInfo {
    /// Writes commands and file operations to the audit trail; an error ends the session (fail
    /// closed).
    pub(super) async fn log(&self, observed: Vec<Observed>) -> Result<(), String> {
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
