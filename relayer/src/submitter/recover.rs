//! What a relayer that was stopped or killed left in flight: the pending records in Redis. On
//! taking the lease, a submitter retires the records whose nonce the chain has used and schedules
//! what follows from each job's on-chain state, so a relayer killed between a deal landing and
//! scheduling its timeout still times the job out.

use super::*;

impl Submitter {
    /// Retires the pending records left for this signer: each whose nonce has been mined (this
    /// attempt, an earlier one, or another transaction) is forgotten, and the action that follows
    /// its call is scheduled at the job's deadline if the job is in the state that action needs;
    /// the action it made unneeded is marked done once the job has moved past it. Records still in
    /// the pool stay. Returns how many were retired.
    pub async fn recover(&self) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let pending: Vec<(u64, PendingTx)> = self.store.pending(chain, self.signer).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let mined = self.transaction_count(false).await?;
        let mut retired = 0;
        for (n, tx) in pending {
            if !nonce::is_mined(n, mined) {
                continue; // still in the pool, or it never reached it: left as it is
            }
            match After::of_call(&tx.call) {
                Some(after) => {
                    let (state, deadline) = self.job_state(tx.job).await?;
                    self.follow_up(tx.job, after, state, deadline).await?;
                }
                None => {
                    tracing::warn!(chain, job = %tx.job, call = %tx.call, nonce = n, "a pending record names a call this build does not send; forgotten");
                }
            }
            self.store.clear_pending(chain, self.signer, n).await?;
            tracing::info!(chain, job = %tx.job, call = %tx.call, nonce = n, hash = %tx.hash, "retired a transaction a previous run left in flight");
            retired += 1;
        }
        Ok(retired)
    }
}
