//! Command control in sessions: the rules of `rampart_core::rules` applied to what a session
//! would run. Exec requests are checked whole before the session starts (exact: the target runs
//! that text). Shell lines are checked when the user presses Enter, on the line the command log
//! reads from the screen plus what this keystroke chunk adds that the target has not echoed yet
//! (a paste); a denied line is not sent: the Enter is withheld, the line is cleared on the
//! target (Ctrl-E Ctrl-U), the user sees why, and the session goes on. A line an `approve` rule
//! matches is held: its Enter is kept back ([`ShellRules`] remembers it; the verdict's
//! [`HeldLine`] tells the front to ask an approver, `crate::approval`), every key typed while it
//! waits is discarded, and the decision either sends the kept Enter or clears the line as a
//! denial does. Shell rules are a guardrail (aliases, scripts and full-screen programs get
//! around them); exec rules are exact.

use crate::lifecycle::Authorized;
use crate::observe::{ClientVerdict, Finding};
use rampart_audit::commands::CommandLog;
use rampart_core::AccountRef;
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::rules::{Decision, RuleAction, RuleSet};
use rampart_store::Store;

/// Sent to the target instead of a refused line's Enter: to the end of the line, then erase it
/// (readline and the terminal's own line editing both erase on Ctrl-U).
const CLEAR_LINE: &[u8] = b"\x05\x15";

/// A rule that matched (or a line that could not be checked), for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFinding {
    pub line: String,
    pub command: String,
    /// `#3 deny prefix:rm -rf`, or `unparsable: WHY`.
    pub rule: String,
    pub rule_id: Option<uuid::Uuid>,
    pub action: RuleAction,
}

impl RuleFinding {
    /// The audit event of this finding in `session` (none: refused before it started).
    pub fn event(&self, session: &str, user: &str, account: &AccountRef) -> AuditEvent {
        AuditEvent::CommandRuleMatched {
            session: (!session.is_empty()).then(|| session.to_owned()),
            user: user.to_owned(),
            target: account.to_string(),
            line: self.line.clone(),
            command: self.command.clone(),
            rule: self.rule.clone(),
            rule_id: self.rule_id.map(|id| id.to_string()),
            action: self.action.to_string(),
        }
    }
}

impl RuleFinding {
    /// The alert a `warn` or `deny` match raises (`allow` raises none).
    pub fn alert(&self, session: &str, user: &str, account: &AccountRef) -> Option<AuditEvent> {
        let severity = match self.action {
            // A held line is announced by its `command_approval_requested` event.
            RuleAction::Allow | RuleAction::Approve => return None,
            RuleAction::Warn => "warning",
            RuleAction::Deny => "critical",
        };
        let verb = match self.action {
            RuleAction::Deny => "refused",
            _ => "flagged",
        };
        Some(AuditEvent::AlertRaised {
            alert: "command_rule".to_owned(),
            severity: severity.to_owned(),
            user: user.to_owned(),
            session: (!session.is_empty()).then(|| session.to_owned()),
            target: Some(account.to_string()),
            detail: format!("command {verb} by rule {}: {}", self.rule, self.command),
        })
    }

    /// The match's audit event and, for `warn` and `deny`, its alert.
    pub fn events(&self, session: &str, user: &str, account: &AccountRef) -> Vec<AuditEvent> {
        let mut events = vec![self.event(session, user, account)];
        events.extend(self.alert(session, user, account));
        events
    }
}

/// The privilege-escalation detector: a `warning` alert when `line` (a shell command the
/// command log read, or an exec command) runs `sudo`, `su`, `pkexec`, `doas`, `chmod +s`, ...
pub fn escalation_alert(
    line: &str,
    session: &str,
    user: &str,
    account: &AccountRef,
) -> Option<AuditEvent> {
    let command = rampart_core::rules::privilege_escalation(line)?;
    Some(AuditEvent::AlertRaised {
        alert: "privilege_escalation".to_owned(),
        severity: "warning".to_owned(),
        user: user.to_owned(),
        session: (!session.is_empty()).then(|| session.to_owned()),
        target: Some(account.to_string()),
        detail: format!("privilege escalation command: {command}"),
    })
}

/// The findings of one decision on `line`.
pub fn findings(line: &str, decision: &Decision) -> Vec<RuleFinding> {
    let mut found: Vec<RuleFinding> = decision
        .matches
        .iter()
        .map(|matched| RuleFinding {
            line: line.to_owned(),
            command: matched.command.clone(),
            rule: matched.rule_text.clone(),
            rule_id: Some(matched.rule),
            action: matched.action,
        })
        .collect();
    if let Some(why) = &decision.unparsable {
        found.push(RuleFinding {
            line: line.to_owned(),
            command: line.to_owned(),
            rule: format!("unparsable: {why}"),
            rule_id: None,
            action: RuleAction::Deny,
        });
    }
    found
}

