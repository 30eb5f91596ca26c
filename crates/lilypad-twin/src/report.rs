//! A [`Report`] as people and programs read it: tables (text), CSV files and PNG plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::TwinError;
use crate::experiments::{Report, SweepResult, theory};
use crate::plot;

/// The report as text tables: profits per job (price units, with 95% intervals), wrong results
/// accepted, client costs and losses, mediator income; the sweep, adaptive and collusion results.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario {} (seed {})", report.name, report.seed);
    if !report.description.is_empty() {
        let _ = writeln!(out, "{}", report.description.trim());
    }
    let _ = writeln!(
        out,
        "amounts are per job, in units of the job's price; ± is the 95% interval"
    );
    if let Some(run) = &report.run {
        let _ = writeln!(
            out,
            "\n[run] {} jobs: {} audited, {} challenged, {:.0} gas per job",
            run.jobs, run.audited, run.challenged, run.gas_per_job
        );
        let _ = writeln!(
            out,
            "  {:<10} {:>5} {:>6} {:>22} {:>7} {:>9} {:>10}",
            "strategy", "q", "jobs", "profit per job", "wrong", "accepted", "overturned"
        );
        for s in &run.strategies {
            let _ = writeln!(
                out,
                "  {:<10} {:>5.2} {:>6} {:>22} {:>7} {:>9} {:>10}",
                s.strategy.name(),
                s.q,
                s.jobs,
                s.profit.to_string(),
                s.wrong,
                s.wrong_accepted,
                s.overturned
            );
        }
        let _ = writeln!(
            out,
            "  wrong results accepted: {} of those submitted",
            run.wrong_accepted
        );
        let _ = writeln!(out, "  client cost per job:    {}", run.client_cost);
        let _ = writeln!(
            out,
            "  client loss per job:    {} (paid for wrong results that stood)",
            run.client_loss
        );
        for m in &run.mediators {
            let _ = writeln!(
                out,
                "  {} mediator income per case: {}",
                m.kind.name(),
                m.income
            );
        }
    }
    if let Some(sweep) = &report.sweep {
        let _ = writeln!(
            out,
            "\n[sweep] a cheater (q = 1): profit per job against collateral"
        );
        let _ = writeln!(
            out,
            "  {:>8} {:>10} {:>22} {:>9} {:>8}",
            "checked", "collateral", "measured", "theory", "bound"
        );
        for c in &report_curves(sweep) {
            let _ = writeln!(out, "{c}");
        }
        for (check, m, reason) in &sweep.refused {
            let _ = writeln!(
                out,
                "  checked {:.1}%, collateral {m}x: refused by the contract ({reason})",
                f64::from(*check) / 100.0
            );
        }
    }
    if !report.adaptive.is_empty() {
        let _ = writeln!(out, "\n[adaptive] a cheater adapting q to its profit");
        let _ = writeln!(
            out,
            "  {:>10} {:>8} {:>9} {:>9} {:>9} {:>22} {:>8}",
            "collateral", "checked", "beats at", "pays at", "settled q", "profit per job", "honest"
        );
        for a in &report.adaptive {
            let _ = writeln!(
                out,
                "  {:>9}x {:>7.1}% {:>8.2}x {:>8.2}x {:>9.3} {:>22} {:>8.4}",
                a.collateral,
                f64::from(a.check_bps) / 100.0,
                a.relative_bound,
                a.absolute_bound,
                a.settled_q,
                a.profit.to_string(),
                a.honest_profit
            );
        }
        let _ = writeln!(
            out,
            "  beats at: below this collateral cheating earns more than working; pays at: below \
             this it earns anything"
        );
    }
    if !report.collusion.is_empty() {
        let _ = writeln!(
            out,
            "\n[collusion] wrong results accepted, every one challenged"
        );
        let _ = writeln!(
            out,
            "  {:>3} {:>3} {:>5} {:>10} {:>22} {:>8} {:>22}",
            "N", "k", "pool", "colluders", "accepted", "theory", "provider's profit"
        );
        for p in &report.collusion {
            let _ = writeln!(
                out,
                "  {:>3} {:>3} {:>5} {:>10} {:>22} {:>8.4} {:>22}",
                p.per_case,
                p.threshold,
                p.pool,
                p.colluders,
                p.accepted.to_string(),
                p.theory,
                p.profit.to_string()
            );
        }
    }
    out
}

