//! One Lilypad stack for the end-to-end tests, with the real binaries: anvil (contracts deployed
//! by their own script), NATS, Redis, Docker, and `lilypad relayer`, `solver`, `provider` (and
//! `mediator`) as separate processes, each logging to a file in the stack's directory.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use lilypad_bindings::Lilypad;
use lilypad_e2e::{
    Anvil, Nats, Redis, TcpProxy, deploy_contracts_with, dev_keys, ensure_module_images,
    job_modules_dir, json_rpc, test_modules_dir,
};
use lilypad_types::JobStatus;

/// The provider's price per job.
pub const PRICE: u128 = 1_000_000_000_000_000;
/// `lilypad run`'s default max price.
pub const MAX_PRICE: u128 = 10_000_000_000_000_000;

/// Who plays which part, and how the chain is reached.
pub struct Options {
    /// The provider's key (two stacks side by side need two providers: a provider removes
    /// containers labelled with its address when it starts).
    pub provider_key: &'static str,
    /// `LILYPAD_CLIENT_KEY` for `lilypad run`.
    pub client_key: &'static str,
    /// Start `lilypad mediator` too (the deployment then draws one mediator per challenge).
    pub mediator: bool,
    /// Services reach anvil through a [`TcpProxy`] the test can take down.
    pub proxy: bool,
    /// chains.toml's poll_interval for the chain.
    pub poll_interval: &'static str,
    /// More arguments for `lilypad provider` (e.g. `--cpu-millis`).
    pub provider_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            provider_key: dev_keys::PROVIDER,
            client_key: dev_keys::CLIENT,
            mediator: false,
            proxy: false,
            poll_interval: "200ms",
            provider_args: Vec::new(),
        }
    }
}

