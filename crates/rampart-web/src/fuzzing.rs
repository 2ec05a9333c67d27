//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), also replayed over the committed
//! corpus by this crate's tests on stable. Each takes arbitrary bytes and must never panic.
//! Not for other use.

use crate::api;

/// A WebSocket text frame from a browser terminal.
pub fn ws_text(data: &[u8]) {
    if let Some((cols, rows)) = crate::ws::text_message(&String::from_utf8_lossy(data)) {
        assert!((1..=crate::ws::MAX_COLUMNS_OR_ROWS).contains(&cols));
        assert!((1..=crate::ws::MAX_COLUMNS_OR_ROWS).contains(&rows));
    }
}

/// Every JSON request body the API accepts, each as the handler would read it (and the pure
/// parsing that follows, where there is one).
pub fn request_bodies(data: &[u8]) {
    fn read<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
        serde_json::from_slice(data).ok()
    }
    let _ = read::<crate::auth::LoginRequest>(data);
    let _ = read::<api::TokenCreate>(data);
    let _ = read::<api::KillRequest>(data);
    let _ = read::<api::UserAdd>(data);
    let _ = read::<api::KeyAdd>(data);
    let _ = read::<api::KeyRemove>(data);
    let _ = read::<api::PasswordSet>(data);
    let _ = read::<api::LoginRulesSet>(data);
    let _ = read::<api::NameBody>(data);
    let _ = read::<api::MemberAdd>(data);
    let _ = read::<api::AssetAdd>(data);
    let _ = read::<api::HostKeyPin>(data);
    let _ = read::<api::SecretBody>(data);
    let _ = read::<api::AccountAdd>(data);
    if let Some(grant) = read::<rampart_store::GrantInput>(data) {
        let _ = grant.parse();
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
    fn the_ws_text_corpus_replays() {
        replay("ws_text", super::ws_text);
    }

    #[test]
    fn the_request_bodies_corpus_replays() {
        replay("request_bodies", super::request_bodies);
    }
}
