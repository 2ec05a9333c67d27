//! Port forwarding (`ssh -L`) to an asset, for users whose grant allows `port_forward`.
//!
//! Only ports of assets can be reached, and only by name or address of an asset: Rampart is not
//! an open proxy. Each forwarded connection is a session with its own record and byte counts.

use rampart_core::policy::{AccessRequest, Decision, decide};
use rampart_core::{Action, Asset, Name, User};
use rampart_store::{NewSession, SessionEnd, Store};
use russh::Channel;
use russh::server::Msg;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A forward the policy allows.
pub struct AllowedForward {
    pub asset: Asset,
    pub account: Name,
    pub grant: Uuid,
}

/// Decides whether `user` may forward to `host:port`: `host` must name an asset (by name or
/// address), and a grant must allow `port_forward` on one of its accounts.
pub async fn authorize(
    store: &Store,
    user: &User,
    host: &str,
    now: OffsetDateTime,
) -> Result<AllowedForward, String> {
    let internal = || "internal error looking up the target".to_owned();
    let assets = store.list_assets().await.map_err(|_| internal())?;
    let asset = assets
        .into_iter()
        .find(|asset| asset.name.as_str() == host || asset.host == host)
        .ok_or_else(|| format!("{host} is not an asset: only assets can be reached"))?;
    let grants = store.list_grants().await.map_err(|_| internal())?;
    let accounts = store
        .list_accounts(Some(&asset.name))
        .await
        .map_err(|_| internal())?;
    let mut reason = format!("no grant allows port_forward to {}", asset.name);
    for account in accounts {
        let request = AccessRequest {
            user,
            asset: &asset,
            account: &account.login,
            action: Action::PortForward,
            at: now,
        };
        match decide(&request, &grants) {
            Decision::Allow { grant } => {
                return Ok(AllowedForward {
                    asset,
                    account: account.login,
                    grant,
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
    };
    match store.start_session(&session).await {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::error!(error = %err, "cannot record a forward; refusing it");
            None
        }
    }
}

/// Carries one forwarded connection between the user's channel and the asset's port.
pub async fn carry(
    store: std::sync::Arc<Store>,
    channel: Channel<Msg>,
    host: String,
    port: u16,
    session: Uuid,
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
            match tokio::io::copy_bidirectional(&mut stream, &mut tcp).await {
                Ok((from_client, to_client)) => {
                    end.bytes_from_client = from_client;
                    end.bytes_to_client = to_client;
                }
                Err(err) => end.reason = format!("ended: {}", err.kind()),
            }
        }
        Ok(Err(err)) => end.reason = format!("target unreachable: {}", err.kind()),
        Err(_) => end.reason = "target unreachable: timed out".into(),
    }
    if let Err(err) = store.end_session(session, &end).await {
        tracing::error!(error = %err, "cannot record the end of a forward");
    }
}
