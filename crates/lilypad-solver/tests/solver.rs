//! The solver against real NATS, with providers played by the test: real offers in the bucket,
//! real request/reply proposals, real signatures.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, Bytes, U256};
use lilypad_bindings::eip712;
use lilypad_bus::{Bus, BusOptions, Received, Topic, deal_subject};
use lilypad_e2e::{Nats, TcpProxy, eventually, job_modules_dir, ok_if};
use lilypad_modules::ModuleRegistry;
use lilypad_solver::book::Entry;
use lilypad_solver::service::{Booked, Decision, JobChain, OpenJob, Pass, Solver, SolverSettings};
use lilypad_types::{
    Capacity, ChainCollateral, DealProposal, Input, JobKey, JobRequested, JobSpec, ModuleId,
    ModulePrice, Offer, SignedDeal,
};

const CHAIN: u64 = 31337;
const LILYPAD: Address = Address::repeat_byte(0xaa);

/// The chain as the solver sees it: every job open, 1x timeout collateral.
struct OpenChain(bool);

impl JobChain for OpenChain {
    async fn open_job(&self, _key: JobKey, _hash: B256) -> Result<Option<OpenJob>, String> {
        Ok(self.0.then_some(OpenJob {
            match_deadline: u64::MAX / 2,
            timeout_collateral_bps: 10_000,
        }))
    }
}

fn job(id: u64, module: &str, max_price: u64) -> JobRequested {
    JobRequested {
        key: JobKey {
            chain_id: CHAIN,
            job_id: U256::from(id),
        },
        lilypad: LILYPAD,
        sequence: id,
        client: Address::repeat_byte(0x22),
        request_hash: B256::repeat_byte(id as u8),
        block_number: 1,
        block_hash: B256::ZERO,
        tx_hash: B256::ZERO,
        spec: JobSpec {
            module: module.into(),
            version: "1.0.0".into(),
            module_id: Default::default(),
            deterministic: false,
            inputs: vec![Input {
                key: "message".into(),
                value: "moo".into(),
            }],
            max_price: U256::from(max_price),
            match_timeout: 600,
            execution_timeout: 600,
            callback_gas_limit: 0,
            max_output_bytes: 100,
            results_collateral_multiplier_bps: 20_000,
            challenge_window: 0,
            ..Default::default()
        },
    }
}

fn offer(key: &PrivateKeySigner, price: u64, since: u64) -> Offer {
    Offer {
        provider: key.address(),
        deal_subject: deal_subject(&key.address().to_string()),
        since,
        updated: 0,
        updated_ms: 0,
        free: Capacity {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
            gpu_vram_bytes: vec![],
        },
        modules: vec![ModulePrice {
            module: ModuleId {
                name: "cowsay".into(),
                version: "1.0.0".into(),
            },
            price: U256::from(price),
        }],
        git_modules: vec![],
        chains: vec![ChainCollateral {
            chain_id: CHAIN,
            lilypad: LILYPAD,
            free_collateral: U256::from(10_000),
        }],
    }
}

#[derive(Clone, Copy)]
enum Behaviour {
    Sign,
    Refuse,
    SignWithAnotherKey,
}

/// Plays a provider: offers, then answers proposals as told. Returns how many proposals it saw.
async fn provider(
    bus: &Bus,
    key: PrivateKeySigner,
    price: u64,
    since: u64,
    how: Behaviour,
) -> tokio::task::JoinHandle<usize> {
    let o = offer(&key, price, since);
    provider_offering(bus, key, o, how).await
}

