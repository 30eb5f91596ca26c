//! The submitter against a real chain: anvil with the deployed contracts, real NATS and Redis;
//! the provider's signatures are made in the test as the provider service makes them.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::{Lilypad, eip712};
use lilypad_bus::{Bus, Topic};
use lilypad_chain::RpcOptions;
use lilypad_config::{Confirmations, GasPolicy};
use lilypad_e2e::{Fault, FaultPlan, FaultyRpc, dev_keys, eventually, ok_if};
use lilypad_relayer::chain::RpcChain;
use lilypad_relayer::indexer::{FollowSettings, Indexer, IndexerSettings};
use lilypad_relayer::submitter::{PendingTx, SubmitError, Submitted, Submitter, SubmitterSettings};
use lilypad_store::{Action, Store};
use lilypad_testkit::{Backends, TestChain, job_request, send};
use lilypad_types::{DealTerms, JobKey, JobStatus, SignedDeal, SignedResult};

const CHAIN: u64 = 31337;
const PRICE: u64 = 1_000_000;

struct World {
    chain: TestChain,
    _backends: Backends,
    store: Store,
    bus: Bus,
    settings: SubmitterSettings,
    submitter: Submitter,
}

async fn world() -> World {
    world_with(|_| {}).await
}

/// A world whose submitter's settings are changed by `tweak`.
async fn world_with(tweak: impl FnOnce(&mut SubmitterSettings)) -> World {
    let chain = TestChain::deploy(CHAIN, &[dev_keys::ADDRESSES[1], dev_keys::ADDRESSES[2]]);
    chain
        .register_provider(
            dev_keys::PROVIDER,
            "https://p.example",
            U256::from(100 * PRICE),
        )
        .await;
    chain.approve(dev_keys::CLIENT, U256::MAX).await;

    let backends = Backends::start().await;
    let (store, bus) = (backends.store.clone(), backends.bus.clone());
    let mut settings = SubmitterSettings {
        chain_id: CHAIN,
        lilypad: chain.lilypad,
        gas: GasPolicy {
            replace_after: Duration::from_secs(1),
            ..GasPolicy::default()
        },
        max_attempts: 5,
        claim_retry: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(10),
    };
    tweak(&mut settings);
    let key: PrivateKeySigner = dev_keys::RELAYER.parse().unwrap();
    let submitter = Submitter::new(
        settings.clone(),
        &chain.url(),
        key,
        store.clone(),
        bus.clone(),
    )
    .unwrap();
    World {
        chain,
        _backends: backends,
        store,
        bus,
        settings,
        submitter,
    }
}

/// Another submitter with the world's key, settings, Redis and NATS (another relayer, or the
/// same one through another endpoint), sending through `rpc`.
fn submitter_at(w: &World, rpc: &str) -> Submitter {
    submitter_with(w, rpc, &RpcOptions::default())
}

/// As [`submitter_at`], its requests following `options`.
fn submitter_with(w: &World, rpc: &str, options: &RpcOptions) -> Submitter {
    let key: PrivateKeySigner = dev_keys::RELAYER.parse().unwrap();
    Submitter::with_rpc_options(
        w.settings.clone(),
        rpc,
        key,
        w.store.clone(),
        w.bus.clone(),
        options,
    )
    .unwrap()
}

async fn run_job(w: &World, match_timeout: u32) -> (U256, B256) {
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(2 * PRICE),
        matchTimeout: match_timeout,
        executionTimeout: 60,
        maxOutputBytes: 64,
        ..job_request("cowsay", "1.0.0", &[])
    };
    let job = w.chain.run_job(dev_keys::CLIENT, request).await;
    (job.job_id, job.request_hash)
}

fn provider_key() -> PrivateKeySigner {
    dev_keys::PROVIDER.parse().unwrap()
}

fn signed_deal(w: &World, job: U256, request_hash: B256, by: &PrivateKeySigner) -> SignedDeal {
    let terms = DealTerms {
        job_id: job,
        request_hash,
        provider: provider_key().address(),
        price: U256::from(PRICE),
        timeout_collateral: U256::from(PRICE),
        results_collateral: U256::ZERO,
        expiry: U256::from(u64::MAX),
    };
    let deal = eip712::Deal::from(&terms);
    let sig = eip712::sign_deal(by, &eip712::domain(CHAIN, w.chain.lilypad), &deal).unwrap();
    SignedDeal {
        key: JobKey {
            chain_id: CHAIN,
            job_id: job,
        },
        lilypad: w.chain.lilypad,
        terms,
        signature: Bytes::from(sig.as_bytes().to_vec()),
    }
}

fn signed_result(w: &World, job: U256, request_hash: B256) -> SignedResult {
    let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let output = b"< moo >".to_vec();
    let msg = eip712::result_message(job, 1, cid.as_bytes(), &output, 0, "");
    let sig = eip712::sign_result(
        &provider_key(),
        &eip712::domain(CHAIN, w.chain.lilypad),
        &msg,
    )
    .unwrap();
    SignedResult {
        key: JobKey {
            chain_id: CHAIN,
            job_id: job,
        },
        request_hash,
        deal_expiry: U256::from(u64::MAX),
        lilypad: w.chain.lilypad,
        provider: provider_key().address(),
        status: 1,
        result_cid: cid.into(),
        inline_output: Bytes::from(output),
        exit_code: 0,
        error: String::new(),
        signature: Bytes::from(sig.as_bytes().to_vec()),
    }
}

async fn sent_by_relayer(w: &World) -> u64 {
    let p = w.chain.wallet(dev_keys::RELAYER);
    p.get_transaction_count(w.submitter.signer()).await.unwrap()
}

/// `Submitter::run` as relayer `holder`, until the returned token is cancelled.
fn run_submitter(
    w: &World,
    holder: &'static str,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    run(&w.submitter, holder)
}

/// `submitter.run` as relayer `holder`, until the returned token is cancelled.
fn run(
    submitter: &Submitter,
    holder: &'static str,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let (s, token) = (submitter.clone(), stop.clone());
    let health = lilypad_relayer::health::Health::default();
    let running = tokio::spawn(async move { s.run(holder, health, "dev", token).await });
    (stop, running)
}

async fn state(w: &World, job: U256) -> Option<JobStatus> {
    w.submitter.job_state(job).await.unwrap().0
}

