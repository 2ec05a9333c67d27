//! A small terminal screen: what a session's terminal shows now, kept for the command log (the
//! line the user edits) and for watchers who join late (the screen to start from), at a fraction
//! of a full emulator's memory.
//!
//! A `vte` parser (the one vt100 uses) drives a grid of characters. Rows hold only the cells
//! written so far (a blank row costs no heap), so an idle shell's screen costs a few hundred
//! bytes, and a full 80 x 24 screen about 15 KiB at most (8 bytes a cell); colours and attributes are kept only
//! when asked for (watchers need them, the command log does not). The alternate screen is
//! created when a full-screen program switches to it and dropped when it leaves. There is no
//! scrollback.
//!
//! INVARIANTS:
//! - Bounded whatever the peer sends: the size is clamped by the caller, every position is
//!   clamped to the size, a row never holds more cells than the width, and the parser keeps at
//!   most a fixed OSC buffer (vte without its `std` feature).
//! - Pure: bytes in, screen out; no I/O.

use unicode_width::UnicodeWidthChar;

/// A colour as the target set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Color {
    #[default]
    Default,
    Indexed(u8),
    Rgb(u8, u8, u8),
}

const BOLD: u8 = 1;
const DIM: u8 = 2;
const ITALIC: u8 = 4;
const UNDERLINE: u8 = 8;
const INVERSE: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Style {
    fg: Color,
    bg: Color,
    flags: u8,
}

/// The second half of a double-width character.
const CONTINUATION: char = '\0';

/// An index into the terminal's styles (0: the default style): 8 bytes a cell, not 16.
type StyleIndex = u16;

/// The most distinct styles a terminal keeps; further ones are drawn in the default style.
const MAX_STYLES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    ch: char,
    style: StyleIndex,
}

const BLANK: Cell = Cell { ch: ' ', style: 0 };

/// Cells a row grows by (see [`Line::set`]).
const ROW_GROWTH: usize = 16;

#[derive(Debug, Clone, Default)]
struct Line {
    /// The cells written so far; those beyond are blank.
    cells: Vec<Cell>,
    /// The text continues on the next row (the cursor wrapped at the right margin).
    wrapped: bool,
}

impl Line {
    fn clear(&mut self) {
        self.cells = Vec::new();
        self.wrapped = false;
    }

    fn set(&mut self, col: usize, cell: Cell) {
        if self.cells.len() <= col {
            // Grown a few cells at a time, not doubled: a row stays within a few cells of what
            // it shows (an 80-column row holds 80 cells, not 128), and every open session has
            // two screens of them.
            let wanted = (col + 1).next_multiple_of(ROW_GROWTH);
            self.cells.reserve_exact(wanted - self.cells.len());
            self.cells.resize(col + 1, BLANK);
        }
        if let Some(slot) = self.cells.get_mut(col) {
            *slot = cell;
        }
    }

    fn blank(&mut self, from: usize, to: usize) {
        let to = to.min(self.cells.len());
        for cell in self.cells.iter_mut().take(to).skip(from) {
            *cell = BLANK;
        }
        self.trim();
    }

    fn truncate(&mut self, at: usize) {
        self.cells.truncate(at);
        self.trim();
    }

