//! A VNC target's connection: RFB's handshake (`rfb`) with, when the server speaks VeNCrypt,
//! TLS towards it with the endpoint's pinned certificate (`target_tls::connect_pinned`, the
//! decision RDP takes too).
//!
//! INVARIANTS:
//! - An endpoint with a pinned certificate (`rampart asset endpoint set ASSET vnc
//!   --tls-fingerprint ...`) is reached over VeNCrypt only; a server that does not offer it
//!   is refused before anything is sent.
//! - Over VeNCrypt the vaulted password goes only inside TLS with the pinned certificate: an
//!   endpoint without a pin, or a server presenting another certificate, is refused after the
//!   TLS handshake, before the inner authentication (the refusal names the fingerprint the
//!   server presented).
//! - An endpoint without a pin whose server offers VNC authentication or None is reached as
//!   before, without TLS.

use crate::rfb::{self, RfbError, Security, ServerInit};
use rampart_core::audit::Actor;
use rampart_core::{Asset, Protocol, SecretString};
use rampart_session::dial::TargetStream;
use rampart_session::target_tls;
use rampart_store::Store;

/// Logs in to the VNC server on `stream` (`target` is its address, for messages) as the
/// account `login` with its vaulted `password`: the stream to relay on (TLS for VeNCrypt) and
/// the server's ServerInit. Every refusal is the line the user sees.
pub async fn connect(
    mut stream: TargetStream,
    target: &str,
    asset: &Asset,
    login: &str,
    password: &SecretString,
    store: &Store,
    actor: &Actor,
) -> Result<(TargetStream, ServerInit), String> {
    let failed = |err: RfbError| format!("{target}: {err}");
    let offered = rfb::security_types(&mut stream).await.map_err(failed)?;
    let pinned = target_tls::pin(asset, Protocol::Vnc).is_some();
    let security = rfb::choose_security(&offered, true, pinned).map_err(failed)?;
    if security != Security::VeNCrypt {
        let auth = rfb::select(&mut stream, security).await.map_err(failed)?;
        let init = rfb::authenticate(&mut stream, auth, login, Some(password))
            .await
            .map_err(failed)?;
        return Ok((stream, init));
    }
    let auth = rfb::vencrypt(&mut stream, true).await.map_err(failed)?;
    let mut tls = target_tls::connect_pinned(stream, asset, Protocol::Vnc, store, actor).await?;
    let init = rfb::authenticate(&mut tls, auth, login, Some(password))
        .await
        .map_err(failed)?;
    Ok((Box::new(tls), init))
}
