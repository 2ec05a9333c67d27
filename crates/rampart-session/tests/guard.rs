//! The session guard ends a session exactly once on every path that can end it: a normal end, a
//! target error, a kill, a revocation, the node shutting down, and the guard dropped by a panic
//! or a cancelled task. Each path leaves a sealed recording (verified with the node's audit key)
//! and a closed session record with one `session_ended` event. Real parts: a store in a
//! temporary directory, real recording files, the real live-enforcement loop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use bytes::Bytes;
use rampart_audit::{CastHeader, Stream};
use rampart_core::audit::Actor;
use rampart_core::login_rules::LoginRules;
use rampart_core::policy::{Limit, SessionRules};
use rampart_core::{Action, ActionSet, GrantSubject, GrantTarget, Name, Role};
use rampart_session::guard::{CANCELLED, PANICKED};
use rampart_session::live::{LiveSessions, SessionDefaults};
use rampart_session::observe::Observer;
use rampart_session::observers::CommandObserver;
use rampart_session::{
    Authorized, Evidence, RecordingPlan, RecordingSettings, Refused, SessionCore, SessionGuard,
    Source, StartRequest,
};
use rampart_store::{MasterKeySource, NewAsset, NewGrant, Store, StoreOptions};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

struct Lab {
    _tmp: tempfile::TempDir,
    store: Arc<Store>,
    core: SessionCore,
    authorized: Authorized,
}

async fn lab() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        data_dir: tmp.path().join("data"),
        master_key: MasterKeySource::DataDir,
        database: None,
    };
    let store = Arc::new(Store::create_or_open(&options).await.unwrap().0);
    let alice = Name::parse("user", "alice").unwrap();
    let user = store
        .add_user(&Actor::System, &alice, Role::User, &[])
        .await
        .unwrap();
    let asset = store
        .add_asset(
            &Actor::System,
            &NewAsset::ssh(
                Name::parse("asset", "web-01").unwrap(),
                "127.0.0.1".into(),
                22,
                vec![],
            ),
        )
        .await
        .unwrap();
    // The grant the session was allowed by, so live enforcement keeps allowing it.
    let grant = store
        .add_grant(
            &Actor::System,
            &NewGrant {
                subject: GrantSubject::User(alice),
                target: GrantTarget::Asset(asset.name.clone()),
                accounts: vec![],
                actions: ActionSet::parse("shell").unwrap(),
                namespaces: Vec::new(),
                valid_from: None,
                valid_until: None,
                schedule: None,
                require_mfa: false,
                idle_timeout: None,
                max_duration: None,
                record: true,
            },
        )
        .await
        .unwrap();
    let key = rampart_audit::read_private_key(&store.data_dir().audit_key_path()).unwrap();
    let recordings = store.data_dir().recordings_dir();
    std::fs::create_dir_all(&recordings).unwrap();
    let evidence = Evidence {
        dir: recordings,
        key: Arc::new(key),
        recording: RecordingSettings::default(),
        statements: Default::default(),
        replica: None,
    };
    let live = Arc::new(LiveSessions::new(
        SessionDefaults::default(),
        LoginRules::default(),
    ));
    let core = SessionCore::new(store.clone(), evidence, live);
    let authorized = Authorized {
        user,
        mfa: false,
        source: Source {
            text: "192.0.2.7".into(),
            ip: [192, 0, 2, 7].into(),
        },
        asset,
        account: Name::parse("account", "root").unwrap(),
        grant: grant.id,
        rules: SessionRules {
            idle_timeout: Limit::of_grant(None),
            max_duration: Limit::of_grant(None),
            record: true,
        },
        actions: vec![Action::Shell],
        kube_namespace: None,
    };
    Lab {
        _tmp: tmp,
        store,
        core,
        authorized,
    }
}

impl Lab {
    /// A recorded shell with a command log, as the SSH front starts one.
    async fn start_shell(&self) -> SessionGuard {
        let inspectors: Vec<Box<dyn Observer>> = vec![Box::new(CommandObserver::new(80, 24))];
        self.core
            .start(StartRequest {
                authorized: self.authorized.clone(),
                kind: rampart_core::SessionKind::Shell,
                interactive: true,
                command: None,
                recording: Some(RecordingPlan {
                    header: CastHeader::new(
                        80,
                        24,
                        Some("xterm"),
                        None,
                        "alice as root@web-01".into(),
                    ),
                    raw_streams: false,
                }),
                inspectors,
            })
            .await
            .unwrap()
    }

