//! The solver service: from a job request to a signed deal on `lilypad.deals.<chainId>`.
//!
//! Two loops share one [`Solver`]: the first moves job requests from the jobs stream into the
//! [order book](crate::book) (a message is acknowledged only once its job is in the book, or
//! once the job is known to be closed); the second matches the book, earliest match deadline
//! first, whenever capacity may have appeared: an offer was put, refreshed or removed (a watch on
//! the offers bucket), a job was added, or every [`SolverSettings::recheck`] as a fallback. In a
//! pass, jobs are ranked and their first choice of provider booked one after another (so an offer
//! is never booked twice); the slow part, reading each job on-chain and waiting for the
//! provider's signature, runs for several jobs at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use alloy_primitives::{Address, U256};
use lilypad_bindings::eip712;
use lilypad_bus::{Bus, BusError, Received, Topic, Versioned};
use lilypad_modules::ModuleRegistry;
use lilypad_types::{DealProposal, DealTerms, JobKey, JobRequested, Offer, SignedDeal};

use crate::book::{self, Claim, Entry};
use crate::matching::{Bookings, Candidate, JobNeeds, ProviderRecord, Rejection, explain, rank};

/// What the solver reads from a job's chain before proposing.
pub trait JobChain: Send + Sync {
    /// The job's state as it matters to the solver: `None` when the job is no longer open to a
    /// deal (agreed already, expired, or reorganised away), else its match deadline (unix time)
    /// and timeout collateral rate. `request_hash` must match the job on-chain.
    fn open_job(
        &self,
        key: JobKey,
        request_hash: alloy_primitives::B256,
    ) -> impl Future<Output = Result<Option<OpenJob>, String>> + Send;

    /// `provider`'s record on this chain (`Lilypad.reputationOf`), which ranking weighs. The
    /// default knows none: every provider is weighed by its price alone.
    fn record(
        &self,
        provider: Address,
    ) -> impl Future<Output = Result<ProviderRecord, String>> + Send {
        let _ = provider;
        async { Ok(ProviderRecord::default()) }
    }
}

/// A job open to a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenJob {
    /// Unix time after which no deal can be agreed.
    pub match_deadline: u64,
    /// Timeout collateral as basis points of the price, fixed when the job was requested.
    pub timeout_collateral_bps: u32,
}

/// Longest a pass waits for the providers' records it reads; a read not done by then is dropped
/// (the last record read stays) and tried again after [`SolverSettings::record_ttl`], so a slow
/// or hung endpoint delays matching by this at most once per TTL.
const RECORDS_WITHIN: Duration = Duration::from_secs(1);

/// A provider's record on one chain as the solver last read it (none until a read succeeds),
/// and when it was last asked for.
type RecordRead = (Option<ProviderRecord>, Instant);

/// The first wait after a failed fetch of job requests, doubled up to [`FETCH_RETRY_MAX`].
const FETCH_RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between fetches of job requests while NATS fails.
const FETCH_RETRY_MAX: Duration = Duration::from_secs(5);

/// Solver settings.
#[derive(Debug, Clone)]
pub struct SolverSettings {
    /// How long a provider has to answer a proposal.
    pub proposal_timeout: Duration,
    /// How long a signed deal stays valid (capped by the job's match deadline).
    pub deal_validity: Duration,
    /// Durable consumer name on the jobs stream, shared by every solver.
    pub consumer: String,
    /// How often the book is matched when nothing else prompts it (a fallback for a lost offers
    /// watch, or an offer that expired).
    pub recheck: Duration,
    /// How often the chain is asked whether each waiting job is still open (a job dealt or
    /// expired without this solver, or reorganised away, then leaves the book).
    pub prune_every: Duration,
    /// How long a provider's on-chain record read for ranking is used before it is read again.
    pub record_ttl: Duration,
}

impl Default for SolverSettings {
    fn default() -> Self {
        Self {
            proposal_timeout: Duration::from_secs(5),
            deal_validity: Duration::from_secs(120),
            consumer: "solver".into(),
            recheck: Duration::from_secs(2),
            prune_every: Duration::from_secs(30),
            record_ttl: Duration::from_secs(60),
        }
    }
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A provider signed; the deal is published.
    Dealt(Box<SignedDeal>),
    /// No provider could or would take it now. The text says why, provider by provider.
    NoTaker(String),
    /// No provider offers the module, or the module is unknown here.
    UnknownModule(String),
    /// The job is no longer open to a deal (agreed, expired or reorganised away).
    NotOpen,
}

/// What [`Solver::book_job`] did with a job request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booked {
    /// It is in the book, waiting for a provider.
    Added,
    /// It was in the book already (a message delivered again).
    AlreadyThere,
    /// The module is unknown to this solver: it cannot tell what the job needs.
    UnknownModule(String),
    /// The job is no longer open to a deal.
    NotOpen,
}

