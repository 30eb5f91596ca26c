//! No nonce gaps: a nonce reserved for an action is used by a mined transaction even when the
//! action is given up. If every broadcast of an action was lost (or dropped from the pool) and
//! the action is then no longer needed (the deal's signature expired, the job was dealt by
//! someone else), its nonce would stay open and every later transaction of the signer would wait
//! behind it. Such a nonce is filled with a cancellation: a 0-value transfer to the signer itself
//! at that nonce, with fees that replace any attempt still in some pool, recorded as pending like
//! any transaction (so a restart finishes it) and retired once mined. A record whose signed bytes
//! the node does not hold (a relayer killed between recording and broadcasting) and whose action
//! may still be needed is sent again with the same bytes, at once: waiting for the action's own
//! retry (its message redelivered, its due action claimed again) could leave every transaction
//! sent meanwhile stuck behind it.
//!
//! Nonces reserved with nothing recorded for them and nothing pending above them (a relayer
//! killed between reserving and recording, or a reorganisation that removed mined ones) are not
//! filled: the next reservation follows the chain back to them ([`super::nonce::follow`]). Only
//! those below a pending record (which waits behind them) are filled: at a round's look, or at
//! once when that transaction's wait for a receipt runs out.
//!
//! The decision ([`decide`]) and the filler's fees ([`filler_fees`]) are pure and unit-tested;
//! [`Submitter::fill_gaps`] gathers the facts and sends.

use alloy::consensus::Transaction as _;
use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;

use super::send::Sent;
use super::*;

/// The call name a cancellation is recorded under.
pub const CANCEL: &str = "cancel";

/// The gas a plain transfer uses.
const TRANSFER_GAS: u64 = 21_000;

/// What a pending record's nonce needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Its nonce is mined (by this transaction or another): the record is retired.
    Retire,
    /// Left as it is: the node holds an attempt (it will be mined), or the facts could not be
    /// read (looked at again later).
    Keep,
    /// Signed bytes the node does not hold, of a cancellation or of an action not known to be
    /// given up: the same bytes are sent again (same nonce, so never a second transaction for the
    /// action). Not left for the action's own retry: that may come only after the transactions
    /// waiting behind this nonce, which would then never be mined.
    Resend,
    /// An action given up whose nonce nothing will use: a cancellation is signed and sent.
    Cancel,
}

/// What is known about one pending record at decision time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Whether the record is a cancellation (else the action of a deal, result or due action).
    pub cancel: bool,
    /// Whether the record holds signed bytes that can be sent again.
    pub resendable: bool,
    /// Whether the node holds one of its attempts (`None`: could not tell).
    pub known: Option<bool>,
    /// Whether its action is still needed by the job's on-chain state and would not be refused
    /// for good (`None`: could not tell). Ignored for a cancellation.
    pub needed: Option<bool>,
}

/// What nonce `nonce` needs, given the signer's mined transaction count `mined` and the facts
/// about its record. Only a nonce nothing is going to use gets a cancellation: not mined, not
/// held by the node, and either a given-up action or one that can never be sent again; a record
/// the node does not hold whose action may still be needed is sent again.
pub fn decide(nonce: u64, mined: u64, facts: Facts) -> Fill {
    if nonce::is_mined(nonce, mined) {
        return Fill::Retire;
    }
    match facts.known {
        Some(false) => {}
        Some(true) | None => return Fill::Keep,
    }
    if facts.cancel {
        return if facts.resendable {
            Fill::Resend
        } else {
            Fill::Cancel
        };
    }
    if !facts.resendable {
        // Nothing can send this record's bytes again: its action, if still needed, is signed
        // afresh with a new nonce, so this one would stay open.
        return Fill::Cancel;
    }
    match facts.needed {
        Some(false) => Fill::Cancel,
        Some(true) | None => Fill::Resend,
    }
}

/// At most this many nonces reserved and never recorded are filled in one pass (a store whose
/// reservations ran far ahead of the chain, e.g. a dev chain restarted under a kept Redis, is
/// filled over several passes; `lilypad relayer` logs each).
pub const MAX_UNRECORDED: usize = 32;

