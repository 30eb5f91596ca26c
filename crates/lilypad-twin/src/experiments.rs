//! The experiments a scenario names, each on fresh twin markets: a run of its providers (a
//! table per strategy), a sweep of a cheater over collateral and check rates (plot a), an
//! adaptive cheater (plot b), colluders against consortia (plot c).

use crate::TwinError;
use crate::figures::{CollusionPoint, Estimate, ProfitCurve, QTrace};
use crate::scenario::{
    AdaptiveConfig, CheckBy, CollusionConfig, ConsortiumConfig, MarketConfig, Scenario, Strategy,
    SweepConfig,
};
use crate::sim::{Checked, JobRecord, MediatorKind, World};

/// What a scenario showed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// What it is meant to show.
    pub description: String,
    /// The seed it ran with.
    pub seed: u64,
    /// The `[run]` table.
    pub run: Option<RunSummary>,
    /// The `[sweep]` curves, and the points the contract refused.
    pub sweep: Option<SweepResult>,
    /// The `[adaptive]` runs.
    pub adaptive: Vec<AdaptiveResult>,
    /// The `[collusion]` points.
    pub collusion: Vec<CollusionPoint>,
}

/// One strategy's line of the `[run]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyRow {
    /// The strategy.
    pub strategy: Strategy,
    /// Its q (the largest among its providers).
    pub q: f64,
    /// Its jobs.
    pub jobs: u64,
    /// Profit per job, in units of the price.
    pub profit: Estimate,
    /// Of its results, how many were wrong.
    pub wrong: u64,
    /// Of those, how many stood (neither audited nor challenged, or upheld).
    pub wrong_accepted: u64,
    /// How many of its results were overturned.
    pub overturned: u64,
}

/// One mediator kind's line.
#[derive(Debug, Clone, PartialEq)]
pub struct MediatorRow {
    /// The kind.
    pub kind: MediatorKind,
    /// Income per case it was drawn for, in units of the price.
    pub income: Estimate,
}

/// The `[run]` experiment's results.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Jobs run.
    pub jobs: u64,
    /// Per strategy.
    pub strategies: Vec<StrategyRow>,
    /// Share of all wrong results that stood.
    pub wrong_accepted: Estimate,
    /// What a job cost its client, in units of the price.
    pub client_cost: Estimate,
    /// What clients paid for wrong results that stood, per job, in units of the price.
    pub client_loss: Estimate,
    /// Per mediator kind.
    pub mediators: Vec<MediatorRow>,
    /// Results drawn for a protocol audit.
    pub audited: u64,
    /// Results challenged by their clients.
    pub challenged: u64,
    /// Gas per job (every transaction of the run, keepers' and mediators' included).
    pub gas_per_job: f64,
    /// Every job, in order (for the CSV).
    pub records: Vec<JobRecord>,
}

/// The sweep's curves and what the contract refused.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepResult {
    /// One curve per check rate.
    pub curves: Vec<ProfitCurve>,
    /// (check rate bps, collateral, the contract's error) for points it refused to open.
    pub refused: Vec<(u32, f64, String)>,
    /// The protocol fee (a fraction), which the theory line takes off the price.
    pub fee: f64,
}

/// One adaptive run.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveResult {
    /// Its collateral multiplier.
    pub collateral: f64,
    /// Its check rate, basis points.
    pub check_bps: u16,
    /// Where cheating stops beating honest work: `C/(pP) - (1 - fee)`.
    pub relative_bound: f64,
    /// Where cheating stops paying at all: `(1 - fee)(1/p - 1)`.
    pub absolute_bound: f64,
    /// q at the start (round 0) and after each round.
    pub trace: QTrace,
    /// The q it settled at: the mean over its last fifth of rounds.
    pub settled_q: f64,
    /// Its profit per job over those rounds, in units of the price.
    pub profit: Estimate,
    /// An honest provider's profit per job in the same market, in units of the price.
    pub honest_profit: f64,
}

/// Runs every experiment `scenario` names; `progress` is told each job done.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut()) -> Result<Report, TwinError> {
    let mut report = Report {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        seed: scenario.seed,
        ..Report::default()
    };
    if let Some(run) = &scenario.run {
        report.run = Some(run_table(scenario, run.jobs, progress)?);
    }
    if let Some(sweep) = &scenario.sweep {
        report.sweep = Some(run_sweep(scenario, sweep, progress)?);
    }
    if let Some(adaptive) = &scenario.adaptive {
        report.adaptive = run_adaptive(scenario, adaptive, progress)?;
    }
    if let Some(collusion) = &scenario.collusion {
        report.collusion = run_collusion(scenario, collusion, progress)?;
    }
    Ok(report)
}

