//! The per-chain indexer: reads `JobRequested` events up to the confirmed head in bounded chunks,
//! proves it saw every request by the contract's own count, publishes each to the jobs stream and
//! only then moves its cursor in Redis.
//!
//! Completeness: for a chunk `from..=to`, the requests returned must carry exactly the sequence
//! numbers `count(from - 1) + 1 ..= count(to)`, where `count(n)` is the contract's `requestCount()`
//! read at block `n`. A node that drops a log cannot go unnoticed; the chunk is retried.
//!
//! Each published request is also scheduled in Redis to be expired at its match deadline, so the
//! relayer expires it itself if no deal comes (the submitter checks the job on-chain first).
//!
//! The reading, chunking, completeness check and reorganisation handling are
//! [`lilypad_follow::pass`], which the mediator uses too; this module says where the cursor lives
//! (Redis) and what is done with a chunk's requests (published, their expiry scheduled).
//!
//! Reorganisations: the cursor keeps the hash of its block. When the chain's block at that height
//! has another hash, the cursor is moved back [`FollowSettings::reorg_rewind`] blocks (to a block
//! whose hash is re-read, with the count there) and those blocks are indexed again. Requests that
//! survive the reorg in their block are the same messages and are deduplicated by the stream
//! (message id `<chainId>:<jobId>:<requestHash>:<blockHash>`); requests that the reorg replaced
//! are in other blocks (and mostly carry another request hash) and are published anew, even an
//! identical request re-made under the same job id. Consumers check a job on-chain before acting
//! on it. Each reorganisation noticed is counted in Redis
//! ([`lilypad_store::Store::note_reorg`]), and the chain's submitter then re-checks at once what it
//! landed and sends again what the chain no longer has (see [`crate::submitter::reorg`]).

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use alloy::primitives::B256;
use lilypad_bus::{Bus, BusError, Topic};
pub use lilypad_follow::FollowSettings;
use lilypad_follow::Followed;
use lilypad_store::{Action, Cursor, Store, StoreError};
use lilypad_types::JobRequested;

use crate::chain::{ChainError, ChainSource};

/// How one chain is indexed.
#[derive(Debug, Clone)]
pub struct IndexerSettings {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// How the chain is followed: confirmations, first block, chunk size, reorg rewind.
    pub follow: FollowSettings,
}

/// Why a pass over a chain stopped early. The next pass retries from the cursor.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The node returned a set of requests that does not match the contract's count.
    #[error(
        "blocks {from}..={to}: expected request sequences {expected_first}..={expected_last}, the node returned {got:?}; retrying (is the RPC endpoint dropping logs?)"
    )]
    Incomplete {
        /// First block of the chunk.
        from: u64,
        /// Last block of the chunk.
        to: u64,
        /// First sequence expected.
        expected_first: u64,
        /// Last sequence expected.
        expected_last: u64,
        /// What came back.
        got: Vec<u64>,
    },
}