/// Publishes the dev provider's signed deal for `job` (request hash `hash`) on the deals stream.
async fn publish_deal(w: &World, job: U256, hash: B256) {
    publish_deal_as(w, "d", job, hash).await;
}

/// As [`publish_deal`], with message id `msg_id` (the stream drops a second message with an id it
/// has seen).
async fn publish_deal_as(w: &World, msg_id: &str, job: U256, hash: B256) {
    w.bus
        .publish(
            Topic::Deals,
            CHAIN,
            msg_id,
            &signed_deal(w, job, hash, &provider_key()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn deals_and_results_from_the_streams_land_once_and_the_job_settles() {
    let w = world().await;
    let (job, hash) = run_job(&w, 600).await;
    let deal = signed_deal(&w, job, hash, &provider_key());
    // The same deal published twice (say, by two solvers): it lands once.
    w.bus
        .publish(Topic::Deals, CHAIN, "a", &deal)
        .await
        .unwrap();
    w.bus
        .publish(Topic::Deals, CHAIN, "b", &deal)
        .await
        .unwrap();
    let before = sent_by_relayer(&w).await;
    assert_eq!(
        w.submitter.round(Duration::from_millis(300)).await.unwrap(),
        1
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
    assert_eq!(
        sent_by_relayer(&w).await,
        before + 1,
        "the duplicate was not sent"
    );

    w.bus
        .publish(Topic::Results, CHAIN, "r", &signed_result(&w, job, hash))
        .await
        .unwrap();
    // The result lands; the challenge window is 0, so settlement is due at once and lands in the
    // same round.
    assert_eq!(
        w.submitter.round(Duration::from_millis(300)).await.unwrap(),
        2
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::Settled));
    let provider = w.chain.lilypad_as(dev_keys::RELAYER);
    let paid = provider
        .balanceOf(provider_key().address())
        .call()
        .await
        .unwrap();
    assert_eq!(
        paid,
        U256::from(PRICE - PRICE / 100),
        "the provider is credited its price less the deploy script's default 1% fee"
    );
    assert!(
        w.store
            .pending::<PendingTx>(CHAIN, w.submitter.signer())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_result_signed_for_another_request_under_the_same_job_id_is_not_sent() {
    // The contract binds a result to the job id only: after a reorganisation that replaced the
    // request, the old request's result (same provider, same id) must not reach the new job.
    let w = world().await;
    let (job, hash) = run_job(&w, 600).await;
    w.submitter
        .submit_deal(&signed_deal(&w, job, hash, &provider_key()))
        .await
        .unwrap();
    assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
    let before = sent_by_relayer(&w).await;
    let stale = signed_result(&w, job, B256::repeat_byte(0xee));
    let outcome = w.submitter.submit_result(&stale).await.unwrap();
    let Submitted::Skipped(why) = outcome else {
        panic!("a result for another request was sent: {outcome:?}");
    };
    assert!(why.contains("reused after a reorganisation"), "{why}");
    assert_eq!(sent_by_relayer(&w).await, before, "nothing was sent");
    assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
}

#[tokio::test]
async fn a_job_nobody_takes_is_expired_by_the_relayer() {
    let w = world().await;
    let (job, _) = run_job(&w, 10).await;
    // The indexer schedules the expiry when it publishes the request.
    indexer(&w).await.pass().await.unwrap();
    assert_eq!(
        w.submitter.round(Duration::from_millis(100)).await.unwrap(),
        0,
        "not yet due"
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::Requested));
    w.chain.advance(11);
    assert_eq!(
        w.submitter.round(Duration::from_millis(100)).await.unwrap(),
        1
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::Expired));
}

#[tokio::test]
async fn a_deal_without_a_result_is_timed_out() {
    let w = world().await;
    let (job, hash) = run_job(&w, 600).await;
    let landed = w
        .submitter
        .submit_deal(&signed_deal(&w, job, hash, &provider_key()))
        .await
        .unwrap();
    assert!(matches!(landed, Submitted::Landed(_)));
    w.chain.advance(61);
    // Landing the deal scheduled its timeout; the next round carries it out.
    assert_eq!(
        w.submitter.round(Duration::from_millis(100)).await.unwrap(),
        1
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::TimedOut));
    // Asked again, nothing is sent: the job is past that state.
    let again = w.submitter.carry_out(job, Action::Timeout).await.unwrap();
    assert_eq!(
        again,
        Submitted::Skipped("job is in state TimedOut; timeout needs Agreed".into())
    );
}

#[tokio::test]
async fn a_deal_the_contract_would_refuse_costs_no_gas_and_is_dropped() {
    let w = world().await;
    let (job, hash) = run_job(&w, 600).await;
    let forged = signed_deal(&w, job, hash, &PrivateKeySigner::random());
    let before = sent_by_relayer(&w).await;
    let err = w.submitter.submit_deal(&forged).await.unwrap_err();
    assert!(matches!(err, SubmitError::Reverts { .. }), "{err}");
    assert!(err.to_string().contains("InvalidSignature"), "{err}");
    assert_eq!(sent_by_relayer(&w).await, before, "nothing was sent");
    // From the stream, it is rejected rather than retried forever.
    w.bus
        .publish(Topic::Deals, CHAIN, "x", &forged)
        .await
        .unwrap();
    assert_eq!(
        w.submitter.round(Duration::from_millis(300)).await.unwrap(),
        0
    );
    assert_eq!(
        w.submitter.round(Duration::from_millis(300)).await.unwrap(),
        0
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::Requested));
}

#[tokio::test]
async fn a_transaction_stuck_in_the_pool_is_replaced_with_higher_fees() {
    let w = world().await;
    let (job, hash) = run_job(&w, 600).await;
    let before = sent_by_relayer(&w).await;
    // Blocks stop being mined: the first send waits in the pool.
    w.chain.stop_mining();
    let submitter = w.submitter.clone();
    let deal = signed_deal(&w, job, hash, &provider_key());
    let task = tokio::spawn(async move { submitter.submit_deal(&deal).await });
    // Wait until the submitter has replaced its first attempt, then mine a block.
    eventually(
        Duration::from_secs(10),
        "the stuck transaction was sent again",
        async || {
            let pending: Vec<(u64, PendingTx)> =
                w.store.pending(CHAIN, w.submitter.signer()).await.unwrap();
            match pending.first() {
                Some((_, p)) if p.attempts >= 2 => Ok(()),
                Some((_, p)) => Err(format!("attempts: {}", p.attempts)),
                None => Err("nothing pending".to_owned()),
            }
        },
    )
    .await;
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    let landed = task.await.unwrap().unwrap();
    let Submitted::Landed(tx) = landed else {
        panic!("expected the deal to land: {landed:?}")
    };
    assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
    assert_eq!(
        sent_by_relayer(&w).await,
        before + 1,
        "one nonce used: a replacement, not a second tx"
    );
    let p = w.chain.wallet(dev_keys::RELAYER);
    let receipt = p
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .expect("the replacement is mined");
    assert!(receipt.status());
}

#[tokio::test]
async fn a_batch_of_deals_is_pipelined_into_one_block() {
    let w = world().await;
    let mut jobs = Vec::new();
    for _ in 0..5 {
        let (job, hash) = run_job(&w, 600).await;
        jobs.push(job);
        w.bus
            .publish(
                Topic::Deals,
                CHAIN,
                &format!("deal-{job}"),
                &signed_deal(&w, job, hash, &provider_key()),
            )
            .await
            .unwrap();
    }
    // Blocks are mined by hand from now on: a submitter that waited for each receipt before
    // sending the next would never have more than one transaction in the pool.
    w.chain.stop_mining();
    let mined_before = sent_by_relayer(&w).await;
    let round = {
        let submitter = w.submitter.clone();
        tokio::spawn(async move { submitter.round(Duration::from_millis(300)).await })
    };
    let p = w.chain.wallet(dev_keys::RELAYER);
    eventually(
        Duration::from_secs(30),
        "5 agreeDeals in flight at once (else the submitter does not pipeline)",
        async || {
            let pending = p
                .get_transaction_count(w.submitter.signer())
                .pending()
                .await
                .unwrap();
            let in_flight = pending - mined_before;
            if in_flight == 5 {
                Ok(())
            } else {
                Err(format!("{in_flight} of 5 in flight"))
            }
        },
    )
    .await;
    w.chain.rpc("evm_mine", "[]");
    w.chain.mine_instantly();
    assert_eq!(round.await.unwrap().unwrap(), 5);
    let head = p.get_block_number().await.unwrap();
    let block = p.get_block_by_number(head.into()).await.unwrap().unwrap();
    assert_eq!(
        block.transactions.len(),
        5,
        "the five deals landed in one block"
    );
    for job in jobs {
        assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
    }
    assert_eq!(sent_by_relayer(&w).await, mined_before + 5);
}

#[tokio::test]
async fn a_deal_whose_job_read_hangs_does_not_hold_the_other_deal_of_its_round() {
    let w = world().await;
    // A delayed request waits ten minutes, and the submitter waits for it as long: far past this
    // test's bound, so no timeout and retry gets the held deal through, only not waiting on it.
    let hang = Duration::from_secs(600);
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none().delays(hang, hang)).unwrap();
    let options = RpcOptions {
        request_timeout: 2 * hang,
        call_timeout: 2 * hang,
        ..RpcOptions::default()
    };
    let submitter = submitter_with(&w, &proxy.url(), &options);
    let jobs = [
        publish_new_deal(&w, "a").await,
        publish_new_deal(&w, "b").await,
    ];
    // The first job read of the round (one deal's gate) hangs.
    proxy.fail_method("eth_call", Fault::Delay, 1);
    let round = tokio::spawn(async move { submitter.round(Duration::from_millis(300)).await });
    eventually(
        Duration::from_secs(60),
        "one deal lands while the other's job read hangs",
        async || {
            let states = [state(&w, jobs[0]).await, state(&w, jobs[1]).await];
            let held = proxy.stats().faulted_of("eth_call");
            let agreed = states.contains(&Some(JobStatus::Agreed));
            let waiting = states.contains(&Some(JobStatus::Requested));
            ok_if(
                held == 1 && agreed && waiting,
                format!("states {states:?}, job reads held {held}"),
            )
        },
    )
    .await;
    assert!(
        !round.is_finished(),
        "the round still waits for the held deal"
    );
    round.abort();
}

