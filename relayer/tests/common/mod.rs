//! Helpers shared by the relayer's integration tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use lilypad_bus::{Bus, Received, Topic};
use lilypad_types::JobRequested;

/// Everything on the jobs stream for `chain_id` not read yet, in order (as a solver sees it).
pub async fn published(bus: &Bus, chain_id: u64) -> Vec<JobRequested> {
    let consumer = bus
        .consumer::<JobRequested>(Topic::Jobs, Some(chain_id), "test-reader")
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let batch = consumer
            .fetch(100, Duration::from_millis(300))
            .await
            .unwrap();
        if batch.is_empty() {
            return out;
        }
        for r in batch {
            let Received::Message(d) = r else {
                panic!("malformed message on the jobs stream")
            };
            out.push(d.body.clone());
            d.ack().await.unwrap();
        }
    }
}
