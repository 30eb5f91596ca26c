//! Following the chain through a reorganisation: what the relayer landed and the chain no longer
//! has is sent again, and the nonces the reorganisation removed are used again.
//!
//! - **Kept landings.** Every transaction the submitter lands (a deal, a result, a due action) is
//!   kept in Redis ([`Landed`]: the call, its calldata with the provider's signature, the job's
//!   request hash, the block and block hash it landed in), keyed by call, job and request hash,
//!   until its block is deep enough that no reorganisation is expected to reach it
//!   ([`ReorgSettings::keep_for`]: the chain's `confirmations` or its `reorg_rewind`, whichever is
//!   deeper). A deal or result message is acked once its transaction lands; the kept copy is what
//!   makes it possible to land it again.
//! - **When they are checked.** At the start of a round, once per `gas.replace_after` (with the
//!   nonce gaps, [`super::gaps`]) and at once when the chain's indexer noticed a reorganisation
//!   below its cursor (it counts them in Redis, [`lilypad_store::Store::note_reorg`]; a send
//!   about to reserve a nonce also looks at that count, so a reorganisation noticed mid-round
//!   moves the nonce before it). A check reads the head and the hash of the newest kept block,
//!   and of older ones only while they differ (a block whose hash holds vouches for every block
//!   below it), so an undisturbed chain costs two reads.
//! - **What is redone.** Each kept landing whose block is gone or has another hash is looked up
//!   on-chain ([`redo`], pure): one the node mined again by itself in another block is only kept
//!   again, and one it holds in its pool is waited for; a job that now has another request hash
//!   (removed, or its id taken by another request) is let go; a deal for a `Requested` job and a result for an `Agreed` one
//!   are sent again with the same calldata (the signatures are still valid: the contract checks
//!   the deal's expiry itself, and refuses for good one that passed, which drops it); a due action
//!   whose job is back in the state it needs is scheduled again at the job's deadline. Deals go
//!   first, then results (a result needs its deal), then due actions. Each redone landing is
//!   logged with its job and call, and as deeper than `confirmations` when its block was at
//!   least that deep, which the indexer's confirmed reads assumed could not happen.
//! - **Nonces.** Before anything is sent again the submitter's next nonce follows the chain back
//!   ([`super::nonce::follow`]): anvil's `anvil_reorg` drops the transactions of the removed
//!   blocks (they do not return to the pool), and a node that does put them back counts them in
//!   its pending count, so either way the next reservation is right. A send made after a
//!   reorganisation and before it is noticed waits behind the removed nonces for one
//!   `replace_after`; then the nonces below it that nothing holds are filled with cancellations
//!   ([`super::gaps`]) and what was undone is sent again with later nonces.

use alloy::eips::BlockNumberOrTag;
use lilypad_config::Confirmations;

use super::*;

/// How deep a landing must be before it is no longer kept, and what counts as a deep
/// reorganisation.
#[derive(Debug, Clone)]
pub struct ReorgSettings {
    /// How far behind the head the chain's indexer reads (a landing undone at least this deep is
    /// logged as a reorganisation deeper than `confirmations`).
    pub confirmations: Confirmations,
    /// How many blocks deep a landing is kept.
    pub keep_for: u64,
}

impl ReorgSettings {
    /// The settings for a chain read `confirmations` behind its head whose reorganisations are
    /// expected no deeper than `reorg_rewind` blocks: landings are kept for the deeper of the two.
    pub fn new(confirmations: Confirmations, reorg_rewind: u64) -> Self {
        let keep_for = match confirmations {
            Confirmations::Blocks(n) => n.max(reorg_rewind),
            Confirmations::Finalized => reorg_rewind,
        };
        Self {
            confirmations,
            keep_for,
        }
    }
}

impl Default for ReorgSettings {
    fn default() -> Self {
        Self::new(
            lilypad_config::defaults::CONFIRMATIONS,
            lilypad_config::defaults::REORG_REWIND,
        )
    }
}

