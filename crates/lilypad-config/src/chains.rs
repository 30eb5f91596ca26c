//! The chains a relayer serves, from `chains.toml`, with environment overrides.
//!
//! ```toml
//! [defaults]                 # optional: applies to every chain that does not set the key itself
//! confirmations = 2
//! signer = { env = "LILYPAD_RELAYER_KEY" }
//!
//! [[chains]]
//! name = "dev-a"
//! chain_id = 31337
//! rpc = "http://127.0.0.1:8545"   # or several of the same chain: ["https://a", "https://b"]
//! deployment = "contracts/deployments/31337.json"   # relative to this file
//! ```
//!
//! Any chain field can be overridden with `LILYPAD_CHAINS_<NAME>_<FIELD>`, where `<NAME>` is the
//! chain's name in upper case with `-` written as `_` (e.g. `LILYPAD_CHAINS_DEV_A_RPC`), and gas and
//! signer fields are `GAS_MAX_FEE_GWEI`, `SIGNER_ENV` and so on; `..._RPC` takes one URL or
//! several separated by commas. A variable with that prefix that matches no chain or no field is
//! an error, so a typo cannot go unnoticed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::Address;

use lilypad_toml::{Field, Raw, type_name, unknown_key};

use crate::error::{ConfigError, LoadError};
use crate::signer::SignerSource;
use crate::value::ChainField;

/// Prefix of the environment variables that override chain fields.
pub const ENV_PREFIX: &str = "LILYPAD_CHAINS_";

/// Every chain the relayer serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainsConfig {
    /// The chains, in file order. Names and chain ids are unique.
    pub chains: Vec<ChainConfig>,
}

/// One chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainConfig {
    /// Short unique name used on the command line and in logs (`[a-z0-9-]`, at most 32).
    pub name: String,
    /// EIP-155 chain id; checked against the RPC endpoint when the relayer connects.
    pub chain_id: u64,
    /// HTTP(S) JSON-RPC endpoints of the chain, at least one, in the order given: every client
    /// connects to all of them (`lilypad_chain::connect`), each call going to the healthiest.
    pub rpc: Vec<String>,
    /// Optional WebSocket endpoint, used to hear of new blocks sooner; polling stays the safety net.
    pub ws: Option<String>,
    /// Where the Lilypad contracts are.
    pub deployment: Deployment,
    /// How far behind the head events are read.
    pub confirmations: Confirmations,
    /// First block to index when no cursor is stored yet.
    pub start_block: u64,
    /// How often the chain is polled for new blocks.
    pub poll_interval: Duration,
    /// Most blocks asked for in one `eth_getLogs` call.
    pub log_chunk_size: u64,
    /// How many blocks the indexer goes back when it notices a reorganisation below its cursor.
    pub reorg_rewind: u64,
    /// How many times the relayer sends one transaction (the first send plus replacements)
    /// before it gives up on it.
    pub max_attempts: u32,
    /// How long a due action (a deal, result, expiry, timeout or settlement) claimed by one
    /// relayer waits before another relayer may retry it.
    pub claim_retry: Duration,
    /// How long one relayer holds the right to send with this chain's signer; it renews the lease
    /// while it runs, and another relayer takes over when it lapses.
    pub lease_ttl: Duration,
    /// Gas price limits and replacement policy.
    pub gas: GasPolicy,
    /// Where the relayer's signing key comes from.
    pub signer: SignerSource,
}

/// Where a chain's contracts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// A deployments JSON written by `forge script` (resolved against the directory of chains.toml).
    File(PathBuf),
    /// Contract addresses by name, written inline.
    Addresses(BTreeMap<String, Address>),
}

/// How far behind the head a chain's events are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmations {
    /// This many blocks below the head (0 reads the head itself).
    Blocks(u64),
    /// Up to the block the chain reports as finalized.
    Finalized,
}

/// Gas price limits and how a stuck transaction is replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct GasPolicy {
    /// The most the relayer pays per gas, in gwei (EIP-1559 max fee cap).
    pub max_fee_gwei: f64,
    /// The priority fee (tip) offered, in gwei.
    pub priority_fee_gwei: f64,
    /// How much each replacement of a stuck transaction raises its fees, in percent (at least 10,
    /// the minimum most nodes accept for a replacement).
    pub bump_percent: f64,
    /// How long a transaction may wait unmined before it is replaced with higher fees.
    pub replace_after: Duration,
}

