//! The one way Lilypad's services connect to a chain: every JSON-RPC client (relayer, solver,
//! provider, mediator, the CLI) is built here, so the request timeout, the receipt poll interval,
//! per-call retries and fallback endpoints are decided in one place.
//!
//! ```no_run
//! # async fn f() -> Result<(), lilypad_chain::ChainClientError> {
//! use lilypad_chain::RpcOptions;
//! let options = RpcOptions::default().poll_every(std::time::Duration::from_millis(250));
//! // One URL, or several of the same chain: "https://a.example", or ["https://a", "https://b"].
//! let reader = lilypad_chain::connect(&["http://127.0.0.1:8545", "http://127.0.0.1:8546"], &options)?;
//! lilypad_chain::check_chain_id(&reader, 31337).await?;
//! # Ok(()) }
//! ```
//!
//! # Retries
//!
//! Each call is retried, up to [`RpcOptions::retries`] times with a short jittered wait
//! ([`RpcOptions::retry_backoff`], each wait 50% to 150% of it), when it could not be made or its
//! answer was not a JSON-RPC answer: a connection refused or reset, a timeout, HTTP 408, 429 or
//! 5xx, a body that is not JSON (a proxy's error page, a cut answer), and the rate-limit answers
//! of the public providers. A JSON-RPC error (a revert, "nonce too low") is an answer and is
//! returned at once. This is alloy's `RetryBackoffLayer` with the policy [`TransientErrors`]:
//! alloy's default policy retries only 429 and 503. A call that still fails after the retries is
//! a transport error (`RpcError::Transport`): the caller's own retry, over a pass or a round, is
//! for outages, not for one lost answer. A whole call, retries included, is bounded by
//! [`RpcOptions::call_timeout`] (alloy's retry layer has no overall budget), so a hung endpoint
//! fails a call after a minute, not after eleven request timeouts.
//!
//! A retried `eth_sendRawTransaction` sends the same signed bytes again, so it can never become a
//! second transaction: at worst the node answers "already known", or "nonce too low" when the
//! first send was mined meanwhile (its answer lost on the way). Telling those apart from a real
//! nonce problem is the sender's business (the relayer's submitter checks the transaction's
//! hash, and [`send_once`] does for the services that send one at a time), not this layer's.
//!
//! ## Hedged reads
//!
//! A retry only acts on an error: a request the endpoint holds up (a slow proxy, a busy node)
//! costs its whole delay. So a read that has no answer after a *hedge delay* is sent a second
//! time, and the first good answer of the two wins (the other request is dropped; an answer that
//! is itself a transient failure does not win while the other may still answer). The hedge delay
//! follows the endpoint's observed latency ([`HedgePolicy::delay`]): [`HedgePolicy::factor`]
//! times a moving average of the latency of its good answers to reads (each new answer counts
//! for an eighth), never below [`HedgePolicy::floor`] nor above [`HedgePolicy::ceiling`] (by
//! default 4x, 150 ms, 2 s), and the ceiling until the endpoint has answered once. On a healthy
//! endpoint that answers in 5 ms a request is hedged after 150 ms, so only the slow few are sent
//! twice. [`RpcOptions::hedge`] sets the rule, or turns hedging off. The price: a read that is
//! slow by nature (an `eth_getLogs` over a wide range on a public endpoint) is sent twice once it
//! passes the ceiling, which counts twice against a rate limit; raise the ceiling, or turn
//! hedging off, for an endpoint where that matters.
//!
//! What is hedged: reads, the `eth_`, `net_` and `web3_` methods other than those that send or
//! sign (`eth_sendTransaction`, `eth_sign*`) or hold state on the node (`eth_newFilter` and the
//! other filter methods, `eth_subscribe`); and `eth_sendRawTransaction`, whose second send is the
//! same signed bytes, exactly what a retry sends: never a second transaction. The copy that came
//! second may be told "already known" or "nonce too low"; that answer is held back while the
//! other copy may still bring the hash (under load it may be the slower to answer), and returned
//! only if the other fails (see "Retries"). A
//! delayed broadcast held up every transaction queued behind it by its sender (the relayer sends
//! one at a time to keep its nonces in order), so it is the one call where waiting out a slow
//! answer costs most. A batch is hedged only when every member is ([`is_hedged`]). Test-node
//! methods (`anvil_*`, `evm_*`, `hardhat_*`) and every other namespace are sent once. Hedging sits
//! under the retry layer: each send of a retried call is hedged on its own.
//!
//! # Several endpoints
//!
//! With several URLs, alloy's `FallbackLayer` ranks them by health (success rate over the last
//! ten calls, then latency). A read goes to every endpoint at once (or to the best
//! [`RpcOptions::parallel_endpoints`]) and the first answer wins; `eth_sendRawTransaction` goes
//! to one endpoint at a time, best ranked first, the next only if it fails. Retries come on top:
//! a call that failed on every endpoint tried is retried. Hedging sits above the fallback: a
//! hedged read goes again to the endpoints the fallback picks.

