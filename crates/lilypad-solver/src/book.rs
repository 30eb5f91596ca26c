//! The order book: jobs open to a deal that no provider could take yet.
//!
//! Every job the solver reads from the jobs stream goes into the book (NATS KV bucket
//! [`lilypad_bus::BOOK_BUCKET`]) before its message is acknowledged, so a solver that stops or
//! crashes loses nothing: the next one reads the book back. The solver matches the book whenever
//! capacity may have appeared (an offer was put, refreshed or removed; a job was added) and on a
//! short timer, in the order [`order`] gives: earliest match deadline first, then first come.
//! A job a provider signed a deal for stays in the book, held until the deal's expiry
//! ([`Entry::dealt_until`]): if the deal never lands (a relayer in trouble), the job is proposed
//! again once the signature has lapsed, rather than left to expire. An entry leaves the book when
//! the chain says the job is no longer open (agreed, expired, or reorganised away), or once its
//! match deadline has passed.
//!
//! Several solvers may share one book. Before proposing a job to providers, a solver claims its
//! entry with a compare-and-set on the entry's revision ([`Entry::claimed_by`]); a solver whose
//! update fails leaves the job to the one that claimed it, so no job is proposed by two solvers
//! at once. A claim names its solver and a time after which it lapses, so the job of a solver
//! that died mid-proposal is taken up by another.

use serde::{Deserialize, Serialize};

use lilypad_bus::Versioned;
use lilypad_types::JobRequested;

/// One job waiting in the book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The request as the relayer indexed it.
    pub job: JobRequested,
    /// Unix time (the chain's) after which no deal can be agreed.
    pub match_deadline: u64,
    /// Timeout collateral as basis points of the price, fixed on-chain with the request.
    pub timeout_collateral_bps: u32,
    /// Unix time in milliseconds when the job entered the book (first come, first served among
    /// jobs with the same deadline).
    pub booked_at_ms: u64,
    /// The solver proposing the job right now, if any.
    #[serde(default)]
    pub claim: Option<Claim>,
    /// Unix time until which a deal signed for the job may still land: the job is not proposed
    /// again before then.
    #[serde(default)]
    pub dealt_until: Option<u64>,
}

/// A solver's hold on an entry while it proposes the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The solver's id ([`crate::service::Solver::id`]).
    pub solver: String,
    /// Unix time after which the claim lapses (its solver is taken to be gone).
    pub until: u64,
}

impl Entry {
    /// Whether `solver` may propose the job at unix time `now`: the entry is unclaimed, claimed
    /// by `solver` itself, or its claim has lapsed.
    pub fn claimable(&self, solver: &str, now: u64) -> bool {
        self.claim
            .as_ref()
            .is_none_or(|c| c.solver == solver || c.until <= now)
    }

    /// Whether a signed deal for the job may still land at unix time `now`.
    pub fn deal_pending(&self, now: u64) -> bool {
        self.dealt_until.is_some_and(|until| until >= now)
    }

    /// Who holds the entry at `now`, if another solver does.
    pub fn claimed_by(&self, now: u64) -> Option<&str> {
        self.claim
            .as_ref()
            .filter(|c| c.until > now)
            .map(|c| c.solver.as_str())
    }
}

/// The book's key for a job: `<chainId>.<jobId>.<requestHash>`. The request hash is part of it
/// because a job id can be taken by another request after a reorganisation. (NATS keys allow no
/// `:`, so the parts are joined with dots.)
pub fn key(job: &JobRequested) -> String {
    format!(
        "{}.{}.{}",
        job.key.chain_id, job.key.job_id, job.request_hash
    )
}

/// Puts entries in the order they are matched: earliest match deadline first, then the one that
/// entered the book first, then by chain and job id (so every solver sees the same order).
pub fn order(entries: &mut [Versioned<Entry>]) {
    entries.sort_by(|a, b| {
        let (a, b) = (&a.value, &b.value);
        a.match_deadline
            .cmp(&b.match_deadline)
            .then(a.booked_at_ms.cmp(&b.booked_at_ms))
            .then(a.job.key.chain_id.cmp(&b.job.key.chain_id))
            .then(a.job.key.job_id.cmp(&b.job.key.job_id))
    });
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, B256, U256};
    use lilypad_types::{JobKey, JobSpec};

    use super::*;

    fn entry(job_id: u64, deadline: u64, booked_at_ms: u64) -> Versioned<Entry> {
        let job = JobRequested {
            key: JobKey {
                chain_id: 31337,
                job_id: U256::from(job_id),
            },
            lilypad: Address::ZERO,
            sequence: job_id,
            client: Address::ZERO,
            request_hash: B256::repeat_byte(0xab),
            block_number: 1,
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
            spec: JobSpec {
                module: "cowsay".into(),
                version: "1.0.0".into(),
                module_id: Default::default(),
                deterministic: false,
                inputs: vec![],
                max_price: U256::from(1),
                match_timeout: 60,
                execution_timeout: 60,
                callback_gas_limit: 0,
                max_output_bytes: 0,
                results_collateral_multiplier_bps: 0,
                challenge_window: 0,
                ..Default::default()
            },
        };
        Versioned {
            key: key(&job),
            revision: 1,
            value: Entry {
                job,
                match_deadline: deadline,
                timeout_collateral_bps: 10_000,
                booked_at_ms,
                claim: None,
                dealt_until: None,
            },
        }
    }

    #[test]
    fn earliest_deadline_first_then_first_come() {
        let mut entries = vec![
            entry(1, 300, 10),
            entry(2, 200, 30),
            entry(3, 200, 20),
            entry(4, 100, 40),
        ];
        order(&mut entries);
        let ids: Vec<u64> = entries
            .iter()
            .map(|e| e.value.job.key.job_id.to::<u64>())
            .collect();
        assert_eq!(ids, [4, 3, 2, 1]);
    }

    #[test]
    fn the_key_names_chain_job_and_request() {
        let e = entry(7, 0, 0);
        assert_eq!(
            e.key,
            format!("31337.7.0x{}", "ab".repeat(32)),
            "a reorganised job id with another request gets another entry"
        );
    }

    #[test]
    fn a_claim_holds_other_solvers_off_until_it_lapses() {
        let mut e = entry(1, 100, 0).value;
        assert!(e.claimable("a", 50), "unclaimed");
        e.claim = Some(Claim {
            solver: "a".into(),
            until: 60,
        });
        assert!(e.claimable("a", 50), "its own claim");
        assert!(!e.claimable("b", 50), "another solver's live claim");
        assert_eq!(e.claimed_by(50), Some("a"));
        assert!(e.claimable("b", 60), "a lapsed claim (its solver died)");
        assert_eq!(e.claimed_by(60), None);
    }

    #[test]
    fn a_signed_deal_holds_the_job_until_its_expiry() {
        let mut e = entry(1, 100, 0).value;
        assert!(!e.deal_pending(50));
        e.dealt_until = Some(60);
        assert!(e.deal_pending(60), "it may land up to its expiry");
        assert!(!e.deal_pending(61), "then the job may be proposed again");
    }
}
