//! Failure paths end to end, with the real binaries: anvil (contracts deployed by their own
//! script), NATS, Redis, Docker, and `lilypad relayer`, `solver`, `provider` and `mediator` as
//! separate processes; the client is `lilypad run` (and `lilypad challenge`). Each scenario is a
//! test of its own, on a stack of its own (its own chain, so its first job is job 1, and a
//! provider account of its own, so stacks side by side leave each other's containers alone), and
//! asserts the on-chain outcome and the balances.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::time::Duration;

use alloy::primitives::U256;
use common::counting::{Counting, Until};
use common::{MAX_PRICE, Options, PRICE, Stack, text};
use lilypad_bindings::ConsortiumMediation;
use lilypad_e2e::{dev_keys, eventually, ok_if};
use lilypad_testkit::reader;
use lilypad_types::JobStatus;

const CLIENT: &str = dev_keys::ADDRESSES[1];
const MEDIATOR: &str = dev_keys::ADDRESSES[4];
const RELAYER: &str = dev_keys::ADDRESSES[3];

/// A job that exits non-zero: the client learns the exit code; the provider is paid (it did the
/// work), the client gets back the difference.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_reaches_the_client_with_its_exit_code_and_the_provider_is_paid() {
    let stack = Stack::start(Options::default()).await;
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
}

/// A job no provider offers, requested anyway (`--any-module`), expires: the relayer expires it once
/// the match deadline passes on the chain (whose clock moves without transactions, as a real
/// chain's does), and the client gets its whole max price back.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_nobody_offers_expires_and_the_client_gets_its_max_price_back() {
    let stack = Stack::start(Options::default()).await;
    let before = stack.credited(CLIENT).await;
    let run = stack.background(
        &[
            "run",
            "no-such-module",
            "--any-module",
            "--chain",
            "dev",
            "--match-timeout",
            "10",
        ],
        &[],
    );
    stack.wait_state(1, JobStatus::Requested).await;
    // No transaction is needed for the deadline to pass: the dev chain makes blocks on its own.
    stack.wait_state(1, JobStatus::Expired).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("expired"), "{}", text(&out));
    assert_eq!(stack.credited(CLIENT).await, before + U256::from(MAX_PRICE));
}

/// Requests a job that sleeps, with a 20 s execution timeout, kills the provider (SIGKILL) once
/// the job's container runs, as a crash mid-job would, and waits until the relayer has timed the
/// job out after its execution deadline. Returns the waiting `lilypad run`.
async fn crash_the_provider_mid_job(stack: &mut Stack) -> Child {
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
    stack.wait_state(1, JobStatus::Agreed).await;
    eventually(
        Duration::from_secs(30),
        "the job's container starts",
        async || {
            let containers = stack.provider_containers();
            ok_if(!containers.is_empty(), format!("{containers:?}"))
        },
    )
    .await;
    stack.kill("provider");
    stack.advance(21);
    stack.wait_state(1, JobStatus::TimedOut).await;
    run
}

/// The provider dies while running a job: once the execution deadline passes the relayer times
/// the job out; the client is refunded in full plus the provider's timeout collateral (1x the
/// price).
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_dies_mid_job_is_timed_out_and_the_client_gets_its_collateral() {
    let mut stack = Stack::start(Options::default()).await;
    let before = stack.credited(CLIENT).await;
    let run = crash_the_provider_mid_job(&mut stack).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("timed out"), "{}", text(&out));
    assert_eq!(
        stack.credited(CLIENT).await,
        before + U256::from(MAX_PRICE + PRICE)
    );
}

/// The provider comes back after a crash mid-job (the job timed out meanwhile): it removes the
/// container its crash left running, and offers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_provider_removes_the_container_its_crash_left_behind() {
    let mut stack = Stack::start(Options::default()).await;
    let run = crash_the_provider_mid_job(&mut stack).await;
    assert_eq!(
        stack.provider_containers().len(),
        1,
        "the crash left the job's container behind"
    );
    stack.start_provider(&[]).await;
    assert!(
        stack.provider_containers().is_empty(),
        "the restarted provider removed it"
    );
    let out = run.wait_with_output().unwrap();
    assert!(text(&out).contains("timed out"), "{}", text(&out));
}