/// The scenario's providers, one entry per agent.
fn providers(scenario: &Scenario) -> Vec<(Strategy, f64)> {
    scenario
        .providers
        .iter()
        .flat_map(|p| std::iter::repeat_n((p.strategy, p.q), p.count as usize))
        .collect()
}

fn run_table(
    scenario: &Scenario,
    jobs: u64,
    progress: &mut dyn FnMut(),
) -> Result<RunSummary, TwinError> {
    let agents = providers(scenario);
    let mut world = World::new(
        &scenario.market,
        &scenario.consortium,
        &agents,
        scenario.seed,
    )?;
    let gas_before = world.market.chain.gas_used;
    let mut records = Vec::with_capacity(jobs as usize);
    for i in 0..jobs {
        let provider = (i % agents.len() as u64) as usize;
        let cheat = world.draws_cheat(provider);
        records.push(world.job(provider, cheat)?);
        progress();
    }
    let price = scenario.market.price as f64;
    let gas_per_job = (world.market.chain.gas_used - gas_before) as f64 / jobs.max(1) as f64;
    let mut strategies = Vec::new();
    for strategy in [Strategy::Honest, Strategy::Cheater, Strategy::Colluding] {
        let mine: Vec<&JobRecord> = records.iter().filter(|r| r.strategy == strategy).collect();
        if mine.is_empty() {
            continue;
        }
        let profits: Vec<f64> = mine.iter().map(|r| r.provider_profit / price).collect();
        strategies.push(StrategyRow {
            strategy,
            q: world
                .providers
                .iter()
                .filter(|p| p.strategy == strategy)
                .map(|p| p.q)
                .fold(0.0, f64::max),
            jobs: mine.len() as u64,
            profit: Estimate::of(&profits),
            wrong: mine.iter().filter(|r| r.cheated).count() as u64,
            wrong_accepted: mine.iter().filter(|r| r.wrong_accepted()).count() as u64,
            overturned: mine.iter().filter(|r| r.overturned).count() as u64,
        });
    }
    let accepted: Vec<f64> = records
        .iter()
        .filter(|r| r.cheated)
        .map(|r| f64::from(u8::from(r.wrong_accepted())))
        .collect();
    let client_cost: Vec<f64> = records.iter().map(|r| r.client_cost / price).collect();
    let client_loss: Vec<f64> = records
        .iter()
        .map(|r| {
            if r.wrong_accepted() {
                r.client_cost / price
            } else {
                0.0
            }
        })
        .collect();
    let mut mediators = Vec::new();
    for kind in [
        MediatorKind::Honest,
        MediatorKind::Lazy,
        MediatorKind::Guessing,
        MediatorKind::Colluding,
    ] {
        let income: Vec<f64> = records
            .iter()
            .flat_map(|r| r.mediators.iter())
            .filter(|(k, _)| *k == kind)
            .map(|(_, x)| x / price)
            .collect();
        if !income.is_empty() {
            mediators.push(MediatorRow {
                kind,
                income: Estimate::of(&income),
            });
        }
    }
    Ok(RunSummary {
        jobs,
        strategies,
        wrong_accepted: Estimate::of(&accepted),
        client_cost: Estimate::of(&client_cost),
        client_loss: Estimate::of(&client_loss),
        mediators,
        audited: records
            .iter()
            .filter(|r| r.checked == Checked::Audit)
            .count() as u64,
        challenged: records
            .iter()
            .filter(|r| r.checked == Checked::Challenge)
            .count() as u64,
        gas_per_job,
        records,
    })
}

/// `market` checked at `check_bps` by `by`, with `collateral`.
fn checked_market(
    market: &MarketConfig,
    collateral: f64,
    check_bps: u16,
    by: CheckBy,
) -> MarketConfig {
    let mut m = market.clone();
    m.collateral = collateral;
    (m.audit_bps, m.challenge_bps) = match by {
        CheckBy::Audit => (check_bps, 0),
        CheckBy::Challenge => (0, check_bps),
    };
    m
}

/// A cheater's expected profit per job in price units: `(1 - p)(1 - fee) - p m`.
pub fn theory(p: f64, fee: f64, m: f64) -> f64 {
    (1.0 - p) * (1.0 - fee) - p * m
}

