//! What a provider signed is never lost and never holds it up for longer than it must: a deal's
//! capacity ends with its signature's expiry (or its container), a finished result is published
//! through a NATS outage, and deals and results kept in the state directory are picked up by the
//! next start. Real anvil (contracts deployed by their deploy script), NATS (behind a TCP proxy
//! that the tests take down), Docker with the module images built locally. The tests play the
//! solver and the relayer.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::Lilypad;
use lilypad_bus::{Bus, BusError, BusOptions, Topic};
use lilypad_e2e::{
    Nats, TcpProxy, dev_keys, ensure_module_images, eventually, job_modules_dir, ok_if,
};
use lilypad_modules::ModuleRegistry;
use lilypad_provider::{
    CancellationToken, CapacityTracker, ChainSettings, DealServer, ProviderError, ProviderSettings,
    ResourceProvider, unix_now,
};
use lilypad_testkit::{TestChain, job_request, send};
use lilypad_types::{
    Capacity, DealProposal, DealTerms, JobKey, JobRequested, JobStatus, Outcome, SignedDeal,
    SignedResult,
};

mod common;
use common::{executor, market_chain, price, requested};

const CHAIN: u64 = 31337;
const PRICE: u64 = 1_000_000;
const DEPOSIT: u64 = 100 * PRICE;

/// A module that sleeps for an hour with a 10-minute timeout and takes a whole CPU: its
/// container holds its capacity for as long as the provider lets it.
const LINGER: &str = r#"
description = "Sleeps, holding a whole CPU"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["sh", "-c", "exec sleep 3600"]
timeout = "10m"

[resources]
cpu = 1
memory = "16MiB"
"#;

/// A module that sleeps for ten seconds: a job still running a while after its deal is agreed.
const NAP: &str = r#"
description = "Sleeps ten seconds"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["sh", "-c", "exec sleep 10"]
timeout = "1m"

[resources]
cpu = 1
memory = "16MiB"
"#;

/// The address of the providers of these tests (one key, as a restarted provider has).
fn provider_address() -> Address {
    dev_keys::PROVIDER
        .parse::<PrivateKeySigner>()
        .unwrap()
        .address()
}

/// The chain, NATS, and everything a provider of these tests is made of.
struct World {
    chain: TestChain,
    nats: Nats,
    /// The test's own connection to NATS (never through the proxy).
    bus: Bus,
    registry: Arc<ModuleRegistry>,
    scratch: tempfile::TempDir,
}

async fn world() -> World {
    ensure_module_images().unwrap();
    let chain = market_chain(CHAIN, U256::from(DEPOSIT)).await;
    let nats = Nats::start().unwrap();
    let bus = Bus::connect(&nats.url(), BusOptions::default())
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let linger = scratch.path().join("modules/linger");
    std::fs::create_dir_all(&linger).unwrap();
    std::fs::write(linger.join("1.0.0.toml"), LINGER).unwrap();
    let nap = scratch.path().join("modules/nap");
    std::fs::create_dir_all(&nap).unwrap();
    std::fs::write(nap.join("1.0.0.toml"), NAP).unwrap();
    let registry = Arc::new(
        ModuleRegistry::load_dirs(&[&job_modules_dir(), &scratch.path().join("modules")]).unwrap(),
    );
    World {
        chain,
        nats,
        bus,
        registry,
        scratch,
    }
}

impl World {
    /// The state directory the providers of a test share.
    fn state_dir(&self) -> PathBuf {
        self.scratch.path().join("state")
    }

    /// A provider named `name` with `cpu_millis` of CPU, talking to NATS at `nats_url`, keeping
    /// its state in [`Self::state_dir`].
    async fn provider(
        &self,
        name: &str,
        nats_url: &str,
        cpu_millis: u64,
        tweak: impl FnOnce(&mut ProviderSettings),
    ) -> ResourceProvider {
        let bus = Bus::connect(nats_url, BusOptions::default()).await.unwrap();
        let (executor, _) = executor(name, &self.scratch.path().join(name)).await;
        let mut settings = ProviderSettings::new(
            dev_keys::PROVIDER.parse().unwrap(),
            vec![ChainSettings {
                chain_id: CHAIN,
                rpc_urls: vec![self.chain.url()],
                lilypad: self.chain.lilypad,
            }],
            vec![
                price("sha256", PRICE),
                price("linger", PRICE),
                price("nap", PRICE),
            ],
        );
        settings.agreement_poll = Duration::from_millis(200);
        settings.state_dir = Some(self.state_dir());
        tweak(&mut settings);
        let capacity = CapacityTracker::new(Capacity {
            cpu_millis,
            memory_bytes: 1 << 30,
            gpu_vram_bytes: Vec::new(),
        });
        ResourceProvider::new(
            settings,
            bus,
            executor,
            Arc::clone(&self.registry),
            capacity,
        )
        .unwrap()
    }

