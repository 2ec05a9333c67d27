//! Who may hold a connection before authenticating, and for how long (OpenSSH's
//! `LoginGraceTime`, `MaxStartups` and `PerSourceMaxStartups`).
//!
//! An unauthenticated connection costs a file descriptor, a task and key-exchange work, and
//! anyone on the network can open one. So:
//! - every connection must authenticate within the grace time ([`GraceStream`]): when it
//!   expires the socket fails, whatever phase the connection is in (banner, key exchange,
//!   authentication), and the connection ends;
//! - unauthenticated connections are counted, globally and per source address (IPv6 by /64).
//!   From `start` on, a new one is dropped at random with a probability rising from `rate`% to
//!   100% at `full`; at the per-source cap it is dropped. A dropped connection is closed at once.
//!
//! INVARIANT: a connection holds its [`PreAuthSlot`] from accept until it authenticates (or
//! ends); an authenticated connection no longer counts and no longer has a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The default grace time from accept to authenticated (OpenSSH's is two minutes; logins
/// through a bastion are key logins that take a second).
pub const DEFAULT_LOGIN_GRACE_TIME: Duration = Duration::from_secs(30);
/// Unauthenticated connections allowed from one source address at once.
pub const DEFAULT_PER_SOURCE_MAX_STARTUPS: usize = 10;

/// `start:rate:full`: from `start` unauthenticated connections on, drop new ones with
/// probability `rate`%, rising linearly to 100% at `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    pub start: usize,
    pub rate: u32,
    pub full: usize,
}

impl Default for MaxStartups {
    /// `64:30:256`: OpenSSH's `10:30:100` is for a server without a per-source cap; here one
    /// address holds at most [`DEFAULT_PER_SOURCE_MAX_STARTUPS`], so random drops start only
    /// when many addresses flood at once.
    fn default() -> Self {
        Self {
            start: 64,
            rate: 30,
            full: 256,
        }
    }
}

impl MaxStartups {
    /// Parses `start:rate:full` or a single number (a hard cap: `N` is `N:100:N`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let number = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("{text:?} is not start:rate:full (three whole numbers)"))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let parsed = match parts.as_slice() {
            [full] => {
                let full = number(full)?;
                Self {
                    start: full,
                    rate: 100,
                    full,
                }
            }
            [start, rate, full] => Self {
                start: number(start)?,
                rate: u32::try_from(number(rate)?).unwrap_or(u32::MAX),
                full: number(full)?,
            },
            _ => {
                return Err(format!(
                    "{text:?} is not start:rate:full (three whole numbers)"
                ));
            }
        };
        if parsed.full == 0 || parsed.start > parsed.full || parsed.rate > 100 {
            return Err(format!(
                "{text:?}: need 0 < full, start <= full and a rate of at most 100 (percent)"
            ));
        }
        Ok(parsed)
    }

    /// The same rule with `full` lowered to `cap` (and `start` with it), for a small file
    /// descriptor limit.
    pub fn capped(self, cap: usize) -> Self {
        let full = self.full.min(cap.max(1));
        Self {
            start: self.start.min(full),
            rate: self.rate,
            full,
        }
    }

    /// Whether a new connection is dropped when `current` are unauthenticated; `roll` is a
    /// uniform random number in `0..100`.
    fn drops(&self, current: usize, roll: u32) -> bool {
        if current >= self.full {
            return true;
        }
        if current < self.start {
            return false;
        }
        // rate% at start, rising linearly to 100% at full.
        let span = (self.full - self.start).max(1) as u64;
        let above = (current - self.start) as u64;
        let rate = u64::from(self.rate);
        let percent = rate + (100 - rate.min(100)) * above / span;
        u64::from(roll) < percent
    }
}

/// The pre-authentication limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreAuthLimits {
    /// From accept to authenticated.
    pub login_grace_time: Duration,
    pub max_startups: MaxStartups,
    pub per_source_max_startups: usize,
}

