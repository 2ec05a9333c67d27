//! One client connection, from its first byte to its session's end.
//!
//! 1. Greeting and login (within the login grace time): Rampart greets first, offering TLS
//!    (the SSL capability) and `caching_sha2_password`; the client asks for TLS (required
//!    unless plain is configured for loopback) and answers with its user name
//!    (`USER@ASSET`/`USER@ACCOUNT@ASSET`). The password, a personal database token, is read in
//!    clear inside TLS: `caching_sha2_password` "full authentication" (MySQL 8 clients) or an
//!    auth switch to `mysql_clear_password` (MariaDB clients, every other plugin). Checked by
//!    the one authenticator; every failure reads the same.
//! 2. Authorization (`mysql:connect`), then the session's start through the core.
//! 3. The target: dialled through the dialer, logged in with the vaulted password
//!    (`mysql_native_password` or the `caching_sha2_password` fast path).
//! 4. The relay: whole packets only, each batch through the session's tap (the query log
//!    knows every command and answer) before it is forwarded; live enforcement ends it with
//!    an ERR packet.

use crate::MysqlFront;
use crate::handshake::{
    ClientHello, TargetGreeting, greeting, is_ssl_request, native_scramble, parse_client_hello,
    parse_target_greeting, sha2_scramble, ssl_request, target_hello,
};
use crate::querylog::{COM_QUIT, QueryLog};
use crate::wire::{
    self, Packet, WireError, caps, nul_string, packets, read_packet, send_err, split_packets,
    write_packet,
};
use bytes::{Bytes, BytesMut};
use rampart_audit::CastHeader;
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
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use zeroize::Zeroizing;

pub use rampart_session::database::Io;

/// The largest login packet accepted from a client (user names, scrambles, a token).
const MAX_LOGIN_PACKET: usize = 4096;
/// The largest packet accepted from a target during its login.
const MAX_TARGET_LOGIN_PACKET: usize = 64 * 1024;

/// Error codes Rampart answers with: server codes only. Codes 2000-2999 are the client
/// library's own (2013 is "lost connection"); a client that receives one from the server
/// does not show the message (the `mariadb` client printed "Received malformed packet").
const ER_ACCESS_DENIED: u16 = 1045;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_HANDSHAKE: u16 = 1043;
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;
const ER_UNKNOWN_COM: u16 = 1047;
const ER_CONNECTION_KILLED: u16 = 1927;
const ER_INTERNAL: u16 = 1815;
/// ER_CONNECT_TO_FOREIGN_DATA_SOURCE: the target cannot be reached or refused the login.
const ER_TARGET: u16 = 1429;

/// A client that logged in, ready for its session.
struct LoggedIn {
    client: Box<dyn Io>,
    /// The sequence number of Rampart's next packet (the OK that ends the login).
    seq: u8,
    user: User,
    mfa: bool,
    login: DbLogin,
    hello: ClientHello,
}

/// Serves one connection. `permit` is its place among the connections not logged in yet.
pub async fn serve(
    front: MysqlFront,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let grace = front.settings.login_grace_time;
    let logged_in = match tokio::time::timeout(grace, greet_and_login(&front, tcp, peer)).await {
        Ok(Some(logged_in)) => logged_in,
        Ok(None) => return,
        Err(_) => {
            tracing::info!(%peer, "mysql: login grace time passed; closing");
            return;
        }
    };
    drop(permit);
    session(&front, logged_in, peer).await;
}

fn scramble() -> Option<[u8; 20]> {
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).ok()?;
    // Printable, never NUL (clients read the second part as a NUL-terminated string).
    Some(raw.map(|b| b % 94 + 33))
}

