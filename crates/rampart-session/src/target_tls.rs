//! TLS from Rampart to a target, with the target's certificate pinned: the one place the
//! database fronts decide whether a target connection uses TLS and check what it presents, and
//! where RDP and VNC's VeNCrypt, which always use TLS, require a pin ([`connect_pinned`]).
//!
//! The pin is the endpoint's `tls_fingerprint` (`rampart asset endpoint set ASSET postgres
//! --tls-fingerprint SHA256:...`, the SHA-256 of the certificate's DER that `openssl x509
//! -fingerprint -sha256` prints): an endpoint with a pin is reached over TLS, and only the
//! pinned certificate is accepted (its signature over the handshake still checked; no CA, no
//! name check: the pin is the identity, as an SSH host key is). An endpoint without a pin is
//! reached in plain TCP, as before. A different certificate is refused before anything is
//! sent (the vaulted password least of all), with a `tls_certificate_rejected` event.
//!
//! The protocol's own step before the handshake (PostgreSQL's `SSLRequest`, MySQL's SSL
//! capability; Redis speaks TLS from its first byte) stays in its front; [`connect`] does the
//! handshake on the stream it is given.

use crate::database::Io;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Asset, Protocol};
use rampart_store::Store;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the TLS handshake with a target may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The certificate pinned on `asset`'s `protocol` endpoint: TLS to the target is on when it is
/// there.
pub fn pin(asset: &Asset, protocol: Protocol) -> Option<String> {
    asset
        .endpoint(protocol)
        .and_then(|endpoint| endpoint.tls_fingerprint.clone())
}

/// What a connection to a database target needs besides the asset: the node's dialer, and
/// the store and actor that audit a refused certificate. Sessions (the user) and credential
/// rotation (the rotating actor) both reach targets through it, so both follow the endpoint's
/// pin the same way.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    pub dialer: &'a crate::dial::Dialer,
    pub store: &'a Store,
    pub actor: &'a Actor,
}

impl Reach<'_> {
    /// TLS on `stream` (at the protocol's TLS step) with the pinned certificate `pin`:
    /// [`connect`] with this reach's store and actor.
    pub async fn tls(
        &self,
        stream: Box<dyn Io>,
        asset: &Asset,
        protocol: Protocol,
        pin: &str,
    ) -> Result<Box<dyn Io>, String> {
        connect(stream, asset, protocol, pin, self.store, self.actor).await
    }
}

/// `SHA256:` and the lowercase hex SHA-256 of a certificate's DER (as pins are stored).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

/// Completes TLS on `stream` (already at the protocol's TLS step) with `asset`'s `protocol`
/// endpoint, accepting only the certificate `pin`. A different certificate is audited as
/// `tls_certificate_rejected` (by `actor`) and refused with one line naming both fingerprints.
pub async fn connect(
    stream: Box<dyn Io>,
    asset: &Asset,
    protocol: Protocol,
    pin: &str,
    store: &Store,
    actor: &Actor,
) -> Result<Box<dyn Io>, String> {
    let tls = connect_stream(stream, asset, protocol, pin, store, actor).await?;
    Ok(Box::new(tls))
}

/// [`connect`] keeping the stream's type: a front that needs the TLS session afterwards (RDP's
/// CredSSP binds to the server's public key) reads the peer certificate from it.
pub async fn connect_stream<S>(
    stream: S,
    asset: &Asset,
    protocol: Protocol,
    pin: &str,
    store: &Store,
    actor: &Actor,
) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (config, presented) = pinned_client_config(pin)?;
    let name = server_name(&asset.host)?;
    let target = asset
        .address(protocol)
        .unwrap_or_else(|| asset.name.to_string());
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream);
    let failed = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => return Ok(tls),
        Ok(Err(err)) => err.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    let shown = presented.lock().ok().and_then(|mut slot| slot.take());
    match shown {
        Some(shown) if shown != pin => {
            let event = AuditEvent::TlsCertificateRejected {
                asset: asset.name.to_string(),
                protocol: protocol.to_string(),
                expected: pin.to_owned(),
                presented: shown.clone(),
            };
            if let Err(err) = store.record_event(actor, &event).await {
                tracing::error!(error = %err, "cannot record a TLS certificate rejection");
            }
            // Short enough for every client's error line (the event has both fingerprints).
            Err(format!(
                "the TLS certificate of {target} is not the pinned one (presented {shown})"
            ))
        }
        _ => Err(format!("TLS with target {target} failed: {failed}")),
    }
}

