//! The provider's market side: its offer and heartbeat, answers to deal proposals, and running
//! agreed jobs to signed results.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::Lilypad;
use lilypad_bindings::eip712::{self, Deal};
use lilypad_bus::{Bus, BusError, Topic, deal_subject};
use lilypad_chain::RpcOptions;
use lilypad_executor::{Executor, run_job};
use lilypad_modules::ModuleRegistry;
use lilypad_types::{
    ChainCollateral, DealProposal, DealTerms, JobKey, JobStatus, ModuleId, ModulePrice, Offer,
    SignedDeal, SignedResult,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capacity::{CapacityTracker, Reservation};
use crate::checks;
use crate::result::result_fields;

/// One chain the provider serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSettings {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// JSON-RPC endpoints (http or https; one or more of the same chain).
    pub rpc_urls: Vec<String>,
    /// The Lilypad contract it is registered with there.
    pub lilypad: Address,
}

/// How a provider behaves on the market.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Its key: it signs deals and results, and its address names it.
    pub signer: PrivateKeySigner,
    /// The chains it serves.
    pub chains: Vec<ChainSettings>,
    /// The modules it offers and its price for one job of each.
    pub prices: Vec<ModulePrice>,
    /// How often its offer is refreshed (well under the bus's offer TTL).
    pub heartbeat: Duration,
    /// The furthest in the future a deal's expiry may be (a signature that stays valid long
    /// ties up capacity and collateral long).
    pub max_deal_expiry: Duration,
    /// The least time a deal's expiry must leave for it to reach the chain.
    pub min_deal_expiry: Duration,
    /// How often it checks whether a signed deal is on-chain yet.
    pub agreement_poll: Duration,
    /// How many times publishing a result is tried before giving up (with a growing pause).
    pub publish_attempts: u32,
    /// How long past a deal's expiry (by this machine's clock) it waits for a chain that makes
    /// no blocks before giving the deal up.
    pub agreement_grace: Duration,
    /// TESTING ONLY: report altered outputs (see [`crate::result::tamper`]), so that tests can
    /// show a lying provider challenged, overturned and slashed. Never set it on a real market:
    /// every challenged result of such a provider loses its results collateral.
    pub testing_alter_output: bool,
}

impl ProviderSettings {
    /// Settings with the defaults: heartbeat 10 s, deal expiry between 5 s and 10 min ahead,
    /// agreement polled every 100 ms (a finished job's result waits for it; given up 30 s past
    /// expiry on a chain that makes no blocks), results published with up to 5 attempts.
    pub fn new(
        signer: PrivateKeySigner,
        chains: Vec<ChainSettings>,
        prices: Vec<ModulePrice>,
    ) -> Self {
        Self {
            signer,
            chains,
            prices,
            heartbeat: Duration::from_secs(10),
            max_deal_expiry: Duration::from_secs(600),
            min_deal_expiry: Duration::from_secs(5),
            agreement_poll: Duration::from_millis(100),
            publish_attempts: 5,
            agreement_grace: Duration::from_secs(30),
            testing_alter_output: false,
        }
    }
}

/// A provider that cannot start, or a chain it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No chain configured.
    #[error(
        "no chains configured: a provider needs at least one chain to serve (add one to its settings)"
    )]
    NoChains,
    /// A chain listed twice.
    #[error("chain {0} is configured twice: keep one entry per chain")]
    DuplicateChain(u64),
    /// An RPC URL that does not parse.
    #[error("chain {chain_id}: rpc_urls {url:?}: {reason}; give http(s) URLs")]
    BadRpcUrl {
        /// The chain.
        chain_id: u64,
        /// What was given.
        url: String,
        /// Why it did not parse.
        reason: String,
    },
    /// No module priced.
    #[error(
        "no module has a price, so the provider would offer nothing: set a price for each module it runs"
    )]
    NoPrices,
    /// A price for a module that is not loaded.
    #[error(
        "a price is set for module {name}:{version}, which is not loaded ({reason}): add its definition to the module directory or remove the price"
    )]
    UnknownModule {
        /// Module name.
        name: String,
        /// Module version.
        version: String,
        /// What the registry said.
        reason: String,
    },
    /// The same module priced twice.
    #[error("module {name}:{version} has two prices: keep one")]
    DuplicatePrice {
        /// Module name.
        name: String,
        /// Module version.
        version: String,
    },
    /// A chain call failed.
    #[error(
        "chain {chain_id}: {what} failed: {reason} (check the chain's rpc_urls and that the node is up)"
    )]
    Chain {
        /// The chain.
        chain_id: u64,
        /// What was being read or sent.
        what: String,
        /// The error.
        reason: String,
    },
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Why the provider will not sign a proposed deal (the text goes back to the solver).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DealRefused(pub String);

