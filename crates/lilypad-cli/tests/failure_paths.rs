//! Failure paths end to end, with the real binaries: anvil (contracts deployed by their own
//! script), NATS, Redis, Docker, and `lilypad relayer`, `solver` and `provider` as separate
//! processes; the client is `lilypad run`. Each scenario asserts the on-chain outcome and the
//! client's balance.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use lilypad_bindings::Lilypad;
use lilypad_e2e::{
    Anvil, Nats, Redis, deploy_contracts, dev_keys, ensure_module_images, job_modules_dir,
    json_rpc, test_modules_dir,
};

const PRICE: u128 = 1_000_000_000_000_000; // the provider's price per job
const MAX_PRICE: u128 = 10_000_000_000_000_000; // `lilypad run`'s default max price

struct Stack {
    anvil: Anvil,
    _nats: Nats,
    _redis: Redis,
    dir: tempfile::TempDir,
    lilypad: Address,
    env: Vec<(String, String)>,
    services: Vec<(String, Child)>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.services {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn modules() -> String {
    format!(
        "{},{}",
        job_modules_dir().display(),
        test_modules_dir().display()
    )
}

impl Stack {
    fn start() -> Self {
        ensure_module_images().unwrap();
        let anvil = Anvil::start(31337).unwrap();
        let d = deploy_contracts(&anvil, &dev_keys::ADDRESSES[1..]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deploy.json"), d.to_string()).unwrap();
        std::fs::write(
            dir.path().join("chains.toml"),
            format!(
                "[[chains]]\nname = \"dev\"\nchain_id = 31337\nrpc = \"{}\"\ndeployment = \"deploy.json\"\n\
                 confirmations = 0\npoll_interval = \"200ms\"\nsigner = {{ env = \"LILYPAD_RELAYER_KEY\" }}\n",
                anvil.url()
            ),
        )
        .unwrap();
        let nats = Nats::start().unwrap();
        let redis = Redis::start().unwrap();
        let env = vec![
            (
                "LILYPAD_CHAINS".to_owned(),
                dir.path().join("chains.toml").display().to_string(),
            ),
            ("LILYPAD_NATS".to_owned(), nats.url()),
            ("LILYPAD_REDIS".to_owned(), redis.url()),
            ("LILYPAD_MODULES".to_owned(), modules()),
            (
                "LILYPAD_RELAYER_KEY".to_owned(),
                dev_keys::RELAYER.to_owned(),
            ),
            (
                "LILYPAD_PROVIDER_KEY".to_owned(),
                dev_keys::PROVIDER.to_owned(),
            ),
            ("LILYPAD_CLIENT_KEY".to_owned(), dev_keys::CLIENT.to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        let lilypad = d["lilypad"].as_str().unwrap().parse().unwrap();
        let mut stack = Self {
            anvil,
            _nats: nats,
            _redis: redis,
            dir,
            lilypad,
            env,
            services: Vec::new(),
        };
        stack.spawn("relayer", &["relayer"]);
        stack.spawn("solver", &["solver"]);
        stack.start_provider();
        stack
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lilypad"));
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = self
            .command(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.services.push((name.to_owned(), child));
    }

    fn start_provider(&mut self) {
        let state = self.dir.path().join("provider-state").display().to_string();
        let price = PRICE.to_string();
        let args = [
            "provider",
            "--collateral",
            "100000000000000000000",
            "--metadata",
            "http://127.0.0.1/test-provider",
            "--default-price",
            &price,
            "--state-dir",
            &state,
        ];
        self.spawn("provider", &args);
        self.wait_for_log("provider", "provider running");
    }

    fn kill(&mut self, name: &str) {
        let (_, child) = self.services.iter_mut().find(|(n, _)| n == name).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn wait_for_log(&self, name: &str, needle: &str) {
        let start = Instant::now();
        while !self.log(name).contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{name} never logged {needle:?}:\n{}",
                self.log(name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn advance(&self, seconds: u64) {
        json_rpc(
            self.anvil.service.port(),
            "evm_increaseTime",
            &format!("[{seconds}]"),
        )
        .unwrap();
        json_rpc(self.anvil.service.port(), "evm_mine", "[]").unwrap();
    }

    async fn lilypad(&self) -> Lilypad::LilypadInstance<alloy::providers::DynProvider> {
        let p = ProviderBuilder::new()
            .connect_http(self.anvil.url().parse().unwrap())
            .erased();
        Lilypad::new(self.lilypad, p)
    }

    async fn credited(&self, who: &str) -> U256 {
        self.lilypad()
            .await
            .balanceOf(who.parse().unwrap())
            .call()
            .await
            .unwrap()
    }

    async fn relayer_nonce(&self) -> u64 {
        let p = ProviderBuilder::new().connect_http(self.anvil.url().parse().unwrap());
        let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
        p.get_transaction_count(relayer).await.unwrap()
    }

    async fn state(&self, job: u64) -> u8 {
        self.lilypad()
            .await
            .getJob(U256::from(job))
            .call()
            .await
            .unwrap()
            .status
    }

    async fn wait_state(&self, job: u64, wanted: u8) {
        let start = Instant::now();
        while self.state(job).await != wanted {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "job {job} stuck in state {} (wanted {wanted})\nrelayer:\n{}",
                self.state(job).await,
                self.log("relayer")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const CLIENT: &str = dev_keys::ADDRESSES[1];
const SETTLED: u8 = 5;
const EXPIRED: u8 = 6;
const TIMED_OUT: u8 = 7;

#[tokio::test(flavor = "multi_thread")]
async fn failures_reach_the_client_as_outcomes_with_the_right_money() {
    let mut stack = Stack::start();

    // 1. A job that exits non-zero: the client learns the exit code; the provider is paid (it
    //    did the work), the client gets back the difference.
    let out = stack
        .command(&["run", "fail", "-i", "code=7", "--chain", "dev"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed job is not a success:\n{t}"
    );
    assert!(
        t.contains("status:   job failed") && t.contains("exit:     7"),
        "{t}"
    );
    stack.wait_state(1, SETTLED).await;
    assert_eq!(stack.credited(CLIENT).await, U256::from(MAX_PRICE - PRICE));

    // 2. A job no provider offers expires: the relayer expires it once the match deadline passes
    //    on the chain, and the client gets its whole max price back.
    let before = stack.credited(CLIENT).await;
    let run = stack
        .command(&[
            "run",
            "no-such-module",
            "--chain",
            "dev",
            "--match-timeout",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while stack.state(2).await == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.advance(11);
    stack.wait_state(2, EXPIRED).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("expired"), "{}", text(&out));
    assert_eq!(stack.credited(CLIENT).await, before + U256::from(MAX_PRICE));

    // 3. The provider dies while running a job: once the execution deadline passes the relayer
    //    times the job out; the client is refunded in full plus the provider's timeout
    //    collateral (1x the price).
    let before = stack.credited(CLIENT).await;
    let run = stack
        .command(&[
            "run",
            "sleep",
            "--chain",
            "dev",
            "--execution-timeout",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while stack.state(3).await != 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill it once the job's container runs, as a crash mid-job would.
    let start = Instant::now();
    while provider_containers().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job's container never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill("provider");
    stack.advance(21);
    stack.wait_state(3, TIMED_OUT).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("timed out"), "{}", text(&out));
    assert_eq!(
        stack.credited(CLIENT).await,
        before + U256::from(MAX_PRICE + PRICE)
    );

    // 4. The provider comes back: it removes the container its crash left running, and offers
    //    again (scenario 5 runs on it).
    assert_eq!(
        provider_containers().len(),
        1,
        "the crash left the job's container behind"
    );
    stack.services.retain(|(n, _)| n != "provider");
    stack.start_provider();
    assert!(
        provider_containers().is_empty(),
        "the restarted provider removed it"
    );

    // 5. The relayer is down when a job is requested and comes back: nothing is lost (the job
    //    completes) and nothing is sent twice (exactly agreeDeal, submitResult and settle).
    stack.kill("relayer");
    let sent_before = stack.relayer_nonce().await;
    let run = stack
        .command(&[
            "run",
            "cowsay",
            "-i",
            "message=after a restart",
            "--chain",
            "dev",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while stack.state(4).await == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.services.retain(|(n, _)| n != "relayer");
    stack.spawn("relayer", &["relayer"]);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("after a restart"), "{}", text(&out));
    stack.wait_state(4, SETTLED).await;
    assert_eq!(
        stack.relayer_nonce().await,
        sent_before + 3,
        "agreeDeal, submitResult, settle"
    );
}

/// Containers (running or not) labelled as the test provider's.
fn provider_containers() -> Vec<String> {
    let label = format!("label=lilypad.provider=provider-{}", dev_keys::ADDRESSES[2]);
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
