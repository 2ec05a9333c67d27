//! Rampart's HTTPS listener: health checks, browser sessions and API tokens, and the REST API
//! (`/api/v1/...`) with its OpenAPI document.
//!
//! Shape: [`routes::table`] lists every route with its access level; [`router`] builds the axum
//! router from it (each handler behind `auth::guard`), `openapi` builds the document from it,
//! and the tests enumerate it. [`run`] serves the router on a listener the caller bound, over
//! TLS unless told otherwise, until `shutdown` completes.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod auth;
pub mod cert_facts;
mod connections;
mod desktop;
mod download;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod paging;
pub mod passkey_ceremonies;
pub mod passkey_login;
pub mod portal;
pub mod relay;
pub mod reports;
pub mod routes;
pub mod ssh_login;
pub mod tls;
pub mod totp_enrolment;
pub mod ws;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rampart_core::login_rules::AuthSettings;
use rampart_ssh::admission::GraceStream;
use rampart_store::Store;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// A TLS handshake must complete within this (F2: slow clients cannot pin connections).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Request headers must arrive within this, on a new connection and between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, body included, must be handled within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once (unless the descriptor limit makes it fewer); more are closed
/// on accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections served at once from one source address (IPv6: one /64), except from trusted
/// proxies; more are closed on accept. A browser opens about six; users behind one NAT share an address, and open terminals hold theirs.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 128;

pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// How the listener authenticates and what its cookies say.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Login rules, lockout and trusted proxies: the same as the SSH listener's.
    pub auth: AuthSettings,
    /// `Secure` on the session cookie: off only when serving plain HTTP on loopback.
    pub secure_cookies: bool,
    /// A browser session ends after this long without a request.
    pub session_idle: Duration,
    /// A browser session ends this long after login, whatever happens.
    pub session_lifetime: Duration,
    /// Connections served at once ([`MAX_CONNECTIONS`], or fewer for a small descriptor limit).
    pub max_connections: usize,
    /// The SSH listener's port, for the portal's ready-to-copy `ssh` commands.
    pub ssh_port: Option<u16>,
    /// Access requests: approver groups and the longest access asked for.
    pub requests: rampart_core::requests::RequestSettings,
    /// How long an SSH user certificate it issues is valid (`auth.ssh_cert_ttl`).
    pub ssh_cert_ttl: Duration,
    /// The Kubernetes listener as kubeconfigs name it (`POST /api/v1/kube/config`); `None`:
    /// no Kubernetes listener.
    pub kube: Option<KubeconfigSource>,
}

/// What a kubeconfig the API issues names: the listener's URL and the node's certificate.
#[derive(Debug, Clone)]
pub struct KubeconfigSource {
    /// `https://HOST:PORT`.
    pub server: String,
    /// The node's certificate (PEM), the kubeconfig's CA.
    pub ca_pem: Vec<u8>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            auth: AuthSettings::default(),
            secure_cookies: true,
            session_idle: DEFAULT_SESSION_IDLE,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            max_connections: MAX_CONNECTIONS,
            ssh_port: None,
            requests: rampart_core::requests::RequestSettings::default(),
            ssh_cert_ttl: Duration::from_secs(8 * 3600),
            kube: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebState {
    pub store: Arc<Store>,
    pub settings: Arc<WebSettings>,
    /// The SSH gateway browser terminals go through; without it, terminals and watching are
    /// unavailable (503 / 404).
    pub gateway: Option<rampart_ssh::Gateway>,
    /// WebSockets open at once on this listener (they leave the connection limit once
    /// upgraded, so they have their own).
    pub websockets: Arc<tokio::sync::Semaphore>,
    /// Checks logins, by the same rules and in the same order as the SSH listener.
    pub authenticator: rampart_auth::Authenticator,
    /// What `/metrics` reports (shared with the separate metrics listener, if any).
    pub metrics: Arc<metrics::Metrics>,
    /// Credential rotation (`POST /api/v1/accounts/{account}/rotations`); without it, 503.
    pub rotator: Option<rampart_rotate::Rotator>,
    /// Compliance reports (`GET /api/v1/reports`); without it, 503.
    pub reports: Option<Arc<dyn reports::ReportMaker>>,
    /// `rampart login` requests waiting for approval in the portal.
    pub ssh_logins: Arc<ssh_login::SshLogins>,
    /// TOTP secrets of users enrolling themselves, until confirmed.
    pub pending_totp: Arc<totp_enrolment::PendingTotp>,
    /// The OpenID Connect provider portal sign-ins go to (`[oidc]`); without it, none.
    pub oidc: Option<rampart_oidc::Provider>,
    /// Sign-ins at the provider waiting for its answer or for a TOTP code.
    pub oidc_logins: Arc<oidc::OidcLogins>,
    /// Passkey logins and registrations waiting for the browser's answer.
    pub passkey_ceremonies: Arc<passkey_ceremonies::PasskeyCeremonies>,
    /// The recording bucket's check for `/readyz` (`recording.store = "s3"`): a blocking call,
    /// run off the async runtime; `Err` says what is wrong.
    pub bucket_check: Option<BucketCheck>,
    /// This node in its cluster, for watching sessions other nodes carry (`relay`).
    pub cluster: Option<relay::ClusterLink>,
}

/// Whether the node reaches its recording bucket (blocking; `Err`: why not).
#[derive(Clone)]
pub struct BucketCheck(pub Arc<dyn Fn() -> Result<(), String> + Send + Sync>);

impl std::fmt::Debug for BucketCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BucketCheck")
    }
}

