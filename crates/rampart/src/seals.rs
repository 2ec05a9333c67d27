//! Signed chain heads: who signs the audit log's head, when, and what a start after a crash
//! records.
//!
//! - The server signs the head every `audit.seal_interval` as `running`, again even when the
//!   head has not moved, so the newest signature says when the server was last seen alive; and
//!   once more as `final` after its `server_stopped` event when it stops cleanly.
//! - An administration command that wrote events signs the head it moved as `final`.
//! - At start, a log that does not end in a `final` head means the previous run stopped
//!   uncleanly: an `unclean_stop_detected` event says so, and the head is signed at once.
//!
//! `audit verify` (commands/verify.rs) holds the other side: what must be signed, and when.

use rampart_audit::{ChainHead, PrivateKey};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::time_arg::format_rfc3339;
use rampart_store::{AuditSeal, Store};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The event kind of a signed head sent to a SIEM sink, and of `audit anchor`'s line.
pub const ANCHOR_KIND: &str = "audit_head_signed";

/// A head signed by a running server, which signs again within its seal interval.
pub const RUNNING: &str = "running";
/// The last head a process signed before it stopped cleanly.
pub const FINAL: &str = "final";

/// The key under which `server_started` records the seal interval, in seconds.
pub const INTERVAL_SETTING: &str = "audit_seal_interval_secs";

/// How long after an event, or after a running server's last signature, `audit verify` still
/// accepts that the event is unsigned: three intervals and five seconds for a busy machine.
pub fn allowed_lag(interval: Duration) -> Duration {
    interval.saturating_mul(3) + Duration::from_secs(5)
}

/// Signs the current head in `state`; `None` when the log is empty.
pub async fn sign_head(
    store: &Store,
    key: &PrivateKey,
    state: &str,
) -> anyhow::Result<Option<AuditSeal>> {
    let Some((seq, hash)) = store.audit_head().await? else {
        return Ok(None);
    };
    let signed_at = format_rfc3339(time::OffsetDateTime::now_utc());
    let head = ChainHead {
        seq,
        hash: &hash,
        signed_at: &signed_at,
        state,
    };
    let signature = rampart_audit::sign_chain_head(key, &head).map_err(anyhow::Error::msg)?;
    let seal = AuditSeal {
        seq,
        hash,
        sealed_at: signed_at,
        state: state.to_owned(),
        signature,
    };
    store.record_audit_seal(&seal).await?;
    Ok(Some(seal))
}

/// Where the log stood before an administration command: its head, and whether that head was
/// signed.
pub async fn before_command(store: &Store) -> anyhow::Result<(Option<i64>, bool)> {
    let head = store.audit_head().await?.map(|(seq, _)| seq);
    let signed = store.last_audit_seal().await?.map(|seal| seal.seq) == head;
    Ok((head, signed))
}

/// After an administration command: signs the head as `final` if the command moved it and the
/// log was fully signed before it. An unsigned tail it did not write (a server that crashed, or
/// is running and signs within its interval, or tampering) is never covered by a command: the
/// server signs it, and records why. A failure is a warning: the change itself is committed.
pub async fn sign_after_command(store: &Store, before: (Option<i64>, bool)) {
    let result = async {
        let head = store.audit_head().await?.map(|(seq, _)| seq);
        let (head_before, signed_before) = before;
        if head == head_before || !signed_before {
            return anyhow::Ok(());
        }
        let key = rampart_audit::read_private_key(&store.data_dir().audit_key_path())
            .map_err(anyhow::Error::msg)?;
        sign_head(store, &key, FINAL).await?;
        Ok(())
    }
    .await;
    if let Err(err) = result {
        eprintln!("warning: cannot sign the audit chain head: {err:#}");
    }
}

/// At start (under the serve lock, before `server_started`): if this node's previous run
/// `crashed` (the cluster registry says it never stopped), or the log does not end in a head
/// signed `final` (asked only of a node alone: other nodes' events follow any head), the
/// previous run stopped without a clean shutdown; records that. Returns whether it did.
pub async fn record_unclean_stop(store: &Store, crashed: bool) -> anyhow::Result<bool> {
    let Some((head_seq, _)) = store.audit_head().await? else {
        return Ok(false);
    };
    let last = store.last_audit_seal().await?;
    if !crashed
        && last
            .as_ref()
            .is_some_and(|seal| seal.seq == head_seq && seal.state == FINAL)
    {
        return Ok(false);
    }
    let event = AuditEvent::UncleanStopDetected {
        last_signed_seq: last.as_ref().map(|seal| seal.seq),
        last_signed_at: last.map(|seal| seal.sealed_at),
        head_seq,
    };
    store.record_event(&Actor::System, &event).await?;
    Ok(true)
}

/// The server's signer: signs the head every `interval` until `stop`. It remembers the last
/// head it signed; if that event is later gone or changed, someone shortened or rewrote the log
/// under it, and it stops signing (so `audit verify` fails) and says so in the log.
pub async fn run(
    store: std::sync::Arc<Store>,
    key: PrivateKey,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_signed: Option<(i64, String)> = None;
    let mut tampered = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        if tampered {
            continue;
        }
        if let Some((seq, hash)) = &last_signed {
            match store.audit_event_hash(*seq).await {
                Ok(Some(found)) if found == *hash => {}
                Ok(_) => {
                    tracing::error!(
                        seq,
                        "the audit log was shortened or rewritten under a head this server signed: \
                         it signs no more heads (audit verify reports it)"
                    );
                    tampered = true;
                    continue;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the audit log");
                    continue;
                }
            }
        }
        match sign_head(&store, &key, RUNNING).await {
            Ok(Some(seal)) => last_signed = Some((seal.seq, seal.hash)),
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "cannot sign the audit chain head"),
        }
    }
}

/// At a clean shutdown: records `server_stopped` and signs it as the final head.
pub async fn sign_at_shutdown(store: &Store, key: &PrivateKey, node: &str) {
    let stopped = AuditEvent::ServerStopped {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node: Some(node.to_owned()),
    };
    let result = async {
        store.record_event(&Actor::System, &stopped).await?;
        sign_head(store, key, FINAL).await
    }
    .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "cannot sign the audit chain head at shutdown");
    }
}

/// A signed head as it travels outside the node: `audit anchor` prints it, SIEM sinks receive
/// it, `audit verify --anchor` reads it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Anchor {
    #[serde(default)]
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub signed_at: String,
    pub state: String,
    pub signature: String,
}

impl Anchor {
    pub fn of(seal: &AuditSeal) -> Self {
        Self {
            kind: ANCHOR_KIND.to_owned(),
            seq: seal.seq,
            hash: seal.hash.clone(),
            signed_at: seal.sealed_at.clone(),
            state: seal.state.clone(),
            signature: seal.signature.clone(),
        }
    }

    pub fn head(&self) -> ChainHead<'_> {
        ChainHead {
            seq: self.seq,
            hash: &self.hash,
            signed_at: &self.signed_at,
            state: &self.state,
        }
    }
}
