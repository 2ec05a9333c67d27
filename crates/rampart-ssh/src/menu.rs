//! The target menu: what `ssh -p 2222 alice@bastion` shows when no target is named.
//!
//! This module owns the menu's state (the filter the user types, the selection, the scroll
//! position) and turns it into a screen. It is a pure state machine: no I/O, no tokio, no clock.
//! The session channel feeds it the bytes the user typed and the terminal size, and writes what
//! [`Menu::render`] returns. Keeping it pure means every key sequence, split read and odd terminal
//! size can be tested without a terminal or an SSH connection, and that nothing a user types can
//! block or slow the relay.
//!
//! The input comes from an untrusted peer, so every buffer here is bounded: the filter, the
//! escape-sequence buffer, and the rendered screen (only the visible lines are drawn, whatever
//! size the client claims).

/// One target the user may pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// What the user picks, e.g. "root@web-01".
    pub label: String,
    /// A hint shown beside it, e.g. "10.0.0.5:22".
    pub detail: String,
}

/// What the caller should do after [`Menu::input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuOutcome {
    /// Keep going: redraw with `render()` and wait for more input.
    Pending,
    /// The user chose the item at this index of the ORIGINAL `items` vector.
    Chosen(usize),
    /// The user left (q with an empty filter, Ctrl-C, Ctrl-D).
    Quit,
}

/// The longest escape sequence kept, ESC and `[` included. Real key sequences are far shorter
/// (`ESC [ 1 ; 5 A` is 6 bytes); anything longer is consumed without being stored.
const PENDING_MAX: usize = 16;

/// The longest filter. Nobody types a target name this long; the bound stops a paste from
/// growing the filter (and the work done on every key) without limit.
const FILTER_MAX: usize = 256;

/// Layout minimums: below these the screen is drawn as if it were this big, which keeps the
/// arithmetic simple and never panics. The terminal then wraps or clips, which is harmless.
const MIN_COLS: usize = 20;
const MIN_ROWS: usize = 5;

/// Lines that are not list lines: title, filter, blank line, footer.
const CHROME_ROWS: usize = 4;

const CLEAR: &str = "\x1b[H\x1b[2J";
const REVERSE: &str = "\x1b[7m";
const RESET: &str = "\x1b[0m";
const FOOTER: &str = "Up/Down move  Enter connect  type to filter  q quit";

/// Where the escape-sequence parser is. Keys like the arrows arrive as several bytes, and an SSH
/// channel may split them across reads, so the parser keeps its place between `input` calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Escape {
    /// Not inside a sequence.
    #[default]
    Ground,
    /// Saw ESC.
    Esc,
    /// Saw `ESC O` (SS3): the next byte ends the sequence.
    Ss3,
    /// Saw `ESC [` (CSI) and these parameter and intermediate bytes.
    Csi(Vec<u8>),
    /// A CSI longer than [`PENDING_MAX`]: its bytes are dropped up to the final byte, so they do
    /// not end up in the filter.
    CsiOverlong,
}

/// The interactive target menu of one session channel.
#[derive(Debug)]
pub struct Menu {
    user: String,
    items: Vec<MenuItem>,
    /// Per item, `label\ndetail` in lower case: computed once so filtering is a plain substring
    /// search. The newline keeps a filter from matching across label and detail, since the
    /// filter can never contain one.
    haystacks: Vec<String>,
    cols: u32,
    rows: u32,
    /// Printable ASCII only, at most [`FILTER_MAX`] characters.
    filter: String,
    /// Indices into `items` of the items that match the filter, in their original order.
    matches: Vec<usize>,
    /// Position in `matches` of the selected item; 0 when `matches` is empty.
    selected: usize,
    /// Position in `matches` of the first list line on screen.
    scroll: usize,
    escape: Escape,
}

impl Menu {
    /// A menu of `items` for `user`, on a `cols` x `rows` terminal.
    pub fn new(user: &str, items: Vec<MenuItem>, cols: u32, rows: u32) -> Self {
        let haystacks = items
            .iter()
            .map(|item| format!("{}\n{}", item.label, item.detail).to_lowercase())
            .collect();
        let matches = (0..items.len()).collect();
        Self {
            user: user.to_owned(),
            items,
            haystacks,
            cols,
            rows,
            filter: String::new(),
            matches,
            selected: 0,
            scroll: 0,
            escape: Escape::Ground,
        }
    }

