//! Checking a job's inputs against its module, and rendering what the container gets.

use std::collections::BTreeMap;
use std::fmt;

use crate::INPUTS_DIR;
use crate::module::{Arg, InputSpec, InputType, Module, ModuleFormat, ModuleRef};
use lilypad_toml::format_bytes;
use lilypad_types::suggest::closest;

/// Why a job request cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// No module has this name.
    #[error(
        "unknown module {name:?} (fix: use one of the provider's modules: {})",
        list(available)
    )]
    UnknownModule {
        /// The name asked for.
        name: String,
        /// The names that exist.
        available: Vec<String>,
    },
    /// The module exists, but not at this version.
    #[error(
        "module {name:?} has no version {version:?} (fix: use one of its versions: {})",
        list(available)
    )]
    UnknownVersion {
        /// The module.
        name: String,
        /// The version asked for.
        version: String,
        /// Its versions.
        available: Vec<String>,
    },
    /// A Lilypad module from git that cannot be had or run here.
    #[error(transparent)]
    Lilypad(#[from] crate::lilypad::LilypadError),
    /// One or more inputs are wrong; every problem is listed.
    #[error("{}", BadInputs { module, errors })]
    BadInputs {
        /// The module the inputs were for.
        module: ModuleRef,
        /// Every problem, in input-name order.
        errors: Vec<InputError>,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none are loaded".to_owned()
    } else {
        items.join(", ")
    }
}

struct BadInputs<'a> {
    module: &'a ModuleRef,
    errors: &'a [InputError],
}

impl fmt::Display for BadInputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} bad input{} for module {}:",
            if n == 1 { "" } else { "s" },
            self.module
        )?;
        for e in self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// One problem with one input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A required input was not given.
    #[error(
        "input {input:?} ({kind}) is required but missing{} (fix: add {input}=VALUE)",
        describe(description)
    )]
    Missing {
        /// The input.
        input: String,
        /// Its type.
        kind: InputType,
        /// Its description.
        description: String,
    },
    /// The job gave an input the module does not declare.
    #[error("input {input:?} is not one of the module's inputs (fix: {})", unexpected_fix(suggestion.as_deref(), declared))]
    Unexpected {
        /// The input given.
        input: String,
        /// The declared input it most likely meant.
        suggestion: Option<String>,
        /// Every declared input.
        declared: Vec<String>,
    },
    /// The value is longer than the input allows.
    #[error("input {input:?} is {} but at most {} is allowed (fix: shorten it)", format_bytes(*bytes), format_bytes(*max_bytes))]
    TooLarge {
        /// The input.
        input: String,
        /// The value's size in bytes.
        bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// The value holds a NUL character, which no argument, environment value or file name can
    /// carry.
    #[error(
        "input {input:?} contains a NUL character, which cannot be passed to a program (fix: remove it)"
    )]
    ContainsNul {
        /// The input.
        input: String,
    },
    /// The value is not of the input's type.
    #[error("input {input:?} must be {}, got {value:?} (fix: {})", article(*expected), type_fix(*expected))]
    WrongType {
        /// The input.
        input: String,
        /// The type it takes.
        expected: InputType,
        /// The value given (cut to 64 characters).
        value: String,
    },
    /// A number outside the input's range.
    #[error("input {input:?} is {value} but must be {} (fix: give a value in range)", range(*min, *max))]
    OutOfRange {
        /// The input.
        input: String,
        /// The value given.
        value: String,
        /// The smallest accepted.
        min: Option<f64>,
        /// The largest accepted.
        max: Option<f64>,
    },
    /// A string that is not one of the accepted choices.
    #[error("input {input:?} is {value:?} but must be one of: {} (fix: pick one of them)", choices.join(", "))]
    NotAChoice {
        /// The input.
        input: String,
        /// The value given (cut to 64 characters).
        value: String,
        /// The accepted values.
        choices: Vec<String>,
    },
    /// A `key=value` entry with no `=` or an empty key.
    #[error(
        "input entry {entry:?} is not KEY=VALUE (fix: write name=value; the value may itself contain = and spaces)"
    )]
    NotKeyValue {
        /// The entry (cut to 64 characters).
        entry: String,
    },
    /// The same input given twice.
    #[error("input {input:?} is given more than once (fix: give each input once)")]
    Duplicate {
        /// The input.
        input: String,
    },
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

fn unexpected_fix(suggestion: Option<&str>, declared: &[String]) -> String {
    match suggestion {
        Some(s) => format!("did you mean {s}?"),
        None if declared.is_empty() => "this module takes no inputs; remove it".to_owned(),
        None => format!("remove it; the module's inputs are {}", declared.join(", ")),
    }
}

