//! A counting client contract on a stack (contracts/test/utils/MockClient.sol: callbacks counted
//! and outcomes recorded per job id), batches of cowsay jobs requested through it at once, and
//! what the relayer sent for them. Shared by the RPC-fault test and benchmark.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolCall;
use lilypad_bindings::{Lilypad, LilypadToken, MockClient};
use lilypad_e2e::{dev_keys, eventually_every};
use lilypad_testkit::{job_request, reader, send};
use lilypad_types::{JobStatus, Outcome};

use super::{MAX_PRICE, Stack};

/// How long a batch of jobs may take to be called back or to settle.
pub const BATCH_WITHIN: Duration = Duration::from_secs(300);

/// The counting client, deployed and funded by the dev client account.
pub struct Counting {
    pub client: MockClient::MockClientInstance<DynProvider>,
    lilypad: Lilypad::LilypadInstance<DynProvider>,
}

/// How far a batch must get before it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every job's callback has run (the result is on-chain): what the client waits for.
    CalledBack,
    /// Every job is settled (the provider paid).
    Settled,
}

impl Counting {
    /// Deploys the client and gives it tokens for `jobs` jobs at [`MAX_PRICE`].
    pub async fn deploy(stack: &Stack, jobs: usize) -> Self {
        let wallet = stack.chain.wallet(dev_keys::CLIENT);
        let client = MockClient::deploy(wallet.clone(), stack.lilypad)
            .await
            .unwrap();
        let funds = U256::from(MAX_PRICE) * U256::from(jobs);
        send(LilypadToken::new(stack.chain.token, wallet).transfer(*client.address(), funds)).await;
        Self {
            client,
            lilypad: stack.chain.lilypad(),
        }
    }

    /// The same client through a new wallet: after a reorganisation took the client's
    /// transactions away, the old wallet's cached nonce is ahead of the chain's, and what it
    /// sends would wait in the pool for ever.
    pub fn reconnected(&self, stack: &Stack) -> Self {
        Self {
            client: MockClient::new(*self.client.address(), stack.chain.wallet(dev_keys::CLIENT)),
            lilypad: stack.chain.lilypad(),
        }
    }

    /// Requests `n` cowsay jobs at once and returns their ids once all are mined.
    pub async fn request(&self, n: usize) -> Vec<U256> {
        let request = as_mock_request(Lilypad::JobRequest {
            maxPrice: U256::from(MAX_PRICE),
            matchTimeout: 300,
            executionTimeout: 300,
            // The counting client stores the whole result.
            callbackGasLimit: 1_000_000,
            ..job_request("cowsay", "1.0.0", &[("message", "moo")])
        });
        let mut pending = Vec::new();
        for _ in 0..n {
            // Sent back to back; the wallet fills consecutive nonces.
            pending.push(self.client.run(request.clone()).send().await.unwrap());
        }
        let mut ids = Vec::new();
        for p in pending {
            let receipt = p.get_receipt().await.unwrap();
            assert!(receipt.status(), "run reverted: {receipt:?}");
            ids.push(
                receipt
                    .decoded_log::<Lilypad::JobRequested>()
                    .unwrap()
                    .data
                    .jobId,
            );
        }
        ids
    }

    /// Waits until every job in `ids` got `until`; panics with where each one stands otherwise.
    pub async fn wait(&self, stack: &Stack, ids: &[U256], until: Until) {
        let what = format!("{} jobs: {until:?}", ids.len());
        eventually_every(
            Duration::from_millis(100),
            BATCH_WITHIN,
            &what,
            async || {
                let mut states = BTreeMap::<String, Vec<U256>>::new();
                let mut stuck = Vec::new();
                for id in ids {
                    let job = self.lilypad.getJob(*id).call().await.unwrap();
                    let state = job.state();
                    let done = match until {
                        Until::Settled => state == Some(JobStatus::Settled),
                        Until::CalledBack => {
                            self.client.callbackCount(*id).call().await.unwrap() > U256::ZERO
                        }
                    };
                    if !done {
                        stuck.push(*id);
                    }
                    let state = state.map_or(format!("unknown {}", job.status), |s| s.to_string());
                    states.entry(state).or_default().push(*id);
                }
                if stuck.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "not done: {stuck:?}; by state: {states:?}\nproxy: {}\nwhat the services logged of the jobs not done:\n{}",
                        stack
                            .faulty
                            .as_ref()
                            .map(|f| f.stats().to_string())
                            .unwrap_or_default(),
                        logs_of(stack, &stuck)
                    ))
                }
            },
        )
        .await;
    }

    /// Every job in `ids` was called back exactly once, with success.
    pub async fn assert_one_successful_callback_each(&self, ids: &[U256]) {
        for id in ids {
            let count = self.client.callbackCount(*id).call().await.unwrap();
            let outcomes = self.client.outcomes(*id).call().await.unwrap();
            assert_eq!(count, U256::from(1), "callbacks of job {id}");
            assert_eq!(
                outcomes,
                [Outcome::Succeeded.as_u8()],
                "outcomes of job {id}"
            );
        }
    }
}

