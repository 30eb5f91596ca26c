//! Configuration errors: each names where the problem is and how to fix it, and loading collects
//! all of them before giving up, so an operator fixes a file in one pass.

use std::fmt;
use std::path::PathBuf;

/// One problem in the configuration: its path (e.g. `chains[1].rpc`, or
/// `chains[1].rpc (from LILYPAD_CHAINS_DEV_A_RPC)` when the value came from the environment),
/// what is wrong, and what would fix it. The same type module files report, from `lilypad-toml`.
pub use lilypad_toml::FieldError as ConfigError;

/// Everything wrong with one configuration source, reported together.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source} (fix: check the path, or pass another with --chains)", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file is TOML, but one or more entries are wrong.
    #[error("{}", Invalid { path, errors })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in file order.
        errors: Vec<ConfigError>,
    },
}

struct Invalid<'a> {
    path: &'a PathBuf,
    errors: &'a [ConfigError],
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{} has {n} error{}:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for e in self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl LoadError {
    /// The individual problems, when the file parsed but its entries did not validate.
    pub fn errors(&self) -> &[ConfigError] {
        match self {
            Self::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}