async fn greet_and_login(
    front: &MysqlFront,
    mut tcp: TcpStream,
    peer: SocketAddr,
) -> Option<LoggedIn> {
    let scramble = scramble()?;
    let id = front
        .connections
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1);
    write_packet(
        &mut tcp,
        0,
        &greeting(id, &scramble, front.base.tls.is_some()),
    )
    .await
    .ok()?;
    let first = match read_packet(&mut tcp, MAX_LOGIN_PACKET).await {
        Ok(packet) => packet,
        Err(err) => {
            send_err(
                &mut tcp,
                2,
                ER_HANDSHAKE,
                "08S01",
                &format!("Bad handshake: {err}"),
            )
            .await;
            return None;
        }
    };
    let tls = is_ssl_request(&first.payload);
    let (mut client, answer): (Box<dyn Io>, Packet) = if tls {
        let acceptor = front.base.tls.clone()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        match read_packet(&mut tls, MAX_LOGIN_PACKET).await {
            Ok(packet) => (Box::new(tls), packet),
            Err(err) => {
                send_err(
                    &mut tls,
                    3,
                    ER_HANDSHAKE,
                    "08S01",
                    &format!("Bad handshake: {err}"),
                )
                .await;
                return None;
            }
        }
    } else {
        if !(front.settings.allow_plain_loopback && peer.ip().is_loopback()) {
            let line =
                "Rampart requires TLS: connect with --ssl (mariadb) or --ssl-mode=REQUIRED (mysql)";
            send_err(
                &mut tcp,
                first.seq.wrapping_add(1),
                ER_SECURE_TRANSPORT_REQUIRED,
                "HY000",
                line,
            )
            .await;
            return None;
        }
        (Box::new(tcp), first)
    };
    let mut seq = answer.seq.wrapping_add(1);
    let hello = match parse_client_hello(&answer.payload) {
        Ok(hello) => hello,
        Err(WireError(why)) => {
            send_err(
                &mut client,
                seq,
                ER_HANDSHAKE,
                "08S01",
                &format!("Bad handshake: {why}"),
            )
            .await;
            return None;
        }
    };
    let user_text = hello.user.clone();
    let login = match DbLogin::parse(&user_text) {
        Ok(login) => login,
        Err(why) => {
            send_err(&mut client, seq, ER_ACCESS_DENIED, "28000", &why).await;
            return None;
        }
    };
    // The password in clear, inside TLS (or on loopback when plain is allowed).
    // (On plain loopback connections clients send it only to mysql_clear_password.)
    let full_auth = tls && hello.plugin.as_deref() == Some("caching_sha2_password");
    let request = if full_auth {
        // caching_sha2_password: "perform full authentication".
        vec![0x01, 0x04]
    } else {
        let mut switch = b"\xfemysql_clear_password\0".to_vec();
        switch.extend_from_slice(&scramble);
        switch.push(0);
        switch
    };
    write_packet(&mut client, seq, &request).await.ok()?;
    let token = match read_packet(&mut client, MAX_LOGIN_PACKET).await {
        Ok(packet) => {
            seq = packet.seq.wrapping_add(1);
            let mut raw = Zeroizing::new(packet.payload.to_vec());
            if raw.last() == Some(&0) {
                raw.pop();
            }
            SecretString::from(String::from_utf8_lossy(&raw).into_owned())
        }
        Err(_) => return None,
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
            send_err(
                &mut client,
                seq,
                ER_INTERNAL,
                "HY000",
                "Rampart cannot check logins now",
            )
            .await;
            return None;
        }
        // The same answer for every failure (unknown user, wrong, expired or revoked token,
        // locked, refused by the login rules).
        _ => {
            let line = format!("Access denied for user '{user_text}' (using password: YES)");
            send_err(&mut client, seq, ER_ACCESS_DENIED, "28000", &line).await;
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
        send_err(&mut client, seq, ER_INTERNAL, "HY000", &line).await;
        return None;
    }
    Some(LoggedIn {
        client,
        seq,
        user: user.user,
        mfa: user.mfa,
        login,
        hello,
    })
}

