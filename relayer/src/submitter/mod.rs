//! The per-chain submitter: lands signed deals and results, and carries out the protocol's own
//! transitions when they fall due (expire, time out, settle).
//!
//! - Before sending anything it reads the job on-chain, so nothing is sent twice: a deal for a job
//!   that is no longer `Requested`, or a result for one past `Agreed`, is dropped with a log
//!   line, not sent. A result whose deal is not mined yet is kept and tried again.
//! - Transactions are pipelined: each round sends the waiting deals one after another with
//!   consecutive nonces and then waits for all of them; then the results; then the due actions.
//! - Nonces come from Redis (reserved atomically, at least the chain's pending nonce), and every
//!   transaction sent is recorded there until it is mined, so a restarted relayer knows what it
//!   has in flight.
//! - Fees follow the chain's gas policy: the node's EIP-1559 estimate, capped at `max_fee_gwei`;
//!   a transaction not mined within `replace_after` is sent again with the same nonce and fees
//!   raised by `bump_percent` (still capped).
//! - Several relayers may serve one chain: messages on the deals and results streams go to one of
//!   them (a shared durable consumer), due actions are claimed in Redis, and a relayer sends only
//!   while it holds the lease for its signer on that chain.

use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use alloy::eips::BlockNumberOrTag;
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, PendingTransactionBuilder, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lilypad_bindings::Lilypad;
use lilypad_bus::{Bus, BusError, Received, Topic};
use lilypad_chain::RpcOptions;
use lilypad_config::GasPolicy;
use lilypad_store::{Action, Store, StoreError};
use lilypad_types::{JobKey, JobStatus, SignedDeal, SignedResult};

use fees::Fees;
use gate::{ActionGate, Gate};
use nonce::Nonces;

pub mod fees;
pub mod gate;
pub mod nonce;
use serde::{Deserialize, Serialize};

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

fn rpc(op: impl Into<String>) -> impl FnOnce(String) -> SubmitError {
    let op = op.into();
    move |reason| SubmitError::Rpc { op, reason }
}

/// What became of a message or a due action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The transaction was mined and succeeded.
    Landed(B256),
    /// Nothing was sent: the job is no longer in the state the action needs (done by someone
    /// else, or never applicable). The text says what state it is in.
    Skipped(String),
}

/// A transaction in flight, as recorded in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTx {
    /// The job it is for.
    pub job: U256,
    /// The function called.
    pub call: String,
    /// The latest hash sent for this nonce.
    pub hash: B256,
    /// How many times it was sent.
    pub attempts: u32,
}

/// What a message or due action comes to before anything is mined.
enum Step {
    /// A transaction was sent; [`Submitter::complete`] waits for it.
    Sent(Box<Sent>),
    /// Nothing to send; why.
    Skipped(String),
}

/// A signed message the submitter lands: a deal or a result.
trait Signed: serde::de::DeserializeOwned {
    /// Its stream.
    const TOPIC: Topic;
    /// Its name in logs and in the durable consumer's name.
    const WHAT: &'static str;
    /// The job it is for.
    fn key(&self) -> JobKey;
    /// Checks the job and sends the transaction.
    fn prepare(&self, submitter: &Submitter) -> impl Future<Output = Result<Step, SubmitError>>;
}

impl Signed for SignedDeal {
    const TOPIC: Topic = Topic::Deals;
    const WHAT: &'static str = "deal";
    fn key(&self) -> JobKey {
        self.key
    }
    fn prepare(&self, submitter: &Submitter) -> impl Future<Output = Result<Step, SubmitError>> {
        submitter.prepare_deal(self)
    }
}

impl Signed for SignedResult {
    const TOPIC: Topic = Topic::Results;
    const WHAT: &'static str = "result";
    fn key(&self) -> JobKey {
        self.key
    }
    fn prepare(&self, submitter: &Submitter) -> impl Future<Output = Result<Step, SubmitError>> {
        submitter.prepare_result(self)
    }
}

/// What to record once a transaction is mined: the due action it makes unneeded, and the one it
/// makes due at the job's new deadline. A deal: no more expiry, a timeout at the execution
/// deadline. A result: no more timeout, settlement when the challenge window ends. A due action:
/// itself done, nothing next.
#[derive(Debug, Clone, Copy)]
struct After {
    done: Action,
    next: Option<Action>,
}

