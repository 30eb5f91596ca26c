//! The indexer's guarantees, with a scripted chain (so reorganisations and lying nodes can be
//! staged exactly) and real Redis and NATS. `tests/anvil.rs` runs it against a real chain.

// Helpers below are test code too, outside #[test] functions.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use lilypad_bus::Bus;
use lilypad_config::Confirmations;
use lilypad_relayer::chain::{ChainError, ChainSource};
use lilypad_relayer::indexer::{FollowSettings, IndexError, Indexer, IndexerSettings};
use lilypad_store::Store;
use lilypad_testkit::Backends;
use lilypad_types::{JobKey, JobRequested, JobSpec};

const CHAIN: u64 = 31337;

#[derive(Default)]
struct State {
    /// Per block: its hash and the requests in it.
    blocks: Vec<(B256, Vec<JobRequested>)>,
    /// Sequences the "node" leaves out of eth_getLogs answers.
    dropped: Vec<u64>,
    down: bool,
    fork: u8,
}

#[derive(Default)]
struct ScriptedChain(Mutex<State>);

fn request(sequence: u64, block: u64, fork: u8) -> JobRequested {
    JobRequested {
        key: JobKey {
            chain_id: CHAIN,
            job_id: U256::from(sequence),
        },
        lilypad: Address::repeat_byte(0x11),
        sequence,
        client: Address::repeat_byte(0x22),
        request_hash: keccak256([sequence as u8, fork]),
        block_number: block,
        block_hash: B256::ZERO,
        tx_hash: B256::ZERO,
        spec: JobSpec {
            module: "cowsay".into(),
            version: "v1".into(),
            module_id: Default::default(),
            deterministic: false,
            inputs: vec![],
            max_price: U256::from(100),
            match_timeout: 60,
            execution_timeout: 60,
            callback_gas_limit: 0,
            max_output_bytes: 0,
            results_collateral_multiplier_bps: 0,
            challenge_window: 0,
            ..Default::default()
        },
    }
}

impl ScriptedChain {
    /// Mines one block holding `n` new requests.
    fn mine(&self, n: usize) {
        let mut s = self.0.lock().expect("scripted chain state");
        let number = s.blocks.len() as u64;
        let mut next = s.blocks.iter().map(|(_, r)| r.len() as u64).sum::<u64>() + 1;
        let fork = s.fork;
        let reqs = (0..n)
            .map(|_| {
                next += 1;
                request(next - 1, number, fork)
            })
            .collect();
        s.blocks.push((
            keccak256([number.to_be_bytes().as_slice(), &[fork]].concat()),
            reqs,
        ));
    }