/// The rules of an authorized session: its grant's and its asset's labels'. A store that cannot
/// answer refuses the session (fail closed).
pub async fn rules_for(store: &Store, authorized: &Authorized) -> Result<RuleSet, String> {
    store
        .command_rules_for(authorized.grant, &authorized.asset.labels)
        .await
        .map_err(|err| format!("cannot read the command rules ({err})"))
}

/// Writes findings outside a started session's trail (an exec, before or as it starts).
pub async fn record(
    store: &Store,
    authorized: &Authorized,
    session: Option<uuid::Uuid>,
    found: &[RuleFinding],
) -> Result<(), String> {
    let actor = Actor::User {
        name: authorized.user.name.to_string(),
    };
    let session = session.map(|id| id.to_string()).unwrap_or_default();
    for finding in found {
        let events = finding.events(
            &session,
            authorized.user.name.as_str(),
            &authorized.account_ref(),
        );
        for event in events {
            store
                .record_event(&actor, &event)
                .await
                .map_err(|err| format!("cannot write the audit trail ({err})"))?;
        }
    }
    Ok(())
}

/// Where and how long a held line waits for an approver (`rules.approval_timeout`).
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// The asset's labels, which decide who may approve.
    pub labels: Vec<rampart_core::Label>,
    pub timeout: std::time::Duration,
}

/// A shell line an `approve` rule holds: the front asks an approver (`SessionTap::hold`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLine {
    pub line: String,
    /// The command the rule matched.
    pub command: String,
    /// `#3 approve prefix:systemctl`.
    pub rule: String,
    pub labels: Vec<rampart_core::Label>,
    pub timeout: std::time::Duration,
}

/// The rules of one interactive shell, applied at each Enter, and the line held for an
/// approver, if one is.
#[derive(Debug)]
pub struct ShellRules {
    rules: RuleSet,
    /// None: nothing can wait for an approver, so `approve` lines are refused.
    approvals: Option<ApprovalSettings>,
    /// The held line's Enter, kept back until the decision.
    held: Option<Vec<u8>>,
}

impl ShellRules {
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            approvals: None,
            held: None,
        }
    }

    /// Lines `approve` rules match wait for an approver with these settings.
    pub fn with_approvals(rules: RuleSet, approvals: ApprovalSettings) -> Self {
        Self {
            rules,
            approvals: Some(approvals),
            held: None,
        }
    }

    /// Whether a line is held for an approver.
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The held line was decided: what goes to the target now (approved: the kept Enter;
    /// otherwise what clears the line), with the command log told the same. `None`: nothing
    /// was held.
    pub fn release(&mut self, log: &mut CommandLog, approved: bool) -> Option<Vec<u8>> {
        let enter = self.held.take()?;
        if approved {
            log.input(&enter);
            Some(enter)
        } else {
            log.abandon_line();
            Some(CLEAR_LINE.to_vec())
        }
    }

    /// Feeds `data` (what the user typed) to the command log, checking the line at every Enter.
    /// The verdict's `forward` is `None` when everything passes unchanged. While a line is
    /// held, everything typed is discarded (the recording still has it).
    pub fn input(&mut self, log: &mut CommandLog, data: &[u8]) -> ClientVerdict {
        if self.held.is_some() {
            return ClientVerdict {
                forward: Some(Vec::new()),
                ..ClientVerdict::default()
            };
        }
        if self.rules.is_empty() {
            log.input(data);
            return ClientVerdict::default();
        }
        let mut verdict = ClientVerdict::default();
        let mut rest = data;
        let mut passed = 0usize;
        while let Some(enter) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            let (before, after) = rest.split_at(enter);
            log.input(before);
            let line = if log.in_full_screen() {
                None
            } else {
                // After an Enter in this chunk the screen still shows the line before it.
                let shown = match passed {
                    0 => log.line_now().unwrap_or_default(),
                    _ => String::new(),
                };
                let line = format!("{shown}{}", typed_text(before)).trim().to_owned();
                (!line.is_empty()).then_some(line)
            };
            if let Some(line) = line {
                let decision = self.rules.check(&line);
                verdict
                    .findings
                    .extend(findings(&line, &decision).into_iter().map(Finding::Rule));
                if let (Some(matched), Some(approvals)) = (decision.approval(), &self.approvals) {
                    // Everything before this Enter passes; the Enter waits for the decision;
                    // what follows it in the chunk is discarded, as is what comes meanwhile.
                    verdict.forward = Some(data.get(..passed + enter).unwrap_or_default().to_vec());
                    self.held = Some(after.get(..1).unwrap_or_default().to_vec());
                    verdict.hold = Some(HeldLine {
                        line,
                        command: matched.command.clone(),
                        rule: matched.rule_text.clone(),
                        labels: approvals.labels.clone(),
                        timeout: approvals.timeout,
                    });
                    return verdict;
                }
                if let Some(refusal) = decision.refusal() {
                    // Everything before this Enter passes, the Enter and what follows do not.
                    let mut forward = data.get(..passed + enter).unwrap_or_default().to_vec();
                    forward.extend_from_slice(CLEAR_LINE);
                    verdict.forward = Some(forward);
                    verdict.replies = format!("\r\n{refusal}\r\n").into_bytes();
                    log.abandon_line();
                    return verdict;
                }
            }
            // The Enter itself.
            log.input(after.get(..1).unwrap_or_default());
            rest = after.get(1..).unwrap_or_default();
            passed += enter + 1;
        }
        log.input(rest);
        verdict
    }
}

