//! Cluster nodes (issue 19): every `rampart serve` on the shared database registers itself,
//! sends heartbeats, and says when it stops; a node whose heartbeats stop is declared lost by
//! another node, which ends its live sessions. The settings every node must agree on are
//! checked here too.

use crate::rows::{self, now, time_text};
use crate::sessions::SessionEnd;
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent, RecordingAnchor};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// The reason a lost node's sessions end with.
pub const NODE_LOST: &str = "node lost";

/// A node's state as the registry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Serving, and sending heartbeats.
    Up,
    /// Stopped cleanly.
    Stopped,
    /// Stopped sending heartbeats; declared lost by another node.
    Lost,
}

impl NodeState {
    fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Stopped => "stopped",
            NodeState::Lost => "lost",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "up" => Ok(NodeState::Up),
            "stopped" => Ok(NodeState::Stopped),
            "lost" => Ok(NodeState::Lost),
            _ => Err(StoreError::Corrupt("nodes.state".into())),
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node as `rampart node list` and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// The process that registered the row (random per start).
    pub instance: String,
    /// Where other nodes reach its HTTP listener, if it said.
    pub address: Option<String>,
    /// Its HTTPS certificate (PEM), which other nodes trust for that connection.
    #[serde(skip)]
    pub certificate: Option<String>,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub heartbeat_at: OffsetDateTime,
    pub state: NodeState,
    /// Its sessions still open.
    pub live_sessions: u64,
    /// Whether it leads the cluster (as of its last heartbeat).
    pub leader: bool,
}

/// What a starting node says of itself.
#[derive(Debug, Clone)]
pub struct NodeStart {
    pub name: String,
    pub instance: String,
    /// The data directory's id ([`crate::DataDir::node_id`]).
    pub home: String,
    pub address: Option<String>,
    pub certificate: Option<String>,
    pub version: String,
    /// A row still `up` with a heartbeat newer than this belongs to a running process.
    pub lost_after: Duration,
}

/// What registering found.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The node's state before this start (`None`: its first start). `Up` means the previous
    /// run never said it stopped: it crashed.
    pub previous: Option<NodeState>,
    /// Other nodes up now.
    pub others_up: u64,
}

impl Store {
    /// Names the node this store serves for: its sessions carry the name. Set once, by `serve`.
    pub fn set_node(&self, name: &str) {
        let _ = self.node.set(name.to_owned());
    }

    /// The node this store serves for, when it is a server's.
    pub fn node(&self) -> Option<&str> {
        self.node.get().map(String::as_str)
    }

