//! `serve` as one node of a cluster on a shared PostgreSQL store (issue 19): the checks a node
//! passes before it serves (one audit key for the cluster, a name no running node holds), its
//! heartbeats, and the sweep that declares a silent node lost and ends its sessions.
//!
//! A single node on its SQLite file is a cluster of one: the same code runs, and nothing else
//! ever sweeps.

use crate::config::NodeConfig;
use anyhow::Context;
use rampart_session::live::LiveSessions;
use rampart_store::Store;
use rampart_store::nodes::{NODE_LOST, NodeStart, NodeState, Registered};
use std::sync::Arc;
use tokio::sync::watch;

/// What the cluster settings check calls the audit key.
const AUDIT_KEY_SETTING: &str = "audit public key";

/// This process as a registered node.
#[derive(Debug, Clone)]
pub struct Membership {
    pub name: String,
    instance: String,
    home: String,
    address: Option<String>,
    config: NodeConfig,
}

/// What joining found out about the previous run of this node.
pub struct Joined {
    pub membership: Membership,
    pub registered: Registered,
}

impl Joined {
    /// Whether this node's previous run stopped without saying so (a crash, `kill -9`,
    /// power loss): it left its row `up`, or another node declared it lost.
    pub fn previous_run_crashed(&self) -> bool {
        matches!(
            self.registered.previous,
            Some(NodeState::Up | NodeState::Lost)
        )
    }
}

/// Joins the cluster: names the store's node (sessions carry it), checks that this node signs
/// with the cluster's audit key (the vault key is checked when the store opens), and registers
/// the node. Refused while another running process holds the name.
pub async fn join(
    store: &Store,
    config: &NodeConfig,
    audit_key: &rampart_audit::PrivateKey,
    advertise: Option<String>,
) -> anyhow::Result<Joined> {
    store.set_node(&config.name);
    let public = audit_key
        .public_key()
        .to_openssh()
        .context("cannot encode the audit public key")?;
    store
        .check_cluster_setting(
            AUDIT_KEY_SETTING,
            &public,
            "every node signs the chain and recordings with one audit key, so that audit \
             verify checks them all: copy keys/audit_ed25519_key and keys/audit_ed25519_key.pub \
             from a node of the cluster into this node's data directory",
        )
        .await?;
    let membership = Membership {
        name: config.name.clone(),
        instance: uuid::Uuid::new_v4().to_string(),
        home: store.data_dir().node_id()?,
        address: advertise,
        config: config.clone(),
    };
    let registered = store
        .register_node(&NodeStart {
            name: membership.name.clone(),
            instance: membership.instance.clone(),
            home: membership.home.clone(),
            address: membership.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            lost_after: config.lost_after,
        })
        .await?;
    Ok(Joined {
        membership,
        registered,
    })
}

/// Heartbeats and the sweep, every `node.heartbeat_interval` until `stop`.
///
/// Each beat: write this node's heartbeat; if the row is no longer this process's (another
/// node declared it lost while the database was out of reach), end every local session (their
/// records were closed as "node lost" already, so they carry no evidence any more) and
/// register again. Then declare lost the nodes silent for `node.lost_after`, and end the
/// sessions of lost nodes.
pub async fn run(
    store: Arc<Store>,
    membership: Membership,
    live: Arc<LiveSessions>,
    mut stop: watch::Receiver<bool>,
) {
    let mut beats = tokio::time::interval(membership.config.heartbeat_interval);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beats.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(err) = beat(&store, &membership, &live).await {
            tracing::error!(error = %err, node = %membership.name, "cluster heartbeat failed");
        }
    }
}

async fn beat(store: &Store, membership: &Membership, live: &LiveSessions) -> anyhow::Result<()> {
    if !store
        .node_heartbeat(&membership.name, &membership.instance)
        .await?
    {
        tracing::error!(
            node = %membership.name,
            "another node declared this node lost (its heartbeats did not reach the database \
             in time): its sessions end, and it registers again"
        );
        live.end_all("this node lost contact with the cluster");
        store
            .register_node(&NodeStart {
                name: membership.name.clone(),
                instance: membership.instance.clone(),
                home: membership.home.clone(),
                address: membership.address.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                lost_after: membership.config.lost_after,
            })
            .await?;
    }
    for node in store
        .declare_lost_nodes(&membership.name, membership.config.lost_after)
        .await?
    {
        tracing::warn!(node = %node, "a node stopped sending heartbeats: declared lost");
    }
    for session in store.lost_nodes_sessions().await? {
        // The lost node's recording is on its own disk (or, with recording.store = "s3", its
        // chunks in the bucket): the record is closed without an anchor, and audit verify
        // reports the recording as the lost node left it.
        if store.end_lost_session(&session, None).await? {
            tracing::warn!(
                session = %session.id,
                node = session.node.as_deref().unwrap_or("?"),
                reason = NODE_LOST,
                "ended a session of a lost node"
            );
        }
    }
    Ok(())
}

/// Says this node stopped cleanly (after its sessions ended).
pub async fn leave(store: &Store, membership: &Membership) {
    if let Err(err) = store
        .node_stopped(&membership.name, &membership.instance)
        .await
    {
        tracing::error!(error = %err, "cannot record this node's stop in the cluster");
    }
}
