//! The relayer's benchmark figures (docs/benchmarks.md, "Relayer"). A plain `main`, run with
//!
//! ```sh
//! cargo bench -p lilypad-relayer --bench relayer
//! ```
//!
//! Every figure is taken against the real programs the harness starts (anvil with the contracts
//! deployed by their own script, `nats-server -js`, `redis-server`) and prints a table at the end:
//!
//! 1. **index**: the real [`Indexer`] reading a chain that holds `LILYPAD_BENCH_REQUESTS` (10,000)
//!    `runJob` requests, from an empty cursor to every request published on the jobs stream, for
//!    two log chunk sizes. The bench checks that exactly that many messages were published.
//! 2. **submit**: the real [`Submitter`] expiring jobs on one chain, on anvil with instant mining
//!    and with `--block-time 1`: `carry_out` one job at a time (each mined before the next is
//!    sent), then due expiries in Redis landed by `Submitter::run` (the relayer's own loop) and by
//!    `Submitter::round` back to back; a round sends up to 32 transactions with consecutive nonces
//!    and confirms them together (pipelined nonces).
//! 3. **memory**: `lilypad relayer` (release build) serving 10 anvil chains: VmRSS and VmHWM after
//!    idle polling, then after 100 requests per chain were indexed.
//!
//! Environment: `LILYPAD_BENCH_ONLY=index,submit,memory` picks figures; `LILYPAD_BENCH_REQUESTS`,
//! `LILYPAD_BENCH_BATCH` (requests per flood transaction), `LILYPAD_BENCH_TXS` (transactions per
//! submit measurement), `LILYPAD_BENCH_SEQ_BLOCK_TXS` (one-at-a-time sends on the 1 s chain),
//! `LILYPAD_BENCH_CHAINS`, `LILYPAD_BENCH_MEMORY_REQUESTS` (per chain), `LILYPAD_BENCH_IDLE_SECS`
//! size them; `LILYPAD_BIN` names a `lilypad` binary to use instead of building
//! `target/release/lilypad`.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use lilypad_bindings::{Lilypad, LilypadToken};
use lilypad_bus::{Bus, BusOptions, Topic};
use lilypad_config::{Confirmations, GasPolicy};
use lilypad_e2e::{Anvil, Nats, Redis, dev_keys, eventually_every, foundry_tool, ok_if};
use lilypad_relayer::chain::{ChainSource, RpcChain};
use lilypad_relayer::indexer::{FollowSettings, Indexer, IndexerSettings};
use lilypad_relayer::submitter::{Submitted, Submitter, SubmitterSettings};
use lilypad_store::{Action, Store};
use lilypad_testkit::{Backends, TestChain, drain, job_request, wallet};
use lilypad_types::JobRequested;

/// The calldata of `flood(JobRequest request, uint256 n)` in contracts/test/bench/RequestFlood.sol
/// (`n` real `runJob` calls in one transaction), encoded with the bindings' `JobRequest`: its
/// signature is runJob's with `uint256 n` added, so the ABI is written down once, in ILilypad.sol.
fn flood_call(request: &Lilypad::JobRequest, n: u64) -> Bytes {
    let run_job = <Lilypad::runJobCall as alloy::sol_types::SolCall>::SIGNATURE;
    let tuple = &run_job["runJob(".len()..run_job.len() - 1];
    let selector = alloy::primitives::keccak256(format!("flood({tuple},uint256)"));
    let params = (request.clone(), U256::from(n)).abi_encode_params();
    [&selector[..4], &params].concat().into()
}

/// What each flooded request escrows.
const MAX_PRICE: u64 = 1_000_000_000_000_000;
/// Block gas limit given to the bench's chains, so a flood transaction of a few hundred requests fits.
const GAS_LIMIT: &str = "1000000000";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

fn wanted(figure: &str) -> bool {
    std::env::var("LILYPAD_BENCH_ONLY")
        .map(|v| v.split(',').any(|f| f.trim() == figure))
        .unwrap_or(true)
}