/// Plays a provider that offers `offer`.
async fn provider_offering(
    bus: &Bus,
    key: PrivateKeySigner,
    offer: Offer,
    how: Behaviour,
) -> tokio::task::JoinHandle<usize> {
    bus.put_offer(&key.address().to_string(), &offer)
        .await
        .unwrap();
    let mut requests = bus
        .serve::<DealProposal>(&deal_subject(&key.address().to_string()))
        .await
        .unwrap();
    bus.client().flush().await.unwrap();
    tokio::spawn(async move {
        let mut seen = 0;
        while let Some(req) = requests.next().await {
            seen += 1;
            let p = req.body.as_ref().unwrap().clone();
            let deal = eip712::Deal::from(&p.terms);
            let signer = match how {
                Behaviour::Refuse => {
                    req.refuse("busy").await.unwrap();
                    continue;
                }
                Behaviour::Sign => key.clone(),
                Behaviour::SignWithAnotherKey => PrivateKeySigner::random(),
            };
            let sig = eip712::sign_deal(&signer, &eip712::domain(CHAIN, LILYPAD), &deal).unwrap();
            let signed = SignedDeal {
                key: p.job.key,
                lilypad: LILYPAD,
                terms: p.terms.clone(),
                signature: Bytes::from(sig.as_bytes().to_vec()),
            };
            req.respond(signed).await.unwrap();
        }
        seen
    })
}

async fn setup() -> (Nats, Bus, Solver<OpenChain>) {
    let nats = Nats::start().unwrap();
    let bus = Bus::connect(&nats.url(), BusOptions::default())
        .await
        .unwrap();
    let solver = solver_on(bus.clone());
    (nats, bus, solver)
}

/// A solver on `bus`, every job open, proposals answered within 2 s.
fn solver_on(bus: Bus) -> Solver<OpenChain> {
    let modules = ModuleRegistry::load_dir(&job_modules_dir()).unwrap();
    let settings = SolverSettings {
        proposal_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    Solver::new(bus, modules, vec![(CHAIN, OpenChain(true))], settings)
}

async fn deals(bus: &Bus) -> Vec<SignedDeal> {
    let c = bus
        .consumer::<SignedDeal>(Topic::Deals, Some(CHAIN), "test-relayer")
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in c.fetch(10, Duration::from_millis(300)).await.unwrap() {
        let Received::Message(d) = r else {
            panic!("malformed deal")
        };
        out.push(d.body.clone());
        d.ack().await.unwrap();
    }
    out
}

#[tokio::test]
async fn the_cheapest_provider_that_signs_gets_the_deal_and_it_is_published() {
    let (_nats, bus, solver) = setup().await;
    let cheap = PrivateKeySigner::random();
    let dear = PrivateKeySigner::random();
    let _a = provider(&bus, cheap.clone(), 10, 5, Behaviour::Sign).await;
    let _b = provider(&bus, dear.clone(), 20, 1, Behaviour::Sign).await;

    let decision = solver.handle(&job(1, "cowsay", 50)).await.unwrap();
    let Decision::Dealt(signed) = decision else {
        panic!("expected a deal, got {decision:?}")
    };
    assert_eq!(signed.terms.provider, cheap.address());
    assert_eq!(signed.terms.price, U256::from(10));
    assert_eq!(
        signed.terms.timeout_collateral,
        U256::from(10),
        "1x the price"
    );
    assert_eq!(
        signed.terms.results_collateral,
        U256::from(20),
        "the client's 2x"
    );
    let published = deals(&bus).await;
    assert_eq!(published, [*signed]);
}

#[tokio::test]
async fn a_refusal_or_a_forged_signature_moves_on_to_the_next_provider() {
    let (_nats, bus, solver) = setup().await;
    let refuses = PrivateKeySigner::random();
    let forges = PrivateKeySigner::random();
    let honest = PrivateKeySigner::random();
    let r = provider(&bus, refuses.clone(), 5, 1, Behaviour::Refuse).await;
    let f = provider(&bus, forges.clone(), 6, 1, Behaviour::SignWithAnotherKey).await;
    let _h = provider(&bus, honest.clone(), 7, 1, Behaviour::Sign).await;

    let decision = solver.handle(&job(2, "cowsay", 50)).await.unwrap();
    let Decision::Dealt(signed) = decision else {
        panic!("expected a deal, got {decision:?}")
    };
    assert_eq!(signed.terms.provider, honest.address());
    assert_eq!(
        deals(&bus).await.len(),
        1,
        "only the honest deal is published"
    );
    r.abort();
    f.abort();
}

#[tokio::test]
async fn jobs_no_one_can_take_are_explained_and_never_published() {
    let (_nats, bus, solver) = setup().await;
    assert_eq!(
        solver.handle(&job(3, "cowsay", 50)).await.unwrap(),
        Decision::NoTaker("no provider is offering".into())
    );
    let _p = provider(&bus, PrivateKeySigner::random(), 100, 1, Behaviour::Sign).await;
    let Decision::NoTaker(why) = solver.handle(&job(4, "cowsay", 50)).await.unwrap() else {
        panic!("too expensive for everyone")
    };
    assert!(
        why.contains("asks 100, above the job's max price 50"),
        "{why}"
    );
    let Decision::UnknownModule(why) = solver.handle(&job(5, "no-such-module", 50)).await.unwrap()
    else {
        panic!("unknown module")
    };
    assert!(why.contains("no-such-module"), "{why}");
    assert!(deals(&bus).await.is_empty());

    let closed = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(CHAIN, OpenChain(false))],
        SolverSettings::default(),
    );
    assert_eq!(
        closed.handle(&job(6, "cowsay", 500)).await.unwrap(),
        Decision::NotOpen
    );
}

