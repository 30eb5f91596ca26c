//! Typed reads of raw configuration values that come either from the TOML file or from an
//! environment variable, with errors that say where the value came from.

use std::time::Duration;

use alloy_primitives::Address;

use crate::error::ConfigError;

/// A raw value and where it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw<'a> {
    Toml(&'a toml::Value),
    Env { var: &'a str, value: &'a str },
}

/// A value to be read, with the path used in error messages.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    pub path: String,
    pub raw: Raw<'a>,
}

impl<'a> Field<'a> {
    pub fn toml(path: String, value: &'a toml::Value) -> Self {
        Self {
            path,
            raw: Raw::Toml(value),
        }
    }

    pub fn env(path: String, var: &'a str, value: &'a str) -> Self {
        Self {
            path: format!("{path} (from {var})"),
            raw: Raw::Env { var, value },
        }
    }

    fn err(&self, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.clone(), problem, fix)
    }

    fn shown(&self) -> String {
        match self.raw {
            Raw::Toml(v) => show_toml(v),
            Raw::Env { value, .. } => format!("{value:?}"),
        }
    }

    /// A string. Environment values are taken as written.
    pub fn string(&self, fix: &str) -> Result<&'a str, ConfigError> {
        match self.raw {
            Raw::Toml(toml::Value::String(s)) => Ok(s),
            Raw::Env { value, .. } => Ok(value),
            Raw::Toml(v) => {
                Err(self.err(format!("expected a string, found {}", type_name(v)), fix))
            }
        }
    }

    /// A non-negative integer within `min..=max`.
    pub fn integer(&self, min: u64, max: u64, fix: &str) -> Result<u64, ConfigError> {
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

    /// A decimal number (TOML float or integer) within `min..=max`.
    pub fn number(&self, min: f64, max: f64, fix: &str) -> Result<f64, ConfigError> {
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
        if !x.is_finite() || x < min || x > max {
            return Err(self.err(
                format!("{} is out of range", self.shown()),
                format!("use a number from {min} to {max}"),
            ));
        }
        Ok(x)
    }

    /// A duration written as `250ms`, `2s`, `5m` or `1h`, within `min..=max`.
    pub fn duration(&self, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
        let fix = format!(
            "write a duration such as \"500ms\", \"2s\" or \"1m\", from {} to {}",
            fmt_duration(min),
            fmt_duration(max)
        );
        let text = self.string(&fix)?;
        let d = parse_duration(text)
            .ok_or_else(|| self.err(format!("{text:?} is not a duration"), fix.clone()))?;
        if d < min || d > max {
            return Err(self.err(format!("{text:?} is out of range"), fix));
        }
        Ok(d)
    }

    /// An http(s) or ws(s) URL, whichever `schemes` allows.
    pub fn url(&self, schemes: &[&str]) -> Result<String, ConfigError> {
        let example = format!("{}://HOST:PORT", schemes[0]);
        let fix = format!(
            "write a URL starting with {}",
            schemes.join(":// or ") + "://"
        );
        let text = self.string(&fix)?.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(self.err(
                format!("{text:?} is not a URL"),
                format!("{fix}, e.g. {example}"),
            ));
        };
        if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
            return Err(self.err(format!("{text:?} has scheme {scheme:?}"), fix));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) = match host_port.strip_prefix('[') {
            // [IPv6]:port
            Some(v6) => match v6.split_once(']') {
                Some((h, p)) => (h, p.strip_prefix(':')),
                None => ("", None),
            },
            None => match host_port.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            },
        };
        if host.is_empty() {
            return Err(self.err(format!("{text:?} has no host"), format!("e.g. {example}")));
        }
        if let Some(p) = port
            && p.parse::<u16>().is_err()
        {
            return Err(self.err(
                format!("{text:?} has port {p:?}, which is not a port number"),
                "use a port from 1 to 65535",
            ));
        }
        Ok(text.to_owned())
    }

    /// An Ethereum address: 0x and 40 hex digits; mixed case must be a valid EIP-55 checksum.
    pub fn address(&self) -> Result<Address, ConfigError> {
        let fix = "write the address as 0x followed by 40 hex digits";
        let text = self.string(fix)?.trim();
        let hex = text.strip_prefix("0x").unwrap_or("");
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err(format!("{text:?} is not an address"), fix));
        }
        let mixed = hex.bytes().any(|b| b.is_ascii_lowercase())
            && hex.bytes().any(|b| b.is_ascii_uppercase());
        if mixed {
            return Address::parse_checksummed(text, None).map_err(|_| {
                self.err(
                    format!("{text:?} has a wrong EIP-55 checksum (a typo?)"),
                    "copy the address again, or write it all in lower case to skip the check",
                )
            });
        }
        text.parse::<Address>()
            .map_err(|_| self.err(format!("{text:?} is not an address"), fix))
    }

    /// The TOML table, when this is one.
    pub fn table(&self, fix: &str) -> Result<&'a toml::Table, ConfigError> {
        match self.raw {
            Raw::Toml(toml::Value::Table(t)) => Ok(t),
            Raw::Toml(v) => Err(self.err(format!("expected a table, found {}", type_name(v)), fix)),
            Raw::Env { var, .. } => Err(self.err(
                format!("{var} cannot set a whole table"),
                "set the table's fields one by one instead",
            )),
        }
    }
}

pub(crate) fn type_name(v: &toml::Value) -> &'static str {
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

fn show_toml(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `5m`, `1h`. Returns `None` for anything else.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 3 s "), Some(Duration::from_secs(3)));
    }

    #[test]
    fn durations_reject_missing_or_unknown_units() {
        for bad in ["", "5", "s", "5d", "five s", "-1s", "1..2s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should not parse");
        }
    }

    fn env_field<'a>(value: &'a str) -> Field<'a> {
        Field::env("x".into(), "VAR", value)
    }

    #[test]
    fn urls_are_checked_for_scheme_host_and_port() {
        let http = ["http", "https"];
        assert!(env_field("http://127.0.0.1:8545").url(&http).is_ok());
        assert!(
            env_field("https://user:pw@rpc.example.org/v1/key")
                .url(&http)
                .is_ok()
        );
        assert!(env_field("http://[::1]:8545").url(&http).is_ok());
        let e = env_field("htp://127.0.0.1:8545").url(&http).unwrap_err();
        assert!(e.problem.contains("scheme \"htp\""), "{e}");
        assert!(
            env_field("http://:8545")
                .url(&http)
                .unwrap_err()
                .problem
                .contains("no host")
        );
        assert!(
            env_field("http://h:99999")
                .url(&http)
                .unwrap_err()
                .problem
                .contains("port")
        );
        assert!(
            env_field("127.0.0.1:8545")
                .url(&http)
                .unwrap_err()
                .problem
                .contains("not a URL")
        );
        assert!(env_field("ws://127.0.0.1:8545").url(&http).is_err());
    }

    #[test]
    fn addresses_check_eip55_only_when_mixed_case() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(env_field(good).address().is_ok());
        assert!(env_field(&good.to_lowercase()).address().is_ok());
        let typo = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(
            env_field(typo)
                .address()
                .unwrap_err()
                .problem
                .contains("checksum")
        );
        assert!(env_field("0x1234").address().is_err());
        assert!(
            env_field("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
                .address()
                .is_err()
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        let e = Field::env("chains[0].start_block".into(), "LILYPAD_X", "ten")
            .integer(0, 10, "a block number")
            .unwrap_err();
        assert_eq!(e.path, "chains[0].start_block (from LILYPAD_X)");
        assert!(e.problem.contains("\"ten\""));
    }
}
