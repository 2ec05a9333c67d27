//! `rampart asset ...`

use super::{name, read_small_file, time_text};
use crate::cli::{AssetCommand, EndpointCommand};
use crate::output::{Table, done, join_or_dash, or_dash, print_fields, print_json};
use rampart_core::audit::Actor;
use rampart_core::target::parse_port;
use rampart_core::{Asset, Endpoint, Label, Protocol, parse_host};
use rampart_store::{AssetChange, EndpointChange, Named, NewAsset, Store};

pub async fn run(
    store: &Store,
    dialer: &rampart_ssh::Dialer,
    actor: &Actor,
    json: bool,
    command: AssetCommand,
) -> anyhow::Result<()> {
    match command {
        AssetCommand::Add {
            name: asset,
            host,
            port,
            endpoints,
            domain,
            labels,
        } => {
            let mut parsed: Vec<Endpoint> = endpoints
                .iter()
                .map(|e| Endpoint::parse(e))
                .collect::<Result<_, _>>()?;
            // `--port` is the ssh endpoint's; without any endpoint, ssh on 22 as always.
            if port.is_some() || parsed.is_empty() {
                parsed.insert(0, Endpoint::new(Protocol::Ssh, port.unwrap_or(22)));
            }
            let asset = NewAsset {
                name: name("asset", &asset)?,
                host: parse_host(&host)?,
                domain: domain.map(|d| name("domain", &d)).transpose()?,
                endpoints: parsed,
                labels: labels
                    .iter()
                    .map(|l| Label::parse(l))
                    .collect::<Result<_, _>>()?,
            };
            let added = store.add_asset(actor, &asset).await?;
            done(
                json,
                &added,
                &format!(
                    "added asset {} ({}: {})",
                    added.name,
                    added.host,
                    endpoint_words(&added)
                ),
            )
        }
        AssetCommand::Set {
            name: asset,
            host,
            domain,
            no_domain,
            label,
            remove_label,
        } => {
            let asset = name("asset", &asset)?;
            let labels = if label.is_empty() && remove_label.is_empty() {
                None
            } else {
                let set: Vec<Label> = label
                    .iter()
                    .map(|l| Label::parse(l))
                    .collect::<Result<_, _>>()?;
                let current = store.asset(&asset).await?.labels;
                if let Some(missing) = remove_label
                    .iter()
                    .find(|key| !current.iter().any(|l| &l.key == *key))
                {
                    anyhow::bail!("asset {asset} has no label {missing:?}");
                }
                let mut labels: Vec<Label> = current
                    .into_iter()
                    .filter(|l| {
                        !remove_label.contains(&l.key) && !set.iter().any(|s| s.key == l.key)
                    })
                    .collect();
                labels.extend(set);
                Some(labels)
            };
            let change = AssetChange {
                labels,
                host: host.map(|h| parse_host(&h)).transpose()?,
                domain: match (domain, no_domain) {
                    (Some(domain), _) => Some(Some(name("domain", &domain)?)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
            };
            let changed = store.set_asset(actor, &asset, &change).await?;
            done(
                json,
                &changed,
                &format!(
                    "asset {asset} is now {} ({}), {}",
                    changed.host,
                    endpoint_words(&changed),
                    domain_words(&changed)
                ),
            )
        }
        AssetCommand::Endpoint(command) => endpoint(store, actor, json, command).await,
        AssetCommand::List => {
            let assets = store.list_assets().await?;
            if json {
                return print_json(&assets);
            }
            let mut table =
                Table::new(["NAME", "HOST", "ENDPOINTS", "DOMAIN", "LABELS", "HOST KEY"]);
            for asset in &assets {
                table.row([
                    asset.name.to_string(),
                    asset.host.clone(),
                    endpoint_words(asset),
                    or_dash(asset.domain.as_ref().map(ToString::to_string)),
                    join_or_dash(asset.labels.iter().map(ToString::to_string)),
                    if asset.endpoint(Protocol::Ssh).is_none() {
                        "-"
                    } else if asset.host_key.is_some() {
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
                ("endpoints", endpoint_words(&asset)),
                ("domain", domain_words(&asset)),
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
                return scan_host_key(store, dialer, actor, json, &asset, pin.as_deref()).await;
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
        AssetCommand::Telnet {
            name: asset,
            login_prompt,
            password_prompt,
            success,
            failure,
            timeout,
            reset,
        } => {
            let change = super::telnet::TelnetChange {
                login_prompt,
                password_prompt,
                success,
                failure,
                timeout,
                reset,
            };
            super::telnet::run(store, actor, json, &name("asset", &asset)?, change).await
        }
        AssetCommand::Remove { name: asset, yes } => {
            let asset = name("asset", &asset)?;
            let cascade = store.cascade_of(Named::Asset, &asset).await?;
            super::confirm_cascade(&format!("asset {asset}"), cascade, yes)?;
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
    dialer: &rampart_ssh::Dialer,
    actor: &Actor,
    json: bool,
    asset: &rampart_core::Name,
    pin: Option<&str>,
) -> anyhow::Result<()> {
    let record = store.asset(asset).await?;
    let address = record
        .address(Protocol::Ssh)
        .ok_or_else(|| anyhow::anyhow!("{asset} has no ssh endpoint, so no SSH host key"))?;
    let scanned = rampart_ssh::scan_host_key(dialer, &record).await?;
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
            "address": address.clone(),
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
            ("address", address.clone()),
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

/// `asset endpoint ...`
async fn endpoint(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: EndpointCommand,
) -> anyhow::Result<()> {
    match command {
        EndpointCommand::Add {
            name: asset,
            protocol,
            port,
        } => {
            let asset = name("asset", &asset)?;
            let endpoint = match port {
                Some(port) => Endpoint::new(Protocol::parse(&protocol)?, parse_port(&port)?),
                None => Endpoint::parse(&protocol)?,
            };
            let changed = store.add_asset_endpoint(actor, &asset, &endpoint).await?;
            done(
                json,
                &changed,
                &format!(
                    "added the {} endpoint of {asset} on port {} ({})",
                    endpoint.protocol,
                    endpoint.port,
                    endpoint_words(&changed)
                ),
            )
        }
        EndpointCommand::Set {
            name: asset,
            protocol,
            port,
            tls_fingerprint,
            clear_tls_fingerprint,
            rdp_security,
        } => {
            let asset = name("asset", &asset)?;
            let protocol = Protocol::parse(&protocol)?;
            let change = EndpointChange {
                port: port.map(|p| parse_port(&p)).transpose()?,
                tls_fingerprint: match (tls_fingerprint, clear_tls_fingerprint) {
                    (Some(fingerprint), _) => Some(Some(fingerprint)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                rdp_security,
            };
            let changed = store
                .set_asset_endpoint(actor, &asset, protocol, &change)
                .await?;
            done(
                json,
                &changed,
                &format!(
                    "changed the {protocol} endpoint of {asset} ({})",
                    endpoint_words(&changed)
                ),
            )
        }
        EndpointCommand::Remove {
            name: asset,
            protocol,
        } => {
            let asset = name("asset", &asset)?;
            let protocol = Protocol::parse(&protocol)?;
            let changed = store.remove_asset_endpoint(actor, &asset, protocol).await?;
            done(
                json,
                &changed,
                &format!(
                    "removed the {protocol} endpoint of {asset} ({} left)",
                    endpoint_words(&changed)
                ),
            )
        }
        EndpointCommand::List { name: asset } => {
            let asset = store.asset(&name("asset", &asset)?).await?;
            if json {
                return print_json(&asset.endpoints);
            }
            let mut table = Table::new(["PROTOCOL", "PORT", "ADDRESS", "IDENTITY"]);
            for endpoint in &asset.endpoints {
                let identity = match asset.identity(endpoint.protocol) {
                    Some(rampart_core::target::TargetIdentity::SshHostKey(_)) => {
                        "host key pinned".to_owned()
                    }
                    Some(rampart_core::target::TargetIdentity::TlsCertificate(fingerprint)) => {
                        format!("certificate {fingerprint}")
                    }
                    None if endpoint.protocol.identity_kind().is_some() => {
                        "not yet seen".to_owned()
                    }
                    None => "-".to_owned(),
                };
                table.row([
                    endpoint.protocol.to_string(),
                    endpoint.port.to_string(),
                    rampart_core::target::socket_address(&asset.host, endpoint.port),
                    identity,
                ]);
            }
            table.print("no endpoints");
            Ok(())
        }
    }
}

/// `ssh:22, postgres:5432`
fn endpoint_words(asset: &Asset) -> String {
    join_or_dash(asset.endpoints.iter().map(ToString::to_string))
}

fn domain_words(asset: &Asset) -> String {
    match &asset.domain {
        Some(domain) => format!("in network domain {domain}"),
        None => "dialled directly (no network domain)".to_owned(),
    }
}

/// The one host key in the file at `path` (parsed by the same function the API uses).
fn host_key_from_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = read_small_file(path)?;
    Ok(rampart_store::ssh_keys::single_host_key(
        &path.display().to_string(),
        &text,
    )?)
}
