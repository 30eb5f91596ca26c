//! What every command shares: loading chains.toml and keys, connecting to chains.

use std::path::Path;

use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use lilypad_chain::RpcOptions;
use lilypad_config::{ChainConfig, ChainsConfig, SignerSource};
use tokio_util::sync::CancellationToken;

/// Loads chains.toml, with every problem in one message.
pub fn load_chains(path: &Path) -> Result<ChainsConfig> {
    ChainsConfig::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The chains named in `only` (all when empty), or an error naming the unknown ones.
pub fn select<'c>(config: &'c ChainsConfig, only: &[String]) -> Result<Vec<&'c ChainConfig>> {
    if only.is_empty() {
        return Ok(config.chains.iter().collect());
    }
    let known: Vec<&str> = config.chains.iter().map(|c| c.name.as_str()).collect();
    let mut out = Vec::new();
    for name in only {
        match config.chain(name) {
            Some(c) => out.push(c),
            None => bail!(
                "no chain named {name:?} in chains.toml (it has: {})",
                known.join(", ")
            ),
        }
    }
    Ok(out)
}

/// A key from an environment variable or a file, by the same rules as chains.toml's signer.
pub fn load_key(env: Option<&str>, file: Option<&Path>, role: &str) -> Result<PrivateKeySigner> {
    let source = match (env, file) {
        (_, Some(f)) => SignerSource::File(f.to_owned()),
        (Some(v), None) => SignerSource::Env(v.to_owned()),
        (None, None) => bail!("no key for the {role}: pass --key-env VAR or --key-file PATH"),
    };
    let key = source
        .resolve()
        .with_context(|| format!("loading the {role}'s key"))?;
    PrivateKeySigner::from_slice(&key.to_bytes())
        .map_err(|e| anyhow::anyhow!("the {role}'s key is not a valid secp256k1 key: {e}"))
}

/// A provider for `chain` that signs with `key`.
pub fn wallet(chain: &ChainConfig, key: PrivateKeySigner) -> Result<DynProvider> {
    lilypad_chain::connect_with_signer(&chain.rpc, key, &rpc_options(chain))
        .with_context(|| format!("chain {}", chain.name))
}

/// A read-only client for `chain`.
pub fn reader(chain: &ChainConfig) -> Result<DynProvider> {
    lilypad_chain::connect(&chain.rpc, &rpc_options(chain))
        .with_context(|| format!("chain {}", chain.name))
}

/// How the CLI's clients of `chain` talk to it: receipts polled at the chain's poll interval.
fn rpc_options(chain: &ChainConfig) -> RpcOptions {
    RpcOptions::default().poll_every(chain.poll_interval)
}

/// Checks the RPC endpoint serves the chain chains.toml says.
pub async fn check_chain_id(chain: &ChainConfig, provider: &DynProvider) -> Result<()> {
    lilypad_chain::check_chain_id(provider, chain.chain_id)
        .await
        .with_context(|| {
            format!(
                "chain {} in chains.toml (rpc {})",
                chain.name,
                chain.rpc.join(", ")
            )
        })
}

/// A token cancelled on Ctrl-C or SIGTERM: every service's tasks stop on it and are awaited.
pub fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("stopping");
        cancel.cancel();
    });
    stop
}

/// A contract call's error, with Lilypad's custom error decoded by name when it is one.
pub fn revert(e: alloy::contract::Error) -> anyhow::Error {
    anyhow::anyhow!(lilypad_bindings::revert_reason(&e))
}

/// Sends `tx` from `from` exactly once and waits for its receipt. It is filled (nonce, gas, fees)
/// and signed here, so its hash is known before it leaves: when the answer to the send is lost (a
/// reset, a timeout, or the retried send told "nonce too low" or "already known" because the first
/// one did reach the node), the transaction is looked up by that hash instead of being reported as
/// failed (a user would then send it again). A revert in the gas estimate is decoded by name;
/// `what` names the transaction in errors.
pub async fn send_once(
    provider: &DynProvider,
    wallet: &alloy::network::EthereumWallet,
    from: alloy::primitives::Address,
    chain_id: u64,
    tx: alloy::rpc::types::TransactionRequest,
    what: &str,
) -> Result<alloy::rpc::types::TransactionReceipt> {
    use alloy::eips::eip2718::Encodable2718;
    use alloy::network::{NetworkTransactionBuilder, TransactionBuilder};
    use alloy::providers::{PendingTransactionBuilder, Provider};
    let refused = |e| revert(alloy::contract::Error::TransportError(e));
    let nonce = provider.get_transaction_count(from).pending().await?;
    let tx = tx.with_from(from).with_nonce(nonce).with_chain_id(chain_id);
    let gas = provider
        .estimate_gas(tx.clone())
        .await
        .map_err(refused)
        .with_context(|| format!("{what} cannot be sent"))?;
    let fees = provider.estimate_eip1559_fees().await?;
    let envelope = tx
        .with_gas_limit(gas)
        .with_max_fee_per_gas(fees.max_fee_per_gas)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
        .build(wallet)
        .await
        .map_err(|e| anyhow::anyhow!("signing {what}: {e}"))?;
    let hash = *envelope.tx_hash();
    if let Err(e) = provider
        .send_raw_transaction(&envelope.encoded_2718())
        .await
    {
        let known = provider.get_transaction_by_hash(hash).await;
        if !matches!(known, Ok(Some(_))) {
            return Err(refused(e)).with_context(|| format!("sending {what} (transaction {hash})"));
        }
        tracing::debug!(%hash, "the answer to sending {what} was lost; the node has it");
    }
    PendingTransactionBuilder::new(provider.root().clone(), hash)
        .get_receipt()
        .await
        .with_context(|| format!("waiting for {what} (transaction {hash}) to be mined"))
}