impl Default for GasPolicy {
    fn default() -> Self {
        Self {
            max_fee_gwei: 500.0,
            priority_fee_gwei: 1.0,
            bump_percent: 12.5,
            replace_after: Duration::from_secs(30),
        }
    }
}

/// Defaults for fields a chain leaves out.
pub mod defaults {
    use std::time::Duration;

    use super::Confirmations;

    /// Read up to the finalized block: the safe choice on a chain you have not looked at.
    pub const CONFIRMATIONS: Confirmations = Confirmations::Finalized;
    /// Poll every two seconds.
    pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
    /// Most public RPC providers accept ranges of this size.
    pub const LOG_CHUNK_SIZE: u64 = 2_000;
    /// Go back 64 blocks on a reorganisation: deeper than the reorgs of the chains served today.
    pub const REORG_REWIND: u64 = 64;
    /// Send a transaction at most 8 times (the first send and 7 fee bumps).
    pub const MAX_ATTEMPTS: u32 = 8;
    /// Another relayer may retry a claimed due action after 30 seconds.
    pub const CLAIM_RETRY: Duration = Duration::from_secs(30);
    /// A relayer holds a chain's signer for 15 seconds at a time.
    pub const LEASE_TTL: Duration = Duration::from_secs(15);
}

const CHAIN_KEYS: &[&str] = &[
    "name",
    "chain_id",
    "rpc",
    "ws",
    "deployment",
    "contracts",
    "confirmations",
    "start_block",
    "poll_interval",
    "log_chunk_size",
    "reorg_rewind",
    "max_attempts",
    "claim_retry",
    "lease_ttl",
    "gas",
    "signer",
];
/// Keys a `[defaults]` table may set: those that make sense for many chains at once.
const DEFAULT_KEYS: &[&str] = &[
    "confirmations",
    "poll_interval",
    "log_chunk_size",
    "reorg_rewind",
    "max_attempts",
    "claim_retry",
    "lease_ttl",
    "gas",
    "signer",
];
const GAS_KEYS: &[&str] = &[
    "max_fee_gwei",
    "priority_fee_gwei",
    "bump_percent",
    "replace_after",
];
/// Environment override suffixes, and the field path each one sets.
const ENV_FIELDS: &[(&str, &str)] = &[
    ("CHAIN_ID", "chain_id"),
    ("RPC", "rpc"),
    ("WS", "ws"),
    ("DEPLOYMENT", "deployment"),
    ("CONFIRMATIONS", "confirmations"),
    ("START_BLOCK", "start_block"),
    ("POLL_INTERVAL", "poll_interval"),
    ("LOG_CHUNK_SIZE", "log_chunk_size"),
    ("REORG_REWIND", "reorg_rewind"),
    ("MAX_ATTEMPTS", "max_attempts"),
    ("CLAIM_RETRY", "claim_retry"),
    ("LEASE_TTL", "lease_ttl"),
    ("GAS_MAX_FEE_GWEI", "gas.max_fee_gwei"),
    ("GAS_PRIORITY_FEE_GWEI", "gas.priority_fee_gwei"),
    ("GAS_BUMP_PERCENT", "gas.bump_percent"),
    ("GAS_REPLACE_AFTER", "gas.replace_after"),
    ("SIGNER_ENV", "signer.env"),
    ("SIGNER_FILE", "signer.file"),
];

impl ChainsConfig {
    /// Reads `path`, applies `LILYPAD_CHAINS_*` overrides from the process environment, and
    /// validates everything, reporting every problem at once.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        Self::parse(&text, path, &env)
    }

    /// Parses `text` as if read from `path` (relative deployment paths are resolved against its
    /// directory), with `env` as the environment.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, LoadError> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| LoadError::Syntax {
                path: path.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut errors = Vec::new();
        let config = read_document(&doc, base, env, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(LoadError::Invalid {
                path: path.to_owned(),
                errors,
            })
        }
    }

    /// The chain with this name.
    pub fn chain(&self, name: &str) -> Option<&ChainConfig> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// `dev-a` -> `DEV_A`, the chain's part of its environment variable names.
