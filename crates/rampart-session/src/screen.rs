//! The screen a live terminal session shows now, so that a watcher who joins late starts from
//! it rather than from a blank terminal (and the output that follows makes sense).
//!
//! INVARIANTS:
//! - The emulated screen is bounded whatever size the client claims (like the command log's),
//!   and keeps no scrollback: memory per session is fixed.
//! - The snapshot and the subscription to the output are taken under the same lock as the
//!   output is fed (see `LiveSession::shown`), so a watcher misses and repeats nothing.

use rampart_audit::terminal::Terminal;

/// The largest screen emulated; a larger claimed size is cut to it.
const MAX_ROWS: u16 = 300;
const MAX_COLS: u16 = 1000;

fn bounded(cols: u32, rows: u32) -> (u16, u16) {
    let clamp = |value: u32, max: u16, default: u16| match value {
        0 => default,
        v => u16::try_from(v).unwrap_or(max).min(max),
    };
    (clamp(rows, MAX_ROWS, 24), clamp(cols, MAX_COLS, 80))
}

/// A small terminal screen ([`rampart_audit::terminal`], rows allocated as written) fed with
/// what the user is shown.
pub struct LiveScreen {
    screen: Terminal,
}

impl std::fmt::Debug for LiveScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, cols) = self.screen.size();
        f.debug_struct("LiveScreen")
            .field("cols", &cols)
            .field("rows", &rows)
            .finish()
    }
}

/// The screen at one moment: its size, and the bytes that draw it on a blank terminal of that
/// size (contents, attributes, cursor and input modes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenState {
    pub cols: u16,
    pub rows: u16,
    pub bytes: Vec<u8>,
}

impl LiveScreen {
    pub fn new(cols: u32, rows: u32) -> Self {
        let (rows, cols) = bounded(cols, rows);
        Self {
            screen: Terminal::new(rows, cols, true),
        }
    }

    pub fn resize(&mut self, cols: u32, rows: u32) {
        let (rows, cols) = bounded(cols, rows);
        self.screen.set_size(rows, cols);
    }

    pub fn process(&mut self, data: &[u8]) {
        self.screen.process(data);
    }

    pub fn state(&self) -> ScreenState {
        let screen = &self.screen;
        let (rows, cols) = screen.size();
        ScreenState {
            cols,
            rows,
            bytes: screen.state_formatted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_redraws_the_current_screen_on_a_blank_terminal() {
        let mut screen = LiveScreen::new(40, 10);
        screen.process(b"$ echo one\r\none\r\n$ clear\x1b[H\x1b[2J$ echo two\r\ntwo\r\n$ ");
        let state = screen.state();
        assert_eq!((state.cols, state.rows), (40, 10));
        let mut fresh = vt100::Parser::new(state.rows, state.cols, 0);
        fresh.process(&state.bytes);
        let shown = fresh.screen().contents();
        assert!(shown.contains("$ echo two\ntwo\n$"), "{shown:?}");
        assert!(!shown.contains("one"), "{shown:?}");
        assert_eq!(
            fresh.screen().cursor_position(),
            screen.screen.cursor_position()
        );
    }

    /// The redraw shows what a full emulator fed the same output shows: text, colours and
    /// attributes, wide characters, the cursor, and a full-screen program's alternate screen.
    #[test]
    fn the_redraw_matches_a_full_emulator() {
        let outputs: [&[u8]; 3] = [
            b"\x1b[1;31mred bold\x1b[0m plain \x1b[38;5;120mx\x1b[48;2;1;2;3my\x1b[m\r\n\
              \xe4\xb8\xad\xe6\x96\x87 wide\r\n$ ls\x08\x08\x1b[Kcd /tmp\x1b[3D",
            b"$ top\r\n\x1b[?1049h\x1b[H\x1b[2J\x1b[7m PID USER \x1b[m\r\n  1 root\x1b[2;1H\x1b[L",
            b"\x1b[?1049l$ \x1b[?25l",
        ];
        let mut screen = LiveScreen::new(30, 6);
        let mut reference = vt100::Parser::new(6, 30, 0);
        for output in outputs {
            screen.process(output);
            reference.process(output);
            let state = screen.state();
            let mut redrawn = vt100::Parser::new(state.rows, state.cols, 0);
            redrawn.process(&state.bytes);
            let (want, got) = (reference.screen(), redrawn.screen());
            assert_eq!(got.contents(), want.contents());
            assert_eq!(got.cursor_position(), want.cursor_position());
            assert_eq!(got.alternate_screen(), want.alternate_screen());
            assert_eq!(got.hide_cursor(), want.hide_cursor());
            for row in 0..6 {
                for col in 0..30 {
                    let (want, got) = (want.cell(row, col).unwrap(), got.cell(row, col).unwrap());
                    assert_eq!(
                        (got.fgcolor(), got.bgcolor(), got.bold(), got.inverse()),
                        (want.fgcolor(), want.bgcolor(), want.bold(), want.inverse()),
                        "cell {row},{col} {:?}",
                        want.contents()
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let mut screen = LiveScreen::new(u32::MAX, u32::MAX);
        assert_eq!(
            (screen.state().cols, screen.state().rows),
            (MAX_COLS, MAX_ROWS)
        );
        screen.resize(0, 0);
        assert_eq!((screen.state().cols, screen.state().rows), (80, 24));
    }
}