/// The session: authorize, start, dial, log in to the target, relay, end.
async fn session(front: &MysqlFront, logged_in: LoggedIn, peer: SocketAddr) {
    let LoggedIn {
        mut client,
        seq,
        user,
        mfa,
        login,
        hello,
    } = logged_in;
    let source = Source {
        text: peer.ip().to_string(),
        ip: peer.ip(),
    };
    let store = &front.base.core.store;
    let authorized =
        match database::authorize(store, &user, mfa, &login, &source, Protocol::Mysql).await {
            Ok(authorized) => authorized,
            Err(reason) => {
                send_err(&mut client, seq, ER_DBACCESS_DENIED, "42000", &reason).await;
                return;
            }
        };
    // What each statement is checked against: a read-only grant, the command rules.
    let control = match command_control::rules_for(store, &authorized).await {
        Ok(rules) => StatementControl::new(Protocol::Mysql, &authorized, rules),
        Err(why) => {
            send_err(&mut client, seq, ER_DBACCESS_DENIED, "42000", &why).await;
            return;
        }
    };
    let database_name = hello.database.clone().unwrap_or_default();
    let title = format!(
        "{}@{}@{} (mysql, database {database_name})",
        user.name, authorized.account, authorized.asset.name
    );
    let plan = RecordingPlan {
        header: CastHeader::new(80, 24, None, Some(format!("mysql {database_name}")), title),
        raw_streams: true,
    };
    let started = front
        .base
        .core
        .start(StartRequest {
            authorized: authorized.clone(),
            kind: SessionKind::Mysql,
            interactive: true,
            command: None,
            recording: Some(plan),
            inspectors: vec![Box::new(QueryLog::new(control))],
        })
        .await;
    let mut guard = match started {
        Ok(guard) => guard,
        Err(refused) => {
            send_err(
                &mut client,
                seq,
                ER_DBACCESS_DENIED,
                "42000",
                &refused.to_string(),
            )
            .await;
            return;
        }
    };
    let Some(mut control) = guard.take_control() else {
        return;
    };
    let tap = guard.tap();
    let mut target = match connect_target(front, &authorized, &hello).await {
        Ok(target) => target,
        Err(why) => {
            send_err(&mut client, seq, ER_TARGET, "HY000", &why).await;
            guard.end(why, None).await;
            return;
        }
    };
    // The login's end (Rampart's own OK, not the target's: nothing of the query log's).
    let reason = match write_packet(&mut client, seq, &wire::ok_payload()).await {
        Err(_) => "client disconnected".to_owned(),
        Ok(()) => relay(&mut client, &mut target, &tap, &mut control, seq).await,
    };
    guard.end(reason, None).await;
}

/// Dials the target and logs in there as the account with its vaulted password.
async fn connect_target(
    front: &MysqlFront,
    authorized: &Authorized,
    hello: &ClientHello,
) -> Result<Box<dyn Io>, String> {
    let dialed = front
        .base
        .dialer
        .dial(&authorized.asset, Protocol::Mysql)
        .await
        .map_err(|err| err.to_string())?;
    let name = dialed.target.to_string();
    let mut stream: Box<dyn Io> = Box::new(dialed.stream);
    let greeting = read_packet(&mut stream, MAX_TARGET_LOGIN_PACKET)
        .await
        .map_err(|err| format!("target {name}: {err}"))?;
    let target =
        parse_target_greeting(&greeting.payload).map_err(|err| format!("target {name}: {err}"))?;
    let actor = Actor::User {
        name: authorized.user.name.to_string(),
    };
    let reach = target_tls::Reach {
        dialer: &front.base.dialer,
        store: &front.base.core.store,
        actor: &actor,
    };
    let (mut stream, greeting_seq, tls) = secure(
        stream,
        &name,
        greeting.seq,
        &target,
        (hello.caps & target.caps, hello.collation),
        &authorized.asset,
        &reach,
    )
    .await?;
    // What the client relies on for the shape of answers, the target must do too.
    let needed = hello.caps
        & (caps::PROTOCOL_41
            | caps::MULTI_STATEMENTS
            | caps::MULTI_RESULTS
            | caps::PS_MULTI_RESULTS);
    if target.caps & needed != needed {
        return Err(format!(
            "target {name} lacks a capability the client asked for (0x{:08x})",
            needed & !target.caps
        ));
    }
    let password = database::vaulted_password(&front.base.core.store, authorized).await?;
    let logged_in = target_login(
        &mut stream,
        authorized,
        hello,
        &target,
        &password,
        greeting_seq,
        tls,
    )
    .await;
    drop(password);
    if let Err(err) = logged_in {
        let account = authorized.account_ref();
        tracing::warn!(%account, error = %err, "mysql target login failed");
        return Err(format!("the target login to {account} failed: {err}"));
    }
    Ok(stream)
}