fn article(kind: InputType) -> &'static str {
    match kind {
        InputType::String => "a string",
        InputType::Integer => "an integer",
        InputType::Number => "a number",
        InputType::Boolean => "a boolean",
        InputType::File => "file contents",
        InputType::Cid => "an IPFS CID",
    }
}

fn type_fix(kind: InputType) -> &'static str {
    match kind {
        InputType::Integer => "write a whole number in decimal, such as 42 or -7",
        InputType::Number => "write a decimal number, such as 3.5 or -1e3",
        InputType::Boolean => "write true or false",
        InputType::String | InputType::File => "give UTF-8 text",
        InputType::Cid => "write ipfs://<cid>, e.g. the result CID of an earlier job",
    }
}

fn range(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("from {lo} to {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => "in range".to_owned(),
    }
}

fn preview(value: &str) -> String {
    if value.chars().count() <= 64 {
        value.to_owned()
    } else {
        let mut s: String = value.chars().take(64).collect();
        s.push('…');
        s
    }
}

/// How a value names content by CID.
pub const IPFS_SCHEME: &str = "ipfs://";

/// The CID a value names: `ipfs://<cid>` or a bare CID (a trailing `/` is allowed).
pub fn parse_cid(value: &str) -> Option<cid::Cid> {
    let text = value.strip_prefix(IPFS_SCHEME).unwrap_or(value);
    let text = text.strip_suffix('/').unwrap_or(text);
    cid::Cid::try_from(text).ok()
}

/// Checks one value against its input's declaration.
pub(crate) fn check_value(input: &str, value: &str, spec: &InputSpec) -> Result<(), InputError> {
    let bytes = value.len() as u64;
    if bytes > spec.max_bytes {
        return Err(InputError::TooLarge {
            input: input.to_owned(),
            bytes,
            max_bytes: spec.max_bytes,
        });
    }
    if value.contains('\0') {
        return Err(InputError::ContainsNul {
            input: input.to_owned(),
        });
    }
    let wrong = || InputError::WrongType {
        input: input.to_owned(),
        expected: spec.kind,
        value: preview(value),
    };
    let number = match spec.kind {
        InputType::String => {
            if let Some(choices) = &spec.choices
                && !choices.iter().any(|c| c == value)
            {
                return Err(InputError::NotAChoice {
                    input: input.to_owned(),
                    value: preview(value),
                    choices: choices.clone(),
                });
            }
            None
        }
        InputType::File => {
            if value.starts_with(IPFS_SCHEME) && parse_cid(value).is_none() {
                return Err(InputError::WrongType {
                    input: input.to_owned(),
                    expected: InputType::Cid,
                    value: preview(value),
                });
            }
            None
        }
        InputType::Cid => {
            if parse_cid(value).is_none() {
                return Err(wrong());
            }
            None
        }
        InputType::Boolean => {
            if value != "true" && value != "false" {
                return Err(wrong());
            }
            None
        }
        InputType::Integer => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(wrong());
            }
            let n: i64 = value.parse().map_err(|_| wrong())?;
            Some(n as f64)
        }
        InputType::Number => {
            let valid_chars = value
                .chars()
                .all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
            match value.parse::<f64>() {
                Ok(x) if valid_chars && x.is_finite() => Some(x),
                _ => return Err(wrong()),
            }
        }
    };
    if let Some(x) = number
        && (spec.min.is_some_and(|lo| x < lo) || spec.max.is_some_and(|hi| x > hi))
    {
        return Err(InputError::OutOfRange {
            input: input.to_owned(),
            value: value.to_owned(),
            min: spec.min,
            max: spec.max,
        });
    }
    Ok(())
}

/// Turns `KEY=VALUE` entries (as a job request carries them) into inputs. Only the first `=`
/// splits, so values may contain `=` and spaces. Every bad entry is reported.
pub fn inputs_from_pairs<S: AsRef<str>>(
    entries: &[S],
) -> Result<BTreeMap<String, String>, Vec<InputError>> {
    let mut inputs = BTreeMap::new();
    let mut errors = Vec::new();
    for entry in entries {
        let entry = entry.as_ref();
        match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                if inputs.insert(key.to_owned(), value.to_owned()).is_some() {
                    errors.push(InputError::Duplicate {
                        input: key.to_owned(),
                    });
                }
            }
            _ => errors.push(InputError::NotKeyValue {
                entry: preview(entry),
            }),
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(errors)
    }
}

/// An input delivered as a file: `/inputs/<name>`, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The file name under `/inputs` (the input's name).
    pub name: String,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// An input given by CID: the provider fetches the content and mounts it read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidInput {
    /// The input's name.
    pub name: String,
    /// The content.
    pub cid: cid::Cid,
    /// Where the container sees it.
    pub path: String,
}

