//! Host certificates for ProxyJump hops. The inner connection of a jump to an asset presents
//! the node's host key as a host certificate signed by the node's host CA, naming the asset
//! (its name and its address), so one `@cert-authority * KEY` line in the user's `known_hosts`
//! covers every asset, and a hop is never a trust-on-first-use prompt. russh presents it: a
//! server configuration with the certificate in `certificates` advertises the certificate
//! algorithm and signs the exchange with the matching key in `keys`.

use crate::GatewayError;
use rampart_core::Asset;
use rampart_store::ssh_ca::{CaKind, CertificateAuthority};
use russh::keys::PrivateKey;
use russh::server;
use std::sync::Arc;

/// The node's host key and its host CA, for certifying the key per hop.
pub(crate) struct HostCertifier {
    host_key: PrivateKey,
    ca: CertificateAuthority,
}

impl std::fmt::Debug for HostCertifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("HostCertifier").finish_non_exhaustive()
    }
}

impl HostCertifier {
    pub(crate) fn load(
        dir: &rampart_store::DataDir,
        host_key: PrivateKey,
    ) -> Result<Self, GatewayError> {
        let ca =
            CertificateAuthority::load(dir, CaKind::Host).map_err(|err| GatewayError::Key {
                path: dir.host_ca_key_path().display().to_string(),
                reason: err.to_string(),
            })?;
        Ok(Self { host_key, ca })
    }

    /// The server configuration for the inner connection of a jump to `asset`: the node's host
    /// key with a fresh host certificate whose principals are the asset's name and address.
    /// When signing fails (it should not), the plain key is presented: a client that checks
    /// certificates then refuses the hop, which is the safe outcome.
    pub(crate) fn jump_config(&self, asset: &Asset) -> Arc<server::Config> {
        let mut principals = vec![asset.name.as_str()];
        if asset.host != asset.name.as_str() {
            principals.push(asset.host.as_str());
        }
        let certificates = match self.ca.sign_host(
            self.host_key.public_key(),
            &principals,
            std::time::SystemTime::now(),
        ) {
            Ok(certificate) => vec![certificate],
            Err(err) => {
                tracing::error!(error = %err, asset = %asset.name, "cannot sign a host certificate for a jump; presenting the plain host key");
                Vec::new()
            }
        };
        Arc::new(crate::server::config(self.host_key.clone(), certificates))
    }
}
