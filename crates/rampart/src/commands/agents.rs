//! `rampart agent token create|list|revoke`: enrolment tokens and enrolled dial-out agents.

use super::{name, time_text};
use crate::cli::{AgentCommand, AgentTokenCommand};
use crate::output::{Table, done, or_dash, print_json};
use anyhow::Context;
use rampart_core::ExposeSecret;
use rampart_core::audit::Actor;
use rampart_core::time_arg::parse_duration;
use rampart_store::Store;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: AgentCommand,
) -> anyhow::Result<()> {
    match command {
        AgentCommand::Token(AgentTokenCommand::Create {
            domain,
            name: agent,
            ttl,
        }) => {
            let domain = name("domain", &domain)?;
            let ttl = parse_duration("--ttl", &ttl)?;
            let agent = match agent {
                Some(agent) => name("agent", &agent)?,
                None => {
                    let count = store.list_agents(Some(&domain)).await?.len();
                    name(
                        "agent",
                        &format!("{domain}-agent-{}", count.saturating_add(1)),
                    )?
                }
            };
            let fingerprint = crate::agent_mode::node_host_key_fingerprint(store)?;
            let (token, secret) = store
                .create_agent_token(actor, &domain, &agent, ttl)
                .await?;
            // The agent checks Rampart's host key against the fingerprint from its first
            // connection on, so the token alone both authorises and pins.
            let full = format!(
                "{}.{}",
                secret.expose_secret(),
                fingerprint.trim_start_matches("SHA256:")
            );
            if json {
                return print_json(&serde_json::json!({
                    "agent": token.agent.to_string(),
                    "domain": token.domain.to_string(),
                    "expires_at": time_text(token.expires_at),
                    "token": full,
                }));
            }
            println!(
                "enrolment token for agent {} in network domain {} (one use, expires {}); shown once:\n{full}\n\
                 Save it to a file on a host in that network and run:\n  \
                 rampart agent --server BASTION:PORT --token-file FILE [--allow CIDR,HOST:PORT]",
                token.agent,
                token.domain,
                time_text(token.expires_at)
            );
            Ok(())
        }
        AgentCommand::List { domain } => {
            let domain = domain.map(|d| name("domain", &d)).transpose()?;
            let agents = store.list_agents(domain.as_ref()).await?;
            if json {
                return print_json(&agents);
            }
            let mut table = Table::new(["AGENT", "DOMAIN", "FINGERPRINT", "ENROLLED", "REVOKED"]);
            for a in &agents {
                table.row([
                    a.name.to_string(),
                    a.domain.to_string(),
                    a.fingerprint.clone(),
                    time_text(a.enrolled_at),
                    or_dash(a.revoked_at.map(time_text)),
                ]);
            }
            table.print(
                "no agents yet: make an enrolment token with `rampart agent token create --domain D`",
            );
            Ok(())
        }
        AgentCommand::Revoke { name: agent } => {
            let agent = name("agent", &agent)?;
            let revoked = store
                .revoke_agent(actor, &agent)
                .await
                .with_context(|| format!("cannot revoke agent {agent}"))?;
            done(
                json,
                &revoked,
                &format!(
                    "revoked agent {agent}: it is refused from now on, and its connection ends within a second"
                ),
            )
        }
    }
}
