//! `lilypad`: one binary for operators (relayer, solver, provider, mediator) and for people
//! (run a job, look one up, check a configuration).

mod client;
mod common;
mod provider;
mod relayer;
mod solver;
mod stake;
mod stats;
mod twin;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lilypad",
    version,
    about = "Lilypad: verifiable compute for smart contracts on any EVM chain"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Settings every command shares; each can also come from the environment.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The chains file.
    #[arg(
        long,
        global = true,
        env = "LILYPAD_CHAINS",
        default_value = "chains.toml"
    )]
    pub chains: PathBuf,
    /// NATS server (JetStream on).
    #[arg(
        long,
        global = true,
        env = "LILYPAD_NATS",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
    /// Redis server, for the relayer's state.
    #[arg(
        long,
        global = true,
        env = "LILYPAD_REDIS",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis: String,
}

#[derive(Subcommand)]
enum Command {
    /// Index job requests on every chain and land deals, results, expiries, timeouts, settlements.
    Relayer(RelayerArgs),
    /// Match job requests with providers' offers and broker signed deals.
    Solver(SolverArgs),
    /// Offer this machine's Docker engine (and GPUs) to run jobs.
    Provider(ProviderArgs),
    /// Re-run challenged jobs and vote on their results.
    Mediator(MediatorArgs),
    /// Request a job as an account (EOA), wait for it and print its result.
    Run(RunArgs),
    /// Show a job's state and result.
    Job(JobArgs),
    /// Challenge a job's result: pay the mediation fee, have mediators re-run it, wait for the
    /// verdict.
    Challenge(ChallengeArgs),
    /// Hand a job's failed callback (it reverted or ran out of gas) to its client once more, with
    /// more gas, paid by this account: anyone may, once per failure.
    Redeliver(RedeliverArgs),
    /// A mediator's stake in the mediation contract: show it, take it out in two steps (unbond,
    /// then complete after the unbonding delay), withdraw credited slashed stakes.
    #[command(subcommand)]
    Stake(StakeAction),
    /// Print a provider's on-chain record: results by status, timeouts, challenges and how they
    /// ended, collateral slashed; and its registration and collateral.
    ProviderStats(ProviderStatsArgs),
    /// Check chains.toml and print the chains it serves.
    Chains,
    /// Module definitions: `lilypad module id <name> [--version V]` prints a module's id.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Run a scenario on the market's digital twin (the real contracts, in process): agents'
    /// profits, wrong results accepted, tables, CSV and plots (see twin/ and docs/economics.md).
    Twin(TwinArgs),
}

#[derive(Args, Debug)]
pub struct TwinArgs {
    /// The scenario file (TOML; twin/*.toml are the shipped ones).
    pub scenario: PathBuf,
    /// Folder the tables, CSV and plots go in (a subfolder per scenario name).
    #[arg(long, default_value = "target/twin")]
    pub out: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RelayerArgs {
    /// Serve only these chains (by name; default all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Prefix of the relayer's keys in Redis.
    #[arg(long, env = "LILYPAD_REDIS_PREFIX", default_value = "lilypad")]
    pub redis_prefix: String,
    /// Serve Prometheus metrics at /metrics and health at /health on this address
    /// (e.g. 127.0.0.1:9464).
    #[arg(long, env = "LILYPAD_METRICS")]
    pub metrics: Option<String>,
}

#[derive(Args, Debug)]
pub struct SolverArgs {
    /// Serve only these chains (by name; default all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    #[command(flatten)]
    pub modules: ModuleDirs,
    /// Read the resource needs of Lilypad modules from git repositories whose URL starts with
    /// this prefix (repeatable; as the providers' --git-modules). Jobs naming other
    /// repositories are not matched.
    #[arg(
        long = "git-modules",
        env = "LILYPAD_GIT_MODULES",
        value_delimiter = ','
    )]
    pub git_modules: Vec<String>,
    /// Where the solver mirrors those repositories.
    #[arg(long, default_value = ".lilypad/solver/git-modules")]
    pub git_cache: PathBuf,
    /// How long a provider's on-chain record, read to rank it, is used before it is read again
    /// (e.g. 60s, 500ms).
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    pub record_ttl: std::time::Duration,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    lilypad_config::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 60s, 500ms, 5m)"))
}

