//! The per-chain submitter: lands signed deals and results, and carries out the protocol's own
//! transitions when they fall due (expire, time out, settle).
//!
//! - Before sending anything it reads the job on-chain, so nothing is sent twice: a deal for a job
//!   that is no longer `Requested`, or a result for one past `Agreed`, is dropped with a log
//!   line, not sent. A result whose deal is not mined yet is kept and tried again.
//! - Transactions are prepared together and sent in nonce order: each round takes the waiting
//!   deals, then the results, then the due actions, and starts each on its own task ([`phases`]),
//!   prepared concurrently (up to [`PREPARE_AT_ONCE`] at a time: the job read, the gas estimate,
//!   the fee estimate and the chain's pending count, the last two read once per phase), so one
//!   slow or failed call holds only its own transaction. Only the short section "reserve the
//!   nonce, sign, record as pending, broadcast" is taken one transaction at a time (a lock shared
//!   by every clone of the submitter), so nonces go out in order with no gap and a first send the
//!   node refuses can still give its nonce back. Confirmations then overlap, and outlive their
//!   round: the running submitter does not wait for them before taking what came meanwhile (at
//!   most [`MAX_IN_PROGRESS`] in progress, one per job).
//! - Nonces come from Redis (reserved atomically, at least the chain's pending nonce; see
//!   [`nonce`]). Every transaction is signed here and recorded there as pending (every attempt's
//!   hash, the latest signed bytes) before it is broadcast, until one of its attempts is mined; a
//!   relayer that takes the lease first retires the records a stopped or killed one left
//!   ([`recover`]: the follow-up of each mined one is scheduled from the job's state), and every
//!   deal, result and due action is checked against the job's on-chain state before it is sent.
//! - What follows a landed deal or result (the job's timeout, its settlement) is scheduled at the
//!   deadline the transaction's own event names (`DealAgreed`, `ResultSubmitted`), so no read
//!   that may fail stands between a mined transaction and its follow-up.
//! - One nonce per action ([`send`]): a lost answer to a send is met by sending the same bytes
//!   again; an action tried again while its transaction is in flight waits for that one.
//! - Only a revert is a refusal ([`error::classify_call`]): a deal or result the contract refuses
//!   for good is dropped, one it may take later is tried again, and one whose estimate failed for
//!   want of an answer is always tried again.
//! - Fees follow the chain's gas policy: the node's EIP-1559 estimate, capped at `max_fee_gwei`;
//!   a transaction not mined within `replace_after` is sent again with the same nonce and fees
//!   raised by `bump_percent` (still capped).
//! - After a reorganisation the submitter follows the chain ([`reorg`]): every landed transaction
//!   is kept in Redis until deep, and one the chain no longer has is sent again (deals and
//!   results with the same signed calldata) once the job on-chain shows it is still needed; the
//!   next nonce moves back to the chain's when nothing pending holds the nonces between.
//! - Several relayers may serve one chain: messages on the deals and results streams go to one of
//!   them (a shared durable consumer), due actions are claimed in Redis, and a relayer sends only
//!   while it holds the lease for its signer on that chain, renewed while a round waits.

use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use alloy::eips::BlockNumberOrTag;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, PendingTransactionBuilder, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lilypad_bindings::Lilypad;
use lilypad_bus::{Bus, Received, Topic};
use lilypad_chain::RpcOptions;
use lilypad_config::GasPolicy;
use lilypad_store::{Action, Store};
use lilypad_types::{AuditState, JobKey, JobStatus, SignedDeal, SignedResult};

use fees::Fees;
use gate::{ActionGate, Gate};
use nonce::Nonces;

mod error;
pub mod fees;
pub mod gaps;
pub mod gate;
pub mod nonce;
mod phases;
mod recover;
pub mod reorg;
mod send;

use error::rpc;
pub use error::{
    CallFailure, SendOutcome, SubmitError, Verdict, classify_call, classify_send, verdict,
};
use send::{PhaseReads, Sent};
use serde::{Deserialize, Serialize};

