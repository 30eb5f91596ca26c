//! End-to-end benchmark: what a client waits for, beside what the same container costs alone.
//!
//! Starts the whole stack with the release binaries (anvil with instant mining, NATS, Redis,
//! Docker, `lilypad relayer`, `solver`, `provider`), then:
//!
//! 1. latency: N cowsay jobs one after another (default 50, `LILYPAD_BENCH_JOBS`), each timed
//!    from sending `runJob` to the result on-chain (the moment the client's callback runs),
//!    interleaved with N bare `docker run --rm --network none` of the same image and command;
//!    p50 and p99 of both, the overhead in ms and as a ratio;
//! 2. throughput: 20 jobs requested at once (`LILYPAD_BENCH_CONCURRENCY`), jobs completed per
//!    second until the last result is on-chain, beside 20 bare `docker run` started at once;
//! 3. gas: what every transaction of those jobs used, per function, from their receipts, and the
//!    happy path's total beside the contracts' gas snapshot;
//! 4. a burst above capacity: 60 jobs at once (`LILYPAD_BENCH_BURST`) on a fresh stack whose
//!    provider has room for 4 (`LILYPAD_BENCH_BURST_CAPACITY`), from the first request to the last
//!    result on-chain, as a ratio to (jobs / capacity) x the time of one full wave (`capacity`
//!    jobs requested together, first request to last result) on the same stack: the solver's
//!    order book should keep the provider as busy as a wave does (target 1.2). The ratio to
//!    (jobs / capacity) x one job alone is printed too; it also counts what running `capacity`
//!    containers at once costs the machine.
//!
//! `LILYPAD_BENCH_ONLY=burst` runs only the burst.
//!
//! Run: `cargo bench -p lilypad-cli --bench e2e` (or `./script/bench`). It prints figures and
//! asserts nothing about time; it fails only if a job does not complete.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use common::{Options, Stack};
use lilypad_bindings::Lilypad;
use lilypad_e2e::{dev_keys, eventually_every};
use lilypad_testkit::{job_request, reader};
use lilypad_types::JobStatus;

