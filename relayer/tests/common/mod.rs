//! Helpers shared by the relayer's integration tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use lilypad_bus::{Bus, Topic};
use lilypad_types::JobRequested;

/// Everything on the jobs stream for `chain_id` not read yet, in order (as a solver sees it).
pub async fn published(bus: &Bus, chain_id: u64) -> Vec<JobRequested> {
    lilypad_testkit::drain(
        bus,
        Topic::Jobs,
        Some(chain_id),
        "test-reader",
        Duration::from_millis(300),
    )
    .await
}
