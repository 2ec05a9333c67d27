//! The MySQL/MariaDB front: `mysql`, `mariadb` and drivers reach databases through Rampart.
//!
//! A front as `rampart-session` describes one: the wire protocol (here), then
//! `rampart_auth::Authenticator` (a personal database token as the password),
//! `rampart_session::database::authorize` (the `mysql:connect` action), `SessionCore::start`
//! (the query log as inspector, a sealed recording), the dialer to the asset's `mysql`
//! endpoint, the login there with the vaulted password, and a relay of whole packets through
//! the session's tap until either side ends or live enforcement stops it.
//!
//! - [`wire`]: bounded packet framing.
//! - [`handshake`]: greetings, the client's answer, the target login's scrambles.
//! - [`querylog`]: the command-phase protocol and one record per statement.
//! - [`front`]: one client connection, from the first byte to the session's end.
//! - [`rotate`]: credential rotation of MySQL/MariaDB users (issue 17).
//!
//! Why no crate for the protocol: the MySQL crates (`mysql_async`, `mysql_common`) are clients;
//! a proxy needs the server side of the handshake and packet-level relaying, and their
//! dependency trees are large for the ~600 lines written here.

pub mod front;
pub mod handshake;
pub mod querylog;
pub mod rotate;
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
pub struct MysqlSettings {
    /// Plain (non-TLS) connections are accepted from loopback addresses only, and only when
    /// this is set (`mysql.allow_plain_loopback`).
    pub allow_plain_loopback: bool,
    /// Time from accept to a completed login (`mysql.login_grace_time`).
    pub login_grace_time: Duration,
    /// Connections not logged in yet, at most.
    pub max_unauthenticated: usize,
}

impl Default for MysqlSettings {
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
pub struct MysqlFront {
    pub(crate) base: FrontBase,
    pub(crate) settings: MysqlSettings,
    pub(crate) connections: Arc<std::sync::atomic::AtomicU32>,
}

impl std::fmt::Debug for MysqlFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlFront")
            .field("settings", &self.settings)
            .field("tls", &self.base.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MysqlFront {
    /// `tls`: the node's certificate (the web listener's); its ALPN is cleared (MySQL clients
    /// send none).
    pub fn new(
        core: SessionCore,
        auth: Authenticator,
        dialer: Dialer,
        tls: Option<Arc<rustls::ServerConfig>>,
        settings: MysqlSettings,
    ) -> Self {
        let base = FrontBase::new(
            core,
            auth,
            dialer,
            tls,
            Vec::new(),
            settings.max_unauthenticated,
        );
        Self {
            base,
            settings,
            connections: Arc::default(),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes. Live sessions are ended by
/// the node's live registry at shutdown (the SSH gateway's `end_all`), each through its guard.
pub async fn run(front: MysqlFront, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let unauthenticated = front.base.unauthenticated.clone();
    rampart_session::framed::accept_loop(
        "mysql",
        listener,
        unauthenticated,
        shutdown,
        front,
        front::serve,
    )
    .await;
}