pub fn env_name(chain: &str) -> String {
    chain.to_ascii_uppercase().replace('-', "_")
}

fn read_document(
    doc: &toml::Table,
    base: &Path,
    env: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> ChainsConfig {
    for key in doc
        .keys()
        .filter(|k| !matches!(k.as_str(), "chains" | "defaults"))
    {
        errors.push(unknown_key(key, key, &["chains", "defaults"]));
    }
    let empty = toml::Table::new();
    let defaults = match doc.get("defaults") {
        None => &empty,
        Some(v) => match Field::toml("defaults", v).table("write [defaults] as a table") {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                &empty
            }
        },
    };
    for key in defaults
        .keys()
        .filter(|k| !DEFAULT_KEYS.contains(&k.as_str()))
    {
        let why = if CHAIN_KEYS.contains(&key.as_str()) {
            ConfigError::new(
                format!("defaults.{key}"),
                format!("{key} differs from chain to chain and cannot be a default"),
                format!("set {key} in each [[chains]] table"),
            )
        } else {
            unknown_key(&format!("defaults.{key}"), key, DEFAULT_KEYS)
        };
        errors.push(why);
    }

    let tables: Vec<&toml::Table> = match doc.get("chains") {
        None => {
            errors.push(ConfigError::new(
                "chains",
                "no chains are configured",
                "add a [[chains]] table with name, chain_id, rpc, deployment and signer",
            ));
            Vec::new()
        }
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                toml::Value::Table(t) => Some(t),
                other => {
                    errors.push(ConfigError::new(
                        format!("chains[{i}]"),
                        format!("expected a table, found {}", type_name(other)),
                        "write each chain as a [[chains]] table",
                    ));
                    None
                }
            })
            .collect(),
        Some(other) => {
            errors.push(ConfigError::new(
                "chains",
                format!("expected an array of tables, found {}", type_name(other)),
                "write each chain as a [[chains]] table",
            ));
            Vec::new()
        }
    };
    if matches!(doc.get("chains"), Some(toml::Value::Array(a)) if a.is_empty()) {
        errors.push(ConfigError::new(
            "chains",
            "the chain list is empty",
            "add a [[chains]] table",
        ));
    }

    // Names first, so environment overrides can be matched to chains.
    let names: Vec<Option<String>> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| read_name(i, t, errors))
        .collect();
    let overrides = match_env_overrides(&names, env, errors);

    let mut chains = Vec::new();
    for (i, (table, name)) in tables.iter().zip(&names).enumerate() {
        let Some(name) = name else { continue };
        let no_env = BTreeMap::new();
        let env = overrides.get(name.as_str()).unwrap_or(&no_env);
        let mut reader = ChainReader {
            index: i,
            table,
            defaults,
            env,
            base,
            errors,
        };
        if let Some(chain) = reader.read(name) {
            chains.push(chain);
        }
    }

    check_unique(&chains, errors);
    ChainsConfig { chains }
}

fn read_name(i: usize, table: &toml::Table, errors: &mut Vec<ConfigError>) -> Option<String> {
    let path = format!("chains[{i}].name");
    let Some(v) = table.get("name") else {
        errors.push(ConfigError::new(
            path,
            "missing",
            "give every chain a short name, e.g. name = \"base-sepolia\"",
        ));
        return None;
    };
    let fix = "use 1 to 32 characters from a-z, 0-9 and -, starting with a letter";
    let name = match Field::toml(path.clone(), v).string(fix) {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let valid = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        errors.push(ConfigError::new(
            path,
            format!("{name:?} is not a valid chain name"),
            fix,
        ));
        return None;
    }
    Some(name.to_owned())
}

