//! `rampart domain ...` and `rampart gateway ...`: network domains and their SSH-hop gateways.

use super::{name, read_secret_from_stdin, read_small_file, time_text};
use crate::cli::{DomainCommand, GatewayCommand};
use crate::output::{Table, done, or_dash, print_fields, print_json};
use rampart_core::audit::Actor;
use rampart_core::{Protocol, SecretKind, SecretString, parse_host};
use rampart_session::gateway::{self, HostKeyPolicy};
use rampart_store::{DomainDetail, Gateway, NewAccountSecret, NewGateway, Store};
use std::sync::Arc;

pub async fn run_domain(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: DomainCommand,
) -> anyhow::Result<()> {
    match command {
        DomainCommand::Add { name: domain } => {
            let added = store.add_domain(actor, &name("domain", &domain)?).await?;
            done(
                json,
                &added,
                &format!(
                    "added network domain {} (next: `rampart gateway add NAME --domain {} ...`)",
                    added.name, added.name
                ),
            )
        }
        DomainCommand::List => {
            let domains = store.list_domains().await?;
            if json {
                return print_json(&domains);
            }
            let mut table = Table::new(["DOMAIN", "GATEWAYS", "ASSETS", "CREATED"]);
            for d in &domains {
                table.row([
                    d.domain.name.to_string(),
                    list(d.gateways.iter().map(|g| g.name.to_string())),
                    list(d.assets.iter().map(ToString::to_string)),
                    time_text(d.domain.created_at),
                ]);
            }
            table.print("no network domains yet: add one with `rampart domain add NAME`");
            Ok(())
        }
        DomainCommand::Show { name: domain } => {
            let d = store.domain(&name("domain", &domain)?).await?;
            if json {
                return print_json(&d);
            }
            print_domain(&d);
            Ok(())
        }
        DomainCommand::Remove { name: domain } => {
            let domain = name("domain", &domain)?;
            store.remove_domain(actor, &domain).await?;
            done(
                json,
                &serde_json::json!({ "removed": domain.to_string() }),
                &format!("removed network domain {domain}"),
            )
        }
    }
}

/// The background health check's verdict, as a column says it (`-`: not checked yet, e.g. the
/// server is not running).
fn health_words(g: &Gateway) -> String {
    match (g.health.as_deref(), g.last_error.as_deref()) {
        (Some("failing"), Some(why)) => format!("failing: {why}"),
        (Some(health), _) => health.to_owned(),
        (None, _) => "-".into(),
    }
}

