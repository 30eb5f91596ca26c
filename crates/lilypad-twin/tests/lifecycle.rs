//! The twin runs the real compiled contracts: jobs go through their whole life in process and
//! every balance is the contracts' own arithmetic.

#![allow(clippy::unwrap_used)]

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::Lilypad;
use lilypad_twin::market::TREASURY;
use lilypad_twin::{Market, TwinError};

const MAX_PRICE: u64 = 1_000_000;
const PRICE: u64 = 800_000;

fn request() -> Lilypad::JobRequest {
    Lilypad::JobRequest {
        module: "cowsay".into(),
        version: "1.0.0".into(),
        moduleId: B256::repeat_byte(1),
        deterministic: true,
        inputs: vec![Lilypad::InputParam {
            key: "message".into(),
            value: "moo".into(),
        }],
        maxPrice: U256::from(MAX_PRICE),
        matchTimeout: 600,
        executionTimeout: 600,
        callbackGasLimit: 0,
        maxOutputBytes: 256,
        resultsCollateralMultiplierBps: 20_000,
        challengeWindow: 60,
        extraAuditBps: 0,
        providers: vec![],
        minDelivered: 0,
        minReliabilityBps: 0,
    }
}

/// A market with a 1% protocol fee, one funded client and one provider with collateral.
fn market() -> (Market, Address, PrivateKeySigner) {
    let mut m = Market::deploy().unwrap();
    let mut params = m.params().unwrap();
    params.protocolFeeBps = 100;
    m.set_params(params).unwrap();
    let client = Address::repeat_byte(0xc1);
    m.fund(client, U256::from(100 * MAX_PRICE)).unwrap();
    let provider = PrivateKeySigner::random();
    m.add_provider(provider.address(), U256::from(100 * MAX_PRICE))
        .unwrap();
    (m, client, provider)
}

#[test]
fn jobs_settle_in_process_with_the_contracts_own_fee_and_refund() {
    let (mut m, client, provider) = market();
    for _ in 0..3 {
        let job = m.run_job(client, request()).unwrap();
        m.agree(job, &provider, U256::from(PRICE)).unwrap();
        m.submit(job, &provider, "bafy-twin", b"moo").unwrap();
        m.chain.mine(61);
        m.settle(client, job).unwrap();
    }
    let fee = PRICE / 100;
    assert_eq!(
        m.credited(provider.address()).unwrap(),
        U256::from(3 * (PRICE - fee))
    );
    assert_eq!(m.credited(TREASURY).unwrap(), U256::from(3 * fee));
    assert_eq!(
        m.credited(client).unwrap(),
        U256::from(3 * (MAX_PRICE - PRICE))
    );
    // four deployments, the parameters, the client's mint and approval, the provider's mint,
    // approval, registration and deposit; then four transactions per job
    assert_eq!(m.chain.transactions, 4 + 1 + 2 + 4 + 3 * 4);
}

#[test]
fn a_refusal_is_the_contracts_custom_error_by_name() {
    let (mut m, client, provider) = market();
    let job = m.run_job(client, request()).unwrap();
    m.agree(job, &provider, U256::from(PRICE)).unwrap();
    m.submit(job, &provider, "bafy-twin", b"moo").unwrap();
    let early = m.settle(client, job).unwrap_err();
    assert!(
        matches!(&early, TwinError::Reverted { reason, .. } if reason.contains("DeadlineNotReached")),
        "{early}"
    );
}
