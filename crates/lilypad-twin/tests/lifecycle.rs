//! The twin runs the real compiled contracts: jobs go through their whole life in process and
//! every balance is the contracts' own arithmetic.

#![allow(clippy::unwrap_used)]

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::Lilypad;
use lilypad_twin::market::{TREASURY, cowsay_request};
use lilypad_twin::{Market, TwinError};

const MAX_PRICE: u64 = 1_000_000;
const PRICE: u64 = 800_000;

fn request() -> Lilypad::JobRequest {
    cowsay_request(U256::from(MAX_PRICE), 60)
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

/// With every result audited, a provider that reports another output than the module's is
/// caught by the protocol's audit in process: three mediators re-run it (here: vote the honest
/// output's commitment), the result is overturned and its results collateral slashed.
#[test]
fn a_cheat_is_caught_by_a_protocol_audit_and_slashed() {
    let (mut m, client, provider) = market();
    m.add_mediation(3, 2, 1_000).unwrap();
    for i in 0..3 {
        m.add_mediator(Address::repeat_byte(0xd0 + i), U256::from(10_000))
            .unwrap();
    }
    let mut params = m.params().unwrap();
    params.auditBps = 10_000;
    m.set_params(params).unwrap();
    let job = m.run_job(client, request()).unwrap();
    m.agree(job, &provider, U256::from(PRICE)).unwrap();
    m.submit(job, &provider, "bafy-twin", b"hacked").unwrap();
    assert!(m.audit(Address::repeat_byte(0xa0), job).unwrap(), "drawn");
    let truth = lilypad_bindings::eip712::result_commitment(1, 0, b"bafy-twin", b"moo");
    m.mediate(job, |_| truth).unwrap();
    assert_eq!(m.job(job.id).unwrap().status, 8, "Overturned");
    let record = m.reputation(provider.address()).unwrap();
    assert_eq!((record.audited, record.overturned), (1, 1));
    assert_eq!(
        record.slashed,
        2 * u128::from(PRICE),
        "its 2x results collateral"
    );
}
