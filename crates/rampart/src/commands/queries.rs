//! `rampart audit queries`: the statements run through the database listeners, one per line,
//! from the command log of database sessions (each a `command_run` event in the audit chain and
//! a marker in the session's sealed recording).

use crate::output::{Table, print_json};
use anyhow::Context;
use rampart_core::time_arg::{format_rfc3339, parse_rfc3339};
use rampart_store::{CommandFilter, Store};

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
    let keep = |statement: &str| pattern.as_ref().is_none_or(|re| re.is_match(statement));
    let rows = rampart_session::database::query_log(store, &filter, None, &keep).await?;
    if json {
        return print_json(&rows);
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
    for row in &rows {
        let record = &row.record;
        let result = match field(record, "error").as_str() {
            Some(error) => format!("error: {error}"),
            None => join(field(record, "status")),
        };
        table.row([
            format_rfc3339(row.at.replace_nanosecond(0).unwrap_or(row.at)),
            row.user.clone(),
            row.target.clone(),
            row.session.to_string(),
            field(record, "seq").to_string(),
            row.statement().replace('\n', " "),
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
