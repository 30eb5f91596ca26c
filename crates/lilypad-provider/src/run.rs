//! The provider and the mediator as services: what `lilypad provider` and `lilypad mediator`
//! do once their flags are read. [`run_provider`] and [`run_mediator`] register on each chain
//! if asked, set up Docker and the result store, connect, start every task (tracked) and run
//! until the caller's [`CancellationToken`] is cancelled; then they stop every task and wait
//! for all of them before returning.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::{ConsortiumMediation, Lilypad, LilypadToken};
use lilypad_bus::{Bus, BusError, BusOptions};
use lilypad_chain::ChainClientError;
use lilypad_executor::{Executor, ExecutorConfig, Gpu};
use lilypad_modules::lilypad::LilypadPolicy;
use lilypad_modules::{GitModules, ModuleRegistry};
use lilypad_results::ResultStore;
use lilypad_types::{GitModulesPrice, ModuleId, ModulePrice};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::mediator::{Action, Mediator, MediatorError, Step};
use crate::{CapacityTracker, ChainSettings, ProviderError, ProviderSettings, ResourceProvider};

/// One chain a provider or mediator serves, as the chains file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChain {
    /// Its name in the chains file (for messages).
    pub name: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// JSON-RPC endpoints (one or more of the same chain).
    pub rpc_urls: Vec<String>,
    /// The Lilypad contract.
    pub lilypad: Address,
    /// The ConsortiumMediation contract, if the deployment has one (a mediator needs it).
    pub mediation: Option<Address>,
    /// How its events are read: from the deployment block (while no cursor is stored), how far
    /// behind the head, in what chunks.
    pub follow: lilypad_follow::FollowSettings,
    /// How often to poll the chain.
    pub poll_interval: Duration,
}

/// What a provider and a mediator both need.
#[derive(Debug, Clone)]
pub struct ComputeSettings {
    /// The key it signs with.
    pub signer: PrivateKeySigner,
    /// The chains it serves.
    pub chains: Vec<ServiceChain>,
    /// Directories of module definitions.
    pub module_dirs: Vec<PathBuf>,
    /// Lilypad modules from git: the repository URL prefixes served (none: no git modules).
    /// They are mirrored under `<state_dir>/git-modules`.
    pub git_modules: Vec<String>,
    /// Whether a Lilypad module may ask for `Network.Type: Full` (run on Docker's bridge).
    pub git_allow_network: bool,
    /// Register on each chain if needed and top free collateral up to this (token base units).
    pub collateral: Option<U256>,
    /// Metadata URL published when registering.
    pub metadata: String,
    /// Where results, job scratch directories and (for a provider) the signed deals and
    /// results not yet on-chain are kept (`results/`, `work/`, `signed/`; see [`crate::state`]).
    pub state_dir: PathBuf,
    /// IPFS trustless gateways inputs given by CID are fetched from.
    pub ipfs_gateways: Vec<String>,
    /// Size and time limits of one fetch by CID.
    pub fetch_limits: lilypad_results::FetchLimits,
}

/// What `lilypad provider` runs with.
#[derive(Debug, Clone)]
pub struct ProviderRun {
    /// Key, chains, modules, registration, state.
    pub compute: ComputeSettings,
    /// The NATS server.
    pub nats: String,
    /// Price per job for modules without their own.
    pub default_price: U256,
    /// Prices of single modules: `NAME` or `NAME@VERSION`, and the price.
    pub prices: Vec<(String, U256)>,
    /// CPU offered in thousandths of a core (None: every core).
    pub cpu_millis: Option<u64>,
    /// Memory offered in bytes (None: 4 GiB).
    pub memory_bytes: Option<u64>,
    /// Serve results over HTTP on this address.
    pub serve_results: Option<String>,
    /// TESTING ONLY: report altered results (see [`ProviderSettings::testing_alter_output`]).
    pub testing_alter_output: Option<crate::result::Tamper>,
}

