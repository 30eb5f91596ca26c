//! One reader per chain for the signed deals waiting to be agreed on-chain.
//!
//! Every `agreement_poll` the reader reads the chain's latest block once (its number and its
//! timestamp, the chain's clock), and, when that block is new, every watched job at that very
//! block, in one JSON-RPC batch. A block that has not changed cannot have changed a job, so the
//! jobs are not read again until the next block (only those whose last read failed, or newly
//! watched ones, are). Each deal's task then decides from what was seen
//! ([`crate::checks::agreement`]). A deal used to read its job and the chain's clock itself every
//! poll: two requests per deal per 100 ms; now it is one request per chain per poll, and one
//! batch per new block.
//!
//! A job and the clock are read at the same block, so "the chain's clock is past the deal's
//! expiry and the job is still open" is a fact of one block, never a job read before an
//! agreement beside a clock read after it. When the latest block cannot be read, the jobs are
//! read at `latest` and no clock is given: an agreement is still seen. The reader runs only
//! while some deal is watched.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::client::BatchRequest;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use lilypad_bindings::Lilypad;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What one read said about one watched job: the job (or why it could not be read) and the
/// chain's clock at the same block (`None` when the latest block could not be read).
#[derive(Debug, Clone)]
pub(crate) struct Sighting {
    /// The job as the contract stores it.
    pub job: Result<Lilypad::Job, String>,
    /// The timestamp of the block the job was read at.
    pub chain_time: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// The jobs watched, each with how many watchers it has.
    watched: BTreeMap<U256, usize>,
    /// The block the entries of `seen` were read at (`None`: at `latest`, the block unknown).
    block: Option<u64>,
    /// The chain's clock at `block`.
    chain_time: Option<u64>,
    /// What the reads at `block` said, per job.
    seen: BTreeMap<U256, Result<Lilypad::Job, String>>,
    /// Whether the reader's task is running.
    running: bool,
}

/// The agreement reader of one chain (see the module's docs). Cheap to share.
#[derive(Debug)]
pub(crate) struct ChainWatch {
    rpc: DynProvider,
    lilypad: Address,
    poll: Duration,
    state: Mutex<State>,
    /// Counts the reads done; told after each.
    reads: watch::Sender<u64>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChainWatch {
    /// A reader of the Lilypad contract `lilypad` through `rpc`, reading every `poll` while a
    /// job is watched; its task is one of `tasks`, and stops on `cancel`.
    pub(crate) fn new(
        rpc: DynProvider,
        lilypad: Address,
        poll: Duration,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            rpc,
            lilypad,
            poll,
            state: Mutex::new(State::default()),
            reads: watch::channel(0).0,
            tasks,
            cancel,
        })
    }

    /// Watches job `job_id` until the handle is dropped (starting the reader if it is idle).
    pub(crate) fn watch(self: &Arc<Self>, job_id: U256) -> Watching {
        let mut reads = self.reads.subscribe();
        reads.mark_unchanged();
        let mut state = lock(&self.state);
        *state.watched.entry(job_id).or_default() += 1;
        if !state.running {
            state.running = true;
            let me = self.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    biased;
                    _ = me.cancel.cancelled() => lock(&me.state).running = false,
                    _ = me.run() => {}
                }
            });
        }
        Watching {
            watch: self.clone(),
            job_id,
            reads,
        }
    }

    /// Reads while anything is watched, every `poll`.
    async fn run(&self) {
        loop {
            let ids: Vec<U256> = {
                let mut state = lock(&self.state);
                if state.watched.is_empty() {
                    state.running = false;
                    return;
                }
                state.watched.keys().copied().collect()
            };
            self.read(&ids).await;
            self.reads.send_modify(|n| *n += 1);
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One read: the latest block, then the jobs that block may have changed, at that block.
    async fn read(&self, ids: &[U256]) {
        let latest = self
            .rpc
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .ok()
            .flatten()
            .map(|b| (b.header.number, b.header.timestamp));
        let (block, chain_time) = (latest.map(|(n, _)| n), latest.map(|(_, t)| t));
        let stale: Vec<U256> = {
            let state = lock(&self.state);
            let same_block = block.is_some() && state.block == block;
            ids.iter()
                .copied()
                .filter(|id| !(same_block && matches!(state.seen.get(id), Some(Ok(_)))))
                .collect()
        };
        let at = block.map_or(BlockId::latest(), BlockId::number);
        let read = if stale.is_empty() {
            Vec::new()
        } else {
            read_jobs(&self.rpc, self.lilypad, &stale, at).await
        };
        let mut state = lock(&self.state);
        if block.is_none() || state.block != block {
            state.seen.clear();
        }
        state.block = block;
        state.chain_time = chain_time;
        for (id, job) in stale.into_iter().zip(read) {
            state.seen.insert(id, job);
        }
        let State { watched, seen, .. } = &mut *state;
        seen.retain(|id, _| watched.contains_key(id));
    }
}

/// Jobs `ids` of the Lilypad contract `lilypad` at block `at`, in one JSON-RPC batch; each
/// read's error as text.
async fn read_jobs(
    rpc: &DynProvider,
    lilypad: Address,
    ids: &[U256],
    at: BlockId,
) -> Vec<Result<Lilypad::Job, String>> {
    let mut batch = BatchRequest::new(rpc.client());
    let waiters: Vec<_> = ids
        .iter()
        .map(|id| {
            let call = Lilypad::getJobCall { jobId: *id };
            let tx = TransactionRequest::default()
                .to(lilypad)
                .input(Bytes::from(call.abi_encode()).into());
            batch
                .add_call::<_, Bytes>("eth_call", &(tx, at))
                .map_err(|e| format!("eth_call getJob({id}): {e}"))
        })
        .collect();
    if let Err(e) = batch.send().await {
        let e = format!("eth_call getJob: {e}");
        return ids.iter().map(|_| Err(e.clone())).collect();
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for (id, waiter) in ids.iter().zip(waiters) {
        let job = match waiter {
            Ok(waiter) => match waiter.await {
                Ok(bytes) => Lilypad::getJobCall::abi_decode_returns(&bytes)
                    .map_err(|e| format!("decoding getJob({id}): {e}")),
                Err(e) => Err(format!("eth_call getJob({id}): {e}")),
            },
            Err(e) => Err(e),
        };
        jobs.push(job);
    }
    jobs
}

/// One job watched (see [`ChainWatch::watch`]); unwatched when dropped.
#[derive(Debug)]
pub(crate) struct Watching {
    watch: Arc<ChainWatch>,
    job_id: U256,
    reads: watch::Receiver<u64>,
}

impl Watching {
    /// What the next read of the job says (the first read after the previous call, or after
    /// the watch began, that includes the job).
    pub(crate) async fn next(&mut self) -> Sighting {
        loop {
            if self.reads.changed().await.is_err() {
                // The reader is gone with the provider: nothing more will be seen.
                std::future::pending::<()>().await;
            }
            let state = lock(&self.watch.state);
            if let Some(job) = state.seen.get(&self.job_id) {
                return Sighting {
                    job: job.clone(),
                    chain_time: state.chain_time,
                };
            }
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut state = lock(&self.watch.state);
        if let Some(n) = state.watched.get_mut(&self.job_id) {
            *n -= 1;
            if *n == 0 {
                state.watched.remove(&self.job_id);
                state.seen.remove(&self.job_id);
            }
        }
    }
}
