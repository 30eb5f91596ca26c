//! Lilypad's shared domain types: how a job is named across chains, and the messages the relayer,
//! solver and providers exchange over NATS (JSON, field names in camelCase, amounts and ids as
//! 0x-prefixed hex as alloy writes them).

use std::fmt;

pub mod status;
pub mod suggest;

pub use status::{AuditState, JobStatus, Outcome};

use alloy_primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

/// A job's place on-chain: the chain it was requested on and its id there, which is what
/// `getJob` reads. A reorganisation can put another request under the same id; what a message,
/// a file or a reservation is about is named by [`JobRef`], which adds the request hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobKey {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The job id on that chain's Lilypad contract.
    pub job_id: U256,
}

impl fmt::Display for JobKey {
    /// `<chainId>:<jobId>`, as in logs (a message id names the request too: [`JobRef::id`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chain_id, self.job_id)
    }
}

/// One request under a job id: the job's [`JobKey`] and the hash of the request made under it.
/// A job id reused after a reorganisation (the request replaced by another one) gives another
/// `JobRef`, so everything keyed by it (stream message ids, the provider's reservations and
/// state files) tells the two jobs apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    /// Where the job is on-chain.
    pub key: JobKey,
    /// keccak256 of the ABI-encoded request, as the contract stores it in the job.
    pub request_hash: B256,
}

impl JobRef {
    /// The request `request_hash` made as job `key`.
    pub fn new(key: JobKey, request_hash: B256) -> Self {
        Self { key, request_hash }
    }

    /// `<chainId>:<jobId>:<requestHash>` with the hash in full (0x and 64 hex digits): the
    /// unambiguous form that message ids are built from.
    pub fn id(&self) -> String {
        format!("{}:{}", self.key, self.request_hash)
    }
}

impl fmt::Display for JobRef {
    /// `<chainId>:<jobId>:<first 8 hex digits of the request hash>`, as in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.request_hash;
        write!(
            f,
            "{}:{:02x}{:02x}{:02x}{:02x}",
            self.key, h[0], h[1], h[2], h[3]
        )
    }
}

/// One named input of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// The input's name, as the module declares it.
    pub key: String,
    /// Any UTF-8 text.
    pub value: String,
}

/// What a client asked for, as `runJob` received it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Module name.
    pub module: String,
    /// Module version.
    pub version: String,
    /// The id of the module's definition (keccak256 of its canonical form, see
    /// `lilypad_modules::Module::id`); zero: unpinned, any definition under that name and version.
    #[serde(default)]
    pub module_id: B256,
    /// Whether the client asked for a deterministic run (one that can be challenged).
    #[serde(default)]
    pub deterministic: bool,
    /// Named inputs.
    pub inputs: Vec<Input>,
    /// Most the client pays (token base units).
    pub max_price: U256,
    /// Seconds from the request within which a deal must be agreed.
    pub match_timeout: u32,
    /// Seconds from the deal within which the result must be submitted.
    pub execution_timeout: u32,
    /// Gas for the client's callback.
    pub callback_gas_limit: u32,
    /// Most inline output bytes the client wants on-chain.
    pub max_output_bytes: u32,
    /// Results collateral as basis points of the price.
    pub results_collateral_multiplier_bps: u32,
    /// Seconds during which the client may challenge the result.
    pub challenge_window: u32,
    /// An audit rate, basis points, the client bought on top of the protocol's.
    #[serde(default)]
    pub extra_audit_bps: u16,
    /// The providers who may take the job; empty: any.
    #[serde(default)]
    pub providers: Vec<Address>,
    /// The record a provider needs to take the job.
    #[serde(default, flatten)]
    pub min_record: MinRecord,
}

/// The least record a request asks of the provider who takes it, checked by `agreeDeal` as
/// `LilypadChecks.checkRecord` does: both zero asks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinRecord {
    /// Least results delivered (Succeeded or JobFailed).
    #[serde(default)]
    pub min_delivered: u32,
    /// Least share, basis points, of its deals (results and timeouts) that ended without its
    /// fault (a ProviderError, a timeout or an overturned result); 0: any.
    #[serde(default)]
    pub min_reliability_bps: u16,
}

impl MinRecord {
    /// Whether it asks anything.
    pub fn is_empty(&self) -> bool {
        self.min_delivered == 0 && self.min_reliability_bps == 0
    }

