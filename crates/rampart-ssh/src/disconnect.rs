//! How the SSH front closes a connection when the session core's live enforcement says its user
//! may no longer be connected.

use russh::server::Handle;
use std::sync::Arc;

/// An SSH connection's handle, closed with a disconnect message that carries the reason.
pub(crate) struct Disconnect(Handle);

impl Disconnect {
    pub(crate) fn arc(handle: Handle) -> Arc<dyn rampart_session::live::CloseConnection> {
        Arc::new(Self(handle))
    }
}

impl rampart_session::live::CloseConnection for Disconnect {
    fn close(&self, reason: String) {
        let handle = self.0.clone();
        tokio::spawn(async move {
            let _ = handle
                .disconnect(
                    russh::Disconnect::ByApplication,
                    format!("rampart: {reason}"),
                    "en".into(),
                )
                .await;
        });
    }
}
