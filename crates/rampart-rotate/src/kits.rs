//! Sealing break-glass kits from the vault (issue 17): `rampart breakglass seal` and, after an
//! account rotates, every kit that holds it is sealed again to the same path for the same
//! custodians, so a kit never holds a secret older than the vault's. The kit format and its
//! cryptography are `rampart-breakglass`'s; this reads the secrets, writes the file and records
//! the seal parameters in the store.
//!
//! INVARIANT: a kit file is replaced atomically (a new 0600 file beside it, then a rename), so a
//! crash leaves the old kit or the new one, never half of one. The old kit's secrets stop
//! working on the targets once the rotation committed; the file that replaces it is the one to
//! print or copy offline again.

use rampart_breakglass::{Custodian, Kit, KitAccount, KitSecret, SealRequest};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{AccountRef, ExposeSecret, SecretKind};
use rampart_store::{BreakglassKit, KitCustodian, Store};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a kit could not be sealed; never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Store(#[from] rampart_store::StoreError),
    #[error(transparent)]
    Kit(#[from] rampart_breakglass::KitError),
    #[error("cannot write the kit {path}: {why}")]
    Write { path: String, why: String },
}

/// What to seal: where, which accounts, for whom.
#[derive(Debug, Clone)]
pub struct KitSpec {
    /// Absolute.
    pub path: String,
    pub accounts: Vec<AccountRef>,
    pub custodians: Vec<Custodian>,
    pub threshold: u8,
}

impl KitSpec {
    fn from_recorded(kit: &BreakglassKit) -> Result<Self, SealError> {
        let custodians = kit
            .custodians
            .iter()
            .map(|c| Custodian::new(&c.name, &c.recipient))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path: kit.path.clone(),
            accounts: kit.accounts.clone(),
            custodians,
            threshold: kit.threshold,
        })
    }
}

/// Seals the accounts' current secrets into a kit at `spec.path` (replacing the file there)
/// and records it; `reason` goes into the audit event.
pub async fn seal_kit(
    store: &Store,
    actor: &Actor,
    spec: &KitSpec,
    reason: &str,
) -> Result<BreakglassKit, SealError> {
    let mut accounts = Vec::with_capacity(spec.accounts.len());
    let mut secrets = Vec::with_capacity(spec.accounts.len());
    for account in &spec.accounts {
        let asset = store.asset(&account.asset).await?;
        let (kind, secret) = store.reveal_account_secret(account).await?;
        accounts.push(KitAccount {
            account: account.to_string(),
            login: account.login.to_string(),
            host: asset.host.clone(),
            endpoints: asset
                .endpoints
                .iter()
                .map(|e| format!("{}:{}", e.protocol, e.port))
                .collect(),
            host_key: asset.host_key.clone(),
        });
        secrets.push(KitSecret {
            account: account.to_string(),
            kind: match kind {
                SecretKind::Password => "password".into(),
                SecretKind::PrivateKey => "private_key".into(),
            },
            secret: secret.expose_secret().to_owned(),
        });
    }
    let sealed_at = time::OffsetDateTime::now_utc();
    let kit = Kit::seal(SealRequest {
        accounts,
        secrets,
        custodians: &spec.custodians,
        threshold: spec.threshold,
        sealed_at: sealed_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })?;
    write_replacing(Path::new(&spec.path), kit.to_text()?.as_bytes())?;
    let recorded = BreakglassKit {
        path: spec.path.clone(),
        accounts: spec.accounts.clone(),
        custodians: spec
            .custodians
            .iter()
            .map(|c| KitCustodian {
                name: c.name.clone(),
                recipient: c.recipient.clone(),
            })
            .collect(),
        threshold: spec.threshold,
        kit: kit.header.kit.clone(),
        sealed_at,
    };
    store
        .record_breakglass_kit(actor, &recorded, reason)
        .await?;
    Ok(recorded)
}

/// Seals again every kit that holds `account` (after its rotation committed). A kit that cannot
/// be sealed raises an alert (every sink delivers it) and does not stop the others.
pub async fn reseal_after_rotation(store: &Store, actor: &Actor, account: &AccountRef) {
    let kits = match store.breakglass_kits_covering(account).await {
        Ok(kits) => kits,
        Err(err) => {
            alert(store, actor, account, "(unknown)", &err.to_string()).await;
            return;
        }
    };
    for kit in kits {
        let sealed = match KitSpec::from_recorded(&kit) {
            Ok(spec) => {
                seal_kit(
                    store,
                    actor,
                    &spec,
                    &format!("resealed after the rotation of {account}"),
                )
                .await
            }
            Err(err) => Err(err),
        };
        match sealed {
            Ok(done) => tracing::info!(path = %done.path, kit = %done.kit, %account,
                "break-glass kit sealed again after a rotation"),
            Err(err) => alert(store, actor, account, &kit.path, &err.to_string()).await,
        }
    }
}

async fn alert(store: &Store, actor: &Actor, account: &AccountRef, path: &str, why: &str) {
    tracing::error!(%account, path, error = why, "break-glass kit not sealed again");
    let event = AuditEvent::AlertRaised {
        alert: "breakglass_kit_not_resealed".into(),
        severity: "critical".into(),
        user: String::new(),
        session: None,
        target: Some(account.to_string()),
        detail: format!(
            "the break-glass kit {path} still holds the secret {account} had before its \
             rotation: {why}; seal it again with `rampart breakglass seal`"
        ),
    };
    if let Err(err) = store.record_event(actor, &event).await {
        tracing::error!(error = %err, "cannot record the alert");
    }
}

/// Writes `content` to a new 0600 file beside `path`, then renames it over `path`.
fn write_replacing(path: &Path, content: &[u8]) -> Result<(), SealError> {
    let error = |why: String| SealError::Write {
        path: path.display().to_string(),
        why,
    };
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .ok_or_else(|| error("no directory".into()))?;
    let name = path
        .file_name()
        .ok_or_else(|| error("no file name".into()))?
        .to_string_lossy();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|err| error(err.to_string()))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(err.to_string()));
    }
    Ok(())
}