pub struct Stack {
    pub anvil: Anvil,
    pub proxy: Option<TcpProxy>,
    _nats: Nats,
    _redis: Redis,
    pub dir: tempfile::TempDir,
    pub lilypad: Address,
    pub deployment: serde_json::Value,
    pub provider: Address,
    pub env: Vec<(String, String)>,
    pub services: Vec<(String, Child)>,
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

fn address_of(key: &str) -> Address {
    key.parse::<alloy::signers::local::PrivateKeySigner>()
        .unwrap()
        .address()
}

impl Stack {
    /// Starts anvil, deploys, starts NATS, Redis, the relayer, the solver and the provider (and
    /// the mediator), and returns once the provider offers.
    pub fn start(options: Options) -> Self {
        ensure_module_images().unwrap();
        let anvil = Anvil::start(31337).unwrap();
        let mut fund: Vec<&str> = dev_keys::ADDRESSES[1..].to_vec();
        fund.extend(dev_keys::MORE_ADDRESSES);
        let d = deploy_contracts_with(
            &anvil,
            &fund,
            &[("MEDIATORS_PER_CASE", "1"), ("MEDIATOR_THRESHOLD", "1")],
        )
        .unwrap();
        let proxy = options
            .proxy
            .then(|| TcpProxy::start(anvil.service.port()).unwrap());
        let rpc = proxy.as_ref().map_or_else(|| anvil.url(), TcpProxy::url);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deploy.json"), d.to_string()).unwrap();
        std::fs::write(
            dir.path().join("chains.toml"),
            format!(
                "[[chains]]\nname = \"dev\"\nchain_id = 31337\nrpc = \"{rpc}\"\ndeployment = \"deploy.json\"\n\
                 confirmations = 0\npoll_interval = \"{}\"\nsigner = {{ env = \"LILYPAD_RELAYER_KEY\" }}\n",
                options.poll_interval
            ),
        )
        .unwrap();
        let nats = Nats::start().unwrap();
        let redis = Redis::start().unwrap();
        let env = [
            (
                "LILYPAD_CHAINS",
                dir.path().join("chains.toml").display().to_string(),
            ),
            ("LILYPAD_NATS", nats.url()),
            ("LILYPAD_REDIS", redis.url()),
            ("LILYPAD_MODULES", modules()),
            ("LILYPAD_RELAYER_KEY", dev_keys::RELAYER.to_owned()),
            ("LILYPAD_PROVIDER_KEY", options.provider_key.to_owned()),
            ("LILYPAD_MEDIATOR_KEY", dev_keys::MEDIATOR.to_owned()),
            ("LILYPAD_CLIENT_KEY", options.client_key.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let lilypad = d["lilypad"].as_str().unwrap().parse().unwrap();
        let mut stack = Self {
            anvil,
            proxy,
            _nats: nats,
            _redis: redis,
            dir,
            lilypad,
            deployment: d,
            provider: address_of(options.provider_key),
            env,
            services: Vec::new(),
        };
        stack.spawn("relayer", &["relayer"]);
        stack.spawn("solver", &["solver"]);
        if options.mediator {
            stack.spawn(
                "mediator",
                &[
                    "mediator",
                    "--collateral",
                    "20000000000000000000",
                    "--metadata",
                    "http://127.0.0.1/test-mediator",
                    "--state-dir",
                    &stack
                        .dir
                        .path()
                        .join("mediator-state")
                        .display()
                        .to_string(),
                ],
            );
            stack.wait_for_log("mediator", "mediator running");
        }
        let extra: Vec<&str> = options.provider_args.iter().map(String::as_str).collect();
        stack.start_provider(&extra);
        stack
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lilypad"));
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts `lilypad <args>` with `env` added, its output captured (read it with
    /// `wait_with_output`).
    pub fn background(&self, args: &[&str], env: &[(&str, String)]) -> Child {
        self.command(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn spawn(&mut self, name: &str, args: &[&str]) {
        // Appended, so a restarted service's log follows its first life's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .unwrap();
        let child = self
            .command(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.services.push((name.to_owned(), child));
    }

    /// Starts `lilypad provider` with `extra` arguments and waits until it offers.
    pub fn start_provider(&mut self, extra: &[&str]) {
        let state = self.dir.path().join("provider-state").display().to_string();
        let price = PRICE.to_string();
        let mut args = vec![
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
        args.extend(extra);
        let before = self.log("provider").matches("provider running").count();
        self.spawn("provider", &args);
        let start = Instant::now();
        while self.log("provider").matches("provider running").count() == before {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the provider never started:\n{}",
                self.log("provider")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills a service (SIGKILL: no clean shutdown) and forgets it.
    pub fn kill(&mut self, name: &str) {
        let i = self.services.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut child) = self.services.remove(i);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    pub fn wait_for_log(&self, name: &str, needle: &str) {
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

    pub fn rpc(&self, method: &str, params: &str) -> serde_json::Value {
        json_rpc(self.anvil.service.port(), method, params).unwrap()
    }

    /// Moves the chain's clock forward and mines a block.
    pub fn advance(&self, seconds: u64) {
        self.rpc("evm_increaseTime", &format!("[{seconds}]"));
        self.rpc("evm_mine", "[]");
    }

    /// The contract, read straight from anvil (not through the proxy).
    pub async fn lilypad(&self) -> Lilypad::LilypadInstance<alloy::providers::DynProvider> {
        let p = ProviderBuilder::new()
            .connect_http(self.anvil.url().parse().unwrap())
            .erased();
        Lilypad::new(self.lilypad, p)
    }

    /// What the contract owes `who` (pull payments).
    pub async fn credited(&self, who: &str) -> U256 {
        self.lilypad()
            .await
            .balanceOf(who.parse().unwrap())
            .call()
            .await
            .unwrap()
    }

    /// `(free, locked)` collateral of `who`.
    pub async fn collateral(&self, who: Address) -> (U256, U256) {
        let c = self.lilypad().await.collateralOf(who).call().await.unwrap();
        (c.free, c.locked)
    }

    /// Transactions the relayer's account has had mined (its nonce).
    pub async fn relayer_nonce(&self) -> u64 {
        let p = ProviderBuilder::new().connect_http(self.anvil.url().parse().unwrap());
        let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
        p.get_transaction_count(relayer).await.unwrap()
    }

    /// Transactions from the relayer's account, mined or waiting in anvil's pool.
    pub async fn relayer_pending_nonce(&self) -> u64 {
        let p = ProviderBuilder::new().connect_http(self.anvil.url().parse().unwrap());
        let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
        p.get_transaction_count(relayer).pending().await.unwrap()
    }

    pub async fn state(&self, job: u64) -> JobStatus {
        let job = self
            .lilypad()
            .await
            .getJob(U256::from(job))
            .call()
            .await
            .unwrap();
        job.state()
            .unwrap_or_else(|| panic!("unknown job status {}", job.status))
    }

    pub async fn wait_state(&self, job: u64, wanted: JobStatus) {
        let start = Instant::now();
        while self.state(job).await != wanted {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "job {job} stuck in state {} (wanted {wanted})\nrelayer:\n{}\nprovider:\n{}\nmediator:\n{}",
                self.state(job).await,
                self.log("relayer"),
                self.log("provider"),
                self.log("mediator")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Containers (running or not) labelled as this stack's provider's.
    pub fn provider_containers(&self) -> Vec<String> {
        let label = format!("label=lilypad.provider=provider-{}", self.provider);
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A command's stdout and stderr, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
