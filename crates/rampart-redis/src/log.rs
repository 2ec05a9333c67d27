//! The Redis query log and the order of replies: an [`Observer`] that turns each command into
//! one record, completed by its reply and emitted (a [`Finding::Command`], JSON) before that
//! reply is passed to the client, and that keeps Rampart's own answers (`-ERR` for a refused
//! command) in their place among the target's replies when the client pipelines.
//!
//! The front hands it whole values only. Replies are matched to commands in order; pub/sub
//! messages and RESP3 pushes belong to no command; a subscription command is answered by its
//! first confirmation (the others for more channels belong to none). A reply that answers no
//! command ends the session (fail closed).
//!
//! INVARIANT: memory is bounded: at most [`MAX_IN_FLIGHT`] commands and [`MAX_QUEUED_BYTES`] of
//! their texts wait for replies (the front stops reading the client until the target catches
//! up); texts are bounded by `commands::render`.

use crate::commands::{self, DenyList, Verdict};
use crate::resp::{self, Limits};
use bytes::{Bytes, BytesMut};
use rampart_audit::Stream;
use rampart_core::target::Protocol;
use rampart_session::database::bounded;
use rampart_session::observe::{
    ClientVerdict, Control, Finding, Finished, Observer, ObserverFuture, ready,
};
use rampart_session::statement_control::StatementControl;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Commands waiting for their replies, at most.
pub const MAX_IN_FLIGHT: usize = 100_000;
/// Bytes of their texts, at most, before the client is read again.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// One command as recorded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommandRecord {
    pub seq: u64,
    /// `command`; `blocked` when Rampart refused it.
    pub kind: &'static str,
    pub statement: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CommandRecord {
    fn finding(&self) -> Finding {
        Finding::Command(serde_json::to_string(self).unwrap_or_default())
    }
}

/// Who answers a command.
#[derive(Debug)]
enum Reply {
    /// The target; its reply is passed on.
    Target,
    /// Rampart, with these bytes, in the command's place.
    Local(Bytes),
    /// The target (it got another command in its place), but the client gets these bytes.
    Replace(Bytes),
}

#[derive(Debug)]
struct Entry {
    /// `None`: not logged (the login's answer).
    record: Option<CommandRecord>,
    reply: Reply,
    /// A subscription command: answered by a confirmation of this kind.
    confirms: Option<&'static str>,
    /// `HELLO 2|3`: the protocol after a successful answer.
    hello: Option<bool>,
    /// `RESET`: out of subscribed mode and transactions.
    reset: bool,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    queue: VecDeque<Entry>,
    queued_bytes: usize,
    /// RESP3 (after `HELLO 3`): pub/sub messages are pushes.
    resp3: bool,
    /// RESP2 subscribed mode: arrays of `message` are pub/sub messages.
    subscribed: bool,
    in_multi: bool,
    /// A command of the open transaction was refused: its `EXEC` becomes `DISCARD`.
    doomed: bool,
    /// What goes to the client after the target's last batch, in order.
    out: BytesMut,
}

/// The state the observer and the front share.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    deny: DenyList,
    /// The session's read-only grant and command rules (`redis:flushall`, `redis:write`).
    control: StatementControl,
    /// Rampart's answers are waiting at the front of the queue.
    pub local_ready: Notify,
    /// Replies were matched: the queue shrank.
    pub drained: Notify,
}

fn locked<R>(shared: &Shared, f: impl FnOnce(&mut State) -> R) -> Result<R, String> {
    let mut state = shared
        .state
        .lock()
        .map_err(|_| "the query log failed (poisoned lock)".to_owned())?;
    Ok(f(&mut state))
}

impl Shared {
    pub fn new(deny: DenyList, resp3: bool) -> Arc<Self> {
        Self::with_control(deny, StatementControl::none(Protocol::Redis), resp3)
    }

