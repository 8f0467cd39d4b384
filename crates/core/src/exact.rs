//! Exact arithmetic for points and tokens.
//!
//! Every rounded quantity of the SPEC is `round_half_even(p / q)` for non-negative
//! integers `p` and `q`; this module computes it in 256-bit integers, so no
//! intermediate is ever rounded and nothing passes through binary floating point.
//! The bounds of `limits.rs` keep every numerator below 2^200; exceeding 256 bits
//! is an invariant violation, not a data error.

use ethnum::U256;
use rust_decimal::Decimal;

fn pow10(n: u32) -> U256 {
    U256::from(10u8).pow(n)
}

/// `round(num / den)`, ties to even. `den > 0`.
pub fn div_round_half_even(num: U256, den: U256) -> U256 {
    assert!(den > U256::ZERO, "division by zero");
    let (q, r) = (num / den, num % den);
    // Compare 2r with den without overflow: r < den, so den - r > 0.
    let twice_r_vs_den = r.cmp(&(den - r));
    match twice_r_vs_den {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & U256::ONE),
    }
}

/// A non-negative decimal as `(mantissa, scale)`.
fn parts(d: Decimal) -> (U256, u32) {
    assert!(!d.is_sign_negative() || d.is_zero(), "negative value {d}");
    (U256::from(d.mantissa().unsigned_abs()), d.scale())
}

/// A rounded result back to a `Decimal` with exactly `places` places.
fn to_decimal(mantissa: U256, places: u32) -> Decimal {
    let m = i128::try_from(mantissa).expect("bounded by limits.rs");
    Decimal::try_from_i128_with_scale(m, places).expect("bounded by limits.rs")
}

/// `round_half_even(prod(decimals) * prod(ints) / divisor, places)`, exactly.
pub fn product_rounded(decimals: &[Decimal], ints: &[u64], divisor: u64, places: u32) -> Decimal {
    let mut num = pow10(places);
    let mut scale = 0;
    for &d in decimals {
        let (m, s) = parts(d);
        num = num.checked_mul(m).expect("bounded by limits.rs");
        scale += s;
    }
    for &i in ints {
        num = num
            .checked_mul(U256::from(i))
            .expect("bounded by limits.rs");
    }
    let den = pow10(scale) * U256::from(divisor);
    to_decimal(div_round_half_even(num, den), places)
}

/// `round_half_even(num / den, places)` for decimals, `den > 0`.
pub fn ratio_rounded(num: Decimal, den: Decimal, places: u32) -> Decimal {
    let (nm, ns) = parts(num);
    let (dm, ds) = parts(den);
    // num/den = (nm / 10^ns) / (dm / 10^ds) = nm * 10^ds / (dm * 10^ns)
    let p = nm * pow10(ds) * pow10(places);
    let q = dm * pow10(ns);
    to_decimal(div_round_half_even(p, q), places)
}

/// `round_half_even(num / den, places)` for integers, `den > 0`.
pub fn int_ratio_rounded(num: u64, den: u64, places: u32) -> Decimal {
    let p = U256::from(num) * pow10(places);
    to_decimal(div_round_half_even(p, U256::from(den)), places)
}

/// Exact `int < d * k`: e.g. `online_slots < min_uptime * total_slots`.
pub fn int_less_than_product(int: u64, d: Decimal, k: u64) -> bool {
    let (m, s) = parts(d);
    U256::from(int) * pow10(s) < m * U256::from(k)
}

/// A decimal with exactly `places` places, as text. `d` must have no more places.
pub fn fixed(d: Decimal, places: u32) -> String {
    debug_assert!(d.scale() <= places, "{d} has more than {places} places");
    let mut d = d;
    d.rescale(places);
    d.to_string()
}

/// `d * 10^places` as an integer: the integer form of a value with at most `places`
/// places (SPEC 4: `P(a) = points(a) * 10^6`).
pub fn to_units(d: Decimal, places: u32) -> u128 {
    let (m, s) = parts(d);
    assert!(s <= places, "{d} has more than {places} places");
    u128::try_from(m * pow10(places - s)).expect("bounded by limits.rs")
}

/// `units / 10^places` as text with exactly `places` places (no point when 0).
pub fn units_text(units: u128, places: u32) -> String {
    if places == 0 {
        return units.to_string();
    }
    let p = 10u128.pow(places);
    format!(
        "{}.{:0width$}",
        units / p,
        units % p,
        width = places as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn half_even() {
        let r = |n: u64, q: u64| div_round_half_even(U256::from(n), U256::from(q)).as_u64();
        assert_eq!(r(5, 2), 2);
        assert_eq!(r(7, 2), 4);
        assert_eq!(r(9, 4), 2);
        assert_eq!(r(11, 4), 3);
        assert_eq!(r(0, 3), 0);
        assert_eq!(r(2, 3), 1);
    }

    #[test]
    fn ratios_round_before_comparison() {
        // 1137.81 / 989.4 = 1.150000101... -> 1.150000
        assert_eq!(
            ratio_rounded(d("1137.81"), d("989.4"), 6).to_string(),
            "1.150000"
        );
        // 0.0000005 rounds to even 0.000000; 0.0000015 to 0.000002
        assert_eq!(
            ratio_rounded(d("1"), d("2000000"), 6).to_string(),
            "0.000000"
        );
        assert_eq!(
            ratio_rounded(d("3"), d("2000000"), 6).to_string(),
            "0.000002"
        );
        assert_eq!(int_ratio_rounded(1, 3, 6).to_string(), "0.333333");
    }

    #[test]
    fn products() {
        let p = product_rounded(&[d("0.20"), d("1.10"), d("0.999999")], &[2, 17568], 1, 6);
        assert_eq!(p.to_string(), "7729.912270");
        assert_eq!(
            product_rounded(&[d("2.5")], &[1], 3600, 6).to_string(),
            "0.000694"
        );
        assert!(int_less_than_product(1756, d("0.10"), 17568));
        assert!(!int_less_than_product(1757, d("0.10"), 17568));
        assert!(!int_less_than_product(10, d("0.10"), 100));
    }

    #[test]
    fn text() {
        assert_eq!(units_text(3_200_000_000_000_000, 8), "32000000.00000000");
        assert_eq!(units_text(5, 0), "5");
        assert_eq!(units_text(5, 3), "0.005");
        assert_eq!(fixed(d("1.1"), 6), "1.100000");
        assert_eq!(to_units(d("1.5"), 6), 1_500_000);
    }
}
