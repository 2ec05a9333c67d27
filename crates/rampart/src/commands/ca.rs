//! `rampart ca show`: the node's SSH certificate authorities' public halves, for operators to
//! hand out (the host CA as a `known_hosts` line).

use crate::cli::CaCommand;
use crate::output::done;
use rampart_store::Store;
use rampart_store::ssh_ca::{CaKind, CertificateAuthority};

pub(super) fn run(store: &Store, json: bool, command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Show { user, .. } => {
            let kind = if user { CaKind::User } else { CaKind::Host };
            let ca = CertificateAuthority::load(store.data_dir(), kind)?;
            let line = match kind {
                CaKind::Host => ca.known_hosts_line(),
                CaKind::User => ca.public_key_line(),
            };
            done(
                json,
                &serde_json::json!({
                    "kind": if user { "user" } else { "host" },
                    "public_key": ca.public_key_line(),
                    "known_hosts": (kind == CaKind::Host).then(|| ca.known_hosts_line()),
                }),
                &line,
            )
        }
    }
}