    /// Asserts what every ending leaves: the record closed with `reason`, one `session_ended`
    /// event, a recording that verifies as complete, and no live registration.
    async fn assert_ended_once(&self, id: Uuid, reason: &str) -> rampart_core::Session {
        let session = self.store.session(id).await.unwrap();
        assert!(
            session.ended_at.is_some(),
            "the record is closed: {session:?}"
        );
        assert_eq!(session.end_reason.as_deref(), Some(reason));
        let ended: Vec<_> = self
            .store
            .all_audit_events()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "session_ended" && e.event["session"] == id.to_string())
            .collect();
        assert_eq!(ended.len(), 1, "ended exactly once: {ended:?}");
        let report = rampart_audit::verify_recording(
            &self.core.evidence.dir,
            id,
            self.core.evidence.key.public_key(),
        )
        .unwrap();
        assert!(
            report.complete,
            "the recording is sealed by the session's end"
        );
        // The chain anchors the very manifest that is on disk.
        assert_eq!(
            ended[0].event["recording"]["manifest_sha256"],
            report.manifest_sha256.as_str(),
            "{ended:?}"
        );
        assert!(self.core.live.watch(id).is_none(), "no longer live");
        session
    }
}

async fn type_and_echo(guard: &SessionGuard, text: &str) {
    let tap = guard.tap();
    let data = Bytes::from(text.to_owned());
    let verdict = tap.client_sent(&data).await.unwrap();
    assert!(
        verdict.forward.is_none(),
        "a shell's input passes unchanged"
    );
    tap.target_sent(&[(Stream::Output, data)]).await.unwrap();
}

#[tokio::test]
async fn a_normal_end_seals_the_recording_and_closes_the_record_with_bytes_and_status() {
    let lab = lab().await;
    let guard = lab.start_shell().await;
    let id = guard.id();
    assert!(
        lab.core.live.watch(id).is_some(),
        "registered live at start"
    );
    type_and_echo(&guard, "uptime\r\n").await;
    let end = guard.end("target closed the channel", Some(0)).await;
    assert!(end.recording.is_some());
    let session = lab.assert_ended_once(id, "target closed the channel").await;
    assert_eq!(session.exit_status, Some(0));
    assert_eq!(session.bytes_from_client, 8);
    assert_eq!(session.bytes_to_client, 8);
    let cast = std::fs::read_to_string(rampart_audit::recording::cast_path(
        &lab.core.evidence.dir,
        id,
    ))
    .unwrap();
    assert!(cast.contains("exit status 0"), "{cast}");
    assert!(cast.contains("uptime"), "{cast}");
}

#[tokio::test]
async fn input_handed_over_ahead_is_judged_at_once_and_in_the_recording_once_written() {
    let lab = lab().await;
    let guard = lab.start_shell().await;
    let id = guard.id();
    let tap = guard.tap();
    let cast_path = rampart_audit::recording::cast_path(&lab.core.evidence.dir, id);
    // Two batches handed over one behind the other, before the first's write is waited for:
    // each has its verdicts already.
    let (first, first_written) = tap
        .clients_handed(&[Bytes::from_static(b"first-"), Bytes::from_static(b"batch ")])
        .await
        .unwrap();
    let (second, second_written) = tap
        .clients_handed(&[Bytes::from_static(b"second-batch")])
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (2, 1));
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|verdict| verdict.forward.is_none())
    );
    // Once a write resolved, its batch is in the file, in the order handed over.
    first_written.await.unwrap();
    let cast = std::fs::read_to_string(&cast_path).unwrap();
    assert!(cast.contains("first-") && cast.contains("batch "), "{cast}");
    second_written.await.unwrap();
    let cast = std::fs::read_to_string(&cast_path).unwrap();
    let (one, two) = (
        cast.find("first-").unwrap(),
        cast.find("second-batch").unwrap(),
    );
    assert!(one < two, "{cast}");
    guard.end("target closed the channel", Some(0)).await;
    let session = lab.assert_ended_once(id, "target closed the channel").await;
    assert_eq!(session.bytes_from_client, 24);
}

#[tokio::test]
async fn a_target_error_before_any_byte_still_seals_and_closes() {
    let lab = lab().await;
    let guard = lab.start_shell().await;
    let id = guard.id();
    let reason = "the target root@web-01 refused a new session (connection refused)";
    guard.end(reason, None).await;
    let session = lab.assert_ended_once(id, reason).await;
    assert_eq!(session.exit_status, None);
    assert_eq!(session.bytes_from_client, 0);
}

/// Runs live enforcement until the returned sender is dropped.
fn enforce(lab: &Lab) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(lab.core.live.clone().enforce(lab.store.clone(), stopped));
    stop
}