/// What one pass over the book did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Jobs dealt in this pass.
    pub dealt: usize,
    /// Jobs whose signed deal may still land (not proposed again before its expiry).
    pub deal_pending: usize,
    /// Jobs left waiting (no provider can take them now).
    pub waiting: usize,
    /// Jobs skipped because another solver holds them.
    pub claimed_elsewhere: usize,
    /// Entries dropped: the job is closed on-chain, past its match deadline, or unusable.
    pub dropped: usize,
}

impl Pass {
    /// Counts what the prune's look at one entry found.
    fn count_check(&mut self, checked: Checked) {
        match checked {
            Checked::Dropped => self.dropped += 1,
            Checked::Kept(CheckKind::DealPending) => self.deal_pending += 1,
            Checked::Kept(CheckKind::Waiting(_)) => self.waiting += 1,
        }
    }

    /// Counts what came of one proposal.
    fn count(&mut self, matched: Matched) {
        match matched {
            Matched::Dealt => self.dealt += 1,
            Matched::Dropped => self.dropped += 1,
            Matched::Waiting => self.waiting += 1,
        }
    }
}

/// What came of one proposal made in a pass over the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matched {
    /// A provider signed; the deal is published.
    Dealt,
    /// The job left the book (no longer open to a deal).
    Dropped,
    /// The job waits in the book (no provider signed, or the chain could not be read).
    Waiting,
}

/// What comes of deciding one book entry when it needs a wait: a proposal, or an on-chain look at
/// whether the job is still open (the prune).
enum Next<P> {
    Propose(P),
    Check(Check),
}

/// A book entry to look up on-chain for the prune.
struct Check {
    book_key: String,
    key: JobKey,
    request_hash: alloy_primitives::B256,
    kind: CheckKind,
}

/// Why an entry is looked up, and how it counts when its job is still open.
enum CheckKind {
    /// Its signed deal may still land.
    DealPending,
    /// No provider can take it now (why).
    Waiting(String),
}

/// What the prune's look found.
enum Checked {
    /// The job is closed (dealt, expired, cancelled): the entry left the book.
    Dropped,
    /// Still open: it stays.
    Kept(CheckKind),
}

/// How many jobs of one pass over the book are read on-chain and proposed at once.
const PROPOSALS_AT_ONCE: usize = 16;

/// A failure that should be retried (the job stays on the stream).
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The job's chain could not be read.
    #[error("reading job {key} on its chain: {reason}")]
    Chain {
        /// The job.
        key: JobKey,
        /// The error.
        reason: String,
    },
    /// The job names a chain this solver has no RPC for.
    #[error("job {0} is on a chain this solver does not serve")]
    UnknownChain(JobKey),
    /// Chains whose deployment or RPC endpoint cannot be used; every problem is listed.
    #[error("the solver cannot start:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn now() -> u64 {
    since_epoch().as_secs()
}

