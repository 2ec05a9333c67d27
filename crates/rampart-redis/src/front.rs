//! One client connection, from its first byte to its session's end.
//!
//! 1. TLS, recognised by its first byte (a handshake record, 0x16), with the node's
//!    certificate; plain connections only from loopback and only when configured.
//! 2. Login (within the login grace time): `AUTH USER@ASSET TOKEN` or
//!    `HELLO 2|3 AUTH USER@ASSET TOKEN [SETNAME name]`; the token is checked by the one
//!    authenticator, and every failure reads the same. Other commands before it are answered
//!    `-NOAUTH`.
//! 3. Authorization (`redis:connect`) through `rampart_session::database::authorize`, then the
//!    session's start through the core (command log, recording, record, live registration).
//! 4. The target: dialled through the dialer, `AUTH [account] password` with the vaulted
//!    password (`AUTH password` for the account `default`), then the client's `HELLO`.
//! 5. The relay: whole values only, each batch through the session's tap before it is
//!    forwarded; values Rampart does not accept end the session with an error; live
//!    enforcement ends it with `-ERR` and its reason.

use crate::RedisFront;
use crate::log::{CommandLog, Shared};
use crate::resp::{self, Framer, Limits, RespError};
use bytes::{Bytes, BytesMut};
use rampart_audit::{CastHeader, Stream};
use rampart_auth::{Attempt, Front, Refusal};
use rampart_core::audit::Actor;
use rampart_core::target::Protocol;
use rampart_core::{ExposeSecret, SecretString, SessionKind, User};
use rampart_session::command_control;
use rampart_session::database::{self as db, DbLogin, Io};
use rampart_session::statement_control::StatementControl;
use rampart_session::target_tls;
use rampart_session::{Authorized, RecordingPlan, SessionTap, Source, StartRequest};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// Bytes read at a time each way.
const READ_CHUNK: usize = 64 * 1024;
/// Commands a client may send before logging in.
const MAX_BEFORE_LOGIN: usize = 16;
/// What every failed login reads (Redis's own words).
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
/// How a client names itself, for error lines.
const HOW: &str =
    "log in with AUTH USER@ASSET TOKEN (redis-cli --user alice@redis-01 --pass TOKEN)";

/// A client that logged in, ready for its session.
struct LoggedIn {
    client: Box<dyn Io>,
    user: User,
    mfa: bool,
    login: DbLogin,
    /// The client's `HELLO` (protocol version, client name), answered by the target's.
    hello: Option<(Bytes, Option<Bytes>)>,
    /// Bytes the client sent after its login command.
    early: BytesMut,
}

/// Serves one connection. `permit` is its place among the connections not logged in yet.
pub async fn serve(
    front: RedisFront,
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
            tracing::info!(%peer, "redis: login grace time passed; closing");
            return;
        }
    };
    drop(permit);
    session(&front, logged_in, peer).await;
}

