//! A module's id: the keccak256 of its canonical definition, which a job request carries so that
//! the provider and every mediator run exactly the definition the client asked for.
//!
//! The canonical form is one line of JSON with object keys in byte order and no whitespace
//! (`docs/modules.md` lists every field). What a module does when it runs is in it (image with
//! its digest, entrypoint, argument and environment templates, inputs and their checks,
//! resources, timeout, network, determinism, inline output, working directory); descriptions are
//! not, so editing a comment or a description keeps the id. A Lilypad module from git is bound by
//! its repository, commit and template path (a commit fixes the template's bytes).

use alloy_primitives::{B256, keccak256};
use serde_json::{Map, Value, json};

use crate::git::GitModuleRef;
use crate::module::{Arg, InlineOutput, Module, ModuleFormat};

/// The version tag of the canonical form of this project's TOML modules.
pub const TOML_FORMAT: &str = "lilypad-rs/module/1";
/// The version tag of the canonical form of Lilypad modules from git.
pub const GIT_FORMAT: &str = "lilypad-rs/git-module/1";

impl Module {
    /// The module's id: keccak256 of [`Module::canonical`].
    pub fn id(&self) -> B256 {
        keccak256(self.canonical().as_bytes())
    }

    /// The canonical definition the id is the hash of (see `docs/modules.md`).
    pub fn canonical(&self) -> String {
        let value = match self.format {
            ModuleFormat::Lilypad => {
                match GitModuleRef::from_request(&self.reference.name, &self.reference.version) {
                    Some(Ok(bound)) => git_canonical(&bound),
                    // A Lilypad module is always built from a bound reference; hash what it names.
                    _ => json!({
                        "format": GIT_FORMAT,
                        "module": self.reference.name,
                        "version": self.reference.version,
                    }),
                }
            }
            ModuleFormat::Toml => self.toml_canonical(),
        };
        canonical_json(&value)
    }

    fn toml_canonical(&self) -> Value {
        let args: Vec<Value> = self
            .args
            .iter()
            .map(|a| match a {
                Arg::One(t) => Value::from(t.source()),
                Arg::Group(ts) => Value::from(ts.iter().map(|t| t.source()).collect::<Vec<_>>()),
            })
            .collect();
        let env: Map<String, Value> = self
            .env
            .iter()
            .map(|(k, t)| (k.clone(), Value::from(t.source())))
            .collect();
        let inputs: Map<String, Value> = self
            .inputs
            .iter()
            .map(|(name, spec)| {
                (
                    name.clone(),
                    json!({
                        "type": spec.kind.as_str(),
                        "required": spec.required,
                        "default": spec.default,
                        "max_bytes": spec.max_bytes,
                        "choices": spec.choices,
                        "min": spec.min,
                        "max": spec.max,
                        "path": spec.path,
                    }),
                )
            })
            .collect();
        let output = match &self.output {
            InlineOutput::Stdout => json!({ "inline": "stdout" }),
            InlineOutput::File(path) => json!({ "inline": "file", "path": path }),
        };
        json!({
            "format": TOML_FORMAT,
            "name": self.reference.name,
            "version": self.reference.version,
            "image": self.image.pull_reference(),
            "entrypoint": self.entrypoint,
            "args": args,
            "env": env,
            "inputs": inputs,
            "resources": {
                "cpu_millis": self.resources.cpu_millis,
                "memory_bytes": self.resources.memory_bytes,
                "gpus": self.resources.gpus,
                "vram_bytes": self.resources.vram_bytes,
            },
            "timeout_ms": u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            "network": self.network.docker_mode(),
            "deterministic": self.deterministic,
            "output": output,
            "workdir": self.workdir,
        })
    }
}

/// `value` as compact JSON with every object's keys in byte order, whatever order serde_json's map
/// keeps (its `preserve_order` feature, which another crate in a build may turn on, would change
/// it).
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical definition of a Lilypad module from git.
fn git_canonical(bound: &GitModuleRef) -> Value {
    json!({
        "format": GIT_FORMAT,
        "url": bound.url,
        "commit": bound.commit,
        "path": bound.path,
    })
}

/// The id of the Lilypad module from git `bound` (what [`Module::id`] gives for it, whatever the
/// job's inputs).
pub fn git_module_id(bound: &GitModuleRef) -> B256 {
    keccak256(canonical_json(&git_canonical(bound)).as_bytes())
}

/// Why a request's pinned module does not match this machine's definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The request pins another definition than the one loaded here.
    #[error(
        "module {module}: the request pins definition {requested}, but the definition here ({file}) has id {local}; run the definition the client pinned (`lilypad module id {module_name} --version {version}` prints the id of a definition), or the client must request the id of the definition providers run"
    )]
    IdMismatch {
        /// `name:version`.
        module: String,
        /// The name alone.
        module_name: String,
        /// The version alone.
        version: String,
        /// Where the local definition was loaded from.
        file: String,
        /// The id the request carries.
        requested: B256,
        /// The id of the local definition.
        local: B256,
    },
    /// The request claims a deterministic run of a module that is not deterministic.
    #[error(
        "module {module} is not deterministic ({file} does not set deterministic = true), but the request claims a deterministic, challengeable run; request it as not deterministic (its results then cannot be challenged)"
    )]
    NotDeterministic {
        /// `name:version`.
        module: String,
        /// Where the local definition was loaded from.
        file: String,
    },
}

impl Module {
    /// Checks a request's pin against this definition: a non-zero `requested` id must be
    /// [`Module::id`] (zero: unpinned, any definition), and a request claiming `deterministic`
    /// needs a deterministic module.
    pub fn check_pin(&self, requested: B256, deterministic: bool) -> Result<(), Box<PinError>> {
        let local = self.id();
        if !requested.is_zero() && requested != local {
            return Err(Box::new(PinError::IdMismatch {
                module: self.reference.to_string(),
                module_name: self.reference.name.clone(),
                version: self.reference.version.clone(),
                file: self.source.display().to_string(),
                requested,
                local,
            }));
        }
        if deterministic && !self.deterministic {
            return Err(Box::new(PinError::NotDeterministic {
                module: self.reference.to_string(),
                file: self.source.display().to_string(),
            }));
        }
        Ok(())
    }
}
