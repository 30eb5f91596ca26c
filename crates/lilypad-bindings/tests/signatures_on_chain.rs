//! Signatures made in Rust are the ones the deployed contract verifies: a provider's deal and
//! result signed here are accepted by Lilypad on anvil, and the same signatures are refused for
//! another chain, another deployment, another job or another signer. The job stores the result
//! commitment computed in Rust.

#![allow(clippy::unwrap_used)]

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::Lilypad;
use lilypad_bindings::eip712::{self, Deal, domain, result_message, sign_deal, sign_result};
use lilypad_e2e::dev_keys;
use lilypad_testkit::{TestChain, job_request};

const CHAIN: u64 = 31337;
const PRICE: u64 = 1_000_000;

/// The deployed contracts; the provider registered with collateral, the client approved to pay.
async fn world() -> TestChain {
    let w = TestChain::deploy(CHAIN, &[dev_keys::ADDRESSES[1], dev_keys::ADDRESSES[2]]);
    w.register_provider(
        dev_keys::PROVIDER,
        "https://provider.example",
        U256::from(100 * PRICE),
    )
    .await;
    w.approve(dev_keys::CLIENT, U256::MAX).await;
    w
}

async fn request_job(w: &TestChain) -> (U256, B256) {
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(2 * PRICE),
        maxOutputBytes: 64,
        resultsCollateralMultiplierBps: 20_000,
        ..job_request("sha256", "v0.1.0", &[("text", "abc")])
    };
    let job = w.run_job(dev_keys::CLIENT, request).await;
    (job.job_id, job.request_hash)
}

fn deal_for(job: U256, request_hash: B256, provider: Address) -> Deal {
    Deal {
        jobId: job,
        requestHash: request_hash,
        provider,
        price: U256::from(PRICE),
        timeoutCollateral: U256::from(PRICE), // 100% of the price: the default minimum
        resultsCollateral: U256::from(2 * PRICE), // the client's 2x
        expiry: U256::from(u64::MAX),
    }
}

fn to_abi(d: &Deal) -> Lilypad::Deal {
    Lilypad::Deal {
        jobId: d.jobId,
        requestHash: d.requestHash,
        provider: d.provider,
        price: d.price,
        timeoutCollateral: d.timeoutCollateral,
        resultsCollateral: d.resultsCollateral,
        expiry: d.expiry,
    }
}

#[tokio::test]
async fn a_deal_and_result_signed_in_rust_are_accepted_by_the_contract() {
    let w = world().await;
    let provider: PrivateKeySigner = dev_keys::PROVIDER.parse().unwrap();
    let lilypad = w.lilypad_as(dev_keys::RELAYER); // anyone may submit
    let dom = domain(CHAIN, w.lilypad);

    // The contract computes the same type hashes and domain.
    assert_eq!(
        lilypad.DEAL_TYPEHASH().call().await.unwrap(),
        eip712::deal_typehash()
    );
    assert_eq!(
        lilypad.RESULT_TYPEHASH().call().await.unwrap(),
        eip712::result_typehash()
    );
    assert_eq!(
        lilypad.domainSeparator().call().await.unwrap(),
        dom.separator()
    );

    let (job, request_hash) = request_job(&w).await;
    let deal = deal_for(job, request_hash, provider.address());
    let sig = sign_deal(&provider, &dom, &deal).unwrap();
    let agree = lilypad.agreeDeal(to_abi(&deal), Bytes::from(sig.as_bytes().to_vec()));
    let receipt = agree.send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert!(receipt.decoded_log::<Lilypad::DealAgreed>().is_some());

    let output = b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let cid = b"bafkreidummycidforthetest";
    let result = result_message(job, 1, cid, output, 0, "");
    let sig = sign_result(&provider, &dom, &result).unwrap();
    let data = Lilypad::ResultData {
        jobId: job,
        status: 1,
        resultCid: Bytes::from(cid.to_vec()),
        exitCode: 0,
        error: String::new(),
    };
    let submit = lilypad.submitResult(
        data,
        Bytes::from(output.to_vec()),
        Bytes::from(sig.as_bytes().to_vec()),
    );
    let receipt = submit.send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let ev = receipt.decoded_log::<Lilypad::ResultSubmitted>().unwrap();
    assert_eq!(ev.data.output.as_ref(), output);
    let stored = lilypad.getJob(job).call().await.unwrap();
    assert_eq!(stored.provider, provider.address());
    // The contract commits to the whole result, as computed here and as mediators vote it.
    assert_eq!(
        stored.resultHash,
        eip712::result_commitment(1, 0, cid, output)
    );
    assert_eq!(
        lilypad
            .resultCommitment(1, 0, Bytes::from(cid.to_vec()), keccak256(output))
            .call()
            .await
            .unwrap(),
        stored.resultHash
    );
}

#[tokio::test]
async fn signatures_do_not_travel_to_another_chain_contract_job_or_signer() {
    let w = world().await;
    let provider: PrivateKeySigner = dev_keys::PROVIDER.parse().unwrap();
    let lilypad = w.lilypad_as(dev_keys::RELAYER);
    let (job, request_hash) = request_job(&w).await;
    let deal = deal_for(job, request_hash, provider.address());

    let stranger = PrivateKeySigner::random();
    let attempts = [
        (
            "another chain id",
            sign_deal(&provider, &domain(CHAIN + 1, w.lilypad), &deal),
        ),
        (
            "another contract",
            sign_deal(&provider, &domain(CHAIN, Address::repeat_byte(9)), &deal),
        ),
        (
            "another signer",
            sign_deal(&stranger, &domain(CHAIN, w.lilypad), &deal),
        ),
    ];
    for (what, sig) in attempts {
        let sig = Bytes::from(sig.unwrap().as_bytes().to_vec());
        let err = lilypad
            .agreeDeal(to_abi(&deal), sig)
            .call()
            .await
            .expect_err(what);
        let decoded = err.as_decoded_interface_error::<Lilypad::LilypadErrors>();
        assert!(
            matches!(decoded, Some(Lilypad::LilypadErrors::InvalidSignature(_))),
            "{what}: {err}"
        );
    }

    // A valid signature for one job does not agree another.
    let (other_job, _) = request_job(&w).await;
    let sig = sign_deal(&provider, &domain(CHAIN, w.lilypad), &deal).unwrap();
    let mut moved = deal.clone();
    moved.jobId = other_job;
    let sig = Bytes::from(sig.as_bytes().to_vec());
    let err = lilypad
        .agreeDeal(to_abi(&moved), sig)
        .call()
        .await
        .unwrap_err();
    assert!(
        err.as_decoded_interface_error::<Lilypad::LilypadErrors>()
            .is_some(),
        "{err}"
    );
}
