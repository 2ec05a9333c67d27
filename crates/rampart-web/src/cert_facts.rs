//! What `/metrics` and `rampart doctor` need to know about the HTTPS certificate: when it
//! expires and whether it is self-signed (issuer = subject).
//!
//! A small DER reader over the few fields needed, rather than an X.509 crate: those fields sit
//! at fixed places of the `TBSCertificate` (RFC 5280, 4.1), and a full parser would add several
//! crates to the build for two values. Every read is bounds-checked; anything unexpected is
//! `None`, never a panic.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// Facts about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// `notAfter`, in seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// Issuer and subject are the same name.
    pub self_signed: bool,
}

/// The facts of the first (leaf) certificate in a PEM file; `None` if it has none or it does
/// not parse.
pub fn leaf_of_pem_file(path: &Path) -> Option<CertFacts> {
    let pem = std::fs::read(path).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    facts(leaf.as_ref())
}

/// The facts of one DER certificate.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let (certificate, _) = element(der, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    if rest.first() == Some(&0xa0) {
        rest = element(rest, 0xa0)?.1;
    }
    let (_serial, after_serial) = element(rest, 0x02)?;
    let (_signature, after_algorithm) = element(after_serial, 0x30)?;
    let (issuer, after_issuer) = element(after_algorithm, 0x30)?;
    let (validity, after_validity) = element(after_issuer, 0x30)?;
    let (subject, _) = element(after_validity, 0x30)?;
    let (_not_before, after_not_before) = any_element(validity)?;
    let (tag, not_after, _) = any_element_with_tag(after_not_before)?;
    Some(CertFacts {
        not_after_unix: time_value(tag, not_after)?,
        self_signed: issuer == subject,
    })
}

/// One element with `tag` at the start of `input`: its contents and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = any_element_with_tag(input)?;
    (found == tag).then_some((contents, rest))
}

fn any_element(input: &[u8]) -> Option<(&[u8], &[u8])> {
    any_element_with_tag(input).map(|(_, contents, rest)| (contents, rest))
}

fn any_element_with_tag(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for byte in input.get(2..2 + count)? {
            length = (length << 8) | usize::from(*byte);
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time_value(tag: u8, contents: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(contents).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let short: i32 = digits.get(..2)?.parse().ok()?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                digits.get(2..)?,
            )
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |range: std::ops::Range<usize>| -> Option<u8> { rest.get(range)?.parse().ok() };
    if rest.len() != 10 {
        return None;
    }
    let month = time::Month::try_from(field(0..2)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(2..4)?).ok()?;
    let at = date
        .with_hms(field(4..6)?, field(6..8)?, field(8..10)?)
        .ok()?
        .assume_utc();
    Some(at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_reads_as_self_signed_with_its_expiry() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap(); // 2100
        let cert = params.self_signed(&key).unwrap();
        let facts = facts(cert.der()).unwrap();
        assert_eq!(facts.not_after_unix, 4_102_444_800);
        assert!(facts.self_signed);

        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(); // 2030, UTCTime
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(facts_of(cert.der()).not_after_unix, 1_900_000_000);
    }

    fn facts_of(der: &[u8]) -> CertFacts {
        facts(der).unwrap()
    }

    #[test]
    fn a_certificate_issued_by_another_is_not_self_signed() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["rampart.example".to_owned()]).unwrap();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        assert!(!facts_of(leaf.der()).self_signed);
        assert!(facts_of(ca.der()).self_signed);
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
        ] {
            assert_eq!(facts(bytes), None);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let der = rcgen::CertificateParams::new(vec!["x".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec();
        for cut in 0..der.len() {
            assert_eq!(facts(&der[..cut]), None, "cut at {cut}");
        }
    }
}
