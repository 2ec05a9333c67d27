//! The per-request log of a Kubernetes session: each API request is one
//! [`QueryRecord`](rampart_session::database::QueryRecord) with the Kubernetes fields beside it
//! (resource, namespace, name, subresource), written to the session's command log
//! (`command_run`, hash-chained like every audit event) through the session's tap: the front
//! queues the record and passes the request's line through `target_sent`, the recorder writes
//! the line into the sealed recording, and this observer hands the record to the trail, all
//! before the response reaches the client.

use bytes::Bytes;
use rampart_audit::Stream;
use rampart_session::database::QueryRecord;
use rampart_session::observe::{
    ClientVerdict, Control, Finding, Finished, Observer, ObserverFuture, ready,
};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Records waiting for their line to pass the tap, at most.
const MAX_PENDING: usize = 64;

/// One API request as recorded: the query log's record plus what Kubernetes names.
#[derive(Debug, Serialize)]
pub struct ApiRecord {
    #[serde(flatten)]
    pub query: QueryRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// The records the front queued, shared with the observer.
#[derive(Debug, Default, Clone)]
pub struct Pending(Arc<Mutex<VecDeque<String>>>);

impl Pending {
    /// Queues a record; an error (the queue is full or poisoned) ends the request unrecorded.
    pub fn push(&self, record: &ApiRecord) -> Result<(), String> {
        let json = serde_json::to_string(record).map_err(|err| err.to_string())?;
        let mut queue = self
            .0
            .lock()
            .map_err(|_| "the request log failed".to_owned())?;
        if queue.len() >= MAX_PENDING {
            return Err("too many requests waiting to be recorded".to_owned());
        }
        queue.push_back(json);
        Ok(())
    }

    fn take(&self) -> Result<Vec<String>, String> {
        let mut queue = self
            .0
            .lock()
            .map_err(|_| "the request log failed".to_owned())?;
        Ok(queue.drain(..).collect())
    }
}

/// The observer that turns queued records into command-log findings.
#[derive(Debug)]
pub struct ApiLog(pub Pending);

impl Observer for ApiLog {
    fn client<'a>(&'a self, _data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
        ready(Ok(ClientVerdict::default()))
    }

    fn target<'a>(&'a self, _batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
        ready(
            self.0
                .take()
                .map(|records| records.into_iter().map(Finding::Command).collect()),
        )
    }

    fn control<'a>(&'a self, _event: Control<'a>) -> ObserverFuture<'a, ()> {
        ready(Ok(()))
    }

    fn finish(&self, _exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
        ready(Ok(Finished::default()))
    }
}
