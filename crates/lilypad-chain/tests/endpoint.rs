//! The chain client against real endpoints: anvil for the chain-id check, and a TCP listener that
//! accepts but never answers for the request timeout.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use alloy::providers::Provider;
use lilypad_chain::{ChainClientError, RpcOptions, check_chain_id, connect};
use lilypad_e2e::Anvil;

#[tokio::test]
async fn the_chain_id_check_accepts_the_right_chain_and_names_both_ids_for_the_wrong_one() {
    let anvil = Anvil::start(31339).unwrap();
    let client = connect(&anvil.url(), &RpcOptions::default()).unwrap();
    check_chain_id(&client, 31339).await.unwrap();
    let e = check_chain_id(&client, 1).await.unwrap_err();
    assert!(
        matches!(
            e,
            ChainClientError::WrongChain {
                expected: 1,
                actual: 31339
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_request_to_an_endpoint_that_never_answers_fails_instead_of_hanging() {
    // Accepts connections and reads requests, but never writes an answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = connect(
        &url,
        &RpcOptions::default().timeout(Duration::from_millis(300)),
    )
    .unwrap();
    // The outer bound only keeps a broken build from hanging the suite; the assertion is that the
    // client itself gives up with an error.
    let answer = tokio::time::timeout(Duration::from_secs(60), client.get_block_number())
        .await
        .expect("the client's own timeout ends the request");
    let e = answer.unwrap_err();
    assert!(e.is_transport_error(), "{e}");
}

#[tokio::test]
async fn chain_time_is_the_latest_blocks_timestamp_not_this_machines_clock() {
    let anvil = Anvil::start(31339).unwrap();
    let client = connect(&anvil.url(), &RpcOptions::default()).unwrap();
    // A block far in the future: the chain's clock follows it.
    lilypad_e2e::json_rpc(anvil.service.port(), "evm_mine", "[4000000000]").unwrap();
    assert_eq!(
        lilypad_chain::chain_time(&client).await.unwrap(),
        4_000_000_000
    );
}

#[tokio::test]
async fn a_call_to_a_hung_endpoint_gives_up_within_its_budget_retries_included() {
    // Accepts connections and reads requests, but never writes an answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // A thousand retries of 100 ms requests would take minutes; the call's budget ends it.
    let client = connect(
        &url,
        &RpcOptions::default()
            .timeout(Duration::from_millis(100))
            .retry(1000, Duration::from_millis(100))
            .call_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(60), client.get_block_number())
        .await
        .expect("the call's budget ends it, not the retries running out");
    let e = answer.unwrap_err();
    assert!(e.is_transport_error(), "{e}");
    assert!(e.to_string().contains("retries included"), "{e}");
}
