//! `lilypad provider` and `lilypad mediator`: the compute side.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use anyhow::{Context, Result, bail};
use lilypad_bindings::{Lilypad, LilypadToken};
use lilypad_bus::{Bus, BusOptions};
use lilypad_config::ChainConfig;
use lilypad_executor::{Executor, ExecutorConfig};
use lilypad_modules::ModuleRegistry;
use lilypad_provider::mediator::Mediator;
use lilypad_provider::{CapacityTracker, ChainSettings, ProviderSettings, ResourceProvider};
use lilypad_results::ResultStore;
use lilypad_types::{ModuleId, ModulePrice};

use crate::common::{check_chain_id, load_chains, load_key, select, wallet};
use crate::{ComputeArgs, Global, MediatorArgs, ProviderArgs};

impl ComputeArgs {
    fn key(
        &self,
        role: &str,
        default_env: &str,
    ) -> Result<alloy::signers::local::PrivateKeySigner> {
        load_key(
            Some(self.key_env.as_deref().unwrap_or(default_env)),
            self.key_file.as_deref(),
            role,
        )
    }

    fn state_dir(&self, role: &str) -> std::path::PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| Path::new(".lilypad").join(role))
    }
}

fn registry(dirs: &[std::path::PathBuf]) -> Result<ModuleRegistry> {
    ModuleRegistry::load_dirs(&dirs.iter().map(|p| p.as_path()).collect::<Vec<_>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The executor, its result store (for serving results) and the GPUs it found.
async fn executor(
    id: &str,
    state: &Path,
) -> Result<(Executor, Arc<ResultStore>, Vec<lilypad_executor::Gpu>)> {
    let store =
        Arc::new(ResultStore::open(state.join("results")).map_err(|e| anyhow::anyhow!("{e}"))?);
    let gpus = lilypad_executor::detect_gpus().await.unwrap_or_else(|e| {
        tracing::info!(reason = %e, "no GPUs detected; offering CPU only");
        Vec::new()
    });
    let config = ExecutorConfig::new(id, state.join("work"));
    let executor = Executor::connect(config, store.clone(), gpus.clone())
        .await
        .context(
            "cannot reach the Docker engine (is dockerd running? ./script/setup starts one)",
        )?;
    let removed = executor
        .cleanup_leftovers()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !removed.is_empty() {
        tracing::warn!(
            count = removed.len(),
            "removed containers left by a previous run"
        );
    }
    Ok((executor, store, gpus))
}

/// Registers `key` as a provider or mediator and tops its free collateral up to `collateral`.
async fn ensure_registered(
    chain: &ChainConfig,
    key: &alloy::signers::local::PrivateKeySigner,
    mediator: bool,
    collateral: U256,
    metadata: &str,
) -> Result<()> {
    let contracts = chain.contracts()?;
    let provider = wallet(chain, key.clone())?;
    check_chain_id(chain, &provider).await?;
    let lilypad = Lilypad::new(contracts.lilypad, &provider);
    let me = key.address();
    let registered = if mediator {
        lilypad.isMediator(me).call().await?
    } else {
        lilypad.isProvider(me).call().await?
    };
    if !registered {
        if metadata.is_empty() {
            bail!(
                "chain {}: {me} is not registered yet; registering needs --metadata URL (a page describing this {})",
                chain.name,
                if mediator { "mediator" } else { "provider" }
            );
        }
        if mediator {
            let call = lilypad.registerMediator(metadata.into());
            call.send()
                .await
                .map_err(crate::common::revert)?
                .get_receipt()
                .await?;
        } else {
            let call = lilypad.registerProvider(metadata.into());
            call.send()
                .await
                .map_err(crate::common::revert)?
                .get_receipt()
                .await?;
        }
        tracing::info!(chain = %chain.name, %me, "registered");
    }
    let free = lilypad.collateralOf(me).call().await?.free;
    if free < collateral {
        let top_up = collateral - free;
        let token = LilypadToken::new(lilypad.token().call().await?, &provider);
        token
            .approve(contracts.lilypad, top_up)
            .send()
            .await?
            .get_receipt()
            .await?;
        lilypad
            .depositCollateral(top_up)
            .send()
            .await?
            .get_receipt()
            .await?;
        tracing::info!(chain = %chain.name, %me, deposited = %top_up, "collateral topped up");
    }
    Ok(())
}

pub async fn run_provider(global: &Global, args: &ProviderArgs) -> Result<()> {
    let compute = &args.compute;
    let key = compute.key("provider", "LILYPAD_PROVIDER_KEY")?;
    let config = load_chains(&global.chains)?;
    let modules = registry(&compute.modules)?;
    let mut chains = Vec::new();
    for chain in select(&config, &compute.only)? {
        if let Some(c) = compute.collateral {
            ensure_registered(chain, &key, false, U256::from(c), &compute.metadata).await?;
        }
        chains.push(ChainSettings {
            chain_id: chain.chain_id,
            rpc_url: chain.rpc.clone(),
            lilypad: chain.contracts()?.lilypad,
        });
    }
    let mut prices = Vec::new();
    for m in modules.modules() {
        let id = ModuleId {
            name: m.reference.name.clone(),
            version: m.reference.version.clone(),
        };
        let price = args
            .price
            .iter()
            .find(|(name, _)| *name == format!("{}@{}", id.name, id.version) || *name == id.name)
            .map(|(_, p)| *p)
            .unwrap_or(args.default_price);
        prices.push(ModulePrice {
            module: id,
            price: U256::from(price),
        });
    }
    if prices.is_empty() {
        bail!(
            "no modules found in {:?}: pass --modules DIR with module definitions",
            compute.modules
        );
    }
    let cpu = args.cpu_millis.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1000, |n| n.get() as u64 * 1000)
    });
    let memory = match args.memory.as_deref() {
        Some(m) => lilypad_modules::parse_bytes(m).ok_or_else(|| {
            anyhow::anyhow!("--memory {m:?} is not a size; write e.g. 8GiB or 512MiB")
        })?,
        None => 4 << 30,
    };
    let state = compute.state_dir("provider");
    let (executor, store, gpus) = executor(&format!("provider-{}", key.address()), &state).await?;
    if let Some(addr) = &args.serve_results {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--serve-results {addr}: cannot listen there"))?;
        let local = listener.local_addr()?;
        tracing::info!(url = %format!("http://{local}/ipfs/<cid>"), "serving results over HTTP");
        tokio::spawn(async move {
            if let Err(e) = lilypad_results::server::serve(listener, store).await {
                tracing::error!(error = %e, "the results server stopped");
            }
        });
    }
    let capacity = CapacityTracker::with_gpus(cpu, memory, &gpus);
    let bus = Bus::connect(&global.nats, BusOptions::default()).await?;
    let mut settings = ProviderSettings::new(key, chains, prices);
    if args.testing_alter_output {
        tracing::warn!(
            "TESTING ONLY: --testing-alter-output is set: this provider reports altered results; every one that is challenged will be overturned and its collateral slashed"
        );
        settings.testing_alter_output = true;
    }
    let provider = ResourceProvider::new(settings, bus, executor, Arc::new(modules), capacity)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(address = %provider.address(), subject = %provider.deal_subject(), "provider running");
    let heartbeat = provider.start_heartbeat();
    let deals = provider
        .serve_deals()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stop = crate::common::stop_on_signal();
    stop.cancelled().await;
    drop(deals);
    heartbeat.stop().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