/// What a submitter shares across its clones to follow reorganisations.
#[derive(Debug, Default)]
pub(super) struct Watch {
    settings: ReorgSettings,
    /// The chain's reorganisation count as last seen (`None` before the first look).
    seen: std::sync::Mutex<Option<u64>>,
}

/// A landed transaction, as kept in Redis until it is deep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Landed {
    /// The job it is for.
    pub job: U256,
    /// The function called.
    pub call: String,
    /// The job's request hash when it landed: a job id taken by another request after a
    /// reorganisation is another job.
    pub request_hash: B256,
    /// The calldata (for a deal or result, with the provider's signature).
    pub input: Bytes,
    /// The transaction that landed.
    pub tx: B256,
    /// The block it landed in.
    pub block: u64,
    /// That block's hash.
    pub block_hash: B256,
}

impl Landed {
    /// Its id in Redis: call, job and request hash.
    fn id(&self) -> String {
        format!("{}:{}:{}", self.call, self.job, self.request_hash)
    }

    /// The order it is redone in: deals, then results, then due actions.
    fn order(&self) -> u8 {
        match self.call.as_str() {
            "agreeDeal" => 0,
            "submitResult" => 1,
            _ => 2,
        }
    }
}

/// Where a kept landing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its block is still on the chain and not deep yet: kept.
    Holds,
    /// Its block is on the chain and `keep_for` deep: forgotten.
    Deep,
    /// Its block is gone or has another hash: a reorganisation undid it.
    Undone,
}

/// Where a landing kept in block `block` with hash `kept_hash` stands, when the chain's block at
/// that height has hash `hash_now` (`None`: no such block now) and its head is `head`.
pub fn standing(
    block: u64,
    kept_hash: B256,
    hash_now: Option<B256>,
    head: u64,
    keep_for: u64,
) -> Standing {
    if hash_now != Some(kept_hash) {
        Standing::Undone
    } else if head.saturating_sub(block) >= keep_for {
        Standing::Deep
    } else {
        Standing::Holds
    }
}

/// What to do with a landing a reorganisation undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redo {
    /// Send the same call again.
    Send,
    /// Schedule the due action again at the job's deadline.
    Schedule(Action),
    /// Let it go; why.
    Forget(String),
    /// Not yet (a result whose deal is not back on-chain): looked at again next check; why.
    Wait(&'static str),
}

/// What to do with an undone landing of `call` kept with `kept_hash`, from the job on-chain now
/// (its request hash `job_hash` and its state) and whether the node `holds` the undone
/// transaction again (a node that puts a reorganisation's transactions back into its pool mines
/// them again by itself; sending the call again would only make a second, reverting one).
pub fn redo(
    call: &str,
    kept_hash: B256,
    job_hash: B256,
    state: Option<JobStatus>,
    holds: bool,
) -> Redo {
    if job_hash != kept_hash {
        return Redo::Forget(
            "the job is gone or its id now names another request; nothing to redo".into(),
        );
    }
    if holds {
        return Redo::Wait("the node holds the transaction again; it is mined again by itself");
    }
    let g = match call {
        "agreeDeal" => gate::deal(state),
        "submitResult" => gate::result(state, kept_hash, job_hash),
        other => {
            return match Action::parse(other) {
                Some(action) if state == Some(gate::needed(action)) => Redo::Schedule(action),
                Some(action) => Redo::Forget(format!(
                    "job is in state {state:?}; {action} needs {}",
                    gate::needed(action)
                )),
                None => Redo::Forget(format!("{other} is not a call this build sends")),
            };
        }
    };
    match g {
        Gate::Send => Redo::Send,
        Gate::Skip(why) => Redo::Forget(why),
        Gate::NotYet(why) => Redo::Wait(why),
    }
}

/// Whether a landing in block `block` undone when the head is `head` was at least as deep as
/// `confirmations` says reorganisations never reach (`finalized`: the chain's finalized block,
/// when read).
pub fn deeper_than_confirmations(
    confirmations: &Confirmations,
    block: u64,
    head: u64,
    finalized: Option<u64>,
) -> bool {
    match confirmations {
        Confirmations::Blocks(n) => head.saturating_sub(block) >= *n,
        Confirmations::Finalized => finalized.is_some_and(|f| block <= f),
    }
}

