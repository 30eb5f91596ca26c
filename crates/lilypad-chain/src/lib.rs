//! The one way Lilypad's services connect to a chain: every JSON-RPC client (relayer, solver,
//! provider, mediator, the CLI) is built here, so a request timeout, the receipt poll interval and,
//! later, per-call retries and fallback endpoints are decided in one place.
//!
//! ```no_run
//! # async fn f() -> Result<(), lilypad_chain::ChainClientError> {
//! use lilypad_chain::RpcOptions;
//! let options = RpcOptions::default().poll_every(std::time::Duration::from_millis(250));
//! let reader = lilypad_chain::connect("http://127.0.0.1:8545", &options)?;
//! lilypad_chain::check_chain_id(&reader, 31337).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;

/// How long one JSON-RPC request may take before it fails, unless set otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a sent transaction's receipt is polled for, unless set otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest poll interval accepted (a faster one would only load the node).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What a connection to a chain's endpoint is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcOptions {
    /// Most time one request may take (connect, send, answer); a request past it fails with a
    /// transport error, which callers retry, instead of hanging the caller.
    pub request_timeout: Duration,
    /// How often receipts (and other watched things) are polled for: the chain's poll interval,
    /// which follows its block time (alloy would otherwise poll every 7 s for remote endpoints).
    pub poll_interval: Duration,
}

impl Default for RpcOptions {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl RpcOptions {
    /// These options with receipts polled every `every` (at least [`MIN_POLL_INTERVAL`]).
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(MIN_POLL_INTERVAL);
        self
    }

    /// These options with each request bounded by `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// Why a chain client could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ChainClientError {
    /// The endpoint is not an http(s) URL.
    #[error("{url:?} is not an http(s) URL ({reason}); fix the rpc setting")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP client could not be built (the TLS backend failed to start).
    #[error("cannot build an HTTP client: {0}")]
    Http(String),
    /// The endpoint did not answer `eth_chainId`.
    #[error(
        "cannot reach the RPC endpoint (eth_chainId failed: {0}); check the URL and that the node is up"
    )]
    Unreachable(String),
    /// The endpoint could not answer for the latest block, or has none.
    #[error("eth_getBlockByNumber(latest) failed: {0}")]
    NoLatestBlock(String),
    /// The endpoint serves another chain than the configuration says.
    #[error(
        "the RPC endpoint serves chain {actual}, but the configuration says {expected} (fix: point rpc at a node of chain {expected}, or correct chain_id)"
    )]
    WrongChain {
        /// The chain id configured.
        expected: u64,
        /// What `eth_chainId` answered.
        actual: u64,
    },
}

/// A read-only client of the endpoint at `url`.
pub fn connect(url: &str, options: &RpcOptions) -> Result<DynProvider, ChainClientError> {
    Ok(ProviderBuilder::new()
        .connect_client(rpc_client(url, options)?)
        .erased())
}

/// A client of the endpoint at `url` that signs and sends transactions as `signer` (nonces, gas
/// and chain id filled in by alloy's recommended fillers).
pub fn connect_with_signer(
    url: &str,
    signer: PrivateKeySigner,
    options: &RpcOptions,
) -> Result<DynProvider, ChainClientError> {
    Ok(ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_client(rpc_client(url, options)?)
        .erased())
}

/// Makes an existing client poll for receipts every `every` (at least [`MIN_POLL_INTERVAL`]).
/// alloy's default is 250 ms for a local endpoint and 7 s for any other, which on a chain with 2 s
/// blocks would hold every transaction several blocks; Lilypad polls at the chain's
/// `poll_interval`.
pub fn set_poll_interval(provider: &DynProvider, every: Duration) {
    provider
        .client()
        .set_poll_interval(every.max(MIN_POLL_INTERVAL));
}

/// The chain's clock: the timestamp of its latest block, which the contract's deadlines follow
/// (never this machine's clock).
pub async fn chain_time(provider: &DynProvider) -> Result<u64, ChainClientError> {
    provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| ChainClientError::NoLatestBlock(e.to_string()))?
        .map(|b| b.header.timestamp)
        .ok_or_else(|| ChainClientError::NoLatestBlock("the node has no latest block".into()))
}

/// Checks that the endpoint behind `provider` serves chain `expected`.
pub async fn check_chain_id(provider: &DynProvider, expected: u64) -> Result<(), ChainClientError> {
    let actual = provider
        .get_chain_id()
        .await
        .map_err(|e| ChainClientError::Unreachable(e.to_string()))?;
    if actual == expected {
        Ok(())
    } else {
        Err(ChainClientError::WrongChain { expected, actual })
    }
}

/// The transport every client above shares: HTTP with a request timeout, polling at the
/// configured interval.
fn rpc_client(url: &str, options: &RpcOptions) -> Result<RpcClient, ChainClientError> {
    let bad = |reason: String| ChainClientError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed: reqwest::Url = url.parse().map_err(|e| bad(format!("{e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .build()
        .map_err(|e| ChainClientError::Http(e.to_string()))?;
    Ok(RpcClient::new_http_with_client(http, parsed)
        .with_poll_interval(options.poll_interval.max(MIN_POLL_INTERVAL)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_is_not_http_is_refused_with_the_url() {
        let e = connect("ws://127.0.0.1:8545", &RpcOptions::default()).unwrap_err();
        assert!(e.to_string().contains("ws://127.0.0.1:8545"), "{e}");
        let e = connect("not a url", &RpcOptions::default()).unwrap_err();
        assert!(matches!(e, ChainClientError::BadUrl { .. }), "{e}");
    }

    #[test]
    fn the_poll_interval_is_the_configured_one_and_never_below_the_minimum() {
        let p = connect(
            "http://127.0.0.1:1",
            &RpcOptions::default().poll_every(Duration::from_millis(40)),
        )
        .unwrap();
        assert_eq!(p.client().poll_interval(), Duration::from_millis(40));
        let p = connect(
            "http://127.0.0.1:1",
            &RpcOptions::default().poll_every(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(p.client().poll_interval(), MIN_POLL_INTERVAL);
    }
}
