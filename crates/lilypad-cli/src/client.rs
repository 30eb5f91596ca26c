//! `lilypad run` and `lilypad job`: Lilypad as a client sees it.

use std::io::Write;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use anyhow::{Context, Result, bail};
use lilypad_bindings::{Lilypad, LilypadToken};
use lilypad_bus::{Bus, BusOptions};
use lilypad_config::ChainConfig;
use lilypad_modules::git::{GitCache, GitSource};
use lilypad_modules::lilypad::LilypadPolicy;
use lilypad_types::{AuditState, JobStatus, ModuleId, Offer, Outcome};

use crate::common::{check_chain_id, load_chains, load_key, reader, send_once, wallet};
use crate::{ChallengeArgs, Global, JobArgs, ModuleIdArgs, RedeliverArgs, RunArgs};

/// A job state number as `lilypad run` and `lilypad job` print it.
fn state(n: u8) -> &'static str {
    JobStatus::from_u8(n).map_or("?", JobStatus::describe)
}

/// A callback outcome number as `lilypad job` prints it.
fn outcome(n: u8) -> &'static str {
    Outcome::from_u8(n).map_or("?", Outcome::describe)
}

/// `KEY=VALUE` split at the first `=`, so values may hold `=` themselves.
pub fn parse_input(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE (e.g. -i message=hello)")),
    }
}

pub(crate) fn chain<'c>(
    config: &'c lilypad_config::ChainsConfig,
    name: &str,
) -> Result<&'c ChainConfig> {
    config.chain(name).with_context(|| {
        let known: Vec<&str> = config.chains.iter().map(|c| c.name.as_str()).collect();
        format!(
            "no chain named {name:?} in chains.toml (it has: {})",
            known.join(", ")
        )
    })
}

/// An account connected to one chain: what `run`, `challenge` and `stake` share.
pub(crate) struct Session {
    pub(crate) chain: ChainConfig,
    pub(crate) me: Address,
    pub(crate) provider: DynProvider,
    /// The account's key, for the transactions `send` signs itself.
    key: alloy::network::EthereumWallet,
    contracts: lilypad_config::Contracts,
}

impl Session {
    /// Connects `role`'s account (named in key errors: "client", "mediator") to `chain_name`.
    pub(crate) async fn open(
        global: &Global,
        chain_name: &str,
        key_env: Option<&str>,
        key_file: Option<&std::path::Path>,
        role: &str,
    ) -> Result<Self> {
        let config = load_chains(&global.chains)?;
        let chain = chain(&config, chain_name)?.clone();
        let key = load_key(key_env, key_file, role)?;
        let me = key.address();
        let provider = wallet(&chain, key.clone())?;
        check_chain_id(&chain, &provider).await?;
        let contracts = chain.contracts()?;
        Ok(Self {
            chain,
            me,
            provider,
            key: key.into(),
            contracts,
        })
    }

    /// Sends `tx` from this account exactly once (see [`send_once`]) and waits for its receipt.
    pub(crate) async fn send(
        &self,
        tx: alloy::rpc::types::TransactionRequest,
        what: &str,
    ) -> Result<alloy::rpc::types::TransactionReceipt> {
        send_once(
            &self.provider,
            &self.key,
            self.me,
            self.chain.chain_id,
            tx,
            what,
        )
        .await
    }

    /// [`Session::send`], and an error naming `what` and the transaction when it reverted.
    pub(crate) async fn send_succeeded(
        &self,
        tx: alloy::rpc::types::TransactionRequest,
        what: &str,
    ) -> Result<alloy::rpc::types::TransactionReceipt> {
        let receipt = self.send(tx, what).await?;
        if !receipt.status() {
            bail!("{what} transaction {} reverted", receipt.transaction_hash);
        }
        Ok(receipt)
    }

    pub(crate) fn lilypad(&self) -> Lilypad::LilypadInstance<&DynProvider> {
        Lilypad::new(self.contracts.lilypad, &self.provider)
    }