    /// `Ok` when a record with these counts meets it, else `Err((delivered, reliability_bps))`:
    /// what the contract's `RecordBelowMinimum` reports. `results` counts every result submitted
    /// (Succeeded, JobFailed and ProviderError). A provider with no deal is 100% reliable.
    pub fn check(
        &self,
        results: u64,
        provider_errors: u64,
        timed_out: u64,
        overturned: u64,
    ) -> Result<(), (u64, u64)> {
        let delivered = results.saturating_sub(provider_errors);
        let deals = results.saturating_add(timed_out);
        let faults = provider_errors
            .saturating_add(timed_out)
            .saturating_add(overturned);
        let reliability = deals
            .saturating_sub(faults)
            .saturating_mul(10_000)
            .checked_div(deals)
            .unwrap_or(10_000);
        if delivered < u64::from(self.min_delivered)
            || reliability < u64::from(self.min_reliability_bps)
        {
            return Err((delivered, reliability));
        }
        Ok(())
    }
}

/// A job request indexed from a chain: published by the relayer on `lilypad.jobs.<chainId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRequested {
    /// Which job.
    pub key: JobKey,
    /// The Lilypad contract on that chain.
    pub lilypad: Address,
    /// Its per-contract request sequence number.
    pub sequence: u64,
    /// Who asked (and is called back).
    pub client: Address,
    /// keccak256 of the ABI-encoded request: a deal names it, so it binds the provider to this
    /// exact request.
    pub request_hash: B256,
    /// The block that holds the request.
    pub block_number: u64,
    /// That block's hash (a consumer re-checks the job on-chain before acting, in case of a reorg).
    pub block_hash: B256,
    /// The transaction that made the request.
    pub tx_hash: B256,
    /// The request itself.
    pub spec: JobSpec,
}

impl JobRequested {
    /// This request under its job id.
    pub fn job_ref(&self) -> JobRef {
        JobRef::new(self.key, self.request_hash)
    }

