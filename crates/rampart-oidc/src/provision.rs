//! Just-in-time provisioning: the user a verified sign-in names is created on first sign-in
//! (external: no password, no key) and brought in line with the provider at each one: the role
//! and the groups the group map gives, groups the provider no longer lists taken away.
//!
//! INVARIANT: a user is found by the provider's `(issuer, subject)`, never by name; a first
//! sign-in whose name is a local user's is refused (no take-over by a provider account that
//! merely claims a name).

use crate::jwt::Claims;
use crate::settings::OidcSettings;
use rampart_core::audit::Actor;
use rampart_core::{Name, User};
use rampart_store::{Store, StoreError};

/// Why a verified sign-in gives no user.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the ID token has no usable user name in claim {0:?}")]
    NoUserName(String),
    #[error("user {0} exists and is not linked to this provider account")]
    NameTaken(Name),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The provider's groups in the configured claim.
pub fn provider_groups(settings: &OidcSettings, claims: &Claims) -> Vec<String> {
    claims.texts(&settings.groups_claim)
}

/// Creates or updates the user `claims` name; returns them as they are now.
pub async fn provision(
    store: &Store,
    settings: &OidcSettings,
    claims: &Claims,
) -> Result<User, ProvisionError> {
    let actor = Actor::System;
    let mapped = settings.map_groups(&provider_groups(settings, claims));
    let name = match store.oidc_user(&claims.issuer, &claims.subject).await? {
        Some(name) => name,
        None => {
            let name = claims
                .text(&settings.username_claim)
                .and_then(|text| Name::parse("user", text).ok())
                .ok_or_else(|| ProvisionError::NoUserName(settings.username_claim.clone()))?;
            match store
                .add_oidc_user(&actor, &name, mapped.role, &claims.issuer, &claims.subject)
                .await
            {
                Ok(_) => {
                    tracing::info!(user = %name, "user provisioned from the identity provider")
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    return Err(ProvisionError::NameTaken(name));
                }
                Err(err) => return Err(err.into()),
            }
            name
        }
    };
    let user = store.user(&name).await?;
    if user.role != mapped.role {
        store.set_user_role(&actor, &name, mapped.role).await?;
    }
    for group in &mapped.managed {
        let member = user.groups.contains(group);
        let wanted = mapped.groups.contains(group);
        if wanted && !member {
            match store.add_group(&actor, group).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(err) => return Err(err.into()),
            }
            match store.add_group_member(&actor, group, &name).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        } else if member && !wanted {
            match store.remove_group_member(&actor, group, &name).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(store.user(&name).await?)
}
