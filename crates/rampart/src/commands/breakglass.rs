//! `rampart breakglass seal|share|open|list|forget`: offline emergency kits (issue 17). `seal`
//! reads the vault (through `rampart_rotate::kits`, which also seals kits again after
//! rotations); `share` and `open` need only the kit file and the custodians' keys, no
//! configuration and no data directory, for the day Rampart is down.

use super::time_text;
use crate::cli::{BreakglassCommand, Command};
use crate::output::{Table, done, print_json};
use anyhow::{Context, bail};
use rampart_breakglass::{
    Custodian, Kit, MAX_SMALL_FILE_BYTES, Share, load_identities, read_bounded,
};
use rampart_core::AccountRef;
use rampart_core::audit::Actor;
use rampart_rotate::kits::{KitSpec, seal_kit};
use rampart_store::Store;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `path` made absolute without resolving the file itself (it may not exist yet); its
/// directory must exist.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no directory {}", dir.display()))?;
    Ok(dir.join(name))
}

/// A new file, 0600, that must not exist yet.
fn write_new_private_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: BreakglassCommand,
) -> anyhow::Result<()> {
    match command {
        BreakglassCommand::Seal {
            accounts,
            custodians,
            threshold,
            out,
        } => {
            let mut refs: Vec<AccountRef> = Vec::new();
            for text in &accounts {
                let account = AccountRef::parse(text.trim())?;
                if !refs.contains(&account) {
                    refs.push(account);
                }
            }
            let custodians = custodians
                .iter()
                .map(|path| Custodian::from_file(path))
                .collect::<Result<Vec<_>, _>>()?;
            let path = absolute(&out)?;
            let path_text = path.to_string_lossy().into_owned();
            if path.exists() && store.breakglass_kit(&path_text).await?.is_none() {
                bail!(
                    "{} exists and is not a kit sealed here: choose another path or remove it",
                    path.display()
                );
            }
            let spec = KitSpec {
                path: path_text,
                accounts: refs,
                custodians,
                threshold,
            };
            let sealed = seal_kit(store, actor, &spec, "sealed").await?;
            let names: Vec<&str> = sealed.custodians.iter().map(|c| c.name.as_str()).collect();
            done(
                json,
                &sealed,
                &format!(
                    "sealed {} account(s) into {} (kit {}): any {} of {} custodians ({}) open it; \
                     it is sealed again there after these accounts rotate",
                    sealed.accounts.len(),
                    sealed.path,
                    sealed.kit,
                    sealed.threshold,
                    names.len(),
                    names.join(", ")
                ),
            )
        }
        BreakglassCommand::List => {
            let kits = store.breakglass_kits().await?;
            if json {
                return print_json(&kits);
            }
            let mut table = Table::new(["KIT FILE", "KIT", "SEALED", "OPENS WITH", "ACCOUNTS"]);
            for kit in &kits {
                let names: Vec<&str> = kit.custodians.iter().map(|c| c.name.as_str()).collect();
                let accounts: Vec<String> = kit.accounts.iter().map(ToString::to_string).collect();
                table.row([
                    kit.path.clone(),
                    kit.kit.clone(),
                    time_text(kit.sealed_at),
                    format!("{} of {}", kit.threshold, names.join(", ")),
                    accounts.join(", "),
                ]);
            }
            table.print("no break-glass kits: seal one with `rampart breakglass seal`");
            Ok(())
        }
        BreakglassCommand::Grant {
            user,
            asset,
            reason,
            duration,
        } => {
            let user = rampart_core::Name::parse("user", &user)?;
            let asset = rampart_core::Name::parse("asset", &asset)?;
            let duration = rampart_core::time_arg::parse_duration("--for", &duration)?;
            let request = store
                .request_breakglass(actor, &user, &asset, &reason, duration)
                .await?;
            done(
                json,
                &request,
                &format!(
                    "break-glass request {} for {user} on {asset}: pending; two administrators                      other than {user} approve it with `rampart breakglass approve {} --as ADMIN`",
                    request.id, request.id
                ),
            )
        }
        BreakglassCommand::Approve { id, admin } => {
            let admin = rampart_core::Name::parse("user", &admin)?;
            let request = store.approve_breakglass(actor, id.trim(), &admin).await?;
            let message = match (&request.state[..], &request.ends_at) {
                ("active", Some(until)) => format!(
                    "break-glass request {} approved by {}: {} may reach {} until {}",
                    request.id,
                    request.approvals.join(" and "),
                    request.user,
                    request.asset,
                    time_text(*until)
                ),
                _ => format!(
                    "break-glass request {} approved by {admin}: one more administrator must                      approve it",
                    request.id
                ),
            };
            done(json, &request, &message)
        }
        BreakglassCommand::Requests => {
            let requests = store.breakglass_requests().await?;
            if json {
                return print_json(&requests);
            }
            let mut table = Table::new([
                "REQUEST",
                "USER",
                "ASSET",
                "STATE",
                "APPROVED BY",
                "UNTIL",
                "REASON",
            ]);
            for r in &requests {
                table.row([
                    r.id.clone(),
                    r.user.clone(),
                    r.asset.clone(),
                    r.state.clone(),
                    r.approvals.join(", "),
                    r.ends_at.map(time_text).unwrap_or_else(|| "-".into()),
                    r.reason.clone(),
                ]);
            }
            table.print("no break-glass requests");
            Ok(())
        }
        BreakglassCommand::Forget { kit } => {
            let path = absolute(&kit)?.to_string_lossy().into_owned();
            store.forget_breakglass_kit(actor, &path).await?;
            done(
                json,
                &serde_json::json!({ "forgotten": path }),
                &format!("{path} is no longer sealed again after rotations"),
            )
        }
        BreakglassCommand::Share { .. } | BreakglassCommand::Open { .. } => {
            bail!("`breakglass share` and `breakglass open` need no data directory")
        }
    }
}

