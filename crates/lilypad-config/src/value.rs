//! Reads of chains.toml values that only chains.toml has: URLs and Ethereum addresses. Everything
//! else (strings, numbers, durations, tables) is [`lilypad_toml::Field`]'s.

use alloy_primitives::Address;
use lilypad_toml::Field;

use crate::error::ConfigError;

/// URL and address reads on a [`Field`].
pub(crate) trait ChainField {
    /// An http(s) or ws(s) URL, whichever `schemes` allows.
    fn url(&self, schemes: &[&str]) -> Result<String, ConfigError>;
    /// An Ethereum address: 0x and 40 hex digits; mixed case must be a valid EIP-55 checksum.
    fn address(&self) -> Result<Address, ConfigError>;
}

impl ChainField for Field<'_> {
    fn url(&self, schemes: &[&str]) -> Result<String, ConfigError> {
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

    fn address(&self) -> Result<Address, ConfigError> {
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env_field<'a>(value: &'a str) -> Field<'a> {
        Field::env("x", "VAR", value)
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
}
