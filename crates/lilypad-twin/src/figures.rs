//! The figures a scenario run produces, as plain numbers: what [`crate::plot`] draws and the
//! tables and CSV print.

/// A mean and the half-width of its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Estimate {
    /// The sample mean.
    pub mean: f64,
    /// Half-width of the 95% interval (1.96 standard errors; 0 with fewer than two samples).
    pub ci95: f64,
    /// How many samples.
    pub n: u64,
}

impl Estimate {
    /// The mean of `samples` and its 95% interval (normal approximation: fine for the hundreds
    /// of samples a scenario takes per figure).
    pub fn of(samples: &[f64]) -> Self {
        let n = samples.len();
        if n == 0 {
            return Self::default();
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        let ci95 = if n < 2 {
            0.0
        } else {
            let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            1.96 * (var / n as f64).sqrt()
        };
        Self {
            mean,
            ci95,
            n: n as u64,
        }
    }

    /// The same estimate divided by `unit` (tokens per job to price units).
    pub fn scaled(self, unit: f64) -> Self {
        Self {
            mean: self.mean / unit,
            ci95: self.ci95 / unit,
            n: self.n,
        }
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.4} ± {:.4}", self.mean, self.ci95)
    }
}

/// A cheater's profit per job against the collateral multiplier, at one check rate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfitCurve {
    /// The chance a result is checked (audited or challenged), basis points.
    pub check_bps: u32,
    /// (collateral multiplier, profit per job in units of the price) measured by the twin.
    pub measured: Vec<(f64, Estimate)>,
    /// (collateral multiplier, expected profit per job in units of the price) from the theory:
    /// `(1 - p)(1 - fee) - p * m`, zero at the bound `m = c(1/p - 1)` with `c = 1 - fee`.
    pub theory: Vec<(f64, f64)>,
}

/// An adaptive cheater's chance of cheating, round by round.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QTrace {
    /// What the run was (e.g. "collateral 2x, audits 10%").
    pub label: String,
    /// q at the start (round 0), then after each round.
    pub q: Vec<f64>,
}

/// How often a wrong result stands against one consortium and a number of colluders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollusionPoint {
    /// N: mediators drawn per case.
    pub per_case: u8,
    /// k: agreeing reveals that decide.
    pub threshold: u8,
    /// Registered mediators (the pool the draw picks N from).
    pub pool: u32,
    /// Of the pool, how many collude with the provider.
    pub colluders: u32,
    /// Share of the wrong results (all checked) that stood.
    pub accepted: Estimate,
    /// The colluding provider's profit per job, in units of the price (bribes paid).
    pub profit: Estimate,
    /// The same share from the hypergeometric law: P(fewer than k honest mediators among the N
    /// drawn), i.e. P(colluders drawn > N - k).
    pub theory: f64,
}
