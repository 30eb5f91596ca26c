//! Calls that survive a flaky endpoint: the client against anvil behind the harness's
//! fault-injecting proxy ([`FaultyRpc`]), one fault kind at a time, and several endpoints of
//! which some are dead or failing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use lilypad_chain::{ChainClientError, HedgePolicy, RpcOptions, connect, connect_with_signer};
use lilypad_e2e::{Anvil, Fault, FaultPlan, FaultyRpc, dev_keys};

/// Short waits, so a test spends its time on the calls, not on backing off.
fn options() -> RpcOptions {
    RpcOptions::default().retry(10, Duration::from_millis(20))
}

/// Delays kept short for the same reason.
fn plan() -> FaultPlan {
    FaultPlan::none().delays(Duration::from_millis(20), Duration::from_millis(60))
}

#[tokio::test]
async fn a_read_is_answered_through_every_kind_of_fault() {
    let anvil = Anvil::start(31337).unwrap();
    let proxy = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    let client = connect(&proxy.url(), &options()).unwrap();
    for fault in Fault::ALL {
        // A delayed send is answered, so a delay rule would outlive its call.
        proxy.clear_rules();
        proxy.fail_method("eth_chainId", fault, 2);
        let before = proxy.stats();
        let id = client.get_chain_id().await;
        let after = proxy.stats();
        assert_eq!(id.unwrap(), 31337, "through two {fault} faults");
        // A delay is answered on the first send; every other fault costs one send each.
        let sends = after.seen_of("eth_chainId") - before.seen_of("eth_chainId");
        let expected = if fault == Fault::Delay { 1 } else { 3 };
        assert_eq!(sends, expected, "sends of eth_chainId through {fault}");
    }
}

#[tokio::test]
async fn without_retries_each_fault_reaches_the_caller_as_a_transport_error() {
    let anvil = Anvil::start(31337).unwrap();
    let proxy = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    let client = connect(&proxy.url(), &options().no_retries()).unwrap();
    for fault in [
        Fault::Http503,
        Fault::Reset,
        Fault::Garbage,
        Fault::LoseAnswer,
    ] {
        proxy.fail_method("eth_chainId", fault, 1);
        let e = client.get_chain_id().await.unwrap_err();
        assert!(lilypad_chain::is_transient(&e), "{fault}: {e:?}");
    }
}

#[tokio::test]
async fn a_call_that_keeps_failing_gives_up_after_the_retries_with_a_transport_error() {
    let anvil = Anvil::start(31337).unwrap();
    let proxy = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    proxy.fail_method_for("eth_chainId", Fault::Http503, Duration::from_secs(3600));
    let client = connect(
        &proxy.url(),
        &RpcOptions::default().retry(3, Duration::from_millis(10)),
    )
    .unwrap();
    let e = client.get_chain_id().await.unwrap_err();
    assert!(e.is_transport_error(), "{e:?}");
    assert_eq!(
        proxy.stats().seen_of("eth_chainId"),
        4,
        "one send and 3 retries"
    );
}

#[tokio::test]
async fn a_revert_is_an_answer_and_is_not_sent_again() {
    let anvil = Anvil::start(31337).unwrap();
    let proxy = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    let client = connect(&proxy.url(), &options()).unwrap();
    // A call that reverts: code whose first byte is REVERT (0xfd) on empty memory.
    let reverting = TransactionRequest::default().with_deploy_code(vec![0x60, 0x00, 0x80, 0xfd]);
    let e = client.call(reverting).await.unwrap_err();
    assert!(e.as_error_resp().is_some(), "{e:?}");
    assert!(!lilypad_chain::is_transient(&e));
    assert_eq!(proxy.stats().seen_of("eth_call"), 1);
}