/// The name a call is sent under, as this build spells it.
fn call_name(call: &str) -> Option<&'static str> {
    ["agreeDeal", "submitResult", "expire", "timeout", "settle"]
        .into_iter()
        .find(|c| *c == call)
}

impl Submitter {
    /// How this submitter follows reorganisations: the chain's `confirmations` and how deep
    /// landings are kept (see [`ReorgSettings::new`]).
    pub fn with_reorgs(mut self, settings: ReorgSettings) -> Self {
        self.reorg = std::sync::Arc::new(Watch {
            settings,
            seen: Default::default(),
        });
        self
    }

    /// Keeps a landed transaction (`receipt`) of `call` for `job` with calldata `input`, so a
    /// reorganisation that undoes it can be redone; `request_hash` is the job's, read after it
    /// landed (`None`: read here). A failure is logged, not returned: the transaction landed, and
    /// only a reorganisation would need the copy.
    pub(super) async fn keep_landed(
        &self,
        job: U256,
        call: &str,
        input: Bytes,
        receipt: &TransactionReceipt,
        request_hash: Option<B256>,
    ) {
        let chain = self.settings.chain_id;
        let kept = async {
            let request_hash = match request_hash {
                Some(h) => h,
                None => self.job(job).await?.requestHash,
            };
            let landed = Landed {
                job,
                call: call.into(),
                request_hash,
                input,
                tx: receipt.transaction_hash,
                block: receipt.block_number.unwrap_or_default(),
                block_hash: receipt.block_hash.unwrap_or_default(),
            };
            self.store
                .keep_landed(chain, self.signer, &landed.id(), &landed)
                .await?;
            Ok::<_, SubmitError>(())
        };
        if let Err(e) = kept.await {
            tracing::warn!(chain, job = %job, call, error = %e, "could not keep a copy of a landed transaction; a reorganisation undoing it would not be redone");
        }
    }

    /// Moves the next nonce back to the chain's pending count when nothing pending holds the
    /// nonces between ([`nonce::follow`]). Returns whether it moved. Takes the send lock, so no
    /// reservation of this relayer is between reserving and recording while it looks.
    pub async fn follow_chain(&self) -> Result<bool, SubmitError> {
        let _turn = self.send_turn.lock().await;
        self.follow_chain_locked().await
    }

    /// [`Submitter::follow_chain`] for a caller that holds the send lock.
    async fn follow_chain_locked(&self) -> Result<bool, SubmitError> {
        let chain = self.settings.chain_id;
        // The records first, then the chain's count: a record retired in between was mined, and
        // the count read after it includes it.
        let pending: Vec<(u64, PendingTx)> = self.store.pending(chain, self.signer).await?;
        let reserved = self.store.reserved_up_to(chain, self.signer).await?;
        let chain_pending = self.transaction_count(true).await?;
        let recorded: Vec<u64> = pending.iter().map(|(n, _)| *n).collect();
        self.follow_to(reserved, chain_pending, &recorded).await
    }

    /// [`Submitter::follow_chain`] from what was read.
    pub(super) async fn follow_to(
        &self,
        reserved: Option<u64>,
        chain_pending: u64,
        recorded: &[u64],
    ) -> Result<bool, SubmitError> {
        let (Some(from), Some(to)) = (reserved, nonce::follow(chain_pending, reserved, recorded))
        else {
            return Ok(false);
        };
        self.check_lease()?;
        let moved = self.nonces().follow_chain(from, to).await?;
        if moved {
            tracing::warn!(
                chain = self.settings.chain_id,
                from,
                to,
                "the chain no longer has nonces {to}..{from} and nothing pending holds them (a reorganisation removed them, or every pool dropped them); reserving from {to} again"
            );
        }
        Ok(moved)
    }

