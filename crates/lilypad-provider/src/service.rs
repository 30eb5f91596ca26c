//! The provider's market side: its offer and heartbeat, answers to deal proposals, and running
//! agreed jobs to signed results.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use backon::{ExponentialBuilder, Retryable};
use lilypad_bindings::Lilypad;
use lilypad_bindings::eip712::{self, Deal};
use lilypad_bus::{Bus, BusError, Topic, deal_subject};
use lilypad_chain::RpcOptions;
use lilypad_executor::{Executor, Outcome, run_job};
use lilypad_modules::ModuleRegistry;
use lilypad_types::{
    ChainCollateral, DealProposal, GitModulesPrice, JobKey, JobRef, JobRequested, JobStatus,
    ModuleId, ModulePrice, Offer, SignedDeal, SignedResult,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capacity::{CapacityTracker, Reservation};
use crate::checks::{self, Agreement};
use crate::result::result_fields;
use crate::state::{DealRecord, ResultRecord, StateDir, StateError};
use crate::watch::{ChainWatch, Sighting};

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
    /// Lilypad modules from git it runs, by repository URL prefix, with their price (the
    /// registry it is given must serve the same prefixes: [`lilypad_modules::GitModules`]).
    pub git_prices: Vec<GitModulesPrice>,
    /// How often its offer is refreshed (well under the bus's offer TTL).
    pub heartbeat: Duration,
    /// The furthest in the future a deal's expiry may be (a signature that stays valid long
    /// ties up capacity and collateral long).
    pub max_deal_expiry: Duration,
    /// The least time a deal's expiry must leave for it to reach the chain.
    pub min_deal_expiry: Duration,
    /// How often it reads each chain for the signed deals not yet agreed there: one read of the
    /// latest block per chain, and every such deal's job in one batch when that block is new
    /// (see `crate::watch`).
    pub agreement_poll: Duration,
    /// The first pause between attempts to publish a result; pauses double (with jitter) up to
    /// `publish_max_delay`, and attempts go on until the job's result deadline.
    pub publish_min_delay: Duration,
    /// The longest pause between attempts to publish a result.
    pub publish_max_delay: Duration,
    /// How often a published result's job is read on-chain, until the result is there (its
    /// record is kept until then).
    pub result_poll: Duration,
    /// How long past a deadline by this machine's clock it keeps watching a chain whose clock
    /// lags (one that makes no blocks, as an idle dev chain): for a late agreement of a deal
    /// past its expiry (which then holds no capacity) and for a result past its deadline.
    pub agreement_grace: Duration,
    /// Where signed deals and signed results are kept until the chain no longer needs them, so
    /// a restarted provider runs its agreed jobs and publishes its finished results (see
    /// `crate::state`). `None` keeps them in memory only: a restart loses them.
    pub state_dir: Option<PathBuf>,
    /// TESTING ONLY: report altered outputs (see [`crate::result::tamper`]), so that tests can
    /// show a lying provider challenged, overturned and slashed. Never set it on a real market:
    /// every challenged result of such a provider loses its results collateral.
    pub testing_alter_output: Option<crate::result::Tamper>,
}

