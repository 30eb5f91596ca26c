//! `lilypad twin <scenario.toml>`: a scenario on the digital twin, with a progress bar; prints
//! its tables and writes them with CSV and plots.

use anyhow::Context;
use lilypad_twin::scenario::Scenario;

use crate::TwinArgs;

pub fn run(args: &TwinArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading the scenario {}", args.scenario.display()))?;
    let mut scenario =
        Scenario::from_toml(&text).with_context(|| format!("in {}", args.scenario.display()))?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if scenario.sweep.is_some() || scenario.adaptive.is_some() || scenario.collusion.is_some() {
        // its plots need a font: better said now than after the run
        lilypad_twin::plot::font()?;
    }
    let total = scenario.total_jobs();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} jobs, {per_sec}, {eta} left",
        )
        .context("the progress bar's template")?
        .progress_chars("=> "),
    );
    bar.set_message(scenario.name.clone());
    let report = lilypad_twin::experiments::run(&scenario, &mut || bar.inc(1))
        .with_context(|| format!("running the scenario {}", scenario.name))?;
    bar.finish_and_clear();
    print!("{}", lilypad_twin::report::text(&report));
    let dir = args.out.join(&scenario.name);
    let written = lilypad_twin::report::write(&report, &dir)?;
    println!("\nwritten:");
    for path in written {
        println!("  {}", path.display());
    }
    Ok(())
}
