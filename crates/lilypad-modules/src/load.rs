//! Reading module files, with every problem in every file reported together.

use lilypad_types::suggest::closest;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::input::{JobError, check_value};
use crate::module::{
    Arg, ImageRef, InlineOutput, InputSpec, InputType, Module, ModuleRef, Network, Resources,
};
use crate::template::{Template, valid_input_name};
use lilypad_toml::{format_bytes, parse_bytes};

/// The largest value an input delivered as an argument or environment variable may declare:
/// Linux refuses any single argument or environment string of 128 KiB or more.
pub const MAX_ARG_INPUT_BYTES: u64 = 100 * 1024;
/// The largest `file` input a module may declare.
pub const MAX_FILE_INPUT_BYTES: u64 = 64 << 20;
/// The smallest memory limit Docker accepts, rounded up.
pub const MIN_MEMORY_BYTES: u64 = 8 << 20;

const TOP_KEYS: &[&str] = &[
    "description",
    "image",
    "digest",
    "entrypoint",
    "args",
    "env",
    "inputs",
    "resources",
    "timeout",
    "network",
    "deterministic",
    "output",
];
const INPUT_KEYS: &[&str] = &[
    "type",
    "required",
    "default",
    "max_bytes",
    "description",
    "choices",
    "min",
    "max",
];
const RESOURCE_KEYS: &[&str] = &["cpu", "memory", "gpus", "vram"];
const OUTPUT_KEYS: &[&str] = &["inline"];
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// One problem in a module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError {
    /// The file (or directory) the problem is in.
    pub file: PathBuf,
    /// The field, e.g. `inputs.message.max_bytes` or `args[2]`; empty for the file as a whole.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// What would fix it.
    pub fix: String,
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {} (fix: {})", self.problem, self.fix)
    }
}

/// Every problem found while loading modules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors {
    /// The problems, file by file in path order.
    pub errors: Vec<ModuleError>,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} problem{} in job modules:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Every loaded module, by name and version.
#[derive(Debug, Clone, Default)]
pub struct ModuleRegistry {
    modules: BTreeMap<String, BTreeMap<String, Module>>,
}

impl ModuleRegistry {
    /// Loads every module under `dir`: each `dir/<name>/<version>.toml`. A subdirectory with no
    /// `.toml` file in it (such as `images/` or `test/`) is not a module and is skipped; files
    /// other than `.toml` are ignored.
    pub fn load_dir(dir: &Path) -> Result<Self, LoadErrors> {
        Self::load_dirs(&[dir])
    }

    /// Loads the modules of several directories into one registry; the same name and version in
    /// two of them is an error.
    pub fn load_dirs(dirs: &[&Path]) -> Result<Self, LoadErrors> {
        let mut errors = Vec::new();
        let mut registry = Self::default();
        for dir in dirs {
            for module in load_one_dir(dir, &mut errors) {
                let versions = registry
                    .modules
                    .entry(module.reference.name.clone())
                    .or_default();
                if let Some(first) = versions.get(&module.reference.version) {
                    errors.push(ModuleError {
                        file: module.source.clone(),
                        field: String::new(),
                        problem: format!(
                            "module {} is also defined in {}",
                            module.reference,
                            first.source.display()
                        ),
                        fix: "keep one definition per name and version".to_owned(),
                    });
                } else {
                    versions.insert(module.reference.version.clone(), module);
                }
            }
        }
        if errors.is_empty() {
            Ok(registry)
        } else {
            Err(LoadErrors { errors })
        }
    }

    /// Adds a module (for tests and tools that build definitions in code); replaces one with the
    /// same name and version.
    pub fn insert(&mut self, module: Module) {
        self.modules
            .entry(module.reference.name.clone())
            .or_default()
            .insert(module.reference.version.clone(), module);
    }

