//! Command control rules: the one place that decides whether a command may run.
//!
//! Pure and protocol neutral: a front hands a command line (an exec request, the line a shell
//! user pressed Enter on; later a database statement) and gets a [`Decision`]. Rules are ordered;
//! for each command the first rule that matches decides, and a command no rule matches is
//! allowed. A line is split into every command it would run ([`split_commands`]): `;`, `&&`,
//! `||`, `|`, `&`, newlines, `$(...)`, backticks, subshells and `sh -c '...'` / `eval` are all
//! looked into, never matched as one string; a line the splitter cannot follow is refused
//! (fail closed). The line's decision is its strictest command's: one denied command denies it.
//!
//! INVARIANT: an `allow` rule matches the command as written (so `allow prefix:ls` never allows
//! `/tmp/evil/ls` or `sudo ls`), while `warn` and `deny` rules also match the forms a command
//! hides behind: the program's base name (`/bin/rm` is `rm`) and the command run by a wrapper
//! (`sudo`, `env`, `nohup`, `timeout`, ...).

use crate::name::InvalidInput;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Longer lines are refused when rules apply (a command line, not a file).
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// Nesting deeper than this (`$( $( ... ) )`, `sh -c` inside `sh -c`) is refused.
const MAX_DEPTH: usize = 16;
/// A regular expression is compiled within this many bytes.
const MAX_REGEX_BYTES: usize = 1 << 20;
const MAX_PATTERN_CHARS: usize = 1024;

/// What a rule does with a command it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Run it.
    Allow,
    /// Run it and raise an alert.
    Warn,
    /// Hold it until an approver decides (interactive shells); where nothing can wait for an
    /// approver (an exec, a statement) it is refused like `deny`.
    ///
    /// INVARIANT: declared between `Warn` and `Deny`: a line's action is its strictest
    /// command's (`max`), so one denied command still denies a line another holds.
    Approve,
    /// Do not run it; tell the user why.
    Deny,
}