fn parse_price(text: &str) -> Result<(String, u128), String> {
    let (m, p) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not MODULE=PRICE"))?;
    Ok((
        m.to_owned(),
        p.parse()
            .map_err(|_| format!("{p:?} is not a whole number of token units"))?,
    ))
}

/// What a provider and a mediator both need: a key, the chains, the modules, a registration.
#[derive(Args, Debug)]
pub struct ComputeArgs {
    /// Environment variable holding the key (default LILYPAD_PROVIDER_KEY for the provider,
    /// LILYPAD_MEDIATOR_KEY for the mediator).
    #[arg(long)]
    pub key_env: Option<String>,
    /// File holding the key (instead of --key-env).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Serve only these chains (by name; default all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    #[command(flatten)]
    pub modules: ModuleDirs,
    /// Run Lilypad modules (lilypad_module.json.tmpl) from git repositories whose URL starts with
    /// this prefix, e.g. https://github.com/Lilypad-Tech/ (repeatable; none by default). Each is
    /// fetched at the commit a job names and kept under the state dir's git-modules/. Priced by
    /// --price PREFIX=PRICE, else --default-price.
    #[arg(
        long = "git-modules",
        env = "LILYPAD_GIT_MODULES",
        value_delimiter = ','
    )]
    pub git_modules: Vec<String>,
    /// Let Lilypad modules from git ask for full network access (`Network.Type: Full`, run on
    /// Docker's bridge); refused by default.
    #[arg(long)]
    pub git_modules_network: bool,
    /// Register on each chain if needed and top free collateral up to this (token base units).
    /// For a mediator: the stake kept free in the mediation contract (at least its
    /// mediatorStake, or it is never drawn).
    #[arg(long)]
    pub collateral: Option<u128>,
    /// Metadata URL published when registering.
    #[arg(long, default_value = "")]
    pub metadata: String,
    /// Where results and job scratch directories are kept (default .lilypad/provider or
    /// .lilypad/mediator).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// IPFS trustless gateway inputs given by CID (`ipfs://<cid>`) are fetched from, e.g.
    /// http://127.0.0.1:8080 or another provider's --serve-results address (repeatable; tried in
    /// order). Every block is checked against the CID; what was fetched is kept in the result
    /// store.
    #[arg(
        long = "ipfs-gateway",
        env = "LILYPAD_IPFS_GATEWAYS",
        value_delimiter = ','
    )]
    pub ipfs_gateways: Vec<String>,
    /// Largest input fetched by CID, e.g. 1GiB (the gateway's CAR, and what it unpacks to).
    #[arg(long, default_value = "1GiB")]
    pub ipfs_max_bytes: String,
    /// Longest one gateway may take to send an input, in seconds.
    #[arg(long, default_value_t = 600)]
    pub ipfs_timeout: u64,
}

#[derive(Args, Debug)]
pub struct ProviderArgs {
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Price per job, in token base units, for modules without their own --price.
    #[arg(long, default_value_t = 1_000_000_000_000_000)]
    pub default_price: u128,
    /// Price of one module: NAME=PRICE or NAME@VERSION=PRICE (repeatable).
    #[arg(long, value_parser = parse_price)]
    pub price: Vec<(String, u128)>,
    /// CPU offered, in thousandths of a core (default: every core).
    #[arg(long)]
    pub cpu_millis: Option<u64>,
    /// Memory offered, e.g. 16GiB (default 4GiB).
    #[arg(long)]
    pub memory: Option<String>,
    /// Serve results over HTTP on this address (e.g. 0.0.0.0:8731): GET /ipfs/<cid>[/<path>],
    /// and GET /ipfs/<cid>?format=car as a trustless gateway (so results can be other jobs'
    /// inputs).
    #[arg(long)]
    pub serve_results: Option<String>,
    /// TESTING ONLY: report altered results (to test challenges and mediation): `whole` (the
    /// default) alters the inline output and the CID, `inline-output` the inline output only. A
    /// provider with this set loses its results collateral on every challenged job.
    #[arg(long, hide = true, value_enum, num_args = 0..=1, default_missing_value = "whole")]
    pub testing_alter_output: Option<AlterOutput>,
}