    /// The client requests a job of `module`.
    async fn request(&self, module: &str, inputs: &[(&str, &str)]) -> JobRequested {
        self.request_with(module, inputs, |_| {}).await
    }

    /// The client requests a job of `module`, with the request changed by `tweak`.
    async fn request_with(
        &self,
        module: &str,
        inputs: &[(&str, &str)],
        tweak: impl FnOnce(&mut Lilypad::JobRequest),
    ) -> JobRequested {
        let mut request = Lilypad::JobRequest {
            maxPrice: U256::from(2 * PRICE),
            resultsCollateralMultiplierBps: 20_000,
            ..job_request(module, "1.0.0", inputs)
        };
        tweak(&mut request);
        let receipt = self.chain.run_job(dev_keys::CLIENT, request).await.receipt;
        requested(CHAIN, self.chain.lilypad, &receipt)
    }

    /// Honest terms for `job` whose signature is valid for `valid` from now.
    fn proposal(&self, job: &JobRequested, valid: Duration) -> DealProposal {
        DealProposal {
            terms: DealTerms {
                job_id: job.key.job_id,
                request_hash: job.request_hash,
                provider: provider_address(),
                price: U256::from(PRICE),
                timeout_collateral: U256::from(PRICE),
                results_collateral: U256::from(2 * PRICE),
                expiry: U256::from(unix_now() + valid.as_secs()),
            },
            job: job.clone(),
        }
    }

    /// Proposes a deal to the provider as the solver does.
    async fn propose(&self, proposal: &DealProposal) -> Result<SignedDeal, BusError> {
        let subject = lilypad_bus::deal_subject(&provider_address().to_string());
        self.bus
            .request(&subject, proposal, Duration::from_secs(30))
            .await
    }

    /// The provider's signed deal for `job`, valid for two minutes.
    async fn signed_deal(&self, job: &JobRequested) -> SignedDeal {
        self.propose(&self.proposal(job, Duration::from_secs(120)))
            .await
            .unwrap()
    }

    /// Waits for the provider's result, checks it is `job`'s own (its request, not another one
    /// under the same id), and submits it.
    async fn result_lands(&self, job: &JobRequested) {
        let result = self.next_result(Duration::from_secs(60)).await;
        assert_eq!(result.job_ref(), job.job_ref(), "the job's own result");
        self.submit(&result).await;
        assert_eq!(self.status(job.key).await, Some(JobStatus::ResultSubmitted));
    }

    /// Submits the signed deal as a relayer would.
    async fn agree(&self, deal: &SignedDeal) {
        let abi = Lilypad::Deal::from(&deal.terms);
        let lilypad = self.chain.lilypad_as(dev_keys::CLIENT);
        send(lilypad.agreeDeal(abi, deal.signature.clone())).await;
    }

    /// Submits a signed result as a relayer would.
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

    /// The next signed result on the results stream, as the relayer takes it.
    async fn next_result(&self, within: Duration) -> SignedResult {
        lilypad_testkit::next_message(
            &self.bus,
            Topic::Results,
            Some(CHAIN),
            "test-relayer",
            within,
        )
        .await
    }

    async fn status(&self, key: JobKey) -> Option<JobStatus> {
        self.chain
            .lilypad_as(dev_keys::RELAYER)
            .getJob(key.job_id)
            .call()
            .await
            .unwrap()
            .state()
    }
}

/// `provider.run` on a task of its own, stopped by the returned token.
fn serve(
    provider: &ResourceProvider,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), ProviderError>>,
) {
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let provider = provider.clone();
        let cancel = cancel.clone();
        async move { provider.run(cancel).await }
    });
    (cancel, run)
}

