//! `rampart alert ...`: alerts (`alert_raised` audit events) and their acknowledgement.

use crate::cli::AlertCommand;
use crate::output::{Table, done, print_json};
use rampart_core::audit::Actor;
use rampart_store::Store;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: AlertCommand,
) -> anyhow::Result<()> {
    match command {
        AlertCommand::List { open } => {
            let alerts: Vec<_> = store
                .list_alerts()
                .await?
                .into_iter()
                .filter(|alert| !open || alert.acknowledged_by.is_none())
                .collect();
            if json {
                return print_json(&alerts);
            }
            let mut table = Table::new(["ID", "AT", "SEVERITY", "USER", "DETAIL", "ACKNOWLEDGED"]);
            for alert in &alerts {
                let field = |name: &str| {
                    alert
                        .event
                        .get(name)
                        .and_then(|v| v.as_str())
                        .unwrap_or("-")
                        .to_owned()
                };
                table.row([
                    alert.id.to_string(),
                    alert.at.clone(),
                    field("severity"),
                    field("user"),
                    field("detail"),
                    alert.acknowledged_by.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            table.print("no alerts");
            Ok(())
        }
        AlertCommand::Ack { id } => {
            store.acknowledge_alert(actor, id).await?;
            done(
                json,
                &serde_json::json!({ "acknowledged": id }),
                &format!("acknowledged alert {id}"),
            )
        }
    }
}