/// Progress, with the time since the bench started.
fn say(started: Instant, what: &str) {
    println!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// One line of the final table.
struct Row {
    figure: &'static str,
    setting: String,
    result: String,
    detail: String,
}

// ------------------------------------------------------------------------------------ chains

/// anvil with `extra` arguments and a large block gas limit, the contracts deployed by their own
/// script, and the client account funded with the dev token.
fn start_chain(chain_id: u64, extra: &[&str]) -> TestChain {
    let mut args = vec!["--gas-limit", GAS_LIMIT];
    args.extend_from_slice(extra);
    let anvil = Anvil::start_with(chain_id, &args).unwrap();
    TestChain::deploy_on(anvil, &[dev_keys::ADDRESSES[1]], &[])
}

async fn start_chain_async(chain_id: u64, extra: &'static [&'static str]) -> TestChain {
    tokio::task::spawn_blocking(move || start_chain(chain_id, extra))
        .await
        .unwrap()
}

fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts")
}

/// The creation code of RequestFlood, from a `forge build` run under the harness's forge lock
/// (forge runs share `contracts/out`).
fn flood_code() -> Bytes {
    let dir = contracts_dir();
    let lock = std::fs::File::create(dir.join("deployments/.forge-test.lock")).unwrap();
    lock.lock().unwrap();
    let out = Command::new(foundry_tool("forge").unwrap())
        .current_dir(&dir)
        .args(["build", "--quiet"])
        .output()
        .unwrap();
    drop(lock);
    assert!(
        out.status.success(),
        "forge build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("out/RequestFlood.sol/RequestFlood.json");
    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    artifact["bytecode"]["object"]
        .as_str()
        .unwrap_or_else(|| panic!("no bytecode in {}", path.display()))
        .parse()
        .unwrap()
}

/// Puts `total` requests on the chain from the client account, `batch` per transaction through a
/// fresh RequestFlood contract; returns the job ids made (consecutive).
async fn flood(
    url: String,
    lilypad: Address,
    token: Address,
    code: Bytes,
    total: u64,
    batch: u64,
    match_timeout: u32,
) -> std::ops::RangeInclusive<u64> {
    let client = wallet(&url, dev_keys::CLIENT);
    let create = TransactionRequest::default()
        .with_deploy_code([code.to_vec(), lilypad.abi_encode()].concat());
    let receipt = client
        .send_transaction(create)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let at = receipt.contract_address.unwrap();
    LilypadToken::new(token, &client)
        .transfer(at, U256::from(total) * U256::from(MAX_PRICE))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let before = Lilypad::new(lilypad, &client)
        .requestCount()
        .call()
        .await
        .unwrap();
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(MAX_PRICE),
        matchTimeout: match_timeout,
        maxOutputBytes: 256,
        ..job_request("cowsay", "1.0.0", &[("message", "hello, world")])
    };
    let mut left = total;
    while left > 0 {
        let n = left.min(batch);
        let flood = TransactionRequest::default()
            .with_to(at)
            .with_input(flood_call(&request, n))
            .with_gas_limit(100_000 + n * 250_000);
        let receipt = client
            .send_transaction(flood)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "a flood transaction reverted");
        left -= n;
    }
    let after = Lilypad::new(lilypad, &client)
        .requestCount()
        .call()
        .await
        .unwrap();
    assert_eq!(after - before, total, "every request was made");
    before + 1..=after
}

/// How many messages the jobs stream holds, from JetStream's own stream info.
async fn stream_messages(bus: &Bus) -> u64 {
    let reply = bus
        .client()
        .request(
            format!("$JS.API.STREAM.INFO.{}", Topic::Jobs.stream()),
            "".into(),
        )
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    info["state"]["messages"]
        .as_u64()
        .unwrap_or_else(|| panic!("no message count in the stream info: {info}"))
}