    /// The shared state of a session whose commands `control` checks too (after the node's
    /// deny-list).
    pub fn with_control(deny: DenyList, control: StatementControl, resp3: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                resp3,
                ..State::default()
            }),
            deny,
            control,
            local_ready: Notify::new(),
            drained: Notify::new(),
        })
    }

    /// The next target reply is the login's answer (not logged).
    pub fn expect_greeting(&self) -> Result<(), String> {
        locked(self, |state| {
            state.queue.push_back(Entry {
                record: None,
                reply: Reply::Target,
                confirms: None,
                hello: None,
                reset: false,
            });
        })
    }

    /// Whether the client may be read again (the queue is below its bounds).
    pub fn has_room(&self) -> Result<bool, String> {
        locked(self, |state| {
            state.queue.len() < MAX_IN_FLIGHT && state.queued_bytes < MAX_QUEUED_BYTES
        })
    }

    /// What goes to the client after the batch the observer just saw.
    pub fn take_out(&self) -> Result<Bytes, String> {
        locked(self, |state| state.out.split().freeze())
    }

    /// Rampart's answers at the front of the queue (no target reply before them).
    pub fn take_local(&self) -> Result<Bytes, String> {
        locked(self, |state| {
            drain_local(state);
            state.out.split().freeze()
        })
    }

    fn client(&self, data: &Bytes) -> Result<ClientVerdict, String> {
        let frames = resp::frames(data, Limits::CLIENT).map_err(|e| e.0)?;
        locked(self, |state| {
            let mut verdict = ClientVerdict::default();
            let mut forward = Vec::with_capacity(data.len());
            let mut rewritten = false;
            let mut any_local = false;
            for frame in frames {
                let args = resp::command_args(&frame).map_err(|e| e.0)?;
                let name = commands::upper(args.first().map(|a| &a[..]).unwrap_or_default());
                state.next_seq += 1;
                let mut record = CommandRecord {
                    seq: state.next_seq,
                    kind: "command",
                    statement: commands::render(&args),
                    status: Vec::new(),
                    error: None,
                };
                let refusal = match commands::verdict(&args, &self.deny) {
                    Verdict::Pass => None,
                    Verdict::Denied(entry) => Some(format!(
                        "ERR Rampart refused {entry}: not allowed by the node's Redis rules"
                    )),
                    Verdict::Unsupported(why) => Some(format!("ERR Rampart: {why}")),
                };
                let refusal = refusal.or_else(|| {
                    let words: Vec<String> = args
                        .iter()
                        .map(|arg| String::from_utf8_lossy(arg).into_owned())
                        .collect();
                    let checked = self.control.check_redis(&words);
                    verdict.findings.extend(checked.findings);
                    checked.refusal.map(|why| format!("ERR {why}"))
                });
                let mut entry = Entry {
                    record: None,
                    reply: Reply::Target,
                    confirms: commands::subscription(&args),
                    hello: None,
                    reset: name == "RESET",
                };
                if let Some(line) = refusal {
                    if state.in_multi {
                        state.doomed = true;
                    }
                    record.kind = "blocked";
                    record.error = Some(line.clone());
                    verdict.findings.push(record.finding());
                    let (code, text) = line.split_once(' ').unwrap_or(("ERR", &line));
                    entry.reply = Reply::Local(Bytes::from(resp::error(code, text)));
                    entry.confirms = None;
                    rewritten = true;
                    any_local = true;
                } else {
                    match name.as_str() {
                        "MULTI" => state.in_multi = true,
                        "EXEC" if state.doomed => {
                            // The transaction lost a refused command: nothing of it runs.
                            forward.extend_from_slice(&resp::encode_command(&[b"DISCARD"]));
                            entry.reply = Reply::Replace(Bytes::from(resp::error(
                                "EXECABORT",
                                "Transaction discarded because Rampart refused a command in it.",
                            )));
                            state.in_multi = false;
                            state.doomed = false;
                            rewritten = true;
                        }
                        "EXEC" | "DISCARD" => {
                            state.in_multi = false;
                            state.doomed = false;
                        }
                        "HELLO" => {
                            entry.hello = args.get(1).map(|v| &v[..] == b"3").or(Some(state.resp3));
                        }
                        _ => {}
                    }
                    if !matches!(entry.reply, Reply::Replace(_)) {
                        forward.extend_from_slice(&frame);
                    }
                    state.queued_bytes += record.statement.len();
                    entry.record = Some(record);
                }
                state.queue.push_back(entry);
            }
            if rewritten {
                verdict.forward = Some(forward);
            }
            if any_local {
                self.local_ready.notify_one();
            }
            Ok(verdict)
        })?
    }

    fn target(&self, batch: &[(Stream, Bytes)]) -> Result<Vec<Finding>, String> {
        let mut findings = Vec::new();
        for (_, bytes) in batch {
            let frames = resp::frames(bytes, Limits::TARGET).map_err(|e| e.0)?;
            locked(self, |state| {
                for frame in frames {
                    state.reply(frame, &mut findings)?;
                }
                Ok::<(), String>(())
            })??;
        }
        self.drained.notify_one();
        Ok(findings)
    }

    /// Commands never answered (the session ended), each recorded as such.
    fn unanswered(&self) -> Result<Vec<Finding>, String> {
        locked(self, |state| {
            state
                .queue
                .drain(..)
                .filter_map(|entry| entry.record)
                .map(|mut record| {
                    record.error = Some("no reply: the session ended".into());
                    record.finding()
                })
                .collect()
        })
    }
}

