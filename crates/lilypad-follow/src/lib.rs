//! Following a contract's numbered events without missing one: what the relayer's indexer (the
//! `JobRequested` events of Lilypad, cursor in Redis) and the mediator (the `MediationStarted`
//! events of ConsortiumMediation, cursor in its state directory) both do, written once.
//!
//! A [`Followed`] says how to read the chain (head, finalized block, block hashes, the contract's
//! event count at a block, the events of a block range), where the [`Cursor`] is kept (read, and
//! moved by compare-and-set), and what to do with the events of a chunk. [`pass`] then reads
//! from the cursor up to the confirmed head (see [`Confirmations`]) in chunks of at most
//! [`FollowSettings::log_chunk_size`] blocks, hands each chunk's events over and only then moves
//! the cursor past it.
//!
//! Completeness: for a chunk `from..=to`, the events returned must be exactly
//! `count(to) - count(from - 1)` (and, for events that carry their sequence number, exactly the
//! numbers `count(from - 1) + 1 ..= count(to)`), where `count(n)` is the contract's own counter
//! read at block `n`. A node that drops a log cannot go unnoticed; the chunk fails with
//! [`Incomplete`] and is read again next pass.
//!
//! Reorganisations: the cursor keeps the hash of its block. When the chain's block at that height
//! has another hash, the cursor is moved back [`FollowSettings::reorg_rewind`] blocks (to a block
//! whose hash is re-read, with the count there), [`Followed::reorganised`] is told, and those
//! blocks are read again. Handlers must therefore accept an event twice.

use std::future::Future;

pub mod retry;

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

pub use lilypad_config::Confirmations;

/// Where a follower has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last block whose events are all handled.
    pub block: u64,
    /// That block's hash, to notice a reorganisation below the cursor.
    pub hash: B256,
    /// The contract's event count at that block (0 before the first event).
    pub sequence: u64,
}

/// How a contract's events are followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    /// How far behind the head to read.
    pub confirmations: Confirmations,
    /// First block to read when there is no cursor yet (the deployment block).
    pub start_block: u64,
    /// Most blocks per `eth_getLogs`.
    pub log_chunk_size: u64,
    /// How many blocks to go back when a reorganisation is noticed below the cursor.
    pub reorg_rewind: u64,
}

impl FollowSettings {
    /// Reading from `start_block`, `confirmations` behind the head, with the chains file's default
    /// chunk size and rewind.
    pub fn new(start_block: u64, confirmations: Confirmations) -> Self {
        Self {
            confirmations,
            start_block,
            log_chunk_size: lilypad_config::defaults::LOG_CHUNK_SIZE,
            reorg_rewind: lilypad_config::defaults::REORG_REWIND,
        }
    }

    /// How chains.toml says to follow `chain`: its confirmations, chunk size and rewind, from its
    /// deployment block (`deployment_block`, when the deployment names one) or its
    /// `start_block`, whichever is later.
    pub fn for_chain(chain: &lilypad_config::ChainConfig, deployment_block: Option<u64>) -> Self {
        Self {
            confirmations: chain.confirmations,
            start_block: chain.start_block.max(deployment_block.unwrap_or(0)),
            log_chunk_size: chain.log_chunk_size,
            reorg_rewind: chain.reorg_rewind,
        }
    }
}

/// A chunk whose events do not match the contract's count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "blocks {from}..={to}: expected event sequences {expected_first}..={expected_last}, the node returned {got:?}; retrying (is the RPC endpoint dropping logs?)"
)]
pub struct Incomplete {
    /// First block of the chunk.
    pub from: u64,
    /// Last block of the chunk.
    pub to: u64,
    /// First sequence expected.
    pub expected_first: u64,
    /// Last sequence expected.
    pub expected_last: u64,
    /// The sequences that came back (for events without one, 1-based positions in the chunk,
    /// offset like the expected ones).
    pub got: Vec<u64>,
}

/// What [`pass`] needs: the chain's reads, the cursor's storage and the events' handling.
pub trait Followed: Send + Sync {
    /// One event.
    type Event: Send + Sync;
    /// Why a read, a handling or a cursor move failed (an incomplete chunk included).
    type Error: From<Incomplete> + Send;

