//! Mediation: a mediator drawn for a challenged job fetches the request from the chain, re-runs
//! it from its module and inputs, and votes the commitment of the whole result it got (status,
//! exit code, result CID, inline output: `Lilypad.resultCommitment`) with
//! `ConsortiumMediation.submitVerdict`. Honest providers of deterministic modules get the same
//! result, so the consortium upholds them; a provider that reported anything else (another CID,
//! another inline output, status or exit code) is overturned.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::{ConsortiumMediation, Lilypad};
use lilypad_executor::{ErrorKind, Executor, Status, run_job};
use lilypad_modules::ModuleRegistry;
use lilypad_types::{JobKey, JobRequested};

use crate::service::{ChainSettings, ProviderError};

/// Why a mediator could not reach or cast a verdict.
#[derive(Debug, thiserror::Error)]
pub enum MediatorError {
    /// The re-run did not produce a result that can be compared (the mediator's own problem:
    /// missing module or image, Docker failure). It does not vote rather than vote wrong.
    #[error(
        "re-running job {job} gave no comparable result ({status}): {reason}; fix this mediator's modules or Docker and try again before the mediation deadline"
    )]
    Rerun {
        /// The job.
        job: JobKey,
        /// How the re-run ended.
        status: String,
        /// What went wrong.
        reason: String,
    },
    /// This mediator was not drawn for the job.
    #[error(
        "{mediator} is not one of the mediators drawn for job {job} ({drawn:?}): only they may vote"
    )]
    NotDrawn {
        /// The job.
        job: JobKey,
        /// This mediator.
        mediator: Address,
        /// Who was drawn.
        drawn: Vec<Address>,
    },
    /// The request event is not on the chain from the given block.
    #[error(
        "no JobRequested event for job {job} from block {from_block}: check the Lilypad address and the deployment block"
    )]
    NoRequest {
        /// The job.
        job: JobKey,
        /// Where the search started.
        from_block: u64,
    },
    /// The event's request does not hash to the job's stored request hash.
    #[error(
        "job {job}: the JobRequested event's hash {event} differs from the stored {stored}: refusing to re-run a request that is not the job's"
    )]
    RequestMismatch {
        /// The job.
        job: JobKey,
        /// From the event.
        event: B256,
        /// From `getJob`.
        stored: B256,
    },
    /// A chain call failed.
    #[error("job {job}: {what} failed: {reason}")]
    Chain {
        /// The job.
        job: JobKey,
        /// What was being done.
        what: String,
        /// The error.
        reason: String,
    },
    /// The case takes no more votes from this mediator.
    #[error("job {job}: no vote needed: {reason}")]
    Closed {
        /// The job.
        job: JobKey,
        /// Resolved already, or this mediator has voted.
        reason: String,
    },
    /// A bad setting, or a chain read not tied to one job.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// The message the relayer would have published for a `JobRequested` event.
pub use lilypad_bindings::convert::job_requested as job_from_event;

/// Re-runs `job` from its module and inputs and returns the commitment of the result it got
/// ([`lilypad_bindings::eip712::result_commitment`]: status, exit code, result CID and inline
/// output, the inline output cut at the job's `maxOutputBytes` by the same rule the provider
/// follows, [`crate::result::result_fields`]): the hash the consortium votes on, compared with the
/// provider's. A job the module rejects (bad inputs) reproduces the provider's CID-less
/// `ProviderError` result; a re-run that fails for the mediator's own reasons (unknown module,
/// image, Docker) is an error, not a vote.
pub async fn rerun(
    executor: &Executor,
    registry: &ModuleRegistry,
    job: &JobRequested,
) -> Result<B256, MediatorError> {
    let inputs: BTreeMap<String, String> = job
        .spec
        .inputs
        .iter()
        .map(|i| (i.key.clone(), i.value.clone()))
        .collect();
    if let Some(fetch) = registry.git_fetch(&job.spec.module, &job.spec.version) {
        let _ = tokio::task::spawn_blocking(fetch).await;
    }
    let outcome = run_job(
        executor,
        registry,
        &format!("mediate-{}", job.key),
        &job.spec.module,
        &job.spec.version,
        &inputs,
        u64::from(job.spec.max_output_bytes),
    )
    .await;
    let own_problem = matches!(
        outcome.status,
        Status::ProviderError(
            ErrorKind::UnknownModule
                | ErrorKind::ImageUnavailable
                | ErrorKind::InsufficientGpus
                | ErrorKind::ContainerFailed
                | ErrorKind::ResultFailed
        )
    );
    if own_problem {
        return Err(MediatorError::Rerun {
            job: job.key,
            status: outcome.status.to_string(),
            reason: outcome.error.unwrap_or_default(),
        });
    }
    let fields = crate::result::result_fields(&outcome, job.spec.max_output_bytes);
    Ok(fields.commitment())
}

/// A mediator on one chain.
#[derive(Debug, Clone)]
pub struct Mediator {
    signer: PrivateKeySigner,
    chain: ChainSettings,
    mediation: Address,
    from_block: u64,
    rpc: DynProvider,
    executor: Executor,
    registry: std::sync::Arc<ModuleRegistry>,
}

/// What a mediator did for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The job.
    pub job: JobKey,
    /// The hash voted.
    pub result_hash: B256,
    /// The voting transaction.
    pub tx_hash: B256,
}

