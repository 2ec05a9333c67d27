//! The scripted login, sans I/O: the device's output in, what to send (the account's name, its
//! password) and the verdict out. Which text is a login prompt, a password prompt, a success
//! or a failure is a regular expression per asset ([`LoginPatterns`]), with defaults that fit
//! common devices (Linux `login`, Cisco IOS, Juniper, HP/Aruba, MikroTik).
//!
//! What the user sees of the exchange: nothing before the password is accepted (banners and
//! prompts stay with the device); what the device sends after the password, up to and
//! including the prompt that says the login succeeded (a message of the day, the prompt), is
//! handed on to be shown and recorded, with any copy of the password in it masked.
//!
//! INVARIANT: the password never leaves this module except towards the device: the shown text
//! and every failure message are masked, and what is kept of the output is bounded.

use regex::Regex;

/// The default login prompt: `login:`, `Username:`, `User Name:`, `user:` at the end of the
/// output.
pub const DEFAULT_LOGIN_PROMPT: &str = r"(?i)(login|user ?name|user)[ \t]*:[ \t]*$";
/// The default password prompt: `Password:`, `password for x:`, `Passcode:`.
pub const DEFAULT_PASSWORD_PROMPT: &str = r"(?i)(password|passcode)[^\n:]*:[ \t]*$";
/// The default success: a shell or device prompt at the end of the output (`$`, `#`, `>`, `%`,
/// `]`), after the password.
pub const DEFAULT_SUCCESS: &str = r"[$#>%\]][ \t]*$";
/// The default failure: what Linux, BSD, Cisco, Juniper and friends say about a wrong login.
pub const DEFAULT_FAILURE: &str = r"(?i)(login incorrect|authentication failed|access denied|bad password|invalid (login|password|user)|login failed|% login invalid)";

/// How much of the device's output is kept to match prompts against.
const MAX_TAIL: usize = 4096;
/// How much output after the password is kept to show once the login succeeded.
pub const MAX_SHOWN: usize = 64 * 1024;

/// What replaces the password wherever a device echoed it.
const MASK: &[u8] = b"********";

/// The patterns of one asset, compiled.
#[derive(Debug, Clone)]
pub struct LoginPatterns {
    pub login_prompt: Regex,
    pub password_prompt: Regex,
    pub success: Regex,
    pub failure: Regex,
}

/// A pattern an administrator wrote that does not compile (or is too large).
#[derive(Debug, thiserror::Error)]
#[error("invalid {which} pattern {pattern:?}: {why}")]
pub struct PatternError {
    pub which: &'static str,
    pub pattern: String,
    pub why: String,
}

/// The most a pattern may compile to.
const MAX_PATTERN_SIZE: usize = 1 << 20;

fn compile(
    which: &'static str,
    pattern: Option<&str>,
    default: &str,
) -> Result<Regex, PatternError> {
    let text = pattern.unwrap_or(default);
    regex::RegexBuilder::new(text)
        .size_limit(MAX_PATTERN_SIZE)
        .build()
        .map_err(|err| PatternError {
            which,
            pattern: text.to_owned(),
            why: err
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_owned(),
        })
}

impl LoginPatterns {
    /// The asset's patterns: each given one, else its default.
    pub fn new(
        login_prompt: Option<&str>,
        password_prompt: Option<&str>,
        success: Option<&str>,
        failure: Option<&str>,
    ) -> Result<Self, PatternError> {
        Ok(Self {
            login_prompt: compile("login prompt", login_prompt, DEFAULT_LOGIN_PROMPT)?,
            password_prompt: compile("password prompt", password_prompt, DEFAULT_PASSWORD_PROMPT)?,
            success: compile("success", success, DEFAULT_SUCCESS)?,
            failure: compile("failure", failure, DEFAULT_FAILURE)?,
        })
    }
}

/// Where the login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the login prompt (or a password prompt, for devices that ask only that).
    Login,
    /// The name was sent; waiting for the password prompt.
    Password,
    /// The password was sent; waiting for a prompt (success) or a failure.
    Result,
}

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing yet: read more.
    Wait,
    /// Send the account's name and Enter.
    SendName,
    /// Send the password and Enter.
    SendPassword,
    /// Logged in: show (and record) these bytes, the device's output after the password,
    /// password masked.
    LoggedIn(Vec<u8>),
    /// The device refused the login: its last line, password masked.
    Failed(String),
}

/// One login's progress.
#[derive(Debug)]
pub struct LoginScript {
    patterns: LoginPatterns,
    password: Vec<u8>,
    stage: Stage,
    /// The end of the output since the last thing sent, to match prompts against.
    tail: Vec<u8>,
    /// The output since the password was sent.
    shown: Vec<u8>,
}

