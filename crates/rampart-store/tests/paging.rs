//! Pages of the command log: the search reads in batches, filters each (a regular expression
//! in the API) and continues exactly where the last page stopped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::CommandRecord;
use rampart_store::{CommandFilter, Store};

async fn a_filtered_command_search_pages_through_batches_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::create_or_open(&common::options(dir.path().join("data")))
        .await
        .unwrap();
    let session = uuid::Uuid::now_v7();
    // More than two of the store's batches (500 rows).
    for n in 0..1100 {
        let user = if n % 2 == 0 { "alice" } else { "bob" };
        store
            .record_command(session, user, "web-01", "root", &format!("echo {n}"))
            .await
            .unwrap();
    }
    let filter = CommandFilter {
        user: Some("alice".into()),
        ..CommandFilter::default()
    };
    let matches = |c: &CommandRecord| c.command.ends_with('7');
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .commands_page(&filter, cursor, 20, &matches)
            .await
            .unwrap();
        assert!(page.items.len() <= 20);
        seen.extend(page.items.into_iter().map(|c| c.command));
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..1100)
        .filter(|n| n % 2 == 0 && n % 10 == 7)
        .map(|n| format!("echo {n}"))
        .collect();
    // Even numbers never end in 7: nothing matches, and the search still ends.
    assert_eq!(seen, expected);
    assert_eq!(pages, 1);

    let odd = CommandFilter {
        user: Some("bob".into()),
        ..CommandFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .commands_page(&odd, cursor, 20, &matches)
            .await
            .unwrap();
        assert!(page.items.len() <= 20);
        seen.extend(page.items.into_iter().map(|c| c.command));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..1100)
        .filter(|n| n % 2 == 1 && n % 10 == 7)
        .map(|n| format!("echo {n}"))
        .collect();
    assert_eq!(seen, expected, "every match once, in order");
    assert_eq!(store.commands(&odd).await.unwrap().len(), 550);
}

on_both_backends!(a_filtered_command_search_pages_through_batches_without_gaps_or_repeats,);