fn refuse(reason: impl Into<String>) -> DealRefused {
    DealRefused(reason.into())
}

struct Chain {
    settings: ChainSettings,
    rpc: DynProvider,
}

struct Inner {
    settings: ProviderSettings,
    address: Address,
    chains: BTreeMap<u64, Chain>,
    /// The Lilypad contract on each chain served.
    lilypads: BTreeMap<u64, Address>,
    prices: BTreeMap<ModuleId, U256>,
    bus: Bus,
    executor: Executor,
    registry: Arc<ModuleRegistry>,
    capacity: CapacityTracker,
    since: u64,
    /// Timeout collateral of deals signed but not yet seen agreed on-chain, per chain: the
    /// chain's free collateral does not show them yet.
    committed: Mutex<BTreeMap<u64, U256>>,
    /// Deals signed whose jobs are not finished, so a repeated proposal gets the same answer.
    deals: Mutex<HashMap<JobKey, SignedDeal>>,
    /// Cancelled on shutdown: every task below stops.
    cancel: CancellationToken,
    /// Every task the provider starts, so shutdown can wait for them all.
    tasks: TaskTracker,
}

/// A resource provider on the market. Cheap to clone.
#[derive(Clone)]
pub struct ResourceProvider {
    inner: Arc<Inner>,
}

