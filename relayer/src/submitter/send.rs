//! Sending one transaction and seeing it mined: estimate, price ([`super::fees`]), reserve a
//! nonce ([`super::nonce`]), sign, record it as pending and broadcast it, then wait for any of
//! its attempts to be mined, replacing it with higher fees (same nonce) while none is.
//!
//! The send rule: once a nonce is reserved for an action, every transaction for that action
//! uses it. A lost answer to `eth_sendRawTransaction` is answered by sending the same signed
//! bytes again (the node says "already known" or "nonce too low" if it took them), never by
//! signing the action again with another nonce; an action tried again later (a message retried,
//! an action come due again) finds its pending record and waits for that transaction.
//!
//! What is concurrent: the transactions of a phase are prepared together (each its own job read
//! and gas estimate; the fee estimate and the signer's pending count read once for the phase, in
//! [`PhaseReads`]), and only "reserve the nonce, sign, record as pending, broadcast" is taken one
//! transaction at a time, under the submitter's send lock. So nonces are handed out in the order
//! the transactions are broadcast, with no gap, and a first send the node refuses gives its nonce
//! back before the next transaction reserves one. Replacements (same nonce) and confirmations
//! need no lock. The lease is checked again once the lock is held, right before the nonce is
//! reserved.

use std::time::Duration;

use alloy::network::NetworkTransactionBuilder;
use alloy::network::eip2718::Encodable2718;
use backon::{ExponentialBuilder, Retryable};

use super::*;

/// A transaction sent and not yet confirmed.
pub(super) struct Sent {
    pub(super) job: U256,
    /// The request the job had when this was signed (zero for a cancellation of an unrecorded
    /// nonce).
    pub(super) request_hash: B256,
    pub(super) call: &'static str,
    /// What its landing makes done and due (`None` for a cancellation).
    pub(super) after: Option<After>,
    pub(super) base: TransactionRequest,
    pub(super) nonce: u64,
    pub(super) gas: u64,
    pub(super) fees: Fees,
    pub(super) attempts: u32,
    /// The latest attempt's hash.
    pub(super) hash: B256,
    /// Every attempt's hash, oldest first.
    pub(super) hashes: Vec<B256>,
    /// The latest attempt, signed.
    pub(super) raw: Bytes,
}

impl Sent {
    fn record(&self) -> PendingTx {
        PendingTx {
            job: self.job,
            request_hash: self.request_hash,
            call: self.call.into(),
            hash: self.hash,
            hashes: self.hashes.clone(),
            attempts: self.attempts,
            raw: self.raw.clone(),
            gas: self.gas,
            max_fee: self.fees.max_fee,
            tip: self.fees.tip,
        }
    }
}

/// How often the same signed bytes are sent again, at once, when the answer is lost.
const RESEND_TRIES: usize = 3;

/// The chain reads the transactions of one phase share, each made once, by the first transaction
/// that needs it (the others wait for its answer; a failed read is made again by the next one):
/// the signer's pending transaction count, only a lower bound for the nonce reservation (Redis
/// hands out the nonces), and the node's fee estimate for first attempts (a transaction not mined
/// in time is replaced with higher fees all the same).
#[derive(Debug, Default)]
pub(super) struct PhaseReads {
    chain_pending: tokio::sync::OnceCell<u64>,
    max_fee: tokio::sync::OnceCell<u128>,
}

impl PhaseReads {
    /// The signer's pending transaction count (the node's next nonce), as read for this phase.
    async fn chain_pending(&self, submitter: &Submitter) -> Result<u64, SubmitError> {
        self.chain_pending
            .get_or_try_init(|| submitter.transaction_count(true))
            .await
            .copied()
    }

    /// The node's EIP-1559 max fee per gas estimate, as read for this phase.
    async fn max_fee(&self, submitter: &Submitter) -> Result<u128, SubmitError> {
        self.max_fee
            .get_or_try_init(async || {
                submitter
                    .provider
                    .estimate_eip1559_fees()
                    .await
                    .map(|estimate| estimate.max_fee_per_gas)
                    .map_err(|e| rpc("fee estimate")(e.to_string()))
            })
            .await
            .copied()
    }
}

