//! Authenticated clients and targets that misbehave: a client that pipelines hundreds of
//! channel requests before its command, a target that accepts TCP and never speaks SSH. Neither
//! may wedge a session, a connection or a task of the bastion.

use crate::ssh::{Lab, text};
use rampart_testkit::SshTarget;
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, client::Msg};
use std::sync::Arc;
use std::time::Duration;

struct TrustAll;

impl client::Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A russh client logged in to the bastion as `user` with alice's key.
async fn logged_in(lab: &Lab, user: &str) -> client::Handle<TrustAll> {
    let key = russh::keys::load_secret_key(lab.r.scratch().join("alice"), None).unwrap();
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect(config, lab.server.ssh, TrustAll)
        .await
        .unwrap();
    let auth = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(auth.success(), "{auth:?}");
    handle
}

/// What a channel answered until it closed (or nothing more came for a minute).
#[derive(Debug, Default)]
struct Answers {
    /// The replies to requests, in order: true for success.
    replies: Vec<bool>,
    output: Vec<u8>,
    exit_status: Option<u32>,
    /// Whether the channel closed (false: the bastion went silent).
    closed: bool,
}

async fn answers(channel: &mut russh::Channel<Msg>) -> Answers {
    let mut answers = Answers::default();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), channel.wait()).await {
            Ok(Some(ChannelMsg::Success)) => answers.replies.push(true),
            Ok(Some(ChannelMsg::Failure)) => answers.replies.push(false),
            Ok(Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. })) => {
                answers.output.extend_from_slice(&data);
            }
            Ok(Some(ChannelMsg::ExitStatus { exit_status })) => {
                answers.exit_status = Some(exit_status);
            }
            Ok(Some(ChannelMsg::Close) | None) => {
                answers.closed = true;
                return answers;
            }
            Ok(Some(_)) => {}
            Err(_) => return answers,
        }
    }
}

#[test]
fn hundreds_of_pipelined_environment_requests_get_their_replies_and_the_command_runs() {
    let Some(lab) = Lab::start() else { return };
    // A target that takes the variables a client may pass, to see which arrive.
    let dir = lab.r.scratch();
    let target = SshTarget::start_with(&dir.join("target.pub"), "AcceptEnv LANG LC_*\n").unwrap();
    let port = target.port.to_string();
    lab.r.ok(&[
        "asset",
        "add",
        "env-01",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]);
    let account = format!("{}@env-01", lab.login);
    let key = dir.join("target");
    lab.r.ok(&[
        "account",
        "add",
        &account,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "env-01"]);
    let user = format!("alice@{account}");
    let answered = runtime().block_on(async {
        let handle = logged_in(&lab, &user).await;
        let mut channel = handle.channel_open_session().await.unwrap();
        // All sent at once, without waiting for a reply: 40 that want one (32 fit the bound,
        // 8 do not), one forbidden name, then 400 that want none, then the command.
        for n in 0..40 {
            channel
                .set_env(true, format!("LC_PIPELINED_{n}"), "x")
                .await
                .unwrap();
        }
        channel
            .set_env(true, "LD_PRELOAD", "/tmp/x.so")
            .await
            .unwrap();
        for n in 0..400 {
            channel
                .set_env(false, format!("LC_FLOOD_{n}"), "y".repeat(512))
                .await
                .unwrap();
        }
        channel
            .exec(
                true,
                "echo kept=$(env | grep -c '^LC_PIPELINED_') flood=$(env | grep -c '^LC_FLOOD_') \
                 preload=${LD_PRELOAD:-none}",
            )
            .await
            .unwrap();
        answers(&mut channel).await
    });
    let output = text(&answered.output);
    assert!(
        answered.closed,
        "the bastion went silent after pipelined requests: {answered:?}"
    );
    assert_eq!(answered.exit_status, Some(0), "{output}");
    assert!(
        output.contains("kept=32 flood=0 preload=none"),
        "{output:?}"
    );
    // One reply per request that wanted one, in order: 32 kept, 8 over the bound and the
    // forbidden name refused, then the command's start.
    let mut expected = vec![true; 32];
    expected.extend([false; 9]);
    expected.push(true);
    assert_eq!(answered.replies, expected);
    // The bastion serves the next connection as before.
    let after = lab.ssh(&user, "echo still-serving", b"");
    assert!(text(&after.stdout).contains("still-serving"), "{after:?}");
}