/// Reads every message on the jobs stream for `chain_id` (as a solver would) and returns the
/// job ids, in stream order.
async fn read_jobs(bus: &Bus, chain_id: u64) -> Vec<u64> {
    let jobs: Vec<JobRequested> = drain(
        bus,
        Topic::Jobs,
        Some(chain_id),
        "bench-reader",
        Duration::from_millis(500),
    )
    .await;
    jobs.iter().map(|j| j.key.job_id.to::<u64>()).collect()
}

// ------------------------------------------------------------------------------------ 1. index

async fn bench_index(started: Instant, code: &Bytes, rows: &mut Vec<Row>) {
    const CHAIN: u64 = 31337;
    let total = env_u64("LILYPAD_BENCH_REQUESTS", 10_000);
    let batch = env_u64("LILYPAD_BENCH_BATCH", 150);
    say(started, "index: starting anvil and deploying the contracts");
    let chain = start_chain_async(CHAIN, &[]).await;
    say(
        started,
        &format!("index: putting {total} requests on the chain, {batch} per transaction"),
    );
    let t = Instant::now();
    let ids = flood(
        chain.anvil.url(),
        chain.lilypad,
        chain.token,
        code.clone(),
        total,
        batch,
        600,
    )
    .await;
    let head = wallet(&chain.anvil.url(), dev_keys::CLIENT)
        .get_block_number()
        .await
        .unwrap();
    // The indexer reads from the deployment block to the head, inclusive.
    let blocks = head - chain.deployed_at + 1;
    say(
        started,
        &format!(
            "index: jobs {}..={} requested in {:.1}s, {} flood transactions; {blocks} blocks to index",
            ids.start(),
            ids.end(),
            t.elapsed().as_secs_f64(),
            total.div_ceil(batch)
        ),
    );
    // For the breakdown: reading and decoding every request alone, as the indexer's chunks do.
    let rpc = RpcChain::connect(&chain.anvil.url(), CHAIN, chain.lilypad)
        .await
        .unwrap();
    let t = Instant::now();
    let all = rpc.requests(chain.deployed_at, head).await.unwrap();
    let read_all = t.elapsed();
    assert_eq!(all.len() as u64, total);
    say(
        started,
        &format!(
            "index: one eth_getLogs over all {blocks} blocks, decoded: {:.2}s",
            read_all.as_secs_f64()
        ),
    );

    for chunk in [2_000u64, 10] {
        // Fresh NATS and Redis each time: an empty cursor, and a stream with nothing to deduplicate.
        let backends = Backends::start().await;
        let (store, bus) = (backends.store.clone(), backends.bus.clone());
        assert!(store.cursor(CHAIN).await.unwrap().is_none());
        let rpc = RpcChain::connect(&chain.anvil.url(), CHAIN, chain.lilypad)
            .await
            .unwrap();
        let settings = IndexerSettings {
            chain_id: CHAIN,
            follow: FollowSettings {
                confirmations: Confirmations::Blocks(0),
                start_block: chain.deployed_at,
                log_chunk_size: chunk,
                reorg_rewind: 64,
            },
        };
        let indexer = Indexer::new(settings, rpc, store.clone(), bus.clone());
        say(
            started,
            &format!("index: log_chunk_size = {chunk}: indexing from an empty cursor"),
        );
        let t = Instant::now();
        let pass = indexer.pass().await.unwrap();
        let took = t.elapsed();

        // A figure only counts if the work was done: every request, once, in order.
        let cursor = pass.cursor.unwrap();
        assert_eq!(pass.published, total, "{pass:?}");
        assert_eq!(pass.duplicates, 0, "{pass:?}");
        assert_eq!(cursor.sequence, total, "{pass:?}");
        assert_eq!(cursor.block, head, "{pass:?}");
        assert_eq!(stream_messages(&bus).await, total);
        let read = read_jobs(&bus, CHAIN).await;
        assert_eq!(
            read,
            ids.clone().collect::<Vec<_>>(),
            "the stream holds each job once, in order"
        );
        let rate = total as f64 / took.as_secs_f64();
        say(
            started,
            &format!(
                "index: log_chunk_size = {chunk}: {total} published in {:.2}s = {rate:.0} events/s (verified: {} messages on the stream, job ids {}..={})",
                took.as_secs_f64(),
                read.len(),
                ids.start(),
                ids.end()
            ),
        );
        rows.push(Row {
            figure: "1. index",
            setting: format!(
                "{total} requests, {blocks} blocks, log_chunk_size {chunk} ({} eth_getLogs)",
                blocks.div_ceil(chunk)
            ),
            result: format!("{rate:.0} events/s"),
            detail: format!(
                "{:.2} s from an empty cursor to all published (reading and decoding the logs alone: {:.2} s)",
                took.as_secs_f64(),
                read_all.as_secs_f64()
            ),
        });
    }
}

