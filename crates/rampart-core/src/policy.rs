//! The one place that decides whether a user may use an account on an asset for an action now.
//!
//! Pure: the caller loads the facts (the user, the grants, the asset) and passes the time, so
//! every protocol asks the same question the same way and gets the same answer, with a reason.

use crate::action::Action;
use crate::model::{Asset, Grant, GrantSubject, GrantTarget, User};
use crate::name::Name;
use crate::time_arg::format_rfc3339;
use std::fmt;
use time::OffsetDateTime;
use uuid::Uuid;

/// What is asked: may `user` use `account` on `asset` for `action` at `at`?
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub user: &'a User,
    pub asset: &'a Asset,
    pub account: &'a Name,
    pub action: Action,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this grant (the first that matches, in creation order).
    Allow {
        grant: Uuid,
    },
    Deny(DenyReason),
}

/// Why access was denied, most specific first. Shown to the user and stored in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    UserDisabled,
    /// No grant covers this user, asset and account at all.
    NoGrant,
    /// A grant covers the account, but not for this action.
    ActionNotAllowed {
        action: Action,
    },
    /// A grant covers the account and action, but not at this time.
    OutsideValidity {
        valid_from: Option<OffsetDateTime>,
        valid_until: Option<OffsetDateTime>,
    },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::UserDisabled => f.write_str("the user is disabled"),
            DenyReason::NoGrant => f.write_str("no grant allows it"),
            DenyReason::ActionNotAllowed { action } => write!(f, "no grant allows {action}"),
            DenyReason::OutsideValidity {
                valid_from,
                valid_until,
            } => {
                f.write_str("the grant is not valid now")?;
                match (valid_from, valid_until) {
                    (Some(from), Some(until)) => {
                        write!(
                            f,
                            " (valid from {} until {})",
                            format_rfc3339(*from),
                            format_rfc3339(*until)
                        )
                    }
                    (Some(from), None) => write!(f, " (valid from {})", format_rfc3339(*from)),
                    (None, Some(until)) => write!(f, " (expired {})", format_rfc3339(*until)),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

/// Whether `grant` is about `user` (directly or through one of their groups).
fn covers_user(grant: &Grant, user: &User) -> bool {
    match &grant.subject {
        GrantSubject::User(name) => *name == user.name,
        GrantSubject::Group(group) => user.groups.contains(group),
    }
}

/// Whether `grant` covers `account` on `asset`.
fn covers_account(grant: &Grant, asset: &Asset, account: &Name) -> bool {
    let asset_matches = match &grant.target {
        GrantTarget::Asset(name) => *name == asset.name,
        GrantTarget::Labels(labels) => {
            !labels.is_empty() && labels.iter().all(|l| asset.labels.contains(l))
        }
    };
    asset_matches && (grant.accounts.is_empty() || grant.accounts.contains(account))
}

fn valid_at(grant: &Grant, at: OffsetDateTime) -> bool {
    grant.valid_from.is_none_or(|from| from <= at)
        && grant.valid_until.is_none_or(|until| at < until)
}

/// Decides an access request against all grants. Grants combine as a union; an empty set of
/// grants, like a disabled user, denies.
pub fn decide(request: &AccessRequest<'_>, grants: &[Grant]) -> Decision {
    if request.user.disabled {
        return Decision::Deny(DenyReason::UserDisabled);
    }
    let mut reason = DenyReason::NoGrant;
    let relevant = grants.iter().filter(|g| {
        covers_user(g, request.user) && covers_account(g, request.asset, request.account)
    });
    for grant in relevant {
        if !grant.actions.contains(request.action) {
            if reason == DenyReason::NoGrant {
                reason = DenyReason::ActionNotAllowed {
                    action: request.action,
                };
            }
            continue;
        }
        if !valid_at(grant, request.at) {
            reason = DenyReason::OutsideValidity {
                valid_from: grant.valid_from,
                valid_until: grant.valid_until,
            };
            continue;
        }
        return Decision::Allow { grant: grant.id };
    }
    Decision::Deny(reason)
}

/// The accounts `user` may use for `action` at `at`, among `accounts` (pairs of asset and login),
/// in the order given.
pub fn allowed_accounts<'a>(
    user: &User,
    accounts: &'a [(Asset, Name)],
    action: Action,
    at: OffsetDateTime,
    grants: &[Grant],
) -> Vec<&'a (Asset, Name)> {
    accounts
        .iter()
        .filter(|(asset, account)| {
            let request = AccessRequest {
                user,
                asset,
                account,
                action,
                at,
            };
            matches!(decide(&request, grants), Decision::Allow { .. })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::ActionSet;
    use crate::name::Label;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn name(text: &str) -> Name {
        Name::parse("test", text).unwrap()
    }

    fn user(groups: &[&str]) -> User {
        User {
            id: Uuid::nil(),
            name: name("alice"),
            role: crate::Role::User,
            disabled: false,
            has_password: false,
            auth_epoch: 0,
            keys: vec![],
            groups: groups.iter().map(|g| name(g)).collect(),
            login_rules: crate::login_rules::LoginRules::default(),
            created_at: NOW,
        }
    }

    fn asset(asset_name: &str, labels: &[&str]) -> Asset {
        Asset {
            id: Uuid::nil(),
            name: name(asset_name),
            host: "127.0.0.1".into(),
            port: 22,
            labels: labels.iter().map(|l| Label::parse(l).unwrap()).collect(),
            host_key: None,
            created_at: NOW,
        }
    }

    fn grant(
        subject: GrantSubject,
        target: GrantTarget,
        accounts: &[&str],
        actions: &str,
    ) -> Grant {
        Grant {
            id: Uuid::from_u128(7),
            subject,
            target,
            accounts: accounts.iter().map(|a| name(a)).collect(),
            actions: ActionSet::parse(actions).unwrap(),
            valid_from: None,
            valid_until: None,
            created_at: NOW,
        }
    }

    fn check(
        user: &User,
        asset: &Asset,
        account: &str,
        action: Action,
        grants: &[Grant],
    ) -> Decision {
        let account = name(account);
        decide(
            &AccessRequest {
                user,
                asset,
                account: &account,
                action,
                at: NOW,
            },
            grants,
        )
    }

    #[test]
    fn grants_by_user_group_name_and_label() {
        let web = asset("web-01", &["env=prod", "team=web"]);
        let by_user = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Asset(name("web-01")),
            &["root"],
            "shell",
        );
        let by_group = grant(
            GrantSubject::Group(name("ops")),
            GrantTarget::Labels(vec![Label::parse("env=prod").unwrap()]),
            &[],
            "exec",
        );
        let alice = user(&["ops"]);
        assert!(matches!(
            check(
                &alice,
                &web,
                "root",
                Action::Shell,
                std::slice::from_ref(&by_user)
            ),
            Decision::Allow { .. }
        ));
        assert_eq!(
            check(
                &alice,
                &web,
                "admin",
                Action::Shell,
                std::slice::from_ref(&by_user)
            ),
            Decision::Deny(DenyReason::NoGrant)
        );
        assert!(matches!(
            check(
                &alice,
                &web,
                "admin",
                Action::Exec,
                std::slice::from_ref(&by_group)
            ),
            Decision::Allow { .. }
        ));
        assert_eq!(
            check(
                &user(&[]),
                &web,
                "admin",
                Action::Exec,
                std::slice::from_ref(&by_group)
            ),
            Decision::Deny(DenyReason::NoGrant)
        );
        let db = asset("db-01", &["env=staging"]);
        assert_eq!(
            check(&alice, &db, "root", Action::Exec, &[by_user, by_group]),
            Decision::Deny(DenyReason::NoGrant)
        );
    }

    #[test]
    fn denials_say_why() {
        let web = asset("web-01", &[]);
        let mut g = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Asset(name("web-01")),
            &[],
            "shell",
        );
        let alice = user(&[]);
        assert_eq!(
            check(&alice, &web, "root", Action::PortForward, &[g.clone()]),
            Decision::Deny(DenyReason::ActionNotAllowed {
                action: Action::PortForward
            })
        );
        g.valid_until = Some(datetime!(2026-05-01 0:00 UTC));
        let denied = check(&alice, &web, "root", Action::Shell, &[g.clone()]);
        assert!(matches!(
            denied,
            Decision::Deny(DenyReason::OutsideValidity { .. })
        ));
        if let Decision::Deny(reason) = denied {
            assert_eq!(
                reason.to_string(),
                "the grant is not valid now (expired 2026-05-01T00:00:00Z)"
            );
        }
        g.valid_until = None;
        g.valid_from = Some(datetime!(2026-07-01 0:00 UTC));
        assert!(matches!(
            check(&alice, &web, "root", Action::Shell, &[g.clone()]),
            Decision::Deny(DenyReason::OutsideValidity { .. })
        ));
        g.valid_from = Some(datetime!(2026-05-01 0:00 UTC));
        assert!(matches!(
            check(&alice, &web, "root", Action::Shell, &[g.clone()]),
            Decision::Allow { .. }
        ));
        let mut disabled = user(&[]);
        disabled.disabled = true;
        assert_eq!(
            check(&disabled, &web, "root", Action::Shell, &[g]),
            Decision::Deny(DenyReason::UserDisabled)
        );
        assert_eq!(
            check(&alice, &web, "root", Action::Shell, &[]),
            Decision::Deny(DenyReason::NoGrant)
        );
    }

    #[test]
    fn an_empty_label_selector_matches_nothing() {
        let web = asset("web-01", &[]);
        let g = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Labels(vec![]),
            &[],
            "shell",
        );
        assert_eq!(
            check(&user(&[]), &web, "root", Action::Shell, &[g]),
            Decision::Deny(DenyReason::NoGrant)
        );
    }
}