    /// The module `name` at `version`, or an error saying which names or versions exist.
    pub fn get(&self, name: &str, version: &str) -> Result<&Module, JobError> {
        let Some(versions) = self.modules.get(name) else {
            return Err(JobError::UnknownModule {
                name: name.to_owned(),
                available: self.modules.keys().cloned().collect(),
            });
        };
        versions
            .get(version)
            .ok_or_else(|| JobError::UnknownVersion {
                name: name.to_owned(),
                version: version.to_owned(),
                available: versions.keys().cloned().collect(),
            })
    }

    /// Every module, by name then version.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.values().flat_map(|v| v.values())
    }

    /// How many modules (counting each version).
    pub fn len(&self) -> usize {
        self.modules.values().map(BTreeMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Parses one module file from text (the name and version come from the caller, as they would
    /// from the file's path).
    pub fn parse_module(
        name: &str,
        version: &str,
        file: &Path,
        text: &str,
    ) -> Result<Module, LoadErrors> {
        let mut errors = Vec::new();
        let module = parse_module(ModuleRef::new(name, version), file, text, &mut errors);
        match module {
            Some(m) if errors.is_empty() => Ok(m),
            _ => Err(LoadErrors { errors }),
        }
    }
}

fn valid_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn valid_version(version: &str) -> bool {
    let mut chars = version.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

fn load_one_dir(dir: &Path, errors: &mut Vec<ModuleError>) -> Vec<Module> {
    let mut modules = Vec::new();
    let entries = match sorted_entries(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(ModuleError {
                file: dir.to_owned(),
                field: String::new(),
                problem: format!("cannot read the modules directory: {e}"),
                fix: "check the path; modules live in <dir>/<name>/<version>.toml".to_owned(),
            });
            return modules;
        }
    };
    for path in entries {
        if path.is_file() && is_toml(&path) {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            errors.push(ModuleError {
                file: path.clone(),
                field: String::new(),
                problem: "a module file directly in the modules directory has no version"
                    .to_owned(),
                fix: format!(
                    "move it to {}",
                    dir.join(&*stem).join("<version>.toml").display()
                ),
            });
            continue;
        }
        if !path.is_dir() {
            continue;
        }
        let files = match sorted_entries(&path) {
            Ok(files) => files,
            Err(e) => {
                errors.push(ModuleError {
                    file: path.clone(),
                    field: String::new(),
                    problem: format!("cannot read the module's directory: {e}"),
                    fix: "check its permissions".to_owned(),
                });
                continue;
            }
        };
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for file in files.into_iter().filter(|f| f.is_file() && is_toml(f)) {
            let version = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let mut ok = true;
            if !valid_module_name(&name) {
                ok = false;
                errors.push(ModuleError {
                    file: file.clone(),
                    field: String::new(),
                    problem: format!("{name:?} is not a valid module name"),
                    fix: "name the module's directory with lowercase letters, digits, -, _ and . (starting with a letter or digit)".to_owned(),
                });
            }
            if !valid_version(&version) {
                ok = false;
                errors.push(ModuleError {
                    file: file.clone(),
                    field: String::new(),
                    problem: format!("{version:?} is not a valid version"),
                    fix: "name the file <version>.toml with letters, digits, -, _, + and . (e.g. 1.0.0.toml)".to_owned(),
                });
            }
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(ModuleError {
                        file: file.clone(),
                        field: String::new(),
                        problem: format!("cannot read: {e}"),
                        fix: "check the file's permissions and that it is UTF-8 text".to_owned(),
                    });
                    continue;
                }
            };
            if let Some(m) = parse_module(ModuleRef::new(&name, &version), &file, &text, errors)
                && ok
            {
                modules.push(m);
            }
        }
    }
    modules
}

fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    Ok(paths)
}