fn now_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// The solver.
#[derive(Debug)]
pub struct Solver<C> {
    bus: Bus,
    modules: ModuleRegistry,
    chains: Vec<(u64, C)>,
    settings: SolverSettings,
    bookings: Mutex<Bookings>,
    id: String,
    /// Woken when a job enters the book.
    added: Notify,
    /// Unix time of the last check of waiting jobs against the chain.
    last_prune: Mutex<u64>,
    /// Providers' on-chain records by chain (none until a read succeeds), with when each was
    /// last asked for.
    records: Mutex<HashMap<(u64, Address), RecordRead>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked mid-update; the data is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<C: JobChain> Solver<C> {
    /// A solver over `chains` (chain id and its reader), knowing `modules`' resource needs.
    pub fn new(
        bus: Bus,
        modules: ModuleRegistry,
        chains: Vec<(u64, C)>,
        settings: SolverSettings,
    ) -> Self {
        let id = format!(
            "solver-{}-{}",
            std::process::id(),
            since_epoch().as_nanos() % 1_000_000_000_000
        );
        Self {
            bus,
            modules,
            chains,
            settings,
            bookings: Mutex::new(Bookings::default()),
            id,
            added: Notify::new(),
            last_prune: Mutex::new(0),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the on-chain record of every offering provider on every chain it shares with this
    /// solver, unless asked for within [`SolverSettings::record_ttl`], all at once and for
    /// [`RECORDS_WITHIN`] at most. A read that fails or is not done in time keeps the last
    /// record (none: the provider is weighed by its price alone), is logged, and is tried again
    /// after the TTL.
    async fn refresh_records(&self, offers: &[Offer]) {
        let due: Vec<(u64, Address, &C)> = {
            let records = lock(&self.records);
            offers
                .iter()
                .flat_map(|o| o.chains.iter().map(move |c| (c.chain_id, o.provider)))
                .filter_map(|(chain_id, provider)| {
                    let fresh = records
                        .get(&(chain_id, provider))
                        .is_some_and(|(_, at)| at.elapsed() < self.settings.record_ttl);
                    let chain = self.chains.iter().find(|(id, _)| *id == chain_id);
                    chain
                        .filter(|_| !fresh)
                        .map(|(_, c)| (chain_id, provider, c))
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        {
            let asked = Instant::now();
            let mut records = lock(&self.records);
            for (chain_id, provider, _) in &due {
                records
                    .entry((*chain_id, *provider))
                    .or_insert((None, asked))
                    .1 = asked;
            }
        }
        let mut reads: FuturesUnordered<_> = due
            .into_iter()
            .map(|(chain_id, provider, chain)| async move {
                (chain_id, provider, chain.record(provider).await)
            })
            .collect();
        let budget = tokio::time::sleep(RECORDS_WITHIN);
        tokio::pin!(budget);
        loop {
            tokio::select! {
                read = reads.next() => {
                    let Some((chain_id, provider, got)) = read else { return };
                    match got {
                        Ok(record) => {
                            lock(&self.records)
                                .insert((chain_id, provider), (Some(record), Instant::now()));
                        }
                        Err(reason) => {
                            tracing::debug!(chain_id, %provider, %reason, "could not read the provider's record; ranking uses the last one read");
                        }
                    }
                }
                () = &mut budget => {
                    tracing::debug!(pending = reads.len(), "providers' records not read within {RECORDS_WITHIN:?}; ranking uses the last ones read");
                    return;
                }
            }
        }
    }

    /// The record of `provider` on `chain_id` last read, if any.
    fn record_of(&self, chain_id: u64, provider: Address) -> Option<ProviderRecord> {
        lock(&self.records)
            .get(&(chain_id, provider))
            .and_then(|(r, _)| *r)
    }

    /// This solver's id, as its claims on book entries name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn bookings(&self) -> std::sync::MutexGuard<'_, Bookings> {
        lock(&self.bookings)
    }

    fn chain(&self, key: JobKey) -> Result<&C, SolverError> {
        self.chains
            .iter()
            .find(|(id, _)| *id == key.chain_id)
            .map(|(_, c)| c)
            .ok_or(SolverError::UnknownChain(key))
    }

    /// Fetches the template of `job`'s Lilypad module from git, if it has one not fetched yet,
    /// on a blocking thread, so that [`Solver::needs`] reads it from memory.
    async fn fetch_module(&self, job: &JobRequested) {
        if let Some(fetch) = self.modules.git_fetch(&job.spec.module, &job.spec.version) {
            let _ = tokio::task::spawn_blocking(fetch).await;
        }
    }

    /// What `job` needs, from its module's definition; Err with the reason when the module is
    /// unknown here or the request pins another definition. A Lilypad module from git is rendered with the job's inputs (its template
    /// fetched once per commit, then kept in memory).
    fn needs(&self, job: &JobRequested, timeout_collateral_bps: u32) -> Result<JobNeeds, String> {
        let inputs: std::collections::BTreeMap<String, String> = job
            .spec
            .inputs
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect();
        let module = self
            .modules
            .module(&job.spec.module, &job.spec.version, &inputs)
            .map_err(|e| e.to_string())?;
        // A request pinned to another definition than the solver's is not matched: what it
        // needs is not known here, and providers with this definition would refuse it.
        module
            .check_pin(job.spec.module_id, job.spec.deterministic)
            .map_err(|e| e.to_string())?;
        let r = &module.resources;
        Ok(JobNeeds::of(
            job,
            r.cpu_millis,
            r.memory_bytes,
            r.gpus,
            r.vram_bytes,
            timeout_collateral_bps,
        ))
    }

    async fn live_offers(&self) -> Result<Vec<Offer>, SolverError> {
        let (offers, bad) = self.bus.offers::<Offer>().await?;
        for (provider, reason) in bad {
            tracing::warn!(%provider, %reason, "ignoring an offer that does not decode");
        }
        Ok(offers.into_iter().map(|(_, o)| o).collect())
    }

    /// Decides one job now, outside the book: proposes to the best providers in turn until one
    /// signs.
    pub async fn handle(&self, job: &JobRequested) -> Result<Decision, SolverError> {
        let key = job.key;
        let chain = self.chain(key)?;
        self.fetch_module(job).await;
        if let Err(why) = self.needs(job, 0) {
            return Ok(Decision::UnknownModule(why));
        }
        let Some(open) = chain
            .open_job(key, job.request_hash)
            .await
            .map_err(|reason| SolverError::Chain { key, reason })?
        else {
            return Ok(Decision::NotOpen);
        };
        let needs = match self.needs(job, open.timeout_collateral_bps) {
            Ok(n) => n,
            Err(why) => return Ok(Decision::UnknownModule(why)),
        };
        let offers = self.live_offers().await?;
        self.refresh_records(&offers).await;
        let (candidates, rejected) = rank(&needs, &offers, &self.bookings(), |p| {
            self.record_of(needs.chain_id, p)
        });
        if candidates.is_empty() {
            return Ok(no_candidate(job, &rejected));
        }
        self.propose(job, &needs, open, candidates, &rejected, None)
            .await
    }

    /// Proposes `job` to `candidates` in turn until one signs; publishes the signed deal. The
    /// first candidate is already booked at `first_booked_at` (unix ms) when given; each
    /// candidate's booking is given back when it does not sign.
    async fn propose(
        &self,
        job: &JobRequested,
        needs: &JobNeeds,
        open: OpenJob,
        candidates: Vec<Candidate>,
        rejected: &[(alloy_primitives::Address, Rejection)],
        mut first_booked_at: Option<u64>,
    ) -> Result<Decision, SolverError> {
        let key = job.key;
        let mut refusals = Vec::new();
        for candidate in candidates {
            let booked_at = first_booked_at.take();
            let at_ms = booked_at.unwrap_or_else(now_ms);
            let expiry =
                (at_ms / 1000 + self.settings.deal_validity.as_secs()).min(open.match_deadline);
            let terms = DealTerms {
                job_id: key.job_id,
                request_hash: job.request_hash,
                provider: candidate.provider,
                price: candidate.price,
                timeout_collateral: candidate.timeout_collateral,
                results_collateral: candidate.results_collateral,
                expiry: U256::from(expiry),
            };
            if booked_at.is_none() {
                self.bookings().book(&candidate, needs, at_ms);
            }
            let proposal = DealProposal {
                job: job.clone(),
                terms: terms.clone(),
            };
            let answer: Result<SignedDeal, BusError> = self
                .bus
                .request(
                    &candidate.deal_subject,
                    &proposal,
                    self.settings.proposal_timeout,
                )
                .await;
            match answer {
                Ok(signed) => match check_signed(&signed, &terms, key, job) {
                    Ok(()) => {
                        // One message id per signed deal (see `SignedDeal::msg_id`): the same
                        // deal published again is dropped, a later deal for the job (the first
                        // one lapsed, or the id was reused by another request) is not.
                        self.bus
                            .publish(Topic::Deals, key.chain_id, &signed.msg_id(), &signed)
                            .await?;
                        tracing::info!(job = %key, provider = %candidate.provider, price = %candidate.price, "deal signed and published");
                        return Ok(Decision::Dealt(Box::new(signed)));
                    }
                    Err(why) => {
                        self.bookings().release(candidate.provider, at_ms);
                        tracing::warn!(job = %key, provider = %candidate.provider, %why, "provider answered with an unusable deal");
                        refusals.push(format!(
                            "{} answered with an unusable deal: {why}",
                            candidate.provider
                        ));
                    }
                },
                Err(e) => {
                    self.bookings().release(candidate.provider, at_ms);
                    tracing::info!(job = %key, provider = %candidate.provider, reason = %e, "proposal not taken; trying the next provider");
                    refusals.push(format!("{}: {e}", candidate.provider));
                }
            }
        }
        let mut why = refusals;
        if !rejected.is_empty() {
            why.push(explain(rejected));
        }
        Ok(Decision::NoTaker(why.join("; ")))
    }

    /// Puts a job request in the book (it is matched by the next [`match_book`](Self::match_book)),
    /// unless it cannot be dealt: its module is unknown here, or it is no longer open.
    pub async fn book_job(&self, job: &JobRequested) -> Result<Booked, SolverError> {
        let key = job.key;
        let chain = self.chain(key)?;
        self.fetch_module(job).await;
        if let Err(why) = self.needs(job, 0) {
            return Ok(Booked::UnknownModule(why));
        }
        let Some(open) = chain
            .open_job(key, job.request_hash)
            .await
            .map_err(|reason| SolverError::Chain { key, reason })?
        else {
            return Ok(Booked::NotOpen);
        };
        let entry = Entry {
            job: job.clone(),
            match_deadline: open.match_deadline,
            timeout_collateral_bps: open.timeout_collateral_bps,
            booked_at_ms: now_ms(),
            claim: None,
            dealt_until: None,
        };
        let added = self.bus.book_add(&book::key(job), &entry).await?;
        self.added.notify_one();
        Ok(if added {
            Booked::Added
        } else {
            Booked::AlreadyThere
        })
    }

    /// One pass over the book, earliest match deadline first: each job some provider can take
    /// now is claimed and proposed; a dealt or closed job leaves the book. Capacity booked for
    /// one job is held against the offers for the next ones, so an offer is never booked twice.
    pub async fn match_book(&self) -> Result<Pass, SolverError> {
        let (mut entries, bad) = self.bus.book::<Entry>().await?;
        let mut pass = Pass::default();
        for (key, reason) in bad {
            tracing::error!(%key, %reason, "dropped a book entry that does not decode");
            self.bus.book_remove(&key).await?;
            pass.dropped += 1;
        }
        if entries.is_empty() {
            return Ok(pass);
        }
        book::order(&mut entries);
        let offers = self.live_offers().await?;
        self.refresh_records(&offers).await;
        let at = now();
        let prune = {
            let mut last = lock(&self.last_prune);
            let due = at.saturating_sub(*last) >= self.settings.prune_every.as_secs();
            if due {
                *last = at;
            }
            due
        };
        // Entries are decided in deadline order, and each one's first choice of provider is
        // booked before the next is ranked, so an offer is never booked twice; the slow part
        // (reading the job on-chain, waiting for the provider's signature) runs for up to
        // PROPOSALS_AT_ONCE jobs at once, so one slow read or provider holds no other job.
        // The entries to look up on-chain for the prune are only gathered on the way, and looked
        // up once every entry is decided, beside the proposals: inline, one read after another
        // ahead of the jobs behind them in deadline order, a book holding many dealt jobs held
        // every new job for as long as those reads took.
        let mut proposals = FuturesUnordered::new();
        let mut checks = Vec::new();
        for entry in entries {
            match self.match_entry(entry, &offers, prune, &mut pass).await? {
                Some(Next::Propose(proposal)) => {
                    proposals.push(proposal);
                    if proposals.len() >= PROPOSALS_AT_ONCE
                        && let Some(done) = proposals.next().await
                    {
                        pass.count(done?);
                    }
                }
                Some(Next::Check(check)) => checks.push(check),
                None => {}
            }
        }
        let proposed = async {
            let mut matched = Vec::new();
            while let Some(done) = proposals.next().await {
                matched.push(done?);
            }
            Ok::<_, SolverError>(matched)
        };
        let checked = futures_util::stream::iter(checks.into_iter().map(|c| self.check(c)))
            .buffer_unordered(PROPOSALS_AT_ONCE)
            .collect::<Vec<_>>();
        let (matched, checked) = tokio::join!(proposed, checked);
        for done in matched? {
            pass.count(done);
        }
        for done in checked {
            pass.count_check(done?);
        }
        self.bookings().expire(now_ms().saturating_sub(600_000));
        Ok(pass)
    }

    /// Looks up on-chain whether a job the prune is due for is still open; a closed one leaves
    /// the book.
    async fn check(&self, check: Check) -> Result<Checked, SolverError> {
        let Check {
            book_key,
            key,
            request_hash,
            kind,
        } = check;
        let closed = self
            .chain(key)?
            .open_job(key, request_hash)
            .await
            .is_ok_and(|o| o.is_none());
        if !closed {
            if let CheckKind::Waiting(why) = &kind {
                tracing::debug!(job = %key, %why, "job waits in the book");
            }
            return Ok(Checked::Kept(kind));
        }
        match kind {
            CheckKind::DealPending => {
                tracing::debug!(job = %key, "deal on-chain (or the job closed); dropped from the book")
            }
            CheckKind::Waiting(_) => {
                tracing::info!(job = %key, "job no longer open to a deal; dropped from the book")
            }
        }
        self.bus.book_remove(&book_key).await?;
        Ok(Checked::Dropped)
    }

    /// Decides what to do with one book entry now. Whatever needs no wait is done here and
    /// counted in `pass`; a job some provider can take is claimed, its best provider booked,
    /// and the rest (reading the job on-chain, proposing, publishing) is returned to be run.
    async fn match_entry<'a>(
        &'a self,
        entry: Versioned<Entry>,
        offers: &[Offer],
        prune: bool,
        pass: &mut Pass,
    ) -> Result<Option<Next<impl Future<Output = Result<Matched, SolverError>> + 'a>>, SolverError>
    {
        let Versioned {
            key: book_key,
            revision,
            value,
        } = entry;
        let job = &value.job;
        let at = now();
        if at >= value.match_deadline {
            tracing::warn!(job = %job.key, deadline = value.match_deadline, "no provider took the job before its match deadline; it expires on-chain");
            self.bus.book_remove(&book_key).await?;
            pass.dropped += 1;
            return Ok(None);
        }
        if !value.claimable(&self.id, at) {
            pass.claimed_elsewhere += 1;
            return Ok(None);
        }
        // Another solver sharing the book may serve chains or modules this one does not: their
        // jobs are left to it (and dropped by anyone once past their deadline).
        let (Ok(chain), Ok(needs)) = (
            self.chain(job.key),
            self.needs(job, value.timeout_collateral_bps),
        ) else {
            pass.waiting += 1;
            return Ok(None);
        };
        let check = |kind| {
            Next::Check(Check {
                book_key: book_key.clone(),
                key: job.key,
                request_hash: job.request_hash,
                kind,
            })
        };
        if value.deal_pending(at) {
            if prune {
                return Ok(Some(check(CheckKind::DealPending)));
            }
            pass.deal_pending += 1;
            return Ok(None);
        }
        let (candidates, rejected) = rank(&needs, offers, &self.bookings(), |p| {
            self.record_of(needs.chain_id, p)
        });
        if candidates.is_empty() {
            let why = no_candidate_reason(job, &rejected);
            if prune {
                return Ok(Some(check(CheckKind::Waiting(why))));
            }
            tracing::debug!(job = %job.key, %why, "job waits in the book");
            pass.waiting += 1;
            return Ok(None);
        }
        if value.dealt_until.is_some() {
            tracing::warn!(job = %job.key, "the deal signed for the job expired without landing; proposing it again");
        }
        // Claim the entry: a compare-and-set, so of several solvers only one proposes the job.
        let hold = self.settings.proposal_timeout
            * u32::try_from(candidates.len()).unwrap_or(u32::MAX).max(1)
            + Duration::from_secs(30);
        let claimed = Entry {
            claim: Some(Claim {
                solver: self.id.clone(),
                until: at + hold.as_secs(),
            }),
            ..value.clone()
        };
        let Some(revision) = self.bus.book_update(&book_key, &claimed, revision).await? else {
            pass.claimed_elsewhere += 1;
            return Ok(None);
        };
        // The best provider is booked now, before the next job is ranked.
        let first = candidates[0].clone();
        let booked_at = now_ms();
        self.bookings().book(&first, &needs, booked_at);
        let job = job.clone();
        Ok(Some(Next::Propose(async move {
            let decision = match chain.open_job(job.key, job.request_hash).await {
                Ok(Some(open)) => {
                    self.propose(&job, &needs, open, candidates, &rejected, Some(booked_at))
                        .await
                }
                // Not proposed: the booking made for it is given back.
                Ok(None) => {
                    self.bookings().release(first.provider, booked_at);
                    Ok(Decision::NotOpen)
                }
                Err(reason) => {
                    self.bookings().release(first.provider, booked_at);
                    Err(SolverError::Chain {
                        key: job.key,
                        reason,
                    })
                }
            };
            self.after_proposal(&job, &book_key, &value, revision, decision)
                .await
        })))
    }

    /// Records in the book what came of a proposal.
    async fn after_proposal(
        &self,
        job: &JobRequested,
        book_key: &str,
        value: &Entry,
        revision: u64,
        decision: Result<Decision, SolverError>,
    ) -> Result<Matched, SolverError> {
        Ok(match decision {
            Ok(Decision::Dealt(signed)) => {
                // Kept, unclaimed, until the deal could have landed; dropped once the chain
                // shows it (or proposed again if it never does).
                let held = Entry {
                    claim: None,
                    dealt_until: Some(signed.terms.expiry.saturating_to::<u64>()),
                    ..value.clone()
                };
                if self
                    .bus
                    .book_update(book_key, &held, revision)
                    .await?
                    .is_none()
                {
                    tracing::debug!(key = %book_key, "book entry changed while claimed; left as it is");
                }
                Matched::Dealt
            }
            Ok(Decision::NotOpen) => {
                tracing::info!(job = %job.key, "job no longer open to a deal; dropped from the book");
                self.bus.book_remove(book_key).await?;
                Matched::Dropped
            }
            Ok(Decision::NoTaker(why) | Decision::UnknownModule(why)) => {
                tracing::info!(job = %job.key, %why, "no provider took the job yet; it waits in the book");
                self.release(book_key, value, revision).await?;
                Matched::Waiting
            }
            Err(e) => {
                tracing::warn!(job = %job.key, error = %e, "matching failed; the job waits in the book");
                self.release(book_key, value, revision).await?;
                Matched::Waiting
            }
        })
    }

    /// Gives up this solver's claim on an entry (at the revision its claim wrote).
    async fn release(&self, key: &str, unclaimed: &Entry, revision: u64) -> Result<(), BusError> {
        let entry = Entry {
            claim: None,
            ..unclaimed.clone()
        };
        if self.bus.book_update(key, &entry, revision).await?.is_none() {
            tracing::debug!(%key, "book entry changed while claimed; left as it is");
        }
        Ok(())
    }

    /// Runs the solver until `stop` is cancelled: the jobs stream goes into the book, and the
    /// book is matched whenever capacity may have appeared.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), SolverError> {
        tokio::try_join!(self.consume(stop.clone()), self.keep_matching(stop))?;
        Ok(())
    }

    /// Moves job requests from the jobs stream into the book until `stop` is cancelled. A message
    /// is acknowledged once its job is in the book (or cannot be dealt); one that failed for a
    /// passing reason (NATS, RPC) comes back after a delay.
    pub async fn consume(&self, stop: CancellationToken) -> Result<(), SolverError> {
        let consumer = self
            .bus
            .consumer::<JobRequested>(Topic::Jobs, None, &self.settings.consumer)
            .await?;
        // A failed fetch (NATS away, or too slow to answer) is waited out, never fatal: the
        // solver goes on once NATS is back, and unacknowledged jobs are delivered again. While
        // the connection is down the fetch itself waits for it (the bus logs the outage once);
        // another failure is logged when it starts and when it ends, not at every retry.
        let mut backoff = FETCH_RETRY_FIRST;
        let mut failing = false;
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            let batch = tokio::select! {
                b = consumer.fetch(16, Duration::from_secs(1)) => b,
                _ = stop.cancelled() => return Ok(()),
            };
            let batch = match batch {
                Ok(batch) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("fetching job requests works again");
                    }
                    backoff = FETCH_RETRY_FIRST;
                    batch
                }
                Err(BusError::Disconnected { .. }) => {
                    tracing::debug!("NATS is down; waiting for it to fetch job requests");
                    continue;
                }
                Err(e) => {
                    if std::mem::replace(&mut failing, true) {
                        tracing::debug!(error = %e, retry_in = ?backoff, "fetching job requests failed again; retrying");
                    } else {
                        tracing::warn!(error = %e, retry_in = ?backoff, "fetching job requests failed; retrying until it works");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(FETCH_RETRY_MAX);
                    continue;
                }
            };
            for received in batch {
                let delivery = match received {
                    Received::Message(d) => d,
                    Received::Malformed(m) => {
                        tracing::error!(subject = %m.subject, sequence = m.sequence, reason = %m.reason, "dropped a malformed job message");
                        continue;
                    }
                };
                let job = delivery.body.clone();
                match self.book_job(&job).await {
                    Ok(booked) => {
                        match &booked {
                            Booked::Added => {
                                tracing::debug!(job = %job.key, "job in the book")
                            }
                            Booked::AlreadyThere => {
                                tracing::debug!(job = %job.key, "job was in the book already")
                            }
                            Booked::UnknownModule(why) => {
                                tracing::warn!(job = %job.key, %why, "job's module is unknown to this solver; it will expire on-chain")
                            }
                            Booked::NotOpen => {
                                tracing::info!(job = %job.key, "job no longer open to a deal")
                            }
                        }
                        if let Err(e) = delivery.ack().await {
                            // Delivered again after the ack wait; booking it twice is harmless.
                            tracing::warn!(job = %job.key, error = %e, "acknowledging a booked job failed");
                        }
                    }
                    Err(e) => {
                        tracing::error!(job = %job.key, error = %e, "booking the job failed; retrying in 2s");
                        if let Err(e) = delivery.retry_after(Duration::from_secs(2)).await {
                            tracing::warn!(job = %job.key, error = %e, "asking for the job again failed; it comes back after the ack wait");
                        }
                    }
                }
            }
        }
    }

    /// Matches the book until `stop` is cancelled: at once, then whenever an offer changes or a
    /// job enters the book, and every [`SolverSettings::recheck`]. While the connection to NATS is
    /// down nothing is matched (the book and the offers live there; the bus logs the outage), and
    /// a failure is logged when it starts and when it ends, not at every pass.
    pub async fn keep_matching(&self, stop: CancellationToken) -> Result<(), SolverError> {
        let mut changes = None;
        let mut failing = false;
        loop {
            let connected = self.bus.is_connected();
            if connected && changes.is_none() {
                changes = match self.bus.offer_changes().await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch offers; matching on the timer only");
                        None
                    }
                };
            }
            if !connected {
                tracing::debug!("NATS is down; the book waits for it");
            } else {
                match self.match_book().await {
                    Ok(pass) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("matching the book works again");
                        }
                        if pass != Pass::default() {
                            tracing::debug!(?pass, "matched the book")
                        }
                    }
                    Err(e) if std::mem::replace(&mut failing, true) => {
                        tracing::debug!(error = %e, "matching the book failed again; will retry")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "matching the book failed; retrying until it works")
                    }
                }
            }
            let lost = {
                let watch = async {
                    match changes.as_mut() {
                        Some(c) => c.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = self.added.notified() => false,
                    change = watch => change.is_none(),
                    _ = tokio::time::sleep(self.settings.recheck) => false,
                }
            };
            if lost {
                tracing::info!("the offers watch ended; opening another");
                changes = None;
            }
            // Changes that came meanwhile are covered by the next pass.
            if let Some(c) = changes.as_mut() {
                while let Some(Some(())) = c.next().now_or_never() {}
            }
        }
    }
}

