//! `lilypad relayer`: an indexer and a submitter for every chain in chains.toml.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use lilypad_bus::{Bus, BusOptions};
use lilypad_config::ChainConfig;
use lilypad_relayer::chain::RpcChain;
use lilypad_relayer::indexer::{Indexer, IndexerSettings};
use lilypad_relayer::submitter::{Submitter, SubmitterSettings};
use lilypad_store::Store;

use crate::common::select;
use crate::{Global, RelayerArgs};

pub async fn run(global: &Global, args: &RelayerArgs) -> Result<()> {
    let config = crate::common::load_chains(&global.chains)?;
    let chains = select(&config, &args.only)?;
    // Every chain's key and deployment is checked before anything starts: all problems at once.
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for chain in chains {
        let key = chain
            .signer
            .resolve()
            .map_err(|e| format!("chain {}: {e}", chain.name));
        let contracts = chain.contracts().map_err(|e| e.to_string());
        match (key, contracts) {
            (Ok(k), Ok(c)) => ready.push((chain.clone(), k, c)),
            (k, c) => problems.extend(k.err().into_iter().chain(c.err())),
        }
    }
    if !problems.is_empty() {
        bail!("the relayer cannot start:\n  - {}", problems.join("\n  - "));
    }
    let health = lilypad_relayer::health::Health::default();
    for (chain, _, _) in &ready {
        health.register(&chain.name);
    }
    if let Some(addr) = &args.metrics {
        let slowest = ready
            .iter()
            .map(|(c, _, _)| c.poll_interval)
            .max()
            .unwrap_or_default();
        serve_metrics(addr, health.clone(), slowest).await?;
    }
    let store = Store::connect(&global.redis, &args.redis_prefix).await?;
    let bus = Bus::connect(&global.nats, BusOptions::default()).await?;
    let stop = crate::common::stop_on_signal();
    let holder = format!("relayer-{}-{}", std::process::id(), hostname());
    let mut tasks = Vec::new();
    for (chain, key, contracts) in ready {
        let key = alloy::signers::local::PrivateKeySigner::from_slice(&key.to_bytes())
            .with_context(|| format!("chain {}: the signer key is not a valid key", chain.name))?;
        tracing::info!(chain = %chain.name, chain_id = chain.chain_id, lilypad = %contracts.lilypad, signer = %key.address(), "serving chain");
        let shared = Shared {
            store: store.clone(),
            bus: bus.clone(),
            stop: stop.clone(),
            holder: holder.clone(),
            health: health.clone(),
        };
        tasks.push(tokio::spawn(serve_chain(chain, key, contracts, shared)));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// One chain: connect (retrying while the RPC is down, so other chains carry on), then index
/// and submit until stopped.
/// What every chain's tasks share.
#[derive(Clone)]
struct Shared {
    store: Store,
    bus: Bus,
    stop: tokio::sync::watch::Receiver<bool>,
    holder: String,
    health: lilypad_relayer::health::Health,
}

async fn serve_chain(
    chain: ChainConfig,
    key: alloy::signers::local::PrivateKeySigner,
    contracts: lilypad_config::Contracts,
    shared: Shared,
) {
    let Shared {
        store,
        bus,
        stop,
        holder,
        health,
    } = shared;
    let mut backoff = lilypad_relayer::retry::Backoff::new(Duration::from_secs(1));
    let rpc = loop {
        match RpcChain::connect(&chain.rpc, chain.chain_id, contracts.lilypad).await {
            Ok(rpc) => break rpc,
            Err(e) => {
                health.failed(&chain.name, &format!("connecting: {e}"));
                let wait = backoff.next_delay();
                tracing::error!(chain = %chain.name, error = %e, retry_in = ?wait, "cannot connect to the chain");
                tokio::time::sleep(wait).await;
                if *stop.borrow() {
                    return;
                }
            }
        }
    };
    let indexer = Indexer::new(
        IndexerSettings {
            chain_id: chain.chain_id,
            confirmations: chain.confirmations,
            start_block: chain
                .start_block
                .max(contracts.deployment_block.unwrap_or(0)),
            log_chunk_size: chain.log_chunk_size,
            reorg_rewind: 64,
        },
        rpc,
        store.clone(),
        bus.clone(),
    );
    let settings = SubmitterSettings {
        chain_id: chain.chain_id,
        lilypad: contracts.lilypad,
        gas: chain.gas.clone(),
        max_attempts: 8,
        claim_retry: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(15),
    };
    let submitter = match Submitter::new(settings, &chain.rpc, key, store, bus) {
        Ok(s) => s.with_receipt_poll(chain.poll_interval),
        Err(e) => {
            tracing::error!(chain = %chain.name, error = %e, "cannot start the submitter");
            return;
        }
    };
    tokio::join!(
        indexer.run(
            chain.poll_interval,
            health.clone(),
            &chain.name,
            stop.clone()
        ),
        submitter.run(&holder, health.clone(), &chain.name, stop)
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Serves `/metrics` (Prometheus text format) and `/health` (JSON; 200 when every chain indexed
/// recently and its latest attempt succeeded, else 503).
async fn serve_metrics(
    addr: &str,
    health: lilypad_relayer::health::Health,
    poll: Duration,
) -> Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;

    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics {addr}: cannot listen there"))?;
    let max_age = (poll.as_secs() * 10).max(60);
    let app = axum::Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route(
            "/health",
            get(move || {
                let (ok, chains) = health.report(max_age);
                let body = serde_json::json!({ "healthy": ok, "chains": chains }).to_string();
                let code = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                std::future::ready((code, body))
            }),
        );
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /health");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    Ok(())
}
