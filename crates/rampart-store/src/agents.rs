//! Dial-out agents of network domains: one-time enrolment tokens and the agents they enrolled.
//!
//! INVARIANT: only the SHA-256 of a token is stored (32 random bytes from the operating system,
//! so a plain hash is enough). A token enrols once, before its expiry; the agent it enrols gets
//! the name and domain the token was made for and its own key, pinned from then on. A revoked
//! agent stays in the table (evidence) and is refused.

use crate::domains::unknown_domain;
use crate::rows::{self, new_id, now, time_text};
use crate::web_auth::{plus, random_secret, secret_hash};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, SecretString};
use serde::Serialize;
use sqlx::any::AnyRow;
use std::time::Duration;
use time::OffsetDateTime;

/// What every agent enrolment token starts with, so secret scanners and people recognise one.
pub const AGENT_TOKEN_PREFIX: &str = "rampartagent_";
/// The longest lifetime an enrolment token may be given.
pub const MAX_AGENT_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// An enrolment token as stored (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct AgentToken {
    pub agent: Name,
    pub domain: Name,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An enrolled dial-out agent.
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub name: Name,
    pub domain: Name,
    /// `authorized_keys` form.
    pub public_key: String,
    pub fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// What an agent presents to enrol: the token, and the key it proved it holds.
#[derive(Debug)]
pub struct Enrolment<'a> {
    pub token: &'a SecretString,
    pub public_key: &'a str,
    pub fingerprint: &'a str,
    pub source: &'a str,
}

macro_rules! agent_select {
    ($rest:literal) => {
        concat!(
            "SELECT a.name, d.name AS domain, a.public_key, a.fingerprint, a.enrolled_at, ",
            "a.revoked_at FROM agents a JOIN domains d ON d.id = a.domain_id ",
            $rest
        )
    };
}

fn agent_row(row: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        name: rows::name(row, "name")?,
        domain: rows::name(row, "domain")?,
        public_key: rows::text(row, "public_key")?,
        fingerprint: rows::text(row, "fingerprint")?,
        enrolled_at: rows::time(row, "enrolled_at")?,
        revoked_at: rows::optional_time(row, "revoked_at")?,
    })
}