/// What became of a message or a due action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The transaction was mined and succeeded.
    Landed(B256),
    /// Nothing was sent: the job is no longer in the state the action needs (done by someone
    /// else, or never applicable). The text says what state it is in.
    Skipped(String),
}

/// A transaction in flight, as recorded in Redis (before it is broadcast, so a lost answer or a
/// killed relayer never loses track of a nonce).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTx {
    /// The job it is for.
    pub job: U256,
    /// The request the job had when this was signed (zero for a cancellation, and in records
    /// written before this field): once a reorganisation gives the job id to another request,
    /// the action is not needed any more and is never sent again.
    #[serde(default)]
    pub request_hash: B256,
    /// The function called.
    pub call: String,
    /// The latest hash sent for this nonce.
    pub hash: B256,
    /// Every attempt's hash for this nonce, oldest first: any of them may be the one mined.
    #[serde(default)]
    pub hashes: Vec<B256>,
    /// How many times it was sent.
    pub attempts: u32,
    /// The latest attempt as signed (EIP-2718 bytes), sent again as it is after a lost answer.
    #[serde(default)]
    pub raw: Bytes,
    /// The latest attempt's gas limit.
    #[serde(default)]
    pub gas: u64,
    /// The latest attempt's max fee per gas, in wei.
    #[serde(default)]
    pub max_fee: u128,
    /// The latest attempt's priority fee per gas, in wei.
    #[serde(default)]
    pub tip: u128,
}

impl PendingTx {
    /// Every hash this nonce was sent with (older records kept only the latest).
    pub fn all_hashes(&self) -> Vec<B256> {
        if self.hashes.is_empty() {
            vec![self.hash]
        } else {
            self.hashes.clone()
        }
    }
}

/// What a message or due action comes to before anything is mined.
enum Step {
    /// A transaction was sent; [`Submitter::complete`] waits for it.
    Sent(Box<Sent>),
    /// Nothing to send; why.
    Skipped(String),
}

/// Blocks over which the chain's pace is measured for [`gate::settle_reads_the_draw`].
const PACE_BLOCKS: u64 = 64;

/// What to record once a transaction is mined: the due action it makes unneeded, and the one it
/// makes due at the job's new deadline. A deal: no more expiry, a timeout at the execution
/// deadline. A result: no more timeout, settlement when the challenge window ends, and, for a job
/// requested with audits on, its audit draw at once. A due action: itself done, nothing next.
#[derive(Debug, Clone, Copy)]
struct After {
    done: Action,
    next: Option<Action>,
    /// schedule [`Action::Audit`] now too
    audit: bool,
}

impl After {
    /// After `agreeDeal`.
    const DEAL: After = After {
        done: Action::Expire,
        next: Some(Action::Timeout),
        audit: false,
    };
    /// After `submitResult` (`audit` cleared for a job without audits when that is known).
    const RESULT: After = After {
        done: Action::Timeout,
        next: Some(Action::Settle),
        audit: true,
    };

    /// After the due action `action`.
    fn action(action: Action) -> After {
        After {
            done: action,
            next: None,
            audit: false,
        }
    }

