//! Command approvals in the store: migration 28 keeps a data directory's command rules and lets
//! a rule's action be `approve`; a held line is decided once (approve, deny, timeout or the
//! session's end, whichever is written first), never by its requester, each step an event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod common;

use rampart_core::audit::Actor;
use rampart_core::rules::{Matcher, RuleAction, RuleScope};
use rampart_core::{Label, Name};
use rampart_store::{
    ApprovalOutcome, Decision, NewCommandApproval, NewCommandRule, Store, StoreOptions,
};
use sqlx::{Connection, SqliteConnection};
use std::os::unix::fs::DirBuilderExt;
use std::time::Duration;

const RULE_ID: &str = "01900000-0000-7000-8000-0000000000aa";

fn options(root: &std::path::Path) -> StoreOptions {
    common::options(root.to_path_buf())
}

#[tokio::test]
async fn migration_28_keeps_the_rules_and_allows_approve() {
    common::select(common::Db::Sqlite); // raw SQL on the SQLite file
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .unwrap();
    let db = root.join("rampart.db");
    rampart_store::create_database_at_version(&db, 27)
        .await
        .unwrap();
    let url = format!("sqlite://{}?mode=rw", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO command_rules (id, position, label_key, label_value, matcher, action, \
         created_at) VALUES ($1, 10, 'env', 'prod', 'prefix:rm -rf', 'deny', \
         '2026-01-02T03:04:05Z')",
    )
    .bind(RULE_ID)
    .execute(&mut conn)
    .await
    .unwrap();
    // Before the migration the table refuses the action.
    let refused = sqlx::query(
        "INSERT INTO command_rules (id, position, label_key, label_value, matcher, action, \
         created_at) VALUES ('x', 20, 'env', 'prod', 'any', 'approve', '2026-01-02T03:04:05Z')",
    )
    .execute(&mut conn)
    .await;
    assert!(refused.is_err());
    conn.close().await.unwrap();

    let (store, _) = Store::create_or_open(&options(&root)).await.unwrap();
    let rules = store.list_command_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id.to_string(), RULE_ID);
    assert_eq!(rules[0].describe(), "#10 deny prefix:rm -rf");
    let added = store
        .add_command_rule(
            &Actor::System,
            &NewCommandRule {
                scope: RuleScope::Label(Label::parse("env=prod").unwrap()),
                matcher: Matcher::parse("prefix:systemctl restart").unwrap(),
                action: RuleAction::Approve,
                position: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(added.describe(), "#20 approve prefix:systemctl restart");
    let prod = vec![Label::parse("env=prod").unwrap()];
    let set = store
        .command_rules_for(uuid::Uuid::nil(), &prod)
        .await
        .unwrap();
    assert_eq!(set.rules().len(), 2);
    // The indexes are there again.
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'command_rules' \
         AND name LIKE 'command_rules_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(indexes, ["command_rules_grant", "command_rules_label"]);
}

fn held(timeout: Duration) -> NewCommandApproval {
    NewCommandApproval {
        session: uuid::Uuid::now_v7(),
        requester: Name::parse("user", "alice").unwrap(),
        target: "root@web-01".into(),
        asset: Name::parse("asset", "web-01").unwrap(),
        labels: vec![Label::parse("env=prod").unwrap()],
        line: "systemctl restart nginx".into(),
        command: "systemctl restart nginx".into(),
        rule: "#20 approve prefix:systemctl restart".into(),
        timeout,
    }
}

async fn a_held_line_is_decided_once_and_never_by_its_requester() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::create_or_open(&options(&dir.path().join("data")))
        .await
        .unwrap();
    let (alice, bob) = (
        Name::parse("user", "alice").unwrap(),
        Name::parse("user", "bob").unwrap(),
    );
    let bob_actor = Actor::User { name: "bob".into() };

    // Approved by someone else, once.
    let waiting = store
        .request_command_approval(&held(Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(waiting.is_pending());
    assert_eq!(waiting.labels, ["env=prod"]);
    assert_eq!(store.list_command_approvals(true).await.unwrap().len(), 1);
    let own = store
        .decide_command_approval(
            &Actor::User {
                name: "alice".into(),
            },
            waiting.id,
            Some(&alice),
            Decision::Approve,
            None,
        )
        .await
        .unwrap_err();
    assert!(own.to_string().contains("their own command"), "{own}");
    assert_eq!(
        store
            .poll_command_approval(waiting.id)
            .await
            .unwrap()
            .outcome(),
        None
    );
    let approved = store
        .decide_command_approval(&bob_actor, waiting.id, Some(&bob), Decision::Approve, None)
        .await
        .unwrap();
    assert_eq!(
        approved.outcome(),
        Some(ApprovalOutcome::Approved { by: "bob".into() })
    );
    let again = store
        .decide_command_approval(&bob_actor, waiting.id, Some(&bob), Decision::Deny, None)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already approved"), "{again}");
    assert!(store.list_command_approvals(true).await.unwrap().is_empty());

    // Nobody decides in time: the waiting session's look marks it timed out, and a late
    // decision is refused.
    let late = store
        .request_command_approval(&held(Duration::ZERO))
        .await
        .unwrap();
    assert!(!late.is_pending());
    assert!(store.list_command_approvals(true).await.unwrap().is_empty());
    let refused = store
        .decide_command_approval(&bob_actor, late.id, Some(&bob), Decision::Approve, None)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("already timed out"),
        "{refused}"
    );
    assert_eq!(
        store
            .poll_command_approval(late.id)
            .await
            .unwrap()
            .outcome(),
        Some(ApprovalOutcome::TimedOut)
    );

    // Denied with a note; and a session that ends first cancels its wait (a decision after
    // that is refused, a cancel after a decision changes nothing).
    let denied = store
        .request_command_approval(&held(Duration::from_secs(120)))
        .await
        .unwrap();
    let decided = store
        .decide_command_approval(
            &bob_actor,
            denied.id,
            Some(&bob),
            Decision::Deny,
            Some("not during the freeze"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .cancel_command_approval(denied.id)
            .await
            .unwrap()
            .outcome(),
        decided.outcome()
    );
    assert_eq!(
        decided.outcome(),
        Some(ApprovalOutcome::Denied {
            by: "bob".into(),
            note: Some("not during the freeze".into())
        })
    );
    let gone = store
        .request_command_approval(&held(Duration::from_secs(120)))
        .await
        .unwrap();
    assert_eq!(
        store
            .cancel_command_approval(gone.id)
            .await
            .unwrap()
            .outcome(),
        Some(ApprovalOutcome::Cancelled)
    );
    assert!(
        store
            .decide_command_approval(&bob_actor, gone.id, Some(&bob), Decision::Approve, None)
            .await
            .is_err()
    );

    // Every step is in the audit log, in order.
    let events = store.all_audit_events().await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| e.kind.starts_with("command_approval"))
        .map(|e| {
            let decision = e.event["decision"].as_str().unwrap_or("");
            format!("{} {decision}", e.kind).trim().to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "command_approval_requested",
            "command_approval_decided approved",
            "command_approval_requested",
            "command_approval_decided timed_out",
            "command_approval_requested",
            "command_approval_decided denied",
            "command_approval_requested",
            "command_approval_decided cancelled",
        ]
    );
}

on_both_backends!(a_held_line_is_decided_once_and_never_by_its_requester,);
