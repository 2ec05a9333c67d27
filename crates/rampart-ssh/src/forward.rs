//! Port forwarding (`ssh -L`) to an asset, for users whose grant allows `port_forward`.
//!
//! Only ports of assets can be reached, and only by name or address of an asset: Rampart is not
//! an open proxy. Each forwarded connection is a session with its own record and byte counts.

use bytes::BytesMut;
use rampart_audit::Stream;
use rampart_core::target::find_forward_target;
use rampart_core::{Action, Asset, Name, SessionKind, User};
use rampart_session::authorize::{Decision, SessionRules, Snapshot};
use rampart_session::dial::{DialError, Dialer};
use rampart_session::{
    Authorized, Refused, SessionCore, SessionGuard, SessionTap, Source, StartRequest,
};
use rampart_store::Store;
use russh::Channel;
use russh::server::Msg;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

/// A forward the policy allows.
pub struct AllowedForward {
    pub asset: Asset,
    pub account: Name,
    pub grant: Uuid,
    pub rules: SessionRules,
}

/// Decides whether `user` may forward to `host:port`: `host` must name an asset (by name or
/// address; among assets sharing an address, the one with an endpoint on `port`), and a grant
/// must allow `port_forward` on one of its accounts.
pub async fn authorize(
    store: &Store,
    user: &User,
    host: &str,
    port: u16,
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
    let asset = find_forward_target(snapshot.assets(), host, port)
        .map(|(asset, _endpoint)| asset)
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

impl AllowedForward {
    /// The forward as the session core takes it.
    pub fn authorized(&self, user: User, mfa: bool, source: Source) -> Authorized {
        Authorized {
            user,
            mfa,
            source,
            asset: self.asset.clone(),
            account: self.account.clone(),
            grant: self.grant,
            rules: self.rules,
            actions: vec![Action::PortForward],
            kube_namespace: None,
        }
    }
}

/// Starts the forward as a session (record and live registration; nothing is recorded but the
/// byte counts); the caller refuses the channel if this fails.
pub async fn start(
    core: &SessionCore,
    authorized: Authorized,
    port: u16,
) -> Result<SessionGuard, Refused> {
    core.start(StartRequest {
        authorized,
        kind: SessionKind::PortForward(port),
        interactive: false,
        command: None,
        recording: None,
        inspectors: Vec::new(),
    })
    .await
}

/// Carries one forwarded connection between the user's channel and the asset's port, until
/// either side closes it or live enforcement ends the session; then ends it through its guard.
pub async fn carry(
    dialer: Dialer,
    store: std::sync::Arc<rampart_store::Store>,
    channel: Channel<Msg>,
    asset: Asset,
    port: u16,
    mut guard: SessionGuard,
) {
    let Some(mut control) = guard.take_control() else {
        return;
    };
    let mut reason = "closed".to_owned();
    match dialer.dial_port(&asset, port).await {
        Ok(mut dialed) => {
            if let Err(err) = store
                .set_session_route(guard.id(), &dialed.route.to_string())
                .await
            {
                guard
                    .end(format!("cannot record the session's route ({err})"), None)
                    .await;
                return;
            }
            let mut stream = channel.into_stream();
            let tap = guard.tap();
            let copy = copy_observed(&mut stream, &mut dialed.stream, &tap);
            tokio::select! {
                () = copy => {}
                why = control.stopped() => reason = why,
            }
        }
        Err(DialError::Unreachable { why, .. }) => reason = format!("target unreachable: {why}"),
        Err(err) => reason = err.to_string(),
    }
    guard.end(reason, None).await;
}

/// Copies both ways through the session's observers (which count the bytes) and marks
/// activity, until both sides are done or an observer fails.
async fn copy_observed(
    user: &mut (impl AsyncRead + AsyncWrite + Unpin),
    target: &mut (impl AsyncRead + AsyncWrite + Unpin),
    tap: &SessionTap,
) {
    let (mut user_read, mut user_write) = tokio::io::split(user);
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let upstream = async {
        let mut buf = BytesMut::with_capacity(BUFFER);
        while let Ok(n) = user_read.read_buf(&mut buf).await {
            if n == 0 {
                break;
            }
            let chunk = buf.split().freeze();
            buf.reserve(BUFFER);
            tap.live().touch();
            let Ok(verdict) = tap.client_sent(&chunk).await else {
                break;
            };
            let written = match verdict.forward {
                None => target_write.write_all(&chunk).await,
                Some(passed) => target_write.write_all(&passed).await,
            };
            if written.is_err() {
                break;
            }
        }
        let _ = target_write.shutdown().await;
    };
    let downstream = async {
        let mut buf = BytesMut::with_capacity(BUFFER);
        while let Ok(n) = target_read.read_buf(&mut buf).await {
            if n == 0 {
                break;
            }
            let chunk = buf.split().freeze();
            buf.reserve(BUFFER);
            tap.live().touch();
            if tap
                .target_sent(&[(Stream::Output, chunk.clone())])
                .await
                .is_err()
            {
                break;
            }
            if user_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = user_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Bytes read at a time each way.
const BUFFER: usize = 32 * 1024;
