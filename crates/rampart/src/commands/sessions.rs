//! `rampart session ...`

use super::time_text;
use crate::cli::SessionCommand;
use crate::output::{Table, or_dash, print_fields, print_json};
use anyhow::Context;
use rampart_store::Store;
use uuid::Uuid;

pub async fn run(store: &Store, json: bool, command: SessionCommand) -> anyhow::Result<()> {
    match command {
        SessionCommand::List { live } => {
            let sessions = store.list_sessions(live).await?;
            if json {
                return print_json(&sessions);
            }
            let mut table = Table::new([
                "ID",
                "USER",
                "TARGET",
                "KIND",
                "FROM",
                "STARTED",
                "ENDED",
                "IN/OUT BYTES",
            ]);
            for s in &sessions {
                table.row([
                    s.id.to_string(),
                    s.user.clone(),
                    format!("{}@{}", s.account, s.asset),
                    s.kind.clone(),
                    s.source_addr.clone(),
                    time_text(s.started_at),
                    if s.is_live() {
                        "live".to_owned()
                    } else {
                        or_dash(s.ended_at.map(time_text))
                    },
                    format!("{}/{}", s.bytes_from_client, s.bytes_to_client),
                ]);
            }
            table.print(if live {
                "no live sessions"
            } else {
                "no sessions yet"
            });
            Ok(())
        }
        SessionCommand::Show { id } => {
            let id = Uuid::parse_str(&id).with_context(|| {
                format!("invalid session id {id:?}: expected the id `rampart session list` prints")
            })?;
            let s = store.session(id).await?;
            if json {
                return print_json(&s);
            }
            print_fields(&[
                ("id", s.id.to_string()),
                ("user", s.user.clone()),
                ("target", format!("{}@{}", s.account, s.asset)),
                ("kind", s.kind.clone()),
                ("from", s.source_addr.clone()),
                ("started", time_text(s.started_at)),
                (
                    "ended",
                    if s.is_live() {
                        "live".to_owned()
                    } else {
                        or_dash(s.ended_at.map(time_text))
                    },
                ),
                ("bytes from client", s.bytes_from_client.to_string()),
                ("bytes to client", s.bytes_to_client.to_string()),
                ("exit status", or_dash(s.exit_status.map(|c| c.to_string()))),
                ("end reason", or_dash(s.end_reason.clone())),
            ]);
            Ok(())
        }
    }
}
