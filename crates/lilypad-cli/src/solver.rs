//! `lilypad solver`: matches requests on every chain with providers' offers.

use std::sync::Arc;

use anyhow::{Result, bail};
use lilypad_bus::{Bus, BusOptions};
use lilypad_modules::ModuleRegistry;
use lilypad_solver::service::{RpcJobChain, Solver, SolverSettings};
use tokio_util::sync::CancellationToken;

use crate::common::{load_chains, select};
use crate::{Global, SolverArgs};

pub async fn run(global: &Global, args: &SolverArgs, stop: CancellationToken) -> Result<()> {
    let config = load_chains(&global.chains)?;
    let mut chains = Vec::new();
    let mut problems = Vec::new();
    for chain in select(&config, &args.only)? {
        match chain.contracts() {
            Ok(c) => match RpcJobChain::new(&chain.rpc, c.lilypad) {
                Ok(r) => chains.push((chain.chain_id, r)),
                Err(e) => problems.push(format!("chain {}: {e}", chain.name)),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        bail!("the solver cannot start:\n  - {}", problems.join("\n  - "));
    }
    let modules =
        ModuleRegistry::load_dirs(&args.modules.iter().map(|p| p.as_path()).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bus = Bus::connect(&global.nats, BusOptions::default()).await?;
    let solver = Arc::new(Solver::new(bus, modules, chains, SolverSettings::default()));
    tracing::info!("solver running");
    solver.run(stop).await?;
    Ok(())
}