impl ProviderSettings {
    /// Settings with the defaults: heartbeat 10 s, deal expiry between 5 s and 10 min ahead,
    /// agreement polled every 100 ms (a deal holds capacity until its expiry; a late agreement
    /// is watched for 30 s more), results published with jittered exponential backoff from
    /// 500 ms to 10 s until the job's deadline and watched on-chain every 2 s, nothing kept on
    /// disk (`state_dir` is `None`; `lilypad provider` sets it).
    pub fn new(
        signer: PrivateKeySigner,
        chains: Vec<ChainSettings>,
        prices: Vec<ModulePrice>,
    ) -> Self {
        Self {
            signer,
            chains,
            prices,
            git_prices: Vec::new(),
            heartbeat: Duration::from_secs(10),
            max_deal_expiry: Duration::from_secs(600),
            min_deal_expiry: Duration::from_secs(5),
            agreement_poll: Duration::from_millis(100),
            publish_min_delay: Duration::from_millis(500),
            publish_max_delay: Duration::from_secs(10),
            result_poll: Duration::from_secs(2),
            agreement_grace: Duration::from_secs(30),
            state_dir: None,
            testing_alter_output: None,
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
    /// The state directory could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
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
    /// The reader of the jobs of signed deals waiting for their agreement.
    watch: Arc<ChainWatch>,
}

impl Chain {
    /// Job `key` as this chain's Lilypad contract stores it; the error as text for the checks.
    async fn job(&self, key: JobKey) -> Result<Lilypad::Job, String> {
        Lilypad::new(self.settings.lilypad, &self.rpc)
            .getJob(key.job_id)
            .call()
            .await
            .map_err(|e| e.to_string())
    }
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
    /// Deals signed whose jobs are not finished, so a repeated proposal gets the same answer;
    /// by request, so a deal kept for a request replaced by a reorganisation does not stand in
    /// the way of the request now under its job id.
    deals: Mutex<HashMap<JobRef, SignedDeal>>,
    /// Where signed deals and results are kept (see [`ProviderSettings::state_dir`]).
    state: Option<StateDir>,
    /// Told when the offer changed other than by capacity (collateral given back).
    offer_changed: Notify,
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
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut chains = BTreeMap::new();
        for c in &settings.chains {
            let rpc = connect(c.chain_id, &c.rpc_urls)?;
            let watch = ChainWatch::new(
                rpc.clone(),
                c.lilypad,
                settings.agreement_poll,
                tasks.clone(),
                cancel.clone(),
            );
            let chain = Chain {
                settings: c.clone(),
                rpc,
                watch,
            };
            if chains.insert(c.chain_id, chain).is_some() {
                return Err(ProviderError::DuplicateChain(c.chain_id));
            }
        }
        if settings.prices.is_empty() && settings.git_prices.is_empty() {
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
        let state = settings
            .state_dir
            .as_deref()
            .map(StateDir::open)
            .transpose()?;
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
                state,
                offer_changed: Notify::new(),
                cancel,
                tasks,
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
        // Stamped before the capacity is read: a proposal a solver made before the stamp is
        // counted in `free` unless it is still on its way.
        let updated_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Offer {
            provider: self.inner.address,
            deal_subject: self.deal_subject(),
            since: self.inner.since,
            updated: updated_ms / 1000,
            updated_ms,
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
            git_modules: self.inner.settings.git_prices.clone(),
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

    /// Refreshes the offer every `heartbeat`, and at once when capacity or committed collateral
    /// changes, until [`Heartbeat::stop`] (which removes it), until
    /// the handle is dropped (which stops refreshing: the offer expires with the bucket's TTL,
    /// as a crashed provider's would), or until the provider shuts down.
    pub fn start_heartbeat(&self) -> Heartbeat {
        let stop = self.inner.cancel.child_token();
        let me = self.clone();
        let token = stop.clone();
        let mut capacity = self.inner.capacity.changes();
        let task = self.inner.tasks.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    put = me.put_offer() => if let Err(e) = put {
                        tracing::warn!("refreshing the offer failed (will retry): {e}");
                    },
                }
                // Refreshed on the heartbeat, and at once when capacity is taken or given back
                // (a job ends, a deal expires unused) or committed collateral is released.
                tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    Ok(()) = capacity.changed() => {}
                    _ = me.inner.offer_changed.notified() => {}
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

    /// Serves the market until `cancel` is cancelled: first [recovers](Self::recover) what the
    /// state directory kept, then the offer's heartbeat and answers to deal proposals; then removes the offer and [shuts down](Self::shutdown), stopping every job
    /// in progress and waiting for all its tasks to end.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), ProviderError> {
        if let Err(e) = self.recover() {
            self.shutdown().await;
            return Err(e);
        }
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
        // A Lilypad module from git is fetched off the runtime's threads before the checks.
        let spec = &proposal.job.spec;
        if let Some(fetch) = self.inner.registry.git_fetch(&spec.module, &spec.version) {
            let _ = tokio::task::spawn_blocking(fetch).await;
        }
        let own = self.own();
        let signed = lock(&self.inner.deals)
            .get(&proposal.job.job_ref())
            .cloned();
        let module = match checks::check_proposal(&proposal, &own, signed.as_ref())? {
            checks::Proposal::AlreadySigned(signed) => return Ok(*signed),
            checks::Proposal::New(module) => module,
        };
        let key = proposal.job.key;
        let job_ref = proposal.job.job_ref();
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
            if deals.contains_key(&job_ref) {
                // Another proposal for this job was signed while this one was being checked.
                return Err(refuse(format!(
                    "job {job_ref} already has a deal signed by this provider"
                )));
            }
            deals.insert(job_ref, signed.clone());
        }
        let record = DealRecord {
            job,
            deal: signed.clone(),
            expiry,
            match_deadline: deadline,
            timeout_collateral,
        };
        // Kept on disk before the signature is handed out: a restart must know every deal
        // that may land.
        if let Some(state) = &self.inner.state
            && let Err(e) = state.put_deal(&record)
        {
            lock(&self.inner.deals).remove(&job_ref);
            return Err(refuse(format!(
                "this provider could not record the deal: {e}"
            )));
        }
        self.start_deal(record, reservation);
        Ok(signed)
    }

    /// What the provider is, for the checks of a proposal.
    fn own(&self) -> checks::Own<'_> {
        checks::Own {
            address: self.inner.address,
            chains: &self.inner.lilypads,
            prices: &self.inner.prices,
            git_prices: &self.inner.settings.git_prices,
            registry: &self.inner.registry,
            min_deal_expiry: self.inner.settings.min_deal_expiry,
            max_deal_expiry: self.inner.settings.max_deal_expiry,
        }
    }

    /// Everything the checks need from `chain` about job `key`, read at once.
    async fn read_chain(&self, chain: &Chain, key: JobKey) -> checks::ChainFacts {
        let job = chain.job(key);
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
        drop(committed);
        self.inner.offer_changed.notify_one();
    }

    /// Counts a signed deal's collateral as committed and starts its task, which holds
    /// `reservation` while it needs it.
    fn start_deal(&self, record: DealRecord, reservation: Reservation) {
        let key = record.job.key;
        *lock(&self.inner.committed).entry(key.chain_id).or_default() += record.timeout_collateral;
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            me.run_deal(record, reservation).await;
        });
    }

    /// Picks up what the state directory kept from a previous run (nothing without one): every
    /// signed result is published again (the results stream drops duplicates by message id)
    /// and watched until the chain has it; every signed deal without a result gets its
    /// capacity back and its task again, so a deal agreed meanwhile is run and one still valid
    /// keeps its reservation until it lands or expires. [`run`](Self::run) calls it first.
    /// Files that do not decode are moved aside and logged.
    pub fn recover(&self) -> Result<(), ProviderError> {
        let Some(state) = &self.inner.state else {
            return Ok(());
        };
        let me = self.inner.address;
        let results = state.results(me)?;
        let deals = state.deals(me)?;
        for bad in results.bad.iter().chain(&deals.bad) {
            tracing::error!("a state file could not be read, and is left out: {bad}");
        }
        let mut finished = BTreeSet::new();
        for record in results.records {
            let job_ref = record.result.job_ref();
            finished.insert(job_ref);
            tracing::info!(
                "job {job_ref}: publishing the result kept from a previous run until the chain has it"
            );
            let me = self.clone();
            let cancel = self.inner.cancel.clone();
            self.inner.tasks.spawn(async move {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {}
                    _ = me.redeliver(record) => {}
                }
            });
        }
        for record in deals.records {
            let key = record.job.key;
            let job_ref = record.job.job_ref();
            if finished.contains(&job_ref) {
                self.forget_deal(job_ref);
                continue;
            }
            if !self.inner.chains.contains_key(&key.chain_id) {
                tracing::warn!(
                    "job {job_ref}: a deal kept from a previous run is for chain {}, which this provider no longer serves; its file is left in {}",
                    key.chain_id,
                    state.deals_dir().display()
                );
                continue;
            }
            // Its capacity is taken before the first offer goes out; the chain decides next.
            let reservation = self.inner.capacity.reserve_anyway(&self.needs(&record.job));
            lock(&self.inner.deals).insert(job_ref, record.deal.clone());
            let me = self.clone();
            let cancel = self.inner.cancel.clone();
            self.inner.tasks.spawn(async move {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {}
                    _ = me.resume_deal(record, reservation) => {}
                }
            });
        }
        Ok(())
    }

    /// A deal kept from a previous run: one look at the chain first, so that a deal lost
    /// meanwhile (the job timed out, went elsewhere, or the chain started afresh) or expired
    /// unused is forgotten without starting its container; otherwise it goes on as if just
    /// signed (agreed: run; still valid: run, waiting for the agreement).
    async fn resume_deal(self, record: DealRecord, reservation: Reservation) {
        let key = record.job.key;
        let job_ref = record.job.job_ref();
        match self.look(&record).await {
            Agreement::Lost(reason) | Agreement::Expired(reason) => {
                tracing::info!(
                    "job {job_ref}: the deal kept from a previous run is over: {reason}"
                );
                let mut deals = lock(&self.inner.deals);
                if deals.get(&job_ref) == Some(&record.deal) {
                    deals.remove(&job_ref);
                }
                drop(deals);
                self.forget_deal(job_ref);
            }
            Agreement::Agreed { .. } | Agreement::Pending => {
                tracing::info!("job {job_ref}: resuming a deal kept from a previous run");
                *lock(&self.inner.committed).entry(key.chain_id).or_default() +=
                    record.timeout_collateral;
                self.run_deal(record, reservation).await;
            }
        }
    }

    /// The jobs whose signed results are kept in the state directory (empty without one): those
    /// not yet seen on-chain.
    pub fn kept_results(&self) -> Vec<JobRef> {
        let Some(state) = &self.inner.state else {
            return Vec::new();
        };
        match state.results(self.inner.address) {
            Ok(loaded) => loaded.records.iter().map(|r| r.result.job_ref()).collect(),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }

    /// What a job's module needs (nothing when the module is gone: the job then fails at once,
    /// with a result saying so).
    fn needs(&self, job: &JobRequested) -> lilypad_modules::Resources {
        let inputs: BTreeMap<String, String> = job
            .spec
            .inputs
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect();
        self.inner
            .registry
            .module(&job.spec.module, &job.spec.version, &inputs)
            .map(|m| m.resources)
            .unwrap_or(lilypad_modules::Resources {
                cpu_millis: 0,
                memory_bytes: 0,
                gpus: 0,
                vram_bytes: 0,
            })
    }

    fn forget_deal(&self, job_ref: JobRef) {
        if let Some(state) = &self.inner.state
            && let Err(e) = state.remove_deal(job_ref)
        {
            tracing::warn!("job {job_ref}: {e}");
        }
    }

    fn forget_result(&self, job_ref: JobRef) {
        if let Some(state) = &self.inner.state
            && let Err(e) = state.remove_result(job_ref)
        {
            tracing::warn!("job {job_ref}: {e}");
        }
    }

    /// Watches the chain (its [`ChainWatch`], which reads every `agreement_poll`) until
    /// [`checks::agreement`] decides. With `late`
    /// (the deal is past its expiry by this machine's clock, and holds nothing), an
    /// [`Agreement::Expired`] is watched on until the chain shows it lost, or this machine's
    /// clock is `agreement_grace` past the expiry (or match deadline), or a new deal is signed
    /// for the job (which then owns it).
    async fn watch_agreement(&self, record: &DealRecord, late: bool) -> Agreement {
        let key = record.job.key;
        let job_ref = record.job.job_ref();
        let Some(chain) = self.inner.chains.get(&key.chain_id) else {
            return Agreement::Lost(format!("chain {} is not served", key.chain_id));
        };
        let give_up_at = record.expiry.min(record.match_deadline)
            + self.inner.settings.agreement_grace.as_secs();
        let taken_over = || {
            (late && lock(&self.inner.deals).contains_key(&job_ref)).then(|| {
                Agreement::Lost(format!(
                    "job {job_ref}: a new deal was signed for it after this one expired, and takes it from here"
                ))
            })
        };
        let mut watching = chain.watch.watch(key.job_id);
        loop {
            if let Some(lost) = taken_over() {
                return lost;
            }
            let seen = watching.next().await;
            if let Some(lost) = taken_over() {
                return lost;
            }
            match self.decide(record, &seen) {
                Agreement::Pending => {}
                Agreement::Expired(reason) if late => {
                    if unix_now() > give_up_at {
                        return Agreement::Lost(reason);
                    }
                }
                other => return other,
            }
        }
    }

    /// One look at the chain for a signed deal ([`checks::agreement`]).
    async fn look(&self, record: &DealRecord) -> Agreement {
        let key = record.job.key;
        match self.inner.chains.get(&key.chain_id) {
            Some(chain) => {
                let seen = chain.watch.watch(key.job_id).next().await;
                self.decide(record, &seen)
            }
            None => Agreement::Lost(format!("chain {} is not served", key.chain_id)),
        }
    }

    /// What one sighting of a signed deal's job says ([`checks::agreement`]).
    fn decide(&self, record: &DealRecord, seen: &Sighting) -> Agreement {
        let key = record.job.key;
        let job_ref = record.job.job_ref();
        if let Err(e) = &seen.job {
            tracing::warn!("reading job {job_ref} failed (will retry): {e}");
        }
        checks::agreement(
            self.inner.address,
            key,
            record.job.request_hash,
            seen.job.as_ref().map_err(String::as_str),
            seen.chain_time,
            unix_now(),
            record.expiry,
            record.match_deadline,
        )
    }

    /// Runs a signed deal's job to a published result, unless the provider shuts down first
    /// (then the job is stopped, and its deal or result stays in the state directory for the
    /// next start).
    async fn run_deal(self, record: DealRecord, reservation: Reservation) {
        let job_ref = record.job.job_ref();
        let cancel = self.inner.cancel.clone();
        let guard = DealGuard {
            provider: self.clone(),
            job_ref,
            committed: record.timeout_collateral,
            deal: record.deal.clone(),
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                tracing::info!("job {job_ref}: stopped, the provider is shutting down");
            }
            _ = self.deal(record, reservation, guard) => {}
        }
    }

    /// Runs job `job` in its container.
    async fn run_container(&self, job: &JobRequested) -> Outcome {
        let inputs: BTreeMap<String, String> = job
            .spec
            .inputs
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect();
        run_job(
            &self.inner.executor,
            &self.inner.registry,
            &job.job_ref().to_string(),
            &job.spec.module,
            &job.spec.version,
            &inputs,
            u64::from(job.spec.max_output_bytes),
        )
        .await
    }

    /// A signed deal, from its signature to its published result. The job runs at once,
    /// optimistically, while the deal goes on-chain; its capacity is held while its container
    /// runs, and no longer than the deal's expiry while the deal is not agreed.
    async fn deal(self, record: DealRecord, reservation: Reservation, mut guard: DealGuard) {
        let job_ref = record.job.job_ref();
        let mut reservation = Some(reservation);
        let mut run = Box::pin(self.run_container(&record.job));
        let mut outcome = None;
        let decided = {
            let watch = self.watch_agreement(&record, false);
            tokio::pin!(watch);
            loop {
                tokio::select! {
                    o = &mut run, if outcome.is_none() => {
                        outcome = Some(o);
                        // The container is done: what it held is free, agreed or not.
                        reservation = None;
                    }
                    a = &mut watch => break a,
                }
            }
        };
        let (deadline, outcome) = match decided {
            Agreement::Agreed { deadline } => {
                guard.uncommit();
                let outcome = match outcome {
                    Some(o) => o,
                    None => run.await,
                };
                drop(reservation);
                (deadline, outcome)
            }
            Agreement::Expired(reason) => {
                // Nothing held any more: the container is stopped and removed, the capacity and
                // collateral given back (the offer shows them at once).
                drop(run);
                drop(reservation);
                guard.uncommit();
                guard.release_entry();
                tracing::info!(
                    "job {job_ref}: {reason}; its capacity is free again (watching a while for a late agreement)"
                );
                match self.watch_agreement(&record, true).await {
                    Agreement::Agreed { deadline } => {
                        tracing::warn!(
                            "job {job_ref}: the deal was agreed on-chain after its expiry by this machine's clock; running the job now"
                        );
                        let outcome = match outcome {
                            Some(o) => o,
                            None => {
                                let needs = self.needs(&record.job);
                                let _held = self.inner.capacity.reserve_anyway(&needs);
                                self.run_container(&record.job).await
                            }
                        };
                        (deadline, outcome)
                    }
                    other => {
                        tracing::info!("giving up job {job_ref}: {}", reason_of(&other));
                        // A new deal signed for the job meanwhile owns its file now.
                        if !lock(&self.inner.deals).contains_key(&job_ref) {
                            self.forget_deal(job_ref);
                        }
                        return;
                    }
                }
            }
            other => {
                tracing::warn!("giving up job {job_ref}: {}", reason_of(&other));
                drop(reservation);
                self.forget_deal(job_ref);
                return; // dropping `run` stops and removes its container; `guard` the deal
            }
        };
        // A reorganisation may have replaced the request while it ran: the result would then be
        // taken for the new request under the same job id (the signed `Result` does not name the
        // request), so it is not signed.
        if let Some(now) = self.replaced(&record).await {
            tracing::warn!(
                "job {job_ref}: the job on-chain is now another request ({now}), a reorganisation replaced this one; its result is not signed"
            );
            self.forget_deal(job_ref);
            return;
        }
        let Some(record) = self.sign_result(&record.job, &record.deal, deadline, &outcome) else {
            return;
        };
        // The result replaces the deal on disk (a restart between the two publishes it).
        if let Some(state) = &self.inner.state
            && let Err(e) = state.put_result(&record)
        {
            tracing::error!(
                "job {job_ref}: the signed result could not be kept on disk, so a restart would lose it: {e}"
            );
        }
        self.forget_deal(job_ref);
        self.deliver(record).await;
        drop(guard);
    }

    /// The request now under the deal's job id on-chain, if it is another one than the deal's.
    /// A failed read decides nothing (`None`): the result is signed, and the chain's own
    /// checks come next.
    async fn replaced(&self, record: &DealRecord) -> Option<JobRef> {
        let key = record.job.key;
        let chain = self.inner.chains.get(&key.chain_id)?;
        match chain.job(key).await {
            Ok(job) if job.requestHash != record.job.request_hash => {
                Some(JobRef::new(key, job.requestHash))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(
                    "job {}: could not read it before signing its result: {e}",
                    record.job.job_ref()
                );
                None
            }
        }
    }

    /// The signed result for `outcome` (None, logged, if signing fails).
    fn sign_result(
        &self,
        job: &JobRequested,
        deal: &SignedDeal,
        deadline: u64,
        outcome: &Outcome,
    ) -> Option<ResultRecord> {
        let key = job.key;
        let job_ref = job.job_ref();
        let mut fields = result_fields(outcome, job.spec.max_output_bytes);
        if let Some(how) = self.inner.settings.testing_alter_output {
            crate::result::tamper(&mut fields, how);
            tracing::warn!("job {job_ref}: TESTING ONLY: reporting an altered result");
        }
        let message = eip712::result_message(
            key.job_id,
            fields.status,
            fields.result_cid.as_bytes(),
            &fields.inline_output,
            fields.exit_code,
            &fields.error,
        );
        let domain = eip712::domain(key.chain_id, job.lilypad);
        let signature = match eip712::sign_result(&self.inner.settings.signer, &domain, &message) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("job {job_ref}: {e}");
                return None;
            }
        };
        Some(ResultRecord {
            result: SignedResult {
                key,
                request_hash: job.request_hash,
                deal_expiry: deal.terms.expiry,
                lilypad: job.lilypad,
                provider: deal.terms.provider,
                status: fields.status,
                result_cid: fields.result_cid,
                inline_output: Bytes::from(fields.inline_output),
                exit_code: fields.exit_code,
                error: fields.error,
                signature: Bytes::from(signature.as_bytes().to_vec()),
            },
            deadline,
        })
    }

    /// Delivers a result kept from a previous run once the chain confirms it is still wanted:
    /// the job there has the same request hash and is agreed with this provider (a dev chain
    /// started afresh reuses job ids, and a stale result would take the new job's message id).
    /// The job is read until that is known, up to the result's deadline.
    async fn redeliver(&self, record: ResultRecord) {
        let key = record.result.key;
        let job_ref = record.result.job_ref();
        let Some(chain) = self.inner.chains.get(&key.chain_id) else {
            tracing::warn!(
                "job {job_ref}: a result kept from a previous run is for chain {}, which this provider no longer serves",
                key.chain_id
            );
            return;
        };
        let lilypad = Lilypad::new(chain.settings.lilypad, &chain.rpc);
        let give_up_at = record.deadline + self.inner.settings.agreement_grace.as_secs();
        loop {
            match lilypad.getJob(key.job_id).call().await {
                Ok(job) if job.requestHash != record.result.request_hash => {
                    tracing::warn!(
                        "job {job_ref}: the kept result is for another request (the chain was started afresh); forgetting it"
                    );
                    self.forget_result(job_ref);
                    return;
                }
                Ok(job)
                    if job.state() != Some(JobStatus::Agreed)
                        || job.provider != self.inner.address =>
                {
                    tracing::info!(
                        "job {job_ref}: on-chain status {}; the kept result is no longer needed",
                        JobStatus::label(job.status)
                    );
                    self.forget_result(job_ref);
                    return;
                }
                Ok(_) => break,
                Err(e) => tracing::warn!("reading job {job_ref} failed (will retry): {e}"),
            }
            if unix_now() > give_up_at {
                tracing::error!(
                    "job {job_ref}: its chain could not be read before the result deadline {}; the kept result is dropped",
                    record.deadline
                );
                self.forget_result(job_ref);
                return;
            }
            tokio::time::sleep(self.inner.settings.result_poll).await;
        }
        self.deliver(record).await;
    }

    /// Publishes a signed result on the results stream (message id
    /// `<chainId>:<jobId>:<requestHash>:<dealExpiry>`, so a repeat is dropped while the result of
    /// another request, or another deal, under the same job id is not), retrying with jittered exponential backoff until the job's result
    /// deadline (plus `agreement_grace`, by this machine's clock); then watches the job until
    /// the chain has the result, or can no longer take it, and forgets its record.
    async fn deliver(&self, record: ResultRecord) {
        let key = record.result.key;
        let job_ref = record.result.job_ref();
        let settings = &self.inner.settings;
        let give_up_at = record.deadline + settings.agreement_grace.as_secs();
        let msg_id = record.result.msg_id();
        let backoff = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(settings.publish_min_delay)
            .with_max_delay(settings.publish_max_delay)
            .without_max_times();
        let publish = || {
            self.inner
                .bus
                .publish(Topic::Results, key.chain_id, &msg_id, &record.result)
        };
        let retried = publish
            .retry(backoff)
            .when(|e| !matches!(e, BusError::Encode { .. }))
            .notify(|e, pause| {
                tracing::warn!(
                    "job {job_ref}: publishing the result failed (trying again in {pause:?}, until the job's deadline {}): {e}",
                    record.deadline
                );
            });
        let left = Duration::from_secs(give_up_at.saturating_sub(unix_now()));
        match tokio::time::timeout(left, retried).await {
            Ok(Ok(p)) => tracing::info!(
                "job {job_ref}: result published (status {}{})",
                record.result.status,
                if p.duplicate {
                    ", already on the stream"
                } else {
                    ""
                }
            ),
            Ok(Err(e)) => {
                tracing::error!("job {job_ref}: the result cannot be published: {e}");
                self.forget_result(job_ref);
                return;
            }
            Err(_) => {
                tracing::error!(
                    "job {job_ref}: the result could not be published before the job's result deadline {}; the job will time out",
                    record.deadline
                );
                self.forget_result(job_ref);
                return;
            }
        }
        self.await_submitted(&record, give_up_at).await;
        self.forget_result(job_ref);
    }

    /// Waits until the chain shows the job past `Agreed` with this provider (its result
    /// submitted, or the job ended otherwise), its result deadline passed by the chain's clock, or
    /// this machine's clock past `give_up_at`.
    async fn await_submitted(&self, record: &ResultRecord, give_up_at: u64) {
        let key = record.result.key;
        let job_ref = record.result.job_ref();
        let Some(chain) = self.inner.chains.get(&key.chain_id) else {
            return;
        };
        let lilypad = Lilypad::new(chain.settings.lilypad, &chain.rpc);
        loop {
            match lilypad.getJob(key.job_id).call().await {
                Ok(job) if job.state() != Some(JobStatus::Agreed) => {
                    tracing::info!(
                        "job {job_ref}: on-chain status {}; the kept result is no longer needed",
                        JobStatus::label(job.status)
                    );
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading job {job_ref} failed (will retry): {e}"),
            }
            if let Ok(t) = chain_now(&chain.rpc).await
                && t >= record.deadline
            {
                tracing::warn!(
                    "job {job_ref}: the result deadline {} passed (chain time {t}) before the result was submitted",
                    record.deadline
                );
                return;
            }
            if unix_now() > give_up_at {
                tracing::warn!(
                    "job {job_ref}: the result deadline {} passed by this machine's clock before the result was seen on-chain",
                    record.deadline
                );
                return;
            }
            tokio::time::sleep(self.inner.settings.result_poll).await;
        }
    }
}