#[test]
fn a_target_that_never_answers_ssh_refuses_the_session_at_the_configured_deadline() {
    let Some(lab) = Lab::start_with_env(&[("RAMPART_SSH_TARGET_ANSWER_TIMEOUT", "2s")]) else {
        return;
    };
    // Accepts TCP, never sends a banner; notes when Rampart closes each connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let closed_tx = closed_tx.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(1..) = std::io::Read::read(&mut stream, &mut buffer) {}
                let _ = closed_tx.send(());
            });
        }
    });
    lab.r.ok(&[
        "asset",
        "add",
        "silent-01",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]);
    let account = format!("{}@silent-01", lab.login);
    let key = lab.r.scratch().join("target");
    lab.r.ok(&[
        "account",
        "add",
        &account,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "silent-01"]);

    // The user types while the target says nothing.
    let refused = lab.ssh(&format!("alice@{account}"), "cat", &vec![b'x'; 64 * 1024]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "target {account} is unreachable (no answer within 2s)"
        )),
        "{stderr}"
    );
    // Rampart hung up on the silent target rather than keep waiting.
    closed
        .recv_timeout(Duration::from_secs(60))
        .expect("Rampart kept the connection to the silent target open");
    let sessions = lab.sessions();
    let session = sessions
        .iter()
        .find(|s| s["asset"] == "silent-01")
        .expect("a session record for the silent target");
    assert!(
        session["end_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("no answer within 2s")),
        "{session}"
    );
    // The bastion serves the next session as before.
    let after = lab.ssh(&lab.direct(), "echo still-serving", b"");
    assert!(text(&after.stdout).contains("still-serving"), "{after:?}");
}

#[test]
fn a_client_that_pipelines_hundreds_of_messages_before_its_target_answers_keeps_its_connection() {
    // A deadline long enough that the old behaviour (the whole connection stood still until
    // the silent target's deadline) shows as an order of events, not as a time.
    let Some(lab) = Lab::start_with_env(&[("RAMPART_SSH_TARGET_ANSWER_TIMEOUT", "20s")]) else {
        return;
    };
    // Accepts TCP, never sends a banner.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            held.push(stream);
        }
    });
    lab.r.ok(&[
        "asset",
        "add",
        "silent-02",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]);
    let silent = format!("{}@silent-02", lab.login);
    let key = lab.r.scratch().join("target");
    lab.r.ok(&[
        "account",
        "add",
        &silent,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    lab.r
        .ok(&["grant", "add", "--user", "alice", "--asset", "silent-02"]);

    let (unanswered, pipelined) = runtime().block_on(async {
        let handle = logged_in(&lab, &format!("alice@{silent}")).await;
        // A command for the silent target, and 300 lines typed at once behind it: more than
        // russh's queue of 100 messages per channel.
        let mut stuck = handle.channel_open_session().await.unwrap();
        stuck.exec(true, "cat").await.unwrap();
        for n in 0..300 {
            stuck
                .data_bytes(format!("{n}\n").into_bytes())
                .await
                .unwrap();
        }
        // The same connection opens another channel meanwhile: the bastion answers it.
        let _other = handle.channel_open_session().await.unwrap();
        // What the first channel had heard by then: nothing, while its target is silent (the
        // old relay answered the second channel only after the first had failed).
        let mut unanswered = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(Duration::ZERO, stuck.wait()).await {
            if !matches!(message, ChannelMsg::WindowAdjusted { .. }) {
                unanswered.push(format!("{message:?}"));
            }
        }
        // On a target that answers, lines typed ahead of its answer all arrive, in order.
        let direct = logged_in(&lab, &lab.direct()).await;
        let mut ahead = direct.channel_open_session().await.unwrap();
        ahead.exec(true, "cat").await.unwrap();
        for n in 0..300 {
            ahead
                .data_bytes(format!("{n}\n").into_bytes())
                .await
                .unwrap();
        }
        ahead.eof().await.unwrap();
        (unanswered, answers(&mut ahead).await)
    });
    assert!(
        unanswered.is_empty(),
        "the connection stood still until the silent target's deadline: the first channel was \
         already answered ({unanswered:?}) when a second one could open"
    );
    let expected: String = (0..300).map(|n| format!("{n}\n")).collect();
    assert_eq!(text(&pipelined.output), expected, "{pipelined:?}");
    assert_eq!(pipelined.exit_status, Some(0));
}
