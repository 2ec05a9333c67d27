//! The query log and the command-phase protocol: an [`Observer`] that knows every command a
//! client may send and the shape of the target's answer to each, and turns each statement
//! (`COM_QUERY`, `COM_STMT_EXECUTE` with its bound parameters, `COM_INIT_DB`) into one
//! [`QueryRecord`]: status per result (`OK, 1 row affected`, `3 rows`), rows, duration, error.
//!
//! A record is complete with the last packet of its answer; it is then a
//! [`Finding::Command`], which the session core writes to the command log (a `command_run`
//! event in the audit chain) and marks in the sealed recording, before that packet is passed to
//! the client (recorded before forwarded).
//!
//! Anything else ends the session (fail closed, never relayed blind): a command outside the
//! known set (`COM_CHANGE_USER`, replication, `COM_STMT_SEND_LONG_DATA`, bulk execution), a
//! cursor, a packet outside a command, `LOAD DATA LOCAL`, an answer no command asked for, a
//! malformed `COM_STMT_EXECUTE`.
//!
//! It also applies the session's statement control ([`StatementControl`]: a read-only grant,
//! command rules) to each `COM_QUERY` and `COM_STMT_PREPARE` text before it leaves Rampart. A
//! refused text is replaced by [`refusal_statement`] (`SIGNAL SQLSTATE '42000'` with Rampart's
//! message), so the target answers it with an ERR packet in its place among the answers and
//! the session goes on; the log records the statement the client sent.
//!
//! INVARIANT: memory is bounded: statement texts and parameters are cut (the rest counted), at
//! most [`MAX_PREPARED`] prepared statements and [`MAX_IN_FLIGHT`] unanswered commands.

use crate::wire::{
    Packet, STATUS_MORE_RESULTS, eof_status, error_summary, lenenc_bytes, lenenc_int, ok_summary,
    packets,
};
use bytes::{Buf, Bytes};
use rampart_audit::Stream;
use rampart_session::database::{self, MAX_PARAM, MAX_PARAMS, MAX_TEXT, QueryRecord, bounded};
use rampart_session::observe::{
    ClientVerdict, Control, Finding, Finished, Observer, ObserverFuture, ready,
};
use rampart_session::statement_control::StatementControl;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// Prepared statements kept per session.
pub const MAX_PREPARED: usize = 4096;
/// Commands waiting for the target's answer.
pub const MAX_IN_FLIGHT: usize = 1024;

pub const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
const COM_QUERY: u8 = 0x03;
const COM_FIELD_LIST: u8 = 0x04;
const COM_STATISTICS: u8 = 0x09;
const COM_PING: u8 = 0x0e;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_RESET: u8 = 0x1a;
const COM_SET_OPTION: u8 = 0x1b;
const COM_RESET_CONNECTION: u8 = 0x1f;

/// The name of a command Rampart does not relay, for the error line.
fn command_name(command: u8) -> String {
    let name = match command {
        0x00 => "COM_SLEEP",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x0a => "COM_PROCESS_INFO",
        0x0c => "COM_PROCESS_KILL",
        0x0d => "COM_DEBUG",
        0x11 => "COM_CHANGE_USER",
        0x12 => "COM_BINLOG_DUMP",
        0x15 => "COM_REGISTER_SLAVE",
        0x18 => "COM_STMT_SEND_LONG_DATA",
        0x1c => "COM_STMT_FETCH",
        0x1e => "COM_BINLOG_DUMP_GTID",
        0xfa => "COM_STMT_BULK_EXECUTE",
        _ => "",
    };
    if name.is_empty() {
        format!("command 0x{command:02x}")
    } else {
        name.to_owned()
    }
}

/// The shape of the answer a command waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// One packet (OK, ERR, EOF or a statistics line).
    One,
    /// Result sets (text or binary rows): `Start` is the first packet of one.
    Start,
    /// Column definitions and their EOF still to come, then rows.
    Columns(u64),
    Rows,
    /// `COM_STMT_PREPARE`: its OK, then this many definitions and EOFs.
    Prepare,
    Definitions(u64),
    /// Column definitions until an EOF (`COM_FIELD_LIST`).
    UntilEof,
}

