//! `grant explain` for every caller (CLI and API): one snapshot of the facts, the same
//! authorization the gateways ask, and a report per account.

use crate::authorize::{Decision, GrantVerdict, SessionRules, Snapshot};
use rampart_core::login_rules::{LoginRules, check_login};
use rampart_core::policy::KubeScope;
use rampart_core::time_arg::{format_duration, format_rfc3339};
use rampart_core::{Action, InvalidInput, Name, Protocol};
use rampart_store::{Store, StoreError};
use serde::Serialize;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

/// The question: may `user` use `account` (every account on the asset if `None`) on `asset` for
/// `action` at `at`, having logged in with a second factor or not (`None`: as they would, that
/// is with one if they have one enrolled), from `from` (checked against the login rules)?
#[derive(Debug, Clone)]
pub struct ExplainQuery {
    pub user: Name,
    pub asset: Name,
    pub account: Option<Name>,
    pub action: Action,
    pub at: OffsetDateTime,
    pub mfa: Option<bool>,
    pub from: Option<IpAddr>,
    /// For a Kubernetes action: a request in this namespace (grants limited to other
    /// namespaces do not count, as at the Kubernetes listener).
    pub namespace: Option<String>,
}

/// The answer for one account, with every grant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct AccessReport {
    pub user: String,
    pub account: String,
    pub action: String,
    pub at: String,
    pub mfa: bool,
    pub from: Option<String>,
    /// "allowed", or why the login rules refuse a login from `from`.
    pub login: Option<String>,
    /// "allow" or "deny".
    pub decision: &'static str,
    pub reason: Option<String>,
    /// The grant that allows it (the first allowing one, in creation order).
    pub grant: Option<Uuid>,
    /// When allowed: the rules in force, the strictest of every allowing grant's.
    pub rules: Option<RulesReport>,
    /// The namespace asked about (`namespace` in the question), if any.
    pub namespace: Option<String>,
    /// When a Kubernetes action is allowed: the namespaces it is allowed in (the allowing
    /// grants' and the asset's limits), or null for every namespace.
    pub namespaces: Option<Vec<String>>,
    pub grants: Vec<GrantReport>,
}

/// The session rules an allow comes with.
#[derive(Debug, Clone, Serialize)]
pub struct RulesReport {
    /// Shell and exec sessions are recorded (true if any allowing grant records).
    pub record: bool,
    /// The shortest idle timeout an allowing grant sets (`"10m"`), or null.
    pub idle_timeout: Option<String>,
    /// Some allowing grant sets no idle timeout, so the node's default applies too.
    pub idle_timeout_default_applies: bool,
    pub max_duration: Option<String>,
    pub max_duration_default_applies: bool,
    /// The same in words.
    pub summary: String,
}

