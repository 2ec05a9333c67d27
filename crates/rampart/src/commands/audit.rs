//! `rampart audit ...`

use crate::cli::AuditCommand;
use crate::output::{Table, print_json};
use anyhow::Context;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::time_arg::{format_rfc3339, parse_rfc3339};
use rampart_store::CommandFilter;
use rampart_store::Store;
use std::io::Write;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: AuditCommand,
) -> anyhow::Result<()> {
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
        AuditCommand::Verify { .. }
        | AuditCommand::Anchor { .. }
        | AuditCommand::Queries { .. } => {
            anyhow::bail!("verify, anchor and queries are handled by their own modules")
        }
        AuditCommand::Sinks => {
            let statuses = store.sink_statuses().await?;
            if json {
                return print_json(&statuses);
            }
            let mut table =
                Table::new(["SINK", "DELIVERED UP TO", "FAILED ATTEMPTS", "LAST ERROR"]);
            for s in &statuses {
                table.row([
                    s.sink.clone(),
                    s.delivered_seq.to_string(),
                    s.failed.to_string(),
                    s.last_error.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            table.print(
                "no sink has run yet: set audit.syslog or audit.webhook and start the server",
            );
            Ok(())
        }
        AuditCommand::Retention => {
            anyhow::bail!("retention needs the configuration")
        }
        AuditCommand::Commands {
            user,
            asset,
            since,
            grep,
        } => {
            let pattern = grep
                .as_deref()
                .map(|re| {
                    regex::Regex::new(re)
                        .with_context(|| format!("invalid --grep expression {re:?}"))
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
            let commands: Vec<_> = store
                .commands(&filter)
                .await?
                .into_iter()
                .filter(|c| pattern.as_ref().is_none_or(|re| re.is_match(&c.command)))
                .collect();
            if json {
                return print_json(&commands);
            }
            let mut table = Table::new(["AT", "USER", "TARGET", "SESSION", "COMMAND"]);
            for c in &commands {
                table.row([
                    format_rfc3339(c.at.replace_nanosecond(0).unwrap_or(c.at)),
                    c.user.clone(),
                    format!("{}@{}", c.account, c.asset),
                    c.session.to_string(),
                    c.command.clone(),
                ]);
            }
            table.print("no commands match");
            Ok(())
        }
        AuditCommand::Export {
            since,
            until,
            format,
            output,
        } => {
            export(
                store,
                actor,
                since.as_deref(),
                until.as_deref(),
                &format,
                output.as_deref(),
            )
            .await
        }
    }
}

/// Writes the events between `since` and `until`; the export is recorded first (E5).
async fn export(
    store: &Store,
    actor: &Actor,
    since: Option<&str>,
    until: Option<&str>,
    format: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let since = since
        .map(|t| parse_rfc3339("--since time", t))
        .transpose()?;
    let until = until
        .map(|t| parse_rfc3339("--until time", t))
        .transpose()?;
    let mut events = Vec::new();
    for event in store.all_audit_events().await? {
        let at = parse_rfc3339("stored time", &event.at)?;
        if since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u) {
            events.push(event);
        }
    }
    let destination: Box<dyn Write> = match output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let record = AuditEvent::AuditExported {
        since: since.map(format_rfc3339),
        until: until.map(format_rfc3339),
        events: events.len() as u64,
        file: output.map_or_else(|| "standard output".to_owned(), |p| p.display().to_string()),
    };
    store.record_event(actor, &record).await?;
    let mut destination = std::io::BufWriter::new(destination);
    if format == "csv" {
        let mut writer = csv::Writer::from_writer(destination);
        writer.write_record(["seq", "at", "actor", "kind", "event", "prev_hash", "hash"])?;
        for e in &events {
            writer.write_record([
                e.seq.to_string(),
                e.at.clone(),
                e.actor.to_string(),
                e.kind.clone(),
                e.event.to_string(),
                e.prev_hash.clone(),
                e.hash.clone(),
            ])?;
        }
        writer.flush()?;
    } else {
        for e in &events {
            serde_json::to_writer(&mut destination, e)?;
            destination.write_all(b"\n")?;
        }
        destination.flush()?;
    }
    if let Some(path) = output {
        eprintln!("wrote {} event(s) to {}", events.len(), path.display());
    }
    Ok(())
}

/// Applies the retention period: session records, then their recordings.
pub async fn apply_retention(
    store: &Store,
    actor: &Actor,
    retention_days: u32,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    let before = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(retention_days));
    let removed = store.apply_retention(actor, before).await?;
    let dir = store.data_dir().recordings_dir();
    for session in &removed {
        if let Err(err) = rampart_audit::remove_recording(&dir, *session) {
            tracing::error!(%session, error = %err, "cannot delete an expired recording");
        }
    }
    Ok(removed)
}
