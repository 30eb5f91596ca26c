//! The indexer against a real chain: anvil, the contracts deployed by their own deploy script,
//! requests made by a client account, real NATS and Redis.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, U256};
use lilypad_bindings::Lilypad;
use lilypad_config::Confirmations;
use lilypad_e2e::{Anvil, dev_keys};
use lilypad_relayer::chain::{ChainError, ChainSource, RpcChain};
use lilypad_relayer::indexer::{FollowSettings, Indexer, IndexerSettings};
use lilypad_testkit::{Backends, TestChain, job_request};

fn deploy(chain_id: u64) -> TestChain {
    TestChain::deploy(chain_id, &[dev_keys::ADDRESSES[1]])
}

async fn run_job(chain: &TestChain, message: &str) -> U256 {
    chain
        .approve(dev_keys::CLIENT, U256::from(10u64.pow(18)))
        .await;
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(10u64.pow(17)),
        maxOutputBytes: 256,
        ..job_request("cowsay", "v0.1.0", &[("message", message)])
    };
    chain.run_job(dev_keys::CLIENT, request).await.job_id
}

#[tokio::test]
async fn requests_made_on_chain_reach_the_jobs_stream_intact_and_survive_a_reorg() {
    let chain = deploy(31337);
    // Blocks only for transactions: the reorg below replaces exactly the block of the second
    // request, which an interval block mined after it would otherwise shield.
    chain.stop_mining();
    chain.mine_instantly();
    let backends = Backends::start().await;
    let (bus, store) = (&backends.bus, &backends.store);

    let first = run_job(&chain, "hello = world, with spaces").await;
    let second = run_job(&chain, "ünïcødé 🐸").await;

    let indexer = indexer(&chain, 2, &backends).await;
    let pass = indexer.pass().await.unwrap();
    assert_eq!(pass.published, 2);
    let got = common::published(bus, 31337).await;
    assert_eq!(
        got.iter().map(|r| r.key.job_id).collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(got[0].spec.inputs[0].value, "hello = world, with spaces");
    assert_eq!(got[1].spec.inputs[0].value, "ünïcødé 🐸");
    assert_eq!(got[0].spec.module, "cowsay");
    assert_eq!(
        got[0].client,
        dev_keys::ADDRESSES[1].parse::<Address>().unwrap()
    );
    // The request hash is the contract's: what it stored for the job.
    let lilypad = Lilypad::new(chain.lilypad, indexer.chain().provider());
    let job = lilypad.getJob(first).call().await.unwrap();
    assert_eq!(job.requestHash, got[0].request_hash);

    // The block holding the second request is reorganised away, and a different request takes
    // its job id on the new branch.
    chain.rpc("anvil_reorg", "[1, []]");
    let replaced = run_job(&chain, "the other branch").await;
    assert_eq!(replaced, second, "the job id is reused on the new branch");
    let pass = indexer.pass().await.unwrap();
    assert!(
        pass.rewound_from.is_some(),
        "the reorg was noticed: {pass:?}"
    );
    assert_eq!(
        store.reorgs(31337).await.unwrap(),
        1,
        "it is counted, so the submitter re-checks what it landed"
    );
    let got = common::published(bus, 31337).await;
    assert_eq!(
        got.len(),
        1,
        "only the replaced request is new to consumers: {got:?}"
    );
    assert_eq!(got[0].spec.inputs[0].value, "the other branch");
}

/// The same request made again after a reorganisation took the first away: it gets the same job
/// id and hashes the same, but it is a new job, and it reaches the jobs stream (it used to be
/// dropped as a duplicate of the one it replaced).
#[tokio::test]
async fn an_identical_request_remade_after_a_reorg_reaches_the_jobs_stream() {
    let chain = deploy(31337);
    chain.stop_mining();
    chain.mine_instantly();
    let backends = Backends::start().await;
    let bus = &backends.bus;
    let indexer = indexer(&chain, 100, &backends).await;

    let before = chain.head();
    let first = run_job(&chain, "moo").await;
    indexer.pass().await.unwrap();
    let old = common::published(bus, 31337).await;
    assert_eq!(old.len(), 1);

    chain.reorg_after(before);
    let again = run_job(&chain, "moo").await;
    assert_eq!(again, first, "the job id is given out again");
    let pass = indexer.pass().await.unwrap();
    assert!(
        pass.rewound_from.is_some(),
        "the reorg was noticed: {pass:?}"
    );
    let new = common::published(bus, 31337).await;
    assert_eq!(new.len(), 1, "the new request is published: {pass:?}");
    assert_eq!(new[0].job_ref(), old[0].job_ref(), "the same request");
    assert_ne!(new[0].block_hash, old[0].block_hash);
}

#[tokio::test]
async fn an_rpc_of_another_chain_is_refused_with_a_fix() {
    let anvil = Anvil::start(31338).unwrap();
    let err = RpcChain::connect(&anvil.url(), 31337, Address::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::WrongChain {
                expected: 31337,
                actual: 31338
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("fix:"), "{err}");
    drop(anvil);
    let err = RpcChain::connect("http://127.0.0.1:1", 31337, Address::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
}

#[tokio::test]
async fn the_rpc_chain_reads_head_hashes_and_counts() {
    let chain = deploy(31337);
    let rpc = RpcChain::connect(&chain.url(), 31337, chain.lilypad)
        .await
        .unwrap();
    let before = rpc.head().await.unwrap();
    assert_eq!(rpc.request_count_at(before).await.unwrap(), 0);
    run_job(&chain, "x").await;
    let after = rpc.head().await.unwrap();
    assert_eq!(rpc.request_count_at(after).await.unwrap(), 1);
    assert_eq!(
        rpc.request_count_at(before).await.unwrap(),
        0,
        "counts are read at a block"
    );
    assert_ne!(
        rpc.block_hash(after).await.unwrap(),
        rpc.block_hash(before).await.unwrap()
    );
    assert!(matches!(
        rpc.block_hash(after + 100).await,
        Err(ChainError::MissingBlock(_))
    ));
}

/// An indexer of `chain` from its deployment, reading the head itself (no confirmations), in
/// chunks of `log_chunk_size` blocks.
async fn indexer(chain: &TestChain, log_chunk_size: u64, backends: &Backends) -> Indexer<RpcChain> {
    let rpc = RpcChain::connect(&chain.url(), 31337, chain.lilypad)
        .await
        .unwrap();
    let settings = IndexerSettings {
        chain_id: 31337,
        follow: FollowSettings {
            confirmations: Confirmations::Blocks(0),
            start_block: chain.deployed_at,
            log_chunk_size,
            reorg_rewind: 8,
        },
    };
    Indexer::new(settings, rpc, backends.store.clone(), backends.bus.clone())
}
