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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolCall;
use common::{MAX_PRICE, Options, Stack};
use lilypad_bindings::{Lilypad, LilypadToken, MockClient};
use lilypad_e2e::{FaultPlan, dev_keys, eventually_every};
use lilypad_testkit::{job_request, reader, send};
use lilypad_types::{JobStatus, Outcome};

const JOBS: usize = 30;
/// How long a batch of jobs may take to settle before the test fails.
const SETTLES_WITHIN: Duration = Duration::from_secs(300);

/// The counting client, deployed and funded by the dev client account.
struct Counting {
    client: MockClient::MockClientInstance<DynProvider>,
    lilypad: Lilypad::LilypadInstance<DynProvider>,
}

impl Counting {
    async fn deploy(stack: &Stack) -> Self {
        let wallet = stack.chain.wallet(dev_keys::CLIENT);
        let client = MockClient::deploy(wallet.clone(), stack.lilypad)
            .await
            .unwrap();
        // Enough for every job of both batches at its max price.
        let funds = U256::from(MAX_PRICE) * U256::from(2 * JOBS);
        send(LilypadToken::new(stack.chain.token, wallet).transfer(*client.address(), funds)).await;
        Self {
            client,
            lilypad: stack.chain.lilypad(),
        }
    }

    /// Requests `JOBS` cowsay jobs at once and returns their ids once all are mined.
    async fn request(&self) -> Vec<U256> {
        let request = Lilypad::JobRequest {
            maxPrice: U256::from(MAX_PRICE),
            matchTimeout: 300,
            executionTimeout: 300,
            // The counting client stores the whole result.
            callbackGasLimit: 1_000_000,
            ..job_request(
                "cowsay",
                "1.0.0",
                &[("message", "moo through a flaky endpoint")],
            )
        };
        let request = as_mock_request(request);
        let mut pending = Vec::new();
        for _ in 0..JOBS {
            // Sent back to back; the wallet fills consecutive nonces.
            pending.push(self.client.run(request.clone()).send().await.unwrap());
        }
        let mut ids = Vec::new();
        for p in pending {
            let receipt = p.get_receipt().await.unwrap();
            assert!(receipt.status(), "run reverted: {receipt:?}");
            ids.push(
                receipt
                    .decoded_log::<Lilypad::JobRequested>()
                    .unwrap()
                    .data
                    .jobId,
            );
        }
        ids
    }

    /// Waits until every job in `ids` is settled; panics with where each one stands otherwise.
    async fn wait_settled(&self, stack: &Stack, ids: &[U256]) {
        let what = format!("{} jobs settle", ids.len());
        eventually_every(
            Duration::from_millis(250),
            SETTLES_WITHIN,
            &what,
            async || {
                let mut states = BTreeMap::<String, Vec<U256>>::new();
                for id in ids {
                    let job = self.lilypad.getJob(*id).call().await.unwrap();
                    let state = job
                        .state()
                        .map_or(format!("unknown {}", job.status), |s| s.to_string());
                    states.entry(state).or_default().push(*id);
                }
                let settled = states
                    .get(&JobStatus::Settled.to_string())
                    .map_or(0, Vec::len);
                if settled == ids.len() {
                    Ok(())
                } else {
                    Err(format!(
                        "by state: {states:?}\nproxy: {}\nrelayer log:\n{}",
                        stack
                            .faulty
                            .as_ref()
                            .map(|f| f.stats().to_string())
                            .unwrap_or_default(),
                        tail(&stack.log("relayer"), 60)
                    ))
                }
            },
        )
        .await;
    }

    /// Every job in `ids` was called back exactly once, with success.
    async fn assert_one_successful_callback_each(&self, ids: &[U256]) {
        for id in ids {
            let count = self.client.callbackCount(*id).call().await.unwrap();
            let outcomes = self.client.outcomes(*id).call().await.unwrap();
            assert_eq!(count, U256::from(1), "callbacks of job {id}");
            assert_eq!(
                outcomes,
                [Outcome::Succeeded.as_u8()],
                "outcomes of job {id}"
            );
        }
    }
}