impl Drop for LoginScript {
    fn drop(&mut self) {
        // Best effort: the copy kept for masking does not outlive the login.
        self.password.iter_mut().for_each(|byte| *byte = 0);
    }
}

impl LoginScript {
    /// A login with `password` (kept only to mask a device that echoes it).
    pub fn new(patterns: LoginPatterns, password: &[u8]) -> Self {
        Self {
            patterns,
            password: password.to_vec(),
            stage: Stage::Login,
            tail: Vec::new(),
            shown: Vec::new(),
        }
    }

    /// The device sent `data` (already decoded from Telnet).
    pub fn output(&mut self, data: &[u8]) -> Step {
        self.tail.extend_from_slice(data);
        if self.tail.len() > MAX_TAIL {
            let cut = self.tail.len() - MAX_TAIL;
            self.tail.drain(..cut);
        }
        if self.stage == Stage::Result && self.shown.len() < MAX_SHOWN {
            let room = MAX_SHOWN - self.shown.len();
            self.shown
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(data));
        }
        let text = String::from_utf8_lossy(&self.tail).into_owned();
        if let Some(found) = self.patterns.failure.find(&text) {
            // The line the failure was found on.
            let start = text
                .get(..found.start())
                .and_then(|t| t.rfind('\n'))
                .map_or(0, |i| i + 1);
            let end = text
                .get(found.end()..)
                .and_then(|t| t.find('\n'))
                .map_or(text.len(), |i| found.end() + i);
            return Step::Failed(clean_line(
                text.get(start..end).unwrap_or(""),
                &self.password,
            ));
        }
        let login_prompt = self.patterns.login_prompt.is_match(&text);
        let password_prompt = self.patterns.password_prompt.is_match(&text);
        match self.stage {
            Stage::Login | Stage::Password if password_prompt => {
                self.stage = Stage::Result;
                self.tail.clear();
                self.shown.clear();
                Step::SendPassword
            }
            Stage::Login if login_prompt => {
                self.stage = Stage::Password;
                self.tail.clear();
                Step::SendName
            }
            Stage::Result if login_prompt || password_prompt => Step::Failed(format!(
                "the device asked for the login again ({})",
                self.last_line()
            )),
            Stage::Result if self.patterns.success.is_match(&text) => {
                Step::LoggedIn(mask(&self.shown, &self.password))
            }
            _ => Step::Wait,
        }
    }

    /// Whether the password was sent (a failure after it is a refused credential).
    pub fn password_sent(&self) -> bool {
        self.stage == Stage::Result
    }

    /// The device's last non-empty line, password masked, control characters removed, bounded.
    pub fn last_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.tail);
        let line = text
            .lines()
            .map(|line| line.trim())
            .rfind(|line| !line.is_empty())
            .unwrap_or("");
        clean_line(line, &self.password)
    }
}

