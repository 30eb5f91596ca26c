//! Jobs through their whole life per second in the twin, on one core: `runJob`, the signed deal,
//! the signed result and `settle`, each executed by revm on the real contracts. Prints figures;
//! asserts nothing about time. `LILYPAD_TWIN_BENCH_JOBS` (default 2000) sets the count.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use lilypad_twin::Market;
use lilypad_twin::market::cowsay_request;

fn main() {
    let jobs: u64 = std::env::var("LILYPAD_TWIN_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let mut m = Market::deploy().unwrap();
    let client = Address::repeat_byte(0xc1);
    m.fund(client, U256::from(jobs) * U256::from(1_000_000u64))
        .unwrap();
    let provider = PrivateKeySigner::random();
    m.add_provider(provider.address(), U256::from(1_000_000_000u64))
        .unwrap();
    let request = cowsay_request(U256::from(1_000_000u64), 0);
    let (tx_before, gas_before) = (m.chain.transactions, m.chain.gas_used);
    let started = Instant::now();
    for _ in 0..jobs {
        let job = m.run_job(client, request.clone()).unwrap();
        m.agree(job, &provider, U256::from(800_000u64)).unwrap();
        m.submit(job, &provider, "bafy-twin", b"moo").unwrap();
        m.chain.mine(1);
        m.settle(client, job).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let transactions = m.chain.transactions - tx_before;
    let gas = m.chain.gas_used - gas_before;
    println!(
        "twin: {jobs} full lifecycles ({transactions} transactions, {gas} gas) in {secs:.2} s"
    );
    println!(
        "twin: {:.0} jobs/s, {:.0} transactions/s; 10,000 jobs would take {:.1} s (target: under 10 s)",
        jobs as f64 / secs,
        transactions as f64 / secs,
        10_000.0 * secs / jobs as f64
    );
}
