//! IDs given by a unique prefix, as git takes commit ids: `rampart session show 0190f3`.

use crate::{Result, Store, StoreError};
use uuid::Uuid;

/// What an ID names; each kind is one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Session,
    Grant,
    ApiToken,
    DbToken,
    AccessRequest,
    CommandApproval,
}

impl IdKind {
    fn table(self) -> &'static str {
        match self {
            IdKind::Session => "sessions",
            IdKind::Grant => "grants",
            IdKind::ApiToken => "api_tokens",
            IdKind::DbToken => "db_tokens",
            IdKind::AccessRequest => "access_requests",
            IdKind::CommandApproval => "command_approvals",
        }
    }

    /// The IDs starting with `$1`, a few.
    fn prefix_query(self) -> &'static str {
        match self {
            IdKind::Session => {
                "SELECT id FROM sessions WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3"
            }
            IdKind::Grant => "SELECT id FROM grants WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3",
            IdKind::ApiToken => {
                "SELECT id FROM api_tokens WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3"
            }
            IdKind::DbToken => {
                "SELECT id FROM db_tokens WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3"
            }
            IdKind::AccessRequest => {
                "SELECT id FROM access_requests WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3"
            }
            IdKind::CommandApproval => {
                "SELECT id FROM command_approvals WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3"
            }
        }
    }

    /// As messages name it.
    pub fn noun(self) -> &'static str {
        match self {
            IdKind::Session => "session",
            IdKind::Grant => "grant",
            IdKind::ApiToken => "API token",
            IdKind::DbToken => "database token",
            IdKind::AccessRequest => "access request",
            IdKind::CommandApproval => "command approval",
        }
    }
}

/// The shortest prefix accepted: shorter ones match too much to be meant.
pub const MIN_ID_PREFIX: usize = 4;

impl Store {
    /// The one ID of `kind` that is `text` or starts with it. A whole UUID is taken as it is
    /// (whether it exists is the caller's next question); a prefix must be at least
    /// [`MIN_ID_PREFIX`] characters of hexadecimal digits and dashes and match exactly one ID.
    pub async fn resolve_id(&self, kind: IdKind, text: &str) -> Result<Uuid> {
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(id);
        }
        let prefix = text.to_ascii_lowercase();
        if prefix.len() < MIN_ID_PREFIX
            || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(rampart_core::InvalidInput::new(format!(
                "invalid {} id {text:?}: give the id as `list` prints it, or its first {MIN_ID_PREFIX} \
                 or more characters",
                kind.noun()
            ))
            .into());
        }
        // Only hexadecimal digits and dashes reach the pattern: no LIKE wildcard.
        let ids: Vec<String> = sqlx::query_scalar(kind.prefix_query())
            .bind(&prefix)
            .fetch_all(&self.pool)
            .await?;
        match ids.as_slice() {
            [] => Err(StoreError::not_found(kind.noun(), format!("{text}…"))),
            [one] => Uuid::parse_str(one)
                .map_err(|_| StoreError::Corrupt(format!("{}.id", kind.table()))),
            [first, second, ..] => Err(rampart_core::InvalidInput::new(format!(
                "{text:?} is the start of more than one {} id ({first}, {second}{}): give more \
                 characters",
                kind.noun(),
                if ids.len() > 2 { ", ..." } else { "" }
            ))
            .into()),
        }
    }
}