impl Submitter {
    /// The signer's transaction count: the mined ones, or with `pending` those in the node's
    /// pool too (the next nonce the node would give).
    pub(super) async fn transaction_count(&self, pending: bool) -> Result<u64, SubmitError> {
        let count = self.provider.get_transaction_count(self.signer);
        let count = if pending {
            count.pending()
        } else {
            count.latest()
        };
        count
            .await
            .map_err(|e| rpc("eth_getTransactionCount")(e.to_string()))
    }

    /// Fails once the lease this submitter sends under is lost: nothing is sent after that.
    pub(super) fn check_lease(&self) -> Result<(), SubmitError> {
        if self.lease.is_cancelled() {
            Err(SubmitError::LeaseLost {
                chain: self.settings.chain_id,
            })
        } else {
            Ok(())
        }
    }

    /// Estimates, prices and sends a call to Lilypad with the next nonce from Redis, and returns
    /// without waiting for it to be mined ([`Submitter::confirm`] does). Several dispatches run
    /// at once; each estimates on its own and shares the fee and pending-count reads of its phase
    /// (`reads`). Only reserving, signing, recording and broadcasting are made one dispatch at a
    /// time (the send lock), so nonces go out in order with no gap; confirmations then overlap.
    /// When this action already has a transaction in flight (an earlier try whose round ended
    /// before it was mined), that one is sent again and waited for instead.
    pub(super) async fn dispatch(
        &self,
        job: U256,
        request_hash: B256,
        call: &'static str,
        data: Bytes,
        after: After,
        reads: &PhaseReads,
    ) -> Result<Sent, SubmitError> {
        self.check_lease()?;
        let key = self.key(job);
        let base = TransactionRequest::default()
            .with_from(self.signer)
            .with_to(self.settings.lilypad)
            .with_input(data);
        if let Some(sent) = self
            .in_flight(job, request_hash, call, &base, after)
            .await?
        {
            return Ok(sent);
        }
        let gas = match self.provider.estimate_gas(base.clone()).await {
            Ok(gas) => gas,
            Err(e) => {
                return Err(match classify_call(&e) {
                    CallFailure::Reverted { reason, verdict } => SubmitError::Reverts {
                        key,
                        call,
                        reason,
                        verdict,
                        not_before: super::error::not_before(&e),
                    },
                    CallFailure::Unavailable(reason) => {
                        rpc(format!("eth_estimateGas({call}) for job {key}"))(reason)
                    }
                });
            }
        };
        let fees = Fees::first(reads.max_fee(self).await?, &self.settings.gas);
        let chain_nonce = reads.chain_pending(self).await?;

        // From here to the broadcast, one dispatch at a time: the nonce reserved is the next one
        // broadcast, and a refused first send gives it back before anyone reserves another.
        let _turn = self.send_turn.lock().await;
        self.check_lease()?;
        // A reorganisation the indexer noticed since this round began: the nonce follows the
        // chain before this one is reserved ([`super::reorg`]).
        self.follow_noticed_reorg().await?;
        let nonce = self.nonces().reserve(chain_nonce).await?;
        let mut sent = Sent {
            job,
            request_hash,
            call,
            after: Some(after),
            base,
            nonce,
            gas: fees::gas_limit(gas),
            fees,
            attempts: 0,
            hash: B256::ZERO,
            hashes: Vec::new(),
            raw: Bytes::new(),
        };
        self.broadcast(&mut sent).await?;
        Ok(sent)
    }

