//! Agents on a twin market, one job at a time: a client requests it, a provider agrees and
//! submits (its real result, or with its strategy's chance a plausible wrong one), the protocol
//! audits it and the client may challenge it, the consortium's mediators vote, and the contracts
//! pay, refund and slash. Each agent's profit on a job is the change of everything it holds in
//! the market ([`Market::wealth`]) less what it spent off chain (compute, gas, bribes).

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use lilypad_bindings::{Lilypad, eip712};

use crate::TwinError;
use crate::evm::Chain;
use crate::market::{Job, Market, OVERTURNED, cowsay_request};
use crate::scenario::{ConsortiumConfig, MarketConfig, Strategy};

/// The CID every result names: a cheat changes the output, not where it says it is.
const CID: &str = "bafy-twin";
/// The module's real output.
const RIGHT: &[u8] = b"moo";
/// The plausible wrong output a cheater submits without running the job.
const WRONG: &[u8] = b"moo!";
/// Who sends the protocol's audit transactions (a keeper; its gas is nobody's cost here).
const KEEPER: Address = Address::new([0x0e; 20]);

/// How a mediator votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediatorKind {
    /// Re-runs the job and votes its real result.
    Honest,
    /// Copies the provider's result without re-running.
    Lazy,
    /// Votes a made-up result without re-running.
    Guessing,
    /// Votes a colluding provider's result whatever it is; re-runs for the others.
    Colluding,
}

impl MediatorKind {
    /// Its name in tables and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Self::Honest => "honest",
            Self::Lazy => "lazy",
            Self::Guessing => "guessing",
            Self::Colluding => "colluding",
        }
    }
}

/// A provider agent.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its key (it signs deals and results).
    pub signer: PrivateKeySigner,
    /// How it behaves.
    pub strategy: Strategy,
    /// Its chance of cheating on a job (honest: 0).
    pub q: f64,
}

/// How a result was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Not at all: it settled after its challenge window.
    No,
    /// Drawn for a protocol audit.
    Audit,
    /// Challenged by its client.
    Challenge,
}

/// What one job did to everyone.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The job.
    pub job: Job,
    /// Index of its provider.
    pub provider: usize,
    /// That provider's strategy.
    pub strategy: Strategy,
    /// Whether the provider skipped the work and submitted a wrong result.
    pub cheated: bool,
    /// How its result was checked.
    pub checked: Checked,
    /// Whether mediation overturned it.
    pub overturned: bool,
    /// The provider's profit: its wealth's change less compute, gas and bribes paid.
    pub provider_profit: f64,
    /// What the job cost its client: its wealth's change (negated) plus its gas.
    pub client_cost: f64,
    /// Each drawn mediator's kind and income: its wealth's change plus bribes, less compute and
    /// gas.
    pub mediators: Vec<(MediatorKind, f64)>,
}

impl JobRecord {
    /// A wrong result that stood.
    pub fn wrong_accepted(&self) -> bool {
        self.cheated && !self.overturned
    }
}

/// A twin market with its client, providers and mediators, ready to run jobs.
#[derive(Debug)]
pub struct World {
    /// The contracts.
    pub market: Market,
    /// The providers.
    pub providers: Vec<Provider>,
    /// The mediators and how each votes.
    pub mediators: Vec<(Address, MediatorKind)>,
    /// The client requesting every job.
    pub client: Address,
    cfg: MarketConfig,
    bribe_bps: u16,
    stake: U256,
    request: Lilypad::JobRequest,
    rng: fastrand::Rng,
}

/// A deterministic account from the seed: the same seed gives the same keys (and draws).
fn key(seed: u64, role: &str, index: usize) -> Result<PrivateKeySigner, TwinError> {
    let secret = keccak256((U256::from(seed), role.to_owned(), U256::from(index)).abi_encode());
    PrivateKeySigner::from_bytes(&secret).map_err(|e| TwinError::Sign(e.to_string()))
}

/// How `mediator` votes (a drawn mediator is always one of `mediators`; honest otherwise).
fn kind_of(mediators: &[(Address, MediatorKind)], mediator: Address) -> MediatorKind {
    mediators
        .iter()
        .find(|(a, _)| *a == mediator)
        .map_or(MediatorKind::Honest, |(_, k)| *k)
}

/// Basis points of `amount`.
fn bps(amount: U256, bps: u64) -> U256 {
    amount * U256::from(bps) / U256::from(10_000)
}

/// A U256 difference as f64 (token amounts here stay far below 2^53 per job).
fn diff(after: U256, before: U256) -> f64 {
    if after >= before {
        f64::from(after - before)
    } else {
        -f64::from(before - after)
    }
}

impl World {
    /// Deploys the market with `cfg`'s parameters (and the consortium when it has mediators),
    /// registers `providers` with collateral and funds the client.
    pub fn new(
        cfg: &MarketConfig,
        consortium: &ConsortiumConfig,
        providers: &[(Strategy, f64)],
        seed: u64,
    ) -> Result<Self, TwinError> {
        Self::on(Chain::new(), cfg, consortium, providers, seed)
    }

