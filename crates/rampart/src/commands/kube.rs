//! `rampart kube config`: a kubeconfig for a Kubernetes asset through Rampart's Kubernetes
//! listener, with a fresh personal token (its hash alone is stored; the token is in the file
//! only).

use super::name;
use crate::cli::KubeCommand;
use crate::config::{Config, HttpTls};
use anyhow::{Context, bail};
use rampart_core::ExposeSecret;
use rampart_core::audit::Actor;
use rampart_core::time_arg::parse_duration;
use rampart_kube::api::ClusterRef;
use rampart_kube::kubeconfig::{KubeconfigInput, render};
use rampart_store::{Store, TokenKind};

pub async fn run(
    config: &Config,
    store: &Store,
    actor: &Actor,
    json: bool,
    command: KubeCommand,
) -> anyhow::Result<()> {
    let KubeCommand::Config {
        asset,
        user,
        ttl,
        server,
        namespace,
        output,
    } = command;
    let cluster = ClusterRef::parse(&asset).map_err(anyhow::Error::msg)?;
    let asset_row = store.asset(&cluster.asset).await?;
    if asset_row
        .endpoint(rampart_core::Protocol::Kubernetes)
        .is_none()
    {
        bail!(
            "asset {} has no kubernetes endpoint: rampart asset endpoint add {} kubernetes:6443",
            cluster.asset,
            cluster.asset
        );
    }
    let user = match user {
        Some(user) => name("user", &user)?,
        None => {
            let os_user = nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.name)
                .context("cannot tell the operating-system user: pass --user")?;
            name("user", &os_user)?
        }
    };
    let server = match (server, &config.kube.public_address, config.kube.listen) {
        (Some(server), _, _) => server,
        (None, Some(address), _) => format!("https://{address}"),
        (None, None, Some(listen)) => format!("https://{listen}"),
        (None, None, None) => bail!(
            "the Kubernetes listener is off: set kube.listen (and kube.public_address), or pass --server"
        ),
    };
    if !server.starts_with("https://") {
        bail!("--server must be an https:// URL, such as https://rampart.example.com:6443");
    }
    let ca_path = match &config.http.tls {
        HttpTls::Files { cert, .. } => cert.clone(),
        HttpTls::SelfSigned | HttpTls::Off => store
            .data_dir()
            .keys_dir()
            .join(rampart_web::tls::GENERATED_CERT_FILE),
    };
    let ca_pem = std::fs::read(&ca_path).with_context(|| {
        format!(
            "cannot read the node's certificate {} (start rampart serve once to create it)",
            ca_path.display()
        )
    })?;
    let ttl = parse_duration("--ttl", &ttl)?;
    let (token, secret) = store
        .create_token(actor, &user, ttl, TokenKind::Kubernetes)
        .await?;
    let text = render(&KubeconfigInput {
        server: &server,
        cluster: &cluster.target(),
        user: user.as_str(),
        ca_pem: &ca_pem,
        token: secret.expose_secret(),
        namespace: namespace.as_deref(),
    });
    drop(secret);
    let expires = super::time_text(token.expires_at);
    match output {
        Some(path) => {
            rampart_store::write_new_secret_file(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            if json {
                return crate::output::print_json(&serde_json::json!({
                    "token": token,
                    "kubeconfig": path.display().to_string(),
                }));
            }
            eprintln!(
                "wrote {} for user {} on {} (token {} expires {expires}); use it with: KUBECONFIG={} kubectl get pods",
                path.display(),
                user,
                cluster.target(),
                token.id,
                path.display()
            );
        }
        None => {
            eprintln!(
                "kubeconfig for user {} on {} (token {} expires {expires}); the token is shown only now:",
                user,
                cluster.target(),
                token.id
            );
            print!("{text}");
        }
    }
    Ok(())
}
