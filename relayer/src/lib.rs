//! The Lilypad relayer: for every chain in chains.toml, an indexer that turns `JobRequested`
//! events into messages on `lilypad.jobs.<chainId>` without missing or repeating one, and a
//! submitter that lands signed deals and results and the protocol's own transitions (expire, time
//! out, settle). The relayer is trusted for liveness only: everything it submits is signed by a
//! provider or checked by the contract.

pub mod chain;
pub mod health;
pub mod indexer;
/// The backoff of a failing chain, shared with the mediator.
pub use lilypad_follow::retry;
pub mod service;
pub mod submitter;
