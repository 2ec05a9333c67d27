//! The administration commands. Each opens the data directory directly (safe while the server
//! runs), makes its change in one transaction with its audit event, and prints the result.

mod accounts;
mod agents;
mod alerts;
mod approvals;
mod assets;
pub(crate) mod audit;
mod backup;
pub(crate) mod breakglass;
mod ca;
mod db_tokens;
mod doctor;
mod domains;
mod grants;
mod groups;
mod kube;
mod ldap;
mod nodes;
mod queries;
pub(crate) mod recordings;
mod report;
mod requests;
pub(crate) mod rotation;
mod rules;
mod sessions;
mod telnet;
mod tokens;
mod users;
mod vault;
pub(crate) mod verify;
mod video;

use crate::cli::Command;
use crate::config::Config;
use anyhow::{Context, bail};
use rampart_core::audit::Actor;
use rampart_core::{Name, SecretString};
use rampart_store::{Store, StoreOptions};
use std::io::{IsTerminal, Read};
use std::path::Path;
use zeroize::Zeroizing;

/// The largest secret or key file a command reads.
const MAX_INPUT_BYTES: u64 = 64 * 1024;

pub async fn run(config: &Config, json: bool, command: Command) -> anyhow::Result<()> {
    // Needs no store: it only writes a key file for the operator to configure.
    if let Command::Vault(crate::cli::VaultCommand::GenerateKey { file }) = &command {
        return vault::generate_key(file, json);
    }
    if let Command::Init = command {
        return init(config, json).await;
    }
    if let Command::Restore(args) = &command {
        return backup::restore(config, json, args).await;
    }
    // Needs no store: it asks the bucket.
    if let Command::Recording(crate::cli::RecordingCommand::CheckBucket) = &command {
        return recordings::check_bucket(config, json);
    }
    // Shared: a gateway test connects as the server does, with the store's handle.
    let store = std::sync::Arc::new(open_store(config).await?);
    let actor = local_actor();
    let signed_before = crate::seals::before_command(&store).await?;
    let result = match command {
        Command::Serve(_) | Command::Init | Command::Restore(_) | Command::Completion { .. } => {
            bail!("not an administration command")
        }
        Command::User(cmd) => users::run(&store, &actor, json, cmd).await,
        Command::Group(cmd) => groups::run(&store, &actor, json, cmd).await,
        Command::Asset(cmd) => {
            // `asset hostkey --scan` reaches a domain's asset through its gateways.
            let dialer =
                rampart_ssh::Dialer::with_gateways(store.clone(), config.target_host_keys.into());
            assets::run(&store, &dialer, &actor, json, cmd).await
        }
        Command::Account(cmd) if rotation::handles(&cmd) => {
            rotation::run(&store, config, &actor, json, cmd).await
        }
        Command::Account(cmd) => accounts::run(&store, &actor, json, cmd).await,
        Command::Domain(cmd) => domains::run_domain(&store, &actor, json, cmd).await,
        Command::Gateway(cmd) => {
            let policy = config.target_host_keys.into();
            domains::run_gateway(&store, &actor, json, policy, cmd).await
        }
        Command::Grant(cmd) => grants::run(&store, &actor, &config.auth, json, cmd).await,
        Command::Rule(cmd) => rules::run(&store, &actor, json, cmd).await,
        Command::Alert(cmd) => alerts::run(&store, &actor, json, cmd).await,
        Command::Session(cmd) => sessions::run(&store, &actor, json, cmd).await,
        Command::Node(crate::cli::NodeCommand::List) => nodes::list(&store, json).await,
        Command::Vault(cmd) => vault::run(&store, &actor, json, cmd).await,
        Command::Audit(crate::cli::AuditCommand::Verify { session, anchor }) => {
            let options = verify::Options {
                only: session,
                anchors: anchor,
                seal_interval: config.audit.seal_interval,
                bucket: config.recording_store.s3().cloned(),
            };
            verify::verify(&store, json, &options).await
        }
        Command::Audit(crate::cli::AuditCommand::Anchor { out }) => {
            verify::anchor(&store, out.as_deref()).await
        }
        Command::Audit(crate::cli::AuditCommand::Retention) => {
            let removed =
                audit::apply_retention(&store, &actor, config.audit.retention_days).await?;
            crate::output::done(
                json,
                &serde_json::json!({ "sessions_removed": removed }),
                &format!(
                    "removed {} session(s) that ended more than {} days ago, with their recordings",
                    removed.len(),
                    config.audit.retention_days
                ),
            )
        }
        Command::Audit(crate::cli::AuditCommand::Queries {
            user,
            asset,
            since,
            grep,
        }) => queries::run(&store, json, user, asset, since, grep).await,
        Command::Audit(cmd) => audit::run(&store, &actor, json, cmd).await,
        Command::Replay(args) => recordings::replay(&store, config, &actor, &args).await,
        Command::Recording(cmd) => recordings::run(&store, config, &actor, json, cmd).await,
        Command::Token(cmd) => tokens::run(&store, &actor, json, cmd).await,
        Command::Backup(args) => backup::backup(&store, &actor, json, &args).await,
        Command::Doctor => doctor::run(config, &store, json).await,
        Command::Request(cmd) => requests::run(&store, &actor, json, cmd, &config.requests).await,
        Command::Approval(cmd) => approvals::run(&store, &actor, json, cmd).await,
        Command::Report(args) => report::run(config, &store, &actor, &args).await,
        Command::Db(crate::cli::DbCommand::Token(cmd)) => {
            db_tokens::run(&store, &actor, json, cmd).await
        }
        Command::Kube(cmd) => kube::run(config, &store, &actor, json, cmd).await,
        Command::Agent(crate::cli::AgentArgs {
            command: Some(cmd), ..
        }) => agents::run(&store, &actor, json, cmd).await,
        Command::Agent(_) => bail!("agent mode does not open a data directory"),
        Command::Login(_) => bail!("rampart login does not open a data directory"),
        Command::Ca(cmd) => ca::run(&store, json, cmd),
        Command::Breakglass(cmd) => breakglass::run(&store, &actor, json, cmd).await,
        Command::Rotation(cmd) => rotation::run_policies(&store, &actor, json, cmd).await,
        Command::Ldap(cmd) => ldap::run(config, &store, &actor, json, cmd).await,
    };
    crate::seals::sign_after_command(&store, signed_before).await;
    if let Ok(store) = std::sync::Arc::try_unwrap(store) {
        store.close().await;
    }
    result
}