impl fmt::Debug for ResourceProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceProvider")
            .field("address", &self.inner.address)
            .field("chains", &self.inner.chains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The timestamp of the chain's latest block: the clock the contract's deadlines follow.
async fn chain_now(rpc: &DynProvider) -> Result<u64, String> {
    lilypad_chain::chain_time(rpc)
        .await
        .map_err(|e| e.to_string())
}

/// A read-only RPC connection to `urls`.
pub(crate) fn connect(chain_id: u64, urls: &[String]) -> Result<DynProvider, ProviderError> {
    lilypad_chain::connect(urls, &RpcOptions::default()).map_err(|e| ProviderError::BadRpcUrl {
        chain_id,
        url: urls.join(", "),
        reason: e.to_string(),
    })
}

impl ResourceProvider {
    /// A provider with these settings, talking over `bus`, running jobs with `executor` from the
    /// modules in `registry`, within `capacity`. Checks the settings: at least one chain, each
    /// once with a valid RPC URL, at least one price, each for a loaded module.
    pub fn new(
        settings: ProviderSettings,
        bus: Bus,
        executor: Executor,
        registry: Arc<ModuleRegistry>,
        capacity: CapacityTracker,
    ) -> Result<Self, ProviderError> {
        if settings.chains.is_empty() {
            return Err(ProviderError::NoChains);
        }
        let mut chains = BTreeMap::new();
        for c in &settings.chains {
            let rpc = connect(c.chain_id, &c.rpc_urls)?;
            let chain = Chain {
                settings: c.clone(),
                rpc,
            };
            if chains.insert(c.chain_id, chain).is_some() {
                return Err(ProviderError::DuplicateChain(c.chain_id));
            }
        }
        if settings.prices.is_empty() {
            return Err(ProviderError::NoPrices);
        }
        let mut prices = BTreeMap::new();
        for p in &settings.prices {
            let m = &p.module;
            registry
                .get(&m.name, &m.version)
                .map_err(|e| ProviderError::UnknownModule {
                    name: m.name.clone(),
                    version: m.version.clone(),
                    reason: e.to_string(),
                })?;
            if prices.insert(m.clone(), p.price).is_some() {
                return Err(ProviderError::DuplicatePrice {
                    name: m.name.clone(),
                    version: m.version.clone(),
                });
            }
        }
        let address = settings.signer.address();
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                address,
                lilypads: chains
                    .iter()
                    .map(|(id, c)| (*id, c.settings.lilypad))
                    .collect(),
                chains,
                prices,
                bus,
                executor,
                registry,
                capacity,
                since: unix_now(),
                committed: Mutex::new(BTreeMap::new()),
                deals: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        })
    }

    /// The provider's address.
    pub fn address(&self) -> Address {
        self.inner.address
    }

    /// The subject where it answers deal proposals.
    pub fn deal_subject(&self) -> String {
        deal_subject(&self.inner.address.to_string())
    }

    /// Its capacity tracker.
    pub fn capacity(&self) -> &CapacityTracker {
        &self.inner.capacity
    }

    /// Free collateral on `chain_id`: what the contract says is free, less the timeout
    /// collateral of deals signed but not yet agreed.
    pub async fn free_collateral(&self, chain_id: u64) -> Result<U256, ProviderError> {
        let chain = self
            .inner
            .chains
            .get(&chain_id)
            .ok_or_else(|| ProviderError::Chain {
                chain_id,
                what: "looking up the chain".into(),
                reason: "the provider does not serve this chain".into(),
            })?;
        let lilypad = Lilypad::new(chain.settings.lilypad, &chain.rpc);
        let c = lilypad
            .collateralOf(self.inner.address)
            .call()
            .await
            .map_err(|e| ProviderError::Chain {
                chain_id,
                what: format!("reading collateralOf({})", self.inner.address),
                reason: e.to_string(),
            })?;
        let committed = lock(&self.inner.committed)
            .get(&chain_id)
            .copied()
            .unwrap_or_default();
        Ok(c.free.saturating_sub(committed))
    }

    /// The offer as it stands now: free capacity, priced modules, free collateral per chain (a
    /// chain whose collateral cannot be read is left out, and logged).
    pub async fn offer(&self) -> Offer {
        let mut chains = Vec::new();
        for (id, chain) in &self.inner.chains {
            match self.free_collateral(*id).await {
                Ok(free) => chains.push(ChainCollateral {
                    chain_id: *id,
                    lilypad: chain.settings.lilypad,
                    free_collateral: free,
                }),
                Err(e) => tracing::warn!("leaving chain {id} out of the offer: {e}"),
            }
        }
        Offer {
            provider: self.inner.address,
            deal_subject: self.deal_subject(),
            since: self.inner.since,
            updated: unix_now(),
            free: self.inner.capacity.free(),
            modules: self
                .inner
                .prices
                .iter()
                .map(|(module, price)| ModulePrice {
                    module: module.clone(),
                    price: *price,
                })
                .collect(),
            chains,
        }
    }

    /// Puts the current offer in the offers bucket once.
    pub async fn put_offer(&self) -> Result<Offer, ProviderError> {
        let offer = self.offer().await;
        self.inner
            .bus
            .put_offer(&self.inner.address.to_string(), &offer)
            .await?;
        Ok(offer)
    }

    /// Refreshes the offer every `heartbeat` until [`Heartbeat::stop`] (which removes it), until
    /// the handle is dropped (which stops refreshing: the offer expires with the bucket's TTL,
    /// as a crashed provider's would), or until the provider shuts down.
    pub fn start_heartbeat(&self) -> Heartbeat {
        let stop = self.inner.cancel.child_token();
        let me = self.clone();
        let token = stop.clone();
        let task = self.inner.tasks.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    put = me.put_offer() => if let Err(e) = put {
                        tracing::warn!("refreshing the offer failed (will retry): {e}");
                    },
                }
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(me.inner.settings.heartbeat) => {}
                }
            }
        });
        Heartbeat {
            provider: self.clone(),
            stop,
            task: Some(task),
        }
    }

    /// Answers deal proposals on its deal subject until the returned handle is dropped. Each
    /// proposal is answered with a signed deal or a refusal saying why; a malformed one with a
    /// refusal naming the decoding error.
    pub async fn serve_deals(&self) -> Result<DealServer, ProviderError> {
        let mut requests = self
            .inner
            .bus
            .serve::<DealProposal>(&self.deal_subject())
            .await?;
        let stop = self.inner.cancel.child_token();
        let token = stop.clone();
        let me = self.clone();
        let task = self.inner.tasks.spawn(async move {
            loop {
                let request = tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    r = requests.next() => match r {
                        Some(r) => r,
                        None => break,
                    },
                };
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    _ = me.handle(request) => {}
                }
            }
        });
        Ok(DealServer {
            stop,
            task: Some(task),
        })
    }

    /// Answers one proposal: a signed deal or a refusal saying why.
    async fn handle(&self, request: lilypad_bus::Request<DealProposal>) {
        let answer = match &request.body {
            Ok(proposal) => self.answer(proposal.clone()).await,
            Err(e) => Err(refuse(format!(
                "malformed deal proposal: {e} (send a DealProposal as JSON)"
            ))),
        };
        let sent = match answer {
            Ok(deal) => request.respond(deal).await,
            Err(DealRefused(reason)) => {
                tracing::info!("refused a deal: {reason}");
                request.refuse(reason).await
            }
        };
        if let Err(e) = sent {
            tracing::warn!("answering a deal proposal failed: {e}");
        }
    }

    /// Serves the market until `cancel` is cancelled: the offer's heartbeat and answers to deal
    /// proposals; then removes the offer and [shuts down](Self::shutdown), stopping every job
    /// in progress and waiting for all its tasks to end.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), ProviderError> {
        let heartbeat = self.start_heartbeat();
        let deals = match self.serve_deals().await {
            Ok(d) => d,
            Err(e) => {
                drop(heartbeat);
                self.shutdown().await;
                return Err(e);
            }
        };
        tracing::info!(address = %self.address(), subject = %self.deal_subject(), "provider running");
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.inner.cancel.cancelled() => {}
        }
        deals.stop().await;
        let removed = heartbeat.stop().await;
        self.shutdown().await;
        removed
    }

    /// Stops everything this provider started (heartbeat, deal answers, jobs in progress: their
    /// containers are stopped and removed, their deals given up) and waits until every task has
    /// ended, the executor's included.
    /// The offer is left to expire; [`Heartbeat::stop`] removes it at once.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        // The stopped jobs' containers are killed and removed by the executor's own tasks.
        self.inner.executor.wait_idle().await;
    }

    /// How many of its tasks are still running (heartbeat, deal server, jobs).
    pub fn running_tasks(&self) -> usize {
        self.inner.tasks.len()
    }

    /// Checks a proposal and, when every check passes, reserves capacity, signs the deal and
    /// starts the job (which reports its signed result once the deal is on-chain). A proposal
    /// already signed with the same terms gets the same signature again. The checks are the
    /// pure ones of `checks`: those that need no chain first, then one read of the chain (the
    /// job, its time, this provider's collateral) and the rest against what it said.
    pub async fn answer(&self, proposal: DealProposal) -> Result<SignedDeal, DealRefused> {
        let own = self.own();
        let signed = lock(&self.inner.deals).get(&proposal.job.key).cloned();
        let module = match checks::check_proposal(&proposal, &own, signed.as_ref())? {
            checks::Proposal::AlreadySigned(signed) => return Ok(*signed),
            checks::Proposal::New(module) => module,
        };
        let key = proposal.job.key;
        let chain = self.inner.chains.get(&key.chain_id).ok_or_else(|| {
            // check_proposal refused chains not served; kept for a clear error all the same.
            refuse(format!(
                "chain {} is not served by this provider",
                key.chain_id
            ))
        })?;
        let facts = self.read_chain(chain, key).await;
        let checks::Checked {
            expiry,
            deadline,
            timeout_collateral,
        } = checks::check_on_chain(&proposal, &own, &facts)?;
        let DealProposal { job, terms } = proposal;
        let reservation = self
            .inner
            .capacity
            .try_reserve(&module.resources)
            .map_err(|e| {
                refuse(format!(
                    "capacity exceeded for {}:{}: {e}",
                    job.spec.module, job.spec.version
                ))
            })?;

        let deal = Deal::from(&terms);
        let domain = eip712::domain(key.chain_id, chain.settings.lilypad);
        let signature = eip712::sign_deal(&self.inner.settings.signer, &domain, &deal)
            .map_err(|e| refuse(format!("this provider could not sign: {e}")))?;
        let signed = SignedDeal {
            key,
            lilypad: chain.settings.lilypad,
            terms: terms.clone(),
            signature: Bytes::from(signature.as_bytes().to_vec()),
        };
        {
            let mut deals = lock(&self.inner.deals);
            if deals.contains_key(&key) {
                // Another proposal for this job was signed while this one was being checked.
                return Err(refuse(format!(
                    "job {key} already has a deal signed by this provider"
                )));
            }
            deals.insert(key, signed.clone());
        }
        *lock(&self.inner.committed).entry(key.chain_id).or_default() += timeout_collateral;
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            me.run_deal(
                job,
                terms,
                reservation,
                timeout_collateral,
                expiry,
                deadline,
            )
            .await;
        });
        Ok(signed)
    }

    /// What the provider is, for the checks of a proposal.
    fn own(&self) -> checks::Own<'_> {
        checks::Own {
            address: self.inner.address,
            chains: &self.inner.lilypads,
            prices: &self.inner.prices,
            registry: &self.inner.registry,
            min_deal_expiry: self.inner.settings.min_deal_expiry,
            max_deal_expiry: self.inner.settings.max_deal_expiry,
        }
    }

    /// Everything the checks need from `chain` about job `key`, read at once.
    async fn read_chain(&self, chain: &Chain, key: JobKey) -> checks::ChainFacts {
        let lilypad = Lilypad::new(chain.settings.lilypad, &chain.rpc);
        let job = async {
            lilypad
                .getJob(key.job_id)
                .call()
                .await
                .map_err(|e| e.to_string())
        };
        let free = async {
            self.free_collateral(key.chain_id)
                .await
                .map_err(|e| e.to_string())
        };
        let (job, chain_time, free_collateral) = tokio::join!(job, chain_now(&chain.rpc), free);
        checks::ChainFacts {
            job,
            chain_time,
            free_collateral,
            now: unix_now(),
        }
    }

    fn uncommit(&self, chain_id: u64, amount: U256) {
        let mut committed = lock(&self.inner.committed);
        if let Some(c) = committed.get_mut(&chain_id) {
            *c = c.saturating_sub(amount);
        }
    }

    /// Polls the job until it is agreed with this provider; Err with the reason when it never
    /// will be (agreed with someone else, expired, or not agreed by `give_up_at`).
    async fn wait_agreed(&self, key: JobKey, expiry: u64, deadline: u64) -> Result<(), String> {
        let chain = self
            .inner
            .chains
            .get(&key.chain_id)
            .ok_or_else(|| format!("chain {} is not served", key.chain_id))?;
        let lilypad = Lilypad::new(chain.settings.lilypad, &chain.rpc);
        loop {
            match lilypad.getJob(key.job_id).call().await {
                Ok(job) => {
                    let status = job.state();
                    if status == Some(JobStatus::Agreed) && job.provider == self.inner.address {
                        return Ok(());
                    }
                    if status != Some(JobStatus::Requested) {
                        return Err(format!(
                            "job {key} went to status {} with provider {} instead of being agreed with this one",
                            JobStatus::label(job.status),
                            job.provider
                        ));
                    }
                    // The chain's clock decides; a chain that makes no blocks (an idle dev
                    // chain) is given up on once this machine's clock is well past.
                    let chain_time = chain_now(&chain.rpc).await.unwrap_or(0);
                    let grace = self.inner.settings.agreement_grace.as_secs();
                    if chain_time > expiry
                        || chain_time >= deadline
                        || unix_now() > expiry.min(deadline) + grace
                    {
                        return Err(format!(
                            "job {key} was not agreed on-chain in time (deal expiry {expiry}, match deadline {deadline}, chain time {chain_time})"
                        ));
                    }
                }
                Err(e) => tracing::warn!("reading job {key} failed (will retry): {e}"),
            }
            tokio::time::sleep(self.inner.settings.agreement_poll).await;
        }
    }

    /// Runs a signed deal's job to a published result, unless the provider shuts down first
    /// (then the job is stopped and the deal given up).
    async fn run_deal(
        self,
        job: lilypad_types::JobRequested,
        terms: DealTerms,
        reservation: Reservation,
        timeout_collateral: U256,
        expiry: u64,
        deadline: u64,
    ) {
        let key = job.key;
        let cancel = self.inner.cancel.clone();
        let guard = DealGuard {
            provider: self.clone(),
            key,
            committed: timeout_collateral,
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                tracing::info!("job {key}: stopped, the provider is shutting down");
            }
            _ = self.deal(job, terms, reservation, guard, expiry, deadline) => {}
        }
    }

    async fn deal(
        self,
        job: lilypad_types::JobRequested,
        terms: DealTerms,
        reservation: Reservation,
        mut guard: DealGuard,
        expiry: u64,
        deadline: u64,
    ) {
        let key = job.key;
        let inputs: BTreeMap<String, String> = job
            .spec
            .inputs
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect();
        let job_name = key.to_string();
        // Run at once, optimistically, while the deal goes on-chain.
        let run = run_job(
            &self.inner.executor,
            &self.inner.registry,
            &job_name,
            &job.spec.module,
            &job.spec.version,
            &inputs,
            u64::from(job.spec.max_output_bytes),
        );
        let wait = self.wait_agreed(key, expiry, deadline);
        tokio::pin!(run);
        tokio::pin!(wait);
        let mut outcome = None;
        let agreed = loop {
            tokio::select! {
                o = &mut run, if outcome.is_none() => outcome = Some(o),
                a = &mut wait => break a,
            }
        };
        guard.uncommit();
        if let Err(reason) = agreed {
            tracing::warn!("giving up job {key}: {reason}");
            drop(reservation);
            return; // dropping `run` stops and removes its container; `guard` the deal
        }
        let outcome = match outcome {
            Some(o) => o,
            None => run.await,
        };
        drop(reservation);
        let mut fields = result_fields(&outcome, job.spec.max_output_bytes);
        if self.inner.settings.testing_alter_output {
            crate::result::tamper(&mut fields);
            tracing::warn!("job {key}: TESTING ONLY: reporting an altered result");
        }
        let chain_lilypad = job.lilypad;
        let message = eip712::result_message(
            key.job_id,
            fields.status,
            fields.result_cid.as_bytes(),
            &fields.inline_output,
            fields.exit_code,
            &fields.error,
        );
        let domain = eip712::domain(key.chain_id, chain_lilypad);
        let signature = match eip712::sign_result(&self.inner.settings.signer, &domain, &message) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("job {key}: {e}");
                return;
            }
        };
        let signed = SignedResult {
            key,
            lilypad: chain_lilypad,
            provider: terms.provider,
            status: fields.status,
            result_cid: fields.result_cid,
            inline_output: Bytes::from(fields.inline_output),
            exit_code: fields.exit_code,
            error: fields.error,
            signature: Bytes::from(signature.as_bytes().to_vec()),
        };
        let msg_id = key.to_string();
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=self.inner.settings.publish_attempts.max(1) {
            match self
                .inner
                .bus
                .publish(Topic::Results, key.chain_id, &msg_id, &signed)
                .await
            {
                Ok(_) => {
                    tracing::info!("job {key}: result published (status {})", signed.status);
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        "job {key}: publishing the result failed (attempt {attempt}): {e}"
                    );
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        drop(guard);
    }
}

