//! A scenario: the market's parameters, its agents and the experiments to run on it, as a TOML
//! file (`twin/*.toml`, run by `lilypad twin <scenario.toml>`). Every field but `name` has a
//! default; unknown fields are refused, so a typo is an error and not a silent default.

use serde::Deserialize;

use crate::TwinError;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name: the output folder and the tables' title.
    pub name: String,
    /// What it is meant to show (printed above its tables).
    #[serde(default)]
    pub description: String,
    /// The seed of every random choice (which results are cheated, challenged; the agents'
    /// keys): the same seed gives the same tables.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The market's parameters.
    #[serde(default)]
    pub market: MarketConfig,
    /// The consortium that mediates challenges and audits.
    #[serde(default)]
    pub consortium: ConsortiumConfig,
    /// The providers of the `[run]` experiment.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Jobs through the market with `providers`: a table per strategy.
    pub run: Option<RunConfig>,
    /// A cheater (q = 1) at each collateral multiplier and check rate: plot (a).
    pub sweep: Option<SweepConfig>,
    /// A cheater that adapts q to its own profit: plot (b).
    pub adaptive: Option<AdaptiveConfig>,
    /// A colluding provider and mediators against consortia: plot (c).
    pub collusion: Option<CollusionConfig>,
}

fn default_seed() -> u64 {
    1
}

/// Prices, costs and the protocol's parameters. Amounts are in token base units.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// What a job pays its provider (the clients' `maxPrice` too).
    pub price: u64,
    /// What running a job costs whoever runs it (a provider, or a mediator re-running it).
    pub compute_cost: u64,
    /// Tokens per unit of gas each agent pays for its own transactions (accounted, not sent).
    pub gas_price: f64,
    /// Results collateral, as a multiple of the price.
    pub collateral: f64,
    /// Protocol fee taken from the price, basis points.
    pub protocol_fee_bps: u16,
    /// Chance the protocol audits a result, basis points (needs `collateral >= 1/p - 1`).
    pub audit_bps: u16,
    /// Chance a client challenges a result, basis points.
    pub challenge_bps: u16,
    /// Fee a challenge pays the mediators.
    pub mediation_fee: u64,
    /// Audit tax on each job's price, basis points.
    pub tax_bps: u16,
    /// Share of a slash that goes to the mediators, basis points.
    pub mediator_share_bps: u16,
    /// Share of a slash that goes to the jackpot, basis points.
    pub jackpot_bps: u16,
    /// Seconds a client has to challenge a result.
    pub challenge_window: u32,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            price: 1_000_000,
            compute_cost: 500_000,
            gas_price: 0.0,
            collateral: 2.0,
            protocol_fee_bps: 100,
            audit_bps: 0,
            challenge_bps: 0,
            mediation_fee: 1_600_000,
            tax_bps: 0,
            mediator_share_bps: 1_000,
            jackpot_bps: 0,
            challenge_window: 600,
        }
    }
}

/// The consortium: N drawn per case, k agreeing reveals decide, and who its mediators are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsortiumConfig {
    /// N: mediators drawn per case.
    pub per_case: u8,
    /// k: agreeing reveals that decide (2k > N).
    pub threshold: u8,
    /// Stake locked from each drawn mediator.
    pub stake: u64,
    /// Mediators who re-run the job and vote its real result.
    pub honest: u32,
    /// Mediators who copy the provider's result instead of re-running it.
    pub lazy: u32,
    /// Mediators who vote a made-up result instead of re-running.
    pub guessing: u32,
    /// Mediators who vote a colluding provider's result whatever it is (and re-run for others).
    pub colluding: u32,
    /// Share of the slash a colluding provider avoids that it pays its colluders, basis points.
    pub bribe_bps: u16,
}

impl Default for ConsortiumConfig {
    fn default() -> Self {
        Self {
            per_case: 3,
            threshold: 2,
            stake: 100_000,
            honest: 3,
            lazy: 0,
            guessing: 0,
            colluding: 0,
            bribe_bps: 5_000,
        }
    }
}

/// How a provider behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Runs every job.
    Honest,
    /// Skips the work with chance `q` and submits a plausible wrong result.
    Cheater,
    /// Cheats like a cheater, and pays the consortium's colluding mediators to uphold it.
    Colluding,
}

impl Strategy {
    /// Its name in tables and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Self::Honest => "honest",
            Self::Cheater => "cheater",
            Self::Colluding => "colluding",
        }
    }
}

/// Providers of one strategy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// How they behave.
    pub strategy: Strategy,
    /// Chance of cheating on a job (cheater and colluding; default 1).
    #[serde(default = "one")]
    pub q: f64,
    /// How many such providers.
    #[serde(default = "one_u32")]
    pub count: u32,
}

fn one() -> f64 {
    1.0
}

fn one_u32() -> u32 {
    1
}

/// Jobs through the market, spread over the providers in turn.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// How many.
    pub jobs: u64,
}

/// How results are checked in an experiment that sets the check rate itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckBy {
    /// Clients challenge with the chance (any collateral).
    #[default]
    Challenge,
    /// The protocol audits with the chance (the contract refuses collateral below its bound).
    Audit,
}

/// A q = 1 cheater at every (check rate, collateral) pair.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Jobs per point.
    pub jobs: u64,
    /// Collateral multipliers.
    pub collateral: Vec<f64>,
    /// Check rates, basis points.
    pub check_bps: Vec<u16>,
    /// Whether clients' challenges or the protocol's audits check.
    #[serde(default)]
    pub check_by: CheckBy,
}

