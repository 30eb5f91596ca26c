//! `lilypad provider` and `lilypad mediator`: the compute side.
//!
//! Flags and chains.toml become a [`lilypad_provider::run`] settings struct; the crate does the
//! rest, until the token from [`crate::common::stop_on_signal`] is cancelled.

use std::path::Path;

use alloy::primitives::U256;
use anyhow::Result;
use lilypad_provider::CancellationToken;
use lilypad_provider::run::{ComputeSettings, MediatorRun, ProviderRun, ServiceChain};

use crate::common::{load_chains, load_key, select};
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

/// The settings both roles share, from the flags and chains.toml.
fn compute_settings(
    global: &Global,
    compute: &ComputeArgs,
    role: &str,
    default_env: &str,
) -> Result<ComputeSettings> {
    let signer = compute.key(role, default_env)?;
    let config = load_chains(&global.chains)?;
    let mut chains = Vec::new();
    for chain in select(&config, &compute.only)? {
        let contracts = chain.contracts()?;
        chains.push(ServiceChain {
            name: chain.name.clone(),
            chain_id: chain.chain_id,
            rpc_urls: chain.rpc.clone(),
            lilypad: contracts.lilypad,
            mediation: contracts.mediation,
            follow: lilypad_follow::FollowSettings::for_chain(chain, contracts.deployment_block),
            poll_interval: chain.poll_interval,
        });
    }
    let max_bytes = lilypad_modules::parse_bytes(&compute.ipfs_max_bytes).ok_or_else(|| {
        anyhow::anyhow!(
            "--ipfs-max-bytes {:?} is not a size; write e.g. 1GiB or 500MiB",
            compute.ipfs_max_bytes
        )
    })?;
    Ok(ComputeSettings {
        signer,
        chains,
        module_dirs: compute.modules.dirs.clone(),
        git_modules: compute.git_modules.clone(),
        git_allow_network: compute.git_modules_network,
        collateral: compute.collateral.map(U256::from),
        metadata: compute.metadata.clone(),
        state_dir: compute.state_dir(role),
        ipfs_gateways: compute.ipfs_gateways.clone(),
        fetch_limits: lilypad_results::FetchLimits {
            max_bytes,
            timeout: std::time::Duration::from_secs(compute.ipfs_timeout),
        },
    })
}

/// `lilypad provider`: runs until `cancel`.
pub async fn run_provider(
    global: &Global,
    args: &ProviderArgs,
    cancel: CancellationToken,
) -> Result<()> {
    let compute = compute_settings(global, &args.compute, "provider", "LILYPAD_PROVIDER_KEY")?;
    let memory_bytes = match args.memory.as_deref() {
        Some(m) => Some(lilypad_modules::parse_bytes(m).ok_or_else(|| {
            anyhow::anyhow!("--memory {m:?} is not a size; write e.g. 8GiB or 512MiB")
        })?),
        None => None,
    };
    let run = ProviderRun {
        compute,
        nats: global.nats.clone(),
        default_price: U256::from(args.default_price),
        prices: args
            .price
            .iter()
            .map(|(name, p)| (name.clone(), U256::from(*p)))
            .collect(),
        cpu_millis: args.cpu_millis,
        memory_bytes,
        serve_results: args.serve_results.clone(),
        testing_alter_output: args.testing_alter_output.map(Into::into),
    };
    Ok(lilypad_provider::run::run_provider(run, cancel).await?)
}

/// `lilypad mediator`: runs until `cancel`.
pub async fn run_mediator(
    global: &Global,
    args: &MediatorArgs,
    cancel: CancellationToken,
) -> Result<()> {
    let compute = compute_settings(global, &args.compute, "mediator", "LILYPAD_MEDIATOR_KEY")?;
    let run = MediatorRun {
        compute,
        testing_lazy: args.testing_lazy,
    };
    Ok(lilypad_provider::run::run_mediator(run, cancel).await?)
}
