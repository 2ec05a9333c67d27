//! Times typed by people: RFC 3339 only, so a time zone is never guessed.

use crate::name::InvalidInput;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 time such as `2026-12-31T18:00:00Z` or `2026-12-31T18:00:00+01:00`.
pub fn parse_rfc3339(what: &str, text: &str) -> Result<OffsetDateTime, InvalidInput> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        InvalidInput::new(format!(
            "invalid {what} {text:?}: expected an RFC 3339 time such as 2026-12-31T18:00:00Z \
             or 2026-12-31T18:00:00+01:00"
        ))
    })
}

/// What a bare date means where a time is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEdge {
    /// The start of the day (`--from`, `--since`, `--at`).
    Start,
    /// The end of the day: the next midnight, since Rampart's end bounds are exclusive
    /// (`--until 2026-12-31` includes all of December 31).
    End,
}

/// Parses an RFC 3339 time, or a date `YYYY-MM-DD` in UTC meaning the `edge` of that day.
pub fn parse_time_or_date(
    what: &str,
    text: &str,
    edge: DayEdge,
) -> Result<OffsetDateTime, InvalidInput> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let invalid = || {
        InvalidInput::new(format!(
            "invalid {what} {text:?}: expected an RFC 3339 time such as 2026-12-31T18:00:00Z \
             or 2026-12-31T18:00:00+01:00, or a date such as 2026-12-31 (UTC; {})",
            match edge {
                DayEdge::Start => "from the start of that day",
                DayEdge::End => "to the end of that day",
            }
        ))
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).map_err(|_| invalid())?;
    let start = date.midnight().assume_utc();
    match edge {
        DayEdge::Start => Ok(start),
        DayEdge::End => start.checked_add(time::Duration::DAY).ok_or_else(invalid),
    }
}

/// Formats a time as RFC 3339 in UTC, the form Rampart prints and stores.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses a duration typed by a person: `90s`, `15m`, `8h`, `1h30m`, `2d`.
pub fn parse_duration(what: &str, text: &str) -> Result<std::time::Duration, InvalidInput> {
    let invalid = || {
        InvalidInput::new(format!(
            "invalid {what} {text:?}: expected a duration such as 30s, 15m, 8h or 1h30m"
        ))
    };
    let mut seconds: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let value: u64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        seconds = value
            .checked_mul(unit)
            .and_then(|v| seconds.checked_add(v))
            .ok_or_else(invalid)?;
    }
    // At most a year: anything longer is a typo.
    if !number.is_empty() || seconds == 0 || seconds > 366 * 86_400 {
        return Err(invalid());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(duration: std::time::Duration) -> String {
    let mut left = duration.as_secs();
    let mut text = String::new();
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if left >= unit {
            text.push_str(&format!("{}{name}", left / unit));
            left %= unit;
        }
    }
    if text.is_empty() { "0s".into() } else { text }
}

/// Serializes an optional duration as [`format_duration`] text (`"15m"`) or null.
pub mod duration_text {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&super::format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, seconds) in [("30s", 30), ("15m", 900), ("1h30m", 5400), ("2d", 172_800)] {
            let parsed = parse_duration("timeout", text).unwrap();
            assert_eq!(parsed.as_secs(), seconds, "{text}");
            assert_eq!(format_duration(parsed), text);
        }
        for bad in [
            "",
            "15",
            "m",
            "0s",
            "15x",
            "-5m",
            "400d",
            "99999999999999999999h",
        ] {
            assert!(parse_duration("timeout", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_and_formats_in_utc() {
        let at = parse_rfc3339("time", "2026-12-31T19:00:00+01:00").unwrap();
        assert_eq!(format_rfc3339(at), "2026-12-31T18:00:00Z");
        for bad in [
            "2026-12-31",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-12-31T18:00:00",
        ] {
            assert!(parse_rfc3339("time", bad).is_err(), "{bad:?}");
        }
    }
}
