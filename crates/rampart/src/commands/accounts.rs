//! `rampart account ...`: secrets go in, never come out.

use super::{name, read_secret_from_stdin, read_small_file, time_text};
use crate::cli::AccountCommand;
use crate::output::{Table, done, print_json};
use rampart_core::audit::Actor;
use rampart_core::{AccountRef, SecretKind, SecretString};
use rampart_store::{NewAccountSecret, Store};

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: AccountCommand,
) -> anyhow::Result<()> {
    match command {
        AccountCommand::Add {
            account,
            password_stdin,
            key_file,
        } => {
            let account = AccountRef::parse(&account)?;
            // Fail on an unknown asset before asking for the secret.
            store.asset(&account.asset).await?;
            let secret = match (password_stdin, key_file) {
                (_, Some(path)) => NewAccountSecret {
                    kind: SecretKind::PrivateKey,
                    value: SecretString::from(read_small_file(&path)?.to_string()),
                },
                (true, None) => NewAccountSecret {
                    kind: SecretKind::Password,
                    value: read_secret_from_stdin(&format!("Password for {account}: "), true)?,
                },
                (false, None) => anyhow::bail!("give --password-stdin or --key-file FILE"),
            };
            let added = store.add_account(actor, &account, &secret).await?;
            done(
                json,
                &added,
                &format!(
                    "added account {account} ({} in the vault)",
                    added.secret_kind
                ),
            )
        }
        AccountCommand::List { asset } => {
            let asset = asset.map(|a| name("asset", &a)).transpose()?;
            let accounts = store.list_accounts(asset.as_ref()).await?;
            if json {
                return print_json(&accounts);
            }
            let mut table = Table::new(["ACCOUNT", "SECRET", "CREATED"]);
            for account in &accounts {
                table.row([
                    format!("{}@{}", account.login, account.asset),
                    account.secret_kind.to_string(),
                    time_text(account.created_at),
                ]);
            }
            table.print(
                "no accounts yet: add one with `rampart account add LOGIN@ASSET --password-stdin`",
            );
            Ok(())
        }
        AccountCommand::Remove { account } => {
            let account = AccountRef::parse(&account)?;
            store.remove_account(actor, &account).await?;
            let result = serde_json::json!({ "removed": account.to_string() });
            done(
                json,
                &result,
                &format!("removed account {account} and its secret"),
            )
        }
        AccountCommand::Rotate { .. }
        | AccountCommand::History { .. }
        | AccountCommand::Set { .. } => {
            anyhow::bail!("rotation commands are run by commands::rotation")
        }
    }
}