async fn negotiate_and_login(
    front: &RedisFront,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<LoggedIn> {
    let mut first = [0u8; 1];
    let tls = matches!(tcp.peek(&mut first).await, Ok(1)) && first == [0x16];
    let mut client: Box<dyn Io> = if tls {
        let acceptor = front.base.tls.clone()?;
        Box::new(acceptor.accept(tcp).await.ok()?)
    } else if front.settings.allow_plain_loopback && peer.ip().is_loopback() {
        Box::new(tcp)
    } else {
        let mut tcp = tcp;
        let line = resp::error("ERR", "Rampart requires TLS: connect with redis-cli --tls");
        let _ = tcp.write_all(&line).await;
        return None;
    };
    let mut framer = Framer::new(Limits::LOGIN);
    let mut buf = BytesMut::with_capacity(4096);
    let mut asked = 0;
    loop {
        let frame = match read_frame(&mut client, &mut framer, &mut buf, Limits::LOGIN).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(err) => {
                let line = resp::error("ERR", &format!("Rampart ends the connection: {err}"));
                let _ = client.write_all(&line).await;
                return None;
            }
        };
        asked += 1;
        let args = match resp::command_args(&frame) {
            Ok(args) => args,
            Err(err) => {
                let _ = client.write_all(&resp::error("ERR", &err.0)).await;
                return None;
            }
        };
        let name = crate::commands::upper(args.first().map(|a| &a[..]).unwrap_or_default());
        let (login_text, token, hello) = match name.as_str() {
            "AUTH" => match args.as_slice() {
                [_, user, token] => (user.clone(), token.clone(), None),
                _ => {
                    let line = resp::error("ERR", &format!("name yourself: {HOW}"));
                    client.write_all(&line).await.ok()?;
                    continue;
                }
            },
            "HELLO" => match parse_hello(&args) {
                Ok(Some(hello)) => hello,
                Ok(None) => {
                    let line = resp::error(
                        "NOAUTH",
                        &format!(
                            "HELLO must be called with AUTH here: {HOW}, or HELLO 3 AUTH USER@ASSET TOKEN"
                        ),
                    );
                    client.write_all(&line).await.ok()?;
                    continue;
                }
                Err(line) => {
                    client.write_all(&line).await.ok()?;
                    continue;
                }
            },
            "QUIT" => {
                let _ = client.write_all(b"+OK\r\n").await;
                return None;
            }
            _ => {
                if asked >= MAX_BEFORE_LOGIN {
                    return None;
                }
                let line = resp::error("NOAUTH", &format!("Authentication required: {HOW}"));
                client.write_all(&line).await.ok()?;
                continue;
            }
        };
        let login_text = String::from_utf8_lossy(&login_text).into_owned();
        let token = SecretString::from(String::from_utf8_lossy(&token).into_owned());
        let login = match DbLogin::parse(&login_text) {
            Ok(login) => login,
            Err(why) => {
                client.write_all(&resp::error("ERR", &why)).await.ok()?;
                continue;
            }
        };
        let attempt = Attempt {
            front: Front::Database,
            login: &login_text,
            user: Some(&login.user),
            source: peer.ip(),
        };
        let user = match front.base.auth.database_login(&attempt, &token).await {
            Ok(done) => done,
            Err(Refusal::Unavailable) => {
                let line = resp::error("ERR", "Rampart cannot check logins now");
                let _ = client.write_all(&line).await;
                return None;
            }
            // The same answer for every failure (unknown user, wrong, expired or revoked
            // token, locked, refused by the login rules).
            _ => {
                client.write_all(WRONGPASS).await.ok()?;
                if asked >= MAX_BEFORE_LOGIN {
                    return None;
                }
                continue;
            }
        };
        drop(token);
        let source = source(peer);
        if let Err(why) = db::record_login(
            &front.base.core.store,
            &user.user.name,
            &user.method,
            source.ip,
        )
        .await
        {
            let _ = client.write_all(&resp::error("ERR", &why)).await;
            return None;
        }
        return Some(LoggedIn {
            client,
            user: user.user,
            mfa: user.mfa,
            login,
            hello,
            early: buf,
        });
    }
}

type Login = (Bytes, Bytes, Option<(Bytes, Option<Bytes>)>);

/// `HELLO protover [AUTH user token] [SETNAME name]`: the login in it, if any, or the error
/// line for the client.
fn parse_hello(args: &[Bytes]) -> Result<Option<Login>, Vec<u8>> {
    let version = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"2"));
    if &version[..] != b"2" && &version[..] != b"3" {
        return Err(resp::error("NOPROTO", "unsupported protocol version"));
    }
    let mut auth = None;
    let mut name = None;
    let mut at = 2;
    while let Some(option) = args.get(at) {
        match crate::commands::upper(option).as_str() {
            "AUTH" => {
                let (Some(user), Some(token)) = (args.get(at + 1), args.get(at + 2)) else {
                    return Err(resp::error("ERR", "HELLO AUTH needs a user and a token"));
                };
                auth = Some((user.clone(), token.clone()));
                at += 3;
            }
            "SETNAME" => {
                let Some(value) = args.get(at + 1) else {
                    return Err(resp::error("ERR", "HELLO SETNAME needs a name"));
                };
                name = Some(value.clone());
                at += 2;
            }
            _ => return Err(resp::error("ERR", "syntax error in HELLO")),
        }
    }
    Ok(auth.map(|(user, token)| (user, token, Some((version, name)))))
}