mod send;
pub use send::{SendError, SignedTx, receipt_of, send_once, send_signed, sign};

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::{Http, reqwest};
use alloy::transports::layers::{
    FallbackLayer, RateLimitRetryPolicy, RetryBackoffLayer, RetryPolicy,
};
use alloy::transports::{RpcError, TransportError, TransportErrorKind, TransportFut};
use tower_layer::Layer;
use tower_service::Service;

/// How long one JSON-RPC request may take before it fails, unless set otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one call may take, all its retries included, unless set otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a sent transaction's receipt is polled for, unless set otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest poll interval accepted (a faster one would only load the node).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many times one call is sent again after a transient failure, unless set otherwise: with
/// a quarter of all requests failing, ten in a row fail about once in a million calls.
pub const DEFAULT_RETRIES: u32 = 10;
/// The wait between two sends of one call, unless set otherwise (each wait is 50% to 150% of it).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two sends that an endpoint's own hint (`Retry-After`, "try again in
/// 4s") may ask for: a longer outage is the caller's to wait out.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// How many times the average latency a read waits for its answer before it is sent again,
/// unless set otherwise (see [`HedgePolicy`]).
pub const DEFAULT_HEDGE_FACTOR: u32 = 4;
/// The shortest hedge delay, unless set otherwise: a healthy local node answers in a few
/// milliseconds, and a read sent again sooner than this would only double the load.
pub const DEFAULT_HEDGE_FLOOR: Duration = Duration::from_millis(150);
/// The longest hedge delay, unless set otherwise; also the delay before the endpoint has
/// answered once.
pub const DEFAULT_HEDGE_CEILING: Duration = Duration::from_secs(2);

/// When a read with no answer yet is sent a second time (see the crate's docs, "Hedged reads").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HedgePolicy {
    /// How many times the endpoint's average latency to wait.
    pub factor: u32,
    /// The shortest wait.
    pub floor: Duration,
    /// The longest wait, and the wait before any answer has been seen.
    pub ceiling: Duration,
}

impl Default for HedgePolicy {
    fn default() -> Self {
        Self {
            factor: DEFAULT_HEDGE_FACTOR,
            floor: DEFAULT_HEDGE_FLOOR,
            ceiling: DEFAULT_HEDGE_CEILING,
        }
    }
}

impl HedgePolicy {
    /// Always the same wait, whatever the endpoint's latency.
    pub fn fixed(after: Duration) -> Self {
        Self {
            factor: 1,
            floor: after,
            ceiling: after,
        }
    }

    /// The hedge delay for an endpoint whose good answers took `average` on average (`None`:
    /// none seen yet): `factor` times the average, clamped to `floor..=ceiling` (the ceiling
    /// wins if the two cross), or the ceiling while nothing has been seen.
    pub fn delay(&self, average: Option<Duration>) -> Duration {
        match average {
            None => self.ceiling,
            Some(average) => average
                .saturating_mul(self.factor)
                .max(self.floor)
                .min(self.ceiling),
        }
    }
}

