//! The solver service: from a job request to a signed deal on `lilypad.deals.<chainId>`.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use alloy_primitives::U256;
use lilypad_bindings::eip712;
use lilypad_bus::{Bus, BusError, Received, Topic};
use lilypad_modules::ModuleRegistry;
use lilypad_types::{DealProposal, DealTerms, JobKey, JobRequested, Offer, SignedDeal};

use crate::matching::{Bookings, JobNeeds, explain, rank};

/// What the solver reads from a job's chain before proposing.
pub trait JobChain: Send + Sync {
    /// The job's state as it matters to the solver: `None` when the job is no longer open to a
    /// deal (agreed already, expired, or reorganised away), else its match deadline (unix time)
    /// and timeout collateral rate. `request_hash` must match the job on-chain.
    fn open_job(
        &self,
        key: JobKey,
        request_hash: alloy_primitives::B256,
    ) -> impl Future<Output = Result<Option<OpenJob>, String>> + Send;
}

/// A job open to a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenJob {
    /// Unix time after which no deal can be agreed.
    pub match_deadline: u64,
    /// Timeout collateral as basis points of the price, fixed when the job was requested.
    pub timeout_collateral_bps: u32,
}

/// Solver settings.
#[derive(Debug, Clone)]
pub struct SolverSettings {
    /// How long a provider has to answer a proposal.
    pub proposal_timeout: Duration,
    /// How long a signed deal stays valid (capped by the job's match deadline).
    pub deal_validity: Duration,
    /// Durable consumer name on the jobs stream, shared by every solver.
    pub consumer: String,
}

impl Default for SolverSettings {
    fn default() -> Self {
        Self {
            proposal_timeout: Duration::from_secs(5),
            deal_validity: Duration::from_secs(120),
            consumer: "solver".into(),
        }
    }
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A provider signed; the deal is published.
    Dealt(Box<SignedDeal>),
    /// No provider could or would take it; it is left to expire on-chain. The text says why,
    /// provider by provider.
    NoTaker(String),
    /// No provider offers the module, or the module is unknown here.
    UnknownModule(String),
    /// The job is no longer open to a deal (agreed, expired or reorganised away).
    NotOpen,
}

/// A failure that should be retried (the job stays on the stream).
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The job's chain could not be read.
    #[error("reading job {key} on its chain: {reason}")]
    Chain {
        /// The job.
        key: JobKey,
        /// The error.
        reason: String,
    },
    /// The job names a chain this solver has no RPC for.
    #[error("job {0} is on a chain this solver does not serve")]
    UnknownChain(JobKey),
    /// Chains whose deployment or RPC endpoint cannot be used; every problem is listed.
    #[error("the solver cannot start:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The solver.
#[derive(Debug)]
pub struct Solver<C> {
    bus: Bus,
    modules: ModuleRegistry,
    chains: Vec<(u64, C)>,
    settings: SolverSettings,
    bookings: Mutex<Bookings>,
}

impl<C: JobChain> Solver<C> {
    /// A solver over `chains` (chain id and its reader), knowing `modules`' resource needs.
    pub fn new(
        bus: Bus,
        modules: ModuleRegistry,
        chains: Vec<(u64, C)>,
        settings: SolverSettings,
    ) -> Self {
        Self {
            bus,
            modules,
            chains,
            settings,
            bookings: Mutex::new(Bookings::default()),
        }
    }