#[tokio::test]
async fn a_deal_that_lands_while_job_reads_fail_is_landed_with_its_timeout_scheduled() {
    let w = world().await;
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let submitter = submitter_at(&w, &proxy.url());
    let (job, hash) = run_job(&w, 600).await;
    // Blocks are mined by hand: the deal is sent, then job reads start failing, then it is mined.
    w.chain.stop_mining();
    let deal = signed_deal(&w, job, hash, &provider_key());
    let task = tokio::spawn(async move { submitter.submit_deal(&deal).await });
    eventually(Duration::from_secs(30), "the deal is sent", async || {
        ok_if(!pending_records(&w).await.is_empty(), "nothing pending")
    })
    .await;
    proxy.fail_method_for("eth_call", Fault::Http503, Duration::from_secs(600));
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    let landed = task.await.unwrap();
    assert!(matches!(landed, Ok(Submitted::Landed(_))), "{landed:?}");
    // Its timeout was scheduled all the same: past the execution deadline the relayer (here one
    // whose reads work) times the job out.
    w.chain.advance(61);
    assert_eq!(
        w.submitter.round(Duration::from_millis(100)).await.unwrap(),
        1
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::TimedOut));
}

#[tokio::test]
async fn a_stopped_submitter_gives_up_its_lease_so_another_relayer_takes_over_at_once() {
    let w = world().await;
    let lease = format!("submit:{CHAIN}:{}", w.submitter.signer());
    let (stop, running) = run_submitter(&w, "relayer-a");
    // Wait until relayer-a holds the lease: another holder is refused it.
    eventually(
        Duration::from_secs(60),
        "relayer-a takes the lease",
        async || {
            let probe = w
                .store
                .try_acquire_lease(&lease, "probe", Duration::from_millis(1))
                .await
                .unwrap();
            ok_if(probe.is_none(), "the lease is free")
        },
    )
    .await;
    stop.cancel();
    running.await.unwrap();
    // The lease's TTL is 10 s; relayer-b gets it now.
    let b = w
        .store
        .try_acquire_lease(&lease, "relayer-b", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        b.is_some(),
        "relayer-a still holds the lease after stopping"
    );
}