    /// Drops trailing blanks, so that the row holds only what it shows.
    fn trim(&mut self) {
        while self.cells.last() == Some(&BLANK) {
            self.cells.pop();
        }
        if self.cells.is_empty() {
            self.cells = Vec::new();
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    row: u16,
    /// May equal the width: the next character wraps first.
    col: u16,
    style: StyleIndex,
}

#[derive(Debug, Clone)]
struct Grid {
    lines: Vec<Line>,
    cursor: Cursor,
    saved: Option<Cursor>,
    /// The scroll region, inclusive.
    top: u16,
    bottom: u16,
}

impl Grid {
    fn new(rows: u16) -> Self {
        Self {
            lines: vec![Line::default(); usize::from(rows)],
            cursor: Cursor::default(),
            saved: None,
            top: 0,
            bottom: rows.saturating_sub(1),
        }
    }

    fn line(&mut self, row: u16) -> Option<&mut Line> {
        self.lines.get_mut(usize::from(row))
    }

    /// Rows `from..=to` move up by `count`; blank rows come in at `to`.
    fn scroll_up(&mut self, from: u16, to: u16, count: u16) {
        let (from, to) = (usize::from(from), usize::from(to));
        if from > to || to >= self.lines.len() {
            return;
        }
        let count = usize::from(count).min(to - from + 1);
        if let Some(region) = self.lines.get_mut(from..=to) {
            region.rotate_left(count);
            let height = region.len();
            for line in region.iter_mut().skip(height - count) {
                *line = Line::default();
            }
        }
    }

    /// Rows `from..=to` move down by `count`; blank rows come in at `from`.
    fn scroll_down(&mut self, from: u16, to: u16, count: u16) {
        let (from, to) = (usize::from(from), usize::from(to));
        if from > to || to >= self.lines.len() {
            return;
        }
        let count = usize::from(count).min(to - from + 1);
        if let Some(region) = self.lines.get_mut(from..=to) {
            region.rotate_right(count);
            for line in region.iter_mut().take(count) {
                *line = Line::default();
            }
        }
    }
}

/// The screen and the parser state that feeds it.
pub struct Terminal {
    parser: vte::Parser,
    screen: Screen,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("rows", &self.screen.rows)
            .field("cols", &self.screen.cols)
            .finish_non_exhaustive()
    }
}

struct Screen {
    rows: u16,
    cols: u16,
    keep_style: bool,
    /// The styles cells use, each once (the default first); at most [`MAX_STYLES`].
    styles: Vec<Style>,
    primary: Grid,
    /// Present while a full-screen program has the terminal.
    alternate: Option<Box<Grid>>,
    cursor_hidden: bool,
}

impl Terminal {
    /// A blank screen of `rows` x `cols` (each at least 1); `keep_style` keeps colours and
    /// attributes (for redrawing the screen), otherwise only characters.
    pub fn new(rows: u16, cols: u16, keep_style: bool) -> Self {
        let (rows, cols) = (rows.max(1), cols.max(1));
        Self {
            parser: vte::Parser::new(),
            screen: Screen {
                rows,
                cols,
                keep_style,
                styles: vec![Style::default()],
                primary: Grid::new(rows),
                alternate: None,
                cursor_hidden: false,
            },
        }
    }

    pub fn process(&mut self, bytes: &[u8]) {
        self.parser.advance(&mut self.screen, bytes);
    }

    /// (rows, cols).
    pub fn size(&self) -> (u16, u16) {
        (self.screen.rows, self.screen.cols)
    }

    pub fn set_size(&mut self, rows: u16, cols: u16) {
        let (rows, cols) = (rows.max(1), cols.max(1));
        self.screen.rows = rows;
        self.screen.cols = cols;
        let grids =
            std::iter::once(&mut self.screen.primary).chain(self.screen.alternate.as_deref_mut());
        for grid in grids {
            grid.lines.resize(usize::from(rows), Line::default());
            for line in &mut grid.lines {
                line.truncate(usize::from(cols));
            }
            grid.cursor.row = grid.cursor.row.min(rows - 1);
            grid.cursor.col = grid.cursor.col.min(cols - 1);
            grid.saved = None;
            grid.top = 0;
            grid.bottom = rows - 1;
        }
    }

    /// Whether a full-screen program (vim, top, less) has switched to the alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.screen.alternate.is_some()
    }

    /// (row, col) of the cursor; the column is the width when the next character wraps.
    pub fn cursor_position(&self) -> (u16, u16) {
        let cursor = self.screen.grid().cursor;
        (cursor.row, cursor.col)
    }

    /// Whether the text of `row` continues on the next row.
    pub fn row_wrapped(&self, row: u16) -> bool {
        self.screen
            .grid()
            .lines
            .get(usize::from(row))
            .is_some_and(|line| line.wrapped)
    }

