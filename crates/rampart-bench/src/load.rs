//! A light load client on russh: thousands of interactive sessions from one process, where as
//! many OpenSSH clients would cost more than the gateway they measure.

use anyhow::Context;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct TrustAll;

impl client::Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true) // loopback benchmark against our own server
    }
}

pub struct LoadResult {
    pub open: usize,
    pub errors: usize,
    pub rss_before_kib: u64,
    pub rss_with_kib: u64,
    pub per_session_kib: f64,
    pub fresh_login_ms: f64,
    pub open_seconds: f64,
}

type Session = (client::Handle<TrustAll>, russh::Channel<client::Msg>);

async fn open_one(
    config: Arc<client::Config>,
    key: Arc<PrivateKey>,
    address: SocketAddr,
    user: String,
) -> anyhow::Result<Session> {
    let mut handle = client::connect(config, address, TrustAll).await?;
    let auth = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None))
        .await?;
    if !auth.success() {
        anyhow::bail!("authentication refused");
    }
    let channel = handle.channel_open_session().await?;
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await?;
    channel.request_shell(true).await?;
    // Type something, as a person would.
    channel.data_bytes(&b"echo hello\n"[..]).await?;
    Ok((handle, channel))
}

/// Opens `count` sessions through Rampart, measures its memory and a fresh login, closes them.
pub fn run(
    key: &Path,
    address: SocketAddr,
    user: &str,
    count: usize,
    fresh_login: impl FnOnce() -> f64,
    rampart_pid: u32,
) -> anyhow::Result<LoadResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pem = std::fs::read_to_string(key)?;
    let key = Arc::new(PrivateKey::from_openssh(pem.as_bytes()).context("the benchmark key")?);
    let config = Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        ..client::Config::default()
    });
    let rss_before_kib = rampart_testkit::resident_kib(rampart_pid);
    let started = Instant::now();
    let (sessions, errors) = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let (config, key, user, limit) =
                (config.clone(), key.clone(), user.to_owned(), limit.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                tokio::time::timeout(
                    Duration::from_secs(60),
                    open_one(config, key, address, user),
                )
                .await
            }));
        }
        let mut sessions = Vec::new();
        let mut errors = 0;
        for task in tasks {
            match task.await {
                Ok(Ok(Ok(session))) => sessions.push(session),
                _ => errors += 1,
            }
        }
        (sessions, errors)
    });
    let open_seconds = started.elapsed().as_secs_f64();
    // Let the sessions settle (shells start, echo, go idle) before reading memory.
    std::thread::sleep(Duration::from_secs(2));
    let rss_with_kib = rampart_testkit::resident_kib(rampart_pid);
    let fresh_login_ms = fresh_login();
    let open = sessions.len();
    runtime.block_on(async {
        for (handle, channel) in sessions {
            let _ = channel.close().await;
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "", "")
                .await;
        }
    });
    let per_session_kib = if open == 0 {
        0.0
    } else {
        rss_with_kib.saturating_sub(rss_before_kib) as f64 / open as f64
    };
    Ok(LoadResult {
        open,
        errors,
        rss_before_kib,
        rss_with_kib,
        per_session_kib,
        fresh_login_ms,
        open_seconds,
    })
}
