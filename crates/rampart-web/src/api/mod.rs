//! The REST API's handlers. Each one runs after the route's guard (see `auth::guard`), so the
//! caller is authenticated and their role and token scope reach the route; what is left here
//! is object-level: a user sees only their own sessions, recordings, commands and tokens, and
//! another user's object by id is `404` (B2).
//!
//! Business logic stays in the store and in `rampart-core` (the policy, login rules), which the
//! CLI calls too; handlers parse, check visibility, call, and shape the answer.
//!
//! One file per resource, as the CLI's `commands/` is split; the routes (`routes::table`) name
//! the handlers through the re-exports below. This file holds the helpers they share.

mod accounts;
mod alerts;
mod assets;
mod audit;
mod breakglass;
mod command_approvals;
mod database;
mod domains;
mod grants;
mod groups;
mod invites;
mod kube;
mod me;
mod nodes;
mod passkeys;
mod recordings;
mod requests;
mod rotations;
mod rules;
mod self_service;
mod sessions;
mod ssh_approvals;
mod ssh_certificates;
mod tokens;
mod users;

pub use accounts::*;
pub use alerts::*;
pub use assets::*;
pub use audit::*;
pub use breakglass::*;
pub use command_approvals::*;
pub use database::*;
pub use domains::*;
pub use grants::*;
pub use groups::*;
pub use invites::*;
pub use kube::*;
pub use me::*;
pub use nodes::*;
pub use passkeys::*;
pub use recordings::*;
pub use requests::*;
pub use rotations::*;
pub use rules::*;
pub use self_service::*;
pub use sessions::*;
pub use ssh_approvals::*;
pub use ssh_certificates::*;
pub use tokens::*;
pub use users::*;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::paging::{self, Order, PageQuery};
use axum::Extension;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_core::time_arg::parse_rfc3339;
use rampart_core::{Action, ActionSet, Name};
use time::OffsetDateTime;
use uuid::Uuid;

type Caller_ = Extension<Caller>;

fn name(what: &str, text: &str) -> ApiResult<Name> {
    Ok(Name::parse(what, text)?)
}

fn uuid(what: &str, text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::bad_request(format!("invalid {what} id {text:?}")))
}

fn time_param(what: &str, text: &Option<String>) -> ApiResult<Option<OffsetDateTime>> {
    Ok(text
        .as_deref()
        .map(|t| parse_rfc3339(what, t))
        .transpose()?)
}

fn created<T: serde::Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

fn one_action(text: &str) -> ApiResult<Action> {
    match ActionSet::parse(text)?
        .iter()
        .collect::<Vec<Action>>()
        .as_slice()
    {
        [action] => Ok(*action),
        _ => Err(ApiError::bad_request(
            "action takes one action, such as shell or sftp_read",
        )),
    }
}

/// One page of a list the store returns whole, by name (or id) ascending.
fn paged<T: serde::Serialize>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    query: &PageQuery,
) -> ApiResult<Response> {
    let limit = paging::limit(query.limit, paging::DEFAULT_LIMIT)?;
    let (page, next) =
        paging::in_memory(items, key, Order::Ascending, limit, query.cursor.as_deref());
    Ok(paging::respond(&page, next))
}