// ------------------------------------------------------------------------------------ 2. submit

/// Expires jobs `ids` one at a time with [`Submitter::carry_out`], each call returning only once
/// its transaction is mined. Returns the total time and each call's, sorted.
async fn one_at_a_time(
    submitter: &Submitter,
    ids: std::ops::RangeInclusive<u64>,
) -> (Duration, Vec<Duration>) {
    let t = Instant::now();
    let mut calls = Vec::new();
    for job in ids {
        let c = Instant::now();
        let landed = submitter
            .carry_out(U256::from(job), Action::Expire)
            .await
            .unwrap();
        assert!(matches!(landed, Submitted::Landed(_)), "{landed:?}");
        calls.push(c.elapsed());
    }
    calls.sort();
    (t.elapsed(), calls)
}

/// "median a ms, p90 b ms, max c ms" over sorted durations.
fn spread(sorted: &[Duration]) -> String {
    let ms = |q: f64| {
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i].as_secs_f64() * 1e3
    };
    format!(
        "median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        ms(0.5),
        ms(0.9),
        ms(1.0)
    )
}

/// Makes `ids` due for expiry now in Redis, as the indexer does when it publishes a request.
async fn schedule_expiries(
    submitter: &Submitter,
    store: &Store,
    chain_id: u64,
    ids: std::ops::RangeInclusive<u64>,
) {
    let now = submitter.chain_time().await.unwrap();
    for job in ids {
        store
            .schedule(chain_id, U256::from(job), B256::ZERO, Action::Expire, now)
            .await
            .unwrap();
    }
}

/// The signer's mined transaction count.
async fn mined_nonce(rpc: &DynProvider, signer: Address) -> u64 {
    rpc.get_transaction_count(signer).await.unwrap()
}