    /// Drops the last `depth` blocks and continues on another fork.
    fn reorg(&self, depth: usize) {
        let mut s = self.0.lock().expect("scripted chain state");
        let keep = s.blocks.len() - depth;
        s.blocks.truncate(keep);
        s.fork += 1;
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.0.lock().expect("scripted chain state"));
    }

    fn check_up(&self) -> Result<(), ChainError> {
        if self.0.lock().expect("scripted chain state").down {
            Err(ChainError::Rpc {
                op: "eth_blockNumber".into(),
                reason: "connection refused".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl ChainSource for &ScriptedChain {
    async fn head(&self) -> Result<u64, ChainError> {
        self.check_up()?;
        Ok(self.0.lock().expect("scripted chain state").blocks.len() as u64 - 1)
    }
    async fn finalized(&self) -> Result<u64, ChainError> {
        Ok(self.head().await?.saturating_sub(10))
    }
    async fn block_hash(&self, n: u64) -> Result<B256, ChainError> {
        self.check_up()?;
        let s = self.0.lock().expect("scripted chain state");
        s.blocks
            .get(n as usize)
            .map(|b| b.0)
            .ok_or(ChainError::MissingBlock(n))
    }
    async fn block_timestamp(&self, n: u64) -> Result<u64, ChainError> {
        self.check_up()?;
        Ok(1_000 + 12 * n)
    }
    async fn request_count_at(&self, n: u64) -> Result<u64, ChainError> {
        self.check_up()?;
        let s = self.0.lock().expect("scripted chain state");
        Ok(s.blocks
            .iter()
            .take(n as usize + 1)
            .map(|b| b.1.len() as u64)
            .sum())
    }
    async fn requests(&self, from: u64, to: u64) -> Result<Vec<JobRequested>, ChainError> {
        self.check_up()?;
        let s = self.0.lock().expect("scripted chain state");
        Ok(s.blocks[from as usize..=to as usize]
            .iter()
            .flat_map(|b| b.1.clone())
            .filter(|r| !s.dropped.contains(&r.sequence))
            .collect())
    }
}

async fn env() -> Backends {
    Backends::start().await
}

fn settings(confirmations: u64) -> IndexerSettings {
    IndexerSettings {
        chain_id: CHAIN,
        follow: FollowSettings {
            confirmations: Confirmations::Blocks(confirmations),
            start_block: 0,
            log_chunk_size: 3,
            reorg_rewind: 4,
        },
    }
}

/// Everything on the jobs stream, as (sequence, request hash).
async fn published(bus: &Bus) -> Vec<(u64, B256)> {
    common::published(bus, CHAIN)
        .await
        .into_iter()
        .map(|r| (r.sequence, r.request_hash))
        .collect()
}

fn seqs(v: &[(u64, B256)]) -> Vec<u64> {
    v.iter().map(|(s, _)| *s).collect()
}

#[tokio::test]
async fn every_request_up_to_the_confirmed_head_is_published_once_in_order() {
    let env = env().await;
    let chain = ScriptedChain::default();
    for n in [0, 2, 0, 1, 3, 0, 0, 1, 1, 0] {
        chain.mine(n);
    }
    let indexer = Indexer::new(settings(2), &chain, env.store.clone(), env.bus.clone());
    let pass = indexer.pass().await.unwrap();
    // Head is block 9; two confirmations leave blocks 8 and 9 for later.
    assert_eq!(pass.target, 7);
    assert_eq!(pass.published, 7);
    let cursor = pass.cursor.unwrap();
    assert_eq!((cursor.block, cursor.sequence), (7, 7));
    assert_eq!(
        seqs(&published(&env.bus).await),
        (1..=7).collect::<Vec<_>>()
    );

    // Two more blocks confirm blocks 8 and 9, which hold request 8.
    chain.mine(0);
    chain.mine(0);
    let pass = indexer.pass().await.unwrap();
    assert_eq!(pass.published, 1);
    assert_eq!(seqs(&published(&env.bus).await), [8]);
    assert_eq!(
        indexer.pass().await.unwrap().published,
        0,
        "nothing new, nothing sent"
    );
}

#[tokio::test]
async fn a_restarted_indexer_carries_on_from_its_cursor() {
    let env = env().await;
    let chain = ScriptedChain::default();
    for _ in 0..5 {
        chain.mine(1);
    }
    Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone())
        .pass()
        .await
        .unwrap();
    chain.mine(2);
    // A new process: new connections, same Redis and NATS.
    let store = Store::connect(
        &format!("redis://127.0.0.1:{}", env.redis.0.port()),
        "lilypad",
    )
    .await
    .unwrap();
    let again = Indexer::new(settings(0), &chain, store, env.bus.clone());
    let pass = again.pass().await.unwrap();
    assert_eq!(pass.published, 2, "only the new requests are published");
    assert_eq!(
        seqs(&published(&env.bus).await),
        (1..=7).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_node_that_drops_a_log_is_caught_and_nothing_is_lost() {
    let env = env().await;
    let chain = ScriptedChain::default();
    for _ in 0..6 {
        chain.mine(1);
    }
    chain.set(|s| s.dropped = vec![5]);
    let indexer = Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone());
    let err = indexer.pass().await.unwrap_err();
    let IndexError::Incomplete {
        expected_first,
        expected_last,
        got,
        ..
    } = &err
    else {
        panic!("expected Incomplete, got {err}")
    };
    assert_eq!((*expected_first, *expected_last), (4, 6));
    assert_eq!(got, &[4, 6]);
    assert!(err.to_string().contains("dropping logs"), "{err}");
    // The first chunk (blocks 0..=2) was complete and is kept; the cursor stops before the gap.
    assert_eq!(env.store.cursor(CHAIN).await.unwrap().unwrap().block, 2);

    chain.set(|s| s.dropped.clear());
    indexer.pass().await.unwrap();
    assert_eq!(
        seqs(&published(&env.bus).await),
        (1..=6).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_reorg_below_the_cursor_republishes_what_changed_and_loses_nothing() {
    let env = env().await;
    let chain = ScriptedChain::default();
    for _ in 0..8 {
        chain.mine(1);
    }
    let indexer = Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone());
    indexer.pass().await.unwrap();
    let before = published(&env.bus).await;
    assert_eq!(seqs(&before), (1..=8).collect::<Vec<_>>());

    // The last two blocks are replaced: jobs 7 and 8 now hold other requests, and a third
    // block brings job 9.
    chain.reorg(2);
    chain.mine(1);
    chain.mine(1);
    chain.mine(1);
    let pass = indexer.pass().await.unwrap();
    assert_eq!(pass.rewound_from, Some(7));
    let after = published(&env.bus).await;
    assert_eq!(
        seqs(&after),
        [7, 8, 9],
        "only the changed and new requests reach consumers"
    );
    assert_ne!(
        after[0].1, before[6].1,
        "job 7 is the new request, with its new hash"
    );
    let cursor = env.store.cursor(CHAIN).await.unwrap().unwrap();
    assert_eq!((cursor.block, cursor.sequence), (8, 9));
}

#[tokio::test]
async fn an_rpc_outage_delays_but_loses_nothing() {
    let env = env().await;
    let chain = ScriptedChain::default();
    chain.mine(1);
    let indexer = Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone());
    indexer.pass().await.unwrap();
    chain.set(|s| s.down = true);
    chain.mine(2);
    let err = indexer.pass().await.unwrap_err();
    assert!(
        matches!(err, IndexError::Chain(ChainError::Rpc { .. })),
        "{err}"
    );
    assert_eq!(env.store.cursor(CHAIN).await.unwrap().unwrap().sequence, 1);
    chain.set(|s| s.down = false);
    assert_eq!(indexer.pass().await.unwrap().published, 2);
    assert_eq!(seqs(&published(&env.bus).await), [1, 2, 3]);
}

#[tokio::test]
async fn indexing_starts_at_the_configured_block() {
    let env = env().await;
    let chain = ScriptedChain::default();
    for _ in 0..6 {
        chain.mine(1);
    }
    let mut s = settings(0);
    s.follow.start_block = 4;
    let pass = Indexer::new(s, &chain, env.store.clone(), env.bus.clone())
        .pass()
        .await
        .unwrap();
    assert_eq!(pass.published, 2);
    assert_eq!(seqs(&published(&env.bus).await), [5, 6]);
}

#[tokio::test]
async fn two_indexers_on_one_chain_publish_each_request_once() {
    let env = env().await;
    let chain = ScriptedChain::default();
    for _ in 0..9 {
        chain.mine(1);
    }
    let a = Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone());
    let b = Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone());
    let (ra, rb) = tokio::join!(a.pass(), b.pass());
    ra.unwrap();
    rb.unwrap();
    assert_eq!(
        seqs(&published(&env.bus).await),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(env.store.cursor(CHAIN).await.unwrap().unwrap().sequence, 9);
}

#[tokio::test]
async fn each_published_request_is_scheduled_to_expire_at_its_match_deadline() {
    let env = env().await;
    let chain = ScriptedChain::default();
    chain.mine(0);
    chain.mine(2); // block 1, timestamp 1012; match timeout 60
    Indexer::new(settings(0), &chain, env.store.clone(), env.bus.clone())
        .pass()
        .await
        .unwrap();
    let retry = Duration::from_secs(30);
    assert!(
        env.store
            .claim_due(CHAIN, 1071, 10, retry)
            .await
            .unwrap()
            .is_empty(),
        "not before"
    );
    let mut due = env.store.claim_due(CHAIN, 1072, 10, retry).await.unwrap();
    due.sort();
    let hash = |sequence| request(sequence, 1, 0).request_hash;
    assert_eq!(
        due,
        [
            (U256::from(1), hash(1), lilypad_store::Action::Expire),
            (U256::from(2), hash(2), lilypad_store::Action::Expire)
        ],
        "each request's expiry, for that request"
    );
}