struct Reader<'a> {
    file: &'a Path,
    errors: &'a mut Vec<ModuleError>,
    failed: bool,
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl Reader<'_> {
    fn error(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.failed = true;
        self.errors.push(ModuleError {
            file: self.file.to_owned(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn unknown_keys(&mut self, table: &toml::Table, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let fix = match closest(key, known) {
                    Some(k) => format!("did you mean {k}?"),
                    None => format!("remove it; known keys here are {}", known.join(", ")),
                };
                self.error(
                    format!("{prefix}{key}"),
                    format!("unknown key {key:?}"),
                    fix,
                );
            }
        }
    }

    fn string<'v>(&mut self, field: &str, v: &'v toml::Value, fix: &str) -> Option<&'v str> {
        match v {
            toml::Value::String(s) => Some(s),
            other => {
                self.error(
                    field,
                    format!("expected a string, found {}", type_name(other)),
                    fix,
                );
                None
            }
        }
    }

    fn boolean(&mut self, field: &str, v: &toml::Value) -> Option<bool> {
        match v {
            toml::Value::Boolean(b) => Some(*b),
            other => {
                self.error(
                    field,
                    format!("expected true or false, found {}", type_name(other)),
                    "write true or false (without quotes)",
                );
                None
            }
        }
    }

    fn number(&mut self, field: &str, v: &toml::Value, fix: &str) -> Option<f64> {
        match v {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(x) if x.is_finite() => Some(*x),
            other => {
                self.error(
                    field,
                    format!("expected a number, found {}", type_name(other)),
                    fix,
                );
                None
            }
        }
    }

    fn size(&mut self, field: &str, v: &toml::Value, fix: &str) -> Option<u64> {
        match v {
            toml::Value::Integer(i) if *i >= 0 => Some(*i as u64),
            toml::Value::String(s) => match parse_bytes(s) {
                Some(n) => Some(n),
                None => {
                    self.error(field, format!("{s:?} is not a size"), fix);
                    None
                }
            },
            other => {
                self.error(
                    field,
                    format!("expected a size, found {}", crate::load::show(other)),
                    fix,
                );
                None
            }
        }
    }

    fn string_list(&mut self, field: &str, v: &toml::Value, fix: &str) -> Option<Vec<String>> {
        let toml::Value::Array(items) = v else {
            self.error(
                field,
                format!("expected an array of strings, found {}", type_name(v)),
                fix,
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(&format!("{field}[{i}]"), item, fix) {
                Some(s) => out.push(s.to_owned()),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn table<'v>(&mut self, field: &str, v: &'v toml::Value, fix: &str) -> Option<&'v toml::Table> {
        match v {
            toml::Value::Table(t) => Some(t),
            other => {
                self.error(
                    field,
                    format!("expected a table, found {}", type_name(other)),
                    fix,
                );
                None
            }
        }
    }

    fn template(&mut self, field: &str, source: &str) -> Option<Template> {
        match Template::parse(source) {
            Ok(t) => Some(t),
            Err(problem) => {
                self.error(
                    field,
                    problem,
                    "placeholders are {input_name}; write {{ and }} for literal braces",
                );
                None
            }
        }
    }
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        other => format!("{} ({other})", type_name(other)),
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

fn parse_module(
    reference: ModuleRef,
    file: &Path,
    text: &str,
    errors: &mut Vec<ModuleError>,
) -> Option<Module> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            errors.push(ModuleError {
                file: file.to_owned(),
                field: String::new(),
                problem: format!("not valid TOML: {}", e.to_string().trim()),
                fix: "correct the syntax at the line and column shown".to_owned(),
            });
            return None;
        }
    };
    let mut r = Reader {
        file,
        errors,
        failed: false,
    };
    r.unknown_keys(&table, "", TOP_KEYS);

    let description = match table.get("description") {
        Some(v) => r
            .string(
                "description",
                v,
                "describe what the module does in a sentence",
            )
            .map(str::to_owned),
        None => Some(String::new()),
    };
    let image = read_image(&mut r, &table);
    let entrypoint = match table.get("entrypoint") {
        Some(v) => r.string_list(
            "entrypoint",
            v,
            "write the program and its fixed leading arguments, e.g. entrypoint = [\"/usr/bin/cowsay\"]",
        ),
        None => Some(Vec::new()),
    };
    let (inputs, declared) = read_inputs(&mut r, &table);
    let args = read_args(&mut r, &table);
    let env = read_env(&mut r, &table);
    let resources = read_resources(&mut r, &table);
    let timeout = match table.get("timeout") {
        None => {
            r.error(
                "timeout",
                "missing",
                "say how long a job may run before it is killed, e.g. timeout = \"30s\" (ms, s, m, h)",
            );
            None
        }
        Some(v) => {
            let fix = "write a duration from 1s to 24h, e.g. \"30s\", \"10m\" or \"2h\"";
            r.string("timeout", v, fix)
                .and_then(|s| match parse_duration(s) {
                    Some(d)
                        if d >= Duration::from_secs(1) && d <= Duration::from_secs(24 * 3600) =>
                    {
                        Some(d)
                    }
                    Some(_) => {
                        r.error("timeout", format!("{s:?} is out of range"), fix);
                        None
                    }
                    None => {
                        r.error("timeout", format!("{s:?} is not a duration"), fix);
                        None
                    }
                })
        }
    };
    let network = match table.get("network") {
        None => Some(Network::None),
        Some(v) => {
            let fix = "write network = \"none\" (the default) or, only if the module must download something, network = \"bridge\"";
            r.string("network", v, fix).and_then(|s| match s {
                "none" => Some(Network::None),
                "bridge" => Some(Network::Bridge),
                "host" => {
                    r.error(
                        "network",
                        "\"host\" would give a stranger's code the provider's own network stack",
                        fix,
                    );
                    None
                }
                other => {
                    r.error("network", format!("unknown network {other:?}"), fix);
                    None
                }
            })
        }
    };
    let deterministic = match table.get("deterministic") {
        None => Some(false),
        Some(v) => r.boolean("deterministic", v),
    };
    let output = read_output(&mut r, &table);

    // Cross-field checks, on whatever parts parsed.
    check_references(
        &mut r,
        &inputs,
        &declared,
        &args,
        &env,
        entrypoint.as_deref().unwrap_or_default(),
    );

    if r.failed {
        return None;
    }
    Some(Module {
        reference,
        source: file.to_owned(),
        description: description?,
        image: image?,
        entrypoint: entrypoint?,
        args,
        env,
        inputs,
        resources: resources?,
        timeout: timeout?,
        network: network?,
        deterministic: deterministic?,
        output: output?,
    })
}