    /// The message id that deduplicates it on the jobs stream:
    /// `<chainId>:<jobId>:<requestHash>:<blockHash>`. The request hash and the block are part of
    /// it so that a request re-made under the same id after a reorganisation is not mistaken
    /// for the one it replaced, even when it is the same request (it hashes the same, but is in
    /// another block). A request indexed again from the same block is dropped as the duplicate
    /// it is.
    pub fn msg_id(&self) -> String {
        format!("{}:{}", self.job_ref().id(), self.block_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_least_record_counts_faults_as_the_contract_does() {
        let asks = |min_delivered, min_reliability_bps| MinRecord {
            min_delivered,
            min_reliability_bps,
        };
        // one delivered result and one timeout: 1 delivered, 50% of 2 deals without a fault
        assert_eq!(asks(0, 5_001).check(1, 0, 1, 0), Err((1, 5_000)));
        assert_eq!(asks(1, 5_000).check(1, 0, 1, 0), Ok(()));
        // a provider error delivers nothing and is a fault
        assert_eq!(asks(0, 1).check(1, 1, 0, 0), Err((0, 0)));
        // an overturned result is a fault on top of the result it was
        assert_eq!(asks(0, 10_000).check(4, 0, 0, 1), Err((4, 7_500)));
        // a newcomer is fully reliable but has delivered nothing
        assert_eq!(asks(0, 10_000).check(0, 0, 0, 0), Ok(()));
        assert_eq!(asks(1, 0).check(0, 0, 0, 0), Err((0, 10_000)));
        assert!(asks(0, 0).is_empty() && !asks(1, 0).is_empty());
    }

    #[test]
    fn job_keys_print_as_chain_colon_id() {
        let key = JobKey {
            chain_id: 31337,
            job_id: U256::from(42),
        };
        assert_eq!(key.to_string(), "31337:42");
    }

    #[test]
    fn job_refs_print_with_a_request_hash_prefix_and_id_in_full() {
        let key = JobKey {
            chain_id: 31337,
            job_id: U256::from(2),
        };
        let r = JobRef::new(key, B256::repeat_byte(0xab));
        assert_eq!(r.to_string(), "31337:2:abababab");
        assert_eq!(r.id(), format!("31337:2:0x{}", "ab".repeat(32)));
    }

    #[test]
    fn a_job_id_reused_by_another_request_gets_other_deal_and_result_ids() {
        let key = JobKey {
            chain_id: 31337,
            job_id: U256::from(2),
        };
        let deal = |request_hash| SignedDeal {
            key,
            lilypad: Address::repeat_byte(1),
            terms: DealTerms {
                job_id: key.job_id,
                request_hash,
                provider: Address::repeat_byte(2),
                price: U256::from(10),
                timeout_collateral: U256::from(20),
                results_collateral: U256::from(30),
                expiry: U256::from(1_000),
            },
            signature: Bytes::from_static(&[7; 65]),
        };
        let result = |request_hash, deal_expiry: u64| SignedResult {
            key,
            request_hash,
            deal_expiry: U256::from(deal_expiry),
            lilypad: Address::repeat_byte(1),
            provider: Address::repeat_byte(2),
            status: 1,
            result_cid: "bafkqaaa".into(),
            inline_output: Bytes::from_static(b"out"),
            exit_code: 0,
            error: String::new(),
            signature: Bytes::from_static(&[7; 65]),
        };
        let (old, new) = (B256::repeat_byte(0xa), B256::repeat_byte(0xb));
        assert_ne!(deal(old).msg_id(), deal(new).msg_id());
        assert_ne!(result(old, 1_000).msg_id(), result(new, 1_000).msg_id());
        assert_ne!(
            result(new, 1_000).msg_id(),
            result(new, 1_001).msg_id(),
            "the same request re-made, under another deal"
        );
        assert_eq!(deal(new).job_ref(), result(new, 1_000).job_ref());
        assert_eq!(
            deal(new).msg_id(),
            format!(
                "{}:{}:1000",
                JobRef::new(key, new).id(),
                Address::repeat_byte(2)
            )
        );
    }

    #[test]
    fn a_request_message_round_trips_through_json_in_camel_case() {
        let msg = JobRequested {
            key: JobKey {
                chain_id: 1,
                job_id: U256::from(7),
            },
            lilypad: Address::repeat_byte(1),
            sequence: 7,
            client: Address::repeat_byte(2),
            request_hash: B256::repeat_byte(3),
            block_number: 10,
            block_hash: B256::repeat_byte(4),
            tx_hash: B256::repeat_byte(5),
            spec: JobSpec {
                module: "cowsay".into(),
                version: "v1".into(),
                module_id: Default::default(),
                deterministic: false,
                inputs: vec![Input {
                    key: "message".into(),
                    value: "a = b c".into(),
                }],
                max_price: U256::from(10u64).pow(U256::from(18)),
                match_timeout: 60,
                execution_timeout: 600,
                callback_gas_limit: 200_000,
                max_output_bytes: 1024,
                results_collateral_multiplier_bps: 20_000,
                challenge_window: 3600,
                ..Default::default()
            },
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.contains("\"requestHash\":\"0x0303"), "{json}");
        assert!(
            json.contains("\"maxPrice\":\"0xde0b6b3a7640000\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<JobRequested>(&json).unwrap(), msg);
        assert_eq!(
            msg.msg_id(),
            format!("1:7:{}:{}", B256::repeat_byte(3), B256::repeat_byte(4))
        );
    }
}

/// A module by name and version, as requests and offers name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleId {
    /// Module name, e.g. `cowsay`.
    pub name: String,
    /// Module version, e.g. `1.0.0`.
    pub version: String,
}

/// Hardware a provider has free right now, or a job needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Free GPUs, each by its memory in bytes (a job needing `n` GPUs of `v` bytes needs `n`
    /// entries of at least `v`).
    pub gpu_vram_bytes: Vec<u64>,
}

/// What one provider offers on one chain. Kept in the offers bucket under the provider's address
/// and refreshed by its heartbeat; a provider that stops refreshing disappears when the bucket's
/// TTL passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The provider's address (it signs deals and results with its key).
    pub provider: Address,
    /// The subject where it answers deal proposals.
    pub deal_subject: String,
    /// Unix time (seconds) when the provider started offering: the solver prefers older offers
    /// among equally cheap ones.
    pub since: u64,
    /// Unix time (seconds) of this refresh.
    pub updated: u64,
    /// Unix time in milliseconds of this refresh (when the free capacity was read), so a solver
    /// can tell whether a proposal it made a moment ago is counted in it. 0 from providers that
    /// do not send it; a solver then goes by `updated`.
    #[serde(default)]
    pub updated_ms: u64,
    /// What it has free now.
    pub free: Capacity,
    /// The modules it runs, each with its price per job (token base units).
    pub modules: Vec<ModulePrice>,
    /// The git repositories whose Lilypad modules it runs (any commit), by URL prefix, each with
    /// its price per job. Absent from providers that run none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git_modules: Vec<GitModulesPrice>,
    /// The chains it serves, each with its Lilypad contract and the collateral it has free there
    /// (as last read from the chain).
    pub chains: Vec<ChainCollateral>,
}

/// A module and the price a provider asks for one job of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulePrice {
    /// The module.
    pub module: ModuleId,
    /// Price per job, in the chain's payment token base units.
    pub price: U256,
}