impl From<lilypad_follow::Incomplete> for IndexError {
    fn from(i: lilypad_follow::Incomplete) -> Self {
        Self::Incomplete {
            from: i.from,
            to: i.to,
            expected_first: i.expected_first,
            expected_last: i.expected_last,
            got: i.got,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Requests published (duplicates the stream dropped included).
    pub published: u64,
    /// Of those, how many the stream already had.
    pub duplicates: u64,
    /// The cursor after the pass.
    pub cursor: Option<Cursor>,
    /// The block the chain's confirmed head was at.
    pub target: u64,
    /// Set when a reorganisation below the cursor was found and the cursor moved back.
    pub rewound_from: Option<u64>,
}

/// Indexes one chain.
#[derive(Debug)]
pub struct Indexer<C> {
    settings: IndexerSettings,
    chain: C,
    store: Store,
    bus: Bus,
}

impl<C: ChainSource> Followed for Indexer<C> {
    type Event = JobRequested;
    type Error = IndexError;

    async fn head(&self) -> Result<u64, IndexError> {
        Ok(self.chain.head().await?)
    }

    async fn finalized(&self) -> Result<u64, IndexError> {
        Ok(self.chain.finalized().await?)
    }

    async fn block_hash(&self, number: u64) -> Result<B256, IndexError> {
        Ok(self.chain.block_hash(number).await?)
    }

    async fn count_at(&self, number: u64) -> Result<u64, IndexError> {
        Ok(self.chain.request_count_at(number).await?)
    }

    async fn events(&self, from: u64, to: u64) -> Result<Vec<JobRequested>, IndexError> {
        Ok(self.chain.requests(from, to).await?)
    }

    fn sequence(request: &JobRequested) -> Option<u64> {
        Some(request.sequence)
    }

    async fn cursor(&self) -> Result<Option<Cursor>, IndexError> {
        Ok(self.store.cursor(self.settings.chain_id).await?)
    }

    async fn advance_cursor(
        &self,
        expected: Option<&Cursor>,
        next: &Cursor,
    ) -> Result<bool, IndexError> {
        Ok(self
            .store
            .advance_cursor(self.settings.chain_id, expected, next)
            .await?)
    }

    async fn reorganised(&self) -> Result<(), IndexError> {
        // The submitters re-check what they landed (see `submitter::reorg`).
        self.store.note_reorg(self.settings.chain_id).await?;
        Ok(())
    }

    /// Publishes each request to the jobs stream and schedules its expiry at its match deadline
    /// (the relayer expires the job itself if no deal comes).
    async fn handle(&self, requests: &[JobRequested]) -> Result<u64, IndexError> {
        let id = self.settings.chain_id;
        let mut duplicates = 0;
        let mut timestamp = None;
        for request in requests {
            let published = self
                .bus
                .publish(Topic::Jobs, id, &request.msg_id(), request)
                .await?;
            let ts = match timestamp {
                Some((block, ts)) if block == request.block_number => ts,
                _ => {
                    let ts = self.chain.block_timestamp(request.block_number).await?;
                    timestamp = Some((request.block_number, ts));
                    ts
                }
            };
            let deadline = ts + u64::from(request.spec.match_timeout);
            self.store
                .schedule(
                    id,
                    request.key.job_id,
                    request.request_hash,
                    Action::Expire,
                    deadline,
                )
                .await?;
            duplicates += u64::from(published.duplicate);
            tracing::info!(
                chain = id,
                job = %request.job_ref(),
                sequence = request.sequence,
                block = request.block_number,
                duplicate = published.duplicate,
                "job request published"
            );
        }
        Ok(duplicates)
    }
}

impl<C: ChainSource> Indexer<C> {
    /// An indexer for one chain.
    pub fn new(settings: IndexerSettings, chain: C, store: Store, bus: Bus) -> Self {
        Self {
            settings,
            chain,
            store,
            bus,
        }
    }

    /// The chain it reads.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// How many blocks the chain's head is ahead of `block` (0 when the head cannot be read).
    async fn head_lag(&self, block: u64) -> u64 {
        self.chain
            .head()
            .await
            .map_or(0, |h| h.saturating_sub(block))
    }

    /// One pass: index everything from the cursor up to the confirmed head, chunk by chunk
    /// ([`lilypad_follow::pass`]). Returns what it did; an error leaves the cursor after the last
    /// chunk fully published.
    pub async fn pass(&self) -> Result<Pass, IndexError> {
        let progress = lilypad_follow::pass(self, &self.settings.follow).await?;
        Ok(Pass {
            published: progress.handled,
            duplicates: progress.duplicates,
            cursor: progress.cursor,
            target: progress.target,
            rewound_from: progress.rewound_from,
        })
    }

    /// Runs passes every `poll` until `stop` is cancelled. A failing pass is logged and retried with
    /// exponential backoff and jitter (up to one minute, see [`crate::retry`]), so a chain whose RPC is down is reported and
    /// retried while the caller's other chains carry on.
    pub async fn run(
        &self,
        poll: Duration,
        health: crate::health::Health,
        name: &str,
        stop: CancellationToken,
    ) {
        let chain = self.settings.chain_id.to_string();
        let mut backoff = crate::retry::Backoff::new(poll);
        loop {
            let wait = match self.pass().await {
                Ok(pass) => {
                    health.indexed(name);
                    metrics::counter!("lilypad_events_indexed_total", "chain" => chain.clone())
                        .increment(pass.published - pass.duplicates);
                    if let Some(c) = pass.cursor {
                        let lag = self.head_lag(c.block).await;
                        metrics::gauge!("lilypad_chain_head_lag_blocks", "chain" => chain.clone())
                            .set(lag as f64);
                    }
                    backoff.reset();
                    poll
                }
                Err(e) => {
                    health.failed(name, &format!("indexing: {e}"));
                    metrics::counter!("lilypad_failures_total", "chain" => chain.clone(), "stage" => "index")
                        .increment(1);
                    let wait = backoff.next_delay();
                    tracing::error!(chain = self.settings.chain_id, error = %e, retry_in = ?wait, "indexing failed");
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