impl WebState {
    pub fn new(store: Arc<Store>, settings: WebSettings) -> Self {
        Self {
            authenticator: rampart_auth::Authenticator::new(store.clone(), settings.auth.clone()),
            store,
            settings: Arc::new(settings),
            gateway: None,
            websockets: Arc::new(tokio::sync::Semaphore::new(ws::MAX_WEBSOCKETS)),
            metrics: Arc::default(),
            rotator: None,
            reports: None,
            ssh_logins: Arc::default(),
            pending_totp: Arc::default(),
            oidc: None,
            oidc_logins: Arc::default(),
            passkey_ceremonies: Arc::default(),
            bucket_check: None,
            cluster: None,
        }
    }

    /// The same state, relaying live views to and from the cluster's other nodes.
    pub fn with_cluster(mut self, link: relay::ClusterLink) -> Self {
        self.cluster = Some(link);
        self
    }

    /// The same state, with `/readyz` also checking the recording bucket.
    pub fn with_bucket_check(mut self, check: Option<BucketCheck>) -> Self {
        self.bucket_check = check;
        self
    }

    /// The same state, with portal sign-in through this OpenID Connect provider.
    pub fn with_oidc(mut self, provider: rampart_oidc::Provider) -> Self {
        self.oidc = Some(provider);
        self
    }

    /// The same state, with passkey (WebAuthn) ceremonies for the relying party `passkeys`.
    pub fn with_passkeys(mut self, passkeys: Option<rampart_auth::Passkeys>) -> Self {
        self.authenticator = self.authenticator.with_passkeys(passkeys);
        self
    }

    /// The same state, reporting into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same state, checking directory users' passwords with `directory` (`[ldap]`).
    pub fn with_directory(
        mut self,
        directory: Option<Arc<dyn rampart_auth::PasswordDirectory>>,
    ) -> Self {
        self.authenticator = self.authenticator.with_directory(directory);
        self
    }

    /// The same state, with the gateway that carries browser terminals and live views.
    pub fn with_gateway(mut self, gateway: rampart_ssh::Gateway) -> Self {
        self.gateway = Some(gateway);
        self
    }

    pub fn with_reports(mut self, reports: Arc<dyn reports::ReportMaker>) -> Self {
        self.reports = Some(reports);
        self
    }

    pub fn with_rotator(mut self, rotator: rampart_rotate::Rotator) -> Self {
        self.rotator = Some(rotator);
        self
    }
}

pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The router: every route of [`routes::table`] behind its guard, under one body limit.
pub fn router(state: WebState) -> Router {
    let mut by_path: BTreeMap<&'static str, axum::routing::MethodRouter<WebState>> =
        BTreeMap::new();
    for route in routes::table() {
        let guarded = route.guarded(&state);
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(guarded),
            None => guarded,
        };
        by_path.insert(route.path, merged);
    }
    let mut router = Router::new();
    for (path, method_router) in by_path {
        router = router.route(path, method_router);
    }
    router
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::record,
        ))
        .with_state(state)
}

