//! Online backups of a data directory, and restoring one into a new directory.
//!
//! A backup is a directory laid out as a data directory (`rampart.db`, `keys/`, `recordings/`)
//! with a `backup.json` manifest listing every file with its size and SHA-256:
//!
//! 1. The database first, with SQLite's `VACUUM INTO`: one read transaction, so the copy is a
//!    consistent snapshot while the server and other commands keep writing (WAL mode).
//! 2. Then the keys and the recordings. Copied after the snapshot, every recording the
//!    snapshot's audit chain names is there: sealed ones are never written again, and a session
//!    live at the snapshot is copied as far as it got (its first start after a restore seals
//!    it, as after a crash).
//!
//! With a `.tar` name instead of a directory, the same tree is written into one tar archive
//! (staged as a directory first, so it needs the space twice while it is made).
//!
//! Restoring copies into a temporary sibling of the new directory, checks every file against
//! the manifest, opens the store there (integrity check, schema, vault key) and only then
//! renames it into place, so a failed restore leaves nothing half-made behind.

use crate::data_dir::{ServeLock, hex, io_error};
use crate::{DataDir, Store, StoreError, StoreOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The manifest's name inside a backup.
pub const BACKUP_MANIFEST: &str = "backup.json";
/// The manifest format this version writes and reads.
const FORMAT: u32 = 1;
/// The largest manifest read (a million recordings fit).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
/// The vault master key's path inside a data directory or a backup.
const MASTER_KEY: &str = "keys/vault-master.key";

/// What a backup holds, written last as `backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    /// The version of the `rampart` that wrote it.
    pub rampart_version: String,
    /// The newest schema migration of the database copied.
    pub schema_version: i64,
    /// When the database snapshot was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// The data directory it was taken from.
    pub source: String,
    /// Whether `keys/vault-master.key` is in the backup.
    pub master_key_included: bool,
    pub files: Vec<BackupFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupFile {
    /// Relative to the backup's root, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl BackupManifest {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Where a backup or restore is, for progress output.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub phase: &'a str,
    pub files: usize,
    pub total_files: usize,
    pub bytes: u64,
}

/// Reports progress at most once a second, and always at the end of each phase.
struct Reporter<'a> {
    callback: &'a mut dyn FnMut(Progress<'_>),
    last: Instant,
}

impl<'a> Reporter<'a> {
    fn new(callback: &'a mut dyn FnMut(Progress<'_>)) -> Self {
        Self {
            callback,
            last: Instant::now(),
        }
    }

    fn report(&mut self, progress: Progress<'_>, force: bool) {
        if force || self.last.elapsed() >= Duration::from_secs(1) {
            (self.callback)(progress);
            self.last = Instant::now();
        }
    }
}

impl Store {
    /// Writes a backup of this data directory into `to`, which must not exist: a directory, or
    /// a tar archive when its name ends in `.tar`. Without `include_master_key` the vault master
    /// key is left out (the operator keeps it apart).
    pub async fn backup_to(
        &self,
        to: &Path,
        include_master_key: bool,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<BackupManifest, StoreError> {
        let mut reporter = Reporter::new(progress);
        if self.backend != crate::Backend::Sqlite {
            return Err(StoreError::DataDir(
                "rampart backup copies the embedded SQLite store; back a PostgreSQL store up \
                 with PostgreSQL's own tools (pg_dump, or base backups with WAL archiving)"
                    .to_owned(),
            ));
        }
        if fs::symlink_metadata(to).is_ok() {
            return Err(StoreError::DataDir(format!(
                "{} already exists: a backup goes into a new directory",
                to.display()
            )));
        }
        // The snapshot goes into a temporary sibling, renamed into place when complete: a
        // directory named `to` is always a whole backup.
        let staging = staging_sibling(to)?;
        let result = self
            .write_backup(&staging, include_master_key, &mut reporter)
            .await;
        let manifest = match result {
            Ok(manifest) => manifest,
            Err(err) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(err);
            }
        };
        if is_archive(to) {
            let result = write_archive(&staging, to, &mut reporter);
            let _ = fs::remove_dir_all(&staging);
            result?;
            return Ok(manifest);
        }
        fs::rename(&staging, to).map_err(|err| {
            let _ = fs::remove_dir_all(&staging);
            io_error(to, "cannot create", &err)
        })?;
        Ok(manifest)
    }

