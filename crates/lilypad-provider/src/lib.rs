//! The Lilypad resource provider's market side, as a library (the `lilypad provider` and
//! `lilypad mediator` commands wrap it):
//!
//! - [`CapacityTracker`]: CPU, memory and GPUs; a job runs only when its module's resources fit,
//!   several at once when they do; a [`Reservation`] gives its share back when dropped.
//! - [`ResourceProvider`]: puts its [`Offer`](lilypad_types::Offer) in the offers bucket on a
//!   heartbeat, answers deal proposals on its deal subject (a signed deal or a refusal saying
//!   why), runs each signed job at once while the deal goes on-chain, and publishes a signed
//!   result the contract accepts, whatever happened to the job. Every task it starts is
//!   tracked: [`ResourceProvider::run`] serves until a [`CancellationToken`] is cancelled, and
//!   [`ResourceProvider::shutdown`] stops them all and waits for them.
//! - The checks a proposal must pass before it is signed are pure functions of the proposal,
//!   the provider and what the chain says (module `checks`), read once per proposal.
//! - [`result_fields`]: how an executor outcome becomes a result (status, CID, inline output,
//!   exit code, error text) within the contract's rules.
//! - [`state`]: the signed deals and results kept on disk until the chain no longer needs them,
//!   so a restart loses nothing the provider signed.
//! - [`mediator`]: re-running a challenged job and voting on its result hash.
//! - [`run`]: the provider and the mediator as services ([`run::run_provider`],
//!   [`run::run_mediator`]) from a settings struct the command builds from its flags.
//!
//! `docs/provider.md` ("Market side") describes the behaviour and its limits.

mod capacity;
mod checks;
pub mod intake;
pub mod mediator;
mod result;
pub mod run;
mod service;
pub mod state;
mod watch;

/// The stop signal the provider's and mediator's entry points take (tokio-util's).
pub use tokio_util::sync::CancellationToken;

pub use capacity::{CapacityTracker, Refusal, Reservation};
pub use result::{
    MAX_CID_BYTES, MAX_ERROR_BYTES, ResultFields, Tamper, result_fields, truncate_utf8,
};
pub use service::{
    ChainSettings, DealRefused, DealServer, Heartbeat, ProviderError, ProviderSettings,
    ResourceProvider, unix_now,
};
