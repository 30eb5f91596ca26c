//! Sending a transaction exactly once, for a service or command that sends a few at a time (the
//! mediator, the CLI; the relayer's submitter, which pipelines many, has its own).
//!
//! A transaction is filled (nonce, gas, fees) and signed here ([`sign`]), so its hash is known
//! before it leaves: the caller may write it down first. When the answer to the send is lost (a
//! reset, a timeout, or the retried send told "nonce too low" or "already known" because the first
//! one did reach the node), [`send_signed`] looks the transaction up by that hash instead of
//! reporting it as failed (a caller would then send it again), and [`receipt_of`] finds out later,
//! after a restart too, what became of a transaction whose outcome was never seen.

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::{DynProvider, PendingTransactionBuilder, PendingTransactionError, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::transports::TransportError;

/// Why a transaction could not be sent or its outcome not be seen.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The node's gas estimate failed: the transaction would revert now (its revert data, when
    /// the node gave it, is [`SendError::revert_data`]). Nothing was sent.
    #[error("{what} cannot be sent: {source}")]
    WouldRevert {
        /// The transaction, in the caller's words.
        what: String,
        /// The estimate's error.
        source: TransportError,
    },
    /// A call made to fill, send or look up the transaction failed.
    #[error("{what}: {call} failed: {source}")]
    Rpc {
        /// The transaction, in the caller's words.
        what: String,
        /// The JSON-RPC method or step.
        call: &'static str,
        /// The error.
        source: TransportError,
    },
    /// The wallet could not sign it.
    #[error("signing {what}: {reason}")]
    Signing {
        /// The transaction, in the caller's words.
        what: String,
        /// The wallet's error.
        reason: String,
    },
    /// The transaction was sent (or the node has it) but its receipt could not be read.
    #[error("waiting for {what} (transaction {hash}) to be mined: {source}")]
    Receipt {
        /// The transaction, in the caller's words.
        what: String,
        /// Its hash: look it up, it may have been mined.
        hash: B256,
        /// The error.
        source: PendingTransactionError,
    },
}

impl SendError {
    /// The revert data of a transaction that would revert, when the node gave it (decode it with
    /// the contract's errors).
    pub fn revert_data(&self) -> Option<Bytes> {
        match self {
            Self::WouldRevert { source, .. } => {
                source.as_error_resp().and_then(|p| p.as_revert_data())
            }
            _ => None,
        }
    }

    /// The estimate's error of a transaction that would revert.
    pub fn into_revert(self) -> Result<TransportError, Self> {
        match self {
            Self::WouldRevert { source, .. } => Ok(source),
            other => Err(other),
        }
    }
}

/// A transaction filled and signed, not yet sent.
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// Its hash, known before it is sent.
    pub hash: B256,
    raw: Vec<u8>,
    what: String,
}

/// Fills `tx` as `from` on chain `chain_id` (the pending nonce, the gas the node estimates, its
/// EIP-1559 fees) and signs it with `wallet`. A transaction that would revert is
/// [`SendError::WouldRevert`]; `what` names it in errors.
pub async fn sign(
    provider: &DynProvider,
    wallet: &EthereumWallet,
    from: Address,
    chain_id: u64,
    tx: TransactionRequest,
    what: &str,
) -> Result<SignedTx, SendError> {
    let rpc = |call| {
        move |source| SendError::Rpc {
            what: what.to_owned(),
            call,
            source,
        }
    };
    let nonce = provider
        .get_transaction_count(from)
        .pending()
        .await
        .map_err(rpc("eth_getTransactionCount"))?;
    let tx = tx.with_from(from).with_nonce(nonce).with_chain_id(chain_id);
    let gas = provider
        .estimate_gas(tx.clone())
        .await
        .map_err(|source| SendError::WouldRevert {
            what: what.to_owned(),
            source,
        })?;
    let fees = provider
        .estimate_eip1559_fees()
        .await
        .map_err(rpc("estimating fees"))?;
    let envelope = tx
        .with_gas_limit(gas)
        .with_max_fee_per_gas(fees.max_fee_per_gas)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
        .build(wallet)
        .await
        .map_err(|e| SendError::Signing {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718(),
        what: what.to_owned(),
    })
}

/// Sends `tx` and waits for its receipt (a reverted one included: check its status). A send whose
/// answer was lost, or that was told the transaction is known or its nonce used, goes on to wait
/// when the node has the transaction; only when it has not is the send's error returned.
pub async fn send_signed(
    provider: &DynProvider,
    tx: &SignedTx,
) -> Result<TransactionReceipt, SendError> {
    if let Err(source) = provider.send_raw_transaction(&tx.raw).await {
        let known = provider.get_transaction_by_hash(tx.hash).await;
        if !matches!(known, Ok(Some(_))) {
            return Err(SendError::Rpc {
                what: format!("{} (transaction {})", tx.what, tx.hash),
                call: "eth_sendRawTransaction",
                source,
            });
        }
        tracing::debug!(hash = %tx.hash, "the answer to sending {} was lost; the node has it", tx.what);
    }
    wait(provider, tx.hash, &tx.what).await
}

/// Fills, signs and sends `tx` exactly once ([`sign`], then [`send_signed`]) and waits for its
/// receipt.
pub async fn send_once(
    provider: &DynProvider,
    wallet: &EthereumWallet,
    from: Address,
    chain_id: u64,
    tx: TransactionRequest,
    what: &str,
) -> Result<TransactionReceipt, SendError> {
    let signed = sign(provider, wallet, from, chain_id, tx, what).await?;
    send_signed(provider, &signed).await
}

/// What became of transaction `hash`, sent before without its outcome seen: its receipt once it
/// is mined (waited for while the node holds it), `None` when the node does not know it (it never
/// arrived, or was dropped): the caller may send again.
pub async fn receipt_of(
    provider: &DynProvider,
    hash: B256,
    what: &str,
) -> Result<Option<TransactionReceipt>, SendError> {
    let known = provider
        .get_transaction_by_hash(hash)
        .await
        .map_err(|source| SendError::Rpc {
            what: format!("{what} (transaction {hash})"),
            call: "eth_getTransactionByHash",
            source,
        })?;
    match known {
        None => Ok(None),
        Some(_) => wait(provider, hash, what).await.map(Some),
    }
}

async fn wait(
    provider: &DynProvider,
    hash: B256,
    what: &str,
) -> Result<TransactionReceipt, SendError> {
    PendingTransactionBuilder::new(provider.root().clone(), hash)
        .get_receipt()
        .await
        .map_err(|source| SendError::Receipt {
            what: what.to_owned(),
            hash,
            source,
        })
}
