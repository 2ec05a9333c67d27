//! One client connection, from its first byte to its session's end.
//!
//! 1. Negotiation (within the login grace time): `SSLRequest` answered `S` and TLS with the
//!    node's certificate (or a direct TLS handshake); `GSSENCRequest` answered `N`; a
//!    `CancelRequest` forwarded to the backend it names; plain connections only from loopback
//!    and only when configured.
//! 2. Login: `AuthenticationCleartextPassword` (inside TLS); the password is a personal database
//!    token, checked by the one authenticator. Every failure reads the same.
//! 3. Authorization (`postgres:connect`, or `postgres:read`: read-only) through
//!    `rampart_session::authorize`, the session's statement control (read-only, command
//!    rules), then the session's start through the core (query log, recording, record, live
//!    registration).
//! 4. The target: dialled through the dialer, logged in with the vaulted password.
//! 5. The relay: whole messages only, each batch through the session's tap before it is
//!    forwarded; a message Rampart does not understand ends the session with an error; live
//!    enforcement ends it with an `ErrorResponse`.

use crate::cancel::CancelTarget;
use crate::querylog::QueryLog;
use crate::wire::{
    self, Message, Startup, WireError, read_message, read_startup, send_error, split_messages,
    write_message,
};
use crate::{PostgresFront, target_login};
use bytes::{BufMut, Bytes, BytesMut};
use rampart_audit::{CastHeader, Stream};
use rampart_auth::{Attempt, Front, Refusal};
use rampart_core::audit::Actor;
use rampart_core::target::Protocol;
use rampart_core::{ExposeSecret, SecretString, SessionKind, User};
use rampart_session::command_control;
use rampart_session::database::{self, DbLogin};
use rampart_session::framed::{self, Framing, RelayEnd};
use rampart_session::statement_control::StatementControl;
use rampart_session::target_tls;
use rampart_session::{Authorized, RecordingPlan, SessionTap, Source, StartRequest};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

pub use rampart_session::database::Io;

/// Startup parameters passed on to the target (the rest are dropped).
const PASSED_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
    "IntervalStyle",
    "search_path",
];
/// The largest password message accepted.
const MAX_PASSWORD_MESSAGE: usize = 1024;

/// A client that logged in, ready for its session.
struct LoggedIn {
    client: Box<dyn Io>,
    user: User,
    mfa: bool,
    login: DbLogin,
    database: Option<String>,
    passed: Vec<(String, String)>,
}

/// Serves one connection. `permit` is its place among the connections not logged in yet.
pub async fn serve(
    front: PostgresFront,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let grace = front.settings.login_grace_time;
    let logged_in = match tokio::time::timeout(grace, negotiate_and_login(&front, tcp, peer)).await
    {
        Ok(Some(logged_in)) => logged_in,
        Ok(None) => return,
        Err(_) => {
            tracing::info!(%peer, "postgres: login grace time passed; closing");
            return;
        }
    };
    drop(permit);
    session(&front, logged_in, peer).await;
}

/// Is a plain connection from `peer` allowed?
fn plain_allowed(front: &PostgresFront, peer: &SocketAddr) -> bool {
    front.settings.allow_plain_loopback && peer.ip().is_loopback()
}

