//! Weekly time windows in a named time zone: when a grant applies, when a user may log in.
//!
//! Written as people say it: `Mon-Fri 08:00-18:00 Europe/Berlin`, several windows separated by
//! commas (`Mon-Fri 08:00-18:00, Sat 09:00-12:00 Europe/Berlin`). The zone comes last and
//! defaults to UTC; daylight saving follows the zone's rules (jiff, with the IANA database
//! bundled so a machine without tzdata decides the same). A window whose end is not after its
//! start runs past midnight: `Mon-Fri 22:00-06:00` covers Monday night until Tuesday 06:00.

use crate::name::InvalidInput;
use jiff::tz::TimeZone;
use serde::{Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A set of weekly windows in one time zone.
#[derive(Clone)]
pub struct Schedule {
    windows: Vec<Window>,
    zone: TimeZone,
    zone_name: String,
}

/// Some days of the week, from one time of day to another (minutes since midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Monday first.
    days: [bool; 7],
    start: u16,
    end: u16,
}

impl Window {
    fn overnight(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the window covers `minute` of the day `day` (0 = Monday).
    fn covers(&self, day: usize, minute: u16) -> bool {
        let on = |d: usize| self.days.get(d).copied().unwrap_or(false);
        if self.overnight() {
            (on(day) && minute >= self.start) || (on((day + 6) % 7) && minute < self.end)
        } else {
            on(day) && (self.start..self.end).contains(&minute)
        }
    }
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let invalid = |why: &str| {
            InvalidInput::new(format!(
                "invalid schedule {text:?}: {why} (expected for example \"Mon-Fri 08:00-18:00 Europe/Berlin\")"
            ))
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > 512 {
            return Err(invalid("empty or too long"));
        }
        // The zone is the last word when it is a name (IANA names start with a letter), not a
        // time range such as `08:00-18:00` or a mistyped `8-18`.
        let (body, zone_name) = match trimmed.rsplit_once(' ') {
            Some((body, last)) if last.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                (body.trim(), last)
            }
            _ => (trimmed, "UTC"),
        };
        let zone = TimeZone::get(zone_name)
            .map_err(|_| invalid(&format!("unknown time zone {zone_name:?}")))?;
        let mut windows = Vec::new();
        for part in body.split(',') {
            let (days, hours) = part
                .trim()
                .split_once(' ')
                .ok_or_else(|| invalid("each window is DAYS HH:MM-HH:MM"))?;
            let days = parse_days(days).ok_or_else(|| invalid(&format!("bad days {days:?}")))?;
            let (start, end) = hours
                .trim()
                .split_once('-')
                .ok_or_else(|| invalid(&format!("bad hours {hours:?}")))?;
            let bad_time = |time: &str| {
                invalid(&format!(
                    "bad time {time:?}: times are HH:MM on a 24-hour clock, such as 08:00-18:00"
                ))
            };
            let start = parse_minute(start, false).ok_or_else(|| bad_time(start))?;
            let end = parse_minute(end, true).ok_or_else(|| bad_time(end))?;
            if start == end {
                return Err(invalid("a window cannot start and end at the same time"));
            }
            windows.push(Window { days, start, end });
        }
        Ok(Self {
            windows,
            zone,
            zone_name: zone_name.to_owned(),
        })
    }

    /// Whether `at` falls in one of the windows.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        let Ok(timestamp) = jiff::Timestamp::from_second(at.unix_timestamp()) else {
            return false;
        };
        let local = self.zone.to_datetime(timestamp);
        let day = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        self.windows.iter().any(|w| w.covers(day, minute))
    }

    /// The earliest instant after `at` at which [`Self::contains`] may answer differently: the
    /// start of the next minute on the zone's clock, or the zone's next change of offset if that
    /// comes first (windows are whole minutes of local time, so nothing changes in between).
    pub fn unchanged_before(&self, at: OffsetDateTime) -> OffsetDateTime {
        let second = at.unix_timestamp();
        let Ok(timestamp) = jiff::Timestamp::from_second(second) else {
            return at + time::Duration::SECOND;
        };
        let local_second = i64::from(self.zone.to_datetime(timestamp).second());
        let next_minute = second + (60 - local_second);
        let next_offset = self
            .zone
            .following(timestamp)
            .next()
            .map(|transition| transition.timestamp().as_second())
            .unwrap_or(i64::MAX);
        OffsetDateTime::from_unix_timestamp(next_minute.min(next_offset))
            .unwrap_or(at + time::Duration::SECOND)
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }
}

/// `Mon`, `Mon-Fri`, `Sat+Sun`, `Fri-Mon` (wrapping), or `daily`.
fn parse_days(text: &str) -> Option<[bool; 7]> {
    let index = |name: &str| DAYS.iter().position(|d| d.eq_ignore_ascii_case(name));
    let mut days = [false; 7];
    if text.eq_ignore_ascii_case("daily") {
        return Some([true; 7]);
    }
    for part in text.split('+') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (index(from)?, index(to)?);
                let mut day = from;
                loop {
                    *days.get_mut(day)? = true;
                    if day == to {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => *days.get_mut(index(part)?)? = true,
        }
    }
    Some(days)
}

/// `HH:MM` as minutes since midnight; `24:00` only as an end.
fn parse_minute(text: &str, is_end: bool) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    let fits = minutes < 60 && (total < MINUTES_PER_DAY || (is_end && total == MINUTES_PER_DAY));
    fits.then_some(total)
}