    /// The terminal changed size (an SSH window-change request).
    pub fn resize(&mut self, cols: u32, rows: u32) {
        self.cols = cols;
        self.rows = rows;
        self.follow_selection();
    }

    /// Handles what the user typed. Several keys may arrive at once (a paste, or a fast typist
    /// on a slow link): they are handled in order, and the first one that ends the menu wins;
    /// the rest were typed after the choice and are not for the menu.
    pub fn input(&mut self, bytes: &[u8]) -> MenuOutcome {
        for &byte in bytes {
            let outcome = self.byte(byte);
            if outcome != MenuOutcome::Pending {
                return outcome;
            }
        }
        MenuOutcome::Pending
    }

    /// The full screen, as bytes to write to the terminal: clear the screen, then draw.
    ///
    /// The last line (the footer) has no line ending: on a terminal exactly `rows` high, one
    /// would scroll the title off the top.
    pub fn render(&self) -> String {
        let width = layout_cols(self.cols);
        let height = list_height(self.rows);
        let mut out = String::new();
        out.push_str(CLEAR);

        let user = clean(&self.user);
        let title = if self.filter.is_empty() {
            format!("Rampart: targets for {user} ({})", self.items.len())
        } else {
            format!(
                "Rampart: targets for {user} ({} of {})",
                self.matches.len(),
                self.items.len()
            )
        };
        push_line(&mut out, &title, width);
        push_line(&mut out, &self.filter_line(width), width);

        if self.items.is_empty() {
            push_line(&mut out, "  (you may not use any target now)", width);
        } else if self.matches.is_empty() {
            push_line(&mut out, "  (no target matches)", width);
        } else {
            self.push_list(&mut out, width, height);
        }

        push_line(&mut out, "", width);
        out.push_str(&fit(FOOTER, width));
        out
    }

    /// Draws the visible part of the filtered list, and only that part: a client claiming a
    /// 65535-row terminal gets at most one line per matching item.
    fn push_list(&self, out: &mut String, width: usize, height: usize) {
        // Columns are sized over all items, not only the matches, so they stay put while the
        // user types.
        let (label_chars, detail_chars) =
            self.items.iter().fold((0, 0), |(label, detail), item| {
                (
                    label.max(item.label.chars().count()),
                    detail.max(item.detail.chars().count()),
                )
            });
        // Leave room for the two-column prefix so the start of every label shows.
        let label_width = label_chars.min(width.saturating_sub(4));
        // The highlight bar spans both columns, whatever the selected item's own length.
        let bar_width = 2usize
            .saturating_add(label_width)
            .saturating_add(2)
            .saturating_add(detail_chars)
            .min(width);

        let top = scroll_for(self.scroll, self.selected, self.matches.len(), height);
        for (position, &index) in self.matches.iter().enumerate().skip(top).take(height) {
            let Some(item) = self.items.get(index) else {
                continue;
            };
            let selected = position == self.selected;
            let mut line = String::from(if selected { "> " } else { "  " });
            let label = clean(&item.label);
            let label_len = label.chars().count().min(label_width);
            line.extend(label.chars().take(label_width));
            pad(&mut line, label_width.saturating_sub(label_len));
            line.push_str("  ");
            line.push_str(&clean(&item.detail));
            let mut line = fit(&line, width);
            if selected {
                let missing = bar_width.saturating_sub(line.chars().count());
                pad(&mut line, missing);
                out.push_str(REVERSE);
                out.push_str(&line);
                out.push_str(RESET);
                out.push_str("\r\n");
            } else {
                push_line(out, &line, width);
            }
        }
    }

    /// `Filter: ...`, showing the end of a filter too long for the line, since that is where
    /// the user is typing.
    fn filter_line(&self, width: usize) -> String {
        const PROMPT: &str = "Filter: ";
        let room = width.saturating_sub(PROMPT.len());
        let skip = self.filter.chars().count().saturating_sub(room);
        let mut line = String::from(PROMPT);
        line.extend(self.filter.chars().skip(skip));
        line
    }