/// Job `id` as the contract has it now.
async fn job_of(stack: &Stack, id: u64) -> lilypad_bindings::Lilypad::Job {
    stack
        .lilypad()
        .await
        .getJob(U256::from(id))
        .call()
        .await
        .unwrap()
}

/// Options for a stack with a second provider's key in its environment.
fn with_provider_2() -> Options {
    Options {
        env: vec![(
            "LILYPAD_PROVIDER_2_KEY".to_owned(),
            dev_keys::PROVIDER_2.to_owned(),
        )],
        ..Options::default()
    }
}

/// Starts a second provider (`dev_keys::MORE_ADDRESSES[0]`) asking `price` for every module,
/// once it offers.
async fn start_provider_2(stack: &mut Stack, price: u128) {
    let state = stack
        .dir
        .path()
        .join("provider-2-state")
        .display()
        .to_string();
    let price = price.to_string();
    stack.spawn(
        "provider-2",
        &[
            "provider",
            "--key-env",
            "LILYPAD_PROVIDER_2_KEY",
            "--collateral",
            "100000000000000000000",
            "--metadata",
            "http://127.0.0.1/test-provider-2",
            "--default-price",
            &price,
            "--state-dir",
            &state,
        ],
    );
    stack.wait_for_log("provider-2", "provider running").await;
}