/// Sorts `LILYPAD_CHAINS_*` variables by chain name; reports those that match nothing.
fn match_env_overrides<'e>(
    names: &[Option<String>],
    env: &'e BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, BTreeMap<&'static str, (&'e str, &'e str)>> {
    let mut by_chain: BTreeMap<String, BTreeMap<&'static str, (&'e str, &'e str)>> =
        BTreeMap::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // The longest chain name that leaves a known field wins, so `dev` and `dev-a` can coexist.
        let found = names
            .iter()
            .flatten()
            .filter_map(|name| {
                let field = rest.strip_prefix(&env_name(name))?.strip_prefix('_')?;
                let (_, path) = ENV_FIELDS.iter().find(|(suffix, _)| *suffix == field)?;
                Some((name, *path))
            })
            .max_by_key(|(name, _)| name.len());
        match found {
            Some((name, path)) => {
                by_chain
                    .entry(name.clone())
                    .or_default()
                    .insert(path, (var.as_str(), value));
            }
            None => {
                let chains: Vec<String> = names
                    .iter()
                    .flatten()
                    .map(|n| format!("{ENV_PREFIX}{}_", env_name(n)))
                    .collect();
                let fields: Vec<&str> = ENV_FIELDS.iter().map(|(s, _)| *s).collect();
                errors.push(ConfigError::new(
                    var.clone(),
                    "this environment variable matches no chain and field in chains.toml",
                    format!(
                        "name it <prefix><FIELD> with a prefix from [{}] and a FIELD from [{}], or unset it",
                        chains.join(", "),
                        fields.join(", ")
                    ),
                ));
            }
        }
    }
    by_chain
}

struct ChainReader<'a, 'e> {
    index: usize,
    table: &'a toml::Table,
    defaults: &'a toml::Table,
    env: &'a BTreeMap<&'static str, (&'e str, &'e str)>,
    base: &'a Path,
    errors: &'a mut Vec<ConfigError>,
}

