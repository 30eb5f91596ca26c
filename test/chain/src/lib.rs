//! Chain and stream fixtures for Lilypad's tests, on top of the harness in `lilypad-e2e`.
//!
//! - [`TestChain`]: anvil with the contracts deployed by their own script, and the steps every test
//!   repeats on it: [`TestChain::approve`], [`TestChain::register_provider`],
//!   [`TestChain::register_mediator`], [`TestChain::run_job`], [`TestChain::advance`].
//! - [`wallet`], [`send`]: a provider that signs with a key, and a call sent and mined.
//! - [`job_request`]: a `runJob` request with the defaults tests start from.
//! - [`drain`], [`next_message`]: what a stream holds, as a consumer reads it.
//! - [`Backends`]: NATS and Redis of the test's own, with a bus and a store connected.
//!
//! A separate crate from `lilypad-e2e` because it needs `lilypad-bindings` (whose own tests use
//! the harness) and alloy, which the harness's other users (store, bus, executor) do not.
//!
//! Every function panics, naming what failed, when a step fails: these are test fixtures.

mod backends;
mod chain;
mod streams;

pub use backends::Backends;
pub use chain::{Requested, TestChain, fresh_key, job_request, reader, send, wallet};
pub use streams::{drain, next_message};