    /// One byte of input, through the escape-sequence parser.
    fn byte(&mut self, byte: u8) -> MenuOutcome {
        match std::mem::take(&mut self.escape) {
            Escape::Ground => self.key(byte),
            Escape::Esc => match byte {
                b'[' => {
                    self.escape = Escape::Csi(Vec::new());
                    MenuOutcome::Pending
                }
                b'O' => {
                    self.escape = Escape::Ss3;
                    MenuOutcome::Pending
                }
                // A lone ESC (the Escape key, or Alt+key): drop it and take the byte as typed.
                _ => self.key(byte),
            },
            Escape::Ss3 => match byte {
                0x40..=0x7e => {
                    self.ss3(byte);
                    MenuOutcome::Pending
                }
                _ => self.key(byte),
            },
            Escape::Csi(mut params) => match byte {
                // The final byte.
                0x40..=0x7e => {
                    self.csi(&params, byte);
                    MenuOutcome::Pending
                }
                // Parameter and intermediate bytes. ESC and `[` count towards the bound.
                0x20..=0x3f => {
                    if params.len().saturating_add(3) <= PENDING_MAX {
                        params.push(byte);
                        self.escape = Escape::Csi(params);
                    } else {
                        self.escape = Escape::CsiOverlong;
                    }
                    MenuOutcome::Pending
                }
                // Not part of a CSI (a control key, or a byte above ASCII): the sequence was
                // broken off, so drop it and let the key work, Ctrl-C above all.
                _ => self.key(byte),
            },
            Escape::CsiOverlong => match byte {
                0x40..=0x7e => MenuOutcome::Pending,
                0x20..=0x3f => {
                    self.escape = Escape::CsiOverlong;
                    MenuOutcome::Pending
                }
                _ => self.key(byte),
            },
        }
    }

    /// A byte outside any escape sequence.
    fn key(&mut self, byte: u8) -> MenuOutcome {
        match byte {
            0x1b => self.escape = Escape::Esc,
            // Ctrl-C, Ctrl-D.
            0x03 | 0x04 => return MenuOutcome::Quit,
            b'\r' | b'\n' => {
                return self
                    .matches
                    .get(self.selected)
                    .map_or(MenuOutcome::Pending, |&index| MenuOutcome::Chosen(index));
            }
            // Backspace as DEL (most terminals) or BS.
            0x7f | 0x08 => self.backspace(),
            // Ctrl-U: clear the line, as in a shell.
            0x15 => self.clear_filter(),
            // Ctrl-P, Ctrl-N: up and down, as in Emacs and readline.
            0x10 => self.up(1),
            0x0e => self.down(1),
            // With nothing typed, q leaves; once filtering, it is a letter like any other, so
            // targets with a q in their name can be found.
            b'q' if self.filter.is_empty() => return MenuOutcome::Quit,
            0x20..=0x7e => self.type_char(char::from(byte)),
            // Tab, other control keys, and bytes of non-ASCII characters: target names are
            // ASCII, so these cannot narrow the list.
            _ => {}
        }
        MenuOutcome::Pending
    }

    fn type_char(&mut self, c: char) {
        // Past the bound the key is ignored, as a full line editor would.
        if self.filter.len() < FILTER_MAX {
            self.filter.push(c);
            self.refilter();
        }
    }

    fn backspace(&mut self) {
        if self.filter.pop().is_some() {
            self.refilter();
        }
    }

    fn clear_filter(&mut self) {
        if !self.filter.is_empty() {
            self.filter.clear();
            self.refilter();
        }
    }

    /// A complete `ESC [ params final` sequence. Unknown ones are ignored.
    fn csi(&mut self, params: &[u8], final_byte: u8) {
        // Modifiers come after a `;` (`ESC [ 1 ; 2 A` is Shift-Up): only the first parameter
        // names the key.
        let first = params.split(|&b| b == b';').next().unwrap_or_default();
        match (final_byte, first) {
            (b'A', _) => self.up(1),
            (b'B', _) => self.down(1),
            (b'H', _) | (b'~', b"1" | b"7") => self.home(),
            (b'F', _) | (b'~', b"4" | b"8") => self.end(),
            (b'~', b"5") => self.up(self.page()),
            (b'~', b"6") => self.down(self.page()),
            _ => {}
        }
    }

    /// A complete `ESC O final` sequence (the cursor keys in application mode). Unknown ones
    /// (F1 to F4 among them) are ignored.
    fn ss3(&mut self, final_byte: u8) {
        match final_byte {
            b'A' => self.up(1),
            b'B' => self.down(1),
            b'H' => self.home(),
            b'F' => self.end(),
            _ => {}
        }
    }

