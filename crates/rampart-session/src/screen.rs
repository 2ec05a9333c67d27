//! The screen a live terminal session shows now, so that a watcher who joins late starts from
//! it rather than from a blank terminal (and the output that follows makes sense).
//!
//! INVARIANTS:
//! - The emulated screen is bounded whatever size the client claims (like the command log's),
//!   and keeps no scrollback: memory per session is fixed.
//! - The snapshot and the subscription to the output are taken under the same lock as the
//!   output is fed (see `LiveSession::shown`), so a watcher misses and repeats nothing.

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

/// A terminal emulator fed with what the user is shown.
pub struct LiveScreen {
    parser: vt100::Parser,
}

impl std::fmt::Debug for LiveScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, cols) = self.parser.screen().size();
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
            parser: vt100::Parser::new(rows, cols, 0),
        }
    }

    pub fn resize(&mut self, cols: u32, rows: u32) {
        let (rows, cols) = bounded(cols, rows);
        self.parser.screen_mut().set_size(rows, cols);
    }

    pub fn process(&mut self, data: &[u8]) {
        self.parser.process(data);
    }

    pub fn state(&self) -> ScreenState {
        let screen = self.parser.screen();
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
            screen.parser.screen().cursor_position()
        );
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
