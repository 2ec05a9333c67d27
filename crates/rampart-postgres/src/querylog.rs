//! The query log: an [`Observer`] that turns the PostgreSQL messages of a session into one
//! record per statement: each simple `Query`, and each extended-protocol `Execute` (with the
//! statement text its `Parse` gave and the parameters its `Bind` gave).
//!
//! A record is complete when the target answers it (`CommandComplete` tag, error, empty or
//! suspended); it is then a [`Finding::Command`], which the session core writes to the command
//! log (a `command_run` event in the audit chain) and marks in the sealed recording, before the
//! answer is passed to the client (recorded before forwarded).
//!
//! The front hands this observer whole messages only (`wire::split_messages`).
//!
//! It is also where the session's statement control ([`StatementControl`]: a read-only grant,
//! command rules) is applied, to each `Query` and `Parse` text before it leaves Rampart. A
//! refused text is replaced by [`refusal_statement`], which makes the target answer it with
//! Rampart's error in its place in the stream: the answer keeps its order among pipelined
//! messages, the transaction state stays the target's own (an open transaction fails, as after
//! any error), and the session goes on. The log records the statement the client sent.
//!
//! INVARIANT: memory is bounded: statement texts and parameters are cut (the rest counted), at
//! most [`MAX_PREPARED`] named statements and portals and [`MAX_IN_FLIGHT`] unanswered records
//! are kept; beyond that the session ends (fail closed).

use crate::wire::{Message, cstring, error_summary, messages};
use bytes::BytesMut;
use bytes::{Buf, Bytes};
use rampart_audit::Stream;
use rampart_session::database::{self, MAX_PARAM, MAX_PARAMS, MAX_TEXT, QueryRecord, bounded};
use rampart_session::observe::{
    ClientVerdict, Control, Finding, Finished, Observer, ObserverFuture, ready,
};
use rampart_session::statement_control::StatementControl;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Named prepared statements and portals kept per session.
pub const MAX_PREPARED: usize = 4096;
/// Records waiting for their answer (pipelining).
pub const MAX_IN_FLIGHT: usize = 1024;

/// What the log remembers between messages.
#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    statements: HashMap<String, String>,
    portals: HashMap<String, (String, Vec<String>)>,
    in_flight: VecDeque<QueryRecord>,
    /// The text of the last `Parse`, for an error that answers it.
    last_parse: Option<String>,
}

/// The query log of one session.
#[derive(Debug)]
pub struct QueryLog {
    state: Mutex<State>,
    control: StatementControl,
}

impl Default for QueryLog {
    fn default() -> Self {
        Self::new(StatementControl::none(
            rampart_core::target::Protocol::Postgres,
        ))
    }
}

/// SQLSTATE of a refused statement: `insufficient_privilege`.
const REFUSED_SQLSTATE: &str = "42501";

/// The statement sent to the target in place of a refused one: an anonymous block that raises
/// `message` (made safe for a literal) with SQLSTATE 42501. It declares `params` parameters
/// (as `bytea`, which takes any value in either format), so the client's `Bind` still fits.
/// Without PL/pgSQL on the target it fails all the same: the refused text never runs.
pub fn refusal_statement(message: &str) -> String {
    let safe: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '\'' | '\\' | '$') || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    format!(
        "DO $rampart$BEGIN RAISE EXCEPTION USING ERRCODE = '{REFUSED_SQLSTATE}', \
         MESSAGE = '{safe}'; END$rampart$"
    )
}

/// The highest `$n` placeholder in `text` (0: none).
fn highest_placeholder(text: &str) -> usize {
    let mut highest = 0;
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = rest.get(at + 1..).unwrap_or("");
        let digits: String = rest
            .chars()
            .take_while(char::is_ascii_digit)
            .take(5)
            .collect();
        if let Ok(n) = digits.parse::<usize>() {
            highest = highest.max(n);
        }
    }
    highest
}