    /// The text from (`start_row`, `start_col`) to (`end_row`, `end_col`, exclusive), rows
    /// joined by a newline unless one wrapped into the next, trailing blanks of each row left out.
    pub fn contents_between(
        &self,
        start_row: u16,
        start_col: u16,
        end_row: u16,
        end_col: u16,
    ) -> String {
        let mut text = String::new();
        let grid = self.screen.grid();
        for row in start_row..=end_row {
            let Some(line) = grid.lines.get(usize::from(row)) else {
                break;
            };
            let from = if row == start_row { start_col } else { 0 };
            let to = if row == end_row {
                end_col
            } else {
                self.screen.cols
            };
            let segment: String = line
                .cells
                .iter()
                .take(usize::from(to))
                .skip(usize::from(from))
                .filter(|cell| cell.ch != CONTINUATION)
                .map(|cell| cell.ch)
                .collect();
            if line.wrapped && row != end_row {
                text.push_str(&segment);
                // A wrapped row shows blanks up to the margin.
                let shown = line
                    .cells
                    .iter()
                    .take(usize::from(to))
                    .skip(usize::from(from))
                    .count();
                let width = usize::from(to.saturating_sub(from));
                text.extend(std::iter::repeat_n(' ', width.saturating_sub(shown)));
            } else {
                text.push_str(segment.trim_end_matches(' '));
                if row != end_row {
                    text.push('\n');
                }
            }
        }
        text
    }

    /// The bytes that draw the screen as it is now on a blank terminal of the same size:
    /// the alternate screen if a program uses it, characters with their attributes, the cursor.
    pub fn state_formatted(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.alternate_screen() {
            out.extend_from_slice(b"\x1b[?1049h");
        }
        out.extend_from_slice(b"\x1b[H\x1b[2J\x1b[m");
        let grid = self.screen.grid();
        let mut pen: StyleIndex = 0;
        for (row, line) in grid.lines.iter().enumerate() {
            if line.cells.is_empty() {
                continue;
            }
            out.extend_from_slice(format!("\x1b[{};1H", row + 1).as_bytes());
            for cell in &line.cells {
                if cell.ch == CONTINUATION {
                    continue;
                }
                if cell.style != pen {
                    write_style(&mut out, self.screen.style(cell.style));
                    pen = cell.style;
                }
                let mut buffer = [0u8; 4];
                out.extend_from_slice(cell.ch.encode_utf8(&mut buffer).as_bytes());
            }
        }
        out.extend_from_slice(b"\x1b[m");
        let cursor = grid.cursor;
        if cursor.style != 0 {
            write_style(&mut out, self.screen.style(cursor.style));
        }
        let col = cursor.col.min(self.screen.cols - 1);
        out.extend_from_slice(format!("\x1b[{};{}H", cursor.row + 1, col + 1).as_bytes());
        if self.screen.cursor_hidden {
            out.extend_from_slice(b"\x1b[?25l");
        }
        out
    }
}

fn write_style(out: &mut Vec<u8>, style: Style) {
    let mut codes: Vec<String> = vec!["0".into()];
    for (flag, code) in [
        (BOLD, "1"),
        (DIM, "2"),
        (ITALIC, "3"),
        (UNDERLINE, "4"),
        (INVERSE, "7"),
    ] {
        if style.flags & flag != 0 {
            codes.push(code.into());
        }
    }
    for (color, base) in [(style.fg, 38), (style.bg, 48)] {
        match color {
            Color::Default => {}
            Color::Indexed(index) => codes.push(format!("{base};5;{index}")),
            Color::Rgb(r, g, b) => codes.push(format!("{base};2;{r};{g};{b}")),
        }
    }
    out.extend_from_slice(format!("\x1b[{}m", codes.join(";")).as_bytes());
}

impl Screen {
    fn grid(&self) -> &Grid {
        self.alternate.as_deref().unwrap_or(&self.primary)
    }

    fn grid_mut(&mut self) -> &mut Grid {
        match self.alternate.as_deref_mut() {
            Some(grid) => grid,
            None => &mut self.primary,
        }
    }

