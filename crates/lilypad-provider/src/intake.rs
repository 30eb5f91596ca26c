//! The mediator's event intake and its retries.
//!
//! Intake: the mediation's `MediationStarted` events are read the way the relayer reads
//! `JobRequested` ones, by the same code ([`lilypad_follow::pass`]): up to the confirmed head, in
//! chunks of at most `log_chunk_size` blocks, each chunk checked against the contract's own
//! count (`ConsortiumMediation.casesOpened()` at the chunk's last block), the cursor moved back
//! when the block under it changed hash. The cursor and the cases still followed are kept in the
//! mediator's state directory ([`CaseStore`], one atomically written file per chain), not in
//! Redis: a mediator has no Redis, its votes are already there, and one mediator process owns its
//! file. A restarted mediator resumes from that cursor with the cases it still had open.
//!
//! Retries: a case whose step failed for a passing reason (transport error, RPC fault, its own
//! re-run failing) is tried again after a backoff ([`lilypad_follow::retry`]: from one second,
//! doubling with jitter up to a minute) for as long as the case is open, that is until its
//! deadlines have passed and it was closed; each round re-reads the case, so a step whose phase
//! is over is not tried again. A step the contract refused (a revert decoded by name) is not
//! retried as such: the next round reads the case again and takes the step it is in.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use lilypad_bindings::ConsortiumMediation;
use lilypad_follow::retry::Backoff;
use lilypad_follow::{Cursor, FollowSettings, Followed, Incomplete, Progress};

use crate::state::{CaseFile, CaseStore, StateError};

/// The first wait before a failed step is tried again.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Why the mediator could not read new cases (the next round tries again from its cursor).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// An RPC call failed.
    #[error("chain {chain_id}: {what} failed: {reason} (retried next round)")]
    Rpc {
        /// The chain.
        chain_id: u64,
        /// What was asked.
        what: String,
        /// The transport's or node's error.
        reason: String,
    },
    /// A block the intake needs is not known to the node.
    #[error("chain {chain_id}: block {block} is not known to the RPC endpoint")]
    MissingBlock {
        /// The chain.
        chain_id: u64,
        /// The block.
        block: u64,
    },
    /// The node returned fewer (or more) `MediationStarted` events than the contract counted.
    #[error("MediationStarted events: {0}")]
    Incomplete(#[from] Incomplete),
    /// The case file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A mediator's cases on one chain: the persisted cursor and open set, and the retry schedule.
#[derive(Debug)]
pub struct Intake {
    chain_id: u64,
    mediation: Address,
    follow: FollowSettings,
    store: CaseStore,
    file: Mutex<CaseFile>,
    retry: Mutex<BTreeMap<U256, (Instant, Backoff)>>,
}

impl Intake {
    /// The intake kept in `store`, reading from `follow.start_block` when it has no cursor yet.
    pub fn open(
        chain_id: u64,
        mediation: Address,
        follow: FollowSettings,
        store: CaseStore,
    ) -> Result<Self, StateError> {
        let file = store.load()?;
        Ok(Self {
            chain_id,
            mediation,
            follow,
            store,
            file: Mutex::new(file),
            retry: Mutex::default(),
        })
    }

    /// How the events are read.
    pub fn settings(&self) -> &FollowSettings {
        &self.follow
    }

    /// The cursor as stored.
    pub fn cursor(&self) -> Option<Cursor> {
        self.file.lock().ok().and_then(|f| f.cursor)
    }

    /// The open cases that are not waiting out a backoff.
    pub fn due(&self) -> Vec<U256> {
        let open: Vec<U256> = self
            .file
            .lock()
            .map(|f| f.open.iter().copied().collect())
            .unwrap_or_default();
        let now = Instant::now();
        let Ok(retry) = self.retry.lock() else {
            return open;
        };
        open.into_iter()
            .filter(|job| retry.get(job).is_none_or(|(at, _)| *at <= now))
            .collect()
    }

    /// Reads new cases up to the confirmed head ([`lilypad_follow::pass`]).
    pub async fn pass(&self, rpc: &DynProvider) -> Result<Progress, IntakeError> {
        let reader = Reader { intake: self, rpc };
        lilypad_follow::pass(&reader, &self.follow).await
    }

    /// The case is over for this mediator: it is no longer followed.
    pub fn drop_case(&self, job: U256) -> Result<(), StateError> {
        if let Ok(mut r) = self.retry.lock() {
            r.remove(&job);
        }
        let Ok(mut file) = self.file.lock() else {
            return Ok(());
        };
        if file.open.remove(&job) {
            self.store.save(&file)?;
        }
        Ok(())
    }

    /// A step of `job` succeeded (or there was nothing to do): no backoff.
    pub fn succeeded(&self, job: U256) {
        if let Ok(mut r) = self.retry.lock() {
            r.remove(&job);
        }
    }

    /// A step of `job` failed for a passing reason: returns how long until it is tried again.
    pub fn failed(&self, job: U256) -> Duration {
        let Ok(mut r) = self.retry.lock() else {
            return FIRST_RETRY;
        };
        let (at, backoff) = r
            .entry(job)
            .or_insert_with(|| (Instant::now(), Backoff::new(FIRST_RETRY)));
        let wait = backoff.next_delay();
        *at = Instant::now() + wait;
        wait
    }
}

/// The chain side of [`Intake`]: what [`lilypad_follow::pass`] reads and where it keeps the
/// cursor.
struct Reader<'a> {
    intake: &'a Intake,
    rpc: &'a DynProvider,
}

