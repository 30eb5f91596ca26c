//! Gas and fees for one transaction, and how they rise while it is not mined: pure arithmetic
//! over the chain's [`GasPolicy`], with no RPC, so every rule here is unit-tested.

use lilypad_config::GasPolicy;

const GWEI: f64 = 1e9;

/// The gas limit sent for a call estimated at `estimate`: a fifth more, because a callback gets
/// exactly the gas the contract forwards and the estimate leaves nothing around it.
pub fn gas_limit(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 5)
}

/// The fees of one attempt, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// EIP-1559 max fee per gas.
    pub max_fee: u128,
    /// Priority fee (tip) per gas; never above `max_fee`.
    pub tip: u128,
    /// The policy's cap: `max_fee` never goes above it.
    pub cap: u128,
}

impl Fees {
    /// The first attempt's fees: the node's estimate of the max fee, capped by the policy, and
    /// the policy's tip (never above the max fee).
    pub fn first(estimated_max_fee: u128, policy: &GasPolicy) -> Self {
        let cap = (policy.max_fee_gwei * GWEI) as u128;
        let max_fee = estimated_max_fee.min(cap);
        let tip = ((policy.priority_fee_gwei * GWEI) as u128).min(max_fee);
        Self { max_fee, tip, cap }
    }

    /// The fees of a replacement: both raised by `bump_percent` and by at least 1 wei (a node
    /// refuses a replacement that does not raise them), the max fee at most the cap and the tip at
    /// most the max fee.
    pub fn bumped(self, bump_percent: f64) -> Self {
        let bump = 1.0 + bump_percent / 100.0;
        let max_fee = ((self.max_fee as f64 * bump) as u128).clamp(self.max_fee + 1, self.cap);
        let tip = ((self.tip as f64 * bump) as u128).clamp(self.tip + 1, max_fee);
        Self {
            max_fee,
            tip,
            cap: self.cap,
        }
    }

    /// Whether no replacement is left: `attempts` sends made out of `max_attempts`, or the max
    /// fee already at the cap.
    pub fn exhausted(self, attempts: u32, max_attempts: u32) -> bool {
        attempts >= max_attempts || self.max_fee >= self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_fee_gwei: f64, priority_fee_gwei: f64) -> GasPolicy {
        GasPolicy {
            max_fee_gwei,
            priority_fee_gwei,
            ..GasPolicy::default()
        }
    }

    #[test]
    fn the_gas_limit_leaves_a_fifth_above_the_estimate() {
        assert_eq!(gas_limit(100_000), 120_000);
        assert_eq!(gas_limit(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_first_fees_are_the_estimate_under_the_cap_with_the_policy_tip() {
        let f = Fees::first(30_000_000_000, &policy(50.0, 2.0));
        assert_eq!(
            f,
            Fees {
                max_fee: 30_000_000_000,
                tip: 2_000_000_000,
                cap: 50_000_000_000
            }
        );
    }

    #[test]
    fn an_estimate_above_the_cap_is_capped_and_the_tip_never_exceeds_the_max_fee() {
        let f = Fees::first(900_000_000_000, &policy(1.0, 5.0));
        assert_eq!(f.max_fee, 1_000_000_000);
        assert_eq!(f.tip, 1_000_000_000);
    }

    #[test]
    fn a_replacement_raises_both_fees_by_the_bump_and_stops_at_the_cap() {
        let f = Fees {
            max_fee: 100,
            tip: 10,
            cap: 120,
        };
        let b = f.bumped(12.5);
        assert_eq!((b.max_fee, b.tip), (112, 11));
        let c = b.bumped(12.5);
        assert_eq!(c.max_fee, 120, "capped");
        assert!(c.tip <= c.max_fee);
    }

    #[test]
    fn a_replacement_raises_tiny_fees_by_at_least_one_wei() {
        let b = Fees {
            max_fee: 1,
            tip: 1,
            cap: 1_000,
        }
        .bumped(12.5);
        assert_eq!((b.max_fee, b.tip), (2, 2));
    }

    #[test]
    fn replacements_end_at_the_attempt_limit_or_the_cap() {
        let f = Fees {
            max_fee: 100,
            tip: 1,
            cap: 200,
        };
        assert!(!f.exhausted(7, 8));
        assert!(f.exhausted(8, 8));
        let at_cap = Fees { max_fee: 200, ..f };
        assert!(at_cap.exhausted(1, 8));
    }
}