fn source(peer: SocketAddr) -> Source {
    Source {
        text: peer.ip().to_string(),
        ip: peer.ip(),
    }
}

/// Reads until one whole value is in `buf`, and takes it. `None`: the peer closed.
pub(crate) async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    framer: &mut Framer,
    buf: &mut BytesMut,
    limits: Limits,
) -> Result<Option<Bytes>, RespError> {
    loop {
        if limits.blank_lines {
            let skip = buf
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            let _ = buf.split_to(skip);
        }
        if let Some(len) = framer.next_len(buf)? {
            return Ok(Some(buf.split_to(len).freeze()));
        }
        buf.reserve(limits.line.min(READ_CHUNK));
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// The session: authorize, start, dial, log in to the target, relay, end.
async fn session(front: &RedisFront, logged_in: LoggedIn, peer: SocketAddr) {
    let LoggedIn {
        mut client,
        user,
        mfa,
        login,
        hello,
        early,
    } = logged_in;
    let source = source(peer);
    let store = &front.base.core.store;
    let authorized = match db::authorize(store, &user, mfa, &login, &source, Protocol::Redis).await
    {
        Ok(authorized) => authorized,
        Err(reason) => {
            let _ = client.write_all(&resp::error("ERR", &reason)).await;
            return;
        }
    };
    let asset = authorized.asset.clone();
    let account = authorized.account.clone();
    let title = format!("{}@{}@{} (redis)", user.name, account, asset.name);
    let plan = RecordingPlan {
        header: CastHeader::new(80, 24, None, Some("redis".to_owned()), title),
        raw_streams: true,
    };
    let resp3 = hello.as_ref().is_some_and(|(v, _)| &v[..] == b"3");
    // What each command is checked against: a read-only grant, the command rules.
    let control = match command_control::rules_for(store, &authorized).await {
        Ok(rules) => StatementControl::new(Protocol::Redis, &authorized, rules),
        Err(why) => {
            let _ = client.write_all(&resp::error("ERR", &why)).await;
            return;
        }
    };
    let shared = Shared::with_control(front.settings.deny.clone(), control, resp3);
    let started = front
        .base
        .core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind: SessionKind::Redis,
            interactive: true,
            command: None,
            recording: Some(plan),
            inspectors: vec![Box::new(CommandLog(shared.clone()))],
        })
        .await;
    let mut guard = match started {
        Ok(guard) => guard,
        Err(refused) => {
            let _ = client
                .write_all(&resp::error("ERR", &refused.to_string()))
                .await;
            return;
        }
    };
    let Some(mut control) = guard.take_control() else {
        return;
    };
    let tap = guard.tap();
    let (mut target, greeting) = match connect_target(front, &authorized, hello.as_ref()).await {
        Ok(target) => target,
        Err(why) => {
            let _ = client.write_all(&resp::error("ERR", &why)).await;
            guard.end(why, None).await;
            return;
        }
    };
    if let Err(why) = front
        .base
        .core
        .store
        .set_session_route(guard.id(), "direct")
        .await
    {
        tracing::warn!(error = %why, "cannot record the route of a redis session");
    }
    // The login's answer: `+OK`, or the target's answer to the client's HELLO.
    let reason = match send_greeting(&mut client, &tap, &shared, greeting).await {
        Err(why) => why,
        Ok(()) => relay(&mut client, &mut target, &tap, &shared, early, &mut control).await,
    };
    guard.end(reason, None).await;
}

async fn send_greeting(
    client: &mut Box<dyn Io>,
    tap: &SessionTap,
    shared: &Arc<Shared>,
    greeting: Bytes,
) -> Result<(), String> {
    shared.expect_greeting()?;
    tap.target_sent(&[(Stream::Output, greeting)]).await?;
    let out = shared.take_out()?;
    client
        .write_all(&out)
        .await
        .map_err(|_| "client disconnected".to_owned())
}

