//! The command log: which commands a user ran in an interactive shell, read from what the
//! terminal shows rather than from raw keystrokes, so line editing, backspace, history recall and
//! tab completion give the command that actually ran.
//!
//! Pure: the relay feeds the user's input and the target's output; a small screen of characters
//! ([`crate::terminal`], no attributes, rows allocated as written) keeps what the terminal shows. When the user presses Enter, the command is the line under the cursor minus
//! the prompt, read once the target has echoed the newline. Full-screen programs (vim, top, less)
//! run on the alternate screen, where keystrokes are not commands.

/// The emulated screen is bounded whatever size the client claims, so a hostile resize cannot
/// make Rampart allocate without limit (C7).
const MAX_ROWS: u16 = 300;
const MAX_COLS: u16 = 1000;
/// A command longer than this is cut (with a mark): a log line, not a file.
const MAX_COMMAND_CHARS: usize = 4096;

use crate::terminal::Terminal;

/// Where the prompt ended when the user started typing a command line.
#[derive(Debug, Clone)]
struct Prompt {
    row: u16,
    col: u16,
    /// The text left of the cursor on that row: lets a redrawn line (after tab completion lists
    /// candidates) be recognized and the prompt stripped again.
    text: String,
}

pub struct CommandLog {
    screen: Terminal,
    prompt: Option<Prompt>,
    /// Enter was pressed; the command is read when the target echoes the newline.
    pending: bool,
}

impl std::fmt::Debug for CommandLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandLog")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

fn bounded(cols: u32, rows: u32) -> (u16, u16) {
    let clamp = |value: u32, max: u16, default: u16| match value {
        0 => default,
        v => u16::try_from(v).unwrap_or(max).min(max),
    };
    (clamp(rows, MAX_ROWS, 24), clamp(cols, MAX_COLS, 80))
}

impl CommandLog {
    pub fn new(cols: u32, rows: u32) -> Self {
        let (rows, cols) = bounded(cols, rows);
        Self {
            screen: Terminal::new(rows, cols, false),
            prompt: None,
            pending: false,
        }
    }

    pub fn resize(&mut self, cols: u32, rows: u32) {
        let (rows, cols) = bounded(cols, rows);
        self.screen.set_size(rows, cols);
        self.prompt = None;
    }

    /// What the user typed.
    pub fn input(&mut self, data: &[u8]) {
        if self.screen.alternate_screen() {
            self.prompt = None;
            self.pending = false;
            return;
        }
        for &byte in data {
            if self.pending {
                break;
            }
            match byte {
                b'\r' | b'\n' => self.pending = self.prompt.is_some(),
                // Ctrl-C abandons the line.
                0x03 => self.prompt = None,
                _ if self.prompt.is_none() => self.prompt = Some(self.current_prompt()),
                _ => {}
            }
        }
    }

    /// What the target sent; returns the commands completed by it.
    pub fn output(&mut self, data: &[u8]) -> Vec<String> {
        let mut commands = Vec::new();
        let mut rest = data;
        while self.pending {
            let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            let (line, tail) = rest.split_at(newline);
            self.screen.process(line);
            if let Some(command) = self.read_command() {
                commands.push(command);
            }
            self.pending = false;
            self.prompt = None;
            rest = tail;
        }
        self.screen.process(rest);
        commands
    }

    fn current_prompt(&self) -> Prompt {
        let screen = &self.screen;
        let (row, col) = screen.cursor_position();
        Prompt {
            row,
            col,
            text: screen.contents_between(row, 0, row, col),
        }
    }

    /// The command line as the screen shows it now (Enter is being pressed): `None` without a
    /// line typed since the prompt, or on the alternate screen (a full-screen program).
    pub fn line_now(&self) -> Option<String> {
        if self.in_full_screen() {
            return None;
        }
        self.read_command()
    }

    /// Whether a full-screen program (vim, top, less) has the terminal.
    pub fn in_full_screen(&self) -> bool {
        self.screen.alternate_screen()
    }

    /// Forgets the line being typed (it was refused and cleared): the next key starts a new one.
    pub fn abandon_line(&mut self) {
        self.prompt = None;
        self.pending = false;
    }

