//! The lilypad binary as an operator meets it: bad configuration, missing keys and bad input
//! give clear errors and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn lilypad(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lilypad"));
    cmd.args(args)
        .env_remove("LILYPAD_CHAINS")
        .env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shipped_chains() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../chains.toml")
        .display()
        .to_string()
}

#[test]
fn chains_lists_the_shipped_dev_chains() {
    let out = lilypad(&["--chains", &shipped_chains(), "chains"], &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("dev-a (chain 31337): http://127.0.0.1:8545"),
        "{t}"
    );
    assert!(t.contains("dev-b (chain 31338)"), "{t}");
    assert!(t.contains("2 chain(s), valid"), "{t}");
}

#[test]
fn a_broken_chains_file_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chains.toml");
    std::fs::write(
        &file,
        "[[chains]]\nname = \"x\"\nchain_id = 0\nrpc = \"ftp://h\"\n",
    )
    .unwrap();
    let out = lilypad(&["--chains", file.to_str().unwrap(), "chains"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("has 4 errors"), "{t}");
    for path in [
        "chains[0].chain_id",
        "chains[0].rpc",
        "chains[0].deployment",
        "chains[0].signer",
    ] {
        assert!(t.contains(path), "{path} missing in {t}");
    }
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn environment_overrides_reach_the_cli() {
    let out = lilypad(
        &["--chains", &shipped_chains(), "chains"],
        &[("LILYPAD_CHAINS_DEV_A_RPC", "http://10.1.2.3:9999")],
    );
    assert!(
        text(&out).contains("dev-a (chain 31337): http://10.1.2.3:9999"),
        "{}",
        text(&out)
    );
    let out = lilypad(
        &["--chains", &shipped_chains(), "chains"],
        &[("LILYPAD_CHAINS_DEV_C_RPC", "x")],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("LILYPAD_CHAINS_DEV_C_RPC"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_relayer_will_not_start_without_its_keys_and_says_which() {
    let out = lilypad(
        &["--chains", &shipped_chains(), "relayer"],
        &[("LILYPAD_RELAYER_KEY", "")],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("the relayer cannot start"), "{t}");
    assert!(
        t.contains("chain dev-a") && t.contains("chain dev-b"),
        "every chain's problem: {t}"
    );
}

#[test]
fn run_refuses_malformed_inputs_and_unknown_chains() {
    let out = lilypad(
        &["run", "cowsay", "-i", "no-equals-sign", "--chain", "dev-a"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(text(&out).contains("is not KEY=VALUE"), "{}", text(&out));

    let out = lilypad(
        &[
            "--chains",
            &shipped_chains(),
            "run",
            "cowsay",
            "-i",
            "message=a=b c",
            "--chain",
            "mainnet",
        ],
        &[(
            "LILYPAD_CLIENT_KEY",
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        )],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("no chain named \"mainnet\"") && t.contains("dev-a, dev-b"),
        "{t}"
    );
}

#[test]
fn run_refuses_a_provider_filter_the_contract_would_refuse() {
    let out = lilypad(
        &[
            "run",
            "cowsay",
            "--chain",
            "dev-a",
            "--min-reliability-bps",
            "10001",
        ],
        &[],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("--min-reliability-bps 10001 is above 10000"),
        "{t}"
    );

    let named = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    let mut args = vec!["run", "cowsay", "--chain", "dev-a"];
    for _ in 0..17 {
        args.extend(["--provider", named]);
    }
    let out = lilypad(&args, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("17 --provider given; a request names at most 16"),
        "{t}"
    );

    let out = lilypad(
        &["run", "cowsay", "--chain", "dev-a", "--provider", "0x12"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap's usage error: {}",
        text(&out)
    );
}

#[test]
fn run_without_a_key_says_how_to_give_one() {
    let out = lilypad(
        &[
            "--chains",
            &shipped_chains(),
            "run",
            "cowsay",
            "--chain",
            "dev-a",
        ],
        &[("LILYPAD_CLIENT_KEY", "")],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("client's key") && t.contains("LILYPAD_CLIENT_KEY"),
        "{t}"
    );
}

/// `lilypad twin` on a scenario file written from `toml` into `dir`, output in `dir/out`.
fn twin(dir: &Path, toml: &str, env: &[(&str, &str)]) -> Output {
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, toml).unwrap();
    let out_dir = dir.join("out");
    lilypad(
        &[
            "twin",
            scenario.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--quiet",
        ],
        env,
    )
}

#[test]
fn twin_runs_a_scenario_and_writes_its_table_csv_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = twin(
        dir.path(),
        "name = \"tiny\"\nseed = 9\n[sweep]\njobs = 3\ncollateral = [0.0, 2.0]\ncheck_bps = [5000]\n",
        &[],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("[sweep] a cheater (q = 1)"), "{t}");
    let tiny = dir.path().join("out/tiny");
    let csv = std::fs::read_to_string(tiny.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and two points: {csv}");
    let png = std::fs::read(tiny.join("profit-vs-collateral.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(tiny.join("summary.txt").exists());
}

#[test]
fn twin_names_every_problem_of_a_bad_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = twin(
        dir.path(),
        "name = \"bad\"\n[market]\nchallenge_bps = 12000\n[consortium]\nper_case = 4\nthreshold = 2\n",
        &[],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    for needle in [
        "scenario.toml",
        "challenge_bps",
        "threshold 2",
        "nothing to run",
    ] {
        assert!(t.contains(needle), "{needle} in {t}");
    }
}

#[test]
fn twin_without_a_font_for_its_plots_says_so_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-font.ttf");
    let out = twin(
        dir.path(),
        "name = \"tiny\"\n[sweep]\njobs = 3\ncollateral = [0.0]\ncheck_bps = [5000]\n",
        &[("LILYPAD_TWIN_FONT", missing.to_str().unwrap())],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("no-such-font.ttf") && t.contains("fonts-dejavu-core"),
        "{t}"
    );
    assert!(!dir.path().join("out").exists(), "nothing ran: {t}");
}