/// The same request in the counting client's own ABI types.
fn as_mock_request(r: Lilypad::JobRequest) -> MockClient::JobRequest {
    MockClient::JobRequest {
        module: r.module,
        version: r.version,
        inputs: r
            .inputs
            .into_iter()
            .map(|i| MockClient::InputParam {
                key: i.key,
                value: i.value,
            })
            .collect(),
        maxPrice: r.maxPrice,
        matchTimeout: r.matchTimeout,
        executionTimeout: r.executionTimeout,
        callbackGasLimit: r.callbackGasLimit,
        maxOutputBytes: r.maxOutputBytes,
        resultsCollateralMultiplierBps: r.resultsCollateralMultiplierBps,
        challengeWindow: r.challengeWindow,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The relayer's transactions mined in blocks `from..=head`: how many of each Lilypad function,
/// and how many reverted.
async fn relayer_transactions(stack: &Stack, from: u64) -> (BTreeMap<&'static str, usize>, usize) {
    let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
    let p = reader(&stack.chain.url());
    let head = p.get_block_number().await.unwrap();
    let names: BTreeMap<[u8; 4], &str> = [
        (Lilypad::agreeDealCall::SELECTOR, "agreeDeal"),
        (Lilypad::submitResultCall::SELECTOR, "submitResult"),
        (Lilypad::settleCall::SELECTOR, "settle"),
        (Lilypad::settleManyCall::SELECTOR, "settleMany"),
    ]
    .into_iter()
    .collect();
    let mut by_function = BTreeMap::new();
    let mut reverted = 0;
    for n in from..=head {
        let Some(block) = p.get_block_by_number(n.into()).full().await.unwrap() else {
            continue;
        };
        for tx in block.transactions.txns() {
            if tx.inner.signer() != relayer {
                continue;
            }
            let selector: [u8; 4] = tx.input().get(..4).unwrap_or(&[0; 4]).try_into().unwrap();
            let name = names.get(&selector).copied().unwrap_or("other");
            *by_function.entry(name).or_insert(0) += 1;
            let receipt = p
                .get_transaction_receipt(*tx.inner.tx_hash())
                .await
                .unwrap()
                .unwrap();
            if !receipt.status() {
                reverted += 1;
            }
        }
    }
    (by_function, reverted)
}

/// One batch: requests, waits for every job to settle, checks the callbacks; returns how long it
/// took from the first request to the last settlement.
async fn batch(stack: &Stack, counting: &Counting) -> (Vec<U256>, Duration) {
    let t0 = Instant::now();
    let ids = counting.request().await;
    counting.wait_settled(stack, &ids).await;
    let took = t0.elapsed();
    counting.assert_one_successful_callback_each(&ids).await;
    (ids, took)
}

async fn thirty_jobs_settle_once_each_through(rate: f64, seed: u64) {
    let stack = Stack::start(Options {
        // The stack starts without faults; the rate is raised for the second batch.
        rpc_faults: Some(FaultPlan::random(0.0, seed)),
        // Room for every job at once: this test is about the endpoint, not capacity.
        provider_args: vec![
            "--cpu-millis".into(),
            (JOBS as u64 * 1000).to_string(),
            "--memory".into(),
            "16GiB".into(),
        ],
        ..Options::default()
    })
    .await;
    let proxy = stack.faulty.as_ref().unwrap();
    let counting = Counting::deploy(&stack).await;

    let (_, fault_free) = batch(&stack, &counting).await;

    let from = reader(&stack.chain.url()).get_block_number().await.unwrap() + 1;
    let before = proxy.stats();
    proxy.set_rate(rate);
    let (_, faulty) = batch(&stack, &counting).await;
    proxy.set_rate(0.0);
    let after = proxy.stats();

    // No nonce gap: every transaction the relayer sent is mined, none waits behind a gap.
    eventually_every(
        Duration::from_millis(250),
        Duration::from_secs(60),
        "the relayer has nothing left in the pool",
        async || {
            let (mined, pending) = (
                stack.relayer_nonce().await,
                stack.relayer_pending_nonce().await,
            );
            if mined == pending {
                Ok(())
            } else {
                Err(format!("mined nonce {mined}, pending nonce {pending}"))
            }
        },
    )
    .await;
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
