//! Figures for docs/benchmarks.md (prints them; asserts nothing): the hidden cost of an input by
//! CID. A 100 MB file (`LILYPAD_BENCH_MB` sets the size) is stored and served by one results
//! server; another store fetches it as a trustless gateway's CAR (HTTP over loopback, every block
//! hashed and checked, the file rebuilt on disk), beside `cid_of_path` of the same bytes (reading
//! and hashing them once, as a provider does for every result).
//!
//! Run: `cargo bench -p lilypad-results --bench fetch` (`LILYPAD_BENCH_RUNS=N` runs per side,
//! default 3).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lilypad_e2e::bench::{env_number, fill, median};
use lilypad_results::{FetchLimits, Fetcher, ResultStore, cid_of_path};

#[tokio::main]
async fn main() {
    let mb = env_number("LILYPAD_BENCH_MB", 100);
    let runs = env_number("LILYPAD_BENCH_RUNS", 3).max(1);
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("input");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = vec![0u8; mb * 1_000_000];
    fill(&mut bytes, 7);
    std::fs::write(dir.join("data.bin"), &bytes).unwrap();
    drop(bytes);

    let served = Arc::new(ResultStore::open(scratch.path().join("served")).unwrap());
    let cid = served.put(&dir).unwrap();
    let stored = served.get(&cid).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lilypad_results::server::serve(listener, served.clone()));

    let mut hashing = Vec::new();
    let mut fetching = Vec::new();
    for run in 0..runs {
        let start = Instant::now();
        let again = cid_of_path(&stored).unwrap();
        hashing.push(start.elapsed());
        assert_eq!(again, cid);

        let store =
            Arc::new(ResultStore::open(scratch.path().join(format!("fetched-{run}"))).unwrap());
        let fetcher = Fetcher::new(
            store,
            vec![format!("http://{addr}")],
            FetchLimits::default(),
        );
        let start = Instant::now();
        let path = fetcher.fetch(&cid).await.unwrap();
        fetching.push(start.elapsed());
        std::fs::remove_dir_all(path).unwrap();
    }
    let secs = |d: Duration| d.as_secs_f64();
    let (h, f) = (median(hashing), median(fetching));
    println!("input: {mb} MB in one file, {runs} runs each, medians");
    println!(
        "cid_of_path:              {:.2} s ({:.0} MB/s)",
        secs(h),
        mb as f64 / secs(h)
    );
    println!(
        "fetch+verify (CAR, HTTP): {:.2} s ({:.0} MB/s), {:.1}x cid_of_path",
        secs(f),
        mb as f64 / secs(f),
        secs(f) / secs(h)
    );
}