    async fn write_backup(
        &self,
        root: &Path,
        include_master_key: bool,
        reporter: &mut Reporter<'_>,
    ) -> Result<BackupManifest, StoreError> {
        make_private_dir(root)?;
        let taken_at = rampart_core::time_arg::format_rfc3339(time::OffsetDateTime::now_utc());
        let database = root.join("rampart.db");
        let text = database.to_str().ok_or_else(|| {
            StoreError::DataDir(format!("{} is not a UTF-8 path", database.display()))
        })?;
        reporter.report(
            Progress {
                phase: "database snapshot",
                files: 0,
                total_files: 1,
                bytes: 0,
            },
            true,
        );
        // INVARIANT: the parent is 0700 (made above), so the file SQLite creates with the
        // umask is private from the start; it is narrowed to 0600 anyway.
        sqlx::query("VACUUM INTO $1")
            .bind(text)
            .execute(&self.pool)
            .await?;
        restrict(&database)?;
        let schema_version = crate::migrations::applied_version(&self.pool, self.backend).await?;
        let mut files = vec![hash_file(&database, "rampart.db")?];
        reporter.report(
            Progress {
                phase: "database snapshot",
                files: 1,
                total_files: 1,
                bytes: files.iter().map(|f| f.bytes).sum(),
            },
            true,
        );

        let mut sources = Vec::new();
        for (sub, dir) in [
            ("keys", self.data_dir.keys_dir()),
            ("recordings", self.data_dir.recordings_dir()),
        ] {
            make_private_dir(&root.join(sub))?;
            let mut names: Vec<_> = read_dir_files(&dir)?;
            names.sort();
            for name in names {
                let rel = format!("{sub}/{name}");
                if rel == MASTER_KEY && !include_master_key {
                    continue;
                }
                // Temporary files of an atomic write in progress are not part of the state.
                if name.contains(".tmp-") {
                    continue;
                }
                sources.push((dir.join(&name), rel));
            }
        }
        let total = sources.len();
        let mut bytes = 0;
        for (done, (source, rel)) in sources.iter().enumerate() {
            match copy_hashed(source, &root.join(rel), rel) {
                Ok(file) => {
                    bytes += file.bytes;
                    files.push(file);
                }
                // Removed by retention between the listing and the copy: not in the snapshot's
                // future either.
                Err(CopyError::Vanished) => {}
                Err(CopyError::Store(err)) => return Err(err),
            }
            reporter.report(
                Progress {
                    phase: "keys and recordings",
                    files: done + 1,
                    total_files: total,
                    bytes,
                },
                done + 1 == total,
            );
        }
        let master_key_included = files.iter().any(|f| f.path == MASTER_KEY);
        let manifest = BackupManifest {
            format: FORMAT,
            rampart_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version,
            taken_at,
            source: self.data_dir.root().display().to_string(),
            master_key_included,
            files,
        };
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|err| StoreError::DataDir(format!("cannot write the manifest: {err}")))?;
        write_private_file(&root.join(BACKUP_MANIFEST), &text)?;
        sync_dir(root)?;
        Ok(manifest)
    }
}

/// Whether a backup path names a tar archive rather than a directory.
pub fn is_archive(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "tar")
}

