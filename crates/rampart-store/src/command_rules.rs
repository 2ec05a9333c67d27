//! Command control rules (`rampart_core::rules`): kept in order, attached to a grant or to an
//! asset label, and read back as the `RuleSet` of one session.

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::Label;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::rules::{Matcher, Rule, RuleAction, RuleScope, RuleSet};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

/// What `add_command_rule` needs.
#[derive(Debug, Clone)]
pub struct NewCommandRule {
    pub scope: RuleScope,
    pub matcher: Matcher,
    pub action: RuleAction,
    /// None: after the last rule.
    pub position: Option<i64>,
}

/// Gaps between appended rules, so a rule can be put between two others.
const POSITION_STEP: i64 = 10;

fn rule_from_row(row: &AnyRow) -> Result<Rule> {
    let corrupt = |column: &str| StoreError::Corrupt(format!("command_rules.{column}"));
    let grant: Option<String> = row.try_get("grant_id")?;
    let scope = match grant {
        Some(grant) => RuleScope::Grant(Uuid::parse_str(&grant).map_err(|_| corrupt("grant_id"))?),
        None => {
            let key: Option<String> = row.try_get("label_key")?;
            let value: Option<String> = row.try_get("label_value")?;
            let label = format!("{}={}", key.unwrap_or_default(), value.unwrap_or_default());
            RuleScope::Label(Label::parse(&label).map_err(|_| corrupt("label"))?)
        }
    };
    Ok(Rule {
        id: rows::uuid(row, "id")?,
        position: row.try_get("position")?,
        scope,
        matcher: Matcher::parse(&rows::text(row, "matcher")?).map_err(|_| corrupt("matcher"))?,
        action: RuleAction::parse(&rows::text(row, "action")?).map_err(|_| corrupt("action"))?,
    })
}

impl Store {
    pub async fn add_command_rule(&self, actor: &Actor, new: &NewCommandRule) -> Result<Rule> {
        let mut tx = self.begin_write().await?;
        if let RuleScope::Grant(grant) = &new.scope {
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM grants WHERE id = $1")
                .bind(grant.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::not_found("grant", grant));
            }
        }
        let position = match new.position {
            Some(position) => position,
            None => {
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(position) FROM command_rules")
                        .fetch_one(&mut *tx)
                        .await?;
                last.unwrap_or(0).saturating_add(POSITION_STEP)
            }
        };
        let (grant, key, value) = match &new.scope {
            RuleScope::Grant(grant) => (Some(grant.to_string()), None, None),
            RuleScope::Label(label) => (None, Some(label.key.clone()), Some(label.value.clone())),
        };
        let rule = Rule {
            id: new_id(),
            position,
            scope: new.scope.clone(),
            matcher: new.matcher.clone(),
            action: new.action,
        };
        sqlx::query(
            "INSERT INTO command_rules (id, position, grant_id, label_key, label_value, matcher, \
             action, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(rule.id.to_string())
        .bind(position)
        .bind(grant)
        .bind(key)
        .bind(value)
        .bind(rule.matcher.to_string())
        .bind(rule.action.as_str())
        .bind(time_text(now()))
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::CommandRuleAdded {
            rule: rule.id.to_string(),
            scope: rule.scope.to_string(),
            position,
            matcher: rule.matcher.to_string(),
            action: rule.action.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(rule)
    }

    /// Every rule, in the order they are asked.
    pub async fn list_command_rules(&self) -> Result<Vec<Rule>> {
        let rows = sqlx::query(
            "SELECT id, position, grant_id, label_key, label_value, matcher, action \
             FROM command_rules ORDER BY position, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    pub async fn remove_command_rule(&self, actor: &Actor, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, position, grant_id, label_key, label_value, matcher, action \
             FROM command_rules WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("command rule", id))?;
        let rule = rule_from_row(&row)?;
        sqlx::query("DELETE FROM command_rules WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::CommandRuleRemoved {
            rule: id.to_string(),
            scope: rule.scope.to_string(),
            matcher: rule.matcher.to_string(),
            action: rule.action.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The rules of a session under `grant` to an asset carrying `labels`, in order. A stored
    /// rule that no longer parses is an error: the session is refused (fail closed).
    pub async fn command_rules_for(&self, grant: Uuid, labels: &[Label]) -> Result<RuleSet> {
        let rules = self.list_command_rules().await?;
        let applies = |rule: &Rule| match &rule.scope {
            RuleScope::Grant(id) => *id == grant,
            RuleScope::Label(label) => labels.contains(label),
        };
        Ok(RuleSet::new(rules.into_iter().filter(applies).collect()))
    }
}