fn format_days(days: &[bool; 7]) -> String {
    if days.iter().all(|d| *d) {
        return "daily".into();
    }
    // Runs of consecutive days, Monday first.
    let mut parts = Vec::new();
    let mut day = 0;
    while day < 7 {
        if !days.get(day).copied().unwrap_or(false) {
            day += 1;
            continue;
        }
        let start = day;
        while days.get(day + 1).copied().unwrap_or(false) {
            day += 1;
        }
        let name = |d: usize| DAYS.get(d).copied().unwrap_or("?");
        parts.push(if start == day {
            name(start).to_owned()
        } else {
            format!("{}-{}", name(start), name(day))
        });
        day += 1;
    }
    parts.join("+")
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let windows: Vec<String> = self
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{} {:02}:{:02}-{:02}:{:02}",
                    format_days(&w.days),
                    w.start / 60,
                    w.start % 60,
                    w.end / 60,
                    w.end % 60
                )
            })
            .collect();
        write!(f, "{} {}", windows.join(", "), self.zone_name)
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.windows == other.windows && self.zone_name == other.zone_name
    }
}

impl Eq for Schedule {}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn office_hours_in_berlin() {
        let office = Schedule::parse("Mon-Fri 08:00-18:00 Europe/Berlin").unwrap();
        // Monday 2026-06-01: Berlin is UTC+2 in summer.
        assert!(!office.contains(datetime!(2026-06-01 05:59 UTC)));
        assert!(office.contains(datetime!(2026-06-01 06:00 UTC)));
        assert!(office.contains(datetime!(2026-06-01 15:59 UTC)));
        assert!(!office.contains(datetime!(2026-06-01 16:00 UTC)));
        // In winter UTC+1.
        assert!(!office.contains(datetime!(2026-12-07 06:30 UTC)));
        assert!(office.contains(datetime!(2026-12-07 07:00 UTC)));
        // Saturday.
        assert!(!office.contains(datetime!(2026-06-06 10:00 UTC)));
        assert_eq!(office.to_string(), "Mon-Fri 08:00-18:00 Europe/Berlin");
    }

    /// Between now and the instant it names, the schedule answers as it does now, whatever the
    /// zone (whole-hour, half-hour, daylight saving) and however far into a minute `at` is.
    #[test]
    fn nothing_changes_before_the_instant_unchanged_before_names() {
        for text in [
            "Mon-Fri 08:00-18:00 Europe/Berlin",
            "Fri 22:00-06:00, Sat+Sun 10:00-24:00",
            "daily 09:30-09:31 Asia/Kolkata",
            "Sun 01:59-03:01 America/New_York",
        ] {
            let schedule = Schedule::parse(text).unwrap();
            // Every 37 seconds across a week with a daylight saving change (2026-03-08 in New
            // York, 2026-03-29 in Berlin: both weeks are walked), probing every 5 seconds.
            for start in [
                datetime!(2026-03-06 00:00:03 UTC),
                datetime!(2026-03-27 00:00:05 UTC),
            ] {
                let mut at = start;
                let mut changes = 0;
                while at < start + time::Duration::days(7) {
                    let until = schedule.unchanged_before(at);
                    assert!(until > at, "{text} at {at}: {until}");
                    assert!(
                        until - at <= time::Duration::MINUTE,
                        "{text} at {at}: {until}"
                    );
                    let now = schedule.contains(at);
                    let mut probe = at;
                    while probe < until {
                        assert_eq!(schedule.contains(probe), now, "{text}: {at} to {probe}");
                        probe += time::Duration::seconds(5);
                    }
                    let last = until - time::Duration::SECOND;
                    assert_eq!(
                        schedule.contains(last.max(at)),
                        now,
                        "{text}: {at} to {last}"
                    );
                    if schedule.contains(until) != now {
                        changes += 1;
                    }
                    at += time::Duration::seconds(37);
                }
                assert!(changes > 0, "{text}: the walk saw no window open or close");
            }
        }
        // A timestamp with a fraction: the next minute starts at the whole second.
        let utc = Schedule::parse("daily 00:00-12:00").unwrap();
        let at = datetime!(2026-06-01 11:59:30.5 UTC);
        assert_eq!(utc.unchanged_before(at), datetime!(2026-06-01 12:00 UTC));
        assert!(!utc.contains(utc.unchanged_before(at)));
    }

    #[test]
    fn overnight_windows_and_several_parts() {
        let night = Schedule::parse("Fri 22:00-06:00, Sat+Sun 10:00-24:00").unwrap();
        assert_eq!(night.zone_name(), "UTC");
        assert!(night.contains(datetime!(2026-06-05 23:00 UTC))); // Friday night
        assert!(night.contains(datetime!(2026-06-06 05:59 UTC))); // Saturday morning
        assert!(!night.contains(datetime!(2026-06-06 06:00 UTC)));
        assert!(night.contains(datetime!(2026-06-07 23:59 UTC))); // Sunday
        assert!(!night.contains(datetime!(2026-06-04 23:00 UTC))); // Thursday
        assert_eq!(
            night.to_string(),
            "Fri 22:00-06:00, Sat-Sun 10:00-24:00 UTC"
        );
        let round_trip = Schedule::parse(&night.to_string()).unwrap();
        assert_eq!(round_trip, night);
        assert!(
            Schedule::parse("daily 00:00-24:00")
                .unwrap()
                .contains(datetime!(2026-06-03 12:00 UTC))
        );
        assert!(
            Schedule::parse("Sat-Mon 09:00-10:00")
                .unwrap()
                .contains(datetime!(2026-06-01 09:30 UTC))
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in [
            "",
            "Mon-Fri",
            "Mon-Fri 8:00-18:00",
            "Mon-Fri 08:00-25:00",
            "Mon-Fri 08:00-08:00",
            "Moon 08:00-18:00",
            "Mon-Fri 08:00-18:00 Mars/Olympus",
            "Mon-Fri 24:00-08:00",
            "Mon-Fri 08:60-09:00",
            "Mon-Fri 08:00",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
