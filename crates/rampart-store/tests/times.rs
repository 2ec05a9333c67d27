//! Stored times compare and sort exactly in SQL: within one second, by the fraction, whatever
//! its digits (RFC 3339 text with a variable fraction sorted `12:00:00Z` after `12:00:00.5Z`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::CommandRecord;
use rampart_store::{CommandFilter, NewCommand, Store};
use time::OffsetDateTime;
use time::macros::datetime;

async fn open(dir: &tempfile::TempDir) -> Store {
    Store::create_or_open(&common::options(dir.path().join("data")))
        .await
        .unwrap()
        .0
}

fn command(session: uuid::Uuid, at: OffsetDateTime, text: &str) -> NewCommand {
    NewCommand {
        session,
        at,
        user: "alice".into(),
        asset: "web-01".into(),
        account: "root".into(),
        command: text.into(),
    }
}

/// Times within one second, written out of order: a whole second, fractions of one, two, six
/// and nine digits (nanoseconds are kept to the microsecond).
fn within_one_second() -> Vec<(OffsetDateTime, &'static str)> {
    vec![
        (datetime!(2026-03-01 12:00:00.5 UTC), "half"),
        (datetime!(2026-03-01 12:00:00 UTC), "whole"),
        (datetime!(2026-03-01 12:00:01 UTC), "next second"),
        (datetime!(2026-03-01 12:00:00.25 UTC), "quarter"),
        (datetime!(2026-03-01 12:00:00.000001 UTC), "one microsecond"),
        (
            datetime!(2026-03-01 12:00:00.999999999 UTC),
            "last nanosecond",
        ),
    ]
}

async fn commands_within_one_second_list_in_time_order_and_a_since_filter_is_exact_before_the_limit()
 {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let session = uuid::Uuid::now_v7();
    let commands: Vec<NewCommand> = within_one_second()
        .into_iter()
        .map(|(at, text)| command(session, at, text))
        .collect();
    store.record_commands(&commands).await.unwrap();

    let listed: Vec<String> = store
        .commands(&CommandFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.command)
        .collect();
    assert_eq!(
        listed,
        [
            "whole",
            "one microsecond",
            "quarter",
            "half",
            "last nanosecond",
            "next second"
        ]
    );

    // Since 12:00:00.3, one at a time: the first page is the first command at or after it.
    let filter = CommandFilter {
        since: Some(datetime!(2026-03-01 12:00:00.3 UTC)),
        ..CommandFilter::default()
    };
    let all = |_: &CommandRecord| true;
    let first = store.commands_page(&filter, None, 1, &all).await.unwrap();
    let texts: Vec<&str> = first.items.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(texts, ["half"]);
    let rest = store
        .commands_page(&filter, first.next, 10, &all)
        .await
        .unwrap();
    let texts: Vec<&str> = rest.items.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(texts, ["last nanosecond", "next second"]);
    assert_eq!(
        rest.items[0].at,
        datetime!(2026-03-01 12:00:00.999999 UTC),
        "kept to the microsecond"
    );
}

async fn an_audit_search_until_a_time_within_a_second_finds_the_newest_event_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let session = uuid::Uuid::now_v7();
    store
        .record_commands(&[command(session, OffsetDateTime::now_utc(), "ls")])
        .await
        .unwrap();
    let events = store.all_audit_events().await.unwrap();
    let last = events.last().unwrap();
    let at = rampart_core::time_arg::parse_rfc3339("at", &last.at).unwrap();
    // Until (exclusive) the last event's own time: the newest match is the event before it,
    // even with a limit of one (the limit applies after the exact filter).
    let filter = rampart_store::AuditFilter {
        until: Some(at),
        ..Default::default()
    };
    let found = store.matching_audit_events(&filter, Some(1)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].seq < last.seq, "{found:?}");
    let filter = rampart_store::AuditFilter {
        since: Some(at),
        ..Default::default()
    };
    let found = store.matching_audit_events(&filter, Some(1)).await.unwrap();
    assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), [last.seq]);
}

on_both_backends!(
    commands_within_one_second_list_in_time_order_and_a_since_filter_is_exact_before_the_limit,
    an_audit_search_until_a_time_within_a_second_finds_the_newest_event_before_it,
);
