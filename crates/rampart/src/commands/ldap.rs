//! `rampart ldap ...`

use crate::cli::LdapCommand;
use crate::config::Config;
use crate::output::done;
use anyhow::Context;
use rampart_core::audit::Actor;
use rampart_store::Store;

pub async fn run(
    config: &Config,
    store: &Store,
    actor: &Actor,
    json: bool,
    command: LdapCommand,
) -> anyhow::Result<()> {
    match command {
        LdapCommand::Sync => {
            let Some(settings) = config.ldap.clone() else {
                anyhow::bail!(
                    "no LDAP directory is configured: add an [ldap] section (see README)"
                );
            };
            let directory = rampart_ldap::Directory::new(settings);
            let summary = rampart_ldap::sync_once(store, &directory, actor)
                .await
                .context("LDAP sync failed; nothing was changed")?;
            let list = |names: &[String]| {
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            };
            let mut text = format!(
                "LDAP sync: {} created{}, {} updated{}, {} disabled{}, {} unchanged",
                summary.created.len(),
                list(&summary.created),
                summary.updated.len(),
                list(&summary.updated),
                summary.disabled.len(),
                list(&summary.disabled),
                summary.unchanged,
            );
            if !summary.enabled.is_empty() {
                text.push_str(&format!("; enabled again{}", list(&summary.enabled)));
            }
            for skipped in &summary.skipped {
                text.push_str(&format!("\nskipped {skipped}"));
            }
            done(json, &summary, &text)
        }
    }
}
