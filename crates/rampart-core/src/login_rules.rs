//! Who may log in from where and when: source address allow/deny lists and login hours, the
//! lockout policy after failed logins, and the client address behind a trusted proxy.
//!
//! Pure: the caller passes the source address and the time. Rules come from two places, the
//! node's configuration (`[auth]`, global) and the user's record, and both must allow a login.
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack listener reports for an
//! IPv4 client) are treated as the IPv4 address they carry, both in rules and in sources, so a
//! rule written for IPv4 cannot be sidestepped through the mapped form.

use crate::name::InvalidInput;
use crate::schedule::Schedule;
use crate::time_arg::format_duration;
use ipnet::Ipv4Net;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use time::OffsetDateTime;

/// Networks as the rules hold them, re-exported so callers need no `ipnet` dependency of their own.
pub use ipnet::IpNet;

/// The most entries one address list may hold: lists are read on every login.
pub const MAX_LIST_ENTRIES: usize = 256;
const MAX_LIST_TEXT: usize = 16 * 1024;

/// Source address and login-hours rules, for the whole node or for one user. The default has
/// no rule and allows every login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRules {
    /// If not empty, logins must come from one of these networks.
    pub allow_from: Vec<IpNet>,
    /// Logins from these networks are refused, whatever `allow_from` says.
    pub deny_from: Vec<IpNet>,
    /// If set, logins are allowed only inside these weekly windows.
    pub hours: Option<Schedule>,
}

impl LoginRules {
    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.allow_from.is_empty() && self.deny_from.is_empty() && self.hours.is_none()
    }

    /// The earliest instant after `at` at which the rules may answer differently by the clock
    /// alone (the login hours open or close); `None`: they never do.
    pub fn unchanged_before(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        self.hours.as_ref().map(|hours| hours.unchanged_before(at))
    }
}

impl Serialize for LoginRules {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let strings = |nets: &[IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut state = serializer.serialize_struct("LoginRules", 3)?;
        state.serialize_field("allow_from", &strings(&self.allow_from))?;
        state.serialize_field("deny_from", &strings(&self.deny_from))?;
        state.serialize_field("hours", &self.hours)?;
        state.end()
    }
}

/// Parses one network (`10.0.0.0/8`, `2001:db8::/32`) or address (`192.0.2.7`, meaning /32, or
/// `2001:db8::7`, meaning /128). A network with host bits set (`10.0.0.1/8`) is refused: it is
/// usually a typo, and guessing which network was meant is not safe.
pub fn parse_cidr(text: &str) -> Result<IpNet, InvalidInput> {
    let text = text.trim();
    let net = if text.contains('/') {
        text.parse::<IpNet>().map_err(|_| {
            InvalidInput::new(format!(
                "invalid network {text:?}: expected an address or CIDR such as 192.0.2.7, \
                 10.0.0.0/8 or 2001:db8::/32"
            ))
        })?
    } else {
        IpNet::from(text.parse::<IpAddr>().map_err(|_| {
            InvalidInput::new(format!(
                "invalid address {text:?}: expected an address or CIDR such as 192.0.2.7, \
                 10.0.0.0/8 or 2001:db8::/32"
            ))
        })?)
    };
    if net.trunc() != net {
        return Err(InvalidInput::new(format!(
            "invalid network {text:?}: host bits are set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(canonical_net(net))
}

/// Parses a comma-separated list of networks or addresses; an empty or blank text is the empty
/// list. `what` names the list in errors about the list as a whole (`allow_from`); an error about
/// one entry names the entry.
pub fn parse_cidr_list(what: &str, text: &str) -> Result<Vec<IpNet>, InvalidInput> {
    if text.len() > MAX_LIST_TEXT {
        return Err(InvalidInput::new(format!(
            "invalid {what}: longer than {MAX_LIST_TEXT} bytes"
        )));
    }
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut nets = Vec::new();
    for entry in text.split(',') {
        if entry.trim().is_empty() {
            return Err(InvalidInput::new(format!(
                "invalid {what} {text:?}: empty entry (separate networks with single commas)"
            )));
        }
        let net = parse_cidr(entry)?;
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    if nets.len() > MAX_LIST_ENTRIES {
        return Err(InvalidInput::new(format!(
            "invalid {what}: more than {MAX_LIST_ENTRIES} networks"
        )));
    }
    Ok(nets)
}

/// The list as [`parse_cidr_list`] reads it: `10.0.0.0/8,192.0.2.7/32`.
pub fn format_cidr_list(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it covers.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Some(prefix) = v6.prefix_len().checked_sub(96)
        && let Ok(v4net) = Ipv4Net::new(v4, prefix)
    {
        return IpNet::V4(v4net);
    }
    net
}

/// Which rules refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleScope {
    /// The node's `[auth]` configuration.
    Global,
    /// The user's own rules (`rampart user set`).
    User,
}

impl fmt::Display for RuleScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleScope::Global => "global",
            RuleScope::User => "user's",
        })
    }
}

