//! A submitter round, in three phases (deals, results, due actions), and the lease loop that
//! runs rounds while this relayer holds the right to send with the chain's signer.
//!
//! Each message and due action is carried out on its own task, from its job read until its
//! transaction is mined, so a round does not wait for confirmations: the next round takes what
//! came meanwhile at once (a deal is never held behind the settlements of the round before).
//! One job has at most one message or due action in progress ([`Submitter::busy`]), so what
//! depends on an earlier transaction for its job (a result on its deal, a timeout racing a
//! result) waits for that one to end.

use std::sync::Arc;
use tokio::task::JoinHandle;

use super::send::PhaseReads;
use super::*;

/// A signed message the submitter lands: a deal or a result.
trait Signed: serde::de::DeserializeOwned {
    /// Its stream.
    const TOPIC: Topic;
    /// Its name in logs and in the durable consumer's name.
    const WHAT: &'static str;
    /// The job it is for.
    fn key(&self) -> JobKey;
    /// Checks the job and sends the transaction, sharing `reads` with its phase.
    fn prepare(
        &self,
        submitter: &Submitter,
        reads: &PhaseReads,
    ) -> impl Future<Output = Result<Step, SubmitError>> + Send;
}

impl Signed for SignedDeal {
    const TOPIC: Topic = Topic::Deals;
    const WHAT: &'static str = "deal";
    fn key(&self) -> JobKey {
        self.key
    }
    fn prepare(
        &self,
        submitter: &Submitter,
        reads: &PhaseReads,
    ) -> impl Future<Output = Result<Step, SubmitError>> + Send {
        submitter.prepare_deal(self, reads)
    }
}

impl Signed for SignedResult {
    const TOPIC: Topic = Topic::Results;
    const WHAT: &'static str = "result";
    fn key(&self) -> JobKey {
        self.key
    }
    fn prepare(
        &self,
        submitter: &Submitter,
        reads: &PhaseReads,
    ) -> impl Future<Output = Result<Step, SubmitError>> + Send {
        submitter.prepare_result(self, reads)
    }
}

/// Logs what became of a due action; 1 if a transaction landed. A failed action stays claimed in
/// Redis and comes due again after the claim expires.
fn report_action(
    chain: u64,
    job: U256,
    action: Action,
    outcome: Result<Submitted, SubmitError>,
) -> usize {
    match outcome {
        Ok(Submitted::Landed(tx)) => {
            tracing::info!(chain, job = %job, %action, %tx, "due action carried out");
            1
        }
        Ok(Submitted::Skipped(why)) => {
            tracing::debug!(chain, job = %job, %action, %why, "due action not needed");
            0
        }
        Err(e) => {
            tracing::error!(chain, job = %job, %action, error = %e, "due action failed; it comes due again");
            0
        }
    }
}