/// TESTING ONLY: what `--testing-alter-output` alters.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterOutput {
    /// The inline output and the CID.
    Whole,
    /// The inline output only (the CID stays the real one).
    InlineOutput,
}

impl From<AlterOutput> for lilypad_provider::Tamper {
    fn from(a: AlterOutput) -> Self {
        match a {
            AlterOutput::Whole => Self::Whole,
            AlterOutput::InlineOutput => Self::InlineOutput,
        }
    }
}

#[derive(Args, Debug)]
pub struct MediatorArgs {
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// TESTING ONLY: do no work: commit the provider's own claim without re-running the job (to
    /// test slashing). A mediator with this set loses its stake on every overturned result.
    #[arg(long, hide = true)]
    pub testing_lazy: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The module: a name of this project's modules (e.g. cowsay, with --version), or a Lilypad
    /// module from git: <url>@<tag or commit>[:<path>] (e.g.
    /// https://github.com/Lilypad-Tech/lilypad-module-cowsay@v0.0.4), <host>/<owner>/<repo>:<tag
    /// or commit>, or <name>:<tag> for Lilypad's own (<base>/lilypad-module-<name>, see
    /// --lilypad-module-base). A tag is bound to its commit now; the commit is what runs.
    pub module: String,
    /// Module version, for this project's modules (default 1.0.0).
    #[arg(long)]
    pub version: Option<String>,
    /// Where Lilypad's <name>:<tag> shortcut finds its module repositories.
    #[arg(
        long,
        env = "LILYPAD_MODULE_BASE",
        default_value = lilypad_modules::git::DEFAULT_SHORTCUT_BASE
    )]
    pub lilypad_module_base: String,
    /// Where `lilypad run` mirrors the git repositories of the modules it binds.
    #[arg(long, default_value = ".lilypad/client/git-modules")]
    pub git_cache: PathBuf,
    /// An input as KEY=VALUE (repeatable; the value may contain '=' and spaces).
    #[arg(short = 'i', long = "input", value_parser = client::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// The chain, by its name in chains.toml.
    #[arg(long)]
    pub chain: String,
    /// Environment variable holding the client account's key.
    #[arg(long, default_value = "LILYPAD_CLIENT_KEY")]
    pub key_env: Option<String>,
    /// File holding the client account's key (instead of --key-env).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Most you pay, in token base units (escrowed until the job ends).
    #[arg(long, default_value_t = 10_000_000_000_000_000)]
    pub max_price: u128,
    /// Seconds a provider has to take the job.
    #[arg(long, default_value_t = 120)]
    pub match_timeout: u32,
    /// Seconds the provider has to deliver once it took the job.
    #[arg(long, default_value_t = 600)]
    pub execution_timeout: u32,
    /// Most bytes of output to bring back on-chain.
    #[arg(long, default_value_t = 1024)]
    pub max_output_bytes: u32,
    /// Seconds after the result during which you may challenge it (`lilypad challenge`); the
    /// provider is paid when it ends. 0: no challenge, paid at once.
    #[arg(long, default_value_t = 0)]
    pub challenge_window: u32,
    /// Collateral the provider locks against a wrong result, in basis points of the price
    /// (20000 = 2x); slashed if a challenge or an audit overturns the result. 0: the protocol's
    /// minimum (with audits on, the least the audit rate demands of a deterministic job).
    #[arg(long, default_value_t = 0)]
    pub results_collateral_bps: u32,
    /// Buy an audit rate, in basis points, on top of the protocol's (a deterministic job only):
    /// the result is more likely audited, so the least results collateral falls. Costs this many
    /// ten-thousandths of the mediation fee, paid with the max price into the audit fund (back to
    /// you if no result comes).
    #[arg(long, default_value_t = 0)]
    pub extra_audit_bps: u16,
    /// Only this provider may take the job (repeat for up to 16); a deal with another is refused
    /// on-chain, and the solver offers the job to these only.
    #[arg(long = "provider", value_name = "ADDRESS")]
    pub providers: Vec<alloy::primitives::Address>,
    /// Only a provider that has delivered at least this many results (succeeded or failed) may
    /// take the job.
    #[arg(long, default_value_t = 0)]
    pub min_delivered: u32,
    /// Only a provider with at least this share, in basis points, of its deals ended without its
    /// fault (a timeout, a provider error or an overturned result) may take the job. 0: any.
    #[arg(long, default_value_t = 0)]
    pub min_reliability_bps: u16,
    /// Request the job even if no provider offers its module and version now (by default
    /// `lilypad run` reads the providers' offers from NATS first and refuses, escrowing nothing).
    /// A module whose definition is not under --modules is then requested unpinned.
    #[arg(long)]
    pub any_module: bool,
    #[command(flatten)]
    pub modules: ModuleDirs,
    /// Pin this module id (0x and 64 hex digits, as `lilypad module id` prints) instead of
    /// reading the definition from --modules.
    #[arg(long, conflicts_with = "unpinned")]
    pub module_id: Option<alloy::primitives::B256>,
    /// With --module-id: the pinned definition is deterministic, so the result can be challenged.
    #[arg(long, requires = "module_id")]
    pub deterministic: bool,
    /// Request the module unpinned (module id zero): any definition under its name and version
    /// may run it, and its result cannot be challenged.
    #[arg(long)]
    pub unpinned: bool,
}

