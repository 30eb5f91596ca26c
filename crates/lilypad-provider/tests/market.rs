//! The provider on the market, against real NATS, anvil (contracts deployed by their own deploy
//! script) and Docker (module images built locally): its offer, its answers to deal proposals,
//! and the signed results the contract accepts. The test plays the solver and the relayer.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

mod common;
use common::{executor, market_chain, price, requested};
use std::time::Duration;

use alloy::primitives::{B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::{ConsortiumMediation, Lilypad};
use lilypad_bus::{Bus, BusError, BusOptions, Topic};
use lilypad_e2e::{
    Fault, FaultPlan, FaultyRpc, Nats, dev_keys, ensure_module_images, eventually, job_modules_dir,
    ok_if, test_modules_dir,
};
use lilypad_executor::Executor;
use lilypad_follow::{Confirmations, FollowSettings};
use lilypad_modules::ModuleRegistry;
use lilypad_provider::mediator::{Mediator, MediatorError, Step, rerun};
use lilypad_provider::state::VoteStore;
use lilypad_provider::{
    CapacityTracker, ChainSettings, DealServer, ProviderSettings, ResourceProvider, unix_now,
};
use lilypad_results::ResultStore;
use lilypad_testkit::{TestChain, job_request, send};
use lilypad_types::{
    Capacity, DealProposal, DealTerms, JobRequested, JobStatus, Offer, Outcome, SignedDeal,
    SignedResult,
};

const CHAIN: u64 = 31337;
const PRICE: u64 = 1_000_000;
const DEPOSIT: u64 = 100 * PRICE;
const GIB: u64 = 1 << 30;

struct World {
    chain: TestChain,
    _nats: Nats,
    _scratch: tempfile::TempDir,
    bus: Bus,
    provider: ResourceProvider,
    executor: Executor,
    registry: Arc<ModuleRegistry>,
    store: Arc<ResultStore>,
}

async fn world(name: &str, offer_ttl: Duration, heartbeat: Duration) -> World {
    world_with(name, offer_ttl, heartbeat, |_| {}).await
}

async fn world_with(
    name: &str,
    offer_ttl: Duration,
    heartbeat: Duration,
    tweak: impl FnOnce(&mut ProviderSettings),
) -> World {
    ensure_module_images().unwrap();
    // The provider registers and deposits collateral; the client approves its payments.
    let chain = market_chain(CHAIN, U256::from(DEPOSIT)).await;

    let nats = Nats::start().unwrap();
    let options = BusOptions {
        offer_ttl,
        ..Default::default()
    };
    let bus = Bus::connect(&nats.url(), options).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (executor, store) = executor(&format!("market-{name}"), scratch.path()).await;
    let registry =
        Arc::new(ModuleRegistry::load_dirs(&[&job_modules_dir(), &test_modules_dir()]).unwrap());
    let mut settings = ProviderSettings::new(
        dev_keys::PROVIDER.parse().unwrap(),
        vec![ChainSettings {
            chain_id: CHAIN,
            rpc_urls: vec![chain.url()],
            lilypad: chain.lilypad,
        }],
        vec![
            price("cowsay", PRICE),
            price("sha256", PRICE),
            price("fail", PRICE / 2),
        ],
    );
    settings.heartbeat = heartbeat;
    settings.agreement_poll = Duration::from_millis(200);
    tweak(&mut settings);
    let capacity = CapacityTracker::new(Capacity {
        cpu_millis: 2000,
        memory_bytes: 4 * GIB,
        gpu_vram_bytes: Vec::new(),
    });
    let provider = ResourceProvider::new(
        settings,
        bus.clone(),
        executor.clone(),
        Arc::clone(&registry),
        capacity,
    )
    .unwrap();
    World {
        chain,
        _nats: nats,
        _scratch: scratch,
        bus,
        provider,
        executor,
        registry,
        store,
    }
}

impl World {
    /// The client requests a job; returns it as the relayer would publish it.
    async fn request(
        &self,
        module: &str,
        inputs: &[(&str, &str)],
        challenge_window: u32,
    ) -> JobRequested {
        // Pinned to this world's definition, deterministic when it is (so it can be challenged).
        let (module_id, deterministic) = self.registry.pin(module, "1.0.0").unwrap();
        let request = Lilypad::JobRequest {
            maxPrice: U256::from(2 * PRICE),
            resultsCollateralMultiplierBps: 20_000,
            challengeWindow: challenge_window,
            moduleId: module_id,
            deterministic,
            ..job_request(module, "1.0.0", inputs)
        };
        let receipt = self.chain.run_job(dev_keys::CLIENT, request).await.receipt;
        requested(CHAIN, self.chain.lilypad, &receipt)
    }

    /// Terms as an honest solver proposes them: the provider's price, collateral as the
    /// contract requires (1x timeout, the client's 2x results), two minutes to get on-chain.
    fn terms(&self, job: &JobRequested, price: u64) -> DealTerms {
        DealTerms {
            job_id: job.key.job_id,
            request_hash: job.request_hash,
            provider: self.provider.address(),
            price: U256::from(price),
            timeout_collateral: U256::from(price),
            results_collateral: U256::from(2 * price),
            expiry: U256::from(unix_now() + 120),
        }
    }

    async fn propose(&self, proposal: &DealProposal) -> Result<SignedDeal, BusError> {
        self.bus
            .request(
                &self.provider.deal_subject(),
                proposal,
                Duration::from_secs(30),
            )
            .await
    }

    async fn refused(&self, proposal: &DealProposal) -> String {
        match self.propose(proposal).await {
            Err(BusError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Submits the signed deal as a relayer would (anyone may: the client's key does it here, so
    /// the relayer's key is free to be a mediator's).
    async fn agree(&self, deal: &SignedDeal) {
        let abi = Lilypad::Deal::from(&deal.terms);
        let lilypad = self.chain.lilypad_as(dev_keys::CLIENT);
        send(lilypad.agreeDeal(abi, deal.signature.clone())).await;
    }

    /// The next signed result on the results stream.
    async fn next_result(&self) -> SignedResult {
        lilypad_testkit::next_message(
            &self.bus,
            Topic::Results,
            Some(CHAIN),
            "test-relayer",
            Duration::from_secs(120),
        )
        .await
    }

    /// Submits a signed result as a relayer would; the contract must accept it.
    async fn submit(&self, r: &SignedResult) {
        let relayer = self.chain.lilypad_as(dev_keys::CLIENT);
        let data = Lilypad::ResultData {
            jobId: r.key.job_id,
            status: r.status,
            resultCid: Bytes::from(r.result_cid.as_bytes().to_vec()),
            exitCode: r.exit_code,
            error: r.error.clone(),
        };
        send(relayer.submitResult(data, r.inline_output.clone(), r.signature.clone())).await;
    }

    async fn job_status(&self, job: &JobRequested) -> Option<JobStatus> {
        self.job_status_by_id(job.key.job_id).await
    }

    /// Runs one job end to end: propose, agree, take the result, submit it.
    async fn run(&self, module: &str, inputs: &[(&str, &str)], window: u32) -> SignedResult {
        let job = self.request(module, inputs, window).await;
        let price = if module == "fail" { PRICE / 2 } else { PRICE };
        let proposal = DealProposal {
            terms: self.terms(&job, price),
            job,
        };
        let deal = self.propose(&proposal).await.unwrap();
        self.agree(&deal).await;
        let result = self.next_result().await;
        assert_eq!(result.key, proposal.job.key);
        self.submit(&result).await;
        assert_eq!(
            self.job_status(&proposal.job).await,
            Some(JobStatus::ResultSubmitted)
        );
        result
    }
}

async fn live_offer(bus: &Bus) -> Option<Offer> {
    let (offers, bad) = bus.offers::<Offer>().await.unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    offers.into_iter().next().map(|(_, o)| o)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_offer_shows_capacity_prices_and_collateral_and_expires_when_the_heartbeat_stops() {
    let w = world("offer", Duration::from_secs(2), Duration::from_millis(200)).await;
    let heartbeat = w.provider.start_heartbeat();
    let offer = eventually(Duration::from_secs(10), "the offer appears", async || {
        live_offer(&w.bus).await.ok_or("no offer")
    })
    .await;
    assert_eq!(offer.provider, w.provider.address());
    assert_eq!(offer.deal_subject, w.provider.deal_subject());
    assert_eq!(offer.free.cpu_millis, 2000);
    assert_eq!(offer.free.memory_bytes, 4 * GIB);
    assert!(offer.since <= offer.updated);
    let names: Vec<_> = offer
        .modules
        .iter()
        .map(|m| (m.module.name.as_str(), m.price))
        .collect();
    assert_eq!(
        names,
        vec![
            ("cowsay", U256::from(PRICE)),
            ("fail", U256::from(PRICE / 2)),
            ("sha256", U256::from(PRICE))
        ]
    );
    assert_eq!(offer.chains.len(), 1);
    assert_eq!(offer.chains[0].chain_id, CHAIN);
    assert_eq!(offer.chains[0].lilypad, w.chain.lilypad);
    assert_eq!(offer.chains[0].free_collateral, U256::from(DEPOSIT));

    // Reserved capacity shows in the next refresh.
    let cowsay = w.registry.get("cowsay", "1.0.0").unwrap();
    let held = w
        .provider
        .capacity()
        .try_reserve(&cowsay.resources)
        .unwrap();
    let o = eventually(
        Duration::from_secs(10),
        "the offer shows the reservation",
        async || {
            let o = live_offer(&w.bus).await.unwrap();
            let cpu = o.free.cpu_millis;
            ok_if(cpu == 2000 - cowsay.resources.cpu_millis, cpu).map(|()| o)
        },
    )
    .await;
    assert_eq!(o.free.memory_bytes, 4 * GIB - cowsay.resources.memory_bytes);
    assert_eq!(o.since, offer.since);
    drop(held);

    // A provider that stops refreshing (as if it crashed) disappears after the TTL.
    drop(heartbeat);
    eventually(
        Duration::from_secs(30),
        "the offer expires once the heartbeat stops",
        async || match live_offer(&w.bus).await {
            None => Ok(()),
            Some(o) => Err(format!("still offered, updated {}", o.updated)),
        },
    )
    .await;

    // A clean stop removes it at once.
    let heartbeat = w.provider.start_heartbeat();
    w.provider.put_offer().await.unwrap();
    assert!(live_offer(&w.bus).await.is_some());
    heartbeat.stop().await.unwrap();
    assert!(live_offer(&w.bus).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deal_is_signed_so_the_contract_accepts_it_and_bad_proposals_are_refused_with_reasons() {
    let w = world("deal", Duration::from_secs(30), Duration::from_secs(10)).await;
    let _server = w.provider.serve_deals().await.unwrap();
    let job = w
        .request("cowsay", &[("message", "moo from the market")], 0)
        .await;
    let good = DealProposal {
        terms: w.terms(&job, PRICE),
        job: job.clone(),
    };

    let mut p = good.clone();
    p.terms.price = U256::from(PRICE - 1);
    let reason = w.refused(&p).await;
    assert!(reason.contains("price too low"), "{reason}");
    assert!(reason.contains(&PRICE.to_string()), "{reason}");

    let mut p = good.clone();
    p.terms.provider = dev_keys::ADDRESSES[4].parse().unwrap();
    let reason = w.refused(&p).await;
    assert!(reason.contains("the terms name provider"), "{reason}");

    let mut p = good.clone();
    p.job.key.chain_id = CHAIN + 1;
    let reason = w.refused(&p).await;
    assert!(
        reason.contains(&format!("chain {} is not served", CHAIN + 1)),
        "{reason}"
    );

    // A stale or forged request: the job and terms agree with each other, not with the chain.
    let mut p = good.clone();
    p.job.request_hash = B256::repeat_byte(7);
    p.terms.request_hash = B256::repeat_byte(7);
    let reason = w.refused(&p).await;
    assert!(reason.contains("request hash mismatch"), "{reason}");
    assert!(reason.contains(&job.request_hash.to_string()), "{reason}");

    let mut p = good.clone();
    p.terms.timeout_collateral = U256::from(PRICE / 2);
    let reason = w.refused(&p).await;
    assert!(reason.contains("timeout collateral"), "{reason}");

    let mut p = good.clone();
    p.terms.expiry = U256::from(unix_now() + 86_400);
    let reason = w.refused(&p).await;
    assert!(reason.contains("expiry"), "{reason}");

    // Collateral: with most of it withdrawn, the deal's collateral is not covered.
    let as_provider = w.chain.lilypad_as(dev_keys::PROVIDER);
    let keep = PRICE / 2;
    send(as_provider.withdrawCollateral(U256::from(DEPOSIT - keep))).await;
    let reason = w.refused(&good).await;
    assert!(
        reason.contains("not enough free collateral")
            && reason.contains(&format!("the deal locks {PRICE}, {keep} is free")),
        "{reason}"
    );
    send(as_provider.depositCollateral(U256::from(DEPOSIT - keep))).await;

    // Capacity: with most of the CPU held by other work, the job does not fit.
    let hog = lilypad_modules::Resources {
        cpu_millis: 1800,
        memory_bytes: 0,
        gpus: 0,
        vram_bytes: 0,
    };
    let held = w.provider.capacity().try_reserve(&hog).unwrap();
    let reason = w.refused(&good).await;
    assert!(
        reason.contains("capacity exceeded") && reason.contains("needs 500 CPU millis, 200 free"),
        "{reason}"
    );
    drop(held);

    // Not a proposal at all.
    let answer = w
        .bus
        .client()
        .request(w.provider.deal_subject(), "{\"job\": 5}".into())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer.payload).into_owned();
    assert!(text.contains("malformed deal proposal"), "{text}");

    // The honest proposal is signed, and the contract accepts the signature.
    let deal = w.propose(&good).await.unwrap();
    assert_eq!(deal.terms, good.terms);
    assert_eq!(deal.key, job.key);
    // Asking again gets the same signature, not a second job.
    assert_eq!(w.propose(&good).await.unwrap(), deal);
    w.agree(&deal).await;
    assert_eq!(w.job_status(&job).await, Some(JobStatus::Agreed));

    // The job runs; its signed result comes back and the contract accepts it.
    let result = w.next_result().await;
    assert_eq!(result.status, Outcome::Succeeded.as_u8(), "{result:?}");
    assert_eq!(result.exit_code, 0);
    let inline = String::from_utf8_lossy(&result.inline_output).into_owned();
    assert!(inline.contains("moo from the market"), "{inline}");
    let cid: lilypad_results::Cid = result.result_cid.parse().unwrap();
    let dir = w.store.get(&cid).expect("the result is in the store");
    let stdout = std::fs::read(dir.join("stdout")).unwrap();
    assert!(stdout.starts_with(&result.inline_output));
    w.submit(&result).await;
    assert_eq!(w.job_status(&job).await, Some(JobStatus::ResultSubmitted));
    // The reservation was released.
    assert_eq!(w.provider.capacity().free().cpu_millis, 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_signed_results_the_contract_accepts() {
    let w = world("failures", Duration::from_secs(30), Duration::from_secs(10)).await;
    let _server = w.provider.serve_deals().await.unwrap();

    // A bad input (an input the module does not declare) is accepted as a deal and reported.
    let r = w
        .run("cowsay", &[("message", "hi"), ("colour", "red")], 0)
        .await;
    assert_eq!(r.status, Outcome::ProviderError.as_u8(), "{r:?}");
    assert!(r.error.starts_with("BadInput: "), "{}", r.error);
    assert!(r.error.contains("colour"), "{}", r.error);

    // A missing required input too.
    let r = w.run("cowsay", &[], 0).await;
    assert_eq!(r.status, Outcome::ProviderError.as_u8(), "{r:?}");
    assert!(r.error.contains("message"), "{}", r.error);

    // An input over the module's max_bytes (1024 for cowsay; the chain takes up to 4096).
    let r = w.run("cowsay", &[("message", &"m".repeat(2000))], 0).await;
    assert_eq!(r.status, Outcome::ProviderError.as_u8(), "{r:?}");
    assert!(r.error.starts_with("BadInput: "), "{}", r.error);

    // The job's own failure: its exit code, its CID, its output.
    let r = w.run("fail", &[("code", "7")], 0).await;
    assert_eq!((r.status, r.exit_code), (2, 7), "{r:?}");
    assert!(!r.result_cid.is_empty());
    assert!(!r.error.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deal_that_never_reaches_the_chain_gives_back_capacity_and_collateral() {
    let w = world_with(
        "unagreed",
        Duration::from_secs(30),
        Duration::from_secs(10),
        |s| {
            s.min_deal_expiry = Duration::from_secs(2);
            s.agreement_grace = Duration::from_secs(1);
        },
    )
    .await;
    let _server = w.provider.serve_deals().await.unwrap();
    let job = w.request("sha256", &[("text", "never agreed")], 0).await;
    let mut terms = w.terms(&job, PRICE);
    terms.expiry = U256::from(unix_now() + 3);
    w.propose(&DealProposal { job, terms }).await.unwrap();
    // Signed, not yet on-chain: the timeout collateral is held back from the offer.
    assert_eq!(
        w.provider.free_collateral(CHAIN).await.unwrap(),
        U256::from(DEPOSIT - PRICE)
    );
    assert!(w.provider.capacity().free().cpu_millis < 2000);
    // Nobody submits it; once it has expired the provider gives it up.
    eventually(
        Duration::from_secs(30),
        "capacity and collateral come back",
        async || {
            let cpu = w.provider.capacity().free().cpu_millis;
            let collateral = w.provider.free_collateral(CHAIN).await.unwrap();
            ok_if(
                cpu == 2000 && collateral == U256::from(DEPOSIT),
                format!("{cpu} CPU millis and {collateral} collateral free"),
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deals_waiting_to_be_agreed_have_their_jobs_read_once_per_new_block_not_every_poll() {
    const DEALS: u64 = 4;
    // The provider reaches the chain through a proxy that counts its requests by method.
    let mut counter = None;
    let w = world_with(
        "watch",
        Duration::from_secs(30),
        Duration::from_secs(10),
        |s| {
            let proxy = FaultyRpc::start(&s.chains[0].rpc_urls[0], FaultPlan::none()).unwrap();
            s.chains[0].rpc_urls = vec![proxy.url()];
            s.agreement_poll = Duration::from_millis(50);
            counter = Some(proxy);
        },
    )
    .await;
    let proxy = counter.unwrap();
    let _server = w.provider.serve_deals().await.unwrap();
    for i in 0..DEALS {
        let job = w
            .request("sha256", &[("text", &format!("wait {i}"))], 0)
            .await;
        let terms = w.terms(&job, PRICE);
        w.propose(&DealProposal { job, terms }).await.unwrap();
    }
    // Nobody agrees them: the provider watches all four for two minutes. Over forty polls of
    // the chain's latest block, a job can only have changed in a block mined meanwhile.
    let block = || {
        let n = w.chain.rpc("eth_blockNumber", "[]");
        u64::from_str_radix(n.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let (before, first_block) = (proxy.stats(), block());
    eventually(
        Duration::from_secs(60),
        "forty polls of the latest block",
        async || {
            let polls = proxy.stats().seen_of("eth_getBlockByNumber")
                - before.seen_of("eth_getBlockByNumber");
            ok_if(polls >= 40, format!("{polls} polls"))
        },
    )
    .await;
    let (after, blocks) = (proxy.stats(), block() - first_block);
    let job_reads = after.seen_of("eth_call") - before.seen_of("eth_call");
    // Each deal's job once per new block (and once more for a read that straddled the start),
    // twice at most where a slow answer was hedged; every poll would be forty.
    assert!(
        job_reads <= 2 * DEALS * (blocks + 2),
        "{job_reads} job reads for {DEALS} deals over {blocks} new blocks"
    );
    eprintln!(
        "{job_reads} job reads over {} polls and {blocks} new blocks",
        after.seen_of("eth_getBlockByNumber") - before.seen_of("eth_getBlockByNumber")
    );
    // Still watched all along: their collateral is still held back from the offer.
    assert_eq!(
        w.provider.free_collateral(CHAIN).await.unwrap(),
        U256::from(DEPOSIT - DEALS * PRICE)
    );
}

/// Mediators with a stake each, keeping their votes under `state`; the one at `lazy` (if any)
/// commits the provider's claim without re-running.
async fn mediators(w: &World, state: &std::path::Path, lazy: Option<usize>) -> Vec<Mediator> {
    let keys = [dev_keys::DEPLOYER, dev_keys::RELAYER, dev_keys::MEDIATOR];
    let mut out = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let stake = U256::from(10u64).pow(U256::from(19));
        w.chain
            .register_mediator(key, "http://mediator.test", stake)
            .await;
        out.push(mediator(w, key, state, lazy == Some(i)));
    }
    out
}

fn mediator(w: &World, key: &str, state: &std::path::Path, lazy: bool) -> Mediator {
    let m = mediator_at(w, key, state, w.chain.url());
    if lazy { m.testing_lazy() } else { m }
}

/// A mediator reading the chain at `url`.
fn mediator_at(w: &World, key: &str, state: &std::path::Path, url: String) -> Mediator {
    Mediator::new(
        key.parse().unwrap(),
        ChainSettings {
            chain_id: CHAIN,
            rpc_urls: vec![url],
            lilypad: w.chain.lilypad,
        },
        w.chain.mediation,
        w.chain.deployed_at,
        w.executor.clone(),
        Arc::clone(&w.registry),
        VoteStore::open(state).unwrap(),
    )
    .unwrap()
}

/// Rounds of every mediator's service loop until `job`'s challenge is decided; returns the hash
/// each mediator revealed, by mediator.
async fn mediate_until_decided(w: &World, mediators: &[Mediator], job: U256) -> Vec<(usize, B256)> {
    let mut revealed = Vec::new();
    eventually(
        Duration::from_secs(120),
        "the mediators decide the challenge",
        async || {
            for (i, m) in mediators.iter().enumerate() {
                let done = m.mediate_new_cases().await;
                for action in done {
                    let action = action.unwrap();
                    if let Step::Revealed { result_hash } = action.step {
                        assert_eq!(action.job.job_id, job);
                        revealed.push((i, result_hash));
                    }
                }
            }
            let status = w.job_status_by_id(job).await;
            ok_if(status != Some(JobStatus::Challenged), format!("{status:?}"))
        },
    )
    .await;
    revealed
}

/// A fresh connection per transaction: the client's key also sends from other connections.
async fn challenge(w: &World, job: U256) {
    send(w.chain.lilypad_as(dev_keys::CLIENT).challenge(job)).await;
}

impl World {
    /// A job whose provider submits a result with another CID than its honest run's, signed;
    /// returns the job and the honest result (never submitted).
    async fn lie(&self) -> (JobRequested, SignedResult) {
        let liar_job = self.request("sha256", &[("text", "abc")], 3600).await;
        let proposal = DealProposal {
            terms: self.terms(&liar_job, PRICE),
            job: liar_job.clone(),
        };
        let deal = self.propose(&proposal).await.unwrap();
        self.agree(&deal).await;
        let honest = self.next_result().await; // the service's own result, not submitted
        let fake_cid = lilypad_results::cid_of_bytes(b"not the answer").to_string();
        assert_ne!(fake_cid, honest.result_cid);
        let signer: PrivateKeySigner = dev_keys::PROVIDER.parse().unwrap();
        let msg = lilypad_bindings::eip712::result_message(
            liar_job.key.job_id,
            1,
            fake_cid.as_bytes(),
            &honest.inline_output,
            0,
            "",
        );
        let sig = lilypad_bindings::eip712::sign_result(
            &signer,
            &lilypad_bindings::eip712::domain(CHAIN, self.chain.lilypad),
            &msg,
        )
        .unwrap();
        let mut lie = honest.clone();
        lie.result_cid = fake_cid;
        lie.signature = Bytes::from(sig.as_bytes().to_vec());
        self.submit(&lie).await;
        (liar_job, honest)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mediators_uphold_an_honest_provider_and_overturn_a_lying_one() {
    let w = world(
        "mediation",
        Duration::from_secs(30),
        Duration::from_secs(10),
    )
    .await;
    let _server = w.provider.serve_deals().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mediators = mediators(&w, state.path(), None).await;

    // An honest result for the deterministic sha256 module, challenged by the client.
    let r = w.run("sha256", &[("text", "abc")], 3600).await;
    assert_eq!(r.status, Outcome::Succeeded.as_u8(), "{r:?}");
    let job = r.key.job_id;
    challenge(&w, job).await;
    // The re-run reproduces the provider's whole result, and the job stores its commitment.
    let fetched = mediators[0].fetch_job(job).await.unwrap();
    let hash = rerun(&w.executor, &w.registry, &fetched).await.unwrap();
    assert_eq!(hash, commitment_of(&r));
    assert_eq!(
        w.chain
            .lilypad()
            .getJob(job)
            .call()
            .await
            .unwrap()
            .resultHash,
        hash
    );
    // As the mediator service runs: someone draws once the seed block exists, the three commit,
    // then reveal; the last reveal decides.
    let revealed = mediate_until_decided(&w, &mediators, job).await;
    assert_eq!(revealed.len(), 3, "{revealed:?}");
    assert!(revealed.iter().all(|(_, h)| *h == hash), "{revealed:?}");
    assert_eq!(
        w.job_status_by_id(job).await,
        Some(JobStatus::Settled),
        "the result was upheld"
    );

    // A lying provider: a result with another CID, signed and submitted outside the service.
    let (liar_job, honest) = w.lie().await;
    challenge(&w, liar_job.key.job_id).await;
    let revealed = mediate_until_decided(&w, &mediators, liar_job.key.job_id).await;
    let honest_hash = commitment_of(&honest);
    assert_eq!(revealed.len(), 3, "{revealed:?}");
    assert!(
        revealed.iter().all(|(_, h)| *h == honest_hash),
        "{revealed:?}"
    );
    assert_eq!(
        w.job_status_by_id(liar_job.key.job_id).await,
        Some(JobStatus::Overturned)
    );
    // Every vote was revealed: the state directory keeps none.
    assert_eq!(
        std::fs::read_dir(state.path().join("votes"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_mediator_is_slashed_and_a_restarted_one_still_reveals() {
    let w = world("lazy", Duration::from_secs(30), Duration::from_secs(10)).await;
    let _server = w.provider.serve_deals().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    // Mediator 1 does no work: it commits whatever the provider claimed.
    let mut mediators = mediators(&w, state.path(), Some(1)).await;
    let (liar_job, honest) = w.lie().await;
    let job = liar_job.key.job_id;
    challenge(&w, job).await;
    let reader = w.chain.wallet(dev_keys::CLIENT);
    let mediation = ConsortiumMediation::new(w.chain.mediation, &reader);

    // Mediator 0 commits, then "restarts": a new process with the same state directory.
    eventually(Duration::from_secs(60), "mediator 0 commits", async || {
        let done = mediators[0].mediate_new_cases().await;
        let committed = done
            .into_iter()
            .any(|a| matches!(a.unwrap().step, Step::Committed { .. }));
        ok_if(committed, "not yet")
    })
    .await;
    mediators[0] = mediator(&w, dev_keys::DEPLOYER, state.path(), false);

    let revealed = mediate_until_decided(&w, &mediators, job).await;
    assert_eq!(w.job_status_by_id(job).await, Some(JobStatus::Overturned));
    let honest_hash = commitment_of(&honest);
    let lazy_hash = w
        .chain
        .lilypad()
        .getJob(job)
        .call()
        .await
        .unwrap()
        .resultHash;
    assert!(
        revealed.contains(&(0, honest_hash)),
        "the restarted mediator revealed: {revealed:?}"
    );
    assert!(revealed.contains(&(1, lazy_hash)), "{revealed:?}");

    // The lazy mediator lost its stake to the two that re-ran the job.
    let stake = U256::from(10u64).pow(U256::from(19));
    let lazy = mediators[1].address();
    let s = mediation.stakeOf(lazy).call().await.unwrap();
    assert_eq!((s.free, s.locked), (U256::ZERO, U256::ZERO), "slashed");
    for m in [&mediators[0], &mediators[2]] {
        let s = mediation.stakeOf(m.address()).call().await.unwrap();
        assert_eq!((s.free, s.locked), (stake, U256::ZERO), "released");
        let credited = mediation.balanceOf(m.address()).call().await.unwrap();
        assert_eq!(credited, stake / U256::from(2), "half the lazy one's stake");
    }
}

/// A mediator reading the chain at `url` (a proxy in front of it) in chunks of `chunk` blocks.
fn mediator_via(
    w: &World,
    key: &str,
    state: &std::path::Path,
    url: String,
    chunk: u64,
) -> Mediator {
    mediator_at(w, key, state, url)
        .following(FollowSettings {
            confirmations: Confirmations::Blocks(0),
            start_block: w.chain.deployed_at,
            log_chunk_size: chunk,
            reorg_rewind: 4,
        })
        .unwrap()
}

async fn mine(w: &World, blocks: u64) {
    use alloy::providers::Provider;
    w.chain
        .wallet(dev_keys::CLIENT)
        .raw_request::<_, serde_json::Value>("anvil_mine".into(), (format!("{blocks:#x}"),))
        .await
        .unwrap();
}

async fn head(w: &World) -> u64 {
    use alloy::providers::Provider;
    w.chain
        .wallet(dev_keys::CLIENT)
        .get_block_number()
        .await
        .unwrap()
}

/// A market serving deals, with three staked mediators keeping their state in the returned
/// directory.
async fn mediation_world(name: &str) -> (World, DealServer, tempfile::TempDir, Vec<Mediator>) {
    let w = world(name, Duration::from_secs(30), Duration::from_secs(10)).await;
    let server = w.provider.serve_deals().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mediators = mediators(&w, state.path(), None).await;
    (w, server, state, mediators)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_mediator_resumes_from_its_cursor_reading_in_chunks_and_still_votes() {
    let (w, _server, state, mut mediators) = mediation_world("resume").await;
    // Mediator 0 reads through a counting proxy, two blocks per eth_getLogs.
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    mediators[0] = mediator_via(&w, dev_keys::DEPLOYER, state.path(), proxy.url(), 2);

    let r = w.run("sha256", &[("text", "abc")], 3600).await;
    let job = r.key.job_id;
    mine(&w, 40).await; // the case opens many chunks past the deployment block
    challenge(&w, job).await;
    let before = proxy.stats().seen_of("eth_getLogs");
    eventually(
        Duration::from_secs(60),
        "mediator 0 reads the case",
        async || {
            mediators[0].mediate_new_cases().await;
            let seen = mediators[0].cursor().map(|c| c.sequence);
            ok_if(seen == Some(1), format!("{seen:?}"))
        },
    )
    .await;
    let reads = proxy.stats().seen_of("eth_getLogs") - before;
    let spanned = mediators[0].cursor().unwrap().block - w.chain.deployed_at;
    assert!(
        reads >= spanned / 2,
        "{reads} eth_getLogs over {spanned} blocks in chunks of 2"
    );

    // Restart: a new mediator on the same state directory keeps the cursor and the case.
    let cursor = mediators[0].cursor().unwrap();
    mediators[0] = mediator_via(&w, dev_keys::DEPLOYER, state.path(), proxy.url(), 2);
    assert_eq!(mediators[0].cursor(), Some(cursor), "the cursor was kept");
    let before = proxy.stats().seen_of("eth_getLogs");
    mediators[0].mediate_new_cases().await;
    let reads = proxy.stats().seen_of("eth_getLogs") - before;
    let since = head(&w).await - cursor.block;
    assert!(
        reads <= 2 * since.div_ceil(2) + 2,
        "{reads} eth_getLogs for the {since} blocks after the cursor: not read again from the deployment block"
    );

    let revealed = mediate_until_decided(&w, &mediators, job).await;
    assert!(
        revealed.iter().any(|(i, _)| *i == 0),
        "the restarted mediator voted: {revealed:?}"
    );
    assert_eq!(w.job_status_by_id(job).await, Some(JobStatus::Settled));
}

#[tokio::test(flavor = "multi_thread")]
async fn mediators_behind_a_faulty_rpc_still_commit_and_reveal() {
    let (w, _server, state, mut mediators) = mediation_world("faulty-mediators").await;
    let plan =
        FaultPlan::random(0.3, 12).delays(Duration::from_millis(50), Duration::from_millis(300));
    let proxy = FaultyRpc::start(&w.chain.url(), plan).unwrap();
    let keys = [dev_keys::DEPLOYER, dev_keys::RELAYER, dev_keys::MEDIATOR];
    for (m, key) in mediators.iter_mut().zip(keys) {
        *m = mediator_via(&w, key, state.path(), proxy.url(), 5);
    }

    let r = w.run("sha256", &[("text", "abc")], 3600).await;
    let job = r.key.job_id;
    challenge(&w, job).await;
    let (mut committed, mut revealed) = (BTreeSet::new(), BTreeSet::new());
    let (mut failed, mut cut) = (0, false);
    eventually(
        Duration::from_secs(180),
        "the mediators decide the challenge through the faulty RPC",
        async || {
            for (i, m) in mediators.iter().enumerate() {
                for a in m.mediate_new_cases().await {
                    match a {
                        Ok(a) if matches!(a.step, Step::Committed { .. }) => {
                            committed.insert(i);
                        }
                        Ok(a) if matches!(a.step, Step::Revealed { .. }) => {
                            revealed.insert(i);
                        }
                        Ok(_) => {}
                        Err(_) => failed += 1,
                    }
                }
                if committed.len() == 3 && !cut {
                    cut = true;
                    // From now on no new case can be read: the reveals must not wait for that.
                    proxy.fail_method_for("eth_getLogs", Fault::Http503, Duration::from_secs(3600));
                }
            }
            // A reveal whose answer was lost is reported at the next round, after the case
            // resolved too: wait for every report, not only for the verdict.
            let status = w.job_status_by_id(job).await;
            ok_if(
                status != Some(JobStatus::Challenged) && revealed.len() == 3,
                format!("{status:?}, revealed by {revealed:?} ({failed} steps failed)"),
            )
        },
    )
    .await;
    assert_eq!(w.job_status_by_id(job).await, Some(JobStatus::Settled));
    assert!(proxy.stats().faulted() > 0, "{}", proxy.stats());
    assert!(failed > 0, "reading new cases failed while they revealed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mediator_that_never_hears_back_from_its_sends_reports_each_vote_once() {
    let (w, _server, state, mut mediators) = mediation_world("unheard").await;
    // Mediator 0's transactions all reach the node, but it never learns so from the send: every
    // answer to eth_sendRawTransaction is lost, and so is every lookup by hash.
    let proxy = FaultyRpc::start(&w.chain.url(), FaultPlan::none()).unwrap();
    let hour = Duration::from_secs(3600);
    proxy.fail_method_for("eth_sendRawTransaction", Fault::LoseAnswer, hour);
    proxy.fail_method_for("eth_getTransactionByHash", Fault::Http503, hour);
    mediators[0] = mediator_via(&w, dev_keys::DEPLOYER, state.path(), proxy.url(), 5);

    let r = w.run("sha256", &[("text", "abc")], 3600).await;
    let job = r.key.job_id;
    challenge(&w, job).await;
    let (mut steps, mut refused) = (Vec::new(), Vec::new());
    eventually(
        Duration::from_secs(180),
        "mediator 0 reports its reveal and the challenge is decided",
        async || {
            for (i, m) in mediators.iter().enumerate() {
                for a in m.mediate_new_cases().await {
                    match a {
                        Ok(a) if i == 0 => steps.push(a),
                        Err(e @ MediatorError::Refused { .. }) => refused.push(e.to_string()),
                        _ => {}
                    }
                }
            }
            let status = w.job_status_by_id(job).await;
            let revealed = steps
                .iter()
                .any(|a| matches!(a.step, Step::Revealed { .. }));
            ok_if(
                status != Some(JobStatus::Challenged) && revealed,
                format!("{status:?}, mediator 0 reported {steps:?}"),
            )
        },
    )
    .await;
    let votes: Vec<_> = steps
        .iter()
        .filter(|a| !matches!(a.step, Step::Drew | Step::Finalized))
        .map(|a| a.step.clone())
        .collect();
    let mediation = ConsortiumMediation::new(w.chain.mediation, w.chain.wallet(dev_keys::CLIENT));
    let me: PrivateKeySigner = dev_keys::DEPLOYER.parse().unwrap();
    let on_chain = mediation.revealOf(job, me.address()).call().await.unwrap();
    assert_eq!(
        votes,
        [
            Step::Committed {
                result_hash: on_chain
            },
            Step::Revealed {
                result_hash: on_chain
            }
        ],
        "its commit and its reveal, each reported once, of the vote on-chain"
    );
    assert!(refused.is_empty(), "nothing was sent twice: {refused:?}");
    assert!(proxy.stats().faulted_of("eth_sendRawTransaction") > 0);
    assert_eq!(w.job_status_by_id(job).await, Some(JobStatus::Settled));
}

impl World {
    async fn job_status_by_id(&self, job: U256) -> Option<JobStatus> {
        self.chain
            .lilypad_as(dev_keys::RELAYER)
            .getJob(job)
            .call()
            .await
            .unwrap()
            .state()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_given_back_is_offered_at_once_not_at_the_next_heartbeat() {
    // An hour between heartbeats: only the release itself can refresh the offer in time.
    let w = world("freed", Duration::from_secs(30), Duration::from_secs(3600)).await;
    let cowsay = w.registry.get("cowsay", "1.0.0").unwrap();
    let held = w
        .provider
        .capacity()
        .try_reserve(&cowsay.resources)
        .unwrap();
    let _heartbeat = w.provider.start_heartbeat();
    let busy = 2000 - cowsay.resources.cpu_millis;
    eventually(
        Duration::from_secs(10),
        "the offer shows the job's reservation",
        async || {
            let cpu = live_offer(&w.bus).await.map(|o| o.free.cpu_millis);
            ok_if(cpu == Some(busy), format!("{cpu:?}"))
        },
    )
    .await;
    drop(held); // the job ends
    eventually(
        Duration::from_secs(10),
        "the offer shows the freed capacity",
        async || {
            let cpu = live_offer(&w.bus).await.map(|o| o.free.cpu_millis);
            ok_if(cpu == Some(2000), format!("{cpu:?}"))
        },
    )
    .await;
}

/// The commitment of a signed result: what the contract stores and mediators vote.
fn commitment_of(r: &SignedResult) -> B256 {
    lilypad_bindings::eip712::result_commitment(
        r.status,
        r.exit_code,
        r.result_cid.as_bytes(),
        &r.inline_output,
    )
}
