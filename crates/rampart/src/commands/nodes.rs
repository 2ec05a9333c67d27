//! `rampart node list`: the cluster's nodes as the shared store's registry holds them.

use super::time_text;
use crate::output::{Table, or_dash, print_json};
use rampart_store::Store;

pub async fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let nodes = store.list_nodes().await?;
    if json {
        return print_json(&nodes);
    }
    let now = time::OffsetDateTime::now_utc();
    let mut table = Table::new([
        "NAME",
        "STATE",
        "LEADER",
        "LAST HEARTBEAT",
        "STARTED",
        "LIVE SESSIONS",
        "VERSION",
        "ADDRESS",
    ]);
    for node in &nodes {
        let silent = (now - node.heartbeat_at).whole_seconds().max(0);
        table.row([
            node.name.clone(),
            node.state.to_string(),
            if node.leader { "yes" } else { "-" }.to_owned(),
            format!("{} ({silent}s ago)", time_text(node.heartbeat_at)),
            time_text(node.started_at),
            node.live_sessions.to_string(),
            node.version.clone(),
            or_dash(node.address.clone()),
        ]);
    }
    table.print("no node has served this store yet (rampart serve registers one)");
    Ok(())
}