impl Store {
    /// Issues a one-time enrolment token for an agent named `agent` in `domain`, valid for
    /// `ttl` (at most [`MAX_AGENT_TOKEN_TTL`]). Returns it as stored and the token itself,
    /// which is shown once.
    pub async fn create_agent_token(
        &self,
        actor: &Actor,
        domain: &Name,
        agent: &Name,
        ttl: Duration,
    ) -> Result<(AgentToken, SecretString)> {
        if ttl.is_zero() || ttl > MAX_AGENT_TOKEN_TTL {
            return Err(StoreError::invalid(
                "an agent enrolment token lives between 1 second and 7 days",
            ));
        }
        let at = now();
        let expires_at = plus(at, ttl);
        let secret = format!("{AGENT_TOKEN_PREFIX}{}", random_secret()?);
        let mut tx = self.begin_write().await?;
        let domain_id: String = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
            .bind(domain.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| unknown_domain(domain))?;
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM agents WHERE name = $1")
            .bind(agent.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::already_exists("agent", agent));
        }
        sqlx::query(
            "INSERT INTO agent_tokens (id, token_hash, agent_name, domain_id, created_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id().to_string())
        .bind(secret_hash(&secret))
        .bind(agent.as_str())
        .bind(&domain_id)
        .bind(actor.to_string())
        .bind(time_text(at))
        .bind(time_text(expires_at))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::AgentTokenCreated {
            agent: agent.to_string(),
            domain: domain.to_string(),
            expires_at: rampart_core::time_arg::format_rfc3339(expires_at),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        let token = AgentToken {
            agent: agent.clone(),
            domain: domain.clone(),
            expires_at,
        };
        Ok((token, SecretString::from(secret)))
    }

    /// Enrols an agent with a token: unused, unexpired, and its agent name still free. The
    /// token is used up in the same transaction. `None`: refused (the caller says no more).
    pub async fn enrol_agent(&self, enrolment: &Enrolment<'_>) -> Result<Option<Agent>> {
        use rampart_core::ExposeSecret;
        let hash = secret_hash(enrolment.token.expose_secret());
        let at = now();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT t.id, t.agent_name, t.domain_id, t.expires_at, t.used_at, d.name AS domain \
             FROM agent_tokens t JOIN domains d ON d.id = t.domain_id WHERE t.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if rows::optional_time(&row, "used_at")?.is_some() || rows::time(&row, "expires_at")? <= at
        {
            return Ok(None);
        }
        let name = rows::name(&row, "agent_name")?;
        let domain = rows::name(&row, "domain")?;
        let domain_id = rows::text(&row, "domain_id")?;
        let clash: Option<String> =
            sqlx::query_scalar("SELECT id FROM agents WHERE name = $1 OR fingerprint = $2")
                .bind(name.as_str())
                .bind(enrolment.fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
        if clash.is_some() {
            return Ok(None);
        }
        sqlx::query("UPDATE agent_tokens SET used_at = $1 WHERE id = $2")
            .bind(time_text(at))
            .bind(rows::text(&row, "id")?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO agents (id, name, domain_id, public_key, fingerprint, enrolled_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id().to_string())
        .bind(name.as_str())
        .bind(&domain_id)
        .bind(enrolment.public_key)
        .bind(enrolment.fingerprint)
        .bind(time_text(at))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::AgentEnrolled {
            agent: name.to_string(),
            domain: domain.to_string(),
            fingerprint: enrolment.fingerprint.to_owned(),
            source: enrolment.source.to_owned(),
        };
        audit_log::append(&mut tx, &Actor::System, &event).await?;
        tx.commit().await?;
        Ok(Some(Agent {
            name,
            domain,
            public_key: enrolment.public_key.to_owned(),
            fingerprint: enrolment.fingerprint.to_owned(),
            enrolled_at: at,
            revoked_at: None,
        }))
    }

    /// The agent whose key has this SHA-256 fingerprint (revoked or not).
    pub async fn agent_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Agent>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(agent_select!("WHERE a.fingerprint = $1"))
            .bind(fingerprint)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(agent_row).transpose()
    }

    pub async fn agent(&self, name: &Name) -> Result<Agent> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(agent_select!("WHERE a.name = $1"))
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::not_found("agent", name))?;
        agent_row(&row)
    }

    /// Agents, of one domain or all, by name.
    pub async fn list_agents(&self, domain: Option<&Name>) -> Result<Vec<Agent>> {
        let mut conn = self.pool.acquire().await?;
        let rows = match domain {
            Some(domain) => {
                sqlx::query(agent_select!("WHERE d.name = $1 ORDER BY a.name"))
                    .bind(domain.as_str())
                    .fetch_all(&mut *conn)
                    .await?
            }
            None => {
                sqlx::query(agent_select!("ORDER BY a.name"))
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        rows.iter().map(agent_row).collect()
    }

    /// Revokes an agent: refused from now on (the server ends its live connection).
    pub async fn revoke_agent(&self, actor: &Actor, name: &Name) -> Result<Agent> {
        let mut tx = self.begin_write().await?;
        let revoked: Option<Option<String>> =
            sqlx::query_scalar("SELECT revoked_at FROM agents WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        match revoked {
            None => return Err(StoreError::not_found("agent", name)),
            Some(Some(_)) => {
                return Err(StoreError::invalid(format!(
                    "agent {name} is already revoked"
                )));
            }
            Some(None) => {}
        }
        sqlx::query("UPDATE agents SET revoked_at = $1 WHERE name = $2")
            .bind(time_text(now()))
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::AgentRevoked {
            agent: name.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        self.agent(name).await
    }
}
