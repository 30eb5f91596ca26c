//! The checks a deal proposal must pass before the provider signs it, as pure functions: what
//! the provider is and what the chain says go in, the deal's figures or the refusal's exact text
//! come out. [`ResourceProvider::answer`](crate::ResourceProvider::answer) reads the chain once,
//! then calls them; the unit tests below exercise every refusal without any service.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use lilypad_bindings::Lilypad;
use lilypad_modules::{Module, ModuleRegistry};
use lilypad_types::{DealProposal, GitModulesPrice, JobStatus, ModuleId, SignedDeal};

use crate::service::DealRefused;

fn refuse(reason: impl Into<String>) -> DealRefused {
    DealRefused(reason.into())
}

/// What the provider is, as far as a proposal is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Own<'a> {
    /// Its address.
    pub address: Address,
    /// The chains it serves, each with the Lilypad contract it works with there.
    pub chains: &'a BTreeMap<u64, Address>,
    /// Its price per module.
    pub prices: &'a BTreeMap<ModuleId, U256>,
    /// Its price for Lilypad modules from git, by repository URL prefix.
    pub git_prices: &'a [GitModulesPrice],
    /// The modules it can run.
    pub registry: &'a ModuleRegistry,
    /// The least time a deal's expiry must leave.
    pub min_deal_expiry: Duration,
    /// The furthest ahead a deal's expiry may be.
    pub max_deal_expiry: Duration,
}

/// A proposal that passed [`check_proposal`].
#[derive(Debug)]
pub(crate) enum Proposal<'a> {
    /// The same terms were signed before: the same signed deal is the answer.
    AlreadySigned(Box<SignedDeal>),
    /// A new deal, for this module (a Lilypad module from git rendered with the job's inputs).
    New(Box<Cow<'a, Module>>),
}

