//! One configuration value, from the TOML file or from an environment variable, and its typed
//! reads.

use std::fmt;
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};
use crate::size::parse_bytes;

/// One problem with one value: where it is, what is wrong, and what would fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is, e.g. `chains[1].rpc`, `inputs.message.max_bytes`, or
    /// `chains[1].rpc (from LILYPAD_CHAINS_DEV_A_RPC)` when the value came from the environment.
    /// Empty for a problem with a file as a whole.
    pub path: String,
    /// What is wrong.
    pub problem: String,
    /// What would fix it.
    pub fix: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(
        path: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.path, self.problem, self.fix)
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// A value in the TOML file.
    Toml(&'a toml::Value),
    /// The value of the environment variable `var`.
    Env {
        /// The variable's name.
        var: &'a str,
        /// Its value, as written.
        value: &'a str,
    },
}

/// A value to be read, with the path used in error messages.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The path shown in messages (for an environment value, it names the variable too).
    pub path: String,
    /// The value.
    pub raw: Raw<'a>,
}

impl<'a> Field<'a> {
    /// A value from the TOML file at `path`.
    pub fn toml(path: impl Into<String>, value: &'a toml::Value) -> Self {
        Self {
            path: path.into(),
            raw: Raw::Toml(value),
        }
    }

    /// A value from the environment variable `var`, standing for the field at `path`.
    pub fn env(path: impl fmt::Display, var: &'a str, value: &'a str) -> Self {
        Self {
            path: format!("{path} (from {var})"),
            raw: Raw::Env { var, value },
        }
    }

    /// A problem with this value.
    pub fn err(&self, problem: impl Into<String>, fix: impl Into<String>) -> FieldError {
        FieldError::new(self.path.clone(), problem, fix)
    }

    /// The value as it is shown in messages: a string quoted, anything else as TOML writes it.
    pub fn shown(&self) -> String {
        match self.raw {
            Raw::Toml(v) => show(v),
            Raw::Env { value, .. } => format!("{value:?}"),
        }
    }

    /// A string. Environment values are taken as written.
    pub fn string(&self, fix: &str) -> Result<&'a str, FieldError> {
        match self.raw {
            Raw::Toml(toml::Value::String(s)) => Ok(s),
            Raw::Env { value, .. } => Ok(value),
            Raw::Toml(v) => {
                Err(self.err(format!("expected a string, found {}", type_name(v)), fix))
            }
        }
    }

    /// `true` or `false` (a TOML boolean, or that word in the environment).
    pub fn boolean(&self) -> Result<bool, FieldError> {
        let fix = "write true or false (without quotes)";
        match self.raw {
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            Raw::Env { value, .. } => match value.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.err(
                    format!("{value:?} is not true or false"),
                    "write true or false",
                )),
            },
            Raw::Toml(v) => Err(self.err(
                format!("expected true or false, found {}", type_name(v)),
                fix,
            )),
        }
    }

    /// A non-negative integer within `min..=max`.
    pub fn integer(&self, min: u64, max: u64, fix: &str) -> Result<u64, FieldError> {
        let n = match self.raw {
            Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i).map_err(|_| {
                self.err(
                    format!("{i} is negative"),
                    format!("use a number from {min} to {max}"),
                )
            })?,
            Raw::Env { value, .. } => value.trim().parse::<u64>().map_err(|_| {
                self.err(format!("{value:?} is not a whole number"), fix.to_owned())
            })?,
            Raw::Toml(v) => {
                return Err(self.err(format!("expected a number, found {}", type_name(v)), fix));
            }
        };
        if n < min || n > max {
            return Err(self.err(
                format!("{n} is out of range"),
                format!("use a number from {min} to {max}"),
            ));
        }
        Ok(n)
    }

    /// A finite decimal number (a TOML float or integer).
    pub fn number(&self, fix: &str) -> Result<f64, FieldError> {
        let x = match self.raw {
            Raw::Toml(toml::Value::Integer(i)) => *i as f64,
            Raw::Toml(toml::Value::Float(x)) => *x,
            Raw::Env { value, .. } => value
                .trim()
                .parse::<f64>()
                .map_err(|_| self.err(format!("{value:?} is not a number"), fix.to_owned()))?,
            Raw::Toml(v) => {
                return Err(self.err(format!("expected a number, found {}", type_name(v)), fix));
            }
        };
        if !x.is_finite() {
            return Err(self.err(format!("{} is not a finite number", self.shown()), fix));
        }
        Ok(x)
    }

    /// A decimal number within `min..=max`.
    pub fn number_in(&self, min: f64, max: f64, fix: &str) -> Result<f64, FieldError> {
        let x = self.number(fix)?;
        if x < min || x > max {
            return Err(self.err(
                format!("{} is out of range", self.shown()),
                format!("use a number from {min} to {max}"),
            ));
        }
        Ok(x)
    }

    /// A duration (see [`parse_duration`]) within `min..=max`.
    pub fn duration(&self, min: Duration, max: Duration) -> Result<Duration, FieldError> {
        let fix = format!(
            "write a duration such as \"500ms\", \"2s\" or \"1m\", from {} to {}",
            format_duration(min),
            format_duration(max)
        );
        let text = self.string(&fix)?;
        let d = parse_duration(text)
            .ok_or_else(|| self.err(format!("{text:?} is not a duration"), fix.clone()))?;
        if d < min || d > max {
            return Err(self.err(format!("{text:?} is out of range"), fix));
        }
        Ok(d)
    }

    /// A size in bytes: a whole number, or text such as `"64MiB"` (see [`parse_bytes`]).
    pub fn size(&self, fix: &str) -> Result<u64, FieldError> {
        let text = match self.raw {
            Raw::Toml(toml::Value::Integer(i)) if *i >= 0 => return Ok(*i as u64),
            Raw::Toml(toml::Value::String(s)) => s.as_str(),
            Raw::Env { value, .. } => value,
            Raw::Toml(other) => {
                return Err(self.err(format!("expected a size, found {}", describe(other)), fix));
            }
        };
        parse_bytes(text).ok_or_else(|| self.err(format!("{text:?} is not a size"), fix))
    }

    /// The TOML table, when this is one.
    pub fn table(&self, fix: &str) -> Result<&'a toml::Table, FieldError> {
        match self.raw {
            Raw::Toml(toml::Value::Table(t)) => Ok(t),
            Raw::Toml(v) => Err(self.err(format!("expected a table, found {}", type_name(v)), fix)),
            Raw::Env { var, .. } => Err(self.err(
                format!("{var} cannot set a whole table"),
                "set the table's fields one by one instead",
            )),
        }
    }

    /// The TOML array's items, each a field at `path[i]`.
    pub fn array(&self, what: &str, fix: &str) -> Result<Vec<Field<'a>>, FieldError> {
        match self.raw {
            Raw::Toml(toml::Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Field::toml(format!("{}[{i}]", self.path), v))
                .collect()),
            Raw::Toml(v) => Err(self.err(format!("expected {what}, found {}", type_name(v)), fix)),
            Raw::Env { var, .. } => Err(self.err(
                format!("{var} cannot set a list"),
                "set the list in the file instead",
            )),
        }
    }
}