pub async fn run_mediator(global: &Global, args: &MediatorArgs) -> Result<()> {
    let compute = &args.compute;
    let key = compute.key("mediator", "LILYPAD_MEDIATOR_KEY")?;
    let config = load_chains(&global.chains)?;
    let modules = Arc::new(registry(&compute.modules)?);
    let state = compute.state_dir("mediator");
    let (executor, _, _) = executor(&format!("mediator-{}", key.address()), &state).await?;
    let mut mediators = Vec::new();
    for chain in select(&config, &compute.only)? {
        if let Some(c) = compute.collateral {
            ensure_registered(chain, &key, true, U256::from(c), &compute.metadata).await?;
        }
        let contracts = chain.contracts()?;
        let Some(mediation) = contracts.mediation else {
            bail!(
                "chain {}: the deployment has no mediation contract",
                chain.name
            );
        };
        let from = contracts.deployment_block.unwrap_or(chain.start_block);
        let settings = ChainSettings {
            chain_id: chain.chain_id,
            rpc_url: chain.rpc.clone(),
            lilypad: contracts.lilypad,
        };
        let m = Mediator::new(
            key.clone(),
            settings,
            mediation,
            from,
            executor.clone(),
            modules.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        mediators.push((chain.name.clone(), m, from, chain.poll_interval));
    }
    let stop = crate::common::stop_on_signal();
    tracing::info!(address = %key.address(), "mediator running");
    let mut tasks = Vec::new();
    for (name, m, mut from, poll) in mediators {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                match m.mediate_new_cases(from).await {
                    Ok((next, verdicts)) => {
                        from = next;
                        for v in verdicts {
                            match v {
                                Ok(v) => tracing::info!(chain = %name, job = %v.job, hash = %v.result_hash, "verdict submitted"),
                                Err(e) => tracing::error!(chain = %name, error = %e, "mediation failed"),
                            }
                        }
                    }
                    Err(e) => tracing::error!(chain = %name, error = %e, "reading cases failed"),
                }
                tokio::time::sleep(poll.max(Duration::from_millis(500))).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