impl RulesReport {
    fn new(rules: &SessionRules) -> Self {
        Self {
            record: rules.record,
            idle_timeout: rules.idle_timeout.shortest.map(format_duration),
            idle_timeout_default_applies: rules.idle_timeout.default_applies,
            max_duration: rules.max_duration.shortest.map(format_duration),
            max_duration_default_applies: rules.max_duration.default_applies,
            summary: format!(
                "{}; idle timeout: {}; maximum duration: {}",
                if rules.record {
                    "recorded"
                } else {
                    "not recorded"
                },
                rules.idle_timeout,
                rules.max_duration
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantReport {
    pub grant: Uuid,
    pub who: String,
    pub target: String,
    pub verdict: String,
    pub allows: bool,
    /// The grant's Kubernetes namespace limit (empty: every namespace).
    pub namespaces: Vec<String>,
}

/// Explains the decision the gateways would make, with the same authorization, per account.
/// `global_rules` are the node's `[auth]` login rules.
pub async fn explain_access(
    store: &Store,
    query: &ExplainQuery,
    global_rules: &LoginRules,
) -> Result<Vec<AccessReport>, StoreError> {
    let snapshot = Snapshot::for_user(store, &query.user).await?;
    let not_found = |what: &'static str, name: &Name| StoreError::NotFound {
        what,
        name: name.to_string(),
    };
    let user = snapshot
        .user(&query.user)
        .ok_or_else(|| not_found("user", &query.user))?;
    let asset = snapshot
        .asset(&query.asset)
        .ok_or_else(|| not_found("asset", &query.asset))?;
    let scope = match &query.namespace {
        None => None,
        Some(_) if query.action.protocol() != Protocol::Kubernetes => {
            return Err(StoreError::Invalid(InvalidInput::new(format!(
                "a namespace applies to Kubernetes actions only, not {}",
                query.action
            ))));
        }
        Some(namespace) => {
            Name::parse("namespace", namespace).map_err(StoreError::Invalid)?;
            Some(KubeScope::Namespace(namespace))
        }
    };
    let mfa = query.mfa.unwrap_or(user.mfa_enrolled);
    let access = snapshot
        .as_user(&user.name, mfa, query.at)
        .ok_or_else(|| not_found("user", &query.user))?;
    let accounts: Vec<Name> = match &query.account {
        Some(login) => vec![login.clone()],
        None => snapshot.logins_on(&asset.name).cloned().collect(),
    };
    if accounts.is_empty() {
        return Err(StoreError::Invalid(InvalidInput::new(format!(
            "asset {} has no accounts: add one with `rampart account add`",
            asset.name
        ))));
    }
    let grants = snapshot.grants();
    // A login the rules refuse gets nowhere, whatever the grants say.
    let login = query
        .from
        .map(|source| check_login(global_rules, &user.login_rules, source, query.at));
    let mut reports = Vec::new();
    for account in &accounts {
        let explanation = access.explain(asset, account, query.action);
        let (decision, reason, grant, rules) = match (&login, &explanation.decision) {
            (Some(Err(denied)), _) => (
                "deny",
                Some(format!("the login is refused: {denied}")),
                None,
                None,
            ),
            (_, Decision::Allow { grant, rules }) => match scope {
                None => ("allow", None, Some(*grant), Some(RulesReport::new(rules))),
                Some(scope) => match in_namespace(&access, asset, account, query.action, scope) {
                    Ok((grant, rules)) => {
                        ("allow", None, Some(grant), Some(RulesReport::new(&rules)))
                    }
                    Err(reason) => ("deny", Some(reason), None, None),
                },
            },
            (_, Decision::Deny(reason)) => ("deny", Some(reason.to_string()), None, None),
        };
        let namespaces = (decision == "allow" && query.action.protocol() == Protocol::Kubernetes)
            .then(|| allowed_namespaces(&access, asset, account, query.action, scope))
            .flatten();
        reports.push(AccessReport {
            user: user.name.to_string(),
            account: format!("{account}@{}", asset.name),
            // Other protocols' actions are written qualified (`kubernetes:exec`), as grants
            // show them.
            action: match query.action.protocol() {
                Protocol::Ssh => query.action.to_string(),
                protocol => format!("{protocol}:{}", query.action),
            },
            at: format_rfc3339(query.at),
            mfa,
            from: query.from.map(|ip| ip.to_string()),
            login: login.as_ref().map(|result| match result {
                Ok(()) => "allowed".to_owned(),
                Err(denied) => denied.to_string(),
            }),
            decision,
            reason,
            grant,
            rules,
            namespace: query.namespace.clone(),
            namespaces,
            grants: grants
                .iter()
                .zip(&explanation.grants)
                .map(|(g, (_, verdict))| {
                    let allows = *verdict == GrantVerdict::Allows;
                    let outside = scope.is_some_and(|scope| !scope.allowed_by(g));
                    GrantReport {
                        grant: g.id,
                        who: g.subject.to_string(),
                        target: g.target.to_string(),
                        verdict: if allows && outside {
                            format!(
                                "allows it in the namespaces {} only, not {}",
                                g.namespaces.join(", "),
                                query.namespace.as_deref().unwrap_or_default()
                            )
                        } else {
                            verdict.to_string()
                        },
                        allows: allows && !outside,
                        namespaces: g.namespaces.clone(),
                    }
                })
                .collect(),
        });
    }
    Ok(reports)
}

/// The decision for a Kubernetes request in `scope` (a namespace), as the Kubernetes listener
/// makes it: the asset's namespace view first, then only the grants whose namespaces include
/// it; a refusal because of the grants' namespaces names those they allow.
fn in_namespace(
    access: &crate::authorize::Access<'_>,
    asset: &rampart_core::Asset,
    account: &Name,
    action: Action,
    scope: KubeScope<'_>,
) -> Result<(Uuid, SessionRules), String> {
    if let KubeScope::Namespace(namespace) = scope {
        asset.kube_request_allowed(Some("pods"), Some(namespace), None)?;
    }
    match access.decide_any_among(asset, account, &[action], &|grant| scope.allowed_by(grant)) {
        Ok(allowed) => Ok((allowed.grant, allowed.rules)),
        Err(_) => {
            let mut namespaces: Vec<&str> = access
                .allowing_grants(asset, account, action)
                .into_iter()
                .flat_map(|grant| grant.namespaces.iter().map(String::as_str))
                .collect();
            namespaces.sort_unstable();
            namespaces.dedup();
            Err(format!(
                "{scope} is refused: the grants allow {}:{action} in the namespaces {} only",
                action.protocol(),
                namespaces.join(", ")
            ))
        }
    }
}

/// The namespaces an allowed Kubernetes action reaches: `None` when some allowing grant (in
/// `scope`, if asked) has no namespace limit and the asset is no namespace view; else the union
/// of the allowing grants' namespaces, kept to the asset's view.
fn allowed_namespaces(
    access: &crate::authorize::Access<'_>,
    asset: &rampart_core::Asset,
    account: &Name,
    action: Action,
    scope: Option<KubeScope<'_>>,
) -> Option<Vec<String>> {
    let grants: Vec<&rampart_core::Grant> = access
        .allowing_grants(asset, account, action)
        .into_iter()
        .filter(|grant| scope.is_none_or(|scope| scope.allowed_by(grant)))
        .collect();
    let view = asset.kube_namespaces();
    let mut namespaces: Vec<String> = if grants.iter().any(|g| g.namespaces.is_empty()) {
        view?.iter().map(|ns| (*ns).to_owned()).collect()
    } else {
        grants
            .iter()
            .flat_map(|g| g.namespaces.iter().cloned())
            .filter(|ns| view.as_ref().is_none_or(|view| view.contains(&ns.as_str())))
            .collect()
    };
    namespaces.sort_unstable();
    namespaces.dedup();
    Some(namespaces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorize::tests::{estate, name, store};

    fn question(user: &str, asset: &str, account: Option<&str>) -> ExplainQuery {
        ExplainQuery {
            user: name(user),
            asset: name(asset),
            account: account.map(name),
            action: Action::Shell,
            at: OffsetDateTime::now_utc(),
            mfa: None,
            from: Some(IpAddr::from([192, 0, 2, 1])),
            namespace: None,
        }
    }

    #[tokio::test]
    async fn explain_reports_each_account_with_every_grants_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let rules = LoginRules::default();
        let reports = explain_access(&store, &question("alice", "web-01", None), &rules)
            .await
            .unwrap();
        let accounts: Vec<&str> = reports.iter().map(|r| r.account.as_str()).collect();
        assert_eq!(accounts, ["deploy@web-01", "root@web-01"]);
        for report in &reports {
            assert_eq!(report.decision, "allow");
            assert_eq!(report.login.as_deref(), Some("allowed"));
            assert_eq!(report.grants.len(), 6, "every grant has a verdict");
        }
        let root = reports.iter().find(|r| r.account == "root@web-01").unwrap();
        let allowing = root.grants.iter().filter(|g| g.allows).count();
        assert_eq!(allowing, 2);
        let summary = &root.rules.as_ref().unwrap().summary;
        assert!(
            summary.starts_with("recorded; idle timeout: 10m"),
            "{summary}"
        );

        let denied = explain_access(&store, &question("bob", "web-01", Some("root")), &rules)
            .await
            .unwrap();
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].decision, "deny");
        assert_eq!(denied[0].reason.as_deref(), Some("no grant allows it"));
    }

    #[tokio::test]
    async fn explain_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        estate(&store).await;
        let rules = LoginRules::default();
        for (user, asset, expected) in [
            ("dave", "web-01", "user dave not found"),
            ("alice", "web-09", "asset web-09 not found"),
        ] {
            let err = explain_access(&store, &question(user, asset, None), &rules)
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }
}