    fn bookings(&self) -> std::sync::MutexGuard<'_, Bookings> {
        // A poisoned lock only means another task panicked mid-update; the ledger is still usable.
        self.bookings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides one job: proposes to the best providers in turn until one signs.
    pub async fn handle(&self, job: &JobRequested) -> Result<Decision, SolverError> {
        let key = job.key;
        let Some((_, chain)) = self.chains.iter().find(|(id, _)| *id == key.chain_id) else {
            return Err(SolverError::UnknownChain(key));
        };
        let module = match self.modules.get(&job.spec.module, &job.spec.version) {
            Ok(m) => m,
            Err(e) => return Ok(Decision::UnknownModule(e.to_string())),
        };
        let Some(open) = chain
            .open_job(key, job.request_hash)
            .await
            .map_err(|reason| SolverError::Chain { key, reason })?
        else {
            return Ok(Decision::NotOpen);
        };
        let r = &module.resources;
        let needs = JobNeeds::of(
            job,
            r.cpu_millis,
            r.memory_bytes,
            r.gpus,
            r.vram_bytes,
            open.timeout_collateral_bps,
        );
        let (offers, bad) = self.bus.offers::<Offer>().await?;
        for (provider, reason) in bad {
            tracing::warn!(%provider, %reason, "ignoring an offer that does not decode");
        }
        let offers: Vec<Offer> = offers.into_iter().map(|(_, o)| o).collect();
        let (candidates, rejected) = rank(&needs, &offers, &self.bookings());
        if candidates.is_empty() {
            if !rejected.is_empty()
                && rejected
                    .iter()
                    .all(|(_, r)| *r == crate::matching::Rejection::NoModule)
            {
                return Ok(Decision::UnknownModule(format!(
                    "no provider offers {} {}",
                    job.spec.module, job.spec.version
                )));
            }
            return Ok(Decision::NoTaker(explain(&rejected)));
        }
        let mut refusals = Vec::new();
        for candidate in candidates {
            let at = now();
            let expiry = (at + self.settings.deal_validity.as_secs()).min(open.match_deadline);
            let terms = DealTerms {
                job_id: key.job_id,
                request_hash: job.request_hash,
                provider: candidate.provider,
                price: candidate.price,
                timeout_collateral: candidate.timeout_collateral,
                results_collateral: candidate.results_collateral,
                expiry: U256::from(expiry),
            };
            self.bookings().book(&candidate, &needs, at);
            let proposal = DealProposal {
                job: job.clone(),
                terms: terms.clone(),
            };
            let answer: Result<SignedDeal, BusError> = self
                .bus
                .request(
                    &candidate.deal_subject,
                    &proposal,
                    self.settings.proposal_timeout,
                )
                .await;
            match answer {
                Ok(signed) => match check_signed(&signed, &terms, key, job) {
                    Ok(()) => {
                        self.bus
                            .publish(Topic::Deals, key.chain_id, &key.to_string(), &signed)
                            .await?;
                        tracing::info!(job = %key, provider = %candidate.provider, price = %candidate.price, "deal signed and published");
                        return Ok(Decision::Dealt(Box::new(signed)));
                    }
                    Err(why) => {
                        self.bookings().release(candidate.provider, at);
                        tracing::warn!(job = %key, provider = %candidate.provider, %why, "provider answered with an unusable deal");
                        refusals.push(format!(
                            "{} answered with an unusable deal: {why}",
                            candidate.provider
                        ));
                    }
                },
                Err(e) => {
                    self.bookings().release(candidate.provider, at);
                    tracing::info!(job = %key, provider = %candidate.provider, reason = %e, "proposal not taken; trying the next provider");
                    refusals.push(format!("{}: {e}", candidate.provider));
                }
            }
        }
        let mut why = refusals;
        if !rejected.is_empty() {
            why.push(explain(&rejected));
        }
        Ok(Decision::NoTaker(why.join("; ")))
    }

    /// Consumes the jobs stream until `stop` is cancelled. Each job is acknowledged once decided; a
    /// job that failed for a passing reason (NATS, RPC) comes back after a delay.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), SolverError> {
        let consumer = self
            .bus
            .consumer::<JobRequested>(Topic::Jobs, None, &self.settings.consumer)
            .await?;
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            let batch = tokio::select! {
                b = consumer.fetch(16, Duration::from_secs(1)) => b?,
                _ = stop.cancelled() => return Ok(()),
            };
            for received in batch {
                let delivery = match received {
                    Received::Message(d) => d,
                    Received::Malformed(m) => {
                        tracing::error!(subject = %m.subject, sequence = m.sequence, reason = %m.reason, "dropped a malformed job message");
                        continue;
                    }
                };
                let job = delivery.body.clone();
                match self.handle(&job).await {
                    Ok(decision) => {
                        match &decision {
                            Decision::Dealt(_) => {}
                            Decision::NoTaker(why) => {
                                tracing::warn!(job = %job.key, %why, "no provider can take the job; it will expire on-chain")
                            }
                            Decision::UnknownModule(why) => {
                                tracing::warn!(job = %job.key, %why, "job's module is not offered; it will expire on-chain")
                            }
                            Decision::NotOpen => {
                                tracing::info!(job = %job.key, "job no longer open to a deal")
                            }
                        }
                        delivery.ack().await?;
                    }
                    Err(e) => {
                        tracing::error!(job = %job.key, error = %e, "solving failed; retrying in 2s");
                        delivery.retry_after(Duration::from_secs(2)).await?;
                    }
                }
            }
            self.bookings().expire(now().saturating_sub(600));
        }
    }
}

