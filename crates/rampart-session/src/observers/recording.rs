//! The terminal recorder as an observer: every chunk both ways goes to the recording's writer
//! thread ([`LiveRecorder`]) and the call resolves once it is in the file, so nothing reaches
//! the other side unrecorded. Resizes and markers are recorded too; the end marks the exit
//! status and seals the recording with the node's audit key.

use crate::observe::{ClientVerdict, Control, Finished, Observer, ObserverFuture, Written};
use bytes::Bytes;
use rampart_audit::{LiveRecorder, PrivateKey, Stream};
use std::sync::Arc;

/// A recording being written.
#[derive(Debug)]
pub struct TerminalRecorder {
    recorder: LiveRecorder,
    key: Arc<PrivateKey>,
}

impl TerminalRecorder {
    pub fn new(recorder: LiveRecorder, key: Arc<PrivateKey>) -> Self {
        Self { recorder, key }
    }
}

impl Observer for TerminalRecorder {
    fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
        Box::pin(async move {
            self.recorder
                .streams(vec![(Stream::Input, data.clone())])
                .await
                .map_err(|err| err.to_string())?;
            Ok(ClientVerdict::default())
        })
    }

    fn clients<'a>(&'a self, batch: &'a [Bytes]) -> ObserverFuture<'a, Vec<ClientVerdict>> {
        Box::pin(async move {
            // The whole batch in one hand-off to the writer (one wait, not one per packet); the
            // recorder rewrites nothing, so the verdicts are all "unchanged".
            let parts = batch
                .iter()
                .map(|data| (Stream::Input, data.clone()))
                .collect();
            self.recorder
                .streams(parts)
                .await
                .map_err(|err| err.to_string())?;
            Ok(batch.iter().map(|_| ClientVerdict::default()).collect())
        })
    }

    fn submit_clients<'a>(
        &'a self,
        batch: &'a [Bytes],
    ) -> ObserverFuture<'a, (Vec<ClientVerdict>, Written)> {
        // Queued on the writer now (the whole batch in one hand-off); the relay waits for the
        // answer only after it has handed over what is behind this batch. The recorder rewrites
        // nothing, so the verdicts are all "unchanged".
        let parts = batch
            .iter()
            .map(|data| (Stream::Input, data.clone()))
            .collect();
        let queued = self
            .recorder
            .submit_streams_then_markers(parts, Vec::new())
            .map_err(|err| err.to_string());
        let verdicts = batch.iter().map(|_| ClientVerdict::default()).collect();
        Box::pin(async move { Ok((verdicts, written(queued?))) })
    }

    fn target<'a>(
        &'a self,
        batch: &'a [(Stream, Bytes)],
    ) -> ObserverFuture<'a, Vec<crate::observe::Finding>> {
        Box::pin(async move {
            self.recorder
                .streams(batch.to_vec())
                .await
                .map_err(|err| err.to_string())?;
            Ok(Vec::new())
        })
    }

    fn only_records_target(&self) -> bool {
        true
    }

    fn target_then_mark<'a>(
        &'a self,
        batch: &'a [(Stream, Bytes)],
        commands: &'a [String],
    ) -> ObserverFuture<'a, ()> {
        Box::pin(async move {
            self.recorder
                .streams_then_markers(batch.to_vec(), commands.to_vec())
                .await
                .map_err(|err| err.to_string())
        })
    }

    fn submit_target_then_mark<'a>(
        &'a self,
        batch: &'a [(Stream, Bytes)],
        commands: &'a [String],
    ) -> ObserverFuture<'a, Written> {
        // Queued on the writer now; the relay waits for the answer only after it has handed
        // over what is behind this batch.
        let queued = self
            .recorder
            .submit_streams_then_markers(batch.to_vec(), commands.to_vec())
            .map_err(|err| err.to_string());
        Box::pin(async move { Ok(written(queued?)) })
    }

    fn control<'a>(&'a self, event: Control<'a>) -> ObserverFuture<'a, ()> {
        Box::pin(async move {
            match event {
                Control::Resize { cols, rows } => self.recorder.resize(cols, rows).await,
                Control::Marker(line) => self.recorder.marker(line).await,
            }
            .map_err(|err| err.to_string())
        })
    }

    fn finish(&self, exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
        Box::pin(async move {
            if let Some(status) = exit_status {
                self.recorder
                    .marker(&format!("exit status {status}"))
                    .await
                    .map_err(|err| err.to_string())?;
            }
            let sealed = self
                .recorder
                .seal(self.key.clone())
                .await
                .map_err(|err| err.to_string())?;
            Ok(Finished {
                findings: Vec::new(),
                recording: Some(sealed.anchor()),
            })
        })
    }
}

/// A write queued on the recording's writer as the relay waits for it.
fn written(
    write: impl Future<Output = Result<(), rampart_audit::RecordingError>> + Send + 'static,
) -> Written {
    Box::pin(async move { write.await.map_err(|err| err.to_string()) })
}
