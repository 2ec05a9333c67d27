//! Grants: who may use which accounts on which assets, for what, and when.

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent, FieldChange};
use rampart_core::schedule::Schedule;
use rampart_core::time_arg::{format_duration, format_rfc3339};
use rampart_core::{ActionSet, Grant, GrantSubject, GrantTarget, Label, Name};
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewGrant {
    pub subject: GrantSubject,
    pub target: GrantTarget,
    /// Logins the grant is limited to; empty for every account on the covered assets.
    pub accounts: Vec<Name>,
    pub actions: ActionSet,
    /// Kubernetes namespaces the grant is limited to; empty for every namespace.
    pub namespaces: Vec<String>,
    pub valid_from: Option<OffsetDateTime>,
    pub valid_until: Option<OffsetDateTime>,
    pub schedule: Option<Schedule>,
    pub require_mfa: bool,
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
    pub record: bool,
}

/// A grant as people write it (the CLI's flags, the API's JSON body), before parsing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantInput {
    pub user: Option<String>,
    pub group: Option<String>,
    pub asset: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Comma-separated actions; the default set when absent.
    pub actions: Option<String>,
    /// Kubernetes namespaces the grant is limited to (each may be comma-separated).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// RFC 3339 times.
    pub from: Option<String>,
    pub until: Option<String>,
    pub schedule: Option<String>,
    #[serde(default)]
    pub require_mfa: bool,
    /// Durations such as `15m`.
    pub idle_timeout: Option<String>,
    pub max_duration: Option<String>,
    #[serde(default)]
    pub no_recording: bool,
}

impl GrantInput {
    /// Parses every field into a [`NewGrant`], naming the field that is wrong.
    pub fn parse(&self) -> std::result::Result<NewGrant, rampart_core::InvalidInput> {
        use rampart_core::InvalidInput;
        use rampart_core::time_arg::{DayEdge, parse_duration, parse_time_or_date};
        let subject = match (&self.user, &self.group) {
            (Some(user), None) => GrantSubject::User(Name::parse("user", user)?),
            (None, Some(group)) => GrantSubject::Group(Name::parse("group", group)?),
            _ => return Err(InvalidInput::new("give exactly one of user or group")),
        };
        let target = match (&self.asset, self.labels.is_empty()) {
            (Some(asset), true) => GrantTarget::Asset(Name::parse("asset", asset)?),
            (None, false) => GrantTarget::Labels(
                self.labels
                    .iter()
                    .map(|l| Label::parse(l))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            _ => return Err(InvalidInput::new("give exactly one of asset or labels")),
        };
        let time = |what: &str, text: &Option<String>, edge| {
            text.as_deref()
                .map(|t| parse_time_or_date(what, t, edge))
                .transpose()
        };
        let duration = |what: &str, text: &Option<String>| {
            text.as_deref().map(|t| parse_duration(what, t)).transpose()
        };
        let actions = match &self.actions {
            Some(list) => ActionSet::parse(list)?,
            None => ActionSet::default_for_grant(),
        };
        let namespaces = parse_namespaces(&self.namespaces)?;
        if !namespaces.is_empty()
            && !rampart_core::Action::ALL
                .iter()
                .any(|a| a.protocol() == rampart_core::Protocol::Kubernetes && actions.contains(*a))
        {
            return Err(InvalidInput::new(
                "namespaces limit Kubernetes actions: give at least one kubernetes: action",
            ));
        }
        Ok(NewGrant {
            subject,
            target,
            namespaces,
            accounts: self
                .accounts
                .iter()
                .map(|a| Name::parse("account", a))
                .collect::<std::result::Result<_, _>>()?,
            actions,
            valid_from: time("--from time", &self.from, DayEdge::Start)?,
            valid_until: time("--until time", &self.until, DayEdge::End)?,
            schedule: self.schedule.as_deref().map(Schedule::parse).transpose()?,
            require_mfa: self.require_mfa,
            idle_timeout: duration("--idle-timeout", &self.idle_timeout)?,
            max_duration: duration("--max-duration", &self.max_duration)?,
            record: !self.no_recording,
        })
    }
}

/// Kubernetes namespace names (DNS labels: lowercase letters, digits and `-`, at most 63),
/// each entry possibly a comma-separated list; sorted, without repeats.
fn parse_namespaces(
    entries: &[String],
) -> std::result::Result<Vec<String>, rampart_core::InvalidInput> {
    let mut namespaces = Vec::new();
    for namespace in entries.iter().flat_map(|e| e.split(',')).map(str::trim) {
        let valid = !namespace.is_empty()
            && namespace.len() <= 63
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-');
        if !valid {
            return Err(rampart_core::InvalidInput::new(format!(
                "invalid namespace {namespace:?}: expected a Kubernetes namespace name \
                 (lowercase letters, digits and -)"
            )));
        }
        namespaces.push(namespace.to_owned());
    }
    namespaces.sort();
    namespaces.dedup();
    Ok(namespaces)
}

/// What `change_grant` changes; `None` leaves a field as it is, `Some(None)` unsets it.
/// Who and what a grant covers never change: that is another grant.
#[derive(Debug, Clone, Default)]
pub struct GrantChange {
    pub actions: Option<ActionSet>,
    pub valid_from: Option<Option<OffsetDateTime>>,
    pub valid_until: Option<Option<OffsetDateTime>>,
    pub schedule: Option<Option<Schedule>>,
    pub require_mfa: Option<bool>,
    pub idle_timeout: Option<Option<Duration>>,
    pub max_duration: Option<Option<Duration>>,
    pub record: Option<bool>,
}

/// A grant change as people write it (the CLI's flags, the API's JSON body): absent leaves a
/// field as it is, `""` unsets it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantChangeInput {
    pub actions: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    pub schedule: Option<String>,
    pub require_mfa: Option<bool>,
    pub idle_timeout: Option<String>,
    pub max_duration: Option<String>,
    pub recording: Option<bool>,
}

