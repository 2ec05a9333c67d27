//! Anomaly detectors (issue 18): pure decisions over one fact (a login, a session, a failed
//! login count) and what the store remembers of the user. No clock: every time is the fact's
//! own (the audit event's), so a test gives the time it wants and a replay decides alike.
//!
//! Each detector is off until its setting is given (`[alerts]` in the configuration). Each
//! alert is an `alert_raised` audit event, so every sink and the alerts page get it.

use crate::audit::AuditEvent;
use crate::schedule::Schedule;
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;

/// The detectors' settings, validated (`[alerts]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectorSettings {
    /// A login from an address this user has not logged in from for at least this long.
    pub new_source_after: Option<Duration>,
    /// A login outside these weekly hours.
    pub business_hours: Option<Schedule>,
    /// Too many failed logins in a window, per user and per source address.
    pub failed_logins: Option<FailureBurst>,
    /// A session that moved more than this many bytes (both directions together).
    pub bulk_transfer_bytes: Option<u64>,
    /// A session to an asset this user never had a session to.
    pub new_asset: bool,
}

impl DetectorSettings {
    /// Whether a detector that reads the audit log is on (the failed-login burst counts where
    /// failures are counted, the bulk transfer where a session's bytes are counted).
    pub fn reads_the_audit_log(&self) -> bool {
        self.new_source_after.is_some() || self.business_hours.is_some() || self.new_asset
    }
}

/// `count` failed logins within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBurst {
    pub count: u32,
    pub window: Duration,
}

/// What the store remembers of a user and one value (a source address, an asset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The user has no history of this kind at all: nothing to compare with yet, so the first
    /// one is learned, not alerted on.
    NothingYet,
    /// The user has history, but never this value.
    Never,
    /// This value, last at this time.
    LastAt(OffsetDateTime),
}

/// One alert a detector raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorAlert {
    /// The detector's name (`new_source`, `off_hours`, `failed_logins`, `bulk_transfer`,
    /// `new_asset`).
    pub alert: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    pub user: String,
    pub session: Option<String>,
    pub target: Option<String>,
    pub detail: String,
}