    /// What follows the contract function `call`, as the pending records name it (`None` for a
    /// name this build never sends).
    fn of_call(call: &str) -> Option<After> {
        match call {
            "agreeDeal" => Some(Self::DEAL),
            "submitResult" => Some(Self::RESULT),
            other => Action::parse(other).map(Self::action),
        }
    }
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
    wallet: EthereumWallet,
    signer: Address,
    store: Store,
    bus: Bus,
    /// Cancelled when the lease this submitter sends under is lost (or the relayer stops):
    /// nothing is sent after that. Never cancelled outside [`Submitter::run`].
    lease: CancellationToken,
    /// When the pending records were last looked at for nonces to fill ([`gaps`]), shared by
    /// every clone (each round runs on one).
    gaps_checked: std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    /// Held from reserving a nonce to broadcasting its first attempt ([`send`]), shared by every
    /// clone: the one part of sending that is not concurrent.
    send_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// How reorganisations are followed, and the last one seen ([`reorg`]).
    reorg: std::sync::Arc<reorg::Watch>,
    /// The jobs a message or due action of this relayer is being carried out for, from its job
    /// read to its outcome ([`phases`]): one at a time per job, across rounds. Shared by every
    /// clone.
    busy: std::sync::Arc<std::sync::Mutex<HashSet<U256>>>,
    /// Bounds the messages and due actions in progress at once ([`MAX_IN_PROGRESS`]).
    in_progress: std::sync::Arc<tokio::sync::Semaphore>,
    /// Bounds the preparations (job read, estimates) at once ([`PREPARE_AT_ONCE`]).
    preparing: std::sync::Arc<tokio::sync::Semaphore>,
    /// Every message and due action a round started, still running after its round ended while
    /// its transaction waits to be mined.
    tasks: tokio_util::task::TaskTracker,
    /// How many blocks back an audit draw's hash can be read on this chain: 8191 when it has the
    /// EIP-2935 history contract, else 256. Read once, shared by every clone.
    hash_window: std::sync::Arc<tokio::sync::OnceCell<u64>>,
}

/// How many messages (or due actions) are prepared at once: job read, estimates.
pub const PREPARE_AT_ONCE: usize = 16;

/// How many messages and due actions are in progress at once, from their job read until their
/// transaction is mined (or they end otherwise). A round takes no more than there is room for.
pub const MAX_IN_PROGRESS: usize = 64;

/// How many messages (or due actions) one round takes from each stream (and from the due set).
const TAKE_AT_ONCE: usize = 32;

/// How long a round waits on an empty deals or results stream.
const ROUND_WAIT: Duration = Duration::from_millis(100);
/// The pause between two rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(50);
/// How long a message waits when its job has another message or due action in progress.
const BUSY_RETRY: Duration = Duration::from_millis(500);

impl Submitter {
    /// A submitter sending with `key` through `rpc` (one URL or several of the same chain), with
    /// the default request timeouts and retries.
    pub fn new(
        settings: SubmitterSettings,
        rpc: &(impl lilypad_chain::Endpoints + ?Sized),
        key: PrivateKeySigner,
        store: Store,
        bus: Bus,
    ) -> Result<Self, SubmitError> {
        Self::with_rpc_options(settings, rpc, key, store, bus, &RpcOptions::default())
    }

