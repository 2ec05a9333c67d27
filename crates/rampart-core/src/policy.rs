//! The one place that decides whether a user may use an account on an asset for an action now.
//!
//! Pure: the caller loads the facts (the user, the grants, the asset) and passes the time, so
//! every protocol asks the same question the same way and gets the same answer, with a reason.

use crate::action::Action;
use crate::model::{Asset, Grant, GrantSubject, GrantTarget, User};
use crate::name::Name;
use crate::time_arg::format_rfc3339;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// What is asked: may `user` use `account` on `asset` for `action` at `at`, having logged in
/// with (`mfa`) or without a second factor?
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub user: &'a User,
    pub asset: &'a Asset,
    pub account: &'a Name,
    pub action: Action,
    pub at: OffsetDateTime,
    pub mfa: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed. `grant` is the first allowing grant in creation order (the session record names
    /// it); `rules` are the strictest of every allowing grant's rules, so adding a permissive
    /// grant never loosens a strict one.
    Allow {
        grant: Uuid,
        rules: SessionRules,
    },
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// What the allowing grants say together about the sessions they allow: time limits and
/// whether they are recorded, the strictest of them (any grant that records makes a recorded
/// session; the shortest limit wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    pub idle_timeout: Limit,
    pub max_duration: Limit,
    pub record: bool,
}

impl SessionRules {
    /// One grant's rules.
    pub fn of(grant: &Grant) -> Self {
        Self {
            idle_timeout: Limit::of_grant(grant.idle_timeout),
            max_duration: Limit::of_grant(grant.max_duration),
            record: grant.record,
        }
    }

    /// The strictest of both: recorded if either records, the shorter limits.
    pub fn strictest(self, other: Self) -> Self {
        Self {
            idle_timeout: self.idle_timeout.strictest(other.idle_timeout),
            max_duration: self.max_duration.strictest(other.max_duration),
            record: self.record || other.record,
        }
    }
}

/// A session time limit as grants set it together. A grant without a limit of its own leaves
/// the node's default (`session.idle_timeout`, `session.max_duration`) in force, so it is not
/// "unlimited": the limit in force is the shortest a grant sets and, if any grant sets none,
/// the node's default too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The shortest limit an allowing grant sets.
    pub shortest: Option<Duration>,
    /// Some allowing grant sets no limit, so the node's default applies as well.
    pub default_applies: bool,
}

impl Limit {
    /// One grant's limit (`None`: the node's default).
    pub fn of_grant(limit: Option<Duration>) -> Self {
        Self {
            shortest: limit,
            default_applies: limit.is_none(),
        }
    }

    pub fn strictest(self, other: Self) -> Self {
        Self {
            shortest: shorter(self.shortest, other.shortest),
            default_applies: self.default_applies || other.default_applies,
        }
    }

    /// The limit in force given the node's default (`None`: no limit).
    pub fn with_default(self, default: Option<Duration>) -> Option<Duration> {
        shorter(self.shortest, default.filter(|_| self.default_applies))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.shortest, self.default_applies) {
            (Some(limit), false) => f.write_str(&crate::time_arg::format_duration(limit)),
            (Some(limit), true) => write!(
                f,
                "{} (or the node's default, if shorter)",
                crate::time_arg::format_duration(limit)
            ),
            (None, _) => f.write_str("the node's default"),
        }
    }
}