    fn page(&self) -> usize {
        list_height(self.rows)
    }

    fn up(&mut self, by: usize) {
        self.selected = self.selected.saturating_sub(by);
        self.follow_selection();
    }

    fn down(&mut self, by: usize) {
        self.selected = self
            .selected
            .saturating_add(by)
            .min(self.matches.len().saturating_sub(1));
        self.follow_selection();
    }

    fn home(&mut self) {
        self.selected = 0;
        self.follow_selection();
    }

    fn end(&mut self) {
        self.selected = self.matches.len().saturating_sub(1);
        self.follow_selection();
    }

    /// Recomputes the matches after the filter changed. The selected item stays selected while
    /// it still matches (so backspacing does not lose the user's place); otherwise the first
    /// match is selected. Either way the selection is within the list.
    fn refilter(&mut self) {
        let previous = self.matches.get(self.selected).copied();
        let needle = self.filter.to_ascii_lowercase();
        self.matches = self
            .haystacks
            .iter()
            .enumerate()
            .filter(|(_, haystack)| haystack.contains(&needle))
            .map(|(index, _)| index)
            .collect();
        // `matches` is in ascending order, so the previous item can be found by bisection.
        self.selected = previous
            .and_then(|index| self.matches.binary_search(&index).ok())
            .unwrap_or(0);
        self.follow_selection();
    }

    /// Scrolls just enough to keep the selection on screen.
    fn follow_selection(&mut self) {
        self.scroll = scroll_for(
            self.scroll,
            self.selected,
            self.matches.len(),
            list_height(self.rows),
        );
    }
}

/// The first list position on screen, given the previous one: moves only as far as needed to
/// show `selected`, and never leaves blank lines at the bottom that the list could fill (after
/// the terminal grew, or the list shrank).
fn scroll_for(scroll: usize, selected: usize, len: usize, height: usize) -> usize {
    let height = height.max(1);
    let top = if selected < scroll {
        selected
    } else if selected >= scroll.saturating_add(height) {
        selected.saturating_add(1).saturating_sub(height)
    } else {
        scroll
    };
    top.min(len.saturating_sub(height))
}

fn layout_cols(cols: u32) -> usize {
    usize::try_from(cols).unwrap_or(usize::MAX).max(MIN_COLS)
}

/// How many list lines fit.
fn list_height(rows: u32) -> usize {
    usize::try_from(rows)
        .unwrap_or(usize::MAX)
        .max(MIN_ROWS)
        .saturating_sub(CHROME_ROWS)
}

/// The first `width` characters of `text`.
fn fit(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

fn push_line(out: &mut String, text: &str, width: usize) {
    out.extend(text.chars().take(width));
    out.push_str("\r\n");
}

fn pad(line: &mut String, spaces: usize) {
    line.extend(std::iter::repeat_n(' ', spaces));
}

/// `text` with every character that could move the cursor, change colours or reorder the line
/// replaced by `?`, one for one so widths are unchanged. Names are validated long before they
/// get here, but a name drawn on someone's terminal must not be able to draw anything else.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if is_unsafe_char(c) { '?' } else { c })
        .collect()
}

