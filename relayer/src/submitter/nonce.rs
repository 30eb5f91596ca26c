//! Nonces for one signer on one chain. The next nonce is reserved in Redis (atomically, and never
//! below the chain's own pending count, so two rounds or two relayers never reuse one). A send the
//! node refused gives its nonce back when it is still the last one reserved, so no gap is left. A
//! send whose answer was lost keeps its nonce: the node may hold it, and the same signed bytes are
//! sent again (see [`super::send`]); the nonce is never handed to another transaction.

use alloy::primitives::Address;
use lilypad_store::{Store, StoreError};

/// The nonces of `signer` on chain `chain_id`.
#[derive(Debug, Clone)]
pub struct Nonces {
    store: Store,
    chain_id: u64,
    signer: Address,
}

impl Nonces {
    /// The nonce book of `signer` on `chain_id`, kept in `store`.
    pub fn new(store: Store, chain_id: u64, signer: Address) -> Self {
        Self {
            store,
            chain_id,
            signer,
        }
    }

    /// Reserves the next nonce: the one after the last reserved, or the chain's pending count
    /// `chain_pending` when that is higher (transactions sent by something else, or a wiped store).
    pub async fn reserve(&self, chain_pending: u64) -> Result<u64, StoreError> {
        self.store
            .next_nonce(self.chain_id, self.signer, chain_pending)
            .await
    }

    /// After a send the node refused (so it does not hold it): `nonce` is reserved again by the
    /// next transaction, if no later one was reserved since. Returns whether it was given back.
    pub async fn give_back(&self, nonce: u64) -> Result<bool, StoreError> {
        self.store
            .release_nonce(self.chain_id, self.signer, nonce)
            .await
    }

    /// Sets the next reservation to the chain's pending count `chain_pending` outright (an
    /// operator's repair after transactions were dropped from every pool).
    pub async fn resync(&self, chain_pending: u64) -> Result<(), StoreError> {
        self.store
            .reset_nonce(self.chain_id, self.signer, chain_pending)
            .await
    }
}

/// Whether a transaction with `nonce` has been mined, in some attempt, given the signer's mined
/// transaction count `mined_count` (`eth_getTransactionCount` at latest).
pub fn is_mined(nonce: u64, mined_count: u64) -> bool {
    mined_count > nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_mined_once_the_count_passes_it() {
        assert!(!is_mined(5, 5));
        assert!(is_mined(5, 6));
        assert!(is_mined(0, 1));
    }
}
