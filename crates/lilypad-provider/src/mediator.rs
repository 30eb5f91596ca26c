//! Mediation: once a challenged case's seed block exists the mediator draws it (anyone may); if
//! drawn, it fetches the request from the chain, re-runs it from its module and inputs, and votes
//! the commitment of the whole result it got (status, exit code, result CID, inline output:
//! `Lilypad.resultCommitment`) in two steps: `ConsortiumMediation.commit` of the blinded
//! `keccak256(abi.encode(resultHash, salt, mediator))` in the commit phase, then `reveal` of the
//! hash and salt in the reveal phase. The salt is written to the state directory before the
//! commitment is sent, so a restarted mediator still reveals (and is not slashed); the hash of
//! each signed commit and reveal is written before it is sent, so one whose answer was lost is
//! reported once it landed and sent again only when the chain never got it. Honest
//! providers of deterministic modules get the same result, so the consortium upholds them; a
//! provider that reported anything else (another CID, another inline output, status or exit
//! code) is overturned. A case whose phases ran out is closed by whoever sees it first.
//!
//! Which cases there are is read by [`crate::intake`] (the relayer's chunked, confirmed,
//! reorg-aware follower, its cursor in the state directory); a step that failed for a passing
//! reason is retried with backoff there, a refused one ([`MediatorError::Refused`]) is not.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use lilypad_bindings::{ConsortiumMediation, Lilypad};
use lilypad_chain::{SendError, SignedTx};
use lilypad_executor::{ErrorKind, Executor, Status, run_job};
use lilypad_modules::ModuleRegistry;
use lilypad_types::{JobKey, JobRequested};

use crate::intake::{Intake, IntakeError};
use crate::service::{ChainSettings, ProviderError};
use crate::state::{CaseStore, SentVote, StateError, VoteRecord, VoteStep, VoteStore};

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
    /// The request pins another module definition than this mediator's (or claims a
    /// deterministic run of a module that is not): it does not re-run a definition the client did
    /// not ask for.
    #[error("job {job} is not re-run: {source}")]
    ModuleMismatch {
        /// The job.
        job: JobKey,
        /// What differs.
        source: Box<lilypad_modules::PinError>,
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
    /// The contract refused a transaction (its revert decoded by name): not retried as such; the
    /// next round reads the case again.
    #[error("job {job}: {what} refused: {reason}")]
    Refused {
        /// The job.
        job: JobKey,
        /// What was sent.
        what: String,
        /// The decoded revert.
        reason: String,
    },
    /// New cases could not be read (the next round goes on from the cursor).
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// The case takes no more votes from this mediator.
    #[error("job {job}: no vote needed: {reason}")]
    Closed {
        /// The job.
        job: JobKey,
        /// Resolved already, or this mediator has voted.
        reason: String,
    },
    /// The vote committed for a case is not in the state directory: it cannot be revealed.
    #[error(
        "job {job}: this mediator committed a vote but its salt is not in the state directory ({dir}): it cannot reveal and will be slashed; keep the state directory across restarts"
    )]
    SaltLost {
        /// The job.
        job: JobKey,
        /// Where the votes are kept.
        dir: String,
    },
    /// The vote store could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
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
    // Only the definition the client pinned is re-run: another one could disagree with an honest
    // provider. A module this mediator does not have is left to `run_job` to report.
    if let Ok(module) = registry.module(&job.spec.module, &job.spec.version, &inputs) {
        module
            .check_pin(job.spec.module_id, job.spec.deterministic)
            .map_err(|source| MediatorError::ModuleMismatch {
                job: job.key,
                source,
            })?;
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
                | ErrorKind::InputUnavailable
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

/// The blinded vote `ConsortiumMediation.commitmentFor` computes:
/// `keccak256(abi.encode(resultHash, salt, mediator))`.
pub fn commitment_for(result_hash: B256, salt: B256, mediator: Address) -> B256 {
    alloy::primitives::keccak256((result_hash, salt, mediator).abi_encode())
}

/// A mediator on one chain.
#[derive(Debug, Clone)]
pub struct Mediator {
    signer: PrivateKeySigner,
    wallet: EthereumWallet,
    chain: ChainSettings,
    mediation: Address,
    from_block: u64,
    rpc: DynProvider,
    executor: Executor,
    registry: Arc<ModuleRegistry>,
    votes: VoteStore,
    votes_dir: String,
    lazy: bool,
    /// The cases it follows, read from the chain and kept in the state directory.
    intake: Arc<Intake>,
}

/// What a mediator did in one step of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It drew the case's mediators (anyone may once the seed block exists).
    Drew,
    /// It committed its blinded vote for `result_hash`.
    Committed {
        /// The commitment of its re-run's result.
        result_hash: B256,
    },
    /// It revealed `result_hash`.
    Revealed {
        /// The commitment of its re-run's result.
        result_hash: B256,
    },
    /// It closed a case whose phases ran out.
    Finalized,
}