#[tokio::test]
async fn a_job_pinned_to_another_module_definition_is_not_matched() {
    let (_nats, bus, solver) = setup().await;
    let _p = provider(&bus, PrivateKeySigner::random(), 10, 1, Behaviour::Sign).await;
    let mut pinned = job(7, "cowsay", 50);
    pinned.spec.module_id = B256::repeat_byte(0x11);
    let Decision::UnknownModule(why) = solver.handle(&pinned).await.unwrap() else {
        panic!("a look-alike definition is not matched")
    };
    assert!(why.contains("the request pins definition 0x1111"), "{why}");
    assert!(deals(&bus).await.is_empty());
}

#[tokio::test]
async fn the_service_turns_the_jobs_stream_into_deals() {
    let (_nats, bus, solver) = setup().await;
    let key = PrivateKeySigner::random();
    let _p = provider(&bus, key.clone(), 10, 1, Behaviour::Sign).await;
    for id in 1..=3 {
        let j = job(id, "cowsay", 50);
        bus.publish(Topic::Jobs, CHAIN, &j.msg_id(), &j)
            .await
            .unwrap();
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let solver = std::sync::Arc::new(solver);
    let runner = {
        let (s, stop) = (solver.clone(), stop.clone());
        tokio::spawn(async move { s.run(stop).await })
    };
    let mut got = Vec::new();
    eventually(
        Duration::from_secs(15),
        "the solver publishes three deals",
        async || {
            got.extend(deals(&bus).await);
            ok_if(got.len() >= 3, got.len())
        },
    )
    .await;
    stop.cancel();
    runner.await.unwrap().unwrap();
    let mut ids: Vec<U256> = got.iter().map(|d| d.key.job_id).collect();
    ids.sort();
    assert_eq!(ids, [U256::from(1), U256::from(2), U256::from(3)]);
    assert!(got.iter().all(|d| d.terms.provider == key.address()));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Job requests on the jobs stream that no solver has acknowledged yet.
async fn jobs_unacknowledged(nats: &Nats) -> u64 {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(Topic::Jobs.stream()).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Starts `solver.run` on a task; returns its stop token and handle.
fn spawn_run(
    solver: std::sync::Arc<Solver<OpenChain>>,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<Result<(), lilypad_solver::service::SolverError>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    (stop, tokio::spawn(async move { solver.run(token).await }))
}

/// Waits until a deal for job `id` is published, and returns it.
async fn deal_for(bus: &Bus, id: u64) -> SignedDeal {
    let mut got = Vec::new();
    eventually(
        Duration::from_secs(15),
        &format!("a deal for job {id} is published"),
        async || {
            got.extend(deals(bus).await);
            got.iter()
                .find(|d| d.key.job_id == U256::from(id))
                .cloned()
                .ok_or(got.len())
        },
    )
    .await
}

/// Burst above capacity, in small: the provider is full when the job arrives; the job waits and
/// is dealt as soon as the provider offers the capacity a finished job gave back.
#[tokio::test]
async fn a_job_no_one_can_take_yet_is_dealt_as_soon_as_a_provider_frees_capacity() {
    let (nats, bus, solver) = setup().await;
    let key = PrivateKeySigner::random();
    let mut full = offer(&key, 10, 1);
    full.free.cpu_millis = 0;
    let _p = provider_offering(&bus, key.clone(), full.clone(), Behaviour::Sign).await;
    let (stop, runner) = spawn_run(std::sync::Arc::new(solver));

    let j = job(1, "cowsay", 50);
    bus.publish(Topic::Jobs, CHAIN, &j.msg_id(), &j)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "the solver takes the job off the stream",
        async || {
            let n = jobs_unacknowledged(&nats).await;
            ok_if(n == 0, n)
        },
    )
    .await;
    assert!(deals(&bus).await.is_empty(), "no capacity, no deal");

    // A job finishes: the provider refreshes its offer with the capacity it gave back.
    let freed = Offer {
        updated: unix_now(),
        updated_ms: unix_now() * 1000,
        free: offer(&key, 10, 1).free,
        ..full
    };
    bus.put_offer(&key.address().to_string(), &freed)
        .await
        .unwrap();
    let deal = deal_for(&bus, 1).await;
    assert_eq!(deal.terms.provider, key.address());
    stop.cancel();
    runner.await.unwrap().unwrap();
}

/// The book survives the solver: a job waiting when the solver stops is dealt by the next one,
/// once a provider appears.
#[tokio::test]
async fn a_job_waiting_in_the_book_is_dealt_after_a_solver_restart() {
    let (nats, bus, solver) = setup().await;
    let (stop, runner) = spawn_run(std::sync::Arc::new(solver));
    let j = job(7, "cowsay", 50);
    bus.publish(Topic::Jobs, CHAIN, &j.msg_id(), &j)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "the solver takes the job off the stream",
        async || {
            let n = jobs_unacknowledged(&nats).await;
            ok_if(n == 0, n)
        },
    )
    .await;
    stop.cancel();
    runner.await.unwrap().unwrap();

    // A new solver, with nothing in memory; then a provider offers.
    let restarted = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(CHAIN, OpenChain(true))],
        SolverSettings {
            proposal_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let (stop, runner) = spawn_run(std::sync::Arc::new(restarted));
    let key = PrivateKeySigner::random();
    let _p = provider(&bus, key.clone(), 10, 1, Behaviour::Sign).await;
    let deal = deal_for(&bus, 7).await;
    assert_eq!(deal.terms.provider, key.address());
    stop.cancel();
    runner.await.unwrap().unwrap();
}

/// Two solvers share one book: a waiting job is proposed by only one of them.
#[tokio::test]
async fn two_solvers_matching_the_same_book_propose_a_job_once() {
    let (_nats, bus, a) = setup().await;
    let b = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(CHAIN, OpenChain(true))],
        SolverSettings::default(),
    );
    let j = job(3, "cowsay", 50);
    assert_eq!(a.book_job(&j).await.unwrap(), Booked::Added);
    assert_eq!(b.book_job(&j).await.unwrap(), Booked::AlreadyThere);
    let key = PrivateKeySigner::random();
    let p = provider(&bus, key.clone(), 10, 1, Behaviour::Sign).await;

    let (pa, pb) = tokio::join!(a.match_book(), b.match_book());
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    assert_eq!(pa.dealt + pb.dealt, 1, "{pa:?} {pb:?}");
    assert_eq!(deals(&bus).await.len(), 1);
    let (left, _) = bus.book::<Entry>().await.unwrap();
    assert!(
        left.len() == 1 && left[0].value.claim.is_none() && left[0].value.dealt_until.is_some(),
        "a dealt job is held, unclaimed, until its deal could have landed: {left:?}"
    );
    p.abort();
}

