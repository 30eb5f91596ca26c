//! Configuration for Lilypad's services.
//!
//! [`ChainsConfig`] reads `chains.toml`, the list of chains a relayer serves. Loading never stops
//! at the first problem: [`LoadError::Invalid`] carries every error found, each with the path of
//! the entry (`chains[1].rpc`, or the environment variable it came from) and what would fix it.
//! Values are read with `lilypad-toml`, the reader module files use too, so a duration or a
//! mistyped key is handled the same way in both.

mod chains;
mod deployment;
mod error;
mod signer;
mod value;

pub use chains::{
    ChainConfig, ChainsConfig, Confirmations, Deployment, ENV_PREFIX, GasPolicy, defaults, env_name,
};
pub use deployment::{Contracts, DeploymentError};
pub use error::{ConfigError, LoadError};
pub use lilypad_toml::parse_duration;
pub use signer::{SecretKey, SignerError, SignerSource};