/// The decision when no offer fits: the module is offered by no one, or each provider's reason.
fn no_candidate(
    job: &JobRequested,
    rejected: &[(alloy_primitives::Address, Rejection)],
) -> Decision {
    if !rejected.is_empty() && rejected.iter().all(|(_, r)| *r == Rejection::NoModule) {
        return Decision::UnknownModule(format!(
            "no provider offers {} {}",
            job.spec.module, job.spec.version
        ));
    }
    Decision::NoTaker(explain(rejected))
}

fn no_candidate_reason(
    job: &JobRequested,
    rejected: &[(alloy_primitives::Address, Rejection)],
) -> String {
    match no_candidate(job, rejected) {
        Decision::UnknownModule(why) | Decision::NoTaker(why) => why,
        _ => String::new(),
    }
}

/// A provider's answer must be exactly the proposed terms, signed by that provider for the job's
/// chain and contract: the solver publishes nothing a relayer would waste gas on.
fn check_signed(
    signed: &SignedDeal,
    terms: &DealTerms,
    key: JobKey,
    job: &JobRequested,
) -> Result<(), String> {
    if signed.key != key || signed.lilypad != job.lilypad {
        return Err(format!(
            "it names job {} on {}, not {key} on {}",
            signed.key, signed.lilypad, job.lilypad
        ));
    }
    if &signed.terms != terms {
        return Err("its terms differ from those proposed".into());
    }
    let deal = eip712::Deal::from(terms);
    let signer = eip712::recover_deal_signer(
        &eip712::domain(key.chain_id, job.lilypad),
        &deal,
        &signed.signature,
    )
    .map_err(|e| format!("its signature is malformed: {e}"))?;
    if signer != terms.provider {
        return Err(format!(
            "it is signed by {signer}, not by the provider {}",
            terms.provider
        ));
    }
    Ok(())
}