/// The nonces reserved (below `reserved_up_to`) that no pending record names and no transaction
/// holds: not mined (`mined`), not in the node's pool (the node's pending count `chain_pending`
/// covers the nonces it holds in a row from `mined`), not in `recorded`. A relayer stopped, or its
/// lease or Redis lost, between reserving a nonce and recording what it signed leaves one; when a
/// pending record above it waits behind it, each is filled with a cancellation (otherwise the
/// reservation follows the chain back instead, [`super::nonce::follow`]). Lowest first, at most
/// [`MAX_UNRECORDED`].
pub fn unrecorded(
    mined: u64,
    chain_pending: u64,
    reserved_up_to: Option<u64>,
    recorded: &[u64],
) -> Vec<u64> {
    let Some(up_to) = reserved_up_to else {
        return Vec::new();
    };
    (mined.max(chain_pending)..up_to)
        .filter(|n| !recorded.contains(n))
        .take(MAX_UNRECORDED)
        .collect()
}

/// The fees of a cancellation replacing a record last sent at `record_max_fee` / `record_tip`,
/// when the node estimates `estimated_max_fee`: at least the first-attempt fees of the policy, and
/// both raised by the policy's bump over the record's (a node takes a replacement only then),
/// even above the policy's cap: a filler costs 21 000 gas, a gap stalls every later transaction.
pub fn filler_fees(
    record_max_fee: u128,
    record_tip: u128,
    estimated_max_fee: u128,
    policy: &GasPolicy,
) -> Fees {
    let first = Fees::first(estimated_max_fee, policy);
    let replacing = Fees {
        max_fee: record_max_fee,
        tip: record_tip,
        cap: u128::MAX,
    }
    .bumped(policy.bump_percent);
    let max_fee = first.max_fee.max(replacing.max_fee);
    Fees {
        max_fee,
        tip: first.tip.max(replacing.tip).min(max_fee),
        cap: first.cap.max(max_fee),
    }
}

/// The hashes of a record's attempts (none for a nonce filled before anything was recorded).
fn attempts(record: &PendingTx) -> Vec<B256> {
    record
        .all_hashes()
        .into_iter()
        .filter(|h| *h != B256::ZERO)
        .collect()
}

