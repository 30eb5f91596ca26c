//! A burst above the provider's capacity, end to end with the real binaries: every job waits in
//! the solver's book until the provider has room, and none expires.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use alloy::primitives::U256;
use common::{MAX_PRICE, Options, Stack};
use lilypad_bindings::Lilypad;
use lilypad_e2e::{dev_keys, eventually};
use lilypad_testkit::job_request;
use lilypad_types::JobStatus;

/// Room for two cowsay jobs at once (each needs 0.5 CPU).
const CAPACITY_JOBS: usize = 2;
const JOBS: usize = 3 * CAPACITY_JOBS;

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_three_times_the_providers_capacity_all_succeeds_and_none_expires() {
    let stack = Stack::start(Options {
        provider_args: vec![
            "--cpu-millis".into(),
            (CAPACITY_JOBS as u64 * 500).to_string(),
        ],
        ..Options::default()
    })
    .await;
    stack.chain.approve(dev_keys::CLIENT, U256::MAX).await;
    let lilypad = stack.chain.lilypad_as(dev_keys::CLIENT);
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(MAX_PRICE),
        matchTimeout: 120,
        ..job_request("cowsay", "1.0.0", &[("message", "burst")])
    };
    // Sent back to back, as many clients at once would; the wallet fills consecutive nonces.
    let mut pending = Vec::new();
    for _ in 0..JOBS {
        pending.push(lilypad.runJob(request.clone()).send().await.unwrap());
    }
    let mut ids = Vec::new();
    for p in pending {
        let receipt = p.get_receipt().await.unwrap();
        ids.push(
            receipt
                .decoded_log::<Lilypad::JobRequested>()
                .unwrap()
                .data
                .jobId
                .to::<u64>(),
        );
    }
    assert_eq!(ids.len(), JOBS);

    eventually(
        Duration::from_secs(180),
        "every job of the burst has its result on-chain",
        async || {
            let mut states = Vec::new();
            for id in &ids {
                let state = stack.state(*id).await;
                assert!(
                    !matches!(state, JobStatus::Expired | JobStatus::TimedOut),
                    "job {id} ended {state} although the provider had room again soon after:\nsolver:\n{}",
                    stack.log("solver")
                );
                states.push(state);
            }
            let done = states
                .iter()
                .filter(|s| matches!(s, JobStatus::ResultSubmitted | JobStatus::Settled))
                .count();
            if done == JOBS {
                Ok(())
            } else {
                Err(format!("{done} of {JOBS} done; states {states:?}"))
            }
        },
    )
    .await;
}
