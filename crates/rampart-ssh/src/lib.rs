//! Rampart's SSH gateway.
//!
//! Users connect with stock OpenSSH clients ([`server`]); Rampart authenticates them with their
//! own keys, asks the policy ([`rampart_core::policy`]) whether they may use the account they
//! name, connects to the target with the vaulted credential ([`target`]) and relays every channel
//! through one place ([`relay`]), where the recorder attaches. ProxyJump (`ssh -J`) is not TCP
//! forwarding: the inner SSH connection is terminated here too and served like any other.
//!
//! `russh` is the SSH implementation on both sides: a maintained, pure-Rust library that exposes
//! channels with flow control, which a relay needs, and supports strict key exchange.
#![forbid(unsafe_code)]

mod forward;
mod login;
mod menu;
mod relay;
mod server;
mod target;

pub use login::{LoginName, TargetSpec};

use rampart_store::Store;
use russh::keys::PrivateKey;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Gateway {
    store: Arc<Store>,
    server_config: Arc<russh::server::Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot load the SSH host key {path}: {reason}")]
    HostKey { path: String, reason: String },
}

impl Gateway {
    /// Prepares the gateway with the node's host key.
    pub fn new(store: Arc<Store>, host_key_path: &Path) -> Result<Self, GatewayError> {
        let host_key_error = |reason: String| GatewayError::HostKey {
            path: host_key_path.display().to_string(),
            reason,
        };
        let pem = std::fs::read_to_string(host_key_path)
            .map_err(|err| host_key_error(err.to_string()))?;
        let key = PrivateKey::from_openssh(pem.as_bytes())
            .map_err(|err| host_key_error(err.to_string()))?;
        Ok(Self {
            store,
            server_config: Arc::new(server::config(key)),
        })
    }

    /// Accepts SSH connections on `listener` until `shutdown` completes. Connections already
    /// open are ended with the process.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let gateway = self.clone();
                        tokio::spawn(async move { gateway.serve_connection(stream, peer).await });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %err, "cannot accept an SSH connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    async fn serve_connection(self, stream: tokio::net::TcpStream, peer: std::net::SocketAddr) {
        let handler = server::Connection::new(self.store.clone(), self.server_config.clone(), peer);
        match russh::server::run_stream(self.server_config.clone(), stream, handler).await {
            Ok(session) => {
                if let Err(err) = session.await {
                    tracing::debug!(%peer, error = %err, "ssh connection ended with an error");
                }
            }
            Err(err) => tracing::debug!(%peer, error = %err, "ssh handshake failed"),
        }
    }
}
