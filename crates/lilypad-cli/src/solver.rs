//! `lilypad solver`: matches requests on every chain with providers' offers.

use std::sync::Arc;

use anyhow::Result;
use lilypad_bus::{Bus, BusOptions};
use lilypad_modules::ModuleRegistry;
use lilypad_solver::service::{Solver, SolverSettings, connect_chains};
use tokio_util::sync::CancellationToken;

use crate::common::{load_chains, select};
use crate::{Global, SolverArgs};

pub async fn run(global: &Global, args: &SolverArgs, stop: CancellationToken) -> Result<()> {
    let config = load_chains(&global.chains)?;
    // Every chain's deployment and RPC URL is checked before anything starts.
    let chains = connect_chains(select(&config, &args.only)?)?;
    let modules =
        ModuleRegistry::load_dirs(&args.modules.iter().map(|p| p.as_path()).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bus = Bus::connect(&global.nats, BusOptions::default()).await?;
    let solver = Arc::new(Solver::new(bus, modules, chains, SolverSettings::default()));
    tracing::info!("solver running");
    solver.run(stop).await?;
    Ok(())
}
