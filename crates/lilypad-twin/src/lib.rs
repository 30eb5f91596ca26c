//! A digital twin of the Lilypad market: the contracts `Deploy.s.sol` deploys, compiled by
//! Foundry (the bytecode `./script/bindings` exports), executed in process by revm, the EVM inside
//! Foundry and anvil. Every payment, slash and audit is the contracts' own arithmetic.
//!
//! This is its foundation ([`Chain`], [`Market`]): agents and scenarios build on it
//! (docs/economics.md, *The digital twin*).

pub mod evm;
pub mod market;

pub use evm::Chain;
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
}
