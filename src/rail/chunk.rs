//! Super e-bank splitting (docs/protocol.md §3): a withdrawal paid over the `7001` rail is
//! split into the fewest chunks that are each strictly below 50,000.00 CNY, sized as
//! evenly as possible (amounts differ by at most 0.01, larger chunks first). Each chunk
//! becomes its own instruction with its own id. Same-bank (`7002`) transfers are never
//! split. All amounts are integer fen.

use crate::money::Fen;

/// The super e-bank single-transfer limit in fen (50,000.00 CNY): a `7001` must be
/// strictly below it, or the rail answers `F` `RJ03`.
pub const IBPS_LIMIT_FEN: Fen = 5_000_000;

/// The largest chunk allowed, in fen (49,999.99 CNY).
pub const IBPS_CHUNK_MAX_FEN: Fen = IBPS_LIMIT_FEN - 1;

/// The shape of a split, computed without allocating: `count` chunks, the first `larger`
/// of them `base + 1` fen and the rest `base` fen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IbpsPlan {
    /// Number of chunks: `ceil(amount / 4,999,999)`; 0 for an amount ≤ 0.
    pub count: i64,
    /// Amount of the smaller chunks, fen (`amount / count`).
    pub base: Fen,
    /// How many chunks (the first ones) carry one fen more than `base` (`amount % count`).
    pub larger: i64,
}

impl IbpsPlan {
    /// Amount of chunk `index` (0-based) in fen; 0 outside `0..count`.
    pub fn chunk(&self, index: i64) -> Fen {
        if index < 0 || index >= self.count {
            0
        } else if index < self.larger {
            self.base + 1
        } else {
            self.base
        }
    }
}

/// Plans the split of `amount_fen` (see [`split_ibps`]) without building the list; usable
/// for any `i64` amount. An amount ≤ 0 gives `count` 0.
pub fn plan_ibps(amount_fen: Fen) -> IbpsPlan {
    if amount_fen <= 0 {
        return IbpsPlan {
            count: 0,
            base: 0,
            larger: 0,
        };
    }
    let count = amount_fen / IBPS_CHUNK_MAX_FEN + i64::from(amount_fen % IBPS_CHUNK_MAX_FEN != 0);
    IbpsPlan {
        count,
        base: amount_fen / count,
        larger: amount_fen % count,
    }
}

/// Splits a super e-bank withdrawal of `amount_fen` into chunk amounts (fen): the fewest
/// chunks each `< IBPS_LIMIT_FEN`, differing by at most 1 fen, larger first. Empty for an
/// amount ≤ 0. Examples (§3): 120,000.00 → 40,000.00 × 3; 100,000.00 → 33,333.34 +
/// 33,333.33 × 2; 49,999.99 → one chunk; 50,000.00 → 25,000.00 × 2.
///
/// The list has `ceil(amount / 4,999,999)` entries (8 bytes each); callers bound the
/// withdrawal amount before splitting (use [`plan_ibps`] to know the count first).
pub fn split_ibps(amount_fen: Fen) -> Vec<Fen> {
    let plan = plan_ibps(amount_fen);
    (0..plan.count).map(|i| plan.chunk(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_examples() {
        assert_eq!(split_ibps(12_000_000), vec![4_000_000; 3]);
        assert_eq!(
            split_ibps(10_000_000),
            vec![3_333_334, 3_333_333, 3_333_333]
        );
        assert_eq!(split_ibps(4_999_999), vec![4_999_999]);
        assert_eq!(split_ibps(5_000_000), vec![2_500_000; 2]);
        assert_eq!(split_ibps(1), vec![1]);
        assert!(split_ibps(0).is_empty());
        assert!(split_ibps(-100).is_empty());
        assert_eq!(split_ibps(9_999_998), vec![4_999_999; 2]);
        assert_eq!(split_ibps(9_999_999), vec![3_333_333; 3]);
    }

    #[test]
    fn plan_handles_extremes() {
        let p = plan_ibps(i64::MAX);
        assert!(p.base < IBPS_LIMIT_FEN);
        assert_eq!(p.count, i64::MAX / IBPS_CHUNK_MAX_FEN + 1);
        assert_eq!(plan_ibps(i64::MIN).count, 0);
    }

    fn check_plan(amount: i64) -> Result<(), TestCaseError> {
        let p = plan_ibps(amount);
        let expected = (amount + IBPS_CHUNK_MAX_FEN - 1) / IBPS_CHUNK_MAX_FEN;
        prop_assert_eq!(p.count, expected);
        prop_assert!(p.larger >= 0 && p.larger < p.count);
        prop_assert_eq!(
            p.larger * (p.base + 1) + (p.count - p.larger) * p.base,
            amount
        );
        prop_assert!(p.chunk(0) < IBPS_LIMIT_FEN);
        prop_assert!(p.chunk(p.count - 1) >= 1);
        Ok(())
    }

    proptest! {
        #[test]
        fn plan_over_the_whole_range(amount in 1i64..=100_000_000_000_000) {
            check_plan(amount)?;
        }

        #[test]
        fn split_properties(amount in 1i64..=100_000_000_000) {
            check_plan(amount)?;
            let chunks = split_ibps(amount);
            prop_assert_eq!(chunks.iter().sum::<i64>(), amount);
            prop_assert!(chunks.iter().all(|c| *c > 0 && *c < IBPS_LIMIT_FEN));
            let max = *chunks.iter().max().unwrap();
            let min = *chunks.iter().min().unwrap();
            prop_assert!(max - min <= 1);
            prop_assert!(chunks.windows(2).all(|w| w[0] >= w[1]));
            prop_assert_eq!(chunks.len() as i64, (amount + 4_999_998) / 4_999_999);
        }
    }

    proptest! {
        // The materialised list over the whole range, few cases: a split of 10^14 fen is
        // 20 million chunks.
        #![proptest_config(ProptestConfig::with_cases(4))]
        #[test]
        fn split_full_range(amount in 1i64..=100_000_000_000_000) {
            let chunks = split_ibps(amount);
            prop_assert_eq!(chunks.iter().sum::<i64>(), amount);
            prop_assert!(chunks.iter().all(|c| *c > 0 && *c < IBPS_LIMIT_FEN));
            prop_assert!(chunks.first().unwrap() - chunks.last().unwrap() <= 1);
            prop_assert!(chunks.windows(2).all(|w| w[0] >= w[1]));
            prop_assert_eq!(chunks.len() as i64, (amount + 4_999_998) / 4_999_999);
        }
    }
}
