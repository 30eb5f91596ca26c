//! What a relayer that was stopped or killed left in flight: the pending records in Redis. On
//! taking the lease, a submitter retires the records whose nonce the chain has used and schedules
//! what follows from each job's on-chain state, so a relayer killed between a deal landing and
//! scheduling its timeout still times the job out; a record whose nonce nothing will use (its
//! action no longer needed, no attempt held by the node) gets a cancellation ([`super::gaps`]).

use super::*;

impl Submitter {
    /// Retires the pending records left for this signer: each whose nonce has been mined (this
    /// attempt, an earlier one, or another transaction) is forgotten, and the action that follows
    /// its call is scheduled at the job's deadline if the job is in the state that action needs;
    /// the action it made unneeded is marked done once the job has moved past it. Records still
    /// needed or in the pool stay; the nonce of one given up, or of one reserved and never
    /// recorded, is filled ([`Submitter::fill_gaps`]). Returns how many were retired.
    pub async fn recover(&self) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let pending: Vec<(u64, PendingTx)> = self.store.pending(chain, self.signer).await?;
        let mined = self.transaction_count(false).await?;
        let mut retired = 0;
        for (n, tx) in &pending {
            if nonce::is_mined(*n, mined) {
                self.retire(*n, tx).await?;
                retired += 1;
            }
        }
        self.fill_gaps().await?;
        Ok(retired)
    }
}