/// TLS to the target when its mysql endpoint pins a certificate (the one decision:
/// `rampart_session::target_tls`): the SSL capability's request after the target's greeting
/// (sequence `greeting_seq`), then the handshake, so the login goes inside it. Sessions and
/// rotation both call it. Returns the stream, the sequence number the login follows, and
/// whether it is TLS. `(caps, collation)` is what the SSL request announces.
pub(crate) async fn secure(
    mut stream: Box<dyn Io>,
    name: &str,
    greeting_seq: u8,
    target: &TargetGreeting,
    (caps, collation): (u32, u8),
    asset: &rampart_core::Asset,
    reach: &target_tls::Reach<'_>,
) -> Result<(Box<dyn Io>, u8, bool), String> {
    let Some(pin) = target_tls::pin(asset, Protocol::Mysql) else {
        return Ok((stream, greeting_seq, false));
    };
    if target.caps & caps::SSL == 0 {
        return Err(format!(
            "target {name} does not offer TLS, and its mysql endpoint pins a certificate"
        ));
    }
    let seq = greeting_seq.wrapping_add(1);
    write_packet(&mut stream, seq, &ssl_request(caps, collation))
        .await
        .map_err(|err| format!("target {name}: {err}"))?;
    let stream = reach.tls(stream, asset, Protocol::Mysql, &pin).await?;
    Ok((stream, seq, true))
}

fn scramble_for(
    plugin: &str,
    password: &SecretString,
    scramble: &[u8],
) -> Result<Vec<u8>, WireError> {
    match plugin {
        "mysql_native_password" => Ok(native_scramble(password.expose_secret(), scramble)),
        "caching_sha2_password" => Ok(sha2_scramble(password.expose_secret(), scramble)),
        other => Err(wire::wire(format!(
            "the target asks for {other:?}; Rampart logs in with mysql_native_password or caching_sha2_password"
        ))),
    }
}

async fn target_login(
    stream: &mut Box<dyn Io>,
    authorized: &Authorized,
    hello: &ClientHello,
    target: &TargetGreeting,
    password: &SecretString,
    greeting_seq: u8,
    tls: bool,
) -> Result<(), WireError> {
    let as_client = TargetClient {
        caps: hello.caps,
        collation: hello.collation,
        user: authorized.account.as_str(),
        database: hello.database.as_deref(),
    };
    login_to_target(stream, &as_client, target, password, greeting_seq, tls).await
}

/// Who logs in to a target, as its answer to the greeting says.
pub(crate) struct TargetClient<'a> {
    pub(crate) caps: u32,
    pub(crate) collation: u8,
    pub(crate) user: &'a str,
    pub(crate) database: Option<&'a str>,
}

/// The one login to a target (sessions' and rotation's): `mysql_native_password` or the
/// `caching_sha2_password` fast path, auth switches followed; a cold cache is refused unless
/// the connection is TLS (`tls`: then the password goes in clear inside it).
pub(crate) async fn login_to_target(
    stream: &mut Box<dyn Io>,
    client: &TargetClient<'_>,
    target: &TargetGreeting,
    password: &SecretString,
    greeting_seq: u8,
    tls: bool,
) -> Result<(), WireError> {
    let plugin = match target.plugin.as_str() {
        "caching_sha2_password" => "caching_sha2_password",
        _ => "mysql_native_password",
    };
    let auth = scramble_for(plugin, password, &target.scramble)?;
    let mut answer = target_hello(
        client.caps & target.caps,
        client.collation,
        client.user,
        &auth,
        client.database,
        plugin,
    );
    if tls && let Some(flags) = answer.get_mut(1) {
        // CLIENT_SSL (0x800) is in the second byte of the little-endian flags.
        *flags |= (caps::SSL >> 8) as u8;
    }
    let mut seq = greeting_seq.wrapping_add(1);
    write_packet(stream, seq, &answer).await?;
    for _ in 0..4 {
        let packet = read_packet(stream, MAX_TARGET_LOGIN_PACKET).await?;
        seq = packet.seq.wrapping_add(1);
        let mut body = packet.payload.clone();
        match packet.first() {
            Some(0x00) => return Ok(()),
            Some(0xFF) => {
                return Err(wire::wire(format!(
                    "the target refused the login: {}",
                    wire::error_summary(&packet.payload)
                )));
            }
            Some(0xFE) => {
                let _ = bytes::Buf::get_u8(&mut body);
                let plugin = nul_string(&mut body);
                let data: Vec<u8> = body.iter().copied().take_while(|b| *b != 0).collect();
                let auth = scramble_for(&plugin, password, &data)?;
                write_packet(stream, seq, &auth).await?;
            }
            Some(0x01) if packet.payload.get(1) == Some(&0x03) => {}
            // Full authentication inside TLS: the password in clear, as the protocol allows.
            Some(0x01) if tls && packet.payload.get(1) == Some(&0x04) => {
                let mut clear = password.expose_secret().as_bytes().to_vec();
                clear.push(0);
                write_packet(stream, seq, &clear).await?;
                clear.fill(0);
            }
            Some(0x01) => {
                return Err(wire::wire(
                    "the target wants caching_sha2_password full authentication (its cache is cold), which needs TLS or RSA to the target; log in once directly or use mysql_native_password",
                ));
            }
            _ => return Err(wire::wire("unexpected packet during the target login")),
        }
    }
    Err(wire::wire("the target login did not finish"))
}