    /// Down one row, scrolling the region when at its bottom.
    fn linefeed(&mut self) {
        let rows = self.rows;
        let grid = self.grid_mut();
        if grid.cursor.row == grid.bottom {
            let (top, bottom) = (grid.top, grid.bottom);
            grid.scroll_up(top, bottom, 1);
        } else if grid.cursor.row + 1 < rows {
            grid.cursor.row += 1;
        }
    }

    fn reverse_index(&mut self) {
        let grid = self.grid_mut();
        if grid.cursor.row == grid.top {
            let (top, bottom) = (grid.top, grid.bottom);
            grid.scroll_down(top, bottom, 1);
        } else {
            grid.cursor.row = grid.cursor.row.saturating_sub(1);
        }
    }

    /// The cursor's column, pulled back from the pending-wrap position.
    fn col(&self) -> u16 {
        self.grid().cursor.col.min(self.cols - 1)
    }

    fn move_to(&mut self, row: u16, col: u16) {
        let (rows, cols) = (self.rows, self.cols);
        let cursor = &mut self.grid_mut().cursor;
        cursor.row = row.min(rows - 1);
        cursor.col = col.min(cols - 1);
    }

    fn erase_in_display(&mut self, mode: u16) {
        let col = usize::from(self.col());
        let grid = self.grid_mut();
        let row = usize::from(grid.cursor.row);
        for (index, line) in grid.lines.iter_mut().enumerate() {
            match mode {
                0 if index == row => {
                    line.truncate(col);
                    line.wrapped = false;
                }
                0 if index > row => line.clear(),
                1 if index == row => line.blank(0, col + 1),
                1 if index < row => line.clear(),
                2 | 3 => line.clear(),
                _ => {}
            }
        }
    }

    fn erase_in_line(&mut self, mode: u16) {
        let col = usize::from(self.col());
        let row = self.grid().cursor.row;
        if let Some(line) = self.grid_mut().line(row) {
            match mode {
                0 => {
                    line.truncate(col);
                    line.wrapped = false;
                }
                1 => line.blank(0, col + 1),
                2 => line.clear(),
                _ => {}
            }
        }
    }

    fn save_cursor(&mut self) {
        let grid = self.grid_mut();
        grid.saved = Some(grid.cursor);
    }

    fn restore_cursor(&mut self) {
        let grid = self.grid_mut();
        grid.cursor = grid.saved.unwrap_or_default();
    }

    fn set_mode(&mut self, mode: u16, on: bool) {
        match (mode, on) {
            (1049 | 47 | 1047, true) if self.alternate.is_none() => {
                if mode == 1049 {
                    self.save_cursor();
                }
                let mut grid = Grid::new(self.rows);
                grid.cursor = self.primary.cursor;
                self.alternate = Some(Box::new(grid));
            }
            (1049 | 47 | 1047, false) if self.alternate.is_some() => {
                self.alternate = None;
                if mode == 1049 {
                    self.restore_cursor();
                }
            }
            (25, on) => self.cursor_hidden = !on,
            _ => {}
        }
    }