#[tokio::test]
async fn a_lost_answer_to_a_sent_transaction_never_makes_a_second_transaction() {
    let anvil = Anvil::start(31337).unwrap();
    let proxy = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    proxy.fail_method("eth_sendRawTransaction", Fault::LoseAnswer, 1);
    let signer: alloy::signers::local::PrivateKeySigner = dev_keys::CLIENT.parse().unwrap();
    let from = signer.address();
    let client = connect_with_signer(&proxy.url(), signer, &options()).unwrap();
    let tx = TransactionRequest::default()
        .with_to(Address::repeat_byte(0x11))
        .with_value(U256::from(1));
    // The node took the first send; the retry sends the same signed bytes, which the node knows
    // (or has mined). Whatever the sender is told, one transaction exists.
    let answer = client.send_transaction(tx).await;
    let direct = connect(&anvil.url(), &RpcOptions::default()).unwrap();
    assert_eq!(direct.get_transaction_count(from).await.unwrap(), 1);
    assert_eq!(
        direct
            .get_balance(Address::repeat_byte(0x11))
            .await
            .unwrap(),
        U256::from(1)
    );
    assert_eq!(proxy.stats().seen_of("eth_sendRawTransaction"), 2);
    eprintln!("the sender was told: {:?}", answer.map(|p| *p.tx_hash()));
}

#[tokio::test]
async fn with_several_endpoints_a_dead_one_is_not_in_the_way() {
    let anvil = Anvil::start(31337).unwrap();
    // Nothing listens on the first; the second is the node.
    let dead = format!("http://127.0.0.1:{}", lilypad_e2e::free_port().unwrap());
    let urls = [dead, anvil.url()];
    let client = connect(&urls, &options()).unwrap();
    for _ in 0..5 {
        assert_eq!(client.get_chain_id().await.unwrap(), 31337);
    }
    // A transaction too, which goes to one endpoint at a time.
    let signer: alloy::signers::local::PrivateKeySigner = dev_keys::CLIENT.parse().unwrap();
    let from = signer.address();
    let sender = connect_with_signer(&urls, signer, &options()).unwrap();
    let tx = TransactionRequest::default()
        .with_to(Address::repeat_byte(0x22))
        .with_value(U256::from(1));
    sender
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(client.get_transaction_count(from).await.unwrap(), 1);
}

#[tokio::test]
async fn with_several_endpoints_a_transaction_goes_to_the_healthy_one_first() {
    let anvil = Anvil::start(31337).unwrap();
    let failing = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    for method in ["eth_chainId", "eth_sendRawTransaction"] {
        failing.fail_method_for(method, Fault::Http503, Duration::from_secs(3600));
    }
    let healthy = FaultyRpc::start(&anvil.url(), plan()).unwrap();
    let urls = [failing.url(), healthy.url()];
    let signer: alloy::signers::local::PrivateKeySigner = dev_keys::CLIENT.parse().unwrap();
    let client = connect_with_signer(&urls, signer, &options()).unwrap();
    // Reads go to both; the failing endpoint's record sinks.
    for _ in 0..5 {
        assert_eq!(client.get_chain_id().await.unwrap(), 31337);
    }
    let tx = TransactionRequest::default()
        .with_to(Address::repeat_byte(0x33))
        .with_value(U256::from(1));
    client
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(failing.stats().seen_of("eth_sendRawTransaction"), 0);
    assert_eq!(healthy.stats().seen_of("eth_sendRawTransaction"), 1);
}

/// Requests and calls allowed an hour: only a second send can answer a read held up for
/// minutes within a test's patience.
fn patient() -> RpcOptions {
    RpcOptions::default()
        .timeout(Duration::from_secs(3600))
        .call_timeout(Duration::from_secs(3600))
}

#[tokio::test]
async fn a_read_held_up_for_minutes_is_answered_by_a_second_send() {
    let anvil = Anvil::start(31337).unwrap();
    let ten_minutes = Duration::from_secs(600);
    let proxy = FaultyRpc::start(
        &anvil.url(),
        FaultPlan::none().delays(ten_minutes, ten_minutes),
    )
    .unwrap();
    // The default rule: before any answer, a read is sent again after the ceiling (2 s).
    let client = connect(&proxy.url(), &patient()).unwrap();
    proxy.fail_method("eth_chainId", Fault::Delay, 1);
    let id = tokio::time::timeout(Duration::from_secs(60), client.get_chain_id())
        .await
        .expect("answered within a minute, although the first request waits ten");
    assert_eq!(id.unwrap(), 31337);
    assert_eq!(
        proxy.stats().seen_of("eth_chainId"),
        2,
        "the held-up request and its hedge"
    );
}