impl Submitter {
    /// Whether the pending records are to be looked at for nonces to fill this round: at most
    /// once per `replace_after`, so a transaction still waiting for its own retry is not
    /// re-examined every round.
    fn gaps_due(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = self
            .gaps_checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *last {
            Some(at) if now.duration_since(at) < self.settings.gas.replace_after => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// What starts each round: redoes what a reorganisation undid ([`super::reorg`]) and, at most
    /// once per `replace_after`, fills the nonces of given-up actions ([`super::gaps`]). A failure
    /// other than a lost lease is logged and the look is taken again next round.
    async fn look_back(&self) -> Result<(), SubmitError> {
        let chain = self.settings.chain_id;
        let due = self.gaps_due();
        match self.follow_reorgs(due).await {
            Ok(()) => {}
            Err(e @ SubmitError::LeaseLost { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(chain, error = %e, "could not re-check what a reorganisation may have undone; trying again next round");
            }
        }
        if due {
            match self.fill_gaps().await {
                Ok(_) => {}
                Err(e @ SubmitError::LeaseLost { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(chain, error = %e, "could not look for nonces to fill; trying again next round");
                }
            }
        }
        Ok(())
    }

    /// One round, seen through to the end: the look back ([`Submitter::look_back`]), then the
    /// deals waiting on the stream, then the results, then the due actions, each phase waiting
    /// for its transactions to be mined before the next begins (so a result finds its deal
    /// mined, and a settlement falling due with it lands in the same round). Within a phase the
    /// transactions are prepared concurrently (job read, gas estimate; at most
    /// [`PREPARE_AT_ONCE`] at a time), sent with consecutive nonces as each is ready, and
    /// confirmed together. Returns how many transactions landed. [`Submitter::run`] does not
    /// wait like this: it starts the phases and goes on to the next round while they are mined.
    pub async fn round(&self, wait: Duration) -> Result<usize, SubmitError> {
        self.look_back().await?;
        let mut landed = joined(self.start::<SignedDeal>(wait).await?).await;
        landed += joined(self.start::<SignedResult>(wait).await?).await;
        landed += joined(self.start_due().await?).await;
        self.check_lease()?;
        Ok(landed)
    }

    /// One round as [`Submitter::run`] takes it: the look back, then the deals, results and due
    /// actions started, each carried out on its own task ([`Submitter::start`]), without waiting
    /// for any of them to be mined. A message or due action whose job has one in progress (its
    /// deal still being mined when its result comes, a timeout falling due while its result is
    /// in flight) waits for that one to end ([`Submitter::busy`]).
    async fn pipelined_round(&self, wait: Duration) -> Result<(), SubmitError> {
        self.look_back().await?;
        self.start::<SignedDeal>(wait).await?;
        self.start::<SignedResult>(wait).await?;
        self.start_due().await?;
        self.check_lease()
    }

    /// Marks `job` as having a message or due action of this relayer in progress, unless it has
    /// one already: one at a time per job, and a job's pending records are then its task's to
    /// mend. The mark goes when the returned value is dropped.
    fn mark_busy(&self, job: U256) -> Option<BusyJob> {
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        busy.insert(job).then(|| BusyJob {
            busy: self.busy.clone(),
            job,
        })
    }

    /// Whether `job` has a message or due action of this relayer in progress: its pending
    /// records are its own task's to mend.
    pub(super) fn busy(&self, job: U256) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&job)
    }

    /// Marks `job` as having a message or due action in progress and takes one of the
    /// [`MAX_IN_PROGRESS`] places, unless the job has one in progress already or no place is
    /// free. Both are given back when the returned value is dropped.
    fn claim(&self, job: U256) -> Option<(BusyJob, tokio::sync::OwnedSemaphorePermit)> {
        let busy = self.mark_busy(job)?;
        let place = self.in_progress.clone().try_acquire_owned().ok()?;
        Some((busy, place))
    }

    /// Prepares a step (its job read and gas estimate, at most [`PREPARE_AT_ONCE`] at a time)
    /// and carries it out: sent and waited for until mined.
    async fn prepare_and_run(
        &self,
        prepare: impl Future<Output = Result<Step, SubmitError>>,
    ) -> Result<Submitted, SubmitError> {
        let step = {
            // The semaphore is never closed: without a permit (never) it goes on.
            let _turn = self.preparing.acquire().await.ok();
            prepare.await
        };
        self.run_step(step?).await
    }

    /// Takes the messages of one kind waiting on their stream (as many as there is room for in
    /// [`MAX_IN_PROGRESS`], at most [`TAKE_AT_ONCE`]) and starts each on its own task: checked
    /// against the job on-chain, sent, waited for until mined, then acknowledged, rejected or
    /// retried ([`Submitter::finish`]). Returns the tasks, each yielding how many transactions it
    /// landed. A message whose job has one in progress is put back for a moment.
    async fn start<M: Signed + Send + Sync + 'static>(
        &self,
        wait: Duration,
    ) -> Result<Vec<JoinHandle<usize>>, SubmitError> {
        self.check_lease()?;
        let room = self.in_progress.available_permits().min(TAKE_AT_ONCE);
        if room == 0 {
            return Ok(Vec::new());
        }
        let chain = self.settings.chain_id;
        let consumer = self
            .bus
            .consumer::<M>(
                M::TOPIC,
                Some(chain),
                &format!("relayer-{}s-{chain}", M::WHAT),
            )
            .await?;
        let reads = Arc::new(PhaseReads::default());
        let mut tasks = Vec::new();
        for r in consumer.fetch(room, wait).await? {
            let Received::Message(d) = r else {
                if let Received::Malformed(m) = r {
                    tracing::error!(chain, subject = %m.subject, reason = %m.reason, "dropped a malformed {} message", M::WHAT);
                }
                continue;
            };
            let key = d.body.key();
            let Some(held) = self.claim(key.job_id) else {
                // Another message or due action for this job is in progress: look again once
                // it has ended.
                d.retry_after(BUSY_RETRY).await?;
                continue;
            };
            let (submitter, reads) = (self.clone(), reads.clone());
            tasks.push(self.tasks.spawn(async move {
                let _held = held;
                let outcome = submitter
                    .prepare_and_run(d.body.prepare(&submitter, &reads))
                    .await;
                match submitter.finish(key, M::WHAT, outcome, *d).await {
                    Ok(landed) => landed,
                    Err(e) => {
                        tracing::warn!(chain, job = %key, error = %e, "a {} could not be acknowledged or put back; the stream delivers it again", M::WHAT);
                        0
                    }
                }
            }));
        }
        Ok(tasks)
    }

    /// Claims the due actions (as many as there is room for, at most [`TAKE_AT_ONCE`]) and starts
    /// each on its own task: checked against the job and the chain's clock, sent, waited for.
    /// One whose job has a message or action in progress is made due again at once (looked at
    /// next round), so a timeout never races the result being mined for its job.
    async fn start_due(&self) -> Result<Vec<JoinHandle<usize>>, SubmitError> {
        self.check_lease()?;
        let room = self.in_progress.available_permits().min(TAKE_AT_ONCE);
        if room == 0 {
            return Ok(Vec::new());
        }
        let chain = self.settings.chain_id;
        let now = self.chain_time().await?;
        let reads = Arc::new(PhaseReads::default());
        let mut tasks = Vec::new();
        for (job, request, action) in self
            .store
            .claim_due(chain, now, room, self.settings.claim_retry)
            .await?
        {
            let Some(held) = self.claim(job) else {
                self.store
                    .schedule(chain, job, request, action, now)
                    .await?;
                continue;
            };
            let (submitter, reads) = (self.clone(), reads.clone());
            tasks.push(self.tasks.spawn(async move {
                let _held = held;
                let outcome = submitter
                    .prepare_and_run(submitter.prepare_action(job, request, action, now, &reads))
                    .await;
                report_action(chain, job, action, outcome)
            }));
        }
        Ok(tasks)
    }

    async fn finish<T>(
        &self,
        key: JobKey,
        what: &str,
        outcome: Result<Submitted, SubmitError>,
        delivery: lilypad_bus::Delivery<T>,
    ) -> Result<usize, SubmitError> {
        match outcome {
            Ok(Submitted::Landed(tx)) => {
                tracing::info!(job = %key, %tx, "{what} landed");
                delivery.ack().await?;
                Ok(1)
            }
            Ok(Submitted::Skipped(why)) => {
                tracing::info!(job = %key, %why, "{what} not sent");
                delivery.ack().await?;
                Ok(0)
            }
            Err(
                e @ (SubmitError::Reverts {
                    verdict: Verdict::Drop,
                    ..
                }
                | SubmitError::MinedReverted { .. }),
            ) => {
                tracing::error!(job = %key, error = %e, "{what} refused by the contract; dropped");
                delivery.reject().await?;
                Ok(0)
            }
            Err(
                e @ SubmitError::Reverts {
                    verdict: Verdict::Retry,
                    ..
                },
            ) => {
                tracing::warn!(job = %key, error = %e, "{what} refused by the contract for now; trying again later");
                delivery.retry_after(Duration::from_secs(5)).await?;
                Ok(0)
            }
            Err(e @ SubmitError::LeaseLost { .. }) => {
                tracing::info!(job = %key, reason = %e, "{what} left to the lease's next holder");
                delivery.retry_after(Duration::from_millis(500)).await?;
                Ok(0)
            }
            Err(e @ SubmitError::NotYet { .. }) => {
                tracing::info!(job = %key, reason = %e, "{what} kept for later");
                delivery.retry_after(Duration::from_millis(500)).await?;
                Ok(0)
            }
            Err(e) => {
                tracing::warn!(job = %key, error = %e, "{what} not landed yet; retrying");
                delivery.retry_after(Duration::from_secs(2)).await?;
                Ok(0)
            }
        }
    }

    /// Runs rounds until `stop` is cancelled, while holding the lease for this signer on this
    /// chain ([`Submitter::hold`]). Another relayer with this key holding it, this one waits and
    /// asks again. On the way out the lease is given up, so another relayer with this key takes
    /// over at once instead of after the lease's TTL.
    pub async fn run(
        &self,
        holder: &str,
        health: crate::health::Health,
        name: &str,
        stop: CancellationToken,
    ) {
        let chain = self.settings.chain_id;
        let lease_name = format!("submit:{chain}:{}", self.signer);
        let mut lease = None;
        while !stop.is_cancelled() {
            let acquired_at = tokio::time::Instant::now();
            let pause = match self
                .store
                .try_acquire_lease(&lease_name, holder, self.settings.lease_ttl)
                .await
            {
                Ok(Some(held)) => {
                    lease = Some(held.clone());
                    self.hold(&held, acquired_at, &health, name, &stop).await;
                    Duration::from_millis(500)
                }
                Ok(None) => Duration::from_secs(1), // another relayer sends with this key
                Err(e) => {
                    tracing::error!(chain, error = %e, "lease check failed");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => {}
            }
        }
        if let Some(lease) = lease
            && let Err(e) = self.store.release_lease(&lease).await
        {
            tracing::warn!(chain, error = %e, "could not give up the submit lease; it lapses after its TTL");
        }
    }

    /// What this relayer does while it holds `held` (taken at `acquired_at`): retires what a
    /// previous holder left in flight ([`Submitter::recover`]), then runs pipelined rounds
    /// ([`Submitter::pipelined_round`]) one after another, renewing the lease every third of its
    /// TTL, until a renewal fails or `stop`. Then nothing more is sent: what is in flight ends at
    /// once, left recorded as pending for the lease's next holder, and is waited for.
    async fn hold(
        &self,
        held: &lilypad_store::Lease,
        acquired_at: tokio::time::Instant,
        health: &crate::health::Health,
        name: &str,
        stop: &CancellationToken,
    ) {
        let chain = self.settings.chain_id;
        let lost = stop.child_token();
        let guarded = Submitter {
            lease: lost.clone(),
            ..self.clone()
        };
        let rounds = async {
            let mut recovered = false;
            while !lost.is_cancelled() {
                if !recovered {
                    match guarded.recover().await {
                        Ok(_) => recovered = true,
                        Err(SubmitError::LeaseLost { .. }) => break,
                        Err(e) => {
                            tracing::warn!(chain, error = %e, "could not retire the pending transactions a previous run left; trying again next round");
                        }
                    }
                }
                // Each stream is waited on for at most ROUND_WAIT when empty, so an idle round
                // takes about 2 x ROUND_WAIT + ROUND_PAUSE and due actions are never held longer.
                let pause = match guarded.pipelined_round(ROUND_WAIT).await {
                    Ok(()) => {
                        health.submitted(name);
                        ROUND_PAUSE
                    }
                    Err(e @ SubmitError::LeaseLost { .. }) => {
                        tracing::warn!(chain, reason = %e, "submitter round ended early");
                        break;
                    }
                    Err(e) => {
                        health.failed(name, &format!("submitting: {e}"));
                        metrics::counter!("lilypad_failures_total", "chain" => chain.to_string(), "stage" => "submit")
                            .increment(1);
                        tracing::error!(chain, error = %e, "submitter round failed");
                        Duration::from_secs(2)
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = lost.cancelled() => {}
                }
            }
        };
        tokio::pin!(rounds);
        tokio::select! {
            () = &mut rounds => {}
            () = keep_lease(&self.store, held, acquired_at, &lost) => rounds.await,
        }
        lost.cancel();
        // Every task sees the lease lost and ends without sending more.
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

/// Marks a job as having a message or due action in progress ([`Submitter::busy`]) until dropped.
struct BusyJob {
    busy: Arc<std::sync::Mutex<HashSet<U256>>>,
    job: U256,
}

impl Drop for BusyJob {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.job);
    }
}

/// How many transactions the tasks landed, once all have ended (a task that panicked, none).
async fn joined(tasks: Vec<JoinHandle<usize>>) -> usize {
    let mut landed = 0;
    for task in tasks {
        landed += task.await.unwrap_or(0);
    }
    landed
}

/// Renews `lease` every third of its TTL for as long as it is awaited, and cancels `lost` and
/// returns as soon as a renewal fails: the lease is held by someone else, Redis fails, or no
/// answer came while two thirds of the TTL since the last renewal (at `renewed`) passed, after
/// which the lease may lapse before this relayer knows.
pub(super) async fn keep_lease(
    store: &Store,
    lease: &lilypad_store::Lease,
    mut renewed: tokio::time::Instant,
    lost: &CancellationToken,
) {
    let every = lease.ttl / 3;
    let safe_for = lease.ttl.saturating_mul(2) / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(renewed + every) => {}
            _ = lost.cancelled() => return,
        }
        let asked = tokio::time::Instant::now();
        let budget = (renewed + safe_for).saturating_duration_since(asked);
        match tokio::time::timeout(budget, store.renew_lease(lease)).await {
            Ok(Ok(true)) => renewed = asked,
            Ok(Ok(false)) => {
                tracing::warn!(lease = %lease.name, "the submit lease lapsed and may be another relayer's; this one stops sending");
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %lease.name, error = %e, "could not renew the submit lease; this relayer stops sending until it holds it again");
                break;
            }
            Err(_) => {
                tracing::warn!(lease = %lease.name, "no answer renewing the submit lease in time; this relayer stops sending until it holds it again");
                break;
            }
        }
    }
    lost.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use lilypad_e2e::{Redis, eventually, ok_if};

    #[tokio::test]
    async fn a_lease_taken_by_another_holder_cancels_the_round_at_the_next_renewal() {
        let redis = Redis::start().unwrap();
        let store = Store::connect(&redis.url(), "test").await.unwrap();
        let ttl = Duration::from_millis(600);
        let held = store
            .try_acquire_lease("submit:1:x", "a", ttl)
            .await
            .unwrap()
            .unwrap();
        let lost = CancellationToken::new();
        let keeper = tokio::spawn({
            let (store, held, lost) = (store.clone(), held.clone(), lost.clone());
            async move { keep_lease(&store, &held, tokio::time::Instant::now(), &lost).await }
        });
        // Someone else takes it (as if it had lapsed while Redis was unreachable).
        store.release_lease(&held).await.unwrap();
        assert!(
            store
                .try_acquire_lease("submit:1:x", "thief", Duration::from_secs(60))
                .await
                .unwrap()
                .is_some()
        );
        eventually(
            Duration::from_secs(10),
            "the holder sees the lease lost",
            async || ok_if(lost.is_cancelled(), "still thinks it holds it"),
        )
        .await;
        keeper.await.unwrap();
    }
}
