//! The sync: the directory read whole ([`Directory::snapshot`]), then applied by the store
//! ([`rampart_store::Store::apply_ldap_sync`]). `serve` runs it every `ldap.sync_interval`;
//! `rampart ldap sync` runs it once.

use crate::directory::{Directory, DirectoryError};
use rampart_core::audit::Actor;
use rampart_store::{Store, StoreError, SyncSummary};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The directory could not be read: nothing was changed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One sync: read the whole directory, then make Rampart agree. A directory that cannot be read
/// whole changes nothing (no user is disabled because a search failed).
pub async fn sync_once(
    store: &Store,
    directory: &Directory,
    actor: &Actor,
) -> Result<SyncSummary, SyncError> {
    let snapshot = directory.snapshot().await?;
    Ok(store.apply_ldap_sync(actor, &snapshot).await?)
}

/// Syncs at once, then every `interval`, until `shutdown` resolves. Failures are logged and
/// retried at the next interval.
pub async fn run(
    store: Arc<Store>,
    directory: Directory,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match sync_once(&store, &directory, &Actor::System).await {
            Ok(summary) => tracing::info!(
                created = summary.created.len(),
                updated = summary.updated.len(),
                disabled = summary.disabled.len(),
                enabled = summary.enabled.len(),
                skipped = summary.skipped.len(),
                "LDAP sync done"
            ),
            Err(err) => {
                tracing::error!(error = %err, "LDAP sync failed; nothing changed, retrying at the next interval")
            }
        }
    }
}
