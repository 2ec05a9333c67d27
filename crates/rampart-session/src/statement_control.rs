//! Statement control in database sessions: a read-only grant (`postgres:read`, `mysql:read`,
//! `redis:read`) and the command rules of `rampart_core::rules` applied to each statement or
//! command before it reaches the target. The fronts ask [`StatementControl`]; it answers
//! whether to pass the statement on and what to put in the audit trail. The wire protocol's
//! answer to a refusal stays in the front (an `ErrorResponse`, an ERR packet, `-ERR`), and so
//! does the session: it goes on.
//!
//! SQL is parsed with `sqlparser` in the dialect of the protocol. A statement is a *read* only
//! if it is on a short allow-list (queries without data-modifying parts or row locks, `EXPLAIN`
//! of a read, `SHOW`, transaction control without `READ WRITE`, `SET` of anything but the
//! read-only settings and roles, cursors over reads); anything else is a write, and a text
//! that does not parse is refused under a read-only grant (fail closed).
//!
//! What this cannot see (the README says so): a function or procedure that writes when called
//! from a `SELECT`, dynamic SQL inside functions, procedures and `EVAL` scripts. The PostgreSQL
//! front therefore also opens read-only sessions with `default_transaction_read_only = on`.

use crate::command_control::RuleFinding;
use crate::database::{MAX_TEXT, bounded};
use crate::lifecycle::Authorized;
use crate::observe::Finding;
use rampart_core::Action;
use rampart_core::rules::{RuleAction, RuleSet, StatementFacts};
use rampart_core::target::Protocol;
use sqlparser::ast::{
    Query, Reset, Set, SetExpr, Statement, TransactionAccessMode, TransactionMode,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

/// Longer statements are not parsed; they are refused where a parse is needed.
pub const MAX_CHECKED_BYTES: usize = 1024 * 1024;

/// What a session's statements are checked against.
#[derive(Debug, Clone)]
pub struct StatementControl {
    protocol: Protocol,
    /// `postgres:read` when the session may only read.
    read_only: Option<String>,
    rules: RuleSet,
}

/// The answer for one statement (or one message of several statements).
#[derive(Debug, Default)]
pub struct Checked {
    /// Why it is refused (the line the client sees); `None`: pass it on.
    pub refusal: Option<String>,
    /// Rule matches and refusals for the audit trail (`command_rule_matched`, alerts).
    pub findings: Vec<Finding>,
}

impl StatementControl {
    /// The control of an authorized session of `protocol`: read-only when the decision allowed
    /// the protocol's `read` action and not its full one; `rules` are its command rules.
    pub fn new(protocol: Protocol, authorized: &Authorized, rules: RuleSet) -> Self {
        let read_only = Action::database_pair(protocol).and_then(|(full, read)| {
            (!authorized.actions.contains(&full)).then(|| format!("{protocol}:{read}"))
        });
        Self {
            protocol,
            read_only,
            rules,
        }
    }

    /// A control that checks nothing (tests, and sessions without rules on a full grant).
    pub fn none(protocol: Protocol) -> Self {
        Self {
            protocol,
            read_only: None,
            rules: RuleSet::default(),
        }
    }

    /// Whether anything is checked at all (a full grant without rules checks nothing, and
    /// statements are then not even parsed).
    pub fn is_active(&self) -> bool {
        self.read_only.is_some() || !self.rules.is_empty()
    }

    pub fn read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// Checks an SQL text (one `Query` message or `COM_QUERY` may hold several statements).
    pub fn check_sql(&self, text: &str) -> Checked {
        let mut checked = Checked::default();
        if !self.is_active() {
            return checked;
        }
        let needs_parse = self.read_only.is_some() || self.rules.needs_sql_kinds();
        let parsed = if text.len() > MAX_CHECKED_BYTES {
            Err(format!("longer than {MAX_CHECKED_BYTES} bytes"))
        } else {
            parse(self.protocol, text)
        };
        let statements = match parsed {
            Ok(statements) => statements,
            Err(why) if needs_parse => {
                let line = bounded(text, MAX_TEXT);
                let rule = match &self.read_only {
                    Some(action) => format!("{action}: unparsable ({why})"),
                    None => format!("unparsable ({why})"),
                };
                checked.refusal = Some(format!(
                    "rampart: statement refused: it cannot be checked ({why})"
                ));
                checked
                    .findings
                    .push(finding(&line, &line, rule, None, RuleAction::Deny));
                return checked;
            }
            Err(_) => {
                // Only text patterns apply: the text as sent is the statement.
                let facts = StatementFacts {
                    text: text.trim().to_owned(),
                    ..StatementFacts::default()
                };
                self.apply_rules(&facts, text, &mut checked);
                return checked;
            }
        };
        for statement in &statements {
            let kinds = sql_kinds(statement);
            let printed = statement.to_string();
            if let Some(action) = &self.read_only
                && kinds.iter().any(|kind| kind == "write")
            {
                let line = bounded(&printed, MAX_TEXT);
                checked.refusal.get_or_insert_with(|| {
                    format!("rampart: statement refused: the grant allows reading only ({action})")
                });
                checked.findings.push(finding(
                    &bounded(text, MAX_TEXT),
                    &line,
                    format!("{action}: not a read"),
                    None,
                    RuleAction::Deny,
                ));
                continue;
            }
            let facts = StatementFacts {
                text: printed,
                sql_kinds: kinds,
                redis_kinds: Vec::new(),
            };
            self.apply_rules(&facts, text, &mut checked);
        }
        checked
    }

    /// Checks one Redis command (its words, the command name first).
    pub fn check_redis(&self, words: &[String]) -> Checked {
        let mut checked = Checked::default();
        if !self.is_active() {
            return checked;
        }
        let name = words
            .first()
            .map(|word| word.to_ascii_lowercase())
            .unwrap_or_default();
        let sub = words.get(1).map(|word| word.to_ascii_lowercase());
        let write = !redis_reads(&name, sub.as_deref());
        // The command as rules read it: its name in capitals, and a container command's
        // subcommand too (`CONFIG SET ...`), the rest as sent.
        let mut text = name.to_ascii_uppercase();
        for (at, word) in words.iter().enumerate().skip(1) {
            text.push(' ');
            if at == 1 && HAS_SUBCOMMANDS.contains(&name.as_str()) {
                text.push_str(&word.to_ascii_uppercase());
            } else {
                text.push_str(word);
            }
        }
        let text = bounded(&text, MAX_TEXT);
        if let Some(action) = &self.read_only
            && write
        {
            checked.refusal = Some(format!(
                "rampart: command refused: the grant allows reading only ({action})"
            ));
            checked.findings.push(finding(
                &text,
                &text,
                format!("{action}: not a read"),
                None,
                RuleAction::Deny,
            ));
            return checked;
        }
        let mut redis_kinds = vec![name];
        if write {
            redis_kinds.push("write".to_owned());
        }
        let facts = StatementFacts {
            text: text.clone(),
            sql_kinds: Vec::new(),
            redis_kinds,
        };
        self.apply_rules(&facts, &text, &mut checked);
        checked
    }

    fn apply_rules(&self, facts: &StatementFacts, raw: &str, checked: &mut Checked) {
        let decision = self.rules.check_statement(facts, raw);
        for matched in &decision.matches {
            checked.findings.push(finding(
                &bounded(raw, MAX_TEXT),
                &bounded(&matched.command, MAX_TEXT),
                matched.rule_text.clone(),
                Some(matched.rule),
                matched.action,
            ));
        }
        // An `approve` rule is refused too: a statement cannot wait for an approver.
        if decision.action >= RuleAction::Approve
            && let Some(denied) = decision.matches.first()
        {
            checked.refusal.get_or_insert_with(|| {
                let why = match denied.action {
                    RuleAction::Approve => {
                        " (it needs an approver's decision, which only an interactive shell can \
                         wait for)"
                    }
                    _ => "",
                };
                format!(
                    "rampart: statement refused by rule {}{why}",
                    denied.rule_text
                )
            });
        }
    }
}

fn finding(
    line: &str,
    command: &str,
    rule: String,
    rule_id: Option<uuid::Uuid>,
    action: RuleAction,
) -> Finding {
    Finding::Rule(RuleFinding {
        line: line.to_owned(),
        command: command.to_owned(),
        rule,
        rule_id,
        action,
    })
}

fn parse(protocol: Protocol, text: &str) -> Result<Vec<Statement>, String> {
    let dialect: &dyn Dialect = match protocol {
        Protocol::Mysql => &MySqlDialect {},
        _ => &PostgreSqlDialect {},
    };
    Parser::new(dialect)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|err| {
            let text = err.to_string();
            bounded(
                text.strip_prefix("sql parser error: ").unwrap_or(&text),
                200,
            )
        })
}