impl RuleAction {
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        match text {
            "allow" => Ok(Self::Allow),
            "warn" => Ok(Self::Warn),
            "deny" => Ok(Self::Deny),
            "approve" => Ok(Self::Approve),
            other => Err(InvalidInput::new(format!(
                "invalid rule action {other:?}: use allow, warn, approve or deny"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Warn => "warn",
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named list of commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandList {
    /// `sudo`, `su`, `pkexec`, `doas`, ..., and `chmod` setting a set-user/group-ID bit.
    PrivilegeEscalation,
    /// `apt`, `dnf`, `pip`, `npm`, ...
    PackageManagers,
}

const PRIVILEGE_ESCALATION: &[&str] = &[
    "sudo", "sudoedit", "su", "pkexec", "doas", "runuser", "setpriv", "setcap", "chroot",
];
const PACKAGE_MANAGERS: &[&str] = &[
    "apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "zypper", "pacman", "apk", "snap",
    "flatpak", "pip", "pip3", "npm", "yarn", "gem", "cargo", "brew", "emerge",
];

impl CommandList {
    pub const ALL: [CommandList; 2] = [Self::PrivilegeEscalation, Self::PackageManagers];

    pub fn name(self) -> &'static str {
        match self {
            Self::PrivilegeEscalation => "privilege-escalation",
            Self::PackageManagers => "package-managers",
        }
    }

    fn contains(self, words: &[String]) -> bool {
        let Some(program) = words.first().map(|word| base_name(word)) else {
            return false;
        };
        match self {
            Self::PrivilegeEscalation => {
                PRIVILEGE_ESCALATION.contains(&program)
                    || (program == "chmod" && words.iter().skip(1).any(|word| sets_id_bit(word)))
            }
            Self::PackageManagers => PACKAGE_MANAGERS.contains(&program),
        }
    }
}

/// Whether a `chmod` mode sets the set-user-ID or set-group-ID bit (`+s`, `u+s`, `g=s`, `4755`).
fn sets_id_bit(mode: &str) -> bool {
    if mode.len() >= 4 && mode.chars().all(|c| c.is_ascii_digit() && c < '8') {
        let first = mode.len() - 4;
        return mode
            .get(first..=first)
            .and_then(|digit| digit.parse::<u8>().ok())
            .is_some_and(|digit| digit & 6 != 0);
    }
    mode.split(',').any(|clause| {
        clause
            .find(['+', '='])
            .and_then(|at| clause.get(at..))
            .is_some_and(|rest| rest.contains('s'))
    })
}

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// How a rule recognizes a command.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Every command.
    Any,
    /// The command starts with these words (`rm -rf` matches `rm -rf /tmp`, not `rmdir`).
    Prefix(Vec<String>),
    /// The whole command against a pattern: `*` any characters, `?` one.
    Glob(String),
    /// A regular expression found anywhere in the command (anchor it with `^` and `$`).
    Regex(regex::Regex),
    List(CommandList),
    /// A database statement of a kind (`sql:drop`, `sql:delete-without-where`, `sql:write`):
    /// matches statements only, never shell commands.
    Sql(String),
    /// A Redis command by name (`redis:flushall`, `redis:config`, `redis:write`): matches
    /// Redis commands only.
    Redis(String),
}

/// The statement kinds `sql:KIND` may name: a statement's leading keyword, and the derived
/// kinds `delete-without-where`, `update-without-where` and `write` (anything a read-only
/// grant refuses).
pub const SQL_KINDS: &[&str] = &[
    "select",
    "insert",
    "update",
    "delete",
    "merge",
    "truncate",
    "drop",
    "alter",
    "create",
    "grant",
    "revoke",
    "copy",
    "call",
    "set",
    "lock",
    "rename",
    "load",
    "prepare",
    "execute",
    "vacuum",
    "analyze",
    "delete-without-where",
    "update-without-where",
    "write",
    "unparsable",
];

/// A database statement as the rules see it: its text and what the front's parser found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementFacts {
    /// The statement as checked by `prefix:`, `glob:` and `regex:` rules.
    pub text: String,
    /// SQL kinds (`drop`, `delete-without-where`, `write`), lower case.
    pub sql_kinds: Vec<String>,
    /// The Redis command's name (lower case) and `write` when it is not a read.
    pub redis_kinds: Vec<String>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Matcher {
    /// Parses `any`, `prefix:WORDS`, `glob:PATTERN`, `regex:EXPR` or `list:NAME`.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let bad = |why: String| InvalidInput::new(format!("invalid rule match {text:?}: {why}"));
        if text == "any" {
            return Ok(Self::Any);
        }
        let (kind, pattern) = text.split_once(':').ok_or_else(|| {
            bad("expected any, prefix:WORDS, glob:PATTERN, regex:EXPR or list:NAME".into())
        })?;
        if pattern.trim().is_empty() {
            return Err(bad("the pattern is empty".into()));
        }
        if pattern.chars().count() > MAX_PATTERN_CHARS || pattern.chars().any(char::is_control) {
            return Err(bad(format!(
                "the pattern must be at most {MAX_PATTERN_CHARS} characters, without control \
                 characters"
            )));
        }
        match kind {
            "prefix" => Ok(Self::Prefix(
                pattern.split_whitespace().map(str::to_owned).collect(),
            )),
            "glob" => Ok(Self::Glob(pattern.to_owned())),
            "regex" => regex::RegexBuilder::new(pattern)
                .size_limit(MAX_REGEX_BYTES)
                .build()
                .map(Self::Regex)
                .map_err(|err| bad(format!("{err}").lines().last().unwrap_or("").to_owned())),
            "sql" => {
                let kind = pattern.to_ascii_lowercase();
                if SQL_KINDS.contains(&kind.as_str()) {
                    Ok(Self::Sql(kind))
                } else {
                    Err(bad(format!(
                        "known statement kinds: {}",
                        SQL_KINDS.join(", ")
                    )))
                }
            }
            "redis" => {
                let command = pattern.to_ascii_lowercase();
                let valid = command.len() <= 64
                    && command
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '|');
                if valid {
                    Ok(Self::Redis(command))
                } else {
                    Err(bad(
                        "a Redis command name (letters, digits, _ and -)".to_owned()
                    ))
                }
            }
            "list" => CommandList::ALL
                .into_iter()
                .find(|list| list.name() == pattern)
                .map(Self::List)
                .ok_or_else(|| {
                    bad("known lists: privilege-escalation, package-managers".to_owned())
                }),
            other => Err(bad(format!(
                "unknown kind {other:?}: use any, prefix, glob, regex, list, sql or redis"
            ))),
        }
    }

    /// Whether the matcher is about database statements only (`sql:`, `redis:`).
    pub fn for_statements_only(&self) -> bool {
        matches!(self, Self::Sql(_) | Self::Redis(_))
    }

    /// Whether the matcher matches a database statement: kinds by the parser's facts, patterns
    /// by its text; `list:` never (its lists are shell programs).
    fn matches_statement(&self, facts: &StatementFacts, text: &str) -> bool {
        match self {
            Self::Sql(kind) => facts.sql_kinds.iter().any(|found| found == kind),
            Self::Redis(command) => facts.redis_kinds.iter().any(|found| found == command),
            Self::List(_) => false,
            Self::Any => true,
            Self::Prefix(_) | Self::Glob(_) | Self::Regex(_) => {
                let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                self.matches(&words)
            }
        }
    }

    fn matches(&self, words: &[String]) -> bool {
        let text = words.join(" ");
        match self {
            Self::Sql(_) | Self::Redis(_) => false,
            Self::Any => true,
            Self::Prefix(prefix) => {
                words.len() >= prefix.len() && words.iter().zip(prefix).all(|(a, b)| a == b)
            }
            Self::Glob(pattern) => glob_matches(pattern, &text),
            Self::Regex(regex) => regex.is_match(&text),
            Self::List(list) => list.contains(words),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Prefix(words) => write!(f, "prefix:{}", words.join(" ")),
            Self::Glob(pattern) => write!(f, "glob:{pattern}"),
            Self::Regex(regex) => write!(f, "regex:{}", regex.as_str()),
            Self::List(list) => write!(f, "list:{}", list.name()),
            Self::Sql(kind) => write!(f, "sql:{kind}"),
            Self::Redis(command) => write!(f, "redis:{command}"),
        }
    }
}

/// `*` matches any run of characters, `?` one character; everything else itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point: linear in practice, never exponential.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern.iter().skip(p).all(|&c| c == '*')
}

/// Where a rule applies: sessions under one grant, or to assets carrying a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    Grant(Uuid),
    Label(crate::Label),
}

impl fmt::Display for RuleScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Grant(id) => write!(f, "grant {id}"),
            Self::Label(label) => write!(f, "label {label}"),
        }
    }
}

/// One command rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Uuid,
    /// Lower first; the first rule that matches a command decides.
    pub position: i64,
    pub scope: RuleScope,
    pub matcher: Matcher,
    pub action: RuleAction,
}

/// A rule as lists, the API and JSON output show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    pub id: Uuid,
    pub position: i64,
    /// The grant it is attached to, if it is a grant's.
    pub grant: Option<Uuid>,
    /// The asset label it is attached to (`KEY=VALUE`), if it is a label's.
    pub label: Option<String>,
    /// `any`, `prefix:WORDS`, `glob:PATTERN`, `regex:EXPR` or `list:NAME`.
    #[serde(rename = "match")]
    pub matcher: String,
    pub action: RuleAction,
}

