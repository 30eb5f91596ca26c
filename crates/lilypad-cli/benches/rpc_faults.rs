//! RPC-fault benchmark: how much longer 30 jobs take when the relayer, the solver and the
//! provider reach the chain through a flaky endpoint.
//!
//! Starts the whole stack with the release binaries, the services behind the harness's
//! fault-injecting JSON-RPC proxy (`lilypad_e2e::FaultyRpc`: HTTP 503, 0.5-3 s delays, resets,
//! garbage bodies, answers lost after the node acted), then requests 30 cowsay jobs at once
//! through a counting client contract at 0%, 5% and 25% faults (seeded), each batch timed from
//! the first request to the last callback (every result on-chain), and prints the times as ratios
//! to the fault-free batch beside the targets (5%: within 1.5x, 25%: within 3x).
//!
//! Run: `cargo bench -p lilypad-cli --bench rpc_faults` (or `./script/bench`). Knobs:
//! `LILYPAD_BENCH_FAULT_JOBS` (30), `LILYPAD_BENCH_FAULT_SEED` (1). It prints figures and asserts
//! nothing about time; it fails only if a job is not called back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::counting::{Counting, Until, room_for};
use common::{Options, Stack};
use lilypad_e2e::FaultPlan;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let jobs: usize = env_or("LILYPAD_BENCH_FAULT_JOBS", 30);
    let seed: u64 = env_or("LILYPAD_BENCH_FAULT_SEED", 1);
    // (fault rate, target ratio to the fault-free batch)
    let runs = [(0.0, None), (0.05, Some(1.5)), (0.25, Some(3.0))];
    eprintln!("starting the stack (release binaries) behind the fault-injecting RPC proxy...");
    let stack = Stack::start(Options {
        rpc_faults: Some(FaultPlan::random(0.0, seed)),
        poll_interval: "100ms",
        provider_args: room_for(jobs),
        ..Options::default()
    })
    .await;
    let proxy = stack.faulty.as_ref().unwrap();
    let counting = Counting::deploy(&stack, jobs * (runs.len() + 1)).await;

    eprintln!("warming up ({jobs} jobs, no faults)...");
    let ids = counting.request(jobs).await;
    counting.wait(&stack, &ids, Until::CalledBack).await;

    let mut rows: Vec<(f64, Option<f64>, Duration, String)> = Vec::new();
    for (rate, target) in runs {
        eprintln!("{jobs} jobs at {:.0}% RPC faults...", rate * 100.0);
        proxy.set_rate(rate);
        let before = proxy.stats();
        let t0 = Instant::now();
        let ids = counting.request(jobs).await;
        counting.wait(&stack, &ids, Until::CalledBack).await;
        let took = t0.elapsed();
        proxy.set_rate(0.0);
        let after = proxy.stats();
        counting.assert_one_successful_callback_each(&ids).await;
        let faults = format!(
            "{} of {}",
            after.faulted() - before.faulted(),
            after.seen() - before.seen()
        );
        rows.push((rate, target, took, faults));
    }

    // Keep the services' logs of this run for a look at where the time went.
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rpc-faults-bench-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    for name in ["relayer", "solver", "provider"] {
        let _ = std::fs::copy(stack.log_path(name), logs.join(format!("{name}.log")));
    }
    eprintln!("the services' logs of this run: {}", logs.display());

    let base = rows[0].2.as_secs_f64();
    println!();
    println!(
        "## {jobs} jobs through a flaky RPC endpoint (request sent -> every callback on-chain; seed {seed})"
    );
    println!();
    println!("| RPC faults | time | ratio to fault-free | target | requests faulted |");
    println!("|---|---|---|---|---|");
    for (rate, target, took, faults) in &rows {
        let ratio = took.as_secs_f64() / base;
        let target = target.map_or("".to_owned(), |t| {
            let verdict = if ratio <= t { "met" } else { "missed" };
            format!("within {t}x ({verdict})")
        });
        println!(
            "| {:.0}% | {:.1} s | {ratio:.2}x | {target} | {faults} |",
            rate * 100.0,
            took.as_secs_f64()
        );
    }
    println!();
    let stats = proxy.stats();
    println!("proxy, whole run: {stats}");
    println!();
    println!("| method (whole run, busiest first) | requests | faulted |");
    println!("|---|---|---|");
    let mut methods: Vec<_> = stats.methods.iter().collect();
    methods.sort_by_key(|(_, m)| std::cmp::Reverse(m.seen));
    for (name, m) in methods.iter().take(12) {
        println!(
            "| `{name}` | {} | {} |",
            m.seen,
            m.faulted.values().sum::<u64>()
        );
    }
}
