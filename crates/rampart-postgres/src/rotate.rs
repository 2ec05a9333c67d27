//! The PostgreSQL side of credential rotation (issue 17): try a login with a given password, and
//! change a role's password with `ALTER USER "role" PASSWORD 'SCRAM-SHA-256$...'`, as the role
//! itself or through a privileged rotation account. Connections come from the node's dialer.
//!
//! INVARIANT: the new password never reaches the server: only its SCRAM verifier (with a fresh
//! salt) is in the statement; errors carry the server's message summary, never a secret.

use crate::target_login;
use crate::wire::{self, read_message, write_message};
use rampart_core::{Asset, ExposeSecret, Name, Protocol, SecretString};
use rampart_session::target_tls::Reach;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long one rotation step (connect, log in, run the statement) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a login with a password showed: `Ok(true)` works, `Ok(false)` refused, `Err` no answer.
pub async fn check_login(
    reach: &Reach<'_>,
    asset: &Asset,
    login: &Name,
    password: &SecretString,
) -> Result<bool, String> {
    match connect(reach, asset, login, password).await {
        Ok(_) => Ok(true),
        Err(Failure::Refused(_)) => Ok(false),
        Err(Failure::Other(why)) => Err(why),
    }
}

/// Sets `role`'s password to `new`, logged in as `via` (login and password) on `asset`.
pub async fn change_password(
    reach: &Reach<'_>,
    asset: &Asset,
    role: &Name,
    new: &SecretString,
    via: (&Name, &SecretString),
) -> Result<(), String> {
    let mut stream =
        connect(reach, asset, via.0, via.1)
            .await
            .map_err(|failure| match failure {
                Failure::Refused(why) | Failure::Other(why) => format!("login as {}: {why}", via.0),
            })?;
    let verifier =
        target_login::scram_verifier(new.expose_secret()).map_err(|err| err.to_string())?;
    // `role` is a Name (letters, digits, . _ -): quoted, it is an identifier and nothing else.
    let mut query = zeroize::Zeroizing::new(format!(
        "ALTER USER \"{role}\" PASSWORD '{}'",
        verifier.as_str()
    ))
    .as_bytes()
    .to_vec();
    query.push(0);
    let work = async {
        write_message(&mut stream, b'Q', &query)
            .await
            .map_err(|err| err.to_string())?;
        let mut failure = None;
        loop {
            let message = read_message(&mut stream, 64 * 1024)
                .await
                .map_err(|err| err.to_string())?;
            match message.tag {
                b'E' => failure = Some(wire::error_summary(&message.body)),
                b'Z' => break,
                _ => {}
            }
        }
        let _ = write_message(&mut stream, b'X', &[]).await;
        let _ = stream.shutdown().await;
        match failure {
            None => Ok(()),
            Some(why) => Err(format!("ALTER USER as {}: {why}", via.0)),
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("the target did not answer ALTER USER in time".into()))
}

enum Failure {
    /// The server refused the password.
    Refused(String),
    Other(String),
}

/// A logged-in connection to the `postgres` database as `login`, ready for a query.
async fn connect(
    reach: &Reach<'_>,
    asset: &Asset,
    login: &Name,
    password: &SecretString,
) -> Result<Box<dyn rampart_session::database::Io>, Failure> {
    let work = async {
        let dialed = reach
            .dialer
            .dial(asset, Protocol::Postgres)
            .await
            .map_err(|err| Failure::Other(err.to_string()))?;
        // TLS as the sessions do it: on when the endpoint pins a certificate.
        let mut stream =
            crate::front::secure(Box::new(dialed.stream), asset, reach.store, reach.actor)
                .await
                .map_err(Failure::Other)?;
        let params = [
            ("user".to_owned(), login.to_string()),
            ("database".to_owned(), "postgres".to_owned()),
        ];
        stream
            .write_all(&wire::startup_message(&params))
            .await
            .map_err(|_| {
                Failure::Other(format!("target {} closed the connection", dialed.target))
            })?;
        target_login::login(&mut stream, login.as_str(), password.expose_secret())
            .await
            .map_err(|err| {
                let text = err.to_string();
                if text.contains("refused the login") {
                    Failure::Refused(text)
                } else {
                    Failure::Other(text)
                }
            })?;
        loop {
            let message = read_message(&mut stream, 64 * 1024)
                .await
                .map_err(|err| Failure::Other(err.to_string()))?;
            match message.tag {
                b'Z' => return Ok(stream),
                b'E' => {
                    return Err(Failure::Other(format!(
                        "the target refused the session: {}",
                        wire::error_summary(&message.body)
                    )));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(Failure::Other("the target did not answer in time".into())))
}