fn read_image(r: &mut Reader<'_>, table: &toml::Table) -> Option<ImageRef> {
    let fix = "write the image with a tag, e.g. image = \"lilypad/cowsay:1.0.0\" (and optionally digest = \"sha256:...\")";
    let name = match table.get("image") {
        None => {
            r.error("image", "missing", fix);
            None
        }
        Some(v) => r.string("image", v, fix).and_then(|s| {
            if s.is_empty()
                || s.contains('@')
                || !s.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c)
                })
            {
                r.error(
                    "image",
                    format!("{s:?} is not an image reference"),
                    "use lowercase repository/name:tag; put a digest in the digest field, not after @",
                );
                None
            } else {
                Some(s.to_owned())
            }
        }),
    };
    let digest = match table.get("digest") {
        None => Some(None),
        Some(v) => {
            let fix = "write the image's content digest as \"sha256:\" and 64 lowercase hex digits";
            r.string("digest", v, fix).and_then(|s| {
                let ok = s.strip_prefix("sha256:").is_some_and(|hex| {
                    hex.len() == 64
                        && hex
                            .chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                });
                if ok {
                    Some(Some(s.to_owned()))
                } else {
                    r.error("digest", format!("{s:?} is not a sha256 digest"), fix);
                    None
                }
            })
        }
    };
    let (name, digest) = (name?, digest?);
    let tagged = name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if !tagged && digest.is_none() {
        r.error(
            "image",
            format!("{name:?} has neither a tag nor a digest, so it would mean whatever :latest is today"),
            "pin it: add a tag (name:tag) or a digest",
        );
        return None;
    }
    Some(ImageRef { name, digest })
}

