//! A Telnet connection to a device over any byte stream (the node's dialer gives it): the
//! scripted login, then a task that owns the stream and moves bytes between it and two bounded
//! queues, answering the device's negotiation itself. The SSH front reads the device's data
//! from [`Connection::output`] and sends what the user typed with [`Connection::input`].

use crate::login::{LoginPatterns, LoginScript, Step};
use crate::protocol::Telnet;
use bytes::Bytes;
use rampart_core::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How much is read from the device at once.
const READ_CHUNK: usize = 16 * 1024;
/// Chunks queued each way (each at most [`READ_CHUNK`] towards the user).
const QUEUE: usize = 16;

/// The user's terminal, as the device is told about it.
#[derive(Debug, Clone)]
pub struct Terminal {
    /// The user's `TERM`, if they have a terminal.
    pub term: Option<String>,
    pub columns: u32,
    pub rows: u32,
}

/// How to log in.
#[derive(Debug)]
pub struct Login {
    /// The account's name on the device.
    pub name: String,
    pub password: SecretString,
    pub patterns: LoginPatterns,
    /// The whole login, from the first byte to the success prompt.
    pub timeout: Duration,
}

/// Why the login did not succeed, in words fit for the user (never holding the password).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the device refused the login: {0}")]
    Refused(String),
    #[error("the device did not finish the login within {0:?} (last line: {1:?})")]
    Timeout(Duration, String),
    #[error("the device closed the connection during the login (last line: {0:?})")]
    Closed(String),
    #[error("the connection failed during the login ({0})")]
    Io(String),
}

impl LoginError {
    /// Whether the device saw the password and said no (a wrong or expired credential).
    pub fn is_refused_credential(&self) -> bool {
        matches!(self, LoginError::Refused(_))
    }
}

/// What the user sends towards the device.
#[derive(Debug)]
pub enum Input {
    /// Typed bytes (escaped here).
    Data(Bytes),
    /// The terminal's new size (told only if the device accepted NAWS).
    Resize { columns: u32, rows: u32 },
    /// End the connection.
    Close,
}

/// A logged-in Telnet connection; the task behind it ends when the device closes the
/// connection, [`Input::Close`] is sent, or both queues are dropped.
#[derive(Debug)]
pub struct Connection {
    /// The device's data, decoded. Ends (`None`) when the connection closed cleanly; an error
    /// arrives as `Err` first.
    pub output: mpsc::Receiver<Result<Bytes, String>>,
    pub input: mpsc::Sender<Input>,
}

/// Starts Telnet on `stream`, logs in and hands the connection over, with what the device
/// showed after the password (to show and record; password masked).
pub async fn connect<S>(
    mut stream: S,
    terminal: Terminal,
    login: Login,
) -> Result<(Connection, Vec<u8>), LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut telnet = Telnet::new(terminal.term.as_deref(), terminal.columns, terminal.rows);
    let mut script = LoginScript::new(login.patterns, login.password.expose_secret().as_bytes());
    // One deadline for everything, writes too: a device that stops reading cannot hold the
    // session's opening forever.
    let logging_in = log_in(
        &mut stream,
        &mut telnet,
        &mut script,
        &login.name,
        &login.password,
    );
    let shown = match tokio::time::timeout(login.timeout, logging_in).await {
        Ok(result) => result?,
        Err(_) => return Err(LoginError::Timeout(login.timeout, script.last_line())),
    };
    drop(script);
    let (output_tx, output) = mpsc::channel(QUEUE);
    let (input, input_rx) = mpsc::channel(QUEUE);
    tokio::spawn(drive(stream, telnet, output_tx, input_rx));
    Ok((Connection { output, input }, shown))
}

