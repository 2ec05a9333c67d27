//! Target accounts and their vaulted secrets.

use crate::WebState;
use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::{AccountRef, SecretKind, SecretString};
use rampart_store::NewAccountSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, paged};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    asset: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn accounts_list(
    State(state): State<WebState>,
    Query(query): Query<AccountQuery>,
) -> ApiResult<Response> {
    let asset = query.asset.map(|a| name("asset", &a)).transpose()?;
    let accounts = state.store.list_accounts(asset.as_ref()).await?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    paged(
        accounts,
        |account| format!("{}/{}", account.asset, account.login),
        &page,
    )
}

/// The secret of an account: exactly one of a password or an OpenSSH private key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    password: Option<String>,
    private_key: Option<String>,
}

impl SecretBody {
    fn into_secret(self) -> ApiResult<NewAccountSecret> {
        match (self.password, self.private_key) {
            (Some(password), None) => Ok(NewAccountSecret {
                kind: SecretKind::Password,
                value: SecretString::from(password),
            }),
            (None, Some(key)) => Ok(NewAccountSecret {
                kind: SecretKind::PrivateKey,
                value: SecretString::from(key),
            }),
            _ => Err(ApiError::bad_request(
                "give exactly one of password or private_key",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountAdd {
    /// LOGIN@ASSET.
    account: String,
    password: Option<String>,
    private_key: Option<String>,
}

pub async fn account_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<AccountAdd>,
) -> ApiResult<Response> {
    let account = AccountRef::parse(&body.account)?;
    let secret = SecretBody {
        password: body.password,
        private_key: body.private_key,
    }
    .into_secret()?;
    let added = state
        .store
        .add_account(&caller.actor(), &account, &secret)
        .await?;
    Ok(created(added))
}

pub async fn account_secret(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(account): Path<String>,
    Body(body): Body<SecretBody>,
) -> ApiResult<Json<Value>> {
    let account = AccountRef::parse(&account)?;
    let secret = body.into_secret()?;
    let replaced = state
        .store
        .replace_account_secret(&caller.actor(), &account, &secret)
        .await?;
    Ok(Json(json!(replaced)))
}

pub async fn account_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = AccountRef::parse(&account)?;
    state
        .store
        .remove_account(&caller.actor(), &account)
        .await?;
    Ok(Json(json!({ "removed": account.to_string() })))
}
