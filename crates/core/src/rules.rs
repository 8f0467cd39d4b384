//! A rules file (`rules/<version>.toml`): every parameter of the scoring model.
//!
//! The file is TOML with flat keys named exactly as the SPEC names the parameters,
//! a table of GPU models and a list of bandwidth tiers (best first). Decimals are
//! written as strings (`"0.10"`) so that they stay exact: TOML floats are binary
//! and are refused. Loading validates everything, and every error names the file,
//! line and column, and the key.

use std::collections::BTreeMap;
use std::ops::Range;

use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use crate::limits::*;
use crate::value::{is_identifier, parse_plain_decimal};

/// SPEC 8: a device whose longest run of consecutive online slots is shorter than
/// `min_streak_slots` is excluded (`SHORT_STREAK`). Needs `min_streak_slots`.
pub const FEATURE_MIN_STREAK: &str = "min_streak";
/// SPEC 8: a rented second counts only inside one of the device's online slots.
pub const FEATURE_RENTALS_REQUIRE_ONLINE: &str = "rentals_require_online";

/// Features a rules version may switch on. An unknown one is an error, never a no-op.
pub const KNOWN_FEATURES: &[&str] = &[FEATURE_MIN_STREAK, FEATURE_RENTALS_REQUIRE_ONLINE];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRule {
    pub name: String,
    /// Points per online slot per GPU.
    pub base: Decimal,
    /// Reference benchmark per GPU; always > 0.
    pub tflops: Decimal,
    /// Points per rented hour per GPU.
    pub rental: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub min_download_mbps: Decimal,
    pub min_upload_mbps: Decimal,
    pub max_latency_ms: Decimal,
    pub multiplier: Decimal,
}

/// A validated rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub version: String,
    pub features: Vec<String>,
    pub slot_seconds: i64,
    pub min_uptime: Decimal,
    pub min_speedtests: u64,
    pub max_perf_ratio: Decimal,
    pub min_perf_ratio: Decimal,
    pub max_devices_per_ip: u64,
    pub max_rejected_ratio: Decimal,
    pub points_decimals: u32,
    /// `min_streak` feature: the shortest acceptable longest run of online slots.
    pub min_streak_slots: Option<u64>,
    /// `rentals_require_online` feature.
    pub rentals_require_online: bool,
    /// By model name.
    pub models: BTreeMap<String, ModelRule>,
    /// Best first: strictly decreasing multipliers, never less demanding conditions.
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    version: Spanned<String>,
    features: Spanned<Vec<Spanned<String>>>,
    slot_seconds: Spanned<i64>,
    min_uptime: Spanned<String>,
    min_speedtests: Spanned<i64>,
    max_perf_ratio: Spanned<String>,
    min_perf_ratio: Spanned<String>,
    max_devices_per_ip: Spanned<i64>,
    max_rejected_ratio: Spanned<String>,
    points_decimals: Spanned<i64>,
    min_streak_slots: Option<Spanned<i64>>,
    models: Spanned<Vec<RawModel>>,
    bandwidth_tiers: Spanned<Vec<RawTier>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: Spanned<String>,
    base: Spanned<String>,
    tflops: Spanned<String>,
    rental: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: Spanned<String>,
    min_download_mbps: Spanned<String>,
    min_upload_mbps: Spanned<String>,
    max_latency_ms: Spanned<String>,
    multiplier: Spanned<String>,
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Errors of a TOML document, located; shared with `epoch.toml`.
pub(crate) struct Located<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Located<'_> {
    pub fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            self.err(span, e.message().to_string())
        })
    }

    /// A non-negative decimal string with at most `places` places and `int` digits.
    pub fn decimal(
        &self,
        v: &Spanned<String>,
        key: &str,
        int: u32,
        places: u32,
    ) -> Result<Decimal, ConfigError> {
        parse_plain_decimal(v.get_ref(), int as usize, places as usize).ok_or_else(|| {
            self.err(
                v.span(),
                format!(
                    "{key}: expected a non-negative decimal string such as \"0.10\", with at most \
                     {int} digits before the point and {places} after; got {:?}",
                    v.get_ref()
                ),
            )
        })
    }

    pub fn int(&self, v: &Spanned<i64>, key: &str, range: Range<i64>) -> Result<i64, ConfigError> {
        let x = *v.get_ref();
        if range.contains(&x) {
            Ok(x)
        } else {
            Err(self.err(
                v.span(),
                format!(
                    "{key}: expected an integer from {} to {}; got {x}",
                    range.start,
                    range.end - 1
                ),
            ))
        }
    }
}