/// A request that names its provider is dealt to it, though another offers the module for half
/// the price (by price alone the solver deals to the cheaper one).
#[tokio::test(flavor = "multi_thread")]
async fn a_request_naming_its_provider_is_dealt_to_it_though_another_is_cheaper() {
    let mut stack = Stack::start(with_provider_2()).await;
    start_provider_2(&mut stack, PRICE / 2).await;
    let named = stack.provider.to_string();
    let out = stack
        .command(&[
            "run",
            "cowsay",
            "-i",
            "message=only you",
            "--chain",
            "dev",
            "--provider",
            &named,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let job = job_of(&stack, 1).await;
    assert_eq!(
        job.provider,
        stack.provider,
        "dealt to the named provider\nsolver:\n{}",
        stack.log("solver")
    );
    assert_eq!(job.price, PRICE, "at its own price");
}

/// Two providers offer at the same price; the older offer's provider let a job time out. The
/// solver, which weighs each price by the provider's on-chain record, deals the next job to the
/// other one (by offer age alone it would have gone to the one with the timeout).
#[tokio::test(flavor = "multi_thread")]
async fn at_equal_price_the_solver_deals_to_the_provider_with_the_better_record() {
    let mut stack = Stack::start(with_provider_2()).await;
    let first = stack.provider;
    let run = crash_the_provider_mid_job(&mut stack).await;
    run.wait_with_output().unwrap();
    let record = stack
        .lilypad()
        .await
        .reputationOf(first)
        .call()
        .await
        .unwrap();
    assert_eq!(record.timedOut, 1);
    // The solver reads records afresh for each pass, so it sees the timeout at once.
    stack.kill("solver");
    let solver_git = stack.dir.path().join("solver-git").display().to_string();
    stack.spawn(
        "solver",
        &[
            "solver",
            "--git-cache",
            &solver_git,
            "--record-ttl",
            "100ms",
        ],
    );
    stack.start_provider(&[]).await;
    start_provider_2(&mut stack, PRICE).await;

    let out = stack
        .command(&[
            "run",
            "cowsay",
            "-i",
            "message=who takes it",
            "--chain",
            "dev",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let second: alloy::primitives::Address = dev_keys::MORE_ADDRESSES[0].parse().unwrap();
    let job = job_of(&stack, 2).await;
    assert_eq!(
        job.provider,
        second,
        "dealt to the provider whose record has the timeout\nsolver:\n{}",
        stack.log("solver")
    );
}

/// The relayer is down when a job is requested and comes back: nothing is lost (the job
/// completes) and nothing is sent twice (exactly agreeDeal, submitResult and settle).
#[tokio::test(flavor = "multi_thread")]
async fn a_job_requested_while_the_relayer_is_down_completes_once_it_is_back() {
    let mut stack = Stack::start(Options::default()).await;
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
    stack.wait_state(1, JobStatus::Requested).await;
    stack.spawn("relayer", &["relayer"]);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("after a restart"), "{}", text(&out));
    stack.wait_state(1, JobStatus::Settled).await;
    assert_eq!(
        stack.relayer_nonce().await,
        sent_before + 3,
        "agreeDeal, submitResult, settle"
    );
}

/// The relayer is killed with a transaction in flight (sent, not yet mined) and restarted while it
/// is still in the pool: the job completes and nothing is sent twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayer_killed_with_a_transaction_in_flight_sends_nothing_twice() {
    let mut stack = Stack::start(Options::default()).await;
    let sent_before = stack.relayer_nonce().await;
    stack.chain.stop_mining();
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
    eventually(Duration::from_secs(30), "runJob is mined", async || {
        let state = stack.state(1).await;
        if state == JobStatus::None {
            stack.rpc("evm_mine", "[]");
        }
        ok_if(state != JobStatus::None, state)
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "the relayer sends agreeDeal",
        async || {
            let (pending, mined) = (
                stack.relayer_pending_nonce().await,
                stack.relayer_nonce().await,
            );
            ok_if(
                pending != mined,
                format!(
                    "nonce {mined} mined and pending; relayer:\n{}",
                    stack.log("relayer")
                ),
            )
        },
    )
    .await;
    stack.kill("relayer");
    assert_eq!(
        stack.state(1).await,
        JobStatus::Requested,
        "agreeDeal not mined yet"
    );
    stack.spawn("relayer", &["relayer"]);
    // The new relayer is up and serving the chain while the job is still requested on-chain,
    // with its deal in the pool; only then is the deal mined.
    stack
        .wait_for_log_times("relayer", "serving chain", 2)
        .await;
    assert_eq!(stack.state(1).await, JobStatus::Requested);
    stack.chain.mine_instantly();
    stack.rpc("evm_mine", "[]");
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("mid-flight"), "{}", text(&out));
    stack.wait_state(1, JobStatus::Settled).await;
    assert_eq!(
        stack.relayer_nonce().await,
        sent_before + 3,
        "agreeDeal, submitResult, settle: nothing sent twice\n{}",
        stack.log("relayer")
    );
}

/// A provider that lies (a test-only setting alters its results): the client challenges within
/// the window, the mediator re-runs the job and votes, the result is overturned, the client is
/// refunded with the provider's results collateral (less the mediators' share), and the provider
/// loses that collateral. Only the job's client may challenge, and only once.
#[tokio::test(flavor = "multi_thread")]
async fn a_lying_provider_is_overturned_by_mediation_and_loses_its_collateral() {
    let stack = lying_stack("whole").await;
    let client_before = stack.credited(CLIENT).await;
    let mediator_before = stack.credited(MEDIATOR).await;
    let (free, locked) = stack.collateral(stack.provider).await;
    let provider_before = free + locked;
    run_challengeable_sha256(&stack).await;
    // Only the job's client may challenge: another account is refused before paying anything.
    let out = stack
        .command(&["challenge", "dev", "1"])
        .env("LILYPAD_CLIENT_KEY", dev_keys::CLIENT_2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("only its client may challenge it"),
        "{}",
        text(&out)
    );
    assert_eq!(stack.state(1).await, JobStatus::ResultSubmitted);
    stack.challenge_overturned(1, "").await;
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
    // Its on-chain record shows it, as `lilypad provider-stats` prints it.
    let shown = provider_stats(&stack);
    assert!(shown.contains("challenged:  1 by clients"), "{shown}");
    assert!(
        shown.contains("verdicts:    0 upheld, 1 overturned, 0 open"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("slashed:     {slashed}")),
        "{shown}"
    );
    // The verdict came from the mediator's own re-run (it logs once its transaction is mined,
    // which may be just after the client saw the verdict).
    stack.wait_for_log("mediator", "verdict submitted").await;

    // Challenging again is refused with a reason.
    let out = stack.command(&["challenge", "dev", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot be challenged: it is overturned by mediation"),
        "{}",
        text(&out)
    );
}

/// A provider that lies only in its inline output (the bytes an oracle client acts on) and
/// reports the real CID: the mediator, comparing whole results, overturns it.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_lying_only_in_its_inline_output_is_overturned_by_mediation() {
    let stack = lying_stack("inline-output").await;
    let t = run_challengeable_sha256(&stack).await;
    stack.challenge_overturned(1, &format!("run:\n{t}")).await;
}

/// Three mediators, one of them lazy (`--testing-alter-output`'s counterpart, `--testing-lazy`:
/// it commits the provider's claim without re-running the job): the two honest ones overturn a
/// lying provider, and the lazy one loses its stake to them.
#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_mediator_is_slashed_when_the_honest_ones_overturn_a_lie() {
    let stack = Stack::start(Options {
        mediator: true,
        lazy_mediator: true,
        provider_args: vec!["--testing-alter-output".into(), "whole".into()],
        ..Options::default()
    })
    .await;
    assert!(
        stack
            .log("mediator-lazy")
            .contains("TESTING ONLY: --testing-lazy"),
        "the lazy switch is logged loudly:\n{}",
        stack.log("mediator-lazy")
    );
    run_challengeable_sha256(&stack).await;
    let out = stack.command(&["challenge", "dev", "1"]).output().unwrap();
    let t = text(&out);
    assert!(
        out.status.success(),
        "{t}\nmediator:\n{}\nmediator-2:\n{}\nmediator-lazy:\n{}",
        stack.log("mediator"),
        stack.log("mediator-2"),
        stack.log("mediator-lazy")
    );
    assert!(t.contains("verdict:  overturned by mediation"), "{t}");
    assert_eq!(stack.state(1).await, JobStatus::Overturned);

    let mediation = ConsortiumMediation::new(stack.chain.mediation, reader(&stack.chain.url()));
    let per_case = mediation.mediatorStake().call().await.unwrap();
    let deposited = U256::from(20_000_000_000_000_000_000u128);
    let lazy = stack.extra_mediators[1];
    let s = mediation.stakeOf(lazy).call().await.unwrap();
    assert_eq!(
        (s.free, s.locked),
        (deposited - U256::from(per_case), U256::ZERO),
        "the lazy mediator lost the stake locked for the case"
    );
    for honest in [MEDIATOR.parse().unwrap(), stack.extra_mediators[0]] {
        let s = mediation.stakeOf(honest).call().await.unwrap();
        assert_eq!(
            (s.free, s.locked),
            (deposited, U256::ZERO),
            "stake released"
        );
        let credited = mediation.balanceOf(honest).call().await.unwrap();
        assert_eq!(
            credited,
            U256::from(per_case) / U256::from(2),
            "half the slashed stake"
        );
    }
}

/// A stack with a mediator and a provider started with `--testing-alter-output <how>`.
async fn lying_stack(how: &str) -> Stack {
    Stack::start(Options {
        mediator: true,
        provider_args: vec!["--testing-alter-output".into(), how.into()],
        ..Options::default()
    })
    .await
}

/// Runs job 1, a sha256 of a fixed text with a challenge window and 2x results collateral,
/// checks the (altered) result reached the client looking like a success, and returns what
/// `lilypad run` printed.
async fn run_challengeable_sha256(stack: &Stack) -> String {
    let t = run_sha256(stack);
    assert!(t.contains("tampered"), "{t}");
    assert!(
        t.contains("lilypad challenge dev 1"),
        "the client is told how to challenge:\n{t}"
    );
    assert_eq!(stack.state(1).await, JobStatus::ResultSubmitted);
    t
}

/// Runs job 1, a sha256 of a fixed text with a 600 s challenge window and 2x results
/// collateral, and returns what `lilypad run` printed (the job may already be in its audit).
fn run_sha256(stack: &Stack) -> String {
    stack.run_challengeable(&["sha256", "-i", "text=the quick brown fox"])
}

/// `lilypad run sha256` on the dev chain with `extra` flags, as a plain run (no challenge window).
fn run_sha256_with(stack: &Stack, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "sha256",
        "-i",
        "text=the quick brown fox",
        "--chain",
        "dev",
    ];
    args.extend_from_slice(extra);
    stack.command(&args).output().unwrap()
}