/// What a chunk of keystrokes adds to the line: its printable text, with backspaces applied
/// (escape sequences and other control keys add nothing).
fn typed_text(keys: &[u8]) -> String {
    let text = String::from_utf8_lossy(keys);
    let mut line = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x7f' | '\x08' => {
                line.pop();
            }
            '\x15' | '\x03' => line.clear(),
            // An escape sequence: skip to its final byte.
            '\x1b' => {
                for next in chars.by_ref() {
                    if next.is_ascii_alphabetic() || next == '~' {
                        break;
                    }
                }
            }
            c if c.is_control() => {}
            c => line.push(c),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::rules::{Matcher, Rule, RuleScope};

    fn shell() -> ShellRules {
        let rule = |position: i64, action, matcher: &str| Rule {
            id: uuid::Uuid::from_u128(position as u128),
            position,
            scope: RuleScope::Grant(uuid::Uuid::nil()),
            matcher: Matcher::parse(matcher).unwrap(),
            action,
        };
        ShellRules::new(RuleSet::new(vec![
            rule(1, RuleAction::Deny, "prefix:rm -rf"),
            rule(2, RuleAction::Warn, "list:privilege-escalation"),
        ]))
    }

    /// (typed, echoed) steps; returns what was forwarded and replied at each step.
    fn run(steps: &[(&str, &str)]) -> Vec<(Vec<u8>, String, Vec<RuleFinding>)> {
        let mut rules = shell();
        let mut log = CommandLog::new(80, 24);
        let mut seen = Vec::new();
        for (typed, echoed) in steps {
            let verdict = rules.input(&mut log, typed.as_bytes());
            let forwarded = verdict
                .forward
                .clone()
                .unwrap_or_else(|| typed.as_bytes().to_vec());
            let found = verdict
                .findings
                .into_iter()
                .map(|finding| match finding {
                    Finding::Rule(rule) => rule,
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            seen.push((
                forwarded,
                String::from_utf8(verdict.replies).unwrap(),
                found,
            ));
            log.output(echoed.as_bytes());
        }
        seen
    }

    #[test]
    fn a_denied_line_keeps_its_enter_and_is_cleared_and_explained() {
        let seen = run(&[
            ("", "$ "),
            ("ls; rm -rf /tmp/x", "ls; rm -rf /tmp/x"),
            ("\r", ""),
            ("echo ok\r", "echo ok\r\nok\r\n$ "),
        ]);
        let (forwarded, replied, found) = &seen[2];
        assert_eq!(forwarded, b"\x05\x15");
        assert_eq!(
            replied,
            "\r\nrampart: command refused by rule #1 deny prefix:rm -rf: rm -rf /tmp/x\r\n"
        );
        assert_eq!(found[0].line, "ls; rm -rf /tmp/x");
        assert_eq!(found[0].action, RuleAction::Deny);
        // The session goes on: the next line passes untouched.
        assert_eq!(seen[3].0, b"echo ok\r");
        assert!(seen[3].1.is_empty());
    }

    #[test]
    fn a_pasted_line_is_checked_before_its_echo_and_later_lines_are_dropped() {
        let seen = run(&[("", "$ "), ("echo a\rrm -rf /\recho b\r", "")]);
        let (forwarded, replied, _) = &seen[1];
        assert_eq!(forwarded, b"echo a\rrm -rf /\x05\x15");
        assert!(replied.contains("rm -rf /"));
    }

    #[test]
    fn a_line_after_an_enter_in_the_same_chunk_is_not_glued_to_the_stale_screen() {
        let seen = run(&[("", "$ "), ("x", "x"), ("\rrm -rf /\r", "")]);
        assert_eq!(seen[2].0, b"\rrm -rf /\x05\x15");
    }

    #[test]
    fn warned_lines_run_and_are_reported_and_full_screen_keys_are_not_lines() {
        let seen = run(&[
            ("", "$ "),
            ("sudo -v\r", "sudo -v\r\n"),
            ("", "\x1b[?1049h"),
            ("rm -rf /\r", ""),
        ]);
        assert_eq!(seen[1].0, b"sudo -v\r");
        assert_eq!(seen[1].2[0].rule, "#2 warn list:privilege-escalation");
        assert_eq!(seen[3].0, b"rm -rf /\r");
        assert!(seen[3].2.is_empty());
    }

    fn approving() -> ShellRules {
        let rule = |position: i64, action, matcher: &str| Rule {
            id: uuid::Uuid::from_u128(position as u128),
            position,
            scope: RuleScope::Grant(uuid::Uuid::nil()),
            matcher: Matcher::parse(matcher).unwrap(),
            action,
        };
        ShellRules::with_approvals(
            RuleSet::new(vec![
                rule(1, RuleAction::Deny, "prefix:rm -rf"),
                rule(2, RuleAction::Approve, "prefix:touch"),
            ]),
            ApprovalSettings {
                labels: vec![rampart_core::Label::parse("env=prod").unwrap()],
                timeout: std::time::Duration::from_secs(7),
            },
        )
    }

    #[test]
    fn an_approve_line_is_held_keys_meanwhile_are_discarded_and_approval_sends_the_enter() {
        let mut rules = approving();
        let mut log = CommandLog::new(80, 24);
        log.output(b"$ ");
        assert!(rules.input(&mut log, b"touch /tmp/m").forward.is_none());
        log.output(b"touch /tmp/m");
        // Enter (and what follows it in the chunk) is held back; the line is for an approver.
        let verdict = rules.input(&mut log, b"\rls\r");
        assert_eq!(verdict.forward, Some(Vec::new()));
        let held = verdict.hold.unwrap();
        assert_eq!(held.line, "touch /tmp/m");
        assert_eq!(held.command, "touch /tmp/m");
        assert_eq!(held.rule, "#2 approve prefix:touch");
        assert_eq!(held.timeout.as_secs(), 7);
        assert_eq!(held.labels[0].to_string(), "env=prod");
        assert!(rules.is_holding());
        // Keys typed while it waits go nowhere, a denied command's included.
        let meanwhile = rules.input(&mut log, b"rm -rf /\r");
        assert_eq!(meanwhile.forward, Some(Vec::new()));
        assert!(meanwhile.hold.is_none() && meanwhile.findings.is_empty());
        // Approved: the kept Enter goes to the target, once.
        assert_eq!(rules.release(&mut log, true), Some(b"\r".to_vec()));
        assert!(!rules.is_holding());
        assert_eq!(rules.release(&mut log, true), None);
        // And the session goes on as before, once the shell has run it and prompts again.
        log.output(b"\r\n$ ");
        assert!(rules.input(&mut log, b"echo ok\r").forward.is_none());
    }

    #[test]
    fn a_denied_or_timed_out_held_line_is_cleared_on_the_target() {
        let mut rules = approving();
        let mut log = CommandLog::new(80, 24);
        log.output(b"$ ");
        let verdict = rules.input(&mut log, b"echo a\rtouch /tmp/m\r");
        // The first line passes; the second is held.
        assert_eq!(verdict.forward, Some(b"echo a\rtouch /tmp/m".to_vec()));
        assert!(verdict.hold.is_some());
        assert_eq!(rules.release(&mut log, false), Some(b"\x05\x15".to_vec()));
        assert!(!rules.is_holding());
    }

    #[test]
    fn without_approval_settings_an_approve_line_is_refused_like_a_deny() {
        let rule = Rule {
            id: uuid::Uuid::from_u128(1),
            position: 1,
            scope: RuleScope::Grant(uuid::Uuid::nil()),
            matcher: Matcher::parse("prefix:touch").unwrap(),
            action: RuleAction::Approve,
        };
        let mut rules = ShellRules::new(RuleSet::new(vec![rule]));
        let mut log = CommandLog::new(80, 24);
        log.output(b"$ ");
        let verdict = rules.input(&mut log, b"touch /tmp/m\r");
        assert_eq!(verdict.forward, Some(b"touch /tmp/m\x05\x15".to_vec()));
        assert!(verdict.hold.is_none());
        assert!(
            String::from_utf8(verdict.replies)
                .unwrap()
                .contains("needs an approver")
        );
        assert!(!rules.is_holding());
    }
}
