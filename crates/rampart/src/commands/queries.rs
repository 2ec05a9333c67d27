//! `rampart audit queries`: the statements run through the database listeners, one per line,
//! from the command log of database sessions (each a `command_run` event in the audit chain and
//! a marker in the session's sealed recording).

use crate::output::{Table, print_json};
use anyhow::Context;
use rampart_core::SessionKind;
use rampart_core::time_arg::{format_rfc3339, parse_rfc3339};
use rampart_store::{CommandFilter, Store};
use std::collections::HashMap;
use uuid::Uuid;

pub async fn run(
    store: &Store,
    json: bool,
    user: Option<String>,
    asset: Option<String>,
    since: Option<String>,
    grep: Option<String>,
) -> anyhow::Result<()> {
    let pattern = grep
        .as_deref()
        .map(|re| {
            regex::Regex::new(re).with_context(|| format!("invalid --grep expression {re:?}"))
        })
        .transpose()?;
    let filter = CommandFilter {
        user,
        asset,
        since: since
            .as_deref()
            .map(|t| parse_rfc3339("--since time", t))
            .transpose()?,
    };
    // Only records of database sessions count (a shell line that looks like one does not).
    let mut kinds: HashMap<Uuid, bool> = HashMap::new();
    let mut rows = Vec::new();
    for command in store.commands(&filter).await? {
        let is_database = match kinds.get(&command.session) {
            Some(known) => *known,
            None => {
                let known = store
                    .session(command.session)
                    .await
                    .is_ok_and(|s| matches!(s.kind, SessionKind::Postgres | SessionKind::Redis));
                kinds.insert(command.session, known);
                known
            }
        };
        if !is_database {
            continue;
        }
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&command.command) else {
            continue;
        };
        let statement = field(&record, "statement")
            .as_str()
            .unwrap_or("")
            .to_owned();
        if pattern.as_ref().is_some_and(|re| !re.is_match(&statement)) {
            continue;
        }
        rows.push((command, record, statement));
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(c, record, _)| {
                serde_json::json!({
                    "at": format_rfc3339(c.at),
                    "session": c.session,
                    "user": c.user,
                    "target": format!("{}@{}", c.account, c.asset),
                    "record": record,
                })
            })
            .collect();
        return print_json(&out);
    }
    let mut table = Table::new([
        "AT",
        "USER",
        "TARGET",
        "SESSION",
        "SEQ",
        "STATEMENT",
        "PARAMS",
        "RESULT",
    ]);
    for (c, record, statement) in &rows {
        let result = match field(record, "error").as_str() {
            Some(error) => format!("error: {error}"),
            None => join(field(record, "status")),
        };
        table.row([
            format_rfc3339(c.at.replace_nanosecond(0).unwrap_or(c.at)),
            c.user.clone(),
            format!("{}@{}", c.account, c.asset),
            c.session.to_string(),
            field(record, "seq").to_string(),
            statement.replace('\n', " "),
            join(field(record, "params")),
            result,
        ]);
    }
    table.print("no statements match");
    Ok(())
}

fn join(values: &serde_json::Value) -> String {
    values
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A field of a record (`null` when absent).
fn field<'a>(record: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    record.get(key).unwrap_or(&serde_json::Value::Null)
}