/// What a connection to a chain's endpoint is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcOptions {
    /// Most time one request may take (connect, send, answer); a request past it fails with a
    /// transport error, which is retried, instead of hanging the caller.
    pub request_timeout: Duration,
    /// Most time one call may take, every retry included: a hung endpoint fails a call after
    /// this, not after `retries + 1` request timeouts.
    pub call_timeout: Duration,
    /// How often receipts (and other watched things) are polled for: the chain's poll interval,
    /// which follows its block time (alloy would otherwise poll every 7 s for remote endpoints).
    pub poll_interval: Duration,
    /// How many times one call is sent again after a transient failure (see the crate's docs);
    /// 0 sends every call once.
    pub retries: u32,
    /// The wait between two sends of one call; each wait is drawn from 50% to 150% of it, so
    /// clients that failed together do not come back together.
    pub retry_backoff: Duration,
    /// With several endpoints, how many a read is sent to at once, the best ranked first; `None`
    /// (the default) sends it to all. Fewer saves requests, but alloy ranks an endpoint that
    /// has only failed level with one never tried, so when the first `n` listed are all down,
    /// the others are never reached: keep `None` unless the first `n` are reliable.
    pub parallel_endpoints: Option<NonZeroUsize>,
    /// When a read without an answer is sent a second time (see the crate's docs, "Hedged
    /// reads"); `None` sends each read once (and retries only on errors).
    pub hedge: Option<HedgePolicy>,
}

impl Default for RpcOptions {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            retries: DEFAULT_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            parallel_endpoints: None,
            hedge: Some(HedgePolicy::default()),
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

    /// These options with each call, retries included, bounded by `timeout`.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// These options with each call sent again up to `retries` times, `backoff` apart (jittered).
    pub fn retry(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self
    }

    /// These options with reads hedged by `policy`.
    pub fn hedge(mut self, policy: HedgePolicy) -> Self {
        self.hedge = Some(policy);
        self
    }

    /// These options with every read sent once (until an error calls for a retry).
    pub fn no_hedging(mut self) -> Self {
        self.hedge = None;
        self
    }

    /// These options with each call sent once: a failure is returned at once.
    pub fn no_retries(self) -> Self {
        let backoff = self.retry_backoff;
        self.retry(0, backoff)
    }
}

/// One or several JSON-RPC URLs of one chain: a `&str`, a `String`, or a list of either.
pub trait Endpoints {
    /// The URLs, in the order given.
    fn urls(&self) -> Vec<&str>;
}

impl Endpoints for str {
    fn urls(&self) -> Vec<&str> {
        vec![self]
    }
}

impl Endpoints for String {
    fn urls(&self) -> Vec<&str> {
        vec![self.as_str()]
    }
}