/// The shorter of two limits, where `None` is no limit.
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Where a Kubernetes request reaches, for grants limited to namespaces: a namespace (a
/// namespaced object, or the namespace object itself), the whole cluster (a cluster-scoped
/// resource such as nodes, or a list or watch across every namespace), or nothing (discovery
/// and other non-resource paths such as `/version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeScope<'a> {
    NonResource,
    Namespace(&'a str),
    Cluster,
}

impl<'a> KubeScope<'a> {
    /// The scope of a request as the API path names it.
    pub fn of(resource: Option<&str>, namespace: Option<&'a str>, name: Option<&'a str>) -> Self {
        match (resource, namespace, name) {
            (None, _, _) => KubeScope::NonResource,
            (Some(_), Some(ns), _) => KubeScope::Namespace(ns),
            (Some("namespaces"), None, Some(ns)) => KubeScope::Namespace(ns),
            (Some(_), None, _) => KubeScope::Cluster,
        }
    }

    /// Whether a grant's namespace limit lets the request through: an unlimited grant lets
    /// everything; a limited one its namespaces and discovery, never cluster-wide requests
    /// (a list across namespaces would show the others).
    pub fn allowed_by(self, grant: &Grant) -> bool {
        if grant.namespaces.is_empty() {
            return true;
        }
        match self {
            KubeScope::NonResource => true,
            KubeScope::Namespace(ns) => grant.namespaces.iter().any(|n| n == ns),
            KubeScope::Cluster => false,
        }
    }
}

impl fmt::Display for KubeScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeScope::NonResource => f.write_str("discovery"),
            KubeScope::Namespace(ns) => write!(f, "the namespace {ns}"),
            KubeScope::Cluster => {
                f.write_str("the whole cluster (cluster-scoped resources, lists across namespaces)")
            }
        }
    }
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
    /// A grant covers the account and action, but only in its weekly windows.
    OutsideSchedule {
        schedule: String,
    },
    /// A grant covers the account and action, but needs a login with a second factor.
    MfaRequired,
}

impl DenyReason {
    /// How close the denial came to an allow: the explanation reports the closest grant.
    fn rank(&self) -> u8 {
        match self {
            DenyReason::UserDisabled => 4,
            DenyReason::NoGrant => 0,
            DenyReason::ActionNotAllowed { .. } => 1,
            DenyReason::OutsideValidity { .. } | DenyReason::OutsideSchedule { .. } => 2,
            DenyReason::MfaRequired => 3,
        }
    }
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
            DenyReason::OutsideSchedule { schedule } => {
                write!(f, "the grant applies only {schedule}")
            }
            DenyReason::MfaRequired => {
                f.write_str("the grant requires a login with a second factor (TOTP)")
            }
        }
    }
}

/// What one grant says about a request: the explanation lists one per grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantVerdict {
    Allows,
    /// The grant is for other users or groups.
    OtherSubject,
    /// The grant covers other assets or accounts.
    OtherTarget,
    /// The grant covers the account but denies the request for this reason.
    Denies(DenyReason),
}

impl fmt::Display for GrantVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantVerdict::Allows => f.write_str("allows"),
            GrantVerdict::OtherSubject => f.write_str("is for other users"),
            GrantVerdict::OtherTarget => f.write_str("covers other assets or accounts"),
            GrantVerdict::Denies(DenyReason::ActionNotAllowed { action }) => {
                write!(f, "does not allow {action}")
            }
            GrantVerdict::Denies(reason) => write!(f, "does not apply: {reason}"),
        }
    }
}

/// A decision with the verdict of every grant that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// Every grant, in the order given, with what it says about the request.
    pub grants: Vec<(Uuid, GrantVerdict)>,
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

/// The earliest instant after `at` at which `grant` may answer differently by the clock alone:
/// its validity starts or ends, or its schedule's window opens or closes. `None`: never.
pub fn unchanged_before(grant: &Grant, at: OffsetDateTime) -> Option<OffsetDateTime> {
    let bounds = [grant.valid_from, grant.valid_until];
    let schedule = grant.schedule.as_ref().map(|s| s.unchanged_before(at));
    bounds
        .into_iter()
        .flatten()
        .filter(|bound| *bound > at)
        .chain(schedule)
        .min()
}

/// What one grant says about the request.
fn verdict(grant: &Grant, request: &AccessRequest<'_>) -> GrantVerdict {
    if !covers_user(grant, request.user) {
        return GrantVerdict::OtherSubject;
    }
    if !covers_account(grant, request.asset, request.account) {
        return GrantVerdict::OtherTarget;
    }
    let denied = if !grant.actions.contains(request.action) {
        DenyReason::ActionNotAllowed {
            action: request.action,
        }
    } else if !valid_at(grant, request.at) {
        DenyReason::OutsideValidity {
            valid_from: grant.valid_from,
            valid_until: grant.valid_until,
        }
    } else if let Some(schedule) = grant.schedule.as_ref().filter(|s| !s.contains(request.at)) {
        DenyReason::OutsideSchedule {
            schedule: schedule.to_string(),
        }
    } else if grant.require_mfa && !request.mfa {
        DenyReason::MfaRequired
    } else {
        return GrantVerdict::Allows;
    };
    GrantVerdict::Denies(denied)
}

