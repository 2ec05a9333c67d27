//! `rampart audit ...`

use crate::cli::AuditCommand;
use crate::output::{Table, more, print_json};
use anyhow::Context;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::time_arg::{DayEdge, format_rfc3339, parse_time_or_date};
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
        AuditCommand::List {
            kind,
            actor,
            contains,
            since,
            until,
            page,
        } => {
            let filter = rampart_store::AuditFilter {
                kind,
                actor,
                contains,
                since: since
                    .as_deref()
                    .map(|t| parse_time_or_date("--since time", t, DayEdge::Start))
                    .transpose()?,
                until: until
                    .as_deref()
                    .map(|t| parse_time_or_date("--until time", t, DayEdge::End))
                    .transpose()?,
            };
            let before = match page.cursor.as_deref() {
                Some(cursor) => Some(cursor.parse::<i64>().with_context(|| {
                    format!("invalid --cursor {cursor:?}: give the cursor the previous page named")
                })?),
                None => None,
            };
            let found = store.audit_events_page(&filter, before, page.limit).await?;
            let events = found.items;
            if json {
                print_json(&events)?;
                more(found.next.as_deref());
                return Ok(());
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
            more(found.next.as_deref());
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
                    .map(|t| parse_time_or_date("--since time", t, DayEdge::Start))
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

/// Events read per page by `audit export`: memory stays bounded by one page, whatever the log.
const EXPORT_PAGE: u32 = 500;

/// The events between `since` and `until` up to sequence number `last`, a page at a time.
struct ExportPages<'a> {
    store: &'a Store,
    filter: rampart_store::AuditFilter,
    last: i64,
    after: Option<i64>,
}

impl ExportPages<'_> {
    /// The next page (`None`: done).
    async fn next(&mut self) -> anyhow::Result<Option<Vec<rampart_store::AuditRecord>>> {
        let Some(after) = self.after else {
            return Ok(None);
        };
        let page = self
            .store
            .audit_export_page(&self.filter, after, EXPORT_PAGE)
            .await?;
        let next = page
            .next
            .map(|cursor| cursor.parse::<i64>())
            .transpose()
            .context("unreadable export cursor")?;
        self.after = next.filter(|seq| *seq < self.last);
        let last = self.last;
        Ok(Some(
            page.items.into_iter().filter(|e| e.seq <= last).collect(),
        ))
    }
}

/// Writes the events between `since` and `until`; the export is recorded first (E5). The log is
/// read a page at a time, twice (to count what the record announces, then to write it), and
/// only up to the last event that existed when the export began.
async fn export(
    store: &Store,
    actor: &Actor,
    since: Option<&str>,
    until: Option<&str>,
    format: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let since = since
        .map(|t| parse_time_or_date("--since time", t, DayEdge::Start))
        .transpose()?;
    let until = until
        .map(|t| parse_time_or_date("--until time", t, DayEdge::End))
        .transpose()?;
    let last = store.audit_head().await?.map_or(0, |(seq, _)| seq);
    let pages = || ExportPages {
        store,
        filter: rampart_store::AuditFilter {
            since,
            until,
            ..rampart_store::AuditFilter::default()
        },
        last,
        after: Some(0),
    };
    let mut count: u64 = 0;
    let mut counting = pages();
    while let Some(page) = counting.next().await? {
        count += page.len() as u64;
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
        events: count,
        file: output.map_or_else(|| "standard output".to_owned(), |p| p.display().to_string()),
    };
    store.record_event(actor, &record).await?;
    let destination = std::io::BufWriter::new(destination);
    let mut written: u64 = 0;
    let mut writing = pages();
    if format == "csv" {
        let mut writer = csv::Writer::from_writer(destination);
        writer.write_record(["seq", "at", "actor", "kind", "event", "prev_hash", "hash"])?;
        while let Some(page) = writing.next().await? {
            for e in &page {
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
            written += page.len() as u64;
        }
        writer.flush()?;
    } else {
        let mut destination = destination;
        while let Some(page) = writing.next().await? {
            for e in &page {
                serde_json::to_writer(&mut destination, e)?;
                destination.write_all(b"\n")?;
            }
            written += page.len() as u64;
        }
        destination.flush()?;
    }
    // The events up to `last` cannot change between the passes unless someone edits the log;
    // say so rather than leave a record that does not match the file.
    anyhow::ensure!(
        written == count,
        "the audit log changed during the export: {count} event(s) counted, {written} written"
    );
    if let Some(path) = output {
        eprintln!("wrote {written} event(s) to {}", path.display());
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