/// Ready when the store answers: a node that cannot reach its store must not take traffic.
/// Readiness for a load balancer: whether this node reaches the database and (with recordings
/// in S3) the bucket. One line per part; 503 when either fails, with what failed first.
pub(crate) async fn ready(State(state): State<WebState>) -> impl IntoResponse {
    let store = match state.store.ping().await {
        Ok(()) => "store: ok".to_owned(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed: the store does not answer");
            "store: unavailable".to_owned()
        }
    };
    let bucket = match state.bucket_check.clone() {
        None => None,
        Some(check) => Some(
            match tokio::task::spawn_blocking(move || (check.0)()).await {
                Ok(Ok(())) => "bucket: ok".to_owned(),
                Ok(Err(why)) => {
                    tracing::warn!(error = %why, "readiness check failed: the recording bucket");
                    "bucket: unavailable".to_owned()
                }
                Err(_) => "bucket: unavailable".to_owned(),
            },
        ),
    };
    let ok = store.ends_with("ok") && bucket.as_ref().is_none_or(|b| b.ends_with("ok"));
    let mut text = if ok { "ready\n" } else { "not ready\n" }.to_owned();
    for line in std::iter::once(store).chain(bucket) {
        text.push_str(&line);
        text.push('\n');
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, text)
}

/// Serves on `listener` until `shutdown` completes, then lets open requests finish (for at
/// most ten seconds). With `tls`, every connection is HTTPS; without, plain HTTP (the caller
/// allows that only on loopback, behind a reverse proxy).
pub async fn run(
    listener: TcpListener,
    state: WebState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_connections = state.settings.max_connections.max(1);
    let per_source = connections::PerSource::new(
        MAX_CONNECTIONS_PER_SOURCE,
        state.settings.auth.trusted_proxies.clone(),
    );
    let app = router(state);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Connections are told to finish through this; upgraded (WebSocket) connections leave
    // hyper's hands once upgraded and end with their terminal or the process.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "cannot accept an http connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One address cannot take every slot (slowloris, F2); then the global cap.
        let Some(source_slot) = per_source.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many http connections from one address: closing a new one");
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many http connections: closing a new one");
            continue;
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = (slot, source_slot);
            // The handshake and the first request's headers together must arrive within
            // HEADER_TIMEOUT of accept: the header deadline covers a connection still in its
            // TLS handshake too. Later requests have hyper's header timeout.
            let first_request = Arc::new(AtomicBool::new(false));
            let stream = GraceStream::new(stream, HEADER_TIMEOUT, first_request.clone());
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                first_request.store(true, Ordering::Release);
                request.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move {
                    let handled = async {
                        match read_small_body(request).await {
                            Ok(request) => app.oneshot(request).await,
                            Err(refusal) => Ok(refusal),
                        }
                    };
                    match tokio::time::timeout(REQUEST_TIMEOUT, handled).await {
                        Ok(response) => response,
                        Err(_) => Ok(error::ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "timeout",
                            "the request took too long",
                        )
                        .into_response()),
                    }
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            let result =
                match acceptor {
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(err)) => {
                                    tracing::debug!(%peer, error = %err, "tls handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "tls handshake timed out");
                                    return;
                                }
                            };
                        serve_connection(&builder, TokioIo::new(stream), service, stop).await
                    }
                    None => serve_connection(&builder, TokioIo::new(stream), service, stop).await,
                };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("http connections still open after 10 seconds: closing them");
        }
    }
    Ok(())
}

/// Bodies up to this size are read whole before the request is handled.
const SMALL_BODY_BYTES: u64 = 64 * 1024;

/// Reads a small body (a declared length up to [`SMALL_BODY_BYTES`], every API body) before
/// the request goes to the router. A handler that refuses a request without reading its body
/// (a 401 from the guard) would otherwise leave hyper to close the connection after the
/// answer, without `Connection: close`, whenever the body had not arrived yet; a client that
/// reuses the kept-alive connection then sees it closed under its next request. Memory stays
/// bounded: the connection's read buffer is as large. Larger or unsized bodies stream.
async fn read_small_body(
    request: Request<Incoming>,
) -> Result<Request<axum::body::Body>, axum::response::Response> {
    use http_body_util::BodyExt;
    let small = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length <= SMALL_BODY_BYTES);
    let (parts, body) = request.into_parts();
    if !small {
        return Ok(Request::from_parts(parts, axum::body::Body::new(body)));
    }
    match body.collect().await {
        Ok(collected) => Ok(Request::from_parts(
            parts,
            axum::body::Body::from(collected.to_bytes()),
        )),
        Err(err) => {
            tracing::debug!(error = %err, "request body could not be read");
            Err(error::ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            )
            .into_response())
        }
    }
}

/// Serves one connection (with WebSocket upgrades) until it ends; once `stop` turns true, it
/// finishes the request in progress and closes.
async fn serve_connection<I, S>(
    builder: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// For tests and the binary: the address a listener is reachable at, with its scheme.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}
