//! The Redis side of credential rotation (issue 17): try an ACL user's login (`AUTH`), and
//! change its password with `ACL SETUSER user resetpass #SHA256`, as the user itself or through
//! a privileged rotation account. Connections come from the node's dialer, as sessions' do.
//!
//! INVARIANT: the new password never reaches the server: only its SHA-256 (Redis's `#hash`
//! form) is in the command; errors carry the server's error summary, never a secret.

use crate::front::read_frame;
use crate::resp::{self, Framer, Limits};
use bytes::{Bytes, BytesMut};
use rampart_core::{Asset, ExposeSecret, Name, Protocol, SecretString};
use rampart_session::target_tls::Reach;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long one rotation step (connect, log in, run the command) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

enum Failure {
    /// The server answered the login with an error (wrong password, user off).
    Refused(String),
    /// No usable answer: unreachable, closed, timed out.
    Other(String),
}

use rampart_session::database::Io;

async fn exchange(stream: &mut Box<dyn Io>, command: &[u8]) -> Result<Bytes, Failure> {
    stream
        .write_all(command)
        .await
        .map_err(|err| Failure::Other(err.to_string()))?;
    let mut framer = Framer::new(Limits::TARGET);
    let mut buf = BytesMut::new();
    read_frame(stream, &mut framer, &mut buf, Limits::TARGET)
        .await
        .map_err(|err| Failure::Other(err.to_string()))?
        .ok_or_else(|| Failure::Other("the server closed the connection".into()))
}

fn auth_command(login: &Name, password: &SecretString) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(if login.as_str() == "default" {
        resp::encode_command(&[b"AUTH", password.expose_secret().as_bytes()])
    } else {
        resp::encode_command(&[
            b"AUTH",
            login.as_str().as_bytes(),
            password.expose_secret().as_bytes(),
        ])
    })
}

async fn connect(
    reach: &Reach<'_>,
    asset: &Asset,
    login: &Name,
    password: &SecretString,
) -> Result<Box<dyn Io>, Failure> {
    let work = async {
        let dialed = reach
            .dialer
            .dial(asset, Protocol::Redis)
            .await
            .map_err(|err| Failure::Other(err.to_string()))?;
        // TLS as the sessions do it: on when the endpoint pins a certificate.
        let mut stream = crate::front::secure(Box::new(dialed.stream), asset, reach)
            .await
            .map_err(Failure::Other)?;
        let answer = exchange(&mut stream, &auth_command(login, password)).await?;
        if &answer[..] == b"+OK\r\n" {
            Ok(stream)
        } else {
            Err(Failure::Refused(
                resp::summary(&answer).err().unwrap_or_default(),
            ))
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(Failure::Other("the server did not answer in time".into())))
}

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

/// Sets `user`'s only password to `new`, logged in as `via` (login and password) on `asset`.
pub async fn change_password(
    reach: &Reach<'_>,
    asset: &Asset,
    user: &Name,
    new: &SecretString,
    via: (&Name, &SecretString),
) -> Result<(), String> {
    let mut stream =
        connect(reach, asset, via.0, via.1)
            .await
            .map_err(|failure| match failure {
                Failure::Refused(why) | Failure::Other(why) => format!("login as {}: {why}", via.0),
            })?;
    let hash: String = Sha256::digest(new.expose_secret().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rule = format!("#{hash}");
    let command = resp::encode_command(&[
        b"ACL",
        b"SETUSER",
        user.as_str().as_bytes(),
        b"resetpass",
        rule.as_bytes(),
    ]);
    let answer = tokio::time::timeout(STEP_TIMEOUT, exchange(&mut stream, &command))
        .await
        .map_err(|_| "the server did not answer ACL SETUSER in time".to_owned())?
        .map_err(|failure| match failure {
            Failure::Refused(why) | Failure::Other(why) => why,
        })?;
    if &answer[..] == b"+OK\r\n" {
        Ok(())
    } else {
        Err(format!(
            "ACL SETUSER {user}: {}",
            resp::summary(&answer).err().unwrap_or_default()
        ))
    }
}