/// Decides a request and says why: every grant's verdict, and the decision they make together.
/// Grants combine as a union for access (no grant, like a disabled user, denies) and as the
/// strictest for the rules of the session (recording, limits).
pub fn explain(request: &AccessRequest<'_>, grants: &[Grant]) -> Explanation {
    let verdicts: Vec<(Uuid, GrantVerdict)> = grants
        .iter()
        .map(|grant| (grant.id, verdict(grant, request)))
        .collect();
    let mut allowing = grants
        .iter()
        .zip(&verdicts)
        .filter_map(|(grant, (_, v))| (*v == GrantVerdict::Allows).then_some(grant));
    let decision = if request.user.disabled {
        Decision::Deny(DenyReason::UserDisabled)
    } else if let Some(first) = allowing.next() {
        // The strictest rules of every allowing grant, whatever their order.
        let rules = allowing.fold(SessionRules::of(first), |rules, grant| {
            rules.strictest(SessionRules::of(grant))
        });
        Decision::Allow {
            grant: first.id,
            rules,
        }
    } else {
        // The denial closest to an allow says the most about what is missing.
        let reason = verdicts
            .iter()
            .filter_map(|(_, v)| match v {
                GrantVerdict::Denies(reason) => Some(reason.clone()),
                _ => None,
            })
            .fold(DenyReason::NoGrant, |best, reason| {
                if reason.rank() > best.rank() {
                    reason
                } else {
                    best
                }
            });
        Decision::Deny(reason)
    };
    Explanation {
        decision,
        grants: verdicts,
    }
}

/// Decides an access request against all grants.
pub fn decide(request: &AccessRequest<'_>, grants: &[Grant]) -> Decision {
    explain(request, grants).decision
}

/// A session that may do some of what it asked for, on the one account of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAllow {
    /// The grant that allows the first allowed action.
    pub grant: Uuid,
    /// The strictest rules over every allowed action.
    pub rules: SessionRules,
    /// The asked actions that are allowed, in the order asked (at least one).
    pub actions: Vec<Action>,
}

/// Decides a session that can use any of `actions` on the request's one account (an SFTP
/// session reads, writes or both): allowed if at least one is, and then only for those. The
/// request's own `action` is ignored. Denied with the reason of the first action asked.
pub fn decide_any(
    request: &AccessRequest<'_>,
    actions: &[Action],
    grants: &[Grant],
) -> Result<SessionAllow, DenyReason> {
    let mut allowed: Option<SessionAllow> = None;
    let mut denied = None;
    for action in actions {
        let asked = AccessRequest {
            action: *action,
            ..*request
        };
        match decide(&asked, grants) {
            Decision::Allow { grant, rules } => match allowed.as_mut() {
                None => {
                    allowed = Some(SessionAllow {
                        grant,
                        rules,
                        actions: vec![*action],
                    })
                }
                Some(so_far) => {
                    so_far.rules = so_far.rules.strictest(rules);
                    so_far.actions.push(*action);
                }
            },
            Decision::Deny(reason) => {
                denied.get_or_insert(reason);
            }
        }
    }
    allowed.ok_or_else(|| denied.unwrap_or(DenyReason::NoGrant))
}