fn list(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

fn print_domain(d: &DomainDetail) {
    print_fields(&[
        ("domain", d.domain.name.to_string()),
        ("created", time_text(d.domain.created_at)),
        (
            "gateways",
            list(d.gateways.iter().map(|g| {
                format!(
                    "{} ({}@{}, priority {})",
                    g.name,
                    g.login,
                    rampart_core::target::socket_address(&g.host, g.port),
                    g.priority
                )
            })),
        ),
        ("assets", list(d.assets.iter().map(ToString::to_string))),
    ]);
}

pub async fn run_gateway(
    store: &Arc<Store>,
    actor: &Actor,
    json: bool,
    policy: HostKeyPolicy,
    command: GatewayCommand,
) -> anyhow::Result<()> {
    match command {
        GatewayCommand::Add {
            name: gateway,
            domain,
            host,
            port,
            account,
            password_stdin,
            key_file,
            priority,
            host_key_file,
        } => {
            let gateway = name("gateway", &gateway)?;
            let domain = name("domain", &domain)?;
            // Fail on an unknown domain before asking for the secret.
            store.domain(&domain).await?;
            let secret = match (password_stdin, key_file) {
                (_, Some(path)) => NewAccountSecret {
                    kind: SecretKind::PrivateKey,
                    value: SecretString::from(read_small_file(&path)?.to_string()),
                },
                (true, None) => NewAccountSecret {
                    kind: SecretKind::Password,
                    value: read_secret_from_stdin(
                        &format!("Password for {account} on gateway {gateway}: "),
                        true,
                    )?,
                },
                (false, None) => anyhow::bail!("give --password-stdin or --key-file FILE"),
            };
            let added = store
                .add_gateway(
                    actor,
                    &NewGateway {
                        name: gateway,
                        domain,
                        host: parse_host(&host)?,
                        port,
                        login: name("login", &account)?,
                        priority,
                        secret,
                    },
                )
                .await?;
            let added = match host_key_file {
                Some(path) => {
                    let key = read_small_file(&path)?;
                    store
                        .pin_gateway_host_key(actor, &added.name, &key, "administrator", true)
                        .await?;
                    store.gateway(&added.name).await?
                }
                None => added,
            };
            done(
                json,
                &added,
                &format!(
                    "added gateway {} to network domain {} ({}@{}, priority {}; {} in the vault); \
                     check it with `rampart gateway test {}`",
                    added.name,
                    added.domain,
                    added.login,
                    rampart_core::target::socket_address(&added.host, added.port),
                    added.priority,
                    added.secret_kind,
                    added.name
                ),
            )
        }
        GatewayCommand::List { domain } => {
            let domain = domain.map(|d| name("domain", &d)).transpose()?;
            let gateways = store.list_gateways(domain.as_ref()).await?;
            if json {
                return print_json(&gateways);
            }
            let mut table = Table::new([
                "GATEWAY", "DOMAIN", "PRIORITY", "ADDRESS", "LOGIN", "HOST KEY", "HEALTH",
            ]);
            for g in &gateways {
                table.row([
                    g.name.to_string(),
                    g.domain.to_string(),
                    g.priority.to_string(),
                    rampart_core::target::socket_address(&g.host, g.port),
                    g.login.to_string(),
                    host_key_words(g),
                    health_words(g),
                ]);
            }
            table.print("no gateways yet: add one with `rampart gateway add NAME --domain D ...`");
            Ok(())
        }
        GatewayCommand::Show { name: gateway } => {
            let g = store.gateway(&name("gateway", &gateway)?).await?;
            if json {
                return print_json(&g);
            }
            print_fields(&[
                ("gateway", g.name.to_string()),
                ("domain", g.domain.to_string()),
                ("priority", g.priority.to_string()),
                (
                    "address",
                    rampart_core::target::socket_address(&g.host, g.port),
                ),
                ("login", g.login.to_string()),
                ("secret", g.secret_kind.to_string()),
                ("host key", or_dash(g.host_key.clone())),
                ("health", health_words(&g)),
                ("last error", or_dash(g.last_error.clone())),
                ("checked", or_dash(g.health_checked_at.map(time_text))),
                ("created", time_text(g.created_at)),
            ]);
            Ok(())
        }
        GatewayCommand::Remove { name: gateway } => {
            let gateway = name("gateway", &gateway)?;
            store.remove_gateway(actor, &gateway).await?;
            done(
                json,
                &serde_json::json!({ "removed": gateway.to_string() }),
                &format!("removed gateway {gateway} and its secret"),
            )
        }
        GatewayCommand::Test {
            name: gateway,
            asset,
        } => test(store, json, policy, &gateway, asset.as_deref()).await,
    }
}

fn host_key_words(g: &Gateway) -> String {
    if g.host_key.is_some() {
        "pinned".into()
    } else {
        "not pinned yet".into()
    }
}

/// `gateway test`: each step's outcome, one precise line for the failing one; exits non-zero
/// when a step failed.
async fn test(
    store: &Arc<Store>,
    json: bool,
    policy: HostKeyPolicy,
    gateway: &str,
    asset: Option<&str>,
) -> anyhow::Result<()> {
    let g = store.gateway(&name("gateway", gateway)?).await?;
    let target = match asset {
        Some(asset) => {
            let record = store.asset(&name("asset", asset)?).await?;
            let endpoint = record
                .endpoint(Protocol::Ssh)
                .or_else(|| record.endpoints.first())
                .ok_or_else(|| anyhow::anyhow!("{asset} has no endpoint"))?;
            Some((record.host.clone(), endpoint.port))
        }
        None => None,
    };
    let outcome = gateway::test(
        store,
        policy,
        &g,
        target.as_ref().map(|(host, port)| (host.as_str(), *port)),
    )
    .await;
    let steps = gateway::step_report(&outcome, target.is_some());
    let line = outcome
        .as_ref()
        .err()
        .map(|err| format!("gateway {}: {err}", g.name));
    if json {
        print_json(&serde_json::json!({
            "gateway": g.name.to_string(),
            "ok": outcome.is_ok(),
            "steps": steps.iter().map(|(step, state)| serde_json::json!({"step": step, "result": state})).collect::<Vec<_>>(),
            "error": line,
        }))?;
    } else {
        for (step, state) in &steps {
            println!("{step}: {state}");
        }
    }
    match line {
        Some(line) => anyhow::bail!(line),
        None => {
            if !json {
                println!("gateway {} works", g.name);
            }
            Ok(())
        }
    }
}