/// MySQL's framing for the shared relay: whole packets (the query log checks each command),
/// following the sequence numbers for an error packet Rampart sends itself.
struct Packets {
    last_seq: AtomicU8,
}

impl Framing for Packets {
    fn split(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
        split_packets(buf).map_err(|WireError(why)| why)
    }

    fn client_quits(&self, frames: &Bytes) -> bool {
        packets(frames.clone()).any(|p| p.first() == Some(COM_QUIT))
    }

    fn forwarded(&self, frames: &Bytes) {
        if let Some(packet) = packets(frames.clone()).last() {
            self.last_seq.store(packet.seq, Ordering::Relaxed);
        }
    }
}

/// Relays until either side ends or live enforcement stops the session; returns the reason.
async fn relay(
    client: &mut Box<dyn Io>,
    target: &mut Box<dyn Io>,
    tap: &SessionTap,
    control: &mut rampart_session::live::SessionControl,
    login_seq: u8,
) -> String {
    let framing = Packets {
        last_seq: AtomicU8::new(login_seq),
    };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let end = framed::relay(
        &mut client_read,
        target,
        &mut client_write,
        tap,
        control,
        &framing,
    )
    .await;
    let seq = framing.last_seq.load(Ordering::Relaxed).wrapping_add(1);
    match end {
        RelayEnd::Stopped(why) => {
            let line = format!("Connection was killed by Rampart: {why}");
            framed::farewell(send_err(
                &mut client_write,
                seq,
                ER_CONNECTION_KILLED,
                "70100",
                &line,
            ))
            .await;
            why
        }
        RelayEnd::Error(why) => {
            framed::farewell(send_err(
                &mut client_write,
                seq,
                ER_UNKNOWN_COM,
                "08S01",
                &why,
            ))
            .await;
            why
        }
        RelayEnd::Closed(why) => why,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rampart_answers_with_server_error_codes_never_the_client_library_s() {
        use super::*;
        for code in [
            ER_ACCESS_DENIED,
            ER_DBACCESS_DENIED,
            ER_HANDSHAKE,
            ER_SECURE_TRANSPORT_REQUIRED,
            ER_UNKNOWN_COM,
            ER_CONNECTION_KILLED,
            ER_INTERNAL,
            ER_TARGET,
        ] {
            assert!(
                !(2000..3000).contains(&code),
                "{code} is a client-side code"
            );
        }
    }

    #[test]
    fn the_offered_capabilities_exclude_what_is_not_relayed() {
        use crate::wire::caps;
        // Compression (0x20), LOAD DATA LOCAL (0x80), session tracking, deprecated EOF and
        // connection attributes are never offered.
        for not in [0x20, 0x80, 1 << 23, 1 << 24, 1 << 20] {
            assert_eq!(crate::handshake::OFFERED & not, 0);
        }
        assert_ne!(crate::handshake::OFFERED & caps::MULTI_STATEMENTS, 0);
    }
}