/// Waits until `provider` answers on its deal subject.
async fn answering(w: &World, job: &JobRequested) {
    let mut probe = w.proposal(job, Duration::from_secs(60));
    probe.terms.price = U256::ZERO; // refused, but answered
    eventually(
        Duration::from_secs(30),
        "the provider answers proposals",
        async || match w.propose(&probe).await {
            Err(BusError::Refused { .. }) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

fn kept(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("signed/results"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A provider named `name` reaching NATS through a proxy signs a sha256 deal; the proxy goes down,
/// the deal lands and the job finishes: returns (with the provider and its deal server) once its
/// signed result is kept on disk, unpublished.
async fn finished_while_nats_is_down(
    w: &World,
    name: &str,
) -> (TcpProxy, ResourceProvider, DealServer, JobRequested) {
    let proxy = TcpProxy::start(w.nats.0.port()).unwrap();
    let via_proxy = format!("nats://127.0.0.1:{}", proxy.port());
    let provider = w.provider(name, &via_proxy, 2000, |_| {}).await;
    let deals = provider.serve_deals().await.unwrap();
    let job = w.request("sha256", &[("text", name)]).await;
    let deal = w.signed_deal(&job).await;
    proxy.down();
    w.agree(&deal).await;
    eventually(
        Duration::from_secs(60),
        "the result is signed and kept while NATS is down",
        async || {
            let n = kept(&w.state_dir());
            ok_if(n == 1, n)
        },
    )
    .await;
    (proxy, provider, deals, job)
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_reservations_are_released_after_a_deal_signature_expires_unused() {
    let w = world().await;
    // Room for one linger job, or two sha256 jobs.
    let provider = w
        .provider("expiry", &w.nats.url(), 1000, |s| {
            s.min_deal_expiry = Duration::from_secs(2)
        })
        .await;
    let _deals = provider.serve_deals().await.unwrap();

    // A deal signed for five seconds that nobody puts on-chain: its container runs meanwhile.
    let unused = w.request("linger", &[]).await;
    w.propose(&w.proposal(&unused, Duration::from_secs(5)))
        .await
        .unwrap();
    // While it is valid, the capacity is taken.
    let next = w.request("sha256", &[("text", "after the expiry")]).await;
    let proposal = w.proposal(&next, Duration::from_secs(120));
    match w.propose(&proposal).await {
        Err(BusError::Refused { reason, .. }) => {
            assert!(reason.contains("capacity exceeded"), "{reason}")
        }
        other => panic!("expected a refusal for capacity, got {other:?}"),
    }

    // Once the signature has expired (no block has been mined since, so only this machine's
    // clock shows it), the capacity is free again and the next job is taken.
    let deal = eventually(
        Duration::from_secs(20),
        "the job needing the expired deal's capacity is signed",
        async || match w.propose(&proposal).await {
            Ok(deal) => Ok(deal),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    assert_eq!(deal.key, next.key);
    assert_eq!(w.status(unused.key).await, Some(JobStatus::Requested));
    assert_eq!(
        provider.free_collateral(CHAIN).await.unwrap(),
        U256::from(DEPOSIT - PRICE),
        "only the new deal's collateral is held back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_deal_expired_unused_can_be_signed_again_with_new_terms() {
    let w = world().await;
    let provider = w
        .provider("again", &w.nats.url(), 1000, |s| {
            s.min_deal_expiry = Duration::from_secs(2)
        })
        .await;
    let _deals = provider.serve_deals().await.unwrap();
    let job = w.request("sha256", &[("text", "second chance")]).await;
    // (Valid for 5 s: the provider takes at least 2 s, and the proposal may take a while to
    // arrive on a loaded machine.)
    w.propose(&w.proposal(&job, Duration::from_secs(5)))
        .await
        .unwrap();
    // The solver proposes the job again once the first signature has expired unused.
    let again = w.proposal(&job, Duration::from_secs(120));
    let deal = eventually(
        Duration::from_secs(20),
        "the job is signed again with the new terms",
        async || match w.propose(&again).await {
            Ok(deal) => Ok(deal),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    assert_eq!(deal.terms, again.terms);
    w.agree(&deal).await;
    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.key, job.key);
    w.submit(&result).await;
    assert_eq!(w.status(job.key).await, Some(JobStatus::ResultSubmitted));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_whose_deal_is_not_agreed_yet_holds_no_capacity_and_keeps_its_outcome() {
    let w = world().await;
    let provider = w.provider("finished", &w.nats.url(), 500, |_| {}).await;
    let _deals = provider.serve_deals().await.unwrap();
    let job = w.request("sha256", &[("text", "abc")]).await;
    let deal = w
        .propose(&w.proposal(&job, Duration::from_secs(300)))
        .await
        .unwrap();
    // The job runs at once; once its container is done nothing is held, agreed or not.
    eventually(
        Duration::from_secs(60),
        "the capacity is free while the deal waits to land",
        async || {
            let cpu = provider.capacity().free().cpu_millis;
            ok_if(cpu == 500, cpu)
        },
    )
    .await;
    assert_eq!(w.status(job.key).await, Some(JobStatus::Requested));
    // The deal lands later: the outcome computed meanwhile becomes the result.
    w.agree(&deal).await;
    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.key, job.key);
    assert_eq!(result.status, Outcome::Succeeded.as_u8(), "{result:?}");
    w.submit(&result).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_result_survives_a_nats_outage_longer_than_the_old_15_s() {
    let w = world().await;
    // NATS becomes unreachable for the provider; the deal lands and the job finishes meanwhile.
    let (proxy, _provider, _deals, job) = finished_while_nats_is_down(&w, "outage").await;
    // The fault itself: NATS stays unreachable for 25 s, longer than the old five doubling
    // attempts (about 15 s) took to give up. Not a wait for anything to happen.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(kept(&w.state_dir()), 1, "still kept, not dropped");
    proxy.up();

    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.key, job.key);
    w.submit(&result).await;
    assert_eq!(w.status(job.key).await, Some(JobStatus::ResultSubmitted));
    eventually(
        Duration::from_secs(30),
        "the record is forgotten once the chain has the result",
        async || {
            let n = kept(&w.state_dir());
            ok_if(n == 0, n)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_restarted_with_a_finished_unpublished_result_publishes_it() {
    let w = world().await;
    // The result is signed and kept, but cannot be published: NATS is unreachable.
    let (_proxy, first, _deals, job) = finished_while_nats_is_down(&w, "restart-1").await;
    // The provider stops before publishing succeeded.
    first.shutdown().await;
    drop(first);

    // Started again on the same state directory, it publishes the result.
    let second = w.provider("restart-2", &w.nats.url(), 2000, |_| {}).await;
    let (cancel, run) = serve(&second);
    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.key, job.key);
    assert_eq!(result.status, Outcome::Succeeded.as_u8(), "{result:?}");
    w.submit(&result).await;
    assert_eq!(w.status(job.key).await, Some(JobStatus::ResultSubmitted));
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deal_agreed_while_its_provider_was_down_is_run_after_the_restart() {
    let w = world().await;
    let first = w.provider("resume-1", &w.nats.url(), 2000, |_| {}).await;
    let (cancel, run) = serve(&first);
    let job = w.request("sha256", &[("text", "agreed while down")]).await;
    answering(&w, &job).await;
    let deal = w.signed_deal(&job).await;
    // The provider stops (its container is stopped) before the deal lands.
    cancel.cancel();
    run.await.unwrap().unwrap();
    drop(first);
    w.agree(&deal).await;

    // Started again on the same state directory, it runs the job and publishes its result.
    let second = w.provider("resume-2", &w.nats.url(), 2000, |_| {}).await;
    let (cancel, run) = serve(&second);
    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.key, job.key);
    assert_eq!(result.status, Outcome::Succeeded.as_u8(), "{result:?}");
    w.submit(&result).await;
    assert_eq!(w.status(job.key).await, Some(JobStatus::ResultSubmitted));
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_result_is_retried_until_the_results_stream_takes_it_again() {
    let w = world().await;
    let provider = w.provider("stream", &w.nats.url(), 2000, |_| {}).await;
    let _deals = provider.serve_deals().await.unwrap();
    let job = w.request("sha256", &[("text", "stream away")]).await;
    let deal = w.signed_deal(&job).await;
    // JetStream loses the results stream (as a server restarted without its store does, or a
    // cluster while it elects the stream's leader): every publish is refused at once, so nothing
    // waits in the client to be sent later.
    let js = async_nats::jetstream::new(w.bus.client().clone());
    js.delete_stream(Topic::Results.stream()).await.unwrap();
    w.agree(&deal).await;
    eventually(
        Duration::from_secs(60),
        "the job has finished",
        async || {
            let cpu = provider.capacity().free().cpu_millis;
            let agreed = w.status(job.key).await == Some(JobStatus::Agreed);
            ok_if(cpu == 2000 && agreed, cpu)
        },
    )
    .await;
    // The fault itself: 25 s without the stream, longer than the old five doubling attempts
    // (about 15 s) took to give up. Not a wait for anything to happen.
    tokio::time::sleep(Duration::from_secs(25)).await;
    // Any service connecting creates the stream again.
    Bus::connect(&w.nats.url(), BusOptions::default())
        .await
        .unwrap();

    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.key, job.key);
    w.submit(&result).await;
    assert_eq!(w.status(job.key).await, Some(JobStatus::ResultSubmitted));
}

/// A job id given out again after a reorganisation is another job: the provider signs the new
/// request's deal and publishes its result, which the replaced job's result (published and
/// submitted before the reorganisation, under the same job id) does not shadow on the results
/// stream.
#[tokio::test(flavor = "multi_thread")]
async fn the_result_of_a_job_id_reused_after_a_reorg_is_published() {
    let w = world().await;
    // Blocks only for transactions, so the reorganisation below replaces exactly the job's.
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let provider = w.provider("reorg", &w.nats.url(), 2000, |_| {}).await;
    let _deals = provider.serve_deals().await.unwrap();

    let before = w.chain.head();
    let old = w
        .request("sha256", &[("text", "the replaced branch")])
        .await;
    let deal = w.signed_deal(&old).await;
    w.agree(&deal).await;
    w.result_lands(&old).await;

    w.chain.reorg_after(before);
    let new = w.request("sha256", &[("text", "the new branch")]).await;
    assert_eq!(new.key, old.key, "the job id is given out again");
    assert_ne!(new.request_hash, old.request_hash);
    let deal = w.signed_deal(&new).await;
    assert_eq!(deal.job_ref(), new.job_ref());
    w.agree(&deal).await;
    w.result_lands(&new).await;
}

/// A deal the provider holds for a request that a reorganisation replaced does not stand in the
/// way of the request now under the same job id: the new one is signed, not refused as a second
/// deal for the job.
#[tokio::test(flavor = "multi_thread")]
async fn a_deal_held_for_a_request_replaced_by_a_reorg_does_not_block_the_new_request() {
    let w = world().await;
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let provider = w.provider("reorg-held", &w.nats.url(), 2000, |_| {}).await;
    let _deals = provider.serve_deals().await.unwrap();

    // An agreed deal whose container runs on: the provider holds it.
    let before = w.chain.head();
    let old = w.request("linger", &[]).await;
    let deal = w.signed_deal(&old).await;
    w.agree(&deal).await;
    assert_eq!(w.status(old.key).await, Some(JobStatus::Agreed));
    // The provider has seen the agreement once it no longer counts the deal's collateral as
    // committed on top of what the chain locks.
    eventually(
        Duration::from_secs(30),
        "the provider sees the deal agreed",
        async || {
            let free = provider.free_collateral(CHAIN).await.unwrap();
            ok_if(free == U256::from(DEPOSIT - PRICE), free)
        },
    )
    .await;

    w.chain.reorg_after(before);
    let new = w.request("sha256", &[("text", "the new branch")]).await;
    assert_eq!(new.key, old.key, "the job id is given out again");
    let deal = w.signed_deal(&new).await;
    assert_eq!(deal.job_ref(), new.job_ref());
    w.agree(&deal).await;
    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.job_ref(), new.job_ref());
}

/// A job that a reorganisation replaced while its container ran gets no signed result: the
/// provider would otherwise publish it for the job id, now the new request's, and the chain
/// would take it for the new job (a signed result names the job id, not the request). The first
/// result on the stream is the new job's own.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_replaced_by_a_reorg_while_it_runs_gets_no_result() {
    let w = world().await;
    w.chain.stop_mining();
    w.chain.mine_instantly();
    let provider = w
        .provider("reorg-running", &w.nats.url(), 2000, |_| {})
        .await;
    let _deals = provider.serve_deals().await.unwrap();

    let before = w.chain.head();
    let old = w.request("nap", &[]).await;
    let deal = w.signed_deal(&old).await;
    w.agree(&deal).await;
    eventually(
        Duration::from_secs(30),
        "the provider sees the deal agreed",
        async || {
            let free = provider.free_collateral(CHAIN).await.unwrap();
            ok_if(free == U256::from(DEPOSIT - PRICE), free)
        },
    )
    .await;

    w.chain.reorg_after(before);
    // Another request (an identical one would hash the same, and its result would do for both).
    let new = w.request_with("nap", &[], |r| r.matchTimeout += 1).await;
    assert_eq!(new.key, old.key, "the job id is given out again");
    assert_ne!(new.request_hash, old.request_hash);
    let deal = w.signed_deal(&new).await;
    w.agree(&deal).await;
    let result = w.next_result(Duration::from_secs(60)).await;
    assert_eq!(result.job_ref(), new.job_ref(), "the new job's own result");
}