#[derive(Debug)]
struct Pending {
    expect: Expect,
    started: Instant,
    record: Option<QueryRecord>,
    /// The text of a statement being prepared.
    preparing: Option<String>,
    rows: u64,
}

#[derive(Debug)]
struct Prepared {
    text: String,
    params: usize,
    /// The parameter types the last execute bound (kept for executes that do not rebind).
    types: Vec<u16>,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    prepared: HashMap<u32, Prepared>,
    in_flight: VecDeque<Pending>,
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
            rampart_core::target::Protocol::Mysql,
        ))
    }
}

/// The statement sent to the target in place of a refused one: it fails with `message` (made
/// safe for a literal) as an ERR packet, SQLSTATE 42000. A server that cannot run it fails it
/// all the same: the refused text never runs.
pub fn refusal_statement(message: &str) -> String {
    let safe: String = message
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() && !matches!(c, '\'' | '\\' | '"') {
                c
            } else {
                '?'
            }
        })
        .collect();
    format!("SIGNAL SQLSTATE '42000' SET MESSAGE_TEXT = '{safe}'")
}

fn text_of(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_TEXT + 4).unwrap_or(bytes);
    let text = bounded(&String::from_utf8_lossy(cut), MAX_TEXT);
    if bytes.len() > cut.len() && !text.ends_with("more bytes)") {
        format!("{text}… ({} more bytes)", bytes.len() - cut.len())
    } else {
        text
    }
}