async fn bench_submit(started: Instant, code: &Bytes, rows: &mut Vec<Row>) {
    let txs = env_u64("LILYPAD_BENCH_TXS", 320);
    let seq_block = env_u64("LILYPAD_BENCH_SEQ_BLOCK_TXS", 30);
    let modes: [(&str, u64, &'static [&'static str], u64); 2] = [
        ("instant mining", 31338, &[], txs),
        ("--block-time 1", 31339, &["--block-time", "1"], seq_block),
    ];
    for (mode, chain_id, extra, sequential) in modes {
        say(
            started,
            &format!("submit ({mode}): starting anvil and deploying the contracts"),
        );
        let chain = start_chain_async(chain_id, extra).await;
        let url = chain.anvil.url();
        // One warm-up job, then one set of jobs per way of sending.
        let total = 1 + sequential + 2 * txs;
        say(
            started,
            &format!("submit ({mode}): requesting {total} jobs that expire in 10 s"),
        );
        let ids = flood(
            url.clone(),
            chain.lilypad,
            chain.token,
            code.clone(),
            total,
            env_u64("LILYPAD_BENCH_BATCH", 150),
            10,
        )
        .await;
        chain.advance(11);

        let backends = Backends::start().await;
        let (store, bus) = (backends.store.clone(), backends.bus.clone());
        let settings = SubmitterSettings {
            chain_id,
            lilypad: chain.lilypad,
            gas: GasPolicy::default(),
            max_attempts: 8,
            claim_retry: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(15),
        };
        let key: PrivateKeySigner = dev_keys::RELAYER.parse().unwrap();
        // As `lilypad relayer` sets it for a chain polled every 250 ms (alloy's own local default).
        let submitter = Submitter::new(settings, &url, key, store.clone(), bus)
            .unwrap()
            .with_receipt_poll(Duration::from_millis(250));
        let signer = submitter.signer();
        let reader = wallet(&url, dev_keys::RELAYER);
        let nonce_before = mined_nonce(&reader, signer).await;

        let first = *ids.start();
        let warm = submitter
            .carry_out(U256::from(first), Action::Expire)
            .await
            .unwrap();
        assert!(matches!(warm, Submitted::Landed(_)), "{warm:?}");
        let seq_ids = first + 1..=first + sequential;
        let run_ids = first + sequential + 1..=first + sequential + txs;
        let round_ids = first + sequential + txs + 1..=*ids.end();

        // (a) One at a time: the transaction of each call is mined before the next is sent.
        say(
            started,
            &format!("submit ({mode}): {sequential} carry_out calls, one at a time"),
        );
        let (seq_took, calls) = one_at_a_time(&submitter, seq_ids).await;
        let seq_rate = sequential as f64 / seq_took.as_secs_f64();
        say(
            started,
            &format!(
                "submit ({mode}): one at a time: {sequential} landed in {:.2}s = {seq_rate:.1} txs/s; per call {}",
                seq_took.as_secs_f64(),
                spread(&calls)
            ),
        );

        // (b) The relayer's own loop, `Submitter::run`, as `lilypad relayer` runs it: rounds of
        // up to 32 due actions, each round's sends pipelined (consecutive nonces, confirmed
        // together), streams of deals and results polled with a 500 ms wait, 100 ms between
        // rounds.
        schedule_expiries(&submitter, &store, chain_id, run_ids).await;
        say(
            started,
            &format!("submit ({mode}): {txs} due expiries, landed by Submitter::run"),
        );
        let base = mined_nonce(&reader, signer).await;
        let stop = tokio_util::sync::CancellationToken::new();
        let health = lilypad_relayer::health::Health::default();
        health.register("bench");
        let t = Instant::now();
        let running = {
            let (s, stop) = (submitter.clone(), stop.clone());
            tokio::spawn(async move { s.run("bench", health, "bench", stop).await })
        };
        let what = format!("Submitter::run lands {txs} transactions");
        eventually_every(
            Duration::from_millis(20),
            Duration::from_secs(600),
            &what,
            async || {
                let landed = mined_nonce(&reader, signer).await - base;
                ok_if(landed >= txs, format!("{landed} landed"))
            },
        )
        .await;
        let run_took = t.elapsed();
        stop.cancel();
        running.await.unwrap();
        let run_rate = txs as f64 / run_took.as_secs_f64();
        say(
            started,
            &format!(
                "submit ({mode}): Submitter::run: {txs} landed in {:.2}s = {run_rate:.1} txs/s",
                run_took.as_secs_f64()
            ),
        );

        // What a round costs with nothing to send: two fetches from the empty deal and result
        // streams with the given wait, and a claim from Redis.
        let mut empty = Vec::new();
        for wait in [500, 10] {
            let r = Instant::now();
            assert_eq!(
                submitter.round(Duration::from_millis(wait)).await.unwrap(),
                0
            );
            empty.push(format!(
                "{wait} ms wait: {:.0} ms",
                r.elapsed().as_secs_f64() * 1e3
            ));
        }
        let empty = format!("an empty round takes {}", empty.join(", "));
        say(started, &format!("submit ({mode}): {empty}"));

        // (c) The same rounds back to back with a 10 ms wait on the (empty) streams: what the
        // pipelined sending itself does.
        schedule_expiries(&submitter, &store, chain_id, round_ids).await;
        say(
            started,
            &format!(
                "submit ({mode}): {txs} due expiries, landed by Submitter::round back to back"
            ),
        );
        let t = Instant::now();
        let mut landed = 0;
        let mut rounds = Vec::new();
        while landed < txs as usize {
            let r = Instant::now();
            landed += submitter.round(Duration::from_millis(10)).await.unwrap();
            rounds.push(r.elapsed());
            assert!(rounds.len() < 1_000, "rounds land nothing");
        }
        let round_took = t.elapsed();
        rounds.sort();
        let round_rate = txs as f64 / round_took.as_secs_f64();
        say(
            started,
            &format!(
                "submit ({mode}): rounds back to back: {txs} landed in {:.2}s = {round_rate:.1} txs/s; {} rounds, each {}",
                round_took.as_secs_f64(),
                rounds.len(),
                spread(&rounds)
            ),
        );

        // Verify: one nonce per transaction, none left pending or due, every job expired.
        let nonce_after = mined_nonce(&reader, signer).await;
        assert_eq!(nonce_after - nonce_before, total, "one transaction per job");
        let pending: Vec<(u64, serde_json::Value)> = store.pending(chain_id, signer).await.unwrap();
        assert!(pending.is_empty(), "nothing left pending: {pending:?}");
        let due = store
            .claim_due(chain_id, u64::MAX / 4, 10_000, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(due.is_empty(), "nothing left due: {due:?}");
        for job in ids {
            let (status, _) = submitter.job_state(U256::from(job)).await.unwrap();
            assert_eq!(status, Some(lilypad_types::JobStatus::Expired), "job {job}");
        }
        say(
            started,
            &format!(
                "submit ({mode}): verified: {total} nonces used, none pending or due, {total} jobs expired"
            ),
        );

        rows.push(Row {
            figure: "2. submit",
            setting: format!("{mode}: carry_out one at a time (mined before the next is sent)"),
            result: format!("{seq_rate:.1} txs/s"),
            detail: format!(
                "{sequential} txs in {:.2} s; per call {}",
                seq_took.as_secs_f64(),
                spread(&calls)
            ),
        });
        rows.push(Row {
            figure: "2. submit",
            setting: format!(
                "{mode}: Submitter::run, {txs} due expiries (rounds of 32, pipelined)"
            ),
            result: format!("{run_rate:.1} txs/s"),
            detail: format!("{txs} txs in {:.2} s; {empty}", run_took.as_secs_f64()),
        });
        rows.push(Row {
            figure: "2. submit",
            setting: format!(
                "{mode}: Submitter::round back to back, 10 ms stream wait (rounds of 32, pipelined)"
            ),
            result: format!("{round_rate:.1} txs/s"),
            detail: format!(
                "{txs} txs in {:.2} s; {} rounds, each {}",
                round_took.as_secs_f64(),
                rounds.len(),
                spread(&rounds)
            ),
        });
    }
}

