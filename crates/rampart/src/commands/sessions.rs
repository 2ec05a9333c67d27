//! `rampart session ...`

use super::time_text;
use crate::cli::SessionCommand;
use crate::output::{Table, done, more, or_dash, print_fields, print_json};
use anyhow::Context;
use rampart_core::audit::Actor;
use rampart_core::time_arg::{DayEdge, parse_time_or_date};
use rampart_store::{IdKind, SessionFilter, Store};
use uuid::Uuid;

pub async fn run(
    store: &Store,
    actor: &Actor,
    json: bool,
    command: SessionCommand,
) -> anyhow::Result<()> {
    match command {
        SessionCommand::Kill { id, reason } => kill(store, actor, json, &id, &reason).await,
        SessionCommand::List {
            live,
            user,
            asset,
            since,
            until,
            page,
        } => {
            let filter = SessionFilter {
                live_only: live,
                user,
                asset,
                since: since
                    .as_deref()
                    .map(|t| parse_time_or_date("--since time", t, DayEdge::Start))
                    .transpose()?,
                until: until
                    .as_deref()
                    .map(|t| parse_time_or_date("--until time", t, DayEdge::End))
                    .transpose()?,
            };
            let cursor = match page.cursor.as_deref() {
                Some(cursor) => Some(Uuid::parse_str(cursor).with_context(|| {
                    format!("invalid --cursor {cursor:?}: give the cursor the previous page named")
                })?),
                None => None,
            };
            let found = store
                .find_sessions_page(&filter, cursor, page.limit)
                .await?;
            let sessions = found.items;
            if json {
                print_json(&sessions)?;
                more(found.next.as_deref());
                return Ok(());
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
                "NODE",
                "COMMAND",
            ]);
            for s in &sessions {
                table.row([
                    s.id.to_string(),
                    s.user.clone(),
                    format!("{}@{}", s.account, s.asset),
                    match &s.breakglass {
                        Some(_) => format!("{} break-glass", s.kind),
                        None => s.kind.to_string(),
                    },
                    s.source_addr.clone(),
                    time_text(s.started_at),
                    if s.is_live() {
                        "live".to_owned()
                    } else {
                        or_dash(s.ended_at.map(time_text))
                    },
                    format!("{}/{}", s.bytes_from_client, s.bytes_to_client),
                    or_dash(s.node.clone()),
                    or_dash(s.command.as_deref().map(|c| shortened(c, 40))),
                ]);
            }
            table.print(if live {
                "no live sessions"
            } else {
                "no sessions yet"
            });
            more(found.next.as_deref());
            Ok(())
        }
        SessionCommand::Show { id } => {
            let id = store.resolve_id(IdKind::Session, &id).await?;
            let s = store.session(id).await?;
            if json {
                return print_json(&s);
            }
            print_fields(&[
                ("id", s.id.to_string()),
                ("user", s.user.clone()),
                ("target", format!("{}@{}", s.account, s.asset)),
                ("kind", s.kind.to_string()),
                ("from", s.source_addr.clone()),
                ("route", or_dash(s.route.clone())),
                ("node", or_dash(s.node.clone())),
                (
                    "break-glass",
                    or_dash(
                        s.breakglass
                            .as_ref()
                            .map(|id| format!("yes (request {id})")),
                    ),
                ),
                ("command", or_dash(s.command.clone())),
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

/// `text` cut to `chars` characters, with `…` when cut.
fn shortened(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Asks the server carrying the session to end it, then waits until it has.
async fn kill(
    store: &Store,
    actor: &Actor,
    json: bool,
    id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let id = store.resolve_id(IdKind::Session, id).await?;
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 || reason.chars().any(char::is_control) {
        anyhow::bail!("invalid --reason: one line of at most 500 characters");
    }
    store.request_session_kill(actor, id, reason).await?;
    // The server polls kill requests every second or two.
    for _ in 0..40 {
        let session = store.session(id).await?;
        if !session.is_live() {
            return done(
                json,
                &session,
                &format!(
                    "ended session {id} ({})",
                    session.end_reason.as_deref().unwrap_or("-")
                ),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    anyhow::bail!(
        "the kill of session {id} is recorded, but the session is still live after 10 seconds: is the `rampart serve` that carries it running?"
    )
}
