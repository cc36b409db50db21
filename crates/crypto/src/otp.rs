//! HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! Verification returns the matched counter / time step so the caller can store it and
//! refuse any code at or below it (a code is accepted once, ever).

use hmac::{Hmac, Mac};
use latchkey_proto::OtpAlgorithm;

/// Accepted digit counts. 6 and 8 are what authenticator apps support; 7 is legal RFC 4226.
pub const DIGITS_RANGE: std::ops::RangeInclusive<u32> = 6..=8;

fn hmac_digest(alg: OtpAlgorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    // `new_from_slice` accepts keys of any length for HMAC; the error arm cannot occur but
    // we still return an empty digest (which never matches a code) instead of panicking.
    match alg {
        OtpAlgorithm::Sha1 => Hmac::<sha1::Sha1>::new_from_slice(key)
            .map(|mut m| {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
        OtpAlgorithm::Sha256 => Hmac::<sha2::Sha256>::new_from_slice(key)
            .map(|mut m| {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
        OtpAlgorithm::Sha512 => Hmac::<sha2::Sha512>::new_from_slice(key)
            .map(|mut m| {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
    }
}

/// HOTP value for `counter`, as a zero-padded decimal string of `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, alg: OtpAlgorithm, digits: u32) -> String {
    let digest = hmac_digest(alg, secret, &counter.to_be_bytes());
    if digest.len() < 20 {
        return String::new();
    }
    // RFC 4226 §5.3 dynamic truncation.
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    let digits = digits.clamp(1, 9);
    let modulus = 10u32.pow(digits);
    format!("{:0width$}", bin % modulus, width = digits as usize)
}

/// The TOTP time step containing `unix_time`.
pub fn totp_step(unix_time: u64, period: u32) -> u64 {
    unix_time / u64::from(period.max(1))
}

/// TOTP value at `unix_time`.
pub fn totp(secret: &[u8], unix_time: u64, period: u32, alg: OtpAlgorithm, digits: u32) -> String {
    hotp(secret, totp_step(unix_time, period), alg, digits)
}

/// Parameters of one OATH token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpParams {
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    /// TOTP period in seconds (ignored for HOTP).
    pub period: u32,
}

/// Normalises what a person typed: spaces and dashes removed. Anything else non-digit makes
/// the code invalid.
pub fn normalize_code(code: &str) -> Option<String> {
    let cleaned: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if cleaned.is_empty() || cleaned.len() > 10 || !cleaned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(cleaned)
}

fn code_matches(expected: &str, given: &str) -> bool {
    crate::ct_eq(expected.as_bytes(), given.as_bytes())
}

/// Verifies a TOTP code at `now` with `window` steps of drift allowed on each side.
/// Steps at or below `last_step` (already used) are never accepted. Every candidate step is
/// computed and compared so timing does not reveal which step matched.
pub fn verify_totp(
    secret: &[u8],
    code: &str,
    now: u64,
    params: OtpParams,
    window: u32,
    last_step: Option<u64>,
) -> Option<u64> {
    let code = normalize_code(code)?;
    if code.len() != params.digits as usize {
        return None;
    }
    let current = totp_step(now, params.period);
    let lo = current.saturating_sub(u64::from(window));
    let hi = current.saturating_add(u64::from(window));
    let mut matched = None;
    for step in lo..=hi {
        let ok = code_matches(&hotp(secret, step, params.algorithm, params.digits), &code);
        let fresh = last_step.is_none_or(|last| step > last);
        if ok && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// Verifies an HOTP code. `next` is the first counter not yet used; counters
/// `next..=next+look_ahead` are tried. Returns the matched counter (store `matched + 1`).
pub fn verify_hotp(
    secret: &[u8],
    code: &str,
    next: u64,
    look_ahead: u32,
    params: OtpParams,
) -> Option<u64> {
    let code = normalize_code(code)?;
    if code.len() != params.digits as usize {
        return None;
    }
    let mut matched = None;
    for counter in next..=next.saturating_add(u64::from(look_ahead)) {
        let ok = code_matches(
            &hotp(secret, counter, params.algorithm, params.digits),
            &code,
        );
        if ok && matched.is_none() {
            matched = Some(counter);
        }
    }
    matched
}

/// HOTP resynchronisation (RFC 4226 §7.4): two consecutive codes searched in a wide window.
/// Returns the counter of the second code.
pub fn resync_hotp(
    secret: &[u8],
    first: &str,
    second: &str,
    next: u64,
    window: u32,
    params: OtpParams,
) -> Option<u64> {
    let first = normalize_code(first)?;
    let second = normalize_code(second)?;
    let mut found = None;
    for counter in next..next.saturating_add(u64::from(window)) {
        let a = code_matches(
            &hotp(secret, counter, params.algorithm, params.digits),
            &first,
        );
        if a && found.is_none() {
            let b = code_matches(
                &hotp(secret, counter + 1, params.algorithm, params.digits),
                &second,
            );
            if b {
                found = Some(counter + 1);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, OtpAlgorithm::Sha1, 6),
                *want
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = RFC_SECRET;
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, s1, s256, s512) in table {
            assert_eq!(totp(sha1, t, 30, OtpAlgorithm::Sha1, 8), s1, "sha1 t={t}");
            assert_eq!(
                totp(sha256, t, 30, OtpAlgorithm::Sha256, 8),
                s256,
                "sha256 t={t}"
            );
            assert_eq!(
                totp(sha512, t, 30, OtpAlgorithm::Sha512, 8),
                s512,
                "sha512 t={t}"
            );
        }
    }

    fn p6() -> OtpParams {
        OtpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }

    #[test]
    fn totp_window_and_replay() {
        let now = 1_700_000_000;
        let step = totp_step(now, 30);
        let code_prev = hotp(RFC_SECRET, step - 1, OtpAlgorithm::Sha1, 6);
        let code_now = hotp(RFC_SECRET, step, OtpAlgorithm::Sha1, 6);
        let code_far = hotp(RFC_SECRET, step - 3, OtpAlgorithm::Sha1, 6);
        assert_eq!(
            verify_totp(RFC_SECRET, &code_now, now, p6(), 1, None),
            Some(step)
        );
        assert_eq!(
            verify_totp(RFC_SECRET, &code_prev, now, p6(), 1, None),
            Some(step - 1)
        );
        assert_eq!(verify_totp(RFC_SECRET, &code_far, now, p6(), 1, None), None);
        // Used step and anything older is refused.
        assert_eq!(
            verify_totp(RFC_SECRET, &code_now, now, p6(), 1, Some(step)),
            None
        );
        assert_eq!(
            verify_totp(RFC_SECRET, &code_prev, now, p6(), 1, Some(step)),
            None
        );
        // Wrong length or junk.
        assert_eq!(verify_totp(RFC_SECRET, "12345", now, p6(), 1, None), None);
        assert_eq!(verify_totp(RFC_SECRET, "12a456", now, p6(), 1, None), None);
        let spaced = format!("{} {}", &code_now[..3], &code_now[3..]);
        assert_eq!(
            verify_totp(RFC_SECRET, &spaced, now, p6(), 1, None),
            Some(step)
        );
    }

    #[test]
    fn hotp_look_ahead_and_resync() {
        let c5 = hotp(RFC_SECRET, 5, OtpAlgorithm::Sha1, 6);
        assert_eq!(verify_hotp(RFC_SECRET, &c5, 3, 5, p6()), Some(5));
        assert_eq!(
            verify_hotp(RFC_SECRET, &c5, 6, 5, p6()),
            None,
            "already used counter"
        );
        assert_eq!(
            verify_hotp(RFC_SECRET, &c5, 0, 2, p6()),
            None,
            "beyond look-ahead"
        );
        let c40 = hotp(RFC_SECRET, 40, OtpAlgorithm::Sha1, 6);
        let c41 = hotp(RFC_SECRET, 41, OtpAlgorithm::Sha1, 6);
        assert_eq!(resync_hotp(RFC_SECRET, &c40, &c41, 0, 100, p6()), Some(41));
        assert_eq!(resync_hotp(RFC_SECRET, &c41, &c40, 0, 100, p6()), None);
    }
}
