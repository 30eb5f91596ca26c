//! Nonces for one signer on one chain. The next nonce is reserved in Redis (atomically, and never
//! below the chain's own pending count, so two rounds or two relayers never reuse one). A send the
//! node refused gives its nonce back when it is still the last one reserved, so no gap is left. A
//! send whose answer was lost keeps its nonce: the node may hold it, and the same signed bytes are
//! sent again (see [`super::send`]); the nonce is never handed to another transaction.
//!
//! The reservation follows the chain back, too: when the chain's pending count is behind the next
//! reservation and no pending record holds a nonce in between, those nonces were mined and then
//! removed by a reorganisation (or dropped from every pool), and the next reservation is the
//! chain's count again ([`follow`], decided here; [`Nonces::follow_chain`] moves it atomically in
//! Redis). Without it the next transaction would wait in the pool behind nonces nothing will
//! send. It is taken only where no reservation is in progress (a round's start, on taking the
//! lease), from counts read then.

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

    /// Moves the next reservation back from `from` to the chain's pending count `to`, as
    /// [`follow`] decided, if it is still `from` and no pending record holds a nonce in between
    /// (both checked atomically in Redis). Returns whether it moved.
    pub async fn follow_chain(&self, from: u64, to: u64) -> Result<bool, StoreError> {
        self.store
            .resync_nonce(self.chain_id, self.signer, from, to)
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

/// Where the next reservation should move to follow the chain: `Some(chain_pending)` when the
/// chain's pending count is behind `reserved_up_to` (the next reservation) and no pending record
/// (`recorded`, their nonces) holds a nonce in between, so nothing will ever send those nonces;
/// `None` while the reservation is where the chain is, or a pending record may still fill the
/// nonces between ([`super::gaps`] sends its bytes again when the node lost them, or fills its
/// nonce when its action was given up).
pub fn follow(chain_pending: u64, reserved_up_to: Option<u64>, recorded: &[u64]) -> Option<u64> {
    let up_to = reserved_up_to?;
    if chain_pending >= up_to {
        return None;
    }
    let held = recorded.iter().any(|n| (chain_pending..up_to).contains(n));
    (!held).then_some(chain_pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_a_reorganisation_removed_are_reserved_again() {
        // 2..5 were handed out and mined, then removed: the chain says 2 is next.
        assert_eq!(follow(2, Some(5), &[]), Some(2));
        // A record below the chain's count (mined, not yet retired) does not hold the gap.
        assert_eq!(follow(2, Some(5), &[1]), Some(2));
    }

    #[test]
    fn the_reservation_stays_while_a_pending_record_may_fill_the_nonces_between() {
        assert_eq!(follow(2, Some(5), &[3]), None);
        assert_eq!(follow(2, Some(5), &[4]), None);
    }

    #[test]
    fn the_reservation_stays_when_the_chain_is_not_behind_it() {
        assert_eq!(follow(5, Some(5), &[]), None);
        assert_eq!(follow(7, Some(5), &[]), None);
        assert_eq!(follow(0, None, &[]), None);
    }

    #[test]
    fn a_nonce_is_mined_once_the_count_passes_it() {
        assert!(!is_mined(5, 5));
        assert!(is_mined(5, 6));
        assert!(is_mined(0, 1));
    }
}
