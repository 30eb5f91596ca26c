//! The relayer as a service: for every chain it is given, an indexer and a submitter, each chain
//! connecting (and reconnecting) on its own so one chain's outage never holds another. `lilypad
//! relayer` parses flags and calls [`prepare`] then [`run`]; everything else is here.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use lilypad_bus::Bus;
use lilypad_config::{ChainConfig, Contracts};
use lilypad_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::RpcChain;
use crate::health::Health;
use crate::indexer::{FollowSettings, Indexer, IndexerSettings};
use crate::submitter::reorg::ReorgSettings;
use crate::submitter::{Submitter, SubmitterSettings};

/// Why the relayer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RelayerError {
    /// Chains whose key or deployment cannot be loaded; every problem is listed.
    #[error("the relayer cannot start:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// The metrics and health server could not start.
    #[error("{0}")]
    Metrics(String),
}

/// One chain, checked and ready to serve: its settings, its signing key and its contracts.
pub struct ReadyChain {
    /// The chain's settings from chains.toml.
    pub chain: ChainConfig,
    /// The key its transactions are sent with.
    pub key: PrivateKeySigner,
    /// Its Lilypad deployment.
    pub contracts: Contracts,
}

/// Loads every chain's key and deployment before anything starts, reporting all problems at once.
pub fn prepare<'c>(
    chains: impl IntoIterator<Item = &'c ChainConfig>,
) -> Result<Vec<ReadyChain>, RelayerError> {
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    for chain in chains {
        let key = chain
            .signer
            .resolve()
            .map_err(|e| format!("chain {}: {e}", chain.name))
            .and_then(|k| {
                PrivateKeySigner::from_slice(&k.to_bytes()).map_err(|e| {
                    format!(
                        "chain {}: the signer key is not a valid key: {e}",
                        chain.name
                    )
                })
            });
        let contracts = chain.contracts().map_err(|e| e.to_string());
        match (key, contracts) {
            (Ok(key), Ok(contracts)) => ready.push(ReadyChain {
                chain: chain.clone(),
                key,
                contracts,
            }),
            (k, c) => problems.extend(k.err().into_iter().chain(c.err())),
        }
    }
    if problems.is_empty() {
        Ok(ready)
    } else {
        Err(RelayerError::Config(problems))
    }
}

/// What every chain's tasks share.
#[derive(Clone)]
pub struct Shared {
    /// Relayer state.
    pub store: Store,
    /// Messaging.
    pub bus: Bus,
    /// This relayer's name in submitter leases (unique per process).
    pub holder: String,
    /// What `/health` reports (from [`health_for`]).
    pub health: Health,
}

/// The health of `chains`, each registered before anything happened on it, so `/health` names
/// every chain from the moment it is served.
pub fn health_for(chains: &[ReadyChain]) -> Health {
    let health = Health::default();
    for ready in chains {
        health.register(&ready.chain.name);
    }
    health
}

/// Serves every chain until `stop` is cancelled, then waits for every chain's tasks to end.
pub async fn run(chains: Vec<ReadyChain>, shared: Shared, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    for ready in chains {
        tracing::info!(chain = %ready.chain.name, chain_id = ready.chain.chain_id, lilypad = %ready.contracts.lilypad, signer = %ready.key.address(), "serving chain");
        tasks.spawn(serve_chain(ready, shared.clone(), stop.clone()));
    }
    tasks.close();
    tasks.wait().await;
}

/// One chain: connect (retrying while the RPC is down, so other chains carry on), then index
/// and submit until stopped.
async fn serve_chain(ready: ReadyChain, shared: Shared, stop: CancellationToken) {
    let ReadyChain {
        chain,
        key,
        contracts,
    } = ready;
    let Shared {
        store,
        bus,
        holder,
        health,
    } = shared;
    let mut backoff = crate::retry::Backoff::new(Duration::from_secs(1));
    let rpc = loop {
        match RpcChain::connect(&chain.rpc, chain.chain_id, contracts.lilypad).await {
            Ok(rpc) => break rpc,
            Err(e) => {
                health.failed(&chain.name, &format!("connecting: {e}"));
                let wait = backoff.next_delay();
                tracing::error!(chain = %chain.name, error = %e, retry_in = ?wait, "cannot connect to the chain");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    };
    let indexer = Indexer::new(
        IndexerSettings {
            chain_id: chain.chain_id,
            follow: FollowSettings::for_chain(&chain, contracts.deployment_block),
        },
        rpc,
        store.clone(),
        bus.clone(),
    );
    let settings = SubmitterSettings {
        chain_id: chain.chain_id,
        lilypad: contracts.lilypad,
        gas: chain.gas.clone(),
        max_attempts: chain.max_attempts,
        claim_retry: chain.claim_retry,
        lease_ttl: chain.lease_ttl,
    };
    let submitter = match Submitter::new(settings, &chain.rpc, key, store, bus) {
        Ok(s) => s
            .with_receipt_poll(chain.poll_interval)
            .with_reorgs(ReorgSettings::new(chain.confirmations, chain.reorg_rewind)),
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

/// Serves `/metrics` (Prometheus text format) and `/health` (JSON; 200 when every chain indexed
/// recently and its latest attempt succeeded, else 503) on `addr` until `stop` is cancelled.
/// `poll` is the slowest chain's poll interval: a chain is unhealthy once it has not indexed for
/// ten of them (at least a minute). The server runs on `tasks`.
pub async fn serve_metrics(
    addr: &str,
    health: Health,
    poll: Duration,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<std::net::SocketAddr, RelayerError> {
    use axum::http::StatusCode;
    use axum::routing::get;

    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| RelayerError::Metrics(format!("installing the metrics recorder: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        RelayerError::Metrics(format!("--metrics {addr}: cannot listen there: {e}"))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| RelayerError::Metrics(format!("--metrics {addr}: {e}")))?;
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
    tracing::info!(addr = %bound, "serving /metrics and /health");
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    Ok(bound)
}
