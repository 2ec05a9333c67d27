//! Rampart's HTTP listener. For now it answers health checks (`/healthz` for liveness,
//! `/readyz` when the store answers); the API and web UI grow here.
//!
//! Shape: [`router`] builds the routes over shared state so tests can call it directly, and
//! [`run`] serves it on a listener the caller bound, until `shutdown` completes.
#![forbid(unsafe_code)]

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use rampart_store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct WebState {
    pub store: Arc<Store>,
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

/// Ready when the store answers: a node that cannot reach its store must not take traffic.
async fn ready(State(state): State<WebState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

/// Serves HTTP on `listener` until `shutdown` completes, then finishes open requests.
pub async fn run(
    listener: TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
