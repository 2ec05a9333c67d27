//! The connection to a cluster's API server: a stream from the node's dialer, TLS checked
//! against the certificate fingerprint pinned on the asset's `kubernetes` endpoint, and an
//! HTTP/1.1 client on it.
//!
//! Why a pin of the API server's certificate and not its CA: the per-endpoint TLS pin already
//! exists (`rampart asset endpoint set ASSET kubernetes --tls-fingerprint SHA256:...`, the
//! fingerprint `openssl x509 -fingerprint -sha256` prints of the API server's certificate), so
//! no new storage is needed; it pins more tightly than a CA (only that certificate, whatever
//! the CA signs); the cost is re-pinning when the API server's certificate is renewed. An
//! endpoint without a pin is refused (fail closed): nothing is sent, the token least of all.

use rampart_core::{Asset, Protocol};
use rampart_session::dial::{Dialer, Route, TargetStream};
use rampart_session::target_tls;
use std::sync::Arc;
use tokio_rustls::client::TlsStream;

/// A TLS stream to the API server, its route and `host:port` (for messages).
pub struct Upstream {
    pub stream: TlsStream<TargetStream>,
    pub route: Route,
    pub target: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("route", &self.route)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Dials the asset's `kubernetes` endpoint and completes TLS against its pinned certificate.
/// `alpn`: `http/1.1` for requests (a WebSocket upgrade needs HTTP/1.1 too).
pub async fn connect(dialer: &Dialer, asset: &Asset) -> Result<Upstream, String> {
    let endpoint = asset
        .endpoint(Protocol::Kubernetes)
        .ok_or_else(|| format!("{} has no kubernetes endpoint", asset.name))?;
    let Some(pin) = endpoint.tls_fingerprint.clone() else {
        return Err(format!(
            "the API server certificate of {} is not pinned: rampart asset endpoint set {} \
             kubernetes --tls-fingerprint SHA256:...",
            asset.name, asset.name
        ));
    };
    let dialed = dialer
        .dial(asset, Protocol::Kubernetes)
        .await
        .map_err(|err| err.to_string())?;
    let (mut config, _presented) = target_tls::pinned_client_config(&pin)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = target_tls::server_name(&asset.host)?;
    let target = dialed.target.clone();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, dialed.stream)
        .await
        .map_err(|err| format!("TLS with the API server {target} failed: {err}"))?;
    Ok(Upstream {
        stream,
        route: dialed.route,
        target,
    })
}
