//! The Lilypad solver: matches job requests with resource providers' offers.
//!
//! [`matching`] is the pure decision (who may take a job, in what order, and why the others may
//! not); [`book`] is the order book of jobs waiting for a provider (kept in NATS KV, so a restart
//! loses nothing); [`service`] consumes the jobs stream into the book, matches the book whenever
//! capacity may have appeared, proposes deals to providers, checks the signature it gets back,
//! and publishes the signed deal for a relayer to submit. The solver is trusted for nothing: it
//! signs nothing, and a deal binds only what the provider signed.

pub mod book;
pub mod matching;
pub mod service;
