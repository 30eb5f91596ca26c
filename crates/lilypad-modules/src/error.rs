//! What goes wrong loading module files: each problem names its file and field.

use std::fmt;
use std::path::{Path, PathBuf};

use lilypad_toml::FieldError;

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

impl ModuleError {
    /// A problem with `file` as a whole (its name, its place, or its syntax).
    pub(crate) fn file(file: &Path, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            field: String::new(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// A field's problem, found in `file`.
    pub(crate) fn in_file(file: &Path, e: FieldError) -> Self {
        Self {
            file: file.to_owned(),
            field: e.path,
            problem: e.problem,
            fix: e.fix,
        }
    }
}