/// The accounts `user` may use for `action` at `at`, among `accounts` (pairs of asset and login),
/// in the order given.
pub fn allowed_accounts<'a>(
    user: &User,
    accounts: impl IntoIterator<Item = (&'a Asset, &'a Name)>,
    action: Action,
    at: OffsetDateTime,
    mfa: bool,
    grants: &[Grant],
) -> Vec<(&'a Asset, &'a Name)> {
    accounts
        .into_iter()
        .filter(|(asset, account)| {
            let request = AccessRequest {
                user,
                asset,
                account,
                action,
                at,
                mfa,
            };
            decide(&request, grants).is_allow()
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
            mfa_enrolled: false,
            passkeys: false,
            keys: vec![],
            groups: groups.iter().map(|g| name(g)).collect(),
            login_rules: crate::login_rules::LoginRules::default(),
            source: crate::UserSource::Local,
            created_at: NOW,
        }
    }

    fn asset(asset_name: &str, labels: &[&str]) -> Asset {
        Asset {
            id: Uuid::nil(),
            name: name(asset_name),
            host: "127.0.0.1".into(),
            domain: None,
            endpoints: vec![crate::Endpoint::new(crate::Protocol::Ssh, 22)],
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
            namespaces: Vec::new(),
            valid_from: None,
            valid_until: None,
            schedule: None,
            require_mfa: false,
            idle_timeout: None,
            max_duration: None,
            record: true,
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
                mfa: false,
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

    /// Until the instant `unchanged_before` names, the clock cannot change a grant's answer: it
    /// names the grant's start, then its end, then nothing; a schedule's next minute comes first.
    #[test]
    fn a_grant_names_the_next_instant_the_clock_may_change_its_answer() {
        let web = asset("web-01", &[]);
        let alice = user(&[]);
        let hour = time::Duration::HOUR;
        let mut g = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Asset(name("web-01")),
            &[],
            "shell",
        );
        assert_eq!(unchanged_before(&g, NOW), None);
        g.valid_from = Some(NOW + hour);
        g.valid_until = Some(NOW + 3 * hour);
        let allowed = |at| {
            let request = AccessRequest {
                user: &alice,
                asset: &web,
                account: &name("root"),
                action: Action::Shell,
                mfa: false,
                at,
            };
            decide(&request, std::slice::from_ref(&g)).is_allow()
        };
        assert_eq!(unchanged_before(&g, NOW), Some(NOW + hour));
        assert!(!allowed(NOW + hour - time::Duration::SECOND) && allowed(NOW + hour));
        assert_eq!(unchanged_before(&g, NOW + hour), Some(NOW + 3 * hour));
        assert!(allowed(NOW + 3 * hour - time::Duration::SECOND) && !allowed(NOW + 3 * hour));
        assert_eq!(unchanged_before(&g, NOW + 3 * hour), None);
        g.schedule = Some(crate::schedule::Schedule::parse("Mon-Fri 08:00-18:00").unwrap());
        let at = NOW + time::Duration::seconds(90);
        assert_eq!(
            unchanged_before(&g, at),
            Some(NOW + 2 * time::Duration::MINUTE)
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

    fn request<'a>(user: &'a User, asset: &'a Asset, account: &'a Name) -> AccessRequest<'a> {
        AccessRequest {
            user,
            asset,
            account,
            action: Action::Shell,
            at: NOW,
            mfa: false,
        }
    }

    #[test]
    fn schedules_and_mfa_requirements() {
        let web = asset("web-01", &[]);
        let alice = user(&[]);
        let root = name("root");
        let mut g = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Asset(name("web-01")),
            &[],
            "shell",
        );
        // NOW is Monday 2026-06-01 12:00 UTC = 14:00 in Berlin.
        g.schedule =
            Some(crate::schedule::Schedule::parse("Mon-Fri 08:00-13:00 Europe/Berlin").unwrap());
        let denied = decide(&request(&alice, &web, &root), std::slice::from_ref(&g));
        assert_eq!(
            denied,
            Decision::Deny(DenyReason::OutsideSchedule {
                schedule: "Mon-Fri 08:00-13:00 Europe/Berlin".into()
            })
        );
        g.schedule =
            Some(crate::schedule::Schedule::parse("Mon-Fri 08:00-18:00 Europe/Berlin").unwrap());
        g.require_mfa = true;
        g.idle_timeout = Some(Duration::from_secs(60));
        assert_eq!(
            decide(&request(&alice, &web, &root), std::slice::from_ref(&g)),
            Decision::Deny(DenyReason::MfaRequired)
        );
        let with_mfa = AccessRequest {
            mfa: true,
            ..request(&alice, &web, &root)
        };
        assert_eq!(
            decide(&with_mfa, std::slice::from_ref(&g)),
            Decision::Allow {
                grant: g.id,
                rules: SessionRules {
                    idle_timeout: Limit::of_grant(Some(Duration::from_secs(60))),
                    max_duration: Limit::of_grant(None),
                    record: true,
                }
            }
        );
    }

    #[test]
    fn explanations_name_every_grant() {
        let web = asset("web-01", &["env=prod"]);
        let alice = user(&["ops"]);
        let root = name("root");
        let mut for_bob = grant(
            GrantSubject::User(name("bob")),
            GrantTarget::Asset(name("web-01")),
            &[],
            "shell",
        );
        for_bob.id = Uuid::from_u128(1);
        let mut other_asset = grant(
            GrantSubject::Group(name("ops")),
            GrantTarget::Asset(name("db-01")),
            &[],
            "shell",
        );
        other_asset.id = Uuid::from_u128(2);
        let mut exec_only = grant(
            GrantSubject::Group(name("ops")),
            GrantTarget::Labels(vec![Label::parse("env=prod").unwrap()]),
            &[],
            "exec",
        );
        exec_only.id = Uuid::from_u128(3);
        let grants = [for_bob, other_asset, exec_only];
        let explanation = explain(&request(&alice, &web, &root), &grants);
        assert_eq!(
            explanation.decision,
            Decision::Deny(DenyReason::ActionNotAllowed {
                action: Action::Shell
            })
        );
        assert_eq!(
            explanation.grants,
            vec![
                (Uuid::from_u128(1), GrantVerdict::OtherSubject),
                (Uuid::from_u128(2), GrantVerdict::OtherTarget),
                (
                    Uuid::from_u128(3),
                    GrantVerdict::Denies(DenyReason::ActionNotAllowed {
                        action: Action::Shell
                    })
                ),
            ]
        );
    }

    #[test]
    fn the_strictest_rules_of_every_allowing_grant_apply_in_any_order() {
        let web = asset("web-01", &[]);
        let alice = user(&[]);
        let root = name("root");
        let alice_on_web = |id: u128, actions: &str| {
            let mut g = grant(
                GrantSubject::User(name("alice")),
                GrantTarget::Asset(name("web-01")),
                &[],
                actions,
            );
            g.id = Uuid::from_u128(id);
            g
        };
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let mut lax = alice_on_web(1, "shell");
        lax.record = false;
        lax.idle_timeout = Some(minutes(120));
        let mut strict = alice_on_web(2, "shell");
        strict.idle_timeout = Some(minutes(10));
        strict.max_duration = Some(minutes(480));
        // Does not allow the request, so its rules do not count.
        let mut unrelated = alice_on_web(3, "exec");
        unrelated.idle_timeout = Some(minutes(1));
        let orders = [
            [lax.clone(), strict.clone(), unrelated.clone()],
            [strict.clone(), lax.clone(), unrelated.clone()],
            [unrelated, strict, lax],
        ];
        for grants in orders {
            let Decision::Allow { grant, rules } = decide(&request(&alice, &web, &root), &grants)
            else {
                panic!("allowed");
            };
            let first_allowing = grants.iter().find(|g| g.actions.contains(Action::Shell));
            assert_eq!(Some(grant), first_allowing.map(|g| g.id));
            assert_eq!(
                rules,
                SessionRules {
                    idle_timeout: Limit {
                        shortest: Some(minutes(10)),
                        default_applies: false
                    },
                    // The lax grant sets no maximum: the node's default applies as well.
                    max_duration: Limit {
                        shortest: Some(minutes(480)),
                        default_applies: true
                    },
                    record: true,
                }
            );
            assert_eq!(
                rules.idle_timeout.with_default(Some(minutes(1))),
                Some(minutes(10))
            );
            assert_eq!(
                rules.max_duration.with_default(Some(minutes(60))),
                Some(minutes(60))
            );
            assert_eq!(rules.max_duration.with_default(None), Some(minutes(480)));
            assert_eq!(
                rules.max_duration.to_string(),
                "8h (or the node's default, if shorter)"
            );
        }
    }

    /// Every set of up to three allowing grants from a universe of rules, in every order: the
    /// rules are those of the strictest grant for each point, never looser than any one grant's.
    #[test]
    fn rules_combine_as_the_strictest_exhaustively() {
        let web = asset("web-01", &[]);
        let alice = user(&[]);
        let root = name("root");
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let mut universe = Vec::new();
        for record in [true, false] {
            for idle in [None, Some(minutes(5)), Some(minutes(60))] {
                for max in [None, Some(minutes(30)), Some(minutes(600))] {
                    let mut g = grant(
                        GrantSubject::User(name("alice")),
                        GrantTarget::Asset(name("web-01")),
                        &[],
                        "shell",
                    );
                    g.id = Uuid::from_u128(universe.len() as u128 + 1);
                    (g.record, g.idle_timeout, g.max_duration) = (record, idle, max);
                    universe.push(g);
                }
            }
        }
        // The limit a set of grants must produce with a node default: the shortest of each
        // grant's own limit or, where it has none, the default (None: no limit).
        let expected = |grants: &[&Grant], limit: fn(&Grant) -> Option<Duration>, default| {
            grants
                .iter()
                .map(|g| limit(g).or(default))
                .fold(None, shorter)
        };
        let rules_of = |grants: &[Grant]| match decide(&request(&alice, &web, &root), grants) {
            Decision::Allow { rules, .. } => rules,
            Decision::Deny(reason) => panic!("denied: {reason}"),
        };
        let count = universe.len();
        for a in 0..count {
            for b in a..count {
                for c in b..count {
                    let set = [&universe[a], &universe[b], &universe[c]];
                    let in_order: Vec<Grant> = set.iter().map(|g| (*g).clone()).collect();
                    let rules = rules_of(&in_order);
                    let reversed: Vec<Grant> = in_order.iter().rev().cloned().collect();
                    assert_eq!(rules_of(&reversed), rules, "order does not matter");
                    assert_eq!(rules.record, set.iter().any(|g| g.record));
                    for default in [None, Some(minutes(15))] {
                        let idle = rules.idle_timeout.with_default(default);
                        let max = rules.max_duration.with_default(default);
                        assert_eq!(idle, expected(&set, |g| g.idle_timeout, default));
                        assert_eq!(max, expected(&set, |g| g.max_duration, default));
                        // Never looser than any single grant alone.
                        for one in set {
                            let alone = rules_of(std::slice::from_ref(one));
                            let stricter = |mine: Option<Duration>, theirs: Option<Duration>| {
                                theirs.is_none_or(|t| mine.is_some_and(|m| m <= t))
                            };
                            assert!(stricter(idle, alone.idle_timeout.with_default(default)));
                            assert!(stricter(max, alone.max_duration.with_default(default)));
                            assert!(rules.record || !alone.record);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_session_of_several_actions_gets_what_its_one_account_allows() {
        let web = asset("web-01", &[]);
        let alice = user(&[]);
        let (root, deploy) = (name("root"), name("deploy"));
        let mut read_deploy = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Asset(name("web-01")),
            &["deploy"],
            "sftp_read",
        );
        read_deploy.id = Uuid::from_u128(1);
        read_deploy.max_duration = Some(Duration::from_secs(60));
        let mut write_root = grant(
            GrantSubject::User(name("alice")),
            GrantTarget::Asset(name("web-01")),
            &["root"],
            "sftp_write",
        );
        write_root.id = Uuid::from_u128(2);
        let grants = [read_deploy, write_root];
        let sftp = [Action::SftpRead, Action::SftpWrite];
        let on = |account| decide_any(&request(&alice, &web, account), &sftp, &grants);
        let deploy_session = on(&deploy).unwrap();
        assert_eq!(deploy_session.actions, [Action::SftpRead]);
        assert_eq!(deploy_session.grant, Uuid::from_u128(1));
        assert_eq!(
            deploy_session.rules.max_duration.shortest,
            Some(Duration::from_secs(60))
        );
        let root_session = on(&root).unwrap();
        assert_eq!(root_session.actions, [Action::SftpWrite]);
        assert_eq!(root_session.rules.max_duration, Limit::of_grant(None));
        // Both on one account: both actions, the strictest rules of the two.
        let mut both = grants.to_vec();
        both[1].accounts = vec![deploy.clone()];
        let full = decide_any(&request(&alice, &web, &deploy), &sftp, &both).unwrap();
        assert_eq!(full.actions, sftp);
        assert_eq!(
            full.rules.max_duration,
            Limit {
                shortest: Some(Duration::from_secs(60)),
                default_applies: true
            }
        );
        assert_eq!(
            decide_any(&request(&alice, &web, &root), &sftp, &both),
            Err(DenyReason::NoGrant)
        );
        assert_eq!(
            decide_any(&request(&alice, &web, &root), &[], &grants),
            Err(DenyReason::NoGrant)
        );
    }

    /// Every combination of a small universe of grants, users and requests: the properties the
    /// policy promises hold for all of them.
    #[test]
    fn policy_properties_hold_exhaustively() {
        let web = asset("web-01", &["env=prod"]);
        let subjects = [
            GrantSubject::User(name("alice")),
            GrantSubject::Group(name("ops")),
            GrantSubject::User(name("bob")),
        ];
        let targets = [
            GrantTarget::Asset(name("web-01")),
            GrantTarget::Labels(vec![Label::parse("env=prod").unwrap()]),
            GrantTarget::Asset(name("db-01")),
            GrantTarget::Labels(vec![]),
        ];
        let mut universe = Vec::new();
        let mut id = 0u128;
        for subject in &subjects {
            for target in &targets {
                for accounts in [&[][..], &["root"][..], &["admin"][..]] {
                    for actions in ["shell", "exec"] {
                        for variant in 0..4 {
                            id += 1;
                            let mut g = grant(subject.clone(), target.clone(), accounts, actions);
                            g.id = Uuid::from_u128(id);
                            match variant {
                                1 => g.valid_until = Some(datetime!(2026-05-01 0:00 UTC)),
                                2 => g.require_mfa = true,
                                3 => {
                                    g.schedule = Some(
                                        crate::schedule::Schedule::parse("Sat+Sun 00:00-24:00")
                                            .unwrap(),
                                    )
                                }
                                _ => {}
                            }
                            universe.push(g);
                        }
                    }
                }
            }
        }
        let mut allowed = 0;
        for (groups, disabled) in [
            (&["ops"][..], false),
            (&[][..], false),
            (&["ops"][..], true),
        ] {
            let mut alice = user(groups);
            alice.disabled = disabled;
            for account in ["root", "admin"] {
                let account = name(account);
                for action in [Action::Shell, Action::Exec, Action::PortForward] {
                    for mfa in [false, true] {
                        let request = AccessRequest {
                            action,
                            mfa,
                            ..request(&alice, &web, &account)
                        };
                        // No grants: deny.
                        assert!(!decide(&request, &[]).is_allow());
                        // Each grant alone, and windows of the universe together.
                        let sets = universe
                            .iter()
                            .map(std::slice::from_ref)
                            .chain(universe.chunks(7));
                        for grants in sets {
                            let explanation = explain(&request, grants);
                            match &explanation.decision {
                                Decision::Allow { grant, .. } => {
                                    allowed += 1;
                                    assert!(!alice.disabled);
                                    // An allow names a grant that, alone, allows the request.
                                    let named = grants.iter().find(|g| g.id == *grant).unwrap();
                                    assert!(
                                        decide(&request, std::slice::from_ref(named)).is_allow()
                                    );
                                    assert!(named.actions.contains(action));
                                    assert!(
                                        explanation
                                            .grants
                                            .contains(&(*grant, GrantVerdict::Allows))
                                    );
                                }
                                Decision::Deny(_) => {
                                    // A deny means no grant allows it on its own (the union).
                                    assert!(
                                        alice.disabled
                                            || grants.iter().all(|g| !decide(
                                                &request,
                                                std::slice::from_ref(g)
                                            )
                                            .is_allow())
                                    );
                                }
                            }
                            // Adding a grant never turns an allow into a deny.
                            if explanation.decision.is_allow() {
                                let mut more = grants.to_vec();
                                more.extend(universe.first().cloned());
                                assert!(decide(&request, &more).is_allow());
                            }
                        }
                    }
                }
            }
        }
        assert!(allowed > 100, "the universe must contain allows: {allowed}");
    }
}