/// C0 and C1 controls and DEL, plus the bidirectional formatting characters, which can make a
/// name display as a different one.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(label: &str, detail: &str) -> MenuItem {
        MenuItem {
            label: label.to_owned(),
            detail: detail.to_owned(),
        }
    }

    fn sample() -> Menu {
        Menu::new(
            "alice",
            vec![
                item("root@web-01", "10.0.0.5:22"),
                item("deploy@web-02", "10.0.0.6:22"),
                item("root@DB-01", "10.0.1.7:2222"),
                item("admin@queue", "mq.internal:22"),
            ],
            80,
            24,
        )
    }

    fn many(count: usize) -> Menu {
        let items = (0..count)
            .map(|i| {
                item(
                    &format!("root@host-{i:03}"),
                    &format!("10.0.{}.{}:22", i / 256, i % 256),
                )
            })
            .collect();
        Menu::new("alice", items, 80, 24)
    }

    /// The labels of the matches, in order.
    fn shown(menu: &Menu) -> Vec<&str> {
        menu.matches
            .iter()
            .map(|&i| menu.items[i].label.as_str())
            .collect()
    }

    fn selected_label(menu: &Menu) -> &str {
        &menu.items[menu.matches[menu.selected]].label
    }

    /// The screen as the user sees it: one string per line, without the clear prefix and the
    /// reverse-video sequences.
    fn screen(menu: &Menu) -> Vec<String> {
        let out = menu.render();
        let body = out.strip_prefix(CLEAR).unwrap();
        body.replace(REVERSE, "")
            .replace(RESET, "")
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    fn assert_fits(menu: &Menu, cols: usize, rows: usize) {
        let lines = screen(menu);
        assert!(lines.len() <= rows, "{} lines: {lines:#?}", lines.len());
        for line in &lines {
            assert!(line.chars().count() <= cols, "too wide: {line:?}");
            assert!(!line.contains('\x1b'), "stray escape: {line:?}");
        }
    }

    #[test]
    fn filter_is_case_insensitive_on_label_and_detail() {
        let mut menu = sample();
        assert_eq!(menu.input(b"ROOT"), MenuOutcome::Pending);
        assert_eq!(shown(&menu), ["root@web-01", "root@DB-01"]);

        let mut menu = sample();
        menu.input(b"db");
        assert_eq!(shown(&menu), ["root@DB-01"]);

        // The detail matches too.
        let mut menu = sample();
        menu.input(b"MQ.INT");
        assert_eq!(shown(&menu), ["admin@queue"]);

        // But not across the label and detail.
        let mut menu = sample();
        menu.input(b"0110");
        assert!(shown(&menu).is_empty());
    }

    #[test]
    fn backspace_widens_the_filter_again_and_ctrl_u_clears_it() {
        let mut menu = sample();
        menu.input(b"web-0");
        assert_eq!(shown(&menu), ["root@web-01", "deploy@web-02"]);
        menu.input(b"2");
        assert_eq!(shown(&menu), ["deploy@web-02"]);
        menu.input(b"\x7f");
        assert_eq!(menu.filter, "web-0");
        assert_eq!(shown(&menu), ["root@web-01", "deploy@web-02"]);
        // The item selected while narrowed stays selected when the list widens.
        assert_eq!(selected_label(&menu), "deploy@web-02");
        menu.input(b"\x08\x08\x08\x08\x08");
        assert_eq!(menu.filter, "");
        assert_eq!(shown(&menu).len(), 4);
        // Backspace on an empty filter does nothing.
        assert_eq!(menu.input(b"\x7f"), MenuOutcome::Pending);

        menu.input(b"root");
        assert_eq!(shown(&menu).len(), 2);
        menu.input(b"\x15");
        assert_eq!(menu.filter, "");
        assert_eq!(shown(&menu).len(), 4);
    }

    #[test]
    fn selection_is_clamped_when_the_filter_changes() {
        let mut menu = sample();
        menu.input(b"\x1b[F");
        assert_eq!(menu.selected, 3);
        // The selected item stops matching: the first match is selected.
        menu.input(b"web");
        assert_eq!(menu.selected, 0);
        assert_eq!(selected_label(&menu), "root@web-01");
        // Nothing matches: Enter does nothing and the selection is not past the end.
        menu.input(b"zzz");
        assert!(menu.matches.is_empty());
        assert_eq!(menu.selected, 0);
        assert_eq!(menu.input(b"\r"), MenuOutcome::Pending);
        menu.input(b"\x1b[B\x0e");
        assert_eq!(menu.selected, 0);
    }

    #[test]
    fn arrow_keys_in_both_encodings() {
        let mut menu = sample();
        menu.input(b"\x1b[B");
        assert_eq!(menu.selected, 1);
        menu.input(b"\x1bOB");
        assert_eq!(menu.selected, 2);
        menu.input(b"\x1b[A");
        assert_eq!(menu.selected, 1);
        menu.input(b"\x1bOA");
        assert_eq!(menu.selected, 0);
        // Stops at the ends.
        menu.input(b"\x1b[A");
        assert_eq!(menu.selected, 0);
        menu.input(b"\x1b[B\x1b[B\x1b[B\x1b[B\x1b[B");
        assert_eq!(menu.selected, 3);
        // Shift-Up and the like still move.
        menu.input(b"\x1b[1;2A");
        assert_eq!(menu.selected, 2);
        assert_eq!(menu.filter, "");
    }

    #[test]
    fn ctrl_p_and_ctrl_n_move() {
        let mut menu = sample();
        menu.input(b"\x0e\x0e");
        assert_eq!(menu.selected, 2);
        menu.input(b"\x10");
        assert_eq!(menu.selected, 1);
    }

    #[test]
    fn arrow_keys_split_across_input_calls() {
        let mut menu = sample();
        for byte in [b"\x1b", b"[", b"B"] {
            assert_eq!(menu.input(byte), MenuOutcome::Pending);
        }
        assert_eq!(menu.selected, 1);
        menu.input(b"\x1bO");
        menu.input(b"B");
        assert_eq!(menu.selected, 2);
        menu.input(b"\x1b");
        menu.input(b"[A");
        assert_eq!(menu.selected, 1);
        menu.input(b"\x1b[5");
        menu.input(b"~");
        assert_eq!(menu.selected, 0);
        assert_eq!(menu.filter, "");
        assert_eq!(menu.escape, Escape::Ground);
    }

    #[test]
    fn page_keys_home_and_end() {
        let mut menu = many(100);
        let page = list_height(24);
        menu.input(b"\x1b[6~");
        assert_eq!(menu.selected, page);
        menu.input(b"\x1b[6~\x1b[6~\x1b[6~\x1b[6~\x1b[6~");
        assert_eq!(menu.selected, 99);
        menu.input(b"\x1b[5~");
        assert_eq!(menu.selected, 99 - page);
        menu.input(b"\x1b[H");
        assert_eq!(menu.selected, 0);
        menu.input(b"\x1b[4~");
        assert_eq!(menu.selected, 99);
        menu.input(b"\x1bOH");
        assert_eq!(menu.selected, 0);
        menu.input(b"\x1bOF");
        assert_eq!(menu.selected, 99);
        menu.input(b"\x1b[1~");
        assert_eq!(menu.selected, 0);
        assert_eq!(menu.filter, "");
    }

    #[test]
    fn enter_returns_the_original_index_when_filtered() {
        let mut menu = sample();
        assert_eq!(menu.input(b"\r"), MenuOutcome::Chosen(0));

        let mut menu = sample();
        menu.input(b"root");
        menu.input(b"\x1b[B");
        assert_eq!(menu.input(b"\r"), MenuOutcome::Chosen(2));

        let mut menu = sample();
        menu.input(b"ADMIN");
        assert_eq!(menu.input(b"\n"), MenuOutcome::Chosen(3));
    }

    #[test]
    fn enter_on_an_empty_list_does_nothing() {
        let mut menu = Menu::new("alice", Vec::new(), 80, 24);
        assert_eq!(menu.input(b"\r\n"), MenuOutcome::Pending);
        assert_eq!(menu.input(b"q"), MenuOutcome::Quit);
    }

    #[test]
    fn q_quits_only_with_an_empty_filter() {
        let mut menu = sample();
        assert_eq!(menu.input(b"q"), MenuOutcome::Quit);

        let mut menu = sample();
        assert_eq!(menu.input(b"adm"), MenuOutcome::Pending);
        assert_eq!(menu.input(b"in@q"), MenuOutcome::Pending);
        assert_eq!(menu.filter, "admin@q");
        assert_eq!(shown(&menu), ["admin@queue"]);
        // Emptied again, q quits again.
        menu.input(b"\x15");
        assert_eq!(menu.input(b"q"), MenuOutcome::Quit);

        // A typed Q is a filter character even when the filter is empty.
        let mut menu = sample();
        assert_eq!(menu.input(b"Q"), MenuOutcome::Pending);
        assert_eq!(shown(&menu), ["admin@queue"]);
    }

    #[test]
    fn ctrl_c_and_ctrl_d_quit() {
        assert_eq!(sample().input(b"\x03"), MenuOutcome::Quit);
        assert_eq!(sample().input(b"\x04"), MenuOutcome::Quit);
        // Even while filtering, or in the middle of an escape sequence.
        assert_eq!(sample().input(b"web\x03"), MenuOutcome::Quit);
        assert_eq!(sample().input(b"\x1b[1\x03"), MenuOutcome::Quit);
    }

    #[test]
    fn a_paste_stops_at_the_first_outcome() {
        let mut menu = sample();
        assert_eq!(menu.input(b"db\rq\x03"), MenuOutcome::Chosen(2));
        let mut menu = sample();
        assert_eq!(menu.input(b"\x03\r"), MenuOutcome::Quit);
    }

    #[test]
    fn unknown_escape_sequences_do_not_leak_into_the_filter() {
        let mut menu = sample();
        // Right and left, Ctrl-Right, Delete, F1 in both encodings, F5, Shift-Tab, focus in,
        // bracketed-paste markers around nothing, and a cursor position report.
        let keys: &[&[u8]] = &[
            b"\x1b[C",
            b"\x1b[D",
            b"\x1b[1;5C",
            b"\x1b[3~",
            b"\x1bOP",
            b"\x1b[11~",
            b"\x1b[15~",
            b"\x1b[Z",
            b"\x1b[I",
            b"\x1b[200~\x1b[201~",
            b"\x1b[24;80R",
        ];
        for key in keys {
            assert_eq!(menu.input(key), MenuOutcome::Pending);
            assert_eq!(menu.filter, "", "{key:?}");
            assert_eq!(menu.selected, 0, "{key:?}");
        }
        // Split in the middle of the parameters.
        menu.input(b"\x1b[1");
        menu.input(b";5");
        menu.input(b"D");
        assert_eq!(menu.filter, "");
        assert_eq!(menu.escape, Escape::Ground);
    }

    #[test]
    fn a_lone_escape_is_dropped() {
        let mut menu = sample();
        menu.input(b"\x1b");
        menu.input(b"w");
        assert_eq!(menu.filter, "w");
        // Two Escape presses, then an arrow.
        menu.input(b"\x1b\x1b\x1b[B");
        assert_eq!(menu.filter, "w");
        assert_eq!(menu.selected, 1);
        // An Escape press does not stop q from quitting.
        let mut menu = sample();
        assert_eq!(menu.input(b"\x1bq"), MenuOutcome::Quit);
    }

    #[test]
    fn the_pending_buffer_is_bounded() {
        let mut menu = sample();
        menu.input(b"\x1b[");
        for _ in 0..10_000 {
            menu.input(b"1;");
            match &menu.escape {
                Escape::Csi(params) => assert!(params.len() + 2 <= PENDING_MAX),
                Escape::CsiOverlong => {}
                other => panic!("left the sequence: {other:?}"),
            }
        }
        assert_eq!(menu.escape, Escape::CsiOverlong);
        // The final byte ends it; nothing leaked, and typing works again.
        menu.input(b"A");
        assert_eq!(menu.escape, Escape::Ground);
        assert_eq!(menu.filter, "");
        assert_eq!(menu.selected, 0);
        menu.input(b"db");
        assert_eq!(menu.filter, "db");
    }

    #[test]
    fn the_filter_is_bounded() {
        let mut menu = sample();
        menu.input(&[b'x'; 10_000]);
        assert_eq!(menu.filter.len(), FILTER_MAX);
        assert_fits(&menu, 80, 24);
        // The end of the filter, where the user types, is what shows.
        let lines = screen(&menu);
        assert!(lines[1].starts_with("Filter: xxx"));
        assert_eq!(lines[1].chars().count(), 80);
    }

    #[test]
    fn render_fits_80x24_with_100_items() {
        let mut menu = many(100);
        let lines = screen(&menu);
        assert_fits(&menu, 80, 24);
        assert_eq!(lines.len(), 24);
        assert_eq!(lines[0], "Rampart: targets for alice (100)");
        assert_eq!(lines[1], "Filter: ");
        assert!(lines[2].starts_with("> root@host-000  10.0.0.0:22"));
        assert_eq!(lines[3], "  root@host-001  10.0.0.1:22");
        assert_eq!(lines[22], "");
        assert_eq!(lines[23], FOOTER);

        for _ in 0..50 {
            menu.input(b"\x1b[B");
        }
        assert_eq!(menu.selected, 50);
        assert_fits(&menu, 80, 24);
        let out = menu.render();
        let highlighted = format!("{REVERSE}> root@host-050");
        assert!(out.contains(&highlighted), "{out}");
        assert_eq!(out.matches(REVERSE).count(), 1);

        // Moving back up scrolls only once the selection reaches the top line.
        let top = menu.scroll;
        menu.input(b"\x1b[A");
        assert_eq!(menu.scroll, top);
        assert!(menu.render().contains(&format!("{REVERSE}> root@host-049")));
    }

    #[test]
    fn the_selected_line_is_highlighted_across_both_columns() {
        let mut menu = sample();
        menu.input(b"\x1b[B");
        let out = menu.render();
        let line = out
            .split("\r\n")
            .find(|line| line.starts_with(REVERSE))
            .unwrap();
        let text = line
            .strip_prefix(REVERSE)
            .unwrap()
            .strip_suffix(RESET)
            .unwrap();
        // The widest label is 13 characters and the widest detail 14.
        assert_eq!(text, "> deploy@web-02  10.0.0.6:22   ");
        assert_eq!(text.chars().count(), 2 + 13 + 2 + 14);
    }

    #[test]
    fn render_shows_why_the_list_is_empty() {
        let menu = Menu::new("alice", Vec::new(), 80, 24);
        let lines = screen(&menu);
        assert_eq!(lines[0], "Rampart: targets for alice (0)");
        assert_eq!(lines[2], "  (you may not use any target now)");

        let mut menu = sample();
        menu.input(b"nothing-like-this");
        let lines = screen(&menu);
        assert_eq!(lines[0], "Rampart: targets for alice (0 of 4)");
        assert_eq!(lines[1], "Filter: nothing-like-this");
        assert_eq!(lines[2], "  (no target matches)");
    }

    #[test]
    fn render_at_tiny_and_huge_sizes_does_not_panic() {
        let sizes = [
            (0, 0),
            (1, 1),
            (0, 65535),
            (65535, 0),
            (19, 4),
            (65535, 65535),
            (u32::MAX, u32::MAX),
        ];
        for (cols, rows) in sizes {
            let mut menu = many(100);
            menu.resize(cols, rows);
            menu.input(b"\x1b[6~\x1b[B\x1b[F");
            let out = menu.render();
            assert!(out.starts_with(CLEAR));
            // Only the visible lines are drawn, and no line is padded to the terminal width.
            assert!(out.len() < 10_000, "{cols}x{rows}: {} bytes", out.len());
            let layout_cols = usize::try_from(cols).unwrap().max(MIN_COLS);
            let layout_rows = usize::try_from(rows).unwrap().max(MIN_ROWS);
            assert_fits(&menu, layout_cols, layout_rows);
            assert!(menu.render().contains("> root@host-099"));
        }
        let menu = Menu::new("", Vec::new(), 0, 0);
        assert_fits(&menu, MIN_COLS, MIN_ROWS);
    }

    #[test]
    fn long_names_are_truncated_to_the_width() {
        let long = "x".repeat(500);
        let mut menu = Menu::new(&long, vec![item(&long, &long), item("b", &long)], 40, 10);
        assert_fits(&menu, 40, 10);
        menu.input(b"\x1b[B");
        assert_fits(&menu, 40, 10);
        assert!(screen(&menu)[3].starts_with("> b    "));
    }

    #[test]
    fn resize_keeps_the_selection_visible() {
        let mut menu = many(100);
        menu.input(b"\x1b[F");
        assert!(menu.render().contains("> root@host-099"));
        menu.resize(80, 6);
        assert_fits(&menu, 80, 6);
        assert!(menu.render().contains("> root@host-099"));
        // Growing shows more of the list rather than blank lines below the end.
        menu.resize(80, 60);
        let lines = screen(&menu);
        assert_eq!(lines.len(), 60);
        assert_eq!(menu.scroll, 100 - list_height(60));
        menu.resize(80, 200);
        assert_eq!(menu.scroll, 0);
        assert_eq!(screen(&menu).len(), 100 + CHROME_ROWS);
    }

    #[test]
    fn control_characters_are_not_drawn() {
        let menu = Menu::new(
            "al\x1bice",
            vec![item(
                "root@web\x1b[2J-01",
                "10.0.0.5\r\n:22\u{9b}1m\u{202e}x",
            )],
            80,
            24,
        );
        let out = menu.render();
        let body = out.strip_prefix(CLEAR).unwrap();
        let body = body.replace(REVERSE, "").replace(RESET, "");
        assert!(!body.contains('\x1b'));
        assert!(!body.contains('\u{9b}'));
        assert!(!body.contains('\u{202e}'));
        assert_eq!(body.matches("\r\n").count(), 4);
        assert!(body.contains("Rampart: targets for al?ice (1)"));
        assert!(body.contains("> root@web?[2J-01  10.0.0.5??:22?1m?x"));
    }
}