impl State {
    fn expect(
        &mut self,
        expect: Expect,
        record: Option<QueryRecord>,
        preparing: Option<String>,
    ) -> Result<(), String> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Err("too many commands waiting for the target's answer".into());
        }
        self.in_flight.push_back(Pending {
            expect,
            started: Instant::now(),
            record,
            preparing,
            rows: 0,
        });
        Ok(())
    }

    fn record(&mut self, kind: &'static str, statement: &str, params: Vec<String>) -> QueryRecord {
        self.next_seq += 1;
        QueryRecord::new(self.next_seq, kind, statement, params)
    }

    /// One client packet; returns the packet to send instead when the control refuses it.
    fn client(
        &mut self,
        packet: Packet,
        control: &StatementControl,
        findings: &mut Vec<Finding>,
    ) -> Result<Option<Packet>, String> {
        let seq = packet.seq;
        if packet.seq != 0 {
            return Err(format!(
                "the client sent a packet outside a command (sequence {})",
                packet.seq
            ));
        }
        let mut body = packet.payload;
        if !body.has_remaining() {
            return Err("the client sent an empty command".into());
        }
        let command = body.get_u8();
        match command {
            COM_QUERY => {
                let record = self.record("query", &text_of(&body), Vec::new());
                self.expect(Expect::Start, Some(record), None)?;
                return Ok(refused(command, seq, &body, control, findings));
            }
            COM_INIT_DB => {
                let record = self.record("init_db", &format!("USE {}", text_of(&body)), Vec::new());
                self.expect(Expect::One, Some(record), None)?;
            }
            COM_STMT_PREPARE => {
                self.expect(Expect::Prepare, None, Some(text_of(&body)))?;
                return Ok(refused(command, seq, &body, control, findings));
            }
            COM_STMT_EXECUTE => {
                let record = self.execute(&mut body)?;
                self.expect(Expect::Start, Some(record), None)?;
            }
            COM_STMT_CLOSE => {
                if body.remaining() < 4 {
                    return Err("malformed COM_STMT_CLOSE from the client".into());
                }
                self.prepared.remove(&body.get_u32_le());
            }
            COM_RESET_CONNECTION => {
                self.prepared.clear();
                self.expect(Expect::One, None, None)?;
            }
            COM_PING | COM_STATISTICS | COM_STMT_RESET | COM_SET_OPTION => {
                self.expect(Expect::One, None, None)?;
            }
            COM_FIELD_LIST => self.expect(Expect::UntilEof, None, None)?,
            COM_QUIT => {}
            other => {
                return Err(format!(
                    "Rampart does not relay {} (not supported)",
                    command_name(other)
                ));
            }
        }
        Ok(None)
    }

    /// A `COM_STMT_EXECUTE` body (after the command byte): its record with the parameters.
    fn execute(&mut self, body: &mut Bytes) -> Result<QueryRecord, String> {
        let bad = || "malformed COM_STMT_EXECUTE from the client".to_owned();
        if body.remaining() < 9 {
            return Err(bad());
        }
        let id = body.get_u32_le();
        let flags = body.get_u8();
        let _iterations = body.get_u32_le();
        if flags != 0 {
            return Err(
                "Rampart does not relay COM_STMT_EXECUTE with a cursor (not supported)".into(),
            );
        }
        let Some(prepared) = self.prepared.get_mut(&id) else {
            // The target answers with an error; recorded as such.
            return Ok(self.record("execute", &format!("<unknown statement {id}>"), Vec::new()));
        };
        let count = prepared.params;
        let mut params = Vec::new();
        if count > 0 {
            let bitmap_len = count.div_ceil(8);
            if body.remaining() < bitmap_len + 1 {
                return Err(bad());
            }
            let bitmap = body.split_to(bitmap_len);
            let rebound = body.get_u8();
            if rebound == 1 {
                if body.remaining() < count * 2 {
                    return Err(bad());
                }
                prepared.types = (0..count).map(|_| body.get_u16_le()).collect();
            }
            if prepared.types.len() != count {
                return Err(bad());
            }
            for (index, kind) in prepared.types.iter().enumerate() {
                let null = bitmap
                    .get(index / 8)
                    .is_some_and(|b| b & (1 << (index % 8)) != 0);
                let value = if null {
                    "NULL".to_owned()
                } else {
                    binary_value(body, *kind).ok_or_else(bad)?
                };
                if params.len() < MAX_PARAMS {
                    params.push(value);
                } else if params.len() == MAX_PARAMS {
                    params.push(format!("… ({} more parameters)", count - MAX_PARAMS));
                }
            }
        }
        let text = prepared.text.clone();
        Ok(self.record("execute", &text, params))
    }

    /// A target packet; completed records go to `done`.
    fn target(&mut self, packet: &Packet, done: &mut Vec<QueryRecord>) -> Result<(), String> {
        let Some(pending) = self.in_flight.front_mut() else {
            if packet.is_err() {
                // The target ends the connection with a reason (shutdown, killed): passed on.
                return Ok(());
            }
            return Err("the target sent a packet no command asked for".into());
        };
        let mut finished = false;
        let mut error = None;
        let mut status = None;
        match pending.expect {
            Expect::One => {
                if packet.is_err() {
                    error = Some(error_summary(&packet.payload));
                } else if let Some((summary, _)) = ok_summary(&packet.payload) {
                    status = Some(summary);
                }
                finished = true;
            }
            Expect::Start => match packet.first() {
                Some(0xFF) => {
                    error = Some(error_summary(&packet.payload));
                    finished = true;
                }
                Some(0x00) => {
                    let (summary, flags) =
                        ok_summary(&packet.payload).ok_or("the target sent a malformed OK")?;
                    status = Some(summary);
                    finished = flags & STATUS_MORE_RESULTS == 0;
                }
                Some(0xFB) => {
                    return Err(
                        "Rampart does not relay LOAD DATA LOCAL INFILE (not supported)".into(),
                    );
                }
                _ => {
                    let columns = lenenc_int(&mut packet.payload.clone())
                        .filter(|n| *n > 0 && *n <= 4096)
                        .ok_or("the target sent a malformed result set")?;
                    pending.rows = 0;
                    pending.expect = Expect::Columns(columns + 1);
                }
            },
            Expect::Columns(left) => {
                pending.expect = if left > 1 {
                    Expect::Columns(left - 1)
                } else {
                    Expect::Rows
                };
            }
            Expect::Rows => {
                if packet.is_err() {
                    error = Some(error_summary(&packet.payload));
                    finished = true;
                } else if packet.is_eof() {
                    let rows = pending.rows;
                    status = Some(format!("{rows} {}", if rows == 1 { "row" } else { "rows" }));
                    if let Some(record) = &mut pending.record {
                        record.rows = Some(record.rows.unwrap_or(0) + rows);
                    }
                    if eof_status(&packet.payload) & STATUS_MORE_RESULTS != 0 {
                        pending.expect = Expect::Start;
                    } else {
                        finished = true;
                    }
                } else {
                    pending.rows += 1;
                }
            }
            Expect::Prepare => {
                if packet.is_err() {
                    error = Some(error_summary(&packet.payload));
                    finished = true;
                } else {
                    let mut body = packet.payload.clone();
                    if body.remaining() < 9 || body.get_u8() != 0 {
                        return Err("the target sent a malformed prepare answer".into());
                    }
                    let id = body.get_u32_le();
                    let columns = u64::from(body.get_u16_le());
                    let params = body.get_u16_le();
                    if !self.prepared.contains_key(&id) && self.prepared.len() >= MAX_PREPARED {
                        return Err("too many prepared statements".into());
                    }
                    let text = pending.preparing.take().unwrap_or_default();
                    self.prepared.insert(
                        id,
                        Prepared {
                            text,
                            params: usize::from(params),
                            types: Vec::new(),
                        },
                    );
                    let params = u64::from(params);
                    let left = params + u64::from(params > 0) + columns + u64::from(columns > 0);
                    if left == 0 {
                        finished = true;
                    } else {
                        pending.expect = Expect::Definitions(left);
                    }
                }
            }
            Expect::Definitions(left) => {
                if left > 1 {
                    pending.expect = Expect::Definitions(left - 1);
                } else {
                    finished = true;
                }
            }
            Expect::UntilEof => finished = packet.is_eof() || packet.is_err(),
        }
        if let Some(record) = &mut pending.record {
            if let Some(status) = status
                && record.status.len() < 64
            {
                record.status.push(status);
            }
            if error.is_some() {
                record.error = error;
            }
        } else if let (Some(text), Some(error)) = (&pending.preparing, error) {
            // A statement the target refused to prepare is recorded with its error.
            let text = text.clone();
            let mut record = self.record("prepare", &text, Vec::new());
            record.error = Some(error);
            done.push(record);
        }
        if finished
            && let Some(pending) = self.in_flight.pop_front()
            && let Some(mut record) = pending.record
        {
            record.duration_ms =
                Some(u64::try_from(pending.started.elapsed().as_millis()).unwrap_or(u64::MAX));
            done.push(record);
        }
        Ok(())
    }
}

