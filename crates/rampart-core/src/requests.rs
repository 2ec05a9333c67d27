//! Access requests: who may approve or deny a request for time-bound access. One decision,
//! asked by the CLI, the API and the portal alike.
//!
//! - Nobody decides their own request, whatever their role.
//! - Administrators decide any other request.
//! - A member of an approver group decides the requests that group covers: every request when
//!   the group is configured without a label, else requests for an asset carrying that label
//!   or for that label itself.

use crate::{Label, Name, Role};

/// One configured approver group (`[[requests.approvers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverRule {
    pub group: Name,
    /// Only requests for assets with this label (or naming it); none: every request.
    pub label: Option<Label>,
}

/// The node's `[requests]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSettings {
    pub approvers: Vec<ApproverRule>,
    /// The longest access a request may ask for.
    pub max_duration: std::time::Duration,
}

/// The longest access a request may ask for unless configured (`requests.max_duration`).
pub const DEFAULT_MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            approvers: Vec::new(),
            max_duration: DEFAULT_MAX_DURATION,
        }
    }
}

/// Parses approver groups as configured: `GROUP` (every request) or `GROUP@KEY=VALUE`
/// (requests for assets with that label), separated by commas.
pub fn parse_approvers(text: &str) -> Result<Vec<ApproverRule>, crate::InvalidInput> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('@') {
            Some((group, label)) => Ok(ApproverRule {
                group: Name::parse("approver group", group)?,
                label: Some(Label::parse(label)?),
            }),
            None => Ok(ApproverRule {
                group: Name::parse("approver group", part)?,
                label: None,
            }),
        })
        .collect()
}

/// Who wants to decide.
#[derive(Debug, Clone)]
pub struct Approver<'a> {
    pub name: &'a Name,
    pub role: Role,
    pub groups: &'a [Name],
}

/// The request as the decision needs it.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub requester: &'a Name,
    /// The labels of the requested asset, or the labels the request names.
    pub labels: &'a [Label],
}

/// Why someone may not decide a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    OwnRequest,
    NotAnApprover,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::OwnRequest => f.write_str("nobody may approve or deny their own request"),
            Refusal::NotAnApprover => f.write_str(
                "you are not an approver of this request (administrators, and members of the \
                 approver groups configured in [[requests.approvers]] for it)",
            ),
        }
    }
}

/// Whether `approver` may approve or deny the request.
pub fn may_decide(
    approver: &Approver<'_>,
    request: &RequestFacts<'_>,
    rules: &[ApproverRule],
) -> Result<(), Refusal> {
    if approver.name == request.requester {
        return Err(Refusal::OwnRequest);
    }
    if approver.role == Role::Admin {
        return Ok(());
    }
    let covered = rules.iter().any(|rule| {
        approver.groups.contains(&rule.group)
            && rule
                .label
                .as_ref()
                .is_none_or(|label| request.labels.contains(label))
    });
    if covered {
        Ok(())
    } else {
        Err(Refusal::NotAnApprover)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse("name", text).unwrap()
    }

    #[test]
    fn approvers_are_groups_optionally_for_one_label() {
        let rules = parse_approvers("leads@env=prod, oncall").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].label, Some(Label::parse("env=prod").unwrap()));
        assert_eq!(rules[1].label, None);
        assert!(parse_approvers("le ads").is_err());
        assert!(parse_approvers("leads@noequals").is_err());
    }

    #[test]
    fn nobody_decides_their_own_request_and_groups_cover_only_their_labels() {
        let alice = name("alice");
        let bob = name("bob");
        let leads = vec![name("leads")];
        let prod = Label::parse("env=prod").unwrap();
        let test = Label::parse("env=test").unwrap();
        let rules = vec![ApproverRule {
            group: name("leads"),
            label: Some(prod.clone()),
        }];
        let on_prod = RequestFacts {
            requester: &alice,
            labels: std::slice::from_ref(&prod),
        };
        let on_test = RequestFacts {
            requester: &alice,
            labels: std::slice::from_ref(&test),
        };
        let admin = Approver {
            name: &alice,
            role: Role::Admin,
            groups: &[],
        };
        assert_eq!(
            may_decide(&admin, &on_prod, &rules),
            Err(Refusal::OwnRequest)
        );
        let lead = Approver {
            name: &bob,
            role: Role::User,
            groups: &leads,
        };
        assert_eq!(may_decide(&lead, &on_prod, &rules), Ok(()));
        assert_eq!(
            may_decide(&lead, &on_test, &rules),
            Err(Refusal::NotAnApprover)
        );
        let other_admin = Approver {
            name: &bob,
            role: Role::Admin,
            groups: &[],
        };
        assert_eq!(may_decide(&other_admin, &on_test, &rules), Ok(()));
        let everywhere = vec![ApproverRule {
            group: name("leads"),
            label: None,
        }];
        assert_eq!(may_decide(&lead, &on_test, &everywhere), Ok(()));
        let auditor = Approver {
            name: &bob,
            role: Role::Auditor,
            groups: &[],
        };
        assert_eq!(
            may_decide(&auditor, &on_prod, &everywhere),
            Err(Refusal::NotAnApprover)
        );
    }
}