impl GrantChangeInput {
    /// Parses every field, naming the one that is wrong.
    pub fn parse(&self) -> std::result::Result<GrantChange, rampart_core::InvalidInput> {
        use rampart_core::time_arg::{DayEdge, parse_duration, parse_time_or_date};
        // `None`: unchanged; `Some(None)`: unset (""); `Some(Some(v))`: set.
        fn field<T, E>(
            text: &Option<String>,
            parse: impl FnOnce(&str) -> std::result::Result<T, E>,
        ) -> std::result::Result<Option<Option<T>>, E> {
            match text.as_deref().map(str::trim) {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(text) => parse(text).map(|value| Some(Some(value))),
            }
        }
        Ok(GrantChange {
            actions: self.actions.as_deref().map(ActionSet::parse).transpose()?,
            valid_from: field(&self.from, |t| {
                parse_time_or_date("--from time", t, DayEdge::Start)
            })?,
            valid_until: field(&self.until, |t| {
                parse_time_or_date("--until time", t, DayEdge::End)
            })?,
            schedule: field(&self.schedule, Schedule::parse)?,
            require_mfa: self.require_mfa,
            idle_timeout: field(&self.idle_timeout, |t| parse_duration("--idle-timeout", t))?,
            max_duration: field(&self.max_duration, |t| parse_duration("--max-duration", t))?,
            record: self.recording,
        })
    }
}

