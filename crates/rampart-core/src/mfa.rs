//! The TOTP second factor (RFC 6238): the six-digit code an authenticator app shows, checked
//! against the secret the app shares with Rampart.
//!
//! Fixed to what every authenticator app supports: HMAC-SHA-1, 6 digits, 30-second steps. Pure:
//! the caller passes the time and the secret. Remembering the last accepted step, so that a code
//! is accepted only once, is the store's job.

use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// Seconds per time step: a code changes this often.
pub const STEP_SECONDS: u64 = 30;
/// Digits in a code.
pub const DIGITS: u8 = 6;
/// Length of the secrets Rampart generates: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// The shortest secret accepted: 128 bits, RFC 4226's minimum.
pub const MIN_SECRET_BYTES: usize = 16;
/// The longest secret accepted (a bound, not a recommendation: HMAC-SHA-1 hashes longer keys).
pub const MAX_SECRET_BYTES: usize = 64;
/// Steps accepted either side of the current one, for phone clocks that drift
/// (RFC 6238 section 5.2 recommends one).
const SKEW_STEPS: u16 = 1;

fn totp(secret: &[u8]) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::from(secret))
        // The length rule is enforced where secrets are stored; HMAC itself takes any key, and
        // the digits and step above are valid, so this never panics.
        .build_noncompliant()
}

/// The time step `at_unix` falls in.
pub fn step_at(at_unix: u64) -> u64 {
    at_unix / STEP_SECONDS
}

/// The code an authenticator app holding `secret` shows at `at_unix` (seconds since 1970).
pub fn code_at(secret: &[u8], at_unix: u64) -> String {
    totp(secret).generate(at_unix).to_string()
}

/// Checks `code` against `secret` at `at_unix`, accepting the current step and one either side.
/// Returns the matched step, which the caller must accept only once (later steps only); `None`
/// for a wrong code or anything that is not exactly six ASCII digits.
pub fn verify(secret: &[u8], code: &str, at_unix: u64) -> Option<u64> {
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Compares codes in constant time.
    totp(secret).check(code, at_unix)
}

/// The `otpauth://` URI authenticator apps read from a QR code (Google Authenticator's key URI
/// format). It contains the secret: show it once, at enrolment, and never store or log it.
pub fn otpauth_uri(secret: &[u8], account: &str, issuer: &str) -> String {
    let encoded = Zeroizing::new(Secret::from(secret).to_base32());
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1\
         &digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = encoded.as_str(),
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_vectors_truncated_to_six_digits() {
        // (time, the RFC's 8-digit TOTP): six digits are the same value modulo 10^6.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (at, eight) in vectors {
            let six = &eight[2..];
            assert_eq!(code_at(RFC_SECRET, at), six, "at {at}");
            assert_eq!(verify(RFC_SECRET, six, at), Some(at / 30), "at {at}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let at: u64 = 1_234_567_890;
        let step = step_at(at);
        for (offset, accepted) in [
            (-60, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let code_time = at.checked_add_signed(offset).unwrap();
            let code = code_at(RFC_SECRET, code_time);
            let expected = accepted.then(|| step_at(code_time));
            assert_eq!(
                verify(RFC_SECRET, &code, at),
                expected,
                "code from {offset} s away"
            );
        }
        // The matched step is the code's own, not the verifier's.
        let previous = code_at(RFC_SECRET, at - 30);
        assert_eq!(verify(RFC_SECRET, &previous, at), Some(step - 1));
        // Near the epoch the window is cut, not wrapped.
        assert_eq!(verify(RFC_SECRET, &code_at(RFC_SECRET, 0), 0), Some(0));
    }

    #[test]
    fn anything_but_six_ascii_digits_is_rejected() {
        let at = 59;
        assert_eq!(verify(RFC_SECRET, "287082", at), Some(1));
        for bad in [
            "",
            "28708",
            "2870820",
            " 287082",
            "287082 ",
            "287 082",
            "+28708",
            "-28708",
            "28708a",
            "28708\n",
            "２８７０８２",
            "0x1234",
        ] {
            assert_eq!(verify(RFC_SECRET, bad, at), None, "{bad:?}");
        }
        // Another secret's code does not match.
        assert_eq!(verify(b"another secret of 20b", "287082", at), None);
    }

    #[test]
    fn otpauth_uri_has_the_base32_secret_and_the_fixed_parameters() {
        assert_eq!(
            otpauth_uri(RFC_SECRET, "alice", "Rampart"),
            "otpauth://totp/Rampart:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Rampart&algorithm=SHA1&digits=6&period=30"
        );
        let uri = otpauth_uri(RFC_SECRET, "a b@c", "Acme Corp");
        assert!(
            uri.starts_with("otpauth://totp/Acme%20Corp:a%20b%40c?"),
            "{uri}"
        );
        assert!(uri.contains("&issuer=Acme%20Corp&"), "{uri}");
    }
}