/// One transaction a mediator sent for a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The job.
    pub job: JobKey,
    /// What it did.
    pub step: Step,
    /// The transaction.
    pub tx_hash: B256,
}

impl Mediator {
    /// A mediator signing with `signer` on `chain`, voting on `mediation` (the
    /// `ConsortiumMediation` contract), finding requests and cases from `from_block` (the
    /// deployment block), keeping its committed votes in `votes` and its cursor and open cases
    /// beside them ([`CaseStore`]). Cases are read up to the latest block, in chunks of the chains
    /// file's default size, until [`Mediator::following`] says otherwise.
    pub fn new(
        signer: PrivateKeySigner,
        chain: ChainSettings,
        mediation: Address,
        from_block: u64,
        executor: Executor,
        registry: Arc<ModuleRegistry>,
        votes: VoteStore,
    ) -> Result<Self, MediatorError> {
        let rpc = lilypad_chain::connect(&chain.rpc_urls, &lilypad_chain::RpcOptions::default())
            .map_err(|e| ProviderError::BadRpcUrl {
                chain_id: chain.chain_id,
                url: chain.rpc_urls.join(", "),
                reason: e.to_string(),
            })?;
        let intake = Self::intake(
            &votes,
            &chain,
            mediation,
            signer.address(),
            lilypad_follow::FollowSettings::new(
                from_block,
                lilypad_follow::Confirmations::Blocks(0),
            ),
        )?;
        Ok(Self {
            wallet: EthereumWallet::from(signer.clone()),
            signer,
            chain,
            mediation,
            from_block,
            rpc,
            executor,
            registry,
            votes_dir: votes.dir().display().to_string(),
            votes,
            lazy: false,
            intake: Arc::new(intake),
        })
    }

    fn intake(
        votes: &VoteStore,
        chain: &ChainSettings,
        mediation: Address,
        me: Address,
        follow: lilypad_follow::FollowSettings,
    ) -> Result<Intake, MediatorError> {
        let root = votes.dir().parent().unwrap_or(votes.dir());
        let store = CaseStore::open(root, chain.chain_id, mediation, me)?;
        Ok(Intake::open(chain.chain_id, mediation, follow, store)?)
    }

    /// Reads cases as `follow` says (confirmations, chunk size, rewind; its start block is used
    /// only while no cursor is stored).
    pub fn following(
        mut self,
        follow: lilypad_follow::FollowSettings,
    ) -> Result<Self, MediatorError> {
        self.intake = Arc::new(Self::intake(
            &self.votes,
            &self.chain,
            self.mediation,
            self.address(),
            follow,
        )?);
        Ok(self)
    }

    /// Where its cursor over the mediation's events stands (none before the first chunk).
    pub fn cursor(&self) -> Option<lilypad_follow::Cursor> {
        self.intake.cursor()
    }