/// A transaction sent and not yet confirmed.
struct Sent {
    job: U256,
    call: &'static str,
    after: After,
    base: TransactionRequest,
    nonce: u64,
    gas: u64,
    fees: Fees,
    attempts: u32,
    hash: B256,
}

/// Settings for one chain's submitter.
#[derive(Debug, Clone)]
pub struct SubmitterSettings {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The Lilypad contract.
    pub lilypad: Address,
    /// Fee limits and replacement policy.
    pub gas: GasPolicy,
    /// How many times a transaction is sent (first send plus replacements) before giving up.
    pub max_attempts: u32,
    /// How long a due action waits before another relayer may retry it.
    pub claim_retry: Duration,
    /// Lease time for the right to send with this signer on this chain.
    pub lease_ttl: Duration,
}

/// Submits transactions to one chain with one key.
#[derive(Debug, Clone)]
pub struct Submitter {
    settings: SubmitterSettings,
    provider: DynProvider,
    signer: Address,
    store: Store,
    bus: Bus,
}

/// How long a round waits on an empty deals or results stream.
const ROUND_WAIT: Duration = Duration::from_millis(100);
/// The pause between two rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

impl Submitter {
    /// A submitter sending with `key` through `rpc`.
    pub fn new(
        settings: SubmitterSettings,
        rpc: &str,
        key: PrivateKeySigner,
        store: Store,
        bus: Bus,
    ) -> Result<Self, SubmitError> {
        let signer = key.address();
        let provider = lilypad_chain::connect_with_signer(rpc, key, &RpcOptions::default())
            .map_err(|e| SubmitError::Rpc {
                op: "connecting".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            settings,
            provider,
            signer,
            store,
            bus,
        })
    }

    /// How often it polls for a sent transaction's receipt (see
    /// [`lilypad_chain::set_poll_interval`]); the relayer uses the chain's poll interval.
    pub fn with_receipt_poll(self, every: Duration) -> Self {
        lilypad_chain::set_poll_interval(&self.provider, every);
        self
    }

    /// The address it sends from.
    pub fn signer(&self) -> Address {
        self.signer
    }

    fn key(&self, job: U256) -> JobKey {
        JobKey {
            chain_id: self.settings.chain_id,
            job_id: job,
        }
    }

    fn nonces(&self) -> Nonces {
        Nonces::new(self.store.clone(), self.settings.chain_id, self.signer)
    }

    fn lilypad(&self) -> lilypad_bindings::Lilypad::LilypadInstance<&DynProvider> {
        Lilypad::new(self.settings.lilypad, &self.provider)
    }

    /// The job's on-chain status and deadline.
    /// A status number this build does not know reads as `None` (a newer contract): the job is
    /// then left alone, as for any state an action does not expect.
    pub async fn job_state(&self, job: U256) -> Result<(Option<JobStatus>, u64), SubmitError> {
        let j = self
            .lilypad()
            .getJob(job)
            .call()
            .await
            .map_err(|e| rpc(format!("getJob({job})"))(e.to_string()))?;
        Ok((j.state(), j.deadline.to::<u64>()))
    }

