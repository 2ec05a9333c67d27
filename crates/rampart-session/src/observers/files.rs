//! The file transfer protocols as observers: SFTP (which also keeps a session to the
//! directions its account allows, answering the rest with `SSH_FX_PERMISSION_DENIED`) and
//! legacy scp. A stream they cannot follow ends the session (fail closed).

use crate::observe::with_lock;
use crate::observe::{ClientVerdict, Control, Finding, Finished, Observer, ObserverFuture, ready};
use bytes::Bytes;
use rampart_audit::Stream;
use rampart_audit::scp::{ScpCommand, ScpObserver};
use rampart_audit::sftp::{SftpDirections, SftpObserver};
use std::sync::Mutex;

/// Watches the file transfer protocol of a session.
#[derive(Debug)]
pub enum FileObserver {
    Sftp(Mutex<SftpObserver>),
    Scp(Mutex<ScpObserver>),
}

impl FileObserver {
    /// An SFTP session kept to `directions`.
    pub fn sftp(directions: SftpDirections) -> Self {
        Self::Sftp(Mutex::new(SftpObserver::with_directions(directions)))
    }

    /// A legacy scp transfer of `command`.
    pub fn scp(command: ScpCommand) -> Self {
        Self::Scp(Mutex::new(ScpObserver::new(command)))
    }
}

fn files(events: Vec<rampart_audit::sftp::SftpEvent>) -> Vec<Finding> {
    events.into_iter().map(Finding::File).collect()
}

impl Observer for FileObserver {
    fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
        ready(match self {
            FileObserver::Sftp(sftp) => with_lock(sftp, |sftp| sftp.filter_client(data))
                .and_then(|filtered| filtered.map_err(|err| err.to_string()))
                .map(|filtered| ClientVerdict {
                    forward: filtered.forward,
                    replies: filtered.replies,
                    findings: files(filtered.events),
                    ..ClientVerdict::default()
                }),
            FileObserver::Scp(scp) => with_lock(scp, |scp| {
                if scp.upload() {
                    scp.feed(data).map_err(|err| err.to_string())
                } else {
                    Ok(Vec::new())
                }
            })
            .and_then(|events| events)
            .map(|events| ClientVerdict {
                findings: files(events),
                ..ClientVerdict::default()
            }),
        })
    }

    fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
        let mut found = Vec::new();
        for (_, data) in batch {
            let events = match self {
                FileObserver::Sftp(sftp) => with_lock(sftp, |sftp| {
                    sftp.server(data).map_err(|err| err.to_string())
                }),
                FileObserver::Scp(scp) => with_lock(scp, |scp| {
                    if scp.upload() {
                        Ok(Vec::new())
                    } else {
                        scp.feed(data).map_err(|err| err.to_string())
                    }
                }),
            };
            match events.and_then(|events| events) {
                Ok(events) => found.extend(files(events)),
                Err(err) => return ready(Err(err)),
            }
        }
        ready(Ok(found))
    }

    fn control<'a>(&'a self, _event: Control<'a>) -> ObserverFuture<'a, ()> {
        ready(Ok(()))
    }

    fn may_interject(&self) -> bool {
        match self {
            // A failed observer ends the session anyway; until then, hold the reply back.
            FileObserver::Sftp(sftp) => {
                with_lock(sftp, |sftp| sftp.server_between_packets()).unwrap_or(false)
            }
            FileObserver::Scp(_) => true,
        }
    }

    fn finish(&self, _exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
        ready(match self {
            FileObserver::Sftp(sftp) => with_lock(sftp, |sftp| Finished {
                findings: files(sftp.finish()),
                recording: None,
            }),
            FileObserver::Scp(_) => Ok(Finished::default()),
        })
    }
}
