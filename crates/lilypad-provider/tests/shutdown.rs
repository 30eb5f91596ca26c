//! Shutdown: cancelling the token given to `ResourceProvider::run` stops every task the
//! provider started (heartbeat, deal answers, jobs in progress) and waits for them, removes its
//! offer, stops answering proposals and gives back what a stopped deal held. Real NATS, and for
//! the job in progress real anvil (contracts deployed by their deploy script) and Docker.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use lilypad_bindings::Lilypad;
use lilypad_bus::{Bus, BusOptions};
use lilypad_e2e::{Nats, dev_keys, ensure_module_images, eventually, job_modules_dir, ok_if};
use lilypad_modules::ModuleRegistry;
use lilypad_provider::unix_now;
use lilypad_provider::{
    CancellationToken, CapacityTracker, ChainSettings, ProviderSettings, ResourceProvider,
};
use lilypad_testkit::job_request;
use lilypad_types::{Capacity, DealProposal, DealTerms, ModulePrice, Offer, SignedDeal};

mod common;
use common::{executor, market_chain, price, requested};

async fn offer(bus: &Bus) -> Option<Offer> {
    let (offers, bad) = bus.offers::<Offer>().await.unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    offers.into_iter().next().map(|(_, o)| o)
}

/// Waits until the provider's offer is up.
async fn offer_up(bus: &Bus) {
    eventually(Duration::from_secs(30), "the offer is up", async || {
        let o = offer(bus).await;
        ok_if(o.is_some(), "no offer")
    })
    .await;
}

/// A provider serving `chain` with `prices` and `cpu_millis` of CPU, running on its own NATS
/// until `cancel` is cancelled; returned once its offer is up.
struct Running {
    _nats: Nats,
    _scratch: tempfile::TempDir,
    bus: Bus,
    provider: ResourceProvider,
    cancel: CancellationToken,
    run: tokio::task::JoinHandle<Result<(), lilypad_provider::ProviderError>>,
}

async fn start(
    name: &str,
    chain: ChainSettings,
    prices: Vec<ModulePrice>,
    cpu_millis: u64,
    tweak: impl FnOnce(&mut ProviderSettings),
) -> Running {
    let nats = Nats::start().unwrap();
    let bus = Bus::connect(&nats.url(), BusOptions::default())
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (executor, _) = executor(name, scratch.path()).await;
    let registry = Arc::new(ModuleRegistry::load_dirs(&[&job_modules_dir()]).unwrap());
    let mut settings =
        ProviderSettings::new(dev_keys::PROVIDER.parse().unwrap(), vec![chain], prices);
    tweak(&mut settings);
    let capacity = CapacityTracker::new(Capacity {
        cpu_millis,
        memory_bytes: 1 << 30,
        gpu_vram_bytes: Vec::new(),
    });
    let provider =
        ResourceProvider::new(settings, bus.clone(), executor, registry, capacity).unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let provider = provider.clone();
        let cancel = cancel.clone();
        async move { provider.run(cancel).await }
    });
    offer_up(&bus).await;
    Running {
        _nats: nats,
        _scratch: scratch,
        bus,
        provider,
        cancel,
        run,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_the_token_stops_and_awaits_every_task_and_removes_the_offer() {
    let Running {
        bus,
        provider,
        cancel,
        run,
        _nats,
        _scratch,
    } = start(
        "shutdown",
        ChainSettings {
            chain_id: 31337,
            // Nothing listens there: reading collateral fails, and is retried.
            rpc_urls: vec!["http://127.0.0.1:9".into()],
            lilypad: Address::repeat_byte(0x11),
        },
        vec![price("cowsay", 1_000_000)],
        1000,
        |s| s.heartbeat = Duration::from_millis(100),
    )
    .await;
    // The heartbeat and the deal server.
    assert_eq!(provider.running_tasks(), 2);

    cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(30), run).await;
    ended
        .expect("run returns once the token is cancelled")
        .unwrap()
        .unwrap();
    assert_eq!(provider.running_tasks(), 0, "every task has ended");
    assert!(offer(&bus).await.is_none(), "the offer is removed");
    // Nobody answers on the deal subject any more.
    let answer = bus
        .request::<_, String>(
            &provider.deal_subject(),
            &"anyone there?",
            Duration::from_secs(2),
        )
        .await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_in_progress_is_stopped_and_gives_back_capacity_and_collateral() {
    const CHAIN: u64 = 31337;
    const PRICE: u64 = 1_000_000;
    const DEPOSIT: u64 = 100 * PRICE;
    ensure_module_images().unwrap();
    // The provider registers and deposits collateral; the client approves its payments.
    let chain = market_chain(CHAIN, U256::from(DEPOSIT)).await;
    let (lilypad, url) = (chain.lilypad, chain.url());

    let Running {
        bus,
        provider,
        cancel,
        run,
        _nats,
        _scratch,
    } = start(
        "shutdown-job",
        ChainSettings {
            chain_id: CHAIN,
            rpc_urls: vec![url.clone()],
            lilypad,
        },
        vec![price("sha256", PRICE)],
        2000,
        |_| {},
    )
    .await;

    // The client requests a job; the provider signs a deal nobody puts on-chain, so its task
    // keeps waiting for the agreement.
    let request = Lilypad::JobRequest {
        maxPrice: U256::from(2 * PRICE),
        resultsCollateralMultiplierBps: 20_000,
        ..job_request("sha256", "1.0.0", &[("text", "stopped")])
    };
    let receipt = chain.run_job(dev_keys::CLIENT, request).await.receipt;
    let job = requested(CHAIN, lilypad, &receipt);
    let terms = DealTerms {
        job_id: job.key.job_id,
        request_hash: job.request_hash,
        provider: provider.address(),
        price: U256::from(PRICE),
        timeout_collateral: U256::from(PRICE),
        results_collateral: U256::from(2 * PRICE),
        expiry: U256::from(unix_now() + 300),
    };
    let _: SignedDeal = bus
        .request(
            &provider.deal_subject(),
            &DealProposal { job, terms },
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    // Heartbeat, deal server, the deal's job and the chain's agreement reader (started by the
    // deal's task when it begins to watch).
    // (Its capacity is not checked here: the container may already have ended, which frees it.)
    eventually(Duration::from_secs(30), "four tasks running", async || {
        let n = provider.running_tasks();
        ok_if(n == 4, format!("{n} tasks"))
    })
    .await;
    assert_eq!(
        provider.free_collateral(CHAIN).await.unwrap(),
        U256::from(DEPOSIT - PRICE)
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("run returns once the token is cancelled")
        .unwrap()
        .unwrap();
    assert_eq!(provider.running_tasks(), 0, "the deal's task has ended too");
    assert_eq!(
        provider.capacity().free().cpu_millis,
        2000,
        "its capacity is back"
    );
    assert_eq!(
        provider.free_collateral(CHAIN).await.unwrap(),
        U256::from(DEPOSIT),
        "the collateral it held back is free again"
    );
    assert!(offer(&bus).await.is_none(), "the offer is removed");
}