impl Rule {
    pub fn summary(&self) -> RuleSummary {
        let (grant, label) = match &self.scope {
            RuleScope::Grant(id) => (Some(*id), None),
            RuleScope::Label(label) => (None, Some(label.to_string())),
        };
        RuleSummary {
            id: self.id,
            position: self.position,
            grant,
            label,
            matcher: self.matcher.to_string(),
            action: self.action,
        }
    }

    /// How the rule is named to users and in the audit trail: `#3 deny prefix:rm -rf`.
    pub fn describe(&self) -> String {
        format!("#{} {} {}", self.position, self.action, self.matcher)
    }
}

/// A rule that matched one command of a line.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleMatch {
    pub rule: Uuid,
    /// `#3 deny prefix:rm -rf`.
    pub rule_text: String,
    pub action: RuleAction,
    /// The command it matched, as checked (words joined by spaces).
    pub command: String,
}

/// The decision for a whole line.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The strictest of its commands' actions.
    pub action: RuleAction,
    /// Every command a rule matched, in order (for the audit trail).
    pub matches: Vec<RuleMatch>,
    /// Why the line could not be checked (it is then denied).
    pub unparsable: Option<String>,
}

impl Decision {
    fn allowed() -> Self {
        Self {
            action: RuleAction::Allow,
            matches: Vec::new(),
            unparsable: None,
        }
    }

    /// The one line the user sees when the line may not run as it is: denied, or (where no
    /// approver can be waited for: an exec, a statement) held for approval. An interactive
    /// shell asks [`Self::approval`] first.
    pub fn refusal(&self) -> Option<String> {
        if self.action == RuleAction::Approve {
            let held = self.approval()?;
            return Some(format!(
                "rampart: command refused: rule {} needs an approver's decision, which only an \
                 interactive shell can wait for (ssh -t, then run it there): {}",
                held.rule_text, held.command
            ));
        }
        if self.action != RuleAction::Deny {
            return None;
        }
        if let Some(why) = &self.unparsable {
            return Some(format!(
                "rampart: command refused: it cannot be checked against the command rules \
                 ({why})"
            ));
        }
        let denied = self
            .matches
            .iter()
            .find(|found| found.action == RuleAction::Deny)?;
        Some(format!(
            "rampart: command refused by rule {}: {}",
            denied.rule_text, denied.command
        ))
    }
}

impl Decision {
    /// The rule that holds the line for an approver (the line's action is `approve`: nothing in
    /// it is denied).
    pub fn approval(&self) -> Option<&RuleMatch> {
        if self.action != RuleAction::Approve {
            return None;
        }
        self.matches
            .iter()
            .find(|found| found.action == RuleAction::Approve)
    }
}

/// The rules that apply to one session, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Orders `rules` by position (then id), the order they are asked in.
    pub fn new(mut rules: Vec<Rule>) -> Self {
        rules.sort_by_key(|rule| (rule.position, rule.id));
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Decides a command line. Without rules every line is allowed unread.
    pub fn check(&self, line: &str) -> Decision {
        if self.rules.is_empty() {
            return Decision::allowed();
        }
        match split_commands(line) {
            Ok(commands) => self.decide_commands(&commands),
            Err(why) => Decision {
                action: RuleAction::Deny,
                matches: Vec::new(),
                unparsable: Some(why),
            },
        }
    }

    /// Decides a command given as argv (a Kubernetes exec's `command` parameters), exactly:
    /// the words are the command's, no shell reads them. A shell given a script (`sh -c
    /// SCRIPT`) has its script checked as a line too.
    pub fn check_argv(&self, argv: &[String]) -> Decision {
        if self.rules.is_empty() {
            return Decision::allowed();
        }
        let mut commands = vec![SimpleCommand {
            words: argv.to_vec(),
            program_unknown: false,
        }];
        let program = argv
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or("");
        if matches!(
            program,
            "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "busybox"
        ) && let Some(at) = argv.iter().position(|w| w == "-c")
        {
            let script = argv.get(at + 1).map(String::as_str).unwrap_or("");
            match split_commands(script) {
                Ok(inner) => commands.extend(inner),
                Err(why) => {
                    return Decision {
                        action: RuleAction::Deny,
                        matches: Vec::new(),
                        unparsable: Some(why),
                    };
                }
            }
        }
        self.decide_commands(&commands)
    }

    fn decide_commands(&self, commands: &[SimpleCommand]) -> Decision {
        let mut decision = Decision::allowed();
        for command in commands {
            let forms = hidden_forms(&command.words);
            let rule = self.rules.iter().find(|rule| {
                if rule.matcher.for_statements_only() {
                    return false;
                }
                if command.program_unknown && rule.action != RuleAction::Allow {
                    // A program chosen by an expansion could be anything a deny rule names.
                    return true;
                }
                match rule.action {
                    RuleAction::Allow => {
                        !command.program_unknown && rule.matcher.matches(&command.words)
                    }
                    RuleAction::Warn | RuleAction::Approve | RuleAction::Deny => {
                        forms.iter().any(|form| rule.matcher.matches(form))
                    }
                }
            });
            if let Some(rule) = rule {
                decision.action = decision.action.max(rule.action);
                decision.matches.push(RuleMatch {
                    rule: rule.id,
                    rule_text: rule.describe(),
                    action: rule.action,
                    command: command.words.join(" "),
                });
            }
        }
        decision
    }
}