/// The kinds of one statement: its leading keyword (`drop`, `alter`, ...), the derived
/// `delete-without-where` / `update-without-where`, and `write` when it is not a read.
pub fn sql_kinds(statement: &Statement) -> Vec<String> {
    let printed = statement.to_string();
    let first = printed
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut kinds = vec![match statement {
        Statement::Query(_) => "select".to_owned(),
        _ => first,
    }];
    match statement {
        Statement::Delete(delete) if delete.selection.is_none() => {
            kinds.push("delete-without-where".to_owned());
        }
        Statement::Update(update) if update.selection.is_none() => {
            kinds.push("update-without-where".to_owned());
        }
        _ => {}
    }
    if !is_read(statement) {
        kinds.push("write".to_owned());
    }
    kinds
}

/// Settings a read-only session may not change (PostgreSQL's read-only defaults, the role).
fn guards_read_only(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("read_only") || name.contains("authorization") || name.ends_with("role")
}

/// Whether a statement only reads (the allow-list; anything else writes).
pub fn is_read(statement: &Statement) -> bool {
    match statement {
        Statement::Query(query) => query_reads(query),
        Statement::Explain { statement, .. } => is_read(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. }
        | Statement::Use(_)
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Deallocate { .. }
        | Statement::Discard { .. }
        | Statement::UnlockTables => true,
        Statement::StartTransaction { modes, .. } => !writes_mode(modes),
        Statement::Set(set) => set_reads(set),
        Statement::Reset(reset) => match &reset.reset {
            Reset::ALL | Reset::SessionAuthorization => false,
            Reset::ConfigurationParameter(name) => !guards_read_only(&name.to_string()),
        },
        Statement::Declare { stmts, .. } => stmts
            .iter()
            .all(|declare| declare.for_query.as_deref().is_none_or(query_reads)),
        Statement::Prepare { statement, .. } => is_read(statement),
        // A statement prepared in SQL was checked when it was prepared.
        Statement::Execute { .. } => true,
        _ => false,
    }
}

