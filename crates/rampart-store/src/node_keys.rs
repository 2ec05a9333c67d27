//! The node's own key pairs: the SSH host key users pin, the audit key that signs evidence, and
//! the two SSH certificate authorities (`crate::ssh_ca`).

use crate::StoreError;
use crate::data_dir::{DataDir, write_new_secret_file};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey};
use std::path::Path;
use zeroize::Zeroizing;

/// Generates whichever of the node's keys are missing; returns the paths it created.
pub(crate) fn ensure_node_keys(dir: &DataDir) -> Result<Vec<String>, StoreError> {
    let mut generated = Vec::new();
    for (path, comment) in [
        (dir.host_key_path(), "rampart ssh host key"),
        (dir.audit_key_path(), "rampart audit signing key"),
        (dir.host_ca_key_path(), "rampart host CA"),
        (dir.user_ca_key_path(), "rampart user CA"),
    ] {
        if !path.exists() {
            generate_ed25519_key(&path, comment)?;
            generated.push(path.display().to_string());
        }
        // The public half beside it, for operators to hand out (known_hosts lines, checks).
        let public_path = path.with_extension("pub");
        if !public_path.exists() {
            let public = public_key_of(&path)?;
            std::fs::write(&public_path, format!("{}\n", public.trim_end()))
                .map_err(|err| crate::data_dir::io_error(&public_path, "cannot write", &err))?;
        }
    }
    Ok(generated)
}

/// Writes a new ed25519 private key (OpenSSH format) to `path`, created 0600 atomically; fails
/// if the file exists. A dial-out agent's identity is made with it.
pub fn generate_ed25519_key_file(path: &Path, comment: &str) -> Result<(), StoreError> {
    generate_ed25519_key(path, comment)
}

fn generate_ed25519_key(path: &Path, comment: &str) -> Result<(), StoreError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())
        .map_err(|err| StoreError::DataDir(format!("no randomness from the OS: {err}")))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|err| StoreError::DataDir(format!("cannot encode {}: {err}", path.display())))?;
    write_new_secret_file(path, pem.as_bytes())
}

/// Reads the public half of a node key, in `authorized_keys` form.
pub fn public_key_of(path: &Path) -> Result<String, StoreError> {
    let pem = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|err| crate::data_dir::io_error(path, "cannot read", &err))?,
    );
    let key = PrivateKey::from_openssh(pem.as_bytes()).map_err(|err| {
        StoreError::DataDir(format!("{} is not a valid key: {err}", path.display()))
    })?;
    key.public_key()
        .to_openssh()
        .map_err(|err| StoreError::DataDir(format!("cannot encode public key: {err}")))
}