/// The inputs that parsed, and the names of all declared (so a broken declaration does not also
/// make every use of it an error).
fn read_inputs(
    r: &mut Reader<'_>,
    table: &toml::Table,
) -> (BTreeMap<String, InputSpec>, BTreeSet<String>) {
    let mut inputs = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let Some(v) = table.get("inputs") else {
        return (inputs, declared);
    };
    let Some(t) = r.table(
        "inputs",
        v,
        "declare each input as a table, e.g. [inputs.message] type = \"string\"",
    ) else {
        return (inputs, declared);
    };
    for (name, spec) in t {
        declared.insert(name.clone());
        let prefix = format!("inputs.{name}");
        if !valid_input_name(name) {
            r.error(
                &prefix,
                format!("{name:?} is not a valid input name"),
                "start with a letter or _, then letters, digits, _ or -",
            );
            continue;
        }
        if let Some(s) = read_input(r, &prefix, spec) {
            inputs.insert(name.clone(), s);
        }
    }
    (inputs, declared)
}

fn read_input(r: &mut Reader<'_>, prefix: &str, v: &toml::Value) -> Option<InputSpec> {
    let t = r.table(prefix, v, "write the input as a table with at least a type")?;
    let before = r.errors.len();
    r.unknown_keys(t, &format!("{prefix}."), INPUT_KEYS);
    let type_fix = "write type = \"string\", \"integer\", \"number\", \"boolean\" or \"file\"";
    let kind = match t.get("type") {
        None => {
            r.error(format!("{prefix}.type"), "missing", type_fix);
            None
        }
        Some(v) => r
            .string(&format!("{prefix}.type"), v, type_fix)
            .and_then(|s| {
                let k = InputType::parse(s);
                if k.is_none() {
                    r.error(
                        format!("{prefix}.type"),
                        format!("unknown type {s:?}"),
                        type_fix,
                    );
                }
                k
            }),
    };
    let required = match t.get("required") {
        None => Some(false),
        Some(v) => r.boolean(&format!("{prefix}.required"), v),
    };
    let description = match t.get("description") {
        None => Some(String::new()),
        Some(v) => r
            .string(
                &format!("{prefix}.description"),
                v,
                "describe the input in a sentence",
            )
            .map(str::to_owned),
    };
    let max_field = format!("{prefix}.max_bytes");
    let max_bytes = match (t.get("max_bytes"), kind) {
        (None, Some(k)) => Some(k.default_max_bytes()),
        (None, None) => None,
        (Some(v), k) => r
            .size(&max_field, v, "write a size such as 1024 or \"64KiB\"")
            .and_then(|n| {
                let limit = if k == Some(InputType::File) {
                    MAX_FILE_INPUT_BYTES
                } else {
                    MAX_ARG_INPUT_BYTES
                };
                if n == 0 || n > limit {
                    let fix = if k == Some(InputType::File) {
                        format!("use 1 byte to {}", format_bytes(limit))
                    } else {
                        format!(
                            "use 1 byte to {}; larger values must be type = \"file\" (arguments and environment values cannot hold 128 KiB)",
                            format_bytes(limit)
                        )
                    };
                    r.error(&max_field, format!("{} is out of range", format_bytes(n)), fix);
                    None
                } else {
                    Some(n)
                }
            }),
    };
    let choices = match t.get("choices") {
        None => Some(None),
        Some(v) => {
            let field = format!("{prefix}.choices");
            if kind.is_some_and(|k| k != InputType::String) {
                r.error(
                    &field,
                    "choices only apply to string inputs",
                    "remove choices, or make the input type = \"string\"",
                );
                None
            } else {
                r.string_list(
                    &field,
                    v,
                    "list the accepted values, e.g. choices = [\"a\", \"b\"]",
                )
                .and_then(|c| {
                    if c.is_empty() {
                        r.error(
                            &field,
                            "empty: no value could be accepted",
                            "list at least one value, or remove choices",
                        );
                        None
                    } else {
                        Some(Some(c))
                    }
                })
            }
        }
    };
    // A bound that is absent or wrong is None here; a wrong one was reported and fails the input.
    let mut bound = |key: &str| -> Option<f64> {
        let v = t.get(key)?;
        let field = format!("{prefix}.{key}");
        if kind.is_some_and(|k| !matches!(k, InputType::Integer | InputType::Number)) {
            r.error(
                &field,
                format!("{key} only applies to integer and number inputs"),
                format!("remove {key}, or change the input's type"),
            );
            return None;
        }
        r.number(&field, v, "write a number")
    };
    let min = bound("min");
    let max = bound("max");
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        r.error(
            format!("{prefix}.min"),
            format!("min {lo} is above max {hi}"),
            "swap them",
        );
    }
    let default = match t.get("default") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_))) => {
            Some(v.to_string())
        }
        Some(v) => {
            r.error(
                format!("{prefix}.default"),
                format!("expected a value, found {}", type_name(v)),
                "write the default as the job would give it, e.g. default = \"hello\"",
            );
            None
        }
    };
    if r.errors.len() > before {
        r.failed = true;
        return None;
    }
    let spec = InputSpec {
        kind: kind?,
        required: required?,
        default,
        max_bytes: max_bytes?,
        description: description?,
        choices: choices?,
        min,
        max,
    };
    if spec.required && spec.default.is_some() {
        r.error(
            format!("{prefix}.default"),
            "a required input never uses its default",
            "remove default, or set required = false",
        );
        return None;
    }
    if let Some(d) = &spec.default {
        let name = prefix.strip_prefix("inputs.").unwrap_or(prefix);
        if let Err(e) = check_value(name, d, &spec) {
            r.error(
                format!("{prefix}.default"),
                format!("the default is not a valid value: {e}"),
                "make the default satisfy the input's own type and limits",
            );
            return None;
        }
    }
    Some(spec)
}