impl Reader<'_> {
    fn rpc_err(&self, what: impl Into<String>) -> impl FnOnce(String) -> IntakeError {
        let (chain_id, what) = (self.intake.chain_id, what.into());
        move |reason| IntakeError::Rpc {
            chain_id,
            what,
            reason,
        }
    }

    async fn block(&self, tag: BlockNumberOrTag) -> Result<Option<(u64, B256)>, IntakeError> {
        let block = self
            .rpc
            .get_block_by_number(tag)
            .await
            .map_err(|e| self.rpc_err(format!("eth_getBlockByNumber({tag})"))(e.to_string()))?;
        Ok(block.map(|b| (b.header.number, b.header.hash)))
    }
}

impl Followed for Reader<'_> {
    type Event = U256;
    type Error = IntakeError;

    async fn head(&self) -> Result<u64, IntakeError> {
        self.rpc
            .get_block_number()
            .await
            .map_err(|e| self.rpc_err("eth_blockNumber")(e.to_string()))
    }

    async fn finalized(&self) -> Result<u64, IntakeError> {
        Ok(self
            .block(BlockNumberOrTag::Finalized)
            .await?
            .map_or(0, |(n, _)| n))
    }

    async fn block_hash(&self, number: u64) -> Result<B256, IntakeError> {
        self.block(BlockNumberOrTag::Number(number))
            .await?
            .map(|(_, hash)| hash)
            .ok_or(IntakeError::MissingBlock {
                chain_id: self.intake.chain_id,
                block: number,
            })
    }

    async fn count_at(&self, number: u64) -> Result<u64, IntakeError> {
        let mediation = ConsortiumMediation::new(self.intake.mediation, self.rpc);
        match mediation.casesOpened().block(number.into()).call().await {
            Ok(count) => Ok(u64::from(count)),
            Err(e) => {
                // Before the contract was deployed no case was opened.
                let code = self
                    .rpc
                    .get_code_at(self.intake.mediation)
                    .number(number)
                    .await
                    .map_err(|e| {
                        self.rpc_err(format!("eth_getCode at block {number}"))(e.to_string())
                    })?;
                if code.is_empty() {
                    Ok(0)
                } else {
                    Err(self.rpc_err(format!("casesOpened() at block {number}"))(
                        e.to_string(),
                    ))
                }
            }
        }
    }

    async fn events(&self, from: u64, to: u64) -> Result<Vec<U256>, IntakeError> {
        let mediation = ConsortiumMediation::new(self.intake.mediation, self.rpc);
        let mut events = mediation
            .MediationStarted_filter()
            .from_block(from)
            .to_block(to)
            .query()
            .await
            .map_err(|e| {
                self.rpc_err(format!("eth_getLogs(MediationStarted, {from}..={to})"))(e.to_string())
            })?;
        events.sort_by_key(|(_, log)| (log.block_number, log.log_index));
        Ok(events.into_iter().map(|(ev, _)| ev.jobId).collect())
    }

    fn sequence(_: &U256) -> Option<u64> {
        None // the count check covers them
    }

    async fn cursor(&self) -> Result<Option<Cursor>, IntakeError> {
        Ok(self.intake.cursor())
    }

    async fn advance_cursor(
        &self,
        expected: Option<&Cursor>,
        next: &Cursor,
    ) -> Result<bool, IntakeError> {
        let Ok(mut file) = self.intake.file.lock() else {
            return Ok(false);
        };
        if file.cursor.as_ref() != expected {
            return Ok(false);
        }
        let mut updated = file.clone();
        updated.cursor = Some(*next);
        self.intake.store.save(&updated)?;
        *file = updated;
        Ok(true)
    }

    async fn reorganised(&self) -> Result<(), IntakeError> {
        Ok(())
    }

    /// The cases are followed from now on (saved with the cursor that moves past them).
    async fn handle(&self, jobs: &[U256]) -> Result<u64, IntakeError> {
        let Ok(mut file) = self.intake.file.lock() else {
            return Ok(0);
        };
        let mut duplicates = 0;
        for job in jobs {
            duplicates += u64::from(!file.open.insert(*job));
        }
        Ok(duplicates)
    }
}
