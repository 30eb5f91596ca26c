//! `lilypad relayer`: an indexer and a submitter for every chain in chains.toml
//! ([`lilypad_relayer::service`] does the work).

use anyhow::Result;
use lilypad_bus::{Bus, BusOptions};
use lilypad_relayer::service::{self, Shared};
use lilypad_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::select;
use crate::{Global, RelayerArgs};

pub async fn run(global: &Global, args: &RelayerArgs, stop: CancellationToken) -> Result<()> {
    let config = crate::common::load_chains(&global.chains)?;
    // Every chain's key and deployment is checked before anything starts: all problems at once.
    let ready = service::prepare(select(&config, &args.only)?)?;
    let health = service::health_for(&ready);
    let servers = TaskTracker::new();
    if let Some(addr) = &args.metrics {
        let slowest = ready
            .iter()
            .map(|r| r.chain.poll_interval)
            .max()
            .unwrap_or_default();
        service::serve_metrics(addr, health.clone(), slowest, &servers, stop.clone()).await?;
    }
    let shared = Shared {
        store: Store::connect(&global.redis, &args.redis_prefix).await?,
        bus: Bus::connect(&global.nats, BusOptions::default()).await?,
        holder: format!("relayer-{}-{}", std::process::id(), hostname()),
        health,
    };
    service::run(ready, shared, stop).await;
    servers.close();
    servers.wait().await;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