fn report_curves(sweep: &SweepResult) -> Vec<String> {
    let mut lines = Vec::new();
    for curve in &sweep.curves {
        let p = f64::from(curve.check_bps) / 10_000.0;
        for (m, e) in &curve.measured {
            let theory = theory(p, sweep.fee, *m);
            lines.push(format!(
                "  {:>7.1}% {:>9}x {:>22} {:>9.4} {:>7.2}x",
                p * 100.0,
                m,
                e.to_string(),
                theory,
                if p > 0.0 {
                    1.0 / p - 1.0
                } else {
                    f64::INFINITY
                }
            ));
        }
    }
    lines
}

/// Quotes a CSV field when it needs it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes the report into `dir`: `summary.txt`, a CSV per experiment and a PNG per plot. The
/// tables and CSV are written first, so a plot that cannot be drawn loses nothing else; every
/// plot is tried, and the failures are named together. Returns the files written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, TwinError> {
    let io = |path: &Path, e: std::io::Error| {
        TwinError::Output(format!("writing {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = Vec::new();
    let put = |written: &mut Vec<PathBuf>, name: &str, body: String| -> Result<(), TwinError> {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| io(&path, e))?;
        written.push(path);
        Ok(())
    };
    put(&mut written, "summary.txt", text(report))?;
    if let Some(run) = &report.run {
        let mut csv = String::from(
            "job,provider,strategy,cheated,checked,overturned,provider_profit,client_cost,mediator_kinds,mediator_income\n",
        );
        for r in &run.records {
            let kinds: Vec<&str> = r.mediators.iter().map(|(k, _)| k.name()).collect();
            let income: f64 = r.mediators.iter().map(|(_, x)| x).sum::<f64>() + 0.0;
            let _ = writeln!(
                csv,
                "{},{},{},{},{:?},{},{},{},{},{}",
                r.job.id,
                r.provider,
                r.strategy.name(),
                r.cheated,
                r.checked,
                r.overturned,
                r.provider_profit,
                r.client_cost,
                field(&kinds.join(" ")),
                income
            );
        }
        put(&mut written, "run.csv", csv)?;
    }
    if let Some(sweep) = &report.sweep {
        let mut csv = String::from("check_bps,collateral,profit_per_job,ci95,jobs,theory\n");
        for c in &sweep.curves {
            let p = f64::from(c.check_bps) / 10_000.0;
            for (m, e) in &c.measured {
                let _ = writeln!(
                    csv,
                    "{},{m},{},{},{},{}",
                    c.check_bps,
                    e.mean,
                    e.ci95,
                    e.n,
                    theory(p, sweep.fee, *m)
                );
            }
        }
        put(&mut written, "sweep.csv", csv)?;
    }
    if !report.adaptive.is_empty() {
        let mut csv = String::from("collateral,check_bps,round,q\n");
        for a in &report.adaptive {
            for (round, q) in a.trace.q.iter().enumerate() {
                let _ = writeln!(csv, "{},{},{round},{q}", a.collateral, a.check_bps);
            }
        }
        put(&mut written, "adaptive.csv", csv)?;
    }
    if !report.collusion.is_empty() {
        let mut csv = String::from(
            "per_case,threshold,pool,colluders,accepted,ci95,jobs,theory,profit,profit_ci95\n",
        );
        for p in &report.collusion {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{}",
                p.per_case,
                p.threshold,
                p.pool,
                p.colluders,
                p.accepted.mean,
                p.accepted.ci95,
                p.accepted.n,
                p.theory,
                p.profit.mean,
                p.profit.ci95
            );
        }
        put(&mut written, "collusion.csv", csv)?;
    }
    let mut failed = Vec::new();
    let mut draw = |name: &str, result: &dyn Fn(&Path) -> Result<(), TwinError>| {
        let path = dir.join(name);
        match result(&path) {
            Ok(()) => written.push(path),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    };
    if let Some(sweep) = &report.sweep {
        draw("profit-vs-collateral.png", &|path| {
            plot::profit_vs_collateral(path, &sweep.curves)
        });
    }
    if !report.adaptive.is_empty() {
        let traces: Vec<_> = report.adaptive.iter().map(|a| a.trace.clone()).collect();
        draw("adaptive-q.png", &|path| plot::adaptive_q(path, &traces));
    }
    if !report.collusion.is_empty() {
        draw("collusion.png", &|path| {
            plot::collusion(path, &report.collusion)
        });
    }
    if failed.is_empty() {
        Ok(written)
    } else {
        Err(TwinError::Output(format!(
            "the tables and CSV are in {}, but {}",
            dir.display(),
            failed.join("; ")
        )))
    }
}