fn read_args(r: &mut Reader<'_>, table: &toml::Table) -> Vec<Arg> {
    let fix = "write args = [\"--flag\", \"{input}\", [\"--optional\", \"{optional_input}\"]]";
    let mut args = Vec::new();
    let Some(v) = table.get("args") else {
        return args;
    };
    let toml::Value::Array(items) = v else {
        r.error(
            "args",
            format!("expected an array, found {}", type_name(v)),
            fix,
        );
        return args;
    };
    for (i, item) in items.iter().enumerate() {
        let field = format!("args[{i}]");
        match item {
            toml::Value::String(s) => args.extend(r.template(&field, s).map(Arg::One)),
            toml::Value::Array(group) if !group.is_empty() => {
                let mut templates = Vec::new();
                for (j, g) in group.iter().enumerate() {
                    let field = format!("args[{i}][{j}]");
                    if let Some(s) = r.string(&field, g, fix).map(str::to_owned) {
                        templates.extend(r.template(&field, &s));
                    }
                }
                args.push(Arg::Group(templates));
            }
            other => {
                r.error(
                    &field,
                    format!(
                        "expected a string or a non-empty array of strings, found {}",
                        show(other)
                    ),
                    fix,
                );
            }
        }
    }
    args
}

fn read_env(r: &mut Reader<'_>, table: &toml::Table) -> BTreeMap<String, Template> {
    let mut env = BTreeMap::new();
    let Some(v) = table.get("env") else {
        return env;
    };
    let Some(t) = r.table("env", v, "write env = { NAME = \"{input}\" }") else {
        return env;
    };
    for (name, value) in t {
        let field = format!("env.{name}");
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.error(
                &field,
                format!("{name:?} is not an environment variable name"),
                "use letters, digits and _, not starting with a digit",
            );
            continue;
        }
        let fix = "write the value as a string template, e.g. \"{input}\"";
        if let Some(s) = r.string(&field, value, fix).map(str::to_owned)
            && let Some(t) = r.template(&field, &s)
        {
            env.insert(name.clone(), t);
        }
    }
    env
}