/// A job whose inputs passed every check, rendered into exactly what the container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedJob {
    /// The module.
    pub module: ModuleRef,
    /// Docker's entrypoint (empty: the image's own).
    pub entrypoint: Vec<String>,
    /// Docker's command: the rendered arguments, one string per argument.
    pub cmd: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Files for `/inputs`.
    pub files: Vec<InputFile>,
    /// Content to fetch by CID and mount read-only.
    pub cid_inputs: Vec<CidInput>,
    /// The effective inputs (defaults applied; a file input's value is its contents).
    pub values: BTreeMap<String, String>,
}

impl PreparedJob {
    /// The whole command line: entrypoint then arguments.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

impl Module {
    /// Checks `inputs` against this module's declarations (every problem is reported) and renders
    /// the container's arguments, environment and input files.
    ///
    /// A Lilypad module ([`ModuleFormat::Lilypad`]) was rendered with the job's inputs already:
    /// its arguments and environment are used as they are, and `inputs` are kept as the job's
    /// values.
    pub fn prepare(&self, inputs: &BTreeMap<String, String>) -> Result<PreparedJob, JobError> {
        if self.format == ModuleFormat::Lilypad {
            let none = BTreeMap::new();
            let render = |t: &crate::Template| t.render(&none).unwrap_or_default();
            return Ok(PreparedJob {
                module: self.reference.clone(),
                entrypoint: self.entrypoint.clone(),
                cmd: self
                    .args
                    .iter()
                    .flat_map(|a| a.templates().iter().map(render))
                    .collect(),
                env: self
                    .env
                    .iter()
                    .map(|(k, t)| (k.clone(), render(t)))
                    .collect(),
                files: Vec::new(),
                // The CIDs its Spec.inputs named (fixed when the template was rendered).
                cid_inputs: self
                    .inputs
                    .iter()
                    .filter(|(_, spec)| spec.kind == InputType::Cid)
                    .filter_map(|(name, spec)| {
                        Some(CidInput {
                            name: name.clone(),
                            cid: parse_cid(spec.default.as_deref()?)?,
                            path: spec.mount_path(name),
                        })
                    })
                    .collect(),
                values: inputs.clone(),
            });
        }
        let mut errors = Vec::new();
        let declared: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
        for name in inputs.keys() {
            if !self.inputs.contains_key(name) {
                errors.push(InputError::Unexpected {
                    input: name.clone(),
                    suggestion: closest(name, &declared).map(str::to_owned),
                    declared: declared.iter().map(|s| (*s).to_owned()).collect(),
                });
            }
        }
        let mut values = BTreeMap::new();
        for (name, spec) in &self.inputs {
            let value = match (inputs.get(name), &spec.default) {
                (Some(v), _) => v,
                (None, Some(d)) => d,
                (None, None) if spec.required => {
                    errors.push(InputError::Missing {
                        input: name.clone(),
                        kind: spec.kind,
                        description: spec.description.clone(),
                    });
                    continue;
                }
                (None, None) => continue,
            };
            match check_value(name, value, spec) {
                Ok(()) => {
                    values.insert(name.clone(), value.clone());
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(JobError::BadInputs {
                module: self.reference.clone(),
                errors,
            });
        }

        // What placeholders stand for: the value itself, or a file input's path.
        let mut substitutions = values.clone();
        let mut files = Vec::new();
        let mut cid_inputs = Vec::new();
        for (name, spec) in &self.inputs {
            let Some(value) = values.get(name) else {
                continue;
            };
            let by_cid = match spec.kind {
                InputType::Cid => true,
                InputType::File => value.starts_with(IPFS_SCHEME),
                _ => continue,
            };
            let path = if by_cid {
                spec.mount_path(name)
            } else {
                format!("{INPUTS_DIR}/{name}")
            };
            match parse_cid(value) {
                Some(cid) if by_cid => cid_inputs.push(CidInput {
                    name: name.clone(),
                    cid,
                    path: path.clone(),
                }),
                _ => files.push(InputFile {
                    name: name.clone(),
                    contents: value.clone().into_bytes(),
                }),
            }
            substitutions.insert(name.clone(), path);
        }
        let mut cmd = Vec::new();
        for arg in &self.args {
            match arg {
                Arg::One(t) => cmd.extend(t.render(&substitutions)),
                Arg::Group(ts) => {
                    let rendered: Option<Vec<String>> =
                        ts.iter().map(|t| t.render(&substitutions)).collect();
                    cmd.extend(rendered.into_iter().flatten());
                }
            }
        }
        let env = self
            .env
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.render(&substitutions)?)))
            .collect();
        Ok(PreparedJob {
            module: self.reference.clone(),
            entrypoint: self.entrypoint.clone(),
            cmd,
            env,
            files,
            cid_inputs,
            values,
        })
    }
}