impl<S: AsRef<str>> Endpoints for [S] {
    fn urls(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

impl<S: AsRef<str>, const N: usize> Endpoints for [S; N] {
    fn urls(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

impl<S: AsRef<str>> Endpoints for Vec<S> {
    fn urls(&self) -> Vec<&str> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

/// The retry policy of every client: which failures are worth sending the call again for, and
/// how long to wait first. See the crate's docs for the list.
#[derive(Debug, Clone, Copy)]
pub struct TransientErrors {
    /// The wait between two sends, before jitter.
    pub backoff: Duration,
}

impl RetryPolicy for TransientErrors {
    fn should_retry(&self, error: &TransportError) -> bool {
        is_transient(error)
    }

    fn backoff_hint(&self, error: &TransportError) -> Option<Duration> {
        let hinted = RateLimitRetryPolicy::default().backoff_hint(error);
        Some(
            hinted
                .unwrap_or_else(|| jittered(self.backoff))
                .min(MAX_RETRY_WAIT),
        )
    }
}

/// `base` scaled by a random factor from 0.5 to 1.5.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.5 + fastrand::f64())
}

/// Whether `error` says the call could not be made or was not answered (worth sending again),
/// rather than that the node answered it: a connection refused or reset, a timeout, HTTP 408,
/// 429 or 5xx, a body that is not a JSON-RPC answer, a missing batch member, or one of the
/// rate-limit errors public providers answer with. A revert or any other JSON-RPC error is an
/// answer, and not transient.
pub fn is_transient(error: &TransportError) -> bool {
    match error {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(http) => {
                http.status == 408 || http.status == 429 || http.status >= 500
            }
            TransportErrorKind::NonRetryable(_) | TransportErrorKind::PubsubUnavailable => false,
            // reqwest's errors (connect, reset, timeout, a cut body), a missing batch member, a
            // server's Retry-After, a gone backend.
            _ => true,
        },
        // The body was not a JSON-RPC answer at all (the transport could not read one from it).
        RpcError::DeserError { .. } => true,
        RpcError::ErrorResp(_) | RpcError::NullResp => {
            RateLimitRetryPolicy::default().should_retry(error)
        }
        _ => false,
    }
}

/// Why a chain client could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ChainClientError {
    /// No endpoint was given.
    #[error("no RPC endpoint is configured; fix the rpc setting (a URL, or a list of URLs)")]
    NoEndpoints,
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

/// A read-only client of the endpoint(s) `urls` (one URL or several of the same chain).
pub fn connect(
    urls: &(impl Endpoints + ?Sized),
    options: &RpcOptions,
) -> Result<DynProvider, ChainClientError> {
    Ok(ProviderBuilder::new()
        .connect_client(rpc_client(&urls.urls(), options)?)
        .erased())
}

/// A client of the endpoint(s) `urls` that signs and sends transactions as `signer` (nonces, gas
/// and chain id filled in by alloy's recommended fillers).
pub fn connect_with_signer(
    urls: &(impl Endpoints + ?Sized),
    signer: PrivateKeySigner,
    options: &RpcOptions,
) -> Result<DynProvider, ChainClientError> {
    Ok(ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_client(rpc_client(&urls.urls(), options)?)
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

/// The transport every client above shares: HTTP with a request timeout to each endpoint, the
/// endpoints behind a health-ranked fallback when there are several, reads hedged, every call
/// retried on transient failures, polling at the configured interval.
fn rpc_client(urls: &[&str], options: &RpcOptions) -> Result<RpcClient, ChainClientError> {
    let parsed = urls
        .iter()
        .map(|url| parse_url(url))
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Err(ChainClientError::NoEndpoints);
    }
    let http = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .build()
        .map_err(|e| ChainClientError::Http(e.to_string()))?;
    let is_local = urls.iter().all(alloy::transports::utils::guess_local_url);
    let retry = RetryBackoffLayer::new_with_policy(
        options.retries,
        options.retry_backoff.as_millis() as u64,
        // No compute-unit budget: the endpoints' own 429s say when to slow down.
        u64::MAX,
        TransientErrors {
            backoff: options.retry_backoff,
        },
    );
    let mut transports: Vec<Http<reqwest::Client>> = parsed
        .into_iter()
        .map(|url| Http::with_client(http.clone(), url))
        .collect();
    let deadline = options.call_timeout;
    let client = if transports.len() == 1 {
        let only = transports.remove(0);
        RpcClient::new(
            Deadline {
                inner: retry.layer(Hedged::new(only, options.hedge)),
                within: deadline,
            },
            is_local,
        )
    } else {
        let all = NonZeroUsize::new(transports.len()).unwrap_or(NonZeroUsize::MIN);
        let parallel = options.parallel_endpoints.map_or(all, |n| n.min(all));
        let fallback = FallbackLayer::default()
            .with_active_transport_count(parallel)
            // The same signed bytes to one endpoint at a time: the first answer is the one that
            // counts, not an "already known" from a second node that raced it.
            .with_sequential_method("eth_sendRawTransaction");
        RpcClient::new(
            Deadline {
                inner: retry.layer(Hedged::new(fallback.layer(transports), options.hedge)),
                within: deadline,
            },
            is_local,
        )
    };
    Ok(client.with_poll_interval(options.poll_interval.max(MIN_POLL_INTERVAL)))
}

/// Bounds a whole call, its retries included (alloy's retry layer has no overall budget).
#[derive(Debug, Clone)]
struct Deadline<S> {
    inner: S,
    within: Duration,
}

impl<S> Service<RequestPacket> for Deadline<S>
where
    S: Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        >,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let call = self.inner.call(request);
        let within = self.within;
        Box::pin(async move {
            tokio::time::timeout(within, call)
                .await
                .unwrap_or_else(|_| {
                    Err(TransportErrorKind::custom_str(&format!(
                        "no answer within {within:?}, retries included; check that the RPC endpoint is up and answering"
                    )))
                })
        })
    }
}

/// Whether a request may be sent twice ("Hedged reads" in the crate's docs): every method in
/// it is a read of the `eth_`, `net_` or `web3_` namespace that neither sends, signs, nor holds
/// state on the node, or `eth_sendRawTransaction` (the same signed bytes twice are one
/// transaction). An empty batch is not.
pub fn is_hedged(request: &RequestPacket) -> bool {
    let mut methods = request.method_names().peekable();
    methods.peek().is_some() && methods.all(|m| is_read(m) || m == "eth_sendRawTransaction")
}

/// Whether `method` only reads (see [`is_hedged`]).
fn is_read(method: &str) -> bool {
    /// Reads' namespaces.
    const READS: [&str; 3] = ["eth_", "net_", "web3_"];
    /// Methods of those namespaces that send, sign, or keep state on the node (a filter whose
    /// changes a second read would take from the first).
    const NOT_READS: [&str; 10] = [
        "eth_sendRawTransaction",
        "eth_sendRawTransactionSync",
        "eth_sendTransaction",
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_uninstallFilter",
        "eth_subscribe",
        "eth_unsubscribe",
    ];
    READS.iter().any(|ns| method.starts_with(ns))
        && !method.starts_with("eth_sign")
        && !NOT_READS.contains(&method)
}

/// A moving average of an endpoint's latency to reads, shared by the clones of one client's
/// transport.
#[derive(Debug, Default)]
struct Latency(Mutex<Option<Duration>>);

impl Latency {
    /// How much one new answer moves the average.
    const WEIGHT: f64 = 1.0 / 8.0;

    fn average(&self) -> Option<Duration> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, took: Duration) {
        let mut average = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *average = Some(match *average {
            None => took,
            Some(a) => Duration::from_secs_f64(
                a.as_secs_f64() * (1.0 - Self::WEIGHT) + took.as_secs_f64() * Self::WEIGHT,
            ),
        });
    }
}

/// Sends a read with no answer after the hedge delay a second time; the first good answer
/// wins ("Hedged reads" in the crate's docs).
#[derive(Debug, Clone)]
struct Hedged<S> {
    inner: S,
    policy: Option<HedgePolicy>,
    latency: Arc<Latency>,
}

impl<S> Hedged<S> {
    fn new(inner: S, policy: Option<HedgePolicy>) -> Self {
        Self {
            inner,
            policy,
            latency: Arc::default(),
        }
    }
}

/// Whether a send's answer says the node has the transaction already ("already known", "nonce
/// too low", ...): what the second copy of a hedged send hears when the first got there first.
fn is_already_sent(outcome: &Result<ResponsePacket, TransportError>) -> bool {
    let Ok(packet) = outcome else { return false };
    packet.as_error().is_some_and(|e| {
        let message = e.message.to_lowercase();
        [
            "already known",
            "nonce too low",
            "known transaction",
            "already imported",
        ]
        .iter()
        .any(|m| message.contains(m))
    })
}

/// Whether an attempt's outcome is an answer to return at once: a JSON-RPC answer that is not
/// itself a transient failure (a rate-limit error), a revert included.
fn is_good(outcome: &Result<ResponsePacket, TransportError>) -> bool {
    match outcome {
        Ok(packet) => packet
            .as_error()
            .is_none_or(|e| !is_transient(&TransportError::ErrorResp(e.clone()))),
        Err(_) => false,
    }
}

impl<S> Service<RequestPacket> for Hedged<S>
where
    S: Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        > + Clone
        + Send
        + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let Some(policy) = self.policy.filter(|_| is_hedged(&request)) else {
            return self.inner.call(request);
        };
        let latency = self.latency.clone();
        let wait = policy.delay(latency.average());
        let raw_send = request
            .method_names()
            .any(|m| m == "eth_sendRawTransaction");
        let first = self.inner.call(request.clone());
        let mut spare = self.inner.clone();
        Box::pin(async move {
            let started = Instant::now();
            tokio::pin!(first);
            tokio::select! {
                biased;
                outcome = &mut first => {
                    if is_good(&outcome) {
                        latency.record(started.elapsed());
                    }
                    return outcome;
                }
                () = tokio::time::sleep(wait) => {}
            }
            // No answer yet: the same request again; whichever answers well first wins, and
            // the other is dropped (its request cancelled).
            let second = spare.call(request);
            let resent = Instant::now();
            tokio::pin!(second);
            let (mut first_done, mut second_done) = (false, false);
            // A send's copy told the transaction is known already (the other copy reached the
            // node first) is kept back while the other may still bring the hash.
            let mut held = None;
            loop {
                let (outcome, took) = tokio::select! {
                    outcome = &mut first, if !first_done => {
                        first_done = true;
                        (outcome, started.elapsed())
                    }
                    outcome = &mut second, if !second_done => {
                        second_done = true;
                        (outcome, resent.elapsed())
                    }
                };
                let both_done = first_done && second_done;
                if is_good(&outcome) {
                    if raw_send && !both_done && is_already_sent(&outcome) {
                        held = Some(outcome);
                        continue;
                    }
                    latency.record(took);
                    return outcome;
                }
                if both_done {
                    // Both failed (or the other was told it is known): that answer, else the
                    // later failure, goes to the retry layer.
                    return held.unwrap_or(outcome);
                }
            }
        })
    }
}

