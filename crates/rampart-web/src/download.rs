//! Large files sent to a client without holding them in memory: read in chunks into a bounded
//! queue that the connection drains at the client's pace.

use axum::body::{Body, Bytes};
use http_body_util::channel::Channel;

/// Bytes read from the file at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks read ahead of the client.
const QUEUED_CHUNKS: usize = 2;

/// A response body with a recording as one asciicast (a command's raw streams merged in, see
/// [`rampart_audit::write_cast`]), written on the blocking pool into a bounded queue: memory per
/// download stays a few chunks, and a failure aborts the body.
pub fn stream_cast(dir: std::path::PathBuf, session: uuid::Uuid) -> Body {
    let (mut sender, body) = Channel::<Bytes, std::io::Error>::new(QUEUED_CHUNKS);
    let (chunks, mut written) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(CHUNK_BYTES, QueueWriter(chunks.clone()));
        let result = rampart_audit::write_cast(&dir, session, &mut out)
            .map_err(std::io::Error::other)
            .and_then(|_| std::io::Write::flush(&mut out));
        drop(out);
        if let Err(err) = result {
            // The receiver may be gone (the client left); nothing else to tell.
            let _ = chunks.blocking_send(Err(err));
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = written.recv().await {
            match chunk {
                Ok(bytes) => {
                    if sender.send_data(bytes).await.is_err() {
                        return; // the client went away; the writer stops at its next chunk
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot read a recording being downloaded");
                    sender.abort(err);
                    return;
                }
            }
        }
    });
    Body::new(body)
}

/// A `Write` that hands each buffer to the download's queue, waiting while it is full.
struct QueueWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
