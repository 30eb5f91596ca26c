//! The solver's view of a job on a real chain: open while it waits for a deal, closed once the
//! match deadline passes or when the request hash does not match.

#![allow(clippy::unwrap_used)]

use alloy::primitives::{B256, U256};
use lilypad_bindings::Lilypad;
use lilypad_e2e::dev_keys;
use lilypad_solver::service::{JobChain, RpcJobChain};
use lilypad_testkit::{TestChain, job_request};
use lilypad_types::JobKey;

#[tokio::test]
async fn a_job_is_open_until_its_match_deadline_and_only_for_its_own_request() {
    let test_chain = TestChain::deploy(31337, &[dev_keys::ADDRESSES[1]]);
    test_chain.approve(dev_keys::CLIENT, U256::MAX).await;
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(1000),
        matchTimeout: 60,
        executionTimeout: 60,
        maxOutputBytes: 0,
        ..job_request("cowsay", "1.0.0", &[])
    };
    let requested = test_chain.run_job(dev_keys::CLIENT, request).await;
    let key = JobKey {
        chain_id: 31337,
        job_id: requested.job_id,
    };

    let chain = RpcJobChain::new(&test_chain.url(), test_chain.lilypad).unwrap();
    let open = chain
        .open_job(key, requested.request_hash)
        .await
        .unwrap()
        .expect("open");
    assert_eq!(
        open.timeout_collateral_bps, 10_000,
        "the deployment's default: 1x the price"
    );
    assert_eq!(
        chain.open_job(key, B256::repeat_byte(1)).await.unwrap(),
        None,
        "another request"
    );

    // Past the match deadline the job can no longer be dealt.
    test_chain.advance(61);
    assert_eq!(
        chain.open_job(key, requested.request_hash).await.unwrap(),
        None
    );
    let unknown = JobKey {
        chain_id: 31337,
        job_id: U256::from(999),
    };
    assert_eq!(
        chain.open_job(unknown, B256::ZERO).await.unwrap(),
        None,
        "no such job"
    );
}