/// One binary-protocol parameter value of type `kind`, rendered and bounded.
fn binary_value(body: &mut Bytes, kind: u16) -> Option<String> {
    let unsigned = kind & 0x8000 != 0;
    let fixed = |body: &mut Bytes, n: usize| (body.remaining() >= n).then(|| body.split_to(n));
    Some(match kind & 0xFF {
        0x06 => "NULL".to_owned(),
        0x01 => {
            let b = fixed(body, 1)?;
            let v = *b.first()?;
            if unsigned {
                v.to_string()
            } else {
                (v as i8).to_string()
            }
        }
        0x02 | 0x0d => {
            let mut b = fixed(body, 2)?;
            let v = b.get_u16_le();
            if unsigned {
                v.to_string()
            } else {
                (v as i16).to_string()
            }
        }
        0x03 | 0x09 => {
            let mut b = fixed(body, 4)?;
            let v = b.get_u32_le();
            if unsigned {
                v.to_string()
            } else {
                (v as i32).to_string()
            }
        }
        0x08 => {
            let mut b = fixed(body, 8)?;
            let v = b.get_u64_le();
            if unsigned {
                v.to_string()
            } else {
                (v as i64).to_string()
            }
        }
        0x04 => fixed(body, 4)?.get_f32_le().to_string(),
        0x05 => fixed(body, 8)?.get_f64_le().to_string(),
        0x07 | 0x0a | 0x0c | 0x0b => {
            let len = usize::from(*fixed(body, 1)?.first()?);
            let b = fixed(body, len)?;
            temporal(kind & 0xFF, &b)
        }
        0x00 | 0x0f | 0x10 | 0xf5..=0xff => {
            let b = lenenc_bytes(body)?;
            bounded(&String::from_utf8_lossy(&b), MAX_PARAM)
        }
        _ => return None,
    })
}