/// Why a login was refused before any credential was looked at. For logs and the audit log
/// only: the client sees a generic authentication failure, so it learns nothing about the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginDenied {
    #[error("source {address} is in the {scope} deny_from list ({rule})")]
    SourceDenied {
        address: IpAddr,
        scope: RuleScope,
        rule: IpNet,
    },
    #[error("source {address} is not in the {scope} allow_from list")]
    SourceNotAllowed { address: IpAddr, scope: RuleScope },
    #[error("outside the {scope} login hours ({hours})")]
    OutsideLoginHours { scope: RuleScope, hours: Schedule },
}

/// Whether a login from `source` at `at` is allowed by both the global and the user's rules.
/// Deny lists win over allow lists; every non-empty allow list must contain the source; every
/// login-hours schedule must contain `at`.
pub fn check_login(
    global: &LoginRules,
    user: &LoginRules,
    source: IpAddr,
    at: OffsetDateTime,
) -> Result<(), LoginDenied> {
    let source = source.to_canonical();
    let scopes = [(RuleScope::Global, global), (RuleScope::User, user)];
    for (scope, rules) in scopes {
        if let Some(rule) = rules.deny_from.iter().find(|net| net.contains(&source)) {
            return Err(LoginDenied::SourceDenied {
                address: source,
                scope,
                rule: *rule,
            });
        }
    }
    for (scope, rules) in scopes {
        if !rules.allow_from.is_empty() && !rules.allow_from.iter().any(|n| n.contains(&source)) {
            return Err(LoginDenied::SourceNotAllowed {
                address: source,
                scope,
            });
        }
    }
    for (scope, rules) in scopes {
        if let Some(hours) = &rules.hours
            && !hours.contains(at)
        {
            return Err(LoginDenied::OutsideLoginHours {
                scope,
                hours: hours.clone(),
            });
        }
    }
    Ok(())
}

/// The address of the client behind an HTTP request (security test A1: forwarding headers are
/// believed only from configured proxies). `forwarded_for` holds every `X-Forwarded-For` header
/// line of the request, in order (several lines are one list, as if joined by commas, RFC 9110
/// 5.3). If `peer` is not a trusted proxy, they are ignored. Otherwise the list is walked from
/// the right, across all lines, each hop appended by the proxy before it, skipping trusted
/// proxies; the first untrusted address is the client. A malformed entry means the chain cannot
/// be followed: the peer is returned.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if forwarded_for.is_empty() || !trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for.iter().rev().flat_map(|line| line.rsplit(','));
    for entry in hops {
        let Some(hop) = parse_forwarded_entry(entry) else {
            return peer;
        };
        client = hop;
        if !trusted(&hop) {
            return hop;
        }
    }
    // Every hop is a trusted proxy: the leftmost is the closest thing to a client there is.
    client
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (`192.0.2.1:5000`,
/// `[2001:db8::1]:5000`), as some proxies write it.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The first factor a login presents. Failed attempts are counted, and locks applied, per factor:
/// guesses of a password never lock a key login (lockout must not be a weapon against a factor
/// the guesser does not hold). A failed second factor (TOTP) counts against the first factor it
/// followed, since only someone holding that first factor can reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginFactor {
    /// A password (SSH password authentication, the web login).
    Password,
    /// An SSH key whose signature verified.
    PublicKey,
}

