//! The periodic check that a provider still gives each linked user tokens: every
//! `recheck_interval`, each user's refresh token is used once. A refused grant
//! (`invalid_grant`: the user was disabled or removed at the provider, or their grant revoked)
//! disables the user, which moves their auth epoch: browser sessions end at their next request,
//! live sessions within a second (the session core's revocation check), SSH certificates stop
//! being accepted. A provider that cannot be reached changes nothing (logged); the user stays
//! as they are until the provider answers.

use crate::provider::{Provider, Refreshed};
use rampart_core::audit::Actor;
use rampart_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Users checked per round at most; the rest wait for the next round.
pub const MAX_PER_ROUND: u32 = 500;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub checked: usize,
    pub disabled: usize,
    pub unavailable: usize,
}

/// Checks every linked user whose last check is older than the interval.
pub async fn check_round(provider: &Provider, store: &Store) -> Round {
    let mut round = Round::default();
    let interval = provider.settings().recheck_interval;
    let before = time::OffsetDateTime::now_utc()
        - time::Duration::try_from(interval).unwrap_or(time::Duration::ZERO);
    let due = match store.oidc_identities_due(before, MAX_PER_ROUND).await {
        Ok(due) => due,
        Err(err) => {
            tracing::error!(error = %err, "cannot list the users to check at the identity provider");
            return round;
        }
    };
    for identity in due {
        if identity.issuer != provider.settings().issuer {
            continue;
        }
        let token = match store.oidc_refresh_token(&identity.user).await {
            Ok(Some(token)) => token,
            Ok(None) => continue,
            Err(err) => {
                tracing::error!(user = %identity.user, error = %err, "cannot read a refresh token");
                round.unavailable += 1;
                continue;
            }
        };
        round.checked += 1;
        match provider.refresh(&token).await {
            Ok(Refreshed::Valid { rotated }) => {
                if let Err(err) = store
                    .record_oidc_check(&identity.user, rotated.as_ref())
                    .await
                {
                    tracing::error!(user = %identity.user, error = %err, "cannot record a check at the identity provider");
                }
            }
            Ok(Refreshed::Refused(reason)) => {
                tracing::warn!(user = %identity.user, reason = %reason, "the identity provider no longer gives this user tokens: disabling them");
                match store
                    .disable_oidc_user(&Actor::System, &identity.user)
                    .await
                {
                    Ok(_) => round.disabled += 1,
                    Err(err) => {
                        tracing::error!(user = %identity.user, error = %err, "cannot disable a user the identity provider refused")
                    }
                }
            }
            Err(err) => {
                round.unavailable += 1;
                tracing::warn!(user = %identity.user, error = %err, "cannot check a user at the identity provider");
            }
        }
    }
    round
}

/// Runs [`check_round`] every tenth of the interval (at least every second, at most every
/// minute) until `shutdown` completes.
pub async fn run(provider: Provider, store: Arc<Store>, shutdown: impl Future<Output = ()>) {
    let tick = (provider.settings().recheck_interval / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticker.tick() => {
                check_round(&provider, &store).await;
            }
        }
    }
}