async fn negotiate_and_login(
    front: &PostgresFront,
    mut tcp: TcpStream,
    peer: SocketAddr,
) -> Option<LoggedIn> {
    let (mut client, params): (Box<dyn Io>, Vec<(String, String)>) = {
        let mut first = [0u8; 1];
        let direct_tls = matches!(tcp.peek(&mut first).await, Ok(1)) && first == [0x16];
        if direct_tls {
            let acceptor = front.base.tls.clone()?;
            let mut tls = acceptor.accept(tcp).await.ok()?;
            match read_startup(&mut tls).await {
                Ok(Startup::Params(params)) => (Box::new(tls), params),
                _ => {
                    send_error(&mut tls, "FATAL", "08P01", "expected a startup message").await;
                    return None;
                }
            }
        } else {
            let mut negotiated = None;
            // SSLRequest, GSSENCRequest, then the startup message: a few packets at most.
            for _ in 0..3 {
                match read_startup(&mut tcp).await {
                    Ok(Startup::GssEnc) => {
                        tcp.write_all(b"N").await.ok()?;
                    }
                    Ok(Startup::Cancel { pid, key }) => {
                        forward_cancel(front, pid, key).await;
                        return None;
                    }
                    Ok(Startup::Ssl) => {
                        let Some(acceptor) = front.base.tls.clone() else {
                            tcp.write_all(b"N").await.ok()?;
                            continue;
                        };
                        tcp.write_all(b"S").await.ok()?;
                        let mut tls = acceptor.accept(tcp).await.ok()?;
                        match read_startup(&mut tls).await {
                            Ok(Startup::Params(params)) => {
                                negotiated = Some((Box::new(tls) as Box<dyn Io>, params));
                            }
                            Ok(Startup::Cancel { pid, key }) => {
                                forward_cancel(front, pid, key).await;
                                return None;
                            }
                            _ => {
                                send_error(
                                    &mut tls,
                                    "FATAL",
                                    "08P01",
                                    "expected a startup message",
                                )
                                .await;
                                return None;
                            }
                        }
                        break;
                    }
                    Ok(Startup::Params(params)) => {
                        if !plain_allowed(front, &peer) {
                            send_error(
                                &mut tcp,
                                "FATAL",
                                "28000",
                                "Rampart requires TLS: connect with sslmode=require",
                            )
                            .await;
                            return None;
                        }
                        negotiated = Some((Box::new(tcp) as Box<dyn Io>, params));
                        break;
                    }
                    Err(err) => {
                        send_error(&mut tcp, "FATAL", "08P01", &err.0).await;
                        return None;
                    }
                }
            }
            negotiated?
        }
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if param("replication").is_some_and(|v| v != "false" && v != "0" && v != "off") {
        send_error(
            &mut client,
            "FATAL",
            "28000",
            "replication connections are not supported",
        )
        .await;
        return None;
    }
    let Some(user_text) = param("user") else {
        send_error(&mut client, "FATAL", "28000", "no user name given").await;
        return None;
    };
    let login = match DbLogin::parse(&user_text) {
        Ok(login) => login,
        Err(why) => {
            send_error(&mut client, "FATAL", "28000", &why).await;
            return None;
        }
    };
    // The password, read inside TLS (or on loopback when plain is allowed).
    write_message(&mut client, b'R', &3u32.to_be_bytes())
        .await
        .ok()?;
    let token = match read_message(&mut client, MAX_PASSWORD_MESSAGE).await {
        Ok(Message {
            tag: b'p',
            mut body,
        }) => match wire::cstring(&mut body) {
            Ok(text) => SecretString::from(text),
            Err(_) => return None,
        },
        _ => return None,
    };
    let attempt = Attempt {
        front: Front::Database,
        login: &user_text,
        user: Some(&login.user),
        source: peer.ip(),
    };
    let user = match front.base.auth.database_login(&attempt, &token).await {
        Ok(done) => done,
        Err(Refusal::Unavailable) => {
            send_error(
                &mut client,
                "FATAL",
                "XX000",
                "Rampart cannot check logins now",
            )
            .await;
            return None;
        }
        // The same answer for every failure (unknown user, wrong, expired or revoked token,
        // locked, refused by the login rules).
        _ => {
            let line = format!("password authentication failed for user \"{user_text}\"");
            send_error(&mut client, "FATAL", "28P01", &line).await;
            return None;
        }
    };
    drop(token);
    let recorded = database::record_login(
        &front.base.core.store,
        &user.user.name,
        &user.method,
        peer.ip(),
    )
    .await;
    if let Err(line) = recorded {
        send_error(&mut client, "FATAL", "XX000", &line).await;
        return None;
    }
    let database = param("database").filter(|db| *db != user_text);
    let passed = params
        .into_iter()
        .filter(|(name, _)| PASSED_PARAMETERS.contains(&name.as_str()))
        .collect();
    Some(LoggedIn {
        client,
        user: user.user,
        mfa: user.mfa,
        login,
        database,
        passed,
    })
}

/// The session: authorize, start, dial, log in to the target, relay, end.
async fn session(front: &PostgresFront, logged_in: LoggedIn, peer: SocketAddr) {
    let LoggedIn {
        mut client,
        user,
        mfa,
        login,
        database,
        passed,
    } = logged_in;
    let source = Source {
        text: peer.ip().to_string(),
        ip: peer.ip(),
    };
    let store = &front.base.core.store;
    let authorized =
        match database::authorize(store, &user, mfa, &login, &source, Protocol::Postgres).await {
            Ok(authorized) => authorized,
            Err(reason) => {
                send_error(&mut client, "FATAL", "28000", &reason).await;
                return;
            }
        };
    // What each statement is checked against: a read-only grant, the command rules.
    let control = match command_control::rules_for(store, &authorized).await {
        Ok(rules) => StatementControl::new(Protocol::Postgres, &authorized, rules),
        Err(why) => {
            send_error(&mut client, "FATAL", "53000", &why).await;
            return;
        }
    };
    let read_only = control.read_only();
    let asset = authorized.asset.clone();
    let account = authorized.account.clone();
    let database = database.unwrap_or_else(|| account.to_string());
    let title = format!(
        "{}@{}@{} (postgres, database {database})",
        user.name, account, asset.name
    );
    let plan = RecordingPlan {
        header: CastHeader::new(80, 24, None, Some(format!("postgres {database}")), title),
        raw_streams: true,
    };
    let started = front
        .base
        .core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind: SessionKind::Postgres,
            interactive: true,
            command: None,
            recording: Some(plan),
            inspectors: vec![Box::new(QueryLog::new(control))],
        })
        .await;
    let mut guard = match started {
        Ok(guard) => guard,
        Err(refused) => {
            send_error(&mut client, "FATAL", "53000", &refused.to_string()).await;
            return;
        }
    };
    let Some(mut control) = guard.take_control() else {
        return;
    };
    let tap = guard.tap();
    // The target: dialled, logged in with the vaulted password.
    let target = match connect_target(front, &authorized, &database, &passed, read_only).await {
        Ok(target) => target,
        Err(why) => {
            send_error(&mut client, "FATAL", "08006", &why).await;
            guard.end(why, None).await;
            return;
        }
    };
    let TargetReady {
        mut stream,
        greeting,
        pid,
        key,
    } = target;
    let Some((client_pid, client_key)) = front.cancels.register(CancelTarget {
        asset: asset.clone(),
        pid,
        key,
    }) else {
        send_error(
            &mut client,
            "FATAL",
            "XX000",
            "no randomness for a cancel key",
        )
        .await;
        guard.end("no randomness for a cancel key", None).await;
        return;
    };
    // AuthenticationOk, the target's parameters, Rampart's cancel key, ReadyForQuery.
    let mut hello = BytesMut::new();
    Message {
        tag: b'R',
        body: Bytes::from_static(&[0, 0, 0, 0]),
    }
    .encode(&mut hello);
    for message in greeting {
        if message.tag == b'Z' {
            let mut key_data = BytesMut::new();
            key_data.put_u32(client_pid);
            key_data.put_u32(client_key);
            Message {
                tag: b'K',
                body: key_data.freeze(),
            }
            .encode(&mut hello);
        }
        message.encode(&mut hello);
    }
    let hello = hello.freeze();
    let reason = match tap.target_sent(&[(Stream::Output, hello.clone())]).await {
        Err(err) => err,
        Ok(()) => match client.write_all(&hello).await {
            Err(_) => "client disconnected".to_owned(),
            Ok(()) => relay(&mut client, &mut stream, &tap, &mut control).await,
        },
    };
    front.cancels.remove(client_pid, client_key);
    guard.end(reason, None).await;
}