impl RuleSet {
    /// Whether a rule needs the statement's parse (`sql:` kinds), so a statement that does not
    /// parse cannot be checked.
    pub fn needs_sql_kinds(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| matches!(rule.matcher, Matcher::Sql(_)))
    }

    /// Decides one database statement (a front splits a message into statements; each is
    /// checked on its own and the strictest wins). The first rule that matches decides:
    /// `allow` rules match the statement as the parser printed it (`facts.text`), `warn` and
    /// `deny` rules also the text as the client sent it (`raw`), so neither form hides it.
    pub fn check_statement(&self, facts: &StatementFacts, raw: &str) -> Decision {
        let mut decision = Decision::allowed();
        let rule = self.rules.iter().find(|rule| match rule.action {
            RuleAction::Allow => rule.matcher.matches_statement(facts, &facts.text),
            RuleAction::Warn | RuleAction::Approve | RuleAction::Deny => {
                rule.matcher.matches_statement(facts, &facts.text)
                    || rule.matcher.matches_statement(facts, raw)
            }
        });
        if let Some(rule) = rule {
            decision.action = rule.action;
            decision.matches.push(RuleMatch {
                rule: rule.id,
                rule_text: rule.describe(),
                action: rule.action,
                command: facts.text.clone(),
            });
        }
        decision
    }
}

/// The first command of `line` that escalates privileges (`list:privilege-escalation`, seen
/// through paths and wrappers), for the detector that alerts on them whatever the rules say. A
/// line the splitter cannot follow yields none (the rules, not the detector, refuse those).
pub fn privilege_escalation(line: &str) -> Option<String> {
    let commands = split_commands(line).ok()?;
    commands.into_iter().find_map(|command| {
        hidden_forms(&command.words)
            .iter()
            .any(|form| CommandList::PrivilegeEscalation.contains(form))
            .then(|| command.words.join(" "))
    })
}

/// One simple command of a line: its words with quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleCommand {
    pub words: Vec<String>,
    /// The program word holds an expansion (`$x`, `$(...)`, backticks): what runs is not known.
    pub program_unknown: bool,
}

/// Words that are shell syntax rather than the program, skipped before the program word.
const RESERVED: &[&str] = &[
    "{", "}", "!", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time",
];

/// Commands that run another command given as their arguments, with how many option values
/// to skip after options that take one.
const WRAPPERS: &[(&str, &[&str])] = &[
    (
        "sudo",
        &["-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U"],
    ),
    ("doas", &["-u", "-C"]),
    ("env", &["-u", "-C", "-S"]),
    ("nohup", &[]),
    ("nice", &["-n"]),
    ("ionice", &["-c", "-n", "-p"]),
    ("timeout", &["-s", "-k"]),
    ("stdbuf", &["-i", "-o", "-e"]),
    ("command", &[]),
    ("exec", &["-a"]),
    ("builtin", &[]),
    ("xargs", &["-I", "-n", "-P", "-d", "-E", "-L", "-s", "-a"]),
    ("setsid", &[]),
    ("chroot", &[]),
    ("pkexec", &["--user"]),
    ("runuser", &["-u", "-g"]),
];

/// The forms a command can hide behind: as written, with the program's base name, and the
/// command a wrapper runs (recursively).
fn hidden_forms(words: &[String]) -> Vec<Vec<String>> {
    let mut forms = Vec::new();
    let mut current = words.to_vec();
    for _ in 0..MAX_DEPTH {
        if current.is_empty() {
            break;
        }
        forms.push(current.clone());
        let mut based = current.clone();
        if let Some(program) = based.first_mut() {
            *program = base_name(program).to_owned();
        }
        let program = based.first().cloned().unwrap_or_default();
        if based != current {
            forms.push(based);
        }
        let Some((_, with_value)) = WRAPPERS.iter().find(|(name, _)| *name == program) else {
            break;
        };
        let mut rest = current.iter().skip(1).peekable();
        let mut first_operand = true;
        while let Some(word) = rest.peek() {
            if word.starts_with('-') {
                let takes_value = with_value.contains(&word.as_str());
                rest.next();
                if takes_value {
                    rest.next();
                }
            } else if program == "env" && is_assignment(word) {
                rest.next();
            } else if program == "timeout" && first_operand {
                // The duration.
                first_operand = false;
                rest.next();
            } else if program == "chroot" && first_operand {
                // The new root.
                first_operand = false;
                rest.next();
            } else {
                break;
            }
        }
        current = rest.cloned().collect();
    }
    forms
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.chars().next().is_some_and(|c| !c.is_ascii_digit())
    })
}

/// Splits a shell line into every simple command it would run, including those inside `$(...)`,
/// backticks, `(...)`, `<(...)`, and the strings given to `sh -c` and `eval`. Anything it cannot
/// follow (an unterminated quote, an unbalanced parenthesis, `$((...))`, `case`, nesting too deep)
/// is an error: the caller refuses the line.
pub fn split_commands(line: &str) -> Result<Vec<SimpleCommand>, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("the line is longer than {MAX_LINE_BYTES} bytes"));
    }
    let mut commands = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut parser = Parser {
        chars: &chars,
        at: 0,
        out: &mut commands,
    };
    parser.list(None, 0)?;
    if parser.at < chars.len() {
        return Err("unexpected text after the command".into());
    }
    Ok(commands)
}

struct Parser<'a> {
    chars: &'a [char],
    at: usize,
    out: &'a mut Vec<SimpleCommand>,
}

/// The simple command being read.
#[derive(Default)]
struct Pending {
    words: Vec<String>,
    /// Per word: it holds an expansion.
    expanded: Vec<bool>,
    word: Option<String>,
    word_expanded: bool,
}

impl Pending {
    fn push_char(&mut self, c: char) {
        self.word.get_or_insert_with(String::new).push(c);
    }

    fn mark_expanded(&mut self) {
        self.word.get_or_insert_with(String::new);
        self.word_expanded = true;
    }

    fn end_word(&mut self) {
        if let Some(word) = self.word.take() {
            self.words.push(word);
            self.expanded.push(self.word_expanded);
        }
        self.word_expanded = false;
    }
}