/// Jobs leave the book when the chain says they are closed (dealt elsewhere, expired,
/// reorganised away); a job with a provider to take it is never dropped.
#[tokio::test]
async fn a_job_closed_on_chain_leaves_the_book() {
    let (_nats, bus, open) = setup().await;
    let j = job(4, "cowsay", 50);
    assert_eq!(open.book_job(&j).await.unwrap(), Booked::Added);
    assert_eq!(
        open.match_book().await.unwrap(),
        Pass {
            waiting: 1,
            ..Pass::default()
        },
        "no provider offers: the job waits"
    );
    let closed = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(CHAIN, OpenChain(false))],
        SolverSettings {
            prune_every: Duration::ZERO,
            ..Default::default()
        },
    );
    assert_eq!(
        closed.match_book().await.unwrap(),
        Pass {
            dropped: 1,
            ..Pass::default()
        }
    );
    let (left, _) = bus.book::<Entry>().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// The chain as the solver sees it, with a match deadline per job id.
struct Deadlines(Vec<(u64, u64)>);

impl JobChain for Deadlines {
    async fn open_job(&self, key: JobKey, _hash: B256) -> Result<Option<OpenJob>, String> {
        Ok(self
            .0
            .iter()
            .find(|(id, _)| U256::from(*id) == key.job_id)
            .map(|(_, deadline)| OpenJob {
                match_deadline: *deadline,
                timeout_collateral_bps: 10_000,
            }))
    }
}