/// A logged-in target connection: what it said until its first `ReadyForQuery` (parameters,
/// notices, that `ReadyForQuery`; not its key) and its cancel key.
struct TargetReady {
    stream: Box<dyn Io>,
    greeting: Vec<Message>,
    pid: u32,
    key: u32,
}

async fn connect_target(
    front: &PostgresFront,
    authorized: &Authorized,
    database: &str,
    passed: &[(String, String)],
    read_only: bool,
) -> Result<TargetReady, String> {
    let asset = &authorized.asset;
    let dialed = front
        .base
        .dialer
        .dial(asset, Protocol::Postgres)
        .await
        .map_err(|err| err.to_string())?;
    let actor = Actor::User {
        name: authorized.user.name.to_string(),
    };
    let mut stream = secure(
        Box::new(dialed.stream),
        asset,
        &front.base.core.store,
        &actor,
    )
    .await?;
    let mut params = vec![
        ("user".to_owned(), authorized.account.to_string()),
        ("database".to_owned(), database.to_owned()),
    ];
    params.extend(passed.iter().cloned());
    if read_only {
        // Defense in depth under a read-only grant: what the statement check cannot see (a
        // function that writes, called from a SELECT) fails in a read-only transaction. The
        // statement check refuses changing it back (SET, RESET, BEGIN READ WRITE).
        params.push(("default_transaction_read_only".to_owned(), "on".to_owned()));
    }
    stream
        .write_all(&wire::startup_message(&params))
        .await
        .map_err(|_| format!("target {} closed the connection", dialed.target))?;
    let secret = database::vaulted_password(&front.base.core.store, authorized).await?;
    let logged_in = target_login::login(
        &mut stream,
        authorized.account.as_str(),
        secret.expose_secret(),
    )
    .await;
    drop(secret);
    if let Err(err) = logged_in {
        let account = authorized.account_ref();
        tracing::warn!(%account, error = %err, "postgres target login failed");
        return Err(format!("the target login to {account} failed: {err}"));
    }
    let mut greeting = Vec::new();
    let mut pid_key = (0, 0);
    loop {
        let message = read_message(&mut stream, 64 * 1024)
            .await
            .map_err(|err| format!("target {}: {err}", dialed.target))?;
        match message.tag {
            b'K' => {
                let body = message.body;
                let (Some(pid), Some(key)) = (body.get(0..4), body.get(4..8)) else {
                    return Err("target sent a malformed BackendKeyData".into());
                };
                let word = |b: &[u8]| {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(b);
                    u32::from_be_bytes(w)
                };
                pid_key = (word(pid), word(key));
            }
            b'S' | b'N' => {
                if greeting.len() > 256 {
                    return Err("target sent too many parameters".into());
                }
                greeting.push(message);
            }
            b'Z' => {
                greeting.push(message);
                break;
            }
            b'E' => {
                return Err(format!(
                    "the target refused the session: {}",
                    wire::error_summary(&message.body)
                ));
            }
            _ => return Err("target sent an unexpected message after login".into()),
        }
    }
    Ok(TargetReady {
        stream,
        greeting,
        pid: pid_key.0,
        key: pid_key.1,
    })
}

