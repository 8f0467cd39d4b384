//! `epoch.toml` (SPEC 2): the interval, the pool and the rules version of one epoch.

use serde::Deserialize;
use toml::Spanned;

use crate::exact::units_text;
use crate::limits::{MAX_EPOCH_SECONDS, MAX_POOL_UNITS_DIGITS, MAX_TOKEN_DECIMALS};
use crate::rules::{is_version, ConfigError, Located, Rules};
use crate::value::parse_rfc3339;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub id: String,
    /// Unix seconds, inclusive.
    pub start: i64,
    /// Unix seconds, exclusive.
    pub end: i64,
    /// `pool * 10^decimals`.
    pub pool_units: u128,
    pub decimals: u32,
    /// The rules version the epoch names.
    pub rules: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEpoch {
    id: Spanned<String>,
    start: Spanned<String>,
    end: Spanned<String>,
    pool: Spanned<String>,
    decimals: Spanned<i64>,
    rules: Spanned<String>,
}

impl Epoch {
    pub fn parse(file: &str, text: &str) -> Result<Epoch, ConfigError> {
        let loc = Located { file, text };
        let raw: RawEpoch = loc.parse()?;
        let id = raw.id.get_ref().clone();
        if !is_version(&id) {
            return Err(loc.err(raw.id.span(), "id: expected 1 to 64 of [A-Za-z0-9._-]"));
        }
        let time = |v: &Spanned<String>, key: &str| {
            parse_rfc3339(v.get_ref().as_bytes()).ok_or_else(|| {
                loc.err(
                    v.span(),
                    format!("{key}: expected an RFC 3339 timestamp such as \"2024-03-01T00:00:00Z\"; got {:?}", v.get_ref()),
                )
            })
        };
        let start = time(&raw.start, "start")?;
        let end = time(&raw.end, "end")?;
        if end <= start {
            return Err(loc.err(raw.end.span(), "end: must be after start"));
        }
        if end - start > MAX_EPOCH_SECONDS {
            return Err(loc.err(
                raw.end.span(),
                format!("end: an epoch lasts at most {MAX_EPOCH_SECONDS} seconds (366 days)"),
            ));
        }
        let decimals = loc.int(&raw.decimals, "decimals", 0..MAX_TOKEN_DECIMALS as i64 + 1)? as u32;
        let pool_units = pool_units(raw.pool.get_ref(), decimals).ok_or_else(|| {
            loc.err(
                raw.pool.span(),
                format!(
                    "pool: expected a decimal string above 0 with at most {decimals} decimal places \
                     (the token's decimals) and at most {MAX_POOL_UNITS_DIGITS} digits in smallest units; got {:?}",
                    raw.pool.get_ref()
                ),
            )
        })?;
        let rules = raw.rules.get_ref().clone();
        if !is_version(&rules) {
            return Err(loc.err(
                raw.rules.span(),
                "rules: expected a version name, 1 to 64 of [A-Za-z0-9._-]",
            ));
        }
        Ok(Epoch {
            id,
            start,
            end,
            pool_units,
            decimals,
            rules,
        })
    }

    /// SPEC 1: `(end - start) / slot_seconds`, which must be whole.
    pub fn total_slots(&self, rules: &Rules) -> Result<u64, String> {
        let len = self.end - self.start;
        if len % rules.slot_seconds != 0 {
            return Err(format!(
                "the epoch lasts {len} s, not a whole number of {} s slots (rules {})",
                rules.slot_seconds, rules.version
            ));
        }
        Ok((len / rules.slot_seconds) as u64)
    }

    /// The pool as text, with exactly `decimals` places.
    pub fn pool_text(&self) -> String {
        units_text(self.pool_units, self.decimals)
    }
}

/// `pool * 10^decimals` of a pool written as a plain decimal, or `None`.
pub fn pool_units(s: &str, decimals: u32) -> Option<u128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits_ok = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits_ok(int) || !digits_ok(frac) || (s.contains('.') && frac.is_empty())
    {
        return None;
    }
    if frac.len() > decimals as usize {
        return None;
    }
    let int = int.trim_start_matches('0');
    let padded = format!("{int}{frac:0<width$}", width = decimals as usize);
    let padded = padded.trim_start_matches('0');
    if padded.is_empty() || padded.len() > MAX_POOL_UNITS_DIGITS {
        return None;
    }
    padded.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
id = "ignition-1"
start = "2024-03-01T00:00:00Z"
end = "2024-05-01T00:00:00Z"
pool = "32000000"
decimals = 8
rules = "v1"
"#;

    #[test]
    fn parses() {
        let e = Epoch::parse("epoch.toml", OK).unwrap();
        assert_eq!(e.pool_units, 3_200_000_000_000_000);
        assert_eq!(e.end - e.start, 61 * 86_400);
        assert_eq!(e.pool_text(), "32000000.00000000");
    }

    #[test]
    fn pools() {
        assert_eq!(pool_units("1.5", 1), Some(15));
        assert_eq!(pool_units("007", 0), Some(7));
        assert_eq!(pool_units("1.55", 1), None);
        assert_eq!(pool_units("0", 8), None);
        assert_eq!(pool_units("0.000", 8), None);
        assert_eq!(pool_units("-1", 8), None);
        assert_eq!(pool_units("1e6", 8), None);
        assert_eq!(pool_units("1.", 8), None);
        assert_eq!(pool_units(&"9".repeat(21), 18), None);
        assert_eq!(
            pool_units(&"9".repeat(20), 18),
            Some(10u128.pow(38) - 10u128.pow(18))
        );
    }

    #[test]
    fn errors() {
        let e = |t: &str| Epoch::parse("epoch.toml", t).unwrap_err().to_string();
        assert!(e(&OK.replace("2024-05-01", "2024-02-01")).contains("end: must be after start"));
        assert!(e(&OK.replace("\"32000000\"", "\"0\"")).contains("pool"));
        assert!(e(&OK.replace("\"32000000\"", "\"1.000000001\"")).contains("pool"));
        assert!(e(&OK.replace("decimals = 8", "decimals = 19")).contains("decimals"));
        assert!(e(&OK.replace("T00:00:00Z\"\nend", "T00:00:00\"\nend")).contains("start"));
        assert!(
            e(&OK.replace("rules = \"v1\"", "rules = \"v1\"\nextra = 1")).contains("unknown field")
        );
        assert!(e(&OK.replace("ignition-1", "bad id")).starts_with("epoch.toml:2:6: id"));
    }
}