#[tokio::test]
async fn a_held_up_transaction_is_sent_again_with_the_same_bytes_and_lands_once() {
    let anvil = Anvil::start(31337).unwrap();
    let ten_minutes = Duration::from_secs(600);
    let proxy = FaultyRpc::start(
        &anvil.url(),
        FaultPlan::none().delays(ten_minutes, ten_minutes),
    )
    .unwrap();
    proxy.fail_method("eth_sendRawTransaction", Fault::Delay, 1);
    let signer: alloy::signers::local::PrivateKeySigner = dev_keys::CLIENT.parse().unwrap();
    let from = signer.address();
    let options = patient().hedge(HedgePolicy::fixed(Duration::from_millis(100)));
    let client = connect_with_signer(&proxy.url(), signer, &options).unwrap();
    let tx = TransactionRequest::default()
        .with_to(Address::repeat_byte(0x44))
        .with_value(U256::from(1));
    // The first send is held for ten minutes; its hedge, the same signed bytes, is answered.
    let pending = tokio::time::timeout(Duration::from_secs(60), client.send_transaction(tx))
        .await
        .expect("answered within a minute, although the first send is held for ten")
        .unwrap();
    let receipt = pending.get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(proxy.stats().seen_of("eth_sendRawTransaction"), 2);
    let direct = connect(&anvil.url(), &RpcOptions::default()).unwrap();
    assert_eq!(direct.get_transaction_count(from).await.unwrap(), 1);
    assert_eq!(
        direct
            .get_balance(Address::repeat_byte(0x44))
            .await
            .unwrap(),
        U256::from(1),
        "one transfer, not two"
    );
}

/// The first send reaches the node (anvil mines it at once) but its answer is held up; its hedge,
/// the same bytes, is told "nonce too low" or "already known" first. The caller must still get
/// the hash, not that error: the transaction is sent.
#[tokio::test]
async fn a_send_whose_answer_is_held_up_is_not_failed_by_its_hedge_hearing_it_is_known() {
    let anvil = Anvil::start(31337).unwrap();
    let three_seconds = Duration::from_secs(3);
    let proxy = FaultyRpc::start(
        &anvil.url(),
        FaultPlan::none().delays(three_seconds, three_seconds),
    )
    .unwrap();
    proxy.fail_method("eth_sendRawTransaction", Fault::DelayAnswer, 1);
    let signer: alloy::signers::local::PrivateKeySigner = dev_keys::CLIENT.parse().unwrap();
    let from = signer.address();
    let options = patient().hedge(HedgePolicy::fixed(Duration::from_millis(100)));
    let client = connect_with_signer(&proxy.url(), signer, &options).unwrap();
    let tx = TransactionRequest::default()
        .with_to(Address::repeat_byte(0x45))
        .with_value(U256::from(1));
    let pending = client
        .send_transaction(tx)
        .await
        .expect("sent: the hedge's answer that the node knows it is no failure");
    assert!(pending.get_receipt().await.unwrap().status());
    assert_eq!(proxy.stats().seen_of("eth_sendRawTransaction"), 2);
    let direct = connect(&anvil.url(), &RpcOptions::default()).unwrap();
    assert_eq!(direct.get_transaction_count(from).await.unwrap(), 1);
}

#[test]
fn an_empty_list_and_each_bad_url_are_refused() {
    let none: [&str; 0] = [];
    assert!(matches!(
        connect(&none, &RpcOptions::default()),
        Err(ChainClientError::NoEndpoints)
    ));
    let e = connect(
        &["http://127.0.0.1:8545", "ftp://x"],
        &RpcOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ftp://x"), "{e}");
}