impl Submitter {
    /// Fills the nonces of pending records that nothing will use (see [`decide`]) and those
    /// reserved with nothing recorded ([`unrecorded`]), sends the same bytes again for a
    /// cancellation the node lost, and retires the records whose nonce is mined (with their
    /// follow-ups). Returns how many cancellations were sent.
    pub async fn fill_gaps(&self) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let (pending, reserved) = {
            // Read under the send lock: no reservation of this relayer is then between reserving
            // and recording, so a reserved nonce with no record is one nothing is recording.
            let _turn = self.send_turn.lock().await;
            let pending: Vec<(u64, PendingTx)> = self.store.pending(chain, self.signer).await?;
            (
                pending,
                self.store.reserved_up_to(chain, self.signer).await?,
            )
        };
        let mined = self.transaction_count(false).await?;
        let mut sent = 0;
        for (n, record) in &pending {
            let n = *n;
            if self.busy(record.job) {
                // Its own task, still running, waits for it (and mends it when not mined).
                continue;
            }
            if nonce::is_mined(n, mined) {
                self.retire(n, record).await?;
                continue;
            }
            match self.mend(n, record, mined).await? {
                Fill::Retire => self.retire(n, record).await?,
                Fill::Cancel => sent += 1,
                Fill::Keep | Fill::Resend => {}
            }
        }
        let recorded: Vec<u64> = pending.iter().map(|(n, _)| *n).collect();
        if unrecorded(mined, mined, reserved, &recorded).is_empty() {
            return Ok(sent);
        }
        let in_pool = self.transaction_count(true).await?;
        // Nothing pending above the chain's count: the nonces are reserved again rather than
        // filled (a reorganisation removed them, or nothing was ever sent with them).
        if self.follow_to(reserved, in_pool, &recorded).await? {
            return Ok(sent);
        }
        for n in unrecorded(mined, in_pool, reserved, &recorded) {
            tracing::warn!(
                chain,
                nonce = n,
                "a nonce was reserved and nothing recorded for it; filling it with a cancellation"
            );
            let nothing = PendingTx {
                call: CANCEL.into(),
                ..PendingTx::default()
            };
            self.cancel(n, &nothing).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// For a transaction with `nonce` not mined in time: fills the nonces below it that nothing
    /// holds (not mined, not in the node's pool, no pending record), so it can be mined: a
    /// reorganisation not noticed yet removed them, or a relayer killed after reserving them
    /// left them. Safe while other sends are in flight: every nonce below `nonce` was reserved
    /// and recorded before it. A failure is logged; the next wait tries again. Returns how many
    /// were filled.
    pub(super) async fn fill_below(&self, nonce: u64) -> usize {
        let chain = self.settings.chain_id;
        let filled = async {
            // The records first, then the chain's counts (see `Submitter::follow_chain`).
            let pending: Vec<(u64, PendingTx)> = self.store.pending(chain, self.signer).await?;
            let mined = self.transaction_count(false).await?;
            if nonce::is_mined(nonce.saturating_sub(1), mined) || nonce == 0 {
                return Ok(0);
            }
            let in_pool = self.transaction_count(true).await?;
            // Recorded below it and not held by the node (a relayer killed between recording
            // and broadcasting): sent again, or cancelled when given up, as a round's look would.
            for (n, record) in pending.iter().filter(|(n, _)| (in_pool..nonce).contains(n)) {
                self.mend(*n, record, mined).await?;
            }
            let recorded: Vec<u64> = pending.iter().map(|(n, _)| *n).collect();
            let open = unrecorded(mined, in_pool, Some(nonce), &recorded);
            for n in &open {
                tracing::warn!(
                    chain,
                    nonce = n,
                    waiting = nonce,
                    "a transaction waits behind a nonce nothing holds (removed by a reorganisation, or reserved by a relayer that stopped); filling it with a cancellation"
                );
                let nothing = PendingTx {
                    call: CANCEL.into(),
                    ..PendingTx::default()
                };
                self.cancel(*n, &nothing).await?;
            }
            Ok::<_, SubmitError>(open.len())
        };
        filled.await.unwrap_or_else(|e| {
            tracing::warn!(chain, nonce, error = %e, "could not look for open nonces below a transaction not mined in time");
            0
        })
    }

    /// Forgets a record whose nonce is mined, and records what follows from its call.
    pub(super) async fn retire(&self, n: u64, tx: &PendingTx) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        if tx.call == CANCEL {
            tracing::info!(chain, nonce = n, job = %tx.job, "the nonce of a given-up action is filled");
        } else {
            match After::of_call(&tx.call) {
                Some(after) => {
                    let on_chain = self.job(tx.job).await?;
                    self.follow_up(tx.job, after, &on_chain).await?;
                }
                None => {
                    tracing::warn!(chain, job = %tx.job, call = %tx.call, nonce = n, "a pending record names a call this build does not send; forgotten");
                }
            }
            tracing::info!(chain, job = %tx.job, call = %tx.call, nonce = n, hash = %tx.hash, "retired a transaction left in flight");
        }
        self.store.clear_pending(chain, self.signer, n).await?;
        Ok(())
    }

    /// Decides what the pending record for nonce `n` needs ([`decide`], with the signer's mined
    /// count `mined`) and carries out a resend or a cancellation; a retirement is left to the
    /// caller. Returns the decision.
    async fn mend(&self, n: u64, record: &PendingTx, mined: u64) -> Result<Fill, SubmitError> {
        let fill = decide(n, mined, self.facts(record).await);
        match fill {
            Fill::Resend => self.resend(n, record).await?,
            Fill::Cancel => {
                tracing::warn!(chain = self.settings.chain_id, nonce = n, job = %record.job, call = %record.call, "an action given up left its nonce open; filling it with a cancellation");
                self.cancel(n, record).await?;
            }
            Fill::Retire | Fill::Keep => {}
        }
        Ok(fill)
    }

    /// What [`decide`] needs to know about a pending record not mined.
    async fn facts(&self, record: &PendingTx) -> Facts {
        let cancel = record.call == CANCEL;
        let known = self.known(record).await;
        Facts {
            cancel,
            resendable: !record.raw.is_empty(),
            known,
            // Only asked when it decides anything: an action the node does not hold.
            needed: if cancel || known != Some(false) {
                None
            } else {
                self.needed(record).await
            },
        }
    }

