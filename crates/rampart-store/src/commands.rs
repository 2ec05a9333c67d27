//! The command log: commands typed in interactive shells, each with its audit event.

use crate::rows::{self, new_id, now, time_text};
use crate::{Page, Result, Store, audit_log};

/// Rows read from the command log at a time.
const BATCH: u32 = 500;
use rampart_core::CommandRecord;
use rampart_core::audit::{Actor, AuditEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// Which commands to list; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct CommandFilter {
    pub user: Option<String>,
    pub asset: Option<String>,
    pub since: Option<OffsetDateTime>,
}

/// A command to record: what [`Store::record_commands`] writes.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub session: Uuid,
    /// When the command was seen (the row's time; its event gets the time it is written).
    pub at: OffsetDateTime,
    pub user: String,
    pub asset: String,
    pub account: String,
    pub command: String,
}

/// Command rows per multi-row `INSERT` in [`Store::record_commands`] (7 bound values each).
const COMMANDS_CHUNK: usize = 64;

/// A command's `command_run` event.
fn command_run(command: &NewCommand) -> AuditEvent {
    AuditEvent::CommandRun {
        session: command.session.to_string(),
        user: command.user.clone(),
        target: format!("{}@{}", command.account, command.asset),
        command: command.command.clone(),
    }
}

/// The command's row and its `command_run` event in the caller's transaction.
async fn insert_command(conn: &mut sqlx::AnyConnection, command: &NewCommand) -> Result<()> {
    sqlx::query(
        "INSERT INTO commands (id, session_id, at, user_name, asset_name, account_login, command) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id().to_string())
    .bind(command.session.to_string())
    .bind(time_text(command.at))
    .bind(&command.user)
    .bind(&command.asset)
    .bind(&command.account)
    .bind(&command.command)
    .execute(&mut *conn)
    .await?;
    let actor = Actor::User {
        name: command.user.clone(),
    };
    audit_log::append(&mut *conn, &actor, &command_run(command)).await?;
    Ok(())
}

impl Store {
    /// Records a command and its `command_run` event in one transaction.
    pub async fn record_command(
        &self,
        session: Uuid,
        user: &str,
        asset: &str,
        account: &str,
        command: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let one = NewCommand {
            session,
            at: now(),
            user: user.to_owned(),
            asset: asset.to_owned(),
            account: account.to_owned(),
            command: command.to_owned(),
        };
        insert_command(&mut tx, &one).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records several commands (each with its `command_run` event) in one transaction, in order: a database session's statements, written in batches off
    /// the relay's path (`rampart_session`'s statement log). All or nothing.
    ///
    /// The rows go in [`COMMANDS_CHUNK`] at a time and the events through
    /// `audit_log::append_all` (the chain's head read once): the same rows and chain as one
    /// `insert_command` each, in a handful of round trips to the database instead of three per
    /// command.
    pub async fn record_commands(&self, commands: &[NewCommand]) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in commands.chunks(COMMANDS_CHUNK) {
            let placeholders =
                crate::rows::values_placeholders(chunk.len(), 7, &[1, 2, 3, 4, 5, 6, 7]);
            let sql = format!(
                "INSERT INTO commands (id, session_id, at, user_name, asset_name, account_login, \
                 command) VALUES {placeholders}"
            );
            // Built from numbers only: nothing of the rows is in the text.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for command in chunk {
                query = query
                    .bind(new_id().to_string())
                    .bind(command.session.to_string())
                    .bind(time_text(command.at))
                    .bind(&command.user)
                    .bind(&command.asset)
                    .bind(&command.account)
                    .bind(&command.command);
            }
            query.execute(&mut *tx).await?;
        }
        let actors: Vec<Actor> = commands
            .iter()
            .map(|command| Actor::User {
                name: command.user.clone(),
            })
            .collect();
        let runs: Vec<AuditEvent> = commands.iter().map(command_run).collect();
        let events: Vec<(&Actor, &AuditEvent)> = actors.iter().zip(&runs).collect();
        audit_log::append_all(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commands matching `filter`, oldest first (every one: for the command line).
    pub async fn commands(&self, filter: &CommandFilter) -> Result<Vec<CommandRecord>> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .commands_page(filter, cursor, BATCH, &|_: &CommandRecord| true)
                .await?;
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// At most `limit` commands matching `filter` and `matches`, oldest first, after `cursor`
    /// (the `next` of the previous page). The user, asset and time are filtered in SQL; the
    /// rest (`matches`, a regular expression for example) is applied batch by batch, so a
    /// search holds one batch and its answer, never the whole log.
    pub async fn commands_page(
        &self,
        filter: &CommandFilter,
        cursor: Option<String>,
        limit: u32,
        matches: &(dyn Fn(&CommandRecord) -> bool + Sync),
    ) -> Result<Page<CommandRecord>> {
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut found = Vec::new();
        let mut after = cursor;
        loop {
            let rows = sqlx::query(
                "SELECT id, session_id, at, user_name, asset_name, account_login, command FROM commands \
                 WHERE ($1 IS NULL OR user_name = $1) AND ($2 IS NULL OR asset_name = $2) \
                 AND ($3 IS NULL OR at >= $3) \
                 AND ($4 IS NULL OR (at, id) > (SELECT at, id FROM commands WHERE id = $4)) \
                 ORDER BY at, id LIMIT $5",
            )
            .bind(filter.user.as_deref())
            .bind(filter.asset.as_deref())
            .bind(filter.since.map(time_text))
            .bind(after.as_deref())
            .bind(i64::from(BATCH))
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                let id = rows::text(row, "id")?;
                let record = CommandRecord {
                    session: rows::uuid(row, "session_id")?,
                    at: rows::time(row, "at")?,
                    user: rows::text(row, "user_name")?,
                    asset: rows::text(row, "asset_name")?,
                    account: rows::text(row, "account_login")?,
                    command: rows::text(row, "command")?,
                };
                if matches(&record) {
                    found.push(record);
                }
                if found.len() >= wanted {
                    return Ok(Page {
                        items: found,
                        next: Some(id),
                    });
                }
                after = Some(id);
            }
            if u32::try_from(rows.len()).is_ok_and(|read| read < BATCH) {
                return Ok(Page {
                    items: found,
                    next: None,
                });
            }
        }
    }
}