    /// Checks the account holds `amount` tokens and lets the Lilypad contract pull them;
    /// `what` names the amount in the error (e.g. "the max price").
    async fn allow(&self, amount: U256, what: &str, fix: &str) -> Result<()> {
        let token = match self.contracts.token {
            Some(t) => t,
            None => self.lilypad().token().call().await?,
        };
        let token = LilypadToken::new(token, &self.provider);
        let me = self.me;
        let balance = token.balanceOf(me).call().await?;
        if balance < amount {
            bail!("{me} holds {balance} tokens, less than {what} {amount}: {fix}");
        }
        if token.allowance(me, self.contracts.lilypad).call().await? < amount {
            let approve = token
                .approve(self.contracts.lilypad, amount)
                .into_transaction_request();
            self.send(approve, "the token approval").await?;
        }
        Ok(())
    }
}

/// The modules (name and version) that providers offer now on `chain_id`'s Lilypad contract
/// `lilypad`, as they announce them on NATS, sorted; and the URL prefixes of the git
/// repositories whose Lilypad modules they run.
async fn offered_modules(
    global: &Global,
    chain_id: u64,
    lilypad: Address,
) -> Result<(Vec<ModuleId>, Vec<String>)> {
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "cannot check which modules providers offer: NATS at {} {why}; start it (or point --nats \
             at the market's), or pass --any-module to request the job unchecked",
            global.nats
        )
    };
    let bus = tokio::time::timeout(
        OFFERS_WITHIN,
        Bus::connect(&global.nats, BusOptions::default()),
    )
    .await
    .map_err(|_| unreachable(format!("did not answer within {OFFERS_WITHIN:?}")))?
    .map_err(|e| unreachable(format!("failed: {e}")))?;
    let (offers, _undecodable) = bus
        .offers::<Offer>()
        .await
        .map_err(|e| unreachable(format!("failed: {e}")))?;
    let serving: Vec<Offer> = offers
        .into_iter()
        .map(|(_, o)| o)
        .filter(|o| {
            o.chains
                .iter()
                .any(|c| c.chain_id == chain_id && c.lilypad == lilypad)
        })
        .collect();
    let mut prefixes: Vec<String> = serving
        .iter()
        .flat_map(|o| o.git_modules.iter().map(|g| g.prefix.clone()))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let mut modules: Vec<ModuleId> = serving
        .into_iter()
        .flat_map(|o| o.modules.into_iter().map(|m| m.module))
        .collect();
    modules.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    modules.dedup();
    Ok((modules, prefixes))
}

/// Refuses a Lilypad module from a repository no provider serves, naming those served.
fn check_git_offered(prefixes: &[String], chain: &str, url: &str) -> Result<()> {
    if prefixes.iter().any(|p| url.starts_with(p.as_str())) {
        return Ok(());
    }
    let served = if prefixes.is_empty() {
        "none".to_owned()
    } else {
        prefixes.join(", ")
    };
    bail!(
        "no provider on {chain} runs Lilypad modules from {url} (git repositories served now: {served}). \
         Nothing was escrowed; pass --any-module to request it anyway"
    )
}

/// The module and version a request carries for `args`: this project's `name` and `--version`,
/// or a Lilypad module from git bound to its commit (a tag resolved now), its template
/// rendered here with the inputs first so that a module that cannot render is refused before
/// anything is escrowed.
fn request_module(args: &RunArgs) -> Result<(String, String, bool)> {
    let Some(source) = GitSource::parse(&args.module, &args.lilypad_module_base)? else {
        let version = args.version.clone().unwrap_or_else(|| "1.0.0".to_owned());
        return Ok((args.module.clone(), version, false));
    };
    if let Some(v) = &args.version {
        bail!(
            "--version {v} does not apply to a git module: its revision follows @ (e.g. {}@<tag or commit>)",
            source.url
        );
    }
    let cache = GitCache::new(&args.git_cache);
    let bound = cache.bind(&source).map_err(|e| {
        let shortcut = !args.module.contains('/');
        match args.module.split_once(':') {
            Some((name, version)) if shortcut => anyhow::anyhow!(
                "{e}\n{}: Lilypad's shortcut for {source}; for this project's module {name}, write `lilypad run {name} --version {version}`",
                args.module
            ),
            _ => e.into(),
        }
    })?;
    let template = cache.template(&bound)?;
    let inputs = args.inputs.iter().cloned().collect();
    lilypad_modules::load_template(
        &bound,
        &template,
        &inputs,
        LilypadPolicy {
            allow_network: true,
        },
    )?;
    if bound.commit != source.rev {
        eprintln!("{source}: {} is commit {}", source.rev, bound.commit);
    }
    Ok((bound.module().to_owned(), bound.version(), true))
}