/// Room for one job, two waiting: the one whose match deadline comes first is dealt, although it
/// entered the book second.
#[tokio::test]
async fn the_job_with_the_earliest_match_deadline_goes_first() {
    let (_nats, bus, _) = setup().await;
    let now = unix_now();
    let solver = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(CHAIN, Deadlines(vec![(1, now + 600), (2, now + 300)]))],
        SolverSettings::default(),
    );
    let (late, soon) = (job(1, "cowsay", 50), job(2, "cowsay", 50));
    assert_eq!(solver.book_job(&late).await.unwrap(), Booked::Added);
    assert_eq!(solver.book_job(&soon).await.unwrap(), Booked::Added);
    let key = PrivateKeySigner::random();
    let mut one_slot = offer(&key, 10, 1);
    one_slot.free.cpu_millis = 500; // cowsay needs 0.5 CPU
    let _p = provider_offering(&bus, key, one_slot, Behaviour::Sign).await;

    let pass = solver.match_book().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            dealt: 1,
            waiting: 1,
            ..Pass::default()
        }
    );
    let dealt: Vec<U256> = deals(&bus).await.iter().map(|d| d.key.job_id).collect();
    assert_eq!(dealt, [U256::from(2)], "the earlier deadline first");
    let (left, _) = bus.book::<Entry>().await.unwrap();
    let waiting: Vec<U256> = left
        .iter()
        .filter(|e| e.value.dealt_until.is_none())
        .map(|e| e.value.job.key.job_id)
        .collect();
    assert_eq!(
        waiting,
        [U256::from(1)],
        "the other waits for the next slot"
    );
}

/// A signed deal that never lands (the relayer never submits it) does not strand the job: once
/// the deal has expired, the job is proposed again.
#[tokio::test]
async fn a_job_whose_deal_expires_unlanded_is_proposed_again() {
    let (_nats, bus, _) = setup().await;
    let solver = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(CHAIN, OpenChain(true))],
        SolverSettings {
            deal_validity: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let j = job(5, "cowsay", 50);
    assert_eq!(solver.book_job(&j).await.unwrap(), Booked::Added);
    let _p = provider(&bus, PrivateKeySigner::random(), 10, 1, Behaviour::Sign).await;
    assert_eq!(solver.match_book().await.unwrap().dealt, 1);
    let first = deals(&bus).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        solver.match_book().await.unwrap(),
        Pass {
            deal_pending: 1,
            ..Pass::default()
        },
        "not proposed again while the deal may still land"
    );
    // The chain still shows the job open after the deal's expiry: it is proposed again.
    let again = eventually(
        Duration::from_secs(15),
        "the job is dealt again once its first deal has expired",
        async || {
            let pass = solver.match_book().await.unwrap();
            let published = deals(&bus).await;
            ok_if(pass.dealt == 1 && published.len() == 1, format!("{pass:?}")).map(|()| published)
        },
    )
    .await;
    assert_eq!(again[0].key, first[0].key);
    assert!(again[0].terms.expiry > first[0].terms.expiry);
}

/// The chain as the solver sees it, where reading job `slow` hangs once `hang` is set (an RPC
/// endpoint holding the request up); job `id`'s match deadline is `deadline + id`.
struct SlowRead {
    slow: U256,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
    deadline: u64,
}

