//! A submitter round, in three phases (deals, results, due actions), and the lease loop that
//! runs rounds while this relayer holds the right to send with the chain's signer.

use super::*;

/// A signed message the submitter lands: a deal or a result.
trait Signed: serde::de::DeserializeOwned {
    /// Its stream.
    const TOPIC: Topic;
    /// Its name in logs and in the durable consumer's name.
    const WHAT: &'static str;
    /// The job it is for.
    fn key(&self) -> JobKey;
    /// Checks the job and sends the transaction.
    fn prepare(&self, submitter: &Submitter) -> impl Future<Output = Result<Step, SubmitError>>;
}

impl Signed for SignedDeal {
    const TOPIC: Topic = Topic::Deals;
    const WHAT: &'static str = "deal";
    fn key(&self) -> JobKey {
        self.key
    }
    fn prepare(&self, submitter: &Submitter) -> impl Future<Output = Result<Step, SubmitError>> {
        submitter.prepare_deal(self)
    }
}

impl Signed for SignedResult {
    const TOPIC: Topic = Topic::Results;
    const WHAT: &'static str = "result";
    fn key(&self) -> JobKey {
        self.key
    }
    fn prepare(&self, submitter: &Submitter) -> impl Future<Output = Result<Step, SubmitError>> {
        submitter.prepare_result(self)
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
    /// One round: lands the deals waiting on the stream, then the results, then the due actions.
    /// Within each of those three phases transactions are pipelined: sent one after another
    /// with consecutive nonces, then confirmed together, so a batch costs about one block, not
    /// one block per transaction. The phases follow one another because each can depend on the
    /// one before (a result needs its deal mined; a timeout must not race a result). Returns how
    /// many transactions landed.
    pub async fn round(&self, wait: Duration) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let mut landed = self.land::<SignedDeal>(wait).await?;
        landed += self.land::<SignedResult>(wait).await?;

        let now = self.chain_time().await?;
        let mut inflight = FuturesUnordered::new();
        for (job, action) in self
            .store
            .claim_due(chain, now, 32, self.settings.claim_retry)
            .await?
        {
            match self.prepare_action(job, action, now).await {
                Ok(Step::Sent(sent)) => {
                    inflight.push(async move { (job, action, self.complete(*sent).await) })
                }
                Ok(Step::Skipped(why)) => {
                    report_action(chain, job, action, Ok(Submitted::Skipped(why)));
                }
                Err(e) => {
                    report_action(chain, job, action, Err(e));
                }
            }
        }
        while let Some((job, action, outcome)) = inflight.next().await {
            landed += report_action(chain, job, action, outcome);
        }
        Ok(landed)
    }

    /// One phase of a round: the messages of one kind waiting on their stream, sent one after
    /// another and confirmed together.
    async fn land<M: Signed>(&self, wait: Duration) -> Result<usize, SubmitError> {
        let chain = self.settings.chain_id;
        let consumer = self
            .bus
            .consumer::<M>(
                M::TOPIC,
                Some(chain),
                &format!("relayer-{}s-{chain}", M::WHAT),
            )
            .await?;
        let mut landed = 0;
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
            match d.body.prepare(self).await {
                Ok(Step::Sent(sent)) => inflight.push(async move {
                    let outcome = self.complete(*sent).await;
                    self.finish(key, M::WHAT, outcome, *d).await
                }),
                Ok(Step::Skipped(why)) => {
                    landed += self
                        .finish(key, M::WHAT, Ok(Submitted::Skipped(why)), *d)
                        .await?
                }
                Err(e) => landed += self.finish(key, M::WHAT, Err(e), *d).await?,
            }
        }
        while let Some(r) = inflight.next().await {
            landed += r?;
        }
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
            Err(e @ (SubmitError::Reverts { .. } | SubmitError::MinedReverted { .. })) => {
                tracing::error!(job = %key, error = %e, "{what} refused by the contract; dropped");
                delivery.reject().await?;
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
    /// chain. On the way out the lease is given up, so another relayer with this key takes over at
    /// once instead of after the lease's TTL.
    pub async fn run(
        &self,
        holder: &str,
        health: crate::health::Health,
        name: &str,
        stop: CancellationToken,
    ) {
        let lease_name = format!("submit:{}:{}", self.settings.chain_id, self.signer);
        let mut lease = None;
        // Whether what a previous holder left in flight was retired since the lease became ours.
        let mut recovered = false;
        while !stop.is_cancelled() {
            let held = self
                .store
                .try_acquire_lease(&lease_name, holder, self.settings.lease_ttl)
                .await;
            match &held {
                Ok(Some(_)) if !recovered => match self.recover().await {
                    Ok(_) => recovered = true,
                    Err(e) => {
                        tracing::warn!(chain = self.settings.chain_id, error = %e, "could not retire the pending transactions a previous run left; trying again next round");
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
                Ok(Some(_)) => match self.round(ROUND_WAIT).await {
                    Ok(_) => {
                        health.submitted(name);
                        ROUND_PAUSE
                    }
                    Err(e) => {
                        health.failed(name, &format!("submitting: {e}"));
                        metrics::counter!("lilypad_failures_total", "chain" => self.settings.chain_id.to_string(), "stage" => "submit")
                            .increment(1);
                        tracing::error!(chain = self.settings.chain_id, error = %e, "submitter round failed");
                        Duration::from_secs(2)
                    }
                },
                Ok(None) => Duration::from_secs(1), // another relayer sends with this key
                Err(e) => {
                    tracing::error!(chain = self.settings.chain_id, error = %e, "lease check failed");
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
            tracing::warn!(chain = self.settings.chain_id, error = %e, "could not give up the submit lease; it lapses after its TTL");
        }
    }
}