impl Mediator {
    /// A mediator signing with `signer` on `chain`, voting on `mediation` (the
    /// `ConsortiumMediation` contract), finding requests from `from_block` (the deployment
    /// block).
    pub fn new(
        signer: PrivateKeySigner,
        chain: ChainSettings,
        mediation: Address,
        from_block: u64,
        executor: Executor,
        registry: std::sync::Arc<ModuleRegistry>,
    ) -> Result<Self, MediatorError> {
        let rpc = lilypad_chain::connect_with_signer(
            &chain.rpc_urls,
            signer.clone(),
            &lilypad_chain::RpcOptions::default(),
        )
        .map_err(|e| ProviderError::BadRpcUrl {
            chain_id: chain.chain_id,
            url: chain.rpc_urls.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Self {
            signer,
            chain,
            mediation,
            from_block,
            rpc,
            executor,
            registry,
        })
    }

    /// The mediator's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    fn key(&self, job_id: U256) -> JobKey {
        JobKey {
            chain_id: self.chain.chain_id,
            job_id,
        }
    }

    fn chain_err(&self, job_id: U256, what: &str) -> impl Fn(String) -> MediatorError {
        let job = self.key(job_id);
        let what = what.to_owned();
        move |reason| MediatorError::Chain {
            job,
            what: what.clone(),
            reason,
        }
    }

    /// The job's request, from its `JobRequested` event, checked against the stored hash.
    pub async fn fetch_job(&self, job_id: U256) -> Result<JobRequested, MediatorError> {
        let lilypad = Lilypad::new(self.chain.lilypad, &self.rpc);
        let logs = lilypad
            .JobRequested_filter()
            .topic1(job_id)
            .from_block(self.from_block)
            .query()
            .await
            .map_err(|e| self.chain_err(job_id, "reading JobRequested events")(e.to_string()))?;
        let stored = lilypad
            .getJob(job_id)
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading getJob")(e.to_string()))?
            .requestHash;
        let Some((event, log)) = logs.last() else {
            return Err(MediatorError::NoRequest {
                job: self.key(job_id),
                from_block: self.from_block,
            });
        };
        let job = job_from_event(self.chain.chain_id, self.chain.lilypad, event, log);
        if job.request_hash != stored {
            return Err(MediatorError::RequestMismatch {
                job: job.key,
                event: job.request_hash,
                stored,
            });
        }
        Ok(job)
    }

    /// Mediates job `job_id`: checks this mediator was drawn, fetches the request, re-runs it
    /// and submits the verdict.
    pub async fn mediate(&self, job_id: U256) -> Result<Verdict, MediatorError> {
        let mediation = ConsortiumMediation::new(self.mediation, &self.rpc);
        let drawn = mediation
            .mediatorsOf(job_id)
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading mediatorsOf")(e.to_string()))?;
        if !drawn.contains(&self.address()) {
            return Err(MediatorError::NotDrawn {
                job: self.key(job_id),
                mediator: self.address(),
                drawn,
            });
        }
        let case = mediation
            .caseOf(job_id)
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading caseOf")(e.to_string()))?;
        if case.resolved {
            return Err(MediatorError::Closed {
                job: self.key(job_id),
                reason: "the case is resolved".into(),
            });
        }
        let voted = mediation
            .verdictOf(job_id, self.address())
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading verdictOf")(e.to_string()))?;
        if voted != B256::ZERO {
            return Err(MediatorError::Closed {
                job: self.key(job_id),
                reason: format!("this mediator voted {voted} already"),
            });
        }
        let job = self.fetch_job(job_id).await?;
        let result_hash = rerun(&self.executor, &self.registry, &job).await?;
        let receipt = mediation
            .submitVerdict(job_id, result_hash)
            .send()
            .await
            .map_err(|e| self.chain_err(job_id, "sending submitVerdict")(e.to_string()))?
            .get_receipt()
            .await
            .map_err(|e| self.chain_err(job_id, "waiting for submitVerdict")(e.to_string()))?;
        if !receipt.status() {
            return Err(self.chain_err(job_id, "submitVerdict")(format!(
                "transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        Ok(Verdict {
            job: job.key,
            result_hash,
            tx_hash: receipt.transaction_hash,
        })
    }

    /// Cases this mediator was drawn for, from `MediationStarted` events in blocks
    /// `from_block..` up to the latest; returns their job ids and the block to start from next
    /// time.
    pub async fn cases_since(&self, from_block: u64) -> Result<(Vec<U256>, u64), MediatorError> {
        let err = |what: &str, reason: String| {
            MediatorError::Provider(ProviderError::Chain {
                chain_id: self.chain.chain_id,
                what: what.to_owned(),
                reason,
            })
        };
        let latest = self
            .rpc
            .get_block_number()
            .await
            .map_err(|e| err("reading the block number", e.to_string()))?;
        if latest < from_block {
            return Ok((Vec::new(), from_block));
        }
        let mediation = ConsortiumMediation::new(self.mediation, &self.rpc);
        let events = mediation
            .MediationStarted_filter()
            .from_block(from_block)
            .to_block(latest)
            .query()
            .await
            .map_err(|e| err("reading MediationStarted events", e.to_string()))?;
        let me = self.address();
        let jobs = events
            .into_iter()
            .filter(|(ev, _)| ev.mediators.contains(&me))
            .map(|(ev, _)| ev.jobId)
            .collect();
        Ok((jobs, latest + 1))
    }

    /// One round of the mediator service: mediates every case it was drawn for since
    /// `from_block` that still needs its vote (resolved cases and cases it voted on are skipped).
    /// Returns the block to start from next round and what happened to each case.
    pub async fn mediate_new_cases(
        &self,
        from_block: u64,
    ) -> Result<(u64, Vec<Result<Verdict, MediatorError>>), MediatorError> {
        let (jobs, next) = self.cases_since(from_block).await?;
        let mut done = Vec::new();
        for job in jobs {
            match self.mediate(job).await {
                Err(MediatorError::Closed { .. }) => {}
                other => done.push(other),
            }
        }
        Ok((next, done))
    }
}