/// `lilypad provider-stats` for the stack's provider.
fn provider_stats(stack: &Stack) -> String {
    let out = stack
        .command(&["provider-stats", "dev", &stack.provider.to_string()])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    shown
}

/// With every result audited (AUDIT_BPS = 10000) and a 10% audit tax, an honest job is audited
/// by the relayer with no one asking, the mediator re-runs it and agrees, and it settles on that
/// verdict, before its challenge window would have closed; the tax went to the audit fund.
#[tokio::test(flavor = "multi_thread")]
async fn with_every_result_audited_an_honest_job_settles_once_the_mediators_agree() {
    let stack = Stack::start(Options {
        mediator: true,
        deploy: vec![("AUDIT_BPS", "10000"), ("TAX_BPS", "1000")],
        ..Options::default()
    })
    .await;
    let chain = reader(&stack.chain.url());
    run_sha256(&stack);
    let window_closes = lilypad_chain::chain_time(&chain).await.unwrap() + 600;
    stack.wait_state(1, JobStatus::Settled).await;
    assert!(
        lilypad_chain::chain_time(&chain).await.unwrap() < window_closes,
        "settled by the audit's verdict, not by the window closing"
    );
    let lilypad = stack.lilypad().await;
    let shown = provider_stats(&stack);
    assert!(
        shown.contains("audited:     1 by the protocol (1 passed)"),
        "{shown}"
    );
    assert!(shown.contains("challenged:  0 by clients"), "{shown}");
    assert!(
        shown.contains("verdicts:    1 upheld, 0 overturned, 0 open"),
        "{shown}"
    );
    assert_eq!(
        lilypad.auditFund().call().await.unwrap(),
        U256::from(PRICE / 10),
        "the settled job paid its 10% tax into the audit fund"
    );
    assert!(
        stack.log("relayer").contains("audit"),
        "the relayer sent the audit:\n{}",
        stack.log("relayer")
    );
}