    /// This action's transaction still in flight, if an earlier try left one: its pending record
    /// names the same job, request and call, and its nonce is not mined yet. Its latest signed bytes are
    /// sent again (the node may never have got them) and it is returned to be waited for.
    async fn in_flight(
        &self,
        job: U256,
        request_hash: B256,
        call: &'static str,
        base: &TransactionRequest,
        after: After,
    ) -> Result<Option<Sent>, SubmitError> {
        let chain = self.settings.chain_id;
        let pending: Vec<(u64, PendingTx)> = self.store.pending(chain, self.signer).await?;
        let Some((nonce, record)) = pending.into_iter().find(|(_, p)| {
            p.job == job
                && (p.request_hash == request_hash || p.request_hash.is_zero())
                && p.call == call
                && !p.raw.is_empty()
        }) else {
            return Ok(None);
        };
        if nonce::is_mined(nonce, self.transaction_count(false).await?) {
            // Mined, yet the job (read just before) still needs this action: that attempt
            // reverted or the nonce went to another transaction. The record is stale; the action
            // is sent afresh.
            tracing::info!(chain, job = %job, call, nonce, "an earlier attempt's nonce is used but the job still needs the action; sending it again");
            self.store.clear_pending(chain, self.signer, nonce).await?;
            return Ok(None);
        }
        let sent = Sent {
            job,
            request_hash,
            call,
            after: Some(after),
            base: base.clone(),
            nonce,
            gas: record.gas,
            fees: Fees {
                max_fee: record.max_fee,
                tip: record.tip,
                cap: Fees::first(0, &self.settings.gas).cap,
            },
            attempts: record.attempts,
            hash: record.hash,
            hashes: record.all_hashes(),
            raw: record.raw.clone(),
        };
        tracing::info!(chain, job = %job, call, nonce, hash = %sent.hash, "this action is in flight already; waiting for it instead of signing it again");
        self.check_lease()?;
        let outcome = self.send_raw(&sent.raw).await;
        tracing::debug!(chain, job = %job, call, nonce, ?outcome, "sent again");
        Ok(Some(sent))
    }

    /// Sends signed bytes, sending the same bytes again at once when the answer is lost.
    pub(super) async fn send_raw(&self, raw: &Bytes) -> SendOutcome {
        let attempt = async || {
            let result = self.provider.send_raw_transaction(raw).await.map(|_| ());
            match classify_send(result.as_ref().map(|_| ())) {
                SendOutcome::Unknown(why) => Err(why),
                other => Ok(other),
            }
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_max_times(RESEND_TRIES)
                    .with_jitter(),
            )
            .await
            .unwrap_or_else(SendOutcome::Unknown)
    }

    /// Signs the transaction for `sent.nonce` with the fees in `sent`, records it in Redis as
    /// pending and broadcasts it. A first attempt the node refuses gives its nonce back; a
    /// replacement it refuses is forgotten (the earlier attempts stay); a lost answer keeps the
    /// nonce, and [`Submitter::confirm`] replaces or waits for the transaction.
    pub(super) async fn broadcast(&self, sent: &mut Sent) -> Result<(), SubmitError> {
        self.check_lease()?;
        let chain = self.settings.chain_id;
        let tx = sent
            .base
            .clone()
            .with_nonce(sent.nonce)
            .with_gas_limit(sent.gas)
            .with_max_fee_per_gas(sent.fees.max_fee)
            .with_max_priority_fee_per_gas(sent.fees.tip)
            .with_chain_id(chain);
        let envelope = tx
            .build(&self.wallet)
            .await
            .map_err(|e| rpc(format!("signing {}", sent.call))(e.to_string()))?;
        let before = (sent.hash, sent.raw.clone());
        let first = sent.attempts == 0;
        sent.attempts += 1;
        sent.hash = *envelope.tx_hash();
        sent.hashes.push(sent.hash);
        sent.raw = envelope.encoded_2718().into();
        // Recorded before it is sent: whatever becomes of the answer, the nonce is accounted for.
        self.store
            .record_pending(chain, self.signer, sent.nonce, &sent.record())
            .await?;
        if first {
            // A replacement reuses its nonce: only a first send adds one in flight.
            metrics::gauge!("lilypad_pending_transactions", "chain" => chain.to_string())
                .increment(1.0);
        }
        match self.send_raw(&sent.raw).await {
            SendOutcome::Taken | SendOutcome::NonceUsed => {}
            SendOutcome::Unknown(why) => {
                tracing::warn!(chain, job = %sent.job, call = sent.call, hash = %sent.hash, nonce = sent.nonce, error = %why, "no answer to the send; the nonce is kept and the same transaction is waited for");
            }
            SendOutcome::Refused(why) if first => {
                // The node does not hold it: the nonce was not used, and is given back so no
                // gap is left.
                self.store
                    .clear_pending(chain, self.signer, sent.nonce)
                    .await?;
                metrics::gauge!("lilypad_pending_transactions", "chain" => chain.to_string())
                    .decrement(1.0);
                self.nonces().give_back(sent.nonce).await?;
                return Err(rpc(format!(
                    "sending {} for job {}",
                    sent.call,
                    self.key(sent.job)
                ))(why));
            }
            SendOutcome::Refused(why) => {
                tracing::warn!(chain, job = %sent.job, call = sent.call, nonce = sent.nonce, error = %why, "the node refused the replacement; waiting for the earlier attempts");
                sent.hashes.pop();
                (sent.hash, sent.raw) = before;
                self.store
                    .record_pending(chain, self.signer, sent.nonce, &sent.record())
                    .await?;
                return Ok(());
            }
        }
        tracing::info!(chain, job = %sent.job, call = sent.call, hash = %sent.hash, nonce = sent.nonce, attempts = sent.attempts, max_fee = sent.fees.max_fee, "transaction sent");
        Ok(())
    }