fn read_resources(r: &mut Reader<'_>, table: &toml::Table) -> Option<Resources> {
    let Some(v) = table.get("resources") else {
        r.error(
            "resources",
            "missing",
            "say what a job needs, e.g. [resources] cpu = 1 and memory = \"256MiB\"",
        );
        return None;
    };
    let t = r.table("resources", v, "write [resources] with cpu and memory")?;
    r.unknown_keys(t, "resources.", RESOURCE_KEYS);
    let cpu_fix = "write the CPU cores a job needs, from 0.01 to 1024, e.g. cpu = 1 or cpu = 0.5";
    let cpu_millis = match t.get("cpu") {
        None => {
            r.error("resources.cpu", "missing", cpu_fix);
            None
        }
        Some(v) => r.number("resources.cpu", v, cpu_fix).and_then(|x| {
            if (0.01..=1024.0).contains(&x) {
                Some((x * 1000.0).round() as u64)
            } else {
                r.error("resources.cpu", format!("{x} is out of range"), cpu_fix);
                None
            }
        }),
    };
    let mem_fix = format!(
        "write the memory limit, at least {}, e.g. memory = \"256MiB\"",
        format_bytes(MIN_MEMORY_BYTES)
    );
    let memory_bytes = match t.get("memory") {
        None => {
            r.error("resources.memory", "missing", &mem_fix);
            None
        }
        Some(v) => r.size("resources.memory", v, &mem_fix).and_then(|n| {
            if n >= MIN_MEMORY_BYTES {
                Some(n)
            } else {
                r.error(
                    "resources.memory",
                    format!("{} is below Docker's minimum", format_bytes(n)),
                    &mem_fix,
                );
                None
            }
        }),
    };
    let gpu_fix = "write how many GPUs a job needs, from 0 to 64, e.g. gpus = 1";
    let gpus = match t.get("gpus") {
        None => Some(0),
        Some(toml::Value::Integer(n)) if (0..=64).contains(n) => Some(*n as u32),
        Some(v) => {
            r.error(
                "resources.gpus",
                format!("{} is not a GPU count", show(v)),
                gpu_fix,
            );
            None
        }
    };
    let vram_bytes = match t.get("vram") {
        None => Some(0),
        Some(v) => r.size(
            "resources.vram",
            v,
            "write the memory each GPU must have, e.g. vram = \"8GiB\"",
        ),
    };
    if let (Some(0), Some(vram)) = (gpus, vram_bytes)
        && vram > 0
    {
        r.error(
            "resources.vram",
            "vram is set but gpus is 0",
            "set gpus = 1 (or more), or remove vram",
        );
        return None;
    }
    Some(Resources {
        cpu_millis: cpu_millis?,
        memory_bytes: memory_bytes?,
        gpus: gpus?,
        vram_bytes: vram_bytes?,
    })
}

fn read_output(r: &mut Reader<'_>, table: &toml::Table) -> Option<InlineOutput> {
    let Some(v) = table.get("output") else {
        return Some(InlineOutput::Stdout);
    };
    let t = r.table("output", v, "write [output] inline = \"stdout\"")?;
    r.unknown_keys(t, "output.", OUTPUT_KEYS);
    let fix = "write inline = \"stdout\" or the path of a file the job writes, e.g. inline = \"/outputs/result.txt\"";
    match t.get("inline") {
        None => Some(InlineOutput::Stdout),
        Some(v) => {
            let s = r.string("output.inline", v, fix)?;
            if s == "stdout" {
                return Some(InlineOutput::Stdout);
            }
            let rel = s.strip_prefix("/outputs/").unwrap_or("");
            let ok = !rel.is_empty()
                && rel
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if ok {
                Some(InlineOutput::File(rel.to_owned()))
            } else {
                r.error(
                    "output.inline",
                    format!("{s:?} is neither \"stdout\" nor a file under /outputs/"),
                    fix,
                );
                None
            }
        }
    }
}

