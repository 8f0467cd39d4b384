//! SPEC 2.1: the formats of single input values.
//!
//! Every parser is total: it returns the typed value or a [`ValueError`] that says
//! what was expected. None trims, none guesses, none panics.

use std::net::IpAddr;

use rust_decimal::Decimal;

use crate::limits::{MAX_GPU_COUNT, MAX_ID_LEN};

/// Fixed scale of decimals as they travel between stages: an input decimal has at most
/// 9 places and 12 integer digits, so `value * 10^9` is an exact integer below 10^21.
pub const DEC_SCALE: u32 = 9;
/// Largest integer part of an input decimal, in digits.
pub const DEC_INT_DIGITS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "expected an identifier: 1 to 128 characters, first [A-Za-z0-9], then [A-Za-z0-9._:-]"
    )]
    Identifier,
    #[error(
        "expected a timestamp: RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction]` with `Z` or `±HH:MM`, \
         or Unix seconds as 1 to 11 digits"
    )]
    Timestamp,
    #[error(
        "expected a plain non-negative decimal: at most 12 digits before the point and 9 after, \
         no sign, exponent or separators"
    )]
    Decimal,
    #[error("expected an integer from 1 to 64")]
    GpuCount,
    #[error("expected an IPv4 or IPv6 address (no zone id)")]
    Ip,
    #[error("expected `reinstate` or `exclude`")]
    Action,
    #[error("expected a value, found a null")]
    Null,
}

/// SPEC 2.1 identifiers: compared byte for byte afterwards.
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

pub fn parse_identifier(s: &str) -> Result<&str, ValueError> {
    if is_identifier(s) {
        Ok(s)
    } else {
        Err(ValueError::Identifier)
    }
}

/// SPEC 2.1 timestamps, as Unix seconds (UTC). Fractions are floored.
pub fn parse_timestamp(s: &str) -> Result<i64, ValueError> {
    parse_timestamp_bytes(s.as_bytes())
}

/// [`parse_timestamp`] of raw bytes, as they come out of a CSV file: bytes that are not
/// UTF-8 are not a timestamp either, so no UTF-8 check is needed first.
pub fn parse_timestamp_bytes(b: &[u8]) -> Result<i64, ValueError> {
    if !b.is_empty() && b.len() <= 11 && b.iter().all(u8::is_ascii_digit) {
        return Ok(digits(b).ok_or(ValueError::Timestamp)? as i64);
    }
    parse_rfc3339(b).ok_or(ValueError::Timestamp)
}

/// The RFC 3339 subset of SPEC 2.1, shared with `epoch.toml`.
pub fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS is 19 bytes; the shortest complete form adds `Z`.
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let first = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == first {
            return None;
        }
    }
    let offset: i64 = match *b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let o = b.get(i + 1..i + 6)?;
            if o[2] != b':' {
                return None;
            }
            let (oh, om) = (digits(&o[0..2])?, digits(&o[3..5])?);
            if oh > 23 || om > 59 {
                return None;
            }
            i += 6;
            let secs = (oh * 3600 + om * 60) as i64;
            if sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    if i != b.len() || !(1..=9999).contains(&year) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64)?;
    Some(days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset)
}

/// Days from 1970-01-01 to a proleptic Gregorian date, or `None` if the date does not
/// exist. Heartbeat logs hold billions of timestamps, so this is plain integer
/// arithmetic (Howard Hinnant's `days_from_civil`) instead of a general date library;
/// a test checks it against chrono for every day of years 1 to 9999.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Value of a run of ASCII digits (at most 18 of them), or `None`.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 18 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

/// SPEC 2.1 decimals, exact. Leading and trailing zeros count towards the limits.
pub fn parse_decimal(s: &str) -> Result<Decimal, ValueError> {
    parse_plain_decimal(s, DEC_INT_DIGITS, DEC_SCALE as usize).ok_or(ValueError::Decimal)
}

