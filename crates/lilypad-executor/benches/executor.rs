//! Figures for docs/benchmarks.md (prints them; asserts nothing):
//!
//! 1. executor overhead: the median time of a cowsay job through `run_job` (image check, create,
//!    attach, start, wait, inspect, remove, result hashed and stored) against a bare
//!    `docker run --rm --network none` of the same image and command, interleaved in one run;
//! 2. CID throughput: `cid_of_path` over a 200 MB output directory (and, for comparison, the
//!    js-ipfs reference script on the same directory when test/cid-reference is installed).
//!
//! Run: `cargo bench -p lilypad-executor --bench executor`
//! (`LILYPAD_BENCH_RUNS=N` sets the runs per side, default 15; `LILYPAD_BENCH_MB` the directory
//! size, default 200.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lilypad_e2e::bench::{env_number, fill, median};
use lilypad_e2e::{ensure_module_images, job_modules_dir};
use lilypad_executor::{Executor, ExecutorConfig, PullPolicy, Status, run_job};
use lilypad_modules::ModuleRegistry;
use lilypad_results::{ResultStore, cid_of_path};

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn bare_docker_run() -> Duration {
    lilypad_e2e::timed_docker_run("lilypad/cowsay:1.0.0", &["/usr/bin/cowsay", "moo"])
}

/// `mb` MB of outputs: big files, mid-size files and many small ones, in nested directories.
fn make_outputs(root: &Path, mb: usize) -> u64 {
    let total = mb as u64 * 1_000_000;
    let mut written = 0u64;
    let mut buf = vec![0u8; 4_000_000];
    let mut i = 0u64;
    // 80%: 4 MB files; 15%: 100 kB files; 5%: 2 kB files.
    for (share, size, dir) in [
        (80, 4_000_000usize, "big"),
        (15, 100_000, "mid/a/b"),
        (5, 2_000, "small"),
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        let budget = total * share / 100;
        let mut used = 0u64;
        while used + size as u64 <= budget {
            fill(&mut buf[..size], i);
            std::fs::write(root.join(dir).join(format!("f{i:06}")), &buf[..size]).expect("write");
            used += size as u64;
            i += 1;
        }
        written += used;
    }
    written
}

fn main() {
    ensure_module_images().expect("module images build");
    let runs = env_number("LILYPAD_BENCH_RUNS", 15);
    let mb = env_number("LILYPAD_BENCH_MB", 200);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let scratch = tempfile::tempdir().expect("scratch");

    // 1. Executor overhead against a bare docker run, interleaved.
    let store = Arc::new(ResultStore::open(scratch.path().join("store")).expect("store"));
    let mut config = ExecutorConfig::new(
        format!("bench-{}", std::process::id()),
        scratch.path().join("work"),
    );
    config.pull_policy = PullPolicy::Never;
    let executor = rt
        .block_on(Executor::connect(config, store, Vec::new()))
        .expect("Docker answers");
    let registry = ModuleRegistry::load_dir(&job_modules_dir()).expect("modules load");
    let inputs = BTreeMap::from([("message".to_owned(), "moo".to_owned())]);
    let executor_run = || {
        let start = Instant::now();
        let outcome = rt.block_on(run_job(
            &executor, &registry, "bench", "cowsay", "1.0.0", &inputs, 1024,
        ));
        let elapsed = start.elapsed();
        assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
        elapsed
    };
    for _ in 0..2 {
        bare_docker_run();
        executor_run();
    }
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        bare.push(bare_docker_run());
        ours.push(executor_run());
    }
    let (bare_min, ours_min) = (
        *bare.iter().min().expect("runs"),
        *ours.iter().min().expect("runs"),
    );
    let (bare_med, ours_med) = (median(bare), median(ours));
    println!("## Executor overhead (cowsay \"moo\", {runs} runs each, interleaved)\n");
    println!("| | median | min |");
    println!("|---|---|---|");
    println!(
        "| `docker run --rm --network none` (CLI) | {} | {} |",
        ms(bare_med),
        ms(bare_min)
    );
    println!(
        "| `run_job` (executor, result hashed and stored) | {} | {} |",
        ms(ours_med),
        ms(ours_min)
    );
    println!(
        "\nratio executor / docker run (medians): {:.2}\n",
        ours_med.as_secs_f64() / bare_med.as_secs_f64()
    );

    // 2. CID throughput over a large output directory.
    let dir = scratch.path().join("outputs");
    let bytes = make_outputs(&dir, mb);
    let files = walk_count(&dir);
    let mut times = Vec::new();
    let mut cid = None;
    for _ in 0..3 {
        let start = Instant::now();
        cid = Some(cid_of_path(&dir).expect("CID"));
        times.push(start.elapsed());
    }
    let t = median(times);
    let rate = bytes as f64 / 1e6 / t.as_secs_f64();
    println!(
        "## CID throughput ({:.0} MB in {files} files)\n",
        bytes as f64 / 1e6
    );
    println!("| implementation | time (median of 3) | MB/s |");
    println!("|---|---|---|");
    println!(
        "| `lilypad_results::cid_of_path` (release) | {} | {rate:.0} |",
        ms(t)
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/cid-reference/cid.mjs");
    if script.with_file_name("node_modules").is_dir() {
        let start = Instant::now();
        let out = Command::new("node")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("node runs");
        let t = start.elapsed();
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let same = cid.map(|c| c.to_string()) == Some(theirs);
        println!(
            "| js `ipfs-unixfs-importer` (test/cid-reference, one run) | {} | {:.0} |",
            ms(t),
            bytes as f64 / 1e6 / t.as_secs_f64()
        );
        println!("\nsame CID from both: {same}");
    }
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}