fn reason_of(a: &Agreement) -> &str {
    match a {
        Agreement::Lost(r) | Agreement::Expired(r) => r,
        Agreement::Agreed { .. } => "agreed",
        Agreement::Pending => "undecided",
    }
}

/// A signed deal's hold on the provider: the timeout collateral counted as committed until the
/// deal is seen on-chain (or given up), and its entry among the deals signed. Both are given
/// back when it is dropped, however the deal's task ends (finished, given up, or stopped).
struct DealGuard {
    provider: ResourceProvider,
    job_ref: JobRef,
    committed: U256,
    /// The signed deal, so that only its own entry is removed (a new deal may be signed for the
    /// job once this one has expired).
    deal: SignedDeal,
}

impl DealGuard {
    /// The deal has expired: a new proposal for the job may be signed.
    fn release_entry(&self) {
        let mut deals = lock(&self.provider.inner.deals);
        if deals.get(&self.job_ref) == Some(&self.deal) {
            deals.remove(&self.job_ref);
        }
    }

    /// The deal is on-chain (or will never be): the chain's free collateral tells the rest.
    fn uncommit(&mut self) {
        let amount = std::mem::take(&mut self.committed);
        if !amount.is_zero() {
            self.provider.uncommit(self.job_ref.key.chain_id, amount);
        }
    }
}

impl Drop for DealGuard {
    fn drop(&mut self) {
        self.uncommit();
        self.release_entry();
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
