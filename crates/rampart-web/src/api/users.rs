//! Users: add, remove, enable and disable, keys, password, MFA reset, unlock, login rules.

use crate::error::{ApiError, ApiResult, Body, Path, Query};
use crate::paging::PageQuery;
use crate::{WebState, now};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use rampart_core::login_rules::{LoginRules, parse_cidr_list};
use rampart_core::schedule::Schedule;
use rampart_core::time_arg::format_rfc3339;
use rampart_core::{Role, SecretString};
use rampart_store::ssh_keys::parse_public_keys;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller_, created, name, paged};

pub async fn users_list(
    State(state): State<WebState>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let users = state.store.list_users().await?;
    let key = |user: &rampart_core::User| user.name.to_string();
    paged(users, key, &query)
}

pub async fn user_show(
    State(state): State<WebState>,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state.store.user(&name("user", &user)?).await?;
    let locks = state.store.user_locks(&user.name, now()).await?;
    let mut value = json!(user);
    if let Some(map) = value.as_object_mut() {
        let locked_until = locks.iter().map(|lock| lock.until).max();
        map.insert(
            "locked_until".into(),
            json!(locked_until.map(format_rfc3339)),
        );
        let by_factor: Vec<Value> = locks
            .iter()
            .map(|lock| json!({ "factor": lock.factor.as_str(), "until": format_rfc3339(lock.until) }))
            .collect();
        map.insert("locks".into(), json!(by_factor));
    }
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAdd {
    name: String,
    role: Option<String>,
    /// SSH public keys, one `authorized_keys` line each.
    #[serde(default)]
    keys: Vec<String>,
}

pub async fn user_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Body(body): Body<UserAdd>,
) -> ApiResult<Response> {
    let user = name("user", &body.name)?;
    let role = Role::parse(body.role.as_deref().unwrap_or("user"))?;
    let mut keys = Vec::new();
    for line in &body.keys {
        keys.extend(parse_public_keys("key", line)?);
    }
    let added = state
        .store
        .add_user(&caller.actor(), &user, role, &keys)
        .await?;
    Ok(created(added))
}

pub async fn user_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    let grants_removed = state.store.remove_user(&caller.actor(), &user).await?;
    Ok(Json(
        json!({ "removed": user, "grants_removed": grants_removed }),
    ))
}

pub async fn user_disable(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .set_user_disabled(&caller.actor(), &name("user", &user)?, true)
        .await?;
    Ok(Json(json!(user)))
}

pub async fn user_enable(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .set_user_disabled(&caller.actor(), &name("user", &user)?, false)
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAdd {
    public_key: String,
}

pub async fn user_key_add(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<KeyAdd>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    state.store.user(&user).await?;
    let keys = parse_public_keys("public_key", &body.public_key)?;
    let mut updated = None;
    for key in &keys {
        updated = Some(
            state
                .store
                .add_user_key(&caller.actor(), &user, key)
                .await?,
        );
    }
    updated
        .map(|u| Json(json!(u)))
        .ok_or_else(|| ApiError::bad_request("public_key holds no key"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRemove {
    fingerprint: String,
}

pub async fn user_key_remove(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<KeyRemove>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .remove_user_key(&caller.actor(), &name("user", &user)?, &body.fingerprint)
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSet {
    password: String,
}

pub async fn user_password(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<PasswordSet>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    let password = SecretString::from(body.password);
    {
        use rampart_core::ExposeSecret;
        if password.expose_secret().is_empty() || password.expose_secret().len() > 1024 {
            return Err(ApiError::bad_request(
                "the password must be 1 to 1024 bytes",
            ));
        }
    }
    state
        .store
        .set_user_password(&caller.actor(), &user, &password)
        .await?;
    Ok(Json(json!({ "user": user, "password": "set" })))
}

pub async fn user_mfa_reset(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    let removed = state
        .store
        .reset_second_factors(&caller.actor(), &user)
        .await?;
    Ok(Json(json!({
        "user": user,
        "mfa": "not enrolled",
        "passkeys_removed": removed.passkeys,
    })))
}

pub async fn user_unlock(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = name("user", &user)?;
    state.store.unlock_user(&caller.actor(), &user).await?;
    Ok(Json(json!({ "user": user, "locked": false })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRulesSet {
    /// Comma-separated networks; absent keeps the rule, "" removes it.
    allow_from: Option<String>,
    deny_from: Option<String>,
    /// Weekly windows such as "Mon-Fri 08:00-18:00 Europe/Berlin"; "" removes the rule.
    login_hours: Option<String>,
}

pub async fn user_login_rules(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<LoginRulesSet>,
) -> ApiResult<Json<Value>> {
    let user = state.store.user(&name("user", &user)?).await?;
    let mut rules: LoginRules = user.login_rules.clone();
    if let Some(text) = &body.allow_from {
        rules.allow_from = parse_cidr_list("allow_from", text)?;
    }
    if let Some(text) = &body.deny_from {
        rules.deny_from = parse_cidr_list("deny_from", text)?;
    }
    if let Some(text) = &body.login_hours {
        rules.hours = if text.trim().is_empty() {
            None
        } else {
            Some(Schedule::parse(text)?)
        };
    }
    let user = state
        .store
        .set_user_login_rules(&caller.actor(), &user.name, &rules)
        .await?;
    Ok(Json(json!(user)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSet {
    role: String,
}

pub async fn user_role_set(
    State(state): State<WebState>,
    Extension(caller): Caller_,
    Path(user): Path<String>,
    Body(body): Body<RoleSet>,
) -> ApiResult<Json<Value>> {
    let role = rampart_core::Role::parse(&body.role)?;
    let user = state
        .store
        .set_user_role(&caller.actor(), &name("user", &user)?, role)
        .await?;
    Ok(Json(json!(user)))
}