fn max_dec(
    d: Decimal,
    max: i64,
    loc: &Located,
    span: Range<usize>,
    key: &str,
) -> Result<Decimal, ConfigError> {
    if d > Decimal::from(max) {
        return Err(loc.err(span, format!("{key}: at most {max}; got {d}")));
    }
    Ok(d)
}

impl Rules {
    /// Parses and validates a rules file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Rules, ConfigError> {
        let loc = Located { file, text };
        let raw: RawRules = loc.parse()?;
        let places = MAX_RULE_PLACES;
        let int12 = MAX_RULE_DECIMAL_INT_DIGITS;

        let version = raw.version.get_ref().clone();
        if !is_version(&version) {
            return Err(loc.err(
                raw.version.span(),
                "version: expected 1 to 64 of [A-Za-z0-9._-]",
            ));
        }
        let mut features = Vec::new();
        for f in raw.features.get_ref() {
            if !KNOWN_FEATURES.contains(&f.get_ref().as_str()) {
                return Err(loc.err(
                    f.span(),
                    format!(
                        "features: unknown feature {:?}; this engine knows: {}",
                        f.get_ref(),
                        if KNOWN_FEATURES.is_empty() {
                            "none".to_string()
                        } else {
                            KNOWN_FEATURES.join(", ")
                        }
                    ),
                ));
            }
            if features.contains(f.get_ref()) {
                return Err(loc.err(
                    f.span(),
                    format!("features: {:?} is listed twice", f.get_ref()),
                ));
            }
            features.push(f.get_ref().clone());
        }
        features.sort();

        let slot_seconds = loc.int(
            &raw.slot_seconds,
            "slot_seconds",
            MIN_SLOT_SECONDS..MAX_SLOT_SECONDS + 1,
        )?;
        let min_uptime = loc.decimal(&raw.min_uptime, "min_uptime", 1, places)?;
        if min_uptime > Decimal::ONE {
            return Err(loc.err(
                raw.min_uptime.span(),
                "min_uptime: a fraction of total_slots, at most 1",
            ));
        }
        let min_speedtests = loc.int(&raw.min_speedtests, "min_speedtests", 0..1_000_001)? as u64;
        let max_perf_ratio = loc.decimal(&raw.max_perf_ratio, "max_perf_ratio", int12, places)?;
        let min_perf_ratio = loc.decimal(&raw.min_perf_ratio, "min_perf_ratio", int12, places)?;
        if min_perf_ratio > max_perf_ratio {
            return Err(loc.err(
                raw.min_perf_ratio.span(),
                "min_perf_ratio: must not exceed max_perf_ratio",
            ));
        }
        let max_devices_per_ip = loc.int(
            &raw.max_devices_per_ip,
            "max_devices_per_ip",
            1..MAX_DEVICES as i64 + 1,
        )? as u64;
        let max_rejected_ratio =
            loc.decimal(&raw.max_rejected_ratio, "max_rejected_ratio", 1, places)?;
        if max_rejected_ratio > Decimal::ONE {
            return Err(loc.err(
                raw.max_rejected_ratio.span(),
                "max_rejected_ratio: a fraction, at most 1",
            ));
        }
        let points_decimals = loc.int(
            &raw.points_decimals,
            "points_decimals",
            0..MAX_POINTS_DECIMALS as i64 + 1,
        )? as u32;

        let min_streak_slots = match (&raw.min_streak_slots, features.iter().any(|f| f == FEATURE_MIN_STREAK)) {
            (Some(v), true) => Some(loc.int(v, "min_streak_slots", 1..1_000_001)? as u64),
            (None, false) => None,
            (Some(v), false) => {
                return Err(loc.err(
                    v.span(),
                    format!("min_streak_slots: only allowed with the feature \"{FEATURE_MIN_STREAK}\" in features"),
                ))
            }
            (None, true) => {
                return Err(loc.err(
                    raw.features.span(),
                    format!("features: \"{FEATURE_MIN_STREAK}\" needs the parameter min_streak_slots"),
                ))
            }
        };
        let rentals_require_online = features.iter().any(|f| f == FEATURE_RENTALS_REQUIRE_ONLINE);