// ------------------------------------------------------------------------------------ 3. memory

/// `target/release/lilypad`, built now (or `LILYPAD_BIN`).
fn release_binary(started: Instant) -> PathBuf {
    if let Some(bin) = std::env::var_os("LILYPAD_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    say(
        started,
        "memory: cargo build --release -p lilypad-cli (set LILYPAD_BIN to use another binary)",
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "lilypad-cli"])
        .status()
        .unwrap();
    assert!(status.success(), "building the relayer failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("release/lilypad")
}

/// (VmRSS, VmHWM) in MiB, and the thread count, from /proc/<pid>/status.
fn memory(pid: u32) -> (f64, f64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (
        field("VmRSS:") as f64 / 1024.0,
        field("VmHWM:") as f64 / 1024.0,
        field("Threads:"),
    )
}

/// CPU time (user + system) the process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `after` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(100);
    ticks as f64 / hz as f64
}

struct Relayer {
    child: Child,
    log: PathBuf,
}

impl Relayer {
    fn start(bin: &Path, dir: &Path, env: &[(&str, String)], args: &[&str], name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("relayer")
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `times` times; panics with the log if it exits first.
    async fn wait_for(&mut self, needle: &str, times: usize) {
        let what = format!("the relayer logs {needle:?} {times} times");
        eventually_every(
            Duration::from_millis(100),
            Duration::from_secs(120),
            &what,
            async || {
                self.assert_running();
                let log = self.log();
                ok_if(log.matches(needle).count() >= times, log)
            },
        )
        .await;
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the relayer exited with {status}:\n{}", self.log());
        }
    }
}

