//! `serve` with `recording.store = "s3"`: the bucket checked before anything is served, the
//! upload queue started, and what a previous run left uncopied queued again.

use crate::config::Config;
use anyhow::Context;
use std::time::Duration;

/// How long a stopping server waits for the upload queue to drain; what is left is copied at
/// the next start.
const DRAIN_AT_STOP: Duration = Duration::from_secs(15);

/// Checks the bucket (WORM mode refuses one without versioning and Object Lock) and starts
/// the uploader; `None` when recordings stay local.
pub async fn start(config: &Config) -> anyhow::Result<Option<rampart_s3::Uploader>> {
    let Some(settings) = config.recording_store.s3().cloned() else {
        return Ok(None);
    };
    let bucket = settings.bucket.clone();
    let worm = settings.object_lock;
    tokio::task::spawn_blocking(move || -> anyhow::Result<Option<rampart_s3::Uploader>> {
        let client = rampart_s3::Client::new(settings)?;
        let facts = client
            .bucket_facts()
            .with_context(|| format!("recording.store is s3: cannot check the bucket {bucket}"))?;
        if worm && !(facts.versioning && facts.object_lock) {
            anyhow::bail!(
                "{}",
                crate::commands::recordings::worm_refusal(&bucket, facts)
            );
        }
        tracing::info!(
            bucket = %bucket,
            versioning = facts.versioning,
            object_lock = facts.object_lock,
            worm,
            "recordings are copied to S3"
        );
        Ok(Some(rampart_s3::Uploader::start(client)?))
    })
    .await?
}

/// Queues every sealed local recording not yet in the bucket (after crash recovery sealed
/// what the last run left open).
pub fn resume(uploader: &rampart_s3::Uploader, dir: &std::path::Path) {
    match uploader.resume(dir) {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "copying recordings not yet in the bucket"),
        Err(err) => {
            tracing::error!(error = %err, "cannot list the recordings to copy to the bucket")
        }
    }
}

/// Gives the upload queue a moment to drain at shutdown.
pub async fn drain(uploader: rampart_s3::Uploader) {
    let drained = tokio::task::spawn_blocking(move || uploader.wait_idle(DRAIN_AT_STOP))
        .await
        .unwrap_or(false);
    if !drained {
        tracing::warn!(
            "some recordings are not in the bucket yet: they are copied at the next start"
        );
    }
}
