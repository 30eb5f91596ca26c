//! Jobs through their whole life per second in the twin, on one core: `runJob`, the signed deal,
//! the signed result, `settle` and the provider's `withdraw` of its pay (five transactions), each
//! executed by revm on the real contracts. Prints figures,
//! with the time each step takes and what one EIP-712 signature costs of it; asserts nothing
//! about time. `LILYPAD_TWIN_BENCH_JOBS` (default 2000) sets the count.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use lilypad_twin::Market;
use lilypad_twin::market::cowsay_request;

/// Signatures timed for the per-signature figure.
const SIGNATURES: u32 = 500;

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
    // time spent in runJob, agree, submit, settle and withdraw
    let mut steps = [Duration::ZERO; 5];
    let started = Instant::now();
    for _ in 0..jobs {
        let t0 = Instant::now();
        let job = m.run_job(client, request.clone()).unwrap();
        let t1 = Instant::now();
        m.agree(job, &provider, U256::from(800_000u64)).unwrap();
        let t2 = Instant::now();
        m.submit(job, &provider, "bafy-twin", b"moo").unwrap();
        let t3 = Instant::now();
        m.chain.mine(1);
        m.settle(client, job).unwrap();
        let t4 = Instant::now();
        assert!(!m.withdraw(provider.address()).unwrap().is_zero());
        let t5 = Instant::now();
        for (step, (a, b)) in
            steps
                .iter_mut()
                .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)])
        {
            *step += b - a;
        }
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
    let us = |d: Duration| d.as_secs_f64() * 1e6 / jobs.max(1) as f64;
    let signing = Instant::now();
    for i in 0..SIGNATURES {
        provider
            .sign_hash_sync(&B256::left_padding_from(&i.to_be_bytes()))
            .unwrap();
    }
    let signature = signing.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES);
    println!(
        "twin: per job {:.0} us: runJob {:.0}, agree {:.0} (getJob, a signature, agreeDeal), \
         submit {:.0} (a signature, submitResult), settle {:.0}, withdraw {:.0}; one signature \
         {signature:.0} us",
        us(Duration::from_secs_f64(secs)),
        us(steps[0]),
        us(steps[1]),
        us(steps[2]),
        us(steps[3]),
        us(steps[4]),
    );
}
