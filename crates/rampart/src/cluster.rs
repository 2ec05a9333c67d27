//! `serve` as one node of a cluster on a shared PostgreSQL store (issue 19): the checks a node
//! passes before it serves (one audit key for the cluster, a name no running node holds), its
//! heartbeats, and the sweep that declares a silent node lost and ends its sessions.
//!
//! A single node on its SQLite file is a cluster of one: the same code runs, and nothing else
//! ever sweeps.

use crate::config::NodeConfig;
use anyhow::Context;
use rampart_core::audit::RecordingAnchor;
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
    certificate: Option<String>,
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
    certificate: Option<String>,
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
        certificate,
        config: config.clone(),
    };
    let registered = store
        .register_node(&NodeStart {
            name: membership.name.clone(),
            instance: membership.instance.clone(),
            home: membership.home.clone(),
            address: membership.address.clone(),
            certificate: membership.certificate.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            lost_after: config.lost_after,
        })
        .await?;
    Ok(Joined {
        membership,
        registered,
    })
}

/// Seals a lost node's recordings from what reached the bucket (`recording.store = "s3"`).
pub struct Recovery {
    pub client: rampart_s3::Client,
    pub key: rampart_audit::PrivateKey,
}

impl Recovery {
    /// The anchor of `session`'s recording as the bucket holds it: sealed by the lost node
    /// (verified), or rebuilt from its uploaded lines and chunks and sealed here as
    /// incomplete (the sealed manifest then put in the bucket). `None`: nothing of it reached
    /// the bucket. Blocking.
    fn seal(&self, session: uuid::Uuid) -> Result<Option<RecordingAnchor>, String> {
        let dir = tempfile::tempdir().map_err(|err| format!("a temporary directory: {err}"))?;
        let anchor = match rampart_s3::recover(&self.client, session, dir.path()) {
            Err(rampart_s3::FetchError::Missing(_)) => return Ok(None),
            Err(err) => return Err(err.to_string()),
            Ok(rampart_s3::Recovered::Sealed) => {
                let report =
                    rampart_audit::verify_recording(dir.path(), session, self.key.public_key())
                        .map_err(|problem| problem.to_string())?;
                RecordingAnchor {
                    id: session.to_string(),
                    manifest_sha256: report.manifest_sha256,
                    complete: report.complete,
                }
            }
            Ok(rampart_s3::Recovered::Unsealed { .. }) => {
                let sealed = rampart_audit::recording::seal_interrupted(dir.path(), &self.key)
                    .map_err(|err| err.to_string())?;
                let recording = sealed
                    .into_iter()
                    .find(|recording| recording.session == session)
                    .ok_or("the rebuilt recording was already sealed")?;
                let manifest =
                    std::fs::read(rampart_audit::recording::manifest_path(dir.path(), session))
                        .map_err(|err| err.to_string())?;
                self.client
                    .put(
                        &self.client.key(&rampart_s3::manifest_name(session)),
                        &manifest,
                    )
                    .map_err(|err| err.to_string())?;
                recording.anchor()
            }
        };
        Ok(Some(anchor))
    }
}

/// Heartbeats and the sweep, every `node.heartbeat_interval` until `stop`.
///
/// Each beat: write this node's heartbeat; if the row is no longer this process's (another
/// node declared it lost while the database was out of reach), end every local session (their
/// records were closed as "node lost" already, so they carry no evidence any more) and
/// register again. Then declare lost the nodes silent for `node.lost_after`, and end the
/// sessions of lost nodes.
///
/// Each beat also settles who leads (`leader` says whether this node does): the work that must
/// run once per cluster runs only on the leader ([`while_leader`]).
pub async fn run(
    store: Arc<Store>,
    membership: Membership,
    live: Arc<LiveSessions>,
    recovery: Option<Arc<Recovery>>,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut beats = tokio::time::interval(membership.config.heartbeat_interval);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lock = rampart_store::nodes::LeaderLock::default();
    loop {
        tokio::select! {
            _ = beats.tick() => {}
            _ = stop.changed() => return,
        }
        let leads = match store.lead(&mut lock).await {
            Ok(leads) => leads,
            Err(err) => {
                tracing::error!(error = %err, "cannot settle the cluster's leader; not leading");
                false
            }
        };
        if let Err(err) = beat(&store, &membership, &live, recovery.as_ref(), leads).await {
            tracing::error!(error = %err, node = %membership.name, "cluster heartbeat failed");
        }
        leader.send_if_modified(|was| {
            if *was == leads {
                return false;
            }
            tracing::info!(node = %membership.name, leads, "cluster leadership changed");
            *was = leads;
            true
        });
    }
}

/// Runs the task `start` makes while this node leads the cluster (audit sinks, detectors,
/// retention, rotation, directory syncs: work that must run once): started when it becomes
/// leader, told to stop (its stop receiver) and awaited when it stops leading or the server
/// stops.
pub async fn while_leader<F, Fut>(
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    mut start: F,
) where
    F: FnMut(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            led = leader.wait_for(|leads| *leads) => if led.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let (task_stop, task_stopped) = watch::channel(false);
        let mut task = tokio::spawn(start(task_stopped));
        let server_stops = tokio::select! {
            _ = &mut task => return,
            _ = leader.wait_for(|leads| !*leads) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        let _ = task_stop.send(true);
        if let Err(err) = task.await {
            tracing::error!(error = %err, "a background task failed");
        }
        if server_stops {
            return;
        }
    }
}

async fn beat(
    store: &Store,
    membership: &Membership,
    live: &LiveSessions,
    recovery: Option<&Arc<Recovery>>,
    leads: bool,
) -> anyhow::Result<()> {
    if !store
        .node_heartbeat(&membership.name, &membership.instance, leads)
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
                certificate: membership.certificate.clone(),
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
        // With recordings in S3, the recording is sealed from what reached the bucket, and
        // the end anchors it; if the bucket cannot be read now, the next beat tries again.
        // With local recordings it is on the lost node's disk: the end carries no anchor,
        // and audit verify reports the recording missing.
        let anchor = match recovery {
            Some(recovery) if session.recorded => {
                let recovery = recovery.clone();
                let id = session.id;
                match tokio::task::spawn_blocking(move || recovery.seal(id)).await {
                    Ok(Ok(anchor)) => anchor,
                    Ok(Err(why)) => {
                        tracing::error!(session = %id, error = %why, "cannot seal a lost node's recording from the bucket yet");
                        continue;
                    }
                    Err(err) => {
                        tracing::error!(session = %id, error = %err, "the recording recovery task failed");
                        continue;
                    }
                }
            }
            _ => None,
        };
        if store.end_lost_session(&session, anchor).await? {
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