/// A plain non-negative decimal `D+(.D+)?` with bounded digits on each side.
pub fn parse_plain_decimal(s: &str, max_int: usize, max_frac: usize) -> Option<Decimal> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let ok = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|c| c.is_ascii_digit())
    };
    if !ok(int, max_int) || !frac.is_none_or(|f| ok(f, max_frac)) {
        return None;
    }
    let frac = frac.unwrap_or("");
    // At most 12 + 9 digits here, far below 2^96: the mantissa always fits.
    let mantissa = int
        .bytes()
        .chain(frac.bytes())
        .fold(0i128, |acc, c| acc * 10 + i128::from(c - b'0'));
    Decimal::try_from_i128_with_scale(mantissa, frac.len() as u32).ok()
}

/// A decimal as an integer at scale [`DEC_SCALE`]. `d` must have at most 9 places.
pub fn to_scaled(d: Decimal) -> i128 {
    debug_assert!(d.scale() <= DEC_SCALE);
    d.mantissa() * 10i128.pow(DEC_SCALE - d.scale())
}

/// The decimal an integer at scale [`DEC_SCALE`] stands for.
pub fn from_scaled(n: i128) -> Decimal {
    // Input decimals are below 10^21 at this scale; medians (means of two) stay below
    // 2 * 10^21 * 5 at scale 10: both far inside the 96-bit mantissa.
    Decimal::try_from_i128_with_scale(n, DEC_SCALE).expect("input decimals are bounded")
}

/// Whether a scaled integer is inside the SPEC 2.1 decimal domain.
pub fn scaled_in_domain(n: i128) -> bool {
    (0..10i128.pow(DEC_INT_DIGITS as u32 + DEC_SCALE)).contains(&n)
}

/// SPEC 3.2: the median of values sorted ascending, at scale [`DEC_SCALE`]. Odd count:
/// the middle value; even: the exact mean of the two middle values. `None` when empty.
pub fn median_of_sorted(sorted: &[i128]) -> Option<Decimal> {
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    if n % 2 == 1 {
        return Some(from_scaled(sorted[n / 2]).normalize());
    }
    let sum = sorted[n / 2 - 1] + sorted[n / 2];
    // sum / 2 at scale 9 is sum * 5 at scale 10: exact, no division.
    let mean = Decimal::try_from_i128_with_scale(sum * 5, DEC_SCALE + 1)
        .expect("input decimals are bounded");
    Some(mean.normalize())
}

/// Unix seconds as RFC 3339 UTC text, for evidence and reports.
pub fn format_ts(secs: i64) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => secs.to_string(),
    }
}

/// SPEC 2.2 `gpu_count`: ASCII digits (leading zeros allowed), value 1..=64.
pub fn parse_gpu_count(s: &str) -> Result<u32, ValueError> {
    let b = s.as_bytes();
    let significant = s.trim_start_matches('0').as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || significant.len() > 2 {
        return Err(ValueError::GpuCount);
    }
    match digits(significant).unwrap_or(0) {
        n if (1..=u64::from(MAX_GPU_COUNT)).contains(&n) => Ok(n as u32),
        _ => Err(ValueError::GpuCount),
    }
}

