//! The browser terminal's backend against a real sshd: a terminal opened for an authenticated
//! user takes the SSH path (policy, vault, recording), and a live session can be watched.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use rampart_core::audit::Actor;
use rampart_core::{
    AccountRef, ActionSet, GrantSubject, GrantTarget, Name, Role, SecretKind, SecretString,
};
use rampart_ssh::{Gateway, GatewaySettings, TerminalEvent, TerminalRequest};
use rampart_store::{MasterKeySource, NewAccountSecret, NewAsset, NewGrant, Store, StoreOptions};
use rampart_testkit::{SshTarget, current_user, require_tool, ssh_keygen};
use std::sync::Arc;
use std::time::Duration;

fn name(text: &str) -> Name {
    Name::parse("test", text).unwrap()
}

/// Reads terminal events until the screen so far contains `expected`.
async fn read_until(terminal: &mut rampart_ssh::Terminal, expected: &str) -> String {
    let mut screen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !screen.contains(expected) {
        let event = tokio::time::timeout_at(deadline, terminal.next())
            .await
            .unwrap_or_else(|_| panic!("{expected:?} never shown; screen: {screen:?}"));
        match event {
            Some(TerminalEvent::Output(bytes)) => screen.push_str(&String::from_utf8_lossy(&bytes)),
            Some(TerminalEvent::Exit(status)) => screen.push_str(&format!("[exit {status}]")),
            None => panic!("terminal closed before {expected:?}; screen: {screen:?}"),
        }
    }
    screen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_terminal_takes_the_ssh_path_and_can_be_watched() {
    if require_tool("sshd").is_none() || require_tool("ssh-keygen").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (target_key, target_pub) = ssh_keygen(dir.path(), "target", "ed25519", "");
    let target = SshTarget::start(&target_pub).unwrap();
    let serve_lock = rampart_store::ServeLock::acquire(&dir.path().join("data")).unwrap();
    let (store, _) = Store::open_for_serving(
        &StoreOptions {
            data_dir: dir.path().join("data"),
            master_key: MasterKeySource::DataDir,
            database: None,
        },
        &serve_lock,
    )
    .await
    .unwrap();
    let actor = Actor::System;
    let alice = store
        .add_user(&actor, &name("alice"), Role::User, &[])
        .await
        .unwrap();
    store
        .add_asset(
            &actor,
            &NewAsset::ssh(name("web-01"), "127.0.0.1".into(), target.port, vec![]),
        )
        .await
        .unwrap();
    let account = AccountRef {
        login: name(&current_user()),
        asset: name("web-01"),
    };
    let key = std::fs::read_to_string(&target_key).unwrap();
    store
        .add_account(
            &actor,
            &account,
            &NewAccountSecret {
                kind: SecretKind::PrivateKey,
                value: SecretString::from(key),
            },
        )
        .await
        .unwrap();
    let store = Arc::new(store);
    let (gateway, _) =
        Gateway::new(store.clone(), GatewaySettings::default(), &serve_lock).unwrap();
    let request = TerminalRequest {
        user: alice.clone(),
        mfa: false,
        source: "127.0.0.1:50000".parse().unwrap(),
        account: account.clone(),
        term: "xterm-256color".into(),
        cols: 100,
        rows: 30,
    };

    // No grant yet: the terminal shows the same refusal an SSH client gets, and ends.
    let mut refused = gateway.open_terminal(request.clone()).await.unwrap();
    let screen = read_until(&mut refused, "[exit 1]").await;
    assert!(screen.contains("rampart: alice may not use"), "{screen}");

    store
        .add_grant(
            &actor,
            &NewGrant {
                subject: GrantSubject::User(name("alice")),
                target: GrantTarget::Asset(name("web-01")),
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
    let mut terminal = gateway.open_terminal(request).await.unwrap();
    terminal
        .input(b"stty cols 100; echo ready-$((6*7))\n")
        .await
        .unwrap();
    read_until(&mut terminal, "ready-42").await;

    // An auditor watching sees what alice sees from now on.
    let session = store.list_sessions(true).await.unwrap();
    assert_eq!(session.len(), 1);
    assert_eq!(session[0].source_addr, "127.0.0.1:50000 (web)");
    assert_eq!(session[0].kind.to_string(), "shell");
    let mut watcher = gateway.watch(session[0].id).unwrap();
    terminal.input(b"echo watched-$((2*21))\n").await.unwrap();
    read_until(&mut terminal, "watched-42").await;
    let mut seen = String::new();
    while !seen.contains("watched-42") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), watcher.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    terminal.resize(120, 40).await.unwrap();
    terminal.input(b"exit 3\n").await.unwrap();
    read_until(&mut terminal, "[exit 3]").await;

    // The session was recorded like any SSH shell, and its command logged.
    let mut ended = store.list_sessions(false).await.unwrap();
    for _ in 0..100 {
        if ended.iter().all(|s| s.ended_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ended = store.list_sessions(false).await.unwrap();
    }
    let shell = ended
        .iter()
        .find(|s| s.kind.to_string() == "shell")
        .unwrap();
    assert_eq!(shell.exit_status, Some(3));
    assert!(rampart_audit::has_recording(
        &store.data_dir().recordings_dir(),
        shell.id
    ));
    let commands = store
        .commands(&rampart_store::CommandFilter::default())
        .await
        .unwrap();
    assert!(
        commands
            .iter()
            .any(|c| c.command.contains("echo watched-$((2*21))")),
        "{commands:?}"
    );
}
