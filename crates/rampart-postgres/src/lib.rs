//! The PostgreSQL front: `psql`, `pgbench` and drivers reach databases through Rampart.
//!
//! A new protocol front as `rampart-session` describes one: the wire protocol (here), then
//! `rampart_auth::Authenticator` (a personal database token as the password),
//! `rampart_session::authorize` (the `postgres:connect` action), `SessionCore::start` (the
//! query log as inspector, a sealed recording), the dialer to the asset's `postgres` endpoint,
//! the login there with the vaulted password, and a relay of whole messages through the
//! session's tap until either side ends or live enforcement stops it.
//!
//! - [`wire`]: bounded framing of the v3 protocol.
//! - [`target_login`]: SCRAM-SHA-256 / md5 to the target with the vaulted password.
//! - [`querylog`]: one record per statement, recorded before its answer is passed back.
//! - [`front`]: one client connection, from the first byte to the session's end.
//! - [`cancel`]: cancel requests, mapped from the key Rampart gave the client to the target's.

pub mod cancel;
pub mod front;
pub mod querylog;
pub mod rotate;
pub mod target_login;
pub mod wire;

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
pub struct PostgresSettings {
    /// Plain (non-TLS) connections are accepted from loopback addresses only, and only when
    /// this is set (`postgres.allow_plain_loopback`).
    pub allow_plain_loopback: bool,
    /// Time from accept to a completed login (`postgres.login_grace_time`).
    pub login_grace_time: Duration,
    /// Connections not logged in yet, at most.
    pub max_unauthenticated: usize,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            allow_plain_loopback: false,
            login_grace_time: Duration::from_secs(30),
            max_unauthenticated: 256,
        }
    }
}

/// Everything a connection needs; cheap to clone.
#[derive(Clone)]
pub struct PostgresFront {
    pub(crate) base: FrontBase,
    pub(crate) settings: PostgresSettings,
    pub(crate) cancels: Arc<cancel::CancelMap>,
}

impl std::fmt::Debug for PostgresFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFront")
            .field("settings", &self.settings)
            .field("tls", &self.base.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresFront {
    /// `tls`: the node's certificate (the web listener's); its ALPN is set to `postgresql`.
    pub fn new(
        core: SessionCore,
        auth: Authenticator,
        dialer: Dialer,
        tls: Option<Arc<rustls::ServerConfig>>,
        settings: PostgresSettings,
    ) -> Self {
        let base = FrontBase::new(
            core,
            auth,
            dialer,
            tls,
            vec![b"postgresql".to_vec()],
            settings.max_unauthenticated,
        );
        Self {
            base,
            settings,
            cancels: Arc::new(cancel::CancelMap::default()),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes. Live sessions are ended by
/// the node's live registry at shutdown (the SSH gateway's `end_all`), each through its guard.
pub async fn run(front: PostgresFront, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let unauthenticated = front.base.unauthenticated.clone();
    rampart_session::framed::accept_loop(
        "postgres",
        listener,
        unauthenticated,
        shutdown,
        front,
        front::serve,
    )
    .await;
}