/// What `lilypad mediator` runs with.
#[derive(Debug, Clone)]
pub struct MediatorRun {
    /// Key, chains, modules, registration (`collateral` is the stake kept free in the mediation
    /// contract), state (committed votes are kept under `votes/`).
    pub compute: ComputeSettings,
    /// TESTING ONLY: commit the provider's claim without re-running jobs
    /// ([`Mediator::testing_lazy`]).
    pub testing_lazy: bool,
}

/// Why a provider or mediator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The module definitions did not load.
    #[error("{0}")]
    Modules(String),
    /// No module found.
    #[error(
        "no modules found in {0:?}: pass --modules DIR with module definitions, or --git-modules PREFIX to run Lilypad modules from git"
    )]
    NoModules(Vec<PathBuf>),
    /// The result store could not be opened.
    #[error("{0}")]
    Store(String),
    /// Docker is not reachable.
    #[error("cannot reach the Docker engine (is dockerd running? ./script/setup starts one): {0}")]
    Docker(String),
    /// Removing the containers of a previous run failed.
    #[error("{0}")]
    Leftovers(String),
    /// The results server's address cannot be listened on.
    #[error("--serve-results {addr}: cannot listen there: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A chain without a mediation contract, for a mediator.
    #[error("chain {0}: the deployment has no mediation contract")]
    NoMediation(String),
    /// Not registered, and no metadata to register with.
    #[error(
        "chain {chain}: {account} is not registered yet; registering needs --metadata URL (a page describing this {role})"
    )]
    NotRegistered {
        /// The chain's name.
        chain: String,
        /// The account.
        account: Address,
        /// "provider" or "mediator".
        role: &'static str,
    },
    /// The RPC endpoint serves another chain.
    #[error("chain {chain}: {url} serves chain {actual}, but chains.toml says {expected}")]
    WrongChain {
        /// The chain's name.
        chain: String,
        /// The endpoint.
        url: String,
        /// What it serves.
        actual: u64,
        /// What the chains file says.
        expected: u64,
    },
    /// A chain call failed while registering.
    #[error("chain {chain}: {what} failed: {reason}")]
    Chain {
        /// The chain's name.
        chain: String,
        /// What was being done.
        what: String,
        /// The error.
        reason: String,
    },
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The mediator failed.
    #[error(transparent)]
    Mediator(#[from] MediatorError),
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The executor, its result store (for serving results) and the GPUs it found.
async fn executor(
    id: &str,
    compute: &ComputeSettings,
) -> Result<(Executor, Arc<ResultStore>, Vec<Gpu>), RunError> {
    let state = &compute.state_dir;
    let store = Arc::new(
        ResultStore::open(state.join("results")).map_err(|e| RunError::Store(e.to_string()))?,
    );
    let gpus = lilypad_executor::detect_gpus().await.unwrap_or_else(|e| {
        tracing::info!(reason = %e, "no GPUs detected; offering CPU only");
        Vec::new()
    });
    let mut config = ExecutorConfig::new(id, state.join("work"));
    config.ipfs_gateways = compute.ipfs_gateways.clone();
    config.fetch_limits = compute.fetch_limits;
    let executor = Executor::connect(config, store.clone(), gpus.clone())
        .await
        .map_err(|e| RunError::Docker(e.to_string()))?;
    let removed = executor
        .cleanup_leftovers()
        .await
        .map_err(|e| RunError::Leftovers(e.to_string()))?;
    if !removed.is_empty() {
        tracing::warn!(
            count = removed.len(),
            "removed containers left by a previous run"
        );
    }
    Ok((executor, store, gpus))
}

fn registry(compute: &ComputeSettings) -> Result<ModuleRegistry, RunError> {
    let dirs = &compute.module_dirs;
    let registry = ModuleRegistry::load_dirs(&dirs.iter().map(|p| p.as_path()).collect::<Vec<_>>())
        .map_err(|e| RunError::Modules(e.to_string()))?;
    if compute.git_modules.is_empty() {
        return Ok(registry);
    }
    Ok(registry.with_git(GitModules::new(
        compute.state_dir.join("git-modules"),
        compute.git_modules.clone(),
        LilypadPolicy {
            allow_network: compute.git_allow_network,
        },
    )))
}

/// The price of Lilypad modules from each served prefix: a `--price PREFIX=PRICE` naming it,
/// else `default_price`.
fn git_prices(
    prefixes: &[String],
    prices: &[(String, U256)],
    default_price: U256,
) -> Vec<GitModulesPrice> {
    prefixes
        .iter()
        .map(|prefix| GitModulesPrice {
            prefix: prefix.clone(),
            price: prices
                .iter()
                .find(|(name, _)| name == prefix)
                .map_or(default_price, |(_, p)| *p),
        })
        .collect()
}

/// A signing RPC connection to `chain` (receipts polled at the chain's interval).
fn wallet(chain: &ServiceChain, signer: PrivateKeySigner) -> Result<DynProvider, RunError> {
    let options = lilypad_chain::RpcOptions::default().poll_every(chain.poll_interval);
    lilypad_chain::connect_with_signer(&chain.rpc_urls, signer, &options).map_err(|e| {
        RunError::Chain {
            chain: chain.name.clone(),
            what: format!("connecting to rpc {:?}", chain.rpc_urls),
            reason: e.to_string(),
        }
    })
}

/// Registers `signer` as a provider on `chain` (in Lilypad) or a mediator (in the chain's
/// mediation contract) and tops its free collateral (a mediator's: its free stake) up to
/// `collateral`.
async fn ensure_registered(
    chain: &ServiceChain,
    signer: &PrivateKeySigner,
    mediator: bool,
    collateral: U256,
    metadata: &str,
) -> Result<(), RunError> {
    let err = |what: &str| {
        let chain = chain.name.clone();
        let what = what.to_owned();
        move |reason: String| RunError::Chain {
            chain: chain.clone(),
            what: what.clone(),
            reason,
        }
    };
    let provider = wallet(chain, signer.clone())?;
    match lilypad_chain::check_chain_id(&provider, chain.chain_id).await {
        Ok(()) => {}
        Err(ChainClientError::WrongChain { expected, actual }) => {
            return Err(RunError::WrongChain {
                chain: chain.name.clone(),
                url: chain.rpc_urls.join(", "),
                actual,
                expected,
            });
        }
        Err(e) => {
            return Err(err(&format!("reaching {}", chain.rpc_urls.join(", ")))(
                e.to_string(),
            ));
        }
    }
    let lilypad = Lilypad::new(chain.lilypad, &provider);
    if mediator {
        let Some(mediation) = chain.mediation else {
            return Err(RunError::NoMediation(chain.name.clone()));
        };
        return ensure_mediator(
            chain, &provider, &lilypad, mediation, signer, collateral, metadata,
        )
        .await;
    }
    let me = signer.address();
    let registered = lilypad
        .isProvider(me)
        .call()
        .await
        .map_err(|e| err("reading the registration")(e.to_string()))?;
    if !registered {
        if metadata.is_empty() {
            return Err(RunError::NotRegistered {
                chain: chain.name.clone(),
                account: me,
                role: "provider",
            });
        }
        let what = "registering as a provider";
        lilypad
            .registerProvider(metadata.into())
            .send()
            .await
            .map_err(|e| err(what)(lilypad_bindings::revert_reason(&e)))?
            .get_receipt()
            .await
            .map_err(|e| err(what)(e.to_string()))?;
        tracing::info!(chain = %chain.name, %me, "registered");
    }
    let free = lilypad
        .collateralOf(me)
        .call()
        .await
        .map_err(|e| err("reading collateralOf")(e.to_string()))?
        .free;
    if free < collateral {
        let top_up = collateral - free;
        let token_address = lilypad
            .token()
            .call()
            .await
            .map_err(|e| err("reading the token")(e.to_string()))?;
        let token = LilypadToken::new(token_address, &provider);
        token
            .approve(chain.lilypad, top_up)
            .send()
            .await
            .map_err(|e| err("approving the collateral")(e.to_string()))?
            .get_receipt()
            .await
            .map_err(|e| err("approving the collateral")(e.to_string()))?;
        lilypad
            .depositCollateral(top_up)
            .send()
            .await
            .map_err(|e| err("depositing collateral")(e.to_string()))?
            .get_receipt()
            .await
            .map_err(|e| err("depositing collateral")(e.to_string()))?;
        tracing::info!(chain = %chain.name, %me, deposited = %top_up, "collateral topped up");
    }
    Ok(())
}

/// A mediator's registration and stake live in the mediation contract: registers there and
/// tops the free stake up to `stake`; warns when that is below the contract's `mediatorStake`
/// (such a mediator is never drawn).
async fn ensure_mediator(
    chain: &ServiceChain,
    provider: &DynProvider,
    lilypad: &Lilypad::LilypadInstance<&DynProvider>,
    mediation: Address,
    signer: &PrivateKeySigner,
    stake: U256,
    metadata: &str,
) -> Result<(), RunError> {
    let err = |what: &str| {
        let chain = chain.name.clone();
        let what = what.to_owned();
        move |reason: String| RunError::Chain {
            chain: chain.clone(),
            what: what.clone(),
            reason,
        }
    };
    let consortium = ConsortiumMediation::new(mediation, provider);
    let me = signer.address();
    let registered = consortium
        .isMediator(me)
        .call()
        .await
        .map_err(|e| err("reading the registration")(e.to_string()))?;
    if !registered {
        if metadata.is_empty() {
            return Err(RunError::NotRegistered {
                chain: chain.name.clone(),
                account: me,
                role: "mediator",
            });
        }
        let what = "registering as a mediator";
        consortium
            .registerMediator(metadata.into())
            .send()
            .await
            .map_err(|e| err(what)(lilypad_bindings::revert_reason(&e)))?
            .get_receipt()
            .await
            .map_err(|e| err(what)(e.to_string()))?;
        tracing::info!(chain = %chain.name, %me, "registered as a mediator");
    }
    let needed = U256::from(
        consortium
            .mediatorStake()
            .call()
            .await
            .map_err(|e| err("reading mediatorStake")(e.to_string()))?,
    );
    if stake < needed {
        tracing::warn!(chain = %chain.name, %me, %stake, %needed, "the stake asked for is below the mediation's mediatorStake: this mediator will never be drawn (raise --collateral)");
    }
    let free = consortium
        .stakeOf(me)
        .call()
        .await
        .map_err(|e| err("reading stakeOf")(e.to_string()))?
        .free;
    if free < stake {
        let top_up = stake - free;
        let token_address = lilypad
            .token()
            .call()
            .await
            .map_err(|e| err("reading the token")(e.to_string()))?;
        LilypadToken::new(token_address, provider)
            .approve(mediation, top_up)
            .send()
            .await
            .map_err(|e| err("approving the stake")(e.to_string()))?
            .get_receipt()
            .await
            .map_err(|e| err("approving the stake")(e.to_string()))?;
        consortium
            .depositStake(top_up)
            .send()
            .await
            .map_err(|e| err("depositing stake")(lilypad_bindings::revert_reason(&e)))?
            .get_receipt()
            .await
            .map_err(|e| err("depositing stake")(e.to_string()))?;
        tracing::info!(chain = %chain.name, %me, deposited = %top_up, "stake topped up");
    }
    Ok(())
}

/// The price of each loaded module: the first of `prices` naming it (as `NAME@VERSION` or
/// `NAME`), else `default_price`.
fn module_prices(
    modules: &ModuleRegistry,
    prices: &[(String, U256)],
    default_price: U256,
) -> Vec<ModulePrice> {
    modules
        .modules()
        .map(|m| {
            let id = ModuleId {
                name: m.reference.name.clone(),
                version: m.reference.version.clone(),
            };
            let price = prices
                .iter()
                .find(|(name, _)| {
                    *name == format!("{}@{}", id.name, id.version) || *name == id.name
                })
                .map(|(_, p)| *p)
                .unwrap_or(default_price);
            ModulePrice { module: id, price }
        })
        .collect()
}

/// Runs a resource provider until `cancel` is cancelled: registers where asked, offers this
/// machine's Docker engine (and GPUs) on every chain, answers deals and runs jobs, and serves
/// results over HTTP if asked. On cancel it removes its offer, stops every job and task, and
/// returns once they have all ended.
pub async fn run_provider(run: ProviderRun, cancel: CancellationToken) -> Result<(), RunError> {
    let compute = &run.compute;
    let key = compute.signer.clone();
    let modules = registry(compute)?;
    let mut chains = Vec::new();
    for chain in &compute.chains {
        if let Some(c) = compute.collateral {
            ensure_registered(chain, &key, false, c, &compute.metadata).await?;
        }
        chains.push(ChainSettings {
            chain_id: chain.chain_id,
            rpc_urls: chain.rpc_urls.clone(),
            lilypad: chain.lilypad,
        });
    }
    let prices = module_prices(&modules, &run.prices, run.default_price);
    let git_prices = git_prices(&compute.git_modules, &run.prices, run.default_price);
    if prices.is_empty() && git_prices.is_empty() {
        return Err(RunError::NoModules(compute.module_dirs.clone()));
    }
    let cpu = run.cpu_millis.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1000, |n| n.get() as u64 * 1000)
    });
    let memory = run.memory_bytes.unwrap_or(4 << 30);
    let (executor, store, gpus) = executor(&format!("provider-{}", key.address()), compute).await?;
    let tasks = TaskTracker::new();
    // Stops the results server: on `cancel`, or when the provider cannot start.
    let stop_results = cancel.child_token();
    if let Some(addr) = &run.serve_results {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| RunError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let local = listener.local_addr().map_err(|e| RunError::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        tracing::info!(url = %format!("http://{local}/ipfs/<cid>"), "serving results over HTTP");
        let stop = stop_results.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                served = lilypad_results::server::serve(listener, store) => if let Err(e) = served {
                    tracing::error!(error = %e, "the results server stopped");
                },
            }
        });
    }
    let result = async {
        let capacity = CapacityTracker::with_gpus(cpu, memory, &gpus);
        let bus = Bus::connect(&run.nats, BusOptions::default()).await?;
        let mut settings = ProviderSettings::new(key, chains, prices);
        settings.git_prices = git_prices;
        // Signed deals and results survive a restart (see `crate::state`).
        settings.state_dir = Some(compute.state_dir.clone());
        if let Some(how) = run.testing_alter_output {
            tracing::warn!(
                ?how,
                "TESTING ONLY: --testing-alter-output is set: this provider reports altered results; every one that is challenged will be overturned and its collateral slashed"
            );
            settings.testing_alter_output = Some(how);
        }
        let provider =
            ResourceProvider::new(settings, bus, executor, Arc::new(modules), capacity)?;
        provider.run(cancel.clone()).await?;
        Ok(())
    }
    .await;
    stop_results.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