/// A provider that lies, with every result audited and a 20% jackpot share: the relayer's audit
/// catches it with no client challenge. The result is overturned, the client refunded with the
/// slashed collateral (less the mediators' share and the jackpot's), the relayer, which opened
/// the audit, paid half of the jackpot, and the provider's record shows the failed audit.
#[tokio::test(flavor = "multi_thread")]
async fn a_lying_provider_is_caught_by_a_protocol_audit_with_no_client_challenge() {
    let stack = Stack::start(Options {
        mediator: true,
        provider_args: vec!["--testing-alter-output".into(), "whole".into()],
        deploy: vec![("AUDIT_BPS", "10000"), ("JACKPOT_BPS", "2000")],
        ..Options::default()
    })
    .await;
    let client_before = stack.credited(CLIENT).await;
    let relayer_before = stack.credited(RELAYER).await;
    let t = run_sha256(&stack);
    assert!(t.contains("tampered"), "the lie looks like a success:\n{t}");
    stack.wait_state(1, JobStatus::Overturned).await;
    let lilypad = stack.lilypad().await;
    let params = lilypad.params().call().await.unwrap();
    let slashed = U256::from(2 * PRICE);
    let share = slashed * U256::from(params.mediatorShareBps) / U256::from(10_000);
    let added = slashed * U256::from(2_000) / U256::from(10_000);
    assert_eq!(
        stack.credited(CLIENT).await,
        client_before + U256::from(MAX_PRICE) + slashed - share - added,
        "refunded in full, plus the slash less the mediators' and the jackpot's shares"
    );
    assert_eq!(
        stack.credited(RELAYER).await,
        relayer_before + added / U256::from(2),
        "the relayer opened the audit: half of the jackpot"
    );
    let shown = provider_stats(&stack);
    assert!(
        shown.contains("audited:     1 by the protocol (0 passed)"),
        "{shown}"
    );
    // `lilypad job` says why the job went to mediation with no challenge.
    let job = stack.command(&["job", "dev", "1"]).output().unwrap();
    let job = text(&job).to_lowercase();
    assert!(
        job.contains(&format!("audit:    opened by {}", RELAYER.to_lowercase())),
        "{job}"
    );
    assert!(shown.contains("challenged:  0 by clients"), "{shown}");
    assert!(
        shown.contains("verdicts:    0 upheld, 1 overturned, 0 open"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("slashed:     {slashed}")),
        "{shown}"
    );
}