/// A q = 1 cheater's profit per job (price units) over `jobs` jobs; the contract's reason when
/// it refuses the request.
fn cheater_profit(
    scenario: &Scenario,
    market: &MarketConfig,
    jobs: u64,
    progress: &mut dyn FnMut(),
) -> Result<Result<Estimate, String>, TwinError> {
    let mut world = World::new(
        market,
        &scenario.consortium,
        &[(Strategy::Cheater, 1.0)],
        scenario.seed,
    )?;
    let mut profits = Vec::with_capacity(jobs as usize);
    for _ in 0..jobs {
        match world.job(0, true) {
            Ok(r) => profits.push(r.provider_profit / market.price as f64),
            Err(TwinError::Reverted { call, reason }) if call.starts_with("runJob") => {
                return Ok(Err(reason));
            }
            Err(e) => return Err(e),
        }
        progress();
    }
    Ok(Ok(Estimate::of(&profits)))
}

fn run_sweep(
    scenario: &Scenario,
    sweep: &SweepConfig,
    progress: &mut dyn FnMut(),
) -> Result<SweepResult, TwinError> {
    let fee = f64::from(scenario.market.protocol_fee_bps) / 10_000.0;
    let mut out = SweepResult {
        fee,
        ..SweepResult::default()
    };
    let (lo, hi) = sweep
        .collateral
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
    for &check in &sweep.check_bps {
        let p = f64::from(check) / 10_000.0;
        let mut curve = ProfitCurve {
            check_bps: u32::from(check),
            ..ProfitCurve::default()
        };
        for &m in &sweep.collateral {
            let market = checked_market(&scenario.market, m, check, sweep.check_by);
            match cheater_profit(scenario, &market, sweep.jobs, progress)? {
                Ok(profit) => curve.measured.push((m, profit)),
                Err(reason) => {
                    for _ in 0..sweep.jobs {
                        progress();
                    }
                    out.refused.push((u32::from(check), m, reason));
                }
            }
        }
        curve.theory = (0..=50)
            .map(|i| {
                let m = lo + (hi - lo) * f64::from(i) / 50.0;
                (m, theory(p, fee, m))
            })
            .collect();
        out.curves.push(curve);
    }
    Ok(out)
}

/// One adaptive cheater: each round it plays `jobs_per_round` jobs, cheating with chance q (or,
/// with chance `explore`, tossing a coin instead, so it keeps seeing both actions); after the
/// round it moves q by `learning_rate` times the difference between its mean profit on all the
/// jobs it cheated on so far and on all it worked on so far (price units), clamped to 0..=1. A
/// stochastic gradient step: that difference estimates the derivative of its profit per job in
/// q, and pooling every round's jobs keeps a rare large slash from being forgotten.
fn run_adaptive(
    scenario: &Scenario,
    a: &AdaptiveConfig,
    progress: &mut dyn FnMut(),
) -> Result<Vec<AdaptiveResult>, TwinError> {
    let fee = f64::from(scenario.market.protocol_fee_bps) / 10_000.0;
    let p = f64::from(a.check_bps) / 10_000.0;
    let price = scenario.market.price as f64;
    let cost = scenario.market.compute_cost as f64 / price;
    let mut out = Vec::new();
    for &m in &a.collateral {
        let market = checked_market(&scenario.market, m, a.check_bps, a.check_by);
        let mut world = World::new(
            &market,
            &scenario.consortium,
            &[(Strategy::Cheater, a.q0)],
            scenario.seed,
        )?;
        let mut rng = fastrand::Rng::with_seed(scenario.seed ^ 0x0ada_97e0);
        let mut q = a.q0;
        let mut trace = Vec::with_capacity(a.rounds as usize + 1);
        trace.push(q); // round 0: where it starts
        let mut tail = Vec::new();
        let tail_from = a.rounds - (a.rounds / 5).max(1);
        // (sum, count) of its profits on cheated and on worked jobs so far
        let (mut cheated, mut worked) = ((0.0, 0u32), (0.0, 0u32));
        for round in 0..a.rounds {
            for _ in 0..a.jobs_per_round {
                let cheat = if rng.f64() < a.explore {
                    rng.bool()
                } else {
                    rng.f64() < q
                };
                let profit = world.job(0, cheat)?.provider_profit / price;
                let action = if cheat { &mut cheated } else { &mut worked };
                action.0 += profit;
                action.1 += 1;
                if round >= tail_from {
                    tail.push(profit);
                }
                progress();
            }
            if cheated.1 != 0 && worked.1 != 0 {
                let gain = cheated.0 / f64::from(cheated.1) - worked.0 / f64::from(worked.1);
                q = (q + a.learning_rate * gain).clamp(0.0, 1.0);
            }
            trace.push(q);
        }
        let settled = &trace[tail_from as usize + 1..];
        let settled_q = settled.iter().sum::<f64>() / settled.len().max(1) as f64;
        out.push(AdaptiveResult {
            collateral: m,
            check_bps: a.check_bps,
            relative_bound: cost / p - (1.0 - fee),
            absolute_bound: (1.0 - fee) * (1.0 / p - 1.0),
            trace: QTrace {
                label: format!(
                    "collateral {m}x, checked {}%",
                    f64::from(a.check_bps) / 100.0
                ),
                q: trace,
            },
            settled_q,
            profit: Estimate::of(&tail),
            honest_profit: worked.0 / f64::from(worked.1.max(1)),
        });
    }
    Ok(out)
}

