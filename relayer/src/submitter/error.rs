//! What can go wrong landing a transaction, and how a revert is decoded by name.

use alloy::primitives::B256;
use lilypad_bindings::Lilypad;
use lilypad_bus::BusError;
use lilypad_store::StoreError;
use lilypad_types::JobKey;

/// A submission that failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The RPC endpoint failed; retried later.
    #[error("RPC {op} failed: {reason}")]
    Rpc {
        /// What was asked.
        op: String,
        /// The error.
        reason: String,
    },
    /// The contract refuses the transaction (it would revert): reported with the job, not retried.
    #[error("job {key}: {call} would revert: {reason}")]
    Reverts {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// The revert, decoded when it is one of Lilypad's errors.
        reason: String,
    },
    /// Mined but reverted (someone else changed the job in between).
    #[error("job {key}: {call} was mined in {tx} but reverted")]
    MinedReverted {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// The transaction.
        tx: B256,
    },
    /// Not mined even after every fee bump up to the cap.
    #[error(
        "job {key}: {call} (nonce {nonce}) not mined after {attempts} attempts at up to the fee cap; raise gas.max_fee_gwei"
    )]
    Stuck {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// Its nonce.
        nonce: u64,
        /// How many times it was sent.
        attempts: u32,
    },
    /// The job is not ready for this message yet (e.g. a result whose deal is not mined): the
    /// message is kept and tried again.
    #[error("job {key}: not yet: {reason}")]
    NotYet {
        /// The job.
        key: JobKey,
        /// What it waits for.
        reason: String,
    },
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

pub(super) fn rpc(op: impl Into<String>) -> impl FnOnce(String) -> SubmitError {
    let op = op.into();
    move |reason| SubmitError::Rpc { op, reason }
}

/// The revert reason, decoded to Lilypad's error name when it is one.
pub(super) fn decode_revert(e: &alloy::transports::TransportError) -> String {
    if let Some(payload) = e.as_error_resp() {
        if let Some(decoded) = payload.as_decoded_interface_error::<Lilypad::LilypadErrors>() {
            return format!("{decoded:?}");
        }
        return payload.message.to_string();
    }
    e.to_string()
}
