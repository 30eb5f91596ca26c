//! What the indexer needs from a chain, and its implementation over JSON-RPC.

use std::future::Future;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use lilypad_bindings::Lilypad;
use lilypad_chain::{ChainClientError, RpcOptions};
use lilypad_types::JobRequested;

/// A chain that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint failed or is unreachable (retried with backoff).
    #[error("RPC {op} failed: {reason}")]
    Rpc {
        /// What was asked.
        op: String,
        /// The transport's or node's error.
        reason: String,
    },
    /// The endpoint serves another chain than the configuration says.
    #[error(
        "the RPC endpoint serves chain {actual}, but chains.toml says {expected} (fix: point rpc at a node of chain {expected}, or correct chain_id)"
    )]
    WrongChain {
        /// chain_id in chains.toml.
        expected: u64,
        /// What eth_chainId answered.
        actual: u64,
    },
    /// A block the indexer needs is not known to the node.
    #[error("block {0} is not known to the RPC endpoint")]
    MissingBlock(u64),
    /// A log at the Lilypad address with the JobRequested topic did not decode.
    #[error(
        "a JobRequested log in block {block} (tx {tx}) does not decode: {reason}; is the deployment address right?"
    )]
    MalformedLog {
        /// Its block.
        block: u64,
        /// Its transaction.
        tx: B256,
        /// Why it did not decode.
        reason: String,
    },
}

fn rpc(op: impl Into<String>) -> impl FnOnce(String) -> ChainError {
    let op = op.into();
    move |reason| ChainError::Rpc { op, reason }
}

/// What the indexer reads from a chain.
pub trait ChainSource: Send + Sync {
    /// The chain's latest block number.
    fn head(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// The latest finalized block number.
    fn finalized(&self) -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// The hash of block `number` on the chain as the node sees it now.
    fn block_hash(&self, number: u64) -> impl Future<Output = Result<B256, ChainError>> + Send;
    /// The contract's request count as of the end of block `number`.
    fn request_count_at(&self, number: u64)
    -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// The timestamp of block `number` (unix seconds).
    fn block_timestamp(&self, number: u64) -> impl Future<Output = Result<u64, ChainError>> + Send;
    /// Every request made in blocks `from..=to`, in order.
    fn requests(
        &self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<JobRequested>, ChainError>> + Send;
}

/// A chain read over HTTP JSON-RPC.
#[derive(Debug, Clone)]
pub struct RpcChain {
    provider: DynProvider,
    chain_id: u64,
    lilypad: Address,
}

impl RpcChain {
    /// Connects to the endpoint(s) `urls` and checks that they serve `chain_id`.
    pub async fn connect(
        urls: &(impl lilypad_chain::Endpoints + ?Sized),
        chain_id: u64,
        lilypad: Address,
    ) -> Result<Self, ChainError> {
        let provider =
            lilypad_chain::connect(urls, &RpcOptions::default()).map_err(|e| ChainError::Rpc {
                op: "connecting".into(),
                reason: e.to_string(),
            })?;
        match lilypad_chain::check_chain_id(&provider, chain_id).await {
            Ok(()) => {}
            Err(ChainClientError::WrongChain { expected, actual }) => {
                return Err(ChainError::WrongChain { expected, actual });
            }
            Err(e) => return Err(rpc("eth_chainId")(e.to_string())),
        }
        Ok(Self {
            provider,
            chain_id,
            lilypad,
        })
    }

    /// The header of block `number`.
    async fn header(&self, number: u64) -> Result<alloy::rpc::types::Header, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| rpc(format!("eth_getBlockByNumber({number})"))(e.to_string()))?;
        block
            .map(|b| b.header)
            .ok_or(ChainError::MissingBlock(number))
    }

    /// The provider, for calls this type does not wrap.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }
}

impl ChainSource for RpcChain {
    async fn head(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| rpc("eth_blockNumber")(e.to_string()))
    }

    async fn finalized(&self) -> Result<u64, ChainError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Finalized)
            .await
            .map_err(|e| rpc("eth_getBlockByNumber(finalized)")(e.to_string()))?;
        Ok(block.map_or(0, |b| b.header.number))
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        Ok(self.header(number).await?.hash)
    }

    async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        Ok(self.header(number).await?.timestamp)
    }

    async fn request_count_at(&self, number: u64) -> Result<u64, ChainError> {
        let lilypad = Lilypad::new(self.lilypad, &self.provider);
        match lilypad.requestCount().block(number.into()).call().await {
            Ok(count) => Ok(count),
            Err(e) => {
                // Before the contract was deployed there were no requests; anything else is an
                // error worth reporting.
                let code = self
                    .provider
                    .get_code_at(self.lilypad)
                    .number(number)
                    .await
                    .map_err(|e| rpc(format!("eth_getCode at block {number}"))(e.to_string()))?;
                if code.is_empty() {
                    Ok(0)
                } else {
                    Err(rpc(format!("requestCount() at block {number}"))(
                        e.to_string(),
                    ))
                }
            }
        }
    }

    async fn requests(&self, from: u64, to: u64) -> Result<Vec<JobRequested>, ChainError> {
        let filter = Filter::new()
            .address(self.lilypad)
            .event_signature(Lilypad::JobRequested::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(|e| rpc(format!("eth_getLogs({from}..={to})"))(e.to_string()))?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let block = log.block_number.unwrap_or_default();
            let tx = log.transaction_hash.unwrap_or_default();
            let decoded = log.log_decode::<Lilypad::JobRequested>().map_err(|e| {
                ChainError::MalformedLog {
                    block,
                    tx,
                    reason: e.to_string(),
                }
            })?;
            out.push(lilypad_bindings::convert::job_requested(
                self.chain_id,
                self.lilypad,
                &decoded.inner.data,
                &log,
            ));
        }
        out.sort_by_key(|r| r.sequence);
        Ok(out)
    }
}