/// The same request in the counting client's own ABI types.
fn as_mock_request(r: Lilypad::JobRequest) -> MockClient::JobRequest {
    MockClient::JobRequest {
        module: r.module,
        version: r.version,
        moduleId: Default::default(),
        deterministic: false,
        inputs: r
            .inputs
            .into_iter()
            .map(|i| MockClient::InputParam {
                key: i.key,
                value: i.value,
            })
            .collect(),
        maxPrice: r.maxPrice,
        matchTimeout: r.matchTimeout,
        executionTimeout: r.executionTimeout,
        callbackGasLimit: r.callbackGasLimit,
        maxOutputBytes: r.maxOutputBytes,
        resultsCollateralMultiplierBps: r.resultsCollateralMultiplierBps,
        challengeWindow: r.challengeWindow,
        extraAuditBps: r.extraAuditBps,
        providers: r.providers,
        minDelivered: r.minDelivered,
        minReliabilityBps: r.minReliabilityBps,
    }
}

/// The lines each service logged about `jobs` (`job=<id>` or `job=<chain>:<id>`, colours and
/// all).
fn logs_of(stack: &Stack, jobs: &[U256]) -> String {
    let mut out = String::new();
    for name in ["relayer", "solver", "provider"] {
        for line in stack.log(name).lines() {
            let plain = strip_colours(line);
            let mentions = jobs.iter().any(|id| {
                plain.contains(&format!("job={id} "))
                    || plain.contains(&format!("job=31337:{id} "))
                    || plain.ends_with(&format!("job={id}"))
                    || plain.ends_with(&format!("job=31337:{id}"))
            });
            if mentions {
                out.push_str(&format!("{name}: {plain}\n"));
            }
        }
    }
    out
}

/// `line` without ANSI colour codes.
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The relayer's transactions mined in blocks `from..=head`: how many of each Lilypad function,
/// and how many reverted.
pub async fn relayer_transactions(
    stack: &Stack,
    from: u64,
) -> (BTreeMap<&'static str, usize>, usize) {
    let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
    let p = reader(&stack.chain.url());
    let head = p.get_block_number().await.unwrap();
    let names: BTreeMap<[u8; 4], &str> = [
        (Lilypad::agreeDealCall::SELECTOR, "agreeDeal"),
        (Lilypad::submitResultCall::SELECTOR, "submitResult"),
        (Lilypad::settleCall::SELECTOR, "settle"),
        (Lilypad::settleManyCall::SELECTOR, "settleMany"),
    ]
    .into_iter()
    .collect();
    let mut by_function = BTreeMap::new();
    let mut reverted = 0;
    for n in from..=head {
        let Some(block) = p.get_block_by_number(n.into()).full().await.unwrap() else {
            continue;
        };
        for tx in block.transactions.txns() {
            if tx.inner.signer() != relayer {
                continue;
            }
            let selector: [u8; 4] = tx.input().get(..4).unwrap_or(&[0; 4]).try_into().unwrap();
            let name = names.get(&selector).copied().unwrap_or("other");
            *by_function.entry(name).or_insert(0) += 1;
            let receipt = p
                .get_transaction_receipt(*tx.inner.tx_hash())
                .await
                .unwrap()
                .unwrap();
            if !receipt.status() {
                reverted += 1;
            }
        }
    }
    (by_function, reverted)
}

/// Provider arguments with room for `jobs` cowsay jobs at once (a test or bench about the
/// endpoint, not about capacity).
pub fn room_for(jobs: usize) -> Vec<String> {
    vec![
        "--cpu-millis".into(),
        (jobs as u64 * 1000).to_string(),
        "--memory".into(),
        "16GiB".into(),
    ]
}