/// Client messages Rampart understands (and relays): simple and extended query, COPY in,
/// termination.
fn client_understood(tag: u8) -> bool {
    matches!(
        tag,
        b'Q' | b'P' | b'B' | b'E' | b'D' | b'S' | b'H' | b'C' | b'X' | b'd' | b'c' | b'f'
    )
}

/// Target messages Rampart understands (and relays).
fn target_understood(tag: u8) -> bool {
    matches!(
        tag,
        b'S' | b'Z'
            | b'T'
            | b'D'
            | b'C'
            | b'I'
            | b'E'
            | b'N'
            | b'A'
            | b'1'
            | b'2'
            | b'3'
            | b'n'
            | b't'
            | b's'
            | b'G'
            | b'H'
            | b'd'
            | b'c'
    )
}

/// PostgreSQL's framing for the shared relay: whole v3 messages of known types only.
struct Messages;

impl Framing for Messages {
    fn split(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
        split_messages(buf).map_err(|WireError(why)| why)
    }

    fn check_client(&self, frames: &Bytes) -> Result<(), String> {
        match first_not_understood(frames, client_understood) {
            Some(tag) => Err(format!(
                "Rampart does not relay the client message {} (not supported)",
                describe(tag)
            )),
            None => Ok(()),
        }
    }