/// An adaptive cheater, once per collateral multiplier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// Rounds of learning.
    pub rounds: u32,
    /// Jobs per round.
    pub jobs_per_round: u32,
    /// Collateral multipliers, one run each.
    pub collateral: Vec<f64>,
    /// Check rate, basis points.
    pub check_bps: u16,
    /// Whether clients' challenges or the protocol's audits check.
    #[serde(default)]
    pub check_by: CheckBy,
    /// q at the start.
    #[serde(default = "half")]
    pub q0: f64,
    /// Step of the update, per unit of (profit difference / price).
    #[serde(default = "half")]
    pub learning_rate: f64,
    /// Chance of taking the other action than q says, to keep learning about it.
    #[serde(default = "explore")]
    pub explore: f64,
}

fn half() -> f64 {
    0.5
}

fn explore() -> f64 {
    0.1
}

/// A colluding provider (q = 1, every result challenged) against each consortium, with each
/// number of colluders in its pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollusionConfig {
    /// Jobs per point.
    pub jobs: u64,
    /// Registered mediators.
    pub pool: u32,
    /// (N, k) pairs.
    pub consortia: Vec<(u8, u8)>,
    /// Numbers of colluders in the pool.
    pub colluders: Vec<u32>,
}

/// Whether k agreeing reveals of N can decide a case, as the consortium requires: 2k > N, k <= N.
fn decides(per_case: u8, threshold: u8) -> bool {
    2 * u32::from(threshold) > u32::from(per_case) && threshold <= per_case
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn from_toml(text: &str) -> Result<Self, TwinError> {
        let scenario: Self =
            toml::from_str(text).map_err(|e| TwinError::Scenario(e.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Every problem with the scenario at once (an empty list: none).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let m = &self.market;
        if m.price == 0 {
            out.push("market.price must be above 0".into());
        }
        if !(m.collateral >= 0.0 && m.collateral.is_finite()) {
            out.push(format!(
                "market.collateral must be a multiple >= 0, not {}",
                m.collateral
            ));
        }
        for (what, bps) in [
            ("market.audit_bps", m.audit_bps),
            ("market.challenge_bps", m.challenge_bps),
        ] {
            if bps > 10_000 {
                out.push(format!("{what} is basis points: at most 10000, not {bps}"));
            }
        }
        let c = &self.consortium;
        if !decides(c.per_case, c.threshold) {
            out.push(format!(
                "consortium.threshold {} must be more than half of per_case {} and at most it",
                c.threshold, c.per_case
            ));
        }
        let checked = m.audit_bps != 0 || m.challenge_bps != 0;
        let mediators = c.honest + c.lazy + c.guessing + c.colluding;
        if checked && mediators < u32::from(c.per_case) {
            out.push(format!(
                "results are checked but the consortium has {mediators} mediators, fewer than per_case {}",
                c.per_case
            ));
        }
        for (i, p) in self.providers.iter().enumerate() {
            if !(0.0..=1.0).contains(&p.q) {
                out.push(format!(
                    "providers[{i}].q must be within 0..=1, not {}",
                    p.q
                ));
            }
        }
        if self.run.is_some() && self.providers.is_empty() {
            out.push("[run] needs at least one [[providers]]".into());
        }
        if let Some(s) = &self.sweep
            && (s.collateral.is_empty() || s.check_bps.is_empty())
        {
            out.push("[sweep] needs collateral and check_bps values".into());
        }
        if let Some(a) = &self.adaptive {
            if a.collateral.is_empty() || a.rounds == 0 || a.jobs_per_round == 0 {
                out.push("[adaptive] needs collateral values, rounds and jobs_per_round".into());
            }
            if !(0.0..=1.0).contains(&a.q0) || !(0.0..1.0).contains(&a.explore) {
                out.push("[adaptive] q0 must be within 0..=1 and explore within 0..1".into());
            }
        }
        if let Some(c) = &self.collusion {
            for &(n, k) in &c.consortia {
                if !decides(n, k) || u32::from(n) > c.pool {
                    out.push(format!(
                        "[collusion] consortium ({n}, {k}) needs 2k > N, k <= N and N <= pool {}",
                        c.pool
                    ));
                }
            }
            if let Some(too_many) = c.colluders.iter().find(|k| **k > c.pool) {
                out.push(format!(
                    "[collusion] {too_many} colluders in a pool of {}",
                    c.pool
                ));
            }
        }
        if self.run.is_none()
            && self.sweep.is_none()
            && self.adaptive.is_none()
            && self.collusion.is_none()
        {
            out.push(
                "nothing to run: add a [run], [sweep], [adaptive] or [collusion] section".into(),
            );
        }
        out
    }

    fn check(&self) -> Result<(), TwinError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TwinError::Scenario(problems.join("; ")))
        }
    }

    /// Jobs the whole scenario runs (for a progress bar).
    pub fn total_jobs(&self) -> u64 {
        let run = self.run.as_ref().map_or(0, |r| r.jobs);
        let sweep = self.sweep.as_ref().map_or(0, |s| {
            s.jobs * (s.collateral.len() * s.check_bps.len()) as u64
        });
        let adaptive = self.adaptive.as_ref().map_or(0, |a| {
            u64::from(a.rounds) * u64::from(a.jobs_per_round) * a.collateral.len() as u64
        });
        let collusion = self.collusion.as_ref().map_or(0, |c| {
            c.jobs * (c.consortia.len() * c.colluders.len()) as u64
        });
        run + sweep + adaptive + collusion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_refused_by_name() {
        let err = Scenario::from_toml("name = \"x\"\n[market]\nprce = 5\n[run]\njobs = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `prce`"), "{err}");
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let err = Scenario::from_toml(
            "name = \"x\"\n[market]\naudit_bps = 20000\n[consortium]\nper_case = 4\nthreshold = 2\n[run]\njobs = 1\n",
        )
        .unwrap_err()
        .to_string();
        for needle in ["audit_bps", "threshold 2", "[run] needs"] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
    }
}