const MESSAGE: &str = "moo";
const MAX_PRICE: u128 = 10_000_000_000_000_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The same container as a job, started by the `docker` CLI (the harness's `docker_run`).
fn bare_docker_run() -> Duration {
    lilypad_e2e::timed_docker_run("lilypad/cowsay:1.0.0", &["/usr/bin/cowsay", MESSAGE])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Client {
    lilypad: Lilypad::LilypadInstance<DynProvider>,
}

impl Client {
    async fn new(stack: &Stack) -> Self {
        stack.chain.approve(dev_keys::CLIENT, U256::MAX).await;
        Self {
            lilypad: stack.chain.lilypad_as(dev_keys::CLIENT),
        }
    }

    fn request(&self) -> Lilypad::JobRequest {
        Lilypad::JobRequest {
            maxPrice: U256::from(MAX_PRICE),
            matchTimeout: 120,
            executionTimeout: 120,
            ..job_request("cowsay", "1.0.0", &[("message", MESSAGE)])
        }
    }

    /// Sends runJob and returns the job id once it is mined.
    async fn run_job(&self) -> U256 {
        let receipt = self
            .lilypad
            .runJob(self.request())
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        receipt
            .decoded_log::<Lilypad::JobRequested>()
            .unwrap()
            .data
            .jobId
    }

    async fn status(&self, job: U256) -> JobStatus {
        let job = self.lilypad.getJob(job).call().await.unwrap();
        job.state()
            .unwrap_or_else(|| panic!("unknown job status {}", job.status))
    }

    /// Waits for the job's result on-chain; returns when it was agreed and when it landed.
    async fn wait_result(&self, job: U256, t0: Instant, stack: &Stack) -> (Duration, Duration) {
        let mut agreed = None;
        let what = format!("job {job}'s result lands");
        // Polled every 5 ms: the time to the result is what is measured.
        eventually_every(
            Duration::from_millis(5),
            Duration::from_secs(120),
            &what,
            async || {
                let s = self.status(job).await;
                if s >= JobStatus::Agreed && agreed.is_none() {
                    agreed = Some(t0.elapsed());
                }
                if s >= JobStatus::ResultSubmitted {
                    assert!(
                        s == JobStatus::ResultSubmitted || s == JobStatus::Settled,
                        "job {job} ended in state {s}"
                    );
                    return Ok((agreed.unwrap_or_default(), t0.elapsed()));
                }
                Err(format!(
                    "stuck in state {s}\nrelayer:\n{}\nprovider:\n{}",
                    stack.log("relayer"),
                    stack.log("provider")
                ))
            },
        )
        .await
    }
}

#[tokio::main]
async fn main() {
    if std::env::var("LILYPAD_BENCH_ONLY").as_deref() != Ok("burst") {
        figures().await;
    }
    burst().await;
}

/// A burst of jobs above the provider's capacity, beside (jobs / capacity) x one job's time.
async fn burst() {
    let jobs = env_usize("LILYPAD_BENCH_BURST", 60);
    let capacity = env_usize("LILYPAD_BENCH_BURST_CAPACITY", 4).max(1);
    let poll = std::env::var("LILYPAD_BENCH_POLL").unwrap_or_else(|_| "100ms".into());
    eprintln!("burst: starting a stack whose provider has room for {capacity} cowsay jobs...");
    let stack = Stack::start(Options {
        poll_interval: Box::leak(poll.into_boxed_str()),
        // cowsay needs 0.5 CPU and 32 MiB: the CPU is what limits.
        provider_args: vec![
            "--cpu-millis".into(),
            (capacity as u64 * 500).to_string(),
            "--memory".into(),
            "16GiB".into(),
        ],
        ..Options::default()
    })
    .await;
    let client = Client::new(&stack).await;
    let request = Lilypad::JobRequest {
        matchTimeout: 900,
        ..client.request()
    };
    eprintln!("burst: one job at a time (3 to warm up, then 5 timed)");
    let mut single = Vec::new();
    for i in 0..8 {
        let t0 = Instant::now();
        let job = client.run_job().await;
        let (_, done) = client.wait_result(job, t0, &stack).await;
        if i >= 3 {
            single.push(done);
        }
    }
    single.sort();
    let single = percentile(&single, 50.0);

    // One job's time at the provider's full load: `capacity` jobs requested together, from the
    // first request to the last result (the median of 3 such waves). On a machine with fewer
    // cores than slots, running `capacity` containers at once is slower than one alone, and that
    // is the machine's, not the order book's: this is the denominator that measures the book.
    eprintln!("burst: {capacity} jobs at once (one full wave), 3 times");
    let mut waves = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let ids = request_all(&client, &request, capacity).await;
        for id in &ids {
            client.wait_result(*id, t0, &stack).await;
        }
        waves.push(t0.elapsed());
    }
    waves.sort();
    let wave = percentile(&waves, 50.0);

    eprintln!("burst: {jobs} jobs requested at once");
    let t0 = Instant::now();
    let ids = request_all(&client, &request, jobs).await;
    for id in &ids {
        client.wait_result(*id, t0, &stack).await;
    }
    let all = t0.elapsed();
    let expected = single.mul_f64(jobs as f64 / capacity as f64);
    let expected_loaded = wave.mul_f64(jobs as f64 / capacity as f64);
    keep_logs(&stack, "e2e-burst-logs");

    // What this machine does with the same containers, `capacity` at a time, without Lilypad:
    // on few cores, running several at once is not free, and this shows how much of the ratio
    // is the machine's.
    eprintln!("burst: {jobs} bare docker runs, {capacity} at a time");
    let t0 = Instant::now();
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(jobs));
    let workers: Vec<_> = (0..capacity)
        .map(|_| {
            let left = std::sync::Arc::clone(&left);
            std::thread::spawn(move || {
                while left
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    bare_docker_run();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let bare = t0.elapsed();
    println!();
    println!("## Burst above capacity: {jobs} cowsay jobs at once, room for {capacity}");
    println!();
    println!("| | time |");
    println!("|---|---|");
    println!(
        "| one job alone (median of 5, same stack) | {:.0} ms |",
        ms(single)
    );
    println!(
        "| (jobs / capacity) x one job alone | {:.0} ms |",
        ms(expected)
    );
    println!(
        "| one full wave: {capacity} jobs at once, first request -> last result (median of 3) | {:.0} ms |",
        ms(wave)
    );
    println!(
        "| (jobs / capacity) x one full wave | {:.0} ms |",
        ms(expected_loaded)
    );
    println!(
        "| the burst: first request sent -> last result on-chain | {:.0} ms |",
        ms(all)
    );
    println!(
        "| **ratio** (burst / ((jobs / capacity) x one full wave); target 1.2) | **{:.2}** |",
        all.as_secs_f64() / expected_loaded.as_secs_f64()
    );
    println!(
        "| ratio (burst / ((jobs / capacity) x one job alone)) | {:.2} |",
        all.as_secs_f64() / expected.as_secs_f64()
    );
    println!(
        "| bare `docker run`, {jobs} of them, {capacity} at a time | {:.0} ms |",
        ms(bare)
    );
    println!(
        "| ratio (burst / bare `docker run` at the same concurrency) | {:.2} |",
        all.as_secs_f64() / bare.as_secs_f64()
    );
}

/// Sends `n` copies of `request` back to back (the wallet fills consecutive nonces; every one is
/// sent before any receipt is awaited) and returns their job ids.
async fn request_all(client: &Client, request: &Lilypad::JobRequest, n: usize) -> Vec<U256> {
    let mut pending = Vec::new();
    for _ in 0..n {
        pending.push(client.lilypad.runJob(request.clone()).send().await.unwrap());
    }
    let mut ids = Vec::new();
    for p in pending {
        let r = p.get_receipt().await.unwrap();
        ids.push(r.decoded_log::<Lilypad::JobRequested>().unwrap().data.jobId);
    }
    ids
}

/// Latency, throughput and gas on a stack with room for every concurrent job.
async fn figures() {
    let jobs = env_usize("LILYPAD_BENCH_JOBS", 50);
    let concurrency = env_usize("LILYPAD_BENCH_CONCURRENCY", 20);
    let poll = std::env::var("LILYPAD_BENCH_POLL").unwrap_or_else(|_| "100ms".into());
    eprintln!("starting the stack (release binaries; relayer poll interval {poll})...");
    let stack = Stack::start(Options {
        poll_interval: Box::leak(poll.clone().into_boxed_str()),
        // Room for every concurrent job at once, as bare Docker has.
        provider_args: vec![
            "--cpu-millis".into(),
            (concurrency as u64 * 1000).to_string(),
            "--memory".into(),
            "16GiB".into(),
        ],
        ..Options::default()
    })
    .await;
    let client = Client::new(&stack).await;

    eprintln!("warming up (3 jobs, 3 docker runs)...");
    for _ in 0..3 {
        let t0 = Instant::now();
        let job = client.run_job().await;
        client.wait_result(job, t0, &stack).await;
        bare_docker_run();
    }

    eprintln!("latency: {jobs} jobs through the stack, {jobs} bare docker runs, interleaved");
    let mut e2e = Vec::new();
    let mut to_agreed = Vec::new();
    let mut docker = Vec::new();
    for i in 0..jobs {
        let t0 = Instant::now();
        let job = client.run_job().await;
        let (agreed, done) = client.wait_result(job, t0, &stack).await;
        e2e.push(done);
        to_agreed.push(agreed);
        docker.push(bare_docker_run());
        if (i + 1) % 10 == 0 {
            eprintln!("  {} / {jobs}", i + 1);
        }
    }
    for v in [&mut e2e, &mut to_agreed, &mut docker] {
        v.sort();
    }

    eprintln!(
        "throughput: {concurrency} jobs requested at once, then {concurrency} docker runs at once"
    );
    let t0 = Instant::now();
    let ids = request_all(&client, &client.request(), concurrency).await;
    for id in &ids {
        client.wait_result(*id, t0, &stack).await;
    }
    let e2e_batch = t0.elapsed();
    let t0 = Instant::now();
    let runs: Vec<_> = (0..concurrency)
        .map(|_| std::thread::spawn(bare_docker_run))
        .collect();
    for r in runs {
        r.join().unwrap();
    }
    let docker_batch = t0.elapsed();

    // Let the relayer settle the last jobs before reading gas.
    let last = *ids.last().unwrap();
    stack.wait_state(last.to::<u64>(), JobStatus::Settled).await;
    let gas = gas_by_function(&stack).await;

    keep_logs(&stack, "e2e-bench-logs");

    let (p50, p99) = (percentile(&e2e, 50.0), percentile(&e2e, 99.0));
    let (d50, d99) = (percentile(&docker, 50.0), percentile(&docker, 99.0));
    println!();
    println!("## End-to-end latency, cowsay, {jobs} jobs (request sent -> result on-chain)");
    println!();
    println!("| | p50 | p99 | min |");
    println!("|---|---|---|---|");
    println!(
        "| through Lilypad | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(p50),
        ms(p99),
        ms(e2e[0])
    );
    println!(
        "| of which: request -> deal agreed on-chain | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(percentile(&to_agreed, 50.0)),
        ms(percentile(&to_agreed, 99.0)),
        ms(to_agreed[0])
    );
    println!(
        "| bare `docker run --rm --network none` | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(d50),
        ms(d99),
        ms(docker[0])
    );
    println!(
        "| overhead (Lilypad - docker run) | {:.0} ms | {:.0} ms | |",
        ms(p50) - ms(d50),
        ms(p99) - ms(d99)
    );
    println!(
        "| ratio (Lilypad / docker run) | {:.2} | {:.2} | |",
        ms(p50) / ms(d50),
        ms(p99) / ms(d99)
    );
    println!();
    println!("## Throughput, {concurrency} jobs at once");
    println!();
    println!("| | time for all | jobs/s |");
    println!("|---|---|---|");
    let tput = concurrency as f64 / e2e_batch.as_secs_f64();
    let dput = concurrency as f64 / docker_batch.as_secs_f64();
    println!("| through Lilypad | {:.0} ms | {tput:.2} |", ms(e2e_batch));
    println!(
        "| bare `docker run` | {:.0} ms | {dput:.2} |",
        ms(docker_batch)
    );
    println!("| ratio (Lilypad / docker run) | | {:.2} |", tput / dput);
    println!();
    println!("## Gas per job (mean gasUsed from the receipts of this run)");
    println!();
    println!("| call | transactions | mean gas |");
    println!("|---|---|---|");
    let mut happy = 0u64;
    for (name, (n, total)) in &gas {
        let mean = total / n;
        if ["runJob", "agreeDeal", "submitResult", "settle"].contains(&name.as_str()) {
            happy += mean;
        }
        println!("| {name} | {n} | {mean} |");
    }
    println!("| **happy path (runJob + agreeDeal + submitResult + settle)** | | **{happy}** |");
    if let Some(snap) = snapshot_happy_path() {
        println!("| same, from contracts/snapshots/Lilypad.json | | {snap} |");
    }
}

/// Keeps the services' logs of a run in `target/tmp/<dir>` for a look at where the time went.
fn keep_logs(stack: &Stack, dir: &str) {
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    for name in ["relayer", "solver", "provider"] {
        let _ = std::fs::copy(stack.log_path(name), logs.join(format!("{name}.log")));
    }
    eprintln!("the services' logs of this run: {}", logs.display());
}

/// Mean gas of every transaction to the Lilypad contract, by function, from the receipts.
async fn gas_by_function(stack: &Stack) -> BTreeMap<String, (u64, u64)> {
    let p = reader(&stack.chain.url());
    let head = p.get_block_number().await.unwrap();
    let names: BTreeMap<[u8; 4], &str> = [
        (
            <Lilypad::runJobCall as alloy::sol_types::SolCall>::SELECTOR,
            "runJob",
        ),
        (
            <Lilypad::agreeDealCall as alloy::sol_types::SolCall>::SELECTOR,
            "agreeDeal",
        ),
        (
            <Lilypad::submitResultCall as alloy::sol_types::SolCall>::SELECTOR,
            "submitResult",
        ),
        (
            <Lilypad::settleCall as alloy::sol_types::SolCall>::SELECTOR,
            "settle",
        ),
        (
            <Lilypad::settleManyCall as alloy::sol_types::SolCall>::SELECTOR,
            "settleMany",
        ),
    ]
    .into_iter()
    .collect();
    let lilypad: Address = stack.lilypad;
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for n in 0..=head {
        let Some(block) = p.get_block_by_number(n.into()).full().await.unwrap() else {
            continue;
        };
        for tx in block.transactions.txns() {
            use alloy::consensus::Transaction as _;
            if tx.to() != Some(lilypad) || tx.input().len() < 4 {
                continue;
            }
            let selector: [u8; 4] = tx.input()[..4].try_into().unwrap();
            let Some(name) = names.get(&selector) else {
                continue;
            };
            let receipt = p
                .get_transaction_receipt(*tx.inner.tx_hash())
                .await
                .unwrap()
                .unwrap();
            let e = out.entry((*name).to_owned()).or_default();
            e.0 += 1;
            e.1 += receipt.gas_used;
        }
    }
    out
}

/// The happy path's gas from the contracts' named snapshots, when they are there.
fn snapshot_happy_path() -> Option<u64> {
    let path = lilypad_e2e::contracts_path().join("snapshots/Lilypad.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let obj = json.as_object()?;
    let get = |key: &str| -> Option<u64> { obj.get(key)?.as_str()?.parse().ok() };
    Some(
        get("runJob_steady")?
            + get("agreeDeal_steady")?
            + get("submitResult_noopCallback_steady")?
            + get("settle_steady")?,
    )
}