/// `share` and `open`: the kit file and the custodians' keys, nothing else.
pub fn run_offline(json: bool, command: &Command) -> anyhow::Result<()> {
    let Command::Breakglass(command) = command else {
        bail!("not a break-glass command");
    };
    match command {
        BreakglassCommand::Share { kit, identity, out } => {
            let kit = Kit::read(kit)?;
            let share = kit.extract_share(&load_identities(identity)?)?;
            let text = share.to_text()?;
            match out {
                Some(path) => {
                    write_new_private_file(path, text.as_bytes())?;
                    eprintln!(
                        "wrote the share of {} for kit {} to {}",
                        share.custodian,
                        kit.header.kit,
                        path.display()
                    );
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                }
            }
            Ok(())
        }
        BreakglassCommand::Open {
            kit,
            shares,
            identity,
            out_dir,
        } => {
            let kit = Kit::read(kit)?;
            let mut opened = Vec::new();
            for path in shares {
                let bytes = read_bounded(path, MAX_SMALL_FILE_BYTES)?;
                opened.push(Share::parse(&path.display().to_string(), &bytes)?);
            }
            for key in identity {
                let share = kit
                    .extract_share(&load_identities(std::slice::from_ref(key))?)
                    .with_context(|| format!("with {}", key.display()))?;
                opened.push(share);
            }
            let secrets = kit.open(&opened)?;
            let header = &kit.header;
            if let Some(dir) = out_dir {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let mut written = Vec::new();
                for secret in &secrets {
                    // Names are `login@asset`, both parsed names: no separator in them.
                    let account = AccountRef::parse(&secret.account)?;
                    let path = dir.join(account.to_string());
                    let mut content = zeroize::Zeroizing::new(secret.secret.clone());
                    if !content.ends_with('\n') {
                        content.push('\n');
                    }
                    write_new_private_file(&path, content.as_bytes())?;
                    written.push(serde_json::json!({
                        "account": secret.account,
                        "kind": secret.kind,
                        "file": path.display().to_string(),
                    }));
                }
                if json {
                    return print_json(&serde_json::json!({
                        "kit": header.kit,
                        "sealed_at": header.sealed_at,
                        "accounts": header.accounts,
                        "secrets": written,
                    }));
                }
                println!(
                    "kit {} sealed {}: opened with {} share(s)",
                    header.kit,
                    header.sealed_at,
                    opened.len()
                );
                for (account, file) in header.accounts.iter().zip(&written) {
                    println!(
                        "{}  host {}  {}  {}: {}",
                        account.account,
                        account.host,
                        account.endpoints.join(" "),
                        file["kind"].as_str().unwrap_or_default(),
                        file["file"].as_str().unwrap_or_default()
                    );
                }
                return Ok(());
            }
            if json {
                return print_json(&serde_json::json!({
                    "kit": header.kit,
                    "sealed_at": header.sealed_at,
                    "accounts": header.accounts,
                    "secrets": secrets,
                }));
            }
            println!(
                "kit {} sealed {}: opened with {} share(s)\n",
                header.kit,
                header.sealed_at,
                opened.len()
            );
            for secret in &secrets {
                let place = header.accounts.iter().find(|a| a.account == secret.account);
                match place {
                    Some(place) => println!(
                        "{}  host {}  {}",
                        secret.account,
                        place.host,
                        place.endpoints.join(" ")
                    ),
                    None => println!("{}", secret.account),
                }
                println!("{}:\n{}\n", secret.kind, secret.secret.trim_end());
            }
            Ok(())
        }
        BreakglassCommand::Seal { .. }
        | BreakglassCommand::Grant { .. }
        | BreakglassCommand::Approve { .. }
        | BreakglassCommand::Requests
        | BreakglassCommand::List
        | BreakglassCommand::Forget { .. } => {
            bail!("this break-glass command needs the data directory")
        }
    }
}