const CONFIRMATIONS: [&str; 6] = [
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
];

/// Moves Rampart's answers at the front of the queue into `out`.
fn drain_local(state: &mut State) {
    while let Some(Entry {
        reply: Reply::Local(bytes),
        ..
    }) = state.queue.front()
    {
        state.out.extend_from_slice(bytes);
        state.queue.pop_front();
    }
}

impl State {
    fn reply(&mut self, frame: Bytes, findings: &mut Vec<Finding>) -> Result<(), String> {
        drain_local(self);
        let push = frame.first() == Some(&b'>');
        let word = resp::first_word(&frame);
        let confirmation = word
            .as_deref()
            .and_then(|w| CONFIRMATIONS.iter().find(|c| **c == w).copied());
        let front_confirms = self.queue.front().and_then(|e| e.confirms);
        if let Some(kind) = confirmation
            && (push || self.subscribed || front_confirms.is_some())
        {
            if !self.resp3 {
                self.subscribed = resp::last_integer(&frame).is_some_and(|n| n > 0);
            }
            if front_confirms == Some(kind) {
                self.complete(&frame, findings);
            } else {
                self.out.extend_from_slice(&frame);
            }
            drain_local(self);
            return Ok(());
        }
        let message = matches!(word.as_deref(), Some("message" | "pmessage" | "smessage"));
        if push || (!self.resp3 && self.subscribed && message) {
            // A pub/sub message or another push: no command's reply.
            self.out.extend_from_slice(&frame);
            return Ok(());
        }
        if self.queue.is_empty() {
            return Err("the target sent a reply to no command".into());
        }
        self.complete(&frame, findings);
        drain_local(self);
        Ok(())
    }

    /// The front command is answered by `frame`.
    fn complete(&mut self, frame: &Bytes, findings: &mut Vec<Finding>) {
        let Some(entry) = self.queue.pop_front() else {
            return;
        };
        let summary = resp::summary(frame);
        if let Some(hello) = entry.hello
            && summary.is_ok()
        {
            self.resp3 = hello;
        }
        if entry.reset {
            self.subscribed = false;
            self.in_multi = false;
            self.doomed = false;
        }
        let passed = match &entry.reply {
            Reply::Replace(bytes) => bytes.clone(),
            _ => frame.clone(),
        };
        if let Some(mut record) = entry.record {
            self.queued_bytes = self.queued_bytes.saturating_sub(record.statement.len());
            match (&entry.reply, summary) {
                (Reply::Replace(bytes), _) => {
                    record.error = resp::summary(bytes).err();
                }
                (_, Ok(status)) if !status.is_empty() => record.status.push(status),
                (_, Ok(_)) => {}
                (_, Err(error)) => record.error = Some(bounded(&error, 1024)),
            }
            findings.push(record.finding());
        }
        self.out.extend_from_slice(&passed);
    }
}

/// The observer the session core runs; the front keeps the [`Shared`] half.
#[derive(Debug)]
pub struct CommandLog(pub Arc<Shared>);