impl LoginFactor {
    pub const ALL: [LoginFactor; 2] = [LoginFactor::Password, LoginFactor::PublicKey];

    /// The name used in counter keys, audit events and `rampart user show`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFactor::Password => "password",
            LoginFactor::PublicKey => "publickey",
        }
    }
}

impl fmt::Display for LoginFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When failed logins lock a login factor of a user or of a source address: `threshold`
/// failures of one factor counted within `window` lock that factor for `lock_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub window: Duration,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(10 * 60),
            lock_for: Duration::from_secs(15 * 60),
        }
    }
}

impl Serialize for LockoutPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("LockoutPolicy", 3)?;
        state.serialize_field("threshold", &self.threshold)?;
        state.serialize_field("window", &format_duration(self.window))?;
        state.serialize_field("lock_for", &format_duration(self.lock_for))?;
        state.end()
    }
}

/// Everything the listeners need to admit a login, as the node is configured (`[auth]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthSettings {
    /// Every login needs a second factor: users without one enrolled cannot log in.
    pub require_mfa: bool,
    /// Rules every login must pass, before the user's own.
    pub global: LoginRules,
    pub lockout: LockoutPolicy,
    /// Proxies whose `X-Forwarded-For` header is believed (see [`client_address`]).
    #[serde(serialize_with = "serialize_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// The failed-login burst detector (`[alerts]`), counted where failures are counted; the
    /// node records it with the other detectors' settings.
    #[serde(skip)]
    pub failure_burst: Option<crate::detectors::FailureBurst>,
}

