//! The data directory: one folder that holds everything a node keeps on disk.
//!
//! ```text
//! rampart-data/            mode 0700
//!   rampart.db (+ -wal, -shm)   the SQLite store
//!   rampart.lock               serializes initialisation between processes (server and CLI)
//!   serve.lock                 held (flock) by the one `rampart serve` for its lifetime; its PID
//!   keys/                      mode 0700, every file 0600
//!     vault-master.key         the vault master key, unless supplied by file or environment
//!     vault-master.key.next    only while a key rotation is in progress
//!     ssh_host_ed25519_key     the node's SSH host key (OpenSSH format; .pub beside it)
//!     audit_ed25519_key        the node's audit signing key (OpenSSH format; .pub beside it)
//!   recordings/                sealed session recordings (asciicast + manifest)
//!   logs/                      the server's log file
//! ```

use crate::StoreError;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A data directory that exists and has safe permissions.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Held while a process initialises the data directory; dropping it lets the next one in.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Held by `rampart serve` for its whole life: one server per data directory. Crash recovery
/// (sealing interrupted recordings, closing sessions left live) asks for it, so it can only run
/// in the process that owns the directory.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Creates `root` (mode 0700) if it is missing and takes its serve lock without waiting. If
    /// another process holds it, fails with that process's PID before anything else is touched.
    pub fn acquire(root: &Path) -> Result<Self, StoreError> {
        create_root(root)?;
        let path = root.join("serve.lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| io_error(&path, "cannot open", &err))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder writes its PID right after locking; at worst we read it empty.
                let mut text = String::new();
                let pid = file
                    .take(32)
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse::<u32>().ok());
                return Err(StoreError::InUse {
                    path: root.to_path_buf(),
                    pid,
                });
            }
            Err(TryLockError::Error(err)) => return Err(io_error(&path, "cannot lock", &err)),
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|err| io_error(&path, "cannot write", &err))?;
        Ok(Self { _file: file })
    }
}

/// Creates the data directory itself (mode 0700) if it is missing; only `serve` and `init` do.
fn create_root(root: &Path) -> Result<(), StoreError> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::DataDir(format!(
            "{} exists and is not a directory",
            root.display()
        ))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|err| io_error(root, "cannot create", &err)),
        Err(err) => Err(io_error(root, "cannot read", &err)),
    }
}

impl DataDir {
    /// Whether `root` holds a data directory (its database exists).
    pub fn exists(root: &Path) -> bool {
        root.join("rampart.db").is_file()
    }

    /// Opens the data directory at `root`. With `create`, makes it (mode 0700) and its
    /// subdirectories if missing; without, a missing one is [`StoreError::NoDataDir`] and
    /// nothing is created. Returns whether it was new (it had no database).
    /// Whether a data directory exists at `root`: with a shared database (`shared`:
    /// PostgreSQL) it holds no database, and exists once it holds the node's keys.
    pub fn exists_for(root: &Path, shared: bool) -> bool {
        if shared {
            root.join("keys").is_dir()
        } else {
            Self::exists(root)
        }
    }

    /// Like [`DataDir::exists_for`], `shared` says whether the database is elsewhere.
    pub fn prepare(root: &Path, create: bool, shared: bool) -> Result<(Self, bool), StoreError> {
        let created = !Self::exists_for(root, shared);
        if created && !create {
            return Err(StoreError::NoDataDir(root.to_path_buf()));
        }
        create_root(root)?;
        let dir = Self {
            root: root.to_path_buf(),
        };
        for sub in [dir.keys_dir(), dir.logs_dir(), dir.recordings_dir()] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sub)
                .map_err(|err| io_error(&sub, "cannot create", &err))?;
        }
        Ok((dir, created))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the data directory's initialisation lock, waiting for another process to finish.
    pub fn lock(&self) -> Result<DataDirLock, StoreError> {
        let path = self.root.join("rampart.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| io_error(&path, "cannot open", &err))?;
        file.lock()
            .map_err(|err| io_error(&path, "cannot lock", &err))?;
        Ok(DataDirLock { _file: file })
    }

    /// Permission bits that let other users in, if any (the caller warns about them).
    pub fn loose_permissions(&self) -> Option<u32> {
        let mode = fs::metadata(&self.root).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }

    /// SQLite creates its files with the process umask; the database holds sealed secrets and
    /// password hashes, so only the owner may read it.
    pub(crate) fn restrict_database_files(&self) -> Result<(), StoreError> {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.database_path().into_os_string();
            name.push(suffix);
            let path = PathBuf::from(name);
            if path.exists() {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(|err| io_error(&path, "cannot restrict", &err))?;
            }
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.root.join("rampart.db")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Session recordings: `<session>.cast` and `<session>.manifest`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.root.join("recordings")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// This data directory's own id (`node-id`, made on first use): a cluster node's row names
    /// the directory it runs from, so a node restarting from its own directory (the previous
    /// process is dead: this one holds the serve lock) takes its row over at once, and another
    /// directory using the same node name is refused while that node is alive. Not in `keys/`,
    /// which nodes copy from one another.
    pub fn node_id(&self) -> Result<String, StoreError> {
        let path = self.root.join("node-id");
        match fs::read_to_string(&path) {
            Ok(id) => Ok(id.trim().to_owned()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let id = uuid::Uuid::now_v7().to_string();
                write_new_secret_file(&path, format!("{id}\n").as_bytes())?;
                Ok(id)
            }
            Err(err) => Err(io_error(&path, "cannot read", &err)),
        }
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.keys_dir().join("vault-master.key")
    }

    pub fn host_key_path(&self) -> PathBuf {
        self.keys_dir().join("ssh_host_ed25519_key")
    }

    pub fn audit_key_path(&self) -> PathBuf {
        self.keys_dir().join("audit_ed25519_key")
    }

    /// The host certificate authority: signs the node's host key per asset (ProxyJump hops).
    pub fn host_ca_key_path(&self) -> PathBuf {
        self.keys_dir().join("host_ca_ed25519_key")
    }

    /// The user certificate authority: signs users' SSH keys for a short time.
    pub fn user_ca_key_path(&self) -> PathBuf {
        self.keys_dir().join("user_ca_ed25519_key")
    }
}

/// Writes a new secret file with mode 0600. Fails if `path` already exists, and never leaves a
/// half-written file under `path`: the content goes to a temporary file that is then linked in.
pub fn write_new_secret_file(path: &Path, content: &[u8]) -> Result<(), StoreError> {
    let tmp = temporary_sibling(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    result.map_err(|err| io_error(path, "cannot write", &err))?;
    sync_parent(path)
}

/// Atomically replaces `to` with `from` and makes the rename durable.
pub(crate) fn replace_file(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|err| io_error(to, "cannot replace", &err))?;
    sync_parent(to)
}

fn temporary_sibling(path: &Path) -> Result<PathBuf, StoreError> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|err| StoreError::DataDir(format!("no randomness from the OS: {err}")))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", hex(&suffix)));
    Ok(path.with_file_name(name))
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| io_error(parent, "cannot sync", &err))?;
    }
    Ok(())
}

pub(crate) fn io_error(path: &Path, action: &str, err: &std::io::Error) -> StoreError {
    StoreError::DataDir(format!("{action} {}: {err}", path.display()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