#[tokio::test]
async fn a_deal_a_killed_relayer_left_in_flight_still_gets_its_timeout() {
    let w = world().await;
    let (job, hash) = run_job(&w, 600).await;
    // A previous relayer sent agreeDeal, recorded it as pending, and was killed before it saw
    // the receipt: the deal is on-chain but its timeout was never scheduled.
    let deal = signed_deal(&w, job, hash, &provider_key());
    let lilypad = w.chain.lilypad_as(dev_keys::RELAYER);
    let receipt =
        send(lilypad.agreeDeal(Lilypad::Deal::from(&deal.terms), deal.signature.clone())).await;
    let nonce = sent_by_relayer(&w).await - 1;
    let record = PendingTx {
        job,
        call: "agreeDeal".into(),
        hash: receipt.transaction_hash,
        attempts: 1,
        ..PendingTx::default()
    };
    w.store
        .record_pending(CHAIN, w.submitter.signer(), nonce, &record)
        .await
        .unwrap();

    // The restarted relayer takes the lease and retires the record.
    let (stop, running) = run_submitter(&w, "restarted");
    eventually(
        Duration::from_secs(60),
        "the pending record is retired",
        async || {
            let left: Vec<(u64, PendingTx)> =
                w.store.pending(CHAIN, w.submitter.signer()).await.unwrap();
            ok_if(left.is_empty(), format!("{left:?}"))
        },
    )
    .await;
    stop.cancel();
    running.await.unwrap();

    // Past the execution deadline, the timeout it scheduled is carried out.
    w.chain.advance(61);
    assert_eq!(
        w.submitter.round(Duration::from_millis(100)).await.unwrap(),
        1
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::TimedOut));
}

/// The relayer's pending transaction count (pool included) and mined count.
async fn relayer_counts(w: &World) -> (u64, u64) {
    let p = w.chain.wallet(dev_keys::RELAYER);
    let signer = w.submitter.signer();
    let pending = p.get_transaction_count(signer).pending().await.unwrap();
    let mined = p.get_transaction_count(signer).latest().await.unwrap();
    (pending, mined)
}

/// Pending records as (nonce, attempts), for failure messages.
fn summary(records: &[(u64, PendingTx)]) -> Vec<(u64, u32)> {
    records.iter().map(|(n, p)| (*n, p.attempts)).collect()
}

async fn pending_records(w: &World) -> Vec<(u64, PendingTx)> {
    w.store.pending(CHAIN, w.submitter.signer()).await.unwrap()
}

/// Publishes a signed deal for a new job (message id `msg_id`) and returns the job.
async fn publish_new_deal(w: &World, msg_id: &str) -> U256 {
    let (job, hash) = run_job(w, 600).await;
    w.bus
        .publish(
            Topic::Deals,
            CHAIN,
            msg_id,
            &signed_deal(w, job, hash, &provider_key()),
        )
        .await
        .unwrap();
    job
}

/// Waits until `job` is agreed, the relayer's mined and pending nonces are both `before + 2` (the
/// filled nonce and the deal: no gap) and nothing is left recorded as pending. `round`, when
/// given, is driven between looks (a submitter that is not running on its own).
async fn deal_lands_with_no_gap(w: &World, job: U256, before: u64, round: Option<&Submitter>) {
    eventually(
        Duration::from_secs(60),
        "the deal lands and every nonce is mined",
        async || {
            if let Some(submitter) = round
                && let Err(e) = submitter.round(Duration::from_millis(100)).await
            {
                return Err(format!("round: {e}"));
            }
            let s = state(w, job).await;
            let (pending, mined) = relayer_counts(w).await;
            let records = pending_records(w).await;
            ok_if(
                s == Some(JobStatus::Agreed)
                    && (pending, mined) == (before + 2, before + 2)
                    && records.is_empty(),
                format!(
                    "job {job}: {s:?}; (pending, mined) ({pending}, {mined}) from {before}; records {:?}",
                    summary(&records)
                ),
            )
        },
    )
    .await;
}