/// Negotiates and runs the login script until it succeeds or fails.
async fn log_in<S>(
    stream: &mut S,
    telnet: &mut Telnet,
    script: &mut LoginScript,
    name: &str,
    password: &SecretString,
) -> Result<Vec<u8>, LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |err: std::io::Error| LoginError::Io(err.to_string());
    stream.write_all(&telnet.start()).await.map_err(io)?;
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut buffer).await {
            Err(err) => return Err(io(err)),
            Ok(0) => return Err(LoginError::Closed(script.last_line())),
            Ok(n) => n,
        };
        let received = telnet.receive(buffer.get(..n).unwrap_or(&[]));
        if !received.reply.is_empty() {
            stream.write_all(&received.reply).await.map_err(io)?;
        }
        match script.output(&received.data) {
            Step::Wait => {}
            Step::SendName => {
                let mut line = name.as_bytes().to_vec();
                line.push(b'\r');
                stream.write_all(&telnet.encode(&line)).await.map_err(io)?;
            }
            Step::SendPassword => {
                let mut line = password.expose_secret().as_bytes().to_vec();
                line.push(b'\r');
                let encoded = telnet.encode(&line);
                line.iter_mut().for_each(|byte| *byte = 0);
                let sent = stream.write_all(&encoded).await;
                drop(zeroed(encoded));
                sent.map_err(io)?;
            }
            Step::LoggedIn(shown) => return Ok(shown),
            Step::Failed(why) => return Err(LoginError::Refused(why)),
        }
    }
}

fn zeroed(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.iter_mut().for_each(|byte| *byte = 0);
    bytes
}

