//! Lilypad job modules: what a job runs, and the checks a job request must pass before it runs.
//!
//! A module is one TOML file, `<dir>/<name>/<version>.toml` (for example
//! `job-modules/cowsay/1.0.0.toml`): the Docker image, a fixed entrypoint, an argument template
//! whose `{placeholders}` name typed inputs, the resources the job needs, its timeout, whether it
//! may use the network, whether its output is deterministic and where its inline output comes
//! from. `docs/modules.md` describes every field.
//!
//! [`ModuleRegistry::load_dir`] reads a directory of modules and reports every problem in every
//! file at once, each naming the file and the field. [`ModuleRegistry::prepare`] checks a job's
//! inputs (key/value UTF-8 strings) against its module and, when they pass, renders the exact
//! `argv`, environment and input files the container gets. Inputs reach the container only as
//! whole arguments, environment values or files, never through a shell, so no input can inject a
//! command.

mod error;
pub mod git;
mod id;
mod input;
pub mod lilypad;
mod module;
mod parse;
mod registry;
mod template;

pub use error::{LoadErrors, ModuleError};
pub use id::{GIT_FORMAT, PinError, TOML_FORMAT, git_module_id};
pub use input::{
    CidInput, IPFS_SCHEME, InputError, InputFile, JobError, PreparedJob, inputs_from_pairs,
    parse_cid,
};
pub use lilypad_toml::{format_bytes, parse_bytes};
pub use module::{
    Arg, ImageRef, InlineOutput, InputSpec, InputType, Module, ModuleFormat, ModuleRef, Network,
    Resources,
};
pub use registry::{GitModules, ModuleRegistry, load_template};
pub use template::Template;

/// Where the container sees the job's input files (read-only).
pub const INPUTS_DIR: &str = "/inputs";
/// Where the container writes the files that become the result's `outputs/` directory.
pub const OUTPUTS_DIR: &str = "/outputs";