        let mut models = BTreeMap::new();
        if raw.models.get_ref().len() > MAX_MODELS {
            return Err(loc.err(raw.models.span(), format!("models: at most {MAX_MODELS}")));
        }
        for (i, m) in raw.models.get_ref().iter().enumerate() {
            let key = |k: &str| format!("models[{i}].{k}");
            let name = m.name.get_ref().clone();
            if !is_identifier(&name) {
                return Err(loc.err(
                    m.name.span(),
                    format!("{}: expected an identifier (SPEC 2.1)", key("name")),
                ));
            }
            let base = loc.decimal(&m.base, &key("base"), int12, places)?;
            let base = max_dec(base, MAX_RULE_POINTS, &loc, m.base.span(), &key("base"))?;
            let tflops = loc.decimal(&m.tflops, &key("tflops"), int12, places)?;
            if tflops.is_zero() {
                return Err(loc.err(
                    m.tflops.span(),
                    format!("{}: must be above 0", key("tflops")),
                ));
            }
            let rental = loc.decimal(&m.rental, &key("rental"), int12, places)?;
            let rental = max_dec(
                rental,
                MAX_RULE_POINTS,
                &loc,
                m.rental.span(),
                &key("rental"),
            )?;
            if models.contains_key(&name) {
                return Err(loc.err(
                    m.name.span(),
                    format!("{}: model {name:?} is listed twice", key("name")),
                ));
            }
            models.insert(
                name.clone(),
                ModelRule {
                    name,
                    base,
                    tflops,
                    rental,
                },
            );
        }

        let raw_tiers = raw.bandwidth_tiers.get_ref();
        if raw_tiers.len() > MAX_TIERS {
            return Err(loc.err(
                raw.bandwidth_tiers.span(),
                format!("bandwidth_tiers: at most {MAX_TIERS}"),
            ));
        }
        let mut tiers: Vec<Tier> = Vec::new();
        for (i, t) in raw_tiers.iter().enumerate() {
            let key = |k: &str| format!("bandwidth_tiers[{i}].{k}");
            let name = t.name.get_ref().clone();
            if !is_identifier(&name) {
                return Err(loc.err(
                    t.name.span(),
                    format!("{}: expected an identifier (SPEC 2.1)", key("name")),
                ));
            }
            let multiplier = loc.decimal(&t.multiplier, &key("multiplier"), int12, places)?;
            let tier = Tier {
                name,
                min_download_mbps: loc.decimal(
                    &t.min_download_mbps,
                    &key("min_download_mbps"),
                    int12,
                    places,
                )?,
                min_upload_mbps: loc.decimal(
                    &t.min_upload_mbps,
                    &key("min_upload_mbps"),
                    int12,
                    places,
                )?,
                max_latency_ms: loc.decimal(
                    &t.max_latency_ms,
                    &key("max_latency_ms"),
                    int12,
                    places,
                )?,
                multiplier: max_dec(
                    multiplier,
                    MAX_MULTIPLIER,
                    &loc,
                    t.multiplier.span(),
                    &key("multiplier"),
                )?,
            };
            if let Some(prev) = tiers.last() {
                if tiers.iter().any(|p| p.name == tier.name) {
                    return Err(loc.err(
                        t.name.span(),
                        format!("{}: tier {:?} is listed twice", key("name"), tier.name),
                    ));
                }
                if tier.multiplier >= prev.multiplier {
                    return Err(loc.err(
                        t.multiplier.span(),
                        format!(
                            "{}: tiers are listed best first, so each multiplier must be below the one before \
                             ({} of {:?}); got {}",
                            key("multiplier"), prev.multiplier, prev.name, tier.multiplier
                        ),
                    ));
                }
                let looser = tier.min_download_mbps <= prev.min_download_mbps
                    && tier.min_upload_mbps <= prev.min_upload_mbps
                    && tier.max_latency_ms >= prev.max_latency_ms;
                let same = tier.min_download_mbps == prev.min_download_mbps
                    && tier.min_upload_mbps == prev.min_upload_mbps
                    && tier.max_latency_ms == prev.max_latency_ms;
                if !looser || same {
                    return Err(loc.err(
                        t.name.span(),
                        format!(
                            "{}: a lower tier must ask less than the one before ({:?}) in no condition more \
                             and in at least one less; tiers would overlap or be unordered",
                            key("name"), prev.name
                        ),
                    ));
                }
            }
            tiers.push(tier);
        }

        Ok(Rules {
            version,
            features,
            slot_seconds,
            min_uptime,
            min_speedtests,
            max_perf_ratio,
            min_perf_ratio,
            max_devices_per_ip,
            max_rejected_ratio,
            points_decimals,
            min_streak_slots,
            rentals_require_online,
            models,
            tiers,
        })
    }

    pub fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|f| f == name)
    }
}