/// Writes the staged backup `tree` as the tar archive `to` (mode 0600), through a temporary
/// sibling renamed into place when complete.
fn write_archive(tree: &Path, to: &Path, reporter: &mut Reporter<'_>) -> Result<(), StoreError> {
    let partial = staging_sibling(to)?;
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|err| io_error(&partial, "cannot create", &err))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        builder.follow_symlinks(false);
        builder
            .append_dir_all(".", tree)
            .map_err(|err| io_error(&partial, "cannot write", &err))?;
        let file = builder
            .into_inner()
            .map_err(|err| io_error(&partial, "cannot write", &err))?
            .into_inner()
            .map_err(|err| io_error(&partial, "cannot write", err.error()))?;
        file.sync_all()
            .map_err(|err| io_error(&partial, "cannot sync", &err))?;
        reporter.report(
            Progress {
                phase: "archive",
                files: 1,
                total_files: 1,
                bytes: file.metadata().map_or(0, |m| m.len()),
            },
            true,
        );
        if fs::symlink_metadata(to).is_ok() {
            return Err(StoreError::DataDir(format!(
                "{} already exists",
                to.display()
            )));
        }
        fs::rename(&partial, to).map_err(|err| io_error(to, "cannot create", &err))?;
        to.parent().map_or(Ok(()), sync_dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Unpacks the archive `from` into the new directory `into` (tar refuses entries outside it).
fn unpack_archive(from: &Path, into: &Path) -> Result<(), StoreError> {
    let file = File::open(from).map_err(|err| io_error(from, "cannot read", &err))?;
    make_private_dir(into)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    archive.set_preserve_permissions(false);
    archive
        .unpack(into)
        .map_err(|err| StoreError::DataDir(format!("cannot unpack {}: {err}", from.display())))
}

/// Reads a backup's manifest, refusing one this version cannot read.
pub fn read_backup_manifest(from: &Path) -> Result<BackupManifest, StoreError> {
    let path = from.join(BACKUP_MANIFEST);
    let meta = fs::metadata(&path).map_err(|err| {
        StoreError::DataDir(format!(
            "{} is not a rampart backup (cannot read {BACKUP_MANIFEST}: {err})",
            from.display()
        ))
    })?;
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(StoreError::DataDir(format!(
            "{} is larger than {MAX_MANIFEST_BYTES} bytes",
            path.display()
        )));
    }
    let text = fs::read(&path).map_err(|err| io_error(&path, "cannot read", &err))?;
    let manifest: BackupManifest = serde_json::from_slice(&text).map_err(|err| {
        StoreError::DataDir(format!(
            "{} is not a backup manifest: {err}",
            path.display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(StoreError::DataDir(format!(
            "{} has format {}; this rampart reads format {FORMAT}",
            path.display(),
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Restores the backup in `from` into the new data directory `options.data_dir`, which must
/// not exist or be empty. Every file is checked against the manifest, and the restored store
/// must open (integrity, schema, vault key) before the directory is put in place. Returns the
/// manifest and the store, opened for the caller's checks.
pub async fn restore_backup(
    from: &Path,
    options: &StoreOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(BackupManifest, Store), StoreError> {
    let mut reporter = Reporter::new(progress);
    let to = &options.data_dir;
    match fs::read_dir(to) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(StoreError::DataDir(format!(
                    "{} is not empty: restore into a new or empty directory (nothing was changed)",
                    to.display()
                )));
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(to, "cannot read", &err)),
    }
    // An archive is unpacked beside the target first, then restored like a directory.
    if is_archive(from) && from.is_file() {
        let unpacked = staging_sibling(to)?;
        let result = match unpack_archive(from, &unpacked) {
            Ok(()) => Box::pin(restore_backup(&unpacked, options, progress)).await,
            Err(err) => Err(err),
        };
        let _ = fs::remove_dir_all(&unpacked);
        return result;
    }
    let manifest = read_backup_manifest(from)?;
    let newest = crate::migrations::known_version();
    if manifest.schema_version > newest {
        return Err(StoreError::NewerSchema {
            path: from.join("rampart.db"),
            found: manifest.schema_version,
            known: newest,
        });
    }
    let staging = staging_sibling(to)?;
    let result = async {
        make_private_dir(&staging)?;
        make_private_dir(&staging.join("keys"))?;
        make_private_dir(&staging.join("recordings"))?;
        let total = manifest.files.len();
        let mut bytes = 0;
        for (done, file) in manifest.files.iter().enumerate() {
            let rel = safe_relative(&file.path)?;
            let target = staging.join(&rel);
            if let Some(parent) = target.parent() {
                make_private_dir(parent)?;
            }
            let copied = match copy_hashed(&from.join(&rel), &target, &file.path) {
                Ok(copied) => copied,
                Err(CopyError::Vanished) => {
                    return Err(StoreError::DataDir(format!(
                        "the backup is incomplete: {} is missing",
                        file.path
                    )));
                }
                Err(CopyError::Store(err)) => return Err(err),
            };
            if copied.sha256 != file.sha256 || copied.bytes != file.bytes {
                return Err(StoreError::DataDir(format!(
                    "the backup is damaged: {} does not match its SHA-256 in {BACKUP_MANIFEST}",
                    file.path
                )));
            }
            bytes += copied.bytes;
            reporter.report(
                Progress {
                    phase: "files",
                    files: done + 1,
                    total_files: total,
                    bytes,
                },
                done + 1 == total,
            );
        }
        sync_dir(&staging)?;
        let lock = ServeLock::acquire(&staging)?;
        let staged = StoreOptions {
            data_dir: staging.clone(),
            master_key: options.master_key.clone(),
            database: None,
        };
        if !DataDir::exists(&staging) {
            return Err(StoreError::DataDir(
                "the backup holds no rampart.db".to_owned(),
            ));
        }
        let (store, _) = Store::open_for_serving(&staged, &lock).await?;
        store.close().await;
        drop(lock);
        Ok(())
    }
    .await;
    if let Err(err) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(err);
    }
    // An empty directory is replaced by the rename; anything else was refused above.
    fs::rename(&staging, to).map_err(|err| {
        let _ = fs::remove_dir_all(&staging);
        io_error(to, "cannot create", &err)
    })?;
    let (store, _) = Store::open_existing(options).await?;
    Ok((manifest, store))
}

/// A relative path inside a backup: plain names only, never `..`, `/` or `.`.
fn safe_relative(path: &str) -> Result<PathBuf, StoreError> {
    let candidate = Path::new(path);
    let plain = !path.is_empty()
        && candidate
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if !plain {
        return Err(StoreError::DataDir(format!(
            "the backup manifest names {path:?}, which is not a path inside the backup"
        )));
    }
    Ok(candidate.to_path_buf())
}

fn staging_sibling(to: &Path) -> Result<PathBuf, StoreError> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|err| StoreError::Randomness(err.to_string()))?;
    let name = to
        .file_name()
        .ok_or_else(|| StoreError::DataDir(format!("{} names no directory", to.display())))?;
    let mut name = name.to_os_string();
    name.push(format!(".partial-{}", hex(&suffix)));
    Ok(to.with_file_name(name))
}

fn make_private_dir(path: &Path) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|err| io_error(path, "cannot create", &err))
}

fn restrict(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|err| io_error(path, "cannot restrict", &err))
}

/// The regular files directly in `dir` (the data directory's `keys/` and `recordings/` are
/// flat).
fn read_dir_files(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error(dir, "cannot read", &err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error(dir, "cannot read", &err))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

enum CopyError {
    /// The source is gone.
    Vanished,
    Store(StoreError),
}

/// Copies `from` to the new file `to` (mode 0600), hashing what it copies.
fn copy_hashed(from: &Path, to: &Path, rel: &str) -> Result<BackupFile, CopyError> {
    let mut source = match File::open(from) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(CopyError::Vanished),
        Err(err) => return Err(CopyError::Store(io_error(from, "cannot read", &err))),
    };
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|err| CopyError::Store(io_error(to, "cannot create", &err)))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = source
            .read(&mut buffer)
            .map_err(|err| CopyError::Store(io_error(from, "cannot read", &err)))?;
        let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
            break;
        };
        hasher.update(chunk);
        target
            .write_all(chunk)
            .map_err(|err| CopyError::Store(io_error(to, "cannot write", &err)))?;
        bytes += read as u64;
    }
    target
        .sync_all()
        .map_err(|err| CopyError::Store(io_error(to, "cannot sync", &err)))?;
    Ok(BackupFile {
        path: rel.to_owned(),
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

fn hash_file(path: &Path, rel: &str) -> Result<BackupFile, StoreError> {
    let mut file = File::open(path).map_err(|err| io_error(path, "cannot read", &err))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|err| io_error(path, "cannot read", &err))?;
        let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
            break;
        };
        hasher.update(chunk);
        bytes += read as u64;
    }
    Ok(BackupFile {
        path: rel.to_owned(),
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

fn write_private_file(path: &Path, content: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| io_error(path, "cannot create", &err))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|err| io_error(path, "cannot write", &err))
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| io_error(path, "cannot sync", &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_backup() {
        for bad in ["", "/etc/passwd", "../x", "keys/../../x", "./rampart.db"] {
            assert!(safe_relative(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["rampart.db", "keys/audit_ed25519_key", "recordings/a.cast"] {
            assert!(safe_relative(good).is_ok(), "{good:?} refused");
        }
    }
}
