//! A statement log's batch of commands (`Store::record_commands`): rows and events inserted
//! many to a statement keep every row, the order and one whole audit chain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_store::{CommandFilter, NewCommand, Store};
use time::OffsetDateTime;

/// More than two of the store's chunks (64 rows), and a batch of one before and after: the
/// chain verifies, every command and event is there once, in order.
async fn a_batch_over_several_chunks_keeps_every_row_in_order_and_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::create_or_open(&common::options(dir.path().join("data")))
        .await
        .unwrap();
    let session = uuid::Uuid::now_v7();
    let before = store.all_audit_events().await.unwrap().len();
    let commands: Vec<NewCommand> = (0..150)
        .map(|n| NewCommand {
            session,
            at: OffsetDateTime::now_utc(),
            user: "alice".into(),
            asset: "db-01".into(),
            account: "app".into(),
            command: format!("SELECT {n} -- it's \"quoted\""),
        })
        .collect();
    store.record_commands(&commands[..1]).await.unwrap();
    store.record_commands(&commands[1..149]).await.unwrap();
    store.record_commands(&[]).await.unwrap();
    store.record_commands(&commands[149..]).await.unwrap();

    let listed: Vec<String> = store
        .commands(&CommandFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.command)
        .collect();
    let wanted: Vec<String> = commands.iter().map(|c| c.command.clone()).collect();
    assert_eq!(listed, wanted);

    let events = store.all_audit_events().await.unwrap();
    assert_eq!(events.len(), before + commands.len());
    // Each command's event, in order.
    for (run, command) in events[before..].iter().zip(&commands) {
        assert_eq!(run.kind, "command_run");
        assert_eq!(run.event["command"], command.command.as_str());
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(
        store.verify_audit_chain().await.unwrap(),
        Ok(u64::try_from(events.len()).unwrap())
    );
}

on_both_backends!(a_batch_over_several_chunks_keeps_every_row_in_order_and_one_chain);
