//! The Lilypad resource provider's market side, as a library (the `lilypad provider` and
//! `lilypad mediator` commands wrap it):
//!
//! - [`CapacityTracker`]: CPU, memory and GPUs; a job runs only when its module's resources fit,
//!   several at once when they do; a [`Reservation`] gives its share back when dropped.
//! - [`ResourceProvider`]: puts its [`Offer`](lilypad_types::Offer) in the offers bucket on a
//!   heartbeat, answers deal proposals on its deal subject (a signed deal or a refusal saying
//!   why), runs each signed job at once while the deal goes on-chain, and publishes a signed
//!   result the contract accepts, whatever happened to the job.
//! - [`result_fields`]: how an executor outcome becomes a result (status, CID, inline output,
//!   exit code, error text) within the contract's rules.
//! - [`mediator`]: re-running a challenged job and voting on its result hash.
//!
//! `docs/provider.md` ("Market side") describes the behaviour and its limits.

mod capacity;
pub mod mediator;
mod result;
mod service;

pub use capacity::{CapacityTracker, Refusal, Reservation};
pub use result::{MAX_CID_BYTES, MAX_ERROR_BYTES, ResultFields, result_fields, truncate_utf8};
pub use service::{
    ChainSettings, DealRefused, DealServer, Heartbeat, ProviderError, ProviderSettings,
    ResourceProvider, unix_now,
};
