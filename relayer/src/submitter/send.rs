//! Sending one transaction and seeing it mined: estimate, price ([`super::fees`]), reserve a
//! nonce ([`super::nonce`]), broadcast and record it as pending, then wait for its receipt,
//! replacing it with higher fees (same nonce) while it is not mined.

use super::*;

/// A transaction sent and not yet confirmed.
pub(super) struct Sent {
    pub(super) job: U256,
    pub(super) call: &'static str,
    pub(super) after: After,
    pub(super) base: TransactionRequest,
    pub(super) nonce: u64,
    pub(super) gas: u64,
    pub(super) fees: Fees,
    pub(super) attempts: u32,
    pub(super) hash: B256,
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

    /// Estimates, prices and sends a call to Lilypad with the next nonce from Redis, and returns
    /// without waiting for it to be mined ([`Submitter::confirm`] does). Sends are made one at a
    /// time, so nonces go out in order with no gap; confirmations may then overlap.
    pub(super) async fn dispatch(
        &self,
        job: U256,
        call: &'static str,
        data: Bytes,
        after: After,
    ) -> Result<Sent, SubmitError> {
        let key = self.key(job);
        let base = TransactionRequest::default()
            .with_from(self.signer)
            .with_to(self.settings.lilypad)
            .with_input(data);
        let gas = self
            .provider
            .estimate_gas(base.clone())
            .await
            .map_err(|e| SubmitError::Reverts {
                key,
                call,
                reason: decode_revert(&e),
            })?;
        let estimate = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| rpc("fee estimate")(e.to_string()))?;
        let fees = Fees::first(estimate.max_fee_per_gas, &self.settings.gas);

        let chain_nonce = self.transaction_count(true).await?;
        let nonce = self.nonces().reserve(chain_nonce).await?;
        let mut sent = Sent {
            job,
            call,
            after,
            base,
            nonce,
            gas: fees::gas_limit(gas),
            fees,
            attempts: 0,
            hash: B256::ZERO,
        };
        self.broadcast(&mut sent).await?;
        Ok(sent)
    }

    /// Sends (or re-sends, with the fees in `sent`) the transaction for `sent.nonce` and records
    /// it in Redis as pending.
    async fn broadcast(&self, sent: &mut Sent) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        sent.attempts += 1;
        let tx = sent
            .base
            .clone()
            .with_nonce(sent.nonce)
            .with_gas_limit(sent.gas)
            .with_max_fee_per_gas(sent.fees.max_fee)
            .with_max_priority_fee_per_gas(sent.fees.tip)
            .with_chain_id(chain);
        let pending = match self.provider.send_transaction(tx).await {
            Ok(p) => p,
            Err(e) => {
                // The nonce was not used: resynchronise with the chain so no gap is left.
                if let Ok(n) = self.transaction_count(true).await {
                    self.nonces().resync(n).await?;
                }
                return Err(rpc(format!(
                    "sending {} for job {}",
                    sent.call,
                    self.key(sent.job)
                ))(e.to_string()));
            }
        };
        sent.hash = *pending.tx_hash();
        let record = PendingTx {
            job: sent.job,
            call: sent.call.into(),
            hash: sent.hash,
            attempts: sent.attempts,
        };
        self.store
            .record_pending(chain, self.signer, sent.nonce, &record)
            .await?;
        if sent.attempts == 1 {
            // A replacement reuses its nonce: only a first send adds one in flight.
            metrics::gauge!("lilypad_pending_transactions", "chain" => chain.to_string())
                .increment(1.0);
        }
        tracing::info!(chain, job = %sent.job, call = sent.call, hash = %sent.hash, nonce = sent.nonce, attempts = sent.attempts, max_fee = sent.fees.max_fee, "transaction sent");
        Ok(())
    }

    /// Waits for a sent transaction's receipt, replacing it with higher fees (same nonce) while
    /// it is not mined, and returns the successful receipt.
    pub(super) async fn confirm(&self, mut sent: Sent) -> Result<TransactionReceipt, SubmitError> {
        let chain = self.settings.chain_id;
        let key = self.key(sent.job);
        loop {
            let waited = PendingTransactionBuilder::new(self.provider.root().clone(), sent.hash)
                .with_timeout(Some(self.settings.gas.replace_after))
                .get_receipt()
                .await;
            match waited {
                Ok(receipt) => {
                    self.mined(sent.nonce).await?;
                    if !receipt.status() {
                        return Err(SubmitError::MinedReverted {
                            key,
                            call: sent.call,
                            tx: sent.hash,
                        });
                    }
                    return Ok(receipt);
                }
                Err(e) => {
                    // Maybe an earlier attempt with this nonce was mined meanwhile.
                    let mined = self.transaction_count(false).await?;
                    if nonce::is_mined(sent.nonce, mined)
                        && let Some(r) = self.find_receipt(sent.hash).await?
                    {
                        self.mined(sent.nonce).await?;
                        if !r.status() {
                            return Err(SubmitError::MinedReverted {
                                key,
                                call: sent.call,
                                tx: sent.hash,
                            });
                        }
                        return Ok(r);
                    }
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
                    tracing::warn!(chain, job = %sent.job, call = sent.call, nonce = sent.nonce, error = %e, max_fee = sent.fees.max_fee, "not mined in time; replacing with higher fees");
                    self.broadcast(&mut sent).await?;
                }
            }
        }
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
