//! Large files sent to a client without holding them in memory: read in chunks into a bounded
//! queue that the connection drains at the client's pace.

use axum::body::{Body, Bytes};
use http_body_util::channel::Channel;
use tokio::io::AsyncReadExt;

/// Bytes read from the file at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks read ahead of the client.
const QUEUED_CHUNKS: usize = 2;

/// A response body with the first `size` bytes of `file`. Memory per download stays a few
/// chunks whatever the size; a slow client slows the reading down. A file that ends early or
/// fails to read aborts the body, so the client sees a cut transfer, not a short success.
pub fn stream_file(mut file: tokio::fs::File, size: u64) -> Body {
    let (mut sender, body) = Channel::<Bytes, std::io::Error>::new(QUEUED_CHUNKS);
    tokio::spawn(async move {
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
            let mut chunk = vec![0u8; want];
            let read = match file.read(&mut chunk).await {
                Ok(0) => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                other => other,
            };
            match read {
                Ok(n) => {
                    chunk.truncate(n);
                    left = left.saturating_sub(n as u64);
                    if sender.send_data(Bytes::from(chunk)).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot read a file being downloaded");
                    sender.abort(err);
                    return;
                }
            }
        }
    });
    Body::new(body)
}