    /// The logical line under the cursor (following wrapped rows), minus the prompt.
    fn read_command(&self) -> Option<String> {
        let prompt = self.prompt.as_ref()?;
        let screen = &self.screen;
        let (_, cols) = screen.size();
        let (cursor_row, _) = screen.cursor_position();
        let mut start_row = cursor_row;
        while start_row > 0 && screen.row_wrapped(start_row - 1) {
            start_row -= 1;
        }
        let line = if start_row == prompt.row {
            screen.contents_between(prompt.row, prompt.col, cursor_row, cols)
        } else {
            let whole = screen.contents_between(start_row, 0, cursor_row, cols);
            match whole.strip_prefix(&prompt.text) {
                Some(command) => command.to_owned(),
                None => whole,
            }
        };
        let command = line.trim();
        if command.is_empty() {
            return None;
        }
        let mut command: String = command.chars().take(MAX_COMMAND_CHARS).collect();
        if command.len() < line.trim().len() {
            command.push_str(" [cut]");
        }
        Some(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a conversation: (typed, echoed) pairs; returns the commands logged.
    fn check(steps: &[(&str, &str)]) -> Vec<String> {
        let mut log = CommandLog::new(80, 24);
        let mut commands = Vec::new();
        for (typed, echoed) in steps {
            log.input(typed.as_bytes());
            commands.extend(log.output(echoed.as_bytes()));
        }
        commands
    }

    #[test]
    fn typed_commands() {
        assert_eq!(
            check(&[
                ("", "root@web:~# "),
                ("ls -la\r", "ls -la\r\n"),
                ("", "total 0\r\nroot@web:~# ")
            ]),
            ["ls -la"]
        );
    }

    #[test]
    fn backspace_and_line_editing() {
        // "lss" typed, one backspace (the shell erases with BS SPACE BS), then " /tmp".
        let steps = [
            ("", "$ "),
            ("l", "l"),
            ("s", "s"),
            ("s", "s"),
            ("\x7f", "\x08 \x08"),
            (" /tmp", " /tmp"),
            ("\r", "\r\n"),
        ];
        assert_eq!(check(&steps), ["ls /tmp"]);
    }

    #[test]
    fn history_recall_redraws_the_line() {
        let steps = [
            ("", "$ "),
            ("echo one\r", "echo one\r\none\r\n$ "),
            // Up arrow: the shell rewrites the line with the previous command.
            ("\x1b[A", "echo one"),
            ("\r", "\r\n"),
        ];
        assert_eq!(check(&steps), ["echo one", "echo one"]);
    }

    #[test]
    fn tab_completion_listing_redraws_the_prompt() {
        let steps = [
            ("", "user@host:~$ "),
            ("cat /etc/pas", "cat /etc/pas"),
            ("\t", "swd"),
            ("\r", "\r\n"),
            ("", "root:x:0:0\r\nuser@host:~$ "),
            ("ls /u", "ls /u"),
            // Ambiguous completion: candidates listed, prompt and line redrawn below.
            ("\t\t", "\r\nusr/  u2/\r\nuser@host:~$ ls /u"),
            ("sr\r", "sr\r\n"),
        ];
        assert_eq!(check(&steps), ["cat /etc/passwd", "ls /usr"]);
    }

    #[test]
    fn full_screen_programs_and_unechoed_input_log_nothing() {
        let steps = [
            ("", "$ "),
            (
                "vim notes\r",
                "vim notes\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n",
            ),
            (":wq\r", ":wq"),
            ("ihello\r", "hello"),
            ("", "\x1b[?1049l$ "),
            // A password prompt: nothing is echoed, so nothing is logged.
            ("sudo -v\r", "sudo -v\r\n[sudo] password for me: "),
            ("secret\r", "\r\n"),
        ];
        assert_eq!(check(&steps), ["vim notes", "sudo -v"]);
    }

    #[test]
    fn pasted_line_and_long_lines_that_wrap() {
        let long = format!("echo {}", "x".repeat(150));
        let steps = [("", "$ "), (&*format!("{long}\r"), &*format!("{long}\r\n"))];
        assert_eq!(check(&steps), [long]);
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let mut log = CommandLog::new(65535, 65535);
        log.resize(0, 0);
        log.resize(u32::MAX, u32::MAX);
        log.input(b"x");
        assert!(log.output(b"\x1b[99999;99999Hx\r\n").is_empty());
        assert_eq!(log.screen.size(), (MAX_ROWS, MAX_COLS));
    }
}