impl Parser<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    /// Reads commands until `end` (a `)` or a backtick) or the end of input.
    fn list(&mut self, end: Option<char>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the command nests too deeply".into());
        }
        let mut pending = Pending::default();
        loop {
            let Some(c) = self.peek(0) else {
                if end.is_some() {
                    return Err("an opening parenthesis or backtick is never closed".into());
                }
                self.finish(pending, depth)?;
                return Ok(());
            };
            if Some(c) == end {
                self.at += 1;
                self.finish(pending, depth)?;
                return Ok(());
            }
            match c {
                ' ' | '\t' => {
                    self.at += 1;
                    pending.end_word();
                }
                '\n' | ';' | '&' | '|' => {
                    self.at += 1;
                    if matches!(self.peek(0), Some('&' | '|' | ';')) {
                        self.at += 1;
                    }
                    self.finish(std::mem::take(&mut pending), depth)?;
                }
                '(' => {
                    self.at += 1;
                    self.finish(std::mem::take(&mut pending), depth)?;
                    self.list(Some(')'), depth + 1)?;
                }
                ')' => return Err("a closing parenthesis has no opening one".into()),
                '#' if pending.word.is_none() => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                }
                '\'' => {
                    self.at += 1;
                    pending.push_char_str("");
                    loop {
                        match self.peek(0) {
                            None => return Err("a single quote is never closed".into()),
                            Some('\'') => {
                                self.at += 1;
                                break;
                            }
                            Some(c) => {
                                self.at += 1;
                                pending.push_char(c);
                            }
                        }
                    }
                }
                '"' => {
                    self.at += 1;
                    pending.push_char_str("");
                    self.double_quoted(&mut pending, depth)?;
                }
                '\\' => {
                    self.at += 1;
                    match self.peek(0) {
                        None => return Err("the line ends with a backslash".into()),
                        Some('\n') => self.at += 1,
                        Some(c) => {
                            self.at += 1;
                            pending.push_char(c);
                        }
                    }
                }
                '$' => self.dollar(&mut pending, depth)?,
                '`' => {
                    self.at += 1;
                    self.backticks(depth)?;
                    pending.mark_expanded();
                }
                '<' | '>' if self.peek(1) == Some('(') => {
                    self.at += 2;
                    self.list(Some(')'), depth + 1)?;
                    pending.mark_expanded();
                }
                other => {
                    self.at += 1;
                    pending.push_char(other);
                }
            }
        }
    }

    fn double_quoted(&mut self, pending: &mut Pending, depth: usize) -> Result<(), String> {
        loop {
            match self.peek(0) {
                None => return Err("a double quote is never closed".into()),
                Some('"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some('\\') => {
                    self.at += 1;
                    match self.peek(0) {
                        None => return Err("a double quote is never closed".into()),
                        Some('\n') => self.at += 1,
                        Some(c @ ('$' | '`' | '"' | '\\')) => {
                            self.at += 1;
                            pending.push_char(c);
                        }
                        Some(c) => {
                            self.at += 1;
                            pending.push_char('\\');
                            pending.push_char(c);
                        }
                    }
                }
                Some('$') => self.dollar(pending, depth)?,
                Some('`') => {
                    self.at += 1;
                    self.backticks(depth)?;
                    pending.mark_expanded();
                }
                Some(c) => {
                    self.at += 1;
                    pending.push_char(c);
                }
            }
        }
    }

    /// `$(...)`, `${...}`, `$name`, or a lone `$`.
    fn dollar(&mut self, pending: &mut Pending, depth: usize) -> Result<(), String> {
        self.at += 1;
        match self.peek(0) {
            Some('(') if self.peek(1) == Some('(') => {
                // Arithmetic: numbers and variables; a command inside it is not followed.
                self.at += 2;
                let mut depth = 2usize;
                while depth > 0 {
                    match self.peek(0) {
                        None => return Err("a $(( is never closed".into()),
                        Some('$' | '`' | '\\' | '\'' | '"') => {
                            return Err("an expansion inside $((...)) is not checked".into());
                        }
                        Some('(') => depth += 1,
                        // `$((cmd) )` is a subshell in a command substitution, not arithmetic:
                        // arithmetic closes with `))` together.
                        Some(')') if depth == 2 && self.peek(1) != Some(')') => {
                            return Err("a $(( that is not arithmetic is not checked".into());
                        }
                        Some(')') => depth -= 1,
                        Some(_) => {}
                    }
                    self.at += 1;
                }
                pending.mark_expanded();
                Ok(())
            }
            Some('(') => {
                self.at += 1;
                self.list(Some(')'), depth + 1)?;
                pending.mark_expanded();
                Ok(())
            }
            Some('{') => {
                self.at += 1;
                loop {
                    match self.peek(0) {
                        None => return Err("a ${ is never closed".into()),
                        Some('}') => {
                            self.at += 1;
                            break;
                        }
                        Some('$' | '`' | '\\' | '\'' | '"' | '{') => {
                            return Err("an expansion inside ${...} is not checked".into());
                        }
                        Some(_) => self.at += 1,
                    }
                }
                pending.mark_expanded();
                Ok(())
            }
            Some(c) if c.is_ascii_alphanumeric() || "_@*#?$!-".contains(c) => {
                self.at += 1;
                if c.is_ascii_alphabetic() || c == '_' {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.at += 1;
                    }
                }
                pending.mark_expanded();
                Ok(())
            }
            Some('\'' | '"') => Err("$'...' and $\"...\" quoting is not checked".into()),
            _ => {
                pending.push_char('$');
                Ok(())
            }
        }
    }

    /// The text between backticks, parsed as commands of its own.
    fn backticks(&mut self, depth: usize) -> Result<(), String> {
        let mut inner = String::new();
        loop {
            match self.peek(0) {
                None => return Err("a backtick is never closed".into()),
                Some('`') => {
                    self.at += 1;
                    break;
                }
                Some('\\') => {
                    self.at += 1;
                    match self.peek(0) {
                        Some(c @ ('`' | '$' | '\\')) => {
                            self.at += 1;
                            inner.push(c);
                        }
                        _ => inner.push('\\'),
                    }
                }
                Some(c) => {
                    self.at += 1;
                    inner.push(c);
                }
            }
        }
        self.nested(&inner, depth + 1)
    }

    fn nested(&mut self, text: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the command nests too deeply".into());
        }
        let chars: Vec<char> = text.chars().collect();
        let mut parser = Parser {
            chars: &chars,
            at: 0,
            out: self.out,
        };
        parser.list(None, depth)?;
        if parser.at < chars.len() {
            return Err("unexpected text after the command".into());
        }
        Ok(())
    }

    /// Ends a simple command: keeps it, and looks into the code it runs (`sh -c`, `eval`).
    fn finish(&mut self, mut pending: Pending, depth: usize) -> Result<(), String> {
        pending.end_word();
        let Pending {
            words, expanded, ..
        } = pending;
        let start = words
            .iter()
            .position(|word| !is_assignment(word) && !RESERVED.contains(&word.as_str()));
        let Some(start) = start else {
            return Ok(());
        };
        let program_unknown = expanded.get(start).copied().unwrap_or(false);
        // A word made only of an expansion says nothing a rule can match.
        let words: Vec<String> = words
            .into_iter()
            .zip(expanded)
            .skip(start)
            .filter(|(word, expanded)| !(word.is_empty() && *expanded))
            .map(|(word, _)| word)
            .collect();
        if matches!(
            words.first().map(String::as_str),
            Some("case" | "for" | "select")
        ) {
            return Err(format!(
                "{} statements are not checked",
                words.first().map(String::as_str).unwrap_or_default()
            ));
        }
        for form in hidden_forms(&words) {
            let program = form.first().map(|word| base_name(word)).unwrap_or_default();
            if program == "eval" {
                self.nested(&form.get(1..).unwrap_or_default().join(" "), depth + 1)?;
            } else if matches!(
                program,
                "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "busybox"
            ) {
                let mut args = form.iter().skip(1);
                while let Some(arg) = args.next() {
                    if arg.starts_with('-') && !arg.starts_with("--") && arg.contains('c') {
                        let code = args.next().ok_or("sh -c without a command")?;
                        self.nested(code, depth + 1)?;
                        break;
                    }
                }
            }
        }
        self.out.push(SimpleCommand {
            words,
            program_unknown,
        });
        Ok(())
    }
}