#[tokio::test]
async fn a_transport_error_during_gas_estimation_of_a_result_the_result_lands_later() {
    let w = world().await;
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let submitter = submitter_at(&w, &proxy.url());
    let (job, hash) = run_job(&w, 600).await;
    w.submitter
        .submit_deal(&signed_deal(&w, job, hash, &provider_key()))
        .await
        .unwrap();
    // Every estimate answers HTTP 503 for a while: longer than any per-call retry lasts.
    proxy.fail_method_for("eth_estimateGas", Fault::Http503, Duration::from_secs(5));
    w.bus
        .publish(Topic::Results, CHAIN, "r", &signed_result(&w, job, hash))
        .await
        .unwrap();
    let (stop, running) = run(&submitter, "relayer-a");
    eventually(
        Duration::from_secs(90),
        "the result lands once the endpoint answers again (it is not dropped as a revert)",
        async || match state(&w, job).await {
            Some(JobStatus::ResultSubmitted | JobStatus::Settled) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    stop.cancel();
    running.await.unwrap();
    assert!(proxy.stats().faulted_of("eth_estimateGas") > 0);
}

#[tokio::test]
async fn a_lost_answer_to_the_send_of_a_deal_makes_no_second_transaction_and_the_job_goes_on() {
    let w = world().await;
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let submitter = submitter_at(&w, &proxy.url());
    let (job, hash) = run_job(&w, 600).await;
    let (before, _) = relayer_counts(&w).await;
    // Blocks are mined by hand: a submitter that re-signed the deal with the next nonce would
    // have two transactions in the pool.
    w.chain.stop_mining();
    proxy.fail_method("eth_sendRawTransaction", Fault::LoseAnswer, 1);
    publish_deal(&w, job, hash).await;
    let (stop, running) = run(&submitter, "relayer-a");
    eventually(
        Duration::from_secs(30),
        "the deal's transaction is in the pool and recorded as pending",
        async || {
            let records = pending_records(&w).await;
            let (pending, _) = relayer_counts(&w).await;
            ok_if(
                !records.is_empty() && pending > before,
                format!(
                    "pending (nonce, attempts): {:?}, {} in the pool",
                    summary(&records),
                    pending - before
                ),
            )
        },
    )
    .await;
    assert_eq!(
        proxy.stats().faulted_of("eth_sendRawTransaction"),
        1,
        "the answer to the first send was lost"
    );
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    eventually(Duration::from_secs(30), "the deal lands", async || {
        ok_if(
            state(&w, job).await == Some(JobStatus::Agreed),
            "not agreed",
        )
    })
    .await;
    let (pending, mined) = relayer_counts(&w).await;
    assert_eq!(
        (pending, mined),
        (before + 1, before + 1),
        "one transaction for the deal, and no other nonce used"
    );
    // Its follow-up was recorded: past the execution deadline the relayer times the job out.
    w.chain.advance(61);
    eventually(
        Duration::from_secs(30),
        "the job is timed out",
        async || ok_if(state(&w, job).await == Some(JobStatus::TimedOut), "not yet"),
    )
    .await;
    stop.cancel();
    running.await.unwrap();
    let (pending, mined) = relayer_counts(&w).await;
    assert_eq!((pending, mined), (before + 2, before + 2), "no nonce gap");
}

#[tokio::test]
async fn a_deal_whose_first_attempt_is_the_one_mined_still_lands_and_gets_its_timeout() {
    let w = world_with(|s| {
        s.max_attempts = 2;
        s.gas.replace_after = Duration::from_secs(2);
    })
    .await;
    let (job, hash) = run_job(&w, 600).await;
    w.chain.stop_mining();
    let submitter = w.submitter.clone();
    let deal = signed_deal(&w, job, hash, &provider_key());
    let task = tokio::spawn(async move { submitter.submit_deal(&deal).await });
    let attempt = async |n: u32| {
        eventually(
            Duration::from_secs(30),
            &format!("attempt {n} is sent"),
            async || match pending_records(&w).await.first() {
                Some((_, p)) if p.attempts >= n => Ok(p.hash),
                Some((_, p)) => Err(format!("attempts: {}", p.attempts)),
                None => Err("nothing pending".to_owned()),
            },
        )
        .await
    };
    let first = attempt(1).await;
    let first_raw = w
        .chain
        .rpc("eth_getRawTransactionByHash", &format!("[\"{first}\"]"));
    assert!(first_raw.is_string(), "the first attempt is in the pool");
    let second = attempt(2).await;
    assert_ne!(first, second);
    // The replacement goes missing and the first attempt is the one mined (as when the
    // replacement never reached the block builder).
    w.chain
        .rpc("anvil_dropTransaction", &format!("[\"{second}\"]"));
    w.chain
        .rpc("eth_sendRawTransaction", &format!("[{first_raw}]"));
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    let landed = task.await.unwrap().unwrap();
    assert_eq!(landed, Submitted::Landed(first));
    assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
    assert!(pending_records(&w).await.is_empty());
    // Landing it scheduled its timeout.
    w.chain.advance(61);
    assert_eq!(
        w.submitter.round(Duration::from_millis(100)).await.unwrap(),
        1
    );
    assert_eq!(state(&w, job).await, Some(JobStatus::TimedOut));
}

#[tokio::test]
async fn a_relayer_waiting_past_the_lease_ttl_for_a_deal_keeps_the_lease_and_no_other_relayer_sends()
 {
    let w = world_with(|s| {
        s.lease_ttl = Duration::from_secs(1);
        s.max_attempts = 50;
    })
    .await;
    let (job_a, hash_a) = run_job(&w, 600).await;
    let (job_b, hash_b) = run_job(&w, 600).await;
    let (before, _) = relayer_counts(&w).await;
    // No blocks: relayer A's round waits for its deal far longer than the lease's TTL.
    w.chain.stop_mining();
    w.bus
        .publish(
            Topic::Deals,
            CHAIN,
            "a",
            &signed_deal(&w, job_a, hash_a, &provider_key()),
        )
        .await
        .unwrap();
    let (stop_a, running_a) = run(&w.submitter, "relayer-a");
    eventually(
        Duration::from_secs(30),
        "relayer A sends the first deal",
        async || ok_if(!pending_records(&w).await.is_empty(), "nothing pending"),
    )
    .await;
    // Relayer B, same key, starts (through a proxy that counts what it sends); a second deal is
    // waiting for whoever holds the lease.
    let counting = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let b = submitter_at(&w, &counting.url());
    let (stop_b, running_b) = run(&b, "relayer-b");
    publish_deal_as(&w, "b", job_b, hash_b).await;
    // A replaces its first transaction each second: at the fourth attempt it has waited more
    // than three TTLs, sending the second deal meanwhile.
    eventually(
        Duration::from_secs(60),
        "relayer A keeps sending through several replacements",
        async || {
            let records = pending_records(&w).await;
            ok_if(
                records.len() == 2 && records.iter().any(|(_, p)| p.attempts >= 4),
                format!("pending (nonce, attempts): {:?}", summary(&records)),
            )
        },
    )
    .await;
    let (pending, _) = relayer_counts(&w).await;
    assert_eq!(
        pending,
        before + 2,
        "relayer A sent both deals, one nonce each"
    );
    assert_eq!(
        counting.stats().seen_of("eth_sendRawTransaction"),
        0,
        "relayer B sent nothing while A held the lease"
    );
    // Blocks come again: A's deal lands, then the second deal is landed too, once.
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    eventually(Duration::from_secs(60), "both deals land", async || {
        let (a, b) = (state(&w, job_a).await, state(&w, job_b).await);
        ok_if(
            a == Some(JobStatus::Agreed) && b == Some(JobStatus::Agreed),
            format!("{a:?} {b:?}"),
        )
    })
    .await;
    stop_a.cancel();
    stop_b.cancel();
    running_a.await.unwrap();
    running_b.await.unwrap();
    let (pending, mined) = relayer_counts(&w).await;
    assert_eq!((pending, mined), (before + 2, before + 2));
}

#[tokio::test]
async fn a_deal_that_comes_while_an_earlier_one_waits_to_be_mined_is_sent_at_once() {
    let w = world_with(|s| s.max_attempts = 50).await;
    let (job_a, hash_a) = run_job(&w, 600).await;
    let (job_b, hash_b) = run_job(&w, 600).await;
    let (before, _) = relayer_counts(&w).await;
    // No blocks: the first deal waits to be mined (replaced each second) for as long as the test
    // holds them back.
    w.chain.stop_mining();
    publish_deal(&w, job_a, hash_a).await;
    let (stop, running) = run_submitter(&w, "relayer");
    eventually(
        Duration::from_secs(30),
        "the first deal is sent",
        async || ok_if(!pending_records(&w).await.is_empty(), "nothing pending"),
    )
    .await;
    publish_deal_as(&w, "second", job_b, hash_b).await;
    eventually(
        Duration::from_secs(30),
        "the second deal is sent while the first waits to be mined (not after it)",
        async || {
            let (pending, mined) = relayer_counts(&w).await;
            ok_if(
                (pending, mined) == (before + 2, before),
                format!("(pending, mined) ({pending}, {mined}) from {before}"),
            )
        },
    )
    .await;
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    eventually(Duration::from_secs(60), "both deals land", async || {
        let (a, b) = (state(&w, job_a).await, state(&w, job_b).await);
        ok_if(
            a == Some(JobStatus::Agreed) && b == Some(JobStatus::Agreed),
            format!("{a:?} {b:?}"),
        )
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    assert_eq!(relayer_counts(&w).await, (before + 2, before + 2));
}

#[tokio::test]
async fn replacements_that_never_reach_the_node_do_not_hide_the_first_attempt_being_mined() {
    let w = world_with(|s| s.max_attempts = 3).await;
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let submitter = submitter_at(&w, &proxy.url());
    let (job, hash) = run_job(&w, 600).await;
    let (before, _) = relayer_counts(&w).await;
    w.chain.stop_mining();
    let deal = signed_deal(&w, job, hash, &provider_key());
    let task = tokio::spawn(async move { submitter.submit_deal(&deal).await });
    let attempts = async |n: u32| {
        eventually(
            Duration::from_secs(30),
            &format!("attempt {n} is made"),
            async || match pending_records(&w).await.first() {
                Some((_, p)) if p.attempts >= n => Ok(p.hashes.first().copied()),
                Some((_, p)) => Err(format!("attempts: {}", p.attempts)),
                None => Err("nothing pending".to_owned()),
            },
        )
        .await
    };
    let first = attempts(1)
        .await
        .expect("the first attempt's hash is recorded");
    // From now on every send is cut off before it reaches the node.
    proxy.fail_method_for(
        "eth_sendRawTransaction",
        Fault::Reset,
        Duration::from_secs(600),
    );
    attempts(2).await;
    w.chain.mine_instantly();
    w.chain.rpc("evm_mine", "[]");
    let landed = task.await.unwrap().unwrap();
    assert_eq!(landed, Submitted::Landed(first));
    assert_eq!(state(&w, job).await, Some(JobStatus::Agreed));
    assert_eq!(relayer_counts(&w).await, (before + 1, before + 1));
    assert!(pending_records(&w).await.is_empty());
}

#[tokio::test]
async fn a_deal_whose_every_send_was_lost_and_that_is_no_longer_needed_leaves_no_nonce_gap() {
    let w = world_with(|s| s.max_attempts = 2).await;
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let submitter = submitter_at(&w, &proxy.url());
    let (job_a, hash_a) = run_job(&w, 600).await;
    let (before, _) = relayer_counts(&w).await;
    // Every send of the first deal is cut off before it reaches the node, until it is given up.
    proxy.fail_method_for(
        "eth_sendRawTransaction",
        Fault::Reset,
        Duration::from_secs(600),
    );
    let deal_a = signed_deal(&w, job_a, hash_a, &provider_key());
    let given_up = submitter.submit_deal(&deal_a).await;
    assert!(
        matches!(given_up, Err(SubmitError::Stuck { .. })),
        "{given_up:?}"
    );
    assert_eq!(summary(&pending_records(&w).await), vec![(before, 2)]);
    // Someone else lands that deal: the relayer's action is no longer needed.
    let lilypad = w.chain.lilypad_as(dev_keys::CLIENT);
    send(lilypad.agreeDeal(Lilypad::Deal::from(&deal_a.terms), deal_a.signature.clone())).await;
    proxy.clear_rules();

    // The next job's deal is sent with a later nonce by the same running relayer's rounds: it is
    // mined only if nothing is left open below it.
    let job_b = publish_new_deal(&w, "b").await;
    deal_lands_with_no_gap(&w, job_b, before, Some(&submitter)).await;
}

/// A previous relayer signed agreeDeal for `deal` at the signer's next nonce (returned), recorded
/// it as pending, and was killed before the bytes reached the node.
async fn signed_recorded_and_never_sent(w: &World, deal: &SignedDeal) -> u64 {
    use alloy::sol_types::SolCall;
    let call = Lilypad::agreeDealCall {
        deal: Lilypad::Deal::from(&deal.terms),
        providerSignature: deal.signature.clone(),
    };
    let (job, request) = (deal.terms.job_id, deal.terms.request_hash);
    recorded_and_never_sent(w, job, request, "agreeDeal", call.abi_encode()).await
}

/// As [`signed_recorded_and_never_sent`], for submitResult of `result`.
async fn result_recorded_and_never_sent(w: &World, result: &SignedResult) -> u64 {
    use alloy::sol_types::SolCall;
    let call = Lilypad::submitResultCall {
        result: Lilypad::ResultData {
            jobId: result.key.job_id,
            status: result.status,
            resultCid: Bytes::from(result.result_cid.as_bytes().to_vec()),
            exitCode: result.exit_code,
            error: result.error.clone(),
        },
        inlineOutput: result.inline_output.clone(),
        providerSignature: result.signature.clone(),
    };
    let (job, request) = (result.key.job_id, result.request_hash);
    recorded_and_never_sent(w, job, request, "submitResult", call.abi_encode()).await
}

/// A previous relayer signed `call` (calldata `data`) to Lilypad for `job`, then under request
/// `request`, at the signer's next nonce (returned), recorded it as pending, and was killed
/// before the bytes reached the node.
async fn recorded_and_never_sent(
    w: &World,
    job: U256,
    request: B256,
    call: &str,
    data: Vec<u8>,
) -> u64 {
    use alloy::network::eip2718::Encodable2718;
    use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
    use alloy::rpc::types::TransactionRequest;

    let (before, _) = relayer_counts(w).await;
    let key: PrivateKeySigner = dev_keys::RELAYER.parse().unwrap();
    let envelope = TransactionRequest::default()
        .with_from(key.address())
        .with_to(w.chain.lilypad)
        .with_input(Bytes::from(data))
        .with_nonce(before)
        .with_gas_limit(1_000_000)
        .with_max_fee_per_gas(5_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000)
        .with_chain_id(CHAIN)
        .build(&EthereumWallet::from(key))
        .await
        .unwrap();
    let record = PendingTx {
        job,
        request_hash: request,
        call: call.into(),
        hash: *envelope.tx_hash(),
        hashes: vec![*envelope.tx_hash()],
        attempts: 1,
        raw: envelope.encoded_2718().into(),
        gas: 1_000_000,
        max_fee: 5_000_000_000,
        tip: 1_000_000_000,
    };
    w.store
        .record_pending(CHAIN, w.submitter.signer(), before, &record)
        .await
        .unwrap();
    w.store
        .next_nonce(CHAIN, w.submitter.signer(), before)
        .await
        .unwrap();
    before
}

#[tokio::test]
async fn a_restarted_relayer_fills_the_nonce_of_a_deal_a_killed_one_signed_and_never_sent() {
    let w = world().await;
    let (job_a, hash_a) = run_job(&w, 600).await;
    let deal_a = signed_deal(&w, job_a, hash_a, &provider_key());
    let before = signed_recorded_and_never_sent(&w, &deal_a).await;
    // Meanwhile the deal was landed by someone else: that action is no longer needed.
    let lilypad = w.chain.lilypad_as(dev_keys::CLIENT);
    send(lilypad.agreeDeal(Lilypad::Deal::from(&deal_a.terms), deal_a.signature.clone())).await;

    // The restarted relayer takes the lease; the next job's deal comes.
    let job_b = publish_new_deal(&w, "b").await;
    let (stop, running) = run_submitter(&w, "restarted");
    deal_lands_with_no_gap(&w, job_b, before, None).await;
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_restarted_relayer_sends_a_needed_deal_a_killed_one_signed_and_never_sent() {
    // Found by the chaos test: the killed relayer's message for this deal is not redelivered
    // before the restarted one sends later transactions, which then wait behind its nonce.
    let w = world().await;
    let (job_a, hash_a) = run_job(&w, 600).await;
    let before =
        signed_recorded_and_never_sent(&w, &signed_deal(&w, job_a, hash_a, &provider_key())).await;
    let job_b = publish_new_deal(&w, "b").await;
    let (stop, running) = run_submitter(&w, "restarted");
    // The recorded bytes are sent with their own nonce, and the next deal lands after them.
    deal_lands_with_no_gap(&w, job_b, before, None).await;
    assert_eq!(state(&w, job_a).await, Some(JobStatus::Agreed));
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_nonce_a_killed_relayer_reserved_and_never_recorded_is_used_again() {
    let w = world().await;
    let (before, _) = relayer_counts(&w).await;
    // A previous relayer reserved the next nonce and was killed (or lost its lease or Redis)
    // before it recorded anything for it.
    assert_eq!(
        w.store
            .next_nonce(CHAIN, w.submitter.signer(), before)
            .await
            .unwrap(),
        before
    );
    let job = publish_new_deal(&w, "d").await;
    let (stop, running) = run_submitter(&w, "restarted");
    // Nothing holds that nonce: the deal is sent with it (no cancellation needed), no gap left.
    settles_at(
        &w,
        job,
        &[JobStatus::Agreed],
        Some(before + 1),
        Duration::from_secs(60),
    )
    .await;
    all_retired(&w).await;
    stop.cancel();
    running.await.unwrap();
}

// ---------------------------------------------------------------- reorganisations

/// An indexer of the world's chain, reading the head itself (no confirmations).
async fn indexer(w: &World) -> Indexer<RpcChain> {
    let rpc = RpcChain::connect(&w.chain.url(), CHAIN, w.chain.lilypad)
        .await
        .unwrap();
    let settings = IndexerSettings {
        chain_id: CHAIN,
        follow: FollowSettings {
            confirmations: Confirmations::Blocks(0),
            start_block: w.chain.deployed_at,
            log_chunk_size: 100,
            reorg_rewind: 8,
        },
    };
    Indexer::new(settings, rpc, w.store.clone(), w.bus.clone())
}

async fn head(w: &World) -> u64 {
    w.chain
        .wallet(dev_keys::RELAYER)
        .get_block_number()
        .await
        .unwrap()
}

/// Waits until the relayer saw each of its transactions mined and retired its pending record
/// (a record still in flight when its transaction is removed is sent again with its own nonce:
/// the reorganisation tests below are about landings the relayer had finished with).
async fn all_retired(w: &World) {
    eventually(
        Duration::from_secs(30),
        "every pending record is retired",
        async || {
            let records = pending_records(w).await;
            ok_if(records.is_empty(), format!("{:?}", summary(&records)))
        },
    )
    .await;
}

/// Replaces every block after `block` with as many empty ones (anvil drops the transactions of
/// the blocks it removes: they do not return to the pool).
async fn reorg_after(w: &World, block: u64) {
    let depth = head(w).await - block;
    w.chain.rpc("anvil_reorg", &format!("[{depth}, []]"));
    let (pending, mined) = relayer_counts(w).await;
    assert_eq!(
        pending, mined,
        "anvil put nothing removed back into the pool"
    );
}

/// Waits until `job` is in one of the states `want` and every transaction the relayer sent is
/// mined (its pending and mined nonces are equal: none waits behind a gap), at `nonces` when given.
async fn settles_at(
    w: &World,
    job: U256,
    want: &[JobStatus],
    nonces: Option<u64>,
    within: Duration,
) {
    eventually(
        within,
        &format!(
            "job {job} is one of {want:?} and the relayer's nonces are all mined (up to {nonces:?})"
        ),
        async || {
            let s = state(w, job).await;
            let (pending, mined) = relayer_counts(w).await;
            ok_if(
                s.is_some_and(|s| want.contains(&s))
                    && pending == mined
                    && nonces.is_none_or(|n| n == mined),
                format!("{s:?}, (pending, mined) ({pending}, {mined})"),
            )
        },
    )
    .await;
}

#[tokio::test]
async fn a_result_a_killed_relayer_signed_for_a_request_a_reorganisation_replaced_is_not_sent() {
    let w = world().await;
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let before_request = head(&w).await;
    let (job, old_request) = run_job(&w, 600).await;
    // A reorganisation removes the request, and another request takes its job id and is dealt.
    reorg_after(&w, before_request).await;
    let (again, new_request) = run_job(&w, 300).await;
    assert_eq!(again, job, "the job id is reused");
    assert_ne!(new_request, old_request);
    w.submitter
        .submit_deal(&signed_deal(&w, job, new_request, &provider_key()))
        .await
        .unwrap();
    // A previous relayer had signed the old request's result (the provider's signature binds the
    // job id only, so the contract would take it for the new request), recorded it and was
    // killed before sending it.
    let nonce = result_recorded_and_never_sent(&w, &signed_result(&w, job, old_request)).await;

    let (stop, running) = run_submitter(&w, "restarted");
    eventually(
        Duration::from_secs(60),
        "the old result's nonce is filled and nothing is left pending",
        async || {
            let (pending, mined) = relayer_counts(&w).await;
            let records = pending_records(&w).await;
            ok_if(
                mined > nonce && pending == mined && records.is_empty(),
                format!(
                    "(pending, mined) ({pending}, {mined}), nonce {nonce}; records {:?}",
                    summary(&records)
                ),
            )
        },
    )
    .await;
    stop.cancel();
    running.await.unwrap();
    assert_eq!(
        state(&w, job).await,
        Some(JobStatus::Agreed),
        "the old request's result was not landed on the new request"
    );
}

#[tokio::test]
async fn a_reorganisation_that_removes_only_the_relayers_deal_lands_the_deal_again() {
    let w = world().await;
    // Blocks only for transactions, so the reorganisation below removes exactly the deal's.
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let (job, hash) = run_job(&w, 600).await;
    let requested_at = head(&w).await;
    publish_deal(&w, job, hash).await;
    let (stop, running) = run_submitter(&w, "relayer-a");
    let (_, before) = relayer_counts(&w).await;
    settles_at(
        &w,
        job,
        &[JobStatus::Agreed],
        Some(before + 1),
        Duration::from_secs(60),
    )
    .await;

    all_retired(&w).await;
    reorg_after(&w, requested_at).await;
    assert_eq!(
        state(&w, job).await,
        Some(JobStatus::Requested),
        "the deal was removed"
    );
    // The same deal lands again, with the nonce the reorganisation freed.
    settles_at(
        &w,
        job,
        &[JobStatus::Agreed],
        Some(before + 1),
        Duration::from_secs(60),
    )
    .await;
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_reorganisation_that_removes_only_the_relayers_result_lands_the_result_again() {
    let w = world().await;
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let (job, hash) = run_job(&w, 600).await;
    w.submitter
        .submit_deal(&signed_deal(&w, job, hash, &provider_key()))
        .await
        .unwrap();
    let dealt_at = head(&w).await;
    w.bus
        .publish(Topic::Results, CHAIN, "r", &signed_result(&w, job, hash))
        .await
        .unwrap();
    let (stop, running) = run_submitter(&w, "relayer-a");
    // The challenge window is 0: once the result is on-chain the relayer settles the job.
    let resulted = [JobStatus::ResultSubmitted, JobStatus::Settled];
    settles_at(&w, job, &resulted, None, Duration::from_secs(60)).await;

    all_retired(&w).await;
    reorg_after(&w, dealt_at).await;
    assert_eq!(
        state(&w, job).await,
        Some(JobStatus::Agreed),
        "the result was removed"
    );
    settles_at(&w, job, &resulted, None, Duration::from_secs(60)).await;
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn after_a_reorganisation_removes_the_relayers_mined_nonces_its_next_transaction_is_mined() {
    // A transaction waiting behind a gap would be replaced only after two minutes.
    let w = world_with(|s| s.gas.replace_after = Duration::from_secs(120)).await;
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let start = head(&w).await;
    let (_, before) = relayer_counts(&w).await;
    let mut jobs = Vec::new();
    for id in ["a", "b", "c"] {
        jobs.push(publish_new_deal(&w, id).await);
    }
    let indexer = indexer(&w).await;
    let stop_indexing = tokio_util::sync::CancellationToken::new();
    let indexing = {
        let stop = stop_indexing.clone();
        let health = lilypad_relayer::health::Health::default();
        tokio::spawn(async move {
            indexer
                .run(Duration::from_millis(100), health, "dev", stop)
                .await
        })
    };
    let (stop, running) = run_submitter(&w, "relayer-a");
    for job in &jobs {
        settles_at(
            &w,
            *job,
            &[JobStatus::Agreed],
            Some(before + 3),
            Duration::from_secs(60),
        )
        .await;
    }
    all_retired(&w).await;
    let indexed_to = head(&w).await;
    eventually(
        Duration::from_secs(30),
        "the indexer reaches the head",
        async || {
            let c = w.store.cursor(CHAIN).await.unwrap();
            ok_if(c.is_some_and(|c| c.block >= indexed_to), format!("{c:?}"))
        },
    )
    .await;

    // The three requests and the relayer's three deals (nonces before..before + 3) are removed.
    reorg_after(&w, start).await;
    eventually(
        Duration::from_secs(30),
        "the indexer notices the reorganisation",
        async || {
            let n = w.store.reorgs(CHAIN).await.unwrap();
            ok_if(n > 0, n)
        },
    )
    .await;
    // The next job's deal is mined with the first nonce the chain no longer has.
    let next = publish_new_deal(&w, "d").await;
    settles_at(
        &w,
        next,
        &[JobStatus::Agreed],
        Some(before + 1),
        Duration::from_secs(30),
    )
    .await;
    stop.cancel();
    running.await.unwrap();
    stop_indexing.cancel();
    indexing.await.unwrap();
}

#[tokio::test]
async fn a_deal_sent_behind_nonces_an_unnoticed_reorganisation_removed_is_mined_after_one_wait() {
    // Given up only after 8 sends 3 s apart; the gap is to be filled after the first wait.
    let w = world_with(|s| {
        s.gas.replace_after = Duration::from_secs(3);
        s.max_attempts = 8;
    })
    .await;
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let start = head(&w).await;
    let (_, before) = relayer_counts(&w).await;
    let (job_a, hash_a) = run_job(&w, 600).await;
    w.submitter
        .submit_deal(&signed_deal(&w, job_a, hash_a, &provider_key()))
        .await
        .unwrap();
    // The request and the deal are removed; no indexer runs, and no round has looked since.
    reorg_after(&w, start).await;
    let (job_b, hash_b) = run_job(&w, 600).await;
    let submitter = w.submitter.clone();
    let deal_b = signed_deal(&w, job_b, hash_b, &provider_key());
    let sent = tokio::spawn(async move { submitter.submit_deal(&deal_b).await });
    settles_at(
        &w,
        job_b,
        &[JobStatus::Agreed],
        Some(before + 2),
        Duration::from_secs(15),
    )
    .await;
    assert!(matches!(sent.await.unwrap(), Ok(Submitted::Landed(_))));
}