fn parse_url(url: &str) -> Result<reqwest::Url, ChainClientError> {
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
    Ok(parsed)
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

    fn request(method: &'static str) -> alloy::rpc::json_rpc::SerializedRequest {
        alloy::rpc::json_rpc::Request::new(method, alloy::rpc::json_rpc::Id::Number(1), ())
            .serialize()
            .unwrap()
    }

    #[test]
    fn the_hedge_delay_is_a_multiple_of_the_average_latency_within_floor_and_ceiling() {
        let rule = HedgePolicy {
            factor: 4,
            floor: Duration::from_millis(150),
            ceiling: Duration::from_secs(2),
        };
        let ms = Duration::from_millis;
        // Nothing seen yet: the ceiling.
        assert_eq!(rule.delay(None), ms(2000));
        // A fast endpoint: the floor, not 20 ms.
        assert_eq!(rule.delay(Some(ms(5))), ms(150));
        assert_eq!(rule.delay(Some(ms(100))), ms(400));
        // A slow one: never above the ceiling.
        assert_eq!(rule.delay(Some(ms(900))), ms(2000));
        assert_eq!(rule.delay(Some(Duration::MAX)), ms(2000));
        // A fixed rule is its one delay whatever the latency.
        let fixed = HedgePolicy::fixed(ms(300));
        assert_eq!(fixed.delay(None), ms(300));
        assert_eq!(fixed.delay(Some(ms(1))), ms(300));
        assert_eq!(fixed.delay(Some(ms(10_000))), ms(300));
        // A floor above the ceiling: the ceiling wins.
        let crossed = HedgePolicy {
            factor: 4,
            floor: ms(500),
            ceiling: ms(200),
        };
        assert_eq!(crossed.delay(Some(ms(1))), ms(200));
    }

    #[test]
    fn the_average_latency_moves_an_eighth_of_the_way_to_each_new_answer() {
        let latency = Latency::default();
        assert_eq!(latency.average(), None);
        latency.record(Duration::from_millis(80));
        assert_eq!(latency.average(), Some(Duration::from_millis(80)));
        latency.record(Duration::from_millis(160));
        let average = latency.average().unwrap().as_secs_f64();
        assert!((average - 0.090).abs() < 1e-9, "{average}");
    }

    #[test]
    fn reads_and_raw_sends_are_hedged_and_signing_sends_filters_and_test_node_methods_are_not() {
        for read in [
            "eth_sendRawTransaction",
            "eth_call",
            "eth_getBlockByNumber",
            "eth_chainId",
            "eth_getLogs",
            "eth_estimateGas",
            "eth_getTransactionReceipt",
            "net_version",
            "web3_clientVersion",
        ] {
            assert!(is_hedged(&RequestPacket::Single(request(read))), "{read}");
        }
        for not_read in [
            "eth_sendRawTransactionSync",
            "eth_sendTransaction",
            "eth_sign",
            "eth_signTypedData_v4",
            "eth_newFilter",
            "eth_getFilterChanges",
            "eth_subscribe",
            "anvil_mine",
            "anvil_setBalance",
            "evm_mine",
            "evm_increaseTime",
            "hardhat_mine",
            "debug_traceTransaction",
        ] {
            assert!(
                !is_hedged(&RequestPacket::Single(request(not_read))),
                "{not_read}"
            );
        }
    }

    #[test]
    fn a_batch_is_hedged_only_when_every_member_is_a_read() {
        let reads = RequestPacket::Batch(vec![request("eth_call"), request("eth_blockNumber")]);
        assert!(is_hedged(&reads));
        let mixed = RequestPacket::Batch(vec![request("eth_call"), request("anvil_mine")]);
        assert!(!is_hedged(&mixed));
        assert!(!is_hedged(&RequestPacket::Batch(Vec::new())));
    }
}