/// Unix seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range of
/// SPEC 2.1 timestamps, which native Parquet timestamps must respect too.
pub const MIN_TIMESTAMP: i64 = -62_135_596_800;
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// SPEC 2.2 `ip`, in canonical form: an IPv4-mapped IPv6 address is its IPv4 address.
pub fn parse_ip(s: &str) -> Result<IpAddr, ValueError> {
    let ip: IpAddr = s.parse().map_err(|_| ValueError::Ip)?;
    Ok(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// A value shown inside an error or a report: at most `max` characters, with control
/// characters escaped, so that a hostile value cannot forge lines of output.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<i64> {
        parse_timestamp(s).ok()
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts("2024-03-01T00:00:00Z"), Some(1_709_251_200));
        assert_eq!(ts("2024-03-01t00:00:00z"), Some(1_709_251_200));
        assert_eq!(ts("2024-03-01T01:30:00+01:30"), Some(1_709_251_200));
        assert_eq!(ts("2024-02-29T23:00:00-01:00"), Some(1_709_251_200));
        assert_eq!(ts("2024-03-01T00:00:00.999999999999Z"), Some(1_709_251_200));
        assert_eq!(ts("1709251200"), Some(1_709_251_200));
        assert_eq!(ts("0"), Some(0));
        assert_eq!(ts("99999999999"), Some(99_999_999_999));
        assert_eq!(ts("0001-01-01T00:00:00Z"), Some(-62_135_596_800));
        assert_eq!(ts("9999-12-31T23:59:59+23:59"), Some(253_402_214_459));
        for bad in [
            "",
            "999999999999",
            "-1",
            "+1",
            " 1",
            "1 ",
            "2024-03-01T00:00:00",
            "2024-03-01 00:00:00Z",
            "2024-03-01T00:00:60Z",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T00:00:00.Z",
            "2024-03-01T00:00:00+24:00",
            "2024-03-01T00:00:00+01:60",
            "2024-03-01T00:00:00+0100",
            "2024-03-01T00:00:00ZZ",
            "2024-3-01T00:00:00Z",
            "1e9",
            "１７０９",
        ] {
            assert_eq!(ts(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_days_agree_with_chrono_on_every_day() {
        use chrono::NaiveDate;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for year in 1..=9999i64 {
            for month in 0..=13i64 {
                for day in 0..=32i64 {
                    let ours = days_from_civil(year, month, day);
                    let chrono = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)
                        .map(|d| (d - epoch).num_days());
                    assert_eq!(ours, chrono, "{year}-{month}-{day}");
                }
            }
        }
    }

    #[test]
    fn decimals() {
        let d = |s: &str| parse_decimal(s).ok().map(|d| d.to_string());
        assert_eq!(d("0"), Some("0".into()));
        assert_eq!(d("500.000"), Some("500.000".into()));
        assert_eq!(d("000000000001.000000001"), Some("1.000000001".into()));
        assert_eq!(
            d("999999999999.999999999"),
            Some("999999999999.999999999".into())
        );
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "+1",
            "1e3",
            "1,000",
            "NaN",
            "inf",
            " 1",
            "1 ",
            "1234567890123",
            "1.1234567890",
            "0x10",
        ] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn medians_are_exact() {
        let s = |v: &[i128]| median_of_sorted(v).map(|d| d.to_string());
        assert_eq!(s(&[]), None);
        assert_eq!(s(&[3_000_000_000]), Some("3".into()));
        assert_eq!(s(&[1, 2]), Some("0.0000000015".into()));
        assert_eq!(
            s(&[9, 1_000_000_000, 2_000_000_000, 4_000_000_000]),
            Some("1.5".into())
        );
    }

    #[test]
    fn identifiers_and_counts_and_ips() {
        assert!(is_identifier(
            "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
        ));
        assert!(is_identifier("a.b_c:d-e"));
        assert!(is_identifier(&"a".repeat(128)));
        for bad in [
            "",
            "-a",
            ".a",
            "a b",
            "a=b",
            "a+b",
            "a@b",
            "a\tb",
            "a\"b",
            "é",
            &"a".repeat(129),
        ] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
        assert_eq!(parse_gpu_count("64"), Ok(64));
        assert_eq!(parse_gpu_count("01"), Ok(1));
        assert_eq!(parse_gpu_count("0000000001"), Ok(1));
        for bad in ["0", "00", "65", "065", "100", "-1", "+1", "", "1.0", " 1"] {
            assert!(parse_gpu_count(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_ip("2001:DB8:0::1"), parse_ip("2001:db8::1"));
        assert_eq!(parse_ip("::ffff:10.0.0.1"), parse_ip("10.0.0.1"));
        assert!(parse_ip("fe80::1%eth0").is_err());
        assert!(parse_ip(" 10.0.0.1").is_err());
    }
}
