//! Jobs settle through a flaky RPC endpoint: the relayer, the solver and the provider reach anvil
//! through the harness's fault-injecting proxy (`FaultyRpc`: HTTP 503, 0.5-3 s delays, resets,
//! garbage bodies, requests whose answer is lost after the node acted on them), at 5% and at 25% of
//! requests, seeded. A counting client contract (contracts/test/utils/MockClient.sol) requests 30
//! jobs at once; every one settles with exactly one callback reporting success, the relayer sent
//! exactly one agreeDeal and one submitResult per job, none of its transactions reverted, and it
//! has no nonce gap (nothing of its own waits in the pool). The same 30 jobs are first run on the
//! same stack without faults; both times are printed (never asserted).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use common::counting::{Counting, Until, relayer_transactions, room_for};
use common::{Options, Stack};
use lilypad_e2e::FaultPlan;
use lilypad_testkit::reader;

const JOBS: usize = 30;

/// One batch: requests, waits for every job to settle, checks the callbacks; returns how long it
/// took from the first request to the last settlement.
async fn batch(stack: &Stack, counting: &Counting) -> (Vec<U256>, Duration) {
    let t0 = Instant::now();
    let ids = counting.request(JOBS).await;
    counting.wait(stack, &ids, Until::Settled).await;
    let took = t0.elapsed();
    counting.assert_one_successful_callback_each(&ids).await;
    (ids, took)
}

async fn thirty_jobs_settle_once_each_through(rate: f64, seed: u64) {
    let stack = Stack::start(Options {
        // The stack starts without faults; the rate is raised for the second batch.
        rpc_faults: Some(FaultPlan::random(0.0, seed)),
        // Room for every job at once: this test is about the endpoint, not capacity.
        provider_args: room_for(JOBS),
        ..Options::default()
    })
    .await;
    let proxy = stack.faulty.as_ref().unwrap();
    let counting = Counting::deploy(&stack, 2 * JOBS).await;

    let (_, fault_free) = batch(&stack, &counting).await;

    let from = reader(&stack.chain.url()).get_block_number().await.unwrap() + 1;
    let before = proxy.stats();
    proxy.set_rate(rate);
    let (_, faulty) = batch(&stack, &counting).await;
    proxy.set_rate(0.0);
    let after = proxy.stats();

    stack.wait_no_nonce_gap().await;
    let (by_function, reverted) = relayer_transactions(&stack, from).await;
    println!(
        "{JOBS} jobs to settlement: {:.1} s without faults, {:.1} s at {:.0}% RPC faults (seed {seed}; {:.2}x); faults injected: {} of {} requests",
        fault_free.as_secs_f64(),
        faulty.as_secs_f64(),
        rate * 100.0,
        faulty.as_secs_f64() / fault_free.as_secs_f64(),
        after.faulted() - before.faulted(),
        after.seen() - before.seen(),
    );
    println!("proxy, whole run: {after}");
    println!("relayer transactions during the faulty batch: {by_function:?}, reverted {reverted}");
    assert!(
        after.faulted() > before.faulted(),
        "the proxy injected faults: {after}"
    );
    assert_eq!(
        reverted, 0,
        "relayer transactions that reverted: {by_function:?}"
    );
    assert_eq!(
        by_function.get("agreeDeal").copied().unwrap_or(0),
        JOBS,
        "one agreeDeal per job: {by_function:?}"
    );
    assert_eq!(
        by_function.get("submitResult").copied().unwrap_or(0),
        JOBS,
        "one submitResult per job: {by_function:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_jobs_settle_once_each_with_5_percent_of_rpc_requests_failing() {
    thirty_jobs_settle_once_each_through(0.05, 5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_jobs_settle_once_each_with_25_percent_of_rpc_requests_failing() {
    thirty_jobs_settle_once_each_through(0.25, 25).await;
}