    /// Waits for any attempt of a sent transaction to be mined, replacing it with higher fees
    /// (same nonce) while none is, and returns the successful receipt. An RPC failure while
    /// waiting is waited out (the transaction is still in flight); the wait ends when the lease
    /// is lost.
    pub(super) async fn confirm(&self, mut sent: Sent) -> Result<TransactionReceipt, SubmitError> {
        let chain = self.settings.chain_id;
        let key = self.key(sent.job);
        loop {
            let waited = PendingTransactionBuilder::new(self.provider.root().clone(), sent.hash)
                .with_timeout(Some(self.settings.gas.replace_after))
                .get_receipt();
            let waited = tokio::select! {
                w = waited => w,
                _ = self.lease.cancelled() => return Err(SubmitError::LeaseLost { chain }),
            };
            let receipt = match waited {
                Ok(receipt) => Some(receipt),
                // Maybe an earlier attempt with this nonce was mined meanwhile.
                Err(_) => match self.mined_attempt(&sent).await {
                    Ok(found) => found,
                    Err(e @ SubmitError::NonceTaken { .. }) => {
                        self.store
                            .clear_pending(chain, self.signer, sent.nonce)
                            .await?;
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(chain, job = %sent.job, call = sent.call, nonce = sent.nonce, error = %e, "cannot tell whether the transaction was mined; waiting again");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = self.lease.cancelled() => return Err(SubmitError::LeaseLost { chain }),
                        }
                        continue;
                    }
                },
            };
            if let Some(receipt) = receipt {
                self.mined(sent.nonce).await?;
                if !receipt.status() {
                    return Err(SubmitError::MinedReverted {
                        key,
                        call: sent.call,
                        tx: receipt.transaction_hash,
                    });
                }
                return Ok(receipt);
            }
            // Not mined in time: maybe it waits behind nonces nothing will send.
            self.fill_below(sent.nonce).await;
            if sent
                .fees
                .exhausted(sent.attempts, self.settings.max_attempts)
            {
                return Err(SubmitError::Stuck {
                    key,
                    call: sent.call,
                    nonce: sent.nonce,
                    attempts: sent.attempts,
                });
            }
            sent.fees = sent.fees.bumped(self.settings.gas.bump_percent);
            tracing::warn!(chain, job = %sent.job, call = sent.call, nonce = sent.nonce, max_fee = sent.fees.max_fee, "not mined in time; replacing with higher fees");
            self.broadcast(&mut sent).await?;
        }
    }

    /// The receipt of whichever attempt of `sent` was mined, once its nonce is: `None` while it
    /// is not, [`SubmitError::NonceTaken`] when the nonce went to another transaction.
    async fn mined_attempt(&self, sent: &Sent) -> Result<Option<TransactionReceipt>, SubmitError> {
        let mined = self.transaction_count(false).await?;
        if !nonce::is_mined(sent.nonce, mined) {
            return Ok(None);
        }
        for hash in sent.hashes.iter().rev() {
            if let Some(r) = self.find_receipt(*hash).await? {
                return Ok(Some(r));
            }
        }
        Err(SubmitError::NonceTaken {
            key: self.key(sent.job),
            call: sent.call,
            nonce: sent.nonce,
        })
    }

    /// Forgets a mined transaction.
    async fn mined(&self, nonce: u64) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        self.store.clear_pending(chain, self.signer, nonce).await?;
        metrics::gauge!("lilypad_pending_transactions", "chain" => chain.to_string())
            .decrement(1.0);
        metrics::counter!("lilypad_transactions_landed_total", "chain" => chain.to_string())
            .increment(1);
        Ok(())
    }

    async fn find_receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>, SubmitError> {
        self.provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| rpc("eth_getTransactionReceipt")(e.to_string()))
    }
}
