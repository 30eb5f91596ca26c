//! Where a relayer's signing key comes from. The key itself is never part of the configuration.

use std::fmt;
use std::path::PathBuf;

/// Where to read a signing key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerSource {
    /// An environment variable holding the key as hex.
    Env(String),
    /// A file holding the key as hex (surrounding whitespace ignored).
    File(PathBuf),
}

/// A 32-byte secp256k1 private key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// The key's bytes, for building a signer.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a key could not be had. Messages never include the key material.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The environment variable is not set.
    #[error(
        "environment variable {0} is not set (fix: export {0}=0x<64 hex digits>, the relayer's private key)"
    )]
    EnvMissing(String),
    /// The key file cannot be read.
    #[error("cannot read key file {}: {source} (fix: check the path and that the relayer may read it)", path.display())]
    File {
        /// The key file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The text is not a 32-byte hex key.
    #[error(
        "{origin} does not hold a private key: {problem} (fix: write 64 hex digits, optionally after 0x)"
    )]
    Malformed {
        /// The variable or file.
        origin: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl SignerSource {
    /// Reads and checks the key.
    pub fn resolve(&self) -> Result<SecretKey, SignerError> {
        match self {
            Self::Env(var) => {
                let text = std::env::var(var).map_err(|_| SignerError::EnvMissing(var.clone()))?;
                parse_key(&text, || format!("environment variable {var}"))
            }
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SignerError::File {
                    path: path.clone(),
                    source,
                })?;
                parse_key(&text, || format!("key file {}", path.display()))
            }
        }
    }
}

fn parse_key(text: &str, origin: impl Fn() -> String) -> Result<SecretKey, SignerError> {
    let malformed = |problem| SignerError::Malformed {
        origin: origin(),
        problem,
    };
    let text = text.trim();
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.len() != 64 {
        return Err(malformed("it is not 64 hex digits long"));
    }
    let mut key = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digits =
            std::str::from_utf8(pair).map_err(|_| malformed("it has non-hex characters"))?;
        key[i] =
            u8::from_str_radix(digits, 16).map_err(|_| malformed("it has non-hex characters"))?;
    }
    if key == [0u8; 32] {
        return Err(malformed("the key is zero"));
    }
    Ok(SecretKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn reads_a_key_from_a_file_with_or_without_0x() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        let key = SignerSource::File(path.clone()).resolve().unwrap();
        assert_eq!(key.to_bytes()[0], 0xac);
        assert_eq!(key.to_bytes()[31], 0x80);
        std::fs::write(&path, &KEY[2..]).unwrap();
        assert_eq!(SignerSource::File(path).resolve().unwrap(), key);
    }

    #[test]
    fn bad_keys_are_explained_without_leaking_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        for (text, why) in [
            ("0x1234", "64 hex digits"),
            (&"zz".repeat(32) as &str, "non-hex"),
            (&"0".repeat(64), "zero"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = SignerSource::File(path.clone())
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
            assert!(e.contains("fix:"), "{e}");
            assert!(
                !e.contains(text),
                "the message must not repeat the key: {e}"
            );
        }
        let e = SignerSource::File(dir.path().join("absent"))
            .resolve()
            .unwrap_err();
        assert!(matches!(e, SignerError::File { .. }), "{e}");
    }

    #[test]
    fn a_missing_variable_says_which() {
        let e = SignerSource::Env("LILYPAD_TEST_NO_SUCH_KEY_VAR".into())
            .resolve()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("LILYPAD_TEST_NO_SUCH_KEY_VAR is not set")
        );
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let key = parse_key(KEY, String::new).unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    }
}