impl Default for PreAuthLimits {
    fn default() -> Self {
        Self {
            login_grace_time: DEFAULT_LOGIN_GRACE_TIME,
            max_startups: MaxStartups::default(),
            per_source_max_startups: DEFAULT_PER_SOURCE_MAX_STARTUPS,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The global cap, or a random early drop.
    Startups,
    /// This source address already holds its share.
    PerSource,
}

/// A source address as counted: IPv4 (and IPv4-mapped IPv6) by address, IPv6 by /64 (one host
/// usually holds a whole /64). The HTTPS listener counts its connections the same way.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// The count of unauthenticated connections of one listener.
#[derive(Debug)]
pub struct Admission {
    limits: PreAuthLimits,
    counts: Mutex<Counts>,
}

impl Admission {
    pub fn new(limits: PreAuthLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub fn limits(&self) -> PreAuthLimits {
        self.limits
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PreAuthSlot, Refused> {
        let key = source_key(ip);
        // A failed random source counts as the worst roll: fail closed under load.
        let roll = getrandom::u32().map_or(0, |r| r % 100);
        let Ok(mut counts) = self.counts.lock() else {
            return Err(Refused::Startups);
        };
        let from_source = counts.by_source.get(&key).copied().unwrap_or(0);
        if from_source >= self.limits.per_source_max_startups {
            return Err(Refused::PerSource);
        }
        if self.limits.max_startups.drops(counts.total, roll) {
            return Err(Refused::Startups);
        }
        counts.total += 1;
        counts.by_source.insert(key, from_source + 1);
        Ok(PreAuthSlot {
            admission: self.clone(),
            key,
            authenticated: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Unauthenticated connections now (for tests and logs).
    pub fn current(&self) -> usize {
        self.counts.lock().map_or(0, |counts| counts.total)
    }

    fn release(&self, key: IpAddr) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.by_source.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.by_source.remove(&key);
            }
        }
    }
}

/// One unauthenticated connection's place in the count; freed when it authenticates
/// ([`PreAuthSlot::authenticated`]) or ends (drop).
#[derive(Debug)]
pub struct PreAuthSlot {
    admission: Arc<Admission>,
    key: IpAddr,
    authenticated: Arc<AtomicBool>,
}

impl PreAuthSlot {
    /// Wraps the connection's socket so that it fails once the grace time is over, unless
    /// this slot was marked authenticated first.
    pub fn guard<S>(&self, stream: S) -> GraceStream<S> {
        GraceStream::new(
            stream,
            self.admission.limits.login_grace_time,
            self.authenticated.clone(),
        )
    }

    /// The connection authenticated: it leaves the count and its deadline is lifted.
    pub fn authenticated(self) {
        self.authenticated.store(true, Ordering::Release);
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        self.admission.release(self.key);
    }
}

/// A socket with a deadline: until `done` is set (the connection authenticated; for the HTTPS
/// listener, its first request arrived), every read and write first checks the deadline (and
/// registers to be woken by it), so a peer that stalls in any phase is disconnected when it
/// passes.
#[derive(Debug)]
pub struct GraceStream<S> {
    inner: S,
    deadline: Pin<Box<tokio::time::Sleep>>,
    authenticated: Arc<AtomicBool>,
    expired: bool,
}

impl<S> GraceStream<S> {
    /// `stream`, failing `limit` from now unless `done` is set first.
    pub fn new(stream: S, limit: Duration, done: Arc<AtomicBool>) -> Self {
        Self {
            inner: stream,
            deadline: Box::pin(tokio::time::sleep(limit)),
            authenticated: done,
            expired: false,
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.expired {
            if self.authenticated.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            self.expired = true;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no authentication within the login grace time",
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GraceStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(err) = self.check(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GraceStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(err) = self.check(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(err) = self.check(cx) {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_startups_parses_like_openssh() {
        assert_eq!(
            MaxStartups::parse("10:30:100"),
            Ok(MaxStartups {
                start: 10,
                rate: 30,
                full: 100
            })
        );
        assert_eq!(
            MaxStartups::parse("50"),
            Ok(MaxStartups {
                start: 50,
                rate: 100,
                full: 50
            })
        );
        for bad in [
            "",
            "10:30",
            "a:b:c",
            "20:30:10",
            "10:101:100",
            "0",
            "1:2:3:4",
        ] {
            assert!(MaxStartups::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_early_drop_rises_from_rate_to_certain() {
        let rule = MaxStartups {
            start: 10,
            rate: 30,
            full: 100,
        };
        let dropped = |current: usize| (0..100).filter(|roll| rule.drops(current, *roll)).count();
        assert_eq!(dropped(0), 0);
        assert_eq!(dropped(9), 0);
        assert_eq!(dropped(10), 30);
        assert_eq!(dropped(55), 65);
        assert_eq!(dropped(99), 99);
        assert_eq!(dropped(100), 100);
        assert_eq!(dropped(5000), 100);
        assert_eq!(rule.capped(50).full, 50);
        assert_eq!(rule.capped(5).start, 5);
    }

    #[test]
    fn each_source_has_its_share_and_slots_come_back() {
        let admission = Admission::new(PreAuthLimits {
            login_grace_time: Duration::from_secs(1),
            max_startups: MaxStartups::parse("1000").unwrap(),
            per_source_max_startups: 2,
        });
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = admission.admit(one).unwrap();
        let _b = admission.admit(one).unwrap();
        assert_eq!(admission.admit(one).unwrap_err(), Refused::PerSource);
        let _c = admission.admit(two).unwrap();
        // IPv6 counts by /64; IPv4-mapped IPv6 as IPv4.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(admission.admit(mapped).unwrap_err(), Refused::PerSource);
        let _v6a = admission.admit("2001:db8::1".parse().unwrap()).unwrap();
        let _v6b = admission.admit("2001:db8::ffff".parse().unwrap()).unwrap();
        assert!(admission.admit("2001:db8::2".parse().unwrap()).is_err());
        assert!(admission.admit("2001:db8:1::1".parse().unwrap()).is_ok());
        a.authenticated();
        assert!(admission.admit(one).is_ok());
        assert_eq!(admission.current(), 4);
    }

    #[tokio::test]
    async fn a_stalled_peer_fails_at_the_deadline_unless_it_authenticated() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (stalled, _peer) = tokio::io::duplex(64);
        let mut stalled = GraceStream::new(
            stalled,
            Duration::from_millis(100),
            Arc::new(AtomicBool::new(false)),
        );
        let mut buffer = [0u8; 8];
        let err = stalled.read(&mut buffer).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(stalled.write_all(b"x").await.is_err(), "stays failed");

        let (authenticated, mut peer) = tokio::io::duplex(64);
        let done = Arc::new(AtomicBool::new(false));
        let mut authenticated =
            GraceStream::new(authenticated, Duration::from_millis(100), done.clone());
        done.store(true, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(300)).await;
        peer.write_all(b"late").await.unwrap();
        let read = authenticated.read(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..read], b"late");
    }

    #[test]
    fn the_global_cap_holds() {
        let admission = Admission::new(PreAuthLimits {
            login_grace_time: Duration::from_secs(1),
            max_startups: MaxStartups::parse("3").unwrap(),
            per_source_max_startups: 100,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let slots: Vec<_> = (0..3).map(|_| admission.admit(ip).unwrap()).collect();
        assert_eq!(admission.admit(ip).unwrap_err(), Refused::Startups);
        drop(slots);
        assert_eq!(admission.current(), 0);
    }
}
