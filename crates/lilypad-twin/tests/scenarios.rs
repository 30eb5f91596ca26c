//! Small seeded scenarios on the twin, each asserting what the mechanism is meant to do: where
//! cheating pays and where it stops, and what colluders can and cannot buy.

#![allow(clippy::unwrap_used)]

use lilypad_twin::experiments::{self, Report, StrategyRow};
use lilypad_twin::scenario::{Scenario, Strategy};

fn run(toml: &str) -> Report {
    let scenario = Scenario::from_toml(toml).unwrap();
    experiments::run(&scenario, &mut || {}).unwrap()
}

fn row(report: &Report, strategy: Strategy) -> StrategyRow {
    let run = report.run.as_ref().unwrap();
    run.strategies
        .iter()
        .find(|s| s.strategy == strategy)
        .cloned()
        .unwrap()
}

#[test]
fn with_audits_off_and_no_collateral_a_cheater_profits_more_than_working() {
    let report = run(r#"
        name = "no-collateral"
        seed = 11
        [market]
        collateral = 0.0
        audit_bps = 0
        challenge_bps = 2000
        [[providers]]
        strategy = "honest"
        [[providers]]
        strategy = "cheater"
        [run]
        jobs = 60
    "#);
    let (cheater, honest) = (
        row(&report, Strategy::Cheater),
        row(&report, Strategy::Honest),
    );
    assert_eq!(cheater.wrong, 30, "it cheated on every job");
    assert!(
        cheater.overturned > 0,
        "challenges caught some: {cheater:?}"
    );
    assert!(
        cheater.profit.mean - cheater.profit.ci95 > honest.profit.mean,
        "caught costs it nothing: {cheater:?} against {honest:?}"
    );
}

#[test]
fn above_the_collateral_bound_a_cheater_loses_on_average() {
    // audits at 25%: the bound is 1/p - 1 = 3x; at 9x a caught cheat costs more than all it
    // earns from the ones that pass (expected -1.5 of the price per job)
    let report = run(r#"
        name = "above-the-bound"
        seed = 12
        [market]
        collateral = 9.0
        audit_bps = 2500
        [[providers]]
        strategy = "cheater"
        [run]
        jobs = 100
    "#);
    let cheater = row(&report, Strategy::Cheater);
    let run = report.run.as_ref().unwrap();
    assert!(run.audited > 0 && cheater.overturned == run.audited);
    assert!(
        cheater.profit.mean + cheater.profit.ci95 < 0.0,
        "it loses: {cheater:?}"
    );
}

#[test]
fn below_the_bound_the_contract_refuses_a_request_the_audits_cannot_cover() {
    let report = run(r#"
        name = "refused"
        [sweep]
        jobs = 2
        collateral = [1.0, 4.0]
        check_bps = [2500]
        check_by = "audit"
    "#);
    let sweep = report.sweep.unwrap();
    assert_eq!(sweep.refused.len(), 1, "{sweep:?}");
    let (check, collateral, reason) = &sweep.refused[0];
    assert_eq!((*check, *collateral), (2500, 1.0));
    assert!(reason.contains("CollateralBelowAuditBound"), "{reason}");
    assert_eq!(sweep.curves[0].measured.len(), 1, "4x ran");
}

/// Every result challenged, three mediators drawn from a pool of three, two deciding; the
/// provider pays its colluders a quarter of the 2x slash it avoids.
fn collusion(colluders: u32) -> Report {
    run(&format!(
        r#"
        name = "collusion"
        seed = 13
        [consortium]
        bribe_bps = 2500
        [collusion]
        jobs = 12
        pool = 3
        consortia = [[3, 2]]
        colluders = [{colluders}]
        "#
    ))
}

#[test]
fn a_colluding_majority_upholds_every_wrong_result_and_its_provider_profits() {
    let point = collusion(2).collusion[0].clone();
    assert_eq!(point.accepted.mean, 1.0, "{point:?}");
    assert_eq!(point.theory, 1.0);
    assert!(
        point.profit.mean > 0.0,
        "paid for no work, bribes paid: {point:?}"
    );
}

#[test]
fn colluders_below_the_threshold_have_every_wrong_result_overturned_and_lose() {
    let point = collusion(1).collusion[0].clone();
    assert_eq!(point.accepted.mean, 0.0, "{point:?}");
    assert_eq!(point.theory, 0.0);
    assert!(point.profit.mean < 0.0, "slashed every time: {point:?}");
}

#[test]
fn an_adaptive_cheater_stops_below_the_bound_and_cheats_above_it() {
    // cost 0.9 of the price, a quarter checked: cheating beats working below 2.61x
    let report = run(r#"
        name = "adaptive"
        seed = 14
        [market]
        compute_cost = 900000
        [adaptive]
        rounds = 10
        jobs_per_round = 20
        collateral = [0.0, 8.0]
        check_bps = 2500
    "#);
    let [low, high] = &report.adaptive[..] else {
        panic!("two runs: {:?}", report.adaptive)
    };
    assert!((low.relative_bound - 2.61).abs() < 1e-9, "{low:?}");
    assert!(low.settled_q > 0.8, "below the bound it cheats: {low:?}");
    assert!(high.settled_q < 0.2, "above the bound it works: {high:?}");
}

#[test]
fn the_same_seed_gives_the_same_table_and_another_seed_another() {
    let scenario = |seed: u64| {
        format!(
            r#"
            name = "seeded"
            seed = {seed}
            [market]
            challenge_bps = 3000
            [[providers]]
            strategy = "cheater"
            q = 0.5
            [run]
            jobs = 16
            "#
        )
    };
    let text = |seed| lilypad_twin::report::text(&run(&scenario(seed)));
    assert_eq!(text(5), text(5));
    assert_ne!(text(5), text(6));
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../twin");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 4, "the shipped scenarios are in {}", dir.display());
}