fn load_modules(dirs: &[std::path::PathBuf]) -> Result<lilypad_modules::ModuleRegistry> {
    let dirs: Vec<&std::path::Path> = dirs.iter().map(|p| p.as_path()).collect();
    Ok(lilypad_modules::ModuleRegistry::load_dirs(&dirs)?)
}

/// The module id `lilypad run` pins and whether the request is deterministic: from --module-id,
/// else the definition under --modules (a git module: its repository, commit and path); zero
/// and not deterministic with --unpinned, or with --any-module for a module not found there.
fn request_pin(args: &RunArgs, module: &str, version: &str) -> Result<(B256, bool)> {
    if args.unpinned {
        return Ok((B256::ZERO, false));
    }
    if let Some(id) = args.module_id {
        return Ok((id, args.deterministic));
    }
    let registry = load_modules(&args.modules.dirs)?;
    match registry.pin(module, version) {
        Ok(pin) => Ok(pin),
        Err(e) if args.any_module => {
            eprintln!(
                "requesting {module} {version} unpinned (its result cannot be challenged): {e}"
            );
            Ok((B256::ZERO, false))
        }
        Err(e) => bail!(
            "{e}\nNothing was escrowed. `lilypad run` pins the job to the id of the module's definition: pass --modules DIR holding it, --module-id with the id providers run, or --unpinned (any definition; the result cannot be challenged)"
        ),
    }
}

/// `lilypad module id`: prints the id of a module's definition.
pub fn module_id(args: &ModuleIdArgs) -> Result<()> {
    let version = args.version.clone().unwrap_or_else(|| "1.0.0".to_owned());
    let registry = load_modules(&args.modules.dirs)?;
    let (id, deterministic) = registry.pin(&args.name, &version)?;
    println!("{id}");
    if args.canonical
        && let Ok(module) = registry.get(&args.name, &version)
    {
        println!("{}", module.canonical());
    }
    eprintln!(
        "{} {version}: {}",
        args.name,
        if deterministic {
            "deterministic (its results can be challenged)"
        } else {
            "not deterministic (its results cannot be challenged)"
        }
    );
    Ok(())
}

/// How long `lilypad run` waits for NATS when it checks the offered modules.
const OFFERS_WITHIN: Duration = Duration::from_secs(10);

/// Refuses a module and version that no provider offers, naming what is offered.
fn check_offered(offered: &[ModuleId], chain: &str, module: &str, version: &str) -> Result<()> {
    if offered
        .iter()
        .any(|m| m.name == module && m.version == version)
    {
        return Ok(());
    }
    let versions: Vec<&str> = offered
        .iter()
        .filter(|m| m.name == module)
        .map(|m| m.version.as_str())
        .collect();
    let why = if !versions.is_empty() {
        format!(
            "no provider on {chain} offers {module} {version}; it is offered in version {} (use --version)",
            versions.join(", ")
        )
    } else if offered.is_empty() {
        format!("no provider on {chain} offers any module now (is a provider running?)")
    } else {
        let all: Vec<String> = offered
            .iter()
            .map(|m| format!("{} {}", m.name, m.version))
            .collect();
        format!(
            "no provider on {chain} offers module {module:?}; offered now: {}",
            all.join(", ")
        )
    };
    bail!("{why}. Nothing was escrowed; pass --any-module to request it anyway")
}

