//! The audit chain with several writers: 8 store handles (each its own connection pool, as 8
//! processes or nodes would have) appending at once keep one chain, with no gap and no fork.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::{Actor, AuditEvent};
use rampart_store::Store;

const WRITERS: usize = 8;
const EVENTS_EACH: usize = 25;

async fn eight_concurrent_writers_keep_one_audit_chain_without_gap_or_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let options = common::options(tmp.path().join("data"));
    let (first, _) = Store::create_or_open(&options).await.unwrap();
    let before = first.verify_audit_chain().await.unwrap().unwrap();

    // Each writer on a thread of its own with its own runtime and store: real parallelism.
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let options = options.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let (store, _) = Store::open_existing(&options).await.unwrap();
                    for n in 0..EVENTS_EACH {
                        let event = AuditEvent::NodeInitialized {
                            data_dir: format!("writer {writer} event {n}"),
                        };
                        store.record_event(&Actor::System, &event).await.unwrap();
                    }
                    store.close().await;
                });
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }

    let total = before + u64::try_from(WRITERS * EVENTS_EACH).unwrap();
    assert_eq!(
        first.verify_audit_chain().await.unwrap(),
        Ok(total),
        "one whole chain"
    );
    // Every append is there once, each writer's in its own order.
    let events = first.all_audit_events().await.unwrap();
    for writer in 0..WRITERS {
        let mine: Vec<String> = events
            .iter()
            .filter_map(|e| e.event["data_dir"].as_str())
            .filter(|text| text.starts_with(&format!("writer {writer} ")))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = (0..EVENTS_EACH)
            .map(|n| format!("writer {writer} event {n}"))
            .collect();
        assert_eq!(mine, expected);
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=i64::try_from(total).unwrap()).collect::<Vec<_>>()
    );
}

on_both_backends!(eight_concurrent_writers_keep_one_audit_chain_without_gap_or_fork);