/// Version names and epoch ids: `[A-Za-z0-9._-]{1,64}`.
pub fn is_version(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = include_str!("../../../rules/v1.toml");
    const V2: &str = include_str!("../../../rules/v2.toml");

    #[test]
    fn v2_is_v1_with_the_spec_8_changes() {
        let v1 = Rules::parse("v1.toml", V1).unwrap();
        let v2 = Rules::parse("v2.toml", V2).unwrap();
        assert_eq!(v1.min_streak_slots, None);
        assert!(!v1.rentals_require_online);
        let expected = Rules {
            version: "v2".into(),
            features: vec!["min_streak".into(), "rentals_require_online".into()],
            max_devices_per_ip: 4,
            min_speedtests: 3,
            min_streak_slots: Some(60),
            rentals_require_online: true,
            ..v1
        };
        assert_eq!(v2, expected);
    }

    fn err(text: &str) -> String {
        Rules::parse("r.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn v1_has_the_spec_values() {
        let r = Rules::parse("v1.toml", V1).unwrap();
        assert_eq!(r.version, "v1");
        assert_eq!(r.slot_seconds, 300);
        assert_eq!(r.min_uptime.to_string(), "0.10");
        assert_eq!(r.min_speedtests, 2);
        assert_eq!(r.max_perf_ratio.to_string(), "1.15");
        assert_eq!(r.min_perf_ratio.to_string(), "0.50");
        assert_eq!(r.max_devices_per_ip, 8);
        assert_eq!(r.max_rejected_ratio.to_string(), "0.001");
        assert_eq!(r.points_decimals, 6);
        let table: Vec<String> = r
            .models
            .values()
            .map(|m| format!("{} {} {} {}", m.name, m.base, m.tflops, m.rental))
            .collect();
        assert_eq!(
            table,
            [
                "A100-80GB 0.40 312.0 10",
                "H100-80GB 1.00 989.4 24",
                "L40S 0.35 362.0 8",
                "M2-MAC-MINI 0.01 3.6 0.25",
                "RTX-3080-TI 0.10 136.0 2.5",
                "RTX-4070 0.08 58.3 2",
                "RTX-4090 0.20 165.2 5",
                "T4 0.05 65.0 1.5",
            ]
        );
        let tiers: Vec<String> = r
            .tiers
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {} {}",
                    t.name, t.min_download_mbps, t.min_upload_mbps, t.max_latency_ms, t.multiplier
                )
            })
            .collect();
        assert_eq!(
            tiers,
            [
                "gold 500 250 30 1.10",
                "silver 100 50 60 1.00",
                "bronze 25 10 120 0.60"
            ]
        );
    }

    #[test]
    fn errors_say_where() {
        let e = err(&V1.replace("min_uptime = \"0.10\"", "min_uptime = 0.10"));
        assert!(e.starts_with("r.toml:"), "{e}");
        assert!(e.contains("string"), "{e}");
        let e = err(&V1.replace("min_uptime = \"0.10\"", "min_uptime = \"-0.10\""));
        assert!(
            e.contains("min_uptime: expected a non-negative decimal"),
            "{e}"
        );
        let e = err(&V1.replace("points_decimals = 6", "points_decimals = 6\nbonus = 1"));
        assert!(e.contains("unknown field `bonus`"), "{e}");
        let e = err(&V1.replace("points_decimals = 6", ""));
        assert!(e.contains("points_decimals"), "{e}");
        let e = err(&V1.replace("\"1.10\"", "\"0.90\""));
        assert!(e.contains("bandwidth_tiers[1].multiplier"), "{e}");
        let e = err(&V1.replace("name = \"T4\"", "name = \"L40S\""));
        assert!(e.contains("listed twice"), "{e}");
        let e = err(&V1.replace("features = []", "features = [\"bonus\"]"));
        assert!(e.contains("unknown feature \"bonus\""), "{e}");
        let e = err(&V1.replace("features = []", "features = [\"min_streak\"]"));
        assert!(e.contains("needs the parameter min_streak_slots"), "{e}");
        let e = err(&V1.replace(
            "points_decimals = 6",
            "points_decimals = 6\nmin_streak_slots = 60",
        ));
        assert!(e.contains("only allowed with the feature"), "{e}");
        let e = err(&V1.replace("min_download_mbps = \"100\"", "min_download_mbps = \"600\""));
        assert!(e.contains("overlap"), "{e}");
    }
}
