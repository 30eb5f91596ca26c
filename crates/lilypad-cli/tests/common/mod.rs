//! One Lilypad stack for the end-to-end tests, with the real binaries: anvil (contracts deployed
//! by their own script), NATS, Redis, Docker, and `lilypad relayer`, `solver`, `provider` (and
//! `mediator`) as separate processes, each logging to a file in the stack's directory (filter
//! `RUST_LOG=info`, or what `LILYPAD_E2E_LOG` says).

#![allow(clippy::unwrap_used, dead_code)]

pub mod counting;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use lilypad_bindings::Lilypad;
use lilypad_e2e::{
    Anvil, FaultPlan, FaultyRpc, Nats, Redis, TcpProxy, dev_keys, ensure_module_images, eventually,
    job_modules_dir, ok_if, test_modules_dir,
};
use lilypad_testkit::{TestChain, fresh_key, reader};
use lilypad_types::JobStatus;

/// The provider's price per job.
pub const PRICE: u128 = 1_000_000_000_000_000;
/// `lilypad run`'s default max price.
pub const MAX_PRICE: u128 = 10_000_000_000_000_000;

/// Who plays which part, and how the chain is reached.
pub struct Options {
    /// The provider's key; `None` (the default): a fresh account of its own, funded, so stacks
    /// can run side by side (a provider removes containers labelled with its address when it
    /// starts, whichever stack they belong to).
    pub provider_key: Option<&'static str>,
    /// `LILYPAD_CLIENT_KEY` for `lilypad run`.
    pub client_key: &'static str,
    /// Start `lilypad mediator` too (the deployment then draws one mediator per challenge).
    pub mediator: bool,
    /// With `mediator`: start two more mediators on fresh accounts, the second with
    /// `--testing-lazy` (the deployment then draws all three, two deciding).
    pub lazy_mediator: bool,
    /// Services reach anvil through a [`TcpProxy`] the test can take down.
    pub proxy: bool,
    /// The services reach anvil through a [`FaultyRpc`] failing requests as planned (so do
    /// `lilypad` commands the test runs, which read the same chains.toml); the test's own calls
    /// through [`Stack::chain`] go straight to anvil.
    pub rpc_faults: Option<FaultPlan>,
    /// chains.toml's poll_interval for the chain.
    pub poll_interval: &'static str,
    /// More arguments for `lilypad provider` (e.g. `--cpu-millis`).
    pub provider_args: Vec<String>,
    /// The git repository URL prefixes whose Lilypad modules the solver and provider serve
    /// (`LILYPAD_GIT_MODULES`; the solver mirrors them in the stack's directory).
    pub git_modules: Vec<String>,
    /// More environment for every service and command (e.g. `LILYPAD_IPFS_GATEWAYS`).
    pub env: Vec<(String, String)>,
    /// More settings for `Deploy.s.sol` (e.g. `AUDIT_BPS`).
    pub deploy: Vec<(&'static str, &'static str)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            provider_key: None,
            client_key: dev_keys::CLIENT,
            mediator: false,
            lazy_mediator: false,
            proxy: false,
            rpc_faults: None,
            poll_interval: "200ms",
            provider_args: Vec::new(),
            git_modules: Vec::new(),
            env: Vec::new(),
            deploy: Vec::new(),
        }
    }
}

