//! The Redis front: `redis-cli` and drivers reach Redis servers through Rampart.
//!
//! A protocol front as `rampart-session` describes one: the wire protocol (here), then
//! `rampart_auth::Authenticator` (a personal database token as the password of
//! `AUTH USER@ASSET TOKEN` or `HELLO 3 AUTH ...`), `rampart_session::database::authorize` (the
//! `redis:connect` action), `SessionCore::start` (the command log as inspector, a sealed
//! recording), the dialer to the asset's `redis` endpoint, `AUTH` there with the vaulted
//! password, and a relay of whole RESP values through the session's tap until either side ends
//! or live enforcement stops it.
//!
//! - [`resp`]: bounded, incremental RESP2/RESP3 framing.
//! - [`commands`]: a command's text for the log (secrets masked), the deny-list.
//! - [`log`]: one record per command, recorded before its reply is passed back; Rampart's own
//!   answers kept in order among the target's.
//! - [`front`]: one client connection, from the first byte to the session's end.

pub mod commands;
pub mod front;
pub mod log;
pub mod resp;
pub mod rotate;

pub use commands::DenyList;

use rampart_auth::Authenticator;
use rampart_session::SessionCore;
use rampart_session::dial::Dialer;
use rampart_session::framed::FrontBase;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the listener treats connections (from the node's configuration).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Plain (non-TLS) connections are accepted from loopback addresses only, and only when
    /// this is set (`redis.allow_plain_loopback`).
    pub allow_plain_loopback: bool,
    /// Time from accept to a completed login (`redis.login_grace_time`).
    pub login_grace_time: Duration,
    /// Connections not logged in yet, at most.
    pub max_unauthenticated: usize,
    /// Commands Rampart refuses with `-ERR` (`redis.deny_commands`).
    pub deny: DenyList,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            allow_plain_loopback: false,
            login_grace_time: Duration::from_secs(30),
            max_unauthenticated: 256,
            deny: DenyList::parse(commands::DEFAULT_DENIED).unwrap_or_default(),
        }
    }
}

/// Everything a connection needs; cheap to clone.
#[derive(Clone)]
pub struct RedisFront {
    pub(crate) base: FrontBase,
    pub(crate) settings: RedisSettings,
}

impl std::fmt::Debug for RedisFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFront")
            .field("settings", &self.settings)
            .field("tls", &self.base.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisFront {
    /// `tls`: the node's certificate (the web listener's); no ALPN.
    pub fn new(
        core: SessionCore,
        auth: Authenticator,
        dialer: Dialer,
        tls: Option<Arc<rustls::ServerConfig>>,
        settings: RedisSettings,
    ) -> Self {
        let base = FrontBase::new(
            core,
            auth,
            dialer,
            tls,
            Vec::new(),
            settings.max_unauthenticated,
        );
        Self { base, settings }
    }
}

/// Accepts connections on `listener` until `shutdown` completes. Live sessions are ended by
/// the node's live registry at shutdown, each through its guard.
pub async fn run(front: RedisFront, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let unauthenticated = front.base.unauthenticated.clone();
    rampart_session::framed::accept_loop(
        "redis",
        listener,
        unauthenticated,
        shutdown,
        front,
        front::serve,
    )
    .await;
}