/// A line fit for a message: password masked, control characters removed, at most 200
/// characters.
fn clean_line(line: &str, password: &[u8]) -> String {
    // Control characters go first, so none can split a copy of the password the mask would miss.
    let visible: String = line.chars().filter(|c| !c.is_control()).collect();
    let masked = mask(visible.as_bytes(), password);
    String::from_utf8_lossy(&masked)
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// `data` with every copy of `secret` replaced by a mask.
fn mask(data: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(secret) {
            out.extend_from_slice(MASK);
            rest = rest.get(secret.len()..).unwrap_or(&[]);
        } else if let Some((&byte, tail)) = rest.split_first() {
            out.push(byte);
            rest = tail;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &[u8] = b"canary-pw-1234";

    fn script() -> LoginScript {
        LoginScript::new(
            LoginPatterns::new(None, None, None, None).unwrap(),
            PASSWORD,
        )
    }

    #[test]
    fn a_linux_login_goes_name_password_prompt() {
        let mut login = script();
        assert_eq!(login.output(b"Debian GNU/Linux 13\r\n"), Step::Wait);
        assert_eq!(login.output(b"host lo"), Step::Wait);
        assert_eq!(login.output(b"gin: "), Step::SendName);
        assert_eq!(login.output(b"admin\r\nPassword: "), Step::SendPassword);
        assert!(login.password_sent());
        assert_eq!(login.output(b"\r\nLast login: today\r\n"), Step::Wait);
        assert_eq!(
            login.output(b"admin@host:~$ "),
            Step::LoggedIn(b"\r\nLast login: today\r\nadmin@host:~$ ".to_vec())
        );
    }

    #[test]
    fn cisco_style_prompts_and_failure() {
        let mut login = script();
        assert_eq!(
            login.output(b"\r\nUser Access Verification\r\n\r\nUsername: "),
            Step::SendName
        );
        assert_eq!(login.output(b"Password: "), Step::SendPassword);
        assert_eq!(
            login.output(b"\r\n% Authentication failed\r\n\r\nUsername: "),
            Step::Failed("% Authentication failed".into())
        );
    }

    #[test]
    fn a_password_only_device_and_a_login_asked_again() {
        let mut login = script();
        assert_eq!(login.output(b"Password:"), Step::SendPassword);
        assert!(matches!(login.output(b"\r\nlogin: "), Step::Failed(why) if why.contains("again")));
    }

    #[test]
    fn an_echoed_password_is_masked_in_what_is_shown_and_in_failures() {
        let mut login = script();
        login.output(b"login: ");
        login.output(b"Password: ");
        assert_eq!(login.output(b"canary-pw"), Step::Wait);
        let Step::LoggedIn(shown) = login.output(b"-1234\r\nrouter> ") else {
            panic!("not logged in");
        };
        assert_eq!(shown, b"********\r\nrouter> ");
        let mut login = script();
        login.output(b"login: ");
        login.output(b"Password: ");
        let Step::Failed(why) = login.output(b"canary-pw-1234: Login incorrect\r\n") else {
            panic!("no failure");
        };
        assert!(!why.contains("canary"), "{why}");
    }

    #[test]
    fn custom_patterns_and_bad_patterns() {
        let patterns = LoginPatterns::new(
            Some("(?i)who goes there\\?$"),
            Some("secret\\?$"),
            Some("READY$"),
            Some("GO AWAY"),
        )
        .unwrap();
        let mut login = LoginScript::new(patterns, PASSWORD);
        assert_eq!(login.output(b"who goes there?"), Step::SendName);
        assert_eq!(login.output(b"secret?"), Step::SendPassword);
        assert_eq!(login.output(b"READY"), Step::LoggedIn(b"READY".to_vec()));
        let err = LoginPatterns::new(Some("(unclosed"), None, None, None).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid login prompt pattern"),
            "{err}"
        );
    }

    #[test]
    fn the_defaults_fit_common_devices() {
        // (device, banner + login prompt, password prompt, after the password, logged in?)
        type Case = (
            &'static str,
            &'static [u8],
            &'static [u8],
            &'static [u8],
            bool,
        );
        let cases: [Case; 8] = [
            (
                "linux",
                b"Debian GNU/Linux 13\r\nhost login: ",
                b"Password: ",
                b"\r\nLast login: x\r\nu@host:~$ ",
                true,
            ),
            (
                "cisco",
                b"\r\nUser Access Verification\r\n\r\nUsername: ",
                b"Password: ",
                b"\r\nsw1>",
                true,
            ),
            (
                "juniper",
                b"\r\nrouter (ttyp0)\r\n\r\nlogin: ",
                b"Password:",
                b"\r\n--- JUNOS 21\r\nadmin@router> ",
                true,
            ),
            (
                "mikrotik",
                b"MikroTik 7\r\nLogin: ",
                b"Password: ",
                b"\r\n[admin@MikroTik] > ",
                true,
            ),
            (
                "procurve",
                b"HP J9279A\r\nUsername: ",
                b"Password: ",
                b"\r\nswitch# ",
                true,
            ),
            (
                "linux, wrong",
                b"host login: ",
                b"Password: ",
                b"\r\nLogin incorrect\r\nhost login: ",
                false,
            ),
            (
                "mikrotik, wrong",
                b"Login: ",
                b"Password: ",
                b"\r\nLogin failed, incorrect username or password\r\n",
                false,
            ),
            (
                "aruba, wrong",
                b"User: ",
                b"Password: ",
                b"\r\nInvalid password\r\n",
                false,
            ),
        ];
        for (device, banner, password_prompt, after, logged_in) in cases {
            let mut login = script();
            assert_eq!(login.output(banner), Step::SendName, "{device}");
            assert_eq!(
                login.output(password_prompt),
                Step::SendPassword,
                "{device}"
            );
            let step = login.output(after);
            if logged_in {
                assert_eq!(step, Step::LoggedIn(after.to_vec()), "{device}");
            } else {
                assert!(matches!(step, Step::Failed(_)), "{device}: {step:?}");
            }
        }
    }

    #[test]
    fn endless_output_is_bounded() {
        let mut login = script();
        login.output(b"login: ");
        login.output(b"Password: ");
        for _ in 0..1000 {
            assert_eq!(login.output(&[b'x'; 1000]), Step::Wait);
        }
        assert!(login.tail.len() <= MAX_TAIL);
        assert!(login.shown.len() <= MAX_SHOWN);
    }

    #[test]
    fn a_motd_line_ending_in_a_prompt_character_is_not_a_prompt_until_the_output_ends_there() {
        let mut login = script();
        login.output(b"login: ");
        login.output(b"Password: ");
        assert_eq!(login.output(b"\r\nsee <https://example>\r\n"), Step::Wait);
        assert!(matches!(login.output(b"$ "), Step::LoggedIn(_)));
    }
}