pub struct Stack {
    pub chain: TestChain,
    pub proxy: Option<TcpProxy>,
    pub faulty: Option<FaultyRpc>,
    _nats: Nats,
    _redis: Redis,
    pub dir: tempfile::TempDir,
    pub lilypad: Address,
    pub provider: Address,
    pub env: Vec<(String, String)>,
    pub services: Vec<(String, Child)>,
    /// The accounts of the mediators started besides `lilypad mediator` with
    /// [`Options::lazy_mediator`]: an honest one, then the lazy one.
    pub extra_mediators: Vec<Address>,
    /// The arguments each service was last started with, for [`Stack::restart`].
    launched: std::collections::BTreeMap<String, Vec<String>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.services {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed test keeps the services' logs and state for a look at what went wrong.
        if std::thread::panicking()
            && let Ok(empty) = tempfile::tempdir()
        {
            let kept = std::mem::replace(&mut self.dir, empty).keep();
            eprintln!("the stack's logs and state are kept in {}", kept.display());
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

/// How long a service may take to start, or a job to reach a state.
const STARTS_WITHIN: Duration = Duration::from_secs(60);
const JOB_STATE_WITHIN: Duration = Duration::from_secs(90);

impl Stack {
    /// Starts anvil, deploys, starts NATS, Redis, the relayer, the solver and the provider (and
    /// the mediator), and returns once the provider offers.
    pub async fn start(options: Options) -> Self {
        ensure_module_images().unwrap();
        let (provider_key, provider) = match options.provider_key {
            Some(key) => (key.to_owned(), address_of(key)),
            None => fresh_key(),
        };
        let provider_text = provider.to_string();
        let extra: Vec<(String, Address)> = if options.lazy_mediator {
            vec![fresh_key(), fresh_key()]
        } else {
            Vec::new()
        };
        let extra_text: Vec<String> = extra.iter().map(|(_, a)| a.to_string()).collect();
        let mut fund: Vec<&str> = dev_keys::ADDRESSES[1..].to_vec();
        fund.extend(dev_keys::MORE_ADDRESSES);
        fund.push(&provider_text);
        fund.extend(extra_text.iter().map(String::as_str));
        let mut settings = if options.lazy_mediator {
            vec![("MEDIATORS_PER_CASE", "3"), ("MEDIATOR_THRESHOLD", "2")]
        } else {
            vec![("MEDIATORS_PER_CASE", "1"), ("MEDIATOR_THRESHOLD", "1")]
        };
        settings.extend(options.deploy.iter().copied());
        let chain = TestChain::deploy_on(Anvil::start(31337).unwrap(), &fund, &settings);
        chain.fund_eth(provider);
        for (_, a) in &extra {
            chain.fund_eth(*a);
        }
        let proxy = options
            .proxy
            .then(|| TcpProxy::start(chain.anvil.service.port()).unwrap());
        let faulty = options
            .rpc_faults
            .clone()
            .map(|plan| FaultyRpc::start(&chain.url(), plan).unwrap());
        let rpc = match (&proxy, &faulty) {
            (Some(p), _) => p.url(),
            (None, Some(f)) => f.url(),
            (None, None) => chain.url(),
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deploy.json"), chain.deployment.to_string()).unwrap();
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
        let mut env: Vec<(String, String)> = [
            (
                "LILYPAD_CHAINS",
                dir.path().join("chains.toml").display().to_string(),
            ),
            ("LILYPAD_NATS", nats.url()),
            ("LILYPAD_REDIS", redis.url()),
            ("LILYPAD_MODULES", modules()),
            ("LILYPAD_RELAYER_KEY", dev_keys::RELAYER.to_owned()),
            ("LILYPAD_PROVIDER_KEY", provider_key),
            ("LILYPAD_MEDIATOR_KEY", dev_keys::MEDIATOR.to_owned()),
            ("LILYPAD_CLIENT_KEY", options.client_key.to_owned()),
            (
                "RUST_LOG",
                std::env::var("LILYPAD_E2E_LOG").unwrap_or_else(|_| "info".to_owned()),
            ),
            (
                "LILYPAD_MEDIATOR_2_KEY",
                extra.first().map(|(k, _)| k.clone()).unwrap_or_default(),
            ),
            (
                "LILYPAD_MEDIATOR_LAZY_KEY",
                extra.get(1).map(|(k, _)| k.clone()).unwrap_or_default(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(options.env.iter().cloned());
        if !options.git_modules.is_empty() {
            env.push((
                "LILYPAD_GIT_MODULES".to_owned(),
                options.git_modules.join(","),
            ));
        }
        let mut stack = Self {
            lilypad: chain.lilypad,
            chain,
            proxy,
            faulty,
            _nats: nats,
            _redis: redis,
            dir,
            provider,
            env,
            services: Vec::new(),
            extra_mediators: extra.iter().map(|(_, a)| *a).collect(),
            launched: Default::default(),
        };
        stack.spawn("relayer", &["relayer"]);
        let solver_git = stack.dir.path().join("solver-git").display().to_string();
        stack.spawn("solver", &["solver", "--git-cache", &solver_git]);
        if options.mediator {
            stack.spawn_mediator("mediator", &[]).await;
            if options.lazy_mediator {
                stack
                    .spawn_mediator("mediator-2", &["--key-env", "LILYPAD_MEDIATOR_2_KEY"])
                    .await;
                stack
                    .spawn_mediator(
                        "mediator-lazy",
                        &["--key-env", "LILYPAD_MEDIATOR_LAZY_KEY", "--testing-lazy"],
                    )
                    .await;
            }
        }
        let extra: Vec<&str> = options.provider_args.iter().map(String::as_str).collect();
        stack.start_provider(&extra).await;
        stack
    }

    /// Starts `lilypad mediator` as service `name` (with a stake of 20 tokens and a state
    /// directory of its own, and `extra` arguments) and waits until it runs.
    pub async fn spawn_mediator(&mut self, name: &str, extra: &[&str]) {
        let state = self.dir.path().join(format!("{name}-state"));
        let state = state.display().to_string();
        let mut args = vec![
            "mediator",
            "--collateral",
            "20000000000000000000",
            "--metadata",
            "http://127.0.0.1/test-mediator",
            "--state-dir",
            &state,
        ];
        args.extend_from_slice(extra);
        self.spawn(name, &args);
        self.wait_for_log(name, "mediator running").await;
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
        self.launched.insert(
            name.to_owned(),
            args.iter().map(|a| (*a).to_owned()).collect(),
        );
    }

    /// Starts service `name` again with the arguments it was last started with (after
    /// [`Stack::kill`]), without waiting for it to be ready.
    pub fn restart(&mut self, name: &str) {
        let args = self.launched[name].clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn(name, &args);
    }

    /// Starts `lilypad provider` with `extra` arguments and waits until it offers.
    pub async fn start_provider(&mut self, extra: &[&str]) {
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
        self.wait_for_log_times("provider", "provider running", before + 1)
            .await;
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

    /// `lilypad run ARGS --chain dev` with a 600 s challenge window and 2x results collateral,
    /// which must end looking like a success (a lying provider's result does): what it printed.
    pub fn run_challengeable(&self, args: &[&str]) -> String {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend([
            "--chain",
            "dev",
            "--challenge-window",
            "600",
            "--results-collateral-bps",
            "20000",
        ]);
        let out = self.command(&all).output().unwrap();
        let t = text(&out);
        assert!(out.status.success(), "the lie looks like a success:\n{t}");
        t
    }

    /// `lilypad challenge dev JOB`, which must succeed with the verdict "overturned by mediation"
    /// and leave the job `Overturned`; `context` (e.g. the run's output) is shown on failure.
    pub async fn challenge_overturned(&self, job: u64, context: &str) {
        let out = self
            .command(&["challenge", "dev", &job.to_string()])
            .output()
            .unwrap();
        let c = text(&out);
        assert!(
            out.status.success(),
            "{c}\n{context}\nmediator:\n{}",
            self.log("mediator")
        );
        assert!(c.contains("verdict:  overturned by mediation"), "{c}");
        assert_eq!(self.state(job).await, JobStatus::Overturned);
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Waits until service `name` has logged `needle`.
    pub async fn wait_for_log(&self, name: &str, needle: &str) {
        self.wait_for_log_times(name, needle, 1).await;
    }

    /// Waits until service `name` has logged `needle` `times` times (a restarted service's log
    /// follows its earlier lives' in the same file).
    pub async fn wait_for_log_times(&self, name: &str, needle: &str, times: usize) {
        let what = format!("{name} logs {needle:?} {times} time(s)");
        eventually(STARTS_WITHIN, &what, async || {
            let log = self.log(name);
            ok_if(log.matches(needle).count() >= times, log)
        })
        .await;
    }

    pub fn rpc(&self, method: &str, params: &str) -> serde_json::Value {
        self.chain.rpc(method, params)
    }

    /// Moves the chain's clock forward and mines a block.
    pub fn advance(&self, seconds: u64) {
        self.chain.advance(seconds);
    }

    /// The contract, read straight from anvil (not through the proxy).
    pub async fn lilypad(&self) -> Lilypad::LilypadInstance<alloy::providers::DynProvider> {
        self.chain.lilypad()
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
        let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
        reader(&self.chain.url())
            .get_transaction_count(relayer)
            .await
            .unwrap()
    }

    /// Transactions from the relayer's account, mined or waiting in anvil's pool.
    pub async fn relayer_pending_nonce(&self) -> u64 {
        let relayer: Address = dev_keys::ADDRESSES[3].parse().unwrap();
        reader(&self.chain.url())
            .get_transaction_count(relayer)
            .pending()
            .await
            .unwrap()
    }

    /// Waits until every transaction the relayer sent is mined: none waits in the pool behind a
    /// nonce gap.
    pub async fn wait_no_nonce_gap(&self) {
        lilypad_e2e::eventually_every(
            Duration::from_millis(250),
            Duration::from_secs(60),
            "the relayer has nothing left in the pool",
            async || {
                let (mined, pending) = (
                    self.relayer_nonce().await,
                    self.relayer_pending_nonce().await,
                );
                if mined == pending {
                    Ok(())
                } else {
                    Err(format!("mined nonce {mined}, pending nonce {pending}"))
                }
            },
        )
        .await;
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
        let what = format!("job {job} reaches state {wanted}");
        eventually(JOB_STATE_WITHIN, &what, async || {
            let state = self.state(job).await;
            ok_if(state == wanted, Stuck { state, stack: self })
        })
        .await;
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

/// A job's state, with the services' logs when it is shown (only then are they read).
struct Stuck<'a> {
    state: JobStatus,
    stack: &'a Stack,
}

impl std::fmt::Display for Stuck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "state {}", self.state)?;
        for name in [
            "relayer",
            "solver",
            "provider",
            "mediator",
            "mediator-2",
            "mediator-lazy",
        ] {
            write!(f, "\n{name}:\n{}", self.stack.log(name))?;
        }
        Ok(())
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