/// Lilypad modules from git that a provider runs: those of every repository whose URL starts
/// with `prefix` (a job names one as its module, with a commit as its version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitModulesPrice {
    /// The URL prefix, e.g. `https://github.com/Lilypad-Tech/`.
    pub prefix: String,
    /// Price per job, in the chain's payment token base units.
    pub price: U256,
}

impl GitModulesPrice {
    /// The price of `module` under the first of `prices` whose prefix it starts with, when
    /// `module` is a git repository URL (it holds `://`; this project's own module names never
    /// do).
    pub fn price_of(prices: &[Self], module: &str) -> Option<U256> {
        if !module.contains("://") {
            return None;
        }
        prices
            .iter()
            .find(|p| module.starts_with(p.prefix.as_str()))
            .map(|p| p.price)
    }
}

/// A provider's standing on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainCollateral {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The Lilypad contract it is registered with there.
    pub lilypad: Address,
    /// Free collateral there (token base units).
    pub free_collateral: U256,
}

/// The terms of a deal, field for field the EIP-712 `Deal` the provider signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealTerms {
    /// The job.
    pub job_id: U256,
    /// The request the provider agrees to run (keccak256 of the ABI-encoded request).
    pub request_hash: B256,
    /// The provider.
    pub provider: Address,
    /// What the client pays, at most its max price.
    pub price: U256,
    /// Collateral locked until the result: price x the job's timeout collateral multiplier.
    pub timeout_collateral: U256,
    /// Collateral locked during the challenge window: price x the client's multiplier.
    pub results_collateral: U256,
    /// Unix time after which the signature is void.
    pub expiry: U256,
}

/// What the solver asks a provider (request/reply on the provider's deal subject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealProposal {
    /// The job as indexed from its chain.
    pub job: JobRequested,
    /// The terms proposed.
    pub terms: DealTerms,
}

/// A deal the provider signed: its answer to a proposal, and what the solver publishes on
/// `lilypad.deals.<chainId>` for a relayer to submit with `agreeDeal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedDeal {
    /// Which job, on which chain.
    pub key: JobKey,
    /// The Lilypad contract.
    pub lilypad: Address,
    /// The terms.
    pub terms: DealTerms,
    /// The provider's 65-byte EIP-712 signature over the terms.
    pub signature: Bytes,
}

impl SignedDeal {
    /// The request it is a deal for (the terms name its hash).
    pub fn job_ref(&self) -> JobRef {
        JobRef::new(self.key, self.terms.request_hash)
    }

    /// The message id that deduplicates it on the deals stream:
    /// `<chainId>:<jobId>:<requestHash>:<provider>:<expiry>`. The same deal published again is
    /// dropped; a later deal for the job (the first one lapsed) is not, nor is a deal for a
    /// request re-made under the same job id after a reorganisation.
    pub fn msg_id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.job_ref().id(),
            self.terms.provider,
            self.terms.expiry
        )
    }
}

/// A result the provider signed, published on `lilypad.results.<chainId>` for a relayer to submit
/// with `submitResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedResult {
    /// Which job, on which chain.
    pub key: JobKey,
    /// The hash of the request the provider ran (the deal's): the EIP-712 `Result` does not
    /// sign it, so it is carried beside, to tell this job from another request made under the
    /// same id after a reorganisation.
    pub request_hash: B256,
    /// The expiry of the deal it was run under (unix seconds). An identical request re-made
    /// under the same job id after a reorganisation has the same request hash, but another deal:
    /// this tells their results apart.
    pub deal_expiry: U256,
    /// The Lilypad contract.
    pub lilypad: Address,
    /// The provider who ran it.
    pub provider: Address,
    /// 1 Succeeded, 2 JobFailed, 3 ProviderError.
    pub status: u8,
    /// The CID of the result directory (empty only for a provider error with no outputs).
    pub result_cid: String,
    /// At most the job's maxOutputBytes of inline output.
    pub inline_output: Bytes,
    /// The container's exit code (0 when it did not run).
    pub exit_code: i32,
    /// What went wrong, for JobFailed and ProviderError.
    pub error: String,
    /// The provider's 65-byte EIP-712 signature over the result.
    pub signature: Bytes,
}

impl SignedResult {
    /// The request it is the result of.
    pub fn job_ref(&self) -> JobRef {
        JobRef::new(self.key, self.request_hash)
    }

    /// The message id that deduplicates it on the results stream:
    /// `<chainId>:<jobId>:<requestHash>:<dealExpiry>`. The provider's repeats of a result are
    /// dropped; the result of a request re-made under the same job id after a reorganisation
    /// (another request hash, or the same request under another deal) is not.
    pub fn msg_id(&self) -> String {
        format!("{}:{}", self.job_ref().id(), self.deal_expiry)
    }
}