/// This machine's lock on an account's transactions on one chain, held from the allowance check
/// to the request's receipt, so that several `lilypad run` of one account neither take each
/// other's allowance nor the same nonce. Released when dropped.
struct AccountLock(#[allow(dead_code)] std::fs::File);

async fn lock_account(chain_id: u64, account: Address) -> Result<AccountLock> {
    let path = std::env::temp_dir().join(format!("lilypad-{chain_id}-{account:#x}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the account lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(AccountLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => eprintln!(
            "waiting for another lilypad command of {account} to send its transactions ..."
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    tokio::task::spawn_blocking(move || file.lock().map(|()| AccountLock(file)))
        .await
        .context("waiting for the account lock")?
        .with_context(|| format!("locking {}", path.display()))
}

/// The results collateral multiplier to request and the premium of the extra audit rate:
/// `asked` (`--results-collateral-bps`), or, when it is 0 (the protocol's minimum) and
/// deterministic results are audited (at the protocol's rate plus `extra_audit_bps`), the least
/// that rate demands (`AuditState::collateral_floor_bps`). A value below that, or an extra rate
/// the contract would refuse, is refused here, before anything is escrowed, naming what to pass.
async fn results_collateral_bps(
    lilypad: &Lilypad::LilypadInstance<&DynProvider>,
    asked: u32,
    deterministic: bool,
    extra_audit_bps: u16,
) -> Result<(u32, U256)> {
    if !deterministic {
        if extra_audit_bps != 0 {
            bail!(
                "--extra-audit-bps {extra_audit_bps}: only a deterministic job can be audited; pin a deterministic module (--module-id with --deterministic) or leave it out"
            );
        }
        return Ok((asked, U256::ZERO));
    }
    let params = lilypad
        .params()
        .call()
        .await
        .context("reading the protocol's parameters (params)")?;
    let protocol_bps = params.auditBps;
    let Some(audit_bps) = protocol_bps
        .checked_add(extra_audit_bps)
        .filter(|total| *total <= 10_000)
    else {
        bail!(
            "--extra-audit-bps {extra_audit_bps} with the protocol's {protocol_bps} bps is above 100%; pass at most {}",
            10_000 - protocol_bps
        );
    };
    let premium = if extra_audit_bps == 0 {
        U256::ZERO
    } else {
        lilypad
            .auditPremium(U256::from(extra_audit_bps))
            .call()
            .await
            .context("reading the extra audit rate's premium (auditPremium)")?
    };
    let floor = AuditState::collateral_floor_bps(audit_bps);
    let rate = f64::from(audit_bps) / 100.0;
    let whose = if extra_audit_bps == 0 {
        "the protocol audits"
    } else {
        "with the rate you buy, the protocol audits"
    };
    if asked == 0 && floor > 0 {
        eprintln!(
            "note: {whose} {rate}% of deterministic results, so the provider locks {floor} bps of the price as results collateral, the least that makes cheating unprofitable (docs/economics.md)"
        );
        return Ok((floor, premium));
    }
    if asked < floor {
        bail!(
            "--results-collateral-bps {asked} is below the {floor} bps that an audit rate of {rate}% demands of a deterministic job, so the contract would refuse the request; pass --results-collateral-bps {floor} or more, leave it out for exactly {floor}, or buy a higher rate with --extra-audit-bps"
        );
    }
    Ok((asked, premium))
}

/// What the request asks of its provider, checked as `runJob` does, before anything is read.
fn check_provider_filter(args: &RunArgs) -> Result<()> {
    if args.providers.len() > 16 {
        bail!(
            "{} --provider given; a request names at most 16",
            args.providers.len()
        );
    }
    if args.min_reliability_bps > 10_000 {
        bail!(
            "--min-reliability-bps {} is above 10000 (100%)",
            args.min_reliability_bps
        );
    }
    Ok(())
}

pub async fn run(global: &Global, args: &RunArgs) -> Result<()> {
    check_provider_filter(args)?;
    let (module, version, git) = request_module(args)?;
    let session = Session::open(
        global,
        &args.chain,
        args.key_env.as_deref(),
        args.key_file.as_deref(),
        "client",
    )
    .await?;
    let (chain, provider, contracts) = (&session.chain, &session.provider, &session.contracts);
    if !args.any_module {
        let (offered, prefixes) =
            offered_modules(global, chain.chain_id, contracts.lilypad).await?;
        if git {
            check_git_offered(&prefixes, &chain.name, &module)?;
        } else {
            check_offered(&offered, &chain.name, &module, &version)?;
        }
    }
    let (module_id, deterministic) = request_pin(args, &module, &version)?;
    if args.challenge_window > 0 && !deterministic {
        eprintln!(
            "note: {module} {version} is requested as not deterministic, so its result cannot be challenged despite --challenge-window"
        );
    }
    let lilypad = session.lilypad();
    let (results_collateral_bps, premium) = results_collateral_bps(
        &lilypad,
        args.results_collateral_bps,
        deterministic,
        args.extra_audit_bps,
    )
    .await?;
    let max_price = U256::from(args.max_price);
    let lock = lock_account(chain.chain_id, session.me).await?;
    let (what, fix) = if premium.is_zero() {
        ("the max price", "fund it, or lower --max-price")
    } else {
        (
            "the max price and the extra audit rate's premium",
            "fund it, or lower --max-price or --extra-audit-bps",
        )
    };
    session.allow(max_price + premium, what, fix).await?;
    let request = Lilypad::JobRequest {
        module,
        version,
        moduleId: module_id,
        deterministic,
        inputs: args
            .inputs
            .iter()
            .map(|(k, v)| Lilypad::InputParam {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        maxPrice: max_price,
        matchTimeout: args.match_timeout,
        executionTimeout: args.execution_timeout,
        callbackGasLimit: 0,
        maxOutputBytes: args.max_output_bytes,
        resultsCollateralMultiplierBps: results_collateral_bps,
        challengeWindow: args.challenge_window,
        extraAuditBps: args.extra_audit_bps,
        providers: args.providers.clone(),
        minDelivered: args.min_delivered,
        minReliabilityBps: args.min_reliability_bps,
    };
    let started = Instant::now();
    let receipt = session
        .send(
            lilypad.runJob(request).into_transaction_request(),
            "the job request (runJob)",
        )
        .await?;
    drop(lock);
    let job = receipt
        .decoded_log::<Lilypad::JobRequested>()
        .context("runJob succeeded but emitted no JobRequested event")?
        .data
        .jobId;
    eprintln!(
        "job {job} requested on {} (tx {})",
        chain.name, receipt.transaction_hash
    );
    let budget =
        Duration::from_secs(u64::from(args.match_timeout) + u64::from(args.execution_timeout) + 60);
    let mut last = 0u8;
    loop {
        let state = lilypad.getJob(job).call().await?.status;
        if state != last {
            eprintln!(
                "  [{:>6.1}s] {}",
                started.elapsed().as_secs_f64(),
                self::state(state)
            );
            last = state;
        }
        if state >= JobStatus::ResultSubmitted.as_u8() {
            break;
        }
        if started.elapsed() > budget {
            bail!(
                "job {job} is still {} after {budget:?}; see `lilypad job {} {job}`",
                self::state(state),
                chain.name
            );
        }
        eprint!(".");
        let _ = std::io::stderr().flush();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!();
    let ok = print_job(provider, contracts.lilypad, chain, job).await?;
    if last == JobStatus::ResultSubmitted.as_u8() && args.challenge_window > 0 {
        println!(
            "you may challenge this result for {} s: lilypad challenge {} {job}",
            args.challenge_window, chain.name
        );
    }
    if ok { Ok(()) } else { std::process::exit(2) }
}

/// `lilypad challenge`: checks the job can be challenged by this account (its client, a result
/// inside the challenge window), pays the mediation fee, challenges, and waits for the verdict.
pub async fn challenge(global: &Global, args: &ChallengeArgs) -> Result<()> {
    let session = Session::open(
        global,
        &args.chain,
        args.key_env.as_deref(),
        args.key_file.as_deref(),
        "client",
    )
    .await?;
    let (chain, provider, me) = (&session.chain, &session.provider, session.me);
    let lilypad = session.lilypad();
    let id = U256::from(args.id);
    let job = lilypad.getJob(id).call().await?;
    if job.state() == Some(JobStatus::None) {
        bail!("there is no job {id} on {}", chain.name);
    }
    if job.state() != Some(JobStatus::ResultSubmitted) {
        bail!(
            "job {id} cannot be challenged: it is {} (only a submitted result, inside its challenge window, can be)",
            state(job.status)
        );
    }
    if job.client != me {
        bail!(
            "job {id} was requested by {}, not by {me}: only its client may challenge it (use that account's key)",
            job.client
        );
    }
    if !job.deterministic {
        bail!(
            "job {id} cannot be challenged: it was not requested as deterministic (its module is not deterministic, or was not pinned), so a re-run could not judge its result; the result stands"
        );
    }
    let now = lilypad_chain::chain_time(provider).await?;
    if now >= job.deadline.to::<u64>() {
        bail!(
            "job {id}'s challenge window closed at chain time {} (now {now}); the result stands",
            job.deadline
        );
    }
    if lilypad.mediation().call().await? == Address::ZERO {
        bail!(
            "the Lilypad contract on {} has no mediation configured: challenges are not possible there",
            chain.name
        );
    }
    let params = lilypad.params().call().await?;
    let fee = U256::from(params.mediationFee);
    let lock = lock_account(chain.chain_id, me).await?;
    session
        .allow(fee, "the mediation fee", "fund it first")
        .await?;
    let receipt = session
        .send_succeeded(
            lilypad.challenge(id).into_transaction_request(),
            "the challenge",
        )
        .await?;
    drop(lock);
    eprintln!(
        "job {id} challenged on {} (fee {fee}, tx {}); mediators re-run it",
        chain.name, receipt.transaction_hash
    );
    if args.no_wait {
        return Ok(());
    }
    let budget = Duration::from_secs(u64::from(params.mediationTimeout) + 60);
    let started = Instant::now();
    let outcome = loop {
        let s = lilypad.getJob(id).call().await?.status;
        if s != JobStatus::Challenged.as_u8() {
            break s;
        }
        if started.elapsed() > budget {
            bail!(
                "no verdict on job {id} after {budget:?}; once the mediation deadline is past, anyone may call resolveStaleChallenge({id}), which upholds the result"
            );
        }
        eprint!(".");
        let _ = std::io::stderr().flush();
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!();
    println!(
        "job:      {id} on {} (chain {})",
        chain.name, chain.chain_id
    );
    println!("verdict:  {}", state(outcome));
    println!(
        "credited: {} (withdraw it with the contract's withdraw())",
        lilypad.balanceOf(me).call().await?
    );
    Ok(())
}

/// `lilypad redeliver`: hands a job's failed callback over once more (`redeliverCallback`), the
/// result read from its `ResultSubmitted` event.
pub async fn redeliver(global: &Global, args: &RedeliverArgs) -> Result<()> {
    let session = Session::open(
        global,
        &args.chain,
        args.key_env.as_deref(),
        args.key_file.as_deref(),
        "client",
    )
    .await?;
    let (chain, provider) = (&session.chain, &session.provider);
    let lilypad = session.lilypad();
    let id = U256::from(args.id);
    let job = lilypad.getJob(id).call().await?;
    if job.state() == Some(JobStatus::None) {
        bail!("there is no job {id} on {}", chain.name);
    }
    let failed = lilypad.failedCallback(id).call().await?;
    if failed.status == Outcome::None.as_u8() {
        bail!(
            "job {id} has no failed callback to re-deliver: its callbacks were delivered or skipped, or a verdict superseded the one that failed"
        );
    }
    if failed.redelivered {
        bail!(
            "job {id}'s failed {} callback was re-delivered already: a failed callback is handed over once more at most",
            outcome(failed.status)
        );
    }
    let limit = job.callbackGasLimit;
    let gas = args.gas.unwrap_or(limit.saturating_mul(2));
    if gas < limit {
        bail!("--gas {gas} is below job {id}'s callbackGasLimit {limit}: give it at least that");
    }
    let (result, output) = if failed.status <= Outcome::ProviderError.as_u8() {
        let ev = submitted(provider, *lilypad.address(), chain, id)
            .await?
            .with_context(|| format!("job {id}'s failed callback carried a result, but no ResultSubmitted event for it was found from block {}", chain.start_block))?;
        (ev.result, ev.output)
    } else {
        // Only the job id is read for an outcome that carries no result.
        let none = Lilypad::ResultData {
            jobId: id,
            status: 0,
            resultCid: Default::default(),
            exitCode: 0,
            error: String::new(),
        };
        (none, Default::default())
    };
    let receipt = session
        .send_succeeded(
            lilypad
                .redeliverCallback(result, output, gas)
                .into_transaction_request(),
            "the re-delivery",
        )
        .await?;
    let delivered = receipt
        .decoded_log::<Lilypad::CallbackDelivered>()
        .is_some();
    let what = outcome(failed.status);
    if delivered {
        println!(
            "job {id}'s {what} callback delivered on {} with {gas} gas (tx {})",
            chain.name, receipt.transaction_hash
        );
        Ok(())
    } else {
        bail!(
            "job {id}'s {what} callback failed again with {gas} gas (tx {}); it cannot be re-delivered again: read the result with `lilypad job {} {id}`",
            receipt.transaction_hash,
            chain.name
        )
    }
}

/// The latest `ResultSubmitted` event of `job` (from the chain's start block).
async fn submitted(
    provider: &DynProvider,
    lilypad: Address,
    chain: &ChainConfig,
    job: U256,
) -> Result<Option<Lilypad::ResultSubmitted>> {
    let filter = Filter::new()
        .address(lilypad)
        .event_signature(Lilypad::ResultSubmitted::SIGNATURE_HASH)
        .topic1(job)
        .from_block(chain.start_block);
    let logs = provider.get_logs(&filter).await?;
    match logs.last() {
        Some(log) => Ok(Some(
            log.log_decode::<Lilypad::ResultSubmitted>()?.inner.data,
        )),
        None => Ok(None),
    }
}

pub async fn job(global: &Global, args: &JobArgs) -> Result<()> {
    let config = load_chains(&global.chains)?;
    let chain = chain(&config, &args.chain)?;
    let provider = reader(chain)?;
    check_chain_id(chain, &provider).await?;
    let lilypad = chain.contracts()?.lilypad;
    print_job(&provider, lilypad, chain, U256::from(args.id)).await?;
    Ok(())
}

/// Where the protocol's audit of job `job` (`j`) stands, as `lilypad job` prints it: opened (the
/// job is or was in mediation because of it, not because its client challenged), or its draw
/// while the result waits. `None` for a job that was never to be audited.
async fn audit_line(
    l: &Lilypad::LilypadInstance<&DynProvider>,
    job: U256,
    j: &Lilypad::Job,
) -> Result<Option<String>> {
    let mediated = matches!(
        j.state(),
        Some(JobStatus::Challenged | JobStatus::Settled | JobStatus::Overturned)
    );
    if mediated {
        let auditor = l.getChallenge(job).call().await?.auditor;
        if auditor != Address::ZERO {
            return Ok(Some(format!(
                "opened by {auditor}: the protocol audits this result (no challenge by its client)"
            )));
        }
    }
    if j.auditBps == 0 || j.state() != Some(JobStatus::ResultSubmitted) {
        return Ok(None);
    }
    let rate = f64::from(j.auditBps) / 100.0;
    let drawn = match AuditState::from_u8(l.auditState(job).call().await?) {
        // a job with a rate whose result waits has nothing left to draw once its pass is recorded
        Some(AuditState::None) => AuditState::Clear.describe().to_owned(),
        Some(a) => a.describe().to_owned(),
        None => "unknown to this build".to_owned(),
    };
    Ok(Some(format!("{drawn} ({rate}% chance)")))
}

/// Prints what is known of a job; true when it succeeded.
async fn print_job(
    provider: &DynProvider,
    lilypad: Address,
    chain: &ChainConfig,
    job: U256,
) -> Result<bool> {
    let l = Lilypad::new(lilypad, provider);
    let j = l.getJob(job).call().await?;
    if j.state() == Some(JobStatus::None) {
        bail!("there is no job {job} on {}", chain.name);
    }
    println!(
        "job:      {job} on {} (chain {})",
        chain.name, chain.chain_id
    );
    println!("state:    {}", state(j.status));
    println!("client:   {}", j.client);
    if j.provider != Address::ZERO {
        println!("provider: {}", j.provider);
        println!("price:    {}", j.price);
    }
    if let Some(audit) = audit_line(&l, job, &j).await? {
        println!("audit:    {audit}");
    }
    let failed = l.failedCallback(job).call().await?;
    if failed.status != Outcome::None.as_u8() {
        let what = outcome(failed.status);
        if failed.redelivered {
            println!("callback: {what} failed, re-delivered once");
        } else {
            println!(
                "callback: {what} failed (re-deliver it with more gas: lilypad redeliver {} {job})",
                chain.name
            );
        }
    }
    let Some(ev) = submitted(provider, lilypad, chain, job).await? else {
        return Ok(false);
    };
    let r = ev.result;
    println!("status:   {}", outcome(r.status));
    println!("cid:      {}", String::from_utf8_lossy(&r.resultCid));
    println!("exit:     {}", r.exitCode);
    if !r.error.is_empty() {
        println!("error:    {}", r.error);
    }
    println!("output:\n{}", String::from_utf8_lossy(&ev.output));
    Ok(r.status == Outcome::Succeeded.as_u8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered() -> Vec<ModuleId> {
        [
            ("cowsay", "1.0.0"),
            ("sha256", "1.0.0"),
            ("sha256", "2.0.0"),
        ]
        .into_iter()
        .map(|(name, version)| ModuleId {
            name: name.into(),
            version: version.into(),
        })
        .collect()
    }

    #[test]
    fn a_git_module_needs_a_provider_serving_a_prefix_of_its_repository() {
        let served = ["https://github.com/Lilypad-Tech/".to_owned()];
        check_git_offered(
            &served,
            "dev",
            "https://github.com/Lilypad-Tech/lilypad-module-cowsay",
        )
        .unwrap();
        let e = check_git_offered(&served, "dev", "https://github.com/someone/m")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no provider on dev runs Lilypad modules from https://github.com/someone/m (git repositories served now: https://github.com/Lilypad-Tech/)")
                && e.contains("Nothing was escrowed"),
            "{e}"
        );
        let e = check_git_offered(&[], "dev", "file:///srv/m.git")
            .unwrap_err()
            .to_string();
        assert!(e.contains("served now: none"), "{e}");
    }

    #[test]
    fn an_offered_module_passes() {
        check_offered(&offered(), "dev", "sha256", "2.0.0").unwrap();
    }

    #[test]
    fn an_unknown_module_is_refused_with_what_is_offered() {
        let e = check_offered(&offered(), "dev", "nosuchmodule", "1.0.0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no provider on dev offers module \"nosuchmodule\""),
            "{e}"
        );
        assert!(
            e.contains("cowsay 1.0.0, sha256 1.0.0, sha256 2.0.0"),
            "{e}"
        );
        assert!(
            e.contains("Nothing was escrowed") && e.contains("--any-module"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_version_names_the_offered_ones() {
        let e = check_offered(&offered(), "dev", "sha256", "9.9.9")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("offered in version 1.0.0, 2.0.0 (use --version)"),
            "{e}"
        );
    }

    #[test]
    fn no_offers_at_all_asks_whether_a_provider_runs() {
        let e = check_offered(&[], "dev", "cowsay", "1.0.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a provider running?"), "{e}");
    }
}
