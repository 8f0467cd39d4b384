//! SPEC 4: the exact split of the pool by largest remainder.

use ethnum::U256;

/// One account's part of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// `floor(pool_units * P(a) / T)`.
    pub floor_units: u128,
    /// `(pool_units * P(a)) mod T`.
    pub remainder: u128,
    /// Whether the account is among the `leftover` largest remainders.
    pub leftover_unit: bool,
}

impl Share {
    pub fn units(&self) -> u128 {
        self.floor_units + u128::from(self.leftover_unit)
    }
}

/// Splits `pool_units` in proportion to the weights (`P(a)`); `keys` break ties of
/// equal remainders (ascending byte order). Returns one share per weight, in input
/// order. When all weights are 0 nothing is allocated.
///
/// Invariants (proptested): the units add up to exactly `pool_units` when any weight
/// is above 0; each account gets its exact share rounded down or up by one unit.
pub fn split(pool_units: u128, weights: &[(&str, u128)]) -> Vec<Share> {
    let total: u128 = weights
        .iter()
        .try_fold(0u128, |acc, &(_, w)| acc.checked_add(w))
        .expect("bounded by limits.rs: total weight fits in u128");
    if total == 0 {
        return vec![
            Share {
                floor_units: 0,
                remainder: 0,
                leftover_unit: false
            };
            weights.len()
        ];
    }
    let t = U256::from(total);
    let mut shares: Vec<Share> = weights
        .iter()
        .map(|&(_, w)| {
            let product = U256::from(pool_units) * U256::from(w);
            Share {
                floor_units: (product / t).as_u128(),
                remainder: (product % t).as_u128(),
                leftover_unit: false,
            }
        })
        .collect();
    let floor_sum: u128 = shares.iter().map(|s| s.floor_units).sum();
    let leftover = pool_units - floor_sum;
    // sum(rem) = leftover * T and every rem < T, so fewer than `shares.len()` units are
    // left, and each goes to an account whose remainder is above 0.
    assert!(
        leftover < weights.len() as u128,
        "largest remainder invariant"
    );
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        shares[b]
            .remainder
            .cmp(&shares[a].remainder)
            .then_with(|| weights[a].0.cmp(weights[b].0))
    });
    for &i in order.iter().take(leftover as usize) {
        debug_assert!(shares[i].remainder > 0);
        shares[i].leftover_unit = true;
    }
    debug_assert_eq!(shares.iter().map(Share::units).sum::<u128>(), pool_units);
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(pool: u128, w: &[(&str, u128)]) -> Vec<u128> {
        split(pool, w).iter().map(Share::units).collect()
    }

    #[test]
    fn equal_remainders_go_by_account_id() {
        assert_eq!(units(10, &[("b", 1), ("a", 1), ("c", 1)]), [3, 4, 3]);
        assert_eq!(units(11, &[("b", 1), ("a", 1), ("c", 1)]), [4, 4, 3]);
        // byte order: uppercase before lowercase
        assert_eq!(units(1, &[("a", 1), ("B", 1)]), [0, 1]);
    }

    #[test]
    fn largest_remainder_wins_over_key() {
        // 10 * 2/7 = 2.857, 10 * 5/7 = 7.142: leftover 1 goes to the first.
        assert_eq!(units(10, &[("z", 2), ("a", 5)]), [3, 7]);
    }

    #[test]
    fn zero_total_allocates_nothing() {
        assert_eq!(units(100, &[("a", 0), ("b", 0)]), [0, 0]);
        assert_eq!(units(100, &[]), Vec::<u128>::new());
    }

    #[test]
    fn zero_weight_gets_nothing() {
        assert_eq!(units(7, &[("a", 0), ("b", 1), ("c", 1)]), [0, 4, 3]);
    }

    #[test]
    fn wide_products() {
        // pool_units near 10^38 times weights near 10^29: needs 256-bit products.
        let pool = 10u128.pow(38) - 1;
        let w = [("a", 10u128.pow(29)), ("b", 3 * 10u128.pow(28) + 7)];
        let u = units(pool, &w);
        assert_eq!(u.iter().sum::<u128>(), pool);
    }

    proptest! {
        #[test]
        fn sums_to_pool_and_respects_floor(
            pool in 0u128..10u128.pow(30),
            weights in prop::collection::vec(0u128..10u128.pow(20), 0..40),
        ) {
            let keys: Vec<String> = (0..weights.len()).map(|i| format!("acct{i:03}")).collect();
            let w: Vec<(&str, u128)> = keys.iter().map(String::as_str).zip(weights.iter().copied()).collect();
            let shares = split(pool, &w);
            let total: u128 = weights.iter().sum();
            let sum: u128 = shares.iter().map(Share::units).sum();
            if total == 0 {
                prop_assert_eq!(sum, 0);
            } else {
                prop_assert_eq!(sum, pool);
            }
            for (s, &(_, wt)) in shares.iter().zip(&w) {
                if total > 0 {
                    let exact_floor = (U256::from(pool) * U256::from(wt) / U256::from(total)).as_u128();
                    prop_assert!(s.units() == exact_floor || s.units() == exact_floor + 1);
                }
                if wt == 0 { prop_assert_eq!(s.units(), 0); }
            }
        }

        #[test]
        fn order_of_accounts_does_not_matter(
            pool in 0u128..10u128.pow(20),
            weights in prop::collection::vec(0u128..1000, 1..20),
            rot in 0usize..20,
        ) {
            let keys: Vec<String> = (0..weights.len()).map(|i| format!("a{i:02}")).collect();
            let w: Vec<(&str, u128)> = keys.iter().map(String::as_str).zip(weights.iter().copied()).collect();
            let mut r = w.clone();
            r.rotate_left(rot % w.len());
            let a: std::collections::BTreeMap<&str, u128> = w.iter().map(|x| x.0).zip(units(pool, &w)).collect();
            let b: std::collections::BTreeMap<&str, u128> = r.iter().map(|x| x.0).zip(units(pool, &r)).collect();
            prop_assert_eq!(a, b);
        }
    }
}