/// The checks that need no chain: the job's chain and contract, the terms' provider, job and
/// request hash, a deal already signed for the job (`signed`), the module and the price.
pub(crate) fn check_proposal<'a>(
    proposal: &DealProposal,
    own: &Own<'a>,
    signed: Option<&SignedDeal>,
) -> Result<Proposal<'a>, DealRefused> {
    let DealProposal { job, terms } = proposal;
    let key = job.key;
    let Some(lilypad) = own.chains.get(&key.chain_id) else {
        return Err(refuse(format!(
            "chain {} is not served by this provider (it serves {:?})",
            key.chain_id,
            own.chains.keys().collect::<Vec<_>>()
        )));
    };
    if job.lilypad != *lilypad {
        return Err(refuse(format!(
            "job {key} names Lilypad contract {}, but this provider works with {lilypad} on chain {}",
            job.lilypad, key.chain_id
        )));
    }
    if terms.provider != own.address {
        return Err(refuse(format!(
            "the terms name provider {}, but this is provider {}",
            terms.provider, own.address
        )));
    }
    if !job.spec.providers.is_empty() && !job.spec.providers.contains(&own.address) {
        return Err(refuse(format!(
            "job {key}'s request accepts only the providers {:?}, not this one ({}); the contract would refuse the deal",
            job.spec.providers, own.address
        )));
    }
    if terms.job_id != key.job_id {
        return Err(refuse(format!(
            "the terms are for job {}, the proposal's job is {}",
            terms.job_id, key.job_id
        )));
    }
    if terms.request_hash != job.request_hash {
        return Err(refuse(format!(
            "request hash mismatch: the terms name {}, the job's request hashes to {}",
            terms.request_hash, job.request_hash
        )));
    }
    if let Some(signed) = signed {
        return if signed.terms == *terms {
            Ok(Proposal::AlreadySigned(Box::new(signed.clone())))
        } else {
            Err(refuse(format!(
                "job {key} already has a deal signed by this provider with other terms"
            )))
        };
    }
    let module_id = ModuleId {
        name: job.spec.module.clone(),
        version: job.spec.version.clone(),
    };
    let own_price = own
        .prices
        .get(&module_id)
        .copied()
        .or_else(|| GitModulesPrice::price_of(own.git_prices, &module_id.name));
    let Some(own_price) = own_price else {
        return Err(refuse(format!(
            "module {}:{} is not offered by this provider (it offers {})",
            module_id.name,
            module_id.version,
            own.prices
                .keys()
                .map(|m| format!("{}:{}", m.name, m.version))
                .chain(
                    own.git_prices
                        .iter()
                        .map(|g| format!("git modules from {}*", g.prefix))
                )
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let inputs: BTreeMap<String, String> = job
        .spec
        .inputs
        .iter()
        .map(|i| (i.key.clone(), i.value.clone()))
        .collect();
    let module = own
        .registry
        .module(&module_id.name, &module_id.version, &inputs)
        .map_err(|e| refuse(format!("module not runnable here: {e}")))?;
    module
        .check_pin(job.spec.module_id, job.spec.deterministic)
        .map_err(|e| refuse(e.to_string()))?;
    if terms.price < own_price {
        return Err(refuse(format!(
            "price too low: {} offered for {}:{}, this provider asks {own_price}",
            terms.price, module_id.name, module_id.version
        )));
    }
    if terms.price > job.spec.max_price {
        return Err(refuse(format!(
            "price {} is above the job's maxPrice {}",
            terms.price, job.spec.max_price
        )));
    }
    Ok(Proposal::New(Box::new(module)))
}

/// What the chain says about a proposal's job, read once. A read that failed carries its error,
/// reported only if the checks get as far as needing it.
#[derive(Debug, Clone)]
pub(crate) struct ChainFacts {
    /// The job as `getJob` returns it.
    pub job: Result<Lilypad::Job, String>,
    /// The latest block's timestamp.
    pub chain_time: Result<u64, String>,
    /// This provider's free collateral there, less what signed deals not yet agreed hold.
    pub free_collateral: Result<U256, String>,
    /// This machine's clock (unix seconds).
    pub now: u64,
}

/// A proposal that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The deal's expiry (unix seconds).
    pub expiry: u64,
    /// The job's match deadline on-chain (unix seconds).
    pub deadline: u64,
    /// What the deal locks until the result.
    pub timeout_collateral: U256,
}

/// The checks against the chain: the job is open for a deal with the same request hash, its
/// deadline is ahead, the expiry is in range, the price within the on-chain maxPrice, the
/// collateral what the contract requires and free.
pub(crate) fn check_on_chain(
    proposal: &DealProposal,
    own: &Own<'_>,
    facts: &ChainFacts,
) -> Result<Checked, DealRefused> {
    let DealProposal { job, terms } = proposal;
    let key = job.key;
    let on_chain = facts.job.as_ref().map_err(|e| {
        refuse(format!(
            "could not read job {key} on chain (try again later): {e}"
        ))
    })?;
    if on_chain.state() != Some(JobStatus::Requested) {
        return Err(refuse(format!(
            "job {key} is not open for a deal: its on-chain status is {}, not Requested",
            JobStatus::label(on_chain.status)
        )));
    }
    if on_chain.requestHash != terms.request_hash {
        return Err(refuse(format!(
            "request hash mismatch: the job on-chain has {}, the terms name {}",
            on_chain.requestHash, terms.request_hash
        )));
    }
    let chain_time = *facts.chain_time.as_ref().map_err(|e| {
        refuse(format!(
            "could not read chain {}'s time (try again later): {e}",
            key.chain_id
        ))
    })?;
    let deadline: u64 = on_chain.deadline.to();
    if deadline <= chain_time {
        return Err(refuse(format!(
            "job {key}'s match deadline {deadline} has passed (chain time {chain_time})"
        )));
    }
    // Whichever clock is ahead: the block that agrees the deal will be at least that late.
    let now = chain_time.max(facts.now);
    let min = now + own.min_deal_expiry.as_secs();
    let max = now + own.max_deal_expiry.as_secs();
    if terms.expiry < U256::from(min) || terms.expiry > U256::from(max) {
        return Err(refuse(format!(
            "expiry {} is out of range: it must be between {min} and {max} (unix seconds: at least {}s and at most {}s from now)",
            terms.expiry,
            own.min_deal_expiry.as_secs(),
            own.max_deal_expiry.as_secs()
        )));
    }
    let expiry: u64 = terms.expiry.saturating_to();
    if terms.price > U256::from(on_chain.maxPrice) {
        return Err(refuse(format!(
            "price {} is above the job's on-chain maxPrice {}",
            terms.price, on_chain.maxPrice
        )));
    }
    let bps = U256::from(10_000u64);
    let timeout_collateral = terms.price * U256::from(on_chain.timeoutCollateralBps) / bps;
    let results_collateral = terms.price * U256::from(on_chain.resultsCollateralBps) / bps;
    if terms.timeout_collateral != timeout_collateral {
        return Err(refuse(format!(
            "timeout collateral {} is not what the contract requires: price x {} bps = {timeout_collateral}",
            terms.timeout_collateral, on_chain.timeoutCollateralBps
        )));
    }
    if terms.results_collateral != results_collateral {
        return Err(refuse(format!(
            "results collateral {} is not what the contract requires: price x {} bps = {results_collateral}",
            terms.results_collateral, on_chain.resultsCollateralBps
        )));
    }
    let free = *facts
        .free_collateral
        .as_ref()
        .map_err(|e| refuse(format!("could not read this provider's collateral: {e}")))?;
    if free < timeout_collateral {
        return Err(refuse(format!(
            "not enough free collateral on chain {}: the deal locks {timeout_collateral}, {free} is free",
            key.chain_id
        )));
    }
    // submitResult swaps the timeout collateral for the results collateral: without that
    // much free, the result could not be submitted and the job would time out.
    if free < results_collateral {
        return Err(refuse(format!(
            "not enough free collateral on chain {}: submitting the result locks {results_collateral} of results collateral, {free} is free",
            key.chain_id
        )));
    }
    Ok(Checked {
        expiry,
        deadline,
        timeout_collateral,
    })
}

/// Where a signed deal stands, from one look at the chain (see [`agreement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Agreement {
    /// Agreed with this provider: run it; its result is due by `deadline` (unix seconds).
    Agreed {
        /// The job's result deadline on-chain.
        deadline: u64,
    },
    /// It will never be agreed with this provider (the reason says why): give it up.
    Lost(String),
    /// Past its expiry by this machine's clock while the chain's clock has not shown it yet: it
    /// holds nothing any more, though a chain whose clock lags could still take it.
    Expired(String),
    /// Still open, signature still valid: keep waiting.
    Pending,
}

/// What one read of the chain (`job`, and `chain_time`, the timestamp of the block the job was
/// read at; either may have failed) and this machine's clock (`now`) say about a deal signed for
/// `key` and `request_hash`, valid until `expiry`, for a job whose match deadline is
/// `match_deadline`. A job on-chain with another request hash is another job (a dev chain
/// started afresh under a kept deal): lost. `agreeDeal` needs `block.timestamp <= expiry` and
/// `< match_deadline`: once the chain's clock is past either and the job is still open at that
/// block, the deal can never land; once this machine's clock is past either (blocks follow wall
/// time, so the next block will be too, on any live chain), it is [`Agreement::Expired`]. A
/// failed job read decides nothing but [`Agreement::Expired`]: the deal may have landed before
/// the clock passed, so only a job read can say it is lost.
#[allow(clippy::too_many_arguments)]
pub(crate) fn agreement(
    me: Address,
    key: lilypad_types::JobKey,
    request_hash: alloy::primitives::B256,
    job: Result<&Lilypad::Job, &str>,
    chain_time: Option<u64>,
    now: u64,
    expiry: u64,
    match_deadline: u64,
) -> Agreement {
    if let Ok(job) = job {
        if job.requestHash != request_hash {
            return Agreement::Lost(format!(
                "job {key} on-chain is another request (request hash {}, the deal's {request_hash}): the chain was started afresh",
                job.requestHash
            ));
        }
        let status = job.state();
        if status == Some(JobStatus::Agreed) && job.provider == me {
            return Agreement::Agreed {
                deadline: job.deadline.to(),
            };
        }
        if status != Some(JobStatus::Requested) {
            return Agreement::Lost(format!(
                "job {key} went to status {} with provider {} instead of being agreed with this one",
                JobStatus::label(job.status),
                job.provider
            ));
        }
    }
    if let Some(t) = chain_time
        && (t > expiry || t >= match_deadline)
    {
        return match job {
            Ok(_) => Agreement::Lost(format!(
                "job {key} was not agreed on-chain in time (deal expiry {expiry}, match deadline {match_deadline}, chain time {t})"
            )),
            Err(e) => Agreement::Expired(format!(
                "job {key}'s deal is past its expiry by the chain's clock (expiry {expiry}, match deadline {match_deadline}, chain time {t}), and the job could not be read to see whether it landed before ({e})"
            )),
        };
    }
    if now > expiry || now >= match_deadline {
        return Agreement::Expired(format!(
            "job {key}'s deal expired unused (expiry {expiry}, match deadline {match_deadline}, this machine's clock {now})"
        ));
    }
    Agreement::Pending
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use alloy::primitives::{
        B256, Bytes, U256,
        aliases::{U24, U40, U96},
    };
    use lilypad_types::{DealTerms, JobKey, JobRequested, JobSpec};

    use super::*;

    const CHAIN: u64 = 31337;
    const NOW: u64 = 1_000_000;
    const PRICE: u64 = 1_000_000;

    struct Fixture {
        chains: BTreeMap<u64, Address>,
        prices: BTreeMap<ModuleId, U256>,
        registry: ModuleRegistry,
    }

    fn me() -> Address {
        Address::repeat_byte(0xaa)
    }

    fn lilypad() -> Address {
        Address::repeat_byte(0x11)
    }

    fn fixture() -> Fixture {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../job-modules");
        let registry = ModuleRegistry::load_dir(&dir).unwrap();
        let mut prices = BTreeMap::new();
        prices.insert(
            ModuleId {
                name: "cowsay".into(),
                version: "1.0.0".into(),
            },
            U256::from(PRICE),
        );
        // Priced, but not loaded: a registry that lost it.
        prices.insert(
            ModuleId {
                name: "gone".into(),
                version: "1.0.0".into(),
            },
            U256::from(PRICE),
        );
        Fixture {
            chains: BTreeMap::from([(CHAIN, lilypad())]),
            prices,
            registry,
        }
    }

    impl Fixture {
        fn own(&self) -> Own<'_> {
            Own {
                address: me(),
                chains: &self.chains,
                prices: &self.prices,
                git_prices: &[],
                registry: &self.registry,
                min_deal_expiry: Duration::from_secs(5),
                max_deal_expiry: Duration::from_secs(600),
            }
        }
    }

    fn proposal() -> DealProposal {
        let request_hash = B256::repeat_byte(0x42);
        let job = JobRequested {
            key: JobKey {
                chain_id: CHAIN,
                job_id: U256::from(7),
            },
            lilypad: lilypad(),
            sequence: 1,
            client: Address::repeat_byte(0xcc),
            request_hash,
            block_number: 1,
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
            spec: JobSpec {
                module: "cowsay".into(),
                version: "1.0.0".into(),
                module_id: Default::default(),
                deterministic: false,
                inputs: Vec::new(),
                max_price: U256::from(2 * PRICE),
                match_timeout: 120,
                execution_timeout: 600,
                callback_gas_limit: 0,
                max_output_bytes: 1024,
                results_collateral_multiplier_bps: 0,
                challenge_window: 0,
                ..Default::default()
            },
        };
        let terms = DealTerms {
            job_id: job.key.job_id,
            request_hash,
            provider: me(),
            price: U256::from(PRICE),
            timeout_collateral: U256::from(PRICE / 10),
            results_collateral: U256::from(PRICE),
            expiry: U256::from(NOW + 60),
        };
        DealProposal { job, terms }
    }

    fn facts() -> ChainFacts {
        let job = Lilypad::Job {
            client: Address::repeat_byte(0xcc),
            status: JobStatus::Requested as u8,
            deadline: U40::from(NOW + 120),
            callbackGasLimit: 0,
            terms: 0,
            requestHash: B256::repeat_byte(0x42),
            maxPrice: U96::from(2 * PRICE),
            executionTimeout: 600,
            challengeWindow: 0,
            maxOutputBytes: 1024,
            resultsCollateralBps: U24::from(10_000),
            timeoutCollateralBps: U24::from(1_000),
            auditBps: 0,
            deterministic: false,
            providerError: false,
            provider: Address::ZERO,
            price: U96::ZERO,
            resultHash: B256::ZERO,
        };
        ChainFacts {
            job: Ok(job),
            chain_time: Ok(NOW),
            free_collateral: Ok(U256::from(10 * PRICE)),
            now: NOW,
        }
    }

    fn refused_before_chain(p: &DealProposal) -> String {
        let f = fixture();
        match check_proposal(p, &f.own(), None) {
            Err(DealRefused(reason)) => reason,
            Ok(p) => panic!("accepted: {p:?}"),
        }
    }

    fn refused_on_chain(p: &DealProposal, facts: &ChainFacts) -> String {
        let f = fixture();
        assert!(matches!(
            check_proposal(p, &f.own(), None),
            Ok(Proposal::New(_))
        ));
        match check_on_chain(p, &f.own(), facts) {
            Err(DealRefused(reason)) => reason,
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn a_request_pinned_to_this_providers_definition_passes() {
        let f = fixture();
        let mut p = proposal();
        p.job.spec.module_id = f.registry.get("cowsay", "1.0.0").unwrap().id();
        p.job.spec.deterministic = true;
        assert!(matches!(
            check_proposal(&p, &f.own(), None),
            Ok(Proposal::New(_))
        ));
    }

    #[test]
    fn a_request_pinned_to_another_definition_is_not_signed() {
        let mut p = proposal();
        p.job.spec.module_id = B256::repeat_byte(0x11);
        p.job.spec.deterministic = true;
        let reason = refused_before_chain(&p);
        assert!(
            reason.starts_with(&format!(
                "module cowsay:1.0.0: the request pins definition {}, but the definition here",
                B256::repeat_byte(0x11)
            )),
            "{reason}"
        );
    }

    #[test]
    fn a_good_proposal_passes_with_its_figures() {
        let f = fixture();
        let p = proposal();
        match check_proposal(&p, &f.own(), None).unwrap() {
            Proposal::New(m) => assert_eq!(m.reference.name, "cowsay"),
            other => panic!("{other:?}"),
        }
        let c = check_on_chain(&p, &f.own(), &facts()).unwrap();
        assert_eq!(
            c,
            Checked {
                expiry: NOW + 60,
                deadline: NOW + 120,
                timeout_collateral: U256::from(PRICE / 10),
            }
        );
    }

    #[test]
    fn a_repeated_proposal_gets_the_signed_deal_and_other_terms_are_refused() {
        let f = fixture();
        let p = proposal();
        let signed = SignedDeal {
            key: p.job.key,
            lilypad: lilypad(),
            terms: p.terms.clone(),
            signature: Bytes::from(vec![1, 2, 3]),
        };
        match check_proposal(&p, &f.own(), Some(&signed)).unwrap() {
            Proposal::AlreadySigned(s) => assert_eq!(*s, signed),
            other => panic!("{other:?}"),
        }
        let mut other = p.clone();
        other.terms.price += U256::from(1);
        let Err(DealRefused(reason)) = check_proposal(&other, &f.own(), Some(&signed)) else {
            panic!("other terms accepted");
        };
        assert_eq!(
            reason,
            format!(
                "job {} already has a deal signed by this provider with other terms",
                p.job.key
            )
        );
    }

    #[test]
    fn refusals_before_the_chain_is_read() {
        let key = proposal().job.key;

        let mut p = proposal();
        p.job.key.chain_id = 1;
        assert_eq!(
            refused_before_chain(&p),
            "chain 1 is not served by this provider (it serves [31337])"
        );

        let mut p = proposal();
        p.job.lilypad = Address::repeat_byte(0x22);
        assert_eq!(
            refused_before_chain(&p),
            format!(
                "job {key} names Lilypad contract {}, but this provider works with {} on chain {CHAIN}",
                Address::repeat_byte(0x22),
                lilypad()
            )
        );

        let mut p = proposal();
        p.terms.provider = Address::repeat_byte(0xbb);
        assert_eq!(
            refused_before_chain(&p),
            format!(
                "the terms name provider {}, but this is provider {}",
                Address::repeat_byte(0xbb),
                me()
            )
        );

        let mut p = proposal();
        p.job.spec.providers = vec![Address::repeat_byte(0xcc)];
        assert!(
            refused_before_chain(&p).contains("accepts only the providers"),
            "{}",
            refused_before_chain(&p)
        );
        p.job.spec.providers.push(me());
        assert!(
            check_proposal(&p, &fixture().own(), None).is_ok(),
            "named among others, it is accepted"
        );

        let mut p = proposal();
        p.terms.job_id = U256::from(8);
        assert_eq!(
            refused_before_chain(&p),
            "the terms are for job 8, the proposal's job is 7"
        );

        let mut p = proposal();
        p.terms.request_hash = B256::repeat_byte(0x43);
        assert_eq!(
            refused_before_chain(&p),
            format!(
                "request hash mismatch: the terms name {}, the job's request hashes to {}",
                B256::repeat_byte(0x43),
                B256::repeat_byte(0x42)
            )
        );

        let mut p = proposal();
        p.job.spec.module = "sha256".into();
        assert_eq!(
            refused_before_chain(&p),
            "module sha256:1.0.0 is not offered by this provider (it offers cowsay:1.0.0, gone:1.0.0)"
        );

        let mut p = proposal();
        p.job.spec.module = "gone".into();
        let reason = refused_before_chain(&p);
        assert!(reason.starts_with("module not runnable here: "), "{reason}");
        assert!(reason.contains("gone"), "{reason}");

        let mut p = proposal();
        p.terms.price = U256::from(PRICE - 1);
        assert_eq!(
            refused_before_chain(&p),
            format!(
                "price too low: {} offered for cowsay:1.0.0, this provider asks {PRICE}",
                PRICE - 1
            )
        );

        let mut p = proposal();
        p.terms.price = U256::from(2 * PRICE + 1);
        assert_eq!(
            refused_before_chain(&p),
            format!(
                "price {} is above the job's maxPrice {}",
                2 * PRICE + 1,
                2 * PRICE
            )
        );
    }

    #[test]
    fn refusals_from_what_the_chain_says() {
        let p = proposal();
        let key = p.job.key;

        let mut f = facts();
        f.job = Err("connection refused".into());
        assert_eq!(
            refused_on_chain(&p, &f),
            format!("could not read job {key} on chain (try again later): connection refused")
        );

        let mut f = facts();
        if let Ok(j) = f.job.as_mut() {
            j.status = JobStatus::Agreed as u8;
        }
        assert_eq!(
            refused_on_chain(&p, &f),
            format!(
                "job {key} is not open for a deal: its on-chain status is {}, not Requested",
                JobStatus::label(JobStatus::Agreed as u8)
            )
        );

        let mut f = facts();
        if let Ok(j) = f.job.as_mut() {
            j.requestHash = B256::repeat_byte(0x44);
        }
        assert_eq!(
            refused_on_chain(&p, &f),
            format!(
                "request hash mismatch: the job on-chain has {}, the terms name {}",
                B256::repeat_byte(0x44),
                B256::repeat_byte(0x42)
            )
        );

        let mut f = facts();
        f.chain_time = Err("timeout".into());
        assert_eq!(
            refused_on_chain(&p, &f),
            format!("could not read chain {CHAIN}'s time (try again later): timeout")
        );

        let mut f = facts();
        f.chain_time = Ok(NOW + 120);
        assert_eq!(
            refused_on_chain(&p, &f),
            format!(
                "job {key}'s match deadline {} has passed (chain time {})",
                NOW + 120,
                NOW + 120
            )
        );
    }

    #[test]
    fn refusals_of_the_expiry_price_and_collateral() {
        let range = format!(
            "it must be between {} and {} (unix seconds: at least 5s and at most 600s from now)",
            NOW + 5,
            NOW + 600
        );

        let mut p = proposal();
        p.terms.expiry = U256::from(NOW + 4);
        assert_eq!(
            refused_on_chain(&p, &facts()),
            format!("expiry {} is out of range: {range}", NOW + 4)
        );
        p.terms.expiry = U256::from(NOW + 601);
        assert_eq!(
            refused_on_chain(&p, &facts()),
            format!("expiry {} is out of range: {range}", NOW + 601)
        );
        // This machine's clock ahead of the chain's moves the range.
        let mut f = facts();
        f.now = NOW + 100;
        p.terms.expiry = U256::from(NOW + 60);
        let reason = refused_on_chain(&p, &f);
        assert!(
            reason.contains(&format!("between {} and {}", NOW + 105, NOW + 700)),
            "{reason}"
        );

        let p = proposal();
        let mut f = facts();
        if let Ok(j) = f.job.as_mut() {
            j.maxPrice = U96::from(PRICE - 1);
        }
        assert_eq!(
            refused_on_chain(&p, &f),
            format!(
                "price {PRICE} is above the job's on-chain maxPrice {}",
                PRICE - 1
            )
        );

        let mut p = proposal();
        p.terms.timeout_collateral = U256::from(1);
        assert_eq!(
            refused_on_chain(&p, &facts()),
            format!(
                "timeout collateral 1 is not what the contract requires: price x 1000 bps = {}",
                PRICE / 10
            )
        );

        let mut p = proposal();
        p.terms.results_collateral = U256::from(1);
        assert_eq!(
            refused_on_chain(&p, &facts()),
            format!(
                "results collateral 1 is not what the contract requires: price x 10000 bps = {PRICE}"
            )
        );

        let p = proposal();
        let mut f = facts();
        f.free_collateral = Err("no node".into());
        assert_eq!(
            refused_on_chain(&p, &f),
            "could not read this provider's collateral: no node"
        );
        f.free_collateral = Ok(U256::from(PRICE / 10 - 1));
        assert_eq!(
            refused_on_chain(&p, &f),
            format!(
                "not enough free collateral on chain {CHAIN}: the deal locks {}, {} is free",
                PRICE / 10,
                PRICE / 10 - 1
            )
        );
        f.free_collateral = Ok(U256::from(PRICE - 1));
        assert_eq!(
            refused_on_chain(&p, &f),
            format!(
                "not enough free collateral on chain {CHAIN}: submitting the result locks {PRICE} of results collateral, {} is free",
                PRICE - 1
            )
        );
    }

    fn agreement_of(job: Result<&Lilypad::Job, &str>, chain: Option<u64>, now: u64) -> Agreement {
        let key = proposal().job.key;
        let hash = B256::repeat_byte(0x42);
        agreement(me(), key, hash, job, chain, now, NOW + 60, NOW + 120)
    }

    #[test]
    fn a_deal_agreed_with_this_provider_runs_until_the_jobs_result_deadline() {
        let mut job = facts().job.unwrap();
        job.status = JobStatus::Agreed as u8;
        job.provider = me();
        job.deadline = U40::from(NOW + 900);
        // Agreed wins whatever the clocks say (a late landing is still this provider's job).
        assert_eq!(
            agreement_of(Ok(&job), Some(NOW + 500), NOW + 500),
            Agreement::Agreed {
                deadline: NOW + 900
            }
        );
    }

    #[test]
    fn a_deal_is_lost_when_the_job_goes_elsewhere_or_the_chains_clock_passes_its_expiry() {
        let mut job = facts().job.unwrap();
        job.status = JobStatus::Agreed as u8;
        job.provider = Address::repeat_byte(0xbb);
        let Agreement::Lost(why) = agreement_of(Ok(&job), Some(NOW), NOW) else {
            panic!("agreed with another provider is lost");
        };
        assert!(
            why.contains("instead of being agreed with this one"),
            "{why}"
        );
        job.status = JobStatus::Expired as u8;
        job.provider = Address::ZERO;
        assert!(matches!(
            agreement_of(Ok(&job), Some(NOW), NOW),
            Agreement::Lost(_)
        ));
        // Another request under the same id (the chain started afresh): not this deal's job.
        let mut other = facts().job.unwrap();
        other.status = JobStatus::Agreed as u8;
        other.provider = me();
        other.requestHash = B256::repeat_byte(0x43);
        let Agreement::Lost(why) = agreement_of(Ok(&other), Some(NOW), NOW) else {
            panic!("another request is lost");
        };
        assert!(why.contains("another request"), "{why}");
        assert!(matches!(
            agreement_of(Ok(&job), Some(NOW), NOW),
            Agreement::Lost(_)
        ));
        let open = facts().job.unwrap();
        let Agreement::Lost(why) = agreement_of(Ok(&open), Some(NOW + 61), NOW) else {
            panic!("past expiry by the chain's clock is lost");
        };
        assert!(why.contains("chain time"), "{why}");
        // The match deadline too, by the chain's clock.
        assert!(matches!(
            agreement_of(Ok(&open), Some(NOW + 120), NOW),
            Agreement::Lost(_)
        ));
    }

    #[test]
    fn a_deal_past_its_expiry_by_the_chains_clock_is_not_lost_while_its_job_cannot_be_read() {
        // It may have landed before the clock passed: it holds nothing any more, but a later
        // read can still show it agreed.
        let Agreement::Expired(why) = agreement_of(Err("503"), Some(NOW + 120), NOW) else {
            panic!("a failed read cannot tell a deal lost");
        };
        assert!(
            why.contains("could not be read") && why.contains("503"),
            "{why}"
        );
        assert!(matches!(
            agreement_of(Err("503"), Some(NOW + 61), NOW),
            Agreement::Expired(_)
        ));
    }

    #[test]
    fn a_deal_expires_by_this_machines_clock_even_when_the_chain_cannot_be_read() {
        let open = facts().job.unwrap();
        assert_eq!(
            agreement_of(Ok(&open), Some(NOW), NOW + 60),
            Agreement::Pending
        );
        // A chain that makes no blocks shows an old time: this machine's clock decides.
        let Agreement::Expired(why) = agreement_of(Ok(&open), Some(NOW), NOW + 61) else {
            panic!("past expiry locally");
        };
        assert!(why.contains("expired unused"), "{why}");
        // An RPC that fails does not keep the reservation.
        assert!(matches!(
            agreement_of(Err("connection refused"), None, NOW + 61),
            Agreement::Expired(_)
        ));
        assert_eq!(agreement_of(Err("timeout"), None, NOW), Agreement::Pending);
    }
}