    fn select_graphic_rendition(&mut self, params: &vte::Params) {
        if !self.keep_style {
            return;
        }
        let mut values = params.iter().flat_map(|param| param.iter().copied());
        let mut style = self.style(self.grid().cursor.style);
        if params.is_empty() {
            style = Style::default();
        }
        while let Some(code) = values.next() {
            match code {
                0 => style = Style::default(),
                1 => style.flags |= BOLD,
                2 => style.flags |= DIM,
                3 => style.flags |= ITALIC,
                4 => style.flags |= UNDERLINE,
                7 => style.flags |= INVERSE,
                22 => style.flags &= !(BOLD | DIM),
                23 => style.flags &= !ITALIC,
                24 => style.flags &= !UNDERLINE,
                27 => style.flags &= !INVERSE,
                30..=37 => style.fg = Color::Indexed((code - 30) as u8),
                39 => style.fg = Color::Default,
                40..=47 => style.bg = Color::Indexed((code - 40) as u8),
                49 => style.bg = Color::Default,
                90..=97 => style.fg = Color::Indexed((code - 90 + 8) as u8),
                100..=107 => style.bg = Color::Indexed((code - 100 + 8) as u8),
                38 | 48 => {
                    let color = match values.next() {
                        Some(5) => values.next().map(|i| Color::Indexed(byte(i))),
                        Some(2) => match (values.next(), values.next(), values.next()) {
                            (Some(r), Some(g), Some(b)) => {
                                Some(Color::Rgb(byte(r), byte(g), byte(b)))
                            }
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(color) = color {
                        if code == 38 {
                            style.fg = color;
                        } else {
                            style.bg = color;
                        }
                    }
                }
                _ => {}
            }
        }
        let index = self.intern(style);
        self.grid_mut().cursor.style = index;
    }

    fn style(&self, index: StyleIndex) -> Style {
        self.styles
            .get(usize::from(index))
            .copied()
            .unwrap_or_default()
    }

    /// The index of `style`, added if new and there is room (else the default style's).
    fn intern(&mut self, style: Style) -> StyleIndex {
        if let Some(index) = self.styles.iter().position(|known| *known == style) {
            return StyleIndex::try_from(index).unwrap_or(0);
        }
        if self.styles.len() >= MAX_STYLES {
            return 0;
        }
        self.styles.push(style);
        StyleIndex::try_from(self.styles.len() - 1).unwrap_or(0)
    }
}

fn byte(value: u16) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

/// The `index`th parameter, `default` when absent or zero.
fn param(params: &vte::Params, index: usize, default: u16) -> u16 {
    match params.iter().nth(index).and_then(|p| p.first().copied()) {
        None | Some(0) => default,
        Some(value) => value,
    }
}

impl vte::Perform for Screen {
    fn print(&mut self, ch: char) {
        let width = match ch.width() {
            Some(0) | None => return,
            Some(width) => u16::try_from(width).unwrap_or(1).min(2),
        };
        let cols = self.cols;
        let style = if self.keep_style {
            self.grid().cursor.style
        } else {
            0
        };
        if self.grid().cursor.col + width > cols {
            let row = self.grid().cursor.row;
            if let Some(line) = self.grid_mut().line(row) {
                line.wrapped = true;
            }
            self.linefeed();
            self.grid_mut().cursor.col = 0;
            if width > cols {
                return;
            }
        }
        let grid = self.grid_mut();
        let (row, col) = (grid.cursor.row, usize::from(grid.cursor.col));
        if let Some(line) = grid.line(row) {
            line.set(col, Cell { ch, style });
            if width == 2 {
                line.set(
                    col + 1,
                    Cell {
                        ch: CONTINUATION,
                        style,
                    },
                );
            }
        }
        grid.cursor.col += width;
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            0x08 => {
                let col = self.col().saturating_sub(1);
                self.grid_mut().cursor.col = col;
            }
            b'\t' => {
                let col = ((self.col() / 8) + 1) * 8;
                let cols = self.cols;
                self.grid_mut().cursor.col = col.min(cols - 1);
            }
            b'\n' | 0x0b | 0x0c => {
                let col = self.col();
                self.grid_mut().cursor.col = col;
                self.linefeed();
            }
            b'\r' => self.grid_mut().cursor.col = 0,
            _ => {}
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &vte::Params,
        intermediates: &[u8],
        _ignore: bool,
        action: char,
    ) {
        let private = intermediates.first() == Some(&b'?');
        if private {
            if matches!(action, 'h' | 'l') {
                for mode in params.iter().filter_map(|p| p.first().copied()) {
                    self.set_mode(mode, action == 'h');
                }
            }
            return;
        }
        if !intermediates.is_empty() {
            return;
        }
        let n = param(params, 0, 1);
        let (row, col) = (self.grid().cursor.row, self.col());
        match action {
            'A' => self.move_to(row.saturating_sub(n), col),
            'B' | 'e' => self.move_to(row.saturating_add(n), col),
            'C' | 'a' => self.move_to(row, col.saturating_add(n)),
            'D' => self.move_to(row, col.saturating_sub(n)),
            'E' => self.move_to(row.saturating_add(n), 0),
            'F' => self.move_to(row.saturating_sub(n), 0),
            'G' | '`' => self.move_to(row, n - 1),
            'd' => self.move_to(n - 1, col),
            'H' | 'f' => self.move_to(n - 1, param(params, 1, 1) - 1),
            'J' => self.erase_in_display(param(params, 0, 0)),
            'K' => self.erase_in_line(param(params, 0, 0)),
            '@' | 'P' | 'X' => {
                let cols = usize::from(self.cols);
                let (at, n) = (usize::from(col), usize::from(n));
                if let Some(line) = self.grid_mut().line(row) {
                    match action {
                        '@' if at < line.cells.len() => {
                            // One move of the row, whatever the count (a flood of these
                            // costs what its bytes do).
                            let n = n.min(cols - at);
                            line.cells.splice(at..at, std::iter::repeat_n(BLANK, n));
                            line.truncate(cols);
                        }
                        'P' if at < line.cells.len() => {
                            let end = (at + n).min(line.cells.len());
                            line.cells.drain(at..end);
                            line.trim();
                        }
                        'X' => line.blank(at, at.saturating_add(n)),
                        _ => {}
                    }
                }
            }
            'L' | 'M' => {
                let grid = self.grid_mut();
                if row >= grid.top && row <= grid.bottom {
                    let bottom = grid.bottom;
                    if action == 'L' {
                        grid.scroll_down(row, bottom, n);
                    } else {
                        grid.scroll_up(row, bottom, n);
                    }
                }
                self.move_to(row, 0);
            }
            'S' | 'T' => {
                let grid = self.grid_mut();
                let (top, bottom) = (grid.top, grid.bottom);
                if action == 'S' {
                    grid.scroll_up(top, bottom, n);
                } else {
                    grid.scroll_down(top, bottom, n);
                }
            }
            'r' => {
                let rows = self.rows;
                let top = param(params, 0, 1) - 1;
                let bottom = param(params, 1, rows).min(rows) - 1;
                if top < bottom {
                    let grid = self.grid_mut();
                    grid.top = top;
                    grid.bottom = bottom;
                    self.move_to(0, 0);
                }
            }
            'm' => self.select_graphic_rendition(params),
            's' => self.save_cursor(),
            'u' => self.restore_cursor(),
            _ => {}
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], _ignore: bool, byte: u8) {
        if !intermediates.is_empty() {
            return;
        }
        match byte {
            b'7' => self.save_cursor(),
            b'8' => self.restore_cursor(),
            b'D' => self.linefeed(),
            b'E' => {
                self.linefeed();
                self.grid_mut().cursor.col = 0;
            }
            b'M' => self.reverse_index(),
            b'c' => {
                let keep_style = self.keep_style;
                *self = Screen {
                    rows: self.rows,
                    cols: self.cols,
                    keep_style,
                    styles: vec![Style::default()],
                    primary: Grid::new(self.rows),
                    alternate: None,
                    cursor_hidden: false,
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(terminal: &Terminal) -> String {
        let (rows, cols) = terminal.size();
        terminal.contents_between(0, 0, rows - 1, cols)
    }

    #[test]
    fn prints_wraps_and_scrolls_within_its_size() {
        let mut terminal = Terminal::new(3, 5, false);
        terminal.process(b"abcdefg\r\nxy");
        assert_eq!(text(&terminal), "abcdefg\nxy");
        assert!(terminal.row_wrapped(0));
        assert!(!terminal.row_wrapped(1));
        terminal.process(b"\r\nlast");
        // "abcde" scrolled off: no scrollback.
        assert_eq!(text(&terminal), "fg\nxy\nlast");
        assert_eq!(terminal.cursor_position(), (2, 4));
    }

    #[test]
    fn cursor_moves_and_erases() {
        let mut terminal = Terminal::new(5, 20, false);
        terminal.process(b"hello world\x1b[5D\x1b[K\x1b[2;3Hx\x1b[1;1H\x1b[2Pz");
        assert_eq!(text(&terminal), "zlo\n  x\n\n\n");
        terminal.process(b"\x1b[2J");
        assert_eq!(text(&terminal), "\n\n\n\n");
        // The cursor stayed after "z" (column 1).
        terminal.process(b"abc\x1b[1G\x1b[@Z\x08\x08\x1b[2X!");
        assert_eq!(text(&terminal), "! abc\n\n\n\n");
    }

    #[test]
    fn the_alternate_screen_comes_and_goes_with_its_program() {
        let mut terminal = Terminal::new(5, 20, false);
        terminal.process(b"$ vim\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~");
        assert!(terminal.alternate_screen());
        assert_eq!(text(&terminal), "~\n~\n\n\n");
        terminal.process(b"\x1b[?1049l");
        assert!(!terminal.alternate_screen());
        assert_eq!(text(&terminal), "$ vim\n\n\n\n");
        assert_eq!(terminal.cursor_position(), (1, 0));
    }

    /// Random bytes heavy in escape sequences, on random sizes: nothing panics, every row fits
    /// the width, the cursor stays on the screen, and the redraw is bounded by the screen.
    #[test]
    fn random_sequences_keep_the_invariants() {
        const PIECES: &[&[u8]] = &[
            b"\x1b[",
            b"\x1b]",
            b"\x1b",
            b"?1049h",
            b"?1049l",
            b"?47h",
            b"?25l",
            b";",
            b"m",
            b"H",
            b"J",
            b"K",
            b"@",
            b"P",
            b"X",
            b"L",
            b"M",
            b"S",
            b"T",
            b"r",
            b"A",
            b"B",
            b"C",
            b"D",
            b"G",
            b"d",
            b"s",
            b"u",
            b"7",
            b"8",
            b"c",
            b"\r",
            b"\n",
            b"\x08",
            b"\t",
            b"\x07",
            b"65535",
            b"0",
            b"1",
            b"38;2;1;2;3",
            b"48;5;200",
            b"\xe4\xb8\xad",
            b"\xff",
            b"abc",
            b"\xcc\x81",
            b"x",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let (rows, cols) = ((next() % 30) as u16, (next() % 120) as u16);
            let mut terminal = Terminal::new(rows, cols, next() % 2 == 0);
            for _ in 0..400 {
                let piece = PIECES[(next() % PIECES.len() as u64) as usize];
                terminal.process(piece);
                if next() % 97 == 0 {
                    terminal.set_size((next() % 30) as u16, (next() % 120) as u16);
                }
            }
            let (rows, cols) = terminal.size();
            let (row, col) = terminal.cursor_position();
            assert!(row < rows && col <= cols, "{row},{col} on {rows}x{cols}");
            for grid in std::iter::once(&terminal.screen.primary)
                .chain(terminal.screen.alternate.as_deref())
            {
                assert_eq!(grid.lines.len(), usize::from(rows));
                assert!(
                    grid.lines
                        .iter()
                        .all(|l| l.cells.len() <= usize::from(cols))
                );
            }
            let redraw = terminal.state_formatted();
            assert!(redraw.len() < 64 + usize::from(rows) * (16 + usize::from(cols) * 40));
            let _ = terminal.contents_between(0, 0, rows - 1, cols);
            let _ = terminal.contents_between(row, col, rows + 5, cols + 5);
        }
    }

    #[test]
    fn hostile_input_stays_bounded() {
        let mut terminal = Terminal::new(2, 4, true);
        terminal.process(b"\x1b[65535;65535H\x1b[65535@\x1b[65535L\x1b[999;1r\x1b]0;");
        terminal.process(&vec![b'x'; 100_000]);
        terminal.process(b"\x07\x1b[38;5;9999m\x1b[38;2mwide\xe4\xb8\xadend");
        let (rows, cols) = terminal.size();
        assert_eq!((rows, cols), (2, 4));
        for line in &terminal.screen.primary.lines {
            assert!(line.cells.len() <= 4);
        }
        for red in 0..=255u16 {
            for green in 0..4 {
                terminal.process(format!("\x1b[38;2;{red};{green};0mx").as_bytes());
            }
        }
        assert_eq!(terminal.screen.styles.len(), MAX_STYLES);
        terminal.set_size(0, 0);
        assert_eq!(terminal.size(), (1, 1));
    }
}
