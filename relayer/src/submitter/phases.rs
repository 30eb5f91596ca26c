//! A submitter round, in three phases (deals, results, due actions), and the lease loop that
//! runs rounds while this relayer holds the right to send with the chain's signer.

use tokio::sync::Semaphore;

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
    ) -> impl Future<Output = Result<Step, SubmitError>>;
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
    ) -> impl Future<Output = Result<Step, SubmitError>> {
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
    ) -> impl Future<Output = Result<Step, SubmitError>> {
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

    /// One round: redoes what a reorganisation undid ([`super::reorg`]), fills the nonces of
    /// given-up actions ([`super::gaps`]), then lands the deals
    /// waiting on the stream, then the results, then the due actions.
    /// Within each of those three phases the transactions are prepared concurrently (job read,
    /// gas estimate; at most [`PREPARE_AT_ONCE`] at a time), sent with consecutive nonces as each
    /// is ready, and confirmed together, so a batch costs about one block, not one block per
    /// transaction, and one slow call holds only its own transaction. The phases follow one
    /// another because each can depend on the one before (a result needs its deal mined; a
    /// timeout must not race a result). Returns how many transactions landed.
    pub async fn round(&self, wait: Duration) -> Result<usize, SubmitError> {
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
        let mut landed = self.land::<SignedDeal>(wait).await?;
        landed += self.land::<SignedResult>(wait).await?;

        self.check_lease()?;
        let now = self.chain_time().await?;
        let reads = PhaseReads::default();
        let preparing = Semaphore::new(PREPARE_AT_ONCE);
        let (reads, preparing) = (&reads, &preparing);
        let mut inflight = FuturesUnordered::new();
        for (job, action) in self
            .store
            .claim_due(chain, now, 32, self.settings.claim_retry)
            .await?
        {
            inflight.push(async move {
                let step = {
                    let _turn = preparing.acquire().await.ok();
                    self.prepare_action(job, action, now, reads).await
                };
                let outcome = match step {
                    Ok(step) => self.run_step(step).await,
                    Err(e) => Err(e),
                };
                report_action(chain, job, action, outcome)
            });
        }
        while let Some(n) = inflight.next().await {
            landed += n;
        }
        self.check_lease()?;
        Ok(landed)
    }

    /// One phase of a round: the messages of one kind waiting on their stream, prepared
    /// concurrently, sent as each is ready and confirmed together. Every message is seen through
    /// to its outcome (acknowledged, rejected or retried) before the phase ends, even when
    /// another's fails to be acknowledged: the first such failure is returned afterwards.
    async fn land<M: Signed>(&self, wait: Duration) -> Result<usize, SubmitError> {
        self.check_lease()?;
        let chain = self.settings.chain_id;
        let consumer = self
            .bus
            .consumer::<M>(
                M::TOPIC,
                Some(chain),
                &format!("relayer-{}s-{chain}", M::WHAT),
            )
            .await?;
        let reads = PhaseReads::default();
        let preparing = Semaphore::new(PREPARE_AT_ONCE);
        let (reads, preparing) = (&reads, &preparing);
        let mut inflight = FuturesUnordered::new();
        let mut jobs = HashSet::new();
        for r in consumer.fetch(32, wait).await? {
            let Received::Message(d) = r else {
                if let Received::Malformed(m) = r {
                    tracing::error!(chain, subject = %m.subject, reason = %m.reason, "dropped a malformed {} message", M::WHAT);
                }
                continue;
            };
            let key = d.body.key();
            if !jobs.insert(key.job_id) {
                // Another message for this job is in flight: look again once it is mined.
                d.retry_after(Duration::from_secs(1)).await?;
                continue;
            }
            inflight.push(async move {
                let step = {
                    // The semaphore is never closed: without a permit (never) it goes on.
                    let _turn = preparing.acquire().await.ok();
                    d.body.prepare(self, reads).await
                };
                let outcome = match step {
                    Ok(step) => self.run_step(step).await,
                    Err(e) => Err(e),
                };
                self.finish(key, M::WHAT, outcome, *d).await
            });
        }
        let mut landed = 0;
        let mut failed = None;
        while let Some(r) = inflight.next().await {
            match r {
                Ok(n) => landed += n,
                Err(e) => {
                    tracing::warn!(chain, error = %e, "a {} could not be acknowledged or put back; the stream delivers it again", M::WHAT);
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        self.check_lease()?;
        Ok(landed)
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
    /// chain. While a round runs the lease is renewed every third of its TTL; the moment a
    /// renewal fails (the lease lapsed and may be someone else's, or Redis cannot say in time)
    /// the round stops sending and ends, leaving what it has in flight recorded as pending for
    /// the lease's next holder. On the way out the lease is given up, so another relayer with
    /// this key takes over at once instead of after the lease's TTL.
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
        // Whether what a previous holder left in flight was retired since the lease became ours.
        let mut recovered = false;
        while !stop.is_cancelled() {
            let acquired_at = tokio::time::Instant::now();
            let held = self
                .store
                .try_acquire_lease(&lease_name, holder, self.settings.lease_ttl)
                .await;
            match &held {
                Ok(Some(_)) if !recovered => match self.recover().await {
                    Ok(_) => recovered = true,
                    Err(e) => {
                        tracing::warn!(chain, error = %e, "could not retire the pending transactions a previous run left; trying again next round");
                    }
                },
                Ok(None) => recovered = false,
                _ => {}
            }
            if let Ok(l) = &held {
                lease.clone_from(l);
            }
            let pause = match held {
                // Each stream is waited on for at most ROUND_WAIT when empty, so an idle round
                // takes about 2 x ROUND_WAIT + ROUND_PAUSE and due actions are never held longer.
                Ok(Some(held)) => {
                    let lost = stop.child_token();
                    let guarded = Submitter {
                        lease: lost.clone(),
                        ..self.clone()
                    };
                    let round = guarded.round(ROUND_WAIT);
                    tokio::pin!(round);
                    let outcome = tokio::select! {
                        r = &mut round => r,
                        () = keep_lease(&self.store, &held, acquired_at, &lost) => round.await,
                    };
                    lost.cancel();
                    match outcome {
                        Ok(_) => {
                            health.submitted(name);
                            ROUND_PAUSE
                        }
                        Err(e @ SubmitError::LeaseLost { .. }) => {
                            recovered = false;
                            tracing::warn!(chain, reason = %e, "submitter round ended early");
                            Duration::from_millis(500)
                        }
                        Err(e) => {
                            health.failed(name, &format!("submitting: {e}"));
                            metrics::counter!("lilypad_failures_total", "chain" => chain.to_string(), "stage" => "submit")
                                .increment(1);
                            tracing::error!(chain, error = %e, "submitter round failed");
                            Duration::from_secs(2)
                        }
                    }
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