    /// Sends a record's latest signed bytes again (the node does not hold them).
    async fn resend(&self, n: u64, record: &PendingTx) -> Result<(), SubmitError> {
        self.check_lease()?;
        let outcome = self.send_raw(&record.raw).await;
        tracing::info!(chain = self.settings.chain_id, nonce = n, job = %record.job, call = %record.call, hash = %record.hash, ?outcome, "signed bytes the node does not hold were sent again");
        Ok(())
    }

    /// Whether the node holds one of the record's attempts (`None` when it could not say).
    async fn known(&self, record: &PendingTx) -> Option<bool> {
        for hash in attempts(record) {
            match self.provider.get_transaction_by_hash(hash).await {
                Ok(Some(_)) => return Some(true),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(hash = %hash, error = %e, "cannot tell whether the node holds a transaction");
                    return None;
                }
            }
        }
        Some(false)
    }

    /// Whether a record's action is still needed: the job still has the request it was signed
    /// for (when the record names one), is in the state its call needs, and the call, made now,
    /// would not be refused for good. `None` when that cannot be told.
    async fn needed(&self, record: &PendingTx) -> Option<bool> {
        let after = After::of_call(&record.call)?;
        let on_chain = self.job(record.job).await.ok()?;
        if !record.request_hash.is_zero() && record.request_hash != on_chain.requestHash {
            // A reorganisation gave the job id to another request: the contract binds a result
            // to the job id only, so these bytes would land the old request's result on it.
            return Some(false);
        }
        if on_chain.state() != Some(gate::needed(after.done)) {
            return Some(false);
        }
        let envelope = TxEnvelope::decode_2718(&mut record.raw.as_ref()).ok()?;
        let call = TransactionRequest::default()
            .with_from(self.signer)
            .with_to(self.settings.lilypad)
            .with_input(envelope.input().clone());
        match self.provider.estimate_gas(call).await {
            Ok(_) => Some(true),
            Err(e) => match classify_call(&e) {
                CallFailure::Reverted {
                    verdict: Verdict::Drop,
                    ..
                } => Some(false),
                CallFailure::Reverted { .. } => Some(true),
                CallFailure::Unavailable(_) => None,
            },
        }
    }

    /// Signs and sends a cancellation for nonce `n` in place of `record` (whose attempts stay
    /// listed: any of them mined fills the nonce as well). Not waited for: the next pass retires
    /// it once mined, or sends it again if the node lost it.
    async fn cancel(&self, n: u64, record: &PendingTx) -> Result<(), SubmitError> {
        let estimate = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| rpc("fee estimate")(e.to_string()))?;
        let mut sent = Sent {
            job: record.job,
            request_hash: record.request_hash,
            call: CANCEL,
            after: None,
            base: TransactionRequest::default()
                .with_from(self.signer)
                .with_to(self.signer)
                .with_value(U256::ZERO),
            nonce: n,
            gas: TRANSFER_GAS,
            fees: filler_fees(
                record.max_fee,
                record.tip,
                estimate.max_fee_per_gas,
                &self.settings.gas,
            ),
            // Never a first attempt: a refusal keeps the record rather than giving the nonce back.
            attempts: record.attempts.max(1),
            hash: record.hash,
            hashes: attempts(record),
            raw: record.raw.clone(),
        };
        self.broadcast(&mut sent).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(known: Option<bool>, needed: Option<bool>) -> Facts {
        Facts {
            cancel: false,
            resendable: true,
            known,
            needed,
        }
    }

    #[test]
    fn a_mined_nonce_is_retired_whatever_else_is_known() {
        assert_eq!(decide(4, 5, facts(None, None)), Fill::Retire);
        assert_eq!(decide(4, 5, facts(Some(false), Some(false))), Fill::Retire);
    }

    #[test]
    fn a_given_up_action_the_node_does_not_hold_is_cancelled() {
        assert_eq!(decide(5, 5, facts(Some(false), Some(false))), Fill::Cancel);
        // Behind another open nonce too: the filler waits in the pool with it.
        assert_eq!(decide(9, 5, facts(Some(false), Some(false))), Fill::Cancel);
    }

    #[test]
    fn a_needed_action_the_node_does_not_hold_is_sent_again_and_one_it_holds_is_left_alone() {
        assert_eq!(decide(5, 5, facts(Some(false), Some(true))), Fill::Resend);
        assert_eq!(decide(5, 5, facts(Some(true), Some(false))), Fill::Keep);
    }

    #[test]
    fn what_cannot_be_told_is_never_cancelled() {
        assert_eq!(decide(5, 5, facts(None, Some(false))), Fill::Keep);
        // Not held, need unknown: the same bytes again (same nonce) are safe either way.
        assert_eq!(decide(5, 5, facts(Some(false), None)), Fill::Resend);
    }

    #[test]
    fn a_record_nothing_can_send_again_is_cancelled_even_if_its_action_is_needed() {
        let f = Facts {
            resendable: false,
            ..facts(Some(false), Some(true))
        };
        assert_eq!(decide(5, 5, f), Fill::Cancel);
    }

    #[test]
    fn a_cancellation_the_node_lost_is_sent_again_and_one_it_holds_is_waited_for() {
        let lost = Facts {
            cancel: true,
            ..facts(Some(false), None)
        };
        assert_eq!(decide(5, 5, lost), Fill::Resend);
        let held = Facts {
            known: Some(true),
            ..lost
        };
        assert_eq!(decide(5, 5, held), Fill::Keep);
        let unsigned = Facts {
            resendable: false,
            ..lost
        };
        assert_eq!(decide(5, 5, unsigned), Fill::Cancel);
    }

    #[test]
    fn a_nonce_reserved_and_never_recorded_is_filled_unless_mined_or_in_the_pool() {
        // Reserved 5..9; 6 and 8 recorded; the node has mined up to 5 and holds nothing more.
        assert_eq!(unrecorded(5, 5, Some(9), &[6, 8]), vec![5, 7]);
        // The node holds 5 and 6 in its pool: only 7 is open.
        assert_eq!(unrecorded(5, 7, Some(9), &[6, 8]), vec![7]);
        // Everything reserved is mined, or nothing was ever reserved.
        assert!(unrecorded(9, 9, Some(9), &[]).is_empty());
        assert!(unrecorded(3, 3, None, &[]).is_empty());
    }

    #[test]
    fn reservations_far_ahead_of_the_chain_are_filled_a_bounded_number_at_a_time() {
        let open = unrecorded(0, 0, Some(1_000), &[]);
        assert_eq!(open.len(), MAX_UNRECORDED);
        assert_eq!(open.first(), Some(&0));
    }

    fn policy() -> GasPolicy {
        GasPolicy {
            max_fee_gwei: 100.0,
            priority_fee_gwei: 1.0,
            bump_percent: 12.5,
            ..GasPolicy::default()
        }
    }

    #[test]
    fn a_filler_raises_both_fees_over_the_record_it_replaces() {
        let f = filler_fees(80_000_000_000, 2_000_000_000, 10_000_000_000, &policy());
        assert_eq!((f.max_fee, f.tip), (90_000_000_000, 2_250_000_000));
    }

    #[test]
    fn a_filler_pays_at_least_the_current_estimate() {
        let f = filler_fees(1_000, 10, 50_000_000_000, &policy());
        assert_eq!((f.max_fee, f.tip), (50_000_000_000, 1_000_000_000));
    }

    #[test]
    fn a_filler_replaces_a_record_at_the_cap_by_going_above_it() {
        let cap = 100_000_000_000;
        let f = filler_fees(cap, cap, 200_000_000_000, &policy());
        assert!(
            f.max_fee > cap && f.tip > cap && f.tip <= f.max_fee,
            "{f:?}"
        );
    }

    #[test]
    fn a_filler_for_a_record_without_fees_is_priced_like_a_first_attempt() {
        let f = filler_fees(0, 0, 3_000_000_000, &policy());
        assert_eq!((f.max_fee, f.tip), (3_000_000_000, 1_000_000_000));
    }
}