/// The `Parse` body of `name` with `text` in place of the refused statement, and the parameter
/// types all `bytea`: as many as the client declared or the statement used, at most 65535.
fn refused_parse(name: &str, original: &str, declared: usize, message: &str) -> Bytes {
    const BYTEA: u32 = 17;
    let count = declared.max(highest_placeholder(original)).min(65535);
    let mut body = BytesMut::new();
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&[0]);
    body.extend_from_slice(refusal_statement(message).as_bytes());
    body.extend_from_slice(&[0]);
    body.extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
    for _ in 0..count {
        body.extend_from_slice(&BYTEA.to_be_bytes());
    }
    body.freeze()
}

fn bad(what: &str) -> String {
    format!("malformed {what} message from the client")
}

impl State {
    fn record(
        &mut self,
        kind: &'static str,
        statement: String,
        params: Vec<String>,
    ) -> Result<(), String> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Err("too many statements waiting for the target's answer".into());
        }
        self.next_seq += 1;
        self.in_flight
            .push_back(QueryRecord::new(self.next_seq, kind, &statement, params));
        Ok(())
    }

    /// One client message; returns the message to send instead when the control refuses it.
    fn client(
        &mut self,
        message: Message,
        control: &StatementControl,
        findings: &mut Vec<Finding>,
    ) -> Result<Option<Message>, String> {
        let mut body = message.body;
        match message.tag {
            b'Q' => {
                let text = cstring(&mut body).map_err(|_| bad("Query"))?;
                self.record("query", bounded(&text, MAX_TEXT), Vec::new())?;
                let checked = control.check_sql(&text);
                findings.extend(checked.findings);
                if let Some(refusal) = checked.refusal {
                    let mut body = refusal_statement(&refusal).into_bytes();
                    body.push(0);
                    return Ok(Some(Message {
                        tag: b'Q',
                        body: Bytes::from(body),
                    }));
                }
            }
            b'P' => {
                let name = cstring(&mut body).map_err(|_| bad("Parse"))?;
                let full = cstring(&mut body).map_err(|_| bad("Parse"))?;
                let text = bounded(&full, MAX_TEXT);
                if !self.statements.contains_key(&name) && self.statements.len() >= MAX_PREPARED {
                    return Err("too many prepared statements".into());
                }
                self.last_parse = Some(text.clone());
                self.statements.insert(name.clone(), text);
                let checked = control.check_sql(&full);
                findings.extend(checked.findings);
                if let Some(refusal) = checked.refusal {
                    let declared = if body.remaining() >= 2 {
                        usize::from(body.get_u16())
                    } else {
                        0
                    };
                    return Ok(Some(Message {
                        tag: b'P',
                        body: refused_parse(&name, &full, declared, &refusal),
                    }));
                }
            }
            b'B' => {
                let portal = cstring(&mut body).map_err(|_| bad("Bind"))?;
                let statement = cstring(&mut body).map_err(|_| bad("Bind"))?;
                let params = bind_params(&mut body).ok_or_else(|| bad("Bind"))?;
                let text = self.statements.get(&statement).cloned().unwrap_or_default();
                if !self.portals.contains_key(&portal) && self.portals.len() >= MAX_PREPARED {
                    return Err("too many portals".into());
                }
                self.portals.insert(portal, (text, params));
            }
            b'E' => {
                let portal = cstring(&mut body).map_err(|_| bad("Execute"))?;
                let (text, params) = self.portals.get(&portal).cloned().unwrap_or_default();
                self.record("execute", text, params)?;
            }
            b'C' => {
                if body.remaining() < 1 {
                    return Err(bad("Close"));
                }
                let which = body.get_u8();
                let name = cstring(&mut body).map_err(|_| bad("Close"))?;
                if which == b'S' {
                    self.statements.remove(&name);
                } else {
                    self.portals.remove(&name);
                }
            }
            // Describe, Sync, Flush, Terminate, COPY data: nothing to record.
            _ => {}
        }
        Ok(None)
    }

    /// A target message; returns the records it completes.
    fn target(&mut self, message: &Message, done: &mut Vec<QueryRecord>) {
        match message.tag {
            b'C' => {
                let mut body = message.body.clone();
                let tag = cstring(&mut body).unwrap_or_default();
                self.answer(bounded(&tag, 256), None, done);
            }
            b'I' => self.answer("EMPTY".into(), None, done),
            b's' => self.answer("SUSPENDED".into(), None, done),
            b'E' => {
                let summary = bounded(&error_summary(&message.body), 1024);
                if self.in_flight.is_empty() {
                    // An error answering a Parse or Bind: the statement it was about.
                    self.next_seq += 1;
                    let statement = self.last_parse.clone().unwrap_or_default();
                    let mut record =
                        QueryRecord::new(self.next_seq, "parse", &statement, Vec::new());
                    record.error = Some(summary);
                    done.push(record);
                } else {
                    self.answer(String::new(), Some(summary), done);
                }
            }
            b'Z' => {
                // The end of a simple query (its tags gathered), or of an extended batch: what
                // is still open was skipped after an error.
                while let Some(mut open) = self.in_flight.pop_front() {
                    if open.kind == "execute" && open.status.is_empty() && open.error.is_none() {
                        open.error = Some("not run: an earlier message of its batch failed".into());
                    }
                    done.push(open);
                }
            }
            _ => {}
        }
    }

    fn answer(&mut self, status: String, error: Option<String>, done: &mut Vec<QueryRecord>) {
        let Some(front) = self.in_flight.front_mut() else {
            return;
        };
        if !status.is_empty() && front.status.len() < 64 {
            front.status.push(status);
        }
        if error.is_some() {
            front.error = error;
        }
        // An Execute gets one answer; a simple Query's ends at ReadyForQuery.
        if front.kind == "execute"
            && let Some(record) = self.in_flight.pop_front()
        {
            done.push(record);
        }
    }
}