    /// The chain's clock: the latest block's timestamp.
    pub async fn chain_time(&self) -> Result<u64, SubmitError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| rpc("eth_getBlockByNumber(latest)")(e.to_string()))?
            .ok_or_else(|| rpc("eth_getBlockByNumber(latest)")("no block".into()))?;
        Ok(block.header.timestamp)
    }

    /// Lands a signed deal unless the job is no longer waiting for one; schedules its timeout.
    pub async fn submit_deal(&self, deal: &SignedDeal) -> Result<Submitted, SubmitError> {
        self.run_step(self.prepare_deal(deal).await?).await
    }

    /// Lands a signed result unless the job is no longer waiting for one; schedules settlement.
    pub async fn submit_result(&self, result: &SignedResult) -> Result<Submitted, SubmitError> {
        self.run_step(self.prepare_result(result).await?).await
    }

    /// Carries out one due action, if the job is still in the state it needs and its deadline has
    /// passed by the chain's clock; otherwise nothing is sent.
    pub async fn carry_out(&self, job: U256, action: Action) -> Result<Submitted, SubmitError> {
        let now = self.chain_time().await?;
        self.run_step(self.prepare_action(job, action, now).await?)
            .await
    }

    /// Waits for the transaction of a step that sent one.
    async fn run_step(&self, step: Step) -> Result<Submitted, SubmitError> {
        match step {
            Step::Sent(sent) => self.complete(*sent).await,
            Step::Skipped(why) => Ok(Submitted::Skipped(why)),
        }
    }

    /// Checks the job waits for this deal and sends `agreeDeal` (without waiting for it to be
    /// mined).
    async fn prepare_deal(&self, deal: &SignedDeal) -> Result<Step, SubmitError> {
        let job = deal.terms.job_id;
        let (state, _) = self.job_state(job).await?;
        if let Some(step) = gated(deal.key, gate::deal(state))? {
            return Ok(step);
        }
        let call = Lilypad::agreeDealCall {
            deal: Lilypad::Deal::from(&deal.terms),
            providerSignature: deal.signature.clone(),
        };
        let sent = self
            .dispatch(
                job,
                "agreeDeal",
                call.abi_encode().into(),
                After {
                    done: Action::Expire,
                    next: Some(Action::Timeout),
                },
            )
            .await?;
        Ok(Step::Sent(Box::new(sent)))
    }

    /// Checks the job waits for this result and sends `submitResult` (without waiting for it to
    /// be mined). A result for a job whose deal is not on-chain yet waits for it.
    async fn prepare_result(&self, result: &SignedResult) -> Result<Step, SubmitError> {
        let job = result.key.job_id;
        let (state, _) = self.job_state(job).await?;
        if let Some(step) = gated(result.key, gate::result(state))? {
            return Ok(step);
        }
        let call = Lilypad::submitResultCall {
            result: Lilypad::ResultData {
                jobId: job,
                status: result.status,
                resultCid: Bytes::from(result.result_cid.as_bytes().to_vec()),
                exitCode: result.exit_code,
                error: result.error.clone(),
            },
            inlineOutput: result.inline_output.clone(),
            providerSignature: result.signature.clone(),
        };
        let sent = self
            .dispatch(
                job,
                "submitResult",
                call.abi_encode().into(),
                After {
                    done: Action::Timeout,
                    next: Some(Action::Settle),
                },
            )
            .await?;
        Ok(Step::Sent(Box::new(sent)))
    }

    /// Checks a due action is still needed at chain time `now` and sends it.
    async fn prepare_action(
        &self,
        job: U256,
        action: Action,
        now: u64,
    ) -> Result<Step, SubmitError> {
        let (state, deadline) = self.job_state(job).await?;
        match gate::action(action, state, deadline, now) {
            ActionGate::Send => {}
            ActionGate::Done(why) => {
                self.store.done(self.settings.chain_id, job, action).await?;
                return Ok(Step::Skipped(why));
            }
            ActionGate::Wait { deadline, why } => {
                self.store
                    .schedule(self.settings.chain_id, job, action, deadline)
                    .await?;
                return Ok(Step::Skipped(why));
            }
        }
        let (name, data): (&'static str, Vec<u8>) = match action {
            Action::Expire => ("expire", Lilypad::expireCall { jobId: job }.abi_encode()),
            Action::Timeout => ("timeout", Lilypad::timeoutCall { jobId: job }.abi_encode()),
            Action::Settle => ("settle", Lilypad::settleCall { jobId: job }.abi_encode()),
        };
        let sent = self
            .dispatch(
                job,
                name,
                data.into(),
                After {
                    done: action,
                    next: None,
                },
            )
            .await?;
        Ok(Step::Sent(Box::new(sent)))
    }

    /// Waits for a dispatched transaction and records what follows from it.
    async fn complete(&self, sent: Sent) -> Result<Submitted, SubmitError> {
        let chain = self.settings.chain_id;
        let (job, after) = (sent.job, sent.after);
        let receipt = self.confirm(sent).await?;
        self.store.done(chain, job, after.done).await?;
        if let Some(next) = after.next {
            let (_, deadline) = self.job_state(job).await?;
            self.store.schedule(chain, job, next, deadline).await?;
        }
        Ok(Submitted::Landed(receipt.transaction_hash))
    }

    /// Estimates, prices and sends a call to Lilypad with the next nonce from Redis, and returns
    /// without waiting for it to be mined ([`Submitter::confirm`] does). Sends are made one at a
    /// time, so nonces go out in order with no gap; confirmations may then overlap.
    async fn dispatch(
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

        let chain_nonce = self
            .provider
            .get_transaction_count(self.signer)
            .pending()
            .await
            .map_err(|e| rpc("eth_getTransactionCount")(e.to_string()))?;
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
                if let Ok(n) = self
                    .provider
                    .get_transaction_count(self.signer)
                    .pending()
                    .await
                {
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
    async fn confirm(&self, mut sent: Sent) -> Result<TransactionReceipt, SubmitError> {
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
                    let mined = self
                        .provider
                        .get_transaction_count(self.signer)
                        .latest()
                        .await
                        .map_err(|e| rpc("eth_getTransactionCount")(e.to_string()))?;
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

    /// One round: lands the deals waiting on the stream, then the results, then the due actions.
    /// Within each of those three phases transactions are pipelined: sent one after another
    /// with consecutive nonces, then confirmed together, so a batch costs about one block, not
    /// one block per transaction. The phases follow one another because each can depend on the
    /// one before (a result needs its deal mined; a timeout must not race a result). Returns how
    /// many transactions landed.
    pub async fn round(&self, wait: Duration) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let mut landed = self.land::<SignedDeal>(wait).await?;
        landed += self.land::<SignedResult>(wait).await?;

        let now = self.chain_time().await?;
        let mut inflight = FuturesUnordered::new();
        for (job, action) in self
            .store
            .claim_due(chain, now, 32, self.settings.claim_retry)
            .await?
        {
            match self.prepare_action(job, action, now).await {
                Ok(Step::Sent(sent)) => {
                    inflight.push(async move { (job, action, self.complete(*sent).await) })
                }
                Ok(Step::Skipped(why)) => {
                    report_action(chain, job, action, Ok(Submitted::Skipped(why)));
                }
                Err(e) => {
                    report_action(chain, job, action, Err(e));
                }
            }
        }
        while let Some((job, action, outcome)) = inflight.next().await {
            landed += report_action(chain, job, action, outcome);
        }
        Ok(landed)
    }

    /// One phase of a round: the messages of one kind waiting on their stream, sent one after
    /// another and confirmed together.
    async fn land<M: Signed>(&self, wait: Duration) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let consumer = self
            .bus
            .consumer::<M>(
                M::TOPIC,
                Some(chain),
                &format!("relayer-{}s-{chain}", M::WHAT),
            )
            .await?;
        let mut landed = 0;
        let mut inflight = FuturesUnordered::new();
        let mut jobs = HashSet::new();
        for r in consumer.fetch(32, wait).await? {
            let Received::Message(d) = r else {
                if let Received::Malformed(m) = r {
                    tracing::error!(chain, subject = %m.subject, reason = %m.reason, "dropped a malformed {} message", M::WHAT);
                }
                continue;
            };
            let key = d.body.key();
            if !jobs.insert(key.job_id) {
                // Another message for this job is in flight: look again once it is mined.
                d.retry_after(Duration::from_secs(1)).await?;
                continue;
            }
            match d.body.prepare(self).await {
                Ok(Step::Sent(sent)) => inflight.push(async move {
                    let outcome = self.complete(*sent).await;
                    self.finish(key, M::WHAT, outcome, *d).await
                }),
                Ok(Step::Skipped(why)) => {
                    landed += self
                        .finish(key, M::WHAT, Ok(Submitted::Skipped(why)), *d)
                        .await?
                }
                Err(e) => landed += self.finish(key, M::WHAT, Err(e), *d).await?,
            }
        }
        while let Some(r) = inflight.next().await {
            landed += r?;
        }
        Ok(landed)
    }

    async fn finish<T>(
        &self,
        key: JobKey,
        what: &str,
        outcome: Result<Submitted, SubmitError>,
        delivery: lilypad_bus::Delivery<T>,
    ) -> Result<usize, SubmitError> {
        match outcome {
            Ok(Submitted::Landed(tx)) => {
                tracing::info!(job = %key, %tx, "{what} landed");
                delivery.ack().await?;
                Ok(1)
            }
            Ok(Submitted::Skipped(why)) => {
                tracing::info!(job = %key, %why, "{what} not sent");
                delivery.ack().await?;
                Ok(0)
            }
            Err(e @ (SubmitError::Reverts { .. } | SubmitError::MinedReverted { .. })) => {
                tracing::error!(job = %key, error = %e, "{what} refused by the contract; dropped");
                delivery.reject().await?;
                Ok(0)
            }
            Err(e @ SubmitError::NotYet { .. }) => {
                tracing::info!(job = %key, reason = %e, "{what} kept for later");
                delivery.retry_after(Duration::from_millis(500)).await?;
                Ok(0)
            }
            Err(e) => {
                tracing::warn!(job = %key, error = %e, "{what} not landed yet; retrying");
                delivery.retry_after(Duration::from_secs(2)).await?;
                Ok(0)
            }
        }
    }

    /// Runs rounds until `stop` is cancelled, while holding the lease for this signer on this
    /// chain. On the way out the lease is given up, so another relayer with this key takes over at
    /// once instead of after the lease's TTL.
    pub async fn run(
        &self,
        holder: &str,
        health: crate::health::Health,
        name: &str,
        stop: CancellationToken,
    ) {
        let lease_name = format!("submit:{}:{}", self.settings.chain_id, self.signer);
        let mut lease = None;
        while !stop.is_cancelled() {
            let held = self
                .store
                .try_acquire_lease(&lease_name, holder, self.settings.lease_ttl)
                .await;
            if let Ok(l) = &held {
                lease.clone_from(l);
            }
            let pause = match held {
                // Each stream is waited on for at most ROUND_WAIT when empty, so an idle round
                // takes about 2 x ROUND_WAIT + ROUND_PAUSE and due actions are never held longer.
                Ok(Some(_)) => match self.round(ROUND_WAIT).await {
                    Ok(_) => {
                        health.submitted(name);
                        ROUND_PAUSE
                    }
                    Err(e) => {
                        health.failed(name, &format!("submitting: {e}"));
                        metrics::counter!("lilypad_failures_total", "chain" => self.settings.chain_id.to_string(), "stage" => "submit")
                            .increment(1);
                        tracing::error!(chain = self.settings.chain_id, error = %e, "submitter round failed");
                        Duration::from_secs(2)
                    }
                },
                Ok(None) => Duration::from_secs(1), // another relayer sends with this key
                Err(e) => {
                    tracing::error!(chain = self.settings.chain_id, error = %e, "lease check failed");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => {}
            }
        }
        if let Some(lease) = lease
            && let Err(e) = self.store.release_lease(&lease).await
        {
            tracing::warn!(chain = self.settings.chain_id, error = %e, "could not give up the submit lease; it lapses after its TTL");
        }
    }
}

/// The step a gate decided, or `None` when the transaction is to be sent.
fn gated(key: JobKey, gate: Gate) -> Result<Option<Step>, SubmitError> {
    match gate {
        Gate::Send => Ok(None),
        Gate::Skip(why) => Ok(Some(Step::Skipped(why))),
        Gate::NotYet(reason) => Err(SubmitError::NotYet {
            key,
            reason: reason.into(),
        }),
    }
}

/// Logs what became of a due action; 1 if a transaction landed. A failed action stays claimed in
/// Redis and comes due again after the claim expires.
fn report_action(
    chain: u64,
    job: U256,
    action: Action,
    outcome: Result<Submitted, SubmitError>,
) -> usize {
    match outcome {
        Ok(Submitted::Landed(tx)) => {
            tracing::info!(chain, job = %job, %action, %tx, "due action carried out");
            1
        }
        Ok(Submitted::Skipped(why)) => {
            tracing::debug!(chain, job = %job, %action, %why, "due action not needed");
            0
        }
        Err(e) => {
            tracing::error!(chain, job = %job, %action, error = %e, "due action failed; it comes due again");
            0
        }
    }
}

/// The revert reason, decoded to Lilypad's error name when it is one.
fn decode_revert(e: &alloy::transports::TransportError) -> String {
    if let Some(payload) = e.as_error_resp() {
        if let Some(decoded) = payload.as_decoded_interface_error::<Lilypad::LilypadErrors>() {
            return format!("{decoded:?}");
        }
        return payload.message.to_string();
    }
    e.to_string()
}