/// A provider's answer must be exactly the proposed terms, signed by that provider for the job's
/// chain and contract: the solver publishes nothing a relayer would waste gas on.
fn check_signed(
    signed: &SignedDeal,
    terms: &DealTerms,
    key: JobKey,
    job: &JobRequested,
) -> Result<(), String> {
    if signed.key != key || signed.lilypad != job.lilypad {
        return Err(format!(
            "it names job {} on {}, not {key} on {}",
            signed.key, signed.lilypad, job.lilypad
        ));
    }
    if &signed.terms != terms {
        return Err("its terms differ from those proposed".into());
    }
    let deal = eip712::Deal::from(terms);
    let signer = eip712::recover_deal_signer(
        &eip712::domain(key.chain_id, job.lilypad),
        &deal,
        &signed.signature,
    )
    .map_err(|e| format!("its signature is malformed: {e}"))?;
    if signer != terms.provider {
        return Err(format!(
            "it is signed by {signer}, not by the provider {}",
            terms.provider
        ));
    }
    Ok(())
}

/// A [`JobChain`] over JSON-RPC: reads `getJob` from the chain's Lilypad contract.
#[derive(Debug, Clone)]
pub struct RpcJobChain {
    provider: alloy::providers::DynProvider,
    lilypad: alloy_primitives::Address,
}

/// A reader of every chain in `chains`, by chain id, checked before anything starts: all
/// problems (a missing deployment, a bad RPC URL) reported at once.
pub fn connect_chains<'c>(
    chains: impl IntoIterator<Item = &'c lilypad_config::ChainConfig>,
) -> Result<Vec<(u64, RpcJobChain)>, SolverError> {
    let mut ready = Vec::new();
    let mut problems = Vec::new();
    for chain in chains {
        match chain.contracts() {
            Ok(c) => match RpcJobChain::new(&chain.rpc, c.lilypad) {
                Ok(r) => ready.push((chain.chain_id, r)),
                Err(e) => problems.push(format!("chain {}: {e}", chain.name)),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(ready)
    } else {
        Err(SolverError::Config(problems))
    }
}

impl RpcJobChain {
    /// A reader of the Lilypad contract at `lilypad` through `rpc` (one http(s) URL or several
    /// of the same chain).
    pub fn new(
        rpc: &(impl lilypad_chain::Endpoints + ?Sized),
        lilypad: alloy_primitives::Address,
    ) -> Result<Self, String> {
        let provider = lilypad_chain::connect(rpc, &lilypad_chain::RpcOptions::default())
            .map_err(|e| e.to_string())?;
        Ok(Self { provider, lilypad })
    }
}

impl JobChain for RpcJobChain {
    async fn open_job(
        &self,
        key: JobKey,
        request_hash: alloy_primitives::B256,
    ) -> Result<Option<OpenJob>, String> {
        let lilypad = lilypad_bindings::Lilypad::new(self.lilypad, &self.provider);
        let job = lilypad
            .getJob(key.job_id)
            .call()
            .await
            .map_err(|e| e.to_string())?;
        let deadline: u64 = job.deadline.to::<u64>();
        // The chain's clock, not this machine's, decides whether the deadline has passed.
        let chain_now = lilypad_chain::chain_time(&self.provider)
            .await
            .map_err(|e| e.to_string())?;
        let open = job.state() == Some(lilypad_types::JobStatus::Requested)
            && job.requestHash == request_hash
            && deadline > chain_now;
        Ok(open.then_some(OpenJob {
            match_deadline: deadline,
            timeout_collateral_bps: job.timeoutCollateralBps,
        }))
    }
}

#[cfg(test)]
mod connect_tests {
    use super::*;

    fn chains(text: &str) -> lilypad_config::ChainsConfig {
        lilypad_config::ChainsConfig::parse(
            text,
            std::path::Path::new("/nonexistent/chains.toml"),
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn every_chain_whose_deployment_cannot_be_read_is_named_before_anything_starts() {
        let config = chains(
            r#"
[defaults]
signer = { env = "K" }

[[chains]]
name = "good"
chain_id = 1
rpc = "http://127.0.0.1:8545"
contracts = { lilypad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" }

[[chains]]
name = "gone-a"
chain_id = 2
rpc = "http://127.0.0.1:8546"
deployment = "a.json"

[[chains]]
name = "gone-b"
chain_id = 3
rpc = "http://127.0.0.1:8547"
deployment = "b.json"
"#,
        );
        let e = connect_chains(&config.chains).unwrap_err().to_string();
        assert!(e.starts_with("the solver cannot start:"), "{e}");
        assert!(e.contains("a.json") && e.contains("b.json"), "{e}");
        assert!(!e.contains("good"), "{e}");
        let ready = connect_chains(config.chains.iter().take(1)).unwrap();
        assert_eq!(ready.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1]);
    }
}