impl Store {
    /// Changes a grant's conditions in one transaction with a `grant_changed` event naming
    /// each field's old and new value. Live sessions it allowed are judged again by the new
    /// conditions (the policy facts move with the audit log).
    pub async fn change_grant(
        &self,
        actor: &Actor,
        id: Uuid,
        change: &GrantChange,
    ) -> Result<Grant> {
        let mut tx = self.begin_write().await?;
        let before = load_grants(&mut tx, Some(id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("grant", id))?;
        let mut after = before.clone();
        if let Some(actions) = &change.actions {
            after.actions = actions.clone();
        }
        if let Some(from) = change.valid_from {
            after.valid_from = from;
        }
        if let Some(until) = change.valid_until {
            after.valid_until = until;
        }
        if let Some(schedule) = &change.schedule {
            after.schedule = schedule.clone();
        }
        if let Some(require_mfa) = change.require_mfa {
            after.require_mfa = require_mfa;
        }
        if let Some(idle) = change.idle_timeout {
            after.idle_timeout = idle;
        }
        if let Some(max) = change.max_duration {
            after.max_duration = max;
        }
        if let Some(record) = change.record {
            after.record = record;
        }
        // A validity window is checked when it changes (an expired grant can still be edited).
        if after.valid_from != before.valid_from || after.valid_until != before.valid_until {
            check_validity(after.valid_from, after.valid_until, now())?;
        }
        let fields: [(&str, Option<String>, Option<String>); 8] = [
            (
                "actions",
                Some(before.actions.to_string()),
                Some(after.actions.to_string()),
            ),
            (
                "valid_from",
                before.valid_from.map(format_rfc3339),
                after.valid_from.map(format_rfc3339),
            ),
            (
                "valid_until",
                before.valid_until.map(format_rfc3339),
                after.valid_until.map(format_rfc3339),
            ),
            (
                "schedule",
                before.schedule.as_ref().map(ToString::to_string),
                after.schedule.as_ref().map(ToString::to_string),
            ),
            (
                "require_mfa",
                Some(before.require_mfa.to_string()),
                Some(after.require_mfa.to_string()),
            ),
            (
                "idle_timeout",
                before.idle_timeout.map(format_duration),
                after.idle_timeout.map(format_duration),
            ),
            (
                "max_duration",
                before.max_duration.map(format_duration),
                after.max_duration.map(format_duration),
            ),
            (
                "recorded",
                Some(before.record.to_string()),
                Some(after.record.to_string()),
            ),
        ];
        let changes: Vec<FieldChange> = fields
            .into_iter()
            .filter(|(_, from, to)| from != to)
            .map(|(field, from, to)| FieldChange {
                field: field.to_owned(),
                from,
                to,
            })
            .collect();
        if changes.is_empty() {
            return Ok(before);
        }
        sqlx::query(
            "UPDATE grants SET actions = $1, valid_from = $2, valid_until = $3, schedule = $4, \
             require_mfa = $5, idle_timeout_secs = $6, max_duration_secs = $7, record = $8 WHERE id = $9",
        )
        .bind(after.actions.to_string())
        .bind(after.valid_from.map(time_text))
        .bind(after.valid_until.map(time_text))
        .bind(after.schedule.as_ref().map(ToString::to_string))
        .bind(after.require_mfa)
        .bind(after.idle_timeout.map(seconds))
        .bind(after.max_duration.map(seconds))
        .bind(after.record)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::GrantChanged {
            grant: id.to_string(),
            changes,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_grants(&mut tx, Some(id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::not_found("grant", id))?;
        tx.commit().await?;
        Ok(loaded)
    }

    pub async fn add_grant(&self, actor: &Actor, grant: &NewGrant) -> Result<Grant> {
        check_validity(grant.valid_from, grant.valid_until, now())?;
        let mut tx = self.begin_write().await?;
        let loaded = insert_grant(&mut tx, actor, grant).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    pub async fn list_grants(&self) -> Result<Vec<Grant>> {
        let mut conn = self.pool.acquire().await?;
        load_grants(&mut conn, None).await
    }

    pub async fn remove_grant(&self, actor: &Actor, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM grants WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::not_found("grant", id));
        }
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::GrantRemoved {
                grant: id.to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn check_validity(
    from: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<()> {
    if let (Some(from), Some(until)) = (from, until)
        && until <= from
    {
        return Err(StoreError::invalid(format!(
            "--until {} is not after --from {}",
            format_rfc3339(until),
            format_rfc3339(from)
        )));
    }
    if let Some(until) = until
        && until <= now
    {
        return Err(StoreError::invalid(format!(
            "--until {} is already in the past",
            format_rfc3339(until)
        )));
    }
    Ok(())
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn duration(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<Duration>> {
    let value: Option<i64> = sqlx::Row::try_get(row, column)?;
    value
        .map(|secs| {
            u64::try_from(secs)
                .map(Duration::from_secs)
                .map_err(|_| StoreError::Corrupt(format!("grants.{column}")))
        })
        .transpose()
}

/// Inserts a grant and its `grant_added` event inside the caller's write transaction (an
/// access request's approval creates its grant in the same transaction as its decision).
pub(crate) async fn insert_grant(
    tx: &mut AnyConnection,
    actor: &Actor,
    grant: &NewGrant,
) -> Result<Grant> {
    let (user_id, group_id) = match &grant.subject {
        GrantSubject::User(name) => (
            Some(
                rows::id_of(&mut *tx, rows::Named::User, name)
                    .await?
                    .to_string(),
            ),
            None,
        ),
        GrantSubject::Group(name) => (
            None,
            Some(
                rows::id_of(&mut *tx, rows::Named::Group, name)
                    .await?
                    .to_string(),
            ),
        ),
    };
    let asset_id = match &grant.target {
        GrantTarget::Asset(name) => {
            let id = rows::id_of(&mut *tx, rows::Named::Asset, name)
                .await?
                .to_string();
            for login in &grant.accounts {
                let exists: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM accounts WHERE asset_id = $1 AND login = $2",
                )
                .bind(&id)
                .bind(login.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Err(StoreError::not_found("account", format!("{login}@{name}")));
                }
            }
            Some(id)
        }
        GrantTarget::Labels(labels) if labels.is_empty() => {
            return Err(StoreError::invalid(
                "a grant needs an asset or at least one label",
            ));
        }
        GrantTarget::Labels(_) => None,
    };
    let id = new_id();
    sqlx::query(
        "INSERT INTO grants (id, user_id, group_id, asset_id, actions, valid_from, valid_until, \
                             schedule, require_mfa, idle_timeout_secs, max_duration_secs, record, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id.to_string())
    .bind(user_id)
    .bind(group_id)
    .bind(asset_id)
    .bind(grant.actions.to_string())
    .bind(grant.valid_from.map(time_text))
    .bind(grant.valid_until.map(time_text))
    .bind(grant.schedule.as_ref().map(ToString::to_string))
    .bind(grant.require_mfa)
    .bind(grant.idle_timeout.map(seconds))
    .bind(grant.max_duration.map(seconds))
    .bind(grant.record)
    .bind(time_text(now()))
    .execute(&mut *tx)
    .await?;
    if let GrantTarget::Labels(labels) = &grant.target {
        for label in labels {
            sqlx::query("INSERT INTO grant_labels (grant_id, key, value) VALUES ($1, $2, $3)")
                .bind(id.to_string())
                .bind(&label.key)
                .bind(&label.value)
                .execute(&mut *tx)
                .await
                .map_err(|_| {
                    StoreError::invalid(format!("label key {:?} given twice", label.key))
                })?;
        }
    }
    for login in &grant.accounts {
        sqlx::query(
            "INSERT INTO grant_accounts (grant_id, login) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(login.as_str())
        .execute(&mut *tx)
        .await?;
    }
    for namespace in &grant.namespaces {
        sqlx::query(
            "INSERT INTO grant_namespaces (grant_id, namespace) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(namespace)
        .execute(&mut *tx)
        .await?;
    }
    let event = AuditEvent::GrantAdded {
        grant: id.to_string(),
        subject: grant.subject.to_string(),
        target: grant.target.to_string(),
        accounts: grant.accounts.iter().map(Name::to_string).collect(),
        actions: grant.actions.to_string(),
        namespaces: grant.namespaces.clone(),
        valid_from: grant.valid_from.map(format_rfc3339),
        valid_until: grant.valid_until.map(format_rfc3339),
        schedule: grant.schedule.as_ref().map(ToString::to_string),
        require_mfa: grant.require_mfa,
        idle_timeout: grant.idle_timeout.map(format_duration),
        max_duration: grant.max_duration.map(format_duration),
        recorded: grant.record,
    };
    audit_log::append(&mut *tx, actor, &event).await?;
    let loaded = load_grants(&mut *tx, Some(id))
        .await?
        .pop()
        .ok_or_else(|| StoreError::not_found("grant", id))?;
    Ok(loaded)
}

pub(crate) async fn load_grants(
    conn: &mut AnyConnection,
    only: Option<Uuid>,
) -> Result<Vec<Grant>> {
    let only = only.map(|id| id.to_string());
    let grant_rows = sqlx::query(
        "SELECT g.id, u.name AS user_name, gr.name AS group_name, a.name AS asset_name, g.actions, \
                g.valid_from, g.valid_until, g.schedule, CAST(g.require_mfa AS INTEGER) AS require_mfa, g.idle_timeout_secs, \
                g.max_duration_secs, CAST(g.record AS INTEGER) AS record, g.created_at \
         FROM grants g LEFT JOIN users u ON u.id = g.user_id LEFT JOIN groups gr ON gr.id = g.group_id \
         LEFT JOIN assets a ON a.id = g.asset_id \
         WHERE $1 IS NULL OR g.id = $1 ORDER BY g.created_at, g.id",
    )
    .bind(&only)
    .fetch_all(&mut *conn)
    .await?;
    let label_rows = sqlx::query(
        "SELECT grant_id, key, value FROM grant_labels WHERE $1 IS NULL OR grant_id = $1 ORDER BY key",
    )
    .bind(&only)
    .fetch_all(&mut *conn)
    .await?;
    let account_rows = sqlx::query(
        "SELECT grant_id, login FROM grant_accounts WHERE $1 IS NULL OR grant_id = $1 ORDER BY login",
    )
    .bind(&only)
    .fetch_all(&mut *conn)
    .await?;
    let namespace_rows = sqlx::query(
        "SELECT grant_id, namespace FROM grant_namespaces WHERE $1 IS NULL OR grant_id = $1 \
         ORDER BY namespace",
    )
    .bind(&only)
    .fetch_all(&mut *conn)
    .await?;
    let mut namespaces: HashMap<Uuid, Vec<String>> = HashMap::new();
    for row in &namespace_rows {
        namespaces
            .entry(rows::uuid(row, "grant_id")?)
            .or_default()
            .push(rows::text(row, "namespace")?);
    }
    let mut labels: HashMap<Uuid, Vec<Label>> = HashMap::new();
    for row in &label_rows {
        labels
            .entry(rows::uuid(row, "grant_id")?)
            .or_default()
            .push(Label {
                key: rows::text(row, "key")?,
                value: rows::text(row, "value")?,
            });
    }
    let mut accounts: HashMap<Uuid, Vec<Name>> = HashMap::new();
    for row in &account_rows {
        accounts
            .entry(rows::uuid(row, "grant_id")?)
            .or_default()
            .push(rows::name(row, "login")?);
    }
    let corrupt = |what: &str| StoreError::Corrupt(format!("grants.{what}"));
    grant_rows
        .iter()
        .map(|row| {
            let id = rows::uuid(row, "id")?;
            let optional_name = |column: &str| -> Result<Option<Name>> {
                sqlx::Row::try_get::<Option<String>, _>(row, column)?
                    .map(|text| Name::parse(column, &text).map_err(|_| corrupt(column)))
                    .transpose()
            };
            let subject = match (optional_name("user_name")?, optional_name("group_name")?) {
                (Some(user), None) => GrantSubject::User(user),
                (None, Some(group)) => GrantSubject::Group(group),
                _ => return Err(corrupt("subject")),
            };
            let target = match optional_name("asset_name")? {
                Some(asset) => GrantTarget::Asset(asset),
                None => GrantTarget::Labels(labels.remove(&id).unwrap_or_default()),
            };
            Ok(Grant {
                id,
                subject,
                target,
                accounts: accounts.remove(&id).unwrap_or_default(),
                namespaces: namespaces.remove(&id).unwrap_or_default(),
                actions: ActionSet::parse(&rows::text(row, "actions")?)
                    .map_err(|_| corrupt("actions"))?,
                valid_from: rows::optional_time(row, "valid_from")?,
                valid_until: rows::optional_time(row, "valid_until")?,
                schedule: sqlx::Row::try_get::<Option<String>, _>(row, "schedule")?
                    .map(|text| Schedule::parse(&text).map_err(|_| corrupt("schedule")))
                    .transpose()?,
                require_mfa: rows::flag(row, "require_mfa")?,
                idle_timeout: duration(row, "idle_timeout_secs")?,
                max_duration: duration(row, "max_duration_secs")?,
                record: rows::flag(row, "record")?,
                created_at: rows::time(row, "created_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn validity_windows() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let earlier = datetime!(2026-05-01 00:00 UTC);
        let later = datetime!(2026-07-01 00:00 UTC);
        assert!(check_validity(None, None, now).is_ok());
        assert!(check_validity(Some(earlier), Some(later), now).is_ok());
        assert!(check_validity(Some(later), Some(earlier), now).is_err());
        assert!(check_validity(Some(later), Some(later), now).is_err());
        assert!(check_validity(None, Some(earlier), now).is_err());
    }
}
