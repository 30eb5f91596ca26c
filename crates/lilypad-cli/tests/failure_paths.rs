//! Failure paths end to end, with the real binaries: anvil (contracts deployed by their own
//! script), NATS, Redis, Docker, and `lilypad relayer`, `solver`, `provider` and `mediator` as
//! separate processes; the client is `lilypad run` (and `lilypad challenge`). Each scenario
//! asserts the on-chain outcome and the balances.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use common::{MAX_PRICE, Options, PRICE, Stack, text};
use lilypad_e2e::dev_keys;
use lilypad_types::JobStatus;

const CLIENT: &str = dev_keys::ADDRESSES[1];
const MEDIATOR: &str = dev_keys::ADDRESSES[4];

#[tokio::test(flavor = "multi_thread")]
async fn failures_reach_the_client_as_outcomes_with_the_right_money() {
    let mut stack = Stack::start(Options {
        mediator: true,
        ..Options::default()
    });

    // 1. A job that exits non-zero: the client learns the exit code; the provider is paid (it
    //    did the work), the client gets back the difference.
    let out = stack
        .command(&["run", "fail", "-i", "code=7", "--chain", "dev"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed job is not a success:\n{t}"
    );
    assert!(
        t.contains("status:   job failed") && t.contains("exit:     7"),
        "{t}"
    );
    stack.wait_state(1, JobStatus::Settled).await;
    assert_eq!(stack.credited(CLIENT).await, U256::from(MAX_PRICE - PRICE));

    // 2. A job no provider offers expires: the relayer expires it once the match deadline passes
    //    on the chain, and the client gets its whole max price back.
    let before = stack.credited(CLIENT).await;
    let run = stack.background(
        &[
            "run",
            "no-such-module",
            "--chain",
            "dev",
            "--match-timeout",
            "10",
        ],
        &[],
    );
    stack.wait_state(2, JobStatus::Requested).await;
    stack.advance(11);
    stack.wait_state(2, JobStatus::Expired).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("expired"), "{}", text(&out));
    assert_eq!(stack.credited(CLIENT).await, before + U256::from(MAX_PRICE));

    // 3. The provider dies while running a job: once the execution deadline passes the relayer
    //    times the job out; the client is refunded in full plus the provider's timeout
    //    collateral (1x the price).
    let before = stack.credited(CLIENT).await;
    let run = stack.background(
        &[
            "run",
            "sleep",
            "--chain",
            "dev",
            "--execution-timeout",
            "20",
        ],
        &[],
    );
    stack.wait_state(3, JobStatus::Agreed).await;
    // Kill it once the job's container runs, as a crash mid-job would.
    let start = Instant::now();
    while stack.provider_containers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job's container never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill("provider");
    stack.advance(21);
    stack.wait_state(3, JobStatus::TimedOut).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("timed out"), "{}", text(&out));
    assert_eq!(
        stack.credited(CLIENT).await,
        before + U256::from(MAX_PRICE + PRICE)
    );

    // 4. The provider comes back: it removes the container its crash left running, and offers
    //    again (scenario 5 runs on it).
    assert_eq!(
        stack.provider_containers().len(),
        1,
        "the crash left the job's container behind"
    );
    stack.start_provider(&[]);
    assert!(
        stack.provider_containers().is_empty(),
        "the restarted provider removed it"
    );

    // 5. The relayer is down when a job is requested and comes back: nothing is lost (the job
    //    completes) and nothing is sent twice (exactly agreeDeal, submitResult and settle).
    stack.kill("relayer");
    let sent_before = stack.relayer_nonce().await;
    let run = stack.background(
        &[
            "run",
            "cowsay",
            "-i",
            "message=after a restart",
            "--chain",
            "dev",
        ],
        &[],
    );
    stack.wait_state(4, JobStatus::Requested).await;
    stack.spawn("relayer", &["relayer"]);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("after a restart"), "{}", text(&out));
    stack.wait_state(4, JobStatus::Settled).await;
    assert_eq!(
        stack.relayer_nonce().await,
        sent_before + 3,
        "agreeDeal, submitResult, settle"
    );

    // 6. The relayer is killed with a transaction in flight (sent, not yet mined) and restarted
    //    while it is still in the pool: the job completes and nothing is sent twice.
    let sent_before = stack.relayer_nonce().await;
    stack.rpc("evm_setAutomine", "[false]");
    let run = stack.background(
        &[
            "run",
            "cowsay",
            "-i",
            "message=mid-flight",
            "--chain",
            "dev",
        ],
        &[],
    );
    // Mine the client's approve and runJob by hand, and nothing after them.
    let start = Instant::now();
    while stack.state(5).await == JobStatus::None {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "runJob never sent"
        );
        stack.rpc("evm_mine", "[]");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let start = Instant::now();
    while stack.relayer_pending_nonce().await == stack.relayer_nonce().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the relayer never sent agreeDeal:\n{}",
            stack.log("relayer")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill("relayer");
    assert_eq!(
        stack.state(5).await,
        JobStatus::Requested,
        "agreeDeal not mined yet"
    );
    stack.spawn("relayer", &["relayer"]);
    // The new relayer finds the job still requested on-chain, with its deal in the pool.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.rpc("evm_setAutomine", "[true]");
    stack.rpc("evm_mine", "[]");
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("mid-flight"), "{}", text(&out));
    stack.wait_state(5, JobStatus::Settled).await;
    assert_eq!(
        stack.relayer_nonce().await,
        sent_before + 3,
        "agreeDeal, submitResult, settle: nothing sent twice\n{}",
        stack.log("relayer")
    );

    // 7. A provider that lies (a test-only setting alters its results): the client challenges
    //    within the window, the mediator re-runs the job and votes, the result is overturned,
    //    the client is refunded with the provider's results collateral (less the mediators'
    //    share), and the provider loses that collateral.
    stack.kill("provider");
    stack.start_provider(&["--testing-alter-output"]);
    let client_before = stack.credited(CLIENT).await;
    let mediator_before = stack.credited(MEDIATOR).await;
    let (free, locked) = stack.collateral(stack.provider).await;
    let provider_before = free + locked;
    let out = stack
        .command(&[
            "run",
            "sha256",
            "-i",
            "text=the quick brown fox",
            "--chain",
            "dev",
            "--challenge-window",
            "600",
            "--results-collateral-bps",
            "20000",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "the lie looks like a success:\n{t}");
    assert!(t.contains("tampered"), "{t}");
    assert!(
        t.contains("lilypad challenge dev 6"),
        "the client is told how to challenge:\n{t}"
    );
    assert_eq!(stack.state(6).await, JobStatus::ResultSubmitted);
    // Only the job's client may challenge: another account is refused before paying anything.
    let out = stack
        .command(&["challenge", "dev", "6"])
        .env("LILYPAD_CLIENT_KEY", dev_keys::CLIENT_2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("only its client may challenge it"),
        "{}",
        text(&out)
    );
    assert_eq!(stack.state(6).await, JobStatus::ResultSubmitted);
    let out = stack.command(&["challenge", "dev", "6"]).output().unwrap();
    let t = text(&out);
    assert!(
        out.status.success(),
        "{t}\nmediator:\n{}",
        stack.log("mediator")
    );
    assert!(t.contains("verdict:  overturned by mediation"), "{t}");
    assert_eq!(stack.state(6).await, JobStatus::Overturned);
    let params = stack.lilypad().await.params().call().await.unwrap();
    let slashed = U256::from(2 * PRICE);
    let share = slashed * U256::from(params.mediatorShareBps) / U256::from(10_000);
    let fee = U256::from(params.mediationFee);
    assert_eq!(
        stack.credited(CLIENT).await,
        client_before + U256::from(MAX_PRICE) + slashed - share,
        "refunded in full, plus the slashed collateral less the mediators' share"
    );
    assert_eq!(
        stack.credited(MEDIATOR).await,
        mediator_before + fee + share,
        "the mediator earns the fee and its share"
    );
    let (free, locked) = stack.collateral(stack.provider).await;
    assert_eq!(
        free + locked,
        provider_before - slashed,
        "the provider lost its results collateral"
    );
    // The verdict came from the mediator's own re-run (it logs once its transaction is mined,
    // which may be just after the client saw the verdict).
    stack.wait_for_log("mediator", "verdict submitted");

    // Challenging again is refused with a reason.
    let out = stack.command(&["challenge", "dev", "6"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot be challenged: it is overturned by mediation"),
        "{}",
        text(&out)
    );
}

/// The chain's RPC endpoint goes down and comes back: the relayer reports the failures, retries
/// with backoff, and once the endpoint is back the job requested meanwhile completes, with no
/// transaction lost or repeated. Its own provider and client, so it can run beside the test above.
#[tokio::test(flavor = "multi_thread")]
async fn an_rpc_outage_delays_but_loses_nothing() {
    let stack = Stack::start(Options {
        provider_key: dev_keys::PROVIDER_2,
        client_key: dev_keys::CLIENT_2,
        proxy: true,
        ..Options::default()
    });
    let proxy = stack.proxy.as_ref().unwrap();
    let sent_before = stack.relayer_nonce().await;
    proxy.down();
    // The client reaches the chain directly; every service goes through the proxy.
    let run = stack.background(
        &[
            "run",
            "cowsay",
            "-i",
            "message=after an outage",
            "--chain",
            "dev",
        ],
        &[("LILYPAD_CHAINS_DEV_RPC", stack.anvil.url())],
    );
    stack.wait_state(1, JobStatus::Requested).await;
    let start = Instant::now();
    while !stack.log("relayer").contains("indexing failed") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the relayer never reported the outage:\n{}",
            stack.log("relayer")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.state(1).await,
        JobStatus::Requested,
        "nothing moves while it is down"
    );
    proxy.up();
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\nrelayer:\n{}",
        text(&out),
        stack.log("relayer")
    );
    assert!(text(&out).contains("after an outage"), "{}", text(&out));
    stack.wait_state(1, JobStatus::Settled).await;
    assert_eq!(
        stack.relayer_nonce().await,
        sent_before + 3,
        "agreeDeal, submitResult, settle"
    );
}
