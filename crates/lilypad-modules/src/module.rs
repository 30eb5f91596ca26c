//! A loaded, validated module definition.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::template::Template;

/// A module's name and version, written `name:version` (e.g. `cowsay:1.0.0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleRef {
    /// The module's name: its directory under the modules directory.
    pub name: String,
    /// The version: the file name without `.toml`.
    pub version: String,
}

impl ModuleRef {
    /// A reference from its parts.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }

    /// Parses `name:version`.
    pub fn parse(text: &str) -> Option<Self> {
        let (name, version) = text.split_once(':')?;
        (!name.is_empty() && !version.is_empty()).then(|| Self::new(name, version))
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.version)
    }
}

/// The Docker image a module runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository and tag, e.g. `lilypad/cowsay:1.0.0`.
    pub name: String,
    /// Content digest (`sha256:<64 hex>`) pinning exactly which image runs, when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// What to pull: `name@digest` when a digest is set, else `name`.
    pub fn pull_reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pull_reference())
    }
}

/// What kind of value an input takes. Every value arrives as a UTF-8 string; the type says which
/// strings are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// Any text (within `max_bytes`, and one of `choices` when given).
    String,
    /// A whole number in `i64` range, written in decimal (`-12`, `42`), within `min`/`max`.
    Integer,
    /// A finite decimal number (`3.5`, `-1e3`), within `min`/`max`.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Text delivered as the file `/inputs/<name>`; its placeholder stands for that path. A value
    /// `ipfs://<cid>` is fetched by CID instead and mounted there.
    File,
    /// Content named by an IPFS CID (`ipfs://<cid>`, or the bare CID), fetched by the provider
    /// from a trustless gateway, verified and mounted read-only at the input's `path`; its
    /// placeholder stands for that path.
    Cid,
}

impl InputType {
    /// The name used in module files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::File => "file",
            Self::Cid => "cid",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "file" => Self::File,
            "cid" => Self::Cid,
            _ => return None,
        })
    }

    /// Whether the value reaches the container as a mounted file or directory (so it need not
    /// appear in the arguments).
    pub fn is_mounted(self) -> bool {
        matches!(self, Self::File | Self::Cid)
    }

    /// The largest value accepted when a module does not set `max_bytes`.
    pub fn default_max_bytes(self) -> u64 {
        match self {
            Self::String => 4 * 1024,
            Self::Integer | Self::Number | Self::Boolean => 64,
            Self::File => 1 << 20,
            Self::Cid => 256,
        }
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Its type.
    pub kind: InputType,
    /// Whether a job must give it.
    pub required: bool,
    /// The value used when a job leaves it out (never set together with `required`).
    pub default: Option<String>,
    /// The largest value accepted, in bytes of UTF-8.
    pub max_bytes: u64,
    /// What it means, for people writing jobs.
    pub description: String,
    /// For strings: the only values accepted, when set.
    pub choices: Option<Vec<String>>,
    /// For integers and numbers: the smallest value accepted.
    pub min: Option<f64>,
    /// For integers and numbers: the largest value accepted.
    pub max: Option<f64>,
    /// For CIDs: where the content is mounted in the container (read-only).
    pub path: Option<String>,
}

impl InputSpec {
    /// Where a CID input named `name` is mounted: its `path`, else `/inputs/<name>`.
    pub fn mount_path(&self, name: &str) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("{}/{name}", crate::INPUTS_DIR))
    }
}

/// One element of a module's argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// One argument. Left out when it names an optional input the job did not give.
    One(Template),
    /// Several arguments kept or left out together, e.g. `["--seed", "{seed}"]`: all are left out
    /// when any of them names an optional input the job did not give.
    Group(Vec<Template>),
}

impl Arg {
    pub(crate) fn templates(&self) -> &[Template] {
        match self {
            Self::One(t) => std::slice::from_ref(t),
            Self::Group(ts) => ts,
        }
    }
}

/// Hardware a job of this module needs; a provider runs it only when it has this much free, and
/// the container is limited to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// CPU in thousandths of a core (`cpu = 0.5` is 500).
    pub cpu_millis: u64,
    /// Memory limit in bytes (swap is not added on top).
    pub memory_bytes: u64,
    /// How many GPUs.
    pub gpus: u32,
    /// Memory each GPU must have, in bytes (0 when no GPU is needed).
    pub vram_bytes: u64,
}

/// Whether the container gets a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// No network interface but loopback (the default).
    None,
    /// Docker's default bridge: outbound access to whatever the provider's host can reach. Only
    /// for modules that must download something; see `docs/modules.md` for the risks.
    Bridge,
}

impl Network {
    /// Docker's name for it (`HostConfig.NetworkMode`).
    pub fn docker_mode(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bridge => "bridge",
        }
    }
}

/// Where the small inline output (written on-chain, truncated to the job's `maxOutputBytes`)
/// comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InlineOutput {
    /// The container's standard output.
    Stdout,
    /// A file the container writes under `/outputs`; the path is relative to `/outputs`.
    File(String),
}

/// A validated module definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// Its name and version.
    pub reference: ModuleRef,
    /// The file it was loaded from.
    pub source: PathBuf,
    /// What it does.
    pub description: String,
    /// The image it runs.
    pub image: ImageRef,
    /// The fixed program and leading arguments (Docker's entrypoint); empty keeps the image's.
    pub entrypoint: Vec<String>,
    /// The argument template (Docker's command).
    pub args: Vec<Arg>,
    /// Environment variables, each a template.
    pub env: BTreeMap<String, Template>,
    /// The declared inputs by name.
    pub inputs: BTreeMap<String, InputSpec>,
    /// What it needs.
    pub resources: Resources,
    /// How long a job may run before it is killed.
    pub timeout: Duration,
    /// Network access.
    pub network: Network,
    /// Whether the same inputs always give the same outputs (so replicas can be compared).
    pub deterministic: bool,
    /// Where the inline output comes from.
    pub output: InlineOutput,
    /// The container's working directory (`None`: the image's own).
    pub workdir: Option<String>,
    /// Which format it was written in.
    pub format: ModuleFormat,
}

/// The format a module was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleFormat {
    /// This project's TOML file: inputs declared and checked, then put into argument templates.
    Toml,
    /// Lilypad's `lilypad_module.json.tmpl` from git, rendered with a job's inputs: the module is
    /// already specific to the job's inputs, which its template consumed.
    Lilypad,
}
