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

/// Sends `tx` from `from` exactly once and waits for its receipt ([`lilypad_chain::send_once`]:
/// signed here, so a send whose answer was lost is looked up by its hash instead of reported as
/// failed). A revert in the gas estimate is decoded by name; `what` names the transaction in
/// errors.
pub async fn send_once(
    provider: &DynProvider,
    wallet: &alloy::network::EthereumWallet,
    from: alloy::primitives::Address,
    chain_id: u64,
    tx: alloy::rpc::types::TransactionRequest,
    what: &str,
) -> Result<alloy::rpc::types::TransactionReceipt> {
    lilypad_chain::send_once(provider, wallet, from, chain_id, tx, what)
        .await
        .map_err(|e| match e.into_revert() {
            Ok(source) => revert(alloy::contract::Error::TransportError(source))
                .context(format!("{what} cannot be sent")),
            Err(e) => e.into(),
        })
}