impl Drop for Relayer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn bench_memory(started: Instant, code: &Bytes, rows: &mut Vec<Row>) {
    let count = env_u64("LILYPAD_BENCH_CHAINS", 10);
    let per_chain = env_u64("LILYPAD_BENCH_MEMORY_REQUESTS", 100);
    let idle = Duration::from_secs(env_u64("LILYPAD_BENCH_IDLE_SECS", 20));
    let bin = tokio::task::spawn_blocking(move || release_binary(started))
        .await
        .unwrap();
    assert!(bin.is_file(), "no relayer binary at {}", bin.display());

    let dir = std::env::temp_dir().join(format!("lilypad-relayer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut chains = Vec::new();
    let mut toml = String::from(
        "[defaults]\nconfirmations = 0\npoll_interval = \"250ms\"\nlog_chunk_size = 2000\n\
         signer = { env = \"LILYPAD_RELAYER_KEY\" }\n",
    );
    for i in 0..count {
        let chain_id = 41_000 + i;
        say(
            started,
            &format!(
                "memory: chain {}/{count} (id {chain_id}): starting anvil and deploying",
                i + 1
            ),
        );
        let chain = start_chain_async(chain_id, &[]).await;
        std::fs::write(
            dir.join(format!("deploy-{i}.json")),
            chain.deployment.to_string(),
        )
        .unwrap();
        write!(
            toml,
            "\n[[chains]]\nname = \"bench-{i}\"\nchain_id = {chain_id}\nrpc = \"{}\"\ndeployment = \"deploy-{i}.json\"\n",
            chain.anvil.url()
        )
        .unwrap();
        chains.push((chain_id, chain));
    }
    std::fs::write(dir.join("chains.toml"), &toml).unwrap();
    let nats = Nats::start().unwrap();
    let redis = Redis::start().unwrap();
    let env = [
        (
            "LILYPAD_CHAINS",
            dir.join("chains.toml").display().to_string(),
        ),
        ("LILYPAD_NATS", nats.url()),
        ("LILYPAD_REDIS", redis.url()),
        ("LILYPAD_RELAYER_KEY", dev_keys::RELAYER.to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];

    // For comparison: the same binary serving one of the chains.
    {
        let mut one = Relayer::start(
            &bin,
            &dir,
            &[
                env.as_slice(),
                &[("LILYPAD_REDIS_PREFIX", "bench-one".to_owned())],
            ]
            .concat(),
            &["--only", "bench-0"],
            "relayer-one",
        );
        one.wait_for("serving chain", 1).await;
        say(
            started,
            &format!(
                "memory: relayer serving 1 chain started; idle for {}s",
                idle.as_secs()
            ),
        );
        let cpu0 = cpu_seconds(one.pid());
        tokio::time::sleep(idle).await;
        one.assert_running();
        let (rss, hwm, threads) = memory(one.pid());
        let cpu = cpu_seconds(one.pid()) - cpu0;
        say(
            started,
            &format!(
                "memory: 1 chain, idle: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB, {threads} threads, {cpu:.2} s CPU"
            ),
        );
        rows.push(Row {
            figure: "3. memory",
            setting: format!("1 chain, idle {} s (for comparison)", idle.as_secs()),
            result: format!("VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"),
            detail: format!(
                "{threads} threads; {cpu:.2} s CPU in the {} s",
                idle.as_secs()
            ),
        });
    }

    let mut relayer = Relayer::start(&bin, &dir, &env, &[], "relayer");
    relayer.wait_for("serving chain", count as usize).await;
    say(
        started,
        &format!(
            "memory: relayer serving {count} chains started; idle for {}s",
            idle.as_secs()
        ),
    );
    let cpu0 = cpu_seconds(relayer.pid());
    tokio::time::sleep(idle).await;
    relayer.assert_running();
    let (rss, hwm, threads) = memory(relayer.pid());
    let cpu = cpu_seconds(relayer.pid()) - cpu0;
    say(
        started,
        &format!(
            "memory: {count} chains, idle: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB, {threads} threads, {cpu:.2} s CPU"
        ),
    );
    rows.push(Row {
        figure: "3. memory",
        setting: format!("{count} chains, idle {} s", idle.as_secs()),
        result: format!("VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"),
        detail: format!(
            "{threads} threads; {cpu:.2} s CPU in the {} s",
            idle.as_secs()
        ),
    });

    say(
        started,
        &format!("memory: {per_chain} requests on each of the {count} chains"),
    );
    let t = Instant::now();
    let mut floods = tokio::task::JoinSet::new();
    for (_, chain) in &chains {
        floods.spawn(flood(
            chain.anvil.url(),
            chain.lilypad,
            chain.token,
            code.clone(),
            per_chain,
            per_chain,
            600,
        ));
    }
    while let Some(done) = floods.join_next().await {
        assert_eq!(done.unwrap().count() as u64, per_chain);
    }
    let made = t.elapsed();
    let store = Store::connect(&redis.url(), "lilypad").await.unwrap();
    let what = format!("all {} requests are indexed", count * per_chain);
    eventually_every(
        Duration::from_millis(200),
        Duration::from_secs(120),
        &what,
        async || {
            let mut indexed = 0;
            for (chain_id, _) in &chains {
                if let Some(c) = store.cursor(*chain_id).await.unwrap() {
                    indexed += c.sequence;
                }
            }
            relayer.assert_running();
            ok_if(
                indexed == count * per_chain,
                format!("{indexed} indexed; relayer:\n{}", relayer.log()),
            )
        },
    )
    .await;
    let bus = Bus::connect(&nats.url(), BusOptions::default())
        .await
        .unwrap();
    assert_eq!(
        stream_messages(&bus).await,
        count * per_chain,
        "every request is on the jobs stream once"
    );
    say(
        started,
        &format!(
            "memory: {} requests made in {:.1}s, all indexed and on the stream {:.1}s after the first was sent; idle 5s more",
            count * per_chain,
            made.as_secs_f64(),
            t.elapsed().as_secs_f64()
        ),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    relayer.assert_running();
    let (rss, hwm, threads) = memory(relayer.pid());
    say(
        started,
        &format!(
            "memory: {count} chains, after indexing: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB, {threads} threads"
        ),
    );
    rows.push(Row {
        figure: "3. memory",
        setting: format!(
            "{count} chains, after {per_chain} requests per chain were indexed (+5 s)"
        ),
        result: format!("VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"),
        detail: format!("{threads} threads"),
    });
    drop(relayer);
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------------------ main

#[tokio::main]
async fn main() {
    let started = Instant::now();
    say(
        started,
        "relayer bench: building RequestFlood (contracts/test/bench)",
    );
    let code = tokio::task::spawn_blocking(flood_code).await.unwrap();
    let mut rows = Vec::new();
    if wanted("index") {
        bench_index(started, &code, &mut rows).await;
    }
    if wanted("submit") {
        bench_submit(started, &code, &mut rows).await;
    }
    if wanted("memory") {
        bench_memory(started, &code, &mut rows).await;
    }

    println!();
    println!("| figure | setting | result | detail |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.figure, r.setting, r.result, r.detail
        );
    }
    say(started, "relayer bench: done");
}