impl<'a> ChainReader<'a, '_> {
    fn path(&self, key: &str) -> String {
        format!("chains[{}].{key}", self.index)
    }

    /// The value for `key` (a dotted path such as `gas.max_fee_gwei`): the environment wins over
    /// the chain's own table, which wins over `[defaults]`.
    fn field(&self, key: &'static str) -> Option<Field<'a>> {
        if let Some((var, value)) = self.env.get(key) {
            return Some(Field::env(self.path(key), var, value));
        }
        let lookup = |t: &'a toml::Table| -> Option<&'a toml::Value> {
            let mut parts = key.split('.');
            let mut v = t.get(parts.next()?)?;
            for part in parts {
                v = v.as_table()?.get(part)?;
            }
            Some(v)
        };
        if let Some(v) = lookup(self.table) {
            return Some(Field::toml(self.path(key), v));
        }
        let default_key = key.split('.').next().unwrap_or(key);
        if DEFAULT_KEYS.contains(&default_key) {
            return lookup(self.defaults).map(|v| Field::toml(format!("defaults.{key}"), v));
        }
        None
    }

    fn ok<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.errors.push(e)).ok()
    }

    fn missing(&mut self, key: &str, fix: &str) {
        self.errors
            .push(ConfigError::new(self.path(key), "missing", fix));
    }

    fn read(&mut self, name: &str) -> Option<ChainConfig> {
        let errors_before = self.errors.len();
        for key in self.table.keys() {
            if !CHAIN_KEYS.contains(&key.as_str()) {
                let e = if is_secret_key_name(key) {
                    secret_in_file(&self.path(key))
                } else {
                    unknown_key(&self.path(key), key, CHAIN_KEYS)
                };
                self.errors.push(e);
            }
        }

        let chain_id = match self.field("chain_id") {
            Some(f) => {
                self.ok(f.integer(1, u64::MAX / 2, "write the chain's EIP-155 id, e.g. 8453"))
            }
            None => {
                self.missing(
                    "chain_id",
                    "write the chain's EIP-155 id, e.g. chain_id = 8453",
                );
                None
            }
        };
        let rpc = match self.field("rpc") {
            Some(f) => self.read_rpc(&f),
            None => {
                self.missing(
                    "rpc",
                    "write the chain's JSON-RPC URL, e.g. rpc = \"https://HOST\", or several: rpc = [\"https://A\", \"https://B\"]",
                );
                None
            }
        };
        let ws = match self.field("ws") {
            Some(f) => self.ok(f.url(&["ws", "wss"]).map(Some)),
            None => Some(None),
        };
        let deployment = self.read_deployment();
        let confirmations = match self.field("confirmations") {
            None => Some(defaults::CONFIRMATIONS),
            Some(f) => self.ok(read_confirmations(&f)),
        };
        let start_block = match self.field("start_block") {
            None => Some(0),
            Some(f) => self.ok(f.integer(0, u64::MAX / 2, "write a block number")),
        };
        let poll_interval = match self.field("poll_interval") {
            None => Some(defaults::POLL_INTERVAL),
            Some(f) => self.ok(f.duration(Duration::from_millis(10), Duration::from_secs(600))),
        };
        let log_chunk_size = match self.field("log_chunk_size") {
            None => Some(defaults::LOG_CHUNK_SIZE),
            Some(f) => {
                self.ok(f.integer(1, 100_000, "write how many blocks one eth_getLogs may span"))
            }
        };
        let reorg_rewind = match self.field("reorg_rewind") {
            None => Some(defaults::REORG_REWIND),
            Some(f) => self.ok(f.integer(
                1,
                1_000_000,
                "write how many blocks to go back on a reorganisation, e.g. 64",
            )),
        };
        let max_attempts = match self.field("max_attempts") {
            None => Some(defaults::MAX_ATTEMPTS),
            Some(f) => self.ok(f
                .integer(
                    1,
                    1_000,
                    "write how many times a transaction may be sent, e.g. 8",
                )
                .map(|n| n as u32)),
        };
        let claim_retry = match self.field("claim_retry") {
            None => Some(defaults::CLAIM_RETRY),
            Some(f) => self.ok(f.duration(Duration::from_millis(10), Duration::from_secs(3600))),
        };
        let lease_ttl = match self.field("lease_ttl") {
            None => Some(defaults::LEASE_TTL),
            Some(f) => self.ok(f.duration(Duration::from_millis(10), Duration::from_secs(3600))),
        };
        let gas = self.read_gas();
        let signer = self.read_signer();

        if self.errors.len() > errors_before {
            return None;
        }
        Some(ChainConfig {
            name: name.to_owned(),
            chain_id: chain_id?,
            rpc: rpc?,
            ws: ws?,
            deployment: deployment?,
            confirmations: confirmations?,
            start_block: start_block?,
            poll_interval: poll_interval?,
            log_chunk_size: log_chunk_size?,
            reorg_rewind: reorg_rewind?,
            max_attempts: max_attempts?,
            claim_retry: claim_retry?,
            lease_ttl: lease_ttl?,
            gas: gas?,
            signer: signer?,
        })
    }

    /// `rpc = "URL"`, `rpc = ["URL", ...]`, or from the environment `URL[,URL...]`: every URL
    /// checked, each bad one reported on its own.
    fn read_rpc(&mut self, f: &Field<'_>) -> Option<Vec<String>> {
        let schemes = ["http", "https"];
        let errors_before = self.errors.len();
        let mut urls = Vec::new();
        match f.raw {
            Raw::Toml(toml::Value::Array(_)) => {
                let items = self.ok(f.array(
                    "a list of URLs",
                    "write rpc = [\"https://A\", \"https://B\"]",
                ))?;
                for item in items {
                    if let Some(url) = self.ok(item.url(&schemes)) {
                        urls.push((item.path.clone(), url));
                    }
                }
            }
            Raw::Env { var, value } if value.contains(',') => {
                for (i, part) in value.split(',').enumerate() {
                    let item = Field::env(format!("{}[{i}]", self.path("rpc")), var, part);
                    if let Some(url) = self.ok(item.url(&schemes)) {
                        urls.push((item.path.clone(), url));
                    }
                }
            }
            _ => {
                let url = self.ok(f.url(&schemes))?;
                urls.push((f.path.clone(), url));
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        if urls.is_empty() {
            self.errors.push(f.err(
                "the list of URLs is empty",
                "list at least one JSON-RPC URL, e.g. rpc = [\"https://HOST\"]",
            ));
            return None;
        }
        for (i, (path, url)) in urls.iter().enumerate() {
            if urls[..i].iter().any(|(_, u)| u == url) {
                self.errors.push(ConfigError::new(
                    path.clone(),
                    format!("{url:?} is listed twice"),
                    "list each endpoint once",
                ));
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(urls.into_iter().map(|(_, u)| u).collect())
    }

    fn read_deployment(&mut self) -> Option<Deployment> {
        let file = self.field("deployment");
        let inline = self.table.get("contracts");
        match (file, inline) {
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::new(
                    self.path("deployment"),
                    "both deployment and contracts are set",
                    "keep one: a deployments JSON path, or a [chains.contracts] table",
                ));
                None
            }
            (None, None) => {
                self.missing(
                    "deployment",
                    "point deployment at the JSON that contracts/script/Deploy.s.sol wrote, or list addresses in a [chains.contracts] table",
                );
                None
            }
            (Some(f), None) => {
                let text = self.ok(f.string("write the path of a deployments JSON file"))?;
                if text.trim().is_empty() {
                    self.errors.push(ConfigError::new(
                        f.path,
                        "the path is empty",
                        "write the path of a deployments JSON file",
                    ));
                    return None;
                }
                Some(Deployment::File(self.base.join(text.trim())))
            }
            (None, Some(v)) => {
                let path = self.path("contracts");
                let table = self.ok(Field::toml(path.clone(), v)
                    .table("write contracts as a table of name = \"0x...\""))?;
                if table.is_empty() {
                    self.errors.push(ConfigError::new(
                        path,
                        "no contract addresses",
                        "list at least the lilypad contract: lilypad = \"0x...\"",
                    ));
                    return None;
                }
                let mut addresses = BTreeMap::new();
                for (name, value) in table {
                    let f = Field::toml(format!("{path}.{name}"), value);
                    if let Some(a) = self.ok(f.address()) {
                        addresses.insert(name.clone(), a);
                    }
                }
                (addresses.len() == table.len()).then_some(Deployment::Addresses(addresses))
            }
        }
    }

    fn read_gas(&mut self) -> Option<GasPolicy> {
        for (origin, table) in [
            ("gas", self.table.get("gas")),
            ("defaults.gas", self.defaults.get("gas")),
        ] {
            let Some(v) = table else { continue };
            let path = if origin == "gas" {
                self.path("gas")
            } else {
                origin.to_owned()
            };
            if let Some(t) = self.ok(Field::toml(path.clone(), v).table("write gas as a table")) {
                for key in t.keys().filter(|k| !GAS_KEYS.contains(&k.as_str())) {
                    self.errors
                        .push(unknown_key(&format!("{path}.{key}"), key, GAS_KEYS));
                }
            }
        }
        let d = GasPolicy::default();
        let max_fee_gwei = match self.field("gas.max_fee_gwei") {
            None => Some(d.max_fee_gwei),
            Some(f) => self.ok(f.number_in(0.000_001, 1_000_000.0, "write the fee cap in gwei")),
        };
        let priority_fee_gwei = match self.field("gas.priority_fee_gwei") {
            None => Some(d.priority_fee_gwei),
            Some(f) => self.ok(f.number_in(0.0, 1_000_000.0, "write the tip in gwei")),
        };
        let bump_percent = match self.field("gas.bump_percent") {
            None => Some(d.bump_percent),
            Some(f) => self.ok(f.number_in(
                10.0,
                1000.0,
                "nodes need at least a 10% bump to replace a transaction",
            )),
        };
        let replace_after = match self.field("gas.replace_after") {
            None => Some(d.replace_after),
            Some(f) => self.ok(f.duration(Duration::from_secs(1), Duration::from_secs(3600))),
        };
        let policy = GasPolicy {
            max_fee_gwei: max_fee_gwei?,
            priority_fee_gwei: priority_fee_gwei?,
            bump_percent: bump_percent?,
            replace_after: replace_after?,
        };
        if policy.priority_fee_gwei > policy.max_fee_gwei {
            self.errors.push(ConfigError::new(
                self.path("gas.priority_fee_gwei"),
                format!(
                    "the tip ({} gwei) is above the fee cap ({} gwei)",
                    policy.priority_fee_gwei, policy.max_fee_gwei
                ),
                "lower priority_fee_gwei or raise max_fee_gwei",
            ));
            return None;
        }
        Some(policy)
    }

    /// The signer source comes whole from one layer: the environment, else the chain's own
    /// `signer`, else `[defaults]`; fields of different layers never mix.
    fn read_signer(&mut self) -> Option<SignerSource> {
        let from_env = |key| {
            self.env
                .get(key)
                .map(|(var, value)| Field::env(self.path(key), var, value))
        };
        let (env, file, whole) =
            if self.env.contains_key("signer.env") || self.env.contains_key("signer.file") {
                (from_env("signer.env"), from_env("signer.file"), None)
            } else {
                let (whole, path) = match self.table.get("signer") {
                    Some(v) => (Some(v), self.path("signer")),
                    None => (self.defaults.get("signer"), "defaults.signer".to_owned()),
                };
                let part = |key: &str| {
                    whole
                        .and_then(|v| v.as_table())
                        .and_then(|t| t.get(key))
                        .map(|v| Field::toml(format!("{path}.{key}"), v))
                };
                (part("env"), part("file"), whole)
            };
        if let Some(v) = whole {
            match v {
                toml::Value::Table(t) => {
                    for key in t.keys().filter(|k| !matches!(k.as_str(), "env" | "file")) {
                        let e = if is_secret_key_name(key) {
                            secret_in_file(&format!("{}.{key}", self.path("signer")))
                        } else {
                            unknown_key(
                                &format!("{}.{key}", self.path("signer")),
                                key,
                                &["env", "file"],
                            )
                        };
                        self.errors.push(e);
                    }
                }
                _ if env.is_none() && file.is_none() => {
                    // `signer = "0x…"`: a key written into the file itself.
                    self.errors.push(secret_in_file(&self.path("signer")));
                    return None;
                }
                _ => {}
            }
        }
        match (env, file) {
            (Some(e), None) => {
                let var = self.ok(e.string("write the name of an environment variable"))?;
                let valid = !var.is_empty()
                    && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !var.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    self.errors.push(ConfigError::new(
                        e.path,
                        format!("{var:?} is not an environment variable name"),
                        "use letters, digits and _, e.g. env = \"LILYPAD_RELAYER_KEY\"",
                    ));
                    return None;
                }
                Some(SignerSource::Env(var.to_owned()))
            }
            (None, Some(f)) => {
                let p = self.ok(f.string("write the path of a file holding the key"))?;
                if p.trim().is_empty() {
                    self.errors.push(ConfigError::new(
                        f.path,
                        "the path is empty",
                        "write the path of a file holding the key",
                    ));
                    return None;
                }
                Some(SignerSource::File(self.base.join(p.trim())))
            }
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::new(
                    self.path("signer"),
                    "both signer.env and signer.file are set",
                    "keep one of them",
                ));
                None
            }
            (None, None) => {
                self.missing(
                    "signer",
                    "say where the relayer's key comes from: signer = { env = \"VAR\" } or signer = { file = \"PATH\" }; never the key itself",
                );
                None
            }
        }
    }
}