    /// The chain's latest block number.
    fn head(&self) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// The latest finalized block number.
    fn finalized(&self) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// The hash of block `number` as the node sees it now.
    fn block_hash(&self, number: u64) -> impl Future<Output = Result<B256, Self::Error>> + Send;
    /// The contract's event count as of the end of block `number` (0 before its deployment).
    fn count_at(&self, number: u64) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// Every event in blocks `from..=to`, in order.
    fn events(
        &self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<Self::Event>, Self::Error>> + Send;
    /// The event's own sequence number, if it carries one (the count just after it).
    fn sequence(event: &Self::Event) -> Option<u64>;

    /// The stored cursor, if following has started.
    fn cursor(&self) -> impl Future<Output = Result<Option<Cursor>, Self::Error>> + Send;
    /// Moves the stored cursor from `expected` to `next`; false, changing nothing, when the stored
    /// one is not `expected` (another follower moved it).
    fn advance_cursor(
        &self,
        expected: Option<&Cursor>,
        next: &Cursor,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    /// A reorganisation below the cursor was found and the cursor moved back.
    fn reorganised(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Handles the events of one chunk (complete, in order) before the cursor moves past them.
    /// Returns how many of them it had handled before (an event is handed over again after a
    /// rewind or a failed pass).
    fn handle(
        &self,
        events: &[Self::Event],
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;
}

/// What one [`pass`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events handed over.
    pub handled: u64,
    /// Of those, how many the handler had already.
    pub duplicates: u64,
    /// The cursor after the pass.
    pub cursor: Option<Cursor>,
    /// The block the chain's confirmed head was at.
    pub target: u64,
    /// Set when a reorganisation below the cursor was found and the cursor moved back.
    pub rewound_from: Option<u64>,
}

/// The last block to read: `confirmations` below the head, or the finalized block.
pub async fn target<F: Followed>(f: &F, confirmations: Confirmations) -> Result<u64, F::Error> {
    match confirmations {
        Confirmations::Blocks(n) => Ok(f.head().await?.saturating_sub(n)),
        Confirmations::Finalized => f.finalized().await,
    }
}

/// One pass: everything from the cursor up to the confirmed head, chunk by chunk. An error leaves
/// the cursor after the last chunk fully handled; the next pass goes on from there.
pub async fn pass<F: Followed>(f: &F, settings: &FollowSettings) -> Result<Progress, F::Error> {
    let target = target(f, settings.confirmations).await?;
    let mut cursor = f.cursor().await?;
    let mut progress = Progress {
        target,
        cursor,
        ..Progress::default()
    };

    if let Some(c) = cursor {
        let now = f.block_hash(c.block).await?;
        if now != c.hash {
            let back = c.block.saturating_sub(settings.reorg_rewind);
            let rewound = Cursor {
                block: back,
                hash: f.block_hash(back).await?,
                sequence: f.count_at(back).await?,
            };
            tracing::warn!(
                cursor = c.block,
                rewind_to = back,
                confirmations = ?settings.confirmations,
                "reorganisation deeper than `confirmations` (below the cursor): block {} changed hash; reading again from block {}",
                c.block,
                back + 1
            );
            if !f.advance_cursor(Some(&c), &rewound).await? {
                return Ok(progress); // another follower moved it: start over next pass
            }
            f.reorganised().await?;
            cursor = Some(rewound);
            progress.cursor = cursor;
            progress.rewound_from = Some(c.block);
        }
    }

    let (mut from, mut sequence) = match cursor {
        Some(c) => (c.block + 1, c.sequence),
        None if settings.start_block == 0 => (0, 0),
        None => (
            settings.start_block,
            f.count_at(settings.start_block - 1).await?,
        ),
    };
    let chunk = settings.log_chunk_size.max(1);
    while from <= target {
        let to = target.min(from.saturating_add(chunk - 1));
        let events = f.events(from, to).await?;
        let count = f.count_at(to).await?;
        let got: Vec<u64> = events
            .iter()
            .zip(sequence + 1..)
            .map(|(e, position)| F::sequence(e).unwrap_or(position))
            .collect();
        let complete = got.len() as u64 == count.saturating_sub(sequence)
            && got.iter().zip(sequence + 1..).all(|(s, want)| *s == want);
        if !complete {
            return Err(Incomplete {
                from,
                to,
                expected_first: sequence + 1,
                expected_last: count,
                got,
            }
            .into());
        }
        if !events.is_empty() {
            progress.duplicates += f.handle(&events).await?;
            progress.handled += events.len() as u64;
        }
        let next = Cursor {
            block: to,
            hash: f.block_hash(to).await?,
            sequence: count,
        };
        if !f.advance_cursor(cursor.as_ref(), &next).await? {
            // Another follower moved the cursor; what we handled is deduplicated downstream.
            progress.cursor = f.cursor().await?;
            return Ok(progress);
        }
        cursor = Some(next);
        progress.cursor = cursor;
        sequence = count;
        from = to + 1;
    }
    Ok(progress)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A chain of `blocks` blocks with one event in each block listed in `events`; `drop` is an
    /// event the node "loses".
    #[derive(Default)]
    struct Fake {
        head: u64,
        events: Vec<u64>,
        drop: Option<u64>,
        fork: u8,
        cursor: Mutex<Option<Cursor>>,
        handled: Mutex<Vec<u64>>,
        reads: Mutex<Vec<(u64, u64)>>,
    }

    #[derive(Debug, PartialEq)]
    enum Error {
        Incomplete(Incomplete),
    }

    impl From<Incomplete> for Error {
        fn from(e: Incomplete) -> Self {
            Self::Incomplete(e)
        }
    }

    impl Followed for Fake {
        type Event = u64;
        type Error = Error;
        async fn head(&self) -> Result<u64, Error> {
            Ok(self.head)
        }
        async fn finalized(&self) -> Result<u64, Error> {
            Ok(self.head / 2)
        }
        async fn block_hash(&self, number: u64) -> Result<B256, Error> {
            Ok(B256::with_last_byte(number as u8 ^ self.fork))
        }
        async fn count_at(&self, number: u64) -> Result<u64, Error> {
            Ok(self.events.iter().filter(|b| **b <= number).count() as u64)
        }
        async fn events(&self, from: u64, to: u64) -> Result<Vec<u64>, Error> {
            self.reads.lock().unwrap().push((from, to));
            Ok(self
                .events
                .iter()
                .copied()
                .filter(|b| (from..=to).contains(b) && Some(*b) != self.drop)
                .collect())
        }
        fn sequence(_: &u64) -> Option<u64> {
            None
        }
        async fn cursor(&self) -> Result<Option<Cursor>, Error> {
            Ok(*self.cursor.lock().unwrap())
        }
        async fn advance_cursor(
            &self,
            expected: Option<&Cursor>,
            next: &Cursor,
        ) -> Result<bool, Error> {
            let mut c = self.cursor.lock().unwrap();
            if c.as_ref() != expected {
                return Ok(false);
            }
            *c = Some(*next);
            Ok(true)
        }
        async fn reorganised(&self) -> Result<(), Error> {
            Ok(())
        }
        async fn handle(&self, events: &[u64]) -> Result<u64, Error> {
            let mut seen = self.handled.lock().unwrap();
            let dup = events.iter().filter(|e| seen.contains(e)).count() as u64;
            seen.extend_from_slice(events);
            Ok(dup)
        }
    }

    #[test]
    fn a_chain_is_followed_from_its_deployment_unless_its_start_block_is_later() {
        let config = |start: &str| {
            lilypad_config::ChainsConfig::parse(
                &format!(
                    "[[chains]]\nname = \"dev\"\nchain_id = 31337\nrpc = \"http://127.0.0.1:8545\"\n\
                     deployment = \"deploy.json\"\nconfirmations = 3\nlog_chunk_size = 50\n\
                     reorg_rewind = 7\nsigner = {{ env = \"K\" }}\n{start}"
                ),
                std::path::Path::new("/nonexistent/chains.toml"),
                &Default::default(),
            )
            .unwrap()
        };
        let plain = config("");
        let follow = FollowSettings::for_chain(&plain.chains[0], Some(120));
        assert_eq!(follow.start_block, 120, "from the deployment block");
        assert_eq!(follow.confirmations, Confirmations::Blocks(3));
        assert_eq!((follow.log_chunk_size, follow.reorg_rewind), (50, 7));
        let later = config("start_block = 500\n");
        let follow = FollowSettings::for_chain(&later.chains[0], Some(120));
        assert_eq!(follow.start_block, 500, "a later start_block wins");
        assert_eq!(
            FollowSettings::for_chain(&later.chains[0], None).start_block,
            500
        );
    }

    fn settings(confirmations: u64, chunk: u64) -> FollowSettings {
        FollowSettings {
            confirmations: Confirmations::Blocks(confirmations),
            start_block: 1,
            log_chunk_size: chunk,
            reorg_rewind: 4,
        }
    }

    #[tokio::test]
    async fn reads_in_chunks_up_to_the_confirmed_head_and_moves_the_cursor() {
        let f = Fake {
            head: 25,
            events: vec![2, 9, 10, 17, 24],
            ..Fake::default()
        };
        let p = pass(&f, &settings(2, 10)).await.unwrap();
        assert_eq!(p.handled, 4, "block 24 is not confirmed yet");
        assert_eq!(p.cursor.unwrap().block, 23);
        assert_eq!(p.cursor.unwrap().sequence, 4);
        assert_eq!(*f.reads.lock().unwrap(), [(1, 10), (11, 20), (21, 23)]);
    }

    #[tokio::test]
    async fn a_dropped_log_fails_the_chunk_and_leaves_the_cursor_before_it() {
        let f = Fake {
            head: 30,
            events: vec![3, 15],
            drop: Some(15),
            ..Fake::default()
        };
        let err = pass(&f, &settings(0, 10)).await.unwrap_err();
        let Error::Incomplete(i) = err;
        assert_eq!(
            (i.from, i.to, i.expected_first, i.expected_last),
            (11, 20, 2, 2)
        );
        assert_eq!(f.cursor.lock().unwrap().unwrap().block, 10);
    }

    #[tokio::test]
    async fn a_changed_cursor_block_rewinds_and_hands_events_over_again() {
        let mut f = Fake {
            head: 20,
            events: vec![18],
            ..Fake::default()
        };
        pass(&f, &settings(0, 100)).await.unwrap();
        f.fork = 0xff;
        let p = pass(&f, &settings(0, 100)).await.unwrap();
        assert_eq!(p.rewound_from, Some(20));
        assert_eq!((p.handled, p.duplicates), (1, 1));
    }
}