    /// Registers a starting node (or takes its row over from its previous run). Refused while
    /// another process holds the name and still sends heartbeats: two servers with one name
    /// would end each other's sessions at start.
    pub async fn register_node(&self, start: &NodeStart) -> Result<Registered> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT home, state, heartbeat_at FROM nodes WHERE name = $1")
            .bind(&start.name)
            .fetch_optional(&mut *tx)
            .await?;
        let previous = match &row {
            None => None,
            Some(row) => {
                let state = NodeState::parse(&rows::text(row, "state")?)?;
                let heartbeat = rows::time(row, "heartbeat_at")?;
                let silent = at - heartbeat;
                // The same directory: its previous process is dead (this one holds the
                // directory's serve lock), however fresh its last heartbeat. A SQLite store is
                // its data directory's own (a restored copy is another database): only a
                // shared database can have two processes with one name.
                if self.backend == crate::Backend::Postgres
                    && state == NodeState::Up
                    && rows::text(row, "home")? != start.home
                    && silent < start.lost_after
                {
                    return Err(StoreError::invalid(format!(
                        "node name {} is in use by a running rampart serve (its last heartbeat \
                         was {}s ago): give each node its own node.name, or stop that one first",
                        start.name,
                        silent.whole_seconds().max(0)
                    )));
                }
                Some(state)
            }
        };
        sqlx::query(
            "INSERT INTO nodes (name, instance, home, address, certificate, version, started_at, heartbeat_at, state) \
             VALUES ($1, $2, $6, $3, $7, $4, $5, $5, 'up') ON CONFLICT (name) DO UPDATE SET \
             instance = excluded.instance, home = excluded.home, address = excluded.address, \
             certificate = excluded.certificate, version = excluded.version, leader = 0, \
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, state = 'up'",
        )
        .bind(&start.name)
        .bind(&start.instance)
        .bind(start.address.as_deref())
        .bind(&start.version)
        .bind(time_text(at))
        .bind(&start.home)
        .bind(start.certificate.as_deref())
        .execute(&mut *tx)
        .await?;
        let others_up: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM nodes WHERE name <> $1 AND state = 'up' AND heartbeat_at >= $2",
        )
        .bind(&start.name)
        .bind(time_text(at - start.lost_after))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Registered {
            previous,
            others_up: u64::try_from(others_up).unwrap_or(0),
        })
    }

    /// Records a heartbeat, and whether the node leads. `false`: the row is no longer this
    /// process's (another node declared it lost, or a new process took the name over).
    pub async fn node_heartbeat(&self, name: &str, instance: &str, leader: bool) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE nodes SET heartbeat_at = $1, leader = $4 WHERE name = $2 AND instance = $3 \
             AND state = 'up'",
        )
        .bind(time_text(now()))
        .bind(name)
        .bind(instance)
        .bind(i64::from(leader))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a node stopped at its clean shutdown.
    pub async fn node_stopped(&self, name: &str, instance: &str) -> Result<()> {
        sqlx::query(
            "UPDATE nodes SET state = 'stopped', leader = 0, heartbeat_at = $1 WHERE name = $2 \
             AND instance = $3 AND state = 'up'",
        )
        .bind(time_text(now()))
        .bind(name)
        .bind(instance)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every node the registry knows, by name, with its live session count.
    pub async fn list_nodes(&self) -> Result<Vec<Node>> {
        self.nodes(None).await
    }

    /// The nodes named `only` (one at most), or all of them.
    async fn nodes(&self, only: Option<&str>) -> Result<Vec<Node>> {
        let rows = sqlx::query(
            "SELECT n.name, n.instance, n.address, n.certificate, n.version, n.started_at, n.heartbeat_at, n.state, n.leader, \
             (SELECT COUNT(*) FROM sessions s WHERE s.node = n.name AND s.ended_at IS NULL) AS live \
             FROM nodes n WHERE ($1 IS NULL OR n.name = $1) ORDER BY n.name",
        )
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Node {
                    name: rows::text(row, "name")?,
                    instance: rows::text(row, "instance")?,
                    address: row.try_get::<Option<String>, _>("address")?,
                    certificate: row.try_get::<Option<String>, _>("certificate")?,
                    version: rows::text(row, "version")?,
                    started_at: rows::time(row, "started_at")?,
                    heartbeat_at: rows::time(row, "heartbeat_at")?,
                    state: NodeState::parse(&rows::text(row, "state")?)?,
                    live_sessions: u64::try_from(row.try_get::<i64, _>("live")?).unwrap_or(0),
                    leader: rows::flag(row, "leader")?,
                })
            })
            .collect()
    }

    /// One node of the registry, by name.
    pub async fn node_named(&self, name: &str) -> Result<Option<Node>> {
        Ok(self.nodes(Some(name)).await?.into_iter().next())
    }

    /// Declares lost every node (other than `by`) still `up` whose last heartbeat is older than
    /// `lost_after`, each with one `node_lost` event naming its live sessions. Several nodes may
    /// sweep at once: the check and the change are one write transaction, so one node declares
    /// each loss. Returns the nodes this call declared lost.
    pub async fn declare_lost_nodes(&self, by: &str, lost_after: Duration) -> Result<Vec<String>> {
        let cutoff = time_text(now() - lost_after);
        // Asked every heartbeat by every node: the write lock only when there is a loss.
        let any: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM nodes WHERE state = 'up' AND name <> $1 AND heartbeat_at < $2",
        )
        .bind(by)
        .bind(&cutoff)
        .fetch_one(&self.pool)
        .await?;
        if any == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let stale = sqlx::query(
            "SELECT name, heartbeat_at FROM nodes WHERE state = 'up' AND name <> $1 AND heartbeat_at < $2",
        )
        .bind(by)
        .bind(&cutoff)
        .fetch_all(&mut *tx)
        .await?;
        let mut declared = Vec::new();
        for row in &stale {
            let name = rows::text(row, "name")?;
            let heartbeat = rows::text(row, "heartbeat_at")?;
            sqlx::query("UPDATE nodes SET state = 'lost', leader = 0 WHERE name = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            let sessions: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM sessions WHERE node = $1 AND ended_at IS NULL ORDER BY started_at",
            )
            .bind(&name)
            .fetch_all(&mut *tx)
            .await?;
            let event = AuditEvent::NodeLost {
                node: name.clone(),
                last_heartbeat: heartbeat,
                declared_by: by.to_owned(),
                sessions,
            };
            audit_log::append(&mut tx, &Actor::System, &event).await?;
            declared.push(name);
        }
        tx.commit().await?;
        Ok(declared)
    }

    /// The sessions still open on nodes declared lost (also those a sweep declared but did not
    /// finish ending): whoever ends them ends them with [`NODE_LOST`].
    pub async fn lost_nodes_sessions(&self) -> Result<Vec<rampart_core::Session>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT s.id FROM sessions s JOIN nodes n ON n.name = s.node \
             WHERE n.state = 'lost' AND s.ended_at IS NULL ORDER BY s.started_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            let id = Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt("sessions.id".into()))?;
            sessions.push(self.session(id).await?);
        }
        Ok(sessions)
    }

    /// Ends a lost node's session with [`NODE_LOST`]; `false` when another node ended it first.
    pub async fn end_lost_session(
        &self,
        session: &rampart_core::Session,
        recording: Option<RecordingAnchor>,
    ) -> Result<bool> {
        let end = SessionEnd {
            reason: NODE_LOST.to_owned(),
            bytes_from_client: session.bytes_from_client,
            bytes_to_client: session.bytes_to_client,
            exit_status: None,
            recording,
        };
        match self.end_session(session.id, &end).await {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Checks a setting every node must agree on: the first node to start records `value`;
    /// every later start must bring the same, or it is refused with `hint`.
    pub async fn check_cluster_setting(&self, name: &str, value: &str, hint: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT value FROM cluster_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match recorded {
            Some(recorded) if recorded == value => {}
            Some(recorded) => {
                return Err(StoreError::invalid(format!(
                    "this node's {name} ({value}) differs from the cluster's ({recorded}): {hint}"
                )));
            }
            None => {
                sqlx::query("INSERT INTO cluster_settings (name, value) VALUES ($1, $2)")
                    .bind(name)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The key of the session-level PostgreSQL advisory lock the cluster's leader holds
/// ("leader" in ASCII).
const LEADER_LOCK_KEY: i64 = 0x6c_65_61_64_65_72;

/// The lock that makes one node the cluster's leader (the one that runs the work that must run
/// once: audit sinks, detectors, retention, scheduled rotations, directory syncs). On PostgreSQL
/// a session-level advisory lock on a connection of its own: exactly one holder, released by the
/// database when that node's connection goes (a crash, a lost network). On SQLite the store
/// has one server: it always leads.
#[derive(Debug, Default)]
pub struct LeaderLock {
    connection: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    held: bool,
}

impl Store {
    /// Whether this node leads now: keeps the lock it holds (its connection still answers), or
    /// tries to take it.
    pub async fn lead(&self, lock: &mut LeaderLock) -> Result<bool> {
        if self.backend == crate::Backend::Sqlite {
            return Ok(true);
        }
        if lock.held {
            let alive = match lock.connection.as_mut() {
                Some(connection) => sqlx::query("SELECT 1")
                    .execute(&mut **connection)
                    .await
                    .is_ok(),
                None => false,
            };
            if alive {
                return Ok(true);
            }
            // The connection went, and the lock with it.
            *lock = LeaderLock::default();
        }
        let connection = match lock.connection.as_mut() {
            Some(connection) => connection,
            None => lock.connection.insert(self.pool.acquire().await?),
        };
        let taken: bool = match sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK_KEY)
            .fetch_one(&mut **connection)
            .await
        {
            Ok(taken) => taken,
            Err(err) => {
                lock.connection = None;
                return Err(err.into());
            }
        };
        lock.held = taken;
        if !taken {
            // Another node leads: the connection goes back to the pool until the next try.
            lock.connection = None;
        }
        Ok(taken)
    }
}

/// A node name: what a session row and the lists show. Letters, digits, `.`, `-`, `_`; at most
/// 64 characters.
pub fn check_node_name(name: &str) -> std::result::Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "node name {name:?}: use 1 to 64 letters, digits, '.', '-' or '_'"
        ))
    }
}