/// A signed deal's hold on the provider: the timeout collateral counted as committed until the
/// deal is seen on-chain (or given up), and its entry among the deals signed. Both are given
/// back when it is dropped, however the deal's task ends (finished, given up, or stopped).
struct DealGuard {
    provider: ResourceProvider,
    key: JobKey,
    committed: U256,
}

impl DealGuard {
    /// The deal is on-chain (or will never be): the chain's free collateral tells the rest.
    fn uncommit(&mut self) {
        let amount = std::mem::take(&mut self.committed);
        if !amount.is_zero() {
            self.provider.uncommit(self.key.chain_id, amount);
        }
    }
}

impl Drop for DealGuard {
    fn drop(&mut self) {
        self.uncommit();
        lock(&self.provider.inner.deals).remove(&self.key);
    }
}

/// The offer's heartbeat (see [`ResourceProvider::start_heartbeat`]).
#[derive(Debug)]
pub struct Heartbeat {
    provider: ResourceProvider,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Stops refreshing and removes the offer at once (a clean shutdown).
    pub async fn stop(mut self) -> Result<(), ProviderError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.provider
            .inner
            .bus
            .remove_offer(&self.provider.inner.address.to_string())
            .await?;
        Ok(())
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Answers deal proposals until dropped or stopped (see [`ResourceProvider::serve_deals`]).
/// Jobs already agreed keep running.
#[derive(Debug)]
pub struct DealServer {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl DealServer {
    /// Stops answering and waits until the server's task has ended.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DealServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