fn writes_mode(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|mode| {
        matches!(
            mode,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

fn set_reads(set: &Set) -> bool {
    match set {
        Set::SingleAssignment { variable, .. } => !guards_read_only(&variable.to_string()),
        Set::ParenthesizedAssignments { variables, .. } => variables
            .iter()
            .all(|variable| !guards_read_only(&variable.to_string())),
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .all(|assignment| !guards_read_only(&assignment.name.to_string())),
        Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => true,
        Set::SetTransaction { modes, .. } => !writes_mode(modes),
        Set::SetSessionAuthorization(_) | Set::SetSessionParam(_) | Set::SetRole { .. } => false,
    }
}

fn query_reads(query: &Query) -> bool {
    query.locks.is_empty()
        && query
            .with
            .as_ref()
            .is_none_or(|with| with.cte_tables.iter().all(|cte| query_reads(&cte.query)))
        && set_expr_reads(&query.body)
}

fn set_expr_reads(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.into.is_none(),
        SetExpr::Query(query) => query_reads(query),
        SetExpr::SetOperation { left, right, .. } => set_expr_reads(left) && set_expr_reads(right),
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        _ => false,
    }
}

/// Redis commands whose first argument is a subcommand.
const HAS_SUBCOMMANDS: &[&str] = &[
    "config", "client", "acl", "object", "memory", "xinfo", "xgroup", "pubsub", "slowlog",
    "script", "function", "cluster", "command", "debug", "module", "latency",
];

/// Redis commands that only read (the allow-list; anything else writes). `sub` is the first
/// argument, for commands whose subcommands differ (`CLIENT`, `CONFIG`, `OBJECT`, ...).
fn redis_reads(name: &str, sub: Option<&str>) -> bool {
    const READS: &[&str] = &[
        "get",
        "mget",
        "strlen",
        "getrange",
        "substr",
        "exists",
        "type",
        "ttl",
        "pttl",
        "expiretime",
        "pexpiretime",
        "keys",
        "scan",
        "randomkey",
        "dbsize",
        "hget",
        "hmget",
        "hgetall",
        "hkeys",
        "hvals",
        "hlen",
        "hexists",
        "hstrlen",
        "hscan",
        "hrandfield",
        "lrange",
        "llen",
        "lindex",
        "lpos",
        "smembers",
        "sismember",
        "smismember",
        "scard",
        "srandmember",
        "sscan",
        "sinter",
        "sunion",
        "sdiff",
        "sintercard",
        "zrange",
        "zrangebyscore",
        "zrevrange",
        "zrevrangebyscore",
        "zrangebylex",
        "zrevrangebylex",
        "zcard",
        "zscore",
        "zmscore",
        "zrank",
        "zrevrank",
        "zcount",
        "zlexcount",
        "zscan",
        "zrandmember",
        "zinter",
        "zunion",
        "zdiff",
        "zintercard",
        "xrange",
        "xrevrange",
        "xlen",
        "xread",
        "xpending",
        "getbit",
        "bitcount",
        "bitpos",
        "bitfield_ro",
        "pfcount",
        "geopos",
        "geodist",
        "geohash",
        "georadius_ro",
        "georadiusbymember_ro",
        "geosearch",
        "dump",
        "touch",
        "lcs",
        "sort_ro",
        "eval_ro",
        "evalsha_ro",
        "fcall_ro",
        "ping",
        "echo",
        "select",
        "info",
        "time",
        "lastsave",
        "command",
        "multi",
        "exec",
        "discard",
        "watch",
        "unwatch",
        "quit",
        "reset",
        "hello",
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "readonly",
        "role",
    ];
    match name {
        "object" | "memory" | "xinfo" | "pubsub" => true,
        "client" => matches!(
            sub,
            Some("id" | "info" | "getname" | "setname" | "list" | "setinfo")
        ),
        "config" => sub == Some("get"),
        "slowlog" => sub == Some("get") || sub == Some("len"),
        "acl" => matches!(sub, Some("whoami" | "cat")),
        _ => READS.contains(&name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::rules::{Matcher, Rule, RuleScope};
    use uuid::Uuid;

    fn control(
        protocol: Protocol,
        read_only: bool,
        rules: &[(RuleAction, &str)],
    ) -> StatementControl {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(at, (action, matcher))| Rule {
                id: Uuid::from_u128(at as u128 + 1),
                position: at as i64 + 1,
                scope: RuleScope::Grant(Uuid::nil()),
                matcher: Matcher::parse(matcher).unwrap(),
                action: *action,
            })
            .collect();
        StatementControl {
            protocol,
            read_only: read_only.then(|| format!("{protocol}:read")),
            rules: RuleSet::new(rules),
        }
    }

    #[test]
    fn read_only_passes_reads_and_refuses_writes_and_what_it_cannot_parse() {
        for protocol in [Protocol::Postgres, Protocol::Mysql] {
            let read_only = control(protocol, true, &[]);
            for read in [
                "SELECT 1",
                "select * from t where a = 1; select 2",
                "WITH x AS (SELECT 1) SELECT * FROM x",
                "EXPLAIN SELECT * FROM t",
                "SHOW TABLES",
                "BEGIN",
                "COMMIT",
                "SET search_path = public",
                "",
            ] {
                let checked = read_only.check_sql(read);
                assert!(
                    checked.refusal.is_none(),
                    "{protocol} {read}: {:?}",
                    checked.refusal
                );
                assert!(checked.findings.is_empty(), "{read}");
            }
            for write in [
                "INSERT INTO t VALUES (1)",
                "select 1; delete from t",
                "UPDATE t SET a = 1 WHERE b = 2",
                "DROP TABLE t",
                "CREATE TABLE x (a int)",
                "SELECT * FROM t FOR UPDATE",
                "START TRANSACTION READ WRITE",
                "SET default_transaction_read_only = off",
                "this is not sql",
                "CALL p()",
                "GRANT ALL ON t TO bob",
            ] {
                let checked = read_only.check_sql(write);
                let refusal = checked.refusal.unwrap_or_default();
                assert!(
                    refusal.starts_with("rampart: statement refused"),
                    "{protocol} {write}"
                );
                assert!(!checked.findings.is_empty(), "{write}");
            }
        }
        let pg = control(Protocol::Postgres, true, &[]);
        for write in [
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * INTO t2 FROM t",
            "EXPLAIN ANALYZE DELETE FROM t",
            "RESET ALL",
            "SET ROLE admin",
            "SET SESSION AUTHORIZATION bob",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "DO $$ BEGIN DELETE FROM t; END $$",
        ] {
            assert!(pg.check_sql(write).refusal.is_some(), "{write}");
        }
    }

    #[test]
    fn psql_describe_queries_are_reads() {
        let pg = control(Protocol::Postgres, true, &[]);
        for query in [
            "SELECT n.nspname as \"Schema\", c.relname as \"Name\", CASE c.relkind WHEN 'r' \
             THEN 'table' END as \"Type\", pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" \
             FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = \
             c.relnamespace WHERE c.relkind IN ('r','p','') AND n.nspname !~ '^pg_toast' AND \
             pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;",
            "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN \
             pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname \
             OPERATOR(pg_catalog.~) '^(notes)$' COLLATE pg_catalog.default AND \
             pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;",
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM \
             pg_catalog.pg_attribute a WHERE a.attrelid = '16384'::oid AND a.attnum > 0 AND NOT \
             a.attisdropped ORDER BY a.attnum;",
        ] {
            let checked = pg.check_sql(query);
            assert!(checked.refusal.is_none(), "{query}: {:?}", checked.refusal);
        }
    }

    #[test]
    fn rules_block_and_warn_by_kind_and_a_full_grant_without_rules_checks_nothing() {
        let rules = control(
            Protocol::Postgres,
            false,
            &[
                (RuleAction::Deny, "sql:drop"),
                (RuleAction::Deny, "sql:delete-without-where"),
                (RuleAction::Warn, "sql:truncate"),
            ],
        );
        assert!(
            rules
                .check_sql("drop table t")
                .refusal
                .unwrap()
                .contains("#1 deny sql:drop")
        );
        assert!(rules.check_sql("DELETE FROM t").refusal.is_some());
        assert!(
            rules
                .check_sql("DELETE FROM t WHERE id = 1")
                .refusal
                .is_none()
        );
        assert!(rules.check_sql("update t set a = 1").refusal.is_none());
        let warned = rules.check_sql("TRUNCATE t");
        assert!(warned.refusal.is_none());
        assert!(matches!(
            warned.findings.as_slice(),
            [Finding::Rule(found)] if found.action == RuleAction::Warn
        ));
        // Rules about kinds cannot decide what they cannot parse.
        assert!(rules.check_sql("DROP TABLE t GARBAGE (").refusal.is_some());
        let none = StatementControl::none(Protocol::Postgres);
        assert!(!none.is_active());
        assert!(
            none.check_sql("drop table t; this is not sql")
                .refusal
                .is_none()
        );
        // Text patterns alone do not need a parse.
        let pattern = control(
            Protocol::Mysql,
            false,
            &[(RuleAction::Deny, "regex:(?i)pg_sleep")],
        );
        assert!(pattern.check_sql("select pg_sleep(10").refusal.is_some());
        assert!(pattern.check_sql("select ( 1").refusal.is_none());
    }

    #[test]
    fn redis_read_only_and_command_rules() {
        let read_only = control(Protocol::Redis, true, &[]);
        let words = |text: &str| -> Vec<String> { text.split(' ').map(str::to_owned).collect() };
        for read in [
            "GET k",
            "mget a b",
            "CONFIG GET maxmemory",
            "ping",
            "client id",
        ] {
            assert!(
                read_only.check_redis(&words(read)).refusal.is_none(),
                "{read}"
            );
        }
        for write in [
            "SET k v",
            "del k",
            "FLUSHALL",
            "CONFIG SET x y",
            "eval x 0",
            "client kill x",
        ] {
            assert!(
                read_only.check_redis(&words(write)).refusal.is_some(),
                "{write}"
            );
        }
        let rules = control(
            Protocol::Redis,
            false,
            &[
                (RuleAction::Deny, "redis:flushall"),
                (RuleAction::Deny, "prefix:CONFIG SET"),
            ],
        );
        let refused = rules.check_redis(&words("flushall")).refusal.unwrap();
        assert!(refused.contains("redis:flushall"), "{refused}");
        assert!(
            rules
                .check_redis(&words("config set maxmemory 1"))
                .refusal
                .is_some()
        );
        assert!(rules.check_redis(&words("SET k v")).refusal.is_none());
    }
}