/// The target stream, in TLS from the first byte when the asset's redis endpoint pins a
/// certificate (the one decision: `rampart_session::target_tls`). Sessions and rotation both
/// call it.
pub(crate) async fn secure(
    stream: Box<dyn Io>,
    asset: &rampart_core::Asset,
    reach: &target_tls::Reach<'_>,
) -> Result<Box<dyn Io>, String> {
    match target_tls::pin(asset, Protocol::Redis) {
        None => Ok(stream),
        Some(pin) => reach.tls(stream, asset, Protocol::Redis, &pin).await,
    }
}

/// Dials the target and logs in with the vaulted password; returns the stream and what the
/// client gets as its login's answer.
async fn connect_target(
    front: &RedisFront,
    authorized: &Authorized,
    hello: Option<&(Bytes, Option<Bytes>)>,
) -> Result<(Box<dyn Io>, Bytes), String> {
    let account = authorized.account_ref();
    let dialed = front
        .base
        .dialer
        .dial(&authorized.asset, Protocol::Redis)
        .await
        .map_err(|err| err.to_string())?;
    let target = dialed.target.clone();
    let actor = Actor::User {
        name: authorized.user.name.to_string(),
    };
    let reach = target_tls::Reach {
        dialer: &front.base.dialer,
        store: &front.base.core.store,
        actor: &actor,
    };
    let mut stream = secure(Box::new(dialed.stream), &authorized.asset, &reach).await?;
    let secret = db::vaulted_password(&front.base.core.store, authorized).await?;
    // `default` is Redis's user without a name (`requirepass`): `AUTH password`.
    let login = authorized.account.as_str();
    let auth = if login == "default" {
        resp::encode_command(&[b"AUTH", secret.expose_secret().as_bytes()])
    } else {
        resp::encode_command(&[b"AUTH", login.as_bytes(), secret.expose_secret().as_bytes()])
    };
    drop(secret);
    let closed = || format!("target {target} closed the connection");
    stream.write_all(&auth).await.map_err(|_| closed())?;
    drop(auth);
    let mut framer = Framer::new(Limits::TARGET);
    let mut buf = BytesMut::new();
    let answer = read_frame(&mut stream, &mut framer, &mut buf, Limits::TARGET)
        .await
        .map_err(|err| format!("target {target}: {err}"))?
        .ok_or_else(closed)?;
    if &answer[..] != b"+OK\r\n" {
        let why = resp::summary(&answer).err().unwrap_or_default();
        tracing::warn!(%account, error = %why, "redis target login failed");
        return Err(format!("the target login to {account} failed: {why}"));
    }
    let Some((version, name)) = hello else {
        return Ok((stream, Bytes::from_static(b"+OK\r\n")));
    };
    let mut args: Vec<&[u8]> = vec![b"HELLO", version];
    if let Some(name) = name {
        args.extend([&b"SETNAME"[..], name]);
    }
    stream
        .write_all(&resp::encode_command(&args))
        .await
        .map_err(|_| closed())?;
    let answer = read_frame(&mut stream, &mut framer, &mut buf, Limits::TARGET)
        .await
        .map_err(|err| format!("target {target}: {err}"))?
        .ok_or_else(closed)?;
    if !buf.is_empty() {
        return Err(format!(
            "target {target} sent more than its answer to HELLO"
        ));
    }
    Ok((stream, answer))
}

/// Why a relay direction stopped.
enum Ended {
    /// The client or the target closed, or a write failed: the line for the record.
    Closed(String),
    /// Rampart ends the session and tells the client why.
    Error(String),
}

