//! A digital twin of the Lilypad market: the contracts `Deploy.s.sol` deploys, compiled by
//! Foundry (the bytecode `./script/bindings` exports), executed in process by revm, the EVM inside
//! Foundry and anvil. Every payment, slash and audit is the contracts' own arithmetic.
//!
//! Layers, bottom up: [`evm`] (a [`Chain`]: revm over memory, the twin's own clock), [`market`]
//! (the contracts deployed as `Deploy.s.sol` does, a job's steps), [`sim`] (agents and one job's
//! accounts), [`scenario`] (the TOML file), [`experiments`] (what a scenario runs), [`report`] and
//! [`plot`] (tables, CSV, PNG). `lilypad twin <scenario.toml>` drives them; docs/economics.md,
//! *The digital twin*, says what the shipped scenarios show.

pub mod evm;
pub mod experiments;
pub mod figures;
pub mod market;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod sim;

pub use evm::{Chain, Sent};
pub use market::{Job, Market};

/// What went wrong in the twin.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    /// A contract could not be deployed (bad artifact, unlinked library, constructor revert).
    #[error("deploying a contract: {0}")]
    Deploy(String),
    /// A call reverted: the contract refused it.
    #[error("{call} reverted: {reason}")]
    Reverted {
        /// The function's signature.
        call: &'static str,
        /// The custom error by name, or the raw revert data.
        reason: String,
    },
    /// A call's return value did not decode as its ABI says.
    #[error("decoding what {call} returned: {reason}")]
    Decode {
        /// The function's signature.
        call: &'static str,
        /// Why.
        reason: String,
    },
    /// The EVM refused the transaction itself (not a revert).
    #[error("the EVM refused the transaction: {0}")]
    Evm(String),
    /// A deal or result could not be signed.
    #[error("signing: {0}")]
    Sign(String),
    /// A scenario file is not valid (every problem named).
    #[error("the scenario is not valid: {0}")]
    Scenario(String),
    /// An output file could not be written.
    #[error("{0}")]
    Output(String),
    /// A plot could not be drawn or written.
    #[error("drawing a plot: {0}")]
    Plot(String),
}
