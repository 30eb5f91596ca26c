//! What the provider's integration tests share: a chain where the provider is registered, an
//! executor on a scratch directory, and a module price.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::rpc::types::TransactionReceipt;
use lilypad_bindings::Lilypad;
use lilypad_e2e::dev_keys;
use lilypad_executor::{Executor, ExecutorConfig, PullPolicy};
use lilypad_provider::mediator::job_from_event;
use lilypad_results::ResultStore;
use lilypad_testkit::TestChain;
use lilypad_types::{JobRequested, ModuleId, ModulePrice};

/// An executor named `name` (its containers are labelled with it) that keeps its result store and
/// work directories under `scratch`, and never pulls images (tests build theirs locally).
pub async fn executor(name: &str, scratch: &Path) -> (Executor, Arc<ResultStore>) {
    let store = Arc::new(ResultStore::open(scratch.join("store")).unwrap());
    let mut config = ExecutorConfig::new(
        format!("{name}-{}", std::process::id()),
        scratch.join("work"),
    );
    config.pull_policy = PullPolicy::Never;
    let executor = Executor::connect(config, Arc::clone(&store), Vec::new())
        .await
        .unwrap();
    (executor, store)
}

/// `price` for version 1.0.0 of module `name`.
pub fn price(name: &str, price: u64) -> ModulePrice {
    ModulePrice {
        module: ModuleId {
            name: name.into(),
            version: "1.0.0".into(),
        },
        price: U256::from(price),
    }
}

/// A test chain with `chain_id` where `dev_keys::PROVIDER` is registered with `deposit` of
/// collateral and `dev_keys::CLIENT` has approved its payments.
pub async fn market_chain(chain_id: u64, deposit: U256) -> TestChain {
    let chain = TestChain::deploy(chain_id, &dev_keys::ADDRESSES);
    chain
        .register_provider(dev_keys::PROVIDER, "http://provider.test", deposit)
        .await;
    chain.approve(dev_keys::CLIENT, U256::MAX).await;
    chain
}

/// The job message for the `JobRequested` event in a `runJob` receipt on chain `chain_id`.
pub fn requested(chain_id: u64, lilypad: Address, receipt: &TransactionReceipt) -> JobRequested {
    let log = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<Lilypad::JobRequested>().ok())
        .unwrap();
    job_from_event(chain_id, lilypad, &log.inner.data, &log)
}
