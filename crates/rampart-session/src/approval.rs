//! Command approvals in a session: a shell line an `approve` rule holds (`command_control`)
//! becomes a pending `command_approvals` row that approvers decide through the API, the portal
//! or the CLI; the session polls it (the store is the one arbiter between a decision and the
//! timeout, whichever process writes first) and then sends the kept Enter or clears the line.
//! What the user sees, and what the recording marks, are the lines made here. Protocol neutral:
//! the front only moves bytes and waits without blocking (`SessionTap::hold`,
//! `SessionTap::approval_outcome`).

use crate::command_control::HeldLine;
use rampart_store::{ApprovalOutcome, CommandApproval, NewCommandApproval};

/// How often a waiting session reads its approval.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The errors `SessionTap::hold` and `SessionTap::approval_outcome` end a session with begin
/// with one of these (the session's end reason is then that, not a recording failure).
const FAILURES: [&str; 2] = ["cannot ask for an approval", "cannot read the approval"];

/// Whether an error that ended a session came from its approval (the store could not be
/// written or read: fail closed, the line stays held and the session ends).
pub fn is_approval_failure(error: &str) -> bool {
    FAILURES.iter().any(|prefix| error.starts_with(prefix))
}

/// The request to write for `held` in `session`.
pub(crate) fn new_approval(
    held: &HeldLine,
    session: uuid::Uuid,
    user: &str,
    account: &rampart_core::AccountRef,
) -> Result<NewCommandApproval, String> {
    Ok(NewCommandApproval {
        session,
        requester: rampart_core::Name::parse("user", user).map_err(|err| err.to_string())?,
        target: account.to_string(),
        asset: account.asset.clone(),
        labels: held.labels.clone(),
        line: held.line.clone(),
        command: held.command.clone(),
        rule: held.rule.clone(),
        timeout: held.timeout,
    })
}

/// What the user sees while the line waits.
pub fn waiting_line(approval: &CommandApproval, held: &HeldLine) -> String {
    format!(
        "rampart: waiting for approval of `{}` (request {}, up to {} s; rule {}); keys typed \
         meanwhile are discarded",
        approval.line,
        approval.id,
        held.timeout.as_secs(),
        held.rule
    )
}

/// What the user sees once it is decided, and whether the line runs.
pub fn outcome_line(outcome: &ApprovalOutcome, timeout_secs: u64) -> (bool, String) {
    match outcome {
        ApprovalOutcome::Approved { by } => (true, format!("rampart: approved by {by}")),
        ApprovalOutcome::Denied { by, note: None } => {
            (false, format!("rampart: command denied by {by}"))
        }
        ApprovalOutcome::Denied {
            by,
            note: Some(note),
        } => (false, format!("rampart: command denied by {by}: {note}")),
        ApprovalOutcome::TimedOut => (
            false,
            format!("rampart: command not run: no decision within {timeout_secs} s"),
        ),
        ApprovalOutcome::Cancelled => (false, "rampart: command not run: cancelled".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_told_who_decided_and_why() {
        let approved = ApprovalOutcome::Approved { by: "bob".into() };
        assert_eq!(
            outcome_line(&approved, 120),
            (true, "rampart: approved by bob".to_owned())
        );
        let denied = ApprovalOutcome::Denied {
            by: "bob".into(),
            note: Some("not during the freeze".into()),
        };
        assert_eq!(
            outcome_line(&denied, 120),
            (
                false,
                "rampart: command denied by bob: not during the freeze".to_owned()
            )
        );
        assert_eq!(
            outcome_line(&ApprovalOutcome::TimedOut, 120).1,
            "rampart: command not run: no decision within 120 s"
        );
    }
}