fn read_confirmations(f: &Field<'_>) -> Result<Confirmations, ConfigError> {
    let fix = "write a number of blocks (0 to 1000) or \"finalized\"";
    let is_finalized = match f.raw {
        Raw::Toml(toml::Value::String(s)) => s.trim() == "finalized",
        Raw::Env { value, .. } => value.trim() == "finalized",
        _ => false,
    };
    if is_finalized {
        return Ok(Confirmations::Finalized);
    }
    if let Raw::Toml(toml::Value::String(s)) = f.raw {
        return Err(ConfigError::new(
            f.path.clone(),
            format!("{s:?} is not a confirmation count"),
            fix,
        ));
    }
    f.integer(0, 1000, fix).map(Confirmations::Blocks)
}

fn check_unique(chains: &[ChainConfig], errors: &mut Vec<ConfigError>) {
    for (i, c) in chains.iter().enumerate() {
        if let Some(first) = chains[..i].iter().find(|o| o.name == c.name) {
            errors.push(ConfigError::new(
                format!("chains[{i}].name"),
                format!(
                    "{:?} is already the name of chain {}",
                    c.name, first.chain_id
                ),
                "give every chain its own name",
            ));
        }
        if let Some(first) = chains[..i].iter().find(|o| o.chain_id == c.chain_id) {
            errors.push(ConfigError::new(
                format!("chains[{i}].chain_id"),
                format!(
                    "chain id {} is already used by {:?}",
                    c.chain_id, first.name
                ),
                "list each chain once; two RPCs of one chain are two URLs, not two chains",
            ));
        }
    }
}

fn is_secret_key_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("private") || k.contains("secret") || k == "key" || k == "mnemonic"
}

fn secret_in_file(path: &str) -> ConfigError {
    ConfigError::new(
        path,
        "keys never go in chains.toml, which is shared and committed",
        "keep the key in an environment variable or a file readable only by the relayer, and write signer = { env = \"VAR\" } or signer = { file = \"PATH\" }",
    )
}
