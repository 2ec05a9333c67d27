//! The command log as an observer: a terminal emulator over an interactive shell that reads the
//! line under the cursor when Enter's newline is echoed (`rampart_audit::commands`); with
//! command rules, it checks the line when Enter is pressed (`crate::command_control`).

use crate::command_control::ShellRules;
use crate::observe::with_lock;
use crate::observe::{ClientVerdict, Control, Finding, Finished, Observer, ObserverFuture, ready};
use bytes::Bytes;
use rampart_audit::Stream;
use rampart_audit::commands::CommandLog;
use rampart_core::rules::RuleSet;
use std::sync::Mutex;

/// The commands of one interactive shell, and the command rules checked at each Enter.
#[derive(Debug)]
pub struct CommandObserver(Mutex<(CommandLog, ShellRules)>);

impl CommandObserver {
    pub fn new(cols: u32, rows: u32) -> Self {
        Self::with_rules(cols, rows, RuleSet::default())
    }

    /// With rules; lines `approve` rules match are refused (nothing waits for an approver).
    pub fn with_rules(cols: u32, rows: u32, rules: RuleSet) -> Self {
        Self::with_shell_rules(cols, rows, ShellRules::new(rules))
    }

    pub fn with_shell_rules(cols: u32, rows: u32, rules: ShellRules) -> Self {
        Self(Mutex::new((CommandLog::new(cols, rows), rules)))
    }
}

impl Observer for CommandObserver {
    fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
        ready(with_lock(&self.0, |(log, rules)| rules.input(log, data)))
    }

    fn release(&self, approved: bool) -> Result<Option<Vec<u8>>, String> {
        with_lock(&self.0, |(log, rules)| rules.release(log, approved))
    }

    fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
        ready(with_lock(&self.0, |(log, _)| {
            batch
                .iter()
                .flat_map(|(_, data)| log.output(data))
                .map(Finding::Command)
                .collect()
        }))
    }

    fn control<'a>(&'a self, event: Control<'a>) -> ObserverFuture<'a, ()> {
        ready(match event {
            Control::Resize { cols, rows } => with_lock(&self.0, |(log, _)| log.resize(cols, rows)),
            Control::Marker(_) => Ok(()),
        })
    }

    fn finish(&self, _exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
        ready(Ok(Finished::default()))
    }
}
