//! Command rules (`rampart rule ...`): list in order, add, remove.

use crate::WebState;
use crate::error::{ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::InvalidInput;
use rampart_core::Label;
use rampart_core::rules::{Matcher, RuleAction, RuleScope};
use rampart_store::NewCommandRule;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, paged, uuid};

/// Pages keep the rules' order (position), whatever their sign.
fn order_key(position: i64) -> String {
    format!("{:020}", i128::from(position) - i128::from(i64::MIN))
}

pub async fn command_rules_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let rules: Vec<_> = state
        .store
        .list_command_rules()
        .await?
        .iter()
        .map(|rule| rule.summary())
        .collect();
    paged(
        rules,
        |rule| format!("{}/{}", order_key(rule.position), rule.id),
        &query,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRuleInput {
    grant: Option<String>,
    label: Option<String>,
    #[serde(rename = "match")]
    matcher: String,
    action: String,
    position: Option<i64>,
}

pub async fn command_rule_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<CommandRuleInput>,
) -> ApiResult<Response> {
    let scope = match (&body.grant, &body.label) {
        (Some(grant), None) => RuleScope::Grant(uuid("grant", grant)?),
        (None, Some(label)) => RuleScope::Label(Label::parse(label)?),
        _ => {
            return Err(InvalidInput::new("give exactly one of grant or label").into());
        }
    };
    let new = NewCommandRule {
        scope,
        matcher: Matcher::parse(&body.matcher)?,
        action: RuleAction::parse(&body.action)?,
        position: body.position,
    };
    let rule = state.store.add_command_rule(&caller.actor(), &new).await?;
    Ok(created(rule.summary()))
}

pub async fn command_rule_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = uuid("command rule", &id)?;
    state.store.remove_command_rule(&caller.actor(), id).await?;
    Ok(Json(json!({ "removed": id })))
}