impl Pending {
    /// Starts a word even if what follows is empty (`''` is a word).
    fn push_char_str(&mut self, text: &str) {
        self.word.get_or_insert_with(String::new).push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(position: i64, action: RuleAction, matcher: &str) -> Rule {
        Rule {
            id: Uuid::from_u128(position as u128),
            position,
            scope: RuleScope::Grant(Uuid::nil()),
            matcher: Matcher::parse(matcher).unwrap(),
            action,
        }
    }

    fn words(line: &str) -> Vec<String> {
        split_commands(line)
            .unwrap()
            .into_iter()
            .map(|command| command.words.join(" "))
            .collect()
    }

    #[test]
    fn statement_rules_match_kinds_and_text_and_never_shell_lines() {
        let set = RuleSet::new(vec![
            rule(1, RuleAction::Deny, "sql:drop"),
            rule(2, RuleAction::Warn, "sql:delete-without-where"),
            rule(3, RuleAction::Deny, "redis:flushall"),
            rule(4, RuleAction::Deny, "regex:(?i)pg_sleep"),
        ]);
        let facts = |text: &str, sql: &[&str], redis: &[&str]| StatementFacts {
            text: text.to_owned(),
            sql_kinds: sql.iter().map(|k| k.to_string()).collect(),
            redis_kinds: redis.iter().map(|k| k.to_string()).collect(),
        };
        let drop = set.check_statement(
            &facts("DROP TABLE t", &["drop", "write"], &[]),
            "drop table t",
        );
        assert_eq!(drop.action, RuleAction::Deny);
        assert_eq!(drop.matches[0].rule_text, "#1 deny sql:drop");
        let delete = facts(
            "DELETE FROM t",
            &["delete", "delete-without-where", "write"],
            &[],
        );
        assert_eq!(
            set.check_statement(&delete, "delete from t").action,
            RuleAction::Warn
        );
        let flush = facts("FLUSHALL", &[], &["flushall", "write"]);
        assert_eq!(
            set.check_statement(&flush, "FLUSHALL").action,
            RuleAction::Deny
        );
        // The raw text counts for deny rules even when the parser printed it otherwise.
        let sleep = facts("SELECT PG_SLEEP(1)", &["select"], &[]);
        assert_eq!(
            set.check_statement(&sleep, "select pg_sleep(1)").action,
            RuleAction::Deny
        );
        let select = facts("SELECT 1", &["select"], &[]);
        assert_eq!(
            set.check_statement(&select, "select 1").action,
            RuleAction::Allow
        );
        // Statement matchers never touch a shell line, even one whose program is unknown.
        let statements_only = RuleSet::new(set.rules().iter().take(3).cloned().collect());
        assert_eq!(
            statements_only.check("drop; flushall; $x").action,
            RuleAction::Allow
        );
        assert!(set.needs_sql_kinds());
        for bad in ["sql:dropp", "sql:", "redis:flush all", "redis:a;b"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Matcher::parse("sql:DROP").unwrap().to_string(), "sql:drop");
        assert_eq!(
            Matcher::parse("redis:FLUSHALL").unwrap().to_string(),
            "redis:flushall"
        );
    }

    #[test]
    fn every_command_of_a_line_is_found_however_it_is_joined() {
        let cases: &[(&str, &[&str])] = &[
            ("ls -l", &["ls -l"]),
            ("ls; rm -rf /tmp/x", &["ls", "rm -rf /tmp/x"]),
            ("a && b || c | d & e\nf", &["a", "b", "c", "d", "e", "f"]),
            ("echo $(rm -rf /)", &["rm -rf /", "echo"]),
            ("echo `rm -rf /`", &["rm -rf /", "echo"]),
            ("echo \"$(id; whoami)\"", &["id", "whoami", "echo"]),
            ("(cd /tmp && rm x)", &["cd /tmp", "rm x"]),
            ("diff <(ls a) >(cat)", &["ls a", "cat", "diff"]),
            ("r''m -rf '/'", &["rm -rf /"]),
            ("\\rm -rf /", &["rm -rf /"]),
            ("FOO=1 BAR=2 rm -rf /", &["rm -rf /"]),
            ("{ rm -rf /; }", &["rm -rf /"]),
            ("if true; then rm -rf /; fi", &["true", "rm -rf /"]),
            (
                "sh -c 'ls; rm -rf /'",
                &["ls", "rm -rf /", "sh -c ls; rm -rf /"],
            ),
            (
                "sudo bash -c \"rm -rf /\"",
                &["rm -rf /", "sudo bash -c rm -rf /"],
            ),
            ("eval 'rm -rf /'", &["rm -rf /", "eval rm -rf /"]),
            ("ls # ; rm -rf /", &["ls"]),
            ("echo $((6*(3+4))); rm -rf /", &["echo", "rm -rf /"]),
            ("echo 'a;b' \"c|d\"", &["echo a;b c|d"]),
        ];
        for (line, expected) in cases {
            assert_eq!(words(line), *expected, "line {line:?}");
        }
    }

    #[test]
    fn lines_the_splitter_cannot_follow_are_errors() {
        for line in [
            "echo 'open",
            "echo \"open",
            "echo $(ls",
            "echo `ls",
            "ls )",
            "echo $((1+$(rm -rf /)))",
            "echo $((1+2)",
            "echo $((rm -rf /tmp/x) )",
            "echo $((ls)|(rm -rf /))",
            "echo ${x:-$(rm -rf /)}",
            "case x in a) rm -rf /;; esac",
            "echo \\",
            "echo $'\\x72m'",
        ] {
            assert!(split_commands(line).is_err(), "line {line:?}");
        }
        let deep = format!("{}ls{}", "$(".repeat(40), ")".repeat(40));
        assert!(split_commands(&deep).is_err());
        assert!(split_commands(&"x".repeat(MAX_LINE_BYTES + 1)).is_err());
    }

    #[test]
    fn matchers_parse_and_print_back() {
        for text in [
            "any",
            "prefix:rm -rf",
            "glob:rm *",
            "regex:^rm\\s",
            "list:privilege-escalation",
            "list:package-managers",
        ] {
            assert_eq!(Matcher::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "rm",
            "prefix:",
            "prefix:  ",
            "regex:(",
            "list:nope",
            "shell:x",
            "prefix:a\nb",
        ] {
            assert!(Matcher::parse(bad).is_err(), "match {bad:?}");
        }
        assert!(RuleAction::parse("Deny").is_err());
        for action in ["allow", "warn", "approve", "deny"] {
            assert_eq!(RuleAction::parse(action).unwrap().to_string(), action);
        }
    }

    #[test]
    fn matchers_match_what_they_say() {
        let cases: &[(&str, &str, bool)] = &[
            ("prefix:rm -rf", "rm -rf /tmp/x", true),
            ("prefix:rm", "rmdir x", false),
            ("prefix:rm -rf", "rm -r", false),
            ("glob:rm *", "rm -rf /", true),
            ("glob:rm ?", "rm x", true),
            ("glob:rm ?", "rm xy", false),
            ("glob:*", "anything at all", true),
            ("glob:*a*b*c*", "xxaxxbxxcxx", true),
            ("glob:*a*b*c*", "xxaxxcxxbxx", false),
            (
                "regex:^systemctl (stop|restart) ",
                "systemctl stop nginx",
                true,
            ),
            (
                "regex:^systemctl (stop|restart) ",
                "systemctl status nginx",
                false,
            ),
            ("list:privilege-escalation", "sudo -i", true),
            ("list:privilege-escalation", "/usr/bin/pkexec x", true),
            ("list:privilege-escalation", "chmod +s /bin/x", true),
            ("list:privilege-escalation", "chmod u+s /bin/x", true),
            ("list:privilege-escalation", "chmod 4755 /bin/x", true),
            ("list:privilege-escalation", "chmod 0755 /bin/x", false),
            ("list:privilege-escalation", "chmod u+x,g-s x", false),
            ("list:privilege-escalation", "sudoku", false),
            ("list:package-managers", "apt-get install x", true),
            ("list:package-managers", "pip3 install x", true),
            ("list:package-managers", "ls", false),
        ];
        for (matcher, command, expected) in cases {
            let words: Vec<String> = command.split(' ').map(str::to_owned).collect();
            assert_eq!(
                Matcher::parse(matcher).unwrap().matches(&words),
                *expected,
                "{matcher} on {command:?}"
            );
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_one_denied_command_denies_the_line() {
        let rules = RuleSet::new(vec![
            rule(20, RuleAction::Deny, "prefix:rm -rf"),
            rule(10, RuleAction::Allow, "prefix:rm -rf /tmp/scratch"),
            rule(30, RuleAction::Warn, "list:privilege-escalation"),
        ]);
        assert_eq!(rules.check("rm -rf /tmp/scratch").action, RuleAction::Allow);
        assert_eq!(rules.check("ls").action, RuleAction::Allow);
        assert!(rules.check("ls").matches.is_empty());
        let denied = rules.check("ls; rm -rf /tmp/x");
        assert_eq!(denied.action, RuleAction::Deny);
        assert_eq!(
            denied.refusal().unwrap(),
            "rampart: command refused by rule #20 deny prefix:rm -rf: rm -rf /tmp/x"
        );
        let warned = rules.check("sudo -v");
        assert_eq!(warned.action, RuleAction::Warn);
        assert_eq!(
            warned.matches[0].rule_text,
            "#30 warn list:privilege-escalation"
        );
        assert!(warned.refusal().is_none());
    }

    #[test]
    fn an_approve_rule_holds_a_line_unless_another_command_of_it_is_denied() {
        let rules = RuleSet::new(vec![
            rule(10, RuleAction::Approve, "prefix:systemctl restart"),
            rule(20, RuleAction::Deny, "prefix:rm -rf"),
            rule(30, RuleAction::Warn, "prefix:uptime"),
        ]);
        let held = rules.check("uptime && sudo systemctl restart nginx");
        assert_eq!(held.action, RuleAction::Approve);
        let approval = held.approval().unwrap();
        assert_eq!(approval.rule_text, "#10 approve prefix:systemctl restart");
        assert_eq!(approval.command, "sudo systemctl restart nginx");
        // Where nobody can wait for an approver (an exec) the same decision is a refusal.
        assert_eq!(
            held.refusal().unwrap(),
            "rampart: command refused: rule #10 approve prefix:systemctl restart needs an \
             approver's decision, which only an interactive shell can wait for (ssh -t, then run \
             it there): sudo systemctl restart nginx"
        );
        // A denied command denies the line; nothing is held.
        let denied = rules.check("systemctl restart x; rm -rf /");
        assert_eq!(denied.action, RuleAction::Deny);
        assert!(denied.approval().is_none());
        assert!(rules.check("uptime").approval().is_none());
        // Statements: the same order and action.
        let facts = StatementFacts {
            text: "systemctl restart".into(),
            ..StatementFacts::default()
        };
        assert_eq!(
            rules.check_statement(&facts, "systemctl restart").action,
            RuleAction::Approve
        );
    }

    #[test]
    fn argv_is_checked_as_words_and_a_shell_script_as_a_line() {
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        let rules = RuleSet::new(vec![
            rule(1, RuleAction::Deny, "prefix:rm -rf"),
            rule(2, RuleAction::Allow, "prefix:echo"),
            rule(3, RuleAction::Allow, "prefix:sh -c"),
            rule(4, RuleAction::Deny, "any"),
        ]);
        // One word holding shell syntax is one argument, not a second command.
        let echo = rules.check_argv(&argv(&["echo", "hi; rm -rf /"]));
        assert_eq!(echo.action, RuleAction::Allow);
        assert_eq!(rules.check("echo hi; rm -rf /").action, RuleAction::Deny);
        assert_eq!(
            rules.check_argv(&argv(&["/bin/rm", "-rf", "/"])).action,
            RuleAction::Deny
        );
        assert_eq!(
            rules.check_argv(&argv(&["cat", "/etc/shadow"])).action,
            RuleAction::Deny
        );
        let script = rules.check_argv(&argv(&["sh", "-c", "echo hi; rm -rf /"]));
        assert_eq!(script.action, RuleAction::Deny);
        let script = rules.check_argv(&argv(&["sh", "-c", "echo hi"]));
        assert_eq!(script.action, RuleAction::Allow);
        assert!(
            RuleSet::default()
                .check_argv(&argv(&["rm", "-rf", "/"]))
                .refusal()
                .is_none()
        );
    }

    #[test]
    fn deny_rules_see_through_paths_and_wrappers_but_allow_rules_do_not() {
        let rules = RuleSet::new(vec![
            rule(1, RuleAction::Deny, "prefix:rm -rf"),
            rule(2, RuleAction::Allow, "prefix:ls"),
            rule(3, RuleAction::Allow, "prefix:uptime"),
            rule(4, RuleAction::Deny, "any"),
        ]);
        for line in [
            "/bin/rm -rf /",
            "sudo -u root rm -rf /",
            "env A=1 nice -n 5 rm -rf /",
            "timeout 5 rm -rf /",
            "ls | xargs rm -rf",
            "sudo ls",
            "/tmp/evil/ls",
            "$X -rf /",
            "$(echo rm) -rf /",
            "ls; cat /etc/shadow",
            "echo 'unterminated",
        ] {
            assert_eq!(rules.check(line).action, RuleAction::Deny, "line {line:?}");
        }
        for line in ["ls", "ls -la /tmp", "uptime && ls $HOME", ""] {
            assert_eq!(rules.check(line).action, RuleAction::Allow, "line {line:?}");
        }
    }

    #[test]
    fn privilege_escalation_is_found_in_any_command_of_a_line() {
        assert_eq!(
            privilege_escalation("ls && /usr/bin/sudo -i").as_deref(),
            Some("/usr/bin/sudo -i")
        );
        assert_eq!(
            privilege_escalation("env X=1 nohup chmod u+s /tmp/x").as_deref(),
            Some("env X=1 nohup chmod u+s /tmp/x")
        );
        assert_eq!(privilege_escalation("echo sudo; sudoku"), None);
        assert_eq!(privilege_escalation("echo 'unterminated"), None);
    }

    #[test]
    fn without_rules_nothing_is_parsed_or_refused() {
        let decision = RuleSet::default().check("echo 'unterminated");
        assert_eq!(decision, Decision::allowed());
    }
}