/// A binary date, datetime or time value.
fn temporal(kind: u16, b: &Bytes) -> String {
    let mut b = b.clone();
    if kind == 0x0b {
        if b.remaining() < 8 {
            return "00:00:00".to_owned();
        }
        let negative = b.get_u8() == 1;
        let days = b.get_u32_le();
        let (h, m, s) = (b.get_u8(), b.get_u8(), b.get_u8());
        let hours = u64::from(days) * 24 + u64::from(h);
        return format!(
            "{}{hours:02}:{m:02}:{s:02}",
            if negative { "-" } else { "" }
        );
    }
    if b.remaining() < 4 {
        return "0000-00-00".to_owned();
    }
    let (y, mo, d) = (b.get_u16_le(), b.get_u8(), b.get_u8());
    if b.remaining() < 3 {
        return format!("{y:04}-{mo:02}-{d:02}");
    }
    let (h, mi, s) = (b.get_u8(), b.get_u8(), b.get_u8());
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// The statement control's verdict on a `COM_QUERY` or `COM_STMT_PREPARE` text: the packet
/// to send in its place when it is refused.
fn refused(
    command: u8,
    seq: u8,
    text: &Bytes,
    control: &StatementControl,
    findings: &mut Vec<Finding>,
) -> Option<Packet> {
    if !control.is_active() {
        return None;
    }
    let checked = control.check_sql(&String::from_utf8_lossy(text));
    findings.extend(checked.findings);
    let refusal = checked.refusal?;
    let mut payload = vec![command];
    payload.extend_from_slice(refusal_statement(&refusal).as_bytes());
    Some(Packet {
        seq,
        payload: Bytes::from(payload),
    })
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
                packets(data.clone()),
                self.control.is_active(),
                |packet| state.client(packet, &self.control, &mut verdict.findings),
                Packet::encode,
            )?;
            Ok(verdict)
        });
        ready(result)
    }

    fn target<'a>(&'a self, batch: &'a [(Stream, Bytes)]) -> ObserverFuture<'a, Vec<Finding>> {
        let result = self.state().and_then(|mut state| {
            let mut done = Vec::new();
            for (_, frames) in batch {
                for packet in packets(frames.clone()) {
                    state.target(&packet, &mut done)?;
                }
            }
            Ok(database::findings(done))
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
            .map(|mut state| {
                database::unanswered(
                    state
                        .in_flight
                        .drain(..)
                        .filter_map(|pending| pending.record),
                )
            })
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

    fn frames(list: &[(u8, &[u8])]) -> Bytes {
        let mut out = BytesMut::new();
        for (seq, payload) in list {
            Packet {
                seq: *seq,
                payload: Bytes::copy_from_slice(payload),
            }
            .encode(&mut out);
        }
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

    const EOF: &[u8] = &[0xFE, 0, 0, 0x02, 0];

    #[tokio::test]
    async fn a_multi_statement_query_is_one_record_with_each_result() {
        let log = QueryLog::default();
        log.client(&frames(&[(0, b"\x03select 1; update t set a=1")]))
            .await
            .unwrap();
        // Result set of one row with more results, then an OK.
        let more_eof: &[u8] = &[0xFE, 0, 0, 0x0a, 0];
        let target = frames(&[
            (1, &[1]),
            (
                2,
                b"\x03def\0\0\0\x011\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0",
            ),
            (3, EOF),
            (4, b"\x011"),
            (5, more_eof),
            (6, &[0, 3, 0, 0x02, 0, 0, 0]),
        ]);
        let found = records(log.target(&[(Stream::Output, target)]).await.unwrap());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["statement"], "select 1; update t set a=1");
        assert_eq!(
            found[0]["status"],
            serde_json::json!(["1 row", "OK, 3 rows affected"])
        );
        assert_eq!(found[0]["rows"], 1);
    }

    #[tokio::test]
    async fn prepared_statements_record_their_bound_parameters() {
        let log = QueryLog::default();
        log.client(&frames(&[(0, b"\x16insert into t values (?, ?, ?)")]))
            .await
            .unwrap();
        // OK prepare: id 7, 0 columns, 3 params; three definitions and an EOF.
        let prepared = frames(&[
            (1, &[0, 7, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]),
            (2, b"def"),
            (3, b"def"),
            (4, b"def"),
            (5, EOF),
        ]);
        assert!(
            log.target(&[(Stream::Output, prepared)])
                .await
                .unwrap()
                .is_empty()
        );
        let mut execute = BytesMut::new();
        execute.put_u8(0x17);
        execute.put_u32_le(7);
        execute.put_u8(0);
        execute.put_u32_le(1);
        execute.put_u8(0b100); // the third is NULL
        execute.put_u8(1);
        execute.put_slice(&[0x08, 0x00, 0xfd, 0x00, 0x06, 0x00]);
        execute.put_i64_le(-42);
        execute.put_slice(b"\x05hello");
        log.client(&frames(&[(0, &execute)])).await.unwrap();
        let found = records(
            log.target(&[(Stream::Output, frames(&[(1, &[0, 1, 0, 0x02, 0, 0, 0])]))])
                .await
                .unwrap(),
        );
        assert_eq!(found[0]["kind"], "execute");
        assert_eq!(found[0]["statement"], "insert into t values (?, ?, ?)");
        assert_eq!(
            found[0]["params"],
            serde_json::json!(["-42", "hello", "NULL"])
        );
        assert_eq!(
            found[0]["status"],
            serde_json::json!(["OK, 1 row affected"])
        );
    }

    #[tokio::test]
    async fn errors_are_recorded_and_unknown_commands_end_the_session() {
        let log = QueryLog::default();
        log.client(&frames(&[(0, b"\x03select * from nope")]))
            .await
            .unwrap();
        let err = crate::wire::err_payload(1146, "42S02", "Table 'nope' doesn't exist");
        let found = records(
            log.target(&[(Stream::Output, frames(&[(1, &err)]))])
                .await
                .unwrap(),
        );
        assert_eq!(
            found[0]["error"],
            "ERROR 1146 (42S02): Table 'nope' doesn't exist"
        );
        for bad in [&b"\x11bob\0"[..], b"\x18\0\0\0\0", b""] {
            assert!(log.client(&frames(&[(0, bad)])).await.is_err(), "{bad:?}");
        }
        assert!(log.client(&frames(&[(2, b"\x03select 1")])).await.is_err());
        // A truncated execute of a known statement.
        log.client(&frames(&[(0, b"\x16select ?")])).await.unwrap();
        let prepared = frames(&[
            (1, &[0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            (2, b"def"),
            (3, EOF),
        ]);
        log.target(&[(Stream::Output, prepared)]).await.unwrap();
        assert!(
            log.client(&frames(&[(0, b"\x17\x01\0\0\0\0\x01\0\0\0\0\x01\x08")]))
                .await
                .is_err()
        );
        // An answer no command asked for.
        assert!(
            log.target(&[(Stream::Output, frames(&[(1, &[0, 0, 0, 2, 0, 0, 0])]))])
                .await
                .is_err()
        );
    }
}
