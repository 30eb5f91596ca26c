//! `lilypad run` as a user runs it, end to end with the real binaries (anvil, NATS, Redis, Docker,
//! the relayer, solver and provider): several at once from one account, and a module nobody
//! offers. Each scenario is a test of its own, on a stack of its own.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use common::{Options, Stack, text};
use lilypad_bindings::LilypadToken;
use lilypad_e2e::{Fault, FaultPlan, dev_keys};
use lilypad_types::JobStatus;

const CLIENT: &str = dev_keys::ADDRESSES[1];

/// Five `lilypad run` started together from one account: each gets its own allowance and nonce
/// (none fails with `ERC20InsufficientAllowance` or a nonce clash), and every job succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn five_runs_at_once_from_one_account_all_succeed() {
    let stack = Stack::start(Options {
        // room for all five cowsay jobs (0.5 CPU each) at once
        provider_args: vec!["--cpu-millis".into(), "4000".into()],
        ..Options::default()
    })
    .await;
    let runs: Vec<_> = (0..5)
        .map(|i| {
            stack.background(
                &[
                    "run",
                    "cowsay",
                    "--chain",
                    "dev",
                    "-i",
                    &format!("message=run {i}"),
                ],
                &[],
            )
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("status:   succeeded"), "{}", text(&out));
    }
    for job in 1..=5 {
        stack.wait_state(job, JobStatus::Settled).await;
    }
}

/// `lilypad run` of a module no provider offers is refused before anything is escrowed, and the
/// refusal lists the modules that are offered.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_module_is_refused_before_anything_is_escrowed() {
    let stack = Stack::start(Options::default()).await;
    let lilypad = stack.lilypad().await;
    let token = LilypadToken::new(lilypad.token().call().await.unwrap(), lilypad.provider());
    let client: Address = CLIENT.parse().unwrap();
    let before = token.balanceOf(client).call().await.unwrap();

    let out = stack
        .command(&["run", "nosuchmodule", "--chain", "dev"])
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("no provider on dev offers module \"nosuchmodule\""),
        "{said}"
    );
    assert!(said.contains("cowsay 1.0.0"), "{said}");
    assert!(said.contains("Nothing was escrowed"), "{said}");
    assert_eq!(token.balanceOf(client).call().await.unwrap(), before);
    assert_eq!(
        lilypad.getJob(U256::from(1)).call().await.unwrap().state(),
        Some(JobStatus::None),
        "no job was requested"
    );
}

/// The answer to `lilypad run`'s first transaction is lost on its way back (the node took it; the
/// RPC endpoint's connection reset): the command finds it by its hash and goes on, instead of
/// failing on the retried send's "already known" (and being run again by its user). One job is
/// requested, and the account sent exactly two transactions (the approval and the request).
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_a_send_is_found_by_its_hash_and_nothing_is_sent_twice() {
    let stack = Stack::start(Options {
        rpc_faults: Some(FaultPlan::none()),
        ..Options::default()
    })
    .await;
    let client: Address = CLIENT.parse().unwrap();
    let chain = lilypad_testkit::reader(&stack.chain.url());
    let sent_before = chain.get_transaction_count(client).await.unwrap();
    let faulty = stack.faulty.as_ref().unwrap();
    faulty.fail_method("eth_sendRawTransaction", Fault::LoseAnswer, 1);

    let out = stack
        .command(&["run", "cowsay", "--chain", "dev", "-i", "message=once"])
        .output()
        .unwrap();

    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(faulty.stats().faulted_with(Fault::LoseAnswer), 1);
    assert_eq!(
        chain.get_transaction_count(client).await.unwrap(),
        sent_before + 2,
        "approve and runJob, each once"
    );
    let lilypad = stack.lilypad().await;
    assert_eq!(
        lilypad.getJob(U256::from(2)).call().await.unwrap().state(),
        Some(JobStatus::None),
        "only one job was requested"
    );
}