/// Where module definitions are read (`--modules`, `LILYPAD_MODULES`).
#[derive(Args, Debug, Clone)]
pub struct ModuleDirs {
    /// Directories of module definitions (`<dir>/<name>/<version>.toml`; comma-separated).
    #[arg(
        long = "modules",
        env = "LILYPAD_MODULES",
        value_delimiter = ',',
        default_value = "job-modules"
    )]
    pub dirs: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ModuleCommand {
    /// Print a module's id: the keccak256 of its canonical definition (docs/modules.md), the
    /// value a request pins (and a Solidity client keeps as a constant).
    Id(ModuleIdArgs),
}

#[derive(Args, Debug)]
pub struct ModuleIdArgs {
    /// The module's name (or a Lilypad module's repository URL, with its commit as --version).
    pub name: String,
    /// Its version (default 1.0.0).
    #[arg(long)]
    pub version: Option<String>,
    #[command(flatten)]
    pub modules: ModuleDirs,
    /// Print the canonical definition too (after the id, on its own line).
    #[arg(long)]
    pub canonical: bool,
}

#[derive(Args, Debug)]
pub struct ChallengeArgs {
    /// The chain, by its name in chains.toml.
    pub chain: String,
    /// The job id (yours, with a result inside its challenge window).
    pub id: u64,
    /// Environment variable holding the client account's key.
    #[arg(long, default_value = "LILYPAD_CLIENT_KEY")]
    pub key_env: Option<String>,
    /// File holding the client account's key (instead of --key-env).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Return once the challenge is on-chain instead of waiting for the verdict.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args, Debug)]
pub struct RedeliverArgs {
    /// The chain, by its name in chains.toml.
    pub chain: String,
    /// The job id (one whose latest callback failed).
    pub id: u64,
    /// Gas for the callback this time (default: twice the job's callbackGasLimit; at least that
    /// limit).
    #[arg(long)]
    pub gas: Option<u32>,
    /// Environment variable holding the key of the account that pays (any account).
    #[arg(long, default_value = "LILYPAD_CLIENT_KEY")]
    pub key_env: Option<String>,
    /// File holding that key (instead of --key-env).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

/// Which mediator account, on which chain.
#[derive(Args, Debug)]
pub struct StakeTarget {
    /// The chain, by its name in chains.toml.
    pub chain: String,
    /// Environment variable holding the mediator account's key.
    #[arg(long, default_value = "LILYPAD_MEDIATOR_KEY")]
    pub key_env: Option<String>,
    /// File holding the mediator account's key (instead of --key-env).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum StakeAction {
    /// Print the mediator's free, locked and unbonding stake, whether it is drawable, and what
    /// is credited to it.
    Show(StakeTarget),
    /// First step out: set free stake aside (an amount in token base units, or `all`). It is
    /// paid by `complete` once the contract's unbonding delay (14 days) has passed; a mediator
    /// left with less than the contract's mediatorStake free is not drawn for new cases.
    Unbond {
        #[command(flatten)]
        target: StakeTarget,
        /// Token base units, or `all` for every free unit.
        #[arg(value_parser = parse_unbond_amount)]
        amount: UnbondAmount,
    },
    /// Second step: be paid the unbonding stake, once its delay has passed.
    Complete(StakeTarget),
    /// Withdraw what is credited to the mediator (stakes slashed from others who voted against
    /// the decision).
    Withdraw(StakeTarget),
}

impl StakeAction {
    /// The account and chain the action is for.
    pub fn target(&self) -> &StakeTarget {
        match self {
            Self::Show(t) | Self::Complete(t) | Self::Withdraw(t) => t,
            Self::Unbond { target, .. } => target,
        }
    }
}

/// How much stake `lilypad stake unbond` sets aside.
#[derive(Debug, Clone, Copy)]
pub enum UnbondAmount {
    /// Every free unit.
    All,
    /// This many token base units.
    Amount(u128),
}

fn parse_unbond_amount(text: &str) -> Result<UnbondAmount, String> {
    if text == "all" {
        return Ok(UnbondAmount::All);
    }
    text.parse()
        .map(UnbondAmount::Amount)
        .map_err(|_| format!("{text:?} is neither `all` nor a whole number of token base units"))
}

#[derive(Args, Debug)]
pub struct ProviderStatsArgs {
    /// The chain, by its name in chains.toml.
    pub chain: String,
    /// The provider's address.
    pub address: alloy::primitives::Address,
}

#[derive(Args, Debug)]
pub struct JobArgs {
    /// The chain, by its name in chains.toml.
    pub chain: String,
    /// The job id.
    pub id: u64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The NATS client's connection chatter stays out of `lilypad run`'s output; its
                // warnings (a lost connection) still show. RUST_LOG overrides this.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            // Each service stops when the token is cancelled (Ctrl-C or SIGTERM) and waits for
            // every task it started.
            Command::Relayer(a) => relayer::run(&cli.global, a, common::stop_on_signal()).await,
            Command::Solver(a) => solver::run(&cli.global, a, common::stop_on_signal()).await,
            Command::Provider(a) => {
                provider::run_provider(&cli.global, a, common::stop_on_signal()).await
            }
            Command::Mediator(a) => {
                provider::run_mediator(&cli.global, a, common::stop_on_signal()).await
            }
            Command::Run(a) => client::run(&cli.global, a).await,
            Command::Job(a) => client::job(&cli.global, a).await,
            Command::Challenge(a) => client::challenge(&cli.global, a).await,
            Command::Redeliver(a) => client::redeliver(&cli.global, a).await,
            Command::Stake(a) => stake::stake(&cli.global, a).await,
            Command::ProviderStats(a) => stats::provider_stats(&cli.global, a).await,
            Command::Chains => chains(&cli.global),
            Command::Module(ModuleCommand::Id(a)) => client::module_id(a),
            Command::Twin(a) => twin::run(a),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn chains(global: &Global) -> anyhow::Result<()> {
    let config = common::load_chains(&global.chains)?;
    for c in &config.chains {
        let contracts = match c.contracts() {
            Ok(x) => format!("lilypad {}", x.lilypad),
            Err(e) => format!("contracts not readable yet: {e}"),
        };
        println!(
            "{} (chain {}): {} ; {contracts}",
            c.name,
            c.chain_id,
            c.rpc.join(", ")
        );
    }
    println!(
        "{}: {} chain(s), valid",
        global.chains.display(),
        config.chains.len()
    );
    Ok(())
}