/// Moves bytes both ways until either side ends. Reading from the device waits while the
/// user's queue is full (back-pressure, no buffer grows).
async fn drive<S>(
    mut stream: S,
    mut telnet: Telnet,
    output: mpsc::Sender<Result<Bytes, String>>,
    mut input: mpsc::Receiver<Input>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut input_open = true;
    loop {
        tokio::select! {
            // Only read when there is room for what is read.
            permit = output.reserve() => {
                let Ok(permit) = permit else { break };
                let n = tokio::select! {
                    read = stream.read(&mut buffer) => read,
                    message = input.recv(), if input_open => {
                        drop(permit);
                        if !handle_input(&mut stream, &mut telnet, message, &mut input_open, &output).await {
                            break;
                        }
                        continue;
                    }
                };
                match n {
                    Ok(0) => break,
                    Ok(n) => {
                        let received = telnet.receive(buffer.get(..n).unwrap_or(&[]));
                        if !received.reply.is_empty()
                            && let Err(err) = write_or_leave(&mut stream, &received.reply, &output).await
                        {
                            permit.send(Err(err.to_string()));
                            break;
                        }
                        if received.data.is_empty() {
                            drop(permit);
                        } else {
                            permit.send(Ok(Bytes::from(received.data)));
                        }
                    }
                    Err(err) => {
                        permit.send(Err(err.to_string()));
                        break;
                    }
                }
            }
            message = input.recv(), if input_open => {
                if !handle_input(&mut stream, &mut telnet, message, &mut input_open, &output).await {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// Writes what the user sent; `false` ends the connection.
async fn handle_input<S>(
    stream: &mut S,
    telnet: &mut Telnet,
    message: Option<Input>,
    input_open: &mut bool,
    output: &mpsc::Sender<Result<Bytes, String>>,
) -> bool
where
    S: AsyncWrite + Unpin,
{
    let bytes = match message {
        Some(Input::Data(data)) => telnet.encode(&data),
        Some(Input::Resize { columns, rows }) => telnet.resize(columns, rows),
        Some(Input::Close) => return false,
        None => {
            // Nobody sends any more; the device may still talk until the output is dropped.
            *input_open = false;
            return true;
        }
    };
    bytes.is_empty() || write_or_leave(stream, &bytes, output).await.is_ok()
}

/// Writes to the device, unless the user's side goes away meanwhile (a device that stopped
/// reading would otherwise keep this task, and its connection, forever).
async fn write_or_leave<S>(
    stream: &mut S,
    bytes: &[u8],
    output: &mpsc::Sender<Result<Bytes, String>>,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    tokio::select! {
        written = stream.write_all(bytes) => written,
        () = output.closed() => Err(std::io::Error::other("the session ended")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DO, IAC, OPTION_NAWS, SB, SE, WILL};
    use tokio::io::duplex;

    fn login(timeout: Duration) -> Login {
        Login {
            name: "admin".into(),
            password: SecretString::from("canary-pw-5678".to_owned()),
            patterns: LoginPatterns::new(None, None, None, None).unwrap(),
            timeout,
        }
    }

    fn terminal() -> Terminal {
        Terminal {
            term: Some("xterm".into()),
            columns: 80,
            rows: 24,
        }
    }

    async fn read_some(device: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut buffer = vec![0u8; 4096];
        let n = device.read(&mut buffer).await.unwrap();
        buffer.truncate(n);
        buffer
    }

    #[tokio::test]
    async fn logs_in_then_relays_both_ways_with_naws() {
        let (client, mut device) = duplex(64 * 1024);
        let session = tokio::spawn(connect(client, terminal(), login(Duration::from_secs(10))));
        let offers = read_some(&mut device).await;
        assert!(offers.starts_with(&[IAC, DO]));
        device
            .write_all(&[IAC, WILL, 1, IAC, DO, OPTION_NAWS])
            .await
            .unwrap();
        device.write_all(b"login: ").await.unwrap();
        let mut seen = Vec::new();
        while !seen.ends_with(b"admin\r\0") {
            seen.extend(read_some(&mut device).await);
        }
        assert!(seen.windows(3).any(|w| w == [IAC, SB, OPTION_NAWS]));
        device.write_all(b"admin\r\nPassword: ").await.unwrap();
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\0") {
            seen.extend(read_some(&mut device).await);
        }
        assert_eq!(seen, b"canary-pw-5678\r\0");
        device.write_all(b"\r\nWelcome\r\nsw1# ").await.unwrap();
        let (mut connection, shown) = session.await.unwrap().unwrap();
        assert_eq!(shown, b"\r\nWelcome\r\nsw1# ");
        connection
            .input
            .send(Input::Data(Bytes::from_static(b"show \xff\r")))
            .await
            .unwrap();
        assert_eq!(read_some(&mut device).await, b"show \xff\xff\r\0");
        connection
            .input
            .send(Input::Resize {
                columns: 132,
                rows: 43,
            })
            .await
            .unwrap();
        assert_eq!(
            read_some(&mut device).await,
            [IAC, SB, OPTION_NAWS, 0, 132, 0, 43, IAC, SE]
        );
        device.write_all(b"out\xff\xffput").await.unwrap();
        assert_eq!(
            connection.output.recv().await.unwrap().unwrap(),
            Bytes::from_static(b"out\xffput")
        );
        drop(device);
        assert!(connection.output.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_refused_login_and_a_silent_device_fail_with_a_clear_line() {
        let (client, mut device) = duplex(64 * 1024);
        let session = tokio::spawn(connect(client, terminal(), login(Duration::from_secs(10))));
        read_some(&mut device).await;
        device.write_all(b"Username: ").await.unwrap();
        read_some(&mut device).await;
        device.write_all(b"Password: ").await.unwrap();
        read_some(&mut device).await;
        device
            .write_all(b"\r\n% Authentication failed\r\n")
            .await
            .unwrap();
        let err = session.await.unwrap().unwrap_err();
        assert!(err.is_refused_credential());
        assert_eq!(
            err.to_string(),
            "the device refused the login: % Authentication failed"
        );

        let (client, _device) = duplex(1024);
        let err = connect(client, terminal(), login(Duration::from_millis(200)))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Timeout(..)), "{err}");
    }

    #[tokio::test]
    async fn a_device_that_stops_reading_does_not_keep_the_connection_once_the_user_left() {
        // A tiny pipe the device never drains: the task's write blocks.
        let (client, mut device) = duplex(64);
        let session = tokio::spawn(connect(client, terminal(), login(Duration::from_secs(10))));
        read_some(&mut device).await;
        device.write_all(b"login: ").await.unwrap();
        read_some(&mut device).await;
        device.write_all(b"Password: ").await.unwrap();
        read_some(&mut device).await;
        device.write_all(b"$ ").await.unwrap();
        let (connection, _) = session.await.unwrap().unwrap();
        connection
            .input
            .send(Input::Data(Bytes::from(vec![b'x'; 4096])))
            .await
            .unwrap();
        // The user leaves: the task ends and drops its end of the connection, although the
        // device never read (its next write finds the connection gone).
        drop(connection);
        let gone = async {
            loop {
                if device.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), gone)
            .await
            .expect("the connection was kept after the user left");
    }
}
