//! `rampart backup` and `rampart restore`: the printing around the store's online backup
//! (`rampart_store::backup`), with progress on standard error.

use crate::cli::{BackupArgs, RestoreArgs};
use crate::config::Config;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::{Progress, Store, StoreOptions};

/// Progress lines for people on standard error (standard output stays the result).
fn progress_line(verb: &'static str) -> impl FnMut(Progress<'_>) {
    move |p: Progress<'_>| {
        eprintln!(
            "{verb}: {}: {}/{} file(s), {}",
            p.phase,
            p.files,
            p.total_files,
            megabytes(p.bytes)
        );
    }
}

fn megabytes(bytes: u64) -> String {
    // Display only: precision loss above 2^53 bytes does not matter.
    #[expect(clippy::cast_precision_loss, reason = "a size shown to people")]
    let mb = bytes as f64 / 1_000_000.0;
    format!("{mb:.1} MB")
}

pub async fn backup(
    store: &Store,
    actor: &Actor,
    json: bool,
    args: &BackupArgs,
) -> anyhow::Result<()> {
    let mut progress = progress_line("backup");
    let manifest = store
        .backup_to(&args.to, !args.without_master_key, &mut progress)
        .await?;
    let files = manifest.files.len() as u64;
    let bytes = manifest.total_bytes();
    store
        .record_event(
            actor,
            &AuditEvent::BackupMade {
                to: args.to.display().to_string(),
                master_key_included: manifest.master_key_included,
                files,
                bytes,
            },
        )
        .await?;
    let key_note = if manifest.master_key_included {
        "it holds the vault master key: keep it as safe as the node itself"
    } else {
        "the vault master key is not in it: restoring needs --master-key-file with that key"
    };
    crate::output::done(
        json,
        &serde_json::json!({
            "to": args.to.display().to_string(),
            "taken_at": manifest.taken_at,
            "schema_version": manifest.schema_version,
            "master_key_included": manifest.master_key_included,
            "files": files,
            "bytes": bytes,
        }),
        &format!(
            "backed up {} ({files} file(s), {}; database as of {}) into {}\n{key_note}",
            store.data_dir().root().display(),
            megabytes(bytes),
            manifest.taken_at,
            args.to.display(),
        ),
    )
}

pub async fn restore(config: &Config, json: bool, args: &RestoreArgs) -> anyhow::Result<()> {
    let options = StoreOptions {
        data_dir: config.data_dir.clone(),
        master_key: config.master_key.clone(),
        database: config.store_url.clone(),
    };
    let mut progress = progress_line("restore");
    let (manifest, store) =
        rampart_store::restore_backup(&args.from, &options, &mut progress).await?;
    let status = store.vault_status().await;
    store.close().await;
    let status = status?;
    if !status.unreadable.is_empty() {
        anyhow::bail!(
            "restored into {}, but {} secret(s) do not open with the master key given",
            config.data_dir.display(),
            status.unreadable.len()
        );
    }
    crate::output::done(
        json,
        &serde_json::json!({
            "data_dir": config.data_dir.display().to_string(),
            "taken_at": manifest.taken_at,
            "files": manifest.files.len(),
            "secrets": status.secrets,
        }),
        &format!(
            "restored the backup of {} taken at {} into {} ({} file(s), every one matching its \
             SHA-256); the vault opens ({} secret(s))\n\
             next: `rampart serve --data-dir {}`. If the backup was taken while the server ran, \
             its first start records that (an unclean stop) and seals the recordings of \
             sessions that were live then",
            manifest.source,
            manifest.taken_at,
            config.data_dir.display(),
            manifest.files.len(),
            status.secrets,
            config.data_dir.display(),
        ),
    )
}