/// TLS with the endpoint of a protocol that is only ever reached over TLS with a pinned
/// certificate (RDP, VNC's VeNCrypt): [`connect_stream`] with the endpoint's pin, or, for an
/// endpoint without one, a refusal after the handshake (nothing sent over it) that names the
/// fingerprint the server presented and the command that pins it. The one decision for these
/// protocols.
pub async fn connect_pinned<S>(
    stream: S,
    asset: &Asset,
    protocol: Protocol,
    store: &Store,
    actor: &Actor,
) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match pin(asset, protocol) {
        Some(pin) => connect_stream(stream, asset, protocol, &pin, store, actor).await,
        None => Err(unpinned(stream, asset, protocol).await),
    }
}

/// The line for an endpoint without a pinned certificate, naming what the server presented
/// (learnt from a handshake that accepts no certificate, so nothing is sent over it).
async fn unpinned<S>(stream: S, asset: &Asset, protocol: Protocol) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut shown = None;
    if let (Ok((config, presented)), Ok(name)) =
        (pinned_client_config("none"), server_name(&asset.host))
    {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let _refused =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await;
        shown = presented.lock().ok().and_then(|mut slot| slot.take());
    }
    let kind = protocol.to_string().to_uppercase();
    match shown {
        Some(shown) => format!(
            "the {kind} certificate of {asset} is not pinned, so nothing was sent; it presents \
             {shown}: an administrator who has checked it pins it with `rampart asset endpoint \
             set {asset} {protocol} --tls-fingerprint {shown}`",
            asset = asset.name
        ),
        None => format!(
            "the {kind} certificate of {} is not pinned, so nothing was sent (the TLS handshake \
             did not show a certificate)",
            asset.name
        ),
    }
}

/// The fingerprint a peer presented during a handshake made with [`pinned_client_config`].
pub type Presented = Arc<Mutex<Option<String>>>;

/// A TLS client configuration that accepts exactly the certificate `pin` (its signature over
/// the handshake still checked; no CA, no name check) and notes what the peer presented: the
/// one pin check for every target reached over TLS (database targets here, a Kubernetes API
/// server in `rampart-kube`).
pub fn pinned_client_config(pin: &str) -> Result<(rustls::ClientConfig, Presented), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let presented = Arc::new(Mutex::new(None));
    let verifier = PinnedCertificate {
        pin: pin.to_owned(),
        provider: provider.clone(),
        presented: presented.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, presented))
}

/// The TLS server name of a target's host (an IP address or a DNS name).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{host} is not a valid TLS server name")),
    }
}

/// Accepts exactly the pinned certificate and notes the one presented.
#[derive(Debug)]
struct PinnedCertificate {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    presented: Arc<Mutex<Option<String>>>,
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
        let shown = fingerprint(end_entity.as_ref());
        let matches = shown == self.pin;
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(shown);
        }
        if matches {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the target's certificate is not the pinned one".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn a_fingerprint_is_the_stored_pin_form() {
        let pin = fingerprint(b"certificate");
        assert!(pin.starts_with("SHA256:"));
        assert_eq!(pin.len(), 7 + 64);
        assert_eq!(
            rampart_core::target::parse_tls_fingerprint(&pin).unwrap(),
            pin
        );
    }
}
