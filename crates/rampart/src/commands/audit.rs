//! `rampart audit ...`

use crate::cli::AuditCommand;
use crate::output::{Table, print_json};
use rampart_store::Store;

pub async fn run(store: &Store, json: bool, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List { limit } => {
            let events = store.recent_audit_events(limit).await?;
            if json {
                return print_json(&events);
            }
            let mut table = Table::new(["SEQ", "AT", "ACTOR", "EVENT", "DETAILS"]);
            for event in &events {
                let mut details = event.event.clone();
                if let Some(map) = details.as_object_mut() {
                    map.remove("event");
                }
                table.row([
                    event.seq.to_string(),
                    event.at.clone(),
                    event.actor.to_string(),
                    event.kind.clone(),
                    details.to_string(),
                ]);
            }
            table.print("no audit events");
            Ok(())
        }
        AuditCommand::Verify { .. } => anyhow::bail!("verify is handled with the recordings"),
    }
}