    /// TESTING ONLY: this mediator does no work: it commits the provider's own commitment
    /// without re-running the job (what a lazy mediator that copies the claim would do). It is
    /// slashed whenever the consortium overturns the result.
    pub fn testing_lazy(mut self) -> Self {
        self.lazy = true;
        self
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

    /// The vote for a case: the one kept on disk if this mediator committed before (a restart),
    /// else a fresh re-run (or, lazy, the provider's claim) with a random salt, written to disk
    /// before it is returned.
    async fn vote_for(
        &self,
        job_id: U256,
        provider_hash: B256,
    ) -> Result<VoteRecord, MediatorError> {
        let me = self.address();
        if let Some(v) = self.votes.get(self.chain.chain_id, job_id, me)? {
            return Ok(v);
        }
        let result_hash = if self.lazy {
            tracing::warn!(job = %self.key(job_id), "TESTING ONLY: lazy mediator: committing the provider's claim without re-running the job");
            provider_hash
        } else {
            let job = self.fetch_job(job_id).await?;
            rerun(&self.executor, &self.registry, &job).await?
        };
        let vote = VoteRecord {
            chain_id: self.chain.chain_id,
            job_id,
            mediator: me,
            result_hash,
            salt: PrivateKeySigner::random().to_bytes(),
            sent: None,
        };
        self.votes.put(&vote)?;
        Ok(vote)
    }

    /// Fills and signs `tx` ([`lilypad_chain::sign`]), so its hash is known before it is sent.
    async fn sign(
        &self,
        job_id: U256,
        what: &str,
        tx: TransactionRequest,
    ) -> Result<SignedTx, MediatorError> {
        lilypad_chain::sign(
            &self.rpc,
            &self.wallet,
            self.address(),
            self.chain.chain_id,
            tx,
            what,
        )
        .await
        .map_err(|e| self.send_err(job_id, what, e))
    }

    /// Sends a signed transaction (its lost answer looked up by hash,
    /// [`lilypad_chain::send_signed`]) and checks it succeeded.
    async fn land(&self, job_id: U256, what: &str, tx: &SignedTx) -> Result<B256, MediatorError> {
        let receipt = lilypad_chain::send_signed(&self.rpc, tx)
            .await
            .map_err(|e| self.send_err(job_id, what, e))?;
        if !receipt.status() {
            return Err(self.chain_err(job_id, what)(format!(
                "transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        Ok(receipt.transaction_hash)
    }

    /// Signs, sends and checks a transaction with no record kept of it (a draw, a finalize: any
    /// mediator may send them again).
    async fn send(
        &self,
        job_id: U256,
        what: &str,
        tx: TransactionRequest,
    ) -> Result<B256, MediatorError> {
        let signed = self.sign(job_id, what, tx).await?;
        self.land(job_id, what, &signed).await
    }

    /// A revert in the estimate, decoded by name, is [`MediatorError::Refused`]; anything else a
    /// chain error.
    fn send_err(&self, job_id: U256, what: &str, e: SendError) -> MediatorError {
        match e
            .revert_data()
            .and_then(|data| lilypad_bindings::decode_error(&data))
        {
            Some(reason) => MediatorError::Refused {
                job: self.key(job_id),
                what: what.to_owned(),
                reason,
            },
            None => self.chain_err(job_id, &format!("sending {what}"))(e.to_string()),
        }
    }

    /// A commit or reveal sent before whose outcome this mediator never saw (the answer was lost,
    /// or it restarted while waiting): if it landed, the step is reported now, with that
    /// transaction's hash; if not (the node never had it, or it reverted), it is forgotten and
    /// the step is taken again.
    async fn settle_sent(
        &self,
        job_id: U256,
        mut vote: VoteRecord,
        sent: SentVote,
    ) -> Result<Option<Action>, MediatorError> {
        let mediation = ConsortiumMediation::new(self.mediation, &self.rpc);
        let me = self.address();
        let (what, on_chain) = match sent.step {
            VoteStep::Commit => ("commit", mediation.commitmentOf(job_id, me).call().await),
            VoteStep::Reveal => ("reveal", mediation.revealOf(job_id, me).call().await),
        };
        let on_chain = on_chain.map_err(|e| {
            self.chain_err(job_id, &format!("reading the {what} sent"))(e.to_string())
        })? != B256::ZERO;
        let landed = on_chain
            || lilypad_chain::receipt_of(&self.rpc, sent.tx_hash, what)
                .await
                .map_err(|e| {
                    self.chain_err(job_id, &format!("looking up the {what} sent"))(e.to_string())
                })?
                .is_some_and(|receipt| receipt.status());
        let step = match (landed, sent.step) {
            (false, _) => {
                tracing::info!(job = %self.key(job_id), tx = %sent.tx_hash, "the {what} sent before did not land; sending it again");
                vote.sent = None;
                self.votes.put(&vote)?;
                return Ok(None);
            }
            (true, VoteStep::Commit) => {
                vote.sent = None;
                self.votes.put(&vote)?;
                Step::Committed {
                    result_hash: vote.result_hash,
                }
            }
            (true, VoteStep::Reveal) => {
                self.votes.remove(self.chain.chain_id, job_id, me)?;
                Step::Revealed {
                    result_hash: vote.result_hash,
                }
            }
        };
        Ok(Some(self.action(job_id, step, sent.tx_hash)))
    }

    /// One step of job `job_id`'s case for this mediator: draw it once its seed block exists,
    /// commit (re-running the job) in the commit phase, reveal in the reveal phase, close it when
    /// its phases ran out. `Ok(None)`: nothing to do yet. [`MediatorError::Closed`] and
    /// [`MediatorError::NotDrawn`]: nothing ever will be.
    pub async fn mediate(&self, job_id: U256) -> Result<Option<Action>, MediatorError> {
        let mediation = ConsortiumMediation::new(self.mediation, &self.rpc);
        let me = self.address();
        let case = mediation
            .caseOf(job_id)
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading caseOf")(e.to_string()))?;
        if !case.opened {
            return Err(MediatorError::Closed {
                job: self.key(job_id),
                reason: "no mediation case for it".into(),
            });
        }
        if let Some(vote) = self.votes.get(self.chain.chain_id, job_id, me)?
            && let Some(sent) = vote.sent
            && let Some(action) = self.settle_sent(job_id, vote, sent).await?
        {
            return Ok(Some(action));
        }
        if case.resolved {
            self.votes.remove(self.chain.chain_id, job_id, me)?;
            return Err(MediatorError::Closed {
                job: self.key(job_id),
                reason: "the case is resolved".into(),
            });
        }
        let latest = self
            .rpc
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.chain_err(job_id, "reading the latest block")(e.to_string()))?
            .ok_or_else(|| self.chain_err(job_id, "reading the latest block")("none".into()))?;
        let (number, now) = (latest.header.number, latest.header.timestamp);
        if case.mediators.is_empty() {
            if number < case.seedBlock {
                return Ok(None);
            }
            return match self
                .send(
                    job_id,
                    "draw",
                    mediation.draw(job_id).into_transaction_request(),
                )
                .await
            {
                Ok(tx_hash) => Ok(Some(self.action(job_id, Step::Drew, tx_hash))),
                // another mediator drew first
                Err(e) => match mediation.mediatorsOf(job_id).call().await {
                    Ok(drawn) if !drawn.is_empty() => Ok(None),
                    _ => Err(e),
                },
            };
        }
        if !case.mediators.contains(&me) {
            return Err(MediatorError::NotDrawn {
                job: self.key(job_id),
                mediator: me,
                drawn: case.mediators,
            });
        }
        let committed = mediation
            .commitmentOf(job_id, me)
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading commitmentOf")(e.to_string()))?
            != B256::ZERO;
        let revealed = mediation
            .revealOf(job_id, me)
            .call()
            .await
            .map_err(|e| self.chain_err(job_id, "reading revealOf")(e.to_string()))?
            != B256::ZERO;
        let commit_deadline = case.commitDeadline.to::<u64>();
        let reveal_deadline = case.revealDeadline.to::<u64>();
        let closes_at = if case.commits == 0 {
            commit_deadline
        } else {
            reveal_deadline
        };
        if !committed && now < commit_deadline {
            let mut vote = self.vote_for(job_id, case.providerHash).await?;
            let commitment = commitment_for(vote.result_hash, vote.salt, me);
            let tx = mediation
                .commit(job_id, commitment)
                .into_transaction_request();
            let tx_hash = self
                .send_recorded(job_id, &mut vote, VoteStep::Commit, tx)
                .await?;
            vote.sent = None;
            self.votes.put(&vote)?;
            let step = Step::Committed {
                result_hash: vote.result_hash,
            };
            return Ok(Some(self.action(job_id, step, tx_hash)));
        }
        if committed && !revealed && now >= commit_deadline && now < reveal_deadline {
            let Some(mut vote) = self.votes.get(self.chain.chain_id, job_id, me)? else {
                return Err(MediatorError::SaltLost {
                    job: self.key(job_id),
                    dir: self.votes_dir.clone(),
                });
            };
            let tx = mediation
                .reveal(job_id, vote.result_hash, vote.salt)
                .into_transaction_request();
            let tx_hash = self
                .send_recorded(job_id, &mut vote, VoteStep::Reveal, tx)
                .await?;
            // revealed on-chain: the salt is no longer needed
            self.votes.remove(self.chain.chain_id, job_id, me)?;
            let step = Step::Revealed {
                result_hash: vote.result_hash,
            };
            return Ok(Some(self.action(job_id, step, tx_hash)));
        }
        if now >= closes_at {
            let tx_hash = self
                .send(
                    job_id,
                    "finalize",
                    mediation.finalize(job_id).into_transaction_request(),
                )
                .await?;
            return Ok(Some(self.action(job_id, Step::Finalized, tx_hash)));
        }
        Ok(None)
    }

    /// Signs `tx`, the vote's `step`, writes its hash into the vote record before sending it (so
    /// a round after a lost answer or a crash settles it instead of voting again), then lands it.
    async fn send_recorded(
        &self,
        job_id: U256,
        vote: &mut VoteRecord,
        step: VoteStep,
        tx: TransactionRequest,
    ) -> Result<B256, MediatorError> {
        let what = match step {
            VoteStep::Commit => "commit",
            VoteStep::Reveal => "reveal",
        };
        let tx = self.sign(job_id, what, tx).await?;
        vote.sent = Some(SentVote {
            step,
            tx_hash: tx.hash,
        });
        self.votes.put(vote)?;
        self.land(job_id, what, &tx).await
    }

    fn action(&self, job_id: U256, step: Step, tx_hash: B256) -> Action {
        Action {
            job: self.key(job_id),
            step,
            tx_hash,
        }
    }

    /// One round of the mediator service: reads the cases started since its cursor
    /// ([`crate::intake`]) and takes the next step of every case it follows that is not waiting
    /// out a retry ([`Mediator::mediate`]). A case it was not drawn for, or that resolved, is
    /// dropped; one whose step failed for a passing reason is tried again after a backoff; a
    /// refused step is reported and the case read again next round. Returns what happened (a
    /// failed read of new cases among it: the known cases are still stepped).
    pub async fn mediate_new_cases(&self) -> Vec<Result<Action, MediatorError>> {
        let mut done = Vec::new();
        if let Err(e) = self.intake.pass(&self.rpc).await {
            done.push(Err(e.into()));
        }
        for job in self.intake.due() {
            match self.mediate(job).await {
                Err(MediatorError::Closed { .. } | MediatorError::NotDrawn { .. }) => {
                    if let Err(e) = self.intake.drop_case(job) {
                        done.push(Err(e.into()));
                    }
                }
                Ok(None) => self.intake.succeeded(job),
                Ok(Some(action)) => {
                    self.intake.succeeded(job);
                    done.push(Ok(action));
                }
                Err(e @ MediatorError::Refused { .. }) => {
                    self.intake.succeeded(job);
                    done.push(Err(e));
                }
                Err(e) => {
                    let wait = self.intake.failed(job);
                    tracing::warn!(job = %self.key(job), error = %e, retry_in = ?wait, "mediation step failed; retrying");
                    done.push(Err(e));
                }
            }
        }
        done
    }
}
