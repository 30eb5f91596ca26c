//! The Lilypad solver: matches job requests with resource providers' offers.
//!
//! [`matching`] is the pure decision (who may take a job, in what order, and why the others may
//! not); [`service`] consumes the jobs stream, proposes deals to providers in that order, checks
//! the signature it gets back, and publishes the signed deal for a relayer to submit. The solver
//! is trusted for nothing: it signs nothing, and a deal binds only what the provider signed.

pub mod matching;
pub mod service;