    fn check_target(&self, frames: &Bytes) -> Result<(), String> {
        match first_not_understood(frames, target_understood) {
            Some(tag) => Err(format!(
                "Rampart does not relay the target message {} (not supported)",
                describe(tag)
            )),
            None => Ok(()),
        }
    }

    fn client_quits(&self, frames: &Bytes) -> bool {
        wire::messages(frames.clone()).any(|m| m.tag == b'X')
    }
}

fn first_not_understood(frames: &Bytes, understood: fn(u8) -> bool) -> Option<u8> {
    wire::messages(frames.clone())
        .map(|m| m.tag)
        .find(|tag| !understood(*tag))
}

fn describe(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}

/// Relays until either side ends or live enforcement stops the session; returns the reason.
async fn relay(
    client: &mut Box<dyn Io>,
    target: &mut Box<dyn Io>,
    tap: &SessionTap,
    control: &mut rampart_session::live::SessionControl,
) -> String {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let end = framed::relay(
        &mut client_read,
        target,
        &mut client_write,
        tap,
        control,
        &Messages,
    )
    .await;
    match end {
        RelayEnd::Stopped(why) => {
            let line = format!("terminating connection: {why}");
            framed::farewell(send_error(&mut client_write, "FATAL", "57P01", &line)).await;
            why
        }
        RelayEnd::Error(why) => {
            framed::farewell(send_error(&mut client_write, "FATAL", "08P01", &why)).await;
            why
        }
        RelayEnd::Closed(why) => why,
    }
}

/// The target stream, in TLS when the asset's postgres endpoint pins a certificate
/// (`rampart_session::target_tls`): an `SSLRequest` first, and only `S` lets it go on.
/// Sessions, forwarded cancel requests and rotation all call it.
pub(crate) async fn secure(
    mut stream: Box<dyn Io>,
    asset: &rampart_core::Asset,
    store: &rampart_store::Store,
    actor: &Actor,
) -> Result<Box<dyn Io>, String> {
    let Some(pin) = target_tls::pin(asset, Protocol::Postgres) else {
        return Ok(stream);
    };
    let closed = || format!("target {} closed the connection", asset.name);
    stream
        .write_all(&wire::ssl_request())
        .await
        .map_err(|_| closed())?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(|_| closed())?;
    if answer != *b"S" {
        return Err(format!(
            "target {} refuses TLS, and its postgres endpoint pins a certificate",
            asset.name
        ));
    }
    target_tls::connect(stream, asset, Protocol::Postgres, &pin, store, actor).await
}

/// Sends the target the cancel request a client's key stands for; unknown keys are dropped.
async fn forward_cancel(front: &PostgresFront, pid: u32, key: u32) {
    let Some(target) = front.cancels.lookup(pid, key) else {
        tracing::info!("postgres: a cancel request with an unknown key; dropped");
        return;
    };
    match front
        .base
        .dialer
        .dial(&target.asset, Protocol::Postgres)
        .await
    {
        Ok(dialed) => {
            let secured = secure(
                Box::new(dialed.stream),
                &target.asset,
                &front.base.core.store,
                &Actor::System,
            )
            .await;
            let Ok(mut stream) = secured else {
                tracing::warn!("cannot forward a cancel request: TLS with the target failed");
                return;
            };
            let _ = stream
                .write_all(&wire::cancel_request(target.pid, target.key))
                .await;
            let _ = stream.shutdown().await;
        }
        Err(err) => tracing::warn!(error = %err, "cannot forward a cancel request"),
    }
}