/// The parameters of a Bind body (after portal and statement names), rendered and bounded.
fn bind_params(body: &mut Bytes) -> Option<Vec<String>> {
    if body.remaining() < 2 {
        return None;
    }
    let format_count = usize::from(body.get_u16());
    if body.remaining() < format_count * 2 {
        return None;
    }
    let formats: Vec<u16> = (0..format_count).map(|_| body.get_u16()).collect();
    if body.remaining() < 2 {
        return None;
    }
    let count = usize::from(body.get_u16());
    let mut params = Vec::new();
    for index in 0..count {
        if body.remaining() < 4 {
            return None;
        }
        let len = body.get_i32();
        let value = if len < 0 {
            "NULL".to_owned()
        } else {
            let len = usize::try_from(len).ok()?;
            if body.remaining() < len {
                return None;
            }
            let bytes = body.split_to(len);
            let binary = match formats.len() {
                0 => false,
                1 => formats.first() == Some(&1),
                _ => formats.get(index) == Some(&1),
            };
            if binary {
                format!("<binary, {len} bytes>")
            } else {
                bounded(&String::from_utf8_lossy(&bytes), MAX_PARAM)
            }
        };
        if params.len() < MAX_PARAMS {
            params.push(value);
        } else if params.len() == MAX_PARAMS {
            params.push(format!("… ({} more parameters)", count - MAX_PARAMS));
        }
    }
    Some(params)
}

impl QueryLog {
    /// The log of a session whose statements `control` checks.
    pub fn new(control: StatementControl) -> Self {
        Self {
            state: Mutex::new(State::default()),
            control,
        }
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, String> {
        self.state
            .lock()
            .map_err(|_| "the query log failed".to_owned())
    }
}

impl Observer for QueryLog {
    fn client<'a>(&'a self, data: &'a Bytes) -> ObserverFuture<'a, ClientVerdict> {
        let result = self.state().and_then(|mut state| {
            let mut verdict = ClientVerdict::default();
            verdict.forward = database::substitute(
                messages(data.clone()),
                self.control.is_active(),
                |message| state.client(message, &self.control, &mut verdict.findings),
                Message::encode,
            )?;
            Ok(verdict)
        });
        ready(result)
    }

    fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
        let result = self.state().map(|mut state| {
            let mut done = Vec::new();
            for (_, frames) in batch {
                for message in messages(frames.clone()) {
                    state.target(&message, &mut done);
                }
            }
            database::findings(done)
        });
        ready(result)
    }

    fn control<'a>(&'a self, _event: Control<'a>) -> ObserverFuture<'a, ()> {
        ready(Ok(()))
    }

    fn finish(&self, _exit_status: Option<i64>) -> ObserverFuture<'_, Finished> {
        // Statements never answered (the session ended first) are recorded as such.
        let findings = self
            .state()
            .map(|mut state| database::unanswered(state.in_flight.drain(..)))
            .unwrap_or_default();
        ready(Ok(Finished {
            findings,
            recording: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn frame(tag: u8, body: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        Message {
            tag,
            body: Bytes::copy_from_slice(body),
        }
        .encode(&mut out);
        out.freeze()
    }

    fn records(findings: Vec<Finding>) -> Vec<serde_json::Value> {
        findings
            .into_iter()
            .map(|f| match f {
                Finding::Command(text) => serde_json::from_str(&text).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn extended_protocol_records_text_params_and_tag() {
        let log = QueryLog::default();
        let mut bind = BytesMut::new();
        bind.put_slice(b"\0s1\0");
        bind.put_u16(0);
        bind.put_u16(2);
        bind.put_i32(2);
        bind.put_slice(b"42");
        bind.put_i32(-1);
        bind.put_u16(0);
        let mut client = BytesMut::new();
        client.put_slice(&frame(b'P', b"s1\0select $1, $2\0\0\0"));
        client.put_slice(&frame(b'B', &bind));
        client.put_slice(&frame(b'E', b"\0\0\0\0\0"));
        client.put_slice(&frame(b'S', b""));
        log.client(&client.freeze()).await.unwrap();
        let mut target = BytesMut::new();
        target.put_slice(&frame(b'1', b""));
        target.put_slice(&frame(b'C', b"SELECT 1\0"));
        target.put_slice(&frame(b'Z', b"I"));
        let found = records(
            log.target(&[(Stream::Output, target.freeze())])
                .await
                .unwrap(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["statement"], "select $1, $2");
        assert_eq!(found[0]["params"], serde_json::json!(["42", "NULL"]));
        assert_eq!(found[0]["status"], serde_json::json!(["SELECT 1"]));
    }

    #[tokio::test]
    async fn simple_query_error_is_recorded_and_text_is_bounded() {
        let log = QueryLog::default();
        let long = format!("select '{}'\0", "x".repeat(MAX_TEXT * 2));
        log.client(&frame(b'Q', long.as_bytes())).await.unwrap();
        let error = b"SERROR\0C42601\0Msyntax error\0\0";
        let mut target = BytesMut::new();
        target.put_slice(&frame(b'E', error));
        target.put_slice(&frame(b'Z', b"I"));
        let found = records(
            log.target(&[(Stream::Output, target.freeze())])
                .await
                .unwrap(),
        );
        assert_eq!(found[0]["error"], "ERROR 42601: syntax error");
        let text = found[0]["statement"].as_str().unwrap();
        assert!(
            text.len() < MAX_TEXT + 64 && text.contains("more bytes"),
            "{}",
            text.len()
        );
    }

    #[tokio::test]
    async fn malformed_bind_ends_the_session() {
        let log = QueryLog::default();
        assert!(log.client(&frame(b'B', b"\0\0\xff")).await.is_err());
    }
}
