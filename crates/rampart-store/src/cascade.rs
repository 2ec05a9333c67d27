//! What a removal takes with it, asked before the removal so a person can confirm it.

use crate::rows::{self, Named};
use crate::{Result, Store};
use rampart_core::Name;
use serde::Serialize;

/// The records that go with a user, group or asset when it is removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cascade {
    pub accounts: u64,
    pub grants: u64,
}

impl Cascade {
    pub fn is_empty(&self) -> bool {
        self.accounts == 0 && self.grants == 0
    }
}

impl std::fmt::Display for Cascade {
    /// `1 account and 2 grants`, `3 grants`, `nothing else`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |n: u64, one: &str, many: &str| match n {
            0 => None,
            1 => Some(format!("1 {one}")),
            n => Some(format!("{n} {many}")),
        };
        let parts: Vec<String> = [
            count(self.accounts, "account", "accounts"),
            count(self.grants, "grant", "grants"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            f.write_str("nothing else")
        } else {
            f.write_str(&parts.join(" and "))
        }
    }
}

impl Store {
    /// What removing the named user, group or asset would also remove.
    pub async fn cascade_of(&self, what: Named, name: &Name) -> Result<Cascade> {
        let mut conn = self.pool.acquire().await?;
        let id = rows::id_of(&mut conn, what, name).await?.to_string();
        let count = |sql: &'static str| {
            let id = id.clone();
            async move {
                let n: i64 = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok::<u64, crate::StoreError>(u64::try_from(n).unwrap_or(0))
            }
        };
        Ok(match what {
            Named::User => Cascade {
                accounts: 0,
                grants: count("SELECT count(*) FROM grants WHERE user_id = $1").await?,
            },
            Named::Group => Cascade {
                accounts: 0,
                grants: count("SELECT count(*) FROM grants WHERE group_id = $1").await?,
            },
            Named::Asset => Cascade {
                accounts: count("SELECT count(*) FROM accounts WHERE asset_id = $1").await?,
                grants: count("SELECT count(*) FROM grants WHERE asset_id = $1").await?,
            },
        })
    }
}
