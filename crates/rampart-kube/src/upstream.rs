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
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCertificate { pin, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = match asset.host.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(asset.host.clone())
            .map_err(|_| format!("{} is not a valid TLS server name", asset.host))?,
    };
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

/// `SHA256:` and the lowercase hex SHA-256 of a certificate's DER (as pins are stored).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

/// Accepts exactly the pinned certificate (its signature over the handshake still checked).
#[derive(Debug)]
struct PinnedCertificate {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity.as_ref()) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the API server's certificate is not the pinned one".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
