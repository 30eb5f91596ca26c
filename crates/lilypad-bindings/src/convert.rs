//! Conversions between the contract's types and the messages services exchange, in one place so
//! the relayer, solver, provider and mediator read and sign the same thing.

use alloy::primitives::Address;
use alloy::rpc::types::Log;
use lilypad_types::{DealTerms, Input, JobKey, JobRequested, JobSpec, JobStatus, MinRecord};

use crate::Lilypad;
use crate::eip712;

/// The message the relayer publishes for a `JobRequested` event in `log`.
pub fn job_requested<T>(
    chain_id: u64,
    lilypad: Address,
    event: &Lilypad::JobRequested,
    log: &Log<T>,
) -> JobRequested {
    let r = &event.request;
    JobRequested {
        key: JobKey {
            chain_id,
            job_id: event.jobId,
        },
        lilypad,
        sequence: event.sequence,
        client: event.client,
        request_hash: event.requestHash,
        block_number: log.block_number.unwrap_or_default(),
        block_hash: log.block_hash.unwrap_or_default(),
        tx_hash: log.transaction_hash.unwrap_or_default(),
        spec: JobSpec {
            module: r.module.clone(),
            version: r.version.clone(),
            module_id: r.moduleId,
            deterministic: r.deterministic,
            inputs: r
                .inputs
                .iter()
                .map(|i| Input {
                    key: i.key.clone(),
                    value: i.value.clone(),
                })
                .collect(),
            max_price: r.maxPrice,
            match_timeout: r.matchTimeout,
            execution_timeout: r.executionTimeout,
            callback_gas_limit: r.callbackGasLimit,
            max_output_bytes: r.maxOutputBytes,
            results_collateral_multiplier_bps: r.resultsCollateralMultiplierBps,
            challenge_window: r.challengeWindow,
            extra_audit_bps: r.extraAuditBps,
            providers: r.providers.clone(),
            min_record: MinRecord {
                min_delivered: r.minDelivered,
                min_reliability_bps: r.minReliabilityBps,
            },
        },
    }
}

impl Lilypad::Job {
    /// The job's state (`None` for a number this build does not know: a newer contract).
    pub fn state(&self) -> Option<JobStatus> {
        JobStatus::from_u8(self.status)
    }
}

impl From<&DealTerms> for eip712::Deal {
    /// The EIP-712 message a provider signs for these terms.
    fn from(t: &DealTerms) -> Self {
        Self {
            jobId: t.job_id,
            requestHash: t.request_hash,
            provider: t.provider,
            price: t.price,
            timeoutCollateral: t.timeout_collateral,
            resultsCollateral: t.results_collateral,
            expiry: t.expiry,
        }
    }
}

impl From<&DealTerms> for Lilypad::Deal {
    /// The argument `agreeDeal` takes for these terms.
    fn from(t: &DealTerms) -> Self {
        Self {
            jobId: t.job_id,
            requestHash: t.request_hash,
            provider: t.provider,
            price: t.price,
            timeoutCollateral: t.timeout_collateral,
            resultsCollateral: t.results_collateral,
            expiry: t.expiry,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, U256};

    use super::*;

    #[test]
    fn deal_terms_map_field_for_field() {
        let t = DealTerms {
            job_id: U256::from(1),
            request_hash: B256::repeat_byte(2),
            provider: Address::repeat_byte(3),
            price: U256::from(4),
            timeout_collateral: U256::from(5),
            results_collateral: U256::from(6),
            expiry: U256::from(7),
        };
        let d = eip712::Deal::from(&t);
        let fields = (
            d.jobId,
            d.requestHash,
            d.provider,
            d.price,
            d.timeoutCollateral,
        );
        assert_eq!(
            fields,
            (
                t.job_id,
                t.request_hash,
                t.provider,
                t.price,
                t.timeout_collateral
            )
        );
        assert_eq!(
            (d.resultsCollateral, d.expiry),
            (t.results_collateral, t.expiry)
        );
        let a = Lilypad::Deal::from(&t);
        let fields = (
            a.jobId,
            a.requestHash,
            a.provider,
            a.price,
            a.timeoutCollateral,
        );
        assert_eq!(
            fields,
            (
                t.job_id,
                t.request_hash,
                t.provider,
                t.price,
                t.timeout_collateral
            )
        );
        assert_eq!(
            (a.resultsCollateral, a.expiry),
            (t.results_collateral, t.expiry)
        );
    }
}