/// Every placeholder names a declared input, every non-file input is used, inputs given as
/// arguments fit in one, and no input reaches a shell as code.
fn check_references(
    r: &mut Reader<'_>,
    inputs: &BTreeMap<String, InputSpec>,
    declared: &BTreeSet<String>,
    args: &[Arg],
    env: &BTreeMap<String, Template>,
    entrypoint: &[String],
) {
    let names: Vec<&str> = declared.iter().map(String::as_str).collect();
    let mut used = BTreeSet::new();
    let mut uses = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for (j, t) in arg.templates().iter().enumerate() {
            let field = match arg {
                Arg::One(_) => format!("args[{i}]"),
                Arg::Group(_) => format!("args[{i}][{j}]"),
            };
            uses.push((field, t));
        }
    }
    for (name, t) in env {
        uses.push((format!("env.{name}"), t));
    }
    for (field, t) in &uses {
        for name in t.inputs() {
            used.insert(name.to_owned());
            if !declared.contains(name) {
                let fix = match closest(name, &names) {
                    Some(k) => format!("did you mean {{{k}}}?"),
                    None => format!("declare it as [inputs.{name}], or remove the placeholder"),
                };
                r.error(
                    field.clone(),
                    format!("{{{name}}} names no declared input"),
                    fix,
                );
                continue;
            }
            let Some(spec) = inputs.get(name) else {
                continue; // declared, but its declaration is broken (already reported)
            };
            if spec.kind != InputType::File && spec.max_bytes + t.literal_len() as u64 >= 128 * 1024
            {
                r.error(
                    field.clone(),
                    "with the input at its max_bytes this argument would reach 128 KiB, which Linux refuses",
                    "lower the input's max_bytes, or make it type = \"file\"",
                );
            }
        }
    }
    for (name, spec) in inputs {
        if spec.kind != InputType::File && !used.contains(name) {
            r.error(
                format!("inputs.{name}"),
                "declared but never used in args or env, so it could not reach the job",
                format!("add {{{name}}} to args or env, or remove the input"),
            );
        }
    }
    for (i, part) in entrypoint.iter().enumerate() {
        if let Ok(t) = Template::parse(part)
            && let Some(name) = t.inputs().find(|n| declared.contains(*n))
        {
            r.error(
                format!("entrypoint[{i}]"),
                format!("the entrypoint is fixed, so {{{name}}} would be passed literally"),
                format!("move {{{name}}} into args"),
            );
        }
    }
    // `sh -c SCRIPT`: the script is code. Wherever a shell's -c option appears (in the
    // entrypoint or the args), the argument after it is that script and must not hold an input.
    let program = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    let mut sequence: Vec<(String, bool, String)> = entrypoint
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("entrypoint[{i}]"), false, e.clone()))
        .collect();
    sequence.extend(
        uses.iter()
            .filter(|(f, _)| f.starts_with("args"))
            .map(|(f, t)| (f.clone(), !t.is_literal(), t.source().to_owned())),
    );
    if let Some(at) = sequence
        .iter()
        .position(|(_, _, text)| SHELLS.contains(&program(text).as_str()))
    {
        for k in at + 1..sequence.len() {
            let (_, has_input, text) = &sequence[k];
            if *has_input || !text.starts_with('-') || text.starts_with("--") {
                break; // the first operand: a script file, or an input we do not interpret
            }
            if text.contains('c') {
                if let Some((field, true, _)) = sequence.get(k + 1) {
                    r.error(
                        field.clone(),
                        "this argument is the script a shell runs with -c, so an input in it could inject commands",
                        "put the script in the entrypoint (entrypoint = [\"sh\", \"-c\", \"script using $1\", \"name\"]) and pass inputs as further args",
                    );
                }
                break;
            }
        }
    }
}