/// Waits for live enforcement to end the session (the front's side), then ends it as a front
/// does with the reason it was given.
async fn end_when_told(mut guard: SessionGuard) -> String {
    let mut control = guard.take_control().unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(60), control.stopped())
        .await
        .expect("live enforcement ends the session");
    guard.end(reason.clone(), None).await;
    reason
}

#[tokio::test]
async fn a_kill_request_ends_the_session_once_with_who_and_why() {
    let lab = lab().await;
    let _enforcing = enforce(&lab);
    let guard = lab.start_shell().await;
    let id = guard.id();
    type_and_echo(&guard, "top\r\n").await;
    lab.store
        .request_session_kill(
            &Actor::User {
                name: "admin".into(),
            },
            id,
            "incident 42",
        )
        .await
        .unwrap();
    let reason = end_when_told(guard).await;
    assert_eq!(reason, "ended by user:admin: incident 42");
    lab.assert_ended_once(id, &reason).await;
}

#[tokio::test]
async fn a_revoked_user_ends_the_session_once() {
    let lab = lab().await;
    let _enforcing = enforce(&lab);
    let guard = lab.start_shell().await;
    let id = guard.id();
    lab.store
        .set_user_disabled(&Actor::System, &lab.authorized.user.name, true)
        .await
        .unwrap();
    let reason = end_when_told(guard).await;
    assert_eq!(reason, "the user was disabled");
    lab.assert_ended_once(id, &reason).await;
}

#[tokio::test]
async fn the_node_shutting_down_ends_every_session_before_it_stops() {
    let lab = lab().await;
    let first = lab.start_shell().await;
    let second = lab.start_shell().await;
    let ids = [first.id(), second.id()];
    let fronts = [
        tokio::spawn(end_when_told(first)),
        tokio::spawn(end_when_told(second)),
    ];
    lab.core.live.end_all("the node is shutting down");
    assert!(lab.core.live.drained(Duration::from_secs(60)).await);
    for front in fronts {
        front.await.unwrap();
    }
    for id in ids {
        lab.assert_ended_once(id, "the node is shutting down").await;
    }
}

#[tokio::test]
async fn a_front_that_panics_still_ends_its_session_once() {
    let lab = lab().await;
    let guard = lab.start_shell().await;
    let id = guard.id();
    let ended = guard.ended();
    let front = tokio::spawn(async move {
        type_and_echo(&guard, "make\r\n").await;
        panic!("a bug in a protocol front");
    });
    assert!(front.await.unwrap_err().is_panic());
    let end = tokio::time::timeout(Duration::from_secs(60), ended.wait())
        .await
        .unwrap();
    assert_eq!(end.reason, PANICKED);
    let session = lab.assert_ended_once(id, PANICKED).await;
    assert_eq!(session.bytes_from_client, 6, "what passed is still counted");
}

#[tokio::test]
async fn a_cancelled_front_still_ends_its_session_once() {
    let lab = lab().await;
    let guard = lab.start_shell().await;
    let id = guard.id();
    let ended = guard.ended();
    let (typed, typing) = tokio::sync::oneshot::channel();
    let front = tokio::spawn(async move {
        type_and_echo(&guard, "sleep 1000\r\n").await;
        let _ = typed.send(());
        std::future::pending::<()>().await;
        drop(guard);
    });
    // Cancel the front once it has passed its bytes.
    typing.await.unwrap();
    front.abort();
    assert!(front.await.unwrap_err().is_cancelled());
    let end = tokio::time::timeout(Duration::from_secs(60), ended.wait())
        .await
        .unwrap();
    assert_eq!(end.reason, CANCELLED);
    let session = lab.assert_ended_once(id, CANCELLED).await;
    assert_eq!(session.bytes_from_client, 12);
}

#[tokio::test]
async fn a_session_that_cannot_be_recorded_is_refused_before_it_exists() {
    let mut lab = lab().await;
    // The recordings directory is a file: no recording can be created there.
    let blocked = lab.core.evidence.dir.with_file_name("not-a-directory");
    std::fs::write(&blocked, b"").unwrap();
    lab.core.evidence.dir = blocked;
    let refused = lab
        .core
        .start(StartRequest {
            authorized: lab.authorized.clone(),
            kind: rampart_core::SessionKind::Shell,
            interactive: true,
            command: None,
            recording: Some(RecordingPlan {
                header: CastHeader::new(80, 24, None, None, "refused".into()),
                raw_streams: false,
            }),
            inspectors: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(refused, Refused);
    assert!(lab.store.list_sessions(false).await.unwrap().is_empty());
    let failures = lab
        .store
        .all_audit_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "recording_failed")
        .count();
    assert_eq!(failures, 1);
}
