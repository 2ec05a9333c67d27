//! The access log of the HTTPS listener: one structured record per request (who, from where,
//! what, the result, how long), under the tracing target [`TARGET`], which the binary routes
//! (`log.access`: its own file, with the other log lines, or off). Each response is also
//! counted for `/metrics`.

use crate::WebState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The tracing target of access records (the SSH gateway's use the same).
pub const TARGET: &str = rampart_ssh::ACCESS_TARGET;

/// Filled by the guard with the authenticated user's name, for the record.
#[derive(Debug, Clone, Default)]
pub struct AccessWho(Arc<OnceLock<String>>);

/// Called by the guard once it knows who is calling.
pub(crate) fn note_caller(request: &Request, user: &str) {
    if let Some(who) = request.extensions().get::<AccessWho>() {
        let _ = who.0.set(user.to_owned());
    }
}

/// The middleware around every route.
pub(crate) async fn record(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let who = AccessWho::default();
    request.extensions_mut().insert(who.clone());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let source = crate::auth::source_of(&state, request.headers(), peer);
    let method = request.method().clone();
    // The path only: a query string may carry search text nobody asked to keep.
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    state.metrics.count_response(status);
    tracing::info!(
        target: TARGET,
        protocol = "http",
        user = who.0.get().map_or("-", String::as_str),
        source = %source,
        method = %method,
        path = %path,
        status = status.as_u16(),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "http request"
    );
    response
}
