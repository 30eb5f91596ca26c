//! `lilypad solver`: matches requests on every chain with providers' offers.

use std::sync::Arc;

use anyhow::Result;
use lilypad_bus::{Bus, BusOptions};
use lilypad_modules::lilypad::LilypadPolicy;
use lilypad_modules::{GitModules, ModuleRegistry};
use lilypad_solver::service::{Solver, SolverSettings, connect_chains};
use tokio_util::sync::CancellationToken;

use crate::common::{load_chains, select};
use crate::{Global, SolverArgs};

pub async fn run(global: &Global, args: &SolverArgs, stop: CancellationToken) -> Result<()> {
    let config = load_chains(&global.chains)?;
    // Every chain's deployment and RPC URL is checked before anything starts.
    let chains = connect_chains(select(&config, &args.only)?)?;
    let mut modules = ModuleRegistry::load_dirs(
        &args
            .modules
            .dirs
            .iter()
            .map(|p| p.as_path())
            .collect::<Vec<_>>(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !args.git_modules.is_empty() {
        // The solver only reads what a module needs; whether it may use the network is each
        // provider's policy, so none is refused here for it.
        let policy = LilypadPolicy {
            allow_network: true,
        };
        modules = modules.with_git(GitModules::new(
            &args.git_cache,
            args.git_modules.clone(),
            policy,
        ));
    }
    let bus = Bus::connect(&global.nats, BusOptions::default()).await?;
    let settings = SolverSettings {
        record_ttl: args.record_ttl,
        ..SolverSettings::default()
    };
    let solver = Arc::new(Solver::new(bus, modules, chains, settings));
    tracing::info!("solver running");
    solver.run(stop).await?;
    Ok(())
}
