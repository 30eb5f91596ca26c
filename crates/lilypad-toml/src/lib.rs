//! Typed reads of configuration values, shared by `chains.toml` (lilypad-config) and the job
//! module files (lilypad-modules), so both accept the same text and explain mistakes the same way.
//!
//! - [`Field`] is one value (from the TOML file, or from an environment variable) with the path
//!   used in messages; its typed reads return a [`FieldError`] naming the path, what is wrong and
//!   what would fix it.
//! - [`Errors`] collects every problem in a file, so a person fixes it in one pass, and says "did
//!   you mean …?" for unknown keys.
//! - [`parse_duration`] and [`parse_bytes`] are the one duration and the one size syntax.

mod duration;
mod errors;
mod field;
mod size;

pub use duration::{format_duration, parse_duration};
pub use errors::{Errors, unknown_key};
pub use field::{Field, FieldError, Raw, describe, show, type_name};
pub use size::{format_bytes, parse_bytes};
