//! Times typed by people: RFC 3339 only, so a time zone is never guessed.

use crate::name::InvalidInput;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 time such as `2026-12-31T18:00:00Z` or `2026-12-31T18:00:00+01:00`.
pub fn parse_rfc3339(what: &str, text: &str) -> Result<OffsetDateTime, InvalidInput> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        InvalidInput::new(format!(
            "invalid {what} {text:?}: expected an RFC 3339 time such as 2026-12-31T18:00:00Z"
        ))
    })
}

/// Formats a time as RFC 3339 in UTC, the form Rampart prints and stores.
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
