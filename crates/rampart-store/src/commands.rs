//! The command log: commands typed in interactive shells, each with its audit event.

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, audit_log};
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
        sqlx::query(
            "INSERT INTO commands (id, session_id, at, user_name, asset_name, account_login, command) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id().to_string())
        .bind(session.to_string())
        .bind(time_text(now()))
        .bind(user)
        .bind(asset)
        .bind(account)
        .bind(command)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::CommandRun {
            session: session.to_string(),
            user: user.to_owned(),
            target: format!("{account}@{asset}"),
            command: command.to_owned(),
        };
        audit_log::append(
            &mut tx,
            &Actor::User {
                name: user.to_owned(),
            },
            &event,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commands matching `filter`, oldest first.
    pub async fn commands(&self, filter: &CommandFilter) -> Result<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT session_id, at, user_name, asset_name, account_login, command FROM commands \
             WHERE ($1 IS NULL OR user_name = $1) AND ($2 IS NULL OR asset_name = $2) ORDER BY at, id",
        )
        .bind(filter.user.as_deref())
        .bind(filter.asset.as_deref())
        .fetch_all(&self.pool)
        .await?;
        let mut records = Vec::new();
        for row in &rows {
            let at = rows::time(row, "at")?;
            if filter.since.is_some_and(|since| at < since) {
                continue;
            }
            records.push(CommandRecord {
                session: rows::uuid(row, "session_id")?,
                at,
                user: rows::text(row, "user_name")?,
                asset: rows::text(row, "asset_name")?,
                account: rows::text(row, "account_login")?,
                command: rows::text(row, "command")?,
            });
        }
        Ok(records)
    }
}