/// With the protocol auditing 10% of deterministic results, `lilypad run` refuses a results
/// collateral below the 9x the rate demands before escrowing anything, naming the value to pass.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_too_little_collateral_for_the_audit_rate_is_refused_before_escrow() {
    let stack = Stack::start(Options {
        deploy: vec![("AUDIT_BPS", "1000")],
        ..Options::default()
    })
    .await;
    let out = run_sha256_with(&stack, &["--results-collateral-bps", "20000"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("pass --results-collateral-bps 90000"), "{t}");
    let lilypad = stack.lilypad().await;
    assert_eq!(
        lilypad.requestCount().call().await.unwrap(),
        0,
        "nothing requested"
    );
}

/// With the protocol auditing 10% of deterministic results, `lilypad run` without
/// `--results-collateral-bps` requests the 9x the rate demands, says so, and the job runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_without_a_collateral_takes_the_least_the_audit_rate_demands() {
    let stack = Stack::start(Options {
        mediator: true,
        deploy: vec![("AUDIT_BPS", "1000")],
        ..Options::default()
    })
    .await;
    let out = run_sha256_with(&stack, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("locks 90000 bps of the price"), "{t}");
    let job = job_of(&stack, 1).await;
    assert_eq!(job.resultsCollateralBps.to::<u32>(), 90_000);
}

/// With the protocol auditing 10%, a client that buys 40% more (`--extra-audit-bps 4000`) has
/// its job audited at 50%, so `lilypad run` asks only 1x the price as results collateral (not
/// 9x); the premium, 40% of the mediation fee, is escrowed and goes to the audit fund once the
/// job settles (by the window's end or by an audit's verdict: the fund pays nothing for it, being
/// empty).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_buys_audits_asks_less_collateral_and_its_premium_fills_the_fund() {
    let stack = Stack::start(Options {
        mediator: true,
        deploy: vec![("AUDIT_BPS", "1000")],
        ..Options::default()
    })
    .await;
    let out = run_sha256_with(&stack, &["--extra-audit-bps", "4000"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("with the rate you buy, the protocol audits 50% of deterministic results, so the provider locks 10000 bps"),
        "{t}"
    );
    let job = job_of(&stack, 1).await;
    assert_eq!(job.resultsCollateralBps.to::<u32>(), 10_000);
    assert_eq!(job.auditBps, 5_000);
    stack.wait_state(1, JobStatus::Settled).await;
    let lilypad = stack.lilypad().await;
    let premium = lilypad
        .auditPremium(U256::from(4_000))
        .call()
        .await
        .unwrap();
    assert!(!premium.is_zero());
    assert_eq!(lilypad.auditFund().call().await.unwrap(), premium);
}