/// What kind of TOML value this is, for messages: `"a string"`, `"an integer"`, ….
pub fn type_name(v: &toml::Value) -> &'static str {
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

/// A value as written: a string quoted, anything else as TOML writes it (`5`, `true`).
pub fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A value with its kind, for "found …" messages: a string quoted, anything else as
/// `an integer (5)`.
pub fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        other => format!("{} ({other})", type_name(other)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn env_errors_name_the_variable() {
        let e = Field::env("chains[0].start_block", "LILYPAD_X", "ten")
            .integer(0, 10, "a block number")
            .unwrap_err();
        assert_eq!(e.path, "chains[0].start_block (from LILYPAD_X)");
        assert!(e.problem.contains("\"ten\""));
    }

    #[test]
    fn toml_and_env_values_read_alike() {
        let doc: toml::Table = "d = \"1.5s\"\nn = 7\nb = true\ns = \"64MiB\""
            .parse()
            .unwrap();
        let t = |k: &str| Field::toml(k, &doc[k]);
        let e = |v: &'static str| Field::env("x", "VAR", v);
        let range = (Duration::from_millis(1), Duration::from_secs(60));
        assert_eq!(
            t("d").duration(range.0, range.1).unwrap(),
            e("1.5s").duration(range.0, range.1).unwrap()
        );
        assert_eq!(
            t("n").integer(0, 9, "").unwrap(),
            e("7").integer(0, 9, "").unwrap()
        );
        assert_eq!(t("b").boolean().unwrap(), e("true").boolean().unwrap());
        assert_eq!(t("s").size("").unwrap(), e("64MiB").size("").unwrap());
        assert_eq!(t("s").size("").unwrap(), 64 << 20);
    }

    #[test]
    fn wrong_types_say_what_was_found() {
        let doc: toml::Table = "n = 5\ns = \"x\"".parse().unwrap();
        let e = Field::toml("n", &doc["n"])
            .string("write text")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "n: expected a string, found an integer (fix: write text)"
        );
        let e = Field::toml("n", &doc["n"])
            .number_in(10.0, 20.0, "")
            .unwrap_err();
        assert_eq!(e.problem, "5 is out of range");
        let e = Field::toml("s", &doc["s"]).size("").unwrap_err();
        assert_eq!(e.problem, "\"x\" is not a size");
        let e = Field::toml("s", &doc["s"])
            .duration(Duration::from_secs(1), Duration::from_secs(24 * 3600))
            .unwrap_err();
        assert_eq!(e.problem, "\"x\" is not a duration");
        assert!(e.fix.ends_with("from 1s to 24h"), "{e}");
    }
}