impl DetectorAlert {
    /// The `alert_raised` event of this alert.
    pub fn event(&self) -> AuditEvent {
        AuditEvent::AlertRaised {
            alert: self.alert.to_owned(),
            severity: self.severity.to_owned(),
            user: self.user.clone(),
            session: self.session.clone(),
            target: self.target.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// The address of a login's `source` as the fronts write it (`ADDR`, `ADDR:PORT`, `[V6]:PORT`);
/// `None` for a connection inherited from another (`ADDR (web)`, `ADDR (jump)`): the outer
/// login is the one that counts.
pub fn source_address(source: &str) -> Option<IpAddr> {
    let source = source.trim();
    if source.contains(' ') {
        return None;
    }
    source
        .parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| source.parse::<IpAddr>())
        .ok()
        .map(|ip| ip.to_canonical())
}

/// A login from an address `user` has not used for `settings.new_source_after` (or ever).
pub fn new_source(
    settings: &DetectorSettings,
    user: &str,
    source: IpAddr,
    seen: Seen,
    at: OffsetDateTime,
) -> Option<DetectorAlert> {
    let after = settings.new_source_after?;
    let detail = match seen {
        Seen::NothingYet => return None,
        Seen::Never => format!("login of {user} from a new address {source}"),
        Seen::LastAt(last) if at - last >= after => format!(
            "login of {user} from {source}, an address not used for {} days",
            (at - last).whole_days()
        ),
        Seen::LastAt(_) => return None,
    };
    Some(DetectorAlert {
        alert: "new_source",
        severity: "warning",
        user: user.to_owned(),
        session: None,
        target: None,
        detail,
    })
}

/// A login outside the configured business hours.
pub fn off_hours(
    settings: &DetectorSettings,
    user: &str,
    source: IpAddr,
    at: OffsetDateTime,
) -> Option<DetectorAlert> {
    let hours = settings.business_hours.as_ref()?;
    if hours.contains(at) {
        return None;
    }
    Some(DetectorAlert {
        alert: "off_hours",
        severity: "warning",
        user: user.to_owned(),
        session: None,
        target: None,
        detail: format!("login of {user} from {source} outside business hours ({hours})"),
    })
}

/// A session to an asset `user` never had a session to.
pub fn new_asset(
    settings: &DetectorSettings,
    user: &str,
    session: &str,
    target: &str,
    asset: &str,
    seen: Seen,
) -> Option<DetectorAlert> {
    if !settings.new_asset || seen != Seen::Never {
        return None;
    }
    Some(DetectorAlert {
        alert: "new_asset",
        severity: "warning",
        user: user.to_owned(),
        session: Some(session.to_owned()),
        target: Some(target.to_owned()),
        detail: format!("first session of {user} to asset {asset}"),
    })
}

/// A session that has moved more than `limit` bytes (`alerts.bulk_transfer`); the session core
/// asks as the bytes pass, once per session.
pub fn bulk_transfer(
    limit: u64,
    user: &str,
    session: &str,
    target: &str,
    bytes: u64,
) -> Option<DetectorAlert> {
    if bytes <= limit {
        return None;
    }
    Some(DetectorAlert {
        alert: "bulk_transfer",
        severity: "warning",
        user: user.to_owned(),
        session: Some(session.to_owned()),
        target: Some(target.to_owned()),
        detail: format!("session of {user} on {target} moved {bytes} bytes (more than {limit})"),
    })
}

/// Whom a failure burst is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstOf<'a> {
    User(&'a str),
    Source(IpAddr),
}

/// `failures` failed logins within `burst.window` reached `burst.count` (the caller counts and
/// asks once per window): `login` is the last attempt's login (cleaned), `source` its address.
pub fn failed_logins(
    burst: &FailureBurst,
    of: BurstOf<'_>,
    failures: u32,
    login: &str,
    source: IpAddr,
) -> DetectorAlert {
    let window = crate::time_arg::format_duration(burst.window);
    let (user, detail) = match of {
        BurstOf::User(user) => (
            user.to_owned(),
            format!("{failures} failed logins of {user} within {window} (the last from {source})"),
        ),
        BurstOf::Source(address) => (
            login.to_owned(),
            format!(
                "{failures} failed logins from {address} within {window} (the last as {login})"
            ),
        ),
    };
    DetectorAlert {
        alert: "failed_logins",
        severity: "critical",
        user,
        session: None,
        target: None,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn settings() -> DetectorSettings {
        DetectorSettings {
            new_source_after: Some(Duration::from_secs(30 * 86_400)),
            business_hours: Some(Schedule::parse("Mon-Fri 08:00-18:00 Europe/Berlin").unwrap()),
            failed_logins: Some(FailureBurst {
                count: 5,
                window: Duration::from_secs(600),
            }),
            bulk_transfer_bytes: Some(1_000_000),
            new_asset: true,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn sources_are_read_from_what_the_fronts_write() {
        assert_eq!(source_address("127.0.0.2:50022"), Some(ip("127.0.0.2")));
        assert_eq!(source_address("127.0.0.3"), Some(ip("127.0.0.3")));
        assert_eq!(source_address("[2001:db8::1]:22"), Some(ip("2001:db8::1")));
        assert_eq!(source_address("[::ffff:10.0.0.1]:22"), Some(ip("10.0.0.1")));
        assert_eq!(source_address("127.0.0.1:5 (web)"), None);
        assert_eq!(source_address("nonsense"), None);
    }

    #[test]
    fn a_new_source_alerts_once_the_user_has_history_and_an_old_one_after_the_gap() {
        let at = datetime!(2026-11-30 12:00 UTC);
        let s = settings();
        let new = ip("127.0.0.2");
        assert_eq!(new_source(&s, "alice", new, Seen::NothingYet, at), None);
        let alert = new_source(&s, "alice", new, Seen::Never, at).unwrap();
        assert_eq!(alert.alert, "new_source");
        assert_eq!(alert.detail, "login of alice from a new address 127.0.0.2");
        // Used 29 days ago: known. 31 days ago: not used for 31 days.
        let recent = Seen::LastAt(datetime!(2026-11-01 12:00 UTC));
        assert_eq!(new_source(&s, "alice", new, recent, at), None);
        let old = Seen::LastAt(datetime!(2026-10-30 12:00 UTC));
        let alert = new_source(&s, "alice", new, old, at).unwrap();
        assert!(alert.detail.contains("not used for 31 days"), "{alert:?}");
        // Off: nothing.
        let off = DetectorSettings::default();
        assert_eq!(new_source(&off, "alice", new, Seen::Never, at), None);
    }

    #[test]
    fn off_hours_follow_the_zone_of_the_business_hours() {
        let s = settings();
        let source = ip("127.0.0.1");
        // Monday 09:30 in Berlin (08:30 UTC): inside.
        assert_eq!(
            off_hours(&s, "alice", source, datetime!(2026-11-30 08:30 UTC)),
            None
        );
        // Monday 07:30 UTC is 08:30 in Berlin: inside; 06:30 UTC is 07:30 there: outside.
        assert_eq!(
            off_hours(&s, "alice", source, datetime!(2026-11-30 07:30 UTC)),
            None
        );
        let early = off_hours(&s, "alice", source, datetime!(2026-11-30 06:30 UTC)).unwrap();
        assert_eq!(early.alert, "off_hours");
        assert!(early.detail.contains("outside business hours"), "{early:?}");
        // Saturday noon: outside.
        assert!(off_hours(&s, "alice", source, datetime!(2026-11-28 12:00 UTC)).is_some());
        assert_eq!(
            off_hours(
                &DetectorSettings::default(),
                "alice",
                source,
                datetime!(2026-11-28 12:00 UTC)
            ),
            None
        );
    }

    #[test]
    fn a_first_session_to_an_asset_alerts_and_transfers_over_the_limit_alert() {
        let s = settings();
        assert_eq!(
            new_asset(&s, "alice", "S", "root@web-02", "web-02", Seen::NothingYet),
            None
        );
        let seen = Seen::LastAt(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(
            new_asset(&s, "alice", "S", "root@web-02", "web-02", seen),
            None
        );
        let alert = new_asset(&s, "alice", "S", "root@web-02", "web-02", Seen::Never).unwrap();
        assert_eq!(alert.detail, "first session of alice to asset web-02");
        assert_eq!(alert.session.as_deref(), Some("S"));
        assert_eq!(
            bulk_transfer(1_000_000, "alice", "S", "root@web-02", 1_000_000),
            None
        );
        let bulk = bulk_transfer(1_000_000, "alice", "S", "root@web-02", 1_000_001).unwrap();
        assert_eq!(bulk.alert, "bulk_transfer");
        assert!(bulk.detail.contains("1000001 bytes"), "{bulk:?}");
    }

    #[test]
    fn failure_bursts_name_the_user_or_the_source() {
        let burst = settings().failed_logins.unwrap();
        let source = ip("127.0.0.9");
        let by_user = failed_logins(&burst, BurstOf::User("alice"), 5, "alice", source);
        assert_eq!(by_user.user, "alice");
        assert_eq!(by_user.severity, "critical");
        assert_eq!(
            by_user.detail,
            "5 failed logins of alice within 10m (the last from 127.0.0.9)"
        );
        let by_source = failed_logins(&burst, BurstOf::Source(source), 5, "nobody", source);
        assert_eq!(
            by_source.detail,
            "5 failed logins from 127.0.0.9 within 10m (the last as nobody)"
        );
    }
}
