//! Port forwarding (`ssh -L`) to an asset, for users whose grant allows `port_forward`.
//!
//! Only ports of assets can be reached, and only by name or address of an asset: Rampart is not
//! an open proxy. Each forwarded connection is a session with its own record and byte counts.

use crate::live::{Registration, SessionControl};
use rampart_core::{Action, Asset, Name, User};
use rampart_session::authorize::{Decision, SessionRules, Snapshot};
use rampart_store::{NewSession, SessionEnd, Store};
use russh::Channel;
use russh::server::Msg;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A forward the policy allows.
pub struct AllowedForward {
    pub asset: Asset,
    pub account: Name,
    pub grant: Uuid,
    pub rules: SessionRules,
}

/// Decides whether `user` may forward to `host:port`: `host` must name an asset (by name or
/// address), and a grant must allow `port_forward` on one of its accounts.
pub async fn authorize(
    store: &Store,
    user: &User,
    host: &str,
    now: OffsetDateTime,
    mfa: bool,
) -> Result<AllowedForward, String> {
    let snapshot = Snapshot::for_user(store, &user.name).await.map_err(|err| {
        tracing::error!(error = %err, "cannot look up a forward's target");
        "internal error looking up the target".to_owned()
    })?;
    let access = snapshot
        .as_user(&user.name, mfa, now)
        .ok_or_else(|| format!("{} may not forward: the user was removed", user.name))?;
    let asset = snapshot
        .assets()
        .iter()
        .find(|asset| asset.name.as_str() == host || asset.host == host)
        .ok_or_else(|| format!("{host} is not an asset: only assets can be reached"))?;
    let mut reason = format!("no grant allows port_forward to {}", asset.name);
    for account in snapshot.logins_on(&asset.name) {
        match access.decide(asset, account, Action::PortForward) {
            Decision::Allow { grant, rules } => {
                return Ok(AllowedForward {
                    asset: asset.clone(),
                    account: account.clone(),
                    grant,
                    rules,
                });
            }
            Decision::Deny(why) => {
                reason = format!("{} may not forward to {}: {why}", user.name, asset.name)
            }
        }
    }
    Err(reason)
}

/// Records the forward as a session; the caller refuses the channel if this fails.
pub async fn start(
    store: &Store,
    user: &User,
    allowed: &AllowedForward,
    port: u32,
    source: &str,
) -> Option<Uuid> {
    let session = NewSession {
        id: rampart_store::new_session_id(),
        user: user.name.to_string(),
        asset: allowed.asset.name.to_string(),
        account: allowed.account.to_string(),
        kind: format!("port_forward:{port}"),
        source_addr: source.to_owned(),
        grant: allowed.grant,
        recorded: false,
        recording_cap: None,
    };
    match store.start_session(&session).await {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::error!(error = %err, "cannot record a forward; refusing it");
            None
        }
    }
}

/// Carries one forwarded connection between the user's channel and the asset's port, until
/// either side closes it or live enforcement ends the session.
pub async fn carry(
    store: std::sync::Arc<Store>,
    channel: Channel<Msg>,
    host: String,
    port: u16,
    session: Uuid,
    registration: Registration,
    mut control: SessionControl,
) {
    let mut end = SessionEnd {
        reason: "closed".into(),
        ..SessionEnd::default()
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(mut tcp)) => {
            let _ = tcp.set_nodelay(true);
            let mut stream = channel.into_stream();
            let counts = [AtomicU64::new(0), AtomicU64::new(0)];
            let copy = copy_counted(&mut stream, &mut tcp, &registration, &counts);
            tokio::select! {
                () = copy => {}
                reason = stopped(&mut control) => end.reason = reason,
            }
            let [from_client, to_client] = counts.map(AtomicU64::into_inner);
            (end.bytes_from_client, end.bytes_to_client) = (from_client, to_client);
        }
        Ok(Err(err)) => end.reason = format!("target unreachable: {}", err.kind()),
        Err(_) => end.reason = "target unreachable: timed out".into(),
    }
    if let Err(err) = store.end_session(session, &end).await {
        tracing::error!(error = %err, "cannot record the end of a forward");
    }
}

/// The reason live enforcement gives when it ends the session.
pub(crate) async fn stopped(control: &mut SessionControl) -> String {
    stopped_watch(&mut control.stop).await
}

/// Resolves with the reason once `stop` carries one.
pub(crate) async fn stopped_watch(
    stop: &mut tokio::sync::watch::Receiver<Option<String>>,
) -> String {
    loop {
        if let Some(reason) = stop.borrow_and_update().clone() {
            return reason;
        }
        if stop.changed().await.is_err() {
            // The registry is gone: nobody can end the session any more, so never resolve.
            std::future::pending::<()>().await;
        }
    }
}

/// Copies both ways, counting bytes (from the user, to the user) and marking activity, until
/// both sides are done.
async fn copy_counted(
    user: &mut (impl AsyncRead + AsyncWrite + Unpin),
    target: &mut (impl AsyncRead + AsyncWrite + Unpin),
    registration: &Registration,
    counts: &[AtomicU64; 2],
) {
    let [from_client, to_client] = counts;
    let (mut user_read, mut user_write) = tokio::io::split(user);
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let session = &registration.session;
    let upstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = user_read.read(&mut buf).await {
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            session.touch();
            if target_write.write_all(chunk).await.is_err() {
                break;
            }
            from_client.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = target_write.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = target_read.read(&mut buf).await {
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            session.touch();
            if user_write.write_all(chunk).await.is_err() {
                break;
            }
            to_client.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = user_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
