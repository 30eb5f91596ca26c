//! The solver's view of a job on a real chain: open while it waits for a deal, closed once the
//! match deadline passes or when the request hash does not match.

#![allow(clippy::unwrap_used)]

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::{Lilypad, LilypadToken};
use lilypad_e2e::{Anvil, deploy_contracts, dev_keys, json_rpc};
use lilypad_solver::service::{JobChain, RpcJobChain};
use lilypad_types::JobKey;

#[tokio::test]
async fn a_job_is_open_until_its_match_deadline_and_only_for_its_own_request() {
    let anvil = Anvil::start(31337).unwrap();
    let d = deploy_contracts(&anvil, &[dev_keys::ADDRESSES[1]]).unwrap();
    let lilypad_addr: Address = d["lilypad"].as_str().unwrap().parse().unwrap();
    let token: Address = d["token"].as_str().unwrap().parse().unwrap();
    let signer: PrivateKeySigner = dev_keys::CLIENT.parse().unwrap();
    let client = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.url().parse().unwrap())
        .erased();
    let token = LilypadToken::new(token, &client);
    token
        .approve(lilypad_addr, U256::MAX)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let request = Lilypad::JobRequest {
        module: "cowsay".into(),
        version: "1.0.0".into(),
        inputs: vec![],
        maxPrice: U256::from(1000),
        matchTimeout: 60,
        executionTimeout: 60,
        callbackGasLimit: 0,
        maxOutputBytes: 0,
        resultsCollateralMultiplierBps: 0,
        challengeWindow: 0,
    };
    let lilypad = Lilypad::new(lilypad_addr, &client);
    let receipt = lilypad
        .runJob(request)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let ev = receipt.decoded_log::<Lilypad::JobRequested>().unwrap();
    let key = JobKey {
        chain_id: 31337,
        job_id: ev.data.jobId,
    };

    let chain = RpcJobChain::new(&anvil.url(), lilypad_addr).unwrap();
    let open = chain
        .open_job(key, ev.data.requestHash)
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
    json_rpc(anvil.service.port(), "evm_increaseTime", "[61]").unwrap();
    json_rpc(anvil.service.port(), "evm_mine", "[]").unwrap();
    assert_eq!(
        chain.open_job(key, ev.data.requestHash).await.unwrap(),
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
