//! What every command shares: loading chains.toml and keys, connecting to chains.

use std::path::Path;

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use lilypad_config::{ChainConfig, ChainsConfig, SignerSource};

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
    let url = chain
        .rpc
        .parse()
        .with_context(|| format!("chain {}: rpc {:?} is not a URL", chain.name, chain.rpc))?;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(url)
        .erased();
    lilypad_relayer::chain::poll_receipts_every(&provider, chain.poll_interval);
    Ok(provider)
}

/// Checks the RPC endpoint serves the chain chains.toml says.
pub async fn check_chain_id(chain: &ChainConfig, provider: &DynProvider) -> Result<()> {
    let actual = provider
        .get_chain_id()
        .await
        .with_context(|| format!("chain {}: cannot reach {}", chain.name, chain.rpc))?;
    if actual != chain.chain_id {
        bail!(
            "chain {}: {} serves chain {actual}, but chains.toml says {}",
            chain.name,
            chain.rpc,
            chain.chain_id
        );
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM and flips `stop`.
pub fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("stopping");
        let _ = tx.send(true);
    });
    rx
}

/// A contract call's error, with Lilypad's custom error decoded by name when it is one.
pub fn revert(e: alloy::contract::Error) -> anyhow::Error {
    match e.as_decoded_interface_error::<lilypad_bindings::Lilypad::LilypadErrors>() {
        Some(decoded) => anyhow::anyhow!("the contract refused: {decoded:?}"),
        None => anyhow::anyhow!("{e}"),
    }
}