    /// [`World::new`] on `chain` (one already [`Chain::recording`], to replay the whole run).
    pub fn on(
        chain: Chain,
        cfg: &MarketConfig,
        consortium: &ConsortiumConfig,
        providers: &[(Strategy, f64)],
        seed: u64,
    ) -> Result<Self, TwinError> {
        let mut market = Market::deploy_on(chain)?;
        let stake = U256::from(consortium.stake);
        let mut mediators = Vec::new();
        let kinds = [
            (MediatorKind::Honest, consortium.honest),
            (MediatorKind::Lazy, consortium.lazy),
            (MediatorKind::Guessing, consortium.guessing),
            (MediatorKind::Colluding, consortium.colluding),
        ];
        if kinds.iter().map(|(_, n)| n).sum::<u32>() > 0 {
            market.add_mediation(
                consortium.per_case,
                consortium.threshold,
                consortium.stake.into(),
            )?;
            for (kind, n) in kinds {
                for _ in 0..n {
                    let address = key(seed, "mediator", mediators.len())?.address();
                    market.add_mediator(address, stake * U256::from(100))?;
                    mediators.push((address, kind));
                }
            }
        }
        let mut params = market.params()?;
        params.protocolFeeBps = cfg.protocol_fee_bps;
        params.auditBps = cfg.audit_bps;
        params.mediationFee = alloy::primitives::Uint::from(cfg.mediation_fee);
        params.taxBps = cfg.tax_bps;
        params.mediatorShareBps = cfg.mediator_share_bps;
        params.jackpotBps = cfg.jackpot_bps;
        params.minResultsCollateralBps = 0;
        params.maxResultsCollateralBps = params.maxResultsCollateralBps.max(1_000_000);
        market.set_params(params)?;
        let mut request = cowsay_request(U256::from(cfg.price), cfg.challenge_window);
        request.resultsCollateralMultiplierBps = (cfg.collateral * 10_000.0).round() as u32;
        let client = key(seed, "client", 0)?.address();
        let mut world = Self {
            market,
            providers: Vec::new(),
            mediators,
            client,
            cfg: cfg.clone(),
            bribe_bps: consortium.bribe_bps,
            stake,
            request,
            rng: fastrand::Rng::with_seed(seed),
        };
        for (i, (strategy, q)) in providers.iter().enumerate() {
            let signer = key(seed, "provider", i)?;
            let collateral = world.collateral_per_job() * U256::from(20);
            world.market.add_provider(signer.address(), collateral)?;
            world.providers.push(Provider {
                signer,
                strategy: *strategy,
                q: if *strategy == Strategy::Honest {
                    0.0
                } else {
                    *q
                },
            });
        }
        world
            .market
            .fund(client, world.client_per_job() * U256::from(20))?;
        Ok(world)
    }

    /// Collateral one deal locks at most (results plus timeout collateral, with room to spare).
    fn collateral_per_job(&self) -> U256 {
        let price = U256::from(self.cfg.price);
        bps(
            price,
            u64::from(self.request.resultsCollateralMultiplierBps) + 20_000,
        )
    }

    /// Tokens one job takes from its client at most (price, tax, premium, a challenge's fee).
    fn client_per_job(&self) -> U256 {
        U256::from(2 * self.cfg.price + self.cfg.mediation_fee)
    }

    /// Whether the provider cheats on its next job, by its own q.
    pub fn draws_cheat(&mut self, provider: usize) -> bool {
        let q = self.providers[provider].q;
        q > 0.0 && self.rng.f64() < q
    }

    /// A chance in basis points, drawn from the world's seeded generator.
    fn chance(&mut self, bps: u16) -> bool {
        bps != 0 && self.rng.u32(0..10_000) < u32::from(bps)
    }