/// The chain's RPC endpoint goes down and comes back: the relayer reports the failures, retries
/// with backoff, and once the endpoint is back the job requested meanwhile completes, with no
/// transaction lost or repeated.
#[tokio::test(flavor = "multi_thread")]
async fn an_rpc_outage_delays_but_loses_nothing() {
    let stack = Stack::start(Options {
        client_key: dev_keys::CLIENT_2,
        proxy: true,
        ..Options::default()
    })
    .await;
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
        &[("LILYPAD_CHAINS_DEV_RPC", stack.chain.url())],
    );
    stack.wait_state(1, JobStatus::Requested).await;
    // The relayer reports the outage, and keeps retrying (with backoff) while it lasts: four
    // failed passes, about two seconds at the stack's 200 ms poll interval.
    stack
        .wait_for_log_times("relayer", "indexing failed", 4)
        .await;
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

/// A reorganisation replaces the blocks of a job that was requested, dealt, resulted and settled
/// (issue 11); the next request gets the same job id. It is another job everywhere (stream
/// message ids, the provider's deals and state files): it settles too, with exactly one
/// callback to the counting client, which the reorganisation left without the first job's.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_id_reused_after_a_reorg_settles_as_a_job_of_its_own() {
    let stack = Stack::start(Options::default()).await;
    let counting = Counting::deploy(&stack, 2).await;
    let before = stack.chain.head();
    let first = counting.request(1).await;
    counting.wait(&stack, &first, Until::Settled).await;
    counting.assert_one_successful_callback_each(&first).await;

    stack.chain.reorg_after(before);
    let counting = counting.reconnected(&stack);
    assert_eq!(
        counting
            .client
            .callbackCount(first[0])
            .call()
            .await
            .unwrap(),
        U256::ZERO,
        "the reorganisation took the first job's callback away"
    );
    let again = counting.request(1).await;
    assert_eq!(again, first, "the job id is given out again");
    counting.wait(&stack, &again, Until::Settled).await;
    counting.assert_one_successful_callback_each(&again).await;
}

/// A contract client whose callback reverted gets its result once more with `lilypad redeliver`
/// (sent by another account, which pays the gas), exactly once; `lilypad job` says the callback
/// failed and how to re-deliver it.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_callback_is_redelivered_once_with_lilypad_redeliver() {
    let stack = Stack::start(Options::default()).await;
    let counting = Counting::deploy(&stack, 1).await;
    // MockClient.Mode.Revert: the first delivery reverts.
    lilypad_testkit::send(counting.client.setMode(1)).await;
    let ids = counting.request(1).await;
    counting.wait(&stack, &ids, Until::Settled).await;
    let id = ids[0];
    let count = async || counting.client.callbackCount(id).call().await.unwrap();
    assert_eq!(count().await, U256::ZERO, "the first delivery failed");
    let shown = stack
        .command(&["job", "dev", &id.to_string()])
        .output()
        .unwrap();
    assert!(
        text(&shown).contains(
            "callback: succeeded failed (re-deliver it with more gas: lilypad redeliver dev"
        ),
        "{}",
        text(&shown)
    );

    // Mode.Record: the client takes it now.
    lilypad_testkit::send(counting.client.setMode(0)).await;
    let redeliver = || {
        stack
            .command(&["redeliver", "dev", &id.to_string()])
            .env("LILYPAD_CLIENT_KEY", dev_keys::CLIENT_2)
            .output()
            .unwrap()
    };
    let out = redeliver();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("callback delivered"), "{}", text(&out));
    assert_eq!(count().await, U256::from(1));
    let got = counting.client.last(id).call().await.unwrap();
    assert!(
        String::from_utf8_lossy(&got.output).contains("moo"),
        "the cowsay output reached the client: {got:?}"
    );

    let again = redeliver();
    assert!(!again.status.success());
    assert!(
        text(&again).contains("was re-delivered already"),
        "{}",
        text(&again)
    );
    assert_eq!(count().await, U256::from(1), "exactly once");
}
