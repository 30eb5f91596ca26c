//! Pipelines through the whole stack with the real binaries: job A's result CID is job B's input
//! (`ipfs://<cid>`), and a mediator re-running a challenged job B fetches A's result from the
//! provider's results server (a trustless gateway) and checks every block.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::U256;
use common::{MAX_PRICE, Options, Stack, text};
use lilypad_bindings::{LilypadToken, PipelineClient};
use lilypad_e2e::dev_keys;
use lilypad_testkit::send;
use lilypad_types::JobStatus;

const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// A stack whose provider serves its results on a port of its own, and whose provider and
/// mediator fetch inputs by CID from there (`LILYPAD_IPFS_GATEWAYS`).
async fn stack(mediator: bool, provider_args: &[&str]) -> Stack {
    let port = lilypad_e2e::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--serve-results".to_owned(), addr.clone()];
    args.extend(provider_args.iter().map(|a| (*a).to_owned()));
    Stack::start(Options {
        mediator,
        provider_args: args,
        env: vec![("LILYPAD_IPFS_GATEWAYS".to_owned(), format!("http://{addr}"))],
        ..Options::default()
    })
    .await
}

/// `lilypad run` of sha256 over "abc": the result CID it prints.
fn job_a(stack: &Stack) -> String {
    let out = stack
        .command(&["run", "sha256", "--chain", "dev", "-i", "text=abc"])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("status:   succeeded"), "{said}");
    said.lines()
        .find_map(|l| l.strip_prefix("cid:"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| panic!("no cid: line in\n{said}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn job_b_reads_job_a_s_result_by_cid_end_to_end() {
    let stack = stack(false, &[]).await;
    let cid = job_a(&stack);
    stack.wait_state(1, JobStatus::Settled).await;

    let input = format!("data=ipfs://{cid}");
    let out = stack
        .command(&["run", "read-cid", "--chain", "dev", "-i", &input])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        out.status.success(),
        "{said}\nprovider:\n{}",
        stack.log("provider")
    );
    assert!(said.contains("status:   succeeded"), "{said}");
    assert!(
        said.contains(SHA256_ABC),
        "B's output is A's outputs/sha256.txt: {said}"
    );
    stack.wait_state(2, JobStatus::Settled).await;
}

/// The same pipeline from a Solidity client (`PipelineClient`): it requests job A, its callback
/// keeps A's result CID, and `next` requests job B on `ipfs://<that CID>`, built on-chain. B's
/// provider fetches A's result from A's provider's results server; the contract keeps B's output,
/// A's digest.
#[tokio::test(flavor = "multi_thread")]
async fn a_contract_client_runs_job_b_on_job_a_s_result() {
    let stack = stack(false, &[]).await;
    let wallet = stack.chain.wallet(dev_keys::CLIENT);
    let step = |module: &str, input: &str| PipelineClient::Step {
        module: module.into(),
        version: "1.0.0".into(),
        moduleId: Default::default(),
        inputKey: input.into(),
    };
    let client = PipelineClient::deploy(
        wallet.clone(),
        stack.lilypad,
        dev_keys::ADDRESSES[1].parse().unwrap(),
        step("sha256", "text"),
        step("read-cid", "data"),
        U256::from(MAX_PRICE),
    )
    .await
    .unwrap();
    send(
        LilypadToken::new(stack.chain.token, wallet.clone())
            .approve(*client.address(), U256::from(2 * MAX_PRICE)),
    )
    .await;
    send(client.start("abc".into())).await;
    stack.wait_state(1, JobStatus::ResultSubmitted).await;
    let a = client.pipeline(U256::from(1)).call().await.unwrap();
    assert_eq!(a.state, 2, "A's result is in: AReady");

    send(client.next(U256::from(1))).await;
    stack.wait_state(2, JobStatus::ResultSubmitted).await;
    let done = client.pipeline(U256::from(1)).call().await.unwrap();
    let output = String::from_utf8_lossy(&done.outputB).into_owned();
    assert_eq!(
        done.state,
        4,
        "Done; B's output {output:?}\nprovider:\n{}",
        stack.log("provider")
    );
    assert!(
        output.contains(SHA256_ABC),
        "B's output is A's outputs/sha256.txt: {output:?}"
    );
}

/// The provider lies about job B's output (keeping the real CID); the mediator, whose store
/// is empty, fetches A's result from the provider's results server, re-runs B on those bytes
/// and overturns the lie.
#[tokio::test(flavor = "multi_thread")]
async fn a_mediator_fetches_a_cid_input_and_overturns_a_lie_about_job_b() {
    let stack = stack(true, &["--testing-alter-output", "inline-output"]).await;
    let cid = job_a(&stack);
    let input = format!("data=ipfs://{cid}");
    let t = stack.run_challengeable(&["read-cid", "-i", &input]);
    assert!(t.contains("tampered: "), "{t}");
    assert_eq!(stack.state(2).await, JobStatus::ResultSubmitted);

    stack.challenge_overturned(2, &format!("run:\n{t}")).await;
    assert!(
        stack
            .dir
            .path()
            .join("mediator-state/results")
            .join(&cid)
            .is_dir(),
        "the mediator fetched A's result into its own store"
    );
}