impl JobChain for SlowRead {
    async fn open_job(&self, key: JobKey, _hash: B256) -> Result<Option<OpenJob>, String> {
        if key.job_id == self.slow && self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(Some(OpenJob {
            match_deadline: self.deadline + key.job_id.to::<u64>(),
            timeout_collateral_bps: 10_000,
        }))
    }
}

/// One job whose on-chain read hangs does not hold the others of the same pass: the job after
/// it in the book is dealt while the first one's read is still waiting.
#[tokio::test]
async fn a_job_whose_chain_read_hangs_does_not_hold_the_next_job() {
    let (_nats, bus, _) = setup().await;
    let hang = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let solver = std::sync::Arc::new(Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(
            CHAIN,
            SlowRead {
                slow: U256::from(1),
                hang: std::sync::Arc::clone(&hang),
                deadline: unix_now() + 300,
            },
        )],
        SolverSettings::default(),
    ));
    for id in [1, 2] {
        assert_eq!(
            solver.book_job(&job(id, "cowsay", 50)).await.unwrap(),
            Booked::Added
        );
    }
    let _p = provider(&bus, PrivateKeySigner::random(), 10, 1, Behaviour::Sign).await;
    // From now on job 1 (first in the book: the earlier deadline) cannot be read.
    hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let pass = tokio::spawn({
        let solver = std::sync::Arc::clone(&solver);
        async move { solver.match_book().await }
    });
    eventually(
        Duration::from_secs(30),
        "job 2 is dealt while job 1's read hangs",
        async || {
            let dealt: Vec<U256> = deals(&bus).await.iter().map(|d| d.key.job_id).collect();
            ok_if(
                dealt.contains(&U256::from(2)),
                format!("dealt so far: {dealt:?}"),
            )
        },
    )
    .await;
    assert!(!pass.is_finished(), "job 1's read still hangs");
    pass.abort();
}

/// A chain whose jobs are all open but where no provider's record ever answers (an RPC endpoint
/// holding `reputationOf` up).
struct HungRecords {
    deadline: u64,
}

impl JobChain for HungRecords {
    async fn open_job(&self, _key: JobKey, _hash: B256) -> Result<Option<OpenJob>, String> {
        Ok(Some(OpenJob {
            match_deadline: self.deadline,
            timeout_collateral_bps: 10_000,
        }))
    }

    async fn record(
        &self,
        _provider: alloy_primitives::Address,
    ) -> Result<lilypad_solver::matching::ProviderRecord, String> {
        std::future::pending().await
    }
}

/// Reading the providers' records for ranking must not hold the matching: with every read hung,
/// the job is still dealt (on price alone), and the pass ends.
#[tokio::test]
async fn a_hung_read_of_the_providers_records_does_not_hold_the_matching() {
    let (_nats, bus, _) = setup().await;
    let solver = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(
            CHAIN,
            HungRecords {
                deadline: unix_now() + 300,
            },
        )],
        SolverSettings::default(),
    );
    assert_eq!(
        solver.book_job(&job(1, "cowsay", 50)).await.unwrap(),
        Booked::Added
    );
    let _p = provider(&bus, PrivateKeySigner::random(), 10, 1, Behaviour::Sign).await;
    tokio::time::timeout(Duration::from_secs(30), solver.match_book())
        .await
        .expect("the pass ends although no record answers")
        .unwrap();
    deal_for(&bus, 1).await;
}

