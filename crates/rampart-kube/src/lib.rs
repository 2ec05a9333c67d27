//! The Kubernetes front: `kubectl` and client libraries reach Kubernetes API servers through
//! Rampart, as the person they are.
//!
//! A protocol front as `rampart-session` describes one. The listener speaks HTTPS with the
//! node's certificate; a client presents a personal Kubernetes token (from `rampart kube
//! config`, a bearer token) on every request, which `rampart_auth::Authenticator` checks once
//! per connection. Each request names its cluster in the path (`/clusters/ASSET/...`, the
//! server URL of the kubeconfig) and is authorized through `rampart_session::authorize` for the
//! action it needs (`kubernetes:read`, `kubernetes:write`, `kubernetes:exec`), then forwarded
//! to the asset's `kubernetes` endpoint over the node's dialer, TLS pinned, with the vaulted
//! service-account token and `Impersonate-User` / `Impersonate-Group` from the person: the
//! cluster's RBAC and audit log see the real user. What the client sent as `Authorization` or
//! `Impersonate-*` never reaches the cluster.
//!
//! - [`api`]: what a request is (verb, resource, namespace, name), pure.
//! - [`redact`]: what of a body is kept (capped; Secret values never).
//! - [`upstream`]: the pinned TLS connection to the API server.
//! - [`log`]: one record per request in the session's command log.
//! - [`proxy`]: one client connection: authentication, the session, forwarding.
//! - [`exec`]: `kubectl exec`/`attach` over WebSocket, recorded as a terminal.
//! - [`portforward`]: `kubectl port-forward` over WebSocket, each connection recorded.
//! - [`spdy`]: the SPDY/3.1 framing of kubectl's port-forward tunnel, pure.
//! - [`kubeconfig`]: the kubeconfig Rampart issues.

pub mod api;
pub mod exec;
pub mod kubeconfig;
pub mod log;
pub mod portforward;
pub mod proxy;
pub mod redact;
pub mod spdy;
pub mod upstream;

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
pub struct KubeSettings {
    /// Time from accept to the first request's headers (TLS included).
    pub login_grace_time: Duration,
    /// Connections without an authenticated request yet, at most.
    pub max_unauthenticated: usize,
    /// Largest request body forwarded (bodies are read whole before they are forwarded).
    pub max_body: usize,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            login_grace_time: Duration::from_secs(30),
            max_unauthenticated: 256,
            max_body: 8 * 1024 * 1024,
        }
    }
}

/// Everything a connection needs; cheap to clone.
#[derive(Clone)]
pub struct KubeFront {
    pub(crate) base: FrontBase,
    pub(crate) settings: KubeSettings,
}

impl std::fmt::Debug for KubeFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeFront")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KubeFront {
    /// `tls`: the node's certificate (the web listener's), offered with ALPN `http/1.1` (the
    /// WebSocket upgrades of exec need HTTP/1.1).
    pub fn new(
        core: SessionCore,
        auth: Authenticator,
        dialer: Dialer,
        tls: Arc<rustls::ServerConfig>,
        settings: KubeSettings,
    ) -> Self {
        let base = FrontBase::new(
            core,
            auth,
            dialer,
            Some(tls),
            vec![b"http/1.1".to_vec()],
            settings.max_unauthenticated,
        );
        Self { base, settings }
    }
}

/// Accepts connections on `listener` until `shutdown` completes. Live sessions are ended by
/// the node's live registry at shutdown, each through its guard.
pub async fn run(front: KubeFront, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let unauthenticated = front.base.unauthenticated.clone();
    rampart_session::framed::accept_loop(
        "kubernetes",
        listener,
        unauthenticated,
        shutdown,
        front,
        proxy::serve,
    )
    .await;
}