/// A [`JobChain`] over JSON-RPC: reads `getJob` from the chain's Lilypad contract.
#[derive(Debug, Clone)]
pub struct RpcJobChain {
    provider: alloy::providers::DynProvider,
    lilypad: alloy_primitives::Address,
}

/// A reader of every chain in `chains`, by chain id, checked before anything starts: all
/// problems (a missing deployment, a bad RPC URL) reported at once.
pub fn connect_chains<'c>(
    chains: impl IntoIterator<Item = &'c lilypad_config::ChainConfig>,
) -> Result<Vec<(u64, RpcJobChain)>, SolverError> {
    let mut ready = Vec::new();
    let mut problems = Vec::new();
    for chain in chains {
        match chain.contracts() {
            Ok(c) => match RpcJobChain::new(&chain.rpc, c.lilypad) {
                Ok(r) => ready.push((chain.chain_id, r)),
                Err(e) => problems.push(format!("chain {}: {e}", chain.name)),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(ready)
    } else {
        Err(SolverError::Config(problems))
    }
}

impl RpcJobChain {
    /// A reader of the Lilypad contract at `lilypad` through `rpc` (one http(s) URL or several
    /// of the same chain).
    pub fn new(
        rpc: &(impl lilypad_chain::Endpoints + ?Sized),
        lilypad: alloy_primitives::Address,
    ) -> Result<Self, String> {
        let provider = lilypad_chain::connect(rpc, &lilypad_chain::RpcOptions::default())
            .map_err(|e| e.to_string())?;
        Ok(Self { provider, lilypad })
    }
}

impl JobChain for RpcJobChain {
    async fn open_job(
        &self,
        key: JobKey,
        request_hash: alloy_primitives::B256,
    ) -> Result<Option<OpenJob>, String> {
        let lilypad = lilypad_bindings::Lilypad::new(self.lilypad, &self.provider);
        let job = lilypad
            .getJob(key.job_id)
            .call()
            .await
            .map_err(|e| e.to_string())?;
        let deadline: u64 = job.deadline.to::<u64>();
        // The chain's clock, not this machine's, decides whether the deadline has passed.
        let chain_now = lilypad_chain::chain_time(&self.provider)
            .await
            .map_err(|e| e.to_string())?;
        let open = job.state() == Some(lilypad_types::JobStatus::Requested)
            && job.requestHash == request_hash
            && deadline > chain_now;
        Ok(open.then_some(OpenJob {
            match_deadline: deadline,
            timeout_collateral_bps: job.timeoutCollateralBps.to::<u32>(),
        }))
    }

    async fn record(&self, provider: Address) -> Result<ProviderRecord, String> {
        let lilypad = lilypad_bindings::Lilypad::new(self.lilypad, &self.provider);
        let r = lilypad
            .reputationOf(provider)
            .call()
            .await
            .map_err(|e| e.to_string())?;
        Ok(ProviderRecord {
            results: u64::from(r.succeeded) + u64::from(r.failed) + u64::from(r.providerErrors),
            provider_errors: r.providerErrors.into(),
            timed_out: r.timedOut.into(),
            overturned: r.overturned.into(),
        })
    }
}

#[cfg(test)]
mod connect_tests {
    use super::*;

    fn chains(text: &str) -> lilypad_config::ChainsConfig {
        lilypad_config::ChainsConfig::parse(
            text,
            std::path::Path::new("/nonexistent/chains.toml"),
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn every_chain_whose_deployment_cannot_be_read_is_named_before_anything_starts() {
        let config = chains(
            r#"
[defaults]
signer = { env = "K" }

[[chains]]
name = "good"
chain_id = 1
rpc = "http://127.0.0.1:8545"
contracts = { lilypad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" }

[[chains]]
name = "gone-a"
chain_id = 2
rpc = "http://127.0.0.1:8546"
deployment = "a.json"

[[chains]]
name = "gone-b"
chain_id = 3
rpc = "http://127.0.0.1:8547"
deployment = "b.json"
"#,
        );
        let e = connect_chains(&config.chains).unwrap_err().to_string();
        assert!(e.starts_with("the solver cannot start:"), "{e}");
        assert!(e.contains("a.json") && e.contains("b.json"), "{e}");
        assert!(!e.contains("good"), "{e}");
        let ready = connect_chains(config.chains.iter().take(1)).unwrap();
        assert_eq!(ready.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1]);
    }
}