/// Runs a mediator until `cancel` is cancelled: registers where asked and, on every chain,
/// mediates each case it is drawn for (re-runs the job, votes). On cancel each chain's loop
/// finishes the round in progress (a vote half sent is not abandoned) and stops; it returns once
/// they all have.
pub async fn run_mediator(run: MediatorRun, cancel: CancellationToken) -> Result<(), RunError> {
    let compute = &run.compute;
    let key = compute.signer.clone();
    let modules = Arc::new(registry(compute)?);
    let (executor, _, _) = executor(&format!("mediator-{}", key.address()), compute).await?;
    let votes = crate::state::VoteStore::open(&compute.state_dir).map_err(MediatorError::from)?;
    if run.testing_lazy {
        tracing::warn!(
            "TESTING ONLY: --testing-lazy is set: this mediator does not re-run jobs, it commits the provider's claim; it is slashed whenever a result is overturned"
        );
    }
    let mut mediators = Vec::new();
    for chain in &compute.chains {
        if let Some(c) = compute.collateral {
            ensure_registered(chain, &key, true, c, &compute.metadata).await?;
        }
        let Some(mediation) = chain.mediation else {
            return Err(RunError::NoMediation(chain.name.clone()));
        };
        let settings = ChainSettings {
            chain_id: chain.chain_id,
            rpc_urls: chain.rpc_urls.clone(),
            lilypad: chain.lilypad,
        };
        let m = Mediator::new(
            key.clone(),
            settings,
            mediation,
            chain.follow.start_block,
            executor.clone(),
            modules.clone(),
            votes.clone(),
        )?
        .following(chain.follow.clone())?;
        let m = if run.testing_lazy {
            m.testing_lazy()
        } else {
            m
        };
        mediators.push((chain.name.clone(), m, chain.poll_interval));
    }
    tracing::info!(address = %key.address(), "mediator running");
    let tasks = TaskTracker::new();
    for (name, m, poll) in mediators {
        tasks.spawn(mediate_chain(name, m, poll, cancel.clone()));
    }
    tasks.close();
    tasks.wait().await;
    executor.wait_idle().await;
    Ok(())
}