/// Opens the existing store.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let options = StoreOptions {
        data_dir: config.data_dir.clone(),
        master_key: config.master_key.clone(),
        database: config.store_url.clone(),
    };
    // Never creates one: a command in the wrong folder must not start a new, empty node.
    let (store, _) = Store::open_existing(&options).await?;
    Ok(store)
}

/// `rampart init`: creates the data directory, its keys and its database; refuses an existing one.
async fn init(config: &Config, json: bool) -> anyhow::Result<()> {
    if rampart_store::DataDir::exists_for(&config.data_dir, config.store_url.is_some()) {
        bail!(
            "a data directory already exists at {}: nothing was changed",
            config.data_dir.display()
        );
    }
    let options = StoreOptions {
        data_dir: config.data_dir.clone(),
        master_key: config.master_key.clone(),
        database: config.store_url.clone(),
    };
    let (store, report) = Store::create_or_open(&options).await?;
    // The log starts signed, so the commands that follow may sign what they add.
    crate::seals::sign_after_command(&store, (None, true)).await;
    let dir = store.data_dir().clone();
    store.close().await;
    let master_key = if report.generated_master_key {
        dir.master_key_path().display().to_string()
    } else {
        config.master_key_describe()
    };
    crate::output::done(
        json,
        &serde_json::json!({
            "data_dir": dir.root().display().to_string(),
            "master_key": master_key,
        }),
        &format!(
            "created the data directory {} (mode 0700) with its database and keys\n\
             vault master key: {master_key}{}\n\
             start the gateway with `rampart serve` (same --data-dir)",
            dir.root().display(),
            if report.generated_master_key {
                " (mode 0600; back it up apart from the database)"
            } else {
                ""
            },
        ),
    )
}

/// The operator running this command, as the audit log records them.
pub(crate) fn local_actor() -> Actor {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_else(|| "unknown".to_owned());
    // Under sudo, say who ran it as well as whose account it ran under.
    let os_user = match std::env::var("SUDO_USER") {
        Ok(sudo_user) if sudo_user != name => {
            format!("{name} (uid {uid}, via sudo by {sudo_user})")
        }
        _ => format!("{name} (uid {uid})"),
    };
    Actor::LocalCli { os_user }
}

pub(crate) fn name(what: &str, text: &str) -> anyhow::Result<Name> {
    Ok(Name::parse(what, text)?)
}

/// Reads a secret from standard input: prompted without echo on a terminal (twice when
/// `confirm`), else everything up to EOF with one trailing newline removed.
pub(crate) fn read_secret_from_stdin(prompt: &str, confirm: bool) -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password(prompt)?);
        if confirm {
            let second = Zeroizing::new(rpassword::prompt_password("Again: ")?);
            if *first != *second {
                bail!("the two entries differ; nothing was changed");
            }
        }
        return Ok(SecretString::from(first.to_string()));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("standard input is longer than {MAX_INPUT_BYTES} bytes");
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        bail!(
            "standard input is empty: pipe the secret in, e.g. `printf %s \"$PW\" | rampart ...`"
        );
    }
    let text = String::from_utf8(std::mem::take(&mut *bytes))
        .map_err(|_| anyhow::anyhow!("standard input is not UTF-8 text"))?;
    Ok(SecretString::from(text))
}

/// Reads a small text file (a key), refusing anything large.
pub(crate) fn read_small_file(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", path.display());
    }
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "{} is larger than {MAX_INPUT_BYTES} bytes: not a key file",
            path.display()
        );
    }
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a text file: not a key file", path.display()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// A time for people: RFC 3339 in UTC, to the second.
pub(crate) fn time_text(at: time::OffsetDateTime) -> String {
    rampart_core::time_arg::format_rfc3339(at.replace_nanosecond(0).unwrap_or(at))
}

/// Removing `what` also removes `cascade`: on a terminal the person is asked, otherwise `--yes`
/// must say so. Nothing to take along needs no confirmation.
pub(super) fn confirm_cascade(
    what: &str,
    cascade: rampart_store::Cascade,
    yes: bool,
) -> anyhow::Result<()> {
    if cascade.is_empty() || yes {
        return Ok(());
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!("Removing {what} also removes {cascade}. Remove them all? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
        bail!("nothing was removed");
    }
    bail!(
        "removing {what} also removes {cascade}: pass --yes to remove them all (nothing was removed)"
    )
}