async fn client_to_target(
    client: &mut (impl AsyncRead + Unpin),
    target: &mut (impl AsyncWrite + Unpin),
    tap: &SessionTap,
    shared: &Shared,
    mut buf: BytesMut,
) -> Ended {
    let mut framer = Framer::new(Limits::CLIENT);
    loop {
        // The target is behind: wait for its replies before reading more (bounded memory).
        loop {
            match shared.has_room() {
                Ok(true) => break,
                Ok(false) => shared.drained.notified().await,
                Err(err) => return Ended::Error(err),
            }
        }
        let frames = match resp::split_frames(&mut framer, &mut buf) {
            Ok(Some((frames, _))) => frames,
            Ok(None) => {
                buf.reserve(READ_CHUNK);
                match client.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return Ended::Closed("client disconnected".into()),
                    Ok(_) => continue,
                }
            }
            Err(err) => return Ended::Error(format!("protocol violation: {err}")),
        };
        if let Err(err) = resp::frames(&frames, Limits::CLIENT)
            .and_then(|all| all.iter().try_for_each(|f| resp::command_args(f).map(drop)))
        {
            return Ended::Error(format!("protocol violation: {err}"));
        }
        tap.live().touch();
        let verdict = match tap.client_sent(&frames).await {
            Ok(verdict) => verdict,
            Err(err) => return Ended::Error(err),
        };
        let forward = verdict.forward.map_or(frames, Bytes::from);
        if !forward.is_empty() && target.write_all(&forward).await.is_err() {
            return Ended::Closed("target closed the connection".into());
        }
    }
}

async fn target_to_client(
    target: &mut (impl AsyncRead + Unpin),
    client: &mut (impl AsyncWrite + Unpin),
    tap: &SessionTap,
    shared: &Shared,
) -> Ended {
    let mut framer = Framer::new(Limits::TARGET);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let out = tokio::select! {
            read = target.read_buf(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => return Ended::Closed("target closed the connection".into()),
                    Ok(_) => {}
                }
                let frames = match resp::split_frames(&mut framer, &mut buf) {
                    Ok(Some((frames, _))) => frames,
                    Ok(None) => {
                        buf.reserve(READ_CHUNK);
                        continue;
                    }
                    Err(err) => {
                        return Ended::Error(format!("target protocol violation: {err}"));
                    }
                };
                // Recorded (and each answered command logged) before it is passed back.
                if let Err(err) = tap.target_sent(&[(Stream::Output, frames)]).await {
                    return Ended::Error(err);
                }
                shared.take_out()
            }
            () = shared.local_ready.notified() => shared.take_local(),
        };
        let out = match out {
            Ok(out) => out,
            Err(err) => return Ended::Error(err),
        };
        if !out.is_empty() && client.write_all(&out).await.is_err() {
            return Ended::Closed("client disconnected".into());
        }
    }
}

/// Relays until either side ends or live enforcement stops the session; returns the reason.
async fn relay(
    client: &mut Box<dyn Io>,
    target: &mut Box<dyn Io>,
    tap: &SessionTap,
    shared: &Shared,
    early: BytesMut,
    control: &mut rampart_session::live::SessionControl,
) -> String {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut target_read, mut target_write) = tokio::io::split(target);
    let (ended, stopped) = {
        let up = client_to_target(&mut client_read, &mut target_write, tap, shared, early);
        let down = target_to_client(&mut target_read, &mut client_write, tap, shared);
        tokio::select! {
            ended = up => (Some(ended), None),
            ended = down => (Some(ended), None),
            why = control.stopped() => (None, Some(why)),
        }
    };
    let tell = |why: &str| resp::error("ERR", &format!("Rampart ended the session: {why}"));
    match (ended, stopped) {
        (_, Some(why)) => {
            tap.notice(&why).await;
            rampart_session::framed::farewell(async {
                let _ = client_write.write_all(&tell(&why)).await;
                let _ = client_write.shutdown().await;
            })
            .await;
            why
        }
        (Some(Ended::Error(why)), _) => {
            tap.notice(&why).await;
            rampart_session::framed::farewell(async {
                let _ = client_write.write_all(&tell(&why)).await;
                let _ = client_write.shutdown().await;
            })
            .await;
            why
        }
        (Some(Ended::Closed(why)), _) => why,
        (None, None) => "closed".to_owned(),
    }
}