/// Issue 10: the solver's connection to NATS is cut for a few seconds and comes back; a job
/// requested meanwhile is dealt soon after. (The client reconnects by itself; what the solver
/// asked for while cut off must not swallow the job until its ack wait runs out.)
#[tokio::test(flavor = "multi_thread")]
async fn a_job_requested_while_the_solver_is_cut_off_from_nats_is_dealt_once_it_is_back() {
    let (nats, bus, _) = setup().await;
    let proxy = TcpProxy::start(nats.0.port()).unwrap();
    let behind_proxy = Bus::connect(
        &format!("nats://127.0.0.1:{}", proxy.port()),
        BusOptions::default(),
    )
    .await
    .unwrap();
    let _p = provider(&bus, PrivateKeySigner::random(), 10, 1, Behaviour::Sign).await;
    let (stop, runner) = spawn_run(std::sync::Arc::new(solver_on(behind_proxy.clone())));
    let before = job(1, "cowsay", 50);
    bus.publish(Topic::Jobs, CHAIN, &before.msg_id(), &before)
        .await
        .unwrap();
    deal_for(&bus, 1).await;

    proxy.down();
    eventually(
        Duration::from_secs(15),
        "the solver's client sees the connection cut",
        async || ok_if(!behind_proxy.is_connected(), "still connected"),
    )
    .await;
    let during = job(2, "cowsay", 50);
    bus.publish(Topic::Jobs, CHAIN, &during.msg_id(), &during)
        .await
        .unwrap();
    // The fault itself: NATS stays unreachable for 4 s. Not a wait for anything to happen.
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.up();

    // Within 15 s: well inside the 60 s ack wait after which a swallowed job would come back.
    deal_for(&bus, 2).await;
    stop.cancel();
    runner.await.unwrap().unwrap();
}

/// [`Deadlines`], except that while `held` says so, the look-ups of the jobs in `slow` get no
/// answer (an RPC endpoint holding them up).
struct Held {
    deadlines: Deadlines,
    slow: Vec<u64>,
    held: tokio::sync::watch::Receiver<bool>,
}

impl JobChain for Held {
    async fn open_job(&self, key: JobKey, hash: B256) -> Result<Option<OpenJob>, String> {
        if self.slow.iter().any(|id| U256::from(*id) == key.job_id) {
            let mut held = self.held.clone();
            held.wait_for(|held| !held).await.unwrap();
        }
        self.deadlines.open_job(key, hash).await
    }
}

/// A book holding dealt jobs whose prune look-ups are slow: a new job behind them in deadline
/// order is proposed and dealt while those look-ups still wait, not after them.
#[tokio::test]
async fn a_new_job_is_dealt_while_the_prune_looks_up_dealt_jobs_slowly() {
    let (_nats, bus, _) = setup().await;
    let now = unix_now();
    let (hold, held) = tokio::sync::watch::channel(false);
    let solver = Solver::new(
        bus.clone(),
        ModuleRegistry::load_dir(&job_modules_dir()).unwrap(),
        vec![(
            CHAIN,
            Held {
                deadlines: Deadlines(vec![
                    (1, now + 300),
                    (2, now + 300),
                    (3, now + 300),
                    (50, now + 600),
                ]),
                slow: vec![1, 2, 3],
                held,
            },
        )],
        SolverSettings {
            prune_every: Duration::ZERO,
            ..Default::default()
        },
    );
    let _p = provider(&bus, PrivateKeySigner::random(), 10, 1, Behaviour::Sign).await;
    for id in [1, 2, 3] {
        assert_eq!(
            solver.book_job(&job(id, "cowsay", 50)).await.unwrap(),
            Booked::Added
        );
    }
    assert_eq!(solver.match_book().await.unwrap().dealt, 3);
    assert_eq!(deals(&bus).await.len(), 3);

    // The dealt jobs' look-ups are held from now on; a new job comes, its deadline later.
    hold.send(true).unwrap();
    assert_eq!(
        solver.book_job(&job(50, "cowsay", 50)).await.unwrap(),
        Booked::Added
    );
    let pass = async { solver.match_book().await.unwrap() };
    let dealt_meanwhile = async {
        eventually(
            Duration::from_secs(20),
            "the new job is dealt while the dealt jobs' look-ups are held",
            async || {
                let dealt: Vec<U256> = deals(&bus).await.iter().map(|d| d.key.job_id).collect();
                ok_if(
                    dealt == [U256::from(50)],
                    format!("deals published: {dealt:?}"),
                )
            },
        )
        .await;
        hold.send(false).unwrap();
    };
    let (pass, ()) = tokio::join!(pass, dealt_meanwhile);
    assert_eq!(
        pass,
        Pass {
            dealt: 1,
            deal_pending: 3,
            ..Pass::default()
        },
        "the dealt jobs stay while the chain shows them open"
    );
}
