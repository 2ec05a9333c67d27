//! A second copy of each recording somewhere else (S3-compatible storage, `rampart-s3`).
//!
//! The recorder writes to its local files first (the relay forwards nothing that is not in the
//! file); a [`Replica`] is then told, without waiting, each time the manifest grows (a chunk
//! closed, or the seal), and copies what the manifest names off the writer's thread. The local
//! files stay the write-ahead copy: a node lost loses only what the replica had not copied yet.

use std::path::Path;
use uuid::Uuid;

/// Where closed chunks and sealed manifests are copied. Calls must not block: they only note
/// that `session`'s manifest in `dir` has new lines.
pub trait Replica: Send + Sync + std::fmt::Debug {
    fn manifest_grew(&self, dir: &Path, session: Uuid);
}
