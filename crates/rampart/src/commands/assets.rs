//! `rampart asset ...`

use super::{name, read_small_file, time_text};
use crate::cli::AssetCommand;
use crate::output::{Table, done, join_or_dash, or_dash, print_fields, print_json};
use rampart_core::audit::Actor;
use rampart_core::{Label, parse_host};
use rampart_store::{NewAsset, Store};

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: AssetCommand,
) -> anyhow::Result<()> {
    match command {
        AssetCommand::Add {
            name: asset,
            host,
            port,
            labels,
        } => {
            let asset = NewAsset {
                name: name("asset", &asset)?,
                host: parse_host(&host)?,
                port,
                labels: labels
                    .iter()
                    .map(|l| Label::parse(l))
                    .collect::<Result<_, _>>()?,
            };
            let added = store.add_asset(actor, &asset).await?;
            done(
                json,
                &added,
                &format!("added asset {} ({}:{})", added.name, added.host, added.port),
            )
        }
        AssetCommand::List => {
            let assets = store.list_assets().await?;
            if json {
                return print_json(&assets);
            }
            let mut table = Table::new(["NAME", "HOST", "PORT", "LABELS", "HOST KEY"]);
            for asset in &assets {
                table.row([
                    asset.name.to_string(),
                    asset.host.clone(),
                    asset.port.to_string(),
                    join_or_dash(asset.labels.iter().map(ToString::to_string)),
                    if asset.host_key.is_some() {
                        "pinned"
                    } else {
                        "not yet seen"
                    }
                    .to_owned(),
                ]);
            }
            table.print("no assets yet: add one with `rampart asset add NAME --host HOST`");
            Ok(())
        }
        AssetCommand::Show { name: asset } => {
            let asset = store.asset(&name("asset", &asset)?).await?;
            if json {
                return print_json(&asset);
            }
            print_fields(&[
                ("name", asset.name.to_string()),
                ("id", asset.id.to_string()),
                ("host", asset.host.clone()),
                ("port", asset.port.to_string()),
                (
                    "labels",
                    join_or_dash(asset.labels.iter().map(ToString::to_string)),
                ),
                ("host key", or_dash(asset.host_key.clone())),
                ("created", time_text(asset.created_at)),
            ]);
            Ok(())
        }
        AssetCommand::Hostkey {
            name: asset,
            key_file,
            clear,
            scan,
            pin,
        } => {
            let asset = name("asset", &asset)?;
            if scan {
                return scan_host_key(store, actor, json, &asset, pin.as_deref()).await;
            }
            match key_file {
                Some(path) if !clear => {
                    let key = host_key_from_file(&path)?;
                    store
                        .pin_asset_host_key(actor, &asset, &key, "set by administrator", true)
                        .await?;
                    let pinned = store.asset(&asset).await?;
                    done(json, &pinned, &format!("pinned the host key of {asset}"))
                }
                _ => {
                    store.clear_asset_host_key(actor, &asset).await?;
                    let cleared = store.asset(&asset).await?;
                    done(
                        json,
                        &cleared,
                        &format!(
                            "forgot the host key of {asset}; under ssh.target_host_keys = \
                             \"pin-on-first-use\" the next connection pins the key it sees, under \
                             \"require-pinned\" pin one with --scan --pin or --key-file"
                        ),
                    )
                }
            }
        }
        AssetCommand::Remove { name: asset } => {
            let asset = name("asset", &asset)?;
            let (accounts, grants) = store.remove_asset(actor, &asset).await?;
            let result = serde_json::json!({ "removed": asset, "accounts_removed": accounts, "grants_removed": grants });
            done(
                json,
                &result,
                &format!("removed asset {asset} with {accounts} account(s) and {grants} grant(s)"),
            )
        }
    }
}

/// `asset hostkey NAME --scan [--pin FINGERPRINT]`: fetches the key the asset presents and shows
/// it beside what is pinned; pins it only when the administrator names its fingerprint, so what
/// is pinned is exactly what they confirmed (a second fetch could meet another key).
async fn scan_host_key(
    store: &Store,
    actor: &Actor,
    json: bool,
    asset: &rampart_core::Name,
    pin: Option<&str>,
) -> anyhow::Result<()> {
    let record = store.asset(asset).await?;
    let scanned = rampart_ssh::scan_host_key(&record.host, record.port).await?;
    let pinned = record
        .host_key
        .as_deref()
        .map(|text| rampart_store::ssh_keys::parse_public_keys("pinned host key", text))
        .transpose()?
        .and_then(|keys| keys.into_iter().next());
    let matches_pinned = pinned
        .as_ref()
        .map(|p| p.fingerprint == scanned.fingerprint);
    let Some(expected) = pin else {
        let shown = serde_json::json!({
            "asset": asset.to_string(),
            "address": format!("{}:{}", record.host, record.port),
            "host_key": scanned.openssh,
            "fingerprint": scanned.fingerprint,
            "pinned_fingerprint": pinned.as_ref().map(|p| p.fingerprint.clone()),
            "matches_pinned": matches_pinned,
        });
        if json {
            return print_json(&shown);
        }
        let status = match (&pinned, matches_pinned) {
            (None, _) => "nothing pinned yet".to_owned(),
            (Some(_), Some(true)) => "the pinned key is this one".to_owned(),
            (Some(p), _) => format!("a different key is pinned ({})", p.fingerprint),
        };
        print_fields(&[
            ("asset", asset.to_string()),
            ("address", format!("{}:{}", record.host, record.port)),
            ("fingerprint", scanned.fingerprint.clone()),
            ("host key", scanned.openssh.clone()),
            ("pinned", status),
        ]);
        println!(
            "\nCompare the fingerprint with `ssh-keygen -lf` of the host's key, on the host itself \
             or from its owner. If it is the same, pin it with:\n  \
             rampart asset hostkey {asset} --scan --pin {}",
            scanned.fingerprint
        );
        return Ok(());
    };
    if expected.trim() != scanned.fingerprint {
        anyhow::bail!(
            "{asset} presented the host key {}, not {}: nothing was pinned",
            scanned.fingerprint,
            expected.trim()
        );
    }
    store
        .pin_asset_host_key(
            actor,
            asset,
            &scanned.openssh,
            "scanned, fingerprint confirmed by administrator",
            true,
        )
        .await?;
    let pinned = store.asset(asset).await?;
    done(
        json,
        &pinned,
        &format!("pinned the host key of {asset} ({})", scanned.fingerprint),
    )
}

/// The one host key in the file at `path` (parsed by the same function the API uses).
fn host_key_from_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = read_small_file(path)?;
    Ok(rampart_store::ssh_keys::single_host_key(
        &path.display().to_string(),
        &text,
    )?)
}