    /// Runs one job with `provider`, cheating or not, to its end; what it did to everyone.
    pub fn job(&mut self, provider: usize, cheat: bool) -> Result<JobRecord, TwinError> {
        self.top_up(provider)?;
        let gas_price = self.cfg.gas_price;
        let signer = self.providers[provider].signer.clone();
        let strategy = self.providers[provider].strategy;
        let (client, p_addr) = (self.client, signer.address());
        let p_before = self.market.wealth(p_addr)?;
        let c_before = self.market.wealth(client)?;
        let mut client_gas = 0u64;
        let mut provider_gas = 0u64;

        let job = self.market.run_job(client, self.request.clone())?;
        client_gas += self.market.chain.last_gas;
        let price = U256::from(self.cfg.price);
        self.market.agree(job, &signer, price)?;
        provider_gas += self.market.chain.last_gas;
        let output = if cheat { WRONG } else { RIGHT };
        self.market.submit(job, &signer, CID, output)?;
        provider_gas += self.market.chain.last_gas;

        let mut checked = Checked::No;
        if self.cfg.audit_bps != 0 && self.market.audit(KEEPER, job)? {
            checked = Checked::Audit;
        }
        if checked == Checked::No && self.chance(self.cfg.challenge_bps) {
            self.market.challenge(client, job)?;
            client_gas += self.market.chain.last_gas;
            checked = Checked::Challenge;
        }
        let (drawn, mediators_before) = if checked == Checked::No {
            self.market
                .chain
                .mine(u64::from(self.cfg.challenge_window) + 1);
            self.market.settle(client, job)?;
            client_gas += self.market.chain.last_gas;
            (Vec::new(), Vec::new())
        } else {
            // nobody's wealth moves between opening a case and its draw: measure from here
            let before = self.mediator_wealth()?;
            (self.mediate(job, strategy, output)?, before)
        };
        let overturned = self.market.job(job.id)?.status == OVERTURNED;
        let colluders: Vec<Address> = drawn
            .iter()
            .filter(|(m, _)| kind_of(&self.mediators, *m) == MediatorKind::Colluding)
            .map(|(m, _)| *m)
            .collect();
        let mut bribe = 0.0;
        if strategy == Strategy::Colluding && cheat && !overturned && !colluders.is_empty() {
            let avoided = f64::from(bps(
                price,
                self.request.resultsCollateralMultiplierBps.into(),
            ));
            bribe = avoided * f64::from(self.bribe_bps) / 10_000.0;
        }
        let mut mediators = Vec::with_capacity(drawn.len());
        for &(m, gas) in &drawn {
            let before = mediators_before
                .iter()
                .find(|(a, _)| *a == m)
                .map_or(U256::ZERO, |(_, w)| *w);
            let after = self.market.wealth(m)?;
            let kind = kind_of(&self.mediators, m);
            let reran = match kind {
                MediatorKind::Honest => true,
                MediatorKind::Lazy | MediatorKind::Guessing => false,
                MediatorKind::Colluding => strategy != Strategy::Colluding,
            };
            let mut income = diff(after, before) - gas as f64 * gas_price;
            if reran {
                income -= self.cfg.compute_cost as f64;
            }
            if colluders.contains(&m) {
                income += bribe / colluders.len() as f64;
            }
            mediators.push((kind, income));
        }
        // the case locked or slashed only the drawn mediators' stakes: top them up (outside
        // every account above), so the next case can draw them again
        for &(m, _) in &drawn {
            if self.market.free_stake(m)? < self.stake * U256::from(2) {
                self.market.add_stake(m, self.stake * U256::from(100))?;
            }
        }
        let compute = if cheat {
            0.0
        } else {
            self.cfg.compute_cost as f64
        };
        let provider_profit = diff(self.market.wealth(p_addr)?, p_before)
            - compute
            - provider_gas as f64 * gas_price
            - bribe;
        let client_cost =
            -diff(self.market.wealth(client)?, c_before) + client_gas as f64 * gas_price;
        Ok(JobRecord {
            job,
            provider,
            strategy,
            cheated: cheat,
            checked,
            overturned,
            provider_profit,
            client_cost,
            mediators,
        })
    }

    fn mediator_wealth(&mut self) -> Result<Vec<(Address, U256)>, TwinError> {
        let addresses: Vec<Address> = self.mediators.iter().map(|(a, _)| *a).collect();
        addresses
            .into_iter()
            .map(|a| Ok((a, self.market.wealth(a)?)))
            .collect()
    }

    /// The case of `job`, voted by each drawn mediator as its kind does.
    fn mediate(
        &mut self,
        job: Job,
        strategy: Strategy,
        output: &[u8],
    ) -> Result<Vec<(Address, u64)>, TwinError> {
        let truth = eip712::result_commitment(1, 0, CID.as_bytes(), RIGHT);
        let claimed = eip712::result_commitment(1, 0, CID.as_bytes(), output);
        let Self {
            market, mediators, ..
        } = self;
        market.mediate(job, |m| {
            let vote: B256 = match kind_of(mediators, m) {
                MediatorKind::Honest => truth,
                MediatorKind::Lazy => claimed,
                MediatorKind::Guessing => keccak256((job.id, m).abi_encode()),
                MediatorKind::Colluding if strategy == Strategy::Colluding => claimed,
                MediatorKind::Colluding => truth,
            };
            vote
        })
    }

    /// Tops up (outside any job's accounts) the provider's collateral and the client's tokens, so
    /// a long run never stalls on an agent that ran dry (mediators are topped up after a case).
    fn top_up(&mut self, provider: usize) -> Result<(), TwinError> {
        let p = self.providers[provider].signer.address();
        let per_job = self.collateral_per_job();
        if self.market.free_collateral(p)? < per_job * U256::from(2) {
            self.market.add_collateral(p, per_job * U256::from(20))?;
        }
        let need = self.client_per_job();
        if self.market.tokens(self.client)? < need * U256::from(2) {
            self.market.fund(self.client, need * U256::from(20))?;
        }
        Ok(())
    }
}