/// P(X >= at_least) for X hypergeometric: `draws` from `pool` holding `marked`.
pub fn hypergeometric_at_least(pool: u32, marked: u32, draws: u32, at_least: u32) -> f64 {
    fn choose(n: u32, k: u32) -> f64 {
        if k > n {
            return 0.0;
        }
        (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
    }
    let total = choose(pool, draws);
    // an empty sum is -0.0 in Rust; + 0.0 makes it 0
    (at_least..=draws.min(marked))
        .map(|x| choose(marked, x) * choose(pool - marked, draws - x) / total)
        .sum::<f64>()
        + 0.0
}

fn run_collusion(
    scenario: &Scenario,
    c: &CollusionConfig,
    progress: &mut dyn FnMut(),
) -> Result<Vec<CollusionPoint>, TwinError> {
    let mut out = Vec::new();
    let market = checked_market(
        &scenario.market,
        scenario.market.collateral,
        10_000,
        CheckBy::Challenge,
    );
    for &(n, k) in &c.consortia {
        for &colluders in &c.colluders {
            let consortium = ConsortiumConfig {
                per_case: n,
                threshold: k,
                honest: c.pool - colluders,
                lazy: 0,
                guessing: 0,
                colluding: colluders,
                ..scenario.consortium.clone()
            };
            let mut world = World::new(
                &market,
                &consortium,
                &[(Strategy::Colluding, 1.0)],
                scenario.seed,
            )?;
            let mut accepted = Vec::with_capacity(c.jobs as usize);
            let mut profit = Vec::with_capacity(c.jobs as usize);
            for _ in 0..c.jobs {
                let r = world.job(0, true)?;
                accepted.push(f64::from(u8::from(r.wrong_accepted())));
                profit.push(r.provider_profit / market.price as f64);
                progress();
            }
            // a wrong result stands unless at least k honest mediators are drawn
            let theory = hypergeometric_at_least(
                c.pool,
                colluders,
                u32::from(n),
                u32::from(n) - u32::from(k) + 1,
            );
            out.push(CollusionPoint {
                per_case: n,
                threshold: k,
                pool: c.pool,
                colluders,
                accepted: Estimate::of(&accepted),
                profit: Estimate::of(&profit),
                theory,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypergeometric_tails_match_counting() {
        // 2 marked of 3, all 3 drawn: both always drawn
        assert_eq!(hypergeometric_at_least(3, 2, 3, 2), 1.0);
        // 1 marked of 4, 2 drawn: drawn half the time
        assert!((hypergeometric_at_least(4, 1, 2, 1) - 0.5).abs() < 1e-12);
        // 3 of 7 marked, 3 drawn, at least 2: (C(3,2)C(4,1) + C(3,3)) / C(7,3) = 13/35
        assert!((hypergeometric_at_least(7, 3, 3, 2) - 13.0 / 35.0).abs() < 1e-12);
    }

    #[test]
    fn the_theory_line_crosses_zero_at_the_bound() {
        let (p, fee) = (0.1, 0.01);
        let bound = (1.0 - fee) * (1.0 / p - 1.0);
        assert!(theory(p, fee, bound).abs() < 1e-12);
        assert!(theory(p, fee, bound - 1.0) > 0.0 && theory(p, fee, bound + 1.0) < 0.0);
    }
}
