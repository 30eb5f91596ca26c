//! The registry of loaded modules, and reading a directory of module files into it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{LoadErrors, ModuleError};
use crate::git::{GitCache, GitModuleRef};
use crate::input::{JobError, PreparedJob};
use crate::lilypad::{LilypadError, LilypadPolicy, parse_json, render, to_module};
use crate::module::{Module, ModuleRef};
use crate::parse::parse_module;

/// Every loaded module, by name and version, and the git repositories whose Lilypad modules may
/// be run.
#[derive(Debug, Clone, Default)]
pub struct ModuleRegistry {
    modules: BTreeMap<String, BTreeMap<String, Module>>,
    git: Option<Arc<GitModules>>,
}

/// Lilypad modules from git: which repositories are served (by URL prefix), where they are
/// mirrored, and what their modules may do.
#[derive(Debug)]
pub struct GitModules {
    cache: GitCache,
    prefixes: Vec<String>,
    policy: LilypadPolicy,
    /// Templates already read, by bound module (a commit never changes).
    templates: Mutex<HashMap<GitModuleRef, String>>,
}

impl GitModules {
    /// Modules from repositories whose URL starts with one of `prefixes`, mirrored under
    /// `cache_dir`.
    pub fn new(
        cache_dir: impl Into<PathBuf>,
        prefixes: Vec<String>,
        policy: LilypadPolicy,
    ) -> Self {
        Self {
            cache: GitCache::new(cache_dir),
            prefixes,
            policy,
            templates: Mutex::new(HashMap::new()),
        }
    }

    /// The URL prefixes served.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// Whether modules from `url` are served.
    pub fn serves(&self, url: &str) -> bool {
        self.prefixes.iter().any(|p| url.starts_with(p.as_str()))
    }

    /// The mirrors.
    pub fn cache(&self) -> &GitCache {
        &self.cache
    }

    /// The template of `module`, fetched once per commit.
    pub fn template(&self, module: &GitModuleRef) -> Result<String, LilypadError> {
        let lock = |m: &Mutex<HashMap<GitModuleRef, String>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(module)
                .cloned()
        };
        if let Some(t) = lock(&self.templates) {
            return Ok(t);
        }
        let text = self.cache.template(module)?;
        self.templates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(module.clone(), text.clone());
        Ok(text)
    }

    /// `module` rendered with a job's `inputs`, checked and mapped to what the executor runs.
    pub fn load(
        &self,
        module: &GitModuleRef,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Module, LilypadError> {
        if !self.serves(&module.url) {
            return Err(LilypadError::NotServed {
                url: module.url.clone(),
                prefixes: self.prefixes.clone(),
            });
        }
        let template = self.template(module)?;
        load_template(module, &template, inputs, self.policy)
    }
}

/// A Lilypad template rendered with `inputs`, parsed and mapped to a [`Module`].
pub fn load_template(
    module: &GitModuleRef,
    template: &str,
    inputs: &BTreeMap<String, String>,
    policy: LilypadPolicy,
) -> Result<Module, LilypadError> {
    let name = module.to_string();
    let rendered = render(&name, template, inputs)?;
    let json = parse_json(&name, &rendered, template, inputs)?;
    to_module(module, &json, policy)
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
                    errors.push(ModuleError::file(
                        &module.source,
                        format!(
                            "module {} is also defined in {}",
                            module.reference,
                            first.source.display()
                        ),
                        "keep one definition per name and version",
                    ));
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

    /// Lets this registry run Lilypad modules from git as `git` allows.
    pub fn with_git(mut self, git: GitModules) -> Self {
        self.git = Some(Arc::new(git));
        self
    }

    /// The git modules served, if any.
    pub fn git(&self) -> Option<&GitModules> {
        self.git.as_deref()
    }

    /// For a request naming a Lilypad module from git served here whose template is not read
    /// yet: the blocking work of fetching it (git runs), to run off an async runtime's threads
    /// (`tokio::task::spawn_blocking`), after which [`ModuleRegistry::module`] reads it from
    /// memory. `None` when there is nothing to fetch. A failure is left for `module` to report.
    pub fn git_fetch(&self, name: &str, version: &str) -> Option<impl FnOnce() + Send + 'static> {
        let git = self.git.clone()?;
        let bound = GitModuleRef::from_request(name, version)?.ok()?;
        let cached = git
            .templates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&bound);
        if cached || !git.serves(&bound.url) {
            return None;
        }
        Some(move || {
            // A failure is reported by the call that needs the module.
            let _ = git.template(&bound);
        })
    }

    /// The module a request names, as a job with `inputs` runs it: a loaded module, or a
    /// Lilypad module from git (the request's module a repository URL, its version the commit)
    /// rendered with `inputs`.
    pub fn module(
        &self,
        name: &str,
        version: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Cow<'_, Module>, JobError> {
        let Some(bound) = GitModuleRef::from_request(name, version) else {
            return self.get(name, version).map(Cow::Borrowed);
        };
        let bound = bound.map_err(LilypadError::from)?;
        let Some(git) = &self.git else {
            return Err(LilypadError::NotServed {
                url: bound.url,
                prefixes: Vec::new(),
            }
            .into());
        };
        Ok(Cow::Owned(git.load(&bound, inputs)?))
    }

    /// The id a request for `name` at `version` pins, and whether that module is deterministic:
    /// for a loaded module its [`Module::id`]; for a Lilypad module from git the hash of its
    /// repository, commit and path (never deterministic), found without fetching anything.
    pub fn pin(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(alloy_primitives::B256, bool), JobError> {
        match GitModuleRef::from_request(name, version) {
            Some(bound) => {
                let bound = bound.map_err(LilypadError::from)?;
                Ok((crate::id::git_module_id(&bound), false))
            }
            None => {
                let module = self.get(name, version)?;
                Ok((module.id(), module.deterministic))
            }
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
            errors.push(ModuleError::file(
                dir,
                format!("cannot read the modules directory: {e}"),
                "check the path; modules live in <dir>/<name>/<version>.toml",
            ));
            return modules;
        }
    };
    for path in entries {
        if path.is_file() && is_toml(&path) {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            errors.push(ModuleError::file(
                &path,
                "a module file directly in the modules directory has no version",
                format!(
                    "move it to {}",
                    dir.join(&*stem).join("<version>.toml").display()
                ),
            ));
            continue;
        }
        if !path.is_dir() {
            continue;
        }
        let files = match sorted_entries(&path) {
            Ok(files) => files,
            Err(e) => {
                errors.push(ModuleError::file(
                    &path,
                    format!("cannot read the module's directory: {e}"),
                    "check its permissions",
                ));
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
                errors.push(ModuleError::file(
                    &file,
                    format!("{name:?} is not a valid module name"),
                    "name the module's directory with lowercase letters, digits, -, _ and . (starting with a letter or digit)",
                ));
            }
            if !valid_version(&version) {
                ok = false;
                errors.push(ModuleError::file(
                    &file,
                    format!("{version:?} is not a valid version"),
                    "name the file <version>.toml with letters, digits, -, _, + and . (e.g. 1.0.0.toml)",
                ));
            }
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(ModuleError::file(
                        &file,
                        format!("cannot read: {e}"),
                        "check the file's permissions and that it is UTF-8 text",
                    ));
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

impl ModuleRegistry {
    /// Finds the module and checks the job's inputs against it: the one call a provider makes
    /// before running anything.
    pub fn prepare(
        &self,
        name: &str,
        version: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<PreparedJob, JobError> {
        self.module(name, version, inputs)?.prepare(inputs)
    }
}