    /// A submitter sending with `key` through `rpc`, whose requests follow `options` (timeouts,
    /// retries, receipt polling).
    pub fn with_rpc_options(
        settings: SubmitterSettings,
        rpc: &(impl lilypad_chain::Endpoints + ?Sized),
        key: PrivateKeySigner,
        store: Store,
        bus: Bus,
        options: &RpcOptions,
    ) -> Result<Self, SubmitError> {
        let signer = key.address();
        let wallet = EthereumWallet::from(key.clone());
        let provider = lilypad_chain::connect_with_signer(rpc, key, options).map_err(|e| {
            SubmitError::Rpc {
                op: "connecting".into(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            settings,
            provider,
            wallet,
            signer,
            store,
            bus,
            lease: CancellationToken::new(),
            gaps_checked: Default::default(),
            hash_window: Default::default(),
            send_turn: Default::default(),
            reorg: Default::default(),
            busy: Default::default(),
            in_progress: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_PROGRESS)),
            preparing: std::sync::Arc::new(tokio::sync::Semaphore::new(PREPARE_AT_ONCE)),
            tasks: tokio_util::task::TaskTracker::new(),
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
        let j = self.job(job).await?;
        Ok((j.state(), j.deadline.to::<u64>()))
    }

    /// The job as stored on-chain (status `None` for an id no job has).
    async fn job(&self, job: U256) -> Result<Lilypad::Job, SubmitError> {
        self.lilypad()
            .getJob(job)
            .call()
            .await
            .map_err(|e| rpc(format!("getJob({job})"))(e.to_string()))
    }

    /// The chain's clock: the latest block's timestamp.
    pub async fn chain_time(&self) -> Result<u64, SubmitError> {
        lilypad_chain::chain_time(&self.provider)
            .await
            .map_err(|e| rpc("eth_getBlockByNumber(latest)")(e.to_string()))
    }

    /// Lands a signed deal unless the job is no longer waiting for one; schedules its timeout.
    pub async fn submit_deal(&self, deal: &SignedDeal) -> Result<Submitted, SubmitError> {
        let reads = PhaseReads::default();
        self.run_step(self.prepare_deal(deal, &reads).await?).await
    }

    /// Lands a signed result unless the job is no longer waiting for one; schedules settlement.
    pub async fn submit_result(&self, result: &SignedResult) -> Result<Submitted, SubmitError> {
        let reads = PhaseReads::default();
        self.run_step(self.prepare_result(result, &reads).await?)
            .await
    }

    /// Carries out one due action, if the job is still in the state it needs and its deadline has
    /// passed by the chain's clock; otherwise nothing is sent.
    pub async fn carry_out(&self, job: U256, action: Action) -> Result<Submitted, SubmitError> {
        let now = self.chain_time().await?;
        let reads = PhaseReads::default();
        self.run_step(
            self.prepare_action(job, B256::ZERO, action, now, &reads)
                .await?,
        )
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
    /// mined). `reads` are the chain reads shared with the other transactions of its phase.
    async fn prepare_deal(
        &self,
        deal: &SignedDeal,
        reads: &PhaseReads,
    ) -> Result<Step, SubmitError> {
        let job = deal.terms.job_id;
        let on_chain = self.job(job).await?;
        if let Some(step) = gated(deal.key, gate::deal(on_chain.state()))? {
            // Landed already (maybe by an attempt whose answer was lost): its follow-up is
            // recorded all the same.
            self.follow_up(job, After::DEAL, &on_chain).await?;
            return Ok(step);
        }
        let call = Lilypad::agreeDealCall {
            deal: Lilypad::Deal::from(&deal.terms),
            providerSignature: deal.signature.clone(),
        };
        let sent = self
            .dispatch(
                job,
                deal.terms.request_hash,
                "agreeDeal",
                call.abi_encode().into(),
                After::DEAL,
                reads,
            )
            .await?;
        Ok(Step::Sent(Box::new(sent)))
    }

    /// Checks the job waits for this result and sends `submitResult` (without waiting for it to
    /// be mined). A result for a job whose deal is not on-chain yet waits for it.
    async fn prepare_result(
        &self,
        result: &SignedResult,
        reads: &PhaseReads,
    ) -> Result<Step, SubmitError> {
        let job = result.key.job_id;
        let on_chain = self.job(job).await?;
        let gate = gate::result(on_chain.state(), result.request_hash, on_chain.requestHash);
        if let Some(step) = gated(result.key, gate)? {
            self.follow_up(job, After::RESULT, &on_chain).await?;
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
        // Only a job requested with audits on has a draw to decide once the result lands.
        let after = After {
            audit: on_chain.auditBps != 0,
            ..After::RESULT
        };
        let sent = self
            .dispatch(
                job,
                result.request_hash,
                "submitResult",
                call.abi_encode().into(),
                after,
                reads,
            )
            .await?;
        Ok(Step::Sent(Box::new(sent)))
    }

    /// Checks a due action, scheduled for the job's request `request` (zero: whatever request it
    /// has), is still needed at chain time `now` and sends it. One scheduled for a request the
    /// job id no longer holds (a reorganisation gave it to another) is done with: the new
    /// request's own actions are scheduled for it.
    async fn prepare_action(
        &self,
        job: U256,
        request: B256,
        action: Action,
        now: u64,
        reads: &PhaseReads,
    ) -> Result<Step, SubmitError> {
        let chain = self.settings.chain_id;
        let on_chain = self.job(job).await?;
        if !request.is_zero() && request != on_chain.requestHash {
            self.store.done(chain, job, request, action).await?;
            return Ok(Step::Skipped(format!(
                "it was for request {request}; job {job} now holds request {}",
                on_chain.requestHash
            )));
        }
        if request.is_zero() && !on_chain.requestHash.is_zero() {
            // Scheduled without its request (by an earlier build): kept under the job's request
            // from now on, still claimed.
            let claimed_until = now + self.settings.claim_retry.as_secs().max(1);
            self.store
                .schedule(chain, job, on_chain.requestHash, action, claimed_until)
                .await?;
            self.store.done(chain, job, request, action).await?;
        }
        let request = on_chain.requestHash;
        let (state, deadline) = (on_chain.state(), on_chain.deadline.to::<u64>());
        if action == Action::Audit
            && let Some(skipped) = self.audit_not_yet(job, request, &on_chain, now).await?
        {
            return Ok(Step::Skipped(skipped));
        }
        match gate::action(action, state, deadline, now) {
            ActionGate::Send => {}
            ActionGate::Done(why) => {
                self.store.done(chain, job, request, action).await?;
                return Ok(Step::Skipped(why));
            }
            ActionGate::Wait { deadline, why } => {
                self.store
                    .schedule(chain, job, request, action, deadline)
                    .await?;
                return Ok(Step::Skipped(why));
            }
        }
        let (name, data): (&'static str, Vec<u8>) = match action {
            Action::Expire => ("expire", Lilypad::expireCall { jobId: job }.abi_encode()),
            Action::Timeout => ("timeout", Lilypad::timeoutCall { jobId: job }.abi_encode()),
            Action::Settle => ("settle", Lilypad::settleCall { jobId: job }.abi_encode()),
            Action::Audit => ("audit", Lilypad::auditCall { jobId: job }.abi_encode()),
        };
        let sent = match self
            .dispatch(
                job,
                request,
                name,
                data.into(),
                After::action(action),
                reads,
            )
            .await
        {
            Err(
                e @ SubmitError::Reverts {
                    not_before: Some(at),
                    ..
                },
            ) => {
                // The node's clock is behind the one read, or the block that draws the result's
                // audit is not there yet: due again at the deadline it names (a second later at
                // least), not only when the claim runs out.
                self.store
                    .schedule(chain, job, request, action, at.max(now + 1))
                    .await?;
                return Err(e);
            }
            other => other?,
        };
        Ok(Step::Sent(Box::new(sent)))
    }

    /// Whether a due audit is not sent (`Some(why)`): its job has no audit draw to decide
    /// (audits were off when it was requested, it is not deterministic, or the draw was
    /// recorded) or the draw passed it over and `settle` will read the draw itself
    /// ([`gate::settle_reads_the_draw`]), so it is done with; or its draw block does not exist
    /// yet, so it is due again a second later. `None`: `audit` is sent, which opens the audit or
    /// records that the draw passed it over (the draw's block hash is gone after 256 blocks, and
    /// with it the chance to pass).
    async fn audit_not_yet(
        &self,
        job: U256,
        request: B256,
        on_chain: &Lilypad::Job,
        now: u64,
    ) -> Result<Option<String>, SubmitError> {
        let chain = self.settings.chain_id;
        if on_chain.auditBps == 0 {
            self.store.done(chain, job, request, Action::Audit).await?;
            return Ok(Some("the job has no audit draw to decide".into()));
        }
        let state = self
            .lilypad()
            .auditState(job)
            .call()
            .await
            .map_err(|e| rpc(format!("auditState({job})"))(e.to_string()))?;
        match AuditState::from_u8(state) {
            Some(AuditState::None) => {
                self.store.done(chain, job, request, Action::Audit).await?;
                Ok(Some(
                    "the job's result is not waiting for an audit draw".into(),
                ))
            }
            Some(AuditState::Pending) => {
                self.store
                    .schedule(chain, job, request, Action::Audit, now + 1)
                    .await?;
                Ok(Some(
                    "the block that draws its audit does not exist yet".into(),
                ))
            }
            Some(AuditState::Clear) => {
                let (head, ms_per_block) = self.block_pace().await?;
                let seed_block = u64::from(on_chain.executionTimeout) + gate::AUDIT_SEED_DELAY;
                let deadline = on_chain.deadline.to::<u64>();
                let window = self.hash_window().await?;
                if gate::settle_reads_the_draw(
                    seed_block,
                    head,
                    ms_per_block,
                    now,
                    deadline,
                    window,
                ) {
                    self.store.done(chain, job, request, Action::Audit).await?;
                    return Ok(Some(
                        "the draw passed it over; settle reads the draw itself, well before its block hash is gone"
                            .into(),
                    ));
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// How many blocks back the contract reads an audit draw's hash here ([`gate::HISTORY_WINDOW`]
    /// when the chain has the history contract, else [`gate::BLOCKHASH_WINDOW`]).
    async fn hash_window(&self) -> Result<u64, SubmitError> {
        self.hash_window
            .get_or_try_init(|| async {
                let code = self
                    .provider
                    .get_code_at(gate::BLOCK_HISTORY)
                    .await
                    .map_err(|e| rpc("eth_getCode(history contract)")(e.to_string()))?;
                Ok(if code.is_empty() {
                    gate::BLOCKHASH_WINDOW
                } else {
                    gate::HISTORY_WINDOW
                })
            })
            .await
            .copied()
    }

    /// The head block's number and the chain's milliseconds per block over the last
    /// [`PACE_BLOCKS`] (0 when it cannot tell).
    async fn block_pace(&self) -> Result<(u64, u64), SubmitError> {
        let block = |number: BlockNumberOrTag| async move {
            self.provider
                .get_block_by_number(number)
                .await
                .map_err(|e| rpc(format!("eth_getBlockByNumber({number})"))(e.to_string()))
        };
        let Some(head) = block(BlockNumberOrTag::Latest).await? else {
            return Ok((0, 0));
        };
        let (number, time) = (head.header.number, head.header.timestamp);
        let back = number.min(PACE_BLOCKS);
        if back == 0 {
            return Ok((number, 0));
        }
        let Some(old) = block(BlockNumberOrTag::Number(number - back)).await? else {
            return Ok((number, 0));
        };
        let ms = time
            .saturating_sub(old.header.timestamp)
            .saturating_mul(1_000)
            / back;
        Ok((number, ms))
    }

    /// Records what follows a call from the job as it is on-chain (`on_chain`, read after the
    /// call may have landed), for the request it holds: the action the call made unneeded is done
    /// once the job is past the state that action needs, and the next one is scheduled at the
    /// job's deadline when the job is in its state. Idempotent, so a follow-up recorded twice (a
    /// landed transaction seen again) is harmless.
    async fn follow_up(
        &self,
        job: U256,
        after: After,
        on_chain: &Lilypad::Job,
    ) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        let (state, request) = (on_chain.state(), on_chain.requestHash);
        if state != Some(gate::needed(after.done)) {
            self.store.done(chain, job, request, after.done).await?;
        }
        if let Some(next) = after.next
            && state == Some(gate::needed(next))
        {
            let deadline = on_chain.deadline.to::<u64>();
            self.store
                .schedule(chain, job, request, next, deadline)
                .await?;
        }
        if after.audit && state == Some(JobStatus::ResultSubmitted) && on_chain.auditBps != 0 {
            self.store
                .schedule(chain, job, request, Action::Audit, 0)
                .await?;
        }
        Ok(())
    }

    /// Waits for a dispatched transaction and records what follows from it, at the deadline its
    /// own event names (read from the job only when the receipt has none).
    async fn complete(&self, sent: Sent) -> Result<Submitted, SubmitError> {
        let chain = self.settings.chain_id;
        let (job, request, after, call) = (sent.job, sent.request_hash, sent.after, sent.call);
        let input = sent.base.input.input().cloned().unwrap_or_default();
        let receipt = self.confirm(sent).await?;
        let Some(after) = after else {
            return Ok(Submitted::Landed(receipt.transaction_hash));
        };
        // Kept until deep (with the request it was sent for), so a reorganisation that undoes it
        // can be redone.
        self.keep_landed(job, call, input, &receipt, Some(request))
            .await;
        self.store.done(chain, job, request, after.done).await?;
        if let Some(next) = after.next {
            // The deadline the transaction's own event names; the job read only when it has none.
            let deadline = match new_deadline(receipt.inner.logs(), self.settings.lilypad, job) {
                Some(deadline) => deadline,
                None => self.job_state(job).await?.1,
            };
            self.store
                .schedule(chain, job, request, next, deadline)
                .await?;
        }
        // A job requested with audits on has a draw to decide (known from the job read before
        // sending; a result recovered from the pending records schedules it anyway, and the due
        // action reads the job before sending anything).
        if after.audit {
            self.store
                .schedule(chain, job, request, Action::Audit, 0)
                .await?;
        }
        Ok(Submitted::Landed(receipt.transaction_hash))
    }
}

/// The deadline `job` was given by the transaction whose receipt has `logs`: the execution
/// deadline of its `DealAgreed` or the challenge deadline of its `ResultSubmitted`, as emitted by
/// the Lilypad contract at `lilypad`. `None` when the receipt has neither for that job.
fn new_deadline(logs: &[alloy::rpc::types::Log], lilypad: Address, job: U256) -> Option<u64> {
    logs.iter()
        .filter(|log| log.address() == lilypad)
        .find_map(|log| {
            if let Ok(deal) = log.log_decode::<Lilypad::DealAgreed>() {
                let deal = deal.inner.data;
                return (deal.jobId == job).then_some(deal.executionDeadline);
            }
            let result = log
                .log_decode::<Lilypad::ResultSubmitted>()
                .ok()?
                .inner
                .data;
            (result.jobId == job).then_some(result.challengeDeadline)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{LogData, address};
    use alloy::sol_types::SolEvent;

    const LILYPAD: Address = address!("0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6");

    fn log(at: Address, data: LogData) -> alloy::rpc::types::Log {
        alloy::rpc::types::Log {
            inner: alloy::primitives::Log { address: at, data },
            ..Default::default()
        }
    }

    fn deal_agreed(job: u64, deadline: u64) -> LogData {
        Lilypad::DealAgreed {
            jobId: U256::from(job),
            provider: Address::ZERO,
            price: U256::ZERO,
            timeoutCollateral: U256::ZERO,
            resultsCollateral: U256::ZERO,
            executionDeadline: deadline,
        }
        .encode_log_data()
    }

    #[test]
    fn a_landed_deal_gives_its_execution_deadline_and_a_result_its_challenge_deadline() {
        let logs = [log(LILYPAD, deal_agreed(7, 1_000))];
        assert_eq!(new_deadline(&logs, LILYPAD, U256::from(7)), Some(1_000));
        let result = Lilypad::ResultSubmitted {
            jobId: U256::from(7),
            provider: Address::ZERO,
            result: Lilypad::ResultData {
                jobId: U256::from(7),
                status: 1,
                resultCid: Bytes::new(),
                exitCode: 0,
                error: String::new(),
            },
            output: Bytes::new(),
            challengeDeadline: 2_000,
        }
        .encode_log_data();
        let logs = [log(LILYPAD, result)];
        assert_eq!(new_deadline(&logs, LILYPAD, U256::from(7)), Some(2_000));
    }

    #[test]
    fn another_jobs_event_another_contracts_or_none_gives_no_deadline() {
        let other = log(LILYPAD, deal_agreed(8, 1_000));
        let elsewhere = log(Address::repeat_byte(1), deal_agreed(7, 1_000));
        assert_eq!(
            new_deadline(&[other, elsewhere], LILYPAD, U256::from(7)),
            None
        );
        assert_eq!(new_deadline(&[], LILYPAD, U256::from(7)), None);
    }
}
