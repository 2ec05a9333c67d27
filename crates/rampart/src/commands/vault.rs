//! `rampart vault ...`

use crate::cli::VaultCommand;
use crate::output::{done, print_fields, print_json};
use rampart_core::audit::Actor;
use rampart_store::Store;
use std::path::Path;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: VaultCommand,
) -> anyhow::Result<()> {
    match command {
        VaultCommand::Status => {
            let status = store.vault_status().await?;
            if json {
                print_json(&status)?;
            } else {
                let by_key: Vec<String> = status
                    .secrets_by_key
                    .iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect();
                print_fields(&[
                    ("master key source", status.master_key_source.clone()),
                    ("active key", status.active_key_id.clone()),
                    ("keys held", status.keys_held.join(", ")),
                    ("secrets", status.secrets.to_string()),
                    (
                        "secrets by key",
                        if by_key.is_empty() {
                            "-".to_owned()
                        } else {
                            by_key.join(", ")
                        },
                    ),
                    (
                        "unreadable",
                        if status.unreadable.is_empty() {
                            "none".to_owned()
                        } else {
                            status.unreadable.join(", ")
                        },
                    ),
                ]);
            }
            if !status.unreadable.is_empty() {
                anyhow::bail!(
                    "{} secret(s) do not open with the keys this node holds",
                    status.unreadable.len()
                );
            }
            Ok(())
        }
        VaultCommand::RotateKey { new_key_file } => {
            let report = store.rotate_vault_key(actor, new_key_file).await?;
            let mut message = format!(
                "re-encrypted {} secret(s) under the new master key {} (was {})",
                report.secrets_reencrypted,
                report.new_key_id,
                report.old_key_ids.join(", ")
            );
            if let Some(path) = &report.new_key_file {
                message.push_str(&format!(
                    "\nnow configure the new key ({}) for every process that uses this data directory \
                     and restart them; the old key no longer opens anything",
                    path.display()
                ));
            }
            done(json, &report, &message)
        }
        VaultCommand::GenerateKey { .. } => anyhow::bail!("generate-key needs no store"),
    }
}

pub fn generate_key(path: &Path, json: bool) -> anyhow::Result<()> {
    rampart_store::vault::write_new_master_key_file(path)?;
    done(
        json,
        &serde_json::json!({ "written": path }),
        &format!(
            "wrote a new master key to {} (mode 0600); keep it off the data directory's backups",
            path.display()
        ),
    )
}