/// One chain's mediation loop: a round of new cases every `poll` (at least 500 ms) until
/// `cancel`.
async fn mediate_chain(
    name: String,
    mediator: Mediator,
    poll: Duration,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        for v in mediator.mediate_new_cases().await {
            match v {
                Ok(Action { job, step, tx_hash }) => match step {
                    Step::Drew => {
                        tracing::info!(chain = %name, %job, %tx_hash, "mediators drawn")
                    }
                    Step::Committed { result_hash } => {
                        tracing::info!(chain = %name, %job, hash = %result_hash, %tx_hash, "vote committed")
                    }
                    Step::Revealed { result_hash } => {
                        tracing::info!(chain = %name, %job, hash = %result_hash, %tx_hash, "verdict submitted")
                    }
                    Step::Finalized => {
                        tracing::info!(chain = %name, %job, %tx_hash, "case closed after its deadline")
                    }
                },
                Err(e) => tracing::error!(chain = %name, error = %e, "mediation failed"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(poll.max(Duration::from_millis(500))) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn git_modules_take_the_price_naming_their_prefix_else_the_default() {
        let prefixes = ["https://a.example/".to_owned(), "file:///srv/".to_owned()];
        let prices = git_prices(
            &prefixes,
            &[
                ("cowsay".into(), U256::from(5)),
                ("file:///srv/".into(), U256::from(7)),
            ],
            U256::from(3),
        );
        assert_eq!(
            prices,
            [
                GitModulesPrice {
                    prefix: "https://a.example/".into(),
                    price: U256::from(3)
                },
                GitModulesPrice {
                    prefix: "file:///srv/".into(),
                    price: U256::from(7)
                },
            ]
        );
    }

    #[test]
    fn a_module_takes_the_first_price_naming_it_else_the_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../job-modules");
        let modules = ModuleRegistry::load_dir(&dir).unwrap();
        let prices = module_prices(
            &modules,
            &[
                ("cowsay".into(), U256::from(5)),
                ("sha256@1.0.0".into(), U256::from(7)),
                ("sha256".into(), U256::from(9)),
            ],
            U256::from(1),
        );
        let price = |name: &str| {
            prices
                .iter()
                .find(|p| p.module.name == name)
                .map(|p| p.price)
                .unwrap()
        };
        assert_eq!(prices.len(), modules.modules().count());
        assert_eq!(price("cowsay"), U256::from(5));
        assert_eq!(price("sha256"), U256::from(7));
        assert_eq!(price("stable-diffusion"), U256::from(1));
    }
}