impl Observer for CommandLog {
    fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
        ready(self.0.client(data))
    }

    fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
        ready(self.0.target(batch))
    }

    fn control<'a>(&'a self, _event: Control<'a>) -> ObserverFuture<'a, ()> {
        ready(Ok(()))
    }

    fn finish(&self, _exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
        ready(self.0.unanswered().map(|findings| Finished {
            findings,
            recording: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        resp::encode_command(&args)
    }

    fn records(findings: &[Finding]) -> Vec<serde_json::Value> {
        findings
            .iter()
            .map(|f| match f {
                Finding::Command(json) => serde_json::from_str(json).unwrap(),
                other => panic!("not a command record: {other:?}"),
            })
            .collect()
    }

    fn replies(shared: &Shared, bytes: &[u8]) -> (Vec<serde_json::Value>, Bytes) {
        let found = shared
            .target(&[(Stream::Output, Bytes::copy_from_slice(bytes))])
            .unwrap();
        (records(&found), shared.take_out().unwrap())
    }

    #[test]
    fn a_pipeline_with_a_refused_command_keeps_the_order_of_replies() {
        let shared = Shared::new(DenyList::parse("FLUSHALL").unwrap(), false);
        let mut pipeline = cmd(&["SET", "k", "1"]);
        pipeline.extend(cmd(&["FLUSHALL"]));
        pipeline.extend(cmd(&["GET", "k"]));
        let verdict = shared.client(&Bytes::from(pipeline)).unwrap();
        // FLUSHALL is not passed on, and is on record at once.
        let mut forwarded = cmd(&["SET", "k", "1"]);
        forwarded.extend(cmd(&["GET", "k"]));
        assert_eq!(verdict.forward.unwrap(), forwarded);
        let blocked = records(&verdict.findings);
        assert_eq!(blocked[0]["kind"], "blocked");
        assert_eq!(blocked[0]["statement"], "FLUSHALL");
        // Nothing for the client before SET's reply.
        assert!(shared.take_local().unwrap().is_empty());
        let (done, out) = replies(&shared, b"+OK\r\n$1\r\n1\r\n");
        assert_eq!(
            &out[..],
            &b"+OK\r\n-ERR Rampart refused FLUSHALL: not allowed by the node's Redis rules\r\n$1\r\n1\r\n"[..]
        );
        assert_eq!(done[0]["statement"], "SET k 1");
        assert_eq!(done[0]["status"][0], "OK");
        assert_eq!(done[1]["statement"], "GET k");
        assert_eq!(done[1]["status"][0], "1 bytes");
        // A refused command with nothing ahead of it is answered at once.
        shared.client(&Bytes::from(cmd(&["flushall"]))).unwrap();
        assert!(
            shared
                .take_local()
                .unwrap()
                .starts_with(b"-ERR Rampart refused")
        );
    }

    #[test]
    fn a_transaction_with_a_refused_command_runs_nothing() {
        let shared = Shared::new(DenyList::parse("FLUSHALL").unwrap(), false);
        let mut tx = cmd(&["MULTI"]);
        tx.extend(cmd(&["SET", "k", "1"]));
        tx.extend(cmd(&["FLUSHALL"]));
        tx.extend(cmd(&["EXEC"]));
        let verdict = shared.client(&Bytes::from(tx)).unwrap();
        let mut forwarded = cmd(&["MULTI"]);
        forwarded.extend(cmd(&["SET", "k", "1"]));
        forwarded.extend(cmd(&["DISCARD"]));
        assert_eq!(verdict.forward.unwrap(), forwarded);
        let (done, out) = replies(&shared, b"+OK\r\n+QUEUED\r\n+OK\r\n");
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("+OK\r\n+QUEUED\r\n-ERR Rampart refused"),
            "{out}"
        );
        assert!(
            out.ends_with(
                "-EXECABORT Transaction discarded because Rampart refused a command in it.\r\n"
            ),
            "{out}"
        );
        assert_eq!(done[2]["statement"], "EXEC");
        assert!(done[2]["error"].as_str().unwrap().starts_with("EXECABORT"));
    }

    #[test]
    fn pubsub_messages_and_extra_confirmations_answer_no_command() {
        let shared = Shared::new(DenyList::default(), false);
        shared
            .client(&Bytes::from(cmd(&["SUBSCRIBE", "a", "b"])))
            .unwrap();
        let (done, _) = replies(
            &shared,
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n",
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0]["statement"], "SUBSCRIBE a b");
        shared.client(&Bytes::from(cmd(&["PING"]))).unwrap();
        let (done, _) = replies(&shared, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        assert_eq!(done[0]["statement"], "PING");
        // A reply to nothing ends the session.
        assert!(
            shared
                .target(&[(Stream::Output, Bytes::from_static(b"+OK\r\n"))])
                .is_err()
        );
    }

    #[test]
    fn resp3_pushes_are_not_replies() {
        let shared = Shared::new(DenyList::default(), true);
        shared
            .client(&Bytes::from(cmd(&["SUBSCRIBE", "a"])))
            .unwrap();
        shared
            .client(&Bytes::from(cmd(&["LRANGE", "l", "0", "-1"])))
            .unwrap();
        let (done, _) = replies(
            &shared,
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n*1\r\n$7\r\nmessage\r\n",
        );
        assert_eq!(done.len(), 2);
        assert_eq!(done[1]["status"][0], "1 elements");
    }

    #[test]
    fn unanswered_commands_are_recorded_when_the_session_ends() {
        let shared = Shared::new(DenyList::default(), false);
        shared
            .client(&Bytes::from(cmd(&["BLPOP", "q", "0"])))
            .unwrap();
        let left = records(&shared.unanswered().unwrap());
        assert_eq!(left[0]["error"], "no reply: the session ended");
    }
}