    /// Just before a nonce is reserved, under the send lock (so no other reservation is in
    /// progress): when the indexer noticed a
    /// reorganisation the round has not handled yet, the next nonce follows the chain first, so
    /// a transaction sent in the meantime does not wait behind nonces the chain no longer has.
    /// The round's next start re-checks the kept landings.
    pub(super) async fn follow_noticed_reorg(&self) -> Result<(), SubmitError> {
        let count = self.store.reorgs(self.settings.chain_id).await?;
        let seen = *self
            .reorg
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.is_some_and(|s| s != count) {
            self.follow_chain_locked().await?;
        }
        Ok(())
    }

    /// At the start of a round: when the indexer noticed a reorganisation since the last look, or
    /// when `due` (the periodic look), re-checks the kept landings, follows the chain's nonce and
    /// redoes what the chain no longer has.
    pub(super) async fn follow_reorgs(&self, due: bool) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        let count = self.store.reorgs(chain).await?;
        let seen = *self
            .reorg
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let signalled = seen.is_some_and(|s| s != count);
        if !due && !signalled {
            if seen.is_none() {
                self.saw_reorgs(count);
            }
            return Ok(());
        }
        if signalled {
            tracing::warn!(
                chain,
                "the indexer noticed a reorganisation; re-checking what this relayer landed"
            );
        }
        let undone = self.undone().await?;
        if signalled || !undone.is_empty() {
            self.follow_chain().await?;
        }
        if !undone.is_empty() {
            self.redo_all(undone).await?;
        }
        // Only now: a look that failed part-way is taken again next round.
        self.saw_reorgs(count);
        Ok(())
    }

    /// Records `count` as the reorganisation count handled.
    fn saw_reorgs(&self, count: u64) {
        *self
            .reorg
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(count);
    }

    /// The kept landings a reorganisation undid, in the order they are redone; those deep enough
    /// are forgotten on the way.
    async fn undone(&self) -> Result<Vec<Landed>, SubmitError> {
        let chain = self.settings.chain_id;
        let kept: Vec<(String, Landed)> = self.store.landed(chain, self.signer).await?;
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| rpc("eth_blockNumber")(e.to_string()))?;
        let mut blocks: Vec<u64> = kept.iter().map(|(_, l)| l.block).collect();
        blocks.sort_unstable_by(|a, b| b.cmp(a));
        blocks.dedup();
        // Newest first; once one block's hash is the kept one, every block below it holds too.
        let mut hashes = std::collections::HashMap::new();
        let mut holds_below = None;
        for b in blocks {
            let now = self.block_hash(b).await?;
            hashes.insert(b, now);
            if kept
                .iter()
                .any(|(_, l)| l.block == b && Some(l.block_hash) == now)
            {
                holds_below = Some(b);
                break;
            }
        }
        let mut undone = Vec::new();
        for (id, landed) in kept {
            let now = match hashes.get(&landed.block) {
                Some(now) => *now,
                // Below a block that holds: so does this one.
                None if holds_below.is_some_and(|h| landed.block < h) => Some(landed.block_hash),
                None => self.block_hash(landed.block).await?,
            };
            match standing(
                landed.block,
                landed.block_hash,
                now,
                head,
                self.reorg.settings.keep_for,
            ) {
                Standing::Holds => {}
                Standing::Deep => self.store.forget_landed(chain, self.signer, &id).await?,
                Standing::Undone => undone.push(landed),
            }
        }
        undone.sort_by_key(Landed::order);
        Ok(undone)
    }

    /// The hash of block `number` now (`None` when the chain has no such block).
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, SubmitError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| rpc(format!("eth_getBlockByNumber({number})"))(e.to_string()))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// Redoes the undone landings: deals first (all sent, then confirmed), then results, then
    /// due actions scheduled again.
    async fn redo_all(&self, undone: Vec<Landed>) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| rpc("eth_blockNumber")(e.to_string()))?;
        let finalized = match self.reorg.settings.confirmations {
            Confirmations::Finalized => self
                .provider
                .get_block_by_number(BlockNumberOrTag::Finalized)
                .await
                .ok()
                .flatten()
                .map(|b| b.header.number),
            Confirmations::Blocks(_) => None,
        };
        for order in 0..=2 {
            let mut inflight = FuturesUnordered::new();
            let reads = PhaseReads::default();
            for landed in undone.iter().filter(|l| l.order() == order) {
                let (job, call) = (landed.job, landed.call.as_str());
                let deep = deeper_than_confirmations(
                    &self.reorg.settings.confirmations,
                    landed.block,
                    head,
                    finalized,
                );
                if deep {
                    tracing::error!(chain, job = %job, call, block = landed.block, tx = %landed.tx, confirmations = ?self.reorg.settings.confirmations, "a reorganisation deeper than `confirmations` undid a landed transaction; seeing what it needs");
                } else {
                    tracing::warn!(chain, job = %job, call, block = landed.block, tx = %landed.tx, "a reorganisation undid a landed transaction; seeing what it needs");
                }
                // A node that put it back into its pool may have mined it again, elsewhere.
                if let Ok(Some(receipt)) = self.provider.get_transaction_receipt(landed.tx).await
                    && receipt.block_number.is_some()
                {
                    tracing::info!(chain, job = %job, call, tx = %landed.tx, block = ?receipt.block_number, "mined again in another block; nothing to redo");
                    self.keep_landed(
                        job,
                        call,
                        landed.input.clone(),
                        &receipt,
                        Some(landed.request_hash),
                    )
                    .await;
                    continue;
                }
                let j = self.job(job).await?;
                let (state, deadline) = (j.state(), j.deadline.to::<u64>());
                let holds = matches!(
                    self.provider.get_transaction_by_hash(landed.tx).await,
                    Ok(Some(_))
                );
                match redo(call, landed.request_hash, j.requestHash, state, holds) {
                    Redo::Send => {
                        let (Some(name), Some(after)) = (call_name(call), After::of_call(call))
                        else {
                            continue;
                        };
                        match self
                            .dispatch(
                                job,
                                landed.request_hash,
                                name,
                                landed.input.clone(),
                                after,
                                &reads,
                            )
                            .await
                        {
                            Ok(sent) => inflight
                                .push(async move { (job, name, deep, self.complete(sent).await) }),
                            Err(e) => self.redo_failed(landed, e).await?,
                        }
                    }
                    Redo::Schedule(action) => {
                        self.store
                            .schedule(chain, job, j.requestHash, action, deadline)
                            .await?;
                        self.store
                            .forget_landed(chain, self.signer, &landed.id())
                            .await?;
                        tracing::warn!(chain, job = %job, %action, deeper_than_confirmations = deep, "redone: the due action is scheduled again");
                    }
                    Redo::Forget(why) => {
                        self.store
                            .forget_landed(chain, self.signer, &landed.id())
                            .await?;
                        tracing::info!(chain, job = %job, call, %why, "not redone");
                    }
                    Redo::Wait(why) => {
                        tracing::info!(chain, job = %job, call, why, "redone later");
                    }
                }
            }
            while let Some((job, call, deep, outcome)) = inflight.next().await {
                match outcome {
                    Ok(landed) => {
                        tracing::warn!(chain, job = %job, call, ?landed, deeper_than_confirmations = deep, "redone: landed again")
                    }
                    Err(e @ SubmitError::LeaseLost { .. }) => return Err(e),
                    Err(e) => {
                        tracing::warn!(chain, job = %job, call, error = %e, "redoing it failed; tried again at the next check")
                    }
                }
            }
        }
        Ok(())
    }

    /// A redo that could not be sent: one the contract refuses for good is let go, anything else
    /// is tried again at the next check (the kept copy stays).
    async fn redo_failed(&self, landed: &Landed, e: SubmitError) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        match e {
            SubmitError::LeaseLost { .. } => Err(e),
            SubmitError::Reverts {
                verdict: Verdict::Drop,
                ..
            } => {
                tracing::error!(chain, job = %landed.job, call = %landed.call, error = %e, "the contract refuses it now; not redone");
                self.store
                    .forget_landed(chain, self.signer, &landed.id())
                    .await?;
                Ok(())
            }
            e => {
                tracing::warn!(chain, job = %landed.job, call = %landed.call, error = %e, "redoing it failed; tried again at the next check");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: B256 = B256::repeat_byte(1);
    const OTHER: B256 = B256::repeat_byte(2);

    #[test]
    fn a_landing_whose_block_changed_or_went_is_undone() {
        assert_eq!(standing(10, H, Some(OTHER), 12, 64), Standing::Undone);
        assert_eq!(standing(10, H, None, 9, 64), Standing::Undone);
    }

    #[test]
    fn a_landing_still_on_the_chain_is_kept_until_deep() {
        assert_eq!(standing(10, H, Some(H), 12, 64), Standing::Holds);
        assert_eq!(standing(10, H, Some(H), 73, 64), Standing::Holds);
        assert_eq!(standing(10, H, Some(H), 74, 64), Standing::Deep);
    }

    #[test]
    fn an_undone_deal_is_sent_again_while_its_job_waits_for_one() {
        let r = redo("agreeDeal", H, H, Some(JobStatus::Requested), false);
        assert_eq!(r, Redo::Send);
        assert!(matches!(
            redo("agreeDeal", H, H, Some(JobStatus::Agreed), false),
            Redo::Forget(_)
        ));
    }

    #[test]
    fn an_undone_result_waits_for_its_deal_and_is_sent_again_once_agreed() {
        assert_eq!(
            redo("submitResult", H, H, Some(JobStatus::Agreed), false),
            Redo::Send
        );
        assert!(matches!(
            redo("submitResult", H, H, Some(JobStatus::Requested), false),
            Redo::Wait(_)
        ));
    }

    #[test]
    fn an_undone_transaction_the_node_holds_again_is_left_to_be_mined_again() {
        assert!(matches!(
            redo("agreeDeal", H, H, Some(JobStatus::Requested), true),
            Redo::Wait(_)
        ));
    }

    #[test]
    fn nothing_is_redone_for_a_job_the_reorganisation_replaced_or_removed() {
        assert!(matches!(
            redo("agreeDeal", H, OTHER, Some(JobStatus::Requested), false),
            Redo::Forget(_)
        ));
        assert!(matches!(
            redo("submitResult", H, B256::ZERO, None, false),
            Redo::Forget(_)
        ));
    }

    #[test]
    fn an_undone_due_action_is_scheduled_again_if_its_job_needs_it() {
        assert_eq!(
            redo("settle", H, H, Some(JobStatus::ResultSubmitted), false),
            Redo::Schedule(Action::Settle)
        );
        assert!(matches!(
            redo("settle", H, H, Some(JobStatus::Settled), false),
            Redo::Forget(_)
        ));
    }

    #[test]
    fn a_reorganisation_reaching_confirmed_blocks_is_told_apart() {
        let blocks = Confirmations::Blocks(6);
        assert!(!deeper_than_confirmations(&blocks, 95, 100, None));
        assert!(deeper_than_confirmations(&blocks, 94, 100, None));
        assert!(deeper_than_confirmations(
            &Confirmations::Blocks(0),
            100,
            100,
            None
        ));
        let fin = Confirmations::Finalized;
        assert!(deeper_than_confirmations(&fin, 90, 100, Some(90)));
        assert!(!deeper_than_confirmations(&fin, 91, 100, Some(90)));
        assert!(!deeper_than_confirmations(&fin, 91, 100, None));
    }

    #[test]
    fn landings_are_kept_longer_of_confirmations_and_the_rewind() {
        assert_eq!(
            ReorgSettings::new(Confirmations::Blocks(0), 64).keep_for,
            64
        );
        assert_eq!(
            ReorgSettings::new(Confirmations::Blocks(100), 64).keep_for,
            100
        );
        assert_eq!(ReorgSettings::new(Confirmations::Finalized, 8).keep_for, 8);
    }
}
