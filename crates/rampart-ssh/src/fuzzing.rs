//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), also replayed over the committed
//! corpus by this crate's tests on stable. Each takes arbitrary bytes and must never panic.
//! Not for other use.

use crate::login::LoginName;
use crate::menu::{Menu, MenuItem, MenuOutcome};

/// The login-name grammar (`alice`, `alice@ASSET`, `alice@ACCOUNT@ASSET`).
pub fn login(data: &[u8]) {
    let _ = LoginName::parse(&String::from_utf8_lossy(data));
}

/// The target menu fed a user's keystrokes: the first two bytes choose the terminal size, the
/// rest arrives in pieces of up to 16 bytes, each followed by a redraw.
pub fn menu(data: &[u8]) {
    let (size, input) = data.split_at(data.len().min(2));
    let cols = size.first().map_or(80, |&c| u32::from(c));
    let rows = size.get(1).map_or(24, |&r| u32::from(r));
    let items: Vec<MenuItem> = (0..12)
        .map(|n| MenuItem {
            label: format!("root@web-{n:02}"),
            detail: format!("10.0.0.{n}:22"),
        })
        .collect();
    let count = items.len();
    let mut menu = Menu::new("alice", items, cols, rows);
    for piece in input.chunks(16) {
        match menu.input(piece) {
            MenuOutcome::Pending => {
                let _ = menu.render();
            }
            MenuOutcome::Chosen(index) => {
                assert!(index < count, "the menu chose an item it does not have");
                return;
            }
            MenuOutcome::Quit => return,
        }
    }
}

#[cfg(test)]
mod tests {
    fn replay(target: &str, entry: fn(&[u8])) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut count = 0;
        for dir in [
            root.join("corpus").join(target),
            root.join("artifacts").join(target),
        ] {
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            for file in files {
                entry(&std::fs::read(file.unwrap().path()).unwrap());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for fuzz target {target}");
    }

    #[test]
    fn the_login_corpus_replays() {
        replay("login", super::login);
    }

    #[test]
    fn the_menu_corpus_replays() {
        replay("menu", super::menu);
    }
}