fn serialize_nets<S: Serializer>(nets: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(nets.iter().map(ToString::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use time::macros::datetime;

    const MONDAY_NOON: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn rules(allow: &str, deny: &str, hours: Option<&str>) -> LoginRules {
        LoginRules {
            allow_from: parse_cidr_list("allow_from", allow).unwrap(),
            deny_from: parse_cidr_list("deny_from", deny).unwrap(),
            hours: hours.map(|h| Schedule::parse(h).unwrap()),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A small deterministic generator (xorshift64*), so the property tests need no crate and
    /// fail the same way every run.
    struct Addresses(u64);

    impl Addresses {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// IPv4, IPv6 and IPv4-mapped IPv6 addresses, a third each.
        fn next_ip(&mut self) -> IpAddr {
            let bits = self.next_u64();
            match bits % 3 {
                0 => IpAddr::V4(Ipv4Addr::from((bits >> 32) as u32)),
                1 => IpAddr::V6(Ipv6Addr::from(
                    (u128::from(bits) << 64) | u128::from(self.next_u64()),
                )),
                _ => IpAddr::V6(Ipv4Addr::from((bits >> 32) as u32).to_ipv6_mapped()),
            }
        }

        /// A network containing `ip` (prefix chosen at random).
        fn net_around(&mut self, ip: IpAddr) -> IpNet {
            let ip = ip.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = u8::try_from(self.next_u64() % (max + 1)).unwrap();
            IpNet::new(ip, prefix).unwrap().trunc()
        }
    }

    #[test]
    fn cidr_lists_parse_and_format() {
        let nets = parse_cidr_list(
            "allow_from",
            " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,2001:db8::7,::ffff:198.51.100.0/120",
        )
        .unwrap();
        assert_eq!(
            format_cidr_list(&nets),
            "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,2001:db8::7/128,198.51.100.0/24"
        );
        assert_eq!(
            parse_cidr_list("allow_from", &format_cidr_list(&nets)).unwrap(),
            nets
        );
        assert!(parse_cidr_list("allow_from", "").unwrap().is_empty());
        assert!(parse_cidr_list("allow_from", "  ").unwrap().is_empty());
        // Duplicates collapse.
        assert_eq!(
            parse_cidr_list("deny_from", "10.0.0.1,10.0.0.1/32")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn bad_cidrs_are_refused_with_the_reason() {
        for (bad, expected) in [
            ("10.0.0.300", "invalid address \"10.0.0.300\""),
            ("10.0.0.0/33", "invalid network \"10.0.0.0/33\""),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("example.com", "invalid address"),
            (
                "10.0.0.0/8,",
                "invalid allow_from \"10.0.0.0/8,\": empty entry",
            ),
            ("10.0.0.0/8,,192.0.2.1", "empty entry"),
            ("10.0.0.0/8 192.0.2.1", "invalid network"),
            ("2001:db8::1/64", "did you mean 2001:db8::/64?"),
        ] {
            let err = parse_cidr_list("allow_from", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid "), "{bad:?}: {err}");
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
        let too_many: Vec<String> = (0..=MAX_LIST_ENTRIES)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        assert!(parse_cidr_list("deny_from", &too_many.join(",")).is_err());
    }

    #[test]
    fn deny_wins_allow_restricts_hours_limit() {
        let none = LoginRules::default();
        let office = rules(
            "10.0.0.0/8",
            "10.66.0.0/16",
            Some("Mon-Fri 08:00-18:00 UTC"),
        );
        assert_eq!(
            check_login(&none, &none, ip("203.0.113.9"), MONDAY_NOON),
            Ok(())
        );
        assert_eq!(
            check_login(&office, &none, ip("10.1.2.3"), MONDAY_NOON),
            Ok(())
        );
        assert_eq!(
            check_login(&office, &none, ip("10.66.1.1"), MONDAY_NOON),
            Err(LoginDenied::SourceDenied {
                address: ip("10.66.1.1"),
                scope: RuleScope::Global,
                rule: "10.66.0.0/16".parse().unwrap(),
            })
        );
        assert_eq!(
            check_login(&none, &office, ip("192.0.2.1"), MONDAY_NOON),
            Err(LoginDenied::SourceNotAllowed {
                address: ip("192.0.2.1"),
                scope: RuleScope::User,
            })
        );
        let saturday = datetime!(2026-06-06 12:00 UTC);
        let err = check_login(&office, &none, ip("10.1.2.3"), saturday).unwrap_err();
        assert_eq!(
            err.to_string(),
            "outside the global login hours (Mon-Fri 08:00-18:00 UTC)"
        );
        // Both allow lists apply: the user's list narrows the global one.
        let user = rules("10.1.0.0/16", "", None);
        assert!(check_login(&office, &user, ip("10.1.2.3"), MONDAY_NOON).is_ok());
        assert_eq!(
            check_login(&office, &user, ip("10.2.0.1"), MONDAY_NOON)
                .unwrap_err()
                .to_string(),
            "source 10.2.0.1 is not in the user's allow_from list"
        );
        // The user's hours apply too.
        let night_owl = rules("", "", Some("daily 22:00-06:00"));
        assert!(matches!(
            check_login(&none, &night_owl, ip("10.1.2.3"), MONDAY_NOON),
            Err(LoginDenied::OutsideLoginHours {
                scope: RuleScope::User,
                ..
            })
        ));
    }

    #[test]
    fn ipv4_mapped_sources_are_ipv4() {
        let deny = rules("", "192.0.2.0/24", None);
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        let err = check_login(&deny, &LoginRules::default(), mapped, MONDAY_NOON).unwrap_err();
        assert_eq!(
            err.to_string(),
            "source 192.0.2.9 is in the global deny_from list (192.0.2.0/24)"
        );
        let allow = rules("192.0.2.0/24", "", None);
        assert!(check_login(&allow, &LoginRules::default(), mapped, MONDAY_NOON).is_ok());
        // A rule written in the mapped form means the IPv4 network.
        let mapped_rule = rules("", "::ffff:192.0.2.0/120", None);
        assert!(
            check_login(
                &mapped_rule,
                &LoginRules::default(),
                ip("192.0.2.1"),
                MONDAY_NOON
            )
            .is_err()
        );
    }

    #[test]
    fn property_empty_rules_allow_every_address() {
        let mut addresses = Addresses(0x9e37_79b9_7f4a_7c15);
        let none = LoginRules::default();
        for _ in 0..10_000 {
            let source = addresses.next_ip();
            assert_eq!(
                check_login(&none, &none, source, MONDAY_NOON),
                Ok(()),
                "{source}"
            );
        }
    }

    #[test]
    fn property_deny_beats_allow() {
        let mut addresses = Addresses(0x0123_4567_89ab_cdef);
        for _ in 0..5_000 {
            let source = addresses.next_ip();
            let denied = addresses.net_around(source);
            let allowed = addresses.net_around(source);
            let both = LoginRules {
                allow_from: vec![allowed],
                deny_from: vec![denied],
                hours: None,
            };
            let allow_only = LoginRules {
                allow_from: vec![allowed],
                ..LoginRules::default()
            };
            let deny_only = LoginRules {
                deny_from: vec![denied],
                ..LoginRules::default()
            };
            for (global, user) in [
                (&both, &LoginRules::default()),
                (&LoginRules::default(), &both),
                (&allow_only, &deny_only),
                (&deny_only, &allow_only),
            ] {
                assert!(
                    matches!(
                        check_login(global, user, source, MONDAY_NOON),
                        Err(LoginDenied::SourceDenied { .. })
                    ),
                    "{source} allowed by {allowed} and denied by {denied}"
                );
            }
            assert_eq!(
                check_login(&allow_only, &allow_only, source, MONDAY_NOON),
                Ok(())
            );
        }
    }

    #[test]
    fn property_an_allow_list_excludes_everything_outside_it() {
        let mut addresses = Addresses(0xdead_beef_cafe_f00d);
        for _ in 0..200 {
            let allowed: Vec<IpNet> = (0..3)
                .map(|_| {
                    let ip = addresses.next_ip();
                    // Narrow enough that random addresses mostly fall outside.
                    let prefix = if ip.to_canonical().is_ipv4() { 16 } else { 48 };
                    IpNet::new(ip.to_canonical(), prefix).unwrap().trunc()
                })
                .collect();
            let list = LoginRules {
                allow_from: allowed.clone(),
                ..LoginRules::default()
            };
            for _ in 0..100 {
                let source = addresses.next_ip();
                let inside = allowed.iter().any(|n| n.contains(&source.to_canonical()));
                for (global, user) in [
                    (&list, &LoginRules::default()),
                    (&LoginRules::default(), &list),
                ] {
                    let result = check_login(global, user, source, MONDAY_NOON);
                    assert_eq!(result.is_ok(), inside, "{source} against {allowed:?}");
                    if !inside {
                        assert!(matches!(result, Err(LoginDenied::SourceNotAllowed { .. })));
                    }
                }
            }
            // Every address inside an allowed network passes.
            for net in &allowed {
                assert!(check_login(&list, &list, net.network(), MONDAY_NOON).is_ok());
                assert!(check_login(&list, &list, net.broadcast(), MONDAY_NOON).is_ok());
            }
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = parse_cidr_list("trusted_proxies", "10.0.0.0/24, 2001:db8::1").unwrap();
        let proxy = ip("10.0.0.5");
        let outsider = ip("203.0.113.66");
        // A client that is not a proxy cannot choose its address with a header.
        assert_eq!(client_address(outsider, &["192.0.2.1"], &proxies), outsider);
        assert_eq!(client_address(outsider, &[], &proxies), outsider);
        assert_eq!(client_address(proxy, &[], &proxies), proxy);
        // Through one proxy, and through a chain of proxies.
        assert_eq!(
            client_address(proxy, &["192.0.2.1"], &proxies),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(proxy, &["192.0.2.1, 10.0.0.7"], &proxies),
            ip("192.0.2.1")
        );
        // Whatever the client put on the left is ignored: the rightmost untrusted hop wins.
        assert_eq!(
            client_address(
                proxy,
                &["127.0.0.1, 10.0.0.9, 198.51.100.4, 10.0.0.7"],
                &proxies
            ),
            ip("198.51.100.4")
        );
        // Ports, IPv6 and the mapped form.
        assert_eq!(
            client_address(proxy, &["[2001:db8::99]:4711"], &proxies),
            ip("2001:db8::99")
        );
        assert_eq!(
            client_address(ip("::ffff:10.0.0.5"), &["::ffff:192.0.2.1"], &proxies),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(ip("2001:db8::1"), &["192.0.2.1:80"], &proxies),
            ip("192.0.2.1")
        );
        // Malformed entries mean the chain cannot be followed.
        for bad in [
            "",
            "unknown",
            "192.0.2.1, ",
            "192.0.2.1,,10.0.0.7",
            "_hidden",
            "1.2.3.4.5",
        ] {
            assert_eq!(client_address(proxy, &[bad], &proxies), proxy, "{bad:?}");
        }
        // Nobody trusted: headers never count.
        assert_eq!(client_address(proxy, &["192.0.2.1"], &[]), proxy);
        // Several header lines are one list: the rightmost untrusted address of the last line
        // that has one wins, whatever an earlier line says (issue 11, item 6).
        assert_eq!(
            client_address(proxy, &["192.0.2.1", "198.51.100.4"], &proxies),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_address(proxy, &["127.0.0.1", "198.51.100.4, 10.0.0.7"], &proxies),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_address(
                proxy,
                &["192.0.2.1, 198.51.100.4", "10.0.0.7", "10.0.0.8"],
                &proxies
            ),
            ip("198.51.100.4")
        );
        // A malformed line anywhere in the walk stops it, as a malformed entry does.
        assert_eq!(
            client_address(proxy, &["192.0.2.1", "bogus", "10.0.0.7"], &proxies),
            proxy
        );
        // From an untrusted peer no line counts.
        assert_eq!(
            client_address(outsider, &["192.0.2.1", "198.51.100.4"], &proxies),
            outsider
        );
        // Only proxies in the chain: the leftmost.
        assert_eq!(
            client_address(proxy, &["10.0.0.8, 10.0.0.7"], &proxies),
            ip("10.0.0.8")
        );
    }

    #[test]
    fn lockout_defaults_and_settings_serialize_as_strings() {
        let settings = AuthSettings {
            require_mfa: false,
            global: rules("10.0.0.0/8", "", Some("Mon-Fri 08:00-18:00 Europe/Berlin")),
            lockout: LockoutPolicy::default(),
            trusted_proxies: parse_cidr_list("trusted_proxies", "10.0.0.1").unwrap(),
            failure_burst: None,
        };
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            serde_json::json!({
                "global": {
                    "allow_from": ["10.0.0.0/8"],
                    "deny_from": [],
                    "hours": "Mon-Fri 08:00-18:00 Europe/Berlin",
                },
                "lockout": { "threshold": 5, "window": "10m", "lock_for": "15m" },
                "trusted_proxies": ["10.0.0.1/32"],
                "require_mfa": false,
            })
        );
        assert!(LoginRules::default().is_empty());
        assert!(!settings.global.is_empty());
    }
}
